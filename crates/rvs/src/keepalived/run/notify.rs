// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived's notifications of the world's changes (ipwrapper.c
//! `do_rs_notifies`, `do_vs_notifies`, `clear_service_rs`): the notify and
//! quorum scripts, the FIFOs' lines (`fifo.rs`), the e-mails (`alert.rs`),
//! at each change, at the start, after a reload and at shutdown (`omega`).

use crate::keepalived::alert;
use crate::keepalived::apply;

use super::*;

impl World {
    /// keepalived's `FMT_VS` of virtual server `vi`, as its FIFO lines
    /// and log lines name it: `[10.0.0.1]:tcp:80`, `FWM 3`, and a group's
    /// `[NAME]:0`.
    pub(super) fn vs_name(&self, vi: usize) -> String {
        apply::fmt_vs(&self.conf.services[vi])
    }

    /// keepalived's `FMT_RS` of real server `ri` of virtual server `vi`.
    pub(super) fn rs_name(&self, vi: usize, ri: usize) -> String {
        let vs = &self.conf.services[vi];
        let rs = &vs.reals[ri];
        match apply::first_service_id(vs) {
            Some(id) => apply::fmt_real(&id, rs),
            None => format!("[{}]:tcp:{}", rs.addr, rs.port),
        }
    }

    /// keepalived's `notify_fifo_vs`: the quorum state of `vi`.
    pub(super) fn fifo_vs(&mut self, vi: usize) {
        if self.fifos.any() {
            let line = fifo::vs_line(&self.vs_name(vi), self.quorum_up[vi]);
            self.fifos.write(&line);
        }
    }

    /// keepalived's `do_rs_notifies`: real server `ri` of `vi` is now
    /// alive or not: its notify_up or notify_down, and its FIFO line.
    pub(super) fn rs_notifies(&mut self, vi: usize, ri: usize) {
        let alive = self.reals[vi][ri].alive;
        let rs = &self.conf.services[vi].reals[ri];
        let script = if alive {
            &rs.notify_up
        } else {
            &rs.notify_down
        };
        if let Some(s) = script {
            notify(s);
        }
        if self.fifos.any() {
            let line = fifo::rs_line(&self.rs_name(vi, ri), &self.vs_name(vi), alive);
            self.fifos.write(&line);
        }
    }

    /// What keepalived notifies when it sets up virtual servers and real
    /// servers (ipwrapper.c `init_service_rs`, `update_quorum_state` with
    /// `init`), for those `fresh` says are new (all at the start; on a
    /// reload the ones it added): with `rs_init_notifies`, each real
    /// server that starts alive, as if it had come up; and a virtual
    /// server with a sorry server that starts without its quorum, as if it
    /// had lost it ("Starting with quorum down").
    pub(super) fn init_notifies(&mut self, fresh_vs: &[bool], fresh_rs: &[Vec<bool>]) {
        for vi in 0..self.conf.services.len() {
            if self.conf.notify.rs_init {
                for ri in 0..self.conf.services[vi].reals.len() {
                    let fresh = fresh_rs.get(vi).and_then(|f| f.get(ri)) != Some(&false);
                    if fresh && self.reals[vi][ri].alive {
                        self.rs_notifies(vi, ri);
                    }
                }
            }
            let vs = &self.conf.services[vi];
            if fresh_vs.get(vi) == Some(&false) || self.quorum_up[vi] || vs.sorry_server.is_none() {
                continue;
            }
            let sum = self.live_weight(vi) as i64;
            let (q, h) = (i64::from(vs.quorum), i64::from(vs.hysteresis));
            // keepalived's line, its threshold (quorum + hysteresis) after
            // a `-` as written there.
            log(&format!(
                "Starting with quorum down {q}-{h}={} > {sum} for VS {}",
                q + h,
                self.vs_name(vi)
            ));
            if let Some(s) = &vs.quorum_down {
                notify(s);
            }
            self.fifo_vs(vi);
            self.quorum_alert(vi, "Starting with quorum down", q + h, sum);
        }
    }

    /// Every virtual and real server is new: [`World::init_notifies`] at
    /// the start.
    pub fn start_notifies(&mut self) {
        let fresh_rs: Vec<Vec<bool>> = self.reals.iter().map(|r| vec![true; r.len()]).collect();
        self.init_notifies(&vec![true; self.reals.len()], &fresh_rs);
    }

    /// keepalived's `do_vs_notifies` e-mail: a virtual server with
    /// `smtp_alert` that gained or lost its quorum.
    pub(super) fn quorum_alert(&self, vi: usize, what: &str, threshold: i64, sum: i64) {
        let vs = &self.conf.services[vi];
        if vs.smtp_alert != Some(true) {
            return;
        }
        let smtp = &self.conf.smtp;
        alert::send(
            smtp,
            alert::vs_subject(smtp, &self.vs_name(vi), self.quorum_up[vi]),
            format!(
                "=> {what} {}+{}={threshold} <= {sum} <=",
                vs.quorum, vs.hysteresis
            ),
            log,
        );
    }

    /// keepalived's `omega` at shutdown (ipwrapper.c `clear_service_rs`,
    /// `update_vs_notifies`): for each virtual server with `omega`, the
    /// `notify_down` of each real server alive, then its `quorum_down`;
    /// each with the line said before it runs. Without `omega`, none.
    pub(super) fn omega_scripts(&self) -> Vec<(String, &crate::keepalived::conf::Notify)> {
        let mut out = Vec::new();
        for (vi, vs) in self.conf.services.iter().enumerate() {
            if !vs.omega {
                continue;
            }
            let v = self.vs_name(vi);
            for (ri, (rs, st)) in vs.reals.iter().zip(&self.reals[vi]).enumerate() {
                if let (true, Some(s)) = (st.alive, &rs.notify_down) {
                    let r = self.rs_name(vi, ri);
                    out.push((
                        format!("Shutting down service {r} from VS {v}: notify_down"),
                        s,
                    ));
                }
            }
            if let Some(s) = &vs.quorum_down {
                out.push((format!("Shutting down VS {v}: quorum_down"), s));
            }
        }
        out
    }

    /// keepalived's other messages at shutdown for the virtual servers
    /// with `omega` (ipwrapper.c `clear_service_rs`, `do_vs_notifies`
    /// when stopping): each real server alive `RS … DOWN` to the FIFOs and
    /// its e-mail "=> Shutting down <=" (with `smtp_alert`), then the
    /// virtual server's `VS … DOWN` and e-mail. The e-mails' threads are
    /// returned, to be waited for.
    pub(super) fn omega_messages(&mut self) -> Vec<std::thread::JoinHandle<()>> {
        let mut mails = Vec::new();
        for vi in 0..self.conf.services.len() {
            if !self.conf.services[vi].omega {
                continue;
            }
            let v = self.vs_name(vi);
            for ri in 0..self.reals[vi].len() {
                if !self.reals[vi][ri].alive {
                    continue;
                }
                let r = self.rs_name(vi, ri);
                self.fifos.write(&fifo::rs_line(&r, &v, false));
                if self.conf.services[vi].reals[ri].smtp_alert == Some(true) {
                    let smtp = &self.conf.smtp;
                    mails.extend(alert::send(
                        smtp,
                        alert::rs_subject(smtp, &r, &v, false),
                        "=> Shutting down <=".into(),
                        log,
                    ));
                }
            }
            self.fifos.write(&fifo::vs_line(&v, false));
            if self.conf.services[vi].smtp_alert == Some(true) {
                let smtp = &self.conf.smtp;
                mails.extend(alert::send(
                    smtp,
                    alert::vs_subject(smtp, &v, false),
                    "=> Shutting down <=".into(),
                    log,
                ));
            }
        }
        mails
    }
}
