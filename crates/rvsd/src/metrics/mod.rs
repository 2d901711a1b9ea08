//! Prometheus metrics (`rvsd --metrics ADDR:PORT`): node_exporter's
//! `node_ipvs_*` series, so that dashboards and alerts built on kernel IPVS
//! work unchanged, and rvs's own `rvs_*` series (data-plane workers, the
//! engine's drops and table, the classifier, the SYN guard, the fast path,
//! the control plane).
//!
//! # Compatibility with node_exporter's ipvs collector
//!
//! node_exporter reads `/proc/net/ip_vs_stats` and `/proc/net/ip_vs`
//! (procfs's parser) and emits, with the same names, HELP texts and types:
//!
//! * five counters without labels: `node_ipvs_connections_total`,
//!   `node_ipvs_incoming_packets_total`, `node_ipvs_outgoing_packets_total`,
//!   `node_ipvs_incoming_bytes_total`, `node_ipvs_outgoing_bytes_total`
//!   (the totals of `ipvsadm -L --stats`);
//! * three gauges per real server: `node_ipvs_backend_connections_active`,
//!   `node_ipvs_backend_connections_inactive`, `node_ipvs_backend_weight`,
//!   labelled `local_address`, `local_port`, `remote_address`,
//!   `remote_port`, `proto`, `local_mark` — addresses as Go prints them
//!   (IPv4 dotted, IPv6 compressed), ports in decimal, `proto` `TCP`, `UDP`
//!   or `FWM`; a fwmark service has `local_address` "" and `local_port`
//!   "0", and `local_mark` is its mark as `/proc/net/ip_vs` prints it
//!   (`%08X`), "" for the others.
//!
//! `--metrics-backend-labels` is node_exporter's
//! `--collector.ipvs.backend-labels`: only the labels listed are kept, and
//! real servers whose kept labels are equal are summed (the cardinality
//! knob). One difference, on purpose: an SCTP service is labelled
//! `proto="SCTP"`; procfs does not recognise SCTP lines and credits their
//! real servers to the service listed before them.
//!
//! The text is Prometheus's exposition format 0.0.4 (what node_exporter
//! serves to a scraper that does not ask for OpenMetrics), written by the
//! `prometheus` crate's encoder from families built here at each scrape.
//!
//! # Cost and consistency
//!
//! A scrape stops no worker: the statistics and connection counts are
//! atomics each engine replica writes alone, read through the board of
//! [`crate::engines`] without any replica's lock, and the engine's own
//! counters are those its replicas published when last unlocked (after
//! each batch). A scrape does not credit the XDP fast path's packets
//! itself (that takes every replica): housekeeping does, every 100 ms, so
//! a fast-path flow's last packets appear in the series within that, and
//! once traffic stops the series equal `rvsadm -L -n --stats --exact`.
//! Each counter is read whole; the series of one scrape are not one
//! instant's (nor are node_exporter's of `/proc/net/ip_vs`).
//!
//! # Files
//!
//! * this file: the backend-label knob, the [`Snapshot`] a scrape copies,
//!   [`render`] and the helpers that build metric families;
//! * `node.rs`: node_exporter's `node_ipvs_*` families;
//! * `rvs.rs`: rvs's own `rvs_*` families;
//! * `tests.rs`: unit tests of the rendered text.

use std::collections::BTreeMap;

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};
use rvs_proto::{
    ClassifierCounters, DataPlaneWorker, EngineCounters, FastPathCounters, ServiceInfo, Stats,
};

mod node;
mod rvs;
#[cfg(test)]
mod tests;

pub use node::families;

/// node_exporter's backend labels, in its order.
pub const BACKEND_LABELS: [&str; 6] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
];

/// The backend labels kept (`--metrics-backend-labels`), in node_exporter's
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendLabels(Vec<&'static str>);

impl Default for BackendLabels {
    fn default() -> Self {
        BackendLabels(BACKEND_LABELS.to_vec())
    }
}

/// Backend labels [`BackendLabels::parse`] does not know (sorted, once
/// each).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown IPVS backend labels: {:?} (known: {})",
    .0.join(", "),
    BACKEND_LABELS.join(",")
)]
pub struct UnknownLabels(pub Vec<String>);

impl BackendLabels {
    /// A comma-separated list, as node_exporter's flag takes it (empty
    /// items ignored; an empty list keeps no label: one series per metric,
    /// the sum over every real server).
    ///
    /// # Errors
    ///
    /// Unknown labels, named (sorted) as node_exporter does.
    pub fn parse(list: &str) -> Result<BackendLabels, UnknownLabels> {
        let asked: Vec<&str> = list.split(',').filter(|l| !l.is_empty()).collect();
        let mut unknown: Vec<&str> = asked
            .iter()
            .copied()
            .filter(|l| !BACKEND_LABELS.contains(l))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            unknown.dedup();
            return Err(UnknownLabels(
                unknown.into_iter().map(str::to_string).collect(),
            ));
        }
        Ok(BackendLabels(
            BACKEND_LABELS
                .iter()
                .copied()
                .filter(|l| asked.contains(l))
                .collect(),
        ))
    }
}

/// Everything one scrape shows, copied under the engine's lock.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The totals (`ipvsadm -L --stats`' last line, `/proc/net/ip_vs_stats`).
    pub total: Stats,
    /// Every service with its real servers.
    pub services: Vec<ServiceInfo>,
    /// The engine's own counters.
    pub engine: Option<EngineCounters>,
    /// The data plane's: packet I/O mode, workers, classifier, fast path.
    pub mode: String,
    /// Per-worker counters.
    pub workers: Vec<DataPlaneWorker>,
    /// The XDP classifier's counters.
    pub classifier: Option<ClassifierCounters>,
    /// The XDP fast path's counters.
    pub fast_path: Option<FastPathCounters>,
    /// Why the filter does not hold the table (`None`: it does).
    pub filter_out_of_step: Option<String>,
    /// Control requests by kind: (count, seconds spent).
    pub requests: BTreeMap<&'static str, (u64, f64)>,
}

/// The text of one scrape.
pub fn render(s: &Snapshot, labels: &BackendLabels) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and every family is well formed.
    let _ = TextEncoder::new().encode(&families(s, labels), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn labelled(labels: &[(&str, String)]) -> Vec<LabelPair> {
    let mut v: Vec<LabelPair> = labels
        .iter()
        .map(|(n, val)| {
            let mut l = LabelPair::default();
            l.set_name(n.to_string());
            l.set_value(val.clone());
            l
        })
        .collect();
    // As client_golang writes them.
    v.sort_by(|a, b| a.name().cmp(b.name()));
    v
}

fn counter(labels: &[(&str, String)], value: u64) -> Metric {
    let mut m = Metric::default();
    let mut c = Counter::default();
    c.set_value(value as f64);
    m.set_counter(c);
    m.set_label(labelled(labels));
    m
}

fn gauge(labels: &[(&str, String)], value: f64) -> Metric {
    let mut m = Metric::default();
    let mut g = Gauge::default();
    g.set_value(value);
    m.set_gauge(g);
    m.set_label(labelled(labels));
    m
}

fn one_counter(name: &str, help: &str, value: u64) -> MetricFamily {
    family(name, help, MetricType::COUNTER, vec![counter(&[], value)])
}

fn one_gauge(name: &str, help: &str, value: f64) -> MetricFamily {
    family(name, help, MetricType::GAUGE, vec![gauge(&[], value)])
}

/// Counters of one family, by the value of one label.
fn by_label(name: &str, help: &str, label: &str, values: &[(&str, u64)]) -> MetricFamily {
    let metrics = values
        .iter()
        .map(|(v, n)| counter(&[(label, v.to_string())], *n))
        .collect();
    family(name, help, MetricType::COUNTER, metrics)
}
