// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived's `global_defs` settings of the IPVS table, applied by `rvs
//! health run` to a real rvsd (a kept `rvs lab dr`): `lvs_flush` empties
//! the table before the first batch (a service another tool added goes),
//! `lvs_timeouts` sets ipvsadm's `--set` in that batch, and
//! `lvs_flush_on_stop VS` removes the file's virtual servers at exit and
//! nothing else.
//!
//! Needs root, iproute2 and AF_XDP (see netns_sessions.rs).

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn netns_health_lvs_flush_timeouts_and_flush_on_stop() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("dr", 1, "rr");
    let dir = lab.dir();
    // Another tool's service, there before the checker starts.
    lab.adm(&["-A", "-t", "10.9.9.9:1", "-s", "rr"]);
    let conf = dir.join("table.conf");
    std::fs::write(
        &conf,
        format!(
            "global_defs {{\n lvs_flush\n lvs_timeouts tcp 1234 tcpfin 56 udp 78\n \
             lvs_flush_on_stop VS\n}}\nvirtual_server 10.9.8.7 80 {{\n delay_loop 1\n \
             real_server {} 80 {{\n  TCP_CHECK {{ connect_timeout 1 }}\n }}\n}}\n",
            lab.rips[0]
        ),
    )
    .unwrap();
    // What the start will send, as `rvs health check` shows it.
    let check = Command::new(RVS)
        .args(["health", "check"])
        .arg(&conf)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(
        shown.contains("ipvsadm -C\nipvsadm --set 1234 56 78\nipvsadm -A -t 10.9.8.7:80 -s wlc"),
        "{shown}"
    );
    let log = dir.join("table.log");
    let mut child = health_run(
        &lab.ns("director"),
        &conf,
        &dir.join("table.json"),
        &log,
        &[],
    );
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    let table = loop {
        let t = lab.adm(&["-L", "-n"]);
        if t.contains("10.9.8.7:80") {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "not applied:\n{t}\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !table.contains("10.9.9.9:1"),
        "lvs_flush: emptied first\n{table}"
    );
    assert_eq!(
        lab.adm(&["-L", "--timeout"]).trim(),
        "Timeout (tcp tcpfin udp): 1234 56 78"
    );
    // Added while it runs: not the checker's, kept at exit.
    lab.adm(&["-A", "-t", "10.9.9.10:2", "-s", "rr"]);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "rvs health did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let table = lab.adm(&["-L", "-n"]);
    assert!(
        !table.contains("10.9.8.7:80") && table.contains("10.9.9.10:2"),
        "lvs_flush_on_stop VS: the file's services only\n{table}\n{}",
        read_log()
    );
    assert!(
        read_log().contains("lvs_flush_on_stop: removed 1 service(s)"),
        "{}",
        read_log()
    );
}
