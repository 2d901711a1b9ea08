// SPDX-License-Identifier: GPL-2.0-or-later
//! `rvs health run --metrics ADDR:PORT`: the checker's state as Prometheus
//! metrics (issue 17), beside rvsd's own (`rvsd --metrics`).
//!
//! The text is Prometheus's exposition format 0.0.4, written by the
//! `prometheus` crate's encoder from families built at each scrape from
//! the latest [`Status`] the run loop produced (the one it writes to the
//! state file, so a scrape and `rvs health` agree). Series, all gauges:
//!
//! * `rvs_health_real_server_up`, `rvs_health_real_server_weight`,
//!   `rvs_health_real_server_last_change_timestamp_seconds`, labelled
//!   `virtual_server` and `real_server` as `rvs health` prints them
//!   (`[ip]:tcp:port`, `FWM n`, `group NAME`);
//! * `rvs_health_checker_up`, `rvs_health_checker_last_check_timestamp_seconds`,
//!   `rvs_health_checker_failed_attempts`, labelled also `checker` (its
//!   kind, `HTTP_GET`…) and `target` (`ip:port`, the script, the tracked
//!   file, BFD_CHECK's bfd_instance); a real server's second checker of the same kind and target gets
//!   ` #2` after its target (one series each);
//! * `rvs_health_in_sync`, `rvs_health_start_time_seconds`,
//!   `rvs_health_last_update_timestamp_seconds`.
//!
//! The HTTP server is one thread of tiny_http, as rvsd's: `GET /metrics`,
//! one request at a time; the address is bound before anything starts, so
//! a bad one stops the checker at start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};

use super::Status;

#[cfg(test)]
mod tests;

/// `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The text of one scrape of `s`.
pub fn render(s: &Status) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and every family has a metric.
    let _ = TextEncoder::new().encode(&families(s), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The metric families of `s` (those without a series left out: the
/// encoder refuses an empty family).
pub fn families(s: &Status) -> Vec<MetricFamily> {
    let mut rs_up = Vec::new();
    let mut rs_weight = Vec::new();
    let mut rs_change = Vec::new();
    let mut ck_up = Vec::new();
    let mut ck_last = Vec::new();
    let mut ck_failed = Vec::new();
    for vs in &s.services {
        for rs in &vs.reals {
            let labels = [
                ("virtual_server", vs.vs.clone()),
                ("real_server", rs.real.clone()),
            ];
            rs_up.push(gauge(&labels, flag(rs.alive)));
            rs_weight.push(gauge(&labels, f64::from(rs.effective_weight())));
            rs_change.push(gauge(&labels, rs.last_change as f64));
            let mut seen: HashMap<(&str, &str), u32> = HashMap::new();
            for c in &rs.checkers {
                let n = seen.entry((&c.kind, &c.target)).or_default();
                *n += 1;
                let target = match *n {
                    1 => c.target.clone(),
                    n => format!("{} #{n}", c.target),
                };
                let labels = [
                    labels[0].clone(),
                    labels[1].clone(),
                    ("checker", c.kind.clone()),
                    ("target", target),
                ];
                ck_up.push(gauge(&labels, flag(c.up)));
                ck_last.push(gauge(&labels, c.last_check as f64));
                ck_failed.push(gauge(&labels, f64::from(c.retry_it)));
            }
        }
    }
    let mut f = vec![
        one_gauge(
            "rvs_health_in_sync",
            "1 when rvsd's table is known to match the checker's state, 0 while rvsd is \
             unreachable or refuses a change (a full reconcile follows once it answers).",
            flag(s.in_sync),
        ),
        one_gauge(
            "rvs_health_start_time_seconds",
            "Start time of rvs health run since the Unix epoch, in seconds.",
            s.started as f64,
        ),
        one_gauge(
            "rvs_health_last_update_timestamp_seconds",
            "When the state these series show was taken (also written to the state file), \
             since the Unix epoch, in seconds.",
            s.updated as f64,
        ),
    ];
    for (name, help, metrics) in [
        (
            "rvs_health_real_server_up",
            "1 when every checker of the real server is up (it is in rvsd's table with its \
             weight), 0 when not (removed, or weight 0 with inhibit_on_failure).",
            rs_up,
        ),
        (
            "rvs_health_real_server_weight",
            "The real server's weight while it is up: configured or set by MISC_CHECK \
             (misc_dynamic), plus what its FILE_CHECKs add.",
            rs_weight,
        ),
        (
            "rvs_health_real_server_last_change_timestamp_seconds",
            "When the real server last went up or down (or the checker started), since \
             the Unix epoch, in seconds.",
            rs_change,
        ),
        (
            "rvs_health_checker_up",
            "1 when the checker is up (keepalived's is_up), 0 when down.",
            ck_up,
        ),
        (
            "rvs_health_checker_last_check_timestamp_seconds",
            "When the checker's last attempt ended, since the Unix epoch, in seconds \
             (0: none yet).",
            ck_last,
        ),
        (
            "rvs_health_checker_failed_attempts",
            "Failed attempts of the checker since its last settled result (keepalived's \
             retry_it; the checker goes down after retry of them).",
            ck_failed,
        ),
    ] {
        if !metrics.is_empty() {
            f.push(family(name, help, metrics));
        }
    }
    f
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn family(name: &str, help: &str, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(MetricType::GAUGE);
    f.set_metric(metrics);
    f
}

fn one_gauge(name: &str, help: &str, value: f64) -> MetricFamily {
    family(name, help, vec![gauge(&[], value)])
}

fn gauge(labels: &[(&str, String)], value: f64) -> Metric {
    let mut pairs: Vec<LabelPair> = labels
        .iter()
        .map(|(n, v)| {
            let mut l = LabelPair::default();
            l.set_name(n.to_string());
            l.set_value(v.clone());
            l
        })
        .collect();
    // As client_golang writes them.
    pairs.sort_by(|a, b| a.name().cmp(b.name()));
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = Metric::default();
    m.set_gauge(g);
    m.set_label(pairs);
    m
}

/// The bound `--metrics` address, not serving yet.
pub struct Listener {
    server: tiny_http::Server,
    addr: SocketAddr,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Listener {
    /// Bind `addr` (before anything else starts: a bad address is an
    /// error at start).
    pub fn bind(addr: SocketAddr) -> Result<Listener, String> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| format!("--metrics {addr}: cannot listen: {e}"))?;
        Ok(Listener { server, addr })
    }

    /// The address bound (its port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.server_addr().to_ip().unwrap_or(self.addr)
    }

    /// Serve `GET /metrics` from `status` on a thread of its own, until the
    /// returned server is dropped.
    pub fn serve(self, status: Arc<Mutex<Status>>) -> Result<Server, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let Listener { server, addr } = self;
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                let ctype =
                    tiny_http::Header::from_bytes(&b"Content-Type"[..], CONTENT_TYPE.as_bytes())
                        .ok();
                while !stopped.load(Ordering::Relaxed) {
                    let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(200)) else {
                        continue;
                    };
                    let path = req.url().split('?').next().unwrap_or_default().to_string();
                    let response = match (req.method(), path.as_str()) {
                        (tiny_http::Method::Get, "/metrics") => {
                            // Copy under the lock, render outside it.
                            let s = status.lock().unwrap_or_else(|e| e.into_inner()).clone();
                            let mut r = tiny_http::Response::from_string(render(&s));
                            if let Some(h) = ctype.clone() {
                                r.add_header(h);
                            }
                            r
                        }
                        (tiny_http::Method::Get, "/") => {
                            tiny_http::Response::from_string("rvs health: metrics at /metrics\n")
                        }
                        _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
                    };
                    let _ = req.respond(response);
                }
            })
            .map_err(|e| format!("--metrics {addr}: cannot start a thread: {e}"))?;
        Ok(Server {
            stop,
            thread: Some(thread),
        })
    }
}

/// The serving thread; dropping it stops the thread (within 200 ms).
#[derive(Debug)]
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
