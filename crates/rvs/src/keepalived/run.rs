// SPDX-License-Identifier: GPL-2.0-or-later
//! `rvs health run FILE`: keepalived's checker, as its own process.
//!
//! At start the file's services and real servers go to rvsd as ONE atomic
//! batch, reconciled against what rvsd already has (a restarted checker
//! does not disturb a table that is right). Then one scheduler thread keeps
//! every checker's next due time in a heap and hands due checks to a pool
//! of worker threads: 4 at first, one more (up to `--threads`, default 64)
//! whenever every worker has been busy checking for over 50 ms while
//! checks wait (a slow or hung server holds a worker; a busy machine's
//! late wake-ups do not count, see `pool.rs`). Each attempt is bounded by
//! its `connect_timeout` (or `misc_timeout`), so a hung server or script
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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{Op, Reply, Request};
use serde::{Deserialize, Serialize};

use super::apply::{self, Want};
use super::check::{self, Outcome};
use super::conf::{CheckKind, Checker, Config};
use super::pool::Pool;

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
    /// FILE_CHECK: what it adds to the real server's weight while up.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub weight_delta: i64,
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
    }
}

/// keepalived's line for a checker that comes up.
fn success_line(ck: &Checker) -> String {
    let t = check::fmt_target(ck.connect_ip, ck.connect_port);
    match &ck.kind {
        CheckKind::Tcp => format!("TCP connection to {t} success."),
        CheckKind::Http { .. } => format!("Remote Web server {t} succeed on service."),
        CheckKind::Misc { path, .. } => format!("Misc check for [{path}] success."),
        CheckKind::Dns { .. } => format!("DNS_CHECK ({t}) succeed on service."),
        CheckKind::Smtp { .. } => format!("SMTP connection to {t} success."),
        CheckKind::Udp { .. } => format!(
            "UDP connection to {} success.",
            check::fmt_target_proto(ck.connect_ip, "udp", ck.connect_port)
        ),
        CheckKind::Ping => format!("ICMP connection to [{}] success.", ck.connect_ip),
        CheckKind::File(f) => format!("tracked file {} leaving FAULT state", f.name),
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
    /// The table must be reconciled (start, reload, or a refused change).
    dirty: bool,
    next_sync: Instant,
    /// Services a reload dropped: deleted by the next reconcile.
    gone: Vec<rvs_proto::ServiceId>,
    /// Per virtual server: whether it has its quorum.
    quorum_up: Vec<bool>,
    /// A checker or real server changed state since the last look.
    changed: bool,
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
                                let mut st = CheckerStatus {
                                    kind,
                                    target,
                                    up: !ck.alpha,
                                    last_result: "none".into(),
                                    last_check: 0,
                                    last_change: now,
                                    retry_it: 0,
                                    error: String::new(),
                                    weight_delta: 0,
                                };
                                // A tracked file's value is known at the
                                // start, as in keepalived: no flap.
                                if let CheckKind::File(f) = &ck.kind {
                                    match check::read_track_file(&f.path) {
                                        Ok(v) => file_value(&mut st, f, v),
                                        Err(e) => st.error = e,
                                    }
                                }
                                st
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
            gone: Vec::new(),
            quorum_up: Vec::new(),
            changed: true,
        }
        .with_quorum()
    }

    /// keepalived's `set_quorum_states`: up when the live weight reaches
    /// quorum + hysteresis.
    fn with_quorum(mut self) -> World {
        self.quorum_up = (0..self.conf.services.len())
            .map(|vi| {
                let vs = &self.conf.services[vi];
                self.live_weight(vi) >= u64::from(vs.quorum) + u64::from(vs.hysteresis)
            })
            .collect();
        self
    }

    /// The weight of the alive real servers of virtual server `vi`.
    fn live_weight(&self, vi: usize) -> u64 {
        self.reals[vi]
            .iter()
            .filter(|r| r.alive)
            .map(|r| u64::from(r.effective_weight()))
            .sum()
    }

    /// keepalived's `update_quorum_state`, after a change in `vi`.
    fn update_quorum(&mut self, vi: usize) {
        let vs = &self.conf.services[vi];
        let sum = self.live_weight(vi) as i64;
        let (q, h) = (i64::from(vs.quorum), i64::from(vs.hysteresis));
        let up = self.quorum_up[vi];
        let threshold = if up { q - h } else { q + h };
        let v = apply::service_ids(vs)
            .first()
            .map_or_else(String::new, apply::fmt_service);
        if !up && sum >= threshold {
            self.quorum_up[vi] = true;
            log(&format!(
                "Gained quorum {q}+{h}={threshold} <= {sum} for VS {v}"
            ));
            if let Some(s) = &vs.quorum_up {
                notify(s);
            }
        } else if up && sum < threshold {
            self.quorum_up[vi] = false;
            log(&format!(
                "Lost quorum {q}-{h}={threshold} > {sum} for VS {v}"
            ));
            if let Some(s) = &vs.quorum_down {
                notify(s);
            }
        }
    }

    /// What the table should hold for the sorry server of `vi`: in while
    /// the quorum is lost; out (or weight 0 with sorry_server_inhibit)
    /// otherwise.
    fn want_sorry(&self, vi: usize) -> Want {
        match self.conf.services[vi].sorry() {
            None => Want::Out,
            Some(s) if !self.quorum_up[vi] => Want::In(s.weight),
            Some(s) if s.inhibit_on_failure => Want::In(0),
            Some(_) => Want::Out,
        }
    }

    /// The operations that make `current` match every state.
    pub fn plan(&self, current: &[rvs_proto::ServiceInfo]) -> Vec<Op> {
        apply::plan(
            &self.conf,
            current,
            |v, r| self.want(v, r),
            |v| self.want_sorry(v),
        )
    }

    /// Take `conf` in place of the running configuration: real servers
    /// whose checkers are the same (wherever they sit in the file) keep
    /// their state; services the new file drops are deleted; the table is
    /// reconciled in one batch (only what differs changes).
    pub fn reload(&mut self, conf: Config) {
        let same = |a: &Checker, b: &Checker| {
            a.kind == b.kind
                && a.connect_ip == b.connect_ip
                && a.connect_port == b.connect_port
                && a.bindto == b.bindto
                && a.bind_port == b.bind_port
                && a.fwmark == b.fwmark
                && a.timing == b.timing
                && a.alpha == b.alpha
        };
        let old_ids: Vec<_> = self
            .conf
            .services
            .iter()
            .flat_map(apply::service_ids)
            .collect();
        let mut next = World::new(conf, self.endpoint.clone());
        let mut next_reals = std::mem::take(&mut next.reals);
        let mut kept = 0;
        for (vi, vs) in next.conf.services.iter().enumerate() {
            let ids = apply::service_ids(vs);
            for (ri, rs) in vs.reals.iter().enumerate() {
                let old = self
                    .conf
                    .services
                    .iter()
                    .enumerate()
                    .find_map(|(ovi, ovs)| {
                        if apply::service_ids(ovs) != ids {
                            return None;
                        }
                        ovs.reals.iter().enumerate().find_map(|(ori, ors)| {
                            let eq = ors.addr == rs.addr
                                && ors.port == rs.port
                                && ors.checkers.len() == rs.checkers.len()
                                && ors
                                    .checkers
                                    .iter()
                                    .zip(&rs.checkers)
                                    .all(|(a, b)| same(a, b));
                            eq.then_some((ovi, ori))
                        })
                    });
                if let Some((ovi, ori)) = old {
                    let mut st = self.reals[ovi][ori].clone();
                    // A new configured weight counts, unless a script set it.
                    let dynamic = rs
                        .checkers
                        .iter()
                        .any(|c| matches!(c.kind, CheckKind::Misc { dynamic: true, .. }));
                    if !dynamic {
                        st.weight = rs.weight;
                    }
                    st.inhibit = rs.inhibit_on_failure;
                    next_reals[vi][ri] = st;
                    kept += 1;
                }
            }
        }
        next.reals = next_reals;
        let new_ids: Vec<_> = next
            .conf
            .services
            .iter()
            .flat_map(apply::service_ids)
            .collect();
        next.gone = old_ids
            .into_iter()
            .filter(|id| !new_ids.contains(id))
            .chain(self.gone.drain(..))
            .collect();
        next.client = self.client.take();
        let next = next.with_quorum();
        log(&format!(
            "Reloaded: {} virtual server(s), {kept} real server(s) keep their state, {} service(s) to remove",
            next.conf.services.len(),
            next.gone.len()
        ));
        *self = next;
    }

    fn want(&self, vi: usize, ri: usize) -> Want {
        let st = &self.reals[vi][ri];
        let vs = &self.conf.services[vi];
        // Quorum lost with a sorry server: the alive ones leave the pool.
        if st.alive && vs.sorry_server.is_some() && !self.quorum_up[vi] {
            return Want::Out;
        }
        apply::want(&vs.reals[ri], st.alive, st.effective_weight())
    }

    /// Every entry of virtual server `vi` (real servers, then the sorry
    /// server) and what the table should hold for it.
    fn desired(&self, vi: usize) -> Vec<Want> {
        (0..self.conf.services[vi].reals.len())
            .map(|ri| self.want(vi, ri))
            .chain(std::iter::once(self.want_sorry(vi)))
            .collect()
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
        let mut ops: Vec<Op> = self
            .gone
            .iter()
            .filter(|id| current.iter().any(|s| s.spec.id == **id))
            .map(|id| Op::DeleteService(*id))
            .collect();
        ops.extend(self.plan(&current));
        let n = ops.len();
        if n > 0 {
            match self.call(Request::Batch(apply::batch(ops.clone()))) {
                Ok(Reply::Ok) => {}
                Ok(Reply::Error(e)) => {
                    // Refused as a whole: try again, but not every second.
                    self.next_sync = Instant::now() + Duration::from_secs(10);
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
        self.gone.clear();
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

    /// Send what changed in virtual server `vi` between `before` and
    /// `after` ([`World::desired`]), one line of log each.
    fn diff(&mut self, vi: usize, before: &[Want], after: &[Want]) {
        let vs = &self.conf.services[vi];
        let sorry = vs.sorry();
        let n = vs.reals.len();
        let mut ops = Vec::new();
        for (i, (&was, &now)) in before.iter().zip(after).enumerate() {
            if was == now {
                continue;
            }
            let (rs, alive, what) = if i < n {
                (&vs.reals[i], self.reals[vi][i].alive, "service")
            } else {
                let Some(s) = &sorry else { continue };
                (s, !self.quorum_up[vi], "sorry server")
            };
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
                            "{} {what} {r} of VS {v}",
                            if now == Want::In(0) {
                                "Disabling"
                            } else {
                                "Enabling"
                            }
                        ));
                    }
                    (_, Want::In(_)) => log(&format!("Adding {what} {r} to VS {v}")),
                    (_, Want::Out) => log(&format!("Removing {what} {r} from VS {v}")),
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
        let before = self.desired(vi);
        let ck = &self.conf.services[vi].reals[ri].checkers[ci];
        let timing = ck.timing;
        let now = unix(SystemTime::now());
        let st = &mut self.reals[vi][ri].checkers[ci];
        st.last_check = now;
        let mut weight = None;
        let success = match out {
            Outcome::Value(v) => {
                let CheckKind::File(f) = &ck.kind else {
                    unreachable!("a value comes from a FILE_CHECK")
                };
                let (was_up, was_delta) = (st.up, st.weight_delta);
                match v {
                    Ok(v) => {
                        st.error.clear();
                        file_value(st, f, v);
                    }
                    Err(e) => {
                        if st.error != e {
                            log(&e);
                        }
                        st.error = e;
                    }
                }
                if was_up != st.up {
                    st.last_change = now;
                    log(&format!(
                        "tracked file {} ({}) {}",
                        f.name,
                        f.path,
                        if st.up {
                            "leaving FAULT state"
                        } else {
                            "now FAULT state"
                        }
                    ));
                }
                self.changed |= was_up != st.up || was_delta != st.weight_delta;
                st.up
            }
            _ if matches!(ck.kind, CheckKind::File(_)) => unreachable!("a FILE_CHECK reads"),
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
        let delay = if matches!(ck.kind, CheckKind::File(_)) {
            timing.delay_loop
        } else if success || st.retry_it >= timing.retry {
            st.retry_it = 0;
            if success && !st.up {
                st.up = true;
                self.changed = true;
                st.last_change = now;
                log(&success_line(ck));
            } else if !success && st.up {
                st.up = false;
                self.changed = true;
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
        self.changed |= flipped || weight.is_some();
        if flipped {
            rs.alive = alive;
            rs.last_change = now;
        }
        self.update_quorum(vi);
        let after = self.desired(vi);
        self.diff(vi, &before, &after);
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

/// A tracked file's value `v` into the state of its FILE_CHECK.
fn file_value(st: &mut CheckerStatus, f: &super::conf::FileCheck, v: i64) {
    st.last_result = format!("value {v}");
    match f.status(v) {
        Some(d) => (st.up, st.weight_delta) = (true, d),
        None => (st.up, st.weight_delta) = (false, 0),
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

/// Schedule the first attempt of every checker, spread evenly over the
/// first second (or its delay_loop if shorter), not all at once; with
/// `warmup`, at a random time up to it.
fn spread(due: &mut BinaryHeap<Reverse<(Instant, usize)>>, checkers: &[Checker]) {
    let t0 = Instant::now();
    let n = checkers.len().max(1) as u32;
    for (k, ck) in checkers.iter().enumerate() {
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

/// Run the checker until SIGTERM/SIGINT.
pub fn run(opts: &Opts, conf: Config) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .map_err(|e| e.to_string())?;
    let started = unix(SystemTime::now());
    let config = opts.file.display().to_string();
    init_track_files(&conf, false);
    let mut world = World::new(conf, opts.endpoint.clone());
    log(&format!(
        "rvs health: {} virtual server(s), {} checker(s), up to {} worker thread(s)",
        world.conf.services.len(),
        world.index.len(),
        opts.threads
    ));
    world.reconcile();
    write_status(&opts.state, &world.status(&config, started))?;

    // The pool: jobs in, results out, each tagged with the configuration's
    // generation (a result of a configuration reloaded since is dropped).
    // 4 workers at first, more up to --threads while every one is busy
    // checking (slow or hung servers) and checks wait (pool.rs).
    let mut pool = Pool::new(
        opts.threads,
        |(g, k, ck): (u64, usize, Checker)| (g, k, check::run(&ck)),
        log,
    )?;

    let mut generation = 0u64;
    let checkers_of = |w: &World| -> Vec<Checker> {
        w.index
            .iter()
            .map(|&(v, r, c)| w.conf.services[v].reals[r].checkers[c].clone())
            .collect()
    };
    let mut checkers = checkers_of(&world);
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    spread(&mut due, &checkers);
    let mut last_write = Instant::now();
    let mut unwritten = false;
    let mut urgent = false;
    while !stop.load(Ordering::Relaxed) {
        if reload.swap(false, Ordering::Relaxed) {
            log(&format!("Reloading {config}"));
            match super::conf::load(&opts.file) {
                Err(e) => log(&format!("Reload refused, nothing changed: {e}")),
                Ok((conf, warnings)) => {
                    for w in warnings {
                        log(&w);
                    }
                    init_track_files(&conf, true);
                    world.reload(conf);
                    generation += 1;
                    checkers = checkers_of(&world);
                    due.clear();
                    spread(&mut due, &checkers);
                    unwritten = true;
                }
            }
        }
        let now = Instant::now();
        while let Some(Reverse((t, k))) = due.peek().copied() {
            if t > now {
                break;
            }
            due.pop();
            pool.submit((generation, k, checkers[k].clone()))?;
        }
        let wait = due
            .peek()
            .map_or(Duration::from_millis(200), |Reverse((t, _))| {
                t.saturating_duration_since(now)
            })
            .min(Duration::from_millis(200));
        let mut first = pool.recv_timeout(wait)?;
        while let Some((g, k, out)) = match first.take() {
            Some(r) => Some(r),
            None => pool.try_recv()?,
        } {
            if g != generation {
                continue;
            }
            let d = world.result(k, out);
            due.push(Reverse((Instant::now() + d, k)));
            unwritten = true;
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
            write_status(&opts.state, &world.status(&config, started))?;
            last_write = Instant::now();
            unwritten = false;
        }
    }
    write_status(&opts.state, &world.status(&config, started))?;
    log(&format!(
        "rvs health: stopping ({} checker threads); the table is left as it is",
        pool.workers()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::{conf, lex};

    fn world(text: &str) -> World {
        let mut w = Vec::new();
        let t = lex::parse_text(text, "k.conf", std::path::Path::new("/x"), &mut w).unwrap();
        let c = conf::build(&t, &mut w).unwrap();
        // Never reconciled (dirty): changes are only recorded, not sent.
        World::new(c, Endpoint::Abstract("rvs-health-test-nowhere".into()))
    }

    const CONF: &str = "virtual_server 10.0.0.100 80 {\n delay_loop 10\n retry 2\n \
        delay_before_retry 3\n real_server 10.0.0.11 80 {\n TCP_CHECK { }\n }\n}\n";

    fn down() -> Outcome {
        Outcome::Down("TCP connection to [10.0.0.11]:tcp:80 failed.".into())
    }

    #[test]
    fn retry_plus_one_failures_then_down_one_success_up() {
        let mut w = world(CONF);
        let s = Duration::from_secs;
        assert!(w.reals[0][0].alive, "without alpha a real server starts up");
        assert_eq!(w.want(0, 0), Want::In(1));
        // retry 2: two retries after delay_before_retry, the third failure
        // in a row is down; then delay_loop.
        assert_eq!(w.result(0, down()), s(3));
        assert_eq!(w.result(0, down()), s(3));
        assert!(w.reals[0][0].alive);
        assert_eq!(w.reals[0][0].checkers[0].retry_it, 2);
        assert_eq!(w.result(0, down()), s(10));
        assert!(!w.reals[0][0].alive);
        assert_eq!(w.want(0, 0), Want::Out);
        assert_eq!(w.reals[0][0].checkers[0].last_result, "fail");
        // While down, failures are retried the same way.
        assert_eq!(w.result(0, down()), s(3));
        // One success: up, counters reset, next in delay_loop.
        assert_eq!(w.result(0, Outcome::Up(None)), s(10));
        assert!(w.reals[0][0].alive);
        assert_eq!(w.reals[0][0].checkers[0].retry_it, 0);
        assert_eq!(w.want(0, 0), Want::In(1));
        // A success between failures resets the count.
        w.result(0, down());
        w.result(0, Outcome::Up(None));
        w.result(0, down());
        w.result(0, down());
        assert!(w.reals[0][0].alive);
    }

    #[test]
    fn alpha_inhibit_and_dynamic_weight() {
        let mut w = world(
            "virtual_server 10.0.0.100 80 {\n alpha\n inhibit_on_failure\n \
             real_server 10.0.0.11 80 {\n weight 4\n TCP_CHECK { }\n \
             MISC_CHECK { misc_path /bin/x\n misc_dynamic }\n }\n}\n",
        );
        assert!(!w.reals[0][0].alive, "alpha: down until the first success");
        assert_eq!(w.want(0, 0), Want::In(0), "inhibited: weight 0");
        w.result(0, Outcome::Up(None));
        assert!(!w.reals[0][0].alive, "alive only when all checkers are up");
        w.result(1, Outcome::Up(Some(7)));
        assert_eq!(w.want(0, 0), Want::In(7));
        w.result(1, Outcome::Up(None));
        assert_eq!(w.want(0, 0), Want::In(7), "exit 0 keeps the weight");
        // MISC_CHECK's retry defaults to 0: one failure is down.
        w.result(1, Outcome::Down("x".into()));
        assert_eq!(w.want(0, 0), Want::In(0));
    }

    #[test]
    fn file_check_removes_adds_and_reweights() {
        let dir = std::env::temp_dir().join(format!("rvs-file-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (gate, wf) = (dir.join("gate"), dir.join("weight"));
        std::fs::write(&gate, "1\n").unwrap();
        let _ = std::fs::remove_file(&wf);
        let mut w = world(&format!(
            "track_file gate {{\n file {}\n weight 0\n}}\n\
             track_file wf {{\n file {}\n init_file 2\n}}\n\
             virtual_server 10.0.0.100 80 {{\n real_server 10.0.0.11 80 {{\n weight 10\n \
             FILE_CHECK {{ track_file gate }}\n FILE_CHECK {{ track_file wf\n weight 3 }}\n }}\n}}\n",
            gate.display(),
            wf.display()
        ));
        // Read at the start: the gate's 1 keeps it out from the first batch.
        assert!(!w.reals[0][0].alive);
        assert_eq!(w.want(0, 0), Want::Out);
        assert_eq!(w.reals[0][0].checkers[0].last_result, "value 1");
        // init_file writes a missing file (the value 2), then 2 * 3 is added.
        init_track_files(&w.conf, false);
        assert_eq!(std::fs::read_to_string(&wf).unwrap(), "2\n");
        let read = |w: &mut World, k: usize| {
            let ck = w.conf.services[0].reals[0].checkers[k].clone();
            w.result(k, check::run(&ck))
        };
        assert_eq!(read(&mut w, 1), conf::FILE_POLL);
        std::fs::write(&gate, "0").unwrap();
        read(&mut w, 0);
        assert!(w.reals[0][0].alive);
        assert_eq!(w.want(0, 0), Want::In(16));
        // A negative value lowers it, never below 0.
        std::fs::write(&wf, "-5").unwrap();
        read(&mut w, 1);
        assert_eq!(w.want(0, 0), Want::In(0));
        // Text that is not a number is ignored: the last value stays.
        std::fs::write(&wf, "99999999999").unwrap();
        read(&mut w, 1);
        assert_eq!(w.want(0, 0), Want::In(0));
        assert!(w.reals[0][0].checkers[1].error.contains("Invalid number"));
        // A removed file is 0; the gate back at non-zero removes it.
        std::fs::remove_file(&wf).unwrap();
        read(&mut w, 1);
        assert_eq!(w.want(0, 0), Want::In(10));
        std::fs::write(&gate, "7").unwrap();
        read(&mut w, 0);
        assert_eq!(w.want(0, 0), Want::Out);
        // init_file without overwrite leaves an existing file alone.
        std::fs::write(&wf, "9").unwrap();
        init_track_files(&w.conf, false);
        assert_eq!(std::fs::read_to_string(&wf).unwrap(), "9");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn quorum_loss_puts_the_sorry_server_in() {
        let mut w = world(
            "virtual_server 10.0.0.100 80 {\n quorum 3\n hysteresis 1\n \
             sorry_server 10.0.0.99\n retry 0\n \
             real_server 10.0.0.11 80 { weight 2\n TCP_CHECK { } }\n \
             real_server 10.0.0.12 80 { weight 2\n TCP_CHECK { } }\n}\n",
        );
        // 4 >= 3+1: quorum; the sorry server (port: the service's) is out.
        assert!(w.quorum_up[0]);
        assert_eq!(w.desired(0), [Want::In(2), Want::In(2), Want::Out]);
        assert_eq!(w.conf.services[0].sorry().unwrap().port, 80);
        // 2 >= 3-1: kept (hysteresis).
        w.result(0, down());
        assert!(w.quorum_up[0]);
        assert_eq!(w.desired(0), [Want::Out, Want::In(2), Want::Out]);
        // 0 < 2: lost; the sorry server in, the alive ones out.
        w.result(1, down());
        assert!(!w.quorum_up[0]);
        assert_eq!(w.desired(0), [Want::Out, Want::Out, Want::In(1)]);
        // 2 < 3+1: still lost, the alive one stays out of the pool.
        w.result(0, Outcome::Up(None));
        assert_eq!(w.desired(0), [Want::Out, Want::Out, Want::In(1)]);
        // 4 >= 4: gained; the sorry server out, both in.
        w.result(1, Outcome::Up(None));
        assert!(w.quorum_up[0]);
        assert_eq!(w.desired(0), [Want::In(2), Want::In(2), Want::Out]);
        let ops: Vec<String> = w.plan(&[]).iter().map(apply::ipvsadm_line).collect();
        assert_eq!(ops.len(), 3, "{ops:?}");
    }

    #[test]
    fn reload_keeps_the_state_of_unchanged_real_servers() {
        let mut w = world(CONF);
        w.result(0, down());
        w.result(0, down());
        w.result(0, down());
        assert!(!w.reals[0][0].alive);
        let mut t = Vec::new();
        let text = CONF.replace(
            "real_server 10.0.0.11 80 {",
            "real_server 10.0.0.11 80 {\n weight 5\n",
        ) + "virtual_server 10.0.0.101 80 {\n real_server 10.0.0.12 80 { }\n}\n";
        let tree = lex::parse_text(&text, "k.conf", std::path::Path::new("/x"), &mut t).unwrap();
        let c = conf::build(&tree, &mut t).unwrap();
        w.reload(c);
        assert!(!w.reals[0][0].alive, "kept its down state");
        assert_eq!(w.reals[0][0].weight, 5);
        assert!(w.reals[1][0].alive);
        // Dropping the first service deletes it at the next reconcile.
        let tree = lex::parse_text(
            "virtual_server 10.0.0.101 80 {\n real_server 10.0.0.12 80 { }\n}\n",
            "k.conf",
            std::path::Path::new("/x"),
            &mut t,
        )
        .unwrap();
        w.reload(conf::build(&tree, &mut t).unwrap());
        assert_eq!(w.gone.len(), 1);
        assert!(w.dirty);
    }
}
