// SPDX-License-Identifier: GPL-2.0-or-later
//! The world of `rvs health run`: every checker's and real server's state,
//! keepalived's state machine on each result, quorum and sorry server,
//! and the table kept in step with rvsd (reconcile, one change at a time).

use std::time::{Duration, Instant, SystemTime};

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{Op, Reply, Request};

use crate::keepalived::alert;
use crate::keepalived::apply::{self, Want};
use crate::keepalived::check::{self, Outcome};
use crate::keepalived::conf::{CheckKind, Checker, Config};

use super::*;

/// The checkers' and real servers' states, and the table's.
pub struct World {
    pub(super) conf: Config,
    /// `[vs][rs]`.
    pub(super) reals: Vec<Vec<RealStatus>>,
    /// Flat index of checkers: (vs, rs, checker).
    pub(super) index: Vec<(usize, usize, usize)>,
    pub(super) client: Option<Client>,
    pub(super) endpoint: Endpoint,
    /// The table must be reconciled (start, reload, or a refused change).
    pub(super) dirty: bool,
    pub(super) next_sync: Instant,
    /// Services a reload dropped: deleted by the next reconcile.
    pub(super) gone: Vec<rvs_proto::ServiceId>,
    /// Per virtual server: whether it has its quorum.
    pub(super) quorum_up: Vec<bool>,
    /// A checker or real server changed state since the last look.
    pub(super) changed: bool,
    /// Per virtual server: its checkers paused by `ha_suspend`.
    pub(super) suspended: Vec<bool>,
    /// Whether the addresses were looked at for `suspended` (the first
    /// look logs the paused ones only).
    pub(super) suspend_seen: bool,
    /// The notification FIFOs (`notify_fifo`, `lvs_notify_fifo`): opened
    /// by `run`, none in a world of its own (tests).
    pub(super) fifos: fifo::Fifos,
    /// `lvs_flush`: the next reconcile empties the table first (set by
    /// `run` at the start, not at a reload, as keepalived).
    pub(super) flush_first: bool,
    /// `lvs_timeouts`: the next reconcile sets them (at the start and
    /// after each reload, as keepalived).
    pub(super) set_timeouts: bool,
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
                                    has_run: false,
                                };
                                // A tracked file's value is known at the
                                // start, as in keepalived: no flap.
                                if let CheckKind::File(f) = &ck.kind {
                                    match check::read_track_file(&f.path) {
                                        Ok(v) => file_value(&mut st, f, v),
                                        Err(e) => st.error = e,
                                    }
                                }
                                // A BFD_CHECK is down until its session
                                // is Up.
                                if let CheckKind::Bfd { .. } = &ck.kind {
                                    st.up = false;
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
            suspended: Vec::new(),
            suspend_seen: false,
            fifos: fifo::Fifos::default(),
            flush_first: false,
            set_timeouts: false,
        }
        .with_quorum()
    }

    /// keepalived's `set_quorum_states`: up when the live weight reaches
    /// quorum + hysteresis.
    pub(super) fn with_quorum(mut self) -> World {
        self.quorum_up = (0..self.conf.services.len())
            .map(|vi| {
                let vs = &self.conf.services[vi];
                self.live_weight(vi) >= u64::from(vs.quorum) + u64::from(vs.hysteresis)
            })
            .collect();
        self
    }

    /// The weight of the alive real servers of virtual server `vi`.
    pub(super) fn live_weight(&self, vi: usize) -> u64 {
        self.reals[vi]
            .iter()
            .filter(|r| r.alive)
            .map(|r| u64::from(r.effective_weight()))
            .sum()
    }

    /// keepalived's `update_quorum_state`, after a change in `vi`.
    pub(super) fn update_quorum(&mut self, vi: usize) {
        let vs = &self.conf.services[vi];
        let sum = self.live_weight(vi) as i64;
        let (q, h) = (i64::from(vs.quorum), i64::from(vs.hysteresis));
        let up = self.quorum_up[vi];
        let threshold = if up { q - h } else { q + h };
        let v = self.vs_name(vi);
        if !up && sum >= threshold {
            self.quorum_up[vi] = true;
            log(&format!(
                "Gained quorum {q}+{h}={threshold} <= {sum} for VS {v}"
            ));
            if let Some(s) = &vs.quorum_up {
                notify(s);
            }
            self.fifo_vs(vi);
            self.quorum_alert(vi, "Gained quorum", threshold, sum);
        } else if up && sum < threshold {
            self.quorum_up[vi] = false;
            log(&format!(
                "Lost quorum {q}-{h}={threshold} > {sum} for VS {v}"
            ));
            if let Some(s) = &vs.quorum_down {
                notify(s);
            }
            self.fifo_vs(vi);
            self.quorum_alert(vi, "Lost quorum", threshold, sum);
        }
    }

    /// What the table should hold for the sorry server of `vi`: in while
    /// the quorum is lost; out (or weight 0 with sorry_server_inhibit)
    /// otherwise.
    pub(super) fn want_sorry(&self, vi: usize) -> Want {
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
        // What the new file adds, for keepalived's notifications of new
        // servers (init_notifies).
        let mut fresh_vs = Vec::new();
        let mut fresh_rs: Vec<Vec<bool>> = Vec::new();
        for (vi, vs) in next.conf.services.iter().enumerate() {
            let ids = apply::service_ids(vs);
            fresh_vs.push(
                !self
                    .conf
                    .services
                    .iter()
                    .any(|o| apply::service_ids(o) == ids),
            );
            fresh_rs.push(vec![true; vs.reals.len()]);
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
                    fresh_rs[vi][ri] = false;
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
        next.fifos = std::mem::take(&mut self.fifos);
        next.fifos.reload(&next.conf.notify);
        next.set_timeouts = next.conf.lvs.timeouts.is_some();
        // A flush the start asked for and rvsd has not taken yet.
        next.flush_first = self.flush_first;
        let next = next.with_quorum();
        log(&format!(
            "Reloaded: {} virtual server(s), {kept} real server(s) keep their state, {} service(s) to remove",
            next.conf.services.len(),
            next.gone.len()
        ));
        *self = next;
        self.init_notifies(&fresh_vs, &fresh_rs);
    }

    pub(super) fn want(&self, vi: usize, ri: usize) -> Want {
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
    pub(super) fn desired(&self, vi: usize) -> Vec<Want> {
        (0..self.conf.services[vi].reals.len())
            .map(|ri| self.want(vi, ri))
            .chain(std::iter::once(self.want_sorry(vi)))
            .collect()
    }

    pub(super) fn call(&mut self, req: Request) -> Result<Reply, String> {
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
    pub(super) fn reconcile(&mut self) {
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
        // keepalived's lvs_flush (the table emptied, then filled) and
        // lvs_timeouts, in the same atomic batch.
        let current = if self.flush_first {
            Vec::new()
        } else {
            current
        };
        let mut ops: Vec<Op> = Vec::new();
        if self.flush_first {
            ops.push(Op::Flush);
        }
        if self.set_timeouts
            && let Some([tcp, tcpfin, udp]) = self.conf.lvs.timeouts
        {
            ops.push(Op::SetTimeouts { tcp, tcpfin, udp });
        }
        ops.extend(
            self.gone
                .iter()
                .filter(|id| current.iter().any(|s| s.spec.id == **id))
                .map(|id| Op::DeleteService(*id)),
        );
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
        self.flush_first = false;
        self.set_timeouts = false;
    }

    /// keepalived's `lvs_flush_on_stop` at exit: the whole table (`-C`) or
    /// the file's virtual servers, in one batch; without it the table is
    /// left as it is (the data plane keeps forwarding).
    pub(super) fn flush_on_stop(&mut self) {
        let ops: Vec<Op> = match self.conf.lvs.flush_on_stop {
            None => return,
            Some(crate::keepalived::conf::FlushOnStop::Full) => vec![Op::Flush],
            Some(crate::keepalived::conf::FlushOnStop::Vs) => self
                .conf
                .services
                .iter()
                .flat_map(apply::service_ids)
                .map(Op::DeleteService)
                .collect(),
        };
        let what = match ops.as_slice() {
            [Op::Flush] => "the whole table".to_string(),
            _ => format!("{} service(s)", ops.len()),
        };
        // Only what is there: a service already gone would fail the batch.
        let ops: Vec<Op> = match self.call(Request::ListServices) {
            Ok(Reply::Services(cur)) => ops
                .into_iter()
                .filter(|op| match op {
                    Op::DeleteService(id) => cur.iter().any(|s| s.spec.id == *id),
                    _ => true,
                })
                .collect(),
            _ => ops,
        };
        match self.call(Request::Batch(apply::batch(ops))) {
            Ok(Reply::Ok) => log(&format!("lvs_flush_on_stop: removed {what}")),
            Ok(Reply::Error(e)) => log(&format!(
                "lvs_flush_on_stop: rvsd refused removing {what}: {}",
                e.message
            )),
            Ok(other) => log(&format!("rvsd: unexpected reply {other:?}")),
            Err(e) => log(&format!("lvs_flush_on_stop: {e}")),
        }
    }

    /// Apply one change; a refusal or a lost rvsd leaves it to the next
    /// reconcile.
    pub(super) fn apply(&mut self, op: Op) {
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
    pub(super) fn diff(&mut self, vi: usize, before: &[Want], after: &[Want]) {
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
            // One line per change, naming the virtual server as keepalived
            // does (a group's `[NAME]:0`), whatever its members.
            let v = self.vs_name(vi);
            let r = match apply::first_service_id(vs) {
                Some(id) => apply::fmt_real(&id, rs),
                None => format!("[{}]:{}:{}", rs.addr, vs.proto.lower(), rs.port),
            };
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
            for id in apply::service_ids(vs) {
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
    pub(super) fn result(&mut self, k: usize, out: Outcome) -> Duration {
        let (vi, ri, ci) = self.index[k];
        let before = self.desired(vi);
        let ck = &self.conf.services[vi].reals[ri].checkers[ci];
        let timing = ck.timing;
        let now = unix(SystemTime::now());
        let st = &mut self.reals[vi][ri].checkers[ci];
        st.last_check = now;
        if let Outcome::Reschedule(msg) = out {
            // keepalived's connect_error: the attempt did not run, so it
            // neither succeeds nor counts as a failure; logged each time,
            // as keepalived does, and tried again after delay_loop.
            log(&msg);
            st.error = msg;
            return timing.delay_loop;
        }
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
            Outcome::Reschedule(_) => unreachable!("handled above"),
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
        // The checker's own up/down change (for its e-mail alert).
        let mut checker_flip = None;
        // keepalived's update_svr_checker_state: the first verdict of a
        // checker that starts down (alpha) and stays down notifies its
        // real server's state (notify_down, the FIFO).
        let mut first_down = false;
        let delay = if matches!(ck.kind, CheckKind::File(_)) {
            timing.delay_loop
        } else if success || st.retry_it >= timing.retry {
            st.retry_it = 0;
            first_down = !success && !st.up && !st.has_run;
            st.has_run = true;
            if success && !st.up {
                st.up = true;
                checker_flip = Some(true);
                self.changed = true;
                st.last_change = now;
                log(&success_line(ck));
            } else if !success && st.up {
                st.up = false;
                checker_flip = Some(false);
                self.changed = true;
                st.last_change = now;
                if timing.retry > 0 {
                    log(&format!(
                        "Check on service {} failed after {} retry.",
                        check::fmt_checker(ck),
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
        // keepalived's order (perform_svr_state): the real server's
        // notifications, then the quorum's.
        if flipped || (first_down && !alive) {
            self.rs_notifies(vi, ri);
        }
        self.update_quorum(vi);
        let after = self.desired(vi);
        self.diff(vi, &before, &after);
        let rs = &self.conf.services[vi].reals[ri];
        // keepalived's checkers' `smtp_alert(SMTP_MSG_RS, …)`: when a
        // checker goes up or down and its real server alerts, if the real
        // server changed too or `no_checker_emails` is off.
        let smtp = &self.conf.smtp;
        if let Some(up) = checker_flip
            && rs.smtp_alert == Some(true)
            && (flipped || !smtp.no_checker_emails)
        {
            let ck = &rs.checkers[ci];
            let failure = &self.reals[vi][ri].checkers[ci].error;
            alert::send(
                smtp,
                alert::rs_subject(smtp, &self.rs_name(vi, ri), &self.vs_name(vi), alive),
                alert::checker_body(&ck.kind, up, failure),
                log,
            );
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
                .enumerate()
                .map(|(vi, (vs, reals))| VsStatus {
                    suspended: self.suspended.get(vi).copied().unwrap_or(false),
                    vs: match &vs.addr {
                        crate::keepalived::conf::VsAddr::Group(name, _) => format!("group {name}"),
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
pub(super) fn file_value(st: &mut CheckerStatus, f: &crate::keepalived::conf::FileCheck, v: i64) {
    st.last_result = format!("value {v}");
    match f.status(v) {
        Some(d) => (st.up, st.weight_delta) = (true, d),
        None => (st.up, st.weight_delta) = (false, 0),
    }
}
