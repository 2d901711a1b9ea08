//! End-to-end packet path: `rvsd --io xdp` in a network namespace forwards
//! real TCP connections of a client namespace to a real-server namespace.
//!
//! Needs root and AF_XDP in the kernel (CI has them). Namespaces and
//! processes are removed by guards, also when a test fails.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built (run the tests through cargo test/nextest --workspace)",
        p.display()
    );
    p
}

fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "network-namespace tests need root (CI runs them as root)"
    );
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

/// Network namespaces, and processes running in them; all removed on drop.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    log: PathBuf,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        require_root();
        let prefix = format!("rvdp-{tag}-{}", std::process::id());
        let log = std::env::temp_dir().join(format!("{prefix}-rvsd.log"));
        Lab {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
            log,
        }
    }

    fn ns(&mut self, short: &str) -> String {
        let name = format!("{}-{short}", self.prefix);
        run(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        run(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// `ip netns exec ns args…`, expecting success.
    fn exec(&self, ns: &str, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", ns];
        v.extend_from_slice(args);
        run(&v)
    }

    fn spawn(&mut self, ns: &str, program: &str, args: &[&str], stderr: Stdio) {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .env_remove("RVS_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        self.children.push(child);
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

    /// Start `rvsd --io xdp --interface iface` in `ns`; wait until it answers.
    fn start_rvsd(&mut self, ns: &str, iface: &str) -> usize {
        let log = File::create(&self.log).expect("log file");
        let rvsd = bin("rvsd");
        self.spawn(
            ns,
            rvsd.to_str().expect("path"),
            &["--io", "xdp", "--interface", iface],
            Stdio::from(log),
        );
        let idx = self.children.len() - 1;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.adm(ns, &["-L", "-n"]).status.success() {
                return idx;
            }
            if let Ok(Some(st)) = self.children[idx].try_wait() {
                panic!("rvsd exited with {st}:\n{}", self.rvsd_log());
            }
            assert!(Instant::now() < deadline, "rvsd did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
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

/// Turn tx checksum offload of `iface` in namespace `ns` off, from a thread
/// that entered the namespace (there is no ethtool on CI).
fn tx_csum_off(ns: &str, iface: &str) {
    let path = format!("/run/netns/{ns}");
    let iface = iface.to_string();
    std::thread::spawn(move || {
        let f = File::open(&path).expect("open netns");
        rustix::thread::move_into_link_name_space(
            f.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        rvs_io::xsk::set_tx_checksum_offload(&iface, false).expect("tx csum off");
    })
    .join()
    .expect("setns thread");
}

/// Connect from `ns` to `addr:port`; what the server said, or `None`.
fn fetch(ns: &str, addr: &str, port: u16) -> Option<String> {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "socat", "-T", "3", "-"])
        .arg(format!("TCP:{addr}:{port},connect-timeout=3"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !s.is_empty()).then_some(s)
}

/// `fetch` until it answers, for at most `limit`.
fn fetch_retry(ns: &str, addr: &str, port: u16, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = fetch(ns, addr, port) {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The fields of the `--stats` line of service `svc` (`TCP  addr:port`).
fn service_stats(list: &str, svc: &str) -> Vec<u64> {
    let line = list
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(svc))
        .unwrap_or_else(|| panic!("no line for {svc} in\n{list}"));
    line.split_whitespace()
        .skip(2)
        .map(|f| f.parse().expect("number"))
        .collect()
}

/// A veth from `a` (named `a_if`) to `b` (named `b_if`), one queue each.
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

#[test]
fn direct_routing_one_segment() {
    let mut lab = Lab::new("dr");
    let sw = lab.ns("sw");
    let client = lab.ns("c");
    let director = lab.ns("d");
    let rs1 = lab.ns("r1");

    run(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]);
    run(&["ip", "-n", &sw, "link", "set", "br0", "up"]);
    for (ns, port, addr) in [
        (&client, "pc", "10.0.0.1/24"),
        (&director, "pd", "10.0.0.2/24"),
        (&rs1, "pr1", "10.0.0.11/24"),
    ] {
        veth(&sw, port, ns, "eth0");
        run(&["ip", "-n", &sw, "link", "set", port, "master", "br0"]);
        run(&["ip", "-n", ns, "addr", "add", addr, "dev", "eth0"]);
    }
    // What feeds the director must carry full checksums (see
    // rvs_io::xsk::set_tx_checksum_offload).
    tx_csum_off(&client, "eth0");
    tx_csum_off(&rs1, "eth0");
    run(&[
        "ip",
        "-n",
        &client,
        "route",
        "add",
        "10.0.0.100/32",
        "via",
        "10.0.0.2",
    ]);
    run(&[
        "ip",
        "-n",
        &director,
        "addr",
        "add",
        "10.0.0.100/32",
        "dev",
        "lo",
    ]);
    run(&[
        "ip",
        "-n",
        &rs1,
        "addr",
        "add",
        "10.0.0.100/32",
        "dev",
        "lo",
    ]);
    for conf in ["all", "lo", "eth0"] {
        lab.exec(
            &rs1,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{conf}.arp_ignore=1"),
            ],
        );
        lab.exec(
            &rs1,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{conf}.arp_announce=2"),
            ],
        );
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

    let rvsd = lab.start_rvsd(&director, "eth0");
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
    let mut lab = Lab::new("nat");
    let client = lab.ns("c");
    let director = lab.ns("d");
    let rs1 = lab.ns("r1");

    veth(&client, "eth0", &director, "eth0");
    veth(&rs1, "eth0", &director, "eth1");
    run(&[
        "ip",
        "-n",
        &client,
        "addr",
        "add",
        "10.0.1.1/24",
        "dev",
        "eth0",
    ]);
    run(&[
        "ip",
        "-n",
        &director,
        "addr",
        "add",
        "10.0.1.2/24",
        "dev",
        "eth0",
    ]);
    run(&[
        "ip",
        "-n",
        &director,
        "addr",
        "add",
        "10.0.2.1/24",
        "dev",
        "eth1",
    ]);
    run(&[
        "ip",
        "-n",
        &director,
        "addr",
        "add",
        "10.0.1.100/32",
        "dev",
        "lo",
    ]);
    run(&[
        "ip",
        "-n",
        &rs1,
        "addr",
        "add",
        "10.0.2.11/24",
        "dev",
        "eth0",
    ]);
    run(&[
        "ip",
        "-n",
        &client,
        "route",
        "add",
        "10.0.1.100/32",
        "via",
        "10.0.1.2",
    ]);
    run(&[
        "ip", "-n", &rs1, "route", "add", "default", "via", "10.0.2.1",
    ]);
    tx_csum_off(&client, "eth0");
    tx_csum_off(&rs1, "eth0");
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
}
