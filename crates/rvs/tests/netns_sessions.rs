//! Sessions on the wire: real clients and real servers in a kept `rvs lab`
//! (network namespaces, `rvsd --io xdp` in the director), reconfigured with
//! `rvsadm`, checking what the kernel's IPVS does: every scheduler's
//! choices, persistence (templates, PCC, weight 0), long-lived sessions, UDP
//! in every forwarding mode (with and without one-packet scheduling),
//! timeouts and connection states, thresholds, firewall-mark persistence.
//!
//! Needs root, iproute2, python3 and AF_XDP; skipped (with a message) when
//! `RVS_SKIP_PRIVILEGED_TESTS` is set and something is missing. `rvsd` and
//! `rvsadm` must sit next to `rvs` (`cargo build -p rvs -p rvsd -p rvsadm`).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// The `name+echo` TCP ports started in the real servers (one per case, so
/// that no case sees another's leftover connections).
const PORTS: [u16; 8] = [7000, 7001, 7002, 7003, 7004, 7005, 7006, 7007];

fn addr(lab: &Lab, port: u16) -> SocketAddr {
    SocketAddr::from((lab.vip, port))
}

/// `n` short connections from `src` to VIP:port, in the client namespace.
fn run_whos(lab: &Lab, src: Option<Ipv4Addr>, port: u16, n: usize) -> Vec<String> {
    let dst = addr(lab, port);
    lab.client(move || whos(src, dst, n))
        .unwrap_or_else(|e| panic!("{e}\nrvsd log:\n{}", lab.rvsd_log()))
}

/// One held connection from the client to VIP:port: the stream and who
/// answered.
fn hold(lab: &Lab, port: u16) -> (TcpStream, String) {
    let dst = addr(lab, port);
    lab.client(move || hello(None, dst))
        .unwrap_or_else(|e| panic!("{e}\nrvsd log:\n{}", lab.rvsd_log()))
}

/// `rvsadm -e` of real server `rip` on TCP VIP:port with extra `args`.
fn edit(lab: &Lab, port: u16, rip: Ipv4Addr, args: &[&str]) {
    let svc = lab.vip_port(port);
    let r = format!("{rip}:{port}");
    let mut a = vec!["-e", "-t", &svc, "-r", &r, lab.flag()];
    a.extend_from_slice(args);
    lab.adm(&a);
}

/// `Conns` per real server (by name) of TCP VIP:port must equal `names`.
fn check_stats(lab: &Lab, port: u16, names: &[String]) {
    let stats = lab.adm(&["-L", "-n", "--stats", "--exact", "-t", &lab.vip_port(port)]);
    let t = tally(names);
    for rip in &lab.rips {
        let name = lab.rs_name(*rip);
        let want = t.get(&name).copied().unwrap_or(0) as u64;
        assert_eq!(
            stats_conns(&stats, *rip),
            want,
            "Conns of {name} ({rip}), answers {t:?}:\n{stats}"
        );
    }
}

fn all_same(names: &[String]) -> bool {
    names.windows(2).all(|w| w[0] == w[1])
}

// ---------------------------------------------------------------------------
// 1. Schedulers

/// rr alternates exactly; wrr 1:3 over 400 new connections.
#[test]
fn netns_sched_rr_wrr() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("nat", 2, "rr");
    lab.start_servers(&PORTS, &[]);

    lab.service("-t", 7000, &["-s", "rr"]);
    let names = run_whos(&lab, None, 7000, 20);
    for w in names.windows(2) {
        assert_ne!(w[0], w[1], "rr must alternate: {names:?}");
    }
    assert_eq!(tally(&names).len(), 2, "{names:?}");
    check_stats(&lab, 7000, &names);

    lab.service("-t", 7001, &["-s", "wrr"]);
    edit(&lab, 7001, lab.rips[1], &["-w", "3"]);
    let names = run_whos(&lab, None, 7001, 400);
    let t = tally(&names);
    let (n1, n2) = (
        t.get("rs1").copied().unwrap_or(0),
        t.get("rs2").copied().unwrap_or(0),
    );
    // 1:3 within ±5% of the 400.
    assert!(
        n1.abs_diff(100) <= 20 && n2.abs_diff(300) <= 20,
        "wrr 1:3 over 400: {t:?}"
    );
    check_stats(&lab, 7001, &names);
}

/// lc, wlc, sed, nq: while three long-lived connections are held open to
/// rs1, new connections go to rs2 (fewer active connections); the held ones
/// show as ActiveConn 3.
#[test]
fn netns_sched_least_connection() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("nat", 2, "rr");
    lab.start_servers(&PORTS, &[]);
    let (rs1, rs2) = (lab.rips[0], lab.rips[1]);
    for (sched, port) in [("lc", 7000), ("wlc", 7001), ("sed", 7002), ("nq", 7003)] {
        lab.service("-t", port, &["-s", sched]);
        // rs2 quiesced while the long-lived connections are made.
        edit(&lab, port, rs2, &["-w", "0"]);
        let held: Vec<(TcpStream, String)> = (0..3).map(|_| hold(&lab, port)).collect();
        let mut names: Vec<String> = held.iter().map(|(_, n)| n.clone()).collect();
        assert!(names.iter().all(|n| n == "rs1"), "{sched}: {names:?}");
        edit(&lab, port, rs2, &["-w", "1"]);
        let ln = lab.adm(&["-L", "-n", "-t", &lab.vip_port(port)]);
        assert_eq!(active_inact(&ln, rs1).0, 3, "{sched}:\n{ln}");
        let short = run_whos(&lab, None, port, 10);
        assert!(
            short.iter().all(|n| n == "rs2"),
            "{sched}: rs1 holds 3 active connections, new ones must go to rs2: {short:?}\n{ln}"
        );
        names.extend(short);
        check_stats(&lab, port, &names);
        drop(held);
        // Closed: no longer active.
        let ok = poll(Duration::from_secs(3), || {
            let ln = lab.adm(&["-L", "-n", "-t", &lab.vip_port(port)]);
            (active_inact(&ln, rs1).0 == 0).then_some(())
        });
        assert!(
            ok.is_some(),
            "{sched}: rs1 still active after close:\n{}",
            lab.adm(&["-L", "-n"])
        );
    }
}

/// sh maps a client to one server every time (and different clients over
/// both); dh, lblc and lblcr stick the destination (the one VIP) to one
/// server whatever the client.
#[test]
fn netns_sched_hashing_and_locality() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("nat", 2, "rr");
    lab.start_servers(&PORTS, &[]);
    let clients = lab.add_client_addrs(8);

    lab.service("-t", 7000, &["-s", "sh"]);
    let mut all = Vec::new();
    let mut per_client = BTreeMap::new();
    for c in &clients {
        let names = run_whos(&lab, Some(*c), 7000, 5);
        assert!(all_same(&names), "sh: client {c}: {names:?}");
        per_client.insert(*c, names[0].clone());
        all.extend(names);
    }
    let used: std::collections::BTreeSet<&String> = per_client.values().collect();
    assert_eq!(
        used.len(),
        2,
        "sh: 8 clients over 2 servers: {per_client:?}"
    );
    check_stats(&lab, 7000, &all);

    for (sched, port) in [("dh", 7001), ("lblc", 7002), ("lblcr", 7003)] {
        lab.service("-t", port, &["-s", sched]);
        let mut names = Vec::new();
        for c in &clients[..4] {
            names.extend(run_whos(&lab, Some(*c), port, 5));
        }
        assert!(
            all_same(&names),
            "{sched}: one destination, one server: {names:?}"
        );
        check_stats(&lab, port, &names);
    }
}

/// mh: each client sticks to one server; removing one of three servers
/// moves only (about) the clients that were on it.
#[test]
fn netns_sched_mh_remove_server() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("nat", 3, "rr");
    lab.start_servers(&[7000], &[]);
    let clients = lab.add_client_addrs(16);
    let svc = lab.service("-t", 7000, &["-s", "mh"]);
    let map = |lab: &Lab| -> BTreeMap<Ipv4Addr, String> {
        clients
            .iter()
            .map(|c| {
                let names = run_whos(lab, Some(*c), 7000, 3);
                assert!(all_same(&names), "mh: client {c}: {names:?}");
                (*c, names[0].clone())
            })
            .collect()
    };
    let before = map(&lab);
    let on_rs3 = before.values().filter(|n| *n == "rs3").count();
    assert!(on_rs3 > 0 && on_rs3 < clients.len(), "{before:?}");
    lab.adm(&["-d", "-t", &svc, "-r", &format!("{}:7000", lab.rips[2])]);
    let after = map(&lab);
    let mut moved_others = 0;
    for c in &clients {
        if before[c] == "rs3" {
            assert_ne!(after[c], "rs3", "{c} still on the removed server");
        } else if before[c] != after[c] {
            moved_others += 1;
        }
    }
    // Maglev: removing one of three servers disturbs about 1/3 of the
    // clients: those on it, plus at most a small share of the others.
    assert!(
        moved_others <= 1,
        "mh moved {moved_others} clients that were not on the removed server:\nbefore {before:?}\nafter {after:?}"
    );
}

/// fo follows the highest weight; ovf fills the highest-weight server up to
/// its weight in active connections, then overflows to the next.
#[test]
fn netns_sched_fo_ovf() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("nat", 2, "rr");
    lab.start_servers(&PORTS, &[]);
    let (rs1, rs2) = (lab.rips[0], lab.rips[1]);

    lab.service("-t", 7000, &["-s", "fo"]);
    edit(&lab, 7000, rs2, &["-w", "3"]);
    let mut names = run_whos(&lab, None, 7000, 10);
    assert!(names.iter().all(|n| n == "rs2"), "fo: {names:?}");
    edit(&lab, 7000, rs2, &["-w", "0"]);
    let next = run_whos(&lab, None, 7000, 10);
    assert!(
        next.iter().all(|n| n == "rs1"),
        "fo, rs2 quiesced: {next:?}"
    );
    names.extend(next);
    check_stats(&lab, 7000, &names);

    lab.service("-t", 7001, &["-s", "ovf"]);
    edit(&lab, 7001, rs1, &["-w", "2"]);
    let held: Vec<(TcpStream, String)> = (0..5).map(|_| hold(&lab, 7001)).collect();
    let names: Vec<String> = held.iter().map(|(_, n)| n.clone()).collect();
    // rs1 (weight 2) until its active connections exceed 2, then rs2
    // (weight 1) until its exceed 1.
    assert_eq!(names, ["rs1", "rs1", "rs1", "rs2", "rs2"], "ovf");
    // Both over their weight: nothing left for a sixth.
    let dst = addr(&lab, 7001);
    let sixth = lab.client(move || who(None, dst));
    assert!(sixth.is_err(), "ovf: a sixth connection got {sixth:?}");
    check_stats(&lab, 7001, &names);
}

/// The first connection from a client address the director has never
/// heard of completes without a retransmission (the kernel queues the
/// packets of a next hop being resolved; a dropped SYN-ACK costs the client
/// a 1 s SYN retransmit).
#[test]
fn netns_new_client_first_packet() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("nat", 2, "rr");
    lab.start_servers(&[7000], &[]);
    lab.service("-t", 7000, &["-s", "rr"]);
    let o = lab.client_ip.octets();
    let fresh = Ipv4Addr::new(o[0], o[1], o[2], 99);
    sh(&[
        "ip",
        "-n",
        &lab.ns("client"),
        "addr",
        "add",
        &format!("{fresh}/24"),
        "dev",
        "eth0",
    ]);
    let dst = addr(&lab, 7000);
    let took = lab.client(move || {
        let t = std::time::Instant::now();
        who(Some(fresh), dst).map(|_| t.elapsed())
    });
    let took = took.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        took < Duration::from_millis(500),
        "first connection from a new client took {took:?}"
    );
}

// ---------------------------------------------------------------------------
// 2. Persistence

/// The `-Lnc` entries that are persistence templates (client port 0).
fn templates(lab: &Lab) -> Vec<ConnLine> {
    conn_lines(&lab.adm(&["-L", "-n", "-c"]))
        .into_iter()
        .filter(|c| c.source.ends_with(":0"))
        .collect()
}

/// `-p 60`: 20 connections of one client reach one server; another client
/// address (outside the default /32 netmask) gets its own choice (rr: the
/// other server) and sticks to it too; both templates are listed with
/// client port 0.
#[test]
fn netns_persistence_client_sticks() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("dr", 2, "rr");
    lab.start_servers(&[7000], &[]);
    let other = lab.add_client_addrs(1)[0];
    lab.service("-t", 7000, &["-s", "rr", "-p", "60"]);
    let a = run_whos(&lab, None, 7000, 20);
    assert!(all_same(&a), "client {}: {a:?}", lab.client_ip);
    let b = run_whos(&lab, Some(other), 7000, 20);
    assert!(all_same(&b), "client {other}: {b:?}");
    assert_ne!(
        a[0], b[0],
        "rr: the second client's template takes the other server"
    );
    let t = templates(&lab);
    for (c, name) in [(lab.client_ip, &a[0]), (other, &b[0])] {
        let line = t
            .iter()
            .find(|l| l.source == format!("{c}:0"))
            .unwrap_or_else(|| panic!("no template of {c}: {t:?}"));
        assert_eq!(line.virt, lab.vip_port(7000), "{line:?}");
        let rip = lab.rips[name[2..].parse::<usize>().expect("rsN") - 1];
        assert_eq!(line.dest, format!("{rip}:7000"), "{line:?}");
        assert!(line.expire > 50 && line.expire <= 60, "{line:?}");
    }
    assert_eq!(t.len(), 2, "{t:?}");
    let mut all = a;
    all.extend(b);
    check_stats(&lab, 7000, &all);
}

/// `-p 2` with FIN_WAIT shortened to 1 s (`--set 0 1 0`): once the
/// connections are closed and gone, the template expires (listed with
/// client port 0, then gone) and the next connection is scheduled anew (rr:
/// the other server).
#[test]
fn netns_persistence_template_expires() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("dr", 2, "rr");
    lab.start_servers(&[7000], &[]);
    lab.adm(&["--set", "0", "1", "0"]);
    lab.service("-t", 7000, &["-s", "rr", "-p", "2"]);
    let first = run_whos(&lab, None, 7000, 3);
    assert!(all_same(&first), "{first:?}");
    let t = templates(&lab);
    assert_eq!(t.len(), 1, "one template: {t:?}");
    assert_eq!(t[0].source, format!("{}:0", lab.client_ip), "{t:?}");
    assert!(t[0].expire <= 2, "{t:?}");
    let start = std::time::Instant::now();
    let gone = poll(Duration::from_secs(8), || {
        let c = conn_lines(&lab.adm(&["-L", "-n", "-c"]));
        c.is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "template and connections still listed after 8 s:\n{}",
        lab.adm(&["-L", "-n", "-c"])
    );
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "the template went too early ({:?})",
        start.elapsed()
    );
    let next = run_whos(&lab, None, 7000, 3);
    assert!(all_same(&next), "{next:?}");
    assert_ne!(next[0], first[0], "a new choice after the template expired");
}

/// PCC (port-0 persistent service): one client's connections to two
/// different ports of the VIP land on one server.
#[test]
fn netns_persistence_pcc_all_ports() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("dr", 2, "rr");
    lab.start_servers(&[7000, 7001], &[]);
    let other = lab.add_client_addrs(1)[0];
    lab.service("-t", 0, &["-s", "rr", "-p", "60"]);
    for src in [None, Some(other)] {
        let mut names = Vec::new();
        for _ in 0..5 {
            names.extend(run_whos(&lab, src, 7000, 1));
            names.extend(run_whos(&lab, src, 7001, 1));
        }
        assert!(all_same(&names), "PCC, client {src:?}: {names:?}");
    }
    let t = templates(&lab);
    assert_eq!(t.len(), 2, "{t:?}");
    for l in &t {
        assert_eq!(l.virt, lab.vip_port(0), "PCC template: {l:?}");
    }
}

/// Weight 0: persistent clients keep their server, new clients go
/// elsewhere.
#[test]
fn netns_persistence_weight_zero_keeps_clients() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("nat", 2, "rr");
    lab.start_servers(&[7000], &[]);
    let new = lab.add_client_addrs(2);
    lab.service("-t", 7000, &["-s", "rr", "-p", "60"]);
    let a = run_whos(&lab, None, 7000, 5);
    assert!(all_same(&a), "{a:?}");
    let x = lab.rips[a[0][2..].parse::<usize>().expect("rsN") - 1];
    edit(&lab, 7000, x, &["-w", "0"]);
    let again = run_whos(&lab, None, 7000, 5);
    assert!(
        again.iter().all(|n| *n == a[0]),
        "the persistent client left its quiesced server: {again:?}"
    );
    for c in new {
        let n = run_whos(&lab, Some(c), 7000, 5);
        assert!(
            n.iter().all(|n| *n != a[0]),
            "new client {c} sent to the quiesced server: {n:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// 3. Long-lived sessions

/// An interactive session (echo) held open through a wrr service keeps
/// working while 30 other connections come and go; `-Ln` shows it as the
/// one ActiveConn of its server.
#[test]
fn netns_long_lived_session() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("nat", 2, "rr");
    lab.start_servers(&[7000], &[]);
    let svc = lab.service("-t", 7000, &["-s", "wrr"]);
    let (mut s, name) = hold(&lab, 7000);
    let rip = lab.rips[name[2..].parse::<usize>().expect("rsN") - 1];
    let other = *lab.rips.iter().find(|r| **r != rip).expect("two servers");
    let active_is = |mine: u64, theirs: u64| {
        poll(Duration::from_secs(3), || {
            let ln = lab.adm(&["-L", "-n", "-t", &svc]);
            (active_inact(&ln, rip).0 == mine && active_inact(&ln, other).0 == theirs).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "want ActiveConn {mine} on {rip}, {theirs} on {other}:\n{}",
                lab.adm(&["-L", "-n"])
            )
        })
    };
    active_is(1, 0);
    let mut names = vec![name.clone()];
    for round in 0..6 {
        echo(&mut s, &format!("round {round} of an interactive session"))
            .unwrap_or_else(|e| panic!("session, round {round}: {e}"));
        names.extend(run_whos(&lab, None, 7000, 5));
    }
    active_is(1, 0);
    echo(&mut s, "still here").expect("session at the end");
    check_stats(&lab, 7000, &names);
    drop(s);
    active_is(0, 0);
}

// ---------------------------------------------------------------------------
// 4. UDP

/// A DNS-like request/response through MODE: the answers come from
/// VIP:5353; a stream of datagrams from one client port sticks to one
/// server (another port gets the other, rr); with `-o` every datagram is
/// scheduled on its own (rr: they alternate).
fn udp(mode: &str) {
    let lab = Lab::start(mode, 2, "rr");
    lab.start_servers(&[], &[5353]);
    let svc = lab.service("-u", 5353, &["-s", "rr"]);
    let dst = SocketAddr::from((lab.vip, 5353));
    let (a, b) = lab.client(move || {
        let ask = |s: &std::net::UdpSocket| -> Result<Vec<String>, String> {
            (0..10)
                .map(|i| {
                    let (name, from) = udp_ask(
                        Some(s),
                        dst,
                        format!("query {i}").as_bytes(),
                        Duration::from_secs(2),
                    )?;
                    if from != dst {
                        return Err(format!("answer from {from}, not {dst}"));
                    }
                    Ok(name)
                })
                .collect()
        };
        let (s1, s2) = (udp_socket(None), udp_socket(None));
        (ask(&s1), ask(&s2))
    });
    let a = a.unwrap_or_else(|e| panic!("{mode}: {e}\n{}", lab.rvsd_log()));
    let b = b.unwrap_or_else(|e| panic!("{mode}: {e}\n{}", lab.rvsd_log()));
    assert!(all_same(&a), "{mode}: one client port, one server: {a:?}");
    assert!(all_same(&b), "{mode}: {b:?}");
    assert_ne!(
        a[0], b[0],
        "{mode}: rr gives the second flow the other server"
    );
    let c = conn_lines(&lab.adm(&["-L", "-n", "-c"]));
    assert_eq!(
        c.iter().filter(|l| l.proto == "UDP").count(),
        2,
        "{mode}: {c:?}"
    );
    let mut all = a;
    all.extend(b);
    let stats = lab.adm(&["-L", "-n", "--stats", "--exact", "-u", &svc]);
    for rip in &lab.rips {
        assert_eq!(
            stats_conns(&stats, *rip),
            1,
            "{mode}: one flow each:\n{stats}"
        );
    }

    // One-packet scheduling: every datagram is a new scheduling decision
    // (rr: they alternate), and no entry stays in the table. In NAT the
    // kernel keeps no entry to translate the answers with either, so only
    // DR and TUN are asked for answers; NAT is judged by its counters.
    lab.adm(&["-E", "-u", &svc, "-s", "rr", "-o"]);
    lab.adm(&["-Z", "-u", &svc]);
    if mode == "nat" {
        lab.client(move || {
            let s = udp_socket(None);
            for i in 0..10 {
                s.send_to(format!("ops {i}").as_bytes(), dst).expect("send");
            }
        });
        let stats = poll(Duration::from_secs(3), || {
            let stats = lab.adm(&["-L", "-n", "--stats", "--exact", "-u", &svc]);
            lab.rips
                .iter()
                .all(|r| stats_conns(&stats, *r) == 5)
                .then_some(stats)
        });
        assert!(
            stats.is_some(),
            "nat -o: 10 datagrams, 5 new entries each:\n{}",
            lab.adm(&["-L", "-n", "--stats", "--exact"])
        );
    } else {
        let ops = lab.client(move || {
            let s = udp_socket(None);
            (0..10)
                .map(|i| {
                    udp_ask(
                        Some(&s),
                        dst,
                        format!("ops {i}").as_bytes(),
                        Duration::from_secs(2),
                    )
                    .map(|r| r.0)
                })
                .collect::<Result<Vec<String>, String>>()
        });
        let ops = ops.unwrap_or_else(|e| panic!("{mode} -o: {e}\n{}", lab.rvsd_log()));
        for w in ops.windows(2) {
            assert_ne!(w[0], w[1], "{mode} -o: datagrams must alternate: {ops:?}");
        }
    }
    let c = conn_lines(&lab.adm(&["-L", "-n", "-c"]));
    assert_eq!(
        c.iter().filter(|l| l.proto == "UDP").count(),
        2,
        "{mode} -o: one-packet datagrams leave no entry: {c:?}"
    );
}

#[test]
fn netns_udp_nat() {
    if can_run() {
        udp("nat");
    }
}

#[test]
fn netns_udp_dr() {
    if can_run() {
        udp("dr");
    }
}

#[test]
fn netns_udp_tun() {
    if can_run() {
        udp("tun");
    }
}

// ---------------------------------------------------------------------------
// 5. Timeouts and states

/// `--set 0 0 2`: a UDP entry vanishes from `-Lnc` about 2 s after its
/// last datagram.
#[test]
fn netns_udp_timeout_set() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("nat", 2, "rr");
    lab.start_servers(&[], &[5353]);
    lab.adm(&["--set", "0", "0", "2"]);
    let t = lab.adm(&["-L", "--timeout"]);
    assert_eq!(t.trim(), "Timeout (tcp tcpfin udp): 900 120 2", "{t}");
    lab.service("-u", 5353, &["-s", "rr"]);
    let dst = SocketAddr::from((lab.vip, 5353));
    lab.client(move || udp_ask(None, dst, b"q", Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.rvsd_log()));
    let start = std::time::Instant::now();
    let c = conn_lines(&lab.adm(&["-L", "-n", "-c"]));
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(
        (c[0].proto.as_str(), c[0].state.as_str()),
        ("UDP", "UDP"),
        "{c:?}"
    );
    assert!(c[0].expire <= 2, "{c:?}");
    poll(Duration::from_secs(5), || {
        conn_lines(&lab.adm(&["-L", "-n", "-c"]))
            .is_empty()
            .then_some(())
    })
    .unwrap_or_else(|| panic!("UDP entry still listed:\n{}", lab.adm(&["-L", "-n", "-c"])));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took <= Duration::from_secs(4),
        "UDP entry lived {took:?}"
    );
}

/// The `-Lnc` entry of the connection from `src`.
fn conn_of(lab: &Lab, src: SocketAddr) -> Option<ConnLine> {
    conn_lines(&lab.adm(&["-L", "-n", "-c"]))
        .into_iter()
        .find(|l| l.source == src.to_string())
}

/// NAT: a real TCP connection is ESTABLISHED (15 min) and active while
/// open; after close it is TIME_WAIT, inactive, its expire time counting
/// down.
#[test]
fn netns_tcp_states_nat() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("nat", 2, "rr");
    lab.start_servers(&[7000], &[]);
    let svc = lab.service("-t", 7000, &["-s", "rr"]);
    let (s, name) = hold(&lab, 7000);
    let rip = lab.rips[name[2..].parse::<usize>().expect("rsN") - 1];
    let src = s.local_addr().expect("local address");
    let l = conn_of(&lab, src).unwrap_or_else(|| panic!("no entry for {src}"));
    assert_eq!(l.state, "ESTABLISHED", "{l:?}");
    assert!(l.expire > 890 && l.expire <= 900, "{l:?}");
    assert_eq!(l.dest, format!("{rip}:7000"), "{l:?}");
    let ln = lab.adm(&["-L", "-n", "-t", &svc]);
    assert_eq!(active_inact(&ln, rip), (1, 0), "{ln}");
    drop(s);
    let tw = poll(Duration::from_secs(3), || {
        conn_of(&lab, src).filter(|l| l.state == "TIME_WAIT")
    })
    .unwrap_or_else(|| panic!("no TIME_WAIT:\n{}", lab.adm(&["-L", "-n", "-c"])));
    assert!(tw.expire > 110 && tw.expire <= 120, "{tw:?}");
    let ln = lab.adm(&["-L", "-n", "-t", &svc]);
    assert_eq!(active_inact(&ln, rip), (0, 1), "{ln}");
    std::thread::sleep(Duration::from_millis(2100));
    let later = conn_of(&lab, src).unwrap_or_else(|| panic!("entry gone"));
    assert!(
        later.expire < tw.expire,
        "expire must count down: {tw:?} then {later:?}"
    );
}

/// DR with `--set 5 2 0`: ESTABLISHED shows at most 5 s, FIN_WAIT (the
/// client's FIN, the replies never seen) at most 2 s, then the entry is
/// gone; ActiveConn/InActConn follow.
#[test]
fn netns_tcp_states_dr_set_timeouts() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("dr", 2, "rr");
    lab.start_servers(&[7000], &[]);
    lab.adm(&["--set", "5", "2", "0"]);
    let t = lab.adm(&["-L", "--timeout"]);
    assert_eq!(t.trim(), "Timeout (tcp tcpfin udp): 5 2 300", "{t}");
    let svc = lab.service("-t", 7000, &["-s", "rr"]);
    let (mut s, name) = hold(&lab, 7000);
    let rip = lab.rips[name[2..].parse::<usize>().expect("rsN") - 1];
    let src = s.local_addr().expect("local address");
    echo(&mut s, "hello").expect("echo");
    let l = conn_of(&lab, src).unwrap_or_else(|| panic!("no entry for {src}"));
    assert_eq!(l.state, "ESTABLISHED", "{l:?}");
    assert!(l.expire <= 5, "{l:?}");
    let ln = lab.adm(&["-L", "-n", "-t", &svc]);
    assert_eq!(active_inact(&ln, rip), (1, 0), "{ln}");
    drop(s);
    let fw = poll(Duration::from_secs(2), || {
        conn_of(&lab, src).filter(|l| l.state == "FIN_WAIT")
    })
    .unwrap_or_else(|| panic!("no FIN_WAIT:\n{}", lab.adm(&["-L", "-n", "-c"])));
    assert!(fw.expire <= 2, "{fw:?}");
    let ln = lab.adm(&["-L", "-n", "-t", &svc]);
    assert_eq!(active_inact(&ln, rip), (0, 1), "{ln}");
    poll(Duration::from_secs(5), || {
        conn_of(&lab, src).is_none().then_some(())
    })
    .unwrap_or_else(|| panic!("entry still listed:\n{}", lab.adm(&["-L", "-n", "-c"])));
    let ln = lab.adm(&["-L", "-n", "-t", &svc]);
    assert_eq!(active_inact(&ln, rip), (0, 0), "{ln}");
}

// ---------------------------------------------------------------------------
// 6. Thresholds

/// `-x 2 -y 1` on rs1: with two connections held open to it, it is
/// OVERLOADed: new connections go to rs2, or fail when rs2 is quiesced;
/// once they are closed and gone (total below the lower threshold), rs1
/// takes new connections again.
#[test]
fn netns_thresholds_overload() {
    if !can_run() {
        return;
    }
    let lab = Lab::start("dr", 2, "rr");
    lab.start_servers(&[7000], &[]);
    // Closed connections leave the table 1 s after the client's FIN.
    lab.adm(&["--set", "0", "1", "0"]);
    let svc = lab.service("-t", 7000, &["-s", "rr"]);
    let (rs1, rs2) = (lab.rips[0], lab.rips[1]);
    edit(&lab, 7000, rs1, &["-x", "2", "-y", "1"]);
    edit(&lab, 7000, rs2, &["-w", "0"]);
    let held: Vec<(TcpStream, String)> = (0..2).map(|_| hold(&lab, 7000)).collect();
    for (_, n) in &held {
        assert_eq!(n, "rs1", "{}", lab.adm(&["-L", "-n"]));
    }
    edit(&lab, 7000, rs2, &["-w", "1"]);
    let names = run_whos(&lab, None, 7000, 6);
    assert!(
        names.iter().all(|n| n == "rs2"),
        "rs1 is over its upper threshold: {names:?}\n{}",
        lab.adm(&["-L", "-n", "--thresholds"])
    );
    edit(&lab, 7000, rs2, &["-w", "0"]);
    let dst = addr(&lab, 7000);
    let none = lab.client(move || who(None, dst));
    assert!(none.is_err(), "rs1 overloaded, rs2 quiesced, yet {none:?}");
    edit(&lab, 7000, rs2, &["-w", "1"]);
    drop(held);
    poll(Duration::from_secs(5), || {
        let ln = lab.adm(&["-L", "-n", "-t", &svc]);
        (active_inact(&ln, rs1) == (0, 0)).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "rs1's connections still listed:\n{}",
            lab.adm(&["-L", "-n", "-c"])
        )
    });
    let names = run_whos(&lab, None, 7000, 4);
    assert_eq!(
        tally(&names).get("rs1").copied(),
        Some(2),
        "rs1 below its lower threshold takes connections again (rr): {names:?}"
    );
}

// ---------------------------------------------------------------------------
// 7. Firewall-mark persistence (PFWMC)

/// A TLS server on port 443 in every real server (python `http.server`
/// behind `ssl`, a self-signed certificate made by `openssl req -x509`),
/// serving the same page as the lab's port-80 server.
const HTTPS_PY: &str = "\
import functools, http.server, ssl, sys
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(('0.0.0.0', 443), functools.partial(H, directory=sys.argv[1]))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
";

/// `curl -sk URL` in the client namespace (one try, 3 s); the body.
fn curl(lab: &Lab, url: &str) -> Result<String, String> {
    let o = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("client"),
            "curl",
            "-sk",
            "--max-time",
            "3",
            url,
        ])
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if !o.status.success() {
        return Err(format!("curl {url}: {}", o.status));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// `-A -f 10 -s rr -p 3600` with two DR real servers, the mark set by `rvs
/// fwmark add` for TCP 80 and 443 to the VIP: one client's HTTP and HTTPS
/// connections reach the same server; the template is the fwmark one (`IP`,
/// virtual `0.0.0.10:0`).
#[test]
fn netns_fwmark_persistence_http_https() {
    if !can_run() {
        return;
    }
    for tool in ["curl", "openssl"] {
        if std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_err()
            && std::process::Command::new(tool)
                .arg("version")
                .output()
                .is_err()
        {
            if std::env::var_os("RVS_SKIP_PRIVILEGED_TESTS").is_some() {
                eprintln!("skipped: needs {tool}");
                return;
            }
            panic!("needs {tool} (set RVS_SKIP_PRIVILEGED_TESTS=1 to skip)");
        }
    }
    let lab = Lab::start("dr", 2, "rr");
    let dir = lab.dir();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    sh(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=rvs-lab",
        "-keyout",
        key.to_str().expect("utf-8"),
        "-out",
        cert.to_str().expect("utf-8"),
    ]);
    for i in 1..=lab.rips.len() {
        let name = format!("rs{i}");
        let www = dir.join(&name);
        lab.spawn(
            &name,
            "python3",
            &[
                "-c",
                HTTPS_PY,
                www.to_str().expect("utf-8"),
                cert.to_str().expect("utf-8"),
                key.to_str().expect("utf-8"),
            ],
        );
    }
    // The mark: TCP 80 and 443 to the VIP.
    let vip = lab.vip.to_string();
    let o = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.ns("director"), RVS])
        .args([
            "fwmark",
            "add",
            "-d",
            &vip,
            "--dport",
            "80,443",
            "-p",
            "tcp",
            "--set-mark",
            "10",
        ])
        .output()
        .expect("rvs fwmark");
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("not available yet") {
        eprintln!("skipped: `rvs fwmark` is not in this build: {err}");
        return;
    }
    assert!(o.status.success(), "rvs fwmark add: {}\n{err}", o.status);
    lab.adm(&["-C"]);
    lab.adm(&["-A", "-f", "10", "-s", "rr", "-p", "3600"]);
    for rip in &lab.rips {
        lab.adm(&["-a", "-f", "10", "-r", &rip.to_string(), "-g", "-w", "1"]);
    }
    // Until the TLS servers answer (through the director).
    let https = format!("https://{vip}/");
    let http = format!("http://{vip}/");
    poll(Duration::from_secs(10), || curl(&lab, &https).ok()).unwrap_or_else(|| {
        panic!(
            "no HTTPS answer:\n{}\n{}",
            lab.adm(&["-L", "-n", "--stats"]),
            lab.rvsd_log()
        )
    });
    let mut bodies = Vec::new();
    for _ in 0..5 {
        bodies.push(curl(&lab, &http).unwrap_or_else(|e| panic!("{e}")));
        bodies.push(curl(&lab, &https).unwrap_or_else(|e| panic!("{e}")));
    }
    assert!(
        all_same(&bodies),
        "HTTP and HTTPS of one client, one server: {bodies:?}"
    );
    let t = templates(&lab);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(
        (t[0].proto.as_str(), t[0].virt.as_str()),
        ("IP", "0.0.0.10:0"),
        "{t:?}"
    );
}
