// SPDX-License-Identifier: GPL-2.0-or-later
//! `rvs health run FILE`: keepalived's checker, as its own process.
//!
//! At start the file's services and real servers go to rvsd as ONE atomic
//! batch, reconciled against what rvsd already has (a restarted checker
//! does not disturb a table that is right). Then one scheduler thread keeps
//! every checker's next due time in a heap. It runs the TCP_CHECKs,
//! HTTP_GETs, SSL_GETs, SMTP_CHECKs, DNS_CHECKs, UDP_CHECKs, PING_CHECKs
//! and MISC_CHECKs itself: nonblocking sockets and the scripts' pidfds in
//! one epoll set, where it also sleeps (`../check/evented.rs`). In the
//! same set: an inotify instance watching the directories of the files
//! FILE_CHECKs track (`file_watch.rs`), whose events ask for a read, and,
//! with ha_suspend, a netlink socket of address events (`addr_watch.rs`),
//! whose events make it read the host's addresses again. FILE_CHECKs'
//! reads go to a pool of worker threads:
//! 4 at the first such check, one more (up to `--threads`, default 64)
//! whenever every worker has been busy checking for over 50 ms while
//! checks wait (a slow or hung read holds a worker; a busy machine's
//! late wake-ups do not count, see `../pool.rs`); a worker with a result
//! wakes the scheduler through an eventfd. Each attempt is bounded by
//! its `connect_timeout` (or `misc_timeout`), so a hung server or script
//! only delays its own checker. Results come back to the scheduler, which
//! runs keepalived's state machine (check_tcp.c `tcp_epilog`) and sends each
//! change as one `Request::Apply`; a change rvsd refuses, or an rvsd that is
//! gone, triggers a full reconcile (one batch) once it answers again.
//!
//! The state is written as JSON to `--state` (default
//! `/run/rvs/health.json`) for `rvs health`, and with `--metrics ADDR:PORT`
//! served as Prometheus metrics (`metrics/`): each state written is also
//! the one the next scrape renders. On SIGTERM/SIGINT the checker exits
//! and leaves the table as it is (the data plane keeps forwarding), unless
//! `lvs_flush_on_stop` asks for the whole table or its services removed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rvs_proto::client::Endpoint;
use serde::{Deserialize, Serialize};

use super::check::{self};
use super::conf::{CheckKind, Checker, Config};
use super::pool::Pool;

mod addr_watch;
mod bfd;
mod fifo;
mod file_watch;
pub mod metrics;
mod notify;
#[cfg(test)]
mod notify_tests;
mod suspend;
#[cfg(test)]
mod tests;
mod world;

pub use world::World;

/// Default state file.
pub const DEFAULT_STATE: &str = "/run/rvs/health.json";

/// `rvs health run` options.
#[derive(Debug, Clone)]
pub struct Opts {
    /// keepalived.conf.
    pub file: PathBuf,
    /// State file.
    pub state: PathBuf,
    /// Worker threads.
    pub threads: usize,
    /// rvsd's control socket.
    pub endpoint: Endpoint,
    /// `--metrics`: where to serve Prometheus metrics (None: not at all).
    pub metrics: Option<SocketAddr>,
}

/// State of one checker, as `rvs health` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckerStatus {
    /// `TCP_CHECK`, `HTTP_GET`…
    pub kind: String,
    /// `ip:port` or the script.
    pub target: String,
    /// Up (keepalived's `is_up`).
    pub up: bool,
    /// Result of the last attempt: `ok`, `fail` or `none` yet.
    pub last_result: String,
    /// Unix time of the last attempt (0: none).
    pub last_check: u64,
    /// Unix time of the last up/down change (or of the start).
    pub last_change: u64,
    /// Failed attempts since the last settled result.
    pub retry_it: u32,
    /// Error text of the last failed attempt.
    pub error: String,
    /// FILE_CHECK: what it adds to the real server's weight while up.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub weight_delta: i64,
    /// It has reached a verdict (keepalived's `has_run`).
    #[serde(skip)]
    pub has_run: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// State of one real server of one virtual server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealStatus {
    /// `[ip]:tcp:port`.
    pub real: String,
    /// Alive: every checker up.
    pub alive: bool,
    /// Its weight when alive (configured, or set by MISC_CHECK), before
    /// the FILE_CHECKs' changes ([`RealStatus::effective_weight`]).
    pub weight: u32,
    /// `inhibit_on_failure`.
    pub inhibit: bool,
    /// Unix time of the last alive change (or of the start).
    pub last_change: u64,
    /// Its checkers.
    pub checkers: Vec<CheckerStatus>,
}

impl RealStatus {
    /// `weight` plus what its FILE_CHECKs add, within 0..=2^31-1 (keepalived's
    /// `real_weight`).
    pub fn effective_weight(&self) -> u32 {
        let d: i64 = self.checkers.iter().map(|c| c.weight_delta).sum();
        (i64::from(self.weight) + d).clamp(0, i64::from(i32::MAX)) as u32
    }
}

/// State of one virtual server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VsStatus {
    /// `[ip]:tcp:port`, `FWM n` or `group NAME`.
    pub vs: String,
    /// `ha_suspend` and none of its addresses here: its checkers paused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    /// Its real servers.
    pub reals: Vec<RealStatus>,
}

/// The state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The checker's pid.
    pub pid: u32,
    /// The configuration file.
    pub config: String,
    /// Unix time of the start.
    pub started: u64,
    /// Unix time of this snapshot.
    pub updated: u64,
    /// Whether the table is known to match (false: waiting for rvsd).
    pub in_sync: bool,
    /// Virtual servers.
    pub services: Vec<VsStatus>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn log(msg: &str) {
    eprintln!("{msg}");
}

/// A checker's name and target for the status.
fn describe(ck: &Checker) -> (String, String) {
    let target = format!("{}:{}", ck.connect_ip, ck.connect_port);
    match &ck.kind {
        CheckKind::Tcp => ("TCP_CHECK".into(), target),
        CheckKind::Http { tls: false, .. } => ("HTTP_GET".into(), target),
        CheckKind::Http { tls: true, .. } => ("SSL_GET".into(), target),
        CheckKind::Misc { path, .. } => ("MISC_CHECK".into(), path.clone()),
        CheckKind::Dns { .. } => ("DNS_CHECK".into(), target),
        CheckKind::Smtp { .. } => ("SMTP_CHECK".into(), target),
        CheckKind::Udp { .. } => ("UDP_CHECK".into(), target),
        CheckKind::Ping => ("PING_CHECK".into(), ck.connect_ip.to_string()),
        CheckKind::File(f) => ("FILE_CHECK".into(), format!("{} ({})", f.name, f.path)),
        CheckKind::Bfd { name } => ("BFD_CHECK".into(), name.clone()),
    }
}

/// keepalived's line for a checker that comes up.
fn success_line(ck: &Checker) -> String {
    let t = check::fmt_checker(ck);
    match &ck.kind {
        CheckKind::Tcp => format!("TCP connection to {t} success."),
        CheckKind::Http { .. } => format!("Remote Web server {t} succeed on service."),
        CheckKind::Misc { path, .. } => format!("Misc check for [{path}] success."),
        CheckKind::Dns { .. } => format!("DNS_CHECK ({t}) succeed on service."),
        CheckKind::Smtp { .. } => format!("SMTP connection to {t} success."),
        CheckKind::Udp { .. } => format!("UDP connection to {t} success."),
        CheckKind::Ping => format!("ICMP connection to [{}] success.", ck.connect_ip),
        CheckKind::File(f) => format!("tracked file {} leaving FAULT state", f.name),
        CheckKind::Bfd { name } => bfd::line(name, ck, true),
    }
}

/// keepalived's `init_file`: write its value to each file a FILE_CHECK
/// tracks, when the file does not exist, or always with `overwrite` (not
/// on a reload, as keepalived). Errors are logged, not fatal.
pub fn init_track_files(conf: &Config, reload: bool) {
    let mut done = std::collections::HashSet::new();
    for ck in conf
        .services
        .iter()
        .flat_map(|v| &v.reals)
        .flat_map(|r| &r.checkers)
    {
        let CheckKind::File(f) = &ck.kind else {
            continue;
        };
        let Some((value, overwrite)) = f.init else {
            continue;
        };
        if !done.insert(f.path.clone()) {
            continue;
        }
        match std::fs::metadata(&f.path) {
            Err(_) => {}
            Ok(_) if !overwrite || reload => continue,
            Ok(m) if !m.is_file() => {
                log(&format!(
                    "Cannot initialise track file {} - it is not a regular file",
                    f.name
                ));
                continue;
            }
            Ok(_) => {}
        }
        if let Err(e) = std::fs::write(&f.path, format!("{value}\n")) {
            log(&format!(
                "Unable to initialise track file {} ({}): {e}",
                f.name, f.path
            ));
        }
    }
}

/// Run a notify script without waiting for it (a thread reaps it), as its
/// user.
fn notify(script: &super::conf::Notify) {
    let script = script.clone();
    std::thread::spawn(move || {
        match script
            .user
            .command("/bin/sh", ["-c", &script.cmd])
            .stdin(std::process::Stdio::null())
            .status()
        {
            Ok(_) => {}
            Err(e) => log(&format!(
                "cannot run notify script {} as {} ({}): {e}",
                script.cmd,
                script.user.name,
                script.user.ids()
            )),
        }
    });
}

/// keepalived's `omega`: the down notifiers at shutdown
/// ([`World::omega_scripts`]), started together, each given a second (as
/// keepalived gives them) and killed after it.
fn omega(world: &mut World) {
    let mails = world.omega_messages();
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut running = Vec::new();
    for (line, script) in world.omega_scripts() {
        log(&line);
        // In a process group of its own: killed, it takes what it started
        // with it.
        match script
            .user
            .command("/bin/sh", ["-c", &script.cmd])
            .stdin(std::process::Stdio::null())
            .process_group(0)
            .spawn()
        {
            Ok(c) => running.push((c, &script.cmd)),
            Err(e) => log(&format!("cannot run notify script {}: {e}", script.cmd)),
        }
    }
    while !running.is_empty() {
        running.retain_mut(|(c, _)| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
        if Instant::now() >= deadline {
            for (c, cmd) in &mut running {
                log(&format!(
                    "notify script {cmd} still running after 1 s at shutdown; killed"
                ));
                if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = c.wait();
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The e-mails: each exchange is bounded by smtp_connect_timeout; the
    // exit waits for them, at most 5 s more.
    let deadline = Instant::now() + Duration::from_secs(5);
    while mails.iter().any(|m| !m.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if mails.iter().any(|m| !m.is_finished()) {
        log("SMTP alerts still being sent 5 s after shutdown; not waiting for them");
    }
}

/// Write `status` to `path` atomically.
pub fn write_status(path: &std::path::Path, status: &Status) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(status).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, text + "\n").map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Schedule the first attempt of every checker, spread evenly over the
/// first second (or its delay_loop if shorter), not all at once; with
/// `warmup`, at a random time up to it.
fn spread(due: &mut BinaryHeap<Reverse<(Instant, usize)>>, checkers: &[Checker]) {
    let t0 = Instant::now();
    let n = checkers.len().max(1) as u32;
    for (k, ck) in checkers.iter().enumerate() {
        // A BFD_CHECK is not run: its session's changes drive it.
        if matches!(ck.kind, CheckKind::Bfd { .. }) {
            continue;
        }
        let at = match ck.timing.warmup {
            // keepalived's warmup: a random delay up to it.
            Some(w) => {
                use std::hash::BuildHasher;
                let r = std::collections::hash_map::RandomState::new().hash_one(k);
                w.mul_f64((r % 10_000) as f64 / 10_000.0)
            }
            None => ck.timing.delay_loop.min(Duration::from_secs(1)) * k as u32 / n,
        };
        due.push(Reverse((t0 + at, k)));
    }
}

/// Where each new state goes: the state file, and the status the
/// metrics endpoint renders (with `--metrics`).
struct Publish<'a> {
    path: &'a std::path::Path,
    shared: Option<Arc<Mutex<Status>>>,
}

impl Publish<'_> {
    fn status(&self, status: Status) -> Result<(), String> {
        let written = write_status(self.path, &status);
        if let Some(m) = &self.shared {
            *m.lock().unwrap_or_else(|e| e.into_inner()) = status;
        }
        written
    }
}

/// keepalived's `checker_priority`, `checker_cpu_affinity` and
/// `checker_no_swap` on this process (its threads and scripts inherit
/// them). A setting the kernel refuses stops the checker at start, with
/// the reason, as a bad option does: it was asked for explicitly.
///
/// `checker_rt_priority`, as keepalived's set_process_priorities: SCHED_RR
/// for the calling thread (the scheduler's, which runs every check but
/// FILE_CHECK's reads), reset on fork so that the threads and scripts it
/// starts run at the normal policy, and RLIMIT_RTTIME (`checker_rlimit_
/// rttime`: SIGXCPU at half, logged; the kernel kills at all of it); then
/// `checker_priority` is not applied. A kernel that refuses SCHED_RR
/// (no CAP_SYS_NICE: containers) gets a warning and the checker runs at
/// `checker_priority`, as keepalived runs on with a warning.
fn apply_process(p: &super::conf::Process) -> Result<(), String> {
    let mut nice = p.priority;
    if let Some(rt) = p.rt_priority {
        match rvs_io::sched::set_round_robin(rt) {
            Ok(()) => {
                nice = None;
                log(&format!(
                    "rvs health: checker_rt_priority {rt} (SCHED_RR, reset on fork)"
                ));
                let l = p.rlimit_rttime;
                if l > 0 {
                    use rustix::process::{Resource, Rlimit, setrlimit};
                    let lim = Rlimit {
                        current: Some(l / 2),
                        maximum: Some(l),
                    };
                    match setrlimit(Resource::Rttime, lim) {
                        Ok(()) => log(&format!(
                            "rvs health: checker_rlimit_rttime {l} us (a warning at {} us)",
                            l / 2
                        )),
                        Err(e) => log(&format!(
                            "rvs health: cannot set the real-time limit ({l} us): {e}"
                        )),
                    }
                }
            }
            Err(e) => log(&format!(
                "rvs health: checker_rt_priority {rt}: cannot raise priority (SCHED_RR: {e}); \
                 running at the normal policy{}",
                p.priority
                    .map_or(String::new(), |n| format!(" with checker_priority {n}"))
            )),
        }
    }
    if let Some(n) = nice {
        rustix::process::setpriority_process(None, n)
            .map_err(|e| format!("checker_priority {n}: setpriority: {e}"))?;
        log(&format!("rvs health: checker_priority {n} (nice)"));
    }
    if !p.cpu_affinity.is_empty() {
        let mut set = rustix::thread::CpuSet::new();
        for &c in &p.cpu_affinity {
            set.set(c);
        }
        rustix::thread::sched_setaffinity(None, &set).map_err(|e| {
            format!(
                "checker_cpu_affinity {:?}: sched_setaffinity: {e}",
                p.cpu_affinity
            )
        })?;
        log(&format!(
            "rvs health: checker_cpu_affinity {:?}",
            p.cpu_affinity
        ));
    }
    if p.no_swap {
        use rustix::mm::MlockAllFlags;
        rustix::mm::mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE)
            .map_err(|e| format!("checker_no_swap: mlockall: {e}"))?;
        log("rvs health: checker_no_swap (memory locked)");
    }
    Ok(())
}

/// The scheduler's epoll sources besides the checks
/// ([`check::Checks::add_source`]): the tracked files' inotify
/// instance, the netlink socket of address events.
const FILES: u8 = 0;
const ADDRS: u8 = 1;

/// ha_suspend: follow the address events (once: the socket is kept across
/// reloads), when a virtual server has ha_suspend; None, logged, when the
/// socket cannot be opened: the addresses are then read once a second.
fn follow_addresses(
    world: &World,
    addrs: &mut Option<addr_watch::AddrWatch>,
    tcp: &mut check::Checks<(u64, usize)>,
) {
    follow_addresses_with(world, addrs, tcp, addr_watch::AddrWatch::open, log);
}

/// [`follow_addresses`] with the socket from `open` (a sandbox may refuse
/// it), saying so with `log`.
fn follow_addresses_with(
    world: &World,
    addrs: &mut Option<addr_watch::AddrWatch>,
    tcp: &mut check::Checks<(u64, usize)>,
    open: impl FnOnce() -> std::io::Result<addr_watch::AddrWatch>,
    log: fn(&str),
) {
    if addrs.is_some() || !suspend::used(&world.conf) {
        return;
    }
    let opened = open().and_then(|a| tcp.add_source(a.fd(), ADDRS).map(|()| a));
    match opened {
        Ok(a) => *addrs = Some(a),
        Err(e) => log(&format!(
            "ha_suspend: cannot follow netlink address events ({e}); \
             this host's addresses are read once a second"
        )),
    }
}

/// When the addresses are next read for ha_suspend after a read at
/// `now`: on the next address event when following them (`None`), else
/// in a second.
fn next_address_look(following: bool, now: Instant) -> Option<Instant> {
    (!following).then(|| now + Duration::from_secs(1))
}

/// ha_suspend: this host's addresses now, and the virtual servers whose
/// checkers pause or run again for it (logged, as keepalived logs them).
/// Addresses that cannot be read change nothing (said in the log).
fn look_at_addresses(world: &mut World) {
    let local = match rvs_io::localaddr::local_addrs() {
        Ok(l) => l,
        Err(e) => {
            log(&format!(
                "ha_suspend: cannot read this host's addresses ({e})"
            ));
            return;
        }
    };
    let now = suspend::suspended(&world.conf, &local);
    let before = world.suspend_seen.then_some(world.suspended.as_slice());
    for line in suspend::changes(&world.conf, before, &now) {
        log(&line);
    }
    if now != world.suspended {
        world.changed = true;
    }
    world.suspended = now;
    world.suspend_seen = true;
}

/// Run the checker until SIGTERM/SIGINT.
pub fn run(opts: &Opts, conf: Config) -> Result<(), String> {
    // First: a --metrics address that cannot be bound stops the checker
    // before it changes anything.
    let listener = opts.metrics.map(metrics::Listener::bind).transpose()?;
    // Before any thread starts: nice values and CPU sets are per thread,
    // and threads inherit them.
    apply_process(&conf.process)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .map_err(|e| e.to_string())?;
    // RLIMIT_RTTIME's soft limit (checker_rt_priority): logged, as
    // keepalived logs it.
    let xcpu = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGXCPU, Arc::clone(&xcpu))
        .map_err(|e| e.to_string())?;
    let started = unix(SystemTime::now());
    let config = opts.file.display().to_string();
    init_track_files(&conf, false);
    let mut world = World::new(conf, opts.endpoint.clone());
    world.fifos = fifo::Fifos::open(&world.conf.notify);
    world.flush_first = world.conf.lvs.flush;
    world.set_timeouts = world.conf.lvs.timeouts.is_some();
    world.start_notifies();
    log(&format!(
        "rvs health: {} virtual server(s), {} checker(s), up to {} worker thread(s)",
        world.conf.services.len(),
        world.index.len(),
        opts.threads
    ));
    world.reconcile();
    let first = world.status(&config, started);
    write_status(&opts.state, &first)?;
    let shared = listener.as_ref().map(|_| Arc::new(Mutex::new(first)));
    let _metrics = match (listener, &shared) {
        (Some(l), Some(s)) => {
            let addr = l.local_addr();
            let server = l.serve(Arc::clone(s))?;
            log(&format!("rvs health: metrics at http://{addr}/metrics"));
            Some(server)
        }
        _ => None,
    };
    let publish = Publish {
        path: &opts.state,
        shared,
    };

    // The pool: jobs in, results out, each tagged with the configuration's
    // generation (a result of a configuration reloaded since is dropped).
    // 4 workers at the first job, more up to --threads while every one is
    // busy checking (slow or hung reads) and checks wait (pool.rs).
    // Only FILE_CHECKs go to the pool: the others run nonblocking on
    // this thread (check/evented.rs), which sleeps in their
    // epoll set; the workers wake it when they have a result.
    let mut tcp = check::Checks::new().map_err(|e| format!("epoll: {e}"))?;
    let waker = tcp.waker();
    let mut pool = Pool::with_notify(
        opts.threads,
        |(g, k, ck): (u64, usize, Checker)| (g, k, check::run(&ck)),
        move || waker.wake(),
        log,
    )?;
    let mut done: Vec<((u64, usize), check::Outcome)> = Vec::new();
    // keepalived's BFD process: the bfd_instance sessions on a thread of
    // their own (bfd/io.rs), their changes waking this one.
    let bfd_waker = tcp.waker();
    let bfd = super::bfd::io::Bfd::start(world.conf.bfd.clone(), move || bfd_waker.wake(), log)?;

    let mut generation = 0u64;
    let checkers_of = |w: &World| -> Vec<Checker> {
        w.index
            .iter()
            .map(|&(v, r, c)| w.conf.services[v].reals[r].checkers[c].clone())
            .collect()
    };
    let mut checkers = checkers_of(&world);
    // FILE_CHECKs: read once at the start (spread), then on their files'
    // inotify events (file_watch.rs); polled only where not watched.
    let mut files = file_watch::FileWatch::new();
    if let Some(fd) = files.fd() {
        tcp.add_source(fd, FILES)
            .map_err(|e| format!("epoll: {e}"))?;
    }
    files.arm(&checkers, log);
    // ha_suspend: the addresses read at the start and on each netlink
    // address event (addr_watch.rs); once a second without the socket.
    let mut addrs = None;
    follow_addresses(&world, &mut addrs, &mut tcp);
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    spread(&mut due, &checkers);
    let mut last_write = Instant::now();
    let mut next_look = Some(Instant::now());
    let mut unwritten = false;
    let mut urgent = false;
    while !stop.load(Ordering::Relaxed) {
        if xcpu.swap(false, Ordering::Relaxed) {
            log(
                "Checker process has used too much CPU time, checker_rlimit_rttime may need \
                 to be increased",
            );
        }
        if reload.swap(false, Ordering::Relaxed) {
            log(&format!("Reloading {config}"));
            match super::conf::load(&opts.file) {
                Err(e) => log(&format!("Reload refused, nothing changed: {e}")),
                Ok((conf, warnings)) => {
                    for w in warnings {
                        log(&w);
                    }
                    init_track_files(&conf, true);
                    if conf.process != world.conf.process {
                        log("global_defs' checker_priority, checker_cpu_affinity, \
                             checker_no_swap, checker_rt_priority or checker_rlimit_rttime \
                             changed: they take effect when rvs health restarts");
                    }
                    world.reload(conf);
                    bfd.reload(world.conf.bfd.clone());
                    // A new world: its addresses looked at before its
                    // checks run.
                    follow_addresses(&world, &mut addrs, &mut tcp);
                    next_look = Some(Instant::now());
                    generation += 1;
                    checkers = checkers_of(&world);
                    files.arm(&checkers, log);
                    due.clear();
                    spread(&mut due, &checkers);
                    unwritten = true;
                }
            }
        }
        let now = Instant::now();
        if suspend::used(&world.conf) && next_look.is_some_and(|t| now >= t) {
            // Again at the next address event; without the socket, in a
            // second.
            next_look = next_address_look(addrs.is_some(), now);
            look_at_addresses(&mut world);
        }
        while let Some(Reverse((t, k))) = due.peek().copied() {
            if t > now {
                break;
            }
            due.pop();
            let file = matches!(checkers[k].kind, CheckKind::File(_));
            // ha_suspend: not run, its state kept, due again after its
            // delay_loop. Not a FILE_CHECK: keepalived applies a tracked
            // file's changes whether its checker is suspended or not.
            if !file && world.suspended.get(world.index[k].0) == Some(&true) {
                due.push(Reverse((now + checkers[k].timing.delay_loop, k)));
                continue;
            }
            if check::evented(&checkers[k].kind) {
                tcp.start(&checkers[k], (generation, k), &mut done);
            } else if !file || files.start_read(k) {
                pool.submit((generation, k, checkers[k].clone()))?;
            }
        }
        let wait = due
            .peek()
            .map_or(Duration::from_millis(200), |Reverse((t, _))| {
                t.saturating_duration_since(now)
            })
            .min(Duration::from_millis(200));
        let wait = if done.is_empty() {
            pool.wait_bound(wait)?
        } else {
            Duration::ZERO
        };
        tcp.wait(wait, &mut done)
            .map_err(|e| format!("epoll: {e}"))?;
        while let Some((g, k, out)) = pool.try_recv()? {
            done.push(((g, k), out));
        }
        if tcp.ready(FILES) {
            for k in files.events(&checkers, log) {
                if files.start_read(k) {
                    pool.submit((generation, k, checkers[k].clone()))?;
                }
            }
        }
        if tcp.ready(ADDRS) && addrs.as_mut().is_some_and(|a| a.changed()) {
            next_look = Some(Instant::now());
        }
        for e in bfd.events() {
            world.bfd_event(&e);
        }
        for ((g, k), out) in done.drain(..) {
            if g != generation {
                continue;
            }
            let d = world.result(k, out);
            unwritten = true;
            if matches!(checkers[k].kind, CheckKind::File(_)) {
                // Events came during the read: once more.
                if files.read_done(k) {
                    pool.submit((generation, k, checkers[k].clone()))?;
                }
                if !files.polled(k) {
                    continue;
                }
            }
            due.push(Reverse((Instant::now() + d, k)));
        }
        if world.dirty {
            world.reconcile();
            unwritten = true;
        }
        // The state file: soon after a change, else once a second (a
        // thousand checks a second must not mean a thousand writes).
        if std::mem::take(&mut world.changed) {
            urgent = true;
            unwritten = true;
        }
        let soon = if urgent || world.dirty {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        if unwritten && last_write.elapsed() >= soon {
            urgent = false;
            publish.status(world.status(&config, started))?;
            last_write = Instant::now();
            unwritten = false;
        }
    }
    publish.status(world.status(&config, started))?;
    log(&format!(
        "rvs health: stopping ({} checker threads); {}",
        pool.workers(),
        if world.conf.lvs.flush_on_stop.is_some() {
            "lvs_flush_on_stop: the table is emptied of what it asks for"
        } else {
            "the table is left as it is"
        }
    ));
    omega(&mut world);
    world.flush_on_stop();
    drop(bfd);
    drop(tcp);
    Ok(())
}
