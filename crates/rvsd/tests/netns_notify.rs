//! rvsd under a service manager (systemd's `Type=notify` protocol, without
//! systemd: the test is the manager, with a datagram socket in
//! `$NOTIFY_SOCKET`): READY=1 comes only once the rules are loaded, the
//! data plane is attached and rvsadm is answered; STATUS names the packet
//! I/O; STOPPING=1 comes on SIGTERM. A bad rules file never says READY.

mod common;
use common::*;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// The notify socket, and the messages rvsd sent to it so far.
fn manager(lab: &mut Lab) -> UnixDatagram {
    let path = lab.temp_path("notify");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    lab.env.push((
        "NOTIFY_SOCKET".into(),
        path.to_str().expect("path").to_string(),
    ));
    sock
}

fn recv(sock: &UnixDatagram) -> Option<String> {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).to_string())
}

#[test]
fn netns_ready_only_once_forwarding() {
    require_root();
    let mut lab = Lab::new("rvsdn", "ready");
    let sock = manager(&mut lab);
    let peer = lab.ns("p");
    let d = lab.ns("d");
    veth(&d, "eth0", &peer, "eth0");
    let rules = lab.temp_path("rules");
    std::fs::write(
        &rules,
        "-A -t 10.0.0.100:80 -s rr\n-a -t 10.0.0.100:80 -r 10.0.0.11 -g\n",
    )
    .expect("rules");
    let idx = lab.start_rvsd(
        &d,
        Some("xdp"),
        &["eth0"],
        &["--rules", rules.to_str().expect("path")],
    );
    let msg = recv(&sock).unwrap_or_else(|| panic!("no READY=1\n{}", lab.rvsd_log()));
    assert!(msg.contains("READY=1"), "{msg}");
    assert!(
        msg.contains("STATUS=serving 1 virtual service(s); packet I/O: xdp, 1 worker(s)"),
        "{msg}"
    );
    // By then the data plane was attached (logged before) and rvsadm answers.
    let log = lab.rvsd_log();
    assert!(log.contains("rvsd: data plane: --io xdp"), "{log}");
    assert!(lab.adm_ok(&d, &["-L", "-n"]).contains("10.0.0.11:80"));
    lab.stop_rvsd(idx);
    let msg = recv(&sock).unwrap_or_else(|| panic!("no STOPPING=1\n{}", lab.rvsd_log()));
    assert!(msg.contains("STOPPING=1"), "{msg}");
}

#[test]
fn netns_a_bad_rules_file_never_says_ready() {
    require_root();
    let mut lab = Lab::new("rvsdn", "bad");
    let sock = manager(&mut lab);
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let d = lab.ns("d");
    let rules = lab.temp_path("rules");
    std::fs::write(&rules, "-A -t 10.0.0.100:80 -s nosuch\n").expect("rules");
    let rvsd = bin("rvsd");
    let idx = lab.spawn(
        &d,
        rvsd.to_str().expect("path"),
        &["--io", "none", "--rules", rules.to_str().expect("path")],
        std::process::Stdio::null(),
    );
    let status = lab.children[idx].wait().expect("wait");
    assert_eq!(status.code(), Some(2));
    assert_eq!(recv(&sock), None, "READY from an rvsd that did not start");
}

/// systemd's watchdog (`WatchdogSec=1`): WATCHDOG=1 while the workers turn;
/// a worker stalled in a test build (`RVSD_INJECT_STALL=worker`, two seconds
/// after it starts) stops the pings, so systemd would kill and restart rvsd.
#[test]
fn netns_watchdog_pings_only_while_workers_turn() {
    require_root();
    let mut lab = Lab::new("rvsdn", "wd");
    let sock = manager(&mut lab);
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    lab.env.push(("WATCHDOG_USEC".into(), "1000000".into()));
    lab.env.push(("RVSD_INJECT_STALL".into(), "worker".into()));
    let peer = lab.ns("p");
    let d = lab.ns("d");
    veth(&d, "eth0", &peer, "eth0");
    let start = std::time::Instant::now();
    lab.start_rvsd(&d, Some("xdp"), &["eth0"], &[]);
    // Messages in [from, to) after start.
    let window = |from: Duration, to: Duration| -> Vec<String> {
        let mut got = Vec::new();
        while start.elapsed() < to {
            if let Some(m) = recv(&sock)
                && start.elapsed() >= from
            {
                got.push(m);
            }
        }
        got
    };
    let early = window(Duration::ZERO, Duration::from_millis(1800));
    assert!(
        early.iter().any(|m| m.contains("WATCHDOG=1")),
        "no ping while the worker turns: {early:?}\n{}",
        lab.rvsd_log()
    );
    // The stall starts 2 s after the worker; a period later pings stop.
    let late = window(Duration::from_millis(4500), Duration::from_millis(7000));
    assert!(
        !late.iter().any(|m| m.contains("WATCHDOG=1")),
        "pings went on with a stuck worker: {late:?}\n{}",
        lab.rvsd_log()
    );
    let log = lab.rvsd_log();
    assert!(log.contains("made no progress"), "{log}");
}
