//! `rvsd --metrics` scraped by a real Prometheus server (Debian's package,
//! run in the director's namespace): after traffic through a DR service and
//! a NAT service, the `node_ipvs_*` series Prometheus stored equal what
//! `rvsadm -L -n` (per real server: weight, active, inactive) and
//! `rvs proc ip_vs_stats` (the totals, node_exporter's source) report, and
//! `promtool check metrics` accepts the text. Needs root, `prometheus` and
//! `promtool` (installed by scripts/test.sh); skips with a message without
//! them.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "rvsdm";
const METRICS: &str = "127.0.0.1:9876";

fn have_prometheus() -> bool {
    let ok = |b: &str| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok("prometheus") && ok("promtool") {
        return true;
    }
    assert!(
        std::env::var_os("RVS_REQUIRE_PROMETHEUS").is_none(),
        "RVS_REQUIRE_PROMETHEUS is set but prometheus/promtool are missing"
    );
    eprintln!("SKIPPED: prometheus and promtool are not installed (scripts/test.sh installs them)");
    false
}

/// Start Prometheus in `ns`, scraping rvsd's metrics every second.
fn start_prometheus(lab: &mut Lab, ns: &str) {
    let dir = lab.temp_path("prom");
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n\
             scrape_configs:\n  - job_name: rvsd\n    static_configs:\n\
             \x20     - targets: ['{METRICS}']\n"
        ),
    )
    .expect("prometheus.yml");
    let cfg = format!("--config.file={}", cfg.display());
    let data = format!("--storage.tsdb.path={}", dir.join("data").display());
    lab.spawn(
        ns,
        "prometheus",
        &[
            &cfg,
            &data,
            "--web.listen-address=127.0.0.1:9090",
            "--log.level=warn",
        ],
        Stdio::null(),
    );
}

/// An instant query's result: each series' labels (without `__name__`,
/// `job`, `instance`) and value.
fn query(ns: &str, q: &str) -> Option<Vec<(BTreeMap<String, String>, f64)>> {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sfG", "--max-time", "3"])
        .arg("http://127.0.0.1:9090/api/v1/query")
        .args(["--data-urlencode", &format!("query={q}")])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    let result = v["data"]["result"].as_array()?;
    Some(
        result
            .iter()
            .filter_map(|r| {
                let mut labels = BTreeMap::new();
                for (k, val) in r["metric"].as_object()? {
                    if !matches!(k.as_str(), "__name__" | "job" | "instance") {
                        labels.insert(k.clone(), val.as_str()?.to_string());
                    }
                }
                let value = r["value"][1].as_str()?.parse().ok()?;
                Some((labels, value))
            })
            .collect(),
    )
}

/// What node_exporter would show for the table of `ns`: the totals from
/// `rvs proc ip_vs_stats`, and per real server (labels) its weight, active
/// and inactive connections from `rvsadm -L -n`.
fn expected(lab: &Lab, ns: &str) -> BTreeMap<String, f64> {
    let mut want = BTreeMap::new();
    let o = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(bin("rvs"))
        .args(["proc", "ip_vs_stats"])
        .env_remove("RVS_SOCKET")
        .output()
        .expect("rvs proc");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let totals: Vec<u64> = text
        .lines()
        .nth(2)
        .expect("the totals line")
        .split_whitespace()
        .map(|h| u64::from_str_radix(h, 16).expect("hex"))
        .collect();
    for (name, v) in [
        "node_ipvs_connections_total",
        "node_ipvs_incoming_packets_total",
        "node_ipvs_outgoing_packets_total",
        "node_ipvs_incoming_bytes_total",
        "node_ipvs_outgoing_bytes_total",
    ]
    .iter()
    .zip(&totals)
    {
        want.insert(name.to_string(), *v as f64);
    }
    let list = lab.adm_ok(ns, &["-L", "-n"]);
    let (mut proto, mut local) = (String::new(), String::new());
    for l in list.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.first() {
            Some(&("TCP" | "UDP")) => {
                proto = f[0].to_string();
                local = f[1].to_string();
            }
            Some(&"->") if f[1] != "RemoteAddress:Port" => {
                let (la, lp) = local.rsplit_once(':').expect("addr:port");
                let (ra, rp) = f[1].rsplit_once(':').expect("addr:port");
                let key = format!(
                    "local_address={la},local_port={lp},proto={proto},remote_address={ra},\
                     remote_port={rp}"
                );
                for (name, i) in [
                    ("node_ipvs_backend_weight", 3),
                    ("node_ipvs_backend_connections_active", 4),
                    ("node_ipvs_backend_connections_inactive", 5),
                ] {
                    want.insert(format!("{name}{{{key}}}"), f[i].parse().expect("number"));
                }
            }
            _ => {}
        }
    }
    want
}

/// The same from Prometheus's latest samples.
fn stored(ns: &str) -> Option<BTreeMap<String, f64>> {
    let mut got = BTreeMap::new();
    for name in [
        "node_ipvs_connections_total",
        "node_ipvs_incoming_packets_total",
        "node_ipvs_outgoing_packets_total",
        "node_ipvs_incoming_bytes_total",
        "node_ipvs_outgoing_bytes_total",
    ] {
        let r = query(ns, name)?;
        got.insert(name.to_string(), r.first()?.1);
    }
    for name in [
        "node_ipvs_backend_weight",
        "node_ipvs_backend_connections_active",
        "node_ipvs_backend_connections_inactive",
    ] {
        for (labels, v) in query(ns, name)? {
            let key: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            got.insert(format!("{name}{{{}}}", key.join(",")), v);
        }
    }
    Some(got)
}

/// Prometheus, within 20 s, stores exactly what rvsadm shows now (traffic
/// has stopped, so the values hold still), and promtool accepts the text.
fn check(lab: &mut Lab, ns: &str) {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c"])
        .arg(format!(
            "curl -sf http://{METRICS}/metrics | promtool check metrics"
        ))
        .output()
        .expect("promtool");
    assert!(
        o.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let want = expected(lab, ns);
    assert!(want.len() > 5, "no real server in the listing: {want:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(got) = stored(ns) {
            if got == want {
                return;
            }
            last = Some(got);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "Prometheus stored {last:#?}\nrvsadm and rvs proc show {want:#?}\nrvsd log:\n{}",
        lab.rvsd_log()
    );
}

#[test]
fn netns_prometheus_scrapes_a_dr_service() {
    require_root();
    if !have_prometheus() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "dr");
    let (_sw, client, director, rs1) = one_segment_base(&mut lab, 1);
    lab.vip_on_lo(&rs1, "10.0.0.100/32");
    lab.spawn(
        &rs1,
        "socat",
        &[
            "TCP-LISTEN:8000,bind=10.0.0.100,fork,reuseaddr",
            "SYSTEM:echo rs1",
        ],
        Stdio::null(),
    );
    lab.start_rvsd(&director, Some("xdp"), &["eth0"], &["--metrics", METRICS]);
    lab.adm_lines(
        &director,
        "-A -t 10.0.0.100:8000 -s rr
         -a -t 10.0.0.100:8000 -r 10.0.0.11 -g -w 3
         -A -t 10.0.0.100:8001 -s wlc
         -a -t 10.0.0.100:8001 -r 10.0.0.11 -g -w 0",
    );
    start_prometheus(&mut lab, &director);
    for _ in 0..5 {
        assert_eq!(
            fetch_retry(&client, "10.0.0.100", 8000, Duration::from_secs(8)).as_deref(),
            Some("rs1"),
            "{}",
            lab.rvsd_log()
        );
    }
    check(&mut lab, &director);
}

#[test]
fn netns_prometheus_scrapes_a_nat_service() {
    require_root();
    if !have_prometheus() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "nat");
    let t = nat_topology(&mut lab);
    lab.spawn(
        &t.rs1,
        "socat",
        &["TCP-LISTEN:8080,fork,reuseaddr", "SYSTEM:echo rs1"],
        Stdio::null(),
    );
    lab.start_rvsd(
        &t.director,
        Some("xdp"),
        &["eth0", "eth1"],
        &["--metrics", METRICS],
    );
    lab.adm_lines(
        &t.director,
        "-A -t 10.0.1.100:80 -s rr
         -a -t 10.0.1.100:80 -r 10.0.2.11:8080 -m -w 2",
    );
    start_prometheus(&mut lab, &t.director);
    for _ in 0..5 {
        assert_eq!(
            fetch_retry(&t.client, "10.0.1.100", 80, Duration::from_secs(8)).as_deref(),
            Some("rs1"),
            "{}",
            lab.rvsd_log()
        );
    }
    check(&mut lab, &t.director);
    // The rvs series are there too.
    let r = query(&t.director, "rvs_conns_max").expect("rvs_conns_max");
    assert_eq!(r.first().map(|x| x.1), Some(1_048_576.0));
}
