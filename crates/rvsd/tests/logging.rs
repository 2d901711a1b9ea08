//! rvsd's log (crates/rvsd/src/log.rs) from the outside: `--log-level` and
//! `RUST_LOG` choose what is logged (the flag wins), one event per line, and
//! under systemd (`$JOURNAL_STREAM` naming stderr) the lines carry
//! journald's `<N>` priority prefixes instead of a timestamp.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{Reply, Request};

mod common;
use common::*;

/// How rvsd is started.
#[derive(Default)]
struct Run<'a> {
    args: &'a [&'a str],
    rust_log: Option<&'a str>,
    /// Set `$JOURNAL_STREAM` to stderr's device and inode, as systemd does.
    journal: bool,
}

/// rvsd (`--io none`, a private socket) started as `run` says: one control
/// request, a SIGHUP (no `--save`: a warning), then SIGTERM. Its stderr.
fn log_of(tag: &str, run: Run<'_>) -> String {
    let dir = TempDir::new(tag);
    let sock = dir.path("ctl.sock");
    let log = dir.path("rvsd.log");
    let err = std::fs::File::create(&log).unwrap();
    let meta = err.metadata().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rvsd"));
    cmd.args(["--io", "none", "--socket", sock.to_str().unwrap()])
        .args(run.args)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err);
    if let Some(v) = run.rust_log {
        cmd.env("RUST_LOG", v);
    }
    if run.journal {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    }
    let mut child = cmd.spawn().unwrap();
    let ep = Endpoint::Path(sock);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut client = loop {
        if let Ok(c) = Client::connect(&ep) {
            break c;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!(
                "rvsd exited ({st}):\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        assert!(Instant::now() < deadline, "rvsd not ready");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(matches!(
        client.call(Request::Info).unwrap(),
        Reply::Info { .. }
    ));
    drop(client);
    let kill = |sig: &str| {
        let st = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    kill("-HUP");
    // The SIGHUP's line before the SIGTERM's.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).unwrap().contains("SIGHUP") {
        assert!(Instant::now() < deadline, "SIGHUP not logged");
        std::thread::sleep(Duration::from_millis(20));
    }
    kill("-TERM");
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0));
    std::fs::read_to_string(&log).unwrap()
}

/// `TIMESTAMP LEVEL rvsd: …` lines.
fn levels(log: &str) -> Vec<&str> {
    log.lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let ts = w.next().unwrap_or_default();
            assert!(
                ts.len() > 20 && ts.starts_with("20") && ts.ends_with('Z'),
                "no RFC 3339 timestamp: {l:?}"
            );
            let level = w.next().unwrap_or_default();
            assert_eq!(w.next(), Some("rvsd:"), "{l:?}");
            level
        })
        .collect()
}

#[test]
fn default_level_is_info() {
    let log = log_of("log-default", Run::default());
    let lv = levels(&log);
    assert!(lv.contains(&"INFO") && lv.contains(&"WARN"), "{log}");
    assert!(!lv.contains(&"DEBUG"), "{log}");
    assert!(log.contains("serving on"), "{log}");
    assert!(log.contains("SIGHUP: ignored"), "{log}");
}

#[test]
fn log_level_warn_leaves_info_out() {
    let log = log_of(
        "log-warn",
        Run {
            args: &["--log-level", "warn"],
            ..Run::default()
        },
    );
    let lv = levels(&log);
    assert!(lv.iter().all(|l| *l == "WARN" || *l == "ERROR"), "{log}");
    assert!(log.contains("SIGHUP: ignored"), "{log}");
    assert!(
        !log.contains("serving on") && !log.contains("stopped"),
        "{log}"
    );
}

#[test]
fn rust_log_debug_shows_debug_and_the_flag_wins() {
    let log = log_of(
        "log-debug",
        Run {
            rust_log: Some("debug"),
            ..Run::default()
        },
    );
    let debug: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" DEBUG rvsd: "))
        .collect();
    assert!(
        debug
            .iter()
            .any(|l| l.contains("control request handled") && l.contains("request=info")),
        "{log}"
    );
    assert!(log.contains("serving on"), "{log}");
    // --log-level wins over RUST_LOG.
    let log = log_of(
        "log-flag-wins",
        Run {
            args: &["--log-level", "info"],
            rust_log: Some("debug"),
            ..Run::default()
        },
    );
    assert!(!log.contains("DEBUG"), "{log}");
    assert!(log.contains("serving on"), "{log}");
}

#[test]
fn journald_format_under_journal_stream() {
    let log = log_of(
        "log-journal",
        Run {
            journal: true,
            ..Run::default()
        },
    );
    for l in log.lines() {
        assert!(
            l.starts_with("<6>") || l.starts_with("<4>") || l.starts_with("<3>"),
            "no syslog priority prefix: {l:?}\n{log}"
        );
        assert!(!l.contains("rvsd:") && !l.contains(" INFO "), "{l:?}");
    }
    assert!(
        log.lines()
            .any(|l| l.starts_with("<6>") && l.contains("serving on")),
        "{log}"
    );
    assert!(log.contains("<4>SIGHUP: ignored"), "{log}");
}

#[test]
fn bad_log_level_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(["--io", "none", "--log-level", "loud"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log-level loud"));
}
