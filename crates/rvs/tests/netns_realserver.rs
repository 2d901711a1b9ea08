//! `rvs realserver up|down` in network namespaces.
//!
//! Needs root and iproute2; skipped (with a message) otherwise. Each test
//! makes its own namespaces (named after the process id and the test); a
//! guard deletes them, and with them the veth pair, the addresses, the
//! sysctls and any XDP program, even on failure. The state file of each test
//! is private (`--state` in a temporary directory the guard removes).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddrV4, UdpSocket},
    path::PathBuf,
    process::{Command, Output},
    time::Duration,
};

use rustix::net::{AddressFamily, SendFlags, SocketType, ipproto};

mod common;
use common::{RVS, can_run_with, in_ns};
use rvs_testsupport::ip as sh;

const RS_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DIRECTOR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 5);

/// Namespace `rs` (the real server, `va` 10.0.0.1/24) and `dir` (the
/// director, `vb` 10.0.0.2/24) joined by a veth pair; deleted on drop.
struct Lab {
    rs: String,
    dir: String,
    state: PathBuf,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let pid = std::process::id();
        let lab = Self {
            rs: format!("rvsr-{pid}-{tag}-rs"),
            dir: format!("rvsr-{pid}-{tag}-d"),
            state: std::env::temp_dir().join(format!("rvsr-{pid}-{tag}/realserver.json")),
        };
        // The guard exists before anything is created.
        sh(&["netns", "add", &lab.rs]);
        sh(&["netns", "add", &lab.dir]);
        let (rs, dir) = (lab.rs.as_str(), lab.dir.as_str());
        sh(&[
            "-n", rs, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", dir,
        ]);
        sh(&["-n", rs, "addr", "add", "10.0.0.1/24", "dev", "va"]);
        sh(&["-n", dir, "addr", "add", "10.0.0.2/24", "dev", "vb"]);
        for (ns, dev) in [(rs, "va"), (dir, "vb")] {
            sh(&["-n", ns, "link", "set", "lo", "up"]);
            sh(&["-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    /// `rvs realserver ARGS… --state <private>` in the real server's namespace.
    fn rvs(&self, args: &[&str]) -> Output {
        let state = self.state.to_str().expect("utf-8 temp dir");
        Command::new("ip")
            .args(["netns", "exec", &self.rs, RVS, "realserver"])
            .args(args)
            .args(["--state", state])
            .output()
            .expect("run rvs")
    }

    fn rvs_ok(&self, args: &[&str]) -> String {
        let out = self.rvs(args);
        assert!(
            out.status.success(),
            "rvs realserver {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn rvs_err(&self, args: &[&str]) -> String {
        let out = self.rvs(args);
        assert!(
            !out.status.success(),
            "rvs realserver {} should fail",
            args.join(" ")
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// A sysctl of the real server's namespace (`conf/<dev>/<key>`).
    fn sysctl(&self, dev: &str, key: &str) -> String {
        in_ns(&self.rs, || {
            std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{dev}/{key}"))
                .expect("read sysctl")
                .trim()
                .to_owned()
        })
    }

    fn set_sysctl(&self, dev: &str, key: &str, value: &str) {
        in_ns(&self.rs, || {
            std::fs::write(format!("/proc/sys/net/ipv4/conf/{dev}/{key}"), value)
                .expect("write sysctl")
        });
    }

    /// The addresses on `lo` of the real server (`ADDR/LEN`).
    fn lo_addrs(&self) -> Vec<String> {
        sh(&["-n", &self.rs, "-o", "addr", "show", "dev", "lo"])
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
            .collect()
    }

    fn xdp_on_va(&self) -> bool {
        sh(&["-n", &self.rs, "-d", "link", "show", "va"]).contains("prog/xdp")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.rs, &self.dir] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if let Some(dir) = self.state.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (20 bytes, checksummed) followed by `payload`.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let len = 20 + payload.len();
    let mut h = vec![
        0x45,
        0,
        (len >> 8) as u8,
        len as u8,
        0x12,
        0x34,
        0x40, // DF
        0,
        64,
        proto,
        0,
        0,
    ];
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// The client's UDP packet to the VIP (UDP checksum 0: none, legal in IPv4).
fn client_udp(dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(data);
    ipv4(CLIENT, dst, 17, &udp)
}

/// Sends `inner` IP-in-IP from the director's namespace to the real server:
/// a raw IPPROTO_IPIP socket makes the kernel add the outer header
/// 10.0.0.2 -> 10.0.0.1, protocol 4.
fn send_ipip(lab: &Lab, inner: &[u8]) {
    in_ns(&lab.dir, || {
        let sock = rustix::net::socket(AddressFamily::INET, SocketType::RAW, Some(ipproto::IPIP))
            .expect("raw IPIP socket");
        rustix::net::sendto(
            &sock,
            inner,
            SendFlags::empty(),
            &SocketAddrV4::new(RS_ADDR, 0),
        )
        .expect("sendto");
    });
}

#[test]
fn dr_up_down_restores_previous_values() {
    if !can_run_with(&[]) {
        return;
    }
    let lab = Lab::new("dr");
    // Non-default values, to prove `down` restores them (not defaults).
    lab.set_sysctl("all", "arp_ignore", "2");
    lab.set_sysctl("lo", "arp_ignore", "3");
    lab.set_sysctl("all", "arp_announce", "1");
    lab.set_sysctl("lo", "arp_announce", "0");
    // An address that was there before `up`: `down` must leave it.
    sh(&["-n", &lab.rs, "addr", "add", "10.0.0.101/32", "dev", "lo"]);

    lab.rvs_ok(&["up", "--vip", "10.0.0.100", "--vip", "10.0.0.101"]);
    let addrs = lab.lo_addrs();
    assert!(addrs.contains(&"10.0.0.100/32".into()), "{addrs:?}");
    assert!(addrs.contains(&"10.0.0.101/32".into()), "{addrs:?}");
    for dev in ["all", "lo"] {
        assert_eq!(lab.sysctl(dev, "arp_ignore"), "1");
        assert_eq!(lab.sysctl(dev, "arp_announce"), "2");
    }
    let state = std::fs::read_to_string(&lab.state).expect("state file");

    // Idempotent: nothing changes, the record keeps the first previous values.
    let out = lab.rvs_ok(&["up", "--vip", "10.0.0.100", "--vip", "10.0.0.101"]);
    assert!(out.contains("already up"), "{out}");
    assert_eq!(std::fs::read_to_string(&lab.state).expect("state"), state);
    assert_eq!(
        lab.lo_addrs()
            .iter()
            .filter(|a| a.starts_with("10.0.0.10"))
            .count(),
        2
    );

    lab.rvs_ok(&["down"]);
    assert_eq!(lab.sysctl("all", "arp_ignore"), "2");
    assert_eq!(lab.sysctl("lo", "arp_ignore"), "3");
    assert_eq!(lab.sysctl("all", "arp_announce"), "1");
    assert_eq!(lab.sysctl("lo", "arp_announce"), "0");
    let addrs = lab.lo_addrs();
    assert!(!addrs.contains(&"10.0.0.100/32".into()), "{addrs:?}");
    assert!(addrs.contains(&"10.0.0.101/32".into()), "{addrs:?}");
    assert!(!lab.state.exists());

    // A second `down` has nothing to undo.
    let out = lab.rvs_ok(&["down"]);
    assert!(out.contains("nothing to undo"), "{out}");
}

#[test]
fn tun_decapsulates_ipip_to_vip() {
    if !can_run_with(&[]) {
        return;
    }
    let lab = Lab::new("tun");
    lab.set_sysctl("all", "rp_filter", "2");
    lab.set_sysctl("va", "rp_filter", "1");

    // No --dev: every up, non-loopback interface (here `va`).
    let out = lab.rvs_ok(&["up", "--vip", "10.0.0.100", "--tun"]);
    assert!(out.contains("attached to va"), "{out}");
    assert!(
        lab.xdp_on_va(),
        "the program stays attached after rvs exits"
    );
    assert_eq!(lab.sysctl("all", "rp_filter"), "0");
    assert_eq!(lab.sysctl("va", "rp_filter"), "0");

    let sock = in_ns(&lab.rs, || {
        UdpSocket::bind(SocketAddrV4::new(VIP, 5555)).expect("bind the VIP")
    });
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");

    // A packet for another address is not decapsulated (no ipip module:
    // the kernel drops it); one for the VIP arrives on the socket.
    send_ipip(
        &lab,
        &client_udp(Ipv4Addr::new(10, 0, 0, 200), 4000, 5555, b"other"),
    );
    send_ipip(
        &lab,
        &client_udp(VIP, 4000, 5555, b"hello through the tunnel"),
    );
    let mut buf = [0u8; 256];
    let (n, from) = sock.recv_from(&mut buf).expect("the decapsulated packet");
    assert_eq!(&buf[..n], b"hello through the tunnel");
    assert_eq!(from, std::net::SocketAddr::from((CLIENT, 4000)));

    // Idempotent: a second `up` (another VIP) replaces our own program.
    lab.rvs_ok(&[
        "up",
        "--vip",
        "10.0.0.100",
        "--vip",
        "10.0.0.101",
        "--tun",
        "--dev",
        "va",
    ]);
    assert!(lab.xdp_on_va());
    send_ipip(&lab, &client_udp(VIP, 4001, 5555, b"again"));
    let (n, from) = sock.recv_from(&mut buf).expect("the second packet");
    assert_eq!(&buf[..n], b"again");
    assert_eq!(from, std::net::SocketAddr::from((CLIENT, 4001)));

    drop(sock);
    lab.rvs_ok(&["down"]);
    assert!(!lab.xdp_on_va(), "down detaches the program");
    assert_eq!(lab.sysctl("all", "rp_filter"), "2");
    assert_eq!(lab.sysctl("va", "rp_filter"), "1");
    assert!(!lab.lo_addrs().iter().any(|a| a.starts_with("10.0.0.10")));
}

#[test]
fn tun_leaves_a_foreign_xdp_program_alone() {
    if !can_run_with(&[]) {
        return;
    }
    let lab = Lab::new("foreign");
    // Someone else's program on va (our own decapsulator, attached by hand
    // from a thread in the namespace: `rvs` has no record of it).
    let id = in_ns(&lab.rs, || {
        rvs_io::decap::attach("va", &[IpAddr::V4(VIP)])
            .expect("attach")
            .prog_id
    });
    let before_ignore = lab.sysctl("all", "arp_ignore");
    let err = lab.rvs_err(&["up", "--vip", "10.0.0.100", "--tun", "--dev", "va"]);
    assert!(err.contains("already runs an XDP program"), "{err}");
    // Nothing changed: the sysctls were put back, no address, no state.
    assert_eq!(lab.sysctl("all", "arp_ignore"), before_ignore);
    assert!(!lab.lo_addrs().iter().any(|a| a.starts_with("10.0.0.100")));
    assert!(!lab.state.exists());
    let link = sh(&["-n", &lab.rs, "-d", "link", "show", "va"]);
    assert!(link.contains(&format!("id {id}")), "{link}");
}

#[test]
fn bad_input_changes_nothing() {
    if !can_run_with(&[]) {
        return;
    }
    let lab = Lab::new("bad");
    let before: Vec<String> = ["arp_ignore", "arp_announce"]
        .iter()
        .map(|k| lab.sysctl("all", k))
        .collect();
    let addrs = lab.lo_addrs();
    for (args, want) in [
        (&["up", "--vip", "10.0.0.x"][..], "invalid --vip '10.0.0.x'"),
        (&["up", "--vip", "10.0.0.100/32"][..], "invalid --vip"),
        (&["up"][..], "at least one --vip"),
        (
            &["up", "--vip", "10.0.0.100", "--tun", "--dev", "nope0"][..],
            "unknown interface 'nope0'",
        ),
        (
            &["up", "--vip", "10.0.0.100", "--dev", "va"][..],
            "--dev only makes sense with --tun",
        ),
        (&["sideways"][..], "unknown realserver action"),
        (&["down", "--vip", "10.0.0.100"][..], "takes no --vip"),
    ] {
        let err = lab.rvs_err(args);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let after: Vec<String> = ["arp_ignore", "arp_announce"]
        .iter()
        .map(|k| lab.sysctl("all", k))
        .collect();
    assert_eq!(before, after);
    assert_eq!(addrs, lab.lo_addrs());
    assert!(!lab.state.exists());
    assert!(!lab.xdp_on_va());
}

/// The program itself, on frames (`BPF_PROG_TEST_RUN`).
#[test]
fn decap_strips_the_outer_header() {
    if !can_run_with(&[]) {
        return;
    }
    use rvs_io::decap::Decap;
    let d = Decap::load(&[IpAddr::V4(VIP), "2001:db8::1".parse().unwrap()]).expect("load");
    let eth = |proto: u16| {
        let mut e = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        e.extend_from_slice(&proto.to_be_bytes());
        e
    };
    let inner = client_udp(VIP, 4000, 5555, b"x");
    let frame = [eth(0x0800), ipv4(DIRECTOR, RS_ADDR, 4, &inner)].concat();
    let (act, out) = d.test_run(&frame).expect("run");
    assert_eq!(act, 2, "XDP_PASS");
    assert_eq!(out, [eth(0x0800), inner.clone()].concat());

    // Not a VIP: untouched.
    let other = client_udp(Ipv4Addr::new(10, 0, 0, 200), 4000, 5555, b"x");
    let frame = [eth(0x0800), ipv4(DIRECTOR, RS_ADDR, 4, &other)].concat();
    let (act, out) = d.test_run(&frame).expect("run");
    assert_eq!((act, out), (2, frame));

    // IPv6 in IPv4 (protocol 41): the ethertype becomes IPv6.
    let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 59, 64]; // no next header, empty payload
    v6.extend_from_slice(
        &"2001:db8::99"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v6.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    let frame = [eth(0x0800), ipv4(DIRECTOR, RS_ADDR, 41, &v6)].concat();
    let (act, out) = d.test_run(&frame).expect("run");
    assert_eq!(act, 2);
    assert_eq!(out, [eth(0x86dd), v6].concat());
}

/// An IPv6 header (40 bytes) `src` → `dst` with next header `next`, then
/// `payload`.
fn ipv6(src: &str, dst: &str, next: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("payload fits");
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    for a in [src, dst] {
        h.extend_from_slice(&a.parse::<std::net::Ipv6Addr>().expect("v6").octets());
    }
    h.extend_from_slice(payload);
    h
}

/// Outer IPv6 headers (RFC 2473): IPv6-in-IPv6 (next header 41) and
/// IPv4-in-IPv6 (4) to a VIP are stripped; other VIPs, extension headers
/// (a fragment header) and truncated inner headers are left alone.
#[test]
fn decap_strips_an_outer_ipv6_header() {
    if !can_run_with(&[]) {
        return;
    }
    use rvs_io::decap::Decap;
    let d = Decap::load(&[IpAddr::V4(VIP), "2001:db8::1".parse().unwrap()]).expect("load");
    let eth = |proto: u16| {
        let mut e = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        e.extend_from_slice(&proto.to_be_bytes());
        e
    };
    let (dir, rs) = ("2001:db8:ff::2", "2001:db8:ff::11");

    // IPv6 in IPv6: the client's TCP-less packet (next header 59) to the VIP.
    let inner = ipv6("2001:db8::99", "2001:db8::1", 59, &[]);
    let frame = [eth(0x86dd), ipv6(dir, rs, 41, &inner)].concat();
    let (act, out) = d.test_run(&frame).expect("run");
    assert_eq!(act, 2, "XDP_PASS");
    assert_eq!(out, [eth(0x86dd), inner.clone()].concat());

    // IPv4 in IPv6: the ethertype becomes IPv4.
    let inner4 = client_udp(VIP, 4000, 5555, b"x");
    let frame = [eth(0x86dd), ipv6(dir, rs, 4, &inner4)].concat();
    let (act, out) = d.test_run(&frame).expect("run");
    assert_eq!(act, 2);
    assert_eq!(out, [eth(0x0800), inner4].concat());

    // Not a VIP: untouched.
    let other = ipv6("2001:db8::99", "2001:db8::2", 59, &[]);
    let frame = [eth(0x86dd), ipv6(dir, rs, 41, &other)].concat();
    assert_eq!(d.test_run(&frame).expect("run"), (2, frame));

    // A fragment header (44) between the outer header and the inner packet:
    // left to the kernel.
    let mut frag = vec![41, 0, 0, 0, 0, 0, 0, 1];
    frag.extend_from_slice(&inner);
    let frame = [eth(0x86dd), ipv6(dir, rs, 44, &frag)].concat();
    assert_eq!(d.test_run(&frame).expect("run"), (2, frame));

    // The inner header cut short, or not version 6.
    let frame = [eth(0x86dd), ipv6(dir, rs, 41, &inner[..39])].concat();
    assert_eq!(d.test_run(&frame).expect("run"), (2, frame));
    let mut v4_as_v6 = inner.clone();
    v4_as_v6[0] = 0x40;
    let frame = [eth(0x86dd), ipv6(dir, rs, 41, &v4_as_v6)].concat();
    assert_eq!(d.test_run(&frame).expect("run"), (2, frame));

    // The outer header itself cut short.
    let frame = [eth(0x86dd), ipv6(dir, rs, 41, &inner)[..30].to_vec()].concat();
    assert_eq!(d.test_run(&frame).expect("run"), (2, frame));
}
