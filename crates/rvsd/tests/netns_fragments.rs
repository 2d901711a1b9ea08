//! IP fragments end to end: a client sends one 3000-byte UDP datagram to
//! a UDP virtual service over a 1500-byte MTU (its kernel cuts it into
//! three fragments, DF clear), and the real server's socket receives
//! exactly those 3000 bytes, in DR, NAT (the 3000 bytes echoed back reach
//! the client: the real server's fragments are translated too) and TUN
//! (full-size fragments cut again to fit the tunnel), with `--io xdp` and
//! `--io packet`.
//!
//! Topologies of netns_dataplane.rs (`one_segment_base`, `nat_topology`).
//! Needs root and python3. Namespaces and processes are removed by the
//! Lab's guard, also when a test fails.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{EngineCounters, Reply, Request};

mod common;
use common::*;

/// The datagram's size.
const SIZE: usize = 3000;

/// The receiver: appends `LEN ok|bad` per datagram to a file; echoes when
/// asked. IP_MTU_DISCOVER (10) = IP_PMTUDISC_DONT (0): no DF, so the
/// kernel fragments what it sends.
const SERVER: &str = r#"
import socket, sys
port, out, echo = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
exp = bytes((i * 7 + 3) % 256 for i in range(3000))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 0)
s.bind(("0.0.0.0", port))
while True:
    d, a = s.recvfrom(65535)
    with open(out, "a") as f:
        f.write("%d %s\n" % (len(d), "ok" if d == exp else "bad"))
    if echo:
        s.sendto(d, a)
"#;

/// The client: sends the datagram once (no DF); with echo, waits a second
/// for it to come back and prints `LEN ok|bad FROM`, else `timeout`.
const CLIENT: &str = r#"
import socket, sys
vip, port, echo = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
exp = bytes((i * 7 + 3) % 256 for i in range(3000))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 0)
s.settimeout(1.0)
s.sendto(exp, (vip, port))
if echo:
    try:
        d, a = s.recvfrom(65535)
        print("%d %s %s" % (len(d), "ok" if d == exp else "bad", a[0]))
    except socket.timeout:
        print("timeout")
else:
    print("sent")
"#;

/// The engine's counters of the rvsd of `ns`.
fn engine_counters(ns: &str) -> EngineCounters {
    in_netns(ns, || {
        let mut c = Client::connect(&Endpoint::Abstract("rvsd.ctl".into())).expect("connect");
        match c.call(Request::DataPlaneStats).expect("call") {
            Reply::DataPlaneStats {
                engine: Some(e), ..
            } => *e,
            other => panic!("unexpected reply {other:?}"),
        }
    })
}

/// Start the receiver on UDP `port` of `ns`; the file it writes to.
fn start_receiver(lab: &mut Lab, ns: &str, port: u16, echo: bool) -> std::path::PathBuf {
    let out = lab.temp_path(&format!("{ns}-udp-{port}.txt"));
    let _ = std::fs::remove_file(&out);
    let port = port.to_string();
    lab.spawn(
        ns,
        "python3",
        &[
            "-c",
            SERVER,
            &port,
            out.to_str().expect("path"),
            if echo { "1" } else { "0" },
        ],
        Stdio::null(),
    );
    // Until it listens.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let o = lab.exec(ns, &["ss", "-Huln", &format!("sport = :{port}")]);
        if !o.stdout.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the UDP receiver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    out
}

/// Send the datagram from `client` to `vip:port` until the receiver's file
/// says it came (a few tries: the first may find a next hop unresolved);
/// with `echo`, until the client gets it back. What was received.
fn send_until_received(
    lab: &Lab,
    client: &str,
    vip: &str,
    port: u16,
    out: &std::path::Path,
    echo: bool,
) -> (String, String) {
    let port_s = port.to_string();
    let mut back = String::new();
    for _ in 0..8 {
        let o = lab.exec(
            client,
            &[
                "python3",
                "-c",
                CLIENT,
                vip,
                &port_s,
                if echo { "1" } else { "0" },
            ],
        );
        back = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let got = std::fs::read_to_string(out).unwrap_or_default();
            if !got.is_empty() && (!echo || back != "timeout") {
                return (got, back);
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (std::fs::read_to_string(out).unwrap_or_default(), back)
}

/// Diagnostics for a failed assertion.
fn diag(lab: &Lab, director: &str) -> String {
    format!(
        "rvsd log:\n{}\nlist:\n{}\nengine: {:?}",
        lab.rvsd_log(),
        lab.adm_ok(director, &["-L", "-n", "--stats"]),
        engine_counters(director)
    )
}

/// The receiver got the whole datagram, intact, and the engine tracked it.
fn check_received(lab: &Lab, director: &str, got: &str) {
    let first = got.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!("{SIZE} ok"),
        "the real server did not get the datagram intact: {got:?}\n{}",
        diag(lab, director)
    );
    let e = engine_counters(director);
    assert!(e.frag_tracked >= 1, "{e:?}");
}

/// DR or TUN on one segment; `io` the back end.
fn one_segment_udp(tag: &str, io: &str, tun: bool) {
    require_root();
    let mut lab = Lab::new("rvsfrag", tag);
    let (_sw, client, director, rs1) = one_segment_base(&mut lab, 1);
    if tun {
        lab.realserver_tun(&rs1, "10.0.0.100");
    } else {
        lab.vip_on_lo(&rs1, "10.0.0.100/32");
    }
    let out = start_receiver(&mut lab, &rs1, 5353, false);
    lab.start_rvsd(&director, Some(io), &["eth0"], &[]);
    let fwd = if tun { "-i" } else { "-g" };
    lab.adm_ok(&director, &["-A", "-u", "10.0.0.100:5353", "-s", "rr"]);
    lab.adm_ok(
        &director,
        &["-a", "-u", "10.0.0.100:5353", "-r", "10.0.0.11", fwd],
    );
    let (got, _) = send_until_received(&lab, &client, "10.0.0.100", 5353, &out, false);
    check_received(&lab, &director, &got);
    if tun {
        let e = engine_counters(&director);
        assert!(
            e.tunnel_fragmented >= 2,
            "full-size fragments cut for the tunnel: {e:?}"
        );
    }
}

/// NAT on two segments, the datagram echoed back; `io` the back end.
fn nat_udp(tag: &str, io: &str) {
    require_root();
    let mut lab = Lab::new("rvsfrag", tag);
    let TwoSegments {
        client,
        director,
        rs1,
    } = nat_topology(&mut lab);
    let out = start_receiver(&mut lab, &rs1, 5353, true);
    lab.start_rvsd(&director, Some(io), &["eth0", "eth1"], &[]);
    lab.adm_ok(&director, &["-A", "-u", "10.0.1.100:53", "-s", "rr"]);
    lab.adm_ok(
        &director,
        &["-a", "-u", "10.0.1.100:53", "-r", "10.0.2.11:5353", "-m"],
    );
    let (got, back) = send_until_received(&lab, &client, "10.0.1.100", 53, &out, true);
    check_received(&lab, &director, &got);
    assert_eq!(
        back,
        format!("{SIZE} ok 10.0.1.100"),
        "the echo did not come back intact from the VIP\n{}",
        diag(&lab, &director)
    );
    let list = lab.adm_ok(&director, &["-L", "-n", "--stats"]);
    let st = service_stats(&list, "10.0.1.100:53");
    // Conns, InPkts, OutPkts: every fragment counted, both ways.
    assert!(st[1] >= 3 && st[2] >= 3, "{list}");
}

#[test]
fn dr_xdp() {
    one_segment_udp("dr", "xdp", false);
}

#[test]
fn tun_xdp() {
    one_segment_udp("tun", "xdp", true);
}

#[test]
fn nat_xdp() {
    nat_udp("nat", "xdp");
}

#[test]
fn tun_packet() {
    one_segment_udp("tunp", "packet", true);
}

#[test]
fn nat_packet() {
    nat_udp("natp", "packet");
}

#[test]
fn dr_packet() {
    one_segment_udp("drp", "packet", false);
}
