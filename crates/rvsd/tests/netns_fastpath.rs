//! End-to-end XDP fast path: `rvsd --io xdp --fast-path on` (the default)
//! forwards the established flows of a client namespace to real-server
//! namespaces inside its XDP program, and counts them exactly as with the
//! fast path off, at the very moment of every read.
//!
//! Topology (NAT, two segments): client 10.0.1.1 — eth0 [director] eth1 —
//! real servers 10.0.2.11 and 10.0.2.12 (one namespace on a bridge); VIP
//! 10.0.1.100. The veth peers facing the director have GRO on: a veth
//! delivers frames redirected by XDP only in NAPI mode, which rvsd probes.
//!
//! Needs root and AF_XDP (CI has them); `RVS_SKIP_PRIVILEGED_TESTS=1` skips.
//! Namespaces (`rvsfa-…`) and processes are removed by guards.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{FastPathCounters, Reply, Request};

mod common;
use common::*;

/// The prefix of this file's namespaces.
const PREFIX: &str = "rvsfa";

fn ip(ns: &str, args: &[&str]) {
    let mut v = vec!["ip", "-n", ns];
    v.extend_from_slice(args);
    run(&v);
}

/// Names of the namespaces of [`nat_lab`].
struct Nat {
    client: String,
    director: String,
    rs: String,
}

/// UDP echo server: answers every datagram with its own bytes.
const UDP_ECHO: &str = "\
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    d, a = s.recvfrom(65535)
    s.sendto(d, a)
";

/// UDP client: `flows` sockets (source ports 41000 + i), `rounds` rounds
/// in which each flow sends one datagram (sizes cycle through 20..=1200
/// bytes) and waits for its echo, with `pause` seconds between rounds.
/// Prints `answered sent bytes_ip` (bytes as IP lengths).
const UDP_CLIENT: &str = "\
import socket, sys, time
vip, port, flows, rounds, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
socks = []
for i in range(flows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('0.0.0.0', 41000 + i))
    s.settimeout(1.0)
    socks.append(s)
sizes = [20, 200, 700, 1200, 64]
answered = sent = ipbytes = 0
for r in range(rounds):
    for i, s in enumerate(socks):
        n = sizes[(r + i) % len(sizes)]
        d = bytes([(r + i) % 256]) * n
        s.sendto(d, (vip, port))
        sent += 1
        ipbytes += 28 + n
        try:
            got, _ = s.recvfrom(65535)
            if got == d:
                answered += 1
        except socket.timeout:
            pass
    if pause:
        time.sleep(pause)
print(answered, sent, ipbytes)
";

/// Client — director — real servers (NAT); GRO on the peers of the
/// director's links; UDP echo on 10.0.2.11:9000 and 10.0.2.12:9000, a TCP
/// server on 10.0.2.11:8000 sending `tcp_bytes` bytes.
fn nat_lab(lab: &mut Lab) -> Nat {
    nat_lab_gro(lab, true)
}

/// [`nat_lab`], GRO on the peers only with `gro`.
fn nat_lab_gro(lab: &mut Lab, gro: bool) -> Nat {
    let client = lab.ns("c");
    let director = lab.ns("d");
    let rs = lab.ns("r");
    veth(&client, "eth0", &director, "eth0");
    veth(&rs, "eth0", &director, "eth1");
    ip(&client, &["addr", "add", "10.0.1.1/24", "dev", "eth0"]);
    ip(&director, &["addr", "add", "10.0.1.2/24", "dev", "eth0"]);
    ip(&director, &["addr", "add", "10.0.2.1/24", "dev", "eth1"]);
    ip(&director, &["addr", "add", "10.0.1.100/32", "dev", "lo"]);
    ip(&rs, &["addr", "add", "10.0.2.11/24", "dev", "eth0"]);
    ip(&rs, &["addr", "add", "10.0.2.12/24", "dev", "eth0"]);
    ip(
        &client,
        &["route", "add", "10.0.1.100/32", "via", "10.0.1.2"],
    );
    ip(&rs, &["route", "add", "default", "via", "10.0.2.1"]);
    for ns in [&client, &rs] {
        in_netns(ns, move || {
            // NAPI mode for XDP redirects (offloads stay the kernel's).
            if gro {
                rvs_io::packet::set_gro("eth0", true).expect("gro on");
            }
        });
    }
    for a in ["10.0.2.11", "10.0.2.12"] {
        lab.spawn(&rs, "python3", &["-c", UDP_ECHO, a, "9000"], Stdio::null());
    }
    lab.spawn(
        &rs,
        "socat",
        &[
            "TCP-LISTEN:8000,bind=10.0.2.11,fork,reuseaddr",
            "SYSTEM:head -c 300000 /dev/zero",
        ],
        Stdio::null(),
    );
    Nat {
        client,
        director,
        rs,
    }
}

/// rvsd on the NAT lab's director (`--io xdp`, both interfaces, `extra`)
/// with one round-robin service `svc` (`proto`: `-u` or `-t`) and the real
/// server `rs` behind it (`-m`); rvsd's handle.
fn start_nat_service(
    lab: &mut Lab,
    n: &Nat,
    extra: &[&str],
    proto: &str,
    svc: &str,
    rs: &str,
) -> usize {
    let rvsd = lab.start_rvsd(&n.director, Some("xdp"), &["eth0", "eth1"], extra);
    lab.adm_ok(&n.director, &["-A", proto, svc, "-s", "rr"]);
    lab.adm_ok(&n.director, &["-a", proto, svc, "-r", rs, "-m"]);
    rvsd
}

/// [`start_nat_service`] with the UDP service and its first real server.
fn start_udp_service(lab: &mut Lab, n: &Nat, extra: &[&str]) -> usize {
    start_nat_service(lab, n, extra, "-u", UDP_SVC, "10.0.2.11:9000")
}

/// Run the UDP client in `ns`: (answered, sent, IP bytes sent).
fn udp_client(ns: &str, flows: u32, rounds: u32, pause: f64) -> (u64, u64, u64) {
    let o = run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "python3",
        "-c",
        UDP_CLIENT,
        "10.0.1.100",
        "9000",
        &flows.to_string(),
        &rounds.to_string(),
        &pause.to_string(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    let v: Vec<u64> = out
        .split_whitespace()
        .map(|f| f.parse().expect("number"))
        .collect();
    assert_eq!(v.len(), 3, "client printed {out}");
    (v[0], v[1], v[2])
}

/// Bytes received over TCP from VIP:8000 (`socat` to stdout).
fn tcp_fetch(ns: &str) -> usize {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "socat", "-T", "5", "-u"])
        .arg("TCP:10.0.1.100:8000,connect-timeout=3")
        .arg("-")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("socat");
    o.stdout.len()
}

/// The fast path's hit count from rvsd's log at exit.
fn hits(log: &str) -> u64 {
    log.lines()
        .find_map(|l| Some(&l[l.find("rvsd: fast path: hits ")? + 22..]))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether rvsd decides by watching real redirects (live-frames test runs
/// refused, or `RVS_LIVE_FRAMES=off`) rather than with probes.
fn watching(log: &str) -> bool {
    log.contains("deciding by watching real redirects")
}

/// Let the last packets cross the director (the counters themselves are
/// credited by every read).
fn settle() {
    std::thread::sleep(Duration::from_millis(400));
}

/// The fast path's counters of the rvsd of `ns` (`rvs dataplane`'s
/// request), `None` if it is off.
fn fast_path_counters(ns: &str) -> Option<FastPathCounters> {
    in_netns(ns, || {
        let mut c = Client::connect(&Endpoint::Abstract("rvsd.ctl".into())).expect("connect");
        match c.call(Request::DataPlaneStats).expect("call") {
            Reply::DataPlaneStats { fast_path, .. } => fast_path,
            other => panic!("unexpected reply {other:?}"),
        }
    })
}

const UDP_SVC: &str = "10.0.1.100:9000";

/// The same UDP traffic with the fast path on and off: every datagram is
/// answered, and `-L --stats --exact` shows the same packets and bytes,
/// equal to what the client sent (in) and got back (out).
#[test]
fn counters_equal_on_and_off() {
    if !privileged() {
        return;
    }
    let mut results = Vec::new();
    for mode in ["on", "off"] {
        let mut lab = Lab::new(PREFIX, &format!("eq{mode}"));
        let n = nat_lab(&mut lab);
        let rvsd = start_udp_service(&mut lab, &n, &["--fast-path", mode]);
        let (answered, sent, bytes) = udp_client(&n.client, 4, 50, 0.0);
        settle();
        let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats", "--exact"]);
        let conns = lab.adm_ok(&n.director, &["-L", "-n", "-c"]);
        let log = lab.stop_rvsd(rvsd);
        assert_eq!(answered, sent, "{mode}: lost datagrams\n{list}\n{log}");
        let st = service_stats(&list, UDP_SVC);
        assert_eq!(
            st,
            vec![4, sent, sent, bytes, bytes],
            "{mode}: counters\n{list}\n{conns}\n{log}"
        );
        let h = hits(&log);
        eprintln!("--fast-path {mode}: {st:?}, fast-path hits {h}");
        if mode == "on" && watching(&log) {
            // Live frames refused: the fast path starts once a trial frame
            // went through, some ms into this short traffic.
            assert!(h > 0, "fast path unused:\n{log}");
        } else if mode == "on" {
            // 4 flows x 50 rounds, both ways; the first packets of each
            // flow go through the engine.
            assert!(h >= 300, "fast path hardly used ({h} hits):\n{log}");
        } else {
            assert_eq!(h, 0, "fast path used while off:\n{log}");
        }
        results.push(st);
        drop(n.rs);
    }
    assert_eq!(results[0], results[1]);
}

/// TCP through the fast path: a 300 kB download works, the connection is
/// listed, the counters include the fast path's packets (in and out add up
/// to at least what the payload needs), and the engine saw the close.
#[test]
fn tcp_download_through_the_fast_path() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "tcp");
    let n = nat_lab(&mut lab);
    let rvsd = start_nat_service(
        &mut lab,
        &n,
        &["--fast-path", "on"],
        "-t",
        "10.0.1.100:8000",
        "10.0.2.11:8000",
    );
    for _ in 0..3 {
        assert_eq!(tcp_fetch(&n.client), 300_000, "{}", lab.rvsd_log());
    }
    settle();
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats", "--exact"]);
    let st = service_stats(&list, "10.0.1.100:8000");
    assert_eq!(st[0], 3, "{list}");
    assert!(st[4] >= 900_000, "out bytes miss the fast path's:\n{list}");
    let conns = lab.adm_ok(&n.director, &["-L", "-n", "-c"]);
    assert!(
        !conns.contains("ESTABLISHED"),
        "the close was not seen:\n{conns}"
    );
    let log = lab.stop_rvsd(rvsd);
    assert!(hits(&log) > 100, "fast path unused:\n{log}");
}

/// A cache of 2 entries for 6 long-lived flows (12 directions): flows that
/// do not fit keep going through the engine, none loses a datagram.
#[test]
fn tiny_cache_evicts_to_the_slow_path() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "ev");
    let n = nat_lab(&mut lab);
    let rvsd = start_udp_service(
        &mut lab,
        &n,
        &["--fast-path", "on", "--fast-path-entries", "2"],
    );
    let (answered, sent, _) = udp_client(&n.client, 6, 40, 0.01);
    settle();
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats", "--exact"]);
    let log = lab.stop_rvsd(rvsd);
    assert_eq!(answered, sent, "lost datagrams\n{list}\n{log}");
    assert_eq!(service_stats(&list, UDP_SVC)[0], 6, "{list}");
    assert!(hits(&log) > 0, "fast path unused:\n{log}");
}

/// Configuration changes reach cached flows as IPVS would have them: a
/// quiesced (weight 0) server keeps its flows, new flows go elsewhere; a
/// deleted server's flows stop (their packets are dropped), new flows go
/// elsewhere.
#[test]
fn configuration_changes_reach_cached_flows() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "cfg");
    let n = nat_lab(&mut lab);
    let rvsd = start_udp_service(&mut lab, &n, &["--fast-path", "on"]);
    // One flow (source port 41000), cached.
    let (a, s, _) = udp_client(&n.client, 1, 20, 0.0);
    assert_eq!(a, s, "{}", lab.rvsd_log());
    lab.adm_ok(
        &n.director,
        &["-a", "-u", UDP_SVC, "-r", "10.0.2.12:9000", "-m"],
    );
    // Weight 0: the existing flow keeps its server, through the fast path.
    lab.adm_ok(
        &n.director,
        &["-e", "-u", UDP_SVC, "-r", "10.0.2.11:9000", "-m", "-w", "0"],
    );
    let (a, s, _) = udp_client(&n.client, 1, 20, 0.0);
    assert_eq!(a, s, "quiesced server's flow broke\n{}", lab.rvsd_log());
    let conns = lab.adm_ok(&n.director, &["-L", "-n", "-c"]);
    assert!(
        conns.contains("10.0.2.11:9000") && !conns.contains("10.0.2.12:9000"),
        "{conns}"
    );
    // Deleted: the flow's packets are dropped (expire_nodest_conn is off);
    // a new flow (two sockets: 41000 is dead, 41001 new) goes to .12.
    lab.adm_ok(&n.director, &["-d", "-u", UDP_SVC, "-r", "10.0.2.11:9000"]);
    let (a, s, _) = udp_client(&n.client, 2, 5, 0.0);
    assert_eq!(
        (a, s),
        (5, 10),
        "only the new flow answers\n{}\n{}",
        lab.adm_ok(&n.director, &["-L", "-n", "-c"]),
        lab.rvsd_log()
    );
    let conns = lab.adm_ok(&n.director, &["-L", "-n", "-c"]);
    assert!(conns.contains("10.0.1.1:41001"), "{conns}");
    let log = lab.stop_rvsd(rvsd);
    assert!(hits(&log) > 0, "fast path unused:\n{log}");
}

/// The fast path leaves a veth alone while its peer is not in NAPI mode
/// (its redirected frames would be lost), and takes it once it is.
#[test]
fn veth_peers_are_probed() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "probe");
    let n = nat_lab_gro(&mut lab, false);
    let rvsd = start_udp_service(&mut lab, &n, &["--fast-path", "on"]);
    if watching(&lab.rvsd_log()) {
        // fast_path_without_live_frames covers that case.
        eprintln!("skipped: live-frames test runs refused here: no probes to test");
        lab.stop_rvsd(rvsd);
        return;
    }
    assert!(
        lab.rvsd_log()
            .contains("no interface takes redirected XDP frames"),
        "{}",
        lab.rvsd_log()
    );
    let (a, s, _) = udp_client(&n.client, 2, 20, 0.0);
    assert_eq!(a, s, "{}", lab.rvsd_log());
    // NAPI on both peers: within the probe interval, the fast path uses them.
    for ns in [&n.client, &n.rs] {
        in_netns(ns, || {
            rvs_io::packet::set_gro("eth0", true).expect("gro on")
        });
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while lab
        .rvsd_log()
        .matches("takes redirected XDP frames now")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "{}", lab.rvsd_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The same flows again, now cached (2 flows x 50 rounds, both ways;
    // the first packets of each flow wait for the sync thread's install).
    let (a, s, _) = udp_client(&n.client, 2, 50, 0.0);
    assert_eq!(a, s, "{}", lab.rvsd_log());
    let log = lab.stop_rvsd(rvsd);
    let h = hits(&log);
    eprintln!("after the probe: {h} fast-path hits of 200 packets");
    assert!(
        h >= 100,
        "fast path unused after the probe ({h} hits):\n{log}"
    );
}

/// Where live-frames test runs are refused (`RVS_LIVE_FRAMES=off` acts as
/// if): rvsd says so once per interface, decides by watching the fast
/// path's real redirects, and forwards in XDP towards the NAPI peer (the
/// client's, GRO on) but not towards the other (the real server's, no
/// GRO), losing at most a frame per trial there; `rvs dataplane` says why
/// for each. Once the real server's peer has GRO, a later trial finds it.
#[test]
fn fast_path_without_live_frames() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "nolive");
    lab.env
        .push((rvs_io::livefr::ENV.to_string(), "off".to_string()));
    let n = nat_lab_gro(&mut lab, false);
    in_netns(&n.client, || {
        rvs_io::packet::set_gro("eth0", true).expect("gro on")
    });
    let rvsd = start_udp_service(&mut lab, &n, &["--fast-path", "on"]);
    let log = lab.rvsd_log();
    for i in ["eth0", "eth1"] {
        let line = format!(
            "rvsd: fast path: {i}: live-frames test runs refused (RVS_LIVE_FRAMES=off); \
             deciding by watching real redirects"
        );
        assert_eq!(log.matches(&line).count(), 1, "{log}");
    }
    // 2 flows, a datagram each every 50 ms: 2 s and more of probe rounds.
    let (a, s, _) = udp_client(&n.client, 2, 40, 0.05);
    let f = fast_path_counters(&n.director).expect("fast path on");
    eprintln!("fast path: {f:?}\n{}", lab.rvsd_log());
    assert_eq!(f.egress, vec!["eth0".to_string()], "{f:?}");
    assert!(f.hits > 0, "{f:?}");
    assert!(f.why[0].starts_with("eth0: on: "), "{:?}", f.why);
    assert!(
        f.why[1].starts_with("eth1: off: ") || f.why[1].starts_with("eth1: trial: "),
        "{:?}",
        f.why
    );
    for w in &f.why {
        assert!(
            w.contains("live-frames test runs refused (RVS_LIVE_FRAMES=off), so deciding by watching real redirects"),
            "{w}"
        );
    }
    // Lost: the trial frames towards eth1, one per trial (at 0, 1, 3 s...,
    // the client waiting a second for each).
    eprintln!("{} of {s} datagrams lost (trial frames)", s - a);
    assert!(s - a <= 4, "{a} of {s} answered\n{f:?}");
    // The real server's peer in NAPI mode: a later trial (backoff 4 s at
    // most by now) finds it.
    in_netns(&n.rs, || {
        rvs_io::packet::set_gro("eth0", true).expect("gro on")
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while !lab
        .rvsd_log()
        .contains("eth1 takes redirected XDP frames now (real redirects reached its peer)")
    {
        assert!(Instant::now() < deadline, "{}", lab.rvsd_log());
        udp_client(&n.client, 1, 5, 0.1);
    }
    let before = fast_path_counters(&n.director).expect("fast path on");
    let (a, s, _) = udp_client(&n.client, 2, 50, 0.0);
    assert_eq!(a, s, "{}", lab.rvsd_log());
    let after = fast_path_counters(&n.director).expect("fast path on");
    assert_eq!(after.egress, vec!["eth0".to_string(), "eth1".to_string()]);
    assert!(after.why[1].starts_with("eth1: on: "), "{:?}", after.why);
    eprintln!(
        "both ways in XDP: {} hits of {} packets",
        after.hits - before.hits,
        2 * s
    );
    assert!(after.hits - before.hits >= s, "{before:?}\n{after:?}");
    lab.stop_rvsd(rvsd);
}

/// Without live frames, NAPI peers on both sides: both interfaces are
/// found to take redirects right after the first frame the fast path
/// redirected (the sync thread looks at a trial's budget every 5 ms and
/// reads the answer as soon as it is spent; 0-20 ms measured), and no
/// datagram is lost.
#[test]
fn without_live_frames_decided_within_a_round() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "nolive2");
    lab.env
        .push((rvs_io::livefr::ENV.to_string(), "off".to_string()));
    let n = nat_lab(&mut lab);
    let rvsd = start_udp_service(&mut lab, &n, &["--fast-path", "on"]);
    let director = n.director.clone();
    let watcher = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut first_hit = None;
        while t0.elapsed() < Duration::from_secs(10) {
            let f = fast_path_counters(&director).expect("fast path on");
            let now = Instant::now();
            if f.hits > 0 {
                first_hit.get_or_insert(now);
            }
            if f.egress.len() == 2 {
                return first_hit.map(|h| now - h);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    });
    let (a, s, _) = udp_client(&n.client, 2, 60, 0.03);
    let decided = watcher.join().expect("counters watcher");
    eprintln!("both interfaces on {decided:?} after the first redirected frame");
    assert_eq!(a, s, "{}", lab.rvsd_log());
    assert!(
        decided.is_some_and(|d| d <= Duration::from_millis(500)),
        "{decided:?}\n{}",
        lab.rvsd_log()
    );
    let f = fast_path_counters(&n.director).expect("fast path on");
    assert!(f.hits > 0, "{f:?}");
    lab.stop_rvsd(rvsd);
}

/// With the fast path on, the counters include every
/// packet the fast path forwarded at the moment of the read, with no wait:
/// `-L --stats --exact` right after the client's last echo, and `-Z`
/// right after traffic (nothing forwarded before it is counted after it).
/// `rvs dataplane`'s counters show the fast path at work.
#[test]
fn counters_exact_at_read_time() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "exact");
    let n = nat_lab(&mut lab);
    // Explicitly: the suites also run with RVSD_FAST_PATH=off.
    let rvsd = start_udp_service(&mut lab, &n, &["--fast-path", "on"]);
    let watch = watching(&lab.rvsd_log());
    assert!(
        watch || lab.rvsd_log().contains("fast path on towards eth0, eth1"),
        "{}",
        lab.rvsd_log()
    );
    // 4 flows, cached in both directions before the measured traffic (and
    // where live frames are refused, the trial frames found the NAPI peers).
    let (a0, s0, b0) = udp_client(&n.client, 4, 3, 0.0);
    assert_eq!(a0, s0, "{}", lab.rvsd_log());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let f = fast_path_counters(&n.director).expect("fast path on");
        if f.entries >= 8 && f.egress.len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "flows not cached: {f:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = fast_path_counters(&n.director).expect("fast path");
    let (a1, s1, b1) = udp_client(&n.client, 4, 100, 0.0);
    // No sleep: the read itself must credit the fast path.
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats", "--exact"]);
    assert_eq!(a1, s1, "lost datagrams\n{list}\n{}", lab.rvsd_log());
    let (sent, bytes) = (s0 + s1, b0 + b1);
    assert_eq!(
        service_stats(&list, UDP_SVC),
        vec![4, sent, sent, bytes, bytes],
        "counters at read time\n{list}"
    );
    let after = fast_path_counters(&n.director).expect("fast path");
    eprintln!("fast path before {before:?}\nafter {after:?}");
    // 4 flows x 100 rounds, both ways, all cached (most of it: a change
    // of the neighbours or ports would send a few packets per flow through
    // the engine while the flows are cached again).
    assert!(
        after.packets - before.packets >= 700 && after.hits - before.hits >= 700,
        "the measured traffic missed the fast path:\n{before:?}\n{after:?}\n{}",
        lab.rvsd_log()
    );
    // rvs dataplane credits first: what the statistics got is what the
    // XDP program counted (no entry was evicted).
    assert_eq!(
        (after.packets, after.evictions),
        (after.hits, 0),
        "{after:?}"
    );
    assert_eq!(after.egress, vec!["eth0".to_string(), "eth1".to_string()]);
    assert_eq!(after.mode, "on");
    assert!(after.installs >= 8, "{after:?}");
    // Traffic, then -Z at once: what came before is zeroed, not credited
    // afterwards.
    let (a2, s2, _) = udp_client(&n.client, 4, 20, 0.0);
    assert_eq!(a2, s2);
    lab.adm_ok(&n.director, &["-Z"]);
    let (a3, s3, b3) = udp_client(&n.client, 4, 10, 0.0);
    assert_eq!(a3, s3);
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats", "--exact"]);
    assert_eq!(
        service_stats(&list, UDP_SVC),
        vec![0, s3, s3, b3, b3],
        "counters after -Z\n{list}"
    );
    lab.stop_rvsd(rvsd);
}

/// Keep-alive HTTP load through NAT with the fast path on:
/// the probes of the busy veths must not flap (every flip moves all flows
/// of an interface to the engine and back), wrk sees no socket errors, and
/// the fast path carries the traffic.
#[test]
fn http_load_keeps_the_fast_path() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "http");
    let n = nat_lab(&mut lab);
    let dir = lab.temp_path("nginx");
    std::fs::create_dir_all(dir.join("www")).expect("mkdir");
    std::fs::create_dir_all(dir.join("tmp")).expect("mkdir");
    std::fs::write(dir.join("www/index.html"), vec![b'x'; 2000]).expect("index");
    let d = dir.to_str().expect("utf8 path");
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/err;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n access_log off;\n keepalive_requests 100000000;\n\
         client_body_temp_path {d}/tmp;\n\
         server {{\n  listen 10.0.2.11:80;\n  root {d}/www;\n }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("conf");
    lab.spawn(
        &n.rs,
        "nginx",
        &["-p", d, "-c", &format!("{d}/nginx.conf")],
        Stdio::null(),
    );
    let rvsd = start_nat_service(
        &mut lab,
        &n,
        &["--fast-path", "on"],
        "-t",
        "10.0.1.100:80",
        "10.0.2.11:80",
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while http_get(&n.client, "http://10.0.1.100/").is_none() {
        assert!(Instant::now() < deadline, "no answer\n{}", lab.rvsd_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Long enough for several probes (one a second) under load.
    let o = lab.exec(
        &n.client,
        &[
            "wrk",
            "-t",
            "2",
            "-c",
            "32",
            "-d",
            "4s",
            "http://10.0.1.100/",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let log = lab.rvsd_log();
    let f = fast_path_counters(&n.director).expect("fast path on");
    lab.stop_rvsd(rvsd);
    eprintln!("{out}\n{f:?}");
    assert!(
        !log.contains("no longer takes redirected XDP frames"),
        "the probe flapped under load:\n{log}"
    );
    assert!(
        !out.contains("Socket errors") && !out.contains("Non-2xx"),
        "wrk saw errors:\n{out}\n{log}"
    );
    let requests: u64 = out
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in\n{out}"));
    assert!(requests > 1000, "{out}");
    assert!(f.hits > requests, "fast path unused: {f:?}\n{out}");
}
