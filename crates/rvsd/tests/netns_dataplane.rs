//! End-to-end packet path: `rvsd --io xdp` in a network namespace forwards
//! real TCP connections of a client namespace to a real-server namespace.
//!
//! Needs root and AF_XDP in the kernel (CI has them). Namespaces and
//! processes are removed by guards, also when a test fails.

use std::fs::File;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// A lab of namespaces prefixed `rvdp-` (these tests need root, no skip).
fn new_lab(tag: &str) -> Lab {
    require_root();
    Lab::new("rvdp", tag)
}

#[test]
fn direct_routing_one_segment() {
    let mut lab = new_lab("dr");
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

    let rvsd = lab.start_rvsd(&director, Some("xdp"), &["eth0"], &[]);
    lab.adm_ok(&director, &["-A", "-t", "10.0.0.100:8000", "-s", "rr"]);
    lab.adm_ok(
        &director,
        &["-a", "-t", "10.0.0.100:8000", "-r", "10.0.0.11", "-g"],
    );

    let got = fetch_retry(&client, "10.0.0.100", 8000, Duration::from_secs(8));
    assert_eq!(
        got.as_deref(),
        Some("rs1"),
        "no answer through the director\nrvsd log:\n{}\nlist:\n{}",
        lab.rvsd_log(),
        lab.adm_ok(&director, &["-L", "-n", "--stats"])
    );
    // A second connection, and the table counted them.
    assert_eq!(fetch(&client, "10.0.0.100", 8000).as_deref(), Some("rs1"));
    let list = lab.adm_ok(&director, &["-L", "-n", "--stats"]);
    let st = service_stats(&list, "10.0.0.100:8000");
    // Conns, InPkts, OutPkts, InBytes, OutBytes.
    assert!(st[0] >= 2, "connections not counted:\n{list}");
    assert!(st[1] >= 6, "packets in not counted:\n{list}");
    assert_eq!(st[2], 0, "DR: replies bypass the director:\n{list}");
    let conns = lab.adm_ok(&director, &["-L", "-n", "-c"]);
    assert!(conns.contains("10.0.0.11:8000"), "{conns}");

    // SIGTERM: the daemon stops and the classifier is detached.
    let pid = lab.children[rvsd].id().to_string();
    run(&["kill", "-TERM", &pid]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(st) = lab.children[rvsd].try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "rvsd did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "rvsd: {status}\n{}", lab.rvsd_log());
    let link = String::from_utf8(run(&["ip", "-n", &director, "link", "show", "eth0"]).stdout)
        .expect("utf8");
    assert!(!link.contains("xdp"), "XDP still attached: {link}");
}

#[test]
fn nat_two_segments() {
    let mut lab = new_lab("nat");
    let TwoSegments {
        client,
        director,
        rs1,
    } = nat_topology(&mut lab);
    lab.spawn(
        &rs1,
        "socat",
        &[
            "TCP-LISTEN:8000,bind=10.0.2.11,fork,reuseaddr",
            "SYSTEM:echo rs1",
        ],
        Stdio::null(),
    );

    let log = File::create(&lab.log).expect("log file");
    let rvsd = bin("rvsd");
    lab.spawn(
        &director,
        rvsd.to_str().expect("path"),
        &["--io", "xdp", "--interface", "eth0", "--interface", "eth1"],
        Stdio::from(log),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.adm(&director, &["-L", "-n"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "rvsd did not come up:\n{}",
            lab.rvsd_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.adm_ok(&director, &["-A", "-t", "10.0.1.100:8000", "-s", "rr"]);
    lab.adm_ok(
        &director,
        &["-a", "-t", "10.0.1.100:8000", "-r", "10.0.2.11:8000", "-m"],
    );

    let got = fetch_retry(&client, "10.0.1.100", 8000, Duration::from_secs(8));
    assert_eq!(
        got.as_deref(),
        Some("rs1"),
        "no answer through the director\nrvsd log:\n{}\nlist:\n{}",
        lab.rvsd_log(),
        lab.adm_ok(&director, &["-L", "-n", "--stats"])
    );
    assert_eq!(fetch(&client, "10.0.1.100", 8000).as_deref(), Some("rs1"));
    let list = lab.adm_ok(&director, &["-L", "-n", "--stats"]);
    let st = service_stats(&list, "10.0.1.100:8000");
    assert!(st[0] >= 2, "connections not counted:\n{list}");
    assert!(st[1] >= 6, "packets in not counted:\n{list}");
    assert!(st[2] >= 4, "NAT: replies through the director:\n{list}");
    // The director's own connection to the NAT real server's service port
    // (what a health checker opens): the classifier leaves the replies to
    // the kernel, they are not taken for replies to a client. Once a
    // second rvsd reads its addresses: a few tries.
    let own = fetch_retry(&director, "10.0.2.11", 8000, Duration::from_secs(3));
    assert_eq!(
        own.as_deref(),
        Some("rs1"),
        "the director's own connection to its NAT real server failed\n{}",
        lab.rvsd_log()
    );
    // And again at once, with NAT forwarding still working.
    assert_eq!(fetch(&director, "10.0.2.11", 8000).as_deref(), Some("rs1"));
    assert_eq!(fetch(&client, "10.0.1.100", 8000).as_deref(), Some("rs1"));
}

/// How the real server of [`dr_lab`] is prepared.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RsSetup {
    /// VIP on `lo` and ARP sysctls by hand (direct routing).
    Direct,
    /// `rvs realserver up --vip VIP --tun` (IP-in-IP decapsulator).
    Tunnel,
}

/// Names of the namespaces of [`dr_lab`].
struct OneSegment {
    sw: String,
    client: String,
    director: String,
    rs1: String,
}

/// Client 10.0.0.1, director 10.0.0.2 and real server 10.0.0.11 on one
/// bridge; VIP 10.0.0.100 routed by the client through the director; the
/// real server listens on VIP:8000 and answers `rs1`. `queues`: RX/TX queues
/// of the director's veth.
fn dr_lab(lab: &mut Lab, queues: u32, rs: RsSetup) -> OneSegment {
    let (sw, client, director, rs1) = one_segment_base(lab, queues);
    if queues > 1 {
        // The TX queue of a veth is the RX queue of its peer: per-queue
        // qdiscs on the bridge port count what each director queue got.
        run(&[
            "tc", "-n", &sw, "qdisc", "replace", "dev", "pd", "root", "mq",
        ]);
    }
    match rs {
        RsSetup::Direct => lab.vip_on_lo(&rs1, "10.0.0.100/32"),
        RsSetup::Tunnel => lab.realserver_tun(&rs1, "10.0.0.100"),
    }
    lab.spawn(
        &rs1,
        "socat",
        &[
            "TCP-LISTEN:8000,bind=10.0.0.100,fork,reuseaddr",
            "SYSTEM:echo rs1",
        ],
        Stdio::null(),
    );
    OneSegment {
        sw,
        client,
        director,
        rs1,
    }
}

/// `fetch_retry` that must answer `rs1`, with diagnostics otherwise.
fn expect_rs1(lab: &Lab, n: &OneSegment) {
    let got = fetch_retry(&n.client, "10.0.0.100", 8000, Duration::from_secs(8));
    assert_eq!(
        got.as_deref(),
        Some("rs1"),
        "no answer through the director\nrvsd log:\n{}\nlist:\n{}",
        lab.rvsd_log(),
        lab.adm_ok(&n.director, &["-L", "-n", "--stats"])
    );
}

/// How many XDP programs `iface` of `ns` runs (`prog/xdp…` of `ip -d link`).
fn xdp_programs(ns: &str, iface: &str) -> (usize, String) {
    let link = String::from_utf8(run(&["ip", "-d", "-n", ns, "link", "show", iface]).stdout)
        .expect("utf8");
    (link.matches("prog/xdp").count(), link)
}

#[test]
fn tunnel_ipip() {
    let mut lab = new_lab("tun");
    let n = dr_lab(&mut lab, 1, RsSetup::Tunnel);
    let (progs, link) = xdp_programs(&n.rs1, "eth0");
    assert_eq!(
        progs, 1,
        "decapsulator not attached on the real server: {link}"
    );
    lab.start_rvsd(&n.director, Some("xdp"), &["eth0"], &[]);
    lab.adm_ok(&n.director, &["-A", "-t", "10.0.0.100:8000", "-s", "rr"]);
    lab.adm_ok(
        &n.director,
        &["-a", "-t", "10.0.0.100:8000", "-r", "10.0.0.11", "-i"],
    );
    expect_rs1(&lab, &n);
    assert_eq!(fetch(&n.client, "10.0.0.100", 8000).as_deref(), Some("rs1"));
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats"]);
    let st = service_stats(&list, "10.0.0.100:8000");
    assert!(st[0] >= 2, "connections not counted:\n{list}");
    assert!(st[1] >= 6, "packets in not counted:\n{list}");
    assert_eq!(st[2], 0, "TUN: replies bypass the director:\n{list}");
    let list = lab.adm_ok(&n.director, &["-L", "-n"]);
    assert!(list.contains("Tunnel"), "{list}");
}

#[test]
fn multi_queue_veth() {
    // Both engine modes: one shared engine, and a replica per worker.
    for engines in ["shared", "per-worker"] {
        multi_queue_veth_with(engines);
    }
}

fn multi_queue_veth_with(engines: &str) {
    // `ip link add … type veth` without numrxqueues allocates one queue per
    // CPU but activates only one (veth_init_queues sets the real count to
    // 1), so the queues are asked for explicitly to get two live ones.
    let mut lab = new_lab(&format!("mq{}", &engines[..1]));
    let n = dr_lab(&mut lab, 2, RsSetup::Direct);
    let queues = lab.exec(&n.director, &["ls", "/sys/class/net/eth0/queues"]);
    let queues = String::from_utf8_lossy(&queues.stdout).to_string();
    assert!(
        queues.contains("rx-0") && queues.contains("rx-1"),
        "two RX queues expected: {queues}"
    );
    lab.start_rvsd(&n.director, Some("xdp"), &["eth0"], &["--engines", engines]);
    lab.adm_ok(&n.director, &["-A", "-t", "10.0.0.100:8000", "-s", "rr"]);
    lab.adm_ok(
        &n.director,
        &["-a", "-t", "10.0.0.100:8000", "-r", "10.0.0.11", "-g"],
    );
    expect_rs1(&lab, &n);
    // Each fetch is a new connection from a new ephemeral port: the flows
    // hash over both queues. A frame on a queue without a socket would go to
    // the director's kernel, which has no listener: connection refused.
    let mut failed = Vec::new();
    for i in 0..20 {
        if fetch(&n.client, "10.0.0.100", 8000).as_deref() != Some("rs1") {
            failed.push(i);
        }
    }
    assert!(
        failed.is_empty(),
        "connections {failed:?} failed\nrvsd log:\n{}",
        lab.rvsd_log()
    );
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats"]);
    let st = service_stats(&list, "10.0.0.100:8000");
    assert!(st[0] >= 21, "connections not counted:\n{list}");
    let tc =
        String::from_utf8(run(&["tc", "-s", "-n", &n.sw, "qdisc", "show", "dev", "pd"]).stdout)
            .expect("utf8");
    // Packets per queue, from the pfifo_fast children of mq.
    let mut per_queue = Vec::new();
    let mut lines = tc.lines();
    while let Some(l) = lines.next() {
        if l.contains("parent ") && !l.contains("root") {
            let pkts: u64 = lines
                .next()
                .and_then(|s| s.split_whitespace().nth(3))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("cannot read\n{tc}"));
            per_queue.push(pkts);
        }
    }
    assert_eq!(per_queue.len(), 2, "{tc}");
    assert!(
        per_queue.iter().all(|&p| p >= 3),
        "the flows did not use both RX queues of the director:\n{tc}"
    );
}

/// The MAC address of `iface` in `ns`, as bytes.
fn mac_bytes(ns: &str, iface: &str) -> [u8; 6] {
    let s = mac_of(ns, iface);
    let mut mac = [0u8; 6];
    for (m, h) in mac.iter_mut().zip(s.split(':')) {
        *m = u8::from_str_radix(h, 16).expect("hex");
    }
    mac
}

fn csum16(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv4 + TCP SYN frame from 10.0.0.1:`sport` to
/// 10.0.0.100:8000 with valid checksums, before any damage.
fn syn_frame(dst: [u8; 6], src: [u8; 6], sport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    let ip = [
        0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 100,
    ];
    f.extend_from_slice(&ip);
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&8000u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    let mut pseudo = vec![10, 0, 0, 1, 10, 0, 0, 100, 0, 6, 0, 20];
    pseudo.extend_from_slice(&tcp);
    let c = csum16(&pseudo);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&tcp);
    fix_ip_csum(&mut f);
    f
}

fn fix_ip_csum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let c = csum16(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Frames that claim to be TCP to VIP:8000 but are damaged.
fn malformed_frames(dst: [u8; 6], src: [u8; 6]) -> Vec<(&'static str, Vec<u8>)> {
    let base = |p| syn_frame(dst, src, p);
    let mut v = Vec::new();
    // TCP header cut to 8 bytes (ports present), lengths consistent.
    let mut f = base(41001);
    f.truncate(14 + 20 + 8);
    f[16..18].copy_from_slice(&28u16.to_be_bytes());
    fix_ip_csum(&mut f);
    v.push(("truncated TCP header", f));
    // IHL 4 (16 bytes, less than the minimum).
    let mut f = base(41002);
    f[14] = 0x44;
    fix_ip_csum(&mut f);
    v.push(("IHL 4", f));
    // IHL 15 (60 bytes) in a 40-byte packet.
    let mut f = base(41003);
    f[14] = 0x4f;
    fix_ip_csum(&mut f);
    v.push(("IHL 15", f));
    // Total length 1500 in a 40-byte packet.
    let mut f = base(41004);
    f[16..18].copy_from_slice(&1500u16.to_be_bytes());
    fix_ip_csum(&mut f);
    v.push(("total length beyond the frame", f));
    // Total length 10, less than the header.
    let mut f = base(41005);
    f[16..18].copy_from_slice(&10u16.to_be_bytes());
    fix_ip_csum(&mut f);
    v.push(("total length below the header", f));
    // TCP data offset 15 (60 bytes) with 20 present.
    let mut f = base(41006);
    f[14 + 20 + 12] = 0xf0;
    v.push(("TCP data offset beyond the packet", f));
    // TCP data offset 2.
    let mut f = base(41007);
    f[14 + 20 + 12] = 0x20;
    v.push(("TCP data offset 2", f));
    // Bad IPv4 header checksum.
    let mut f = base(41008);
    f[24] ^= 0xff;
    v.push(("bad IPv4 checksum", f));
    // Bad TCP checksum.
    let mut f = base(41009);
    f[14 + 20 + 16] ^= 0xff;
    v.push(("bad TCP checksum", f));
    // Version 6 in an IPv4 ethertype.
    let mut f = base(41010);
    f[14] = 0x65;
    v.push(("version 6 under ethertype IPv4", f));
    // The IPv4 header itself cut short.
    let mut f = base(41011);
    f.truncate(14 + 12);
    v.push(("IPv4 header cut at 12 bytes", f));
    v
}

/// Send `frame` as is out of `iface` of `ns` (AF_PACKET, through socat).
fn send_raw(ns: &str, iface: &str, frame: &[u8]) {
    let to = format!("INTERFACE:{iface}");
    exec_with_input(ns, &["socat", "-u", "STDIN", &to], frame);
}

#[test]
fn unclaimed_and_malformed() {
    let mut lab = new_lab("mal");
    let n = dr_lab(&mut lab, 1, RsSetup::Direct);
    // The director's own kernel listens on VIP:9000 (no service there).
    lab.spawn(
        &n.director,
        "socat",
        &[
            "TCP-LISTEN:9000,bind=10.0.0.100,fork,reuseaddr",
            "SYSTEM:echo director",
        ],
        Stdio::null(),
    );
    let rvsd = lab.start_rvsd(&n.director, Some("xdp"), &["eth0"], &[]);
    lab.adm_ok(&n.director, &["-A", "-t", "10.0.0.100:8000", "-s", "rr"]);
    lab.adm_ok(
        &n.director,
        &["-a", "-t", "10.0.0.100:8000", "-r", "10.0.0.11", "-g"],
    );
    expect_rs1(&lab, &n);

    // (a) Not a service: the classifier passes it to the director's kernel.
    let got = fetch_retry(&n.client, "10.0.0.100", 9000, Duration::from_secs(5));
    assert_eq!(got.as_deref(), Some("director"), "{}", lab.rvsd_log());

    // (b) Damaged frames to VIP:8000.
    let dst = mac_bytes(&n.director, "eth0");
    let src = mac_bytes(&n.client, "eth0");
    let frames = malformed_frames(dst, src);
    for _ in 0..3 {
        for (_, f) in &frames {
            send_raw(&n.client, "eth0", f);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    if let Ok(Some(st)) = lab.children[rvsd].try_wait() {
        panic!("rvsd died ({st}) on malformed frames:\n{}", lab.rvsd_log());
    }
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats"]);
    assert!(list.contains("10.0.0.100:8000"), "{list}");
    assert_eq!(fetch(&n.client, "10.0.0.100", 8000).as_deref(), Some("rs1"));
    assert_eq!(
        fetch(&n.client, "10.0.0.100", 9000).as_deref(),
        Some("director")
    );
    // None of the damaged SYNs made a connection, except the one with only a
    // bad TCP checksum: like the kernel's IPVS, a DR director does not verify
    // TCP checksums (it does not rewrite the segment; the real server drops
    // it), so that SYN gets a SYN_RECV entry.
    let conns = lab.adm_ok(&n.director, &["-L", "-n", "-c"]);
    for p in (41001..=41011).filter(|p| *p != 41009) {
        assert!(
            !conns.contains(&format!("10.0.0.1:{p}")),
            "a damaged frame made a connection:\n{conns}"
        );
    }
    lab.stop_rvsd(rvsd);
    // What the design gives: the classifier passes frames whose IPv4 header
    // is unusable to the kernel (counted in its `malformed` statistic, which
    // rvsd does not report); the engine drops, uncounted, what fails its own
    // IPv4 checks (checksum, lengths); a TCP segment whose header is cut or
    // has a bad data offset reaches the engine, which passes it, and the
    // worker, which cannot hand a frame back to the kernel, drops it and
    // counts it in "passed to no one" (3 such frames, sent 3 times).
    let log = lab.rvsd_log();
    let passed: u64 = log
        .split("passed to no one: ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exit counters in the rvsd log:\n{log}"));
    assert!(passed >= 9, "damaged TCP headers not counted:\n{log}");
}

#[test]
fn restart_replaces_program() {
    let mut lab = new_lab("rst");
    let n = dr_lab(&mut lab, 1, RsSetup::Direct);
    let rules = std::env::temp_dir().join(format!("{}-rules", lab.prefix));
    lab.paths.push(rules.clone());
    std::fs::write(
        &rules,
        "-A -t 10.0.0.100:8000 -s rr\n-a -t 10.0.0.100:8000 -r 10.0.0.11:8000 -g -w 1\n",
    )
    .expect("rules file");
    let first = lab.start_rvsd(&n.director, Some("xdp"), &["eth0"], &[]);
    lab.adm_ok(&n.director, &["-A", "-t", "10.0.0.100:8000", "-s", "rr"]);
    lab.adm_ok(
        &n.director,
        &["-a", "-t", "10.0.0.100:8000", "-r", "10.0.0.11", "-g"],
    );
    expect_rs1(&lab, &n);
    let (progs, link) = xdp_programs(&n.director, "eth0");
    assert_eq!(progs, 1, "{link}");

    // SIGKILL: no cleanup at all.
    lab.children[first].kill().expect("kill");
    lab.children[first].wait().expect("wait");
    // The classifier is held by a bpf_link, which the kernel released with
    // the process: nothing is left. To see a stale program replaced, leave
    // one that survives its process: the real-server decapsulator, attached
    // through rtnetlink.
    let (progs, link) = xdp_programs(&n.director, "eth0");
    assert_eq!(progs, 0, "after SIGKILL: {link}");
    let state = std::env::temp_dir().join(format!("{}-stale.json", lab.prefix));
    lab.paths.push(state.clone());
    let rvs = bin("rvs");
    lab.exec(
        &n.director,
        &[
            rvs.to_str().expect("path"),
            "realserver",
            "up",
            "--vip",
            "10.0.0.200",
            "--tun",
            "--dev",
            "eth0",
            "--state",
            state.to_str().expect("path"),
        ],
    );
    let (progs, stale) = xdp_programs(&n.director, "eth0");
    assert_eq!(progs, 1, "stale program not attached: {stale}");
    let prog_id = |link: &str| {
        link.split("prog/xdp")
            .nth(1)
            .and_then(|r| r.split_whitespace().nth(1))
            .map(str::to_string)
    };
    let stale_id = prog_id(&stale).expect("stale program id");

    // Again, with the rules from a file.
    let log = File::create(&lab.log).expect("log file");
    let rvsd = bin("rvsd");
    lab.spawn(
        &n.director,
        rvsd.to_str().expect("path"),
        &[
            "--io",
            "xdp",
            "--interface",
            "eth0",
            "--rules",
            rules.to_str().expect("path"),
        ],
        Stdio::from(log),
    );
    let second = lab.children.len() - 1;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.adm(&n.director, &["-L", "-n"]).status.success() {
        if let Ok(Some(st)) = lab.children[second].try_wait() {
            panic!("second rvsd exited with {st}:\n{}", lab.rvsd_log());
        }
        assert!(
            Instant::now() < deadline,
            "second rvsd did not come up:\n{}",
            lab.rvsd_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (progs, link) = xdp_programs(&n.director, "eth0");
    assert_eq!(progs, 1, "stacked or missing XDP programs: {link}");
    assert_ne!(
        prog_id(&link).as_deref(),
        Some(stale_id.as_str()),
        "the stale program is still attached: {link}"
    );
    expect_rs1(&lab, &n);
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats"]);
    let st = service_stats(&list, "10.0.0.100:8000");
    assert!(st[0] >= 1, "connections not counted:\n{list}");
    lab.stop_rvsd(second);
    let (progs, link) = xdp_programs(&n.director, "eth0");
    assert_eq!(progs, 0, "XDP still attached: {link}");
}

/// The topology of [`nat_two_segments`]: client 10.0.1.1 — director
/// 10.0.1.2 / 10.0.2.1 (VIP 10.0.1.100 on `lo`) — real server 10.0.2.11
/// (default route through the director); rvsd runs on both director links.
/// No service, no listener.
fn nat_lab(lab: &mut Lab) -> TwoSegments {
    let n = nat_topology(lab);
    lab.start_rvsd(&n.director, Some("xdp"), &["eth0", "eth1"], &[]);
    n
}

/// From a UDP socket of `ns` connected to `vip:port`, send `size` bytes
/// (`df`: with `IP_PMTUDISC_DO`) until a send or a receive fails with an
/// error other than a timeout, for at most `limit`. That error, or `None`,
/// and the ICMP packets (IPv4 header on) a raw socket of `ns` saw meanwhile.
fn udp_error(
    ns: &str,
    vip: &'static str,
    port: u16,
    size: usize,
    df: bool,
    limit: Duration,
) -> (Option<std::io::Error>, Vec<Vec<u8>>) {
    in_netns(ns, move || {
        use rustix::net::{AddressFamily, SocketType, ipproto, sockopt};
        let raw = rustix::net::socket(AddressFamily::INET, SocketType::RAW, Some(ipproto::ICMP))
            .expect("raw ICMP socket");
        sockopt::set_socket_timeout(
            &raw,
            sockopt::Timeout::Recv,
            Some(Duration::from_millis(200)),
        )
        .expect("raw timeout");
        let icmp = move || {
            let mut seen = Vec::new();
            let mut buf = [0_u8; 2048];
            while let Ok(n) = rustix::net::recv(&raw, &mut buf, rustix::net::RecvFlags::empty()) {
                seen.push(buf[..n.0].to_vec());
            }
            seen
        };
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
        if df {
            rustix::net::sockopt::set_ip_mtu_discover(
                &sock,
                rustix::net::sockopt::Ipv4PathMtuDiscovery::DO,
            )
            .expect("IP_MTU_DISCOVER");
        }
        sock.connect((vip, port)).expect("connect");
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let data = vec![0x5a_u8; size];
        let mut buf = [0_u8; 2048];
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Err(e) = sock.send(&data) {
                return (Some(e), icmp());
            }
            match sock.recv(&mut buf) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return (Some(e), icmp()),
            }
        }
        (None, icmp())
    })
}

#[test]
fn nat_icmp_port_unreachable_translated() {
    let mut lab = new_lab("nicmp");
    let n = nat_lab(&mut lab);
    lab.adm_ok(&n.director, &["-A", "-u", "10.0.1.100:5353", "-s", "rr"]);
    lab.adm_ok(
        &n.director,
        &["-a", "-u", "10.0.1.100:5353", "-r", "10.0.2.11:5353", "-m"],
    );
    // Nothing listens on 10.0.2.11:5353: the real server's kernel answers
    // with ICMP port unreachable, which only reaches the client's connected
    // socket (as ECONNREFUSED) if the director translated it back to the VIP.
    let (err, icmp) = udp_error(
        &n.client,
        "10.0.1.100",
        5353,
        32,
        false,
        Duration::from_secs(8),
    );
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats"]);
    assert_eq!(
        err.as_ref().map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{err:?}\nrvsd log:\n{}\nlist:\n{list}",
        lab.rvsd_log()
    );
    let st = service_stats(&list, "10.0.1.100:5353");
    assert!(st[0] >= 1, "connection not counted:\n{list}");
    assert!(st[2] >= 1, "ICMP error not counted as outbound:\n{list}");
    // Outer source the VIP; quoted packet client → VIP:5353.
    let vip = [10, 0, 1, 100];
    let found = icmp_error_from(&icmp, vip, 3, 3, [10, 0, 1, 1], vip, 5353);
    assert!(
        found.is_some(),
        "no translated port unreachable in {icmp:02x?}"
    );
    let _ = &n.rs1;
}

#[test]
fn tun_frag_needed() {
    let mut lab = new_lab("tfrag");
    let n = dr_lab(&mut lab, 1, RsSetup::Tunnel);
    lab.start_rvsd(&n.director, Some("xdp"), &["eth0"], &[]);
    lab.adm_ok(&n.director, &["-A", "-u", "10.0.0.100:5353", "-s", "rr"]);
    lab.adm_ok(
        &n.director,
        &["-a", "-u", "10.0.0.100:5353", "-r", "10.0.0.11", "-i"],
    );
    // 1472 bytes of UDP payload: a 1500-byte IP packet with DF, 1520 bytes
    // once encapsulated. The director answers ICMP fragmentation needed
    // (MTU 1480) from the VIP; the client's kernel lowers the path MTU and a
    // send of the same size then fails with EMSGSIZE.
    let (err, icmp) = udp_error(
        &n.client,
        "10.0.0.100",
        5353,
        1472,
        true,
        Duration::from_secs(8),
    );
    let route = String::from_utf8_lossy(
        &lab.exec(&n.client, &["ip", "route", "get", "10.0.0.100"])
            .stdout,
    )
    .to_string();
    assert_eq!(
        err.as_ref().and_then(std::io::Error::raw_os_error),
        Some(rustix::io::Errno::MSGSIZE.raw_os_error()),
        "{err:?}\nroute: {route}\nrvsd log:\n{}\nlist:\n{}",
        lab.rvsd_log(),
        lab.adm_ok(&n.director, &["-L", "-n", "--stats"])
    );
    assert!(route.contains("mtu 1480"), "route: {route}");
    let vip = [10, 0, 0, 100];
    let found = icmp_error_from(&icmp, vip, 3, 4, [10, 0, 0, 1], vip, 5353);
    let p = found.unwrap_or_else(|| panic!("no fragmentation needed from the VIP in {icmp:02x?}"));
    let ihl = usize::from(p[0] & 0x0f) * 4;
    assert_eq!(
        u16::from_be_bytes([p[ihl + 6], p[ihl + 7]]),
        1480,
        "next-hop MTU: {p:02x?}"
    );
    let _ = &n.sw;
}

/// The first of `packets` (IPv4 with ICMP) from `src` of `type_`/`code`
/// quoting a UDP datagram `qsrc` → `qdst:qdport`.
fn icmp_error_from(
    packets: &[Vec<u8>],
    src: [u8; 4],
    type_: u8,
    code: u8,
    qsrc: [u8; 4],
    qdst: [u8; 4],
    qdport: u16,
) -> Option<&Vec<u8>> {
    packets.iter().find(|p| {
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let Some(q) = p.get(ihl + 8..) else {
            return false;
        };
        let qihl = usize::from(q.first().copied().unwrap_or(0) & 0x0f) * 4;
        p[12..16] == src
            && p[ihl] == type_
            && p[ihl + 1] == code
            && q.len() >= qihl + 4
            && q[9] == 17
            && q[12..16] == qsrc
            && q[16..20] == qdst
            && u16::from_be_bytes([q[qihl + 2], q[qihl + 3]]) == qdport
    })
}

/// A data-plane worker that panics (injected: `RVSD_INJECT_PANIC=worker`,
/// debug builds) takes the process down with status 70, so that systemd
/// restarts it, instead of leaving rvsd up with its queue unserved. Its
/// XDP program goes with it: the director's kernel has the VIP again.
#[test]
fn worker_panic_ends_the_process() {
    let mut lab = new_lab("panic");
    let TwoSegments {
        client,
        director,
        rs1,
    } = nat_topology(&mut lab);
    lab.spawn(
        &rs1,
        "socat",
        &[
            "TCP-LISTEN:8000,bind=10.0.2.11,fork,reuseaddr",
            "SYSTEM:echo rs1",
        ],
        Stdio::null(),
    );
    lab.env.push(("RVSD_INJECT_PANIC".into(), "worker".into()));
    let idx = lab.start_rvsd(&director, Some("xdp"), &["eth0", "eth1"], &[]);
    lab.adm_ok(&director, &["-A", "-t", "10.0.1.100:8000", "-s", "rr"]);
    lab.adm_ok(
        &director,
        &["-a", "-t", "10.0.1.100:8000", "-r", "10.0.2.11:8000", "-m"],
    );
    // The first frame the worker handles.
    let _ = fetch(&client, "10.0.1.100", 8000);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = lab.children[idx].try_wait().expect("wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "rvsd still running after the worker's panic:\n{}",
            lab.rvsd_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(70), "{}", lab.rvsd_log());
    let log = lab.rvsd_log();
    assert!(log.contains("injected panic in worker"), "{log}");
    assert!(log.contains("exiting with status 70"), "{log}");
    // No XDP program left on the director's links.
    let links = run(&["ip", "-n", &director, "link", "show"]);
    let links = String::from_utf8_lossy(&links.stdout).to_string();
    assert!(!links.contains("xdp"), "{links}");
}

/// A real server's new MAC is followed however long ago the last change
/// was: rvsd keeps asking the resolver for its real servers, which would
/// otherwise forget them after its idle timeout (300 s, shortened here to
/// 2 s with `RVSD_RESOLVER_IDLE_SECS`) and stop following their
/// neighbours. The real server announces its new MAC (`arp_notify`, as a
/// replaced NIC or a migrated VM does); traffic follows within 5 s.
#[test]
fn real_server_mac_change_followed_long_after_the_last_change() {
    let mut lab = new_lab("mac");
    let n = dr_lab(&mut lab, 1, RsSetup::Direct);
    lab.env.push(("RVSD_RESOLVER_IDLE_SECS".into(), "2".into()));
    // Fast path off: the slow path's hop is what is checked.
    lab.start_rvsd(&n.director, Some("xdp"), &["eth0"], &["--fast-path", "off"]);
    lab.adm_ok(&n.director, &["-A", "-t", "10.0.0.100:8000", "-s", "rr"]);
    lab.adm_ok(
        &n.director,
        &["-a", "-t", "10.0.0.100:8000", "-r", "10.0.0.11", "-g"],
    );
    expect_rs1(&lab, &n);
    // Several of the resolver's idle sweeps, no change, no traffic.
    std::thread::sleep(Duration::from_secs(7));
    lab.exec(
        &n.rs1,
        &["sysctl", "-qw", "net.ipv4.conf.eth0.arp_notify=1"],
    );
    ipn(&n.rs1, "link set eth0 address 02:00:00:aa:bb:cc");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if fetch(&n.client, "10.0.0.100", 8000).as_deref() == Some("rs1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "traffic did not follow the real server's new MAC\nrvsd log:\n{}",
            lab.rvsd_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `--engines per-worker` on links of two queues, NAT: a connection's
/// requests and its replies reach the director on different queues (the
/// links hash each direction apart), so different workers read them; each
/// frame is handed to the worker whose engine replica holds the
/// connection, and every connection is translated both ways. With AF_XDP
/// and with AF_PACKET.
#[test]
fn nat_multi_queue_per_worker_engines() {
    for io in ["xdp", "packet"] {
        let mut lab = new_lab(&format!("pw{}", &io[..1]));
        let TwoSegments {
            client,
            director,
            rs1,
        } = nat_topology_queues(&mut lab, 2);
        // More client addresses: connections are owned by client address.
        for a in 3..=10 {
            ipn(&client, &format!("addr add 10.0.1.{a}/24 dev eth0"));
        }
        lab.spawn(
            &rs1,
            "socat",
            &[
                "TCP-LISTEN:8000,bind=10.0.2.11,fork,reuseaddr",
                "SYSTEM:echo rs1",
            ],
            Stdio::null(),
        );
        lab.spawn(
            &rs1,
            "socat",
            &[
                "TCP-LISTEN:8001,bind=10.0.2.11,fork,reuseaddr",
                "SYSTEM:echo rs1b",
            ],
            Stdio::null(),
        );
        lab.start_rvsd(
            &director,
            Some(io),
            &["eth0", "eth1"],
            &["--engines", "per-worker"],
        );
        let log = lab.rvsd_log();
        assert!(
            log.contains("2 worker thread(s), engine per worker"),
            "{io}: two workers with their own engines expected:\n{log}"
        );
        lab.adm_ok(&director, &["-A", "-t", "10.0.1.100:8000", "-s", "rr"]);
        lab.adm_ok(
            &director,
            &["-a", "-t", "10.0.1.100:8000", "-r", "10.0.2.11:8000", "-m"],
        );
        let got = fetch_retry(&client, "10.0.1.100", 8000, Duration::from_secs(8));
        assert_eq!(got.as_deref(), Some("rs1"), "{io}:\n{}", lab.rvsd_log());
        // A second real server: rr's one position for both replicas.
        lab.adm_ok(
            &director,
            &["-a", "-t", "10.0.1.100:8000", "-r", "10.0.2.11:8001", "-m"],
        );
        let mut failed = Vec::new();
        let mut answers = Vec::new();
        for i in 0..30 {
            let src = format!("10.0.1.{}", 3 + i % 8);
            let o = std::process::Command::new("ip")
                .args(["netns", "exec", &client, "socat", "-T", "3", "-"])
                .arg(format!("TCP:10.0.1.100:8000,connect-timeout=3,bind={src}"))
                .stdin(Stdio::null())
                .output()
                .expect("socat");
            let answer = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if answer != "rs1" && answer != "rs1b" {
                failed.push(i);
            }
            answers.push(answer);
        }
        let dp = String::from_utf8_lossy(
            &std::process::Command::new("ip")
                .args(["netns", "exec", &director])
                .arg(bin("rvs"))
                .arg("dataplane")
                .env_remove("RVS_SOCKET")
                .output()
                .expect("rvs dataplane")
                .stdout,
        )
        .to_string();
        assert!(
            failed.is_empty(),
            "{io}: connections {failed:?} failed\n{dp}\nrvsd log:\n{}",
            lab.rvsd_log()
        );
        // The connections, from 8 client addresses owned by either
        // replica, took turns as one round robin (each replica's own
        // position would make runs of one server).
        assert!(
            answers.windows(2).all(|w| w[0] != w[1]),
            "{io}: rr did not alternate across the replicas: {answers:?}\n{dp}"
        );
        // The total row: handed-off is the 13th number, handoff-drop the 14th.
        let total: Vec<u64> = dp
            .lines()
            .find(|l| l.trim_start().starts_with("total"))
            .unwrap_or_else(|| panic!("no total row:\n{dp}"))
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().expect("number"))
            .collect();
        eprintln!("{io}:\n{dp}");
        assert!(total[12] > 0, "{io}: no frame was handed over:\n{dp}");
        // Both replicas own connections: both workers forwarded.
        for w in ["0", "1"] {
            let fwd: u64 = dp
                .lines()
                .find(|l| l.split_whitespace().next() == Some(w))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            assert!(fwd > 0, "{io}: worker {w} forwarded nothing:\n{dp}");
        }
        assert_eq!(total[13], 0, "{io}: hand-overs dropped:\n{dp}");
        // The replicas' tables share one bound: --max-conns's default,
        // not one per worker.
        assert!(
            dp.contains(" of 1048576, table full"),
            "{io}: one bound for both tables expected:\n{dp}"
        );
        // NAT makes no frame of its own: sent at most what came in (a
        // hand-off sent twice would show here).
        assert!(total[1] <= total[0], "{io}: more sent than received:\n{dp}");
        let list = lab.adm_ok(&director, &["-L", "-n", "--stats"]);
        let st = service_stats(&list, "10.0.1.100:8000");
        assert!(st[0] >= 31, "{io}: connections not counted:\n{list}");
        assert!(st[2] >= 31, "{io}: replies not counted:\n{list}");
    }
}
