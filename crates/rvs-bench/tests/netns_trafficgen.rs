//! `trafficgen`: the bench's XDP generator sends native XDP frames out of a
//! veth and the XDP sink on the peer counts exactly what arrives; the
//! AF_PACKET fallback generator does the same where live frames are
//! refused.
//!
//! Needs root; skips with a message when not root and
//! `RVS_SKIP_PRIVILEGED_TESTS=1`. The tests of the XDP generator skip with
//! a message where the host refuses live-frames test runs (or under
//! `RVS_LIVE_FRAMES=off`). The namespace (`rvstg-…`) and the veth are
//! removed by a guard.

use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

use rvs_bench::trafficgen::{
    FRAME_LEN, Flows, Generator, PacketGenerator, Pass, Redirect, Sink, UdpCsum,
};
use rvs_io::xdp::XdpError;

#[path = "../../rvs-io/tests/common/mod.rs"]
mod common;
use common::*;

/// The sink attached to `ifname` in `ns`.
fn sink_in(ns: &str, ifname: &str) -> Sink {
    let ifname = ifname.to_string();
    in_ns(ns, move || Sink::attach(&ifname).expect("attach the sink"))
}

/// Sends `rounds` × 128 frames with pauses (no ring ever fills) and waits
/// until `counted` reaches them (at most 2 s); returns the count, or `None`
/// (after saying the test is skipped) when the host refuses live frames.
fn send_and_count(g: &Generator, rounds: u64, counted: impl Fn() -> u64) -> Option<u64> {
    let before = counted();
    for _ in 0..rounds {
        match g.send(128) {
            Err(e @ XdpError::LiveFramesRefused { .. }) => {
                eprintln!("skipped: live-frames test runs refused here ({e})");
                return None;
            }
            r => r.expect("send"),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Some(wait_for_count(rounds * 128, before, counted))
}

/// Waits until `counted() - before` reaches `want` (at most 2 s); returns it.
fn wait_for_count(want: u64, before: u64, counted: impl Fn() -> u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(2);
    while counted() - before < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    counted() - before
}

fn flows() -> Flows {
    Flows {
        src_mac: [2, 0, 0, 0x5e, 0, 1],
        dst_mac: [2, 0, 0, 0x5e, 0, 2],
        src_ip: [10, 99, 0, 1],
        dst_ip: [10, 99, 0, 2],
        dst_port: 9,
        sport_base: 20000,
        flows: 64,
        csum: UdpCsum::Full,
    }
}

#[test]
fn netns_generator_frames_reach_the_sink_exactly() {
    if !privileged("network namespaces") {
        return;
    }
    let id = std::process::id() % 100_000;
    let pair = Pair {
        ns: format!("rvstg-{id}"),
        near: format!("rvstg{id}"),
    };
    run("ip", &["netns", "add", &pair.ns]);
    run(
        "ip",
        &[
            "link", "add", &pair.near, "type", "veth", "peer", "name", "peer0", "netns", &pair.ns,
        ],
    );
    run("ip", &["link", "set", &pair.near, "up"]);
    run("ip", &["-n", &pair.ns, "link", "set", "peer0", "up"]);
    let g = Generator::load(&pair.near, &flows()).expect("load the generator");
    let sink = sink_in(&pair.ns, "peer0");
    // Small sends with pauses: the sink's ring (256 frames) never fills.
    let want = 20 * 128;
    let Some(n) = send_and_count(&g, 20, || sink.count().expect("count").packets) else {
        return;
    };
    assert_eq!(n, want);
    assert_eq!(g.generated().expect("generated"), want);
    let c = sink.count().expect("count");
    assert_eq!(c.packets, want, "every frame arrived once");
    assert_eq!(c.bytes, want * FRAME_LEN as u64);

    // Flat out for a bounded count: the rate is for the log only.
    let t = Instant::now();
    g.send(1_000_000).expect("send a million");
    let secs = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(50));
    let got = sink.count().expect("count").packets - want;
    eprintln!(
        "generator: 1e6 frames in {secs:.3} s ({:.2} Mpps offered), sink counted {got}",
        1.0 / secs
    );
    assert!(got > 0 && got <= 1_000_000);
    drop(sink);
    drop(pair);
}

/// rx_packets of `ifname` in `ns`.
fn rx_packets(ns: &str, ifname: &str) -> u64 {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "cat"])
        .arg(format!("/sys/class/net/{ifname}/statistics/rx_packets"))
        .output()
        .expect("cat");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn netns_bare_forwarder_and_pass_program() {
    if !privileged("network namespaces") {
        return;
    }
    // here: near — a0 [mid] a1 — b0 [far]
    let id = std::process::id() % 100_000;
    let pair = Pair {
        ns: format!("rvstg-m{id}"),
        near: format!("rvstgM{id}"),
    };
    let far = format!("rvstg-f{id}");
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.0])
                .stderr(Stdio::null())
                .status();
        }
    }
    run("ip", &["netns", "add", &pair.ns]);
    run("ip", &["netns", "add", &far]);
    let _far = Ns(far.clone());
    run(
        "ip",
        &[
            "link", "add", &pair.near, "type", "veth", "peer", "name", "a0", "netns", &pair.ns,
        ],
    );
    run(
        "ip",
        &[
            "-n", &pair.ns, "link", "add", "a1", "type", "veth", "peer", "name", "b0", "netns",
            &far,
        ],
    );
    run("ip", &["link", "set", &pair.near, "up"]);
    for (ns, i) in [(&pair.ns, "a0"), (&pair.ns, "a1"), (&far, "b0")] {
        run("ip", &["-n", ns, "link", "set", i, "up"]);
    }
    let g = Generator::load(&pair.near, &flows()).expect("load the generator");
    // No program on a0: a veth not in NAPI mode drops XDP frames (what
    // a0 receives is the near side's IPv6 neighbour discovery at most).
    let Some(n) = send_and_count(&g, 2, || rx_packets(&pair.ns, "a0")) else {
        return;
    };
    assert!(n < 32, "{n} frames arrived without NAPI mode");
    // The pass program puts it in NAPI mode: the frames arrive.
    let pass = in_ns(&pair.ns, || Pass::attach("a0").expect("attach pass"));
    let n = send_and_count(&g, 4, || rx_packets(&pair.ns, "a0")).expect("sent before");
    assert!((512..544).contains(&n), "{n} frames arrived with NAPI mode");
    drop(pass);
    // The bare forwarder sends them on to the sink, every one.
    let sink = sink_in(&far, "b0");
    let fwd = in_ns(&pair.ns, || {
        Redirect::attach("a0", "a1", [2, 0, 0, 0, 0, 0xa1], [2, 0, 0, 0, 0, 0xb0])
            .expect("attach the forwarder")
    });
    let n = send_and_count(&g, 10, || sink.count().expect("count").packets).expect("sent before");
    assert_eq!(n, 1280);
    drop(fwd);
    drop(sink);
    let e = in_ns(&pair.ns, || {
        Redirect::attach("a0", "rvstg-none0", [0; 6], [0; 6])
            .unwrap_err()
            .to_string()
    });
    assert!(e.contains("rvstg-none0"), "{e}");
}

#[test]
fn netns_generator_refuses_a_missing_interface() {
    if !privileged("network namespaces") {
        return;
    }
    let e = Generator::load("rvstg-none0", &flows())
        .unwrap_err()
        .to_string();
    assert!(e.contains("rvstg-none0"), "{e}");
    let e = Sink::attach("rvstg-none0").unwrap_err().to_string();
    assert!(e.contains("rvstg-none0"), "{e}");
}

/// The fallback generator (AF_PACKET, `sendmmsg`): what it generates
/// reaches the XDP sink on the peer exactly when no ring fills (small sends
/// with pauses); paced, it keeps its rate within 20 %; flat out, bounded in
/// count and time, every frame is either counted by the sink or refused by
/// the full ring (`ENOBUFS`), never more.
#[test]
fn netns_packet_generator_frames_reach_the_sink() {
    if !privileged("network namespaces") {
        return;
    }
    let id = std::process::id() % 100_000;
    let pair = Pair {
        ns: format!("rvstg-p{id}"),
        near: format!("rvstgP{id}"),
    };
    run("ip", &["netns", "add", &pair.ns]);
    run(
        "ip",
        &[
            "link", "add", &pair.near, "type", "veth", "peer", "name", "peer0", "netns", &pair.ns,
        ],
    );
    run("ip", &["link", "set", &pair.near, "up"]);
    run("ip", &["-n", &pair.ns, "link", "set", "peer0", "up"]);
    let sink = sink_in(&pair.ns, "peer0");
    let counted = || sink.count().expect("count").packets;
    let mut g = PacketGenerator::open(&pair.near, &flows()).expect("open the generator");
    let far = Instant::now() + Duration::from_secs(5);

    // Small sends with pauses: exact.
    let before = counted();
    for _ in 0..20 {
        assert_eq!(g.send(128, far).expect("send"), 128);
        std::thread::sleep(Duration::from_millis(2));
    }
    let n = wait_for_count(20 * 128, before, counted);
    assert_eq!(g.refused(), 0, "no ring filled");
    assert_eq!(g.generated(), 20 * 128);
    assert_eq!(n, 20 * 128, "every frame arrived once");
    assert_eq!(
        sink.count().expect("count").bytes,
        20 * 128 * FRAME_LEN as u64
    );

    // Paced at 50 kpps for 0.4 s: about 20 000 frames.
    g.pace(Some(50_000));
    let (before, gen0, refused0) = (counted(), g.generated(), g.refused());
    let t = Instant::now();
    let sent = g
        .send(u64::MAX, t + Duration::from_millis(400))
        .expect("paced send");
    let secs = t.elapsed().as_secs_f64();
    let rate = sent as f64 / secs;
    eprintln!("packet generator paced at 50 kpps: {sent} frames in {secs:.3} s ({rate:.0}/s)");
    assert!((40_000.0..=60_000.0).contains(&rate), "paced rate {rate}");
    let n = wait_for_count(sent - (g.refused() - refused0), before, counted);
    assert_eq!(g.generated() - gen0, sent);
    assert_eq!(
        n + (g.refused() - refused0),
        sent,
        "every frame counted or refused"
    );

    // Flat out, bounded: 200 000 frames or 5 s.
    g.pace(None);
    let (before, refused0) = (counted(), g.refused());
    let t = Instant::now();
    let sent = g
        .send(200_000, t + Duration::from_secs(5))
        .expect("flat-out send");
    let secs = t.elapsed().as_secs_f64();
    let refused = g.refused() - refused0;
    let n = wait_for_count(sent - refused, before, counted);
    eprintln!(
        "packet generator flat out: {sent} frames in {secs:.3} s ({:.2} Mpps), \
         {refused} refused (ring full), sink counted {n}",
        sent as f64 / secs / 1e6
    );
    assert!(sent > 0 && sent <= 200_000);
    assert_eq!(n + refused, sent, "every frame counted or refused");
    drop(sink);
    drop(pair);
}

/// The UDP frames an AF_PACKET socket on `peer0` in `ns` receives over
/// 300 ms.
fn received(s: &mut rvs_io::packet::PacketSocket) -> Vec<Vec<u8>> {
    received_of(s, 17)
}

/// The IPv4 frames of protocol `proto` the socket receives over 300 ms.
fn received_of(s: &mut rvs_io::packet::PacketSocket, proto: u8) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        rvs_io::packet::wait_readable(&[s.fd()], 20).expect("poll");
        s.rx_batch(64, |f| {
            let d = f.data();
            if d.len() >= 42 && d[12..14] == [8, 0] && d[23] == proto {
                got.push(d.to_vec());
            }
            rvs_io::xsk::Verdict::Done
        })
        .expect("rx_batch");
    }
    got
}

/// The sum of the pseudo-header and the UDP segment (checksum included).
fn udp_sum(f: &[u8]) -> u16 {
    let src = std::net::Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = std::net::Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let len = u16::from_be_bytes([f[38], f[39]]);
    rvs_wire::checksum::combine(&[
        rvs_wire::checksum::pseudo_header_v4(&src, &dst, 17, u32::from(len)),
        rvs_wire::checksum::data(&f[34..34 + usize::from(len)]),
    ])
}

/// A veth pair, `peer0` in its own namespace with GRO on (NAPI mode, so
/// the XDP generator's frames are taken) and an AF_PACKET socket on it;
/// `tag` tells the tests' pairs apart.
fn veth_with_socket(tag: char) -> (Pair, rvs_io::packet::PacketSocket) {
    let id = std::process::id() % 100_000;
    let pair = Pair {
        ns: format!("rvstg-{tag}{id}"),
        near: format!("rvstg{}{id}", tag.to_ascii_uppercase()),
    };
    run("ip", &["netns", "add", &pair.ns]);
    run(
        "ip",
        &[
            "link", "add", &pair.near, "type", "veth", "peer", "name", "peer0", "netns", &pair.ns,
        ],
    );
    run("ip", &["link", "set", &pair.near, "up"]);
    run("ip", &["-n", &pair.ns, "link", "set", "peer0", "up"]);
    let sock = in_ns(&pair.ns, || {
        rvs_io::packet::set_gro("peer0", true).expect("GRO on");
        rvs_io::packet::PacketSocket::open("peer0", &rvs_io::packet::PacketConfig::default())
            .expect("packet socket")
    });
    (pair, sock)
}

/// Both generators write the UDP checksum asked for in every frame: full
/// (verifies) or partial (the pseudo-header sum); the XDP generator
/// computes the full one per flow in its program.
#[test]
fn netns_generators_write_the_checksum_asked_for() {
    if !privileged("network namespaces") {
        return;
    }
    let (pair, mut sock) = veth_with_socket('c');
    let pseudo = rvs_wire::checksum::pseudo_header_v4(
        &[10, 99, 0, 1].into(),
        &[10, 99, 0, 2].into(),
        17,
        26,
    );
    for csum in [UdpCsum::Full, UdpCsum::Partial] {
        let f = Flows { csum, ..flows() };
        let mut kinds = vec!["af-packet"];
        let mut pg = PacketGenerator::open(&pair.near, &f).expect("open");
        pg.send(100, Instant::now() + Duration::from_secs(2))
            .expect("send");
        let mut got = received(&mut sock);
        let g = Generator::load(&pair.near, &f).expect("load");
        match g.send(100) {
            Err(e @ XdpError::LiveFramesRefused { .. }) => {
                eprintln!("XDP generator skipped: live-frames test runs refused here ({e})")
            }
            r => {
                r.expect("send");
                kinds.push("xdp");
                got.extend(received(&mut sock));
            }
        }
        assert_eq!(got.len(), 100 * kinds.len(), "{csum:?} {kinds:?}");
        let ports: std::collections::HashSet<u16> = got
            .iter()
            .map(|d| u16::from_be_bytes([d[34], d[35]]))
            .collect();
        assert_eq!(ports.len(), 64, "every flow");
        for d in &got {
            let field = u16::from_be_bytes([d[40], d[41]]);
            match csum {
                UdpCsum::Full => assert_eq!(udp_sum(d), 0xffff, "{d:02x?}"),
                _ => assert_eq!(field, pseudo, "{d:02x?}"),
            }
        }
    }
    drop(sock);
    drop(pair);
}

/// The XDP generator's SYN mode: every frame the SYN of a new connection
/// (source address and port from the connection's number), byte for byte
/// what `SynFlows::frame` builds, checksums included.
#[test]
fn netns_xdp_generator_writes_the_syns_of_new_connections() {
    if !privileged("network namespaces") {
        return;
    }
    let (pair, mut sock) = veth_with_socket('s');
    let f = rvs_bench::trafficgen::SynFlows {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src_ip: [10, 98, 0, 0],
        dst_ip: [10, 99, 0, 2],
        dst_port: 80,
        sport_base: 1024,
        conns: 2500,
    };
    let g = Generator::load_syn(&pair.near, &f).expect("load");
    // What the program writes, run once at a time (not live: allowed
    // everywhere): connection 0, 1, 2… in order.
    for i in 0..2100 {
        let got = g.sample().expect("test run");
        assert_eq!(got[..54], f.frame(i)[..54], "connection {i}");
    }
    let g = Generator::load_syn(&pair.near, &f).expect("load");
    match g.send(2500) {
        Err(e @ XdpError::LiveFramesRefused { .. }) => {
            eprintln!("live frames SKIPPED: live-frames test runs refused here ({e})");
            return;
        }
        r => r.expect("send"),
    }
    let got = received_of(&mut sock, 6);
    assert_eq!(got.len(), 2500);
    let want: std::collections::HashSet<Vec<u8>> =
        (0..2500).map(|i| f.frame(i)[..54].to_vec()).collect();
    let got: std::collections::HashSet<Vec<u8>> = got.iter().map(|d| d[..54].to_vec()).collect();
    assert_eq!(got.len(), 2500, "every connection new");
    assert_eq!(got, want);
    drop(sock);
    drop(pair);
}
