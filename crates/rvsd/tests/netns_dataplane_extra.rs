//! More end-to-end packet paths of `rvsd --io xdp` (see netns_dataplane.rs
//! for the basic ones):
//!
//! * a VIP that is only *routed* to the director (no address on any of its
//!   interfaces, forwarding on, and a route that would make its kernel
//!   forward the VIP's packets itself): DR, TUN and NAT, DR and TUN also
//!   over IPv6; the director's kernel must never see, answer or forward a
//!   claimed packet (nft counters on every host prove it);
//! * ICMP errors from the client side travelling to the real server (the
//!   kernel's `ip_vs_in_icmp`): NAT (translated), DR and TUN (forwarded as
//!   the connection's packets are): a client's port unreachable (UDP, the
//!   real server's connected socket gets ECONNREFUSED; NAT also over IPv6,
//!   with the real-server-side error too), and a client-side router's
//!   fragmentation needed / packet too big (TCP, the real server learns the
//!   path MTU; IPv4 and IPv6);
//! * IPv6: DR on one segment, NAT over two, TUN (IPv6 in IPv6) with the real
//!   server's XDP decapsulator; and TUN across families (IPv4 in IPv6).
//!
//! Tools: iproute2 (`ip`, `ss`), socat, curl, python3, nft (nftables).
//!
//! Needs root and AF_XDP in the kernel (CI has them); with
//! `RVS_SKIP_PRIVILEGED_TESTS=1` and no root the tests are skipped. The
//! namespaces (prefix `rvsx-`) and processes are removed by a guard, also
//! when a test fails.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// The prefix of this file's namespaces.
const PREFIX: &str = "rvsx";

/// Servers of this file's tests.
impl Lab {
    /// Serve `body` as `/file` over HTTP (python's http.server, without the
    /// reverse DNS lookup of its own address it makes at start) on
    /// `addr:port` of `ns`.
    fn http_server(&mut self, ns: &str, addr: &str, port: u16, body: &[u8]) {
        let dir = self.temp_path(&format!("{ns}-www-{port}"));
        std::fs::create_dir_all(&dir).expect("www dir");
        std::fs::write(dir.join("file"), body).expect("www file");
        let script = "import functools, socket, socketserver, sys\n\
            from http import server\n\
            class S(server.ThreadingHTTPServer):\n\
            \x20   address_family = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n\
            \x20   def server_bind(self):\n\
            \x20       socketserver.TCPServer.server_bind(self)\n\
            \x20       self.server_name, self.server_port = 'rs', self.server_address[1]\n\
            h = functools.partial(server.SimpleHTTPRequestHandler, directory=sys.argv[3])\n\
            S((sys.argv[1], int(sys.argv[2])), h).serve_forever()\n";
        self.spawn(
            ns,
            "python3",
            &[
                "-c",
                script,
                addr,
                &port.to_string(),
                dir.to_str().expect("path"),
            ],
            Stdio::null(),
        );
    }

    /// A TCP echo server (socat … EXEC:cat) on `addr:port` of `ns`.
    fn echo_server(&mut self, ns: &str, addr: IpAddr, port: u16) {
        let listen = match addr {
            IpAddr::V4(a) => format!("TCP4-LISTEN:{port},bind={a},fork,reuseaddr"),
            IpAddr::V6(a) => format!("TCP6-LISTEN:{port},bind=[{a}],fork,reuseaddr"),
        };
        self.spawn(ns, "socat", &[&listen, "EXEC:cat"], Stdio::null());
    }
}

/// Bytes that are not all alike: a byte-exact transfer must keep them.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            // xorshift32
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// `http_get` until it returns `want`, for at most `limit`; the last body.
fn http_get_retry(ns: &str, url: &str, want: &[u8], limit: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limit;
    loop {
        let got = http_get(ns, url);
        if got.as_deref() == Some(want) || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// From `ns`, send `data` to the echo server at `to` and read until it
/// closes (the writer half-closes after the data): what came back.
fn echo_once(ns: &str, to: SocketAddr, data: Vec<u8>) -> Result<Vec<u8>, String> {
    in_netns(ns, move || {
        let s = TcpStream::connect_timeout(&to, Duration::from_secs(3))
            .map_err(|e| format!("connect {to}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        let writer = std::thread::spawn(move || -> Result<(), String> {
            w.write_all(&data).map_err(|e| format!("write: {e}"))?;
            w.shutdown(std::net::Shutdown::Write)
                .map_err(|e| format!("shutdown: {e}"))
        });
        let mut back = Vec::new();
        let mut r = s;
        let read = r.read_to_end(&mut back).map_err(|e| format!("read: {e}"));
        writer.join().map_err(|_| "writer panicked".to_string())??;
        read?;
        Ok(back)
    })
}

/// `echo_once` until the data comes back exactly, for at most `limit`.
fn echo_exact(ns: &str, to: SocketAddr, data: &[u8], limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        let err = match echo_once(ns, to, data.to_vec()) {
            Ok(back) if back == data => return Ok(()),
            Ok(back) => format!(
                "{} bytes back for {} sent; first difference at {:?}",
                back.len(),
                data.len(),
                back.iter().zip(data).position(|(a, b)| a != b)
            ),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(err);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Load an nft ruleset (`nft -f -`) into `ns`.
fn nft(ns: &str, script: &str) {
    exec_with_input(ns, &["nft", "-f", "-"], script.as_bytes());
}

/// Packets counted by the named nft counter `name` of table `inet rvsx`.
fn nft_count(ns: &str, name: &str) -> u64 {
    let o = run(&[
        "ip", "netns", "exec", ns, "nft", "list", "counter", "inet", "rvsx", name,
    ]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    text.split("packets ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {text}"))
}

/// Zero the counters of table `inet rvsx` of each of `namespaces`.
fn nft_reset(namespaces: &[&str]) {
    for ns in namespaces {
        run(&[
            "ip", "netns", "exec", ns, "nft", "reset", "counters", "table", "inet", "rvsx",
        ]);
    }
}

/// Wait (at most 5 s) until something in `ns` listens on TCP `port`.
fn wait_listening(ns: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let o = run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "ss",
            "-Hltn",
            &format!("sport = :{port}"),
        ]);
        if !o.stdout.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port} in {ns}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ----- topologies --------------------------------------------------------------

/// How a real server is prepared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RsSetup {
    /// VIP on `lo` and the ARP sysctls by hand (direct routing).
    Direct,
    /// `rvs realserver up --vip VIP --tun` (XDP decapsulator).
    Tunnel,
}

/// Names of the namespaces of [`one_segment`].
struct OneSegment {
    client: String,
    director: String,
    rs1: String,
}

/// Client, director and real server on one bridge (addresses `c`, `d`,
/// `r`, with prefix length `len`); the client routes `vip` through the
/// director. The real server is prepared for `rs` with `vip`. The director
/// gets no address for the VIP: the caller decides.
fn one_segment(
    lab: &mut Lab,
    (c, d, r, len): (&str, &str, &str, u8),
    vip: &str,
    rs: RsSetup,
) -> OneSegment {
    let sw = lab.ns_v6("sw");
    let client = lab.ns_v6("c");
    let director = lab.ns_v6("d");
    let rs1 = lab.ns_v6("r1");
    ipn(&sw, "link add br0 type bridge");
    ipn(&sw, "link set br0 up");
    for (ns, port, addr) in [(&client, "pc", c), (&director, "pd", d), (&rs1, "pr1", r)] {
        veth(&sw, port, ns, "eth0");
        ipn(&sw, &format!("link set {port} master br0"));
        ipn(ns, &format!("addr add {addr}/{len} dev eth0 nodad"));
    }
    napi_peer(&sw, "pd");
    let host = if vip.contains(':') { 128 } else { 32 };
    ipn(&client, &format!("route add {vip}/{host} via {d}"));
    match rs {
        RsSetup::Direct => lab.vip_on_lo(&rs1, &format!("{vip}/{host}")),
        RsSetup::Tunnel => lab.realserver_tun(&rs1, vip),
    }
    OneSegment {
        client,
        director,
        rs1,
    }
}

/// Names of the namespaces of [`two_segments`].
struct TwoSegments {
    client: String,
    director: String,
    rs1: String,
}

/// Client `c` — director `d1` / `d2` — real server `r` (default route
/// through the director); the client routes `vip` through the director.
/// `len1`/`len2`: prefix lengths of the two segments.
fn two_segments(
    lab: &mut Lab,
    (c, d1, len1): (&str, &str, u8),
    (d2, r, len2): (&str, &str, u8),
    vip: &str,
) -> TwoSegments {
    let client = lab.ns_v6("c");
    let director = lab.ns_v6("d");
    let rs1 = lab.ns_v6("r1");
    veth(&client, "eth0", &director, "eth0");
    veth(&rs1, "eth0", &director, "eth1");
    for (ns, addr, dev) in [
        (&client, format!("{c}/{len1}"), "eth0"),
        (&director, format!("{d1}/{len1}"), "eth0"),
        (&director, format!("{d2}/{len2}"), "eth1"),
        (&rs1, format!("{r}/{len2}"), "eth0"),
    ] {
        ipn(ns, &format!("addr add {addr} dev {dev} nodad"));
    }
    let host = if vip.contains(':') { 128 } else { 32 };
    ipn(&client, &format!("route add {vip}/{host} via {d1}"));
    ipn(&rs1, &format!("route add default via {d2}"));
    napi_peer(&client, "eth0");
    napi_peer(&rs1, "eth0");
    TwoSegments {
        client,
        director,
        rs1,
    }
}

// ----- 1. a VIP only routed to the director ---------------------------------

/// nft counters for [`routed_dr_tun`]: on the real server, what arrives for
/// VIP:8080 (`rs_in`), and of it what a router decremented the TTL of
/// (`rs_fwd`: the director's kernel forwarded it); on the director, what its
/// kernel forwards for the VIP either way (`kfwd`); on the client, what it
/// sends to VIP:8080 (`sent`), what comes from the VIP with the director's
/// MAC (`from_dir`: in DR/TUN the director never carries replies) and RSTs
/// from the VIP (`rst`).
fn routed_counters(n: &OneSegment, vip: &str, port: u16) {
    let dmac = mac_of(&n.director, "eth0");
    let (ip, ttl) = if vip.contains(':') {
        ("ip6", "ip6 hoplimit")
    } else {
        ("ip", "ip ttl")
    };
    nft(
        &n.rs1,
        &format!(
            "table inet rvsx {{
               counter rs_in {{}}
               counter rs_fwd {{}}
               chain pre {{ type filter hook prerouting priority -300;
                 {ip} daddr {vip} tcp dport {port} counter name rs_in
                 {ip} daddr {vip} tcp dport {port} {ttl} != 64 counter name rs_fwd
               }}
             }}"
        ),
    );
    nft(
        &n.director,
        &format!(
            "table inet rvsx {{
               counter kfwd {{}}
               chain kforward {{ type filter hook forward priority 0;
                 {ip} daddr {vip} counter name kfwd
                 {ip} saddr {vip} counter name kfwd
               }}
             }}"
        ),
    );
    nft(
        &n.client,
        &format!(
            "table inet rvsx {{
               counter sent {{}}
               counter from_dir {{}}
               counter rst {{}}
               chain out {{ type filter hook output priority 0;
                 {ip} daddr {vip} tcp dport {port} counter name sent
               }}
               chain pre {{ type filter hook prerouting priority -300;
                 {ip} saddr {vip} ether saddr {dmac} counter name from_dir
                 {ip} saddr {vip} tcp flags & rst == rst counter name rst
               }}
             }}"
        ),
    );
}

/// DR or TUN with VIP 10.0.0.100 (`v6`: fd00::100) only routed to the
/// director (10.0.0.2 / fd00::2), whose kernel forwards (`ip_forward=1` /
/// IPv6 forwarding) and has a route for the VIP through the real server
/// (10.0.0.11 / fd00::11): were a claimed packet to reach that kernel, it
/// would forward it to the real server (TTL / hop limit 63) — counted.
fn routed_dr_tun(tag: &str, rs: RsSetup, v6: bool) {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, tag);
    let (addrs, vip, host) = if v6 {
        (("fd00::1", "fd00::2", "fd00::11", 64), "fd00::100", 128)
    } else {
        (("10.0.0.1", "10.0.0.2", "10.0.0.11", 24), "10.0.0.100", 32)
    };
    let rip = addrs.2;
    let n = one_segment(&mut lab, addrs, vip, rs);
    if v6 {
        lab.sysctl(&n.director, "net.ipv6.conf.all.forwarding", "1");
    } else {
        lab.sysctl(&n.director, "net.ipv4.ip_forward", "1");
    }
    ipn(&n.director, &format!("route add {vip}/{host} via {rip}"));
    let (svc, svc9) = (
        RouterPlan::addr_port(vip, 8080),
        RouterPlan::addr_port(vip, 9000),
    );
    let body = pattern(100_000, 1);
    lab.http_server(&n.rs1, vip, 8080, &body);
    routed_counters(&n, vip, 8080);
    wait_listening(&n.rs1, 8080);
    lab.start_rvsd(&n.director, Some("xdp"), &["eth0"], &[]);
    let flag = if rs == RsSetup::Direct { "-g" } else { "-i" };
    lab.adm_lines(
        &n.director,
        &format!(
            "-A -t {svc} -s rr
             -a -t {svc} -r {rip} {flag}"
        ),
    );
    let url = format!("http://{svc}/file");
    let got = http_get_retry(&n.client, &url, &body, Duration::from_secs(10));
    assert!(
        got.as_deref() == Some(&body[..]),
        "no (or a wrong) answer through the director ({:?} bytes)\nrvsd log:\n{}\nlist:\n{}",
        got.map(|b| b.len()),
        lab.rvsd_log(),
        lab.adm_ok(&n.director, &["-L", "-n", "--stats"])
    );
    // From here on everything is resolved and listening: more requests,
    // counted from zero.
    nft_reset(&[&n.client, &n.director, &n.rs1]);
    for _ in 0..5 {
        assert_eq!(
            http_get(&n.client, &url).as_deref(),
            Some(&body[..]),
            "a later request failed"
        );
    }
    let (sent, rs_in, rs_fwd) = (
        nft_count(&n.client, "sent"),
        nft_count(&n.rs1, "rs_in"),
        nft_count(&n.rs1, "rs_fwd"),
    );
    let (fwd, from_dir, rst) = (
        nft_count(&n.director, "kfwd"),
        nft_count(&n.client, "from_dir"),
        nft_count(&n.client, "rst"),
    );
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats"]);
    let what = format!(
        "client sent {sent}, real server got {rs_in} ({rs_fwd} routed by a kernel), \
         director kernel forwarded {fwd}, client got {from_dir} from the VIP via the \
         director and {rst} RSTs\nlist:\n{list}\nrvsd log:\n{}",
        lab.rvsd_log()
    );
    assert_eq!(fwd, 0, "the director's kernel forwarded: {what}");
    assert_eq!(rs_fwd, 0, "kernel-forwarded copies reached the RS: {what}");
    assert!(rs_in >= 6 * 5, "too few packets at the real server: {what}");
    // Every packet the client sent arrived once: no duplicates, no losses.
    assert_eq!(
        rs_in, sent,
        "duplicates or losses at the real server: {what}"
    );
    assert_eq!(from_dir, 0, "the director answered for the VIP: {what}");
    assert_eq!(rst, 0, "the client got RSTs: {what}");
    let st = service_stats(&list, &svc);
    assert!(st[0] >= 6, "connections not counted:\n{list}");
    assert_eq!(st[2], 0, "replies bypass the director:\n{list}");

    // Byte-exact upload and echo. TUN: full-sized segments do not fit the
    // tunnel; the director's fragmentation needed lowers the client's path
    // MTU.
    lab.echo_server(&n.rs1, vip.parse().expect("vip"), 9000);
    lab.adm_lines(
        &n.director,
        &format!(
            "-A -t {svc9} -s rr
             -a -t {svc9} -r {rip} {flag}"
        ),
    );
    let data = pattern(300_000, 5);
    let to = SocketAddr::new(vip.parse().expect("vip"), 9000);
    if let Err(e) = echo_exact(&n.client, to, &data, Duration::from_secs(10)) {
        panic!(
            "TCP echo through the director: {e}\nrvsd log:\n{}\nlist:\n{}",
            lab.rvsd_log(),
            lab.adm_ok(&n.director, &["-L", "-n", "--stats"])
        );
    }
    assert_eq!(
        nft_count(&n.director, "kfwd"),
        0,
        "the director's kernel forwarded"
    );
}

#[test]
fn netns_dr_vip_routed_only() {
    routed_dr_tun("rdr", RsSetup::Direct, false);
}

#[test]
fn netns_tun_vip_routed_only() {
    routed_dr_tun("rtun", RsSetup::Tunnel, false);
}

#[test]
fn netns_ipv6_dr_vip_routed_only() {
    routed_dr_tun("r6dr", RsSetup::Direct, true);
}

#[test]
fn netns_ipv6_tun_vip_routed_only() {
    routed_dr_tun("r6tun", RsSetup::Tunnel, true);
}

/// NAT with VIP 10.0.1.100 only routed to the director: no address for it,
/// `ip_forward=1`, and a route for the VIP through the real server. Neither
/// the client's requests nor the real server's replies may be forwarded by
/// the director's kernel (the client would then get replies from the real
/// address and answer them with RSTs).
#[test]
fn netns_nat_vip_routed_only() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "rnat");
    let vip = "10.0.1.100";
    let n = two_segments(
        &mut lab,
        ("10.0.1.1", "10.0.1.2", 24),
        ("10.0.2.1", "10.0.2.11", 24),
        vip,
    );
    lab.sysctl(&n.director, "net.ipv4.ip_forward", "1");
    ipn(&n.director, &format!("route add {vip}/32 via 10.0.2.11"));
    let body = pattern(100_000, 2);
    lab.http_server(&n.rs1, "10.0.2.11", 8080, &body);
    nft(
        &n.director,
        "table inet rvsx {
           counter kfwd {}
           chain kforward { type filter hook forward priority 0;
             tcp dport 8080 counter name kfwd
             tcp sport 8080 counter name kfwd
           }
         }",
    );
    nft(
        &n.rs1,
        &format!(
            "table inet rvsx {{
               counter to_vip {{}}
               chain pre {{ type filter hook prerouting priority -300;
                 ip daddr {vip} counter name to_vip
               }}
             }}"
        ),
    );
    nft(
        &n.client,
        "table inet rvsx {
           counter from_rip {}
           counter rst {}
           chain pre { type filter hook prerouting priority -300;
             ip saddr 10.0.2.11 counter name from_rip
           }
           chain out { type filter hook output priority 0;
             tcp flags & rst == rst counter name rst
           }
         }",
    );
    wait_listening(&n.rs1, 8080);
    lab.start_rvsd(&n.director, Some("xdp"), &["eth0", "eth1"], &[]);
    lab.adm_lines(
        &n.director,
        &format!(
            "-A -t {vip}:8080 -s rr
             -a -t {vip}:8080 -r 10.0.2.11:8080 -m"
        ),
    );
    let url = format!("http://{vip}:8080/file");
    let got = http_get_retry(&n.client, &url, &body, Duration::from_secs(10));
    assert!(
        got.as_deref() == Some(&body[..]),
        "no (or a wrong) answer through the director ({:?} bytes)\nrvsd log:\n{}\nlist:\n{}",
        got.map(|b| b.len()),
        lab.rvsd_log(),
        lab.adm_ok(&n.director, &["-L", "-n", "--stats"])
    );
    nft_reset(&[&n.client, &n.director, &n.rs1]);
    for _ in 0..5 {
        assert_eq!(http_get(&n.client, &url).as_deref(), Some(&body[..]));
    }
    let (fwd, to_vip, from_rip, rst) = (
        nft_count(&n.director, "kfwd"),
        nft_count(&n.rs1, "to_vip"),
        nft_count(&n.client, "from_rip"),
        nft_count(&n.client, "rst"),
    );
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats"]);
    let what = format!(
        "director kernel forwarded {fwd}, RS got {to_vip} un-NATed, client got {from_rip} \
         from the real address and sent {rst} RSTs\nlist:\n{list}\nrvsd log:\n{}",
        lab.rvsd_log()
    );
    assert_eq!(fwd, 0, "the director's kernel forwarded: {what}");
    assert_eq!(to_vip, 0, "{what}");
    assert_eq!(from_rip, 0, "{what}");
    assert_eq!(rst, 0, "{what}");
    let st = service_stats(&list, &format!("{vip}:8080"));
    assert!(st[0] >= 6, "connections not counted:\n{list}");
    assert!(st[2] >= 6 * 5, "replies not counted:\n{list}");
}

// ----- 2. ICMP errors from the client side -----------------------------------

/// What [`client_icmp_refused`] saw on the real server.
struct Refused {
    /// The error of the connected socket's receive, if any.
    err: Option<std::io::Error>,
    /// ICMP packets (IPv4 header on) or ICMPv6 messages (no IPv6 header) a
    /// raw socket of the real server saw.
    icmp: Vec<Vec<u8>>,
}

/// The client sends datagrams to `vip:port` from sockets it closes at once;
/// the real server (`bind` = its listening address) answers each from a
/// socket connected to the sender, so the client's kernel answers port
/// unreachable, to the VIP. That error must reach the real server's socket
/// as ECONNREFUSED. Bounded by `limit`.
fn client_icmp_refused(
    client: &str,
    rs: &str,
    vip: &'static str,
    bind: &'static str,
    port: u16,
    limit: Duration,
) -> Refused {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_c = stop.clone();
    let client = client.to_string();
    let sender = std::thread::spawn(move || {
        in_netns(&client, move || {
            let deadline = Instant::now() + limit;
            while !stop_c.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let any = if vip.contains(':') {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                };
                if let Ok(s) = UdpSocket::bind(any) {
                    let _ = s.send_to(b"ping", (vip, port));
                }
                // Closed: the reply finds no socket.
                std::thread::sleep(Duration::from_millis(600));
            }
        });
    });
    let res = in_netns(rs, move || {
        use rustix::net::{AddressFamily, SocketType, ipproto, sockopt};
        let raw = if bind.contains(':') {
            rustix::net::socket(AddressFamily::INET6, SocketType::RAW, Some(ipproto::ICMPV6))
        } else {
            rustix::net::socket(AddressFamily::INET, SocketType::RAW, Some(ipproto::ICMP))
        }
        .expect("raw ICMP socket");
        sockopt::set_socket_timeout(&raw, sockopt::Timeout::Recv, Some(Duration::from_millis(1)))
            .expect("raw timeout");
        let deadline = Instant::now() + limit;
        let mut err = None;
        while Instant::now() < deadline && err.is_none() {
            let sock = UdpSocket::bind((bind, port)).expect("bind the real server's socket");
            sock.set_read_timeout(Some(Duration::from_millis(300)))
                .expect("timeout");
            let mut buf = [0_u8; 64];
            let Ok((_, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if sock.connect(peer).is_err() || sock.send(b"pong").is_err() {
                continue;
            }
            sock.set_read_timeout(Some(Duration::from_millis(1000)))
                .expect("timeout");
            match sock.recv(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => err = Some(e),
                _ => {}
            }
        }
        let mut icmp = Vec::new();
        let mut buf = [0_u8; 2048];
        while let Ok(n) = rustix::net::recv(&raw, &mut buf, rustix::net::RecvFlags::empty()) {
            icmp.push(buf[..n.0].to_vec());
        }
        Refused { err, icmp }
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sender.join();
    res
}

/// The first of `packets` (IPv4 with ICMP port unreachable) from `src` to
/// `dst` quoting a UDP datagram from `qsrc:qsport`.
fn port_unreachable(
    packets: &[Vec<u8>],
    src: [u8; 4],
    dst: [u8; 4],
    qsrc: [u8; 4],
    qsport: u16,
) -> Option<&Vec<u8>> {
    packets.iter().find(|p| {
        let ihl = usize::from(p.first().copied().unwrap_or(0) & 0x0f) * 4;
        let Some(q) = p.get(ihl + 8..) else {
            return false;
        };
        let qihl = usize::from(q.first().copied().unwrap_or(0) & 0x0f) * 4;
        p.len() >= 20
            && p[12..16] == src
            && p[16..20] == dst
            && p[ihl] == 3
            && p[ihl + 1] == 3
            && q.len() >= qihl + 4
            && q[9] == 17
            && q[12..16] == qsrc
            && u16::from_be_bytes([q[qihl], q[qihl + 1]]) == qsport
    })
}

/// The first of `messages` (ICMPv6, no IPv6 header) that is a port
/// unreachable quoting a UDP datagram from `qsrc:qsport`.
fn port_unreachable_v6(
    messages: &[Vec<u8>],
    qsrc: std::net::Ipv6Addr,
    qsport: u16,
) -> Option<&Vec<u8>> {
    messages.iter().find(|m| {
        m.len() >= 8 + 40 + 2
            && m[0] == 1
            && m[1] == 4
            && m[8 + 6] == 17
            && m[8 + 8..8 + 24] == qsrc.octets()
            && u16::from_be_bytes([m[48], m[49]]) == qsport
    })
}

/// From a UDP socket of `ns` connected to `vip:port`, send until a receive
/// fails with ECONNREFUSED (or another error that is not a timeout), for at
/// most `limit`: that error.
fn client_refused(
    ns: &str,
    vip: &'static str,
    port: u16,
    limit: Duration,
) -> Option<std::io::Error> {
    in_netns(ns, move || {
        let any = if vip.contains(':') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let sock = UdpSocket::bind(any).expect("bind");
        sock.connect((vip, port)).expect("connect");
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let deadline = Instant::now() + limit;
        let mut buf = [0_u8; 64];
        while Instant::now() < deadline {
            if let Err(e) = sock.send(b"ping") {
                return Some(e);
            }
            match sock.recv(&mut buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Some(e),
                Ok(_) => {}
            }
        }
        None
    })
}

/// NAT UDP over IPv6, both ways: the real server's port unreachable
/// (nothing listens on RIP:5354) reaches the client translated (from the
/// VIP), and the client's port unreachable about a reply reaches the real
/// server translated (quoted source RIP:5353).
#[test]
fn netns_ipv6_nat_icmp_both_ways() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "v6icmp");
    let vip = "fd00:1::100";
    let n = two_segments(
        &mut lab,
        ("fd00:1::1", "fd00:1::2", 64),
        ("fd00:2::1", "fd00:2::11", 64),
        vip,
    );
    ipn(&n.director, &format!("addr add {vip}/128 dev lo"));
    lab.start_rvsd(&n.director, Some("xdp"), &["eth0", "eth1"], &[]);
    lab.adm_lines(
        &n.director,
        &format!(
            "-A -u [{vip}]:5353 -s rr
             -a -u [{vip}]:5353 -r [fd00:2::11]:5353 -m
             -A -u [{vip}]:5354 -s rr
             -a -u [{vip}]:5354 -r [fd00:2::11]:5354 -m"
        ),
    );
    // Real-server side: nothing listens on 5354.
    let err = client_refused(&n.client, "fd00:1::100", 5354, Duration::from_secs(8));
    assert_eq!(
        err.as_ref().map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{err:?}\nrvsd log:\n{}\nlist:\n{}",
        lab.rvsd_log(),
        lab.adm_ok(&n.director, &["-L", "-n", "--stats"])
    );
    // Client side.
    let r = client_icmp_refused(
        &n.client,
        &n.rs1,
        "fd00:1::100",
        "fd00:2::11",
        5353,
        Duration::from_secs(10),
    );
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats"]);
    assert_eq!(
        r.err.as_ref().map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{:?}\nICMPv6 at the real server: {:02x?}\nrvsd log:\n{}\nlist:\n{list}",
        r.err,
        r.icmp,
        lab.rvsd_log()
    );
    let rip: std::net::Ipv6Addr = "fd00:2::11".parse().expect("rip");
    assert!(
        port_unreachable_v6(&r.icmp, rip, 5353).is_some(),
        "no translated port unreachable at the real server in {:02x?}",
        r.icmp
    );
    let st = service_stats(&list, &format!("[{vip}]:5354"));
    assert!(
        st[2] >= 1,
        "the real server's error not counted out:\n{list}"
    );
    let st = service_stats(&list, &format!("[{vip}]:5353"));
    assert!(st[1] >= 2, "the client's error not counted in:\n{list}");
}

/// NAT UDP: the client's port unreachable about the reply (VIP:5353 →
/// client) is translated by the director (outer destination → RIP, quoted
/// source → RIP:5353) and delivered to the real server, whose connected
/// socket sees ECONNREFUSED.
#[test]
fn netns_nat_client_icmp_to_real_server() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "cinat");
    let vip = "10.0.1.100";
    let n = two_segments(
        &mut lab,
        ("10.0.1.1", "10.0.1.2", 24),
        ("10.0.2.1", "10.0.2.11", 24),
        vip,
    );
    ipn(&n.director, &format!("addr add {vip}/32 dev lo"));
    lab.start_rvsd(&n.director, Some("xdp"), &["eth0", "eth1"], &[]);
    lab.adm_lines(
        &n.director,
        &format!(
            "-A -u {vip}:5353 -s rr
             -a -u {vip}:5353 -r 10.0.2.11:5353 -m"
        ),
    );
    let r = client_icmp_refused(
        &n.client,
        &n.rs1,
        "10.0.1.100",
        "10.0.2.11",
        5353,
        Duration::from_secs(10),
    );
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats"]);
    assert_eq!(
        r.err.as_ref().map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{:?}\nICMP at the real server: {:02x?}\nrvsd log:\n{}\nlist:\n{list}",
        r.err,
        r.icmp,
        lab.rvsd_log()
    );
    // Outer client → RIP; quoted packet RIP:5353 → client.
    let rip = [10, 0, 2, 11];
    assert!(
        port_unreachable(&r.icmp, [10, 0, 1, 1], rip, rip, 5353).is_some(),
        "no translated port unreachable at the real server in {:02x?}",
        r.icmp
    );
    let st = service_stats(&list, &format!("{vip}:5353"));
    assert!(st[1] >= 2, "the ICMP error not counted in:\n{list}");
}

/// DR and TUN UDP: the client's port unreachable goes to the VIP, which
/// routes through the director; the director forwards it to the real server
/// like the connection's packets (DR: new MACs; TUN: encapsulated), as the
/// kernel's `ip_vs_in_icmp` does. Quoted packet VIP:5353 → client, as the
/// real server sent it.
fn client_icmp_dr_tun(tag: &str, rs: RsSetup) {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, tag);
    let vip = "10.0.0.100";
    let n = one_segment(&mut lab, ("10.0.0.1", "10.0.0.2", "10.0.0.11", 24), vip, rs);
    ipn(&n.director, &format!("addr add {vip}/32 dev lo"));
    lab.start_rvsd(&n.director, Some("xdp"), &["eth0"], &[]);
    let flag = if rs == RsSetup::Direct { "-g" } else { "-i" };
    lab.adm_lines(
        &n.director,
        &format!(
            "-A -u {vip}:5353 -s rr
             -a -u {vip}:5353 -r 10.0.0.11 {flag}"
        ),
    );
    let r = client_icmp_refused(
        &n.client,
        &n.rs1,
        "10.0.0.100",
        "10.0.0.100",
        5353,
        Duration::from_secs(10),
    );
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats"]);
    assert_eq!(
        r.err.as_ref().map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{:?}\nICMP at the real server: {:02x?}\nrvsd log:\n{}\nlist:\n{list}",
        r.err,
        r.icmp,
        lab.rvsd_log()
    );
    let v = [10, 0, 0, 100];
    assert!(
        port_unreachable(&r.icmp, [10, 0, 0, 1], v, v, 5353).is_some(),
        "no port unreachable to the VIP at the real server in {:02x?}",
        r.icmp
    );
    let st = service_stats(&list, &format!("{vip}:5353"));
    assert!(st[1] >= 2, "the ICMP error not counted in:\n{list}");
}

#[test]
fn netns_dr_client_icmp_to_real_server() {
    client_icmp_dr_tun("cidr", RsSetup::Direct);
}

#[test]
fn netns_tun_client_icmp_to_real_server() {
    client_icmp_dr_tun("citun", RsSetup::Tunnel);
}

// ----- 3. IPv6 -------------------------------------------------------------------

/// An HTTP download and a byte-exact TCP echo (both directions) to `vip`
/// from `client`, with diagnostics on failure.
fn expect_v6_traffic(lab: &Lab, client: &str, director: &str, vip: &str, body: &[u8]) {
    let url = format!("http://[{vip}]:8080/file");
    let got = http_get_retry(client, &url, body, Duration::from_secs(10));
    assert!(
        got.as_deref() == Some(body),
        "HTTP: no (or a wrong) answer through the director ({:?} bytes)\nrvsd log:\n{}\nlist:\n{}",
        got.map(|b| b.len()),
        lab.rvsd_log(),
        lab.adm_ok(director, &["-L", "-n", "--stats"])
    );
    let data = pattern(300_000, 7);
    let to = SocketAddr::new(vip.parse().expect("vip"), 9000);
    if let Err(e) = echo_exact(client, to, &data, Duration::from_secs(10)) {
        panic!(
            "TCP echo through the director: {e}\nrvsd log:\n{}\nlist:\n{}",
            lab.rvsd_log(),
            lab.adm_ok(director, &["-L", "-n", "--stats"])
        );
    }
}

/// DR (`direct` true) or TUN over IPv6 on one segment: client fd00::1,
/// director fd00::2, real server fd00::11, VIP fd00::100.
fn v6_dr_tun(tag: &str, rs: RsSetup) {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, tag);
    let vip = "fd00::100";
    let n = one_segment(&mut lab, ("fd00::1", "fd00::2", "fd00::11", 64), vip, rs);
    ipn(&n.director, &format!("addr add {vip}/128 dev lo"));
    let body = pattern(200_000, 3);
    lab.http_server(&n.rs1, vip, 8080, &body);
    lab.echo_server(&n.rs1, vip.parse().expect("vip"), 9000);
    lab.start_rvsd(&n.director, Some("xdp"), &["eth0"], &[]);
    let flag = if rs == RsSetup::Direct { "-g" } else { "-i" };
    lab.adm_lines(
        &n.director,
        &format!(
            "-A -t [{vip}]:8080 -s rr
             -a -t [{vip}]:8080 -r fd00::11 {flag}
             -A -t [{vip}]:9000 -s rr
             -a -t [{vip}]:9000 -r fd00::11 {flag}"
        ),
    );
    expect_v6_traffic(&lab, &n.client, &n.director, vip, &body);
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats"]);
    for port in [8080, 9000] {
        let st = service_stats(&list, &format!("[{vip}]:{port}"));
        assert!(st[0] >= 1, "connections not counted:\n{list}");
        assert_eq!(st[2], 0, "replies bypass the director:\n{list}");
    }
    let conns = lab.adm_ok(&n.director, &["-L", "-n", "-c"]);
    assert!(conns.contains("[fd00::11]:9000"), "{conns}");
}

#[test]
fn netns_ipv6_dr_one_segment() {
    v6_dr_tun("v6dr", RsSetup::Direct);
}

/// TUN over IPv6: IPv6 in IPv6 (next header 41), stripped on the real
/// server by the XDP decapsulator. The 300 kB echo crosses the tunnel's
/// smaller MTU (the director's packet-too-big lowers the client's path MTU).
#[test]
fn netns_ipv6_tun_one_segment() {
    v6_dr_tun("v6tun", RsSetup::Tunnel);
}

/// NAT over IPv6: client fd00:1::1 — director fd00:1::2 / fd00:2::1 (VIP
/// fd00:1::100 on lo) — real server fd00:2::11.
#[test]
fn netns_ipv6_nat_two_segments() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "v6nat");
    let vip = "fd00:1::100";
    let n = two_segments(
        &mut lab,
        ("fd00:1::1", "fd00:1::2", 64),
        ("fd00:2::1", "fd00:2::11", 64),
        vip,
    );
    ipn(&n.director, &format!("addr add {vip}/128 dev lo"));
    let body = pattern(200_000, 4);
    lab.http_server(&n.rs1, "fd00:2::11", 8080, &body);
    lab.echo_server(&n.rs1, "fd00:2::11".parse().expect("rip"), 9000);
    lab.start_rvsd(&n.director, Some("xdp"), &["eth0", "eth1"], &[]);
    lab.adm_lines(
        &n.director,
        &format!(
            "-A -t [{vip}]:8080 -s rr
             -a -t [{vip}]:8080 -r [fd00:2::11]:8080 -m
             -A -t [{vip}]:9000 -s rr
             -a -t [{vip}]:9000 -r [fd00:2::11]:9000 -m"
        ),
    );
    expect_v6_traffic(&lab, &n.client, &n.director, vip, &body);
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats"]);
    for port in [8080, 9000] {
        let st = service_stats(&list, &format!("[{vip}]:{port}"));
        assert!(st[0] >= 1, "connections not counted:\n{list}");
        assert!(st[2] >= 4, "NAT: replies through the director:\n{list}");
    }
}

// ----- 2b. fragmentation needed from a router on the client side -----------

/// Addresses of [`behind_router`], one family.
struct RouterPlan {
    /// Prefix length of every segment.
    len: u8,
    /// The client's network (behind the router).
    client_net: &'static str,
    client: &'static str,
    /// The router, client side and director side.
    router_c: &'static str,
    router_d: &'static str,
    /// The director, towards the router and (NAT) towards the real server.
    director: &'static str,
    director_rs: &'static str,
    /// The real server: NAT (behind the director) and DR/TUN (beside it).
    rs_nat: &'static str,
    rs_beside: &'static str,
    vip: &'static str,
}

const PLAN_V4: RouterPlan = RouterPlan {
    len: 24,
    client_net: "10.9.0.0/24",
    client: "10.9.0.1",
    router_c: "10.9.0.254",
    router_d: "10.0.1.254",
    director: "10.0.1.2",
    director_rs: "10.0.2.1",
    rs_nat: "10.0.2.11",
    rs_beside: "10.0.1.11",
    vip: "10.0.1.100",
};

const PLAN_V6: RouterPlan = RouterPlan {
    len: 64,
    client_net: "fd09::/64",
    client: "fd09::1",
    router_c: "fd09::fe",
    router_d: "fd01::fe",
    director: "fd01::2",
    director_rs: "fd02::1",
    rs_nat: "fd02::11",
    rs_beside: "fd01::11",
    vip: "fd01::100",
};

impl RouterPlan {
    fn v6(&self) -> bool {
        self.vip.contains(':')
    }

    /// The VIP as a host route / address.
    fn vip_host(&self) -> String {
        format!("{}/{}", self.vip, if self.v6() { 128 } else { 32 })
    }

    /// How rvsadm spells `addr:port`.
    fn addr_port(a: &str, port: u16) -> String {
        if a.contains(':') {
            format!("[{a}]:{port}")
        } else {
            format!("{a}:{port}")
        }
    }
}

/// Names of the namespaces of [`behind_router`].
struct BehindRouter {
    client: String,
    router: String,
    director: String,
    rs1: String,
}

/// The client sits behind a router whose route to the client's network has
/// MTU 1280 (the devices keep 1500, so the client still announces the MSS
/// of a 1500-byte MTU). The router routes the VIP through the director.
/// `rs` `None` (NAT): the director also links to the real server `rs_nat`
/// (default route through the director) and runs on both links; otherwise
/// the real server `rs_beside` shares the director's segment with the router
/// (a bridge) and routes the client's network through the router.
fn behind_router(lab: &mut Lab, p: &RouterPlan, rs: Option<RsSetup>) -> BehindRouter {
    let client = lab.ns_v6("c");
    let router = lab.ns_v6("rt");
    let director = lab.ns_v6("d");
    let rs1 = lab.ns_v6("r1");
    let len = p.len;
    veth(&client, "eth0", &router, "eth1");
    ipn(
        &client,
        &format!("addr add {}/{len} dev eth0 nodad", p.client),
    );
    ipn(
        &router,
        &format!("addr add {}/{len} dev eth1 nodad", p.router_c),
    );
    ipn(&client, &format!("route add default via {}", p.router_c));
    // IPv4 replaces the connected route (metric 0); IPv6's has metric 256,
    // which a route of metric 1 overrides.
    let metric = if p.v6() { " metric 1" } else { "" };
    ipn(
        &router,
        &format!(
            "route replace {} dev eth1 mtu lock 1280 src {}{metric}",
            p.client_net, p.router_c
        ),
    );
    if p.v6() {
        lab.sysctl(&router, "net.ipv6.conf.all.forwarding", "1");
    } else {
        lab.sysctl(&router, "net.ipv4.ip_forward", "1");
    }
    match rs {
        None => {
            veth(&router, "eth0", &director, "eth0");
            veth(&rs1, "eth0", &director, "eth1");
            for (ns, addr, dev) in [
                (&router, p.router_d, "eth0"),
                (&director, p.director, "eth0"),
                (&director, p.director_rs, "eth1"),
                (&rs1, p.rs_nat, "eth0"),
            ] {
                ipn(ns, &format!("addr add {addr}/{len} dev {dev} nodad"));
            }
            ipn(&rs1, &format!("route add default via {}", p.director_rs));
            napi_peer(&router, "eth0");
            napi_peer(&rs1, "eth0");
        }
        Some(setup) => {
            let sw = lab.ns_v6("sw");
            ipn(&sw, "link add br0 type bridge");
            ipn(&sw, "link set br0 up");
            for (ns, port, addr) in [
                (&router, "prt", p.router_d),
                (&director, "pd", p.director),
                (&rs1, "pr1", p.rs_beside),
            ] {
                veth(&sw, port, ns, "eth0");
                ipn(&sw, &format!("link set {port} master br0"));
                ipn(ns, &format!("addr add {addr}/{len} dev eth0 nodad"));
            }
            napi_peer(&sw, "pd");
            ipn(
                &rs1,
                &format!("route add {} via {}", p.client_net, p.router_d),
            );
            match setup {
                RsSetup::Direct => lab.vip_on_lo(&rs1, &p.vip_host()),
                RsSetup::Tunnel => lab.realserver_tun(&rs1, p.vip),
            }
        }
    }
    ipn(
        &router,
        &format!("route add {} via {}", p.vip_host(), p.director),
    );
    ipn(
        &director,
        &format!("route add {} via {}", p.client_net, p.router_d),
    );
    ipn(&director, &format!("addr add {} dev lo", p.vip_host()));
    BehindRouter {
        client,
        router,
        director,
        rs1,
    }
}

/// The real server's replies (full-sized segments; IPv4 with DF) do not fit
/// the router's route to the client: the router answers fragmentation needed
/// / packet too big (MTU 1280) to their source, the VIP, through the
/// director. The director must hand it to the real server (NAT: translated;
/// DR: new MACs; TUN: encapsulated), whose kernel lowers its path MTU to the
/// client; otherwise the download stalls (a path-MTU black hole).
fn client_side_too_big(tag: &str, p: &RouterPlan, rs: Option<RsSetup>) {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, tag);
    let n = behind_router(&mut lab, p, rs);
    let (rip, bind) = match rs {
        None => (p.rs_nat, p.rs_nat),
        Some(_) => (p.rs_beside, p.vip),
    };
    let body = pattern(200_000, 6);
    lab.http_server(&n.rs1, bind, 8080, &body);
    wait_listening(&n.rs1, 8080);
    let flag = match rs {
        None => "-m",
        Some(RsSetup::Direct) => "-g",
        Some(RsSetup::Tunnel) => "-i",
    };
    if rs.is_none() {
        lab.start_rvsd(&n.director, Some("xdp"), &["eth0", "eth1"], &[]);
    } else {
        lab.start_rvsd(&n.director, Some("xdp"), &["eth0"], &[]);
    }
    let (svc, dst) = (
        RouterPlan::addr_port(p.vip, 8080),
        RouterPlan::addr_port(rip, 8080),
    );
    lab.adm_lines(
        &n.director,
        &format!(
            "-A -t {svc} -s rr
             -a -t {svc} -r {dst} {flag}"
        ),
    );
    let url = format!("http://{}/file", RouterPlan::addr_port(p.vip, 8080));
    let got = http_get_retry(&n.client, &url, &body, Duration::from_secs(12));
    let route =
        String::from_utf8_lossy(&lab.exec(&n.rs1, &["ip", "route", "get", p.client]).stdout)
            .to_string();
    assert!(
        got.as_deref() == Some(&body[..]),
        "download through the director ({:?} bytes of {})\nreal server's route: {route}\
         \nrvsd log:\n{}\nlist:\n{}",
        got.map(|b| b.len()),
        body.len(),
        lab.rvsd_log(),
        lab.adm_ok(&n.director, &["-L", "-n", "--stats"])
    );
    assert!(
        route.contains("mtu 1280"),
        "the real server did not learn the path MTU: {route}"
    );
    let _ = &n.router;
}

#[test]
fn netns_nat_client_side_frag_needed() {
    client_side_too_big("cfnat", &PLAN_V4, None);
}

#[test]
fn netns_dr_client_side_frag_needed() {
    client_side_too_big("cfdr", &PLAN_V4, Some(RsSetup::Direct));
}

#[test]
fn netns_tun_client_side_frag_needed() {
    client_side_too_big("cftun", &PLAN_V4, Some(RsSetup::Tunnel));
}

#[test]
fn netns_ipv6_nat_client_side_too_big() {
    client_side_too_big("cf6nat", &PLAN_V6, None);
}

#[test]
fn netns_ipv6_dr_client_side_too_big() {
    client_side_too_big("cf6dr", &PLAN_V6, Some(RsSetup::Direct));
}

#[test]
fn netns_ipv6_tun_client_side_too_big() {
    client_side_too_big("cf6tun", &PLAN_V6, Some(RsSetup::Tunnel));
}

/// TUN across families: IPv4 VIP 10.0.0.100, real server reached over IPv6
/// (fd00::11): the director sends IPv4 in IPv6 (next header 4), which the
/// real server's decapsulator strips.
#[test]
fn netns_tun_ipv4_vip_over_ipv6() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "tun46");
    let vip = "10.0.0.100";
    let n = one_segment(
        &mut lab,
        ("10.0.0.1", "10.0.0.2", "10.0.0.11", 24),
        vip,
        RsSetup::Tunnel,
    );
    ipn(&n.director, "addr add fd00::2/64 dev eth0 nodad");
    ipn(&n.rs1, "addr add fd00::11/64 dev eth0 nodad");
    ipn(&n.director, &format!("addr add {vip}/32 dev lo"));
    let body = pattern(100_000, 8);
    lab.http_server(&n.rs1, vip, 8080, &body);
    lab.echo_server(&n.rs1, vip.parse().expect("vip"), 9000);
    wait_listening(&n.rs1, 8080);
    lab.start_rvsd(&n.director, Some("xdp"), &["eth0"], &[]);
    lab.adm_lines(
        &n.director,
        &format!(
            "-A -t {vip}:8080 -s rr
             -a -t {vip}:8080 -r [fd00::11]:8080 -i
             -A -t {vip}:9000 -s rr
             -a -t {vip}:9000 -r [fd00::11]:9000 -i"
        ),
    );
    let url = format!("http://{vip}:8080/file");
    let got = http_get_retry(&n.client, &url, &body, Duration::from_secs(10));
    assert!(
        got.as_deref() == Some(&body[..]),
        "no (or a wrong) answer through the director ({:?} bytes)\nrvsd log:\n{}\nlist:\n{}",
        got.map(|b| b.len()),
        lab.rvsd_log(),
        lab.adm_ok(&n.director, &["-L", "-n", "--stats"])
    );
    let data = pattern(300_000, 9);
    let to = SocketAddr::new(vip.parse().expect("vip"), 9000);
    if let Err(e) = echo_exact(&n.client, to, &data, Duration::from_secs(10)) {
        panic!(
            "TCP echo through the director: {e}\nrvsd log:\n{}\nlist:\n{}",
            lab.rvsd_log(),
            lab.adm_ok(&n.director, &["-L", "-n", "--stats"])
        );
    }
    let conns = lab.adm_ok(&n.director, &["-L", "-n", "-c"]);
    assert!(conns.contains("[fd00::11]:9000"), "{conns}");
}
