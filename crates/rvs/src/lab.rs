//! `rvs lab nat|dr|tun|dr-routed`: the seed tutorial's LVS topologies, built for real
//! in network namespaces, with rvsd as the director (its default packet I/O,
//! or `--io xdp|packet`).
//!
//! * **nat**: client net 10.1.1.0/24 (client .1, director .2) and server
//!   net 10.1.2.0/24 (director .1, real servers .11…, default route via the
//!   director). VIP 10.1.1.100 on the director's `lo`; `-m`.
//! * **dr**: one segment 10.2.0.0/24 (a bridge in a switch namespace):
//!   client .1, director .2, real servers .11…; VIP 10.2.0.100 on the
//!   director's `lo` and (by `rvs realserver up`) on each real server's `lo`;
//!   the client routes the VIP via the director; `-g`.
//! * **tun**: like dr on 10.3.0.0/24, with `-i` and `rvs realserver up --tun`
//!   (the XDP IP-in-IP decapsulator) on each real server.
//! * **dr-routed**: the seed's two-segment DR case: the client
//!   192.168.100.1/24 sits behind a router (192.168.100.254 and 10.4.0.254);
//!   director 10.4.0.2 and real servers .11… share the bridged segment
//!   10.4.0.0/24. The router routes the VIP 10.4.0.100 to the director; the
//!   real servers' default route goes via the router, so their replies go
//!   client-ward through the router, never the director; `-g`.
//!
//! Every real server runs python's `http.server` (threaded, listen backlog
//! 1024, `somaxconn` raised in its namespace) on port 80 serving a file
//! that names it. The client's requests are plain HTTP/1.0 over `std::net`
//! from a thread that entered the client namespace. Everything is removed
//! afterwards (also on error and on SIGINT/SIGTERM), unless `--keep`.
//! `rvs lab clean` removes every `rvslab-*` namespace and its processes.

mod health;

use crate::child::sibling;
use crate::netns::{addr as ip_addr_add, gro_on, in_ns, remove_ns, run_cmd};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Namespace name prefix of every lab.
pub const PREFIX: &str = "rvslab-";

/// Forwarding mode of a lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Nat,
    Dr,
    Tun,
    DrRouted,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Nat => "nat",
            Mode::Dr => "dr",
            Mode::Tun => "tun",
            Mode::DrRouted => "dr-routed",
        }
    }
    fn flag(self) -> &'static str {
        match self {
            Mode::Nat => "-m",
            Mode::Dr | Mode::DrRouted => "-g",
            Mode::Tun => "-i",
        }
    }
}

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Opts {
    pub mode: Mode,
    pub servers: u8,
    pub scheduler: String,
    pub requests: u32,
    pub keep: bool,
    /// `--io`: the director's packet I/O; `None` leaves rvsd's default.
    pub io: Option<String>,
    /// `--health`: the real servers come from a keepalived.conf that
    /// `rvs health run` checks (HTTP_GET), and one is stopped and started
    /// again to show it leave and rejoin ([`health`]).
    pub health: bool,
    /// `--health-conf FILE`: `--health` with this keepalived.conf (e.g.
    /// `dist/keepalived/keepalived.conf`) instead of the lab's own; the
    /// real servers also serve HTTPS (443), DNS (UDP 53) and SMTP (25).
    pub health_conf: Option<PathBuf>,
}

/// Check a `--io` value of `rvs lab`: `xdp` or `packet`.
pub fn parse_io(v: &str) -> Result<String, String> {
    match v {
        "xdp" | "packet" => Ok(v.to_string()),
        _ => Err(format!("--io {v}: expected `xdp` or `packet`")),
    }
}

/// One HTTP/1.0 GET; the body, trimmed.
fn http_get(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(s, "GET / HTTP/1.0\r\nHost: {}\r\n\r\n", addr.ip()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "no HTTP response".to_string())?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        return Err(format!(
            "unexpected response: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.trim().to_string())
}

/// The real servers' line echo of `rvs lab ecmp` and `rvs lab ha` (:9000):
/// one line in, the same line with the server's name before it out, for as
/// long as the client keeps the connection.
pub(crate) const ECHO_SERVER: &str = "\
import socketserver, sys
name = sys.argv[1].encode()
class H(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(name + b' ' + line)
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024
S(('0.0.0.0', 9000), H).serve_forever()
";

/// The real servers' HTTP server: `python3 -m http.server 80` serving
/// `argv[1]`, threaded, quiet, with a listen backlog of 1024 instead of 5.
pub(crate) const HTTP_SERVER: &str = "\
import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
handler = functools.partial(Handler, directory=sys.argv[1])
Server(('0.0.0.0', 80), handler).serve_forever()
";

/// The lab: namespaces and processes, removed on drop unless kept.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    rvsd: Option<Child>,
    dir: PathBuf,
    keep: bool,
}

impl Lab {
    fn ns(&mut self, short: &str) -> Result<String, String> {
        let name = format!("{}{short}", self.prefix);
        run_cmd(&["ip", "netns", "add", &name])?;
        self.namespaces.push(name.clone());
        run_cmd(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    fn spawn(&mut self, ns: &str, program: &str, args: &[&str]) -> Result<(), String> {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {program}: {e}"))?;
        self.children.push(child);
        Ok(())
    }

    fn adm(&self, ns: &str, args: &[&str]) -> Result<String, String> {
        let rvsadm = sibling("rvsadm")?;
        let mut v = vec![
            "ip",
            "netns",
            "exec",
            ns,
            rvsadm.to_str().unwrap_or("rvsadm"),
        ];
        v.extend_from_slice(args);
        run_cmd(&v)
    }

    fn log(&self) -> PathBuf {
        self.dir.join("rvsd.log")
    }

    fn rvsd_log(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn start_rvsd(
        &mut self,
        ns: &str,
        ifaces: &[&str],
        io: Option<&str>,
        stop: &AtomicBool,
    ) -> Result<(), String> {
        let rvsd = sibling("rvsd")?;
        let log = File::create(self.log()).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(&rvsd);
        if let Some(io) = io {
            cmd.args(["--io", io]);
        }
        for i in ifaces {
            cmd.args(["--interface", i]);
        }
        let child = cmd
            .env_remove("RVS_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("spawn rvsd: {e}"))?;
        self.rvsd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.adm(ns, &["-L", "-n"]).is_ok() {
                return Ok(());
            }
            if let Some(c) = self.rvsd.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                return Err(format!("rvsd exited with {st}:\n{}", self.rvsd_log()));
            }
            if stop.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            if Instant::now() > deadline {
                return Err(format!("rvsd did not come up:\n{}", self.rvsd_log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Some(c) = self.rvsd.as_mut() {
            crate::child::stop(c);
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            remove_ns(ns);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `rvs lab clean`: remove every `rvslab-*` namespace and its processes.
pub fn clean() -> Result<String, String> {
    let list = run_cmd(&["ip", "netns", "list"])?;
    let mut out = String::new();
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if name.starts_with(PREFIX) {
            remove_ns(name);
            out.push_str(&format!("removed {name}\n"));
        }
    }
    if let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(PREFIX) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    if out.is_empty() {
        out.push_str("no rvslab-* namespaces\n");
    }
    Ok(out)
}

/// A veth from `a` (named `a_if`) to `b` (named `b_if`), one queue each,
/// with GRO on the peer of a director's link: a veth in NAPI mode takes the
/// frames XDP redirects into it, which rvsd's fast path needs (and probes
/// for). Not on the other links: merged frames into the director would
/// reach it without full checksums.
fn veth(a: &str, a_if: &str, b: &str, b_if: &str) -> Result<(), String> {
    crate::netns::veth(a, a_if, b, b_if)?;
    if b.ends_with("director") {
        gro_on(a, a_if)?;
    }
    Ok(())
}

fn check_stop(stop: &AtomicBool) -> Result<(), String> {
    if stop.load(Ordering::Relaxed) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// `rvs lab MODE`: build, exercise, report, tear down.
pub fn run(o: &Opts) -> Result<String, String> {
    // Resolve the siblings first: no namespace is made when they are missing.
    sibling("rvsd")?;
    sibling("rvsadm")?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let prefix = format!("{PREFIX}{}-", std::process::id());
    let dir = std::env::temp_dir().join(prefix.trim_end_matches('-'));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut lab = Lab {
        prefix,
        namespaces: Vec::new(),
        children: Vec::new(),
        rvsd: None,
        dir,
        keep: false,
    };
    let res = build_and_run(&mut lab, o, &stop);
    if res.is_ok() && o.keep {
        lab.keep = true;
    }
    res
}

fn build_and_run(lab: &mut Lab, o: &Opts, stop: &AtomicBool) -> Result<String, String> {
    let net = match o.mode {
        Mode::Nat => "10.1",
        Mode::Dr => "10.2",
        Mode::Tun => "10.3",
        Mode::DrRouted => "10.4",
    };
    let client = lab.ns("client")?;
    let director = lab.ns("director")?;
    let mut rss = Vec::new();
    for i in 1..=o.servers {
        rss.push(lab.ns(&format!("rs{i}"))?);
    }
    check_stop(stop)?;
    // Addresses: (vip, client, director's client-side address, rips).
    let (vip, client_ip, dir_ip, rips, ifaces): (String, String, String, Vec<String>, Vec<&str>) =
        if o.mode == Mode::Nat {
            let c = format!("{net}.1");
            let (ca, da, dsa) = (format!("{c}.1"), format!("{c}.2"), format!("{net}.2.1"));
            veth(&client, "eth0", &director, "eth0")?;
            ip_addr_add(&client, &format!("{ca}/24"), "eth0")?;
            ip_addr_add(&director, &format!("{da}/24"), "eth0")?;
            let sw = lab.ns("switch")?;
            run_cmd(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
            run_cmd(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
            veth(&sw, "p-director", &director, "eth1")?;
            run_cmd(&[
                "ip",
                "-n",
                &sw,
                "link",
                "set",
                "p-director",
                "master",
                "br0",
            ])?;
            ip_addr_add(&director, &format!("{dsa}/24"), "eth1")?;
            let mut rips = Vec::new();
            for (i, rs) in rss.iter().enumerate() {
                let rip = format!("{net}.2.{}", 11 + i);
                let port = format!("p-rs{}", i + 1);
                veth(&sw, &port, rs, "eth0")?;
                run_cmd(&["ip", "-n", &sw, "link", "set", &port, "master", "br0"])?;
                ip_addr_add(rs, &format!("{rip}/24"), "eth0")?;
                run_cmd(&["ip", "-n", rs, "route", "add", "default", "via", &dsa])?;
                rips.push(rip);
            }
            (format!("{c}.100"), ca, da, rips, vec!["eth0", "eth1"])
        } else if o.mode == Mode::DrRouted {
            let c = format!("{net}.0");
            let (ca, ra, rsa) = ("192.168.100.1", "192.168.100.254", format!("{c}.254"));
            let router = lab.ns("router")?;
            veth(&client, "eth0", &router, "eth0")?;
            ip_addr_add(&client, &format!("{ca}/24"), "eth0")?;
            run_cmd(&["ip", "-n", &client, "route", "add", "default", "via", ra])?;
            ip_addr_add(&router, &format!("{ra}/24"), "eth0")?;
            let sw = lab.ns("switch")?;
            run_cmd(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
            run_cmd(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
            let mut members = vec![
                (router.clone(), "p-router".to_string(), rsa.clone()),
                (director.clone(), "p-director".to_string(), format!("{c}.2")),
            ];
            let mut rips = Vec::new();
            for (i, rs) in rss.iter().enumerate() {
                let rip = format!("{c}.{}", 11 + i);
                members.push((rs.clone(), format!("p-rs{}", i + 1), rip.clone()));
                rips.push(rip);
            }
            for (ns, port, addr) in &members {
                let dev = if ns == &router { "eth1" } else { "eth0" };
                veth(&sw, port, ns, dev)?;
                run_cmd(&["ip", "-n", &sw, "link", "set", port, "master", "br0"])?;
                ip_addr_add(ns, &format!("{addr}/24"), dev)?;
                if ns != &router {
                    // Replies (and anything else) leave through the router.
                    run_cmd(&["ip", "-n", ns, "route", "add", "default", "via", &rsa])?;
                }
            }
            let vip = format!("{c}.100");
            let dip = format!("{c}.2");
            // The router: forwarding on, the VIP routed to the director.
            in_ns(&router, || {
                let knob = "/proc/sys/net/ipv4/ip_forward";
                std::fs::write(knob, "1").map_err(|e| format!("{knob}: {e}"))
            })?;
            run_cmd(&[
                "ip",
                "-n",
                &router,
                "route",
                "add",
                &format!("{vip}/32"),
                "via",
                &dip,
            ])?;
            (vip, ca.to_string(), dip, rips, vec!["eth0"])
        } else {
            let c = format!("{net}.0");
            let sw = lab.ns("switch")?;
            run_cmd(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
            run_cmd(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
            let mut members = vec![
                (client.clone(), "p-client".to_string(), format!("{c}.1")),
                (director.clone(), "p-director".to_string(), format!("{c}.2")),
            ];
            let mut rips = Vec::new();
            for (i, rs) in rss.iter().enumerate() {
                let rip = format!("{c}.{}", 11 + i);
                members.push((rs.clone(), format!("p-rs{}", i + 1), rip.clone()));
                rips.push(rip);
            }
            for (ns, port, addr) in &members {
                veth(&sw, port, ns, "eth0")?;
                run_cmd(&["ip", "-n", &sw, "link", "set", port, "master", "br0"])?;
                ip_addr_add(ns, &format!("{addr}/24"), "eth0")?;
            }
            (
                format!("{c}.100"),
                format!("{c}.1"),
                format!("{c}.2"),
                rips,
                vec!["eth0"],
            )
        };
    check_stop(stop)?;
    if o.mode != Mode::DrRouted {
        run_cmd(&[
            "ip",
            "-n",
            &client,
            "route",
            "add",
            &format!("{vip}/32"),
            "via",
            &dir_ip,
        ])?;
    }
    ip_addr_add(&director, &format!("{vip}/32"), "lo")?;

    // Real servers: rvs realserver up (dr/tun), an HTTP server on port 80.
    let rvs = std::env::current_exe().map_err(|e| e.to_string())?;
    let rvs = rvs.to_str().ok_or("rvs path is not UTF-8")?.to_string();
    // Each real server's HTTP server: its index in `lab.children`.
    let mut http = Vec::new();
    for (i, (rs, rip)) in rss.iter().zip(&rips).enumerate() {
        let name = format!("rs{}", i + 1);
        if o.mode != Mode::Nat {
            let state = lab.dir.join(format!("{name}.json"));
            let state = state.to_str().ok_or("temp path is not UTF-8")?.to_string();
            let mut args = vec![
                "ip",
                "netns",
                "exec",
                rs,
                &rvs,
                "realserver",
                "up",
                "--vip",
                &vip,
                "--state",
                &state,
            ];
            if o.mode == Mode::Tun {
                args.push("--tun");
            }
            run_cmd(&args)?;
        }
        let www = lab.dir.join(&name);
        std::fs::create_dir_all(&www).map_err(|e| e.to_string())?;
        std::fs::write(www.join("index.html"), format!("{name} {rip}\n"))
            .map_err(|e| e.to_string())?;
        let www = www.to_str().ok_or("temp path is not UTF-8")?.to_string();
        // A deep listen backlog (python's default is 5), so that load tests
        // (`ab -c 1000`) do not see dropped handshakes and retransmits.
        in_ns(rs, || {
            for (knob, value) in [
                ("/proc/sys/net/core/somaxconn", "4096"),
                ("/proc/sys/net/ipv4/tcp_max_syn_backlog", "4096"),
            ] {
                std::fs::write(knob, value).map_err(|e| format!("{knob}: {e}"))?;
            }
            Ok(())
        })?;
        if o.health {
            // The example's second url: /health answers "ok".
            std::fs::write(Path::new(&www).join("health"), "ok\n").map_err(|e| e.to_string())?;
        }
        http.push(lab.children.len());
        lab.spawn(rs, "python3", &["-c", HTTP_SERVER, &www])?;
        if o.health_conf.is_some() {
            health::start_more_servers(lab, rs, &name)?;
        }
    }
    // Wait until every HTTP server answers in its own namespace.
    for (rs, rip) in rss.iter().zip(&rips) {
        let addr: SocketAddr = format!("{rip}:80").parse().map_err(|e| format!("{e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            check_stop(stop)?;
            let ok = in_ns(rs, move || {
                Ok(TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok())
            })?;
            if ok {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the HTTP server in {rs} did not come up (is python3 installed?)"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // The director.
    lab.start_rvsd(&director, &ifaces, o.io.as_deref(), stop)?;
    let svc = format!("{vip}:80");
    if o.health {
        // The checker makes the service and adds the real servers.
        health::start(lab, o, &director, &rvs, &vip, &rips, stop)?;
    } else {
        lab.adm(&director, &["-A", "-t", &svc, "-s", &o.scheduler])?;
        for rip in &rips {
            lab.adm(
                &director,
                &["-a", "-t", &svc, "-r", rip, o.mode.flag(), "-w", "1"],
            )?;
        }
    }

    let mut out = format!(
        "rvs lab {}: client {client_ip} -> VIP {svc} via director {dir_ip}, {} real server(s) ({}), scheduler {}\n",
        o.mode.name(),
        o.servers,
        rips.join(" "),
        match &o.health_conf {
            Some(f) => format!("as {} says", f.display()),
            None => o.scheduler.clone(),
        }
    );
    out.push_str(
        "lab: offloads as the kernel sets them (the client's and real servers' partial \
         checksums are finished by rvsd), except GRO turned on on the switch ports facing \
         the director: a veth in NAPI mode takes the XDP fast path's redirects\n",
    );
    print!("{out}");
    out.clear();
    let addr: SocketAddr = svc.parse().map_err(|e| format!("{e}"))?;
    let mut ok = 0;
    // The slowest request after the first (which may wait for the data
    // plane, see below): a lost packet shows as a TCP retransmit, 200 ms
    // or more.
    let mut slowest = Duration::ZERO;
    for n in 1..=o.requests {
        check_stop(stop)?;
        let sent = Instant::now();
        // The first request may wait for the director's neighbour lookups,
        // and for its data plane to take the VIP's packets (until then the
        // director's own stack answers, with a reset): retry it for a while.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut res;
        loop {
            res = in_ns(&client, move || http_get(addr, Duration::from_secs(3)));
            if res.is_ok() || n != 1 || Instant::now() > deadline {
                break;
            }
            check_stop(stop)?;
            std::thread::sleep(Duration::from_millis(100));
        }
        if n != 1 {
            slowest = slowest.max(sent.elapsed());
        }
        match res {
            Ok(body) => {
                ok += 1;
                println!("request {n:>3}: {body}");
            }
            Err(e) => println!("request {n:>3}: FAILED ({e})"),
        }
    }
    println!("{ok}/{} requests answered", o.requests);
    if o.requests > 1 {
        println!(
            "slowest request after the first: {} ms",
            slowest.as_millis()
        );
    }
    if o.health && ok == o.requests {
        let own = o.health_conf.is_none();
        let demo =
            health::stop_and_start(lab, &director, &client, addr, &rss, &rips, &http, own, stop)?;
        print!("{demo}");
    }
    println!("--- rvsadm -Ln --stats (in {director}) ---");
    print!("{}", lab.adm(&director, &["-L", "-n", "--stats"])?);
    println!("--- rvs dataplane (in {director}) ---");
    match in_ns(&director, crate::dataplane::run) {
        Ok(t) => print!("{t}"),
        Err(e) => println!("rvs dataplane: {e}"),
    }
    if o.keep && ok == o.requests {
        out.push_str("--- kept running; enter a namespace with:\n");
        for ns in &lab.namespaces {
            out.push_str(&format!("  ip netns exec {ns} bash\n"));
        }
        out.push_str(&format!(
            "rvsd log: {}\nremove it all with: rvs lab clean\n",
            lab.log().display()
        ));
    }
    if ok != o.requests {
        return Err(format!(
            "{} of {} requests failed\nrvsd log:\n{}",
            o.requests - ok,
            o.requests,
            lab.rvsd_log()
        ));
    }
    Ok(out)
}
