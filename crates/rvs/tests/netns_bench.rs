//! `rvs bench --quick`: every family runs end to end (namespaces, rvsd,
//! the kernel and proxy contenders, the load tools) and prints its table,
//! the goals and one JSON line with every row; nothing is left behind.
//! Figures are not checked: this is a smoke test.
//!
//! Twice: on the host as it is, and with `RVS_LIVE_FRAMES=off` (as on a
//! host that refuses live-frames test runs: the packet family falls back to
//! its AF_PACKET generator, says why, and marks every row with it).
//!
//! Needs root, iproute2, nft, python3, wrk, ab, nginx (with the stream
//! module), haproxy and AF_XDP; skipped (with a message) without root or
//! iproute2. `rvsd`/`rvsadm`/`rvs-bench` must sit next to `rvs` (run through cargo
//! test/nextest --workspace).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// Every row each family prints.
const ROWS: &[(&str, &str)] = &[
    ("conntable", "baseline copy+patch+parse"),
    ("conntable", "rvs dr 1M"),
    ("control", "process start (rvsadm -v)"),
    ("control", "restore (-R < file)"),
    ("control", "save (-S -n)"),
    ("control", "list (-L -n)"),
    ("control", "one more -a"),
    ("packet", "kernel-forward"),
    ("packet", "nft-dnat"),
    ("packet", "rvs-xdp dr"),
    ("packet", "rvs-xdp dr partial-csum"),
    ("packet", "rvs-xdp nat"),
    ("packet", "rvs-xdp tun"),
    ("packet", "rvs-xdp-fast dr"),
    ("packet", "rvs-xdp-fast dr partial-csum"),
    ("packet", "rvs-xdp-fast nat"),
    ("packet", "rvs-xdp-fast tun"),
    ("packet", "rvs-packet dr"),
    ("packet", "rvs-packet nat"),
    ("packet", "rvs-packet tun"),
    ("syn", "kernel-forward"),
    ("syn", "rvs-xdp dr"),
    ("syn", "rvs-xdp nat"),
    ("http", "wrk direct"),
    ("http", "ab direct"),
    ("http", "wrk rvs-dr"),
    ("http", "ab rvs-dr"),
    ("http", "wrk rvs-nat"),
    ("http", "ab rvs-nat"),
    ("http", "wrk rvs-tun"),
    ("http", "ab rvs-tun"),
    ("http", "wrk haproxy-tcp"),
    ("http", "ab haproxy-tcp"),
    ("http", "wrk nginx-stream"),
    ("http", "ab nginx-stream"),
];

#[test]
fn netns_bench_quick_prints_every_row() {
    if !can_run_with(&[]) {
        return;
    }
    let (stdout, v) = quick(&[]);
    // The generator is whichever this host allows, named in every row.
    let generator = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["family"] == "packet")
        .map(|r| r["generator"].clone())
        .expect("a packet row");
    assert!(
        generator == "xdp-live-frames" || generator == "af-packet",
        "{generator}"
    );
    assert!(stdout.contains("packet generator: "), "{stdout}");
}

/// As on a host that refuses live-frames test runs: the AF_PACKET
/// generator, the reason in one line, every packet row marked with it.
#[test]
fn netns_bench_quick_without_live_frames() {
    if !can_run_with(&[]) {
        return;
    }
    let (stdout, v) = quick(&[("RVS_LIVE_FRAMES", "off")]);
    let why: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("packet generator: af-packet"))
        .collect();
    assert_eq!(why.len(), 1, "one line says why:\n{stdout}");
    assert!(why[0].contains("RVS_LIVE_FRAMES=off"), "{}", why[0]);
    for r in v["rows"].as_array().expect("rows") {
        if r["family"] == "packet" {
            assert_eq!(r["generator"], "af-packet", "{r}");
        }
    }
    // Measured, not only listed.
    let fast = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["name"] == "rvs-xdp-fast dr")
        .expect("rvs-xdp-fast dr");
    assert!(fast["mpps"].as_f64().is_some_and(|m| m > 0.0), "{fast}");
}

/// `rvs bench --quick` with `env` set for it: its stdout and JSON line,
/// after checking it succeeded, printed every row and left nothing behind.
fn quick(env: &[(&str, &str)]) -> (String, serde_json::Value) {
    let start = Instant::now();
    let mut child = Command::new(RVS)
        .args(["bench", "--quick"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rvs bench");
    let pid = child.id();
    // Bounded: interrupt it (it cleans up on SIGINT) after 5 minutes.
    let deadline = start + Duration::from_secs(300);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().expect("rvs bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "rvs bench --quick: {} after {took:?}\n{stdout}\n{stderr}",
        out.status
    );
    // The tables: a header per family, a line per row.
    for family in ["conntable", "control", "packet", "syn", "http"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(family)),
            "no {family} table:\n{stdout}"
        );
    }
    for (family, name) in ROWS {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "no {family} row '{name}' in the tables:\n{stdout}"
        );
    }
    assert!(stdout.contains("goals:"), "{stdout}");
    // The last line: the JSON report with every row.
    let last = stdout.lines().last().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"));
    assert_eq!(v["quick"], true);
    let rows = v["rows"].as_array().expect("rows");
    for (family, name) in ROWS {
        assert!(
            rows.iter()
                .any(|r| r["family"] == *family && r["name"] == *name),
            "no {family} row '{name}' in the JSON: {last}"
        );
    }
    assert!(!v["goals"].as_array().expect("goals").is_empty());
    assert!(
        stdout.contains("settings changed for this run (packet): "),
        "{stdout}"
    );
    // Nothing left behind.
    let ns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns");
    let prefix = format!("rvsbench-{pid}-");
    assert!(
        !String::from_utf8_lossy(&ns.stdout).contains(&prefix),
        "namespaces left behind:\n{}",
        String::from_utf8_lossy(&ns.stdout)
    );
    eprintln!("rvs bench --quick {env:?} took {took:?}");
    (stdout.into_owned(), v)
}
