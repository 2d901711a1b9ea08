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
//! A scrape takes the engine's lock once, as `rvsadm -L --stats` does,
//! after crediting what the XDP fast path forwarded, so the series equal
//! `rvsadm -L -n --stats --exact` at that moment. Workers wait for that
//! lock while the snapshot is copied (a few microseconds per real server):
//! reading counters without stopping them waits for the per-worker state
//! of issue 14.

use std::collections::BTreeMap;
use std::net::IpAddr;

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Summary};
use prometheus::{Encoder, TextEncoder};
use rvs_proto::{
    ClassifierCounters, DataPlaneWorker, EngineCounters, FastPathCounters, Proto, ServiceId,
    ServiceInfo, Stats,
};

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

impl BackendLabels {
    /// A comma-separated list, as node_exporter's flag takes it (empty
    /// items ignored; an empty list keeps no label: one series per metric,
    /// the sum over every real server).
    ///
    /// # Errors
    ///
    /// Unknown labels, named (sorted) as node_exporter does.
    pub fn parse(list: &str) -> Result<BackendLabels, String> {
        let asked: Vec<&str> = list.split(',').filter(|l| !l.is_empty()).collect();
        let mut unknown: Vec<&str> = asked
            .iter()
            .copied()
            .filter(|l| !BACKEND_LABELS.contains(l))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            unknown.dedup();
            return Err(format!(
                "unknown IPVS backend labels: {:?} (known: {})",
                unknown.join(", "),
                BACKEND_LABELS.join(",")
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

/// An address as Go's `net.IP.String()` prints it.
fn go_ip(a: IpAddr) -> String {
    match a {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The kept label values of each real server of `services`, with its
/// (active, inactive, weight), summed over equal label values, in label
/// order.
fn backends(services: &[ServiceInfo], labels: &BackendLabels) -> Vec<(Vec<String>, [u64; 3])> {
    let mut sums: BTreeMap<Vec<String>, [u64; 3]> = BTreeMap::new();
    for s in services {
        let (local_address, local_port, proto, mark) = match &s.spec.id {
            ServiceId::Addr { proto, addr, port } => {
                let p = match proto {
                    Proto::Tcp => "TCP",
                    Proto::Udp => "UDP",
                    Proto::Sctp => "SCTP",
                };
                (go_ip(*addr), port.to_string(), p, String::new())
            }
            ServiceId::Fwmark { mark, .. } => {
                (String::new(), "0".to_string(), "FWM", format!("{mark:08X}"))
            }
        };
        for d in &s.dests {
            let values: Vec<String> = labels
                .0
                .iter()
                .map(|l| match *l {
                    "local_address" => local_address.clone(),
                    "local_port" => local_port.clone(),
                    "remote_address" => go_ip(d.spec.addr),
                    "remote_port" => d.spec.port.to_string(),
                    "proto" => proto.to_string(),
                    _ => mark.clone(),
                })
                .collect();
            let sum = sums.entry(values).or_default();
            sum[0] += u64::from(d.active);
            sum[1] += u64::from(d.inactive);
            sum[2] += u64::from(d.spec.weight);
        }
    }
    sums.into_iter().collect()
}

/// Every family of a scrape.
pub fn families(s: &Snapshot, labels: &BackendLabels) -> Vec<MetricFamily> {
    let t = &s.total;
    let mut f: Vec<MetricFamily> = [
        (
            "connections_total",
            "The total number of connections made.",
            t.conns,
        ),
        (
            "incoming_packets_total",
            "The total number of incoming packets.",
            t.inpkts,
        ),
        (
            "outgoing_packets_total",
            "The total number of outgoing packets.",
            t.outpkts,
        ),
        (
            "incoming_bytes_total",
            "The total amount of incoming data.",
            t.inbytes,
        ),
        (
            "outgoing_bytes_total",
            "The total amount of outgoing data.",
            t.outbytes,
        ),
    ]
    .into_iter()
    .map(|(name, help, v)| one_counter(&format!("node_ipvs_{name}"), help, v))
    .collect();
    let backs = backends(&s.services, labels);
    if !backs.is_empty() {
        for (i, (name, help)) in [
            (
                "backend_connections_active",
                "The current active connections by local and remote address.",
            ),
            (
                "backend_connections_inactive",
                "The current inactive connections by local and remote address.",
            ),
            (
                "backend_weight",
                "The current backend weight by local and remote address.",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let series = backs
                .iter()
                .map(|(values, sums)| {
                    let l: Vec<(&str, String)> = labels
                        .0
                        .iter()
                        .copied()
                        .zip(values.iter().cloned())
                        .collect();
                    gauge(&l, sums[i] as f64)
                })
                .collect();
            f.push(family(
                &format!("node_ipvs_{name}"),
                help,
                MetricType::GAUGE,
                series,
            ));
        }
    }
    f.extend(rvs_families(s));
    f
}

/// rvs's own series.
fn rvs_families(s: &Snapshot) -> Vec<MetricFamily> {
    let mut f = Vec::new();
    f.push(family(
        "rvs_dataplane_info",
        "The packet I/O in use (label mode: xdp, packet or none).",
        MetricType::GAUGE,
        vec![gauge(&[("mode", s.mode.clone())], 1.0)],
    ));
    f.push(one_gauge(
        "rvs_filter_in_step",
        "1 when the data plane's filter holds rvsd's table, 0 while it failed to take a \
         change (rvs dataplane says why).",
        if s.filter_out_of_step.is_some() {
            0.0
        } else {
            1.0
        },
    ));
    if !s.workers.is_empty() {
        let mut metrics = Vec::new();
        for w in &s.workers {
            let worker = w.worker.to_string();
            for (outcome, n) in [
                ("rx", w.rx),
                ("tx", w.tx),
                ("forwarded", w.forwarded),
                ("replies", w.replies),
                ("passed", w.passed),
                ("dropped", w.dropped),
                ("need_hop", w.need_hop),
                ("tx_full", w.tx_full),
                ("no_port", w.no_port),
                ("kernel_drop", w.kernel_drops),
                ("csum_fixed", w.csum_completed),
                ("tso_cut", w.segmented),
            ] {
                metrics.push(counter(
                    &[("worker", worker.clone()), ("outcome", outcome.to_string())],
                    n,
                ));
            }
        }
        f.push(family(
            "rvs_worker_frames_total",
            "Frames of each data-plane worker by outcome (as the columns of rvs dataplane).",
            MetricType::COUNTER,
            metrics,
        ));
    }
    if let Some(e) = &s.engine {
        f.push(one_gauge(
            "rvs_conns",
            "Connection entries in the table now (templates included).",
            e.conns as f64,
        ));
        f.push(one_gauge(
            "rvs_conns_max",
            "The connection table's bound (rvsd --max-conns).",
            e.max_conns as f64,
        ));
        f.push(one_counter(
            "rvs_conns_table_full_total",
            "New connections that found the table at 15/16 of its bound.",
            e.table_full,
        ));
        f.push(one_counter(
            "rvs_conns_evicted_syn_recv_total",
            "SYN_RECV entries evicted to make room near the bound.",
            e.evicted_syn_recv,
        ));
        f.push(one_gauge(
            "rvs_next_hops",
            "Next hops the engine holds now.",
            e.hops as f64,
        ));
        f.push(one_counter(
            "rvs_next_hops_pruned_total",
            "Next hops pruned (addresses nothing needed any more).",
            e.hops_pruned,
        ));
        f.push(by_label(
            "rvs_engine_drops_total",
            "Frames the engine dropped, by reason.",
            "reason",
            &[
                ("table_full", e.drop_table_full),
                ("no_connection", e.drop_no_conn),
                ("no_real_server", e.drop_no_dest),
                ("real_server_gone", e.drop_dest_gone),
                ("ttl", e.drop_ttl),
                ("rewrite_failed", e.drop_rewrite),
                ("malformed", e.drop_malformed),
                ("other", e.drop_other),
            ],
        ));
    }
    {
        use std::sync::atomic::Ordering::Relaxed;
        let st = &crate::syncd::STATS;
        f.push(by_label(
            "rvs_sync_messages_total",
            "Connection-sync messages, by what happened to them.",
            "outcome",
            &[
                ("sent", st.sent_msgs.load(Relaxed)),
                ("send_failed", st.send_errors.load(Relaxed)),
                ("received", st.recv_msgs.load(Relaxed)),
                ("dropped", st.recv_dropped.load(Relaxed)),
            ],
        ));
        f.push(by_label(
            "rvs_sync_entries_total",
            "Connection-sync entries sent by the master or refused by the backup's decoder.",
            "outcome",
            &[
                ("sent", st.sent_conns.load(Relaxed)),
                ("undecodable", st.recv_bad_entries.load(Relaxed)),
            ],
        ));
    }
    if let Some(c) = &s.classifier {
        f.push(by_label(
            "rvs_classifier_frames_total",
            "Frames the XDP classifier saw, by verdict.",
            "verdict",
            &[
                ("redirected", c.redirected),
                ("passed", c.passed),
                ("no_socket", c.no_socket),
                ("malformed", c.malformed),
                ("fragment_passed", c.fragments),
                ("fragment_claimed", c.fragments_claimed),
            ],
        ));
        f.push(one_counter(
            "rvs_syn_guard_syns_total",
            "Pure TCP SYNs among the frames the classifier claimed.",
            c.syns,
        ));
        f.push(one_counter(
            "rvs_syn_guard_shed_total",
            "Pure SYNs the SYN guard shed while the slow path was congested.",
            c.syn_shed,
        ));
        f.push(one_gauge(
            "rvs_syn_guard_shed_ratio",
            "The share of pure SYNs the SYN guard sheds now (0 to 1).",
            f64::from(c.syn_shed_permille) / 1000.0,
        ));
    }
    if let Some(p) = &s.fast_path {
        f.push(one_gauge(
            "rvs_fastpath_entries",
            "Flow entries in the XDP fast path's cache now.",
            p.entries as f64,
        ));
        f.push(by_label(
            "rvs_fastpath_events_total",
            "The XDP fast path's events, by kind.",
            "event",
            &[
                ("hit", p.hits),
                ("miss", p.misses),
                ("skipped", p.skipped),
                ("too_big", p.too_big),
                ("ttl", p.ttl),
                ("error", p.errors),
                ("install", p.installs),
                ("removal", p.removals),
                ("eviction", p.evictions),
                ("csum_fixed", p.csum_completed),
            ],
        ));
    }
    if !s.requests.is_empty() {
        let metrics = s
            .requests
            .iter()
            .map(|(kind, (n, secs))| {
                let mut m = Metric::default();
                let mut sm = Summary::default();
                sm.set_sample_count(*n);
                sm.set_sample_sum(*secs);
                m.set_summary(sm);
                m.set_label(labelled(&[("request", kind.to_string())]));
                m
            })
            .collect();
        f.push(family(
            "rvs_control_request_seconds",
            "Control requests (rvsadm, rvs) handled, by kind, and the time spent on them.",
            MetricType::SUMMARY,
            metrics,
        ));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_proto::{DestInfo, DestSpec, Fwd, Rates, ServiceSpec, TunnelSpec};

    fn dest(addr: &str, port: u16, weight: u32, active: u32, inactive: u32) -> DestInfo {
        DestInfo {
            spec: DestSpec {
                addr: addr.parse().unwrap(),
                port,
                fwd: Fwd::Route,
                weight,
                u_threshold: 0,
                l_threshold: 0,
                tunnel: TunnelSpec::default(),
            },
            active,
            inactive,
            persist: 0,
            stats: Stats::default(),
            rates: Rates::default(),
        }
    }

    fn service(id: ServiceId, dests: Vec<DestInfo>) -> ServiceInfo {
        ServiceInfo {
            spec: ServiceSpec {
                id,
                scheduler: "wlc".into(),
                flags: 0,
                timeout: 0,
                netmask: 0xffff_ffff,
                pe: None,
            },
            stats: Stats::default(),
            rates: Rates::default(),
            dests,
        }
    }

    /// node_exporter's own fixture (collector/fixtures/proc/net/ip_vs and
    /// ip_vs_stats, node_exporter@a10c930) as rvs's table.
    fn fixture() -> Snapshot {
        let tcp = |a: &str| ServiceId::Addr {
            proto: Proto::Tcp,
            addr: a.parse().unwrap(),
            port: 3306,
        };
        Snapshot {
            total: Stats {
                conns: 23_765_872,
                inpkts: 3_811_989_221,
                outpkts: 0,
                inbytes: 89_991_519_156_915,
                outbytes: 0,
            },
            services: vec![
                service(
                    tcp("192.168.0.22"),
                    vec![
                        dest("192.168.82.22", 3306, 100, 248, 2),
                        dest("192.168.83.24", 3306, 100, 248, 2),
                        dest("192.168.83.21", 3306, 100, 248, 1),
                    ],
                ),
                service(
                    tcp("192.168.0.57"),
                    vec![
                        dest("192.168.84.22", 3306, 0, 0, 0),
                        dest("192.168.82.21", 3306, 100, 1499, 0),
                        dest("192.168.50.21", 3306, 100, 1498, 0),
                    ],
                ),
                service(
                    tcp("192.168.0.55"),
                    vec![
                        dest("192.168.50.26", 3306, 0, 0, 0),
                        dest("192.168.49.32", 3306, 100, 0, 0),
                    ],
                ),
                service(
                    ServiceId::Fwmark {
                        v6: false,
                        mark: 0x1000_1000,
                    },
                    vec![
                        dest("192.168.50.26", 3306, 20, 64, 1),
                        dest("192.168.49.32", 3306, 100, 321, 5),
                    ],
                ),
            ],
            ..Snapshot::default()
        }
    }

    /// The samples of exposition text: (name{labels}, value).
    fn samples(text: &str) -> BTreeMap<String, f64> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (k, v) = l.rsplit_once(' ').unwrap();
                (k.to_string(), v.parse::<f64>().unwrap())
            })
            .collect()
    }

    /// node_exporter's expected output for that fixture
    /// (collector/fixtures/ip_vs_result.txt: its TCP services), the FWM
    /// service's series as the collector's code makes them, and
    /// ip_vs_result_lbs_local_port.txt for `--metrics-backend-labels
    /// local_port`.
    const EXPECTED: &str = r#"
node_ipvs_backend_connections_active{local_address="192.168.0.22",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.82.22",remote_port="3306"} 248
node_ipvs_backend_connections_active{local_address="192.168.0.22",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.83.21",remote_port="3306"} 248
node_ipvs_backend_connections_active{local_address="192.168.0.22",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.83.24",remote_port="3306"} 248
node_ipvs_backend_connections_active{local_address="192.168.0.55",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.49.32",remote_port="3306"} 0
node_ipvs_backend_connections_active{local_address="192.168.0.55",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.50.26",remote_port="3306"} 0
node_ipvs_backend_connections_active{local_address="192.168.0.57",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.50.21",remote_port="3306"} 1498
node_ipvs_backend_connections_active{local_address="192.168.0.57",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.82.21",remote_port="3306"} 1499
node_ipvs_backend_connections_active{local_address="192.168.0.57",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.84.22",remote_port="3306"} 0
node_ipvs_backend_connections_inactive{local_address="192.168.0.22",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.82.22",remote_port="3306"} 2
node_ipvs_backend_connections_inactive{local_address="192.168.0.22",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.83.21",remote_port="3306"} 1
node_ipvs_backend_connections_inactive{local_address="192.168.0.22",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.83.24",remote_port="3306"} 2
node_ipvs_backend_connections_inactive{local_address="192.168.0.55",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.49.32",remote_port="3306"} 0
node_ipvs_backend_connections_inactive{local_address="192.168.0.55",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.50.26",remote_port="3306"} 0
node_ipvs_backend_connections_inactive{local_address="192.168.0.57",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.50.21",remote_port="3306"} 0
node_ipvs_backend_connections_inactive{local_address="192.168.0.57",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.82.21",remote_port="3306"} 0
node_ipvs_backend_connections_inactive{local_address="192.168.0.57",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.84.22",remote_port="3306"} 0
node_ipvs_backend_weight{local_address="192.168.0.22",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.82.22",remote_port="3306"} 100
node_ipvs_backend_weight{local_address="192.168.0.22",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.83.21",remote_port="3306"} 100
node_ipvs_backend_weight{local_address="192.168.0.22",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.83.24",remote_port="3306"} 100
node_ipvs_backend_weight{local_address="192.168.0.55",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.49.32",remote_port="3306"} 100
node_ipvs_backend_weight{local_address="192.168.0.55",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.50.26",remote_port="3306"} 0
node_ipvs_backend_weight{local_address="192.168.0.57",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.50.21",remote_port="3306"} 100
node_ipvs_backend_weight{local_address="192.168.0.57",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.82.21",remote_port="3306"} 100
node_ipvs_backend_weight{local_address="192.168.0.57",local_mark="",local_port="3306",proto="TCP",remote_address="192.168.84.22",remote_port="3306"} 0
node_ipvs_backend_connections_active{local_address="",local_mark="10001000",local_port="0",proto="FWM",remote_address="192.168.50.26",remote_port="3306"} 64
node_ipvs_backend_connections_active{local_address="",local_mark="10001000",local_port="0",proto="FWM",remote_address="192.168.49.32",remote_port="3306"} 321
node_ipvs_backend_connections_inactive{local_address="",local_mark="10001000",local_port="0",proto="FWM",remote_address="192.168.50.26",remote_port="3306"} 1
node_ipvs_backend_connections_inactive{local_address="",local_mark="10001000",local_port="0",proto="FWM",remote_address="192.168.49.32",remote_port="3306"} 5
node_ipvs_backend_weight{local_address="",local_mark="10001000",local_port="0",proto="FWM",remote_address="192.168.50.26",remote_port="3306"} 20
node_ipvs_backend_weight{local_address="",local_mark="10001000",local_port="0",proto="FWM",remote_address="192.168.49.32",remote_port="3306"} 100
node_ipvs_connections_total 2.3765872e+07
node_ipvs_incoming_bytes_total 8.9991519156915e+13
node_ipvs_incoming_packets_total 3.811989221e+09
node_ipvs_outgoing_bytes_total 0
node_ipvs_outgoing_packets_total 0
"#;

    const EXPECTED_LOCAL_PORT: &str = r#"
node_ipvs_backend_connections_active{local_port="0"} 385
node_ipvs_backend_connections_active{local_port="3306"} 3741
node_ipvs_backend_connections_inactive{local_port="0"} 6
node_ipvs_backend_connections_inactive{local_port="3306"} 5
node_ipvs_backend_weight{local_port="0"} 120
node_ipvs_backend_weight{local_port="3306"} 600
"#;

    fn node_samples(text: &str) -> BTreeMap<String, f64> {
        samples(text)
            .into_iter()
            .filter(|(k, _)| k.starts_with("node_ipvs"))
            .collect()
    }

    #[test]
    fn node_exporters_fixture_gives_its_series() {
        let text = render(&fixture(), &BackendLabels::default());
        assert_eq!(node_samples(&text), samples(EXPECTED), "{text}");
        for help in [
            "# HELP node_ipvs_backend_connections_active The current active connections by local and remote address.",
            "# TYPE node_ipvs_backend_connections_active gauge",
            "# HELP node_ipvs_backend_connections_inactive The current inactive connections by local and remote address.",
            "# HELP node_ipvs_backend_weight The current backend weight by local and remote address.",
            "# HELP node_ipvs_connections_total The total number of connections made.",
            "# TYPE node_ipvs_connections_total counter",
            "# HELP node_ipvs_incoming_bytes_total The total amount of incoming data.",
            "# HELP node_ipvs_incoming_packets_total The total number of incoming packets.",
            "# HELP node_ipvs_outgoing_bytes_total The total amount of outgoing data.",
            "# HELP node_ipvs_outgoing_packets_total The total number of outgoing packets.",
        ] {
            assert!(text.lines().any(|l| l == help), "missing {help}\n{text}");
        }
    }

    #[test]
    fn kept_labels_sum_real_servers() {
        let labels = BackendLabels::parse("local_port,,local_port").unwrap();
        let text = render(&fixture(), &labels);
        let got: BTreeMap<String, f64> = node_samples(&text)
            .into_iter()
            .filter(|(k, _)| k.contains("backend"))
            .collect();
        assert_eq!(got, samples(EXPECTED_LOCAL_PORT), "{text}");
        let err = BackendLabels::parse("proto,bogus,alpha").unwrap_err();
        assert!(err.contains("\"alpha, bogus\""), "{err}");
        // None kept: one series each, the sums.
        let text = render(&fixture(), &BackendLabels::parse("").unwrap());
        assert!(
            text.lines().any(|l| l == "node_ipvs_backend_weight 720"),
            "{text}"
        );
    }

    #[test]
    fn ipv6_and_sctp_labels() {
        let s = Snapshot {
            services: vec![
                service(
                    ServiceId::Addr {
                        proto: Proto::Tcp,
                        addr: "2001:db8:0:0::80".parse().unwrap(),
                        port: 443,
                    },
                    vec![dest("2001:db8:1::0:5", 8443, 1, 2, 3)],
                ),
                service(
                    ServiceId::Addr {
                        proto: Proto::Sctp,
                        addr: "10.0.0.1".parse().unwrap(),
                        port: 9,
                    },
                    vec![dest("10.1.0.5", 9, 1, 0, 0)],
                ),
            ],
            ..Snapshot::default()
        };
        let text = render(&s, &BackendLabels::default());
        assert!(text.contains(
            r#"node_ipvs_backend_connections_inactive{local_address="2001:db8::80",local_mark="",local_port="443",proto="TCP",remote_address="2001:db8:1::5",remote_port="8443"} 3"#
        ), "{text}");
        assert!(text.contains(r#"proto="SCTP""#), "{text}");
    }

    #[test]
    fn rvs_series_and_no_backends() {
        let mut s = Snapshot {
            mode: "xdp".into(),
            engine: Some(EngineCounters {
                conns: 3,
                max_conns: 1024,
                drop_table_full: 2,
                ..EngineCounters::default()
            }),
            workers: vec![DataPlaneWorker {
                worker: 0,
                rx: 10,
                ..DataPlaneWorker::default()
            }],
            filter_out_of_step: Some("map full".into()),
            ..Snapshot::default()
        };
        s.requests.insert("list_services", (4, 0.5));
        let text = render(&s, &BackendLabels::default());
        for want in [
            r#"rvs_dataplane_info{mode="xdp"} 1"#,
            "rvs_filter_in_step 0",
            r#"rvs_worker_frames_total{outcome="rx",worker="0"} 10"#,
            "rvs_conns 3",
            "rvs_conns_max 1024",
            r#"rvs_engine_drops_total{reason="table_full"} 2"#,
            r#"rvs_control_request_seconds_sum{request="list_services"} 0.5"#,
            r#"rvs_control_request_seconds_count{request="list_services"} 4"#,
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want}\n{text}");
        }
        assert!(
            !text.contains("node_ipvs_backend"),
            "no real server, no series"
        );
    }

    /// Every series `dist/grafana/rvs-dashboard.json` queries is one rvsd
    /// serves (a renamed series cannot leave the dashboard empty).
    #[test]
    fn dashboard_queries_series_rvsd_serves() {
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../../dist/grafana/rvs-dashboard.json"))
                .expect("the dashboard is JSON");
        let mut s = fixture();
        s.mode = "xdp".into();
        s.engine = Some(EngineCounters::default());
        s.workers = vec![DataPlaneWorker::default()];
        s.classifier = Some(ClassifierCounters::default());
        s.fast_path = Some(FastPathCounters::default());
        s.requests.insert("list_services", (1, 0.1));
        let text = render(&s, &BackendLabels::default());
        let served: std::collections::BTreeSet<String> = samples(&text)
            .keys()
            .map(|k| k.split('{').next().unwrap_or_default().to_string())
            .collect();
        let mut queried = std::collections::BTreeSet::new();
        for p in dashboard["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().expect("targets") {
                let expr = t["expr"].as_str().expect("expr");
                let mut word = String::new();
                for c in expr.chars().chain(std::iter::once(' ')) {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        word.push(c);
                    } else {
                        if word.starts_with("node_ipvs_") || word.starts_with("rvs_") {
                            queried.insert(std::mem::take(&mut word));
                        }
                        word.clear();
                    }
                }
            }
        }
        assert!(queried.len() > 15, "{queried:?}");
        let missing: Vec<&String> = queried.iter().filter(|q| !served.contains(*q)).collect();
        assert!(
            missing.is_empty(),
            "queried but not served: {missing:?}\n{served:?}"
        );
    }
}
