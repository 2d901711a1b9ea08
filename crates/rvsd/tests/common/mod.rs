//! Harness shared by rvsd's end-to-end tests: the [`Lab`] of network
//! namespaces and processes (all removed on drop, also when a test fails),
//! topologies and small clients; built binaries, the root check, commands,
//! namespace threads and veths come from `rvs-testsupport` (re-exported).
//!
//! Each test file names its own namespace prefix (`Lab::new(prefix, tag)`),
//! so that files running at the same time never share a namespace.

// Not every test file uses every item.
#![allow(dead_code)]

pub use rvs_testsupport::*;

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `ip netns exec ns args…` with `input` on its stdin, expecting success.
pub fn exec_with_input(ns: &str, args: &[&str], input: &[u8]) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .unwrap_or_else(|e| panic!("{args:?}: writing its input: {e}"));
    let o = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        o.status.success(),
        "{args:?}: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Network namespaces, and processes running in them; all removed on drop.
pub struct Lab {
    pub prefix: String,
    pub namespaces: Vec<String>,
    pub children: Vec<Child>,
    /// rvsd's stderr.
    pub log: PathBuf,
    /// Files and directories to remove on drop.
    pub paths: Vec<PathBuf>,
    /// Environment variables set for what [`Lab::spawn`] starts (rvsd
    /// included), e.g. `RVS_LIVE_FRAMES=off`.
    pub env: Vec<(String, String)>,
}

impl Lab {
    /// A lab whose namespaces are named `{prefix}-{tag}-{pid}-…`.
    pub fn new(prefix: &str, tag: &str) -> Lab {
        let prefix = format!("{prefix}-{tag}-{}", std::process::id());
        let log = std::env::temp_dir().join(format!("{prefix}-rvsd.log"));
        Lab {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
            log,
            paths: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A new namespace with `lo` up.
    pub fn ns(&mut self, short: &str) -> String {
        let name = format!("{}-{short}", self.prefix);
        run(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        ipn(&name, "link set lo up");
        name
    }

    /// A new namespace with `lo` up and IPv6 duplicate address detection
    /// off (addresses usable at once).
    pub fn ns_v6(&mut self, short: &str) -> String {
        let name = self.ns(short);
        for k in ["all", "default"] {
            self.sysctl(&name, &format!("net.ipv6.conf.{k}.accept_dad"), "0");
        }
        name
    }

    /// `sysctl -w key=value` in `ns`.
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) {
        self.exec(ns, &["sysctl", "-qw", &format!("{key}={value}")]);
    }

    /// `ip netns exec ns args…`, expecting success.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", ns];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Start `program args…` in `ns`, killed on drop; its child index.
    ///
    /// `RVSD_FAST_PATH` is passed on as the caller set it (rvsd's default
    /// `--fast-path`): the suites run with the fast path the caller asks
    /// for (CI runs them both ways); tests that need one mode pass
    /// `--fast-path` themselves.
    pub fn spawn(&mut self, ns: &str, program: &str, args: &[&str], stderr: Stdio) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .env_remove("RVS_SOCKET")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        self.children.push(child);
        self.children.len() - 1
    }

    /// `rvsadm args…` in `ns`, whatever its outcome.
    pub fn adm(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(bin("rvsadm"))
            .args(args)
            .env_remove("RVS_SOCKET")
            .stdin(Stdio::null())
            .output()
            .expect("rvsadm")
    }

    /// `rvsadm args…` in `ns`, expecting success; its stdout.
    pub fn adm_ok(&self, ns: &str, args: &[&str]) -> String {
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

    /// Each line of `rules` (split on whitespace) as one rvsadm command.
    pub fn adm_lines(&self, ns: &str, rules: &str) {
        for l in rules.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let args: Vec<&str> = l.split_whitespace().collect();
            self.adm_ok(ns, &args);
        }
    }

    /// What rvsd wrote to its log so far.
    pub fn rvsd_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Start rvsd in `ns` (`io`: its `--io`, `None` for the default) on
    /// `ifaces`, with `extra` options; wait until it answers. Its child
    /// index.
    pub fn start_rvsd(
        &mut self,
        ns: &str,
        io: Option<&str>,
        ifaces: &[&str],
        extra: &[&str],
    ) -> usize {
        self.start_rvsd_bin(&bin("rvsd"), ns, io, ifaces, extra)
    }

    /// [`Lab::start_rvsd`] with the rvsd binary at `rvsd` (a measurement
    /// comparing builds).
    pub fn start_rvsd_bin(
        &mut self,
        rvsd: &std::path::Path,
        ns: &str,
        io: Option<&str>,
        ifaces: &[&str],
        extra: &[&str],
    ) -> usize {
        let log = File::create(&self.log).expect("log file");
        let mut args = Vec::new();
        if let Some(io) = io {
            args.extend(["--io", io]);
        }
        for i in ifaces {
            args.extend(["--interface", i]);
        }
        args.extend_from_slice(extra);
        let idx = self.spawn(ns, rvsd.to_str().expect("path"), &args, Stdio::from(log));
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
        self.check_fast_path_used(extra);
        idx
    }

    /// With `RVSD_FAST_PATH=on|all` (and no `--fast-path` of the test's
    /// own), an rvsd on XDP must have found an interface the fast path can
    /// send to: otherwise a suite run "with the fast path on" would not
    /// exercise it (a veth takes redirected frames only when its peer is in
    /// NAPI mode, see [`napi_peer`]).
    fn check_fast_path_used(&self, extra: &[&str]) {
        let wanted = matches!(
            std::env::var("RVSD_FAST_PATH").as_deref(),
            Ok("on") | Ok("all")
        );
        if !wanted || extra.iter().any(|a| a.starts_with("--fast-path")) {
            return;
        }
        let log = self.rvsd_log();
        if log.contains("--io xdp") {
            // Where live-frames test runs are refused, rvsd finds out with
            // the first redirected frames (a trial), after start.
            assert!(
                log.contains("fast path on towards")
                    || log.contains("live-frames test runs refused, deciding by watching"),
                "RVSD_FAST_PATH is set but rvsd's fast path sends nowhere \
                 (a director's veth peer not in NAPI mode?):\n{log}"
            );
        }
    }

    /// SIGTERM rvsd (child `idx`) and wait: it must exit with success. Its
    /// log.
    pub fn stop_rvsd(&mut self, idx: usize) -> String {
        let pid = self.children[idx].id().to_string();
        run(&["kill", "-TERM", &pid]);
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(st) = self.children[idx].try_wait().expect("wait") {
                break st;
            }
            assert!(Instant::now() < deadline, "rvsd did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "rvsd: {status}\n{}", self.rvsd_log());
        self.rvsd_log()
    }

    /// `rvs realserver up --vip VIP --tun` in `ns` (state file of its own).
    pub fn realserver_tun(&mut self, ns: &str, vip: &str) {
        let state = self.temp_path(&format!("{ns}-rs.json"));
        let rvs = bin("rvs");
        self.exec(
            ns,
            &[
                rvs.to_str().expect("path"),
                "realserver",
                "up",
                "--vip",
                vip,
                "--tun",
                "--state",
                state.to_str().expect("path"),
            ],
        );
    }

    /// A direct-routing real server: `vip_cidr` on `lo` of `ns`, and the
    /// ARP sysctls that keep `ns` from answering for it.
    pub fn vip_on_lo(&self, ns: &str, vip_cidr: &str) {
        ipn(ns, &format!("addr add {vip_cidr} dev lo"));
        for conf in ["all", "lo", "eth0"] {
            self.sysctl(ns, &format!("net.ipv4.conf.{conf}.arp_ignore"), "1");
            self.sysctl(ns, &format!("net.ipv4.conf.{conf}.arp_announce"), "2");
        }
    }

    /// A file or directory in the temporary directory, removed on drop.
    pub fn temp_path(&mut self, name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("{}-{name}", self.prefix));
        self.paths.push(p.clone());
        p
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            // Every process still in the namespace too: a server's forked
            // children (socat's `fork`) outlive the server itself.
            if let Ok(o) = Command::new("ip")
                .args(["netns", "pids", ns])
                .stderr(Stdio::null())
                .output()
            {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill")
                        .args(["-KILL", pid])
                        .stderr(Stdio::null())
                        .status();
                }
            }
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_file(&self.log);
        for p in &self.paths {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Transmit checksum offload of `iface` in namespace `ns` on or off. The
/// topologies keep the kernel's default (on, for veth: frames from local
/// sockets carry partial checksums that rvsd finishes); only the test that
/// proves both settings work changes it.
pub fn set_tx_csum(ns: &str, iface: &str, on: bool) {
    let iface = iface.to_string();
    in_netns(ns, move || {
        rvs_io::xsk::set_tx_checksum_offload(&iface, on).expect("tx checksum offload");
    });
}

/// GRO on for `iface` in `ns`: for the peer of a director's link, which a
/// veth then serves in NAPI mode, the mode in which it takes the frames
/// XDP redirects into its peer (rvsd's fast path probes for it and leaves
/// a link alone without it). Only on links out of the director: frames
/// merged on their way into the director would reach its XDP program
/// longer than the MTU.
pub fn napi_peer(ns: &str, iface: &str) {
    let iface = iface.to_string();
    in_netns(ns, move || {
        rvs_io::packet::set_gro(&iface, true).unwrap_or_else(|e| panic!("GRO on {iface}: {e}"));
    });
}

/// Connect from `ns` to `addr:port`; what the server said, or `None`.
pub fn fetch(ns: &str, addr: &str, port: u16) -> Option<String> {
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
pub fn fetch_retry(ns: &str, addr: &str, port: u16, limit: Duration) -> Option<String> {
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

/// `curl` `url` from `ns`: the body, or `None`.
pub fn http_get(ns: &str, url: &str) -> Option<Vec<u8>> {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sfg", "--max-time", "5"])
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    o.status.success().then_some(o.stdout)
}

/// The fields of the `--stats` line of service `svc` (`TCP  addr:port`).
pub fn service_stats(list: &str, svc: &str) -> Vec<u64> {
    let line = list
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(svc))
        .unwrap_or_else(|| panic!("no line for {svc} in\n{list}"));
    line.split_whitespace()
        .skip(2)
        .map(|f| f.parse().expect("number"))
        .collect()
}

/// A private directory, removed at the end.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "rvsd-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// rvsd (no packet I/O) with `rules` as its `--rules` file, run to its
/// end: its output, the rules file and the socket it was given.
pub fn run_with_rules(dir: &TempDir, rules: &str) -> (Output, PathBuf, PathBuf) {
    let file = dir.path("rules");
    std::fs::write(&file, rules).unwrap();
    let sock = dir.path("ctl.sock");
    let out = Command::new(bin("rvsd"))
        .args([
            "--io",
            "none",
            "--rules",
            file.to_str().unwrap(),
            "--socket",
        ])
        .arg(&sock)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out, file, sock)
}

/// rvsd refuses `rules`: exit status 2, the file and `line` named, and
/// the socket never made.
pub fn assert_refused(dir: &TempDir, rules: &str, line: usize) {
    let (out, file, sock) = run_with_rules(dir, rules);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let want = format!("rvsd: {} line {line}: ", file.display());
    assert!(err.contains(&want), "expected {want:?} in:\n{err}");
    assert!(!sock.exists(), "must not serve");
}

/// The namespaces of [`nat_topology`].
pub struct TwoSegments {
    pub client: String,
    pub director: String,
    pub rs1: String,
}

/// NAT on two segments: client 10.0.1.1 — director 10.0.1.2 / 10.0.2.1
/// (VIP 10.0.1.100 on `lo`) — real server 10.0.2.11 (default route through
/// the director); offloads as the kernel sets them,
/// the director's peers in NAPI mode ([`napi_peer`]). No rvsd, no service,
/// no listener.
pub fn nat_topology(lab: &mut Lab) -> TwoSegments {
    nat_topology_queues(lab, 1)
}

/// [`nat_topology`] with `queues` RX/TX queues on each link.
pub fn nat_topology_queues(lab: &mut Lab, queues: u32) -> TwoSegments {
    let client = lab.ns("c");
    let director = lab.ns("d");
    let rs1 = lab.ns("r1");
    veth_queues(&client, "eth0", &director, "eth0", queues);
    veth_queues(&rs1, "eth0", &director, "eth1", queues);
    for (ns, addr, dev) in [
        (&client, "10.0.1.1/24", "eth0"),
        (&director, "10.0.1.2/24", "eth0"),
        (&director, "10.0.2.1/24", "eth1"),
        (&director, "10.0.1.100/32", "lo"),
        (&rs1, "10.0.2.11/24", "eth0"),
    ] {
        ipn(ns, &format!("addr add {addr} dev {dev}"));
    }
    ipn(&client, "route add 10.0.1.100/32 via 10.0.1.2");
    ipn(&rs1, "route add default via 10.0.2.1");
    napi_peer(&client, "eth0");
    napi_peer(&rs1, "eth0");
    TwoSegments {
        client,
        director,
        rs1,
    }
}

/// The MAC address of `iface` in `ns` (`aa:bb:…`).
pub fn mac_of(ns: &str, iface: &str) -> String {
    let o = run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "cat",
        &format!("/sys/class/net/{iface}/address"),
    ]);
    String::from_utf8(o.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

/// The one-segment topology of the DR and TUN tests: a bridge in namespace
/// `sw` joining client 10.0.0.1, director 10.0.0.2 and real server
/// 10.0.0.11, each on its `eth0` (the director's link with `queues` RX/TX
/// queues; the others one: a frame the bridge forwards leaves on the queue
/// the client's link recorded, in practice 0, else by flow hash); transmit
/// checksum offload as the kernel sets it (on); the client routes
/// the VIP 10.0.0.100 through the director, which has it on `lo`; the
/// director's peer `pd` is in NAPI mode ([`napi_peer`]). The real
/// server's side of the VIP (DR or TUN) is the caller's. Returns
/// (switch, client, director, real server).
pub fn one_segment_base(lab: &mut Lab, queues: u32) -> (String, String, String, String) {
    let sw = lab.ns("sw");
    let client = lab.ns("c");
    let director = lab.ns("d");
    let rs1 = lab.ns("r1");
    ipn(&sw, "link add br0 type bridge");
    ipn(&sw, "link set br0 up");
    for (ns, port, addr) in [
        (&client, "pc", "10.0.0.1/24"),
        (&director, "pd", "10.0.0.2/24"),
        (&rs1, "pr1", "10.0.0.11/24"),
    ] {
        let q = if ns == &director { queues } else { 1 };
        veth_queues(&sw, port, ns, "eth0", q);
        ipn(&sw, &format!("link set {port} master br0"));
        ipn(ns, &format!("addr add {addr} dev eth0"));
    }
    napi_peer(&sw, "pd");
    ipn(&client, "route add 10.0.0.100/32 via 10.0.0.2");
    ipn(&director, "addr add 10.0.0.100/32 dev lo");
    (sw, client, director, rs1)
}
