//! Unit tests of the metrics text: node_exporter's series and rvs's own.

use super::*;
use rvs_proto::{DestInfo, DestSpec, Fwd, Proto, Rates, ServiceId, ServiceSpec, TunnelSpec};

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
    let err = BackendLabels::parse("proto,bogus,alpha")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "unknown IPVS backend labels: \"alpha, bogus\" \
         (known: local_address,local_port,remote_address,remote_port,proto,local_mark)"
    );
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
        serde_json::from_str(include_str!("../../../../dist/grafana/rvs-dashboard.json"))
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
                    // rvs health's own series are checked in its crate.
                    if word.starts_with("node_ipvs_")
                        || (word.starts_with("rvs_") && !word.starts_with("rvs_health_"))
                    {
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
