// SPDX-License-Identifier: GPL-2.0-or-later
//! The checkers' worker pool: jobs in, results out, [`MIN_WORKERS`] threads
//! at the first job and more, up to a cap (`--threads`), only when the
//! pool is saturated by checks in progress. Only FILE_CHECKs come here
//! (a read that a hung file system could block; asked for by the file's
//! inotify events, `run/file_watch.rs`); the other checkers,
//! MISC_CHECK's scripts among them, run on the scheduler's thread
//! (`check/evented.rs`).
//!
//! A worker is added when, for more than [`LATE`], every worker has been
//! inside a check while jobs waited in the queue: the jobs wait for a
//! worker, held by slow or hung reads; then one more every [`LATE`]
//! while that lasts. Jobs
//! that start late while a worker is idle wait for a CPU, not for a
//! worker (a busy machine wakes threads late): another thread would not
//! help, so none is added.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Workers started at once.
pub const MIN_WORKERS: usize = 4;

/// How long every worker must be busy, with jobs waiting, before one more
/// is started.
pub const LATE: Duration = Duration::from_millis(50);

/// The pool. `J` is a job, `R` its result; `work` runs on the workers.
pub struct Pool<J, R> {
    job_tx: mpsc::Sender<J>,
    job_rx: Arc<Mutex<mpsc::Receiver<J>>>,
    res_tx: mpsc::Sender<R>,
    res_rx: mpsc::Receiver<R>,
    /// Workers inside `work`.
    busy: Arc<AtomicUsize>,
    /// Jobs queued, not yet taken by a worker.
    queued: Arc<AtomicUsize>,
    work: Arc<dyn Fn(J) -> R + Send + Sync>,
    /// Called by a worker after each result it sends.
    notify: Arc<dyn Fn() + Send + Sync>,
    workers: usize,
    max: usize,
    /// Since when every worker has been busy with jobs waiting.
    saturated: Option<Instant>,
    warned_full: bool,
    log: fn(&str),
    /// Held by a test: workers that took a job wait here, not yet
    /// running it (as on a machine that does not wake them).
    #[cfg(test)]
    pause: Arc<Mutex<()>>,
}

impl<J: Send + 'static, R: Send + 'static> Pool<J, R> {
    /// A pool of `min(MIN_WORKERS, max)` workers (started with the first
    /// job), growing up to `max`; growth and a full pool are reported
    /// through `log`.
    #[cfg(test)]
    pub fn new(
        max: usize,
        work: impl Fn(J) -> R + Send + Sync + 'static,
        log: fn(&str),
    ) -> Result<Pool<J, R>, String> {
        Pool::with_notify(max, work, || {}, log)
    }

    /// [`Pool::new`], with `notify` called by a worker after each result
    /// it sends (to wake a caller that sleeps elsewhere than in
    /// [`Pool::recv_timeout`]).
    pub fn with_notify(
        max: usize,
        work: impl Fn(J) -> R + Send + Sync + 'static,
        notify: impl Fn() + Send + Sync + 'static,
        log: fn(&str),
    ) -> Result<Pool<J, R>, String> {
        let (job_tx, job_rx) = mpsc::channel();
        let (res_tx, res_rx) = mpsc::channel();
        let pool = Pool {
            job_tx,
            job_rx: Arc::new(Mutex::new(job_rx)),
            res_tx,
            res_rx,
            busy: Arc::new(AtomicUsize::new(0)),
            queued: Arc::new(AtomicUsize::new(0)),
            work: Arc::new(work),
            notify: Arc::new(notify),
            workers: 0,
            max: max.max(1),
            saturated: None,
            warned_full: false,
            log,
            #[cfg(test)]
            pause: Arc::default(),
        };
        Ok(pool)
    }

    /// Workers started.
    pub fn workers(&self) -> usize {
        self.workers
    }

    fn spawn(&mut self) -> Result<(), String> {
        let (rx, tx) = (Arc::clone(&self.job_rx), self.res_tx.clone());
        let (busy, queued) = (Arc::clone(&self.busy), Arc::clone(&self.queued));
        let (work, notify) = (Arc::clone(&self.work), Arc::clone(&self.notify));
        #[cfg(test)]
        let pause = Arc::clone(&self.pause);
        std::thread::Builder::new()
            .name(format!("check-{}", self.workers))
            .spawn(move || {
                loop {
                    let job = rx.lock().map(|r| r.recv());
                    let Ok(Ok(job)) = job else {
                        return;
                    };
                    #[cfg(test)]
                    drop(pause.lock());
                    // Out of the queue before busy: never counted twice.
                    queued.fetch_sub(1, Ordering::SeqCst);
                    busy.fetch_add(1, Ordering::SeqCst);
                    let r = work(job);
                    busy.fetch_sub(1, Ordering::SeqCst);
                    if tx.send(r).is_err() {
                        return;
                    }
                    notify();
                }
            })
            .map_err(|e| e.to_string())?;
        self.workers += 1;
        Ok(())
    }

    /// Queue `job`. The first starts the first workers (a configuration
    /// of TCP_CHECKs and HTTP_GETs alone, which run elsewhere, has none).
    pub fn submit(&mut self, job: J) -> Result<(), String> {
        while self.workers < self.max.min(MIN_WORKERS) {
            self.spawn()?;
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.job_tx
            .send(job)
            .map_err(|_| "the checker threads are gone".to_string())?;
        self.grow()
    }

    /// The next result, waiting up to `wait` (None: none came). While jobs
    /// wait behind busy workers, the wait is cut to [`LATE`] so that the
    /// pool grows on time even when no result comes (every worker hung).
    #[cfg(test)]
    pub fn recv_timeout(&mut self, wait: Duration) -> Result<Option<R>, String> {
        self.grow()?;
        let wait = if self.saturated.is_some() {
            wait.min(LATE)
        } else {
            wait
        };
        let r = match self.res_rx.recv_timeout(wait) {
            Ok(r) => Some(r),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("the checker threads are gone".into());
            }
        };
        self.grow()?;
        Ok(r)
    }

    /// How long a caller that sleeps elsewhere (and is woken by `notify`)
    /// may sleep before it looks at the pool again: `wait`, cut to
    /// [`LATE`] while jobs wait behind busy workers, as
    /// [`Pool::recv_timeout`] does.
    pub fn wait_bound(&mut self, wait: Duration) -> Result<Duration, String> {
        self.grow()?;
        Ok(if self.saturated.is_some() {
            wait.min(LATE)
        } else {
            wait
        })
    }

    /// A result already there.
    pub fn try_recv(&mut self) -> Result<Option<R>, String> {
        self.grow()?;
        Ok(self.res_rx.try_recv().ok())
    }

    /// One more worker when every worker has been busy, with jobs
    /// waiting, for over [`LATE`].
    fn grow(&mut self) -> Result<(), String> {
        let busy = self.busy.load(Ordering::SeqCst);
        let queued = self.queued.load(Ordering::SeqCst);
        if busy < self.workers || queued == 0 {
            self.saturated = None;
            return Ok(());
        }
        let now = Instant::now();
        let since = *self.saturated.get_or_insert(now);
        let stalled = now - since;
        if stalled <= LATE {
            return Ok(());
        }
        if self.workers < self.max {
            self.spawn()?;
            self.saturated = Some(now);
            (self.log)(&format!(
                "rvs health: {} checker threads: all {} were busy checking for {} ms \
                 with {queued} check(s) waiting (slow or hung servers)",
                self.workers,
                self.workers - 1,
                stalled.as_millis()
            ));
        } else if stalled > Duration::from_secs(1) && !self.warned_full {
            self.warned_full = true;
            (self.log)(&format!(
                "rvs health: all {} checker threads are busy: {queued} check(s) waiting \
                 for {} ms (--threads)",
                self.max,
                stalled.as_millis()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(_: &str) {}

    /// Submit `n` jobs, one every `every`, then collect every result.
    fn drive(pool: &mut Pool<u64, u64>, n: u64, every: Duration) {
        let mut got = 0;
        for i in 0..n {
            pool.submit(i).unwrap();
            std::thread::sleep(every);
            while pool.try_recv().unwrap().is_some() {
                got += 1;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while got < n {
            assert!(Instant::now() < deadline, "{} result(s) missing", n - got);
            if pool.recv_timeout(Duration::from_secs(1)).unwrap().is_some() {
                got += 1;
            }
        }
    }

    /// Threads that keep both cores busy until `stop` is set.
    fn spinners(
        n: usize,
    ) -> (
        Arc<std::sync::atomic::AtomicBool>,
        Vec<std::thread::JoinHandle<()>>,
    ) {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let h = (0..n)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                })
            })
            .collect();
        (stop, h)
    }

    /// Many fast jobs (100 us each, 2000 a second) do not grow the pool,
    /// on an idle machine and on one whose cores are all busy (where jobs
    /// may start late: the workers wait for a CPU, not for each other).
    #[test]
    fn fast_jobs_do_not_grow_the_pool_even_on_a_busy_machine() {
        let work = |i: u64| {
            std::thread::sleep(Duration::from_micros(100));
            i
        };
        let mut pool = Pool::new(64, work, quiet).unwrap();
        drive(&mut pool, 1000, Duration::from_micros(500));
        assert_eq!(pool.workers(), MIN_WORKERS, "idle machine");
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (stop, spin) = spinners(2 * cores);
        let mut pool = Pool::new(64, work, quiet).unwrap();
        drive(&mut pool, 1000, Duration::from_micros(500));
        stop.store(true, Ordering::Relaxed);
        for s in spin {
            s.join().unwrap();
        }
        assert_eq!(pool.workers(), MIN_WORKERS, "busy machine");
    }

    /// Idle workers that take jobs late (here: held for 300 ms before
    /// they run one, as on a busy machine that does not wake them) do
    /// not grow the pool: jobs wait, but for a CPU, not for a worker.
    #[test]
    fn jobs_late_with_idle_workers_do_not_grow_the_pool() {
        let mut pool = Pool::new(64, |i: u64| i, quiet).unwrap();
        let pause = Arc::clone(&pool.pause);
        let held = pause.lock().unwrap();
        let t0 = Instant::now();
        let mut n = 0;
        while t0.elapsed() < Duration::from_millis(300) {
            pool.submit(n).unwrap();
            n += 1;
            assert!(pool.try_recv().unwrap().is_none());
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(held);
        let mut got = 0;
        while got < n {
            assert!(t0.elapsed() < Duration::from_secs(10), "results missing");
            if pool.recv_timeout(Duration::from_secs(1)).unwrap().is_some() {
                got += 1;
            }
        }
        assert_eq!(pool.workers(), MIN_WORKERS);
    }

    /// Jobs that block (a hung server holds a worker up to its
    /// connect_timeout) grow the pool until the others run on time, and
    /// never beyond the cap.
    #[test]
    fn blocking_jobs_grow_the_pool_up_to_the_cap() {
        // Jobs 0..8 block 1.5 s, the others are quick.
        let work = |i: u64| {
            if i < 8 {
                std::thread::sleep(Duration::from_millis(1500));
            }
            i
        };
        let mut pool = Pool::new(64, work, quiet).unwrap();
        drive(&mut pool, 100, Duration::from_millis(10));
        assert!(pool.workers() > 8, "{} workers", pool.workers());
        let mut pool = Pool::new(6, work, quiet).unwrap();
        drive(&mut pool, 100, Duration::from_millis(10));
        assert_eq!(pool.workers(), 6);
    }

    /// With keepalived's checkers against local servers: 1000 TCP_CHECKs
    /// of a listener that accepts and closes leave the pool at its
    /// minimum; HTTP_GETs of a listener that accepts and never answers
    /// (each holds a worker for its 2 s connect_timeout) grow it, and the
    /// TCP_CHECKs queued meanwhile still run within a second. (The
    /// scheduler runs neither on the pool: `check/evented.rs`; here they
    /// stand for checks that block, run by `check::run`.)
    #[test]
    fn hung_http_servers_grow_the_pool_fast_tcp_checks_do_not() {
        use crate::keepalived::conf::Checker;
        use crate::keepalived::{check, conf, lex};
        let closes = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let hangs = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (tcp, http) = (
            closes.local_addr().unwrap().port(),
            hangs.local_addr().unwrap().port(),
        );
        std::thread::spawn(move || {
            for c in closes.incoming() {
                drop(c);
            }
        });
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for c in hangs.incoming() {
                held.push(c);
            }
        });
        let mut text = format!(
            "virtual_server 10.0.0.100 80 {{\n real_server 127.0.0.1 {tcp} {{\n \
             TCP_CHECK {{\n connect_timeout 2\n }}\n }}\n"
        );
        for p in 1..=8 {
            text += &format!(
                " real_server 127.0.0.1 {p} {{\n HTTP_GET {{\n url {{\n path /\n }}\n \
                 connect_port {http}\n connect_timeout 2\n }}\n }}\n"
            );
        }
        text += "}\n";
        let mut w = Vec::new();
        let t = lex::parse_text(&text, "k.conf", std::path::Path::new("/x"), &mut w).unwrap();
        let c = conf::build(&t, &mut w).unwrap();
        let reals = &c.services[0].reals;
        let tcp_check = reals[0].checkers[0].clone();
        let http_checks: Vec<Checker> = reals[1..].iter().map(|r| r.checkers[0].clone()).collect();
        assert_eq!(http_checks.len(), 8);
        let work = |(i, ck): (u32, Checker)| (i, Instant::now(), check::run(&ck));
        let mut pool: Pool<(u32, Checker), Res> = Pool::new(64, work, quiet).unwrap();
        type Res = (u32, Instant, check::Outcome);
        // Collect results: every TCP_CHECK is up and started within a
        // second of being queued.
        fn collect(
            pool: &mut Pool<(u32, Checker), Res>,
            sent: &mut std::collections::HashMap<u32, Instant>,
            wait: Duration,
        ) {
            while let Some((i, at, out)) = pool.recv_timeout(wait).unwrap() {
                let queued = sent.remove(&i).unwrap();
                if !(1000..2000).contains(&i) {
                    assert!(
                        matches!(out, check::Outcome::Up(_)),
                        "TCP_CHECK {i}: {out:?}"
                    );
                    let late = at - queued;
                    assert!(late < Duration::from_secs(1), "TCP_CHECK {i} {late:?} late");
                }
            }
        }
        let mut sent = std::collections::HashMap::new();
        for i in 0..1000u32 {
            sent.insert(i, Instant::now());
            pool.submit((i, tcp_check.clone())).unwrap();
            std::thread::sleep(Duration::from_millis(1));
            collect(&mut pool, &mut sent, Duration::ZERO);
        }
        assert_eq!(pool.workers(), MIN_WORKERS, "fast checks");
        for (k, ck) in http_checks.into_iter().enumerate() {
            sent.insert(1000 + k as u32, Instant::now());
            pool.submit((1000 + k as u32, ck)).unwrap();
        }
        for i in 2000..2200u32 {
            sent.insert(i, Instant::now());
            pool.submit((i, tcp_check.clone())).unwrap();
            std::thread::sleep(Duration::from_millis(5));
            collect(&mut pool, &mut sent, Duration::ZERO);
        }
        assert!(pool.workers() > 8, "{} workers", pool.workers());
        let t0 = Instant::now();
        while !sent.is_empty() {
            assert!(t0.elapsed() < Duration::from_secs(10), "{sent:?} missing");
            collect(&mut pool, &mut sent, Duration::from_millis(100));
        }
    }
}
