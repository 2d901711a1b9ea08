//! `rvs lab ecmp`: several active directors behind an ECMP router, each
//! announcing the VIP over BGP (BIRD 2) through `rvs announce`.
//!
//! * client 10.6.1.2/24 — router 10.6.1.1 (eth0);
//! * a bridged segment 10.6.0.0/24: router .1 (eth1), directors .11, .12,
//!   …, real servers .21, .22, …, all with their default route via the
//!   router (DR: the real servers reply through it);
//! * VIP 10.6.9.100 (outside both nets): on each director's `lo` and, by
//!   `rvs realserver up`, on each real server's; services VIP:80 (HTTP) and
//!   VIP:9000 (a line echo, for long-lived connections), `mh` with
//!   `mh-port` (the client's port is hashed too), `-g`, the
//!   real servers added in the same order everywhere, `sloppy_tcp` on;
//! * the router runs BIRD with eBGP + BFD to every director and installs
//!   one multipath route (`merge paths`), with
//!   `net.ipv4.fib_multipath_hash_policy=1` (L4 hash) in its namespace;
//! * each director runs rvsd, BIRD (the VIP in a static protocol `vip`,
//!   disabled until announced) and `rvs announce` (`birdc enable/disable
//!   vip`).
//!
//! It prints which director and which real server carried each request
//! (the director from its connection table, by the client's port). With
//! `--failover` it then holds `--conns` long-lived connections and (1)
//! drains director 1 (`rvs drain`): the route is withdrawn while rvsd still
//! forwards, then rvsd is stopped; (2) SIGKILLs director 2's rvsd, BIRD and
//! `rvs announce`; (3) with a fourth director, pulls its link (BFD alone
//! tells the router); before that, (0) quiesces the last director's real
//! servers (weight 0) and restores them: it withdraws and announces again.
//! Each time it reports how long the router took, how many long-lived
//! connections were lost and whether new requests succeed. `--bench S`
//! measures requests/s for S seconds at each stage (N, N-1, … directors).

use crate::child::sibling;
use crate::lab::{ECHO_SERVER, HTTP_SERVER, PREFIX};
use crate::netns::{addr as ip_addr_add, gro_on, in_ns, remove_ns, run_cmd};
use rvs_proto::client::{Client, DEFAULT_ABSTRACT_NAME, Endpoint};
use rvs_proto::{Reply, Request};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const VIP: &str = "10.6.9.100";
const ROUTER_LAN: &str = "10.6.0.1";
const ECHO_PORT: u16 = 9000;

/// `rvs lab ecmp` options.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Directors (1..=8).
    pub directors: u8,
    /// Real servers (1..=8).
    pub servers: u8,
    /// HTTP requests.
    pub requests: u32,
    /// Long-lived connections for `--failover`.
    pub conns: u32,
    /// Run the drain and director-death phases.
    pub failover: bool,
    /// Leave it running.
    pub keep: bool,
    /// rvsd's packet I/O.
    pub io: Option<String>,
    /// `sloppy_tcp` left off (to measure what mid-flow adoption saves).
    pub no_sloppy: bool,
    /// Seconds of closed-loop requests at each stage of `--failover` (0:
    /// none).
    pub bench: u32,
    /// Full-mesh connection sync: every director runs a master sync daemon
    /// and a backup one with syncid 0 (which accepts every master's), on
    /// the directors' segment.
    pub sync: bool,
    /// With `--failover`: before the drain, add one more real server to
    /// every director (`mh` moves about 1/(N+1) of its slots).
    pub add_server: bool,
}

struct Director {
    ns: String,
    ip: String,
    rvsd: Option<Child>,
    bird: Option<Child>,
    announce: Option<Child>,
    sock: String,
    drain_file: String,
    state_file: String,
}

struct Lab {
    namespaces: Vec<String>,
    children: Vec<Child>,
    directors: Vec<Director>,
    dir: PathBuf,
    keep: bool,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for d in &mut self.directors {
            // rvs announce first (it withdraws), then the rest.
            for c in [&mut d.announce, &mut d.rvsd, &mut d.bird]
                .into_iter()
                .flatten()
            {
                crate::child::stop(c);
            }
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

fn s(p: &std::path::Path) -> Result<String, String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| "temp path is not UTF-8".into())
}

impl Lab {
    fn ns(&mut self, prefix: &str, short: &str) -> Result<String, String> {
        let name = format!("{prefix}{short}");
        run_cmd(&["ip", "netns", "add", &name])?;
        self.namespaces.push(name.clone());
        run_cmd(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    fn spawn(&self, ns: &str, args: &[&str], log: &str) -> Result<Child, String> {
        let log = File::create(self.dir.join(log)).map_err(|e| e.to_string())?;
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .env_remove("RVS_SOCKET")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", args[0]))
    }
}

fn exec(ns: &str, args: &[&str]) -> Result<String, String> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    run_cmd(&v)
}

fn sysctl(ns: &str, knob: &'static str, value: &'static str) -> Result<(), String> {
    in_ns(ns, move || {
        std::fs::write(knob, value).map_err(|e| format!("{knob}: {e}"))
    })
}

fn check_stop(stop: &AtomicBool) -> Result<(), String> {
    if stop.load(Ordering::Relaxed) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// The router's next hops for the VIP (`ip route`), sorted.
fn next_hops(router: &str) -> Vec<String> {
    let out =
        run_cmd(&["ip", "-n", router, "route", "show", &format!("{VIP}/32")]).unwrap_or_default();
    let mut v: Vec<String> = out
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_string())
        .collect();
    v.sort();
    v
}

/// Wait until the router's next hops are `want`; the time it took.
fn wait_hops(router: &str, want: &[String], timeout: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut want = want.to_vec();
    want.sort();
    loop {
        let got = next_hops(router);
        if got == want {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > timeout {
            return Err(format!(
                "the router's route to {VIP} has next hops {got:?}, not {want:?}, after {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One HTTP/1.0 GET from the client namespace: (client port, body).
fn get(client: &str, timeout: Duration) -> Result<(u16, String), String> {
    in_ns(client, move || {
        let addr: SocketAddr = format!("{VIP}:80").parse().map_err(|e| format!("{e}"))?;
        let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
        let port = s.local_addr().map_err(|e| e.to_string())?.port();
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        write!(s, "GET / HTTP/1.0\r\nHost: {VIP}\r\n\r\n").map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.trim().to_string())
            .ok_or("no HTTP response")?;
        Ok((port, body))
    })
}

/// Client ports → the director (index) whose table has them.
fn conns_by_director(dirs: &[Director]) -> BTreeMap<u16, Vec<usize>> {
    let mut m: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, d) in dirs.iter().enumerate() {
        if d.rvsd.is_none() {
            continue;
        }
        let list = in_ns(&d.ns, || {
            let ep = Endpoint::Abstract(DEFAULT_ABSTRACT_NAME.into());
            let mut c = Client::connect(&ep).map_err(|e| e.to_string())?;
            match c.call(Request::ListConns)? {
                Reply::Conns(v) => Ok(v),
                _ => Err("unexpected reply".into()),
            }
        })
        .unwrap_or_default();
        for c in list {
            if c.vaddr.to_string() == VIP {
                m.entry(c.cport).or_default().push(i);
            }
        }
    }
    m
}

/// A long-lived connection of the client.
struct Conn {
    port: u16,
    r: BufReader<TcpStream>,
    w: TcpStream,
    lost: Option<String>,
}

fn open_conns(client: &str, n: u32) -> Result<Vec<Conn>, String> {
    in_ns(client, move || {
        let addr: SocketAddr = format!("{VIP}:{ECHO_PORT}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        let mut v = Vec::new();
        for _ in 0..n {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                .map_err(|e| format!("long-lived connect: {e}"))?;
            let port = s.local_addr().map_err(|e| e.to_string())?.port();
            let w = s.try_clone().map_err(|e| e.to_string())?;
            v.push(Conn {
                port,
                r: BufReader::new(s),
                w,
                lost: None,
            });
        }
        Ok(v)
    })
}

/// One line through every connection still alive; a connection that does
/// not answer within `timeout` of the send (TCP retransmits included) is
/// lost.
/// Returns the real servers' names by connection.
fn ping(conns: &mut [Conn], seq: u32, timeout: Duration) -> Vec<String> {
    let mut names = vec![String::new(); conns.len()];
    for c in conns.iter_mut().filter(|c| c.lost.is_none()) {
        if let Err(e) = writeln!(c.w, "ping {seq}") {
            c.lost = Some(format!("send: {e}"));
        }
    }
    let deadline = Instant::now() + timeout;
    for (i, c) in conns.iter_mut().enumerate() {
        if c.lost.is_some() {
            continue;
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let _ = c.r.get_ref().set_read_timeout(Some(left));
        let mut line = String::new();
        match c.r.read_line(&mut line) {
            Ok(0) => c.lost = Some("closed".into()),
            Ok(_) if line.trim_end().ends_with(&format!("ping {seq}")) => {
                names[i] = line.split_whitespace().next().unwrap_or("").to_string();
            }
            Ok(_) => c.lost = Some(format!("unexpected {line:?}")),
            Err(e) => c.lost = Some(e.to_string()),
        }
    }
    names
}

/// `rvs lab ecmp`.
pub fn run(o: &Opts) -> Result<String, String> {
    sibling("rvsd")?;
    sibling("rvsadm")?;
    if Command::new("bird")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Err("BIRD not available: install bird2 (apt-get install bird2)".into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let prefix = format!("{PREFIX}{}-", std::process::id());
    let dir = std::env::temp_dir().join(prefix.trim_end_matches('-'));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut lab = Lab {
        namespaces: Vec::new(),
        children: Vec::new(),
        directors: Vec::new(),
        dir,
        keep: false,
    };
    let res = build_and_run(&mut lab, &prefix, o, &stop);
    if res.is_ok() && o.keep {
        lab.keep = true;
    }
    res
}

fn router_conf(n: u8) -> String {
    let mut c = format!(
        "router id {ROUTER_LAN};\n\
         protocol device {{ scan time 1; }}\n\
         protocol kernel {{ merge paths on; ipv4 {{ export where source = RTS_BGP; import none; }}; }}\n\
         protocol bfd {{ interface \"*\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }}; }}\n\
         template bgp director {{ local {ROUTER_LAN} as 65000; hold time 3; keepalive time 1; \
         connect retry time 1; bfd on; ipv4 {{ import all; export none; }}; }}\n"
    );
    for i in 1..=n {
        c.push_str(&format!(
            "protocol bgp d{i} from director {{ neighbor 10.6.0.{} as 65001; }}\n",
            10 + i
        ));
    }
    c
}

fn director_conf(ip: &str) -> String {
    format!(
        "router id {ip};\n\
         protocol device {{ }}\n\
         protocol bfd {{ interface \"*\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }}; }}\n\
         protocol static vip {{ disabled yes; ipv4; route {VIP}/32 blackhole; }}\n\
         protocol bgp uplink {{ local {ip} as 65001; neighbor {ROUTER_LAN} as 65000; hold time 3; \
         keepalive time 1; connect retry time 1; bfd on; \
         ipv4 {{ import none; export where proto = \"vip\"; next hop self; }}; }}\n"
    )
}

fn build_and_run(
    lab: &mut Lab,
    prefix: &str,
    o: &Opts,
    stop: &AtomicBool,
) -> Result<String, String> {
    let client = lab.ns(prefix, "client")?;
    let router = lab.ns(prefix, "router")?;
    let sw = lab.ns(prefix, "switch")?;
    crate::netns::veth(&client, "eth0", &router, "eth0")?;
    ip_addr_add(&client, "10.6.1.2/24", "eth0")?;
    ip_addr_add(&router, "10.6.1.1/24", "eth0")?;
    run_cmd(&[
        "ip", "-n", &client, "route", "add", "default", "via", "10.6.1.1",
    ])?;
    run_cmd(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
    run_cmd(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
    let attach = |ns: &str, port: &str, addr: &str, dev: &str| -> Result<(), String> {
        crate::netns::veth(&sw, port, ns, dev)?;
        run_cmd(&["ip", "-n", &sw, "link", "set", port, "master", "br0"])?;
        ip_addr_add(ns, &format!("{addr}/24"), dev)
    };
    attach(&router, "p-router", ROUTER_LAN, "eth1")?;
    sysctl(&router, "/proc/sys/net/ipv4/ip_forward", "1")?;
    sysctl(&router, "/proc/sys/net/ipv4/fib_multipath_hash_policy", "1")?;
    check_stop(stop)?;

    // Real servers.
    let rvs = s(&std::env::current_exe().map_err(|e| e.to_string())?)?;
    let mut rips = Vec::new();
    let mut rss = Vec::new();
    // With --add-server, one more real server, added to the services
    // during --failover.
    for i in 1..=o.servers + u8::from(o.add_server) {
        let rs = lab.ns(prefix, &format!("rs{i}"))?;
        let rip = format!("10.6.0.{}", 20 + i);
        attach(&rs, &format!("p-rs{i}"), &rip, "eth0")?;
        run_cmd(&[
            "ip", "-n", &rs, "route", "add", "default", "via", ROUTER_LAN,
        ])?;
        let state = s(&lab.dir.join(format!("rs{i}.json")))?;
        exec(
            &rs,
            &[&rvs, "realserver", "up", "--vip", VIP, "--state", &state],
        )?;
        let name = format!("rs{i}");
        let www = lab.dir.join(&name);
        std::fs::create_dir_all(&www).map_err(|e| e.to_string())?;
        std::fs::write(www.join("index.html"), format!("{name} {rip}\n"))
            .map_err(|e| e.to_string())?;
        let www = s(&www)?;
        let http = lab.spawn(
            &rs,
            &["python3", "-c", HTTP_SERVER, &www],
            &format!("{name}-http.log"),
        )?;
        lab.children.push(http);
        let echo = lab.spawn(
            &rs,
            &["python3", "-c", ECHO_SERVER, &name],
            &format!("{name}-echo.log"),
        )?;
        lab.children.push(echo);
        rips.push(rip);
        rss.push(rs);
    }
    if o.add_server {
        rips.pop();
    }

    // Router's BIRD.
    let rconf = lab.dir.join("router-bird.conf");
    std::fs::write(&rconf, router_conf(o.directors)).map_err(|e| e.to_string())?;
    let rsock = s(&lab.dir.join("router-bird.ctl"))?;
    let rbird = lab.spawn(
        &router,
        &["bird", "-f", "-c", &s(&rconf)?, "-s", &rsock],
        "router-bird.log",
    )?;
    lab.children.push(rbird);

    // Directors.
    let rvsd = s(&sibling("rvsd")?)?;
    let rvsadm = s(&sibling("rvsadm")?)?;
    for i in 1..=o.directors {
        check_stop(stop)?;
        let ns = lab.ns(prefix, &format!("d{i}"))?;
        let ip = format!("10.6.0.{}", 10 + i);
        attach(&ns, &format!("p-d{i}"), &ip, "eth0")?;
        // The XDP fast path redirects into the switch port: NAPI on it.
        gro_on(&sw, &format!("p-d{i}"))?;
        run_cmd(&[
            "ip", "-n", &ns, "route", "add", "default", "via", ROUTER_LAN,
        ])?;
        ip_addr_add(&ns, &format!("{VIP}/32"), "lo")?;
        let mut args = vec![rvsd.as_str(), "--interface", "eth0"];
        if let Some(io) = &o.io {
            args.extend(["--io", io]);
        }
        let child = lab.spawn(&ns, &args, &format!("d{i}-rvsd.log"))?;
        let sock = s(&lab.dir.join(format!("d{i}-bird.ctl")))?;
        let d = Director {
            ns: ns.clone(),
            ip: ip.clone(),
            rvsd: Some(child),
            bird: None,
            announce: None,
            sock,
            drain_file: s(&lab.dir.join(format!("d{i}.drain")))?,
            state_file: s(&lab.dir.join(format!("d{i}.state")))?,
        };
        lab.directors.push(d);
        let deadline = Instant::now() + Duration::from_secs(15);
        while exec(&ns, &[&rvsadm, "-L", "-n"]).is_err() {
            check_stop(stop)?;
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(lab.dir.join(format!("d{i}-rvsd.log")))
                    .unwrap_or_default();
                return Err(format!("rvsd in {ns} did not come up:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for port in ["80", "9000"] {
            let svc = format!("{VIP}:{port}");
            exec(
                &ns,
                &[&rvsadm, "-A", "-t", &svc, "-s", "mh", "-b", "mh-port"],
            )?;
            for rip in &rips {
                exec(
                    &ns,
                    &[&rvsadm, "-a", "-t", &svc, "-r", rip, "-g", "-w", "1"],
                )?;
            }
        }
        if !o.no_sloppy {
            exec(&ns, &[&rvs, "sysctl", "-w", "net.ipv4.vs.sloppy_tcp=1"])?;
        }
        if o.sync {
            // Full mesh: send this director's connections, learn everyone
            // else's (syncid 0 accepts every syncid; multicast loop is off,
            // so no director hears itself).
            exec(
                &ns,
                &[
                    &rvsadm,
                    "--start-daemon",
                    "master",
                    "--mcast-interface",
                    "eth0",
                ],
            )?;
            exec(
                &ns,
                &[
                    &rvsadm,
                    "--start-daemon",
                    "backup",
                    "--mcast-interface",
                    "eth0",
                    "--syncid",
                    "0",
                ],
            )?;
        }
        let conf = lab.dir.join(format!("d{i}-bird.conf"));
        std::fs::write(&conf, director_conf(&ip)).map_err(|e| e.to_string())?;
        let d = lab.directors.last().unwrap();
        let (sock, drain, state) = (d.sock.clone(), d.drain_file.clone(), d.state_file.clone());
        let bird = lab.spawn(
            &ns,
            &["bird", "-f", "-c", &s(&conf)?, "-s", &sock],
            &format!("d{i}-bird.log"),
        )?;
        let ann = format!("birdc -s {sock} enable vip");
        let wd = format!("birdc -s {sock} disable vip");
        let svc = format!("{VIP}:80");
        let announce = lab.spawn(
            &ns,
            &[
                &rvs,
                "announce",
                "-t",
                &svc,
                "--announce-cmd",
                &ann,
                "--withdraw-cmd",
                &wd,
                "--interval",
                "100",
                "--drain-file",
                &drain,
                "--state-file",
                &state,
            ],
            &format!("d{i}-announce.log"),
        )?;
        let d = lab.directors.last_mut().unwrap();
        d.bird = Some(bird);
        d.announce = Some(announce);
    }
    let all: Vec<String> = lab.directors.iter().map(|d| d.ip.clone()).collect();
    let up = wait_hops(&router, &all, Duration::from_secs(60)).map_err(|e| {
        let logs: String = (1..=o.directors)
            .map(|i| {
                let f = |n: &str| std::fs::read_to_string(lab.dir.join(n)).unwrap_or_default();
                format!(
                    "--- d{i} announce:\n{}--- d{i} bird:\n{}",
                    f(&format!("d{i}-announce.log")),
                    f(&format!("d{i}-bird.log"))
                )
            })
            .collect();
        format!(
            "{e}\n{logs}--- router bird:\n{}",
            std::fs::read_to_string(lab.dir.join("router-bird.log")).unwrap_or_default()
        )
    })?;
    println!(
        "rvs lab ecmp: client 10.6.1.2 -> router 10.6.1.1 (BIRD, ECMP, L4 hash) -> {} director(s) {} \
         (rvsd DR mh-port sloppy_tcp={} + BIRD + rvs announce) -> {} real server(s) {}; VIP {VIP}:80 and :{ECHO_PORT}",
        o.directors,
        all.join(" "),
        u8::from(!o.no_sloppy),
        o.servers,
        rips.join(" ")
    );
    println!(
        "router: route to {VIP} via {} after {} ms",
        all.join(", "),
        up.as_millis()
    );

    // Requests.
    let mut answers = Vec::new();
    let mut failed = 0;
    for n in 1..=o.requests {
        check_stop(stop)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match get(&client, Duration::from_secs(3)) {
                Ok(a) => {
                    answers.push((n, a));
                    break;
                }
                Err(e) if n == 1 && Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    println!("request {n:>3}: FAILED ({e})");
                    failed += 1;
                    break;
                }
            }
        }
    }
    let by_port = conns_by_director(&lab.directors);
    let mut per_dir: BTreeMap<String, u32> = BTreeMap::new();
    for (n, (port, body)) in &answers {
        let d = match by_port.get(port).map(Vec::as_slice) {
            Some([i]) => format!("d{}", i + 1),
            Some(v) => format!("{:?}", v.iter().map(|i| i + 1).collect::<Vec<_>>()),
            None => "d?".into(),
        };
        println!("request {n:>3}: client port {port:>5} -> director {d} -> {body}");
        *per_dir.entry(d).or_default() += 1;
    }
    let spread: Vec<String> = per_dir.iter().map(|(d, c)| format!("{d}: {c}")).collect();
    println!(
        "{}/{} requests answered; by director: {}",
        answers.len(),
        o.requests,
        spread.join(", ")
    );
    if failed > 0 {
        return Err(format!("{failed} of {} requests failed", o.requests));
    }

    if o.failover && o.directors >= 2 {
        failover(lab, &client, &router, o, stop)?;
    }

    let mut out = String::new();
    if o.keep {
        out.push_str("--- kept running; enter a namespace with:\n");
        for ns in &lab.namespaces {
            out.push_str(&format!("  ip netns exec {ns} bash\n"));
        }
        out.push_str(&format!(
            "router: birdc -s {rsock} show route; logs in {}\nremove it all with: rvs lab clean\n",
            lab.dir.display()
        ));
    }
    Ok(out)
}

/// From the client, after an event at `t0`: a new connection every 50 ms
/// (500 ms to answer) until 20 in a row succeed. When the last failed one
/// ended (`None`: none failed), and how many were tried.
fn probe(client: &str, t0: Instant) -> (Option<Duration>, u32) {
    let mut last_fail = None;
    let (mut streak, mut tries) = (0, 0);
    while streak < 20 && t0.elapsed() < Duration::from_secs(20) {
        let start = t0.elapsed();
        tries += 1;
        match get(client, Duration::from_millis(500)) {
            Ok(_) => streak += 1,
            Err(_) => {
                streak = 0;
                last_fail = Some(start + Duration::from_millis(500));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (last_fail, tries)
}

fn fail_text(last_fail: Option<Duration>) -> String {
    match last_fail {
        Some(t) => format!("{} ms after it", t.as_millis()),
        None => "never (no failure)".into(),
    }
}

/// Closed-loop HTTP requests from 8 client threads for `secs`: requests/s.
fn rate(client: &str, secs: u32) -> f64 {
    let until = Instant::now() + Duration::from_secs(u64::from(secs));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let client = client.to_string();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < until {
                    if get(&client, Duration::from_secs(2)).is_ok() {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let n: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    n as f64 / f64::from(secs)
}

fn bench(lab: &Lab, client: &str, o: &Opts) {
    if o.bench > 0 {
        let n = lab.directors.iter().filter(|d| d.rvsd.is_some()).count();
        println!(
            "bench: {n} director(s): {:.0} requests/s (8 client threads, HTTP/1.0, {} s)",
            rate(client, o.bench),
            o.bench
        );
    }
}

fn lost(conns: &[Conn]) -> usize {
    conns.iter().filter(|c| c.lost.is_some()).count()
}

fn failover(
    lab: &mut Lab,
    client: &str,
    router: &str,
    o: &Opts,
    stop: &AtomicBool,
) -> Result<(), String> {
    let mut conns = open_conns(client, o.conns)?;
    let names = ping(&mut conns, 0, Duration::from_secs(3));
    let by_port = conns_by_director(&lab.directors);
    let mut per_dir = vec![0u32; lab.directors.len()];
    for c in &conns {
        if let Some([i]) = by_port.get(&c.port).map(Vec::as_slice) {
            per_dir[*i] += 1;
        }
    }
    println!(
        "long-lived: {} connections to {VIP}:{ECHO_PORT}, by director {:?}, {} answered",
        conns.len(),
        per_dir,
        names.iter().filter(|n| !n.is_empty()).count()
    );
    let mut seq = 1;
    if o.sync {
        // A master sends a message when it is full or 2 s old (the
        // kernel's IPVS_SYNC_FLUSH_TIME): with a few connections, that is
        // when the other directors learn them.
        std::thread::sleep(Duration::from_millis(2500));
        ping(&mut conns, seq, Duration::from_secs(3));
        seq += 1;
    }

    // (0) Health: the last director's real servers all quiesced (weight 0,
    // as a checker does): it withdraws; restored: it announces again.
    check_stop(stop)?;
    let rvsadm = s(&sibling("rvsadm")?)?;
    let all: Vec<String> = lab.directors.iter().map(|d| d.ip.clone()).collect();
    let last = lab
        .directors
        .last()
        .map(|d| d.ns.clone())
        .unwrap_or_default();
    let svc = format!("{VIP}:80");
    let rips: Vec<String> = (1..=o.servers)
        .map(|i| format!("10.6.0.{}", 20 + i))
        .collect();
    let weights = |w: &str| -> Result<(), String> {
        for rip in &rips {
            exec(
                &last,
                &[&rvsadm, "-e", "-t", &svc, "-r", rip, "-g", "-w", w],
            )?;
        }
        Ok(())
    };
    weights("0")?;
    let gone = wait_hops(router, &all[..all.len() - 1], Duration::from_secs(10))?;
    weights("1")?;
    let back = wait_hops(router, &all, Duration::from_secs(10))?;
    println!(
        "health: d{n}'s real servers at weight 0: the router dropped d{n} after {} ms; \
         back at weight 1: announced again after {} ms",
        gone.as_millis(),
        back.as_millis(),
        n = all.len()
    );
    bench(lab, client, o);

    // (0b) A real server more on every director: each director's `mh`
    // table changes, so a flow the router moves to another director is
    // scheduled there to another server unless that director knows it
    // (full-mesh sync).
    if o.add_server {
        check_stop(stop)?;
        let extra = format!("10.6.0.{}", 20 + o.servers + 1);
        for d in &lab.directors {
            for port in ["80", "9000"] {
                let svc = format!("{VIP}:{port}");
                exec(
                    &d.ns,
                    &[&rvsadm, "-a", "-t", &svc, "-r", &extra, "-g", "-w", "1"],
                )?;
            }
        }
        for _ in 0..3 {
            ping(&mut conns, seq, Duration::from_secs(5));
            seq += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        let list = |n: u8| -> Vec<(std::net::IpAddr, u16, u32)> {
            (1..=n)
                .filter_map(|i| Some((format!("10.6.0.{}", 20 + i).parse().ok()?, ECHO_PORT, 1)))
                .collect()
        };
        let (moved, total) =
            rvs_core::sched::mh::slots_moved(&list(o.servers), &list(o.servers + 1));
        println!(
            "add a real server ({extra}) on every director: mh moved {moved} of {total} slots \
             ({:.1}% of the flows a director has not seen go to another server); long-lived \
             connections lost: {} (connection sync: {})",
            100.0 * moved as f64 / total as f64,
            lost(&conns),
            if o.sync { "full mesh" } else { "off" }
        );
    }

    // (1) Drain director 1: withdraw first, keep forwarding, then stop.
    check_stop(stop)?;
    let rvs = s(&std::env::current_exe().map_err(|e| e.to_string())?)?;
    let d1 = &lab.directors[0];
    let t0 = Instant::now();
    let out = exec(
        &d1.ns,
        &[
            &rvs,
            "drain",
            "--drain-file",
            &d1.drain_file,
            "--state-file",
            &d1.state_file,
        ],
    )?;
    let withdrawn = t0.elapsed();
    let rest: Vec<String> = lab.directors[1..].iter().map(|d| d.ip.clone()).collect();
    let routed = wait_hops(router, &rest, Duration::from_secs(10))?;
    let d1_alive = lab.directors[0]
        .rvsd
        .as_mut()
        .map(|c| matches!(c.try_wait(), Ok(None)))
        .unwrap_or(false);
    println!(
        "drain d1: rvs drain returned after {} ms ({}); the router dropped d1 {} ms after \
         the drain began; d1's rvsd still forwarding then: {}",
        withdrawn.as_millis(),
        out.lines().next().unwrap_or(""),
        (withdrawn + routed).as_millis(),
        if d1_alive { "yes" } else { "NO" }
    );
    // In-flight flows: through d1 until the router moved them, then adopted
    // by the others (mh + sloppy_tcp). Exercise them, then stop d1's rvsd.
    for _ in 0..5 {
        ping(&mut conns, seq, Duration::from_secs(5));
        seq += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let lost_drain_before_stop = lost(&conns);
    if let Some(mut c) = lab.directors[0].rvsd.take() {
        crate::child::stop(&mut c);
    }
    for _ in 0..5 {
        ping(&mut conns, seq, Duration::from_secs(5));
        seq += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let lost_drain = lost(&conns);
    let ok_new = (0..10)
        .filter(|_| get(client, Duration::from_secs(3)).is_ok())
        .count();
    println!(
        "drain d1: long-lived connections lost: {lost_drain_before_stop} while d1 still forwarded, \
         {lost_drain} after its rvsd stopped (of {}); new requests: {ok_new}/10",
        conns.len()
    );
    bench(lab, client, o);
    if lab.directors.len() < 3 {
        return Ok(());
    }

    // (2) Director 2 dies: SIGKILL its rvsd, BIRD and rvs announce.
    check_stop(stop)?;
    let alive_before = conns.len() - lost_drain;
    let t0 = Instant::now();
    {
        let d2 = &mut lab.directors[1];
        for c in [&mut d2.rvsd, &mut d2.bird, &mut d2.announce]
            .into_iter()
            .flatten()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        d2.rvsd = None;
        d2.bird = None;
        d2.announce = None;
    }
    let killed = t0.elapsed();
    // The router's view: when d2's next hop goes (BFD).
    let watch = {
        let (router, gone) = (router.to_string(), lab.directors[1].ip.clone());
        std::thread::spawn(move || {
            while t0.elapsed() < Duration::from_secs(20) {
                if !next_hops(&router).contains(&gone) {
                    return Some(t0.elapsed());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        })
    };
    let (last_fail, tries) = probe(client, t0);
    let routed = watch.join().ok().flatten();
    let rest: Vec<String> = lab.directors[2..].iter().map(|d| d.ip.clone()).collect();
    wait_hops(router, &rest, Duration::from_secs(10))?;
    for _ in 0..5 {
        ping(&mut conns, seq, Duration::from_secs(5));
        seq += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let lost_death = lost(&conns) - lost_drain;
    println!(
        "kill d2 (SIGKILL rvsd, BIRD, rvs announce in {} ms): the router dropped d2 after {}; \
         new connections failed until {} ({tries} tried); long-lived connections lost: {lost_death} \
         of {alive_before} ({}; flows moved to another director {})",
        killed.as_millis(),
        match routed {
            Some(t) => format!("{} ms", t.as_millis()),
            None => "NEVER (20 s)".into(),
        },
        fail_text(last_fail),
        if o.sync {
            "full-mesh connection sync"
        } else {
            "no connection sync"
        },
        if o.sync {
            "are known there"
        } else if o.no_sloppy {
            "are dropped there: sloppy_tcp is off"
        } else {
            "are adopted there by mh + sloppy_tcp"
        }
    );
    let reasons: BTreeMap<String, usize> =
        conns
            .iter()
            .filter_map(|c| c.lost.clone())
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r).or_default() += 1;
                m
            });
    if !reasons.is_empty() {
        println!("lost connections, by error: {reasons:?}");
    }
    bench(lab, client, o);
    if lab.directors.len() < 4 {
        return shutdown_last(lab, router);
    }

    // (3) Director 3's link pulled (its switch port down): nothing closes
    // the BGP session; BFD (100 ms x 3) tells the router.
    check_stop(stop)?;
    let before = lost(&conns);
    let gone = lab.directors[2].ip.clone();
    let port = "p-d3";
    let sw = lab
        .namespaces
        .iter()
        .find(|n| n.ends_with("switch"))
        .cloned()
        .unwrap_or_default();
    let t0 = Instant::now();
    run_cmd(&["ip", "-n", &sw, "link", "set", port, "down"])?;
    let watch = {
        let router = router.to_string();
        std::thread::spawn(move || {
            while t0.elapsed() < Duration::from_secs(10) {
                if !next_hops(&router).contains(&gone) {
                    return Some(t0.elapsed());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        })
    };
    let (last_fail, tries) = probe(client, t0);
    let routed = watch.join().ok().flatten();
    for _ in 0..5 {
        ping(&mut conns, seq, Duration::from_secs(5));
        seq += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let ok_new = (0..10)
        .filter(|_| get(client, Duration::from_secs(3)).is_ok())
        .count();
    println!(
        "pull d3's link: the router dropped d3 after {} (BFD); new connections failed until {} \
         ({tries} tried); long-lived connections lost: {} of {}; new requests: {ok_new}/10",
        match routed {
            Some(t) => format!("{} ms", t.as_millis()),
            None => "NEVER (10 s)".into(),
        },
        fail_text(last_fail),
        lost(&conns) - before,
        conns.len() - before
    );
    if let Some(mut c) = lab.directors[2].rvsd.take() {
        crate::child::stop(&mut c);
    }
    bench(lab, client, o);
    shutdown_last(lab, router)
}

/// SIGTERM to the last director's `rvs announce`: it withdraws before it
/// exits (its rvsd still runs), so the router loses the route.
fn shutdown_last(lab: &mut Lab, router: &str) -> Result<(), String> {
    let Some(d) = lab.directors.last_mut() else {
        return Ok(());
    };
    let Some(mut ann) = d.announce.take() else {
        return Ok(());
    };
    let t0 = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &ann.id().to_string()])
        .status();
    let status = ann.wait().map_err(|e| e.to_string())?;
    let exited = t0.elapsed();
    wait_hops(router, &[], Duration::from_secs(10))?;
    let alive = d
        .rvsd
        .as_mut()
        .map(|c| matches!(c.try_wait(), Ok(None)))
        .unwrap_or(false);
    println!(
        "SIGTERM to the last director's rvs announce: it exited ({status}) after {} ms; \
         the router has no route to {VIP} {} ms after the signal; its rvsd still running: {}",
        exited.as_millis(),
        t0.elapsed().as_millis(),
        if alive { "yes" } else { "NO" }
    );
    Ok(())
}
