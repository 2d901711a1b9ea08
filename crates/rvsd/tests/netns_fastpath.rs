//! End-to-end XDP fast path: `rvsd --io xdp --fast-path on` forwards the
//! established flows of a client namespace to real-server namespaces inside
//! its XDP program, and counts them exactly as with the fast path off.
//!
//! Topology (NAT, two segments): client 10.0.1.1 — eth0 [director] eth1 —
//! real servers 10.0.2.11 and 10.0.2.12 (one namespace on a bridge); VIP
//! 10.0.1.100. The veth peers facing the director have GRO on: a veth
//! delivers frames redirected by XDP only in NAPI mode, which rvsd probes.
//!
//! Needs root and AF_XDP (CI has them); `RVS_SKIP_PRIVILEGED_TESTS=1` skips.
//! Namespaces (`rvsfp-…`) and processes are removed by guards.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(name);
    assert!(p.exists(), "{} not built", p.display());
    p
}

/// Whether to run: root, or skip on request; panics otherwise.
fn privileged() -> bool {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    if uid == "0" {
        return true;
    }
    if std::env::var_os("RVS_SKIP_PRIVILEGED_TESTS").is_some_and(|v| v == "1") {
        eprintln!("skipped: needs root (RVS_SKIP_PRIVILEGED_TESTS=1)");
        return false;
    }
    panic!("network-namespace tests need root (or RVS_SKIP_PRIVILEGED_TESTS=1)");
}

fn run(args: &[&str]) -> Output {
    let o = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        o.status.success(),
        "{args:?}: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Enter `ns` from a fresh thread and run `f` there.
fn in_ns(ns: &str, f: impl FnOnce() + Send + 'static) {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).expect("open netns");
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        f();
    })
    .join()
    .expect("setns thread");
}

/// Namespaces and processes; all removed on drop.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    log: PathBuf,
    rvsd: Option<usize>,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let prefix = format!("rvsfp-{tag}-{}", std::process::id());
        let log = std::env::temp_dir().join(format!("{prefix}-rvsd.log"));
        Lab {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
            log,
            rvsd: None,
        }
    }

    fn ns(&mut self, short: &str) -> String {
        let name = format!("{}-{short}", self.prefix);
        run(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        run(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    fn spawn(&mut self, ns: &str, program: &str, args: &[&str], stderr: Stdio) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .env_remove("RVS_SOCKET")
            .env_remove("RVSD_FAST_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }

    fn adm(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(bin("rvsadm"))
            .args(args)
            .env_remove("RVS_SOCKET")
            .stdin(Stdio::null())
            .output()
            .expect("rvsadm")
    }

    fn adm_ok(&self, ns: &str, args: &[&str]) -> String {
        let o = self.adm(ns, args);
        assert!(
            o.status.success(),
            "rvsadm {args:?}: {:?} {}\nrvsd log:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            self.rvsd_log()
        );
        String::from_utf8(o.stdout).expect("utf8")
    }

    fn rvsd_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Start rvsd on eth0 and eth1 of `ns` with `extra` options.
    fn start_rvsd(&mut self, ns: &str, extra: &[&str]) {
        let log = File::create(&self.log).expect("log file");
        let rvsd = bin("rvsd");
        let mut args = vec!["--io", "xdp", "--interface", "eth0", "--interface", "eth1"];
        args.extend_from_slice(extra);
        let idx = self.spawn(ns, rvsd.to_str().expect("path"), &args, Stdio::from(log));
        self.rvsd = Some(idx);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.adm(ns, &["-L", "-n"]).status.success() {
            if let Ok(Some(st)) = self.children[idx].try_wait() {
                panic!("rvsd exited with {st}:\n{}", self.rvsd_log());
            }
            assert!(
                Instant::now() < deadline,
                "rvsd did not come up:\n{}",
                self.rvsd_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM rvsd, wait for it; its log.
    fn stop_rvsd(&mut self) -> String {
        let Some(idx) = self.rvsd.take() else {
            return String::new();
        };
        let pid = self.children[idx].id().to_string();
        run(&["kill", "-TERM", &pid]);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(st) = self.children[idx].try_wait().expect("wait") {
                assert!(st.success(), "rvsd: {st}\n{}", self.rvsd_log());
                break;
            }
            assert!(Instant::now() < deadline, "rvsd did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.rvsd_log()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A veth from `a` (`a_if`) to `b` (`b_if`), one queue each, up.
fn veth(a: &str, a_if: &str, b: &str, b_if: &str) {
    run(&[
        "ip",
        "-n",
        a,
        "link",
        "add",
        a_if,
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b,
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
    ]);
    run(&["ip", "-n", a, "link", "set", a_if, "up"]);
    run(&["ip", "-n", b, "link", "set", b_if, "up"]);
}

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
        in_ns(ns, move || {
            // Full checksums into the director; NAPI mode for XDP redirects.
            rvs_io::xsk::set_tx_checksum_offload("eth0", false).expect("tx csum off");
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

/// The `--stats --exact` fields of service `svc`: conns, inpkts, outpkts,
/// inbytes, outbytes.
fn stats(list: &str, svc: &str) -> Vec<u64> {
    let line = list
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(svc))
        .unwrap_or_else(|| panic!("no line for {svc} in\n{list}"));
    line.split_whitespace()
        .skip(2)
        .map(|f| f.parse().expect("number"))
        .collect()
}

/// The fast path's hit count from rvsd's log at exit.
fn hits(log: &str) -> u64 {
    log.lines()
        .find_map(|l| l.strip_prefix("rvsd: fast path: hits "))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Wait until the fast path's counters were credited (they lag by up to
/// rvsd's credit interval, 100 ms).
fn settle() {
    std::thread::sleep(Duration::from_millis(400));
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
        let mut lab = Lab::new(&format!("eq{mode}"));
        let n = nat_lab(&mut lab);
        lab.start_rvsd(&n.director, &["--fast-path", mode]);
        lab.adm_ok(&n.director, &["-A", "-u", UDP_SVC, "-s", "rr"]);
        lab.adm_ok(
            &n.director,
            &["-a", "-u", UDP_SVC, "-r", "10.0.2.11:9000", "-m"],
        );
        let (answered, sent, bytes) = udp_client(&n.client, 4, 50, 0.0);
        settle();
        let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats", "--exact"]);
        let conns = lab.adm_ok(&n.director, &["-L", "-n", "-c"]);
        let log = lab.stop_rvsd();
        assert_eq!(answered, sent, "{mode}: lost datagrams\n{list}\n{log}");
        let st = stats(&list, UDP_SVC);
        assert_eq!(
            st,
            vec![4, sent, sent, bytes, bytes],
            "{mode}: counters\n{list}\n{conns}\n{log}"
        );
        let h = hits(&log);
        eprintln!("--fast-path {mode}: {st:?}, fast-path hits {h}");
        if mode == "on" {
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
    let mut lab = Lab::new("tcp");
    let n = nat_lab(&mut lab);
    lab.start_rvsd(&n.director, &[]);
    lab.adm_ok(&n.director, &["-A", "-t", "10.0.1.100:8000", "-s", "rr"]);
    lab.adm_ok(
        &n.director,
        &["-a", "-t", "10.0.1.100:8000", "-r", "10.0.2.11:8000", "-m"],
    );
    for _ in 0..3 {
        assert_eq!(tcp_fetch(&n.client), 300_000, "{}", lab.rvsd_log());
    }
    settle();
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats", "--exact"]);
    let st = stats(&list, "10.0.1.100:8000");
    assert_eq!(st[0], 3, "{list}");
    assert!(st[4] >= 900_000, "out bytes miss the fast path's:\n{list}");
    let conns = lab.adm_ok(&n.director, &["-L", "-n", "-c"]);
    assert!(
        !conns.contains("ESTABLISHED"),
        "the close was not seen:\n{conns}"
    );
    let log = lab.stop_rvsd();
    assert!(hits(&log) > 100, "fast path unused:\n{log}");
}

/// A cache of 2 entries for 6 long-lived flows (12 directions): flows that
/// do not fit keep going through the engine, none loses a datagram.
#[test]
fn tiny_cache_evicts_to_the_slow_path() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new("ev");
    let n = nat_lab(&mut lab);
    lab.start_rvsd(&n.director, &["--fast-path-entries", "2"]);
    lab.adm_ok(&n.director, &["-A", "-u", UDP_SVC, "-s", "rr"]);
    lab.adm_ok(
        &n.director,
        &["-a", "-u", UDP_SVC, "-r", "10.0.2.11:9000", "-m"],
    );
    let (answered, sent, _) = udp_client(&n.client, 6, 40, 0.01);
    settle();
    let list = lab.adm_ok(&n.director, &["-L", "-n", "--stats", "--exact"]);
    let log = lab.stop_rvsd();
    assert_eq!(answered, sent, "lost datagrams\n{list}\n{log}");
    assert_eq!(stats(&list, UDP_SVC)[0], 6, "{list}");
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
    let mut lab = Lab::new("cfg");
    let n = nat_lab(&mut lab);
    lab.start_rvsd(&n.director, &[]);
    lab.adm_ok(&n.director, &["-A", "-u", UDP_SVC, "-s", "rr"]);
    lab.adm_ok(
        &n.director,
        &["-a", "-u", UDP_SVC, "-r", "10.0.2.11:9000", "-m"],
    );
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
    let log = lab.stop_rvsd();
    assert!(hits(&log) > 0, "fast path unused:\n{log}");
}

/// The fast path leaves a veth alone while its peer is not in NAPI mode
/// (its redirected frames would be lost), and takes it once it is.
#[test]
fn veth_peers_are_probed() {
    if !privileged() {
        return;
    }
    let mut lab = Lab::new("probe");
    let n = nat_lab_gro(&mut lab, false);
    lab.start_rvsd(&n.director, &[]);
    assert!(
        lab.rvsd_log()
            .contains("no interface takes redirected XDP frames"),
        "{}",
        lab.rvsd_log()
    );
    lab.adm_ok(&n.director, &["-A", "-u", UDP_SVC, "-s", "rr"]);
    lab.adm_ok(
        &n.director,
        &["-a", "-u", UDP_SVC, "-r", "10.0.2.11:9000", "-m"],
    );
    let (a, s, _) = udp_client(&n.client, 2, 20, 0.0);
    assert_eq!(a, s, "{}", lab.rvsd_log());
    // NAPI on both peers: within the probe interval, the fast path uses them.
    for ns in [&n.client, &n.rs] {
        in_ns(ns, || {
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
    let log = lab.stop_rvsd();
    let h = hits(&log);
    eprintln!("after the probe: {h} fast-path hits of 200 packets");
    assert!(
        h >= 100,
        "fast path unused after the probe ({h} hits):\n{log}"
    );
}
