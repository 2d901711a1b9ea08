//! Shared helpers of the end-to-end session tests: a kept `rvs lab` (removed
//! by a guard, pass or fail), `rvsadm` in its director, extra servers in its
//! real servers, and clients that run inside its client namespace.
//!
//! Only what one lab (`rvslab-<pid>-*`, its temp dir) created is removed;
//! other labs running at the same time are left alone.

#![allow(dead_code)]

// Commands and namespace threads: rvs-testsupport's, shared by every crate.
#[allow(unused_imports)]
pub use rvs_testsupport::{in_netns as in_ns, sh};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const RVS: &str = env!("CARGO_BIN_EXE_rvs");

/// True when the privileged tests can run (root, iproute2 and python3);
/// panics without them unless `RVS_SKIP_PRIVILEGED_TESTS` is set (then
/// prints why and returns false).
pub fn can_run() -> bool {
    can_run_with(&["python3"])
}

/// [`can_run`] with `tools` (each answering `-V`) needed besides root and
/// iproute2.
pub fn can_run_with(tools: &[&str]) -> bool {
    let skip = std::env::var_os("RVS_SKIP_PRIVILEGED_TESTS").is_some();
    let missing = if !rustix::process::geteuid().is_root() {
        Some("root (network namespaces, XDP)".to_string())
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("iproute2 (`ip`)".to_string())
    } else {
        tools
            .iter()
            .find(|t| Command::new(t).arg("-V").output().is_err())
            .map(|t| t.to_string())
    };
    match missing {
        None => true,
        Some(what) if skip => {
            eprintln!("skipped: needs {what}");
            false
        }
        Some(what) => {
            panic!("needs {what} (CI runs as root; set RVS_SKIP_PRIVILEGED_TESTS=1 to skip)")
        }
    }
}

/// Whether BIRD 2 runs here; without it the caller skips (said), unless
/// `RVS_REQUIRE_BIRD` is set (CI, where scripts/test.sh installs it).
pub fn bird_runs() -> bool {
    match Command::new("bird").arg("--version").output() {
        Ok(_) => true,
        Err(e) if std::env::var_os("RVS_REQUIRE_BIRD").is_none() => {
            eprintln!("skipped: BIRD 2 cannot run here ({e}); apt-get install bird2");
            false
        }
        Err(e) => panic!("RVS_REQUIRE_BIRD is set but bird does not run: {e}"),
    }
}

/// Whether FRR's `daemons` (under /usr/lib/frr) and vtysh run here;
/// without them the caller skips (said), unless `RVS_REQUIRE_FRR` is set.
pub fn frr_runs(daemons: &[&str]) -> bool {
    let missing: Vec<String> = daemons
        .iter()
        .map(|d| format!("/usr/lib/frr/{d}"))
        .chain(["vtysh".to_string()])
        .filter(|p| Command::new(p).arg("--help").output().is_err())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "FRR cannot run here ({} missing); apt-get install --no-install-recommends frr",
        missing.join(", ")
    );
    if std::env::var_os("RVS_REQUIRE_FRR").is_some() {
        panic!("RVS_REQUIRE_FRR is set but {why}");
    }
    eprintln!("skipped: {why}");
    false
}

/// `rvs health run CONF --state STATE EXTRA…` in namespace `ns`, its
/// stderr (the log) to `log`.
pub fn health_run(
    ns: &str,
    conf: &std::path::Path,
    state: &std::path::Path,
    log: &std::path::Path,
    extra: &[&str],
) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, RVS, "health", "run"])
        .arg(conf)
        .arg("--state")
        .arg(state)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("the log"))
        .spawn()
        .expect("rvs health run")
}

/// `rvs args…` started with its stdout and stderr piped.
pub fn spawn_rvs(args: &[&str]) -> Child {
    Command::new(RVS)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn rvs {args:?}: {e}"))
}

/// The real servers' extra servers: `argv`: name, UDP bind address, TCP
/// ports, UDP ports (comma separated). A TCP connection first receives
/// `name\n`, then everything it sends echoed back. A UDP datagram is
/// answered with `name ` followed by the datagram.
const SERVERS_PY: &str = "\
import socket, sys, threading
name, ubind = sys.argv[1], sys.argv[2]
tcp = [int(p) for p in sys.argv[3].split(',') if p]
udp = [int(p) for p in sys.argv[4].split(',') if p]
def conn(c):
    try:
        c.sendall((name + '\\n').encode())
        while True:
            d = c.recv(4096)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    finally:
        c.close()
def tcp_loop(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', port))
    s.listen(1024)
    while True:
        c, _ = s.accept()
        threading.Thread(target=conn, args=(c,), daemon=True).start()
def udp_loop(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ubind, port))
    while True:
        d, a = s.recvfrom(4096)
        s.sendto(name.encode() + b' ' + d, a)
for p in tcp:
    threading.Thread(target=tcp_loop, args=(p,), daemon=True).start()
for p in udp:
    threading.Thread(target=udp_loop, args=(p,), daemon=True).start()
threading.Event().wait()
";

/// One kept `rvs lab MODE --keep` run: removed on drop.
pub struct Lab {
    pub pid: u32,
    pub mode: String,
    pub vip: Ipv4Addr,
    pub client_ip: Ipv4Addr,
    /// The director's address on the client's segment.
    pub director_ip: Ipv4Addr,
    pub rips: Vec<Ipv4Addr>,
    children: Mutex<Vec<Child>>,
}

impl Lab {
    /// `rvs lab MODE --servers N --scheduler S --requests 2 --keep`.
    pub fn start(mode: &str, servers: u8, scheduler: &str) -> Lab {
        let servers_arg = servers.to_string();
        let child = spawn_rvs(&[
            "lab",
            mode,
            "--keep",
            "--requests",
            "2",
            "--servers",
            &servers_arg,
            "--scheduler",
            scheduler,
        ]);
        // The guard exists before anything can fail.
        let mut lab = Lab {
            pid: child.id(),
            mode: mode.to_string(),
            vip: Ipv4Addr::UNSPECIFIED,
            client_ip: Ipv4Addr::UNSPECIFIED,
            director_ip: Ipv4Addr::UNSPECIFIED,
            rips: Vec::new(),
            children: Mutex::new(Vec::new()),
        };
        let out = child.wait_with_output().expect("rvs lab");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "rvs lab {mode} --keep: {}\n{stdout}\n{stderr}",
            out.status
        );
        // "rvs lab nat: client C -> VIP V:80 via director D, 2 real server(s) (R1 R2), ..."
        let field = |after: &str| -> String {
            stdout
                .split_once(after)
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no {after:?} in:\n{stdout}"))
                .to_string()
        };
        lab.client_ip = field(": client ").parse().expect("client address");
        lab.director_ip = field("via director ")
            .trim_end_matches(',')
            .parse()
            .expect("director address");
        lab.vip = field("-> VIP ")
            .trim_end_matches(":80")
            .parse()
            .expect("VIP");
        let rips = stdout
            .split_once("real server(s) (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .unwrap_or_else(|| panic!("no real servers in:\n{stdout}"))
            .0;
        lab.rips = rips
            .split_whitespace()
            .map(|r| r.parse().expect("RIP"))
            .collect();
        assert_eq!(lab.rips.len(), usize::from(servers), "{stdout}");
        // With RVSD_FAST_PATH=on|all the suites must really exercise the
        // fast path: the lab's director has an interface it sends to (the
        // lab puts its veth peers in NAPI mode).
        let log = lab.rvsd_log();
        if matches!(
            std::env::var("RVSD_FAST_PATH").as_deref(),
            Ok("on") | Ok("all")
        ) && log.contains("--io xdp")
        {
            assert!(
                log.contains("fast path on towards"),
                "RVSD_FAST_PATH is set but rvsd's fast path sends nowhere:\n{log}"
            );
        }
        lab
    }

    /// The full name of namespace `short` (`client`, `director`, `rs1`…).
    pub fn ns(&self, short: &str) -> String {
        format!("rvslab-{}-{short}", self.pid)
    }

    /// The lab's temp dir.
    pub fn dir(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("rvslab-{}", self.pid))
    }

    /// `rvsadm ARGS` in the director; `Err(stderr)` when it fails.
    pub fn try_adm(&self, args: &[&str]) -> Result<String, String> {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns("director")])
            .arg(std::path::Path::new(RVS).with_file_name("rvsadm"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("rvsadm: {e}"))?;
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(format!(
                "rvsadm {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ))
        }
    }

    /// `rvsadm ARGS` in the director; panics when it fails.
    pub fn adm(&self, args: &[&str]) -> String {
        self.try_adm(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The forwarding flag of the lab's mode.
    pub fn flag(&self) -> &'static str {
        match self.mode.as_str() {
            "nat" => "-m",
            "tun" => "-i",
            _ => "-g",
        }
    }

    /// `VIP:port`.
    pub fn vip_port(&self, port: u16) -> String {
        format!("{}:{port}", self.vip)
    }

    /// The name (`rsN`) of real server address `rip`.
    pub fn rs_name(&self, rip: Ipv4Addr) -> String {
        let i = self
            .rips
            .iter()
            .position(|r| *r == rip)
            .unwrap_or_else(|| panic!("{rip} is no real server"));
        format!("rs{}", i + 1)
    }

    /// `rvsadm -C`, then `-A PROTO VIP:PORT SVC_ARGS` and `-a` of every
    /// real server (`rip:port`, the mode's flag, weight 1).
    pub fn service(&self, proto: &str, port: u16, svc_args: &[&str]) -> String {
        self.adm(&["-C"]);
        let svc = self.vip_port(port);
        let mut a = vec!["-A", proto, &svc];
        a.extend_from_slice(svc_args);
        self.adm(&a);
        for rip in &self.rips {
            let r = if port == 0 {
                rip.to_string()
            } else {
                format!("{rip}:{port}")
            };
            self.adm(&["-a", proto, &svc, "-r", &r, self.flag(), "-w", "1"]);
        }
        svc
    }

    /// Start the extra servers in every real server: TCP `name+echo` on
    /// `tcp` ports, UDP responders on `udp` ports (bound to the VIP in
    /// dr/tun so that replies leave from it, to every address in nat);
    /// returns once each answers in its own namespace.
    pub fn start_servers(&self, tcp: &[u16], udp: &[u16]) {
        let join = |p: &[u16]| p.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        let (tcp_s, udp_s) = (join(tcp), join(udp));
        let ubind = if self.mode == "nat" {
            "0.0.0.0".to_string()
        } else {
            self.vip.to_string()
        };
        for (i, rip) in self.rips.iter().enumerate() {
            let name = format!("rs{}", i + 1);
            let child = Command::new("ip")
                .args(["netns", "exec", &self.ns(&name), "python3", "-c"])
                .args([SERVERS_PY, &name, &ubind, &tcp_s, &udp_s])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn python3");
            self.children.lock().expect("lock").push(child);
            let rip = *rip;
            for &port in tcp {
                let addr = SocketAddr::from((rip, port));
                self.wait_until(&name, &format!("TCP {addr}"), move || {
                    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
                });
            }
            let vip = self.vip;
            let local = if self.mode == "nat" { rip } else { vip };
            for &port in udp {
                let addr = SocketAddr::from((local, port));
                self.wait_until(&name, &format!("UDP {addr}"), move || {
                    udp_ask(None, addr, b"ping", Duration::from_millis(300)).is_ok()
                });
            }
        }
    }

    /// Start `program ARGS` in namespace `short`; killed with the lab.
    pub fn spawn(&self, short: &str, program: &str, args: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(short), program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        self.children.lock().expect("lock").push(child);
    }

    /// Poll `probe` (inside namespace `short`) for up to 10 s.
    fn wait_until(
        &self,
        short: &str,
        what: &str,
        probe: impl Fn() -> bool + Send + Clone + 'static,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if in_ns(&self.ns(short), probe.clone()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not come up in {short}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run `f` on a thread inside the client namespace. Sockets it returns
    /// stay in that namespace and may be used from any thread.
    pub fn client<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_ns(&self.ns("client"), f)
    }

    /// Add `n` more client addresses (`.50`, `.51`… in the client's /24)
    /// and return them, each already known to rvsd as a next hop, so that
    /// no first packet waits for its resolution (see
    /// `netns_new_client_first_packet`). Call it before the lab's VIP:80
    /// service is replaced.
    pub fn add_client_addrs(&self, n: u8) -> Vec<Ipv4Addr> {
        let o = self.client_ip.octets();
        let addrs = (0..n)
            .map(|i| {
                let a = Ipv4Addr::new(o[0], o[1], o[2], 50 + i);
                sh(&[
                    "ip",
                    "-n",
                    &self.ns("client"),
                    "addr",
                    "add",
                    &format!("{a}/24"),
                    "dev",
                    "eth0",
                ]);
                a
            })
            .collect::<Vec<_>>();
        // One HTTP request from each through the lab's own VIP:80 service,
        // all at once: rvsd drops the frames of a next hop it is still
        // resolving (a 1 s retransmit for each new NAT client), so pay that
        // once, in parallel, before the test counts anything.
        let (list, vip) = (addrs.clone(), SocketAddr::from((self.vip, 80)));
        self.client(move || {
            std::thread::scope(|s| {
                for a in list {
                    s.spawn(move || http_get(Some(a), vip));
                }
            })
        });
        addrs
    }

    /// The rvsd log of the lab (for failure messages).
    pub fn rvsd_log(&self) -> String {
        std::fs::read_to_string(self.dir().join("rvsd.log")).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        match self.children.lock() {
            Ok(mut children) => remove_lab(self.pid, &mut children),
            Err(_) => remove_lab(self.pid, &mut []),
        }
    }
}

/// The namespaces of the lab of `rvs lab` process `pid` (`rvslab-PID-*`).
pub fn lab_namespaces(pid: u32) -> Vec<String> {
    let prefix = format!("rvslab-{pid}-");
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Remove the lab of `rvs lab` process `pid`: the processes in its
/// namespaces (TERM, then KILL), `children`, the namespaces and its temp
/// dir. Other labs are left alone.
pub fn remove_lab(pid: u32, children: &mut [Child]) {
    let namespaces = lab_namespaces(pid);
    let kill = |sig: &str| {
        for ns in &namespaces {
            if let Ok(o) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = Command::new("kill")
                        .args([sig, pid])
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    };
    kill("-TERM");
    std::thread::sleep(Duration::from_millis(300));
    kill("-KILL");
    for c in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
    for ns in &namespaces {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
    }
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("rvslab-{pid}")));
}

/// A TCP connection to `dst`, from `src` (any port) when given.
pub fn tcp_connect(
    src: Option<Ipv4Addr>,
    dst: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, String> {
    use rustix::net::{AddressFamily, SocketType, sockopt};
    let s = match src {
        None => TcpStream::connect_timeout(&dst, timeout).map_err(|e| format!("{dst}: {e}"))?,
        Some(src) => {
            let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)
                .map_err(|e| e.to_string())?;
            // Linux bounds a blocking connect by the send timeout.
            sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, Some(timeout))
                .map_err(|e| e.to_string())?;
            rustix::net::bind(&fd, &SocketAddrV4::new(src, 0))
                .map_err(|e| format!("bind {src}: {e}"))?;
            rustix::net::connect(&fd, &dst).map_err(|e| format!("{src} -> {dst}: {e}"))?;
            TcpStream::from(fd)
        }
    };
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// A connection to the `name+echo` server: the stream and the name of the
/// real server that answered.
pub fn hello(src: Option<Ipv4Addr>, dst: SocketAddr) -> Result<(TcpStream, String), String> {
    let s = tcp_connect(src, dst, Duration::from_secs(3))?;
    let mut line = String::new();
    BufReader::new(&s)
        .read_line(&mut line)
        .map_err(|e| format!("{dst}: read: {e}"))?;
    if line.is_empty() {
        return Err(format!("{dst}: closed without a name"));
    }
    Ok((s, line.trim().to_string()))
}

/// One short connection: connect, read the server's name, close.
pub fn who(src: Option<Ipv4Addr>, dst: SocketAddr) -> Result<String, String> {
    hello(src, dst).map(|(_, name)| name)
}

/// `n` short connections one after the other; the names, in order.
pub fn whos(src: Option<Ipv4Addr>, dst: SocketAddr, n: usize) -> Result<Vec<String>, String> {
    (0..n).map(|_| who(src, dst)).collect()
}

/// Send `line` on an echo connection and read it back.
pub fn echo(s: &mut TcpStream, line: &str) -> Result<(), String> {
    s.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = vec![0u8; line.len() + 1];
    s.read_exact(&mut buf).map_err(|e| format!("read: {e}"))?;
    if buf != format!("{line}\n").as_bytes() {
        return Err(format!(
            "echo: sent {line:?}, got {:?}",
            String::from_utf8_lossy(&buf)
        ));
    }
    Ok(())
}

/// One HTTP/1.0 GET; the body, trimmed.
pub fn http_get(src: Option<Ipv4Addr>, dst: SocketAddr) -> Result<String, String> {
    let mut s = tcp_connect(src, dst, Duration::from_secs(3))?;
    write!(s, "GET / HTTP/1.0\r\nHost: {}\r\n\r\n", dst.ip()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {text:?}"))?;
    if !head.contains(" 200 ") {
        return Err(format!("unexpected response: {head}"));
    }
    Ok(body.trim().to_string())
}

/// A UDP socket bound to `src` (any address/port when None).
pub fn udp_socket(src: Option<SocketAddr>) -> UdpSocket {
    let s = UdpSocket::bind(src.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))))
        .expect("bind UDP");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    s
}

/// Send `msg` to `dst` from `sock` (a fresh socket when None) and return
/// the answer: `(name, from)`.
pub fn udp_ask(
    sock: Option<&UdpSocket>,
    dst: SocketAddr,
    msg: &[u8],
    timeout: Duration,
) -> Result<(String, SocketAddr), String> {
    let own;
    let s = match sock {
        Some(s) => s,
        None => {
            own = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
            &own
        }
    };
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.send_to(msg, dst)
        .map_err(|e| format!("send to {dst}: {e}"))?;
    let mut buf = [0u8; 4096];
    let (n, from) = s.recv_from(&mut buf).map_err(|e| format!("{dst}: {e}"))?;
    let text = String::from_utf8_lossy(&buf[..n]);
    let (name, rest) = text
        .split_once(' ')
        .ok_or_else(|| format!("bad answer {text:?}"))?;
    if rest.as_bytes() != msg {
        return Err(format!(
            "answer {text:?} does not echo {:?}",
            String::from_utf8_lossy(msg)
        ));
    }
    Ok((name.to_string(), from))
}

/// How often each name occurs.
pub fn tally(names: &[String]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

/// One real-server line of `rvsadm -Ln` (`-> RIP:PORT Fwd Weight Active InAct`)
/// or of `--stats` (`-> RIP:PORT Conns InPkts …`): the address and the
/// numeric columns.
pub fn rs_lines(text: &str) -> Vec<(String, Vec<u64>)> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("-> ") && !l.starts_with("-> RemoteAddress"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let nums = f[2..].iter().filter_map(|x| x.parse().ok()).collect();
            (f[1].to_string(), nums)
        })
        .collect()
}

/// `(ActiveConn, InActConn)` of real server `rip` in `rvsadm -Ln` output.
pub fn active_inact(ln: &str, rip: Ipv4Addr) -> (u64, u64) {
    let p = format!("{rip}:");
    let (_, n) = rs_lines(ln)
        .into_iter()
        .find(|(a, _)| a.starts_with(&p))
        .unwrap_or_else(|| panic!("no line for {rip}:\n{ln}"));
    // Weight, ActiveConn, InActConn.
    assert!(n.len() >= 3, "bad line for {rip}:\n{ln}");
    (n[1], n[2])
}

/// `Conns` of real server `rip` in `rvsadm -Ln --stats --exact` output.
pub fn stats_conns(stats: &str, rip: Ipv4Addr) -> u64 {
    let p = format!("{rip}:");
    rs_lines(stats)
        .into_iter()
        .find(|(a, _)| a.starts_with(&p))
        .and_then(|(_, n)| n.first().copied())
        .unwrap_or_else(|| panic!("no line for {rip}:\n{stats}"))
}

/// One line of `rvsadm -Lnc`.
#[derive(Debug, Clone)]
pub struct ConnLine {
    pub proto: String,
    /// Seconds left.
    pub expire: u64,
    pub state: String,
    pub source: String,
    pub virt: String,
    pub dest: String,
}

/// The entries of `rvsadm -Lnc` output.
pub fn conn_lines(text: &str) -> Vec<ConnLine> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 {
                return None;
            }
            let (m, s) = f[1].split_once(':')?;
            Some(ConnLine {
                proto: f[0].to_string(),
                expire: m.parse::<u64>().ok()? * 60 + s.parse::<u64>().ok()?,
                state: f[2].to_string(),
                source: f[3].to_string(),
                virt: f[4].to_string(),
                dest: f[5].to_string(),
            })
        })
        .collect()
}

/// Poll `f` every 100 ms for up to `limit`; the first `Some`.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
