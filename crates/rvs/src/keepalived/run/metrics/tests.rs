// SPDX-License-Identifier: GPL-2.0-or-later
//! Unit tests of the health metrics' text.

use super::*;
use crate::keepalived::run::{CheckerStatus, RealStatus, VsStatus};

fn checker(kind: &str, target: &str, up: bool, retry_it: u32) -> CheckerStatus {
    CheckerStatus {
        kind: kind.into(),
        target: target.into(),
        up,
        last_result: if up { "ok" } else { "fail" }.into(),
        last_check: 1_700_000_010,
        last_change: 1_700_000_005,
        retry_it,
        error: String::new(),
        weight_delta: 0,
        has_run: false,
    }
}

/// Two virtual servers: rs1 up with a FILE_CHECK adding 2, rs2 down with
/// two HTTP_GETs of one target (one series each), a fwmark service whose
/// real server has not been checked yet.
fn fixture() -> Status {
    let mut file = checker("FILE_CHECK", "w (/run/w)", true, 0);
    file.weight_delta = 2;
    Status {
        pid: 42,
        config: "/etc/keepalived/keepalived.conf".into(),
        started: 1_700_000_000,
        updated: 1_700_000_011,
        in_sync: true,
        services: vec![
            VsStatus {
                suspended: false,
                vs: "[10.0.0.100]:tcp:80".into(),
                reals: vec![
                    RealStatus {
                        real: "[10.0.0.11]:tcp:80".into(),
                        alive: true,
                        weight: 3,
                        inhibit: false,
                        last_change: 1_700_000_001,
                        checkers: vec![checker("HTTP_GET", "10.0.0.11:80", true, 0), file],
                    },
                    RealStatus {
                        real: "[10.0.0.12]:tcp:80".into(),
                        alive: false,
                        weight: 1,
                        inhibit: true,
                        last_change: 1_700_000_009,
                        checkers: vec![
                            checker("HTTP_GET", "10.0.0.12:80", false, 2),
                            checker("HTTP_GET", "10.0.0.12:80", true, 0),
                        ],
                    },
                ],
            },
            VsStatus {
                suspended: false,
                vs: "FWM 7".into(),
                reals: vec![RealStatus {
                    real: "[10.0.0.13]:tcp:0".into(),
                    alive: true,
                    weight: 1,
                    inhibit: false,
                    last_change: 1_700_000_000,
                    checkers: vec![CheckerStatus {
                        last_check: 0,
                        last_result: "none".into(),
                        ..checker("MISC_CHECK", "/bin/true", true, 0)
                    }],
                }],
            },
        ],
    }
}

const EXPECTED: &str = r#"# HELP rvs_health_in_sync 1 when rvsd's table is known to match the checker's state, 0 while rvsd is unreachable or refuses a change (a full reconcile follows once it answers).
# TYPE rvs_health_in_sync gauge
rvs_health_in_sync 1
# HELP rvs_health_start_time_seconds Start time of rvs health run since the Unix epoch, in seconds.
# TYPE rvs_health_start_time_seconds gauge
rvs_health_start_time_seconds 1700000000
# HELP rvs_health_last_update_timestamp_seconds When the state these series show was taken (also written to the state file), since the Unix epoch, in seconds.
# TYPE rvs_health_last_update_timestamp_seconds gauge
rvs_health_last_update_timestamp_seconds 1700000011
# HELP rvs_health_real_server_up 1 when every checker of the real server is up (it is in rvsd's table with its weight), 0 when not (removed, or weight 0 with inhibit_on_failure).
# TYPE rvs_health_real_server_up gauge
rvs_health_real_server_up{real_server="[10.0.0.11]:tcp:80",virtual_server="[10.0.0.100]:tcp:80"} 1
rvs_health_real_server_up{real_server="[10.0.0.12]:tcp:80",virtual_server="[10.0.0.100]:tcp:80"} 0
rvs_health_real_server_up{real_server="[10.0.0.13]:tcp:0",virtual_server="FWM 7"} 1
# HELP rvs_health_real_server_weight The real server's weight while it is up: configured or set by MISC_CHECK (misc_dynamic), plus what its FILE_CHECKs add.
# TYPE rvs_health_real_server_weight gauge
rvs_health_real_server_weight{real_server="[10.0.0.11]:tcp:80",virtual_server="[10.0.0.100]:tcp:80"} 5
rvs_health_real_server_weight{real_server="[10.0.0.12]:tcp:80",virtual_server="[10.0.0.100]:tcp:80"} 1
rvs_health_real_server_weight{real_server="[10.0.0.13]:tcp:0",virtual_server="FWM 7"} 1
# HELP rvs_health_real_server_last_change_timestamp_seconds When the real server last went up or down (or the checker started), since the Unix epoch, in seconds.
# TYPE rvs_health_real_server_last_change_timestamp_seconds gauge
rvs_health_real_server_last_change_timestamp_seconds{real_server="[10.0.0.11]:tcp:80",virtual_server="[10.0.0.100]:tcp:80"} 1700000001
rvs_health_real_server_last_change_timestamp_seconds{real_server="[10.0.0.12]:tcp:80",virtual_server="[10.0.0.100]:tcp:80"} 1700000009
rvs_health_real_server_last_change_timestamp_seconds{real_server="[10.0.0.13]:tcp:0",virtual_server="FWM 7"} 1700000000
# HELP rvs_health_checker_up 1 when the checker is up (keepalived's is_up), 0 when down.
# TYPE rvs_health_checker_up gauge
rvs_health_checker_up{checker="HTTP_GET",real_server="[10.0.0.11]:tcp:80",target="10.0.0.11:80",virtual_server="[10.0.0.100]:tcp:80"} 1
rvs_health_checker_up{checker="FILE_CHECK",real_server="[10.0.0.11]:tcp:80",target="w (/run/w)",virtual_server="[10.0.0.100]:tcp:80"} 1
rvs_health_checker_up{checker="HTTP_GET",real_server="[10.0.0.12]:tcp:80",target="10.0.0.12:80",virtual_server="[10.0.0.100]:tcp:80"} 0
rvs_health_checker_up{checker="HTTP_GET",real_server="[10.0.0.12]:tcp:80",target="10.0.0.12:80 #2",virtual_server="[10.0.0.100]:tcp:80"} 1
rvs_health_checker_up{checker="MISC_CHECK",real_server="[10.0.0.13]:tcp:0",target="/bin/true",virtual_server="FWM 7"} 1
# HELP rvs_health_checker_last_check_timestamp_seconds When the checker's last attempt ended, since the Unix epoch, in seconds (0: none yet).
# TYPE rvs_health_checker_last_check_timestamp_seconds gauge
rvs_health_checker_last_check_timestamp_seconds{checker="HTTP_GET",real_server="[10.0.0.11]:tcp:80",target="10.0.0.11:80",virtual_server="[10.0.0.100]:tcp:80"} 1700000010
rvs_health_checker_last_check_timestamp_seconds{checker="FILE_CHECK",real_server="[10.0.0.11]:tcp:80",target="w (/run/w)",virtual_server="[10.0.0.100]:tcp:80"} 1700000010
rvs_health_checker_last_check_timestamp_seconds{checker="HTTP_GET",real_server="[10.0.0.12]:tcp:80",target="10.0.0.12:80",virtual_server="[10.0.0.100]:tcp:80"} 1700000010
rvs_health_checker_last_check_timestamp_seconds{checker="HTTP_GET",real_server="[10.0.0.12]:tcp:80",target="10.0.0.12:80 #2",virtual_server="[10.0.0.100]:tcp:80"} 1700000010
rvs_health_checker_last_check_timestamp_seconds{checker="MISC_CHECK",real_server="[10.0.0.13]:tcp:0",target="/bin/true",virtual_server="FWM 7"} 0
# HELP rvs_health_checker_failed_attempts Failed attempts of the checker since its last settled result (keepalived's retry_it; the checker goes down after retry of them).
# TYPE rvs_health_checker_failed_attempts gauge
rvs_health_checker_failed_attempts{checker="HTTP_GET",real_server="[10.0.0.11]:tcp:80",target="10.0.0.11:80",virtual_server="[10.0.0.100]:tcp:80"} 0
rvs_health_checker_failed_attempts{checker="FILE_CHECK",real_server="[10.0.0.11]:tcp:80",target="w (/run/w)",virtual_server="[10.0.0.100]:tcp:80"} 0
rvs_health_checker_failed_attempts{checker="HTTP_GET",real_server="[10.0.0.12]:tcp:80",target="10.0.0.12:80",virtual_server="[10.0.0.100]:tcp:80"} 2
rvs_health_checker_failed_attempts{checker="HTTP_GET",real_server="[10.0.0.12]:tcp:80",target="10.0.0.12:80 #2",virtual_server="[10.0.0.100]:tcp:80"} 0
rvs_health_checker_failed_attempts{checker="MISC_CHECK",real_server="[10.0.0.13]:tcp:0",target="/bin/true",virtual_server="FWM 7"} 0
"#;

#[test]
fn render_gives_every_series() {
    let text = render(&fixture());
    assert_eq!(text, EXPECTED, "\n{text}");
}

/// No virtual server (an empty file, or one still loading): the
/// process-wide series only, no empty family (the encoder would stop at
/// one), out of sync shown as 0.
#[test]
fn render_without_services() {
    let mut s = fixture();
    s.services.clear();
    s.in_sync = false;
    let text = render(&s);
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        samples,
        [
            "rvs_health_in_sync 0",
            "rvs_health_start_time_seconds 1700000000",
            "rvs_health_last_update_timestamp_seconds 1700000011",
        ],
        "{text}"
    );
}

/// Quotes, backslashes and newlines in labels (a MISC_CHECK's script is
/// any shell line) are escaped as the text format wants.
#[test]
fn label_values_are_escaped() {
    let mut s = fixture();
    s.services[1].reals[0].checkers[0].target = "/bin/sh -c \"exit 0\"\\\n".into();
    let text = render(&s);
    assert!(
        text.contains(r#"target="/bin/sh -c \"exit 0\"\\\n""#),
        "{text}"
    );
}

fn get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

/// The server answers GET /metrics with the latest status (shared with
/// the run loop) and the 0.0.4 content type; 404 elsewhere; a port in
/// use is an error at bind.
#[test]
fn serves_the_latest_status() {
    let l = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr();
    assert_ne!(addr.port(), 0);
    let e = Listener::bind(addr).unwrap_err();
    assert!(
        e.starts_with(&format!("--metrics {addr}: cannot listen: ")),
        "{e}"
    );
    let status = Arc::new(Mutex::new(fixture()));
    let server = l.serve(Arc::clone(&status)).unwrap();
    let r = get(addr, "/metrics");
    assert!(r.starts_with("HTTP/1.0 200 "), "{r}");
    assert!(
        r.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{r}"
    );
    assert!(r.ends_with(EXPECTED), "{r}");
    status.lock().unwrap().services[0].reals[0].alive = false;
    let r = get(addr, "/metrics");
    assert!(
        r.contains(
            "rvs_health_real_server_up{real_server=\"[10.0.0.11]:tcp:80\",\
             virtual_server=\"[10.0.0.100]:tcp:80\"} 0"
        ),
        "{r}"
    );
    assert!(get(addr, "/nope").starts_with("HTTP/1.0 404 "));
    drop(server);
    // Stopped: the port is free again, a moment after the drop (tiny_http
    // closes its listener on its own accept thread, which its drop wakes
    // but does not wait for).
    let t0 = std::time::Instant::now();
    while let Err(e) = Listener::bind(addr) {
        assert!(t0.elapsed() < std::time::Duration::from_secs(5), "{e}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The dashboard's `rvs_health_*` queries name series `rvs health` serves
/// (rvsd's tests check the others).
#[test]
fn dashboard_queries_series_rvs_health_serves() {
    let dashboard: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../../../dist/grafana/rvs-dashboard.json"
    ))
    .expect("the dashboard is JSON");
    let text = render(&fixture());
    let mut queried = std::collections::BTreeSet::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("rvs_health_") {
                    queried.insert(word.to_string());
                }
            }
        }
    }
    assert!(queried.len() >= 2, "{queried:?}");
    for q in &queried {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{q}{{")) || l.starts_with(&format!("{q} "))),
            "queried but not served: {q}\n{text}"
        );
    }
}
