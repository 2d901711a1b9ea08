// SPDX-License-Identifier: GPL-2.0-or-later
//! `rvs health run FILE`: keepalived's checker, as its own process.
//!
//! At start the file's services and real servers go to rvsd as ONE atomic
//! batch, reconciled against what rvsd already has (a restarted checker
//! does not disturb a table that is right). Then one scheduler thread keeps
//! every checker's next due time in a heap and hands due checks to a fixed
//! pool of worker threads (`--threads`, default 8); each attempt is bounded
//! by its `connect_timeout` (or `misc_timeout`), so a hung server or script
//! only delays its own checker. Results come back to the scheduler, which
//! runs keepalived's state machine (check_tcp.c `tcp_epilog`) and sends each
//! change as one `Request::Apply`; a change rvsd refuses, or an rvsd that is
//! gone, triggers a full reconcile (one batch) once it answers again.
//!
//! The state is written as JSON to `--state` (default
//! `/run/rvs/health.json`) for `rvs health`. On SIGTERM/SIGINT the checker
//! exits and leaves the table as it is: the data plane keeps forwarding.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{Op, Reply, Request};
use serde::{Deserialize, Serialize};

use super::apply::{self, Want};
use super::check::{self, Outcome};
use super::conf::{CheckKind, Checker, Config};

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
}

/// State of one real server of one virtual server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealStatus {
    /// `[ip]:tcp:port`.
    pub real: String,
    /// Alive: every checker up.
    pub alive: bool,
    /// Its weight when alive (configured, or set by MISC_CHECK).
    pub weight: u32,
    /// `inhibit_on_failure`.
    pub inhibit: bool,
    /// Unix time of the last alive change (or of the start).
    pub last_change: u64,
    /// Its checkers.
    pub checkers: Vec<CheckerStatus>,
}

/// State of one virtual server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VsStatus {
    /// `[ip]:tcp:port`, `FWM n` or `group NAME`.
    pub vs: String,
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
    }
}

/// keepalived's line for a checker that comes up.
fn success_line(ck: &Checker) -> String {
    let t = check::fmt_target(ck.connect_ip, ck.connect_port);
    match &ck.kind {
        CheckKind::Tcp => format!("TCP connection to {t} success."),
        CheckKind::Http { .. } => format!("Remote Web server {t} succeed on service."),
        CheckKind::Misc { path, .. } => format!("Misc check for [{path}] success."),
    }
}

/// The checkers' and real servers' states, and the table's.
pub struct World {
    conf: Config,
    /// `[vs][rs]`.
    reals: Vec<Vec<RealStatus>>,
    /// Flat index of checkers: (vs, rs, checker).
    index: Vec<(usize, usize, usize)>,
    client: Option<Client>,
    endpoint: Endpoint,
    /// The table must be reconciled (start, or a refused change).
    dirty: bool,
    next_sync: Instant,
}

impl World {
    /// The initial state: with `alpha` a checker starts down, else up.
    pub fn new(conf: Config, endpoint: Endpoint) -> World {
        let now = unix(SystemTime::now());
        let mut index = Vec::new();
        let reals = conf
            .services
            .iter()
            .enumerate()
            .map(|(vi, vs)| {
                let id = apply::service_ids(vs);
                vs.reals
                    .iter()
                    .enumerate()
                    .map(|(ri, rs)| {
                        let checkers: Vec<CheckerStatus> = rs
                            .checkers
                            .iter()
                            .enumerate()
                            .map(|(ci, ck)| {
                                index.push((vi, ri, ci));
                                let (kind, target) = describe(ck);
                                CheckerStatus {
                                    kind,
                                    target,
                                    up: !(ck.alpha || vs.alpha),
                                    last_result: "none".into(),
                                    last_check: 0,
                                    last_change: now,
                                    retry_it: 0,
                                    error: String::new(),
                                }
                            })
                            .collect();
                        RealStatus {
                            real: id
                                .first()
                                .map_or_else(String::new, |i| apply::fmt_real(i, rs)),
                            alive: checkers.iter().all(|c| c.up),
                            weight: rs.weight,
                            inhibit: rs.inhibit_on_failure,
                            last_change: now,
                            checkers,
                        }
                    })
                    .collect()
            })
            .collect();
        World {
            conf,
            reals,
            index,
            client: None,
            endpoint,
            dirty: true,
            next_sync: Instant::now(),
        }
    }

    fn want(&self, vi: usize, ri: usize) -> Want {
        let st = &self.reals[vi][ri];
        apply::want(&self.conf.services[vi].reals[ri], st.alive, st.weight)
    }

    fn call(&mut self, req: Request) -> Result<Reply, String> {
        if self.client.is_none() {
            self.client = Some(
                Client::connect(&self.endpoint)
                    .map_err(|e| format!("cannot connect to rvsd at {}: {e}", self.endpoint))?,
            );
        }
        let r = self.client.as_mut().expect("connected").call(req);
        if r.is_err() {
            self.client = None;
        }
        r
    }

    /// Make rvsd's table match the states: one atomic batch.
    fn reconcile(&mut self) {
        if !self.dirty || Instant::now() < self.next_sync {
            return;
        }
        self.next_sync = Instant::now() + Duration::from_secs(1);
        let current = match self.call(Request::ListServices) {
            Ok(Reply::Services(s)) => s,
            Ok(Reply::Error(e)) => {
                return log(&format!("rvsd: cannot list services: {}", e.message));
            }
            Ok(other) => return log(&format!("rvsd: unexpected reply {other:?}")),
            Err(e) => return log(&e),
        };
        let ops = apply::plan(&self.conf, &current, |v, r| self.want(v, r));
        let n = ops.len();
        if n > 0 {
            match self.call(Request::Batch(apply::batch(ops.clone()))) {
                Ok(Reply::Ok) => {}
                Ok(Reply::Error(e)) => {
                    let line = e.line.and_then(|l| ops.get(l - 1));
                    return log(&format!(
                        "rvsd refused the configuration{}: {}",
                        line.map_or(String::new(), |op| format!(
                            " at ipvsadm {}",
                            apply::ipvsadm_line(op)
                        )),
                        e.message
                    ));
                }
                Ok(other) => return log(&format!("rvsd: unexpected reply {other:?}")),
                Err(e) => return log(&e),
            }
        }
        log(&format!(
            "rvsd: table in sync ({n} change(s) applied in one batch)"
        ));
        self.dirty = false;
    }

    /// Apply one change; a refusal or a lost rvsd leaves it to the next
    /// reconcile.
    fn apply(&mut self, op: Op) {
        match self.call(Request::Apply(op.clone())) {
            Ok(Reply::Ok) => {}
            Ok(Reply::Error(e)) => {
                log(&format!(
                    "rvsd refused ipvsadm {}: {} (resynchronising)",
                    apply::ipvsadm_line(&op),
                    e.message
                ));
                self.dirty = true;
            }
            Ok(other) => {
                log(&format!("rvsd: unexpected reply {other:?}"));
                self.dirty = true;
            }
            Err(e) => {
                log(&format!("{e} (will resynchronise)"));
                self.dirty = true;
            }
        }
    }

    /// Real server `(vi, ri)` became alive or dead, or its weight changed
    /// (`was`: what the table had).
    fn changed(&mut self, vi: usize, ri: usize, was: Want) {
        let vs = &self.conf.services[vi];
        let rs = &vs.reals[ri];
        let now = self.want(vi, ri);
        if now == was {
            return;
        }
        let alive = self.reals[vi][ri].alive;
        let mut ops = Vec::new();
        for id in apply::service_ids(vs) {
            let (r, v) = (apply::fmt_real(&id, rs), apply::fmt_service(&id));
            match (was, now) {
                (Want::In(a), Want::In(b)) if alive && a != 0 && b != 0 => {
                    log(&format!(
                        "Changing weight from {a} to {b} for {r} of VS {v}"
                    ));
                }
                (_, Want::In(_)) if rs.inhibit_on_failure => {
                    log(&format!(
                        "{} service {r} of VS {v}",
                        if alive { "Enabling" } else { "Disabling" }
                    ));
                }
                (_, Want::In(_)) => log(&format!("Adding service {r} to VS {v}")),
                (_, Want::Out) => log(&format!("Removing service {r} from VS {v}")),
            }
            ops.push(match (was, now) {
                (Want::Out, Want::In(w)) => Op::AddDest {
                    service: id,
                    dest: apply::dest_spec(rs, w),
                },
                (Want::In(_), Want::In(w)) => Op::EditDest {
                    service: id,
                    dest: apply::dest_spec(rs, w),
                },
                (_, Want::Out) => Op::DeleteDest {
                    service: id,
                    addr: rs.addr,
                    port: rs.port,
                },
            });
        }
        if !self.dirty {
            for op in ops {
                self.apply(op);
            }
        }
    }

    /// One attempt's outcome for flat checker `k`; the delay to its next.
    fn result(&mut self, k: usize, out: Outcome) -> Duration {
        let (vi, ri, ci) = self.index[k];
        let was = self.want(vi, ri);
        let ck = &self.conf.services[vi].reals[ri].checkers[ci];
        let timing = ck.timing;
        let now = unix(SystemTime::now());
        let st = &mut self.reals[vi][ri].checkers[ci];
        st.last_check = now;
        let mut weight = None;
        let success = match out {
            Outcome::Up(w) => {
                st.last_result = "ok".into();
                st.error.clear();
                weight = w;
                true
            }
            Outcome::Down(msg) => {
                st.last_result = "fail".into();
                if st.up {
                    log(&msg);
                }
                st.error = msg;
                false
            }
        };
        let delay = if success || st.retry_it >= timing.retry {
            st.retry_it = 0;
            if success && !st.up {
                st.up = true;
                st.last_change = now;
                log(&success_line(ck));
            } else if !success && st.up {
                st.up = false;
                st.last_change = now;
                if timing.retry > 0 {
                    log(&format!(
                        "Check on service {} failed after {} retry.",
                        check::fmt_target(ck.connect_ip, ck.connect_port),
                        timing.retry
                    ));
                }
            }
            timing.delay_loop
        } else {
            st.retry_it += 1;
            timing.delay_before_retry
        };
        let rs = &mut self.reals[vi][ri];
        if let Some(w) = weight {
            rs.weight = w;
        }
        let alive = rs.checkers.iter().all(|c| c.up);
        let flipped = alive != rs.alive;
        if flipped {
            rs.alive = alive;
            rs.last_change = now;
        }
        self.changed(vi, ri, was);
        let rs = &self.conf.services[vi].reals[ri];
        let script = if alive {
            &rs.notify_up
        } else {
            &rs.notify_down
        };
        if flipped && let Some(s) = script {
            notify(s);
        }
        delay
    }

    /// The snapshot for the state file.
    pub fn status(&self, config: &str, started: u64) -> Status {
        Status {
            pid: std::process::id(),
            config: config.to_string(),
            started,
            updated: unix(SystemTime::now()),
            in_sync: !self.dirty,
            services: self
                .conf
                .services
                .iter()
                .zip(&self.reals)
                .map(|(vs, reals)| VsStatus {
                    vs: match &vs.addr {
                        super::conf::VsAddr::Group(name, _) => format!("group {name}"),
                        _ => apply::service_ids(vs)
                            .first()
                            .map_or_else(String::new, apply::fmt_service),
                    },
                    reals: reals.clone(),
                })
                .collect(),
        }
    }
}

/// Run a notify script without waiting for it (a thread reaps it).
fn notify(script: &str) {
    let script = script.to_string();
    std::thread::spawn(move || {
        match std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .status()
        {
            Ok(_) => {}
            Err(e) => log(&format!("cannot run notify script {script}: {e}")),
        }
    });
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

/// Run the checker until SIGTERM/SIGINT.
pub fn run(opts: &Opts, conf: Config) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let started = unix(SystemTime::now());
    let config = opts.file.display().to_string();
    let mut world = World::new(conf, opts.endpoint.clone());
    let checkers: Vec<Checker> = world
        .index
        .iter()
        .map(|&(v, r, c)| world.conf.services[v].reals[r].checkers[c].clone())
        .collect();
    log(&format!(
        "rvs health: {} virtual server(s), {} checker(s), {} worker thread(s)",
        world.conf.services.len(),
        checkers.len(),
        opts.threads
    ));
    world.reconcile();
    write_status(&opts.state, &world.status(&config, started))?;

    // The pool: jobs in, results out.
    let (job_tx, job_rx) = mpsc::channel::<(usize, Checker)>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (res_tx, res_rx) = mpsc::channel::<(usize, Outcome)>();
    for i in 0..opts.threads.max(1) {
        let (rx, tx) = (Arc::clone(&job_rx), res_tx.clone());
        std::thread::Builder::new()
            .name(format!("check-{i}"))
            .spawn(move || {
                loop {
                    let job = rx.lock().map(|r| r.recv());
                    let Ok(Ok((k, ck))) = job else { return };
                    if tx.send((k, check::run(&ck))).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| e.to_string())?;
    }
    drop(res_tx);

    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    let t0 = Instant::now();
    for k in 0..checkers.len() {
        due.push(Reverse((t0, k)));
    }
    let mut last_write = Instant::now();
    let mut unwritten = false;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while let Some(Reverse((t, k))) = due.peek().copied() {
            if t > now {
                break;
            }
            due.pop();
            job_tx
                .send((k, checkers[k].clone()))
                .map_err(|_| "the checker threads are gone".to_string())?;
        }
        let wait = due
            .peek()
            .map_or(Duration::from_millis(200), |Reverse((t, _))| {
                t.saturating_duration_since(now)
            })
            .min(Duration::from_millis(200));
        match res_rx.recv_timeout(wait) {
            Ok((k, out)) => {
                let d = world.result(k, out);
                due.push(Reverse((Instant::now() + d, k)));
                unwritten = true;
                while let Ok((k, out)) = res_rx.try_recv() {
                    let d = world.result(k, out);
                    due.push(Reverse((Instant::now() + d, k)));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("the checker threads are gone".into());
            }
        }
        if world.dirty {
            world.reconcile();
            unwritten = true;
        }
        if unwritten && last_write.elapsed() >= Duration::from_millis(100) {
            write_status(&opts.state, &world.status(&config, started))?;
            last_write = Instant::now();
            unwritten = false;
        }
    }
    write_status(&opts.state, &world.status(&config, started))?;
    log("rvs health: stopping; the table is left as it is");
    Ok(())
}
