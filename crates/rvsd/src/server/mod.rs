//! The control endpoint: accept connections, one thread each, one JSON line
//! per request and per reply; and the housekeeping thread.
//!
//! This file: what the threads share ([`Shared`]: the state, the clock,
//! the data plane's acknowledgements) and housekeeping; `conn.rs`: the
//! accept loop and one connection's requests; `metrics_http.rs`: the
//! `--metrics` endpoint.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rvs_proto::Reply;

use crate::auth::Policy;
use crate::dataplane::DpShared;
use crate::handler::State;
use crate::system::Clock;

mod conn;
mod metrics_http;

pub use conn::{CONNS_PER_CHUNK, accept_loop, needs_fast_path_credit, read_line, serve_connection};
pub use metrics_http::{MetricsError, spawn_metrics};

/// How often the engine's housekeeping runs.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Largest request line accepted from an unprivileged peer (it only ever
/// gets EPERM; this bounds what it can make rvsd buffer). Longer lines are
/// discarded as they arrive, never buffered.
pub const MAX_UNPRIVILEGED_LINE: usize = 4 << 10;

/// Largest request line accepted from a privileged peer. A restore of
/// 100 000 lines (`ipvsadm -R`, 1000 services of 99 real servers) is a
/// request of 24 MB (measured by `tests::restore_of_100k_lines_fits`); this
/// leaves more than 5× that (IPv6 addresses, longer options).
pub const MAX_REQUEST: usize = 128 << 20;

/// Most control connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// Connections kept for root (and rvsd's own uid): other users together
/// hold at most `MAX_CONNECTIONS - ROOT_RESERVE`, so root is never locked out.
pub const ROOT_RESERVE: usize = 64;

/// Most connections one uid other than root (and rvsd's own) holds at once.
pub const PER_UID_CONNECTIONS: usize = 8;

/// A privileged connection idle this long between requests (or stalled
/// this long within one) is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an unprivileged connection lives at most, whatever it sends:
/// long enough to read its request and return EPERM.
pub const UNPRIVILEGED_LIFETIME: Duration = Duration::from_secs(5);

/// A reply the peer does not read for this long closes the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many connections are open, in all and per uid.
#[derive(Debug, Default)]
struct Connections {
    total: usize,
    /// Those of uids that are neither root nor rvsd's own.
    others: usize,
    per_uid: HashMap<u32, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// [`MAX_CONNECTIONS`] are open.
    All,
    /// Users other than root hold all theirs (`MAX_CONNECTIONS - ROOT_RESERVE`).
    Others,
    /// This uid holds [`PER_UID_CONNECTIONS`].
    Uid,
}

/// What the threads share.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    clock: Clock,
    stop: Arc<AtomicBool>,
    connections: Mutex<Connections>,
    policy: Policy,
    /// When (seconds on the clock) a refusal was last logged: at most one a
    /// second, so that a user cannot flood the log.
    refusal_logged: AtomicU64,
    /// A data plane runs and mirrors the table into the classifier.
    dataplane: AtomicBool,
    /// The table generation the data plane has put into its filters.
    synced: AtomicU64,
    /// The generation the data plane last failed to put into its filters,
    /// and why (cleared once a later one is in).
    sync_failed: Mutex<Option<(u64, String)>>,
    /// Control requests handled, by kind: (count, seconds).
    requests: Mutex<std::collections::BTreeMap<&'static str, (u64, f64)>>,
    /// The running data plane's counters and filters.
    dp: OnceLock<Arc<DpShared>>,
    /// `--save FILE`.
    saver: OnceLock<crate::persist::Saver>,
}

/// How long a change waits for the data plane to put it into its filters
/// before rvsadm hears that it did not (a 16k-service restore takes well
/// under a second).
const SYNC_WAIT: Duration = Duration::from_secs(10);

/// How long a listing waits for a change on its way into the filters.
const LISTING_SYNC_WAIT: Duration = Duration::from_secs(1);

impl Shared {
    /// Share `state`; `stop` ends the accept loop and the housekeeping;
    /// `policy` says who may use the control API.
    pub fn new(state: State, clock: Clock, stop: Arc<AtomicBool>, policy: Policy) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(state),
            clock,
            stop,
            connections: Mutex::new(Connections::default()),
            policy,
            refusal_logged: AtomicU64::new(u64::MAX),
            dataplane: AtomicBool::new(false),
            synced: AtomicU64::new(0),
            sync_failed: Mutex::new(None),
            requests: Mutex::new(std::collections::BTreeMap::new()),
            dp: OnceLock::new(),
            saver: OnceLock::new(),
        })
    }

    /// Save the rules after every change (`--save`).
    pub fn set_saver(&self, saver: crate::persist::Saver) {
        let _ = self.saver.set(saver);
    }

    /// Write the rules now if saving (`--save`); whether it is.
    pub fn save_now(&self) -> bool {
        let Some(saver) = self.saver.get() else {
            return false;
        };
        saver.save_from(|| {
            let (fwmark, services) = {
                let state = self.lock();
                (state.fwmark_rules(), state.services())
            };
            crate::persist::rules_text(&fwmark, &services)
        });
        true
    }

    /// A data plane now mirrors the table: changes are acknowledged only
    /// once it has put them into its filters (classifier maps or nftables).
    pub fn set_dataplane_active(&self) {
        self.dataplane.store(true, Ordering::Release);
    }

    /// Register the running data plane (its counters answer
    /// `Request::DataPlaneStats`) and make it mirror the table.
    pub fn set_dataplane(&self, dp: Arc<DpShared>) {
        let _ = self.dp.set(dp);
        self.set_dataplane_active();
    }

    /// Each data-plane worker's loop turns so far (none without a data
    /// plane).
    pub fn worker_heartbeats(&self) -> Vec<u64> {
        self.dp.get().map(|dp| dp.heartbeats()).unwrap_or_default()
    }

    /// The packet I/O in use, with its workers, for logs and systemd's
    /// STATUS (`none` without a data plane).
    pub fn dataplane_mode(&self) -> String {
        match self.dataplane_stats() {
            Reply::DataPlaneStats { mode, workers, .. } if !workers.is_empty() => {
                format!("{mode}, {} worker(s)", workers.len())
            }
            Reply::DataPlaneStats { mode, .. } => mode,
            _ => "none".into(),
        }
    }

    /// The reply to `Request::DataPlaneStats`.
    pub fn dataplane_stats(&self) -> Reply {
        match self.dp.get() {
            Some(dp) => dp.report(),
            None => Reply::no_data_plane(),
        }
    }

    /// Credit to the engine of `state` (locked by the caller) what the XDP
    /// fast path forwarded so far, if a data plane with the fast path runs
    /// ([`DpShared::credit_fast_path`]).
    pub fn credit_fast_path(&self, state: &mut State) {
        if let Some(dp) = self.dp.get() {
            dp.credit_fast_path(state.engines(), self.clock.now());
        }
    }

    /// The data plane has put table generation `generation` into its filters.
    pub fn mark_synced(&self, generation: u64) {
        self.synced.fetch_max(generation, Ordering::AcqRel);
        let mut failed = self.sync_failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.as_ref().is_some_and(|(g, _)| *g <= generation) {
            *failed = None;
        }
    }

    /// The data plane could not put table generation `generation` into its
    /// filters (it keeps retrying): the changes waiting for it fail with
    /// `why`.
    pub fn sync_failed(&self, generation: u64, why: String) {
        *self.sync_failed.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, why));
    }

    /// Why the data plane does not hold the table, if it does not.
    pub fn sync_failure(&self) -> Option<String> {
        let failed = self.sync_failed.lock().unwrap_or_else(|e| e.into_inner());
        failed
            .as_ref()
            .map(|(g, why)| format!("table generation {g}: {why}"))
    }

    /// Wait (bounded by [`SYNC_WAIT`]) until the data plane has caught up
    /// with `generation`, so that when `ipvsadm -A`/`-a` returns, packets
    /// for the service are already claimed and not answered by the kernel.
    /// `Err` with the reason when the data plane failed to take it or did
    /// not confirm it in time: the change is in the table, but not (yet)
    /// in the filter, and the caller must hear so.
    fn wait_synced(&self, generation: u64) -> Result<(), NotSynced> {
        if !self.dataplane.load(Ordering::Acquire) {
            return Ok(());
        }
        let start = std::time::Instant::now();
        loop {
            let synced = self.synced.load(Ordering::Acquire);
            if synced >= generation || self.stopping() {
                return Ok(());
            }
            if let Some((g, why)) = &*self.sync_failed.lock().unwrap_or_else(|e| e.into_inner())
                && *g >= generation
            {
                return Err(NotSynced::Refused(why.clone()));
            }
            if start.elapsed() >= SYNC_WAIT {
                return Err(NotSynced::Timeout { generation, synced });
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Count a control request of `kind` that took `secs`.
    fn note_request(&self, kind: &'static str, secs: f64) {
        let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let e = r.entry(kind).or_default();
        e.0 += 1;
        e.1 += secs;
    }

    /// What a metrics scrape shows ([`crate::metrics`]): the table, its
    /// statistics and the engine's counters, read without stopping a worker
    /// ([`crate::engines`]), then the data plane's and the requests'. What
    /// the XDP fast path forwarded counts once housekeeping has credited it
    /// (every [`crate::dataplane`] housekeeping pass, 100 ms): a scrape does
    /// not credit it itself, as that takes every replica.
    pub fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        let (total, services, engine) = {
            let state = self.lock();
            let engines = state.engines();
            (engines.stats().0, engines.services(), engines.counters())
        };
        let mut snap = crate::metrics::Snapshot {
            total,
            services,
            engine: Some(engine),
            requests: self
                .requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            ..crate::metrics::Snapshot::default()
        };
        if let Reply::DataPlaneStats {
            mode,
            workers,
            classifier,
            fast_path,
            ..
        } = self.dataplane_stats()
        {
            snap.mode = mode;
            snap.workers = workers;
            snap.classifier = classifier;
            snap.fast_path = fast_path;
        }
        snap.filter_out_of_step = self.sync_failure();
        snap
    }

    /// Before a listing: wait, at most [`LISTING_SYNC_WAIT`], until the data
    /// plane holds the table as it is now (nothing to wait for when it is in
    /// step; a data plane that failed to take a change is not waited for:
    /// `rvs dataplane` says so).
    fn wait_listing_synced(&self) {
        if !self.dataplane.load(Ordering::Acquire) {
            return;
        }
        let generation = self.lock().generation();
        let start = std::time::Instant::now();
        while self.synced.load(Ordering::Acquire) < generation
            && start.elapsed() < LISTING_SYNC_WAIT
            && self.sync_failure().is_none()
            && !self.stopping()
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The clock the handler uses.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Whether shutdown was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Count a new connection of `uid` unless a limit is reached.
    fn admit(&self, uid: u32) -> Result<(), Full> {
        let trusted = uid == 0 || uid == self.policy.daemon_uid;
        let mut c = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= MAX_CONNECTIONS {
            return Err(Full::All);
        }
        if !trusted {
            if c.others >= MAX_CONNECTIONS - ROOT_RESERVE {
                return Err(Full::Others);
            }
            let n = c.per_uid.entry(uid).or_insert(0);
            if *n >= PER_UID_CONNECTIONS {
                return Err(Full::Uid);
            }
            *n += 1;
            c.others += 1;
        }
        c.total += 1;
        Ok(())
    }

    /// A connection [`admit`](Self::admit)ted for `uid` closed.
    fn release(&self, uid: u32) {
        let trusted = uid == 0 || uid == self.policy.daemon_uid;
        let mut c = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if !trusted {
            c.others -= 1;
            if let Some(n) = c.per_uid.get_mut(&uid) {
                *n -= 1;
                if *n == 0 {
                    c.per_uid.remove(&uid);
                }
            }
        }
    }

    /// The state, locked. A thread that panicked while holding the lock does
    /// not take the daemon down with it.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Run housekeeping every [`POLL_INTERVAL`] until `stop`: credit the fast
/// path's traffic (so that connections it carries expire from their last
/// packet, and the rates see it), then `Engine::poll`.
pub fn spawn_housekeeping(shared: Arc<Shared>) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("housekeeping".into())
        .spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                std::thread::sleep(POLL_INTERVAL);
                let engines = {
                    let mut state = shared.lock();
                    shared.credit_fast_path(&mut state);
                    Arc::clone(state.engines())
                };
                // Each replica in turn, without the state lock.
                let now = shared.clock.now();
                engines.each_unchanged(|e| e.poll(now));
            }
        })
}

/// Why a change was not acknowledged: it is in the table, but not (yet)
/// in the data plane's filter ([`Shared::wait_synced`]).
#[derive(Debug, thiserror::Error)]
pub enum NotSynced {
    /// The data plane failed to take it (why), and keeps retrying.
    #[error(
        "rvsd's table has the change, but its data plane could not take it: {0}; \
         it keeps retrying (see rvs dataplane); undo the change or fix the cause"
    )]
    Refused(String),
    /// Not confirmed within [`SYNC_WAIT`].
    #[error(
        "rvsd's table has the change, but its data plane has not confirmed it \
         after {wait} s (table generation {generation}, data plane at {synced})",
        wait = SYNC_WAIT.as_secs()
    )]
    Timeout {
        /// The table's generation with the change.
        generation: u64,
        /// The generation the data plane holds.
        synced: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_proto::{Request, encode};
    use std::io::BufReader;

    #[test]
    fn not_synced_texts() {
        assert_eq!(
            NotSynced::Refused("map full".into()).to_string(),
            "rvsd's table has the change, but its data plane could not take it: map full; \
             it keeps retrying (see rvs dataplane); undo the change or fix the cause"
        );
        assert_eq!(
            NotSynced::Timeout {
                generation: 7,
                synced: 5
            }
            .to_string(),
            format!(
                "rvsd's table has the change, but its data plane has not confirmed it \
                 after {} s (table generation 7, data plane at 5)",
                SYNC_WAIT.as_secs()
            )
        );
    }

    #[test]
    fn which_requests_credit_the_fast_path() {
        use rvs_proto::{Op, ServiceId};
        let svc = ServiceId::Fwmark { v6: false, mark: 1 };
        for r in [
            Request::ListServices,
            Request::GetService(svc),
            Request::GlobalStats,
            Request::ListConns,
            Request::ListConnsParts,
            Request::ListConnsPacked,
            Request::Apply(Op::Zero(None)),
            Request::Apply(Op::DeleteService(svc)),
            Request::Batch(Vec::new()),
        ] {
            assert!(needs_fast_path_credit(&r), "{r:?}");
        }
        for r in [
            Request::Info,
            Request::GetTimeouts,
            Request::ListDaemons,
            Request::DataPlaneStats,
            Request::FwmarkList,
            Request::FwmarkHost,
            Request::FwmarkFlush,
        ] {
            assert!(!needs_fast_path_credit(&r), "{r:?}");
        }
    }

    /// A 100 000-line restore (1000 services of 99 real servers, as
    /// `ipvsadm -S -n` writes them) is a request well below [`MAX_REQUEST`].
    #[test]
    fn restore_of_100k_lines_fits() {
        let mut text = String::new();
        for s in 0..1000u32 {
            let vip = format!("10.{}.{}.1:80", s / 250, s % 250);
            text += &format!("-A -t {vip} -s wlc\n");
            for d in 0..99u32 {
                text += &format!(
                    "-a -t {vip} -r 192.168.{}.{}:8080 -m -w 1\n",
                    d / 250,
                    d % 250 + 1
                );
            }
        }
        let lines = rvsadm::cli::parse_restore("ipvsadm", &text).unwrap();
        assert_eq!(lines.len(), 100_000);
        let req = encode(&rvs_proto::Envelope {
            version: rvs_proto::PROTOCOL_VERSION,
            request: Request::Batch(lines),
        });
        eprintln!("100k-line restore: {} bytes", req.len());
        assert!(req.len() * 5 < MAX_REQUEST, "{} bytes", req.len());
    }

    #[test]
    fn connection_limits() {
        let policy = Policy {
            daemon_uid: 0,
            group: None,
            userns: None,
        };
        let sh = Shared::new(
            State::new(rvs_core::Engine::new(Default::default()), |_| None),
            Clock::new(),
            Arc::new(AtomicBool::new(false)),
            policy,
        );
        for _ in 0..PER_UID_CONNECTIONS {
            sh.admit(1000).unwrap();
        }
        assert_eq!(sh.admit(1000), Err(Full::Uid));
        sh.release(1000);
        sh.admit(1000).unwrap();
        // Others together stop short of the reserve; root goes on.
        let mut uid = 2000;
        while sh.admit(uid).is_ok() {
            uid += 1;
        }
        assert_eq!(sh.admit(uid + 1), Err(Full::Others));
        for _ in 0..ROOT_RESERVE {
            sh.admit(0).unwrap();
        }
        assert_eq!(sh.admit(0), Err(Full::All));
        sh.release(0);
        sh.admit(0).unwrap();
    }

    #[test]
    fn lines_and_limits() {
        let mut r = BufReader::new(&b"abc\n\nxyz"[..]);
        assert_eq!(read_line(&mut r, 10).unwrap(), Some(b"abc".to_vec()));
        assert_eq!(read_line(&mut r, 10).unwrap(), Some(vec![]));
        assert_eq!(read_line(&mut r, 10).unwrap(), Some(b"xyz".to_vec()));
        assert_eq!(read_line(&mut r, 10).unwrap(), None);
        let mut r = BufReader::new(&b"0123456789abc\n"[..]);
        assert_eq!(
            read_line(&mut r, 10).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let mut r = BufReader::new(&b"0123456789\n"[..]);
        assert_eq!(read_line(&mut r, 10).unwrap(), Some(b"0123456789".to_vec()));
    }
}
