//! End-to-end packet path with `rvsd --io packet` (AF_PACKET sockets and
//! the nftables table), `--io auto`, and one worker per RX queue.
//!
//! Topologies as in netns_dataplane.rs: DR and TUN on one bridged segment,
//! NAT on two segments. Every test checks that a TCP payload comes back
//! byte-exact, that HTTP works through the VIP, and that the director's
//! kernel, which holds the VIP but has no listener on the service port,
//! never answers a claimed packet with a reset.
//!
//! Needs root, socat, curl, python3 and nft (CI has them); with
//! `RVS_SKIP_PRIVILEGED_TESTS=1` and no root the tests say so and pass.
//! Namespaces (prefix `rvspkt-`) and processes are removed by guards, also
//! when a test fails.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{DataPlaneWorker, Reply, Request};

mod common;
use common::*;

/// The prefix of this file's namespaces.
const PREFIX: &str = "rvspkt";

/// Whether GRO is on for `iface` of `ns`.
fn gro(ns: &str, iface: &str) -> bool {
    let iface = iface.to_string();
    in_netns(ns, move || {
        rvs_io::packet::gro(&iface).expect("GRO setting")
    })
}

/// Turn GRO of `iface` of `ns` on or off.
fn set_gro(ns: &str, iface: &str, on: bool) {
    let iface = iface.to_string();
    in_netns(ns, move || {
        rvs_io::packet::set_gro(&iface, on).expect("set GRO")
    });
}

/// The data-plane counters of the rvsd of `ns`: mode and workers.
fn dataplane_stats(ns: &str) -> (String, Vec<DataPlaneWorker>) {
    in_netns(ns, || {
        let mut c = Client::connect(&Endpoint::Abstract("rvsd.ctl".into())).expect("connect");
        match c.call(Request::DataPlaneStats).expect("call") {
            Reply::DataPlaneStats { mode, workers, .. } => (mode, workers),
            other => panic!("unexpected reply {other:?}"),
        }
    })
}

/// TCP `OutRsts` of the kernel of `ns` (`/proc/net/snmp`).
fn out_rsts(ns: &str) -> u64 {
    let o = run(&["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"]);
    let text = String::from_utf8(o.stdout).expect("utf8");
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (head, vals) = (tcp.next().expect("Tcp header"), tcp.next().expect("Tcp"));
    let i = head
        .split_whitespace()
        .position(|h| h == "OutRsts")
        .expect("OutRsts");
    vals.split_whitespace()
        .nth(i)
        .and_then(|v| v.parse().ok())
        .expect("OutRsts value")
}

/// Send `data` from `ns` to the echo server at `addr:port`, half-close, and
/// return what came back.
fn echo(ns: &str, addr: &str, port: u16, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "socat", "-t", "5", "-T", "8", "-"])
        .arg(format!("TCP:{addr}:{port},connect-timeout=3"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("socat");
    let _ = writer.join();
    out.stdout
}

/// A payload of `n` pseudo-random bytes.
fn payload(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `python3 -m http.server --bind ADDR`, without the reverse DNS lookup of
/// ADDR that `HTTPServer.server_bind` makes (`socket.getfqdn`): in a
/// namespace whose packets to the host's resolver are dropped (a director
/// without forwarding) it held the server's start for the resolver's
/// timeout. Arguments: address, port, directory.
const HTTP_SERVER: &str = "
import functools, http.server, socketserver, sys
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[3])
Server((sys.argv[1], int(sys.argv[2])), handler).serve_forever()
";

/// The servers of a real server: an echo server on `addr:8000`, a line
/// server (`rs1`) on `addr:8001`, and an HTTP server on `addr:8080`
/// serving `index.bin` (returned).
fn servers(lab: &mut Lab, rs: &str, addr: &str) -> Vec<u8> {
    lab.spawn(
        rs,
        "socat",
        &[
            &format!("TCP-LISTEN:8000,bind={addr},fork,reuseaddr"),
            "SYSTEM:cat",
        ],
        Stdio::null(),
    );
    lab.spawn(
        rs,
        "socat",
        &[
            &format!("TCP-LISTEN:8001,bind={addr},fork,reuseaddr"),
            "SYSTEM:echo rs1",
        ],
        Stdio::null(),
    );
    let dir = std::env::temp_dir().join(format!("{}-www", lab.prefix));
    std::fs::create_dir_all(&dir).expect("www dir");
    lab.paths.push(dir.clone());
    let body = payload(300_000);
    std::fs::write(dir.join("index.bin"), &body).expect("index.bin");
    lab.spawn(
        rs,
        "python3",
        &["-c", HTTP_SERVER, addr, "8080", dir.to_str().expect("path")],
        Stdio::null(),
    );
    // Wait until the servers answer in their own namespace.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch(rs, addr, 8001).is_none()
        || http_get(rs, &format!("http://{addr}:8080/index.bin")).is_none()
    {
        assert!(
            Instant::now() < deadline,
            "real-server servers did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    body
}

/// Add services `vip:8000`, `vip:8001`, `vip:8080` with real server `rip`
/// (`fwd`: -g, -m or -i; with -m the ports are the same).
fn add_services(lab: &Lab, director: &str, vip: &str, rip: &str, fwd: &str) {
    for port in [8000, 8001, 8080] {
        let svc = format!("{vip}:{port}");
        lab.adm_ok(director, &["-A", "-t", &svc, "-s", "rr"]);
        let rs = if fwd == "-m" {
            format!("{rip}:{port}")
        } else {
            rip.to_string()
        };
        lab.adm_ok(director, &["-a", "-t", &svc, "-r", &rs, fwd]);
    }
}

/// The checks every topology passes: the line server answers through the
/// VIP (several connections), a payload is echoed byte-exact, HTTP returns
/// the file, and the director's kernel sent no reset.
fn check_traffic(lab: &Lab, client: &str, director: &str, vip: &str, body: &[u8]) {
    let rsts = out_rsts(director);
    let got = fetch_retry(client, vip, 8001, Duration::from_secs(8));
    assert_eq!(
        got.as_deref(),
        Some("rs1"),
        "no answer through the director\nrvsd log:\n{}\nlist:\n{}",
        lab.rvsd_log(),
        lab.adm_ok(director, &["-L", "-n", "--stats"])
    );
    let mut failed = Vec::new();
    for i in 0..10 {
        if fetch(client, vip, 8001).as_deref() != Some("rs1") {
            failed.push(i);
        }
    }
    assert!(failed.is_empty(), "connections {failed:?} failed");
    let data = payload(200_000);
    let back = echo(client, vip, 8000, &data);
    assert!(
        back == data,
        "echo through the VIP not byte-exact: sent {}, got {} bytes\nrvsd log:\n{}",
        data.len(),
        back.len(),
        lab.rvsd_log()
    );
    let got = http_get(client, &format!("http://{vip}:8080/index.bin"));
    assert!(
        got.as_deref() == Some(body),
        "HTTP through the VIP: got {:?} bytes",
        got.map(|b| b.len())
    );
    assert_eq!(
        out_rsts(director),
        rsts,
        "the director's kernel answered claimed packets with resets"
    );
    // The data plane forwarded them and the statistics count them. With
    // the XDP fast path on (RVSD_FAST_PATH), the packets of established
    // flows never reach the workers; every connection's SYN, first ACK and
    // FIN still do (13 connections or more), and the statistics count both.
    let (_, workers) = dataplane_stats(director);
    let forwarded: u64 = workers.iter().map(|w| w.forwarded).sum();
    assert!(forwarded > 20, "{workers:?}");
    let list = lab.adm_ok(director, &["-L", "-n", "--stats", "--exact"]);
    let inpkts: u64 = [8000, 8001, 8080]
        .iter()
        .map(|p| service_stats(&list, &format!("{vip}:{p}"))[1])
        .sum();
    assert!(inpkts > 100, "{list}\n{workers:?}");
}

/// Names of the namespaces of [`one_segment`].
struct OneSegment {
    client: String,
    director: String,
    rs1: String,
}

/// Client 10.0.0.1, director 10.0.0.2 and real server 10.0.0.11 on one
/// bridge; VIP 10.0.0.100 on the director's `lo`, routed by the client
/// through the director. `queues`: RX/TX queues of the director's link.
/// `tun`: the real server is prepared with `rvs realserver up --tun`,
/// else the VIP is on its `lo` with the ARP sysctls (DR).
fn one_segment(lab: &mut Lab, queues: u32, tun: bool) -> (OneSegment, Vec<u8>) {
    let (_sw, client, director, rs1) = one_segment_base(lab, queues);
    if tun {
        lab.realserver_tun(&rs1, "10.0.0.100");
    } else {
        lab.vip_on_lo(&rs1, "10.0.0.100/32");
    }
    let body = servers(lab, &rs1, "10.0.0.100");
    (
        OneSegment {
            client,
            director,
            rs1,
        },
        body,
    )
}

/// Whether `table netdev rvs` exists in `ns`.
fn nft_table_present(ns: &str) -> bool {
    let o = run(&["ip", "netns", "exec", ns, "nft", "list", "tables"]);
    String::from_utf8_lossy(&o.stdout).contains("netdev rvs")
}

#[test]
fn packet_direct_routing_one_segment() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "dr");
    let (n, body) = one_segment(&mut lab, 1, false);
    // GRO on (as on most NICs): rvsd leaves it on, and the frames it
    // merges (longer than the MTU) are cut back into segments.
    set_gro(&n.director, "eth0", true);
    assert!(gro(&n.director, "eth0"));
    let rvsd = lab.start_rvsd(&n.director, Some("packet"), &["eth0"], &[]);
    assert!(lab.rvsd_log().contains("--io packet"), "{}", lab.rvsd_log());
    assert!(gro(&n.director, "eth0"), "GRO turned off");
    assert!(nft_table_present(&n.director));
    add_services(&lab, &n.director, "10.0.0.100", "10.0.0.11", "-g");
    // The table holds the services once rvsadm returned.
    let t = run(&[
        "ip",
        "netns",
        "exec",
        &n.director,
        "nft",
        "list",
        "table",
        "netdev",
        "rvs",
    ]);
    let t = String::from_utf8_lossy(&t.stdout).to_string();
    assert!(t.contains("ip daddr 10.0.0.100 tcp dport 8001 drop"), "{t}");
    check_traffic(&lab, &n.client, &n.director, "10.0.0.100", &body);
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats"]);
    assert!(list.contains("10.0.0.11:8001"), "{list}");
    let (mode, workers) = dataplane_stats(&n.director);
    assert_eq!(mode, "packet");
    assert_eq!(workers.len(), 1);
    // The 200 kB echo from the client arrived merged by GRO.
    assert!(workers[0].segmented > 0, "{workers:?}");
    lab.stop_rvsd(rvsd);
    assert!(!nft_table_present(&n.director), "table left behind");
    assert!(gro(&n.director, "eth0"), "GRO changed");
    let log = lab.rvsd_log();
    assert!(log.contains("worker 0: rx "), "{log}");
    // Without rvsd the director's kernel answers the claimed port with a
    // reset: what the table kept from happening.
    assert_eq!(fetch(&n.client, "10.0.0.100", 8001), None);
    let _ = &n.rs1;
}

#[test]
fn packet_nat_two_segments() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "nat");
    let TwoSegments {
        client,
        director,
        rs1,
    } = nat_topology(&mut lab);
    // With forwarding on, the director's kernel would route the real
    // server's replies to the client untranslated: the table must stop it.
    lab.exec(&director, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let body = servers(&mut lab, &rs1, "10.0.2.11");
    let rvsd = lab.start_rvsd(&director, Some("packet"), &["eth0", "eth1"], &[]);
    add_services(&lab, &director, "10.0.1.100", "10.0.2.11", "-m");
    // The count starts once a connection has worked: a first try that
    // waits for the director to resolve the real server can outlast
    // socat's half-close wait (0.5 s) under load, and the client then
    // resets the answer it no longer wants (seen once in CI).
    assert!(
        fetch_retry(&client, "10.0.1.100", 8001, Duration::from_secs(8)).is_some(),
        "no answer through the director\nrvsd log:\n{}",
        lab.rvsd_log()
    );
    // What must not happen, counted where it would show: a reply reaching
    // the client from the real server's own address (untranslated). The
    // client's resets are said too, but a reset can also answer a
    // translated reply that came after socat gave up under load.
    run(&[
        "ip",
        "netns",
        "exec",
        &client,
        "nft",
        "add table inet rvstest; \
         add chain inet rvstest in { type filter hook input priority 0; }; \
         add rule inet rvstest in ip saddr 10.0.2.0/24 counter",
    ]);
    let client_rsts = out_rsts(&client);
    check_traffic(&lab, &client, &director, "10.0.1.100", &body);
    let untranslated = run(&[
        "ip", "netns", "exec", &client, "nft", "list", "table", "inet", "rvstest",
    ]);
    let untranslated = String::from_utf8_lossy(&untranslated.stdout).to_string();
    assert!(
        untranslated.contains("counter packets 0 bytes 0"),
        "replies reached the client untranslated (the client reset {} packets):\n{untranslated}",
        out_rsts(&client) - client_rsts
    );
    let list = lab.adm_ok(&director, &["-L", "-n", "--stats"]);
    let line = list
        .lines()
        .find(|l| l.contains("10.0.1.100:8000"))
        .expect("service line");
    let outpkts: u64 = line
        .split_whitespace()
        .nth(4)
        .and_then(|v| v.parse().ok())
        .expect("OutPkts");
    assert!(outpkts > 50, "NAT: replies through the director:\n{list}");
    // The director's own connection to the NAT real server's service port
    // (a health check's): the table does not drop what comes back to the
    // director's addresses (read once a second: a few tries).
    let own = fetch_retry(&director, "10.0.2.11", 8001, Duration::from_secs(3));
    assert_eq!(
        own.as_deref(),
        Some("rs1"),
        "the director's own connection to its NAT real server failed\n{}",
        lab.rvsd_log()
    );
    lab.stop_rvsd(rvsd);
    assert!(!nft_table_present(&director));
}

#[test]
fn packet_tunnel_ipip() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "tun");
    let (n, body) = one_segment(&mut lab, 1, true);
    lab.start_rvsd(&n.director, Some("packet"), &["eth0"], &[]);
    add_services(&lab, &n.director, "10.0.0.100", "10.0.0.11", "-i");
    check_traffic(&lab, &n.client, &n.director, "10.0.0.100", &body);
    let list = lab.adm_ok(&n.director, &["-L", "-n"]);
    assert!(list.contains("Tunnel"), "{list}");
}

#[test]
fn auto_picks_xdp_where_it_works() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new(PREFIX, "auto");
    let (n, body) = one_segment(&mut lab, 1, false);
    lab.start_rvsd(&n.director, None, &["eth0"], &[]);
    let log = lab.rvsd_log();
    assert!(
        log.contains("--io xdp") && log.contains("--io auto"),
        "auto did not choose xdp:\n{log}"
    );
    assert!(!nft_table_present(&n.director));
    add_services(&lab, &n.director, "10.0.0.100", "10.0.0.11", "-g");
    check_traffic(&lab, &n.client, &n.director, "10.0.0.100", &body);
    // `rvs dataplane` prints the counters.
    let o = lab.exec(
        &n.director,
        &[bin("rvs").to_str().expect("path"), "dataplane"],
    );
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.starts_with(
            "packet I/O: xdp\nwhy: --io auto: the XDP classifier attached and the AF_XDP \
             sockets opened"
        ),
        "{text}"
    );
    assert!(text.contains("classifier: redirected "), "{text}");
    assert!(text.lines().any(|l| l.starts_with("total ")), "{text}");
}

/// Two RX queues on the director's link: two workers, both forward. The
/// connections come from 8 client addresses: each worker's engine replica
/// owns some (a frame is handled by the replica of its client address,
/// whichever queue it came in on).
fn two_queue_workers(io: &str) {
    let mut lab = Lab::new(PREFIX, &format!("mq{io}"));
    let (n, _) = one_segment(&mut lab, 2, false);
    for a in 31..=38 {
        ipn(&n.client, &format!("addr add 10.0.0.{a}/24 dev eth0"));
    }
    lab.start_rvsd(&n.director, Some(io), &["eth0"], &[]);
    assert!(
        lab.rvsd_log()
            .contains("2 worker thread(s), engine per worker"),
        "{}",
        lab.rvsd_log()
    );
    add_services(&lab, &n.director, "10.0.0.100", "10.0.0.11", "-g");
    assert_eq!(
        fetch_retry(&n.client, "10.0.0.100", 8001, Duration::from_secs(8)).as_deref(),
        Some("rs1"),
        "{}",
        lab.rvsd_log()
    );
    // New connections from new ports and addresses: the flows spread
    // over both workers.
    let mut failed = Vec::new();
    for i in 0..30 {
        let o = std::process::Command::new("ip")
            .args(["netns", "exec", &n.client, "socat", "-T", "3", "-"])
            .arg(format!(
                "TCP:10.0.0.100:8001,connect-timeout=3,bind=10.0.0.{}",
                31 + i % 8
            ))
            .stdin(Stdio::null())
            .output()
            .expect("socat");
        if String::from_utf8_lossy(&o.stdout).trim() != "rs1" {
            failed.push(i);
        }
    }
    assert!(failed.is_empty(), "connections {failed:?} failed");
    let (mode, workers) = dataplane_stats(&n.director);
    assert_eq!(mode, io);
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert!(
        workers.iter().all(|w| w.forwarded >= 5),
        "both workers should forward: {workers:?}"
    );
}

#[test]
fn packet_workers_per_queue() {
    if !privileged() {
        return;
    }
    two_queue_workers("packet");
}

#[test]
fn xdp_workers_per_queue() {
    if !privileged() {
        return;
    }
    two_queue_workers("xdp");
}

#[test]
fn packet_io_errors_are_clear() {
    if !privileged() {
        return;
    }
    // An interface that exists but is not a device packets can be read
    // from is hard to come by; a name that does not exist is refused before
    // any I/O with exit status 2, naming it.
    let mut lab = Lab::new(PREFIX, "bad");
    let d = lab.ns("d");
    let o = Command::new("ip")
        .args(["netns", "exec", &d])
        .arg(bin("rvsd"))
        .args(["--io", "packet", "--interface", "nosuch0"])
        .env_remove("RVS_SOCKET")
        .output()
        .expect("rvsd");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nosuch0"));
    // No nft: a clear error naming the package, nothing left behind.
    run(&[
        "ip", "-n", &d, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
    ]);
    run(&["ip", "-n", &d, "link", "set", "v0", "up"]);
    let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("ip");
    let o = Command::new(ip)
        .args(["netns", "exec", &d])
        .arg(bin("rvsd"))
        .args(["--io", "packet", "--interface", "v0"])
        .env_remove("RVS_SOCKET")
        .env("PATH", "/nonexistent")
        .output()
        .expect("rvsd");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--io packet") && err.contains("nftables"),
        "{err}"
    );
    assert!(!nft_table_present(&d));
    // With no interface up but lo, auto serves nothing and says so.
    let idx = lab.start_rvsd(&d, Some("none"), &[], &[]);
    let (mode, workers) = dataplane_stats(&d);
    assert_eq!(mode, "none");
    assert!(workers.is_empty());
    lab.stop_rvsd(idx);
}

/// Both transmit checksum settings of the senders forward byte-exact,
/// over XDP and AF_PACKET: with the kernel's default (on) the client's and
/// the real server's frames reach rvsd with partial checksums, which it
/// finishes (counted); with it off they arrive complete and nothing is
/// finished. The only test that changes the setting.
#[test]
fn both_tx_checksum_settings_forward() {
    if !privileged() {
        return;
    }
    for io in ["xdp", "packet"] {
        let mut lab = Lab::new(PREFIX, &format!("csum-{io}"));
        let TwoSegments {
            client,
            director,
            rs1,
        } = nat_topology(&mut lab);
        let body = servers(&mut lab, &rs1, "10.0.2.11");
        let rvsd = lab.start_rvsd(&director, Some(io), &["eth0", "eth1"], &[]);
        add_services(&lab, &director, "10.0.1.100", "10.0.2.11", "-m");
        let fixed = || -> u64 {
            dataplane_stats(&director)
                .1
                .iter()
                .map(|w| w.csum_completed)
                .sum()
        };
        let before = fixed();
        check_traffic(&lab, &client, &director, "10.0.1.100", &body);
        let with_offload = fixed() - before;
        assert!(with_offload > 0, "{io}: no partial checksum finished");
        // A socket keeps the offload its route had when it was set up, so
        // the first round's connections would still send partial
        // checksums after the switch (a FIN retransmitted, seen in CI):
        // wait until none is open on either side (TIME-WAIT answers with
        // complete ones), then switch, then until the count stands still.
        for ns in [&client, &rs1] {
            wait_connections_closed(&lab, ns);
        }
        set_tx_csum(&client, "eth0", false);
        set_tx_csum(&rs1, "eth0", false);
        let mut before = fixed();
        let settle = std::time::Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let now = fixed();
            if now == before || settle.elapsed() > Duration::from_secs(5) {
                break;
            }
            before = now;
        }
        check_traffic(&lab, &client, &director, "10.0.1.100", &body);
        assert_eq!(fixed() - before, 0, "{io}: complete checksums were touched");
        eprintln!("{io}: {with_offload} checksums finished with offload on, 0 with it off");
        lab.stop_rvsd(rvsd);
    }
}

/// Waits (up to 10 s) until `ns` has no TCP connection open but those in
/// TIME-WAIT.
fn wait_connections_closed(lab: &Lab, ns: &str) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let o = lab.exec(
            ns,
            &[
                "ss",
                "-Htan",
                "exclude",
                "listening",
                "exclude",
                "time-wait",
            ],
        );
        let open = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if open.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "connections still open in {ns} after 10 s:\n{open}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILL during traffic, then a restart: nothing the killed rvsd made
/// drops traffic meanwhile (its nftables table is owned by its `nft`
/// session and goes with it; its XDP program is a link that goes with
/// its descriptors), and with `--save` the restarted rvsd has the same
/// rules and forwards again.
#[test]
fn kill_9_leaves_nothing_that_drops() {
    if !privileged() {
        return;
    }
    for io in ["packet", "xdp"] {
        let mut lab = Lab::new(PREFIX, &format!("kill-{io}"));
        let TwoSegments {
            client,
            director,
            rs1,
        } = nat_topology(&mut lab);
        let body = servers(&mut lab, &rs1, "10.0.2.11");
        let rules = std::env::temp_dir().join(format!("{}-rules", lab.prefix));
        lab.paths.push(rules.clone());
        std::fs::write(&rules, "").expect("rules");
        let r = rules.to_str().expect("path").to_string();
        let save = ["--rules", r.as_str(), "--save", r.as_str()];
        let idx = lab.start_rvsd(&director, Some(io), &["eth0", "eth1"], &save);
        add_services(&lab, &director, "10.0.1.100", "10.0.2.11", "-m");
        check_traffic(&lab, &client, &director, "10.0.1.100", &body);
        let before = lab.adm_ok(&director, &["-S", "-n"]);
        // Traffic in flight while it dies.
        let c = client.clone();
        let load = std::thread::spawn(move || echo(&c, "10.0.1.100", 8000, &payload(2_000_000)));
        std::thread::sleep(Duration::from_millis(50));
        lab.children[idx].kill().expect("SIGKILL");
        let _ = lab.children[idx].wait();
        let _ = load.join();
        let deadline = Instant::now() + Duration::from_secs(2);
        while nft_table_present(&director) {
            assert!(
                Instant::now() < deadline,
                "{io}: nft table left after SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let links = run(&["ip", "-n", &director, "link", "show"]);
        let links = String::from_utf8_lossy(&links.stdout).to_string();
        assert!(
            !links.contains(" xdp"),
            "{io}: XDP left after SIGKILL: {links}"
        );
        assert_eq!(std::fs::read_to_string(&rules).expect("rules"), before);
        let idx = lab.start_rvsd(&director, Some(io), &["eth0", "eth1"], &save);
        assert_eq!(lab.adm_ok(&director, &["-S", "-n"]), before, "{io}");
        check_traffic(&lab, &client, &director, "10.0.1.100", &body);
        lab.stop_rvsd(idx);
    }
}
