// SPDX-License-Identifier: GPL-2.0-or-later
//! `rvs health run keepalived.conf` against a real rvsd (a kept `rvs lab
//! dr`, three real servers with an HTTP server on :8080 each): servers
//! that stop leave the table within keepalived's bound and the clients'
//! new connections all go to the others; started again they return within
//! one delay_loop; a 500 or a wrong digest marks a server down; with
//! `inhibit_on_failure` down is weight 0; MISC_CHECK with misc_dynamic
//! sets the weight from the script's exit code; SSL_GET (self-signed
//! certificate, SNI), DNS_CHECK and UDP_CHECK against servers stopped and
//! started again; DNS_CHECK against real dnsmasq servers too (NXDOMAIN
//! and REFUSED fail); PING_CHECK through raw and ping sockets against real
//! servers that stop answering echoes; FILE_CHECK files that take a
//! server out, put it back and re-weight it; TCP_CHECK against a server
//! stopped (refused) and one whose link is down (timeout).
//!
//! Needs root, iproute2, python3 and AF_XDP (see netns_sessions.rs);
//! dnsmasq (dnsmasq-base) for the real DNS servers.

mod common;

use common::*;
use rvs_testsupport::mean_ci95;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An HTTP server: `name port flagdir`; answers every GET with `name\n`,
/// status 500 while `flagdir/500` exists, not at all (for a minute) while
/// `flagdir/hang` exists.
const HTTP_SERVER: &str = "
import http.server, os, socketserver, sys, time
name, port, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'
    def do_GET(self):
        if os.path.exists(os.path.join(flags, 'hang')):
            time.sleep(60)
        code = 500 if os.path.exists(os.path.join(flags, '500')) else 200
        body = (name + '\\n').encode()
        self.send_response(code)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
S(('0.0.0.0', port), H).serve_forever()
";

const PORT: u16 = 8080;

/// keepalived's bound for a dead server to leave: the next check comes
/// within delay_loop, then retry+1 attempts of connect_timeout each with
/// delay_before_retry between them (1 + 2·1 + 1 = 4 s here), plus slack
/// for a loaded machine.
const DOWN_BOUND: Duration = Duration::from_secs(4 + 3);
/// Back within one delay_loop (1 s), plus slack.
const UP_BOUND: Duration = Duration::from_secs(1 + 2);

struct Health {
    child: Child,
    log: PathBuf,
}

impl Drop for Health {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Health {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

struct World {
    lab: Lab,
    dir: PathBuf,
    servers: Vec<Option<Child>>,
}

impl Drop for World {
    fn drop(&mut self) {
        for s in self.servers.iter_mut().flatten() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl World {
    fn flags(&self, i: usize) -> PathBuf {
        self.dir.join(format!("flags{}", i + 1))
    }

    fn start_server(&mut self, i: usize) {
        let name = format!("rs{}", i + 1);
        std::fs::create_dir_all(self.flags(i)).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.lab.ns(&name), "python3", "-c"])
            .args([HTTP_SERVER, &name, &PORT.to_string()])
            .arg(self.flags(i))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        self.servers[i] = Some(child);
        let addr = SocketAddr::from((self.lab.rips[i], PORT));
        let deadline = Instant::now() + Duration::from_secs(10);
        while in_ns(&self.lab.ns(&name), move || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err()
        }) {
            assert!(
                Instant::now() < deadline,
                "{name}'s HTTP server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop_server(&mut self, i: usize) {
        let mut c = self.servers[i].take().expect("running");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn health(&self, conf: &str, tag: &str) -> Health {
        self.health_with(conf, tag, &[])
    }

    /// `rvs health run` of `conf` in the director, with `extra` options.
    fn health_with(&self, conf: &str, tag: &str, extra: &[&str]) -> Health {
        let file = self.dir.join(format!("{tag}.conf"));
        std::fs::write(&file, conf).unwrap();
        let log = self.dir.join(format!("{tag}.log"));
        let child = health_run(&self.lab.ns("director"), &file, &self.state(), &log, extra);
        Health { child, log }
    }

    fn state(&self) -> PathBuf {
        self.dir.join("health.json")
    }

    /// What `rvs health show` prints of the state file.
    fn show(&self) -> String {
        let o = Command::new(RVS)
            .args(["health", "show", "--state"])
            .arg(self.state())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `(rip, weight)` of every real server of VIP:8080 (None: no service).
    fn table(&self) -> Option<Vec<(Ipv4Addr, u64)>> {
        self.table_at("-t", PORT)
    }

    /// `(rip, weight)` of every real server of VIP:`port` (`-t` or `-u`).
    fn table_at(&self, proto: &str, port: u16) -> Option<Vec<(Ipv4Addr, u64)>> {
        let out = self
            .lab
            .try_adm(&["-L", "-n", proto, &self.lab.vip_port(port)])
            .ok()?;
        let mut v: Vec<(Ipv4Addr, u64)> = rs_lines(&out)
            .into_iter()
            .map(|(a, n)| {
                let ip = a.split(':').next().unwrap().parse().unwrap();
                (ip, n[0])
            })
            .collect();
        v.sort();
        Some(v)
    }

    /// Wait until the table is `want` (sorted); how long it took.
    fn wait_table(&self, want: &[(Ipv4Addr, u64)], bound: Duration, h: &Health) -> Duration {
        self.wait_table_at("-t", PORT, want, bound, h)
    }

    /// Wait until the table of VIP:`port` is `want` (sorted).
    fn wait_table_at(
        &self,
        proto: &str,
        port: u16,
        want: &[(Ipv4Addr, u64)],
        bound: Duration,
        h: &Health,
    ) -> Duration {
        let t0 = Instant::now();
        loop {
            let got = self.table_at(proto, port);
            if got.as_deref() == Some(want) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < bound,
                "after {:?} the table is {got:?}, not {want:?}\nrvs health log:\n{}",
                t0.elapsed(),
                h.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until VIP:8080 answers (up to 5 s). Right after a service is
    /// added, rvsd's data plane may not steer it yet: the director's own
    /// kernel answers the first SYNs with a RST (seen once in ten runs).
    fn warm(&self) {
        let dst = SocketAddr::from((self.lab.vip, PORT));
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Err(e) = self.lab.client(move || http_get(None, dst)) {
            assert!(Instant::now() < deadline, "VIP:{PORT} does not answer: {e}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `n` HTTP requests through VIP:8080: who answered.
    fn requests(&self, n: usize) -> Vec<String> {
        let dst = SocketAddr::from((self.lab.vip, PORT));
        self.lab.client(move || {
            (0..n)
                .map(|_| http_get(None, dst).unwrap_or_else(|e| format!("error: {e}")))
                .collect()
        })
    }
}

fn http_conf(lab: &Lab, vs_extra: &str, reals: &[String]) -> String {
    format!(
        "! rvs health e2e\nglobal_defs {{\n  router_id RVS_TEST\n}}\n\
         virtual_server {} {PORT} {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{vs_extra}{}}}\n",
        lab.vip,
        reals.concat()
    )
}

fn http_real(rip: Ipv4Addr, url_extra: &str) -> String {
    format!(
        "  real_server {rip} {PORT} {{\n    weight 1\n    HTTP_GET {{\n      url {{\n        path /\n{url_extra}      }}\n      \
         connect_timeout 1\n      retry 1\n      delay_before_retry 1\n    }}\n  }}\n"
    )
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn setup(tag: &str) -> Option<World> {
    if !can_run() {
        return None;
    }
    let lab = Lab::start("dr", 3, "rr");
    let dir = std::env::temp_dir().join(format!("rvs-health-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut w = World {
        lab,
        dir,
        servers: vec![None, None, None],
    };
    for i in 0..3 {
        w.start_server(i);
    }
    Some(w)
}

#[test]
fn netns_health_http_get_stop_start_and_500() {
    let Some(mut w) = setup("http") else { return };
    let rips = w.lab.rips.clone();
    let reals: Vec<String> = rips.iter().map(|r| http_real(*r, "")).collect();
    let h = w.health(&http_conf(&w.lab, "", &reals), "a");
    let all: Vec<(Ipv4Addr, u64)> = rips.iter().map(|r| (*r, 1)).collect();
    w.wait_table(&all, Duration::from_secs(10), &h);
    w.warm();
    let names = w.requests(30);
    assert_eq!(tally(&names).len(), 3, "{names:?}");

    // rs2 stops: it leaves the table within the bound.
    w.stop_server(1);
    let without2: Vec<_> = all.iter().copied().filter(|(r, _)| *r != rips[1]).collect();
    let took = w.wait_table(&without2, DOWN_BOUND, &h);
    eprintln!("rs2 left the table after {took:?}");
    let names = w.requests(50);
    let t = tally(&names);
    assert_eq!(
        t.get("rs1").copied().unwrap_or(0) + t.get("rs3").copied().unwrap_or(0),
        50,
        "{t:?}"
    );
    let log = h.log();
    let (rs2, vs) = (
        format!("[{}]:tcp:{PORT}", rips[1]),
        format!("[{}]:tcp:{PORT}", w.lab.vip),
    );
    assert!(
        log.contains(&format!("HTTP connection to {rs2} failed")),
        "{log}"
    );
    assert!(
        log.contains(&format!("Check on service {rs2} failed after 1 retry.")),
        "{log}"
    );
    assert!(
        log.contains(&format!("Removing service {rs2} from VS {vs}")),
        "{log}"
    );

    // `rvs health` shows it (the state file is rewritten about once a
    // second after a change: it may lag the table by that much).
    let t0 = Instant::now();
    let show = loop {
        let show = w.show();
        if show.contains("DOWN removed") || t0.elapsed() > Duration::from_secs(3) {
            break show;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(show.contains(&format!("RS {rs2}")), "{show}");
    assert!(show.contains("DOWN removed"), "{show}");
    assert!(
        show.contains("HTTP_GET") && show.contains("last fail"),
        "{show}"
    );

    // Started again: back within one delay_loop.
    w.start_server(1);
    let took = w.wait_table(&all, UP_BOUND, &h);
    eprintln!("rs2 came back after {took:?}");
    assert!(
        h.log()
            .contains(&format!("Adding service {rs2} to VS {vs}"))
    );
    let names = w.requests(30);
    assert_eq!(tally(&names).len(), 3, "{names:?}");

    // rs3 answers 500: down.
    std::fs::write(w.flags(2).join("500"), "").unwrap();
    let without3: Vec<_> = all.iter().copied().filter(|(r, _)| *r != rips[2]).collect();
    w.wait_table(&without3, DOWN_BOUND, &h);
    assert!(h.log().contains("status_code [500]"), "{}", h.log());
    std::fs::remove_file(w.flags(2).join("500")).unwrap();
    w.wait_table(&all, UP_BOUND, &h);

    // Reload (SIGHUP through `rvs health reload`): rs1's weight 3; the
    // service is edited, not recreated (its counters go on).
    let conns = |w: &World| -> u64 {
        let out = w.lab.adm(&[
            "-L",
            "-n",
            "--stats",
            "--exact",
            "-t",
            &w.lab.vip_port(PORT),
        ]);
        rs_lines(&out).iter().map(|(_, n)| n[0]).sum()
    };
    let before = conns(&w);
    assert!(before >= 110, "{before}");
    let reload = |w: &World| {
        let o = Command::new(RVS)
            .args(["health", "reload", "--state"])
            .arg(w.state())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let mut reals3 = reals.clone();
    reals3[0] = reals3[0].replace("weight 1", "weight 3");
    std::fs::write(w.dir.join("a.conf"), http_conf(&w.lab, "", &reals3)).unwrap();
    reload(&w);
    let mut weighted = all.clone();
    weighted[0].1 = 3;
    w.wait_table(&weighted, UP_BOUND, &h);
    assert!(conns(&w) >= before, "the service was recreated");
    assert!(
        h.log()
            .contains("Reloaded: 1 virtual server(s), 3 real server(s) keep their state"),
        "{}",
        h.log()
    );

    // A reload with a syntax error changes nothing and says where.
    std::fs::write(
        w.dir.join("a.conf"),
        "virtual_server 10.0.0.1 80 {\n  delay_loop x\n}\n",
    )
    .unwrap();
    reload(&w);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h.log().contains("Reload refused, nothing changed: ") {
        assert!(Instant::now() < deadline, "{}", h.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        h.log().contains("a.conf:2: 'delay_loop': invalid time 'x'"),
        "{}",
        h.log()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(w.table().as_deref(), Some(weighted.as_slice()));

    // A reload without rs3 removes it; without the service removes that.
    std::fs::write(w.dir.join("a.conf"), http_conf(&w.lab, "", &reals3[..2])).unwrap();
    reload(&w);
    w.wait_table(&weighted[..2], UP_BOUND, &h);
    std::fs::write(w.dir.join("a.conf"), "global_defs {\n}\n").unwrap();
    reload(&w);
    let deadline = Instant::now() + Duration::from_secs(5);
    while w.table().is_some() {
        assert!(Instant::now() < deadline, "{}", h.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where `rvs health run --metrics` listens in the director.
const METRICS: &str = "127.0.0.1:9877";

/// `GET /metrics` from the checker in the director: the body.
fn scrape(w: &World) -> Result<String, String> {
    use std::io::{Read, Write};
    in_ns(&w.lab.ns("director"), || {
        let addr: SocketAddr = METRICS.parse().unwrap();
        let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        write!(c, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
        let mut r = String::new();
        c.read_to_string(&mut r).map_err(|e| e.to_string())?;
        let (head, body) = r
            .split_once("\r\n\r\n")
            .ok_or(format!("no header end: {r}"))?;
        if !head.starts_with("HTTP/1.0 200 ") || !head.contains("version=0.0.4") {
            return Err(format!("unexpected answer: {head}"));
        }
        Ok(body.to_string())
    })
}

/// The value of `name` for real server `rip`:8080 in `text`.
fn rs_sample(text: &str, name: &str, rip: Ipv4Addr) -> Option<f64> {
    let rs = format!("real_server=\"[{rip}]:tcp:{PORT}\"");
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&rs))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Wait until `rvs_health_real_server_up` of `rip` is `want`; how long it
/// took and the text.
fn wait_up(w: &World, rip: Ipv4Addr, want: f64, bound: Duration, h: &Health) -> (Duration, String) {
    let t0 = Instant::now();
    loop {
        let got = scrape(w);
        if let Ok(text) = &got
            && rs_sample(text, "rvs_health_real_server_up", rip) == Some(want)
        {
            return (t0.elapsed(), text.clone());
        }
        assert!(
            t0.elapsed() < bound,
            "after {:?} rvs_health_real_server_up of {rip} is not {want}: {got:?}\n\
             rvs health log:\n{}",
            t0.elapsed(),
            h.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `promtool check metrics` on `text`, when promtool is installed.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let have = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var_os("RVS_REQUIRE_PROMETHEUS").is_none(),
            "RVS_REQUIRE_PROMETHEUS is set but promtool is missing"
        );
        eprintln!(
            "SKIPPED: promtool check metrics (promtool is not installed; scripts/test.sh installs it)"
        );
        return;
    }
    let mut c = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `rvs health run conf --metrics addr` in the director must fail at
/// start: its stderr. Nothing may have started: no state file, no service
/// in rvsd's table.
fn refused_at_start(w: &World, conf: &str, addr: &str) -> String {
    let file = w.dir.join("refused.conf");
    std::fs::write(&file, conf).unwrap();
    let mut c = Command::new("ip")
        .args(["netns", "exec", &w.lab.ns("director"), RVS, "health", "run"])
        .arg(&file)
        .arg("--state")
        .arg(w.state())
        .args(["--metrics", addr])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rvs health run");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = c.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!("rvs health run --metrics {addr} did not stop at start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut c.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "--metrics {addr} accepted: {err}");
    assert!(
        !w.state().exists(),
        "--metrics {addr}: a state file written"
    );
    assert_eq!(w.table(), None, "--metrics {addr}: the table changed");
    err
}

/// `rvs health run --metrics`: `rvs_health_real_server_up` of a real
/// server goes to 0 when it stops and back to 1 when it returns, its
/// checker's series with it; promtool accepts the text; a bad address (not
/// one, or one in use) stops the checker at start, before it changes
/// anything.
#[test]
fn netns_health_metrics() {
    let Some(mut w) = setup("metrics") else {
        return;
    };
    let rips = w.lab.rips.clone();
    let reals: Vec<String> = rips.iter().map(|r| http_real(*r, "")).collect();
    let conf = http_conf(&w.lab, "", &reals);

    let err = refused_at_start(&w, &conf, "9877");
    assert!(err.contains("invalid --metrics '9877' (ADDR:PORT"), "{err}");
    let taken = in_ns(&w.lab.ns("director"), || {
        std::net::TcpListener::bind(METRICS).expect("bind")
    });
    let err = refused_at_start(&w, &conf, METRICS);
    assert!(
        err.contains(&format!("--metrics {METRICS}: cannot listen: ")),
        "{err}"
    );
    drop(taken);

    let h = w.health_with(&conf, "m", &["--metrics", METRICS]);
    let all: Vec<(Ipv4Addr, u64)> = rips.iter().map(|r| (*r, 1)).collect();
    w.wait_table(&all, Duration::from_secs(10), &h);
    for r in &rips {
        wait_up(&w, *r, 1.0, UP_BOUND, &h);
    }
    let text = scrape(&w).unwrap();
    promtool_accepts(&text);
    for want in [
        "rvs_health_in_sync 1".to_string(),
        format!(
            "rvs_health_checker_up{{checker=\"HTTP_GET\",real_server=\"[{}]:tcp:{PORT}\",\
             target=\"{}:{PORT}\",virtual_server=\"[{}]:tcp:{PORT}\"}} 1",
            rips[1], rips[1], w.lab.vip
        ),
        format!(
            "rvs_health_real_server_weight{{real_server=\"[{}]:tcp:{PORT}\",\
             virtual_server=\"[{}]:tcp:{PORT}\"}} 1",
            rips[1], w.lab.vip
        ),
    ] {
        assert!(text.lines().any(|l| l == want), "missing {want}\n{text}");
    }
    let changed = rs_sample(
        &text,
        "rvs_health_real_server_last_change_timestamp_seconds",
        rips[1],
    )
    .expect("last change");

    // rs2 stops: down in the metrics (within the table's bound), its
    // checker down, the others still up.
    w.stop_server(1);
    let (took, text) = wait_up(&w, rips[1], 0.0, DOWN_BOUND, &h);
    eprintln!("rvs_health_real_server_up of rs2 went to 0 after {took:?}");
    assert_eq!(
        rs_sample(&text, "rvs_health_checker_up", rips[1]),
        Some(0.0),
        "{text}"
    );
    for r in [rips[0], rips[2]] {
        assert_eq!(
            rs_sample(&text, "rvs_health_real_server_up", r),
            Some(1.0),
            "{text}"
        );
    }
    assert!(
        rs_sample(
            &text,
            "rvs_health_real_server_last_change_timestamp_seconds",
            rips[1]
        )
        .expect("last change")
            >= changed,
        "{text}"
    );
    promtool_accepts(&text);
    let without2: Vec<_> = all.iter().copied().filter(|(r, _)| *r != rips[1]).collect();
    w.wait_table(&without2, Duration::from_secs(2), &h);

    // Started again: back to 1.
    w.start_server(1);
    let (took, text) = wait_up(&w, rips[1], 1.0, UP_BOUND, &h);
    eprintln!("rvs_health_real_server_up of rs2 went back to 1 after {took:?}");
    assert_eq!(
        rs_sample(&text, "rvs_health_checker_up", rips[1]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        rs_sample(&text, "rvs_health_checker_failed_attempts", rips[1]),
        Some(0.0),
        "{text}"
    );
    w.wait_table(&all, Duration::from_secs(2), &h);
    assert!(
        h.log()
            .contains(&format!("rvs health: metrics at http://{METRICS}/metrics")),
        "{}",
        h.log()
    );
}

#[test]
fn netns_health_inhibit_digest_and_misc_dynamic() {
    let Some(mut w) = setup("inhibit") else {
        return;
    };
    let rips = w.lab.rips.clone();
    // rs1: the right digest; rs2: a wrong one; rs3: MISC_CHECK, weight
    // from the script's exit code (exit 5: weight 3).
    let script = w.dir.join("weight.sh");
    let code = w.dir.join("code");
    std::fs::write(&code, "5\n").unwrap();
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexit $(cat {})\n", code.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let good = format!("        digest {}\n", md5_hex(b"rs1\n"));
    let bad = format!("        digest {}\n", md5_hex(b"not rs2\n"));
    let misc = format!(
        "  real_server {} {PORT} {{\n    weight 1\n    MISC_CHECK {{\n      misc_path \"{} {}\"\n      \
         misc_timeout 2\n      misc_dynamic\n    }}\n  }}\n",
        rips[2],
        script.display(),
        rips[2]
    );
    let reals = vec![http_real(rips[0], &good), http_real(rips[1], &bad), misc];
    let conf = http_conf(&w.lab, "  inhibit_on_failure\n", &reals);
    let h = w.health(&conf, "b");
    let want = |a: u64, b: u64, c: u64| vec![(rips[0], a), (rips[1], b), (rips[2], c)];
    w.wait_table(&want(1, 0, 3), Duration::from_secs(10), &h);
    w.warm();
    let log = h.log();
    let rs2 = format!("[{}]:tcp:{PORT}", rips[1]);
    assert!(log.contains(&format!("MD5 digest error to {rs2}")), "{log}");
    assert!(
        log.contains(&format!(
            "Disabling service {rs2} of VS [{}]:tcp:{PORT}",
            w.lab.vip
        )),
        "{log}"
    );

    // The script says 9 → weight 7; 1 → down (weight 0, inhibited).
    std::fs::write(&code, "9\n").unwrap();
    w.wait_table(&want(1, 0, 7), UP_BOUND, &h);
    std::fs::write(&code, "1\n").unwrap();
    w.wait_table(&want(1, 0, 0), DOWN_BOUND, &h);
    std::fs::write(&code, "0\n").unwrap();
    w.wait_table(&want(1, 0, 7), UP_BOUND, &h);

    // rs1 stops: weight 0, still listed; everything goes to rs3.
    w.stop_server(0);
    w.wait_table(&want(0, 0, 7), DOWN_BOUND, &h);
    let names = w.requests(50);
    assert_eq!(tally(&names).get("rs3").copied(), Some(50), "{names:?}");
}

/// HTTP_GET's `regex` against real servers: each answers its name
/// ("rs1\n"…). rs1 matches `^rs(?=[12]$)` (a PCRE look-ahead, beyond the
/// regex crate): up; rs3 misses it: down; rs2 with `regex_no_match` on
/// `^rs2`, which its answer matches: down. Only rs1 stays, and answers
/// every request through the VIP.
#[test]
fn netns_health_http_get_regex_match_and_no_match() {
    let Some(w) = setup("regex") else { return };
    let rips = w.lab.rips.clone();
    let reals = vec![
        http_real(rips[0], "        regex \"^rs(?=[12]$)\"\n"),
        http_real(rips[1], "        regex \"^rs2\"\n        regex_no_match\n"),
        http_real(rips[2], "        regex \"^rs(?=[12]$)\"\n"),
    ];
    let conf = http_conf(&w.lab, "", &reals);
    let h = w.health(&conf, "r");
    w.wait_table(&[(rips[0], 1)], Duration::from_secs(10), &h);
    w.warm();
    let log = h.log();
    for (rip, line) in [
        (rips[2], "Regex match failed"),
        (rips[1], "Regex no-match failed"),
    ] {
        let want = format!("{line} on [{rip}]:tcp:{PORT} url /.");
        assert!(log.contains(&want), "no {want:?} in\n{log}");
    }
    let names = w.requests(20);
    assert_eq!(tally(&names).get("rs1").copied(), Some(20), "{names:?}");
}

#[test]
fn netns_health_quorum_sorry_server() {
    let Some(mut w) = setup("quorum") else { return };
    let rips = w.lab.rips.clone();
    // rs1 and rs2 serve; rs3 is the sorry server; quorum 2 of weight 1 each.
    let script = w.dir.join("quorum.sh");
    let record = w.dir.join("quorum.log");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho $1 >> {}\n", record.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let extra = format!(
        "  quorum 2\n  sorry_server {} {PORT}\n  quorum_up \"{} up\"\n  quorum_down \"{} down\"\n",
        rips[2],
        script.display(),
        script.display()
    );
    // keepalived's lvs_notify_fifo, read by its notify_fifo_script (as
    // keepalived's doc/samples/sample_notify_fifo.sh reads it).
    let fifo = w.dir.join("lvs.fifo");
    let reader = w.dir.join("reader.sh");
    let lines = w.dir.join("fifo.log");
    std::fs::write(
        &reader,
        format!(
            "#!/bin/sh
while read -r l; do echo \"$l\" >> {}; done < \"$1\"\n",
            lines.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&reader, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let fifos = format!(
        "global_defs {{\n  lvs_notify_fifo {}\n  lvs_notify_fifo_script {}\n}}\n",
        fifo.display(),
        reader.display()
    );
    let reals: Vec<String> = rips[..2].iter().map(|r| http_real(*r, "")).collect();
    let h = w.health(
        &format!("{fifos}{}", http_conf(&w.lab, &extra, &reals)),
        "q",
    );
    let pool = vec![(rips[0], 1), (rips[1], 1)];
    w.wait_table(&pool, Duration::from_secs(10), &h);
    w.warm();

    // rs1 stops: 1 < 2, the quorum is lost: the sorry server alone.
    w.stop_server(0);
    w.wait_table(&[(rips[2], 1)], DOWN_BOUND, &h);
    let names = w.requests(30);
    assert_eq!(tally(&names).get("rs3").copied(), Some(30), "{names:?}");
    let vs = format!("[{}]:tcp:{PORT}", w.lab.vip);
    assert!(
        h.log()
            .contains(&format!("Lost quorum 2-0=2 > 1 for VS {vs}")),
        "{}",
        h.log()
    );
    assert!(
        h.log().contains(&format!(
            "Adding sorry server [{}]:tcp:{PORT} to VS {vs}",
            rips[2]
        )),
        "{}",
        h.log()
    );

    // rs1 back: the quorum too; the sorry server leaves.
    w.start_server(0);
    w.wait_table(&pool, UP_BOUND, &h);
    let deadline = Instant::now() + Duration::from_secs(3);
    while std::fs::read_to_string(&record).unwrap_or_default() != "down\nup\n" {
        assert!(
            Instant::now() < deadline,
            "quorum scripts: {:?}",
            std::fs::read_to_string(&record)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (rs, vs) = (format!("[{}]:tcp:{PORT}", rips[0]), &vs);
    let want = format!("RS {rs} {vs} DOWN\nVS {vs} DOWN\nRS {rs} {vs} UP\nVS {vs} UP\n");
    let deadline = Instant::now() + Duration::from_secs(3);
    while std::fs::read_to_string(&lines).unwrap_or_default() != want {
        assert!(
            Instant::now() < deadline,
            "the FIFO's lines: {:?}, want {want:?}\n{}",
            std::fs::read_to_string(&lines),
            h.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        std::fs::metadata(&fifo)
            .is_ok_and(|m| { std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()) }),
        "the FIFO is there while rvs health runs"
    );
}

/// A TLS server on :8443 (HTTP/1.0, `name\n`, the SNI it gets written to
/// `flagdir/sni`), an SMTP server on :2525 (the HELO line it gets written
/// to `flagdir/helo`) and a UDP responder on :5353 that answers every datagram
/// of 12 bytes or more with itself, QR bit set (a DNS reply with rcode 0
/// to a DNS query): `name cert key flagdir`.
const TLS_UDP_SERVER: &str = "
import os, socket, ssl, sys, threading
name, cert, key, flags = sys.argv[1:5]
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('0.0.0.0', 5353))
    while True:
        q, a = s.recvfrom(2048)
        if len(q) >= 12:
            r = bytearray(q)
            r[2] |= 0x80
            s.sendto(bytes(r), a)
threading.Thread(target=udp, daemon=True).start()
def smtp():
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(('0.0.0.0', 2525))
    l.listen(64)
    while True:
        c, _ = l.accept()
        try:
            c.settimeout(2)
            c.sendall(b'220-' + name.encode() + b' ESMTP\\r\\n220 ready\\r\\n')
            f = c.makefile('rb')
            helo = f.readline()
            if helo.startswith(b'HELO '):
                with open(os.path.join(flags, 'helo'), 'wb') as h:
                    h.write(helo)
                c.sendall(b'250 ' + name.encode() + b'\\r\\n')
            f.readline()
        except Exception:
            pass
        c.close()
threading.Thread(target=smtp, daemon=True).start()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
def sni(sock, server_name, c):
    if server_name:
        with open(os.path.join(flags, 'sni'), 'w') as f:
            f.write(server_name)
ctx.sni_callback = sni
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('0.0.0.0', 8443))
l.listen(64)
while True:
    c, _ = l.accept()
    try:
        c.settimeout(2)
        t = ctx.wrap_socket(c, server_side=True)
        data = b''
        while b'\\r\\n\\r\\n' not in data:
            d = t.recv(1024)
            if not d:
                break
            data += d
        body = (name + '\\n').encode()
        t.sendall(b'HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n' % len(body) + body)
        t.close()
    except Exception:
        c.close()
";

const TLS_PORT: u16 = 8443;
const UDP_PORT: u16 = 5353;

/// Start rs`i+1`'s TLS and UDP server (kept as `w.servers[3 + i]`).
fn start_tls_udp(w: &mut World, i: usize, cert: &std::path::Path, key: &std::path::Path) {
    let name = format!("rs{}", i + 1);
    std::fs::create_dir_all(w.flags(i)).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &w.lab.ns(&name), "python3", "-c"])
        .args([TLS_UDP_SERVER, &name])
        .args([cert, key])
        .arg(w.flags(i))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    w.servers[3 + i] = Some(child);
    let addr = SocketAddr::from((w.lab.rips[i], TLS_PORT));
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_ns(&w.lab.ns(&name), move || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err()
    }) {
        assert!(
            Instant::now() < deadline,
            "{name}'s TLS server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn netns_health_ssl_get_dns_check_udp_check() {
    let Some(mut w) = setup("ssl") else { return };
    w.servers.extend([None, None, None]);
    let rips = w.lab.rips.clone();
    // A self-signed certificate for a name that is not the address checked.
    let cert = rcgen::generate_simple_self_signed(vec!["www.example.com".into()]).unwrap();
    let (cert_file, key_file) = (w.dir.join("cert.pem"), w.dir.join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.key_pair.serialize_pem()).unwrap();
    for i in 0..3 {
        start_tls_udp(&mut w, i, &cert_file, &key_file);
    }
    let timing = "      connect_timeout 1\n      retry 1\n      delay_before_retry 1\n";
    let ssl: String = rips
        .iter()
        .map(|r| {
            format!(
                "  real_server {r} {TLS_PORT} {{\n    SSL_GET {{\n      url {{\n        path /\n        \
                 status_code 200\n      }}\n      virtualhost www.example.com\n      enable_sni\n{timing}    }}\n    \
                 SMTP_CHECK {{\n      connect_port 2525\n      helo_name rvs.test\n{timing}    }}\n  }}\n"
            )
        })
        .collect();
    // rs1: DNS_CHECK; rs2: UDP_CHECK with a required reply (the query's
    // id); rs3: UDP_CHECK without: only a port unreachable fails it.
    let query = "abcd 0100 0001 0000 0000 0000 07 6578616d706c65 03 636f6d 00 0001 0001";
    let udp = format!(
        "  real_server {} {UDP_PORT} {{\n    DNS_CHECK {{\n      type A\n      name example.com\n{timing}    }}\n  }}\n\
         \x20 real_server {} {UDP_PORT} {{\n    UDP_CHECK {{\n      payload {query}\n      require_reply abcd\n{timing}    }}\n  }}\n\
         \x20 real_server {} {UDP_PORT} {{\n    UDP_CHECK {{\n      payload {query}\n{timing}    }}\n  }}\n",
        rips[0], rips[1], rips[2]
    );
    let conf = format!(
        "virtual_server {vip} {TLS_PORT} {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{ssl}}}\n\
         virtual_server {vip} {UDP_PORT} {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol UDP\n{udp}}}\n",
        vip = w.lab.vip
    );
    let h = w.health(&conf, "s");
    let all: Vec<(Ipv4Addr, u64)> = rips.iter().map(|r| (*r, 1)).collect();
    let without = |i: usize| -> Vec<(Ipv4Addr, u64)> {
        all.iter().copied().filter(|(r, _)| *r != rips[i]).collect()
    };
    w.wait_table_at("-t", TLS_PORT, &all, Duration::from_secs(10), &h);
    w.wait_table_at("-u", UDP_PORT, &all, Duration::from_secs(10), &h);
    // SMTP_CHECK greets every server.
    for i in 0..3 {
        let deadline = Instant::now() + UP_BOUND;
        while std::fs::read_to_string(w.flags(i).join("helo")).unwrap_or_default()
            != "HELO rvs.test\r\n"
        {
            assert!(Instant::now() < deadline, "rs{}\n{}", i + 1, h.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Every SSL_GET sends the virtualhost as SNI (checkers start up: the
    // first checks come within a delay_loop).
    for i in 0..3 {
        let deadline = Instant::now() + UP_BOUND;
        loop {
            let sni = std::fs::read_to_string(w.flags(i).join("sni")).unwrap_or_default();
            if sni == "www.example.com" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rs{}: SNI {sni:?}\n{}",
                i + 1,
                h.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // rs3 stops: SSL_GET fails (refused) and UDP_CHECK gets the port
    // unreachable: it leaves both services; started again, it returns.
    w.stop_server(3 + 2);
    let took = w.wait_table_at("-t", TLS_PORT, &without(2), DOWN_BOUND, &h);
    eprintln!("rs3 left the TLS service after {took:?}");
    let took = w.wait_table_at("-u", UDP_PORT, &without(2), DOWN_BOUND, &h);
    eprintln!("rs3 left the UDP service after {took:?}");
    start_tls_udp(&mut w, 2, &cert_file, &key_file);
    w.wait_table_at("-t", TLS_PORT, &all, UP_BOUND, &h);
    w.wait_table_at("-u", UDP_PORT, &all, UP_BOUND, &h);

    // rs1 stops: DNS_CHECK fails; rs2 stops: UDP_CHECK's reply is missing.
    w.stop_server(3);
    w.stop_server(3 + 1);
    let only3 = vec![(rips[2], 1)];
    w.wait_table_at("-u", UDP_PORT, &only3, DOWN_BOUND, &h);
    w.wait_table_at("-t", TLS_PORT, &only3, DOWN_BOUND, &h);
    start_tls_udp(&mut w, 0, &cert_file, &key_file);
    start_tls_udp(&mut w, 1, &cert_file, &key_file);
    w.wait_table_at("-u", UDP_PORT, &all, UP_BOUND, &h);
    let log = h.log();
    let rs1 = format!("[{}]:udp:{UDP_PORT}", rips[0]);
    assert!(log.contains(&format!("DNS_CHECK ({rs1})")), "{log}");
    let rs2 = format!("[{}]:udp:{UDP_PORT}", rips[1]);
    assert!(
        log.contains(&format!("UDP_CHECK on service {rs2} failed")),
        "{log}"
    );
    let smtp1 = format!("[{}]:tcp:2525", rips[0]);
    assert!(
        log.contains(&format!("SMTP_CHECK Error connecting to server {smtp1}")),
        "{log}"
    );
}

/// Debian's dnsmasq (package dnsmasq-base), the real DNS server of
/// [`netns_health_dns_check_dnsmasq`].
const DNSMASQ: &str = "/usr/sbin/dnsmasq";
const DNS_PORT: u16 = 53;
/// The VIP port of the DNS_CHECKs that must fail (they connect to :53).
const DNS_BAD_PORT: u16 = 5300;

/// dnsmasq is there; missing, the test is skipped, unless
/// `RVS_REQUIRE_KEEPALIVED` is set (scripts/test.sh as root, CI: it
/// installs dnsmasq-base), which makes its absence a failure.
fn have_dnsmasq() -> bool {
    if Command::new(DNSMASQ).arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("RVS_REQUIRE_KEEPALIVED").is_none(),
        "RVS_REQUIRE_KEEPALIVED is set but {DNSMASQ} is missing (apt-get install dnsmasq-base)"
    );
    eprintln!("SKIP: {DNSMASQ} is missing (apt-get install dnsmasq-base)");
    false
}

/// A query for `name` (type A, id 0x1234, recursion desired).
fn dns_query_a(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Start dnsmasq on rs`i+1`'s address, port 53 (kept as `w.servers[3 +
/// i]`): example.com is 192.0.2.1, nx.test is local (NXDOMAIN), any other
/// name REFUSED (no upstream servers). Waits until it answers.
fn start_dnsmasq(w: &mut World, i: usize) {
    let name = format!("rs{}", i + 1);
    let rip = w.lab.rips[i];
    let log = w.dir.join(format!("dnsmasq{}.log", i + 1));
    let child = Command::new("ip")
        .args(["netns", "exec", &w.lab.ns(&name), DNSMASQ])
        .args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--bind-interfaces",
            &format!("--listen-address={rip}"),
            &format!("--port={DNS_PORT}"),
            "--address=/example.com/192.0.2.1",
            "--address=/nx.test/",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("dnsmasq");
    w.servers[3 + i] = Some(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !in_ns(&w.lab.ns(&name), move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 512];
        s.send_to(&dns_query_a("example.com"), (rip, DNS_PORT))
            .is_ok()
            && s.recv(&mut buf).is_ok_and(|n| n >= 12 && buf[3] & 0xf == 0)
    }) {
        assert!(
            Instant::now() < deadline,
            "{name}'s dnsmasq does not answer:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// DNS_CHECK against a real DNS server (issue 16): dnsmasq on every real
/// server. A UDP/53 service whose DNS_CHECK asks example.com (A) has all
/// three; one dnsmasq stopped leaves within keepalived's bound and returns
/// within a delay_loop once started again. As keepalived's check_dns.c
/// judges the rcode: DNS_CHECKs of a name dnsmasq answers NXDOMAIN
/// (rcode 3) or REFUSED (rcode 5) take their servers out of a second
/// service, where example.com's keeps its one.
#[test]
fn netns_health_dns_check_dnsmasq() {
    if !can_run() || !have_dnsmasq() {
        return;
    }
    let Some(mut w) = setup("dnsmasq") else {
        return;
    };
    w.servers.extend([None, None, None]);
    let rips = w.lab.rips.clone();
    for i in 0..3 {
        start_dnsmasq(&mut w, i);
    }
    let timing = "      connect_timeout 1\n      retry 1\n      delay_before_retry 1\n";
    let dns = |rip: Ipv4Addr, port: u16, name: &str| {
        format!(
            "  real_server {rip} {port} {{\n    DNS_CHECK {{\n      type A\n      name {name}\n      \
             connect_port {DNS_PORT}\n{timing}    }}\n  }}\n"
        )
    };
    let good: String = rips
        .iter()
        .map(|r| dns(*r, DNS_PORT, "example.com"))
        .collect();
    let bad = [
        dns(rips[0], DNS_BAD_PORT, "nx.test"),
        dns(rips[1], DNS_BAD_PORT, "example.org"),
        dns(rips[2], DNS_BAD_PORT, "example.com"),
    ]
    .concat();
    let vs = |port: u16, reals: &str| {
        format!(
            "virtual_server {} {port} {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol UDP\n{reals}}}\n",
            w.lab.vip
        )
    };
    let conf = vs(DNS_PORT, &good) + &vs(DNS_BAD_PORT, &bad);
    let h = w.health(&conf, "d");
    let all: Vec<(Ipv4Addr, u64)> = rips.iter().map(|r| (*r, 1)).collect();
    w.wait_table_at("-u", DNS_PORT, &all, Duration::from_secs(10), &h);
    // NXDOMAIN and REFUSED fail (keepalived added them up: they leave).
    let took = w.wait_table_at(
        "-u",
        DNS_BAD_PORT,
        &[(rips[2], 1)],
        Duration::from_secs(10),
        &h,
    );
    eprintln!("NXDOMAIN and REFUSED left after {took:?}");
    let log = h.log();
    let target = |i: usize| format!("[{}]:udp:{DNS_PORT}", rips[i]);
    for (i, rcode) in [(0, 3), (1, 5)] {
        let want = format!(
            "DNS_CHECK ({}) read error occurred. (rcode = {rcode})",
            target(i)
        );
        assert!(log.contains(&want), "no {want:?} in\n{log}");
    }
    assert!(
        !log.contains(&format!("DNS_CHECK ({})", target(2))),
        "{log}"
    );

    // rs2's dnsmasq stops: it leaves the DNS service; started again, it
    // returns. The other service does not change.
    w.stop_server(3 + 1);
    let without2: Vec<_> = all.iter().copied().filter(|(r, _)| *r != rips[1]).collect();
    let took = w.wait_table_at("-u", DNS_PORT, &without2, DOWN_BOUND, &h);
    eprintln!("rs2 left after {took:?}");
    // The port unreachable of the stopped server fails the check.
    let log = h.log();
    let want = format!("DNS_CHECK ({}) failed to read socket", target(1));
    assert!(log.contains(&want), "no {want:?} in\n{log}");
    let vs_port = format!("[{}]:udp:{DNS_PORT}", w.lab.vip);
    let removing = format!("Removing service {} from VS {vs_port}", target(1));
    assert!(log.contains(&removing), "no {removing:?} in\n{log}");
    start_dnsmasq(&mut w, 1);
    let took = w.wait_table_at("-u", DNS_PORT, &all, UP_BOUND, &h);
    eprintln!("rs2 returned after {took:?}");
    assert_eq!(w.table_at("-u", DNS_BAD_PORT), Some(vec![(rips[2], 1)]));
    let log = h.log();
    let adding = format!("Adding service {} to VS {vs_port}", target(1));
    let after = log.find(&removing).map_or("", |at| &log[at..]);
    assert!(
        after.contains(&adding),
        "no {adding:?} after {removing:?} in\n{log}"
    );
}
/// Checks run concurrently: two real servers that accept and never answer
/// (each check holds its connection for its 5 s connect_timeout) do not
/// delay the detection of a third one's failure, which stays within its
/// own bound (checked one after the other, it would take over 10 s more).
#[test]
fn netns_health_hung_servers_do_not_delay_others() {
    let Some(mut w) = setup("hung") else { return };
    let rips = w.lab.rips.clone();
    let real = |rip: Ipv4Addr, timeout: u32| {
        format!(
            "  real_server {rip} {PORT} {{\n    HTTP_GET {{\n      url {{\n        path /\n      }}\n      \
             connect_timeout {timeout}\n      retry 1\n      delay_before_retry 1\n    }}\n  }}\n"
        )
    };
    let reals = vec![real(rips[0], 5), real(rips[1], 5), real(rips[2], 1)];
    let h = w.health(&http_conf(&w.lab, "", &reals), "h");
    let all: Vec<(Ipv4Addr, u64)> = rips.iter().map(|r| (*r, 1)).collect();
    w.wait_table(&all, Duration::from_secs(10), &h);
    // Let a round of checks pass, then rs1 and rs2 hang and rs3 stops.
    std::thread::sleep(Duration::from_millis(1500));
    for i in 0..2 {
        std::fs::write(w.flags(i).join("hang"), "").unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    w.stop_server(2);
    let took = w.wait_table(&all[..2], DOWN_BOUND, &h);
    eprintln!("rs3 left the table after {took:?} while rs1 and rs2 hang");
    // The hung ones go too, after their own longer bound.
    w.wait_table(&[], Duration::from_secs(1 + 5 + 1 + 5 + 4), &h);
    let log = h.log();
    assert!(log.contains("Timeout reading data to"), "{log}");
}

/// TCP_CHECK (nonblocking connects on the scheduler's thread): a server
/// that stops (refused) and one whose link goes down (the connect times
/// out) leave within keepalived's bound with keepalived's lines while the
/// third stays; both come back within a delay_loop of answering again.
#[test]
fn netns_health_tcp_check_refused_and_timeout() {
    let Some(mut w) = setup("tcp") else { return };
    let rips = w.lab.rips.clone();
    let reals: Vec<String> = rips
        .iter()
        .map(|rip| {
            format!(
                "  real_server {rip} {PORT} {{\n    weight 1\n    TCP_CHECK {{\n      \
                 connect_timeout 1\n      retry 1\n      delay_before_retry 1\n    }}\n  }}\n"
            )
        })
        .collect();
    let h = w.health(&http_conf(&w.lab, "", &reals), "h");
    let all: Vec<(Ipv4Addr, u64)> = rips.iter().map(|r| (*r, 1)).collect();
    w.wait_table(&all, Duration::from_secs(10), &h);
    let rs2 = w.lab.ns("rs2");
    w.stop_server(2);
    rvs_testsupport::ipn(&rs2, "link set eth0 down");
    let took = w.wait_table(&all[..1], DOWN_BOUND, &h);
    eprintln!("rs2 and rs3 left the table after {took:?}");
    let log = h.log();
    let line = |rip: Ipv4Addr, what: &str| format!("TCP connection to [{rip}]:tcp:{PORT} {what}");
    assert!(
        log.contains(&line(rips[2], "failed (Connection refused")),
        "{log}"
    );
    assert!(log.contains(&line(rips[1], "timeout.")), "{log}");
    rvs_testsupport::ipn(&rs2, "link set eth0 up");
    w.start_server(2);
    w.wait_table(&all, UP_BOUND + Duration::from_secs(2), &h);
    let log = h.log();
    for (rip, what) in [(rips[1], "timeout."), (rips[2], "failed")] {
        let after = log.find(&line(rip, what)).map_or("", |at| &log[at..]);
        assert!(after.contains(&line(rip, "success.")), "{log}");
    }
    assert!(!log.contains(&line(rips[0], "failed")), "{log}");
    assert!(!log.contains(&line(rips[0], "timeout")), "{log}");
}

/// FILE_CHECK: a file written by an operator takes a server out and puts
/// it back (weight 0: any non-zero value is down), another re-weights one
/// (value * weight added), as `rvsadm -Ln` shows.
#[test]
fn netns_health_file_check_gates_and_weights() {
    let Some(w) = setup("file") else { return };
    let rips = w.lab.rips.clone();
    let (gate, drain) = (w.dir.join("gate"), w.dir.join("drain"));
    std::fs::write(&drain, "0\n").unwrap();
    let real = |rip: Ipv4Addr, file: &str| {
        format!(
            "  real_server {rip} {PORT} {{\n    weight 2\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n{file}  }}\n"
        )
    };
    let reals = vec![
        real(rips[0], "    FILE_CHECK {\n      track_file gate\n    }\n"),
        real(
            rips[1],
            "    FILE_CHECK {\n      track_file drain\n      weight 3\n    }\n",
        ),
        real(rips[2], ""),
    ];
    // The gate does not exist: init_file writes 0 (up).
    let conf = format!(
        "track_file gate {{\n  file {}\n  weight 0\n  init_file 0\n}}\n\
         track_file drain {{\n  file {}\n}}\n{}",
        gate.display(),
        drain.display(),
        http_conf(&w.lab, "", &reals)
    );
    let h = w.health(&conf, "f");
    let want = |v: &[(usize, u64)]| -> Vec<(Ipv4Addr, u64)> {
        v.iter().map(|&(i, n)| (rips[i], n)).collect()
    };
    w.wait_table(
        &want(&[(0, 2), (1, 2), (2, 2)]),
        Duration::from_secs(10),
        &h,
    );
    assert_eq!(std::fs::read_to_string(&gate).unwrap(), "0\n");
    // Watched (inotify): each change in the table well within the second
    // the poll took (the table itself looked at every 50 ms, by a
    // command). Each step is timed from before the change.
    let bound = Duration::from_millis(500);
    let step = |what: &str, op: &dyn Fn(), table: &[(usize, u64)]| {
        let t0 = Instant::now();
        op();
        w.wait_table(&want(table), bound, &h);
        eprintln!(
            "FILE_CHECK {what}: the table changed after {:?}",
            t0.elapsed()
        );
    };
    step(
        "gate written",
        &|| std::fs::write(&gate, "1\n").unwrap(),
        &[(1, 2), (2, 2)],
    );
    let log = h.log();
    assert!(
        log.contains(&format!(
            "tracked file gate ({}) now FAULT state",
            gate.display()
        )),
        "{log}"
    );
    // 2 + 2 * 3 = 8 (renamed over it, as an atomic update does); then
    // 2 - 5 * 3 < 0: weight 0, still listed.
    let tmp = w.dir.join("drain.tmp");
    step(
        "drain renamed over",
        &|| {
            std::fs::write(&tmp, "2\n").unwrap();
            std::fs::rename(&tmp, &drain).unwrap();
        },
        &[(1, 8), (2, 2)],
    );
    step(
        "drain written",
        &|| std::fs::write(&drain, "-5\n").unwrap(),
        &[(1, 0), (2, 2)],
    );
    step(
        "gate written",
        &|| std::fs::write(&gate, "0\n").unwrap(),
        &[(0, 2), (1, 0), (2, 2)],
    );
    // Removed: 0, nothing added.
    step(
        "drain removed",
        &|| std::fs::remove_file(&drain).unwrap(),
        &[(0, 2), (1, 2), (2, 2)],
    );
    step(
        "drain created",
        &|| std::fs::write(&drain, "1\n").unwrap(),
        &[(0, 2), (1, 5), (2, 2)],
    );
    step(
        "drain removed",
        &|| std::fs::remove_file(&drain).unwrap(),
        &[(0, 2), (1, 2), (2, 2)],
    );
    let show = w.show();
    assert!(
        show.contains("FILE_CHECK") && show.contains("last value 0"),
        "{show}"
    );
}

/// Set `name` to `value` inside namespace `ns`.
fn ns_sysctl(ns: &str, name: &str, value: &str) {
    let st = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-q", "-w"])
        .arg(format!("{name}={value}"))
        .status()
        .expect("sysctl");
    assert!(st.success(), "sysctl {name}={value} in {ns}");
}

/// PING_CHECK: a real server that ignores echoes leaves the table and
/// returns when it answers again; first through raw sockets (root's group
/// is outside the default `net.ipv4.ping_group_range` "1 0"), then through
/// ping sockets once the director's namespace allows them.
#[test]
fn netns_health_ping_check_raw_and_ping_sockets() {
    let Some(w) = setup("ping") else { return };
    let rips = w.lab.rips.clone();
    let reals: String = rips
        .iter()
        .map(|r| {
            format!(
                "  real_server {r} {PORT} {{\n    PING_CHECK {{\n      connect_timeout 1\n      \
                 retry 1\n      delay_before_retry 1\n    }}\n  }}\n"
            )
        })
        .collect();
    let conf = http_conf(&w.lab, "", &[reals]);
    let all: Vec<(Ipv4Addr, u64)> = rips.iter().map(|r| (*r, 1)).collect();
    let without = |i: usize| -> Vec<(Ipv4Addr, u64)> {
        all.iter().copied().filter(|(r, _)| *r != rips[i]).collect()
    };
    let director = w.lab.ns("director");
    ns_sysctl(&director, "net.ipv4.ping_group_range", "1 0");
    for (round, i) in [(0, 1), (1, 2)] {
        if round == 1 {
            ns_sysctl(&director, "net.ipv4.ping_group_range", "0 2147483647");
        }
        let h = w.health(&conf, &format!("p{round}"));
        w.wait_table(&all, Duration::from_secs(10), &h);
        let rs = w.lab.ns(&format!("rs{}", i + 1));
        ns_sysctl(&rs, "net.ipv4.icmp_echo_ignore_all", "1");
        let took = w.wait_table(&without(i), DOWN_BOUND, &h);
        eprintln!("round {round}: rs{} left after {took:?}", i + 1);
        ns_sysctl(&rs, "net.ipv4.icmp_echo_ignore_all", "0");
        w.wait_table(&all, UP_BOUND, &h);
        let log = h.log();
        assert_eq!(log.contains("using raw ICMP sockets"), round == 0, "{log}");
        assert!(
            log.contains(&format!(
                "ICMP connection to address {} failed (timeout).",
                rips[i]
            )),
            "{log}"
        );
    }
}

/// CPU time (seconds) of a process or a thread, from its `stat` file.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    user: f64,
    sys: f64,
}

impl Cpu {
    fn total(self) -> f64 {
        self.user + self.sys
    }

    /// `self - before`, per second of `wall`.
    fn rate(self, before: Cpu, wall: f64) -> Cpu {
        Cpu {
            user: (self.user - before.user) / wall,
            sys: (self.sys - before.sys) / wall,
        }
    }
}

/// utime, stime and thread count from a `/proc/…/stat` file.
fn stat_cpu(path: &str) -> (Cpu, u64) {
    let stat = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // The fields after "(comm)": state is the 3rd field, utime the 14th.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f[i - 3].parse::<f64>().expect("ticks");
    let hz = clk_tck();
    let threads = f[20 - 3].parse().expect("threads");
    (
        Cpu {
            user: ticks(14) / hz,
            sys: ticks(15) / hz,
        },
        threads,
    )
}

fn clk_tck() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| sh(&["getconf", "CLK_TCK"]).trim().parse().expect("CLK_TCK"))
}

/// Whether process `pid` still runs (not a zombie: one that died before
/// the end of its window is measured as a 1-thread zombie).
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .is_some_and(|state| !matches!(state, "Z" | "X"))
}

/// CPU time and thread count of process `pid`.
fn cpu_and_threads(pid: u32) -> (Cpu, u64) {
    stat_cpu(&format!("/proc/{pid}/stat"))
}

/// VmRSS of process `pid` (`"7700 kB"`).
fn rss(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .map_or(String::new(), |l| {
            l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
        })
}

/// The load average, as `/proc/loadavg` has it (first three fields).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

const BENCH_TCP_PORT: u16 = 7000;
const BENCH_HTTP_PORT: u16 = 7080;
const BENCH_TLS_PORT: u16 = 7443;

/// Where the 1000 real servers of a measurement are.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Farm {
    /// Local addresses of the director (10.9.0.0/16 on its `lo`): the
    /// listener's half of each handshake is processed in the connecting
    /// task's system calls and charged to it.
    Local,
    /// A namespace of their own ("farm", 10.9.0.0/16 on its `lo`) behind
    /// a veth from the director, as on hosts of their own: receive
    /// packet steering (RPS) on both ends of that veth moves the receive
    /// processing of both sides to CPU 1, where the real servers' hosts
    /// and the director's NIC interrupts would do it; `rvs health` and
    /// the baseline run on CPU 0, the listener on CPU 1. The softirq time
    /// of both CPUs is reported beside.
    Apart,
    /// On hosts of their own: 10.9.0.0/16 routed over a veth to a
    /// namespace whose end runs `tests/bpf/remote_servers.c`, an XDP
    /// program that answers each SYN with a SYN-ACK and consumes the rest,
    /// so the real servers' half of each handshake (their receive
    /// processing, a listener, accept, close, TIME_WAIT) is not on the
    /// two CPUs that forward, as on a director whose real servers are
    /// other machines. The director's own work for its checks (sockets,
    /// its receive processing of the SYN-ACKs) runs where the kernel puts
    /// it, nothing pinned. No listener sees the checks: they are counted
    /// from the replies the director's end receives, two per connect (the
    /// SYN-ACK, and the RST that answers the close's FIN: `rvs health`
    /// and the baseline both close with a FIN, as keepalived does).
    Remote,
}

/// The XDP program of [`Farm::Remote`], built by this test with clang
/// (installed with the BPF build's other needs by scripts/test.sh).
const REMOTE_SERVERS_C: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bpf/remote_servers.c");

/// The farm's end and the director's end of their veth.
const FARM_IF: &str = "dir0";
const FARM_PEER_IF: &str = "farm0";

/// The namespace of [`Farm::Apart`] and [`Farm::Remote`] (removed with
/// the lab: its prefix): a veth from the director (172.31.255.1/30 there,
/// .2 in the farm), the director's route to 10.9.0.0/16 through it.
fn farm_behind_veth(lab: &Lab, director: &str) -> String {
    let ns = lab.ns("farm");
    sh(&["ip", "netns", "add", &ns]);
    rvs_testsupport::ipn(&ns, "link set lo up");
    rvs_testsupport::veth(director, FARM_PEER_IF, &ns, FARM_IF);
    rvs_testsupport::ipn(
        director,
        &format!("addr add 172.31.255.1/30 dev {FARM_PEER_IF}"),
    );
    rvs_testsupport::ipn(&ns, &format!("addr add 172.31.255.2/30 dev {FARM_IF}"));
    rvs_testsupport::ipn(director, "route add 10.9.0.0/16 via 172.31.255.2");
    ns
}

/// The lab of the 1000-real-server measurements: a kept `rvs lab dr`
/// whose real servers 10.9.v.r are in the director or a namespace of
/// their own ([`Farm`]), a TCP listener on 7000 that accepts and closes
/// and (with `http`) a 3-byte HTTP/1.0 server on 7080, both in this
/// process, counting what they see; and the `rvs` to measure
/// (`RVS_HEALTH_BIN`, else this build's).
struct Bench {
    lab: Lab,
    director: String,
    farm: Farm,
    /// The namespace of the real servers' listeners.
    servers: String,
    tcp_n: std::sync::Arc<std::sync::atomic::AtomicU64>,
    http_n: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The thread id of the TCP listener's accepting thread.
    tcp_tid: std::sync::Arc<std::sync::atomic::AtomicU64>,
    rvs: String,
    build: &'static str,
}

impl Bench {
    fn start(http: bool, farm: Farm) -> Bench {
        use std::io::{Read, Write};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let lab = Lab::start("dr", 1, "rr");
        let director = lab.ns("director");
        // Where the listeners are; removed with the lab (its prefix).
        let servers = match farm {
            Farm::Local => {
                rvs_testsupport::ipn(&director, "addr add 10.9.0.1/16 dev lo");
                director.clone()
            }
            Farm::Apart => {
                let ns = farm_behind_veth(&lab, &director);
                rvs_testsupport::ipn(&ns, "addr add 10.9.0.1/16 dev lo");
                rvs_testsupport::ipn(&ns, "route add default via 172.31.255.1");
                // Both ends' receive processing to CPU 1 (mask 2).
                for (n, dev) in [(&ns, FARM_IF), (&director, FARM_PEER_IF)] {
                    let file = format!("/sys/class/net/{dev}/queues/rx-0/rps_cpus");
                    sh(&[
                        "ip",
                        "netns",
                        "exec",
                        n,
                        "sh",
                        "-c",
                        &format!("echo 2 > {file}"),
                    ]);
                }
                ns
            }
            Farm::Remote => {
                let ns = farm_behind_veth(&lab, &director);
                let obj = lab.dir().join("remote_servers.o");
                let obj = obj.to_str().expect("a UTF-8 path");
                sh(&[
                    "clang",
                    "-O2",
                    "-g",
                    "-target",
                    "bpf",
                    "-I/usr/include/x86_64-linux-gnu",
                    "-Wall",
                    "-Werror",
                    "-c",
                    REMOTE_SERVERS_C,
                    "-o",
                    obj,
                ]);
                // The farm's end answers; the director's end needs an XDP
                // program to receive XDP_TX frames (it passes them all).
                for (n, dev) in [(&ns, FARM_IF), (&director, FARM_PEER_IF)] {
                    rvs_testsupport::ipn(
                        n,
                        &format!("link set dev {dev} xdpdrv obj {obj} sec xdp"),
                    );
                }
                ns
            }
        };
        let (tcp_n, http_n) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        // A long accept queue: on a busy machine the accepting thread
        // runs late, and a full queue drops SYNs (a 1 s retransmit).
        let listen = |port: u16| {
            in_ns(&servers, move || {
                use socket2::{Domain, Socket, Type};
                let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
                s.set_reuse_address(true).expect("SO_REUSEADDR");
                s.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())
                    .expect("bind");
                s.listen(4096).expect("listen");
                std::net::TcpListener::from(s)
            })
        };
        let tcp_l = listen(BENCH_TCP_PORT);
        let tcp_tid = Arc::new(AtomicU64::new(0));
        {
            let (n, tid) = (Arc::clone(&tcp_n), Arc::clone(&tcp_tid));
            std::thread::spawn(move || {
                let me = rustix::thread::gettid().as_raw_nonzero().get();
                tid.store(me as u64, Ordering::Relaxed);
                if farm == Farm::Apart {
                    pin(me, 1);
                }
                for c in tcp_l.incoming() {
                    n.fetch_add(1, Ordering::Relaxed);
                    drop(c);
                }
            });
        }
        if http {
            let http_l = Arc::new(listen(BENCH_HTTP_PORT));
            for _ in 0..2 {
                let (l, n) = (Arc::clone(&http_l), Arc::clone(&http_n));
                std::thread::spawn(move || {
                    for c in l.incoming() {
                        let Ok(mut c) = c else { continue };
                        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut req = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                            match c.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(k) => req.extend_from_slice(&buf[..k]),
                            }
                        }
                        let _ = c.write_all(
                            b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
                        );
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        }
        let (rvs, build) = match std::env::var("RVS_HEALTH_BIN") {
            Ok(b) if b.contains("/release/") => (b, "release build"),
            Ok(b) => (b, "RVS_HEALTH_BIN build"),
            Err(_) if cfg!(debug_assertions) => (RVS.to_string(), "debug build"),
            Err(_) => (RVS.to_string(), "release build"),
        };
        Bench {
            lab,
            director,
            farm,
            servers,
            tcp_n,
            http_n,
            tcp_tid,
            rvs,
            build,
        }
    }

    /// Write keepalived.conf `tag.conf`: 10 virtual servers (VIP:9001…)
    /// of 100 real servers 10.9.v.r each, delay_loop 1; virtual server
    /// `v` gets `check(v)`.
    fn conf(&self, tag: &str, check: impl Fn(u16) -> String) -> PathBuf {
        self.conf_at(tag, self.lab.vip, "", check)
    }

    /// [`Bench::conf`] with the virtual servers at `vip` and `vs_extra`
    /// (whole lines) in each.
    fn conf_at(
        &self,
        tag: &str,
        vip: Ipv4Addr,
        vs_extra: &str,
        check: impl Fn(u16) -> String,
    ) -> PathBuf {
        let mut conf = String::new();
        for v in 1..=10u16 {
            conf += &format!(
                "virtual_server {vip} {} {{\n delay_loop 1\n lb_algo rr\n lb_kind DR\n protocol TCP\n{vs_extra}",
                9000 + v
            );
            for r in 1..=100 {
                conf += &format!(
                    " real_server 10.9.{v}.{r} {} {{\n {}\n }}\n",
                    9000 + v,
                    check(v)
                );
            }
            conf += "}\n";
        }
        let file = self.lab.dir().join(format!("{tag}.conf"));
        std::fs::write(&file, conf).unwrap();
        file
    }

    /// Real servers 10.9.* in the table.
    fn in_table(&self) -> usize {
        self.lab
            .try_adm(&["-L", "-n"])
            .map_or(0, |o| o.lines().filter(|l| l.contains("-> 10.9.")).count())
    }

    /// `rvs health run conf --threads threads` in the director; returns
    /// once the table holds the 1000 real servers (up to 30 s), with its
    /// pid (`ip netns exec` execs: the pid is rvs's own). Stopped on drop,
    /// and by the lab's removal too (it kills what runs in its
    /// namespaces), pass or fail.
    fn health(&self, conf: &std::path::Path, threads: &str, tag: &str) -> (Health, u32) {
        let log = self.lab.dir().join(format!("{tag}.log"));
        // `taskset` execs rvs: the pid stays rvs's.
        let on_cpu0: &[&str] = match self.farm {
            Farm::Local | Farm::Remote => &[],
            Farm::Apart => &["taskset", "-c", "0"],
        };
        let child = Command::new("ip")
            .args(["netns", "exec", &self.director])
            .args(on_cpu0)
            .args([&self.rvs, "health", "run"])
            .arg(conf)
            .args(["--threads", threads, "--state"])
            .arg(self.lab.dir().join(format!("{tag}.json")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("rvs health run");
        let h = Health { child, log };
        let pid = h.child.id();
        let t0 = Instant::now();
        while self.in_table() != 1000 {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "not 1000 real servers after 30 s\n{}",
                h.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert_eq!(comm.trim(), "rvs", "pid {pid} is not rvs health");
        (h, pid)
    }

    /// An HTTPS server on `BENCH_TLS_PORT` (rustls, a self-signed
    /// certificate; `threads` threads handshaking, answering 200 with 3
    /// bytes, then close_notify); its counter of answered connections.
    fn serve_tls(&self, threads: usize) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        use std::io::{Read, Write};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let cert = rcgen::generate_simple_self_signed(vec!["www.example.com".into()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.cert.der().clone()], key)
                .unwrap(),
        );
        let l = Arc::new(in_ns(&self.servers, || {
            use socket2::{Domain, Socket, Type};
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            s.set_reuse_address(true).expect("SO_REUSEADDR");
            s.bind(&SocketAddr::from(([0, 0, 0, 0], BENCH_TLS_PORT)).into())
                .expect("bind");
            s.listen(4096).expect("listen");
            std::net::TcpListener::from(s)
        }));
        let n = Arc::new(AtomicU64::new(0));
        for _ in 0..threads {
            let (l, n, cfg) = (Arc::clone(&l), Arc::clone(&n), Arc::clone(&cfg));
            std::thread::spawn(move || {
                for c in l.incoming() {
                    let Ok(c) = c else { continue };
                    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                    let conn = rustls::ServerConnection::new(Arc::clone(&cfg)).expect("tls");
                    let mut t = rustls::StreamOwned::new(conn, c);
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match t.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => req.extend_from_slice(&buf[..k]),
                        }
                    }
                    let _ = t.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
                    t.conn.send_close_notify();
                    let _ = t.flush();
                    n.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        n
    }

    /// CPU time of the TCP listener's accepting thread so far.
    fn listener_cpu(&self) -> Cpu {
        use std::sync::atomic::Ordering;
        let tid = self.tcp_tid.load(Ordering::Relaxed);
        stat_cpu(&format!("/proc/self/task/{tid}/stat")).0
    }

    /// Connections seen by the TCP and the HTTP listener so far; with
    /// [`Farm::Remote`], the TCP count is half the replies of its XDP
    /// responder that reached the director (a SYN-ACK and an RST per
    /// connect).
    fn seen(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        let tcp = match self.farm {
            Farm::Local | Farm::Apart => self.tcp_n.load(Ordering::Relaxed),
            Farm::Remote => {
                rvs_testsupport::sh(&[
                    "ip",
                    "netns",
                    "exec",
                    &self.director,
                    "cat",
                    &format!("/sys/class/net/{FARM_PEER_IF}/statistics/rx_packets"),
                ])
                .trim()
                .parse::<u64>()
                .expect("rx_packets")
                    / 2
            }
        };
        (tcp, self.http_n.load(Ordering::Relaxed))
    }
}

/// A measurement: what `rvs health` costs checking 1000 real servers (10
/// virtual servers of 100: five with TCP_CHECK, five with HTTP_GET,
/// delay_loop 1) for 25 s, against a real rvsd. The real servers are
/// 10.9.v.r, local addresses of the director (10.9.0.0/16 on its lo),
/// served by a TCP listener (accepts and closes) and an HTTP server (200,
/// 3 bytes) of this test; both count what they see. `RVS_HEALTH_BIN`
/// names another `rvs` to measure (e.g. target/release/rvs, built with
/// `cargo build --release -p rvs --bin rvs`); the lab and rvsd stay this
/// build's.
#[test]
#[ignore = "a measurement (BENCHMARKS.md), not a check"]
fn netns_health_cpu_for_1000_real_servers() {
    if !can_run() {
        return;
    }
    const WINDOW: Duration = Duration::from_secs(25);
    let b = Bench::start(true, Farm::Local);
    let file = b.conf("health-1000", |v| {
        if v <= 5 {
            format!("TCP_CHECK {{\n connect_port {BENCH_TCP_PORT}\n connect_timeout 2\n }}")
        } else {
            format!(
                "HTTP_GET {{\n url {{ path / }}\n connect_port {BENCH_HTTP_PORT}\n connect_timeout 2\n }}"
            )
        }
    });
    let build = b.build;
    // Once with the default pool (up to 64 workers), once with at most 4.
    for threads in ["64", "4"] {
        let (h, pid) = b.health(&file, threads, &format!("health-1000-{threads}"));
        std::thread::sleep(Duration::from_secs(3));
        let (cpu0, _) = cpu_and_threads(pid);
        let (tcp0, http0) = b.seen();
        let start = Instant::now();
        std::thread::sleep(WINDOW);
        let (cpu1, threads_seen) = cpu_and_threads(pid);
        assert!(alive(pid), "rvs health is gone (a zombie)\n{}", h.log());
        let wall = start.elapsed().as_secs_f64();
        let (tcp1, http1) = b.seen();
        let rss = rss(pid);
        let down = 1000 - b.in_table();
        let grown = h.log().matches(" checker threads: all ").count();
        let (tcp, http) = ((tcp1 - tcp0) as f64 / wall, (http1 - http0) as f64 / wall);
        let cpu = cpu1.rate(cpu0, wall);
        eprintln!(
            "rvs health --threads {threads} ({build}), 1000 real servers (500 TCP_CHECK, \
             500 HTTP_GET, delay_loop 1), {wall:.1} s, load average {}: {:.3} CPU s per s \
             ({:.1} % of one core; user {:.3}, system {:.3}), \
             {threads_seen} threads ({grown} worker(s) added), RSS {rss}; {:.0} checks/s ({tcp:.0} TCP connects/s, \
             {http:.0} HTTP GETs/s), {:.0} us CPU per check; {down} real server(s) out of the \
             table at the end",
            loadavg(),
            cpu.total(),
            cpu.total() * 100.0,
            cpu.user,
            cpu.sys,
            tcp + http,
            cpu.total() / (tcp + http) * 1e6,
        );
        assert_eq!(down, 0, "{}", h.log());
    }
}

/// Run thread `tid` on CPU `cpu` only.
fn pin(tid: i32, cpu: u32) {
    sh(&["taskset", "-pc", &cpu.to_string(), &tid.to_string()]);
}

/// The softirq time (seconds) of all CPUs so far, from `/proc/stat`.
fn softirq_time() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let line = stat.lines().next().expect("cpu line");
    // cpu user nice system idle iowait irq softirq …
    let ticks: f64 = line
        .split_whitespace()
        .nth(7)
        .expect("softirq")
        .parse()
        .expect("ticks");
    ticks / clk_tck()
}

/// A measurement: what SSL_GET costs `rvs health` (its TLS handshakes run
/// on the scheduler's thread, with the checks' epoll set): 1000 real
/// servers (10 virtual servers of 100) with SSL_GET (`url { path / }`,
/// delay_loop 1, connect_timeout 2) for 20 s against a real rvsd, the
/// real servers local addresses of the director served by an in-process
/// rustls server (ECDSA P-256 certificate, TLS 1.3) of this test.
#[test]
#[ignore = "a measurement (BENCHMARKS.md), not a check"]
fn netns_health_ssl_get_cpu_for_1000_real_servers() {
    if !can_run() {
        return;
    }
    let b = Bench::start(false, Farm::Local);
    let served = b.serve_tls(2);
    one_checker_cpu(&b, "SSL_GET", || {
        served.load(std::sync::atomic::Ordering::Relaxed)
    });
}

/// A measurement: what PING_CHECK costs `rvs health` (ICMP echoes on the
/// scheduler's thread): 1000 real servers with PING_CHECK (delay_loop 1,
/// connect_timeout 2) for 20 s, the real servers local addresses of the
/// director (its kernel answers); the echoes counted by the director's
/// `Icmp: InEchos`.
#[test]
#[ignore = "a measurement (BENCHMARKS.md), not a check"]
fn netns_health_ping_check_cpu_for_1000_real_servers() {
    if !can_run() {
        return;
    }
    let b = Bench::start(false, Farm::Local);
    let director = b.director.clone();
    one_checker_cpu(&b, "PING_CHECK", || in_echos(&director));
}

/// The `Icmp: InEchos` counter of namespace `ns`.
fn in_echos(ns: &str) -> u64 {
    let snmp = in_ns(ns, || {
        std::fs::read_to_string("/proc/thread-self/net/snmp").expect("snmp")
    });
    let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (
        icmp.next().expect("Icmp names"),
        icmp.next().expect("Icmp values"),
    );
    let i = names
        .split_whitespace()
        .position(|n| n == "InEchos")
        .expect("InEchos");
    values
        .split_whitespace()
        .nth(i)
        .expect("value")
        .parse()
        .expect("number")
}

/// `rvs health` checking the bench's 1000 real servers with `kind` (its
/// block: connect_port the bench's for SSL_GET, connect_timeout 2) for
/// 20 s: its CPU per check, `seen` counting the checks served.
fn one_checker_cpu(b: &Bench, kind: &str, seen: impl Fn() -> u64) {
    const WINDOW: Duration = Duration::from_secs(20);
    let tag = kind.to_lowercase().replace('_', "-");
    let file = b.conf(&tag, |_| match kind {
        "SSL_GET" => format!(
            "SSL_GET {{\n url {{ path / }}\n connect_port {BENCH_TLS_PORT}\n connect_timeout 2\n }}"
        ),
        _ => format!("{kind} {{\n connect_timeout 2\n }}"),
    });
    let build = b.build;
    let (h, pid) = b.health(&file, "64", &tag);
    std::thread::sleep(Duration::from_secs(3));
    let (cpu0, _) = cpu_and_threads(pid);
    let n0 = seen();
    let start = Instant::now();
    std::thread::sleep(WINDOW);
    let (cpu1, threads) = cpu_and_threads(pid);
    assert!(alive(pid), "rvs health is gone (a zombie)\n{}", h.log());
    let wall = start.elapsed().as_secs_f64();
    let per_s = (seen() - n0) as f64 / wall;
    let down = 1000 - b.in_table();
    let cpu = cpu1.rate(cpu0, wall);
    eprintln!(
        "rvs health ({build}), 1000 real servers with {kind}, delay_loop 1, {wall:.1} s, load \
         average {}: {:.3} CPU s per s ({:.1} % of one core; user {:.3}, system {:.3}), {threads} \
         threads, RSS {}; {per_s:.0} checks/s, {:.0} us CPU per check; {down} real server(s) out \
         of the table",
        loadavg(),
        cpu.total(),
        cpu.total() * 100.0,
        cpu.user,
        cpu.sys,
        rss(pid),
        cpu.total() / per_s * 1e6,
    );
    assert_eq!(down, 0, "{}", h.log());
}

/// The baseline of the TCP_CHECK measurement: one thread of this process,
/// in the director, making `per_s` blocking connects (then closes) a
/// second for `window` to the 1000 addresses 10.9.v.r:`port` in turn,
/// paced like the checks (one every `1/per_s` s); `(connects, failures,
/// its own CPU over the window)`, from `/proc/self/task/TID/stat`. With
/// the real servers apart, on CPU 0 as `rvs health`.
fn baseline_connects(
    director: &str,
    farm: Farm,
    port: u16,
    per_s: u32,
    window: Duration,
) -> (u64, u64, Cpu) {
    in_ns(director, move || {
        let tid = rustix::thread::gettid().as_raw_nonzero().get();
        if farm == Farm::Apart {
            pin(tid, 0);
        }
        let stat = format!("/proc/self/task/{tid}/stat");
        let every = Duration::from_secs(1) / per_s;
        let (cpu0, _) = stat_cpu(&stat);
        let t0 = Instant::now();
        let (mut n, mut failed) = (0u64, 0u64);
        // Bounded in time and in count.
        while t0.elapsed() < window && n < u64::from(per_s) * (window.as_secs() + 1) {
            let at = t0 + every * n as u32;
            if let Some(d) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            let i = n % 1000;
            let dst = SocketAddr::from((
                Ipv4Addr::new(10, 9, (i / 100 + 1) as u8, (i % 100 + 1) as u8),
                port,
            ));
            match std::net::TcpStream::connect(dst) {
                Ok(s) => drop(s),
                Err(_) => failed += 1,
            }
            n += 1;
        }
        let (cpu1, _) = stat_cpu(&stat);
        (n, failed, cpu1.rate(cpu0, 1.0))
    })
}

/// Ping-pong connections through the lab's VIP: a line echo server of
/// this process in rs1 (DR: the VIP is on its lo) behind VIP:`FWD_PORT`.
const FWD_PORT: u16 = 7777;
const FWD_CONNS: usize = 8;

/// Start the echo server in rs1 and add VIP:`FWD_PORT` → rs1 (DR) to the
/// table; returns once one exchange through the VIP works.
fn forwarding_service(lab: &Lab) {
    use std::io::{BufRead, BufReader, Write};
    let l = in_ns(&lab.ns("rs1"), || {
        std::net::TcpListener::bind(("0.0.0.0", FWD_PORT)).expect("bind echo")
    });
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                s.set_nodelay(true).ok();
                s.set_read_timeout(Some(Duration::from_secs(30))).ok();
                let mut w = s.try_clone().expect("clone");
                for line in BufReader::new(s).lines() {
                    let Ok(line) = line else { return };
                    if writeln!(w, "{line}").is_err() {
                        return;
                    }
                }
            });
        }
    });
    let svc = lab.vip_port(FWD_PORT);
    lab.adm(&["-A", "-t", &svc, "-s", "rr"]);
    let rs = format!("{}:{FWD_PORT}", lab.rips[0]);
    lab.adm(&["-a", "-t", &svc, "-r", &rs, "-g", "-w", "1"]);
    let dst = SocketAddr::from((lab.vip, FWD_PORT));
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = lab.client(move || {
        let mut s = tcp_connect(None, dst, Duration::from_secs(1))?;
        echo(&mut s, "ping")
    }) {
        assert!(
            Instant::now() < deadline,
            "VIP:{FWD_PORT} does not echo: {e}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `FWD_CONNS` ping-pong connections to `dst` (in this thread's
/// namespace), each on a thread of its own: a line sent, its echo read,
/// `count` counting the exchanges, until `stop` or `bound` exchanges
/// (each read bounded by 5 s). A thread's result: whether its
/// connection held to the end.
fn pingpong(
    dst: SocketAddr,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    count: &std::sync::Arc<std::sync::atomic::AtomicU64>,
    bound: u64,
) -> Vec<std::thread::JoinHandle<bool>> {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    (0..FWD_CONNS)
        .map(|_| {
            let (stop, c) = (Arc::clone(stop), Arc::clone(count));
            std::thread::spawn(move || {
                let s = tcp_connect(None, dst, Duration::from_secs(5)).expect("connect");
                s.set_nodelay(true).ok();
                s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut w = s.try_clone().expect("clone");
                let mut r = BufReader::new(s);
                let mut line = String::new();
                while !stop.load(Ordering::Relaxed) && c.load(Ordering::Relaxed) < bound {
                    line.clear();
                    if writeln!(w, "ping").is_err() || r.read_line(&mut line).is_err() {
                        return false;
                    }
                    c.fetch_add(1, Ordering::Relaxed);
                }
                true
            })
        })
        .collect()
}

/// Exchanges per second of `FWD_CONNS` ping-pong connections (a line
/// sent, its echo read) through VIP:`FWD_PORT` for `secs`; bounded in
/// time (each read by 5 s) and in count.
fn forwarding_rate(lab: &Lab, secs: Duration) -> f64 {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const BOUND: u64 = 50_000_000;
    let dst = SocketAddr::from((lab.vip, FWD_PORT));
    let count = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&count);
    let t = lab.client(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = pingpong(dst, &stop, &c, BOUND);
        // Counted from 0.2 s on: connections set up, threads running.
        std::thread::sleep(Duration::from_millis(200));
        let (n0, t0) = (c.load(Ordering::Relaxed), Instant::now());
        std::thread::sleep(secs);
        let (n1, wall) = (c.load(Ordering::Relaxed), t0.elapsed());
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        (n1 - n0) as f64 / wall.as_secs_f64()
    });
    assert!(
        count.load(Ordering::Relaxed) > 0,
        "no exchange through VIP:{FWD_PORT}"
    );
    t
}

/// A measurement (issue 16): `rvs health` checking 1000 real servers with
/// TCP_CHECK (10 virtual servers of 100, delay_loop 1, connect_timeout 2)
/// against a real rvsd, as `netns_health_cpu_for_1000_real_servers`, the
/// real servers local addresses of the director ([`Farm::Local`]).
///
/// 1. rvs's CPU (user and system) over 4 windows of 5 s, and in the same
///    windows a baseline: one thread of this process in the director
///    making 1000 blocking connect+close a second to the same listener
///    and addresses, its own CPU. On one host the listener's half of each
///    handshake (loopback receive processing) is charged to whoever
///    connects, so part of either figure is not the connecting code's.
///    The listener's accepting thread (its CPU is shown too) serves both.
/// 2. Forwarding through the lab's VIP (`FWD_CONNS` ping-pong connections
///    to an echo server in rs1) in alternating phases of 3 s: without
///    rvs health, with the baseline's bare loop making the same 1000
///    connects a second (what any TCP check costs the machine, the
///    checked servers' side included), then with rvs health (started
///    again, 2 s to settle), then with rvs health at keepalived's
///    `global_defs { checker_priority 10 }` (nice 10: the forwarding
///    first; left out with `RVS_HEALTH_NICE=0`), then without rvs health
///    again, `RVS_HEALTH_ROUNDS` (default 5, at most 100) rounds; the
///    means of the rounds' ratios, each against the mean of its round's
///    two phases without checks (A-B-A: a drift over the round cancels),
///    with their 95 % confidence intervals.
#[test]
#[ignore = "a measurement (BENCHMARKS.md), not a check"]
fn netns_health_tcp_check_cpu_and_forwarding_for_1000_real_servers() {
    tcp_check_cpu_and_forwarding(Farm::Local);
}

/// The same measurement with the real servers in a namespace of their own
/// whose receive processing, and the director's for that veth, runs on
/// CPU 1 while `rvs health` and the baseline run on CPU 0 ([`Farm::Apart`]):
/// what the checker costs when the real servers are other hosts. Needs
/// two CPUs.
#[test]
#[ignore = "a measurement (BENCHMARKS.md), not a check"]
fn netns_health_tcp_check_cpu_and_forwarding_real_servers_apart() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("skipped: one CPU, nowhere to move the real servers' receive processing");
        return;
    }
    tcp_check_cpu_and_forwarding(Farm::Apart);
}

/// The same measurement with the real servers answered by an XDP program
/// on their own veth ([`Farm::Remote`]): their half of each handshake off
/// the director's CPUs, as on a director whose real servers are other
/// machines; what is left on the host is rvs health's own work and the
/// kernel's for the director's side of its checks.
#[test]
#[ignore = "a measurement (BENCHMARKS.md), not a check"]
fn netns_health_tcp_check_cpu_and_forwarding_real_servers_remote() {
    if std::process::Command::new("clang")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no clang to build tests/bpf/remote_servers.c");
        return;
    }
    tcp_check_cpu_and_forwarding(Farm::Remote);
}

fn tcp_check_cpu_and_forwarding(farm: Farm) {
    const WINDOWS: usize = 4;
    const WINDOW: Duration = Duration::from_secs(5);
    const PHASE: Duration = Duration::from_secs(3);
    let rounds: usize = std::env::var("RVS_HEALTH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .clamp(2, 100);
    if !can_run() {
        return;
    }
    let b = Bench::start(false, farm);
    if farm == Farm::Apart {
        eprintln!(
            "the real servers apart: receive packet steering (RPS) set on the test's own veth \
             ({FARM_PEER_IF} in the director, {FARM_IF} in the farm) moves both sides' receive \
             processing to CPU 1; rvs health and the baseline pinned to CPU 0, the listener to \
             CPU 1; no host setting changed"
        );
    }
    if farm == Farm::Remote {
        eprintln!(
            "the real servers remote: an XDP program on the test's own veth ({FARM_IF} in the \
             farm) answers each SYN to 10.9.0.0/16 with a SYN-ACK and consumes the rest (an XDP \
             program passing everything on {FARM_PEER_IF} lets that veth receive them); their \
             half of each handshake is off the host's CPUs; nothing pinned; no host setting \
             changed"
        );
    }
    let file = b.conf("tcp-1000", |_| {
        format!("TCP_CHECK {{\n connect_port {BENCH_TCP_PORT}\n connect_timeout 2\n }}")
    });
    forwarding_service(&b.lab);
    let build = b.build;
    let (h, pid) = b.health(&file, "64", "tcp-1000");
    std::thread::sleep(Duration::from_secs(3));
    eprintln!("load average at the start: {}", loadavg());
    let (mut rvs_cpu, mut base_cpu, mut wall_all, mut checks_all) =
        (Cpu::default(), Cpu::default(), 0.0, 0u64);
    let mut threads_seen = 0;
    let mut listener_cpu = Cpu::default();
    let mut softirq = 0.0;
    for w in 0..WINDOWS {
        let (cpu0, _) = cpu_and_threads(pid);
        let (tcp0, _) = b.seen();
        let (l0, si0) = (b.listener_cpu(), softirq_time());
        let start = Instant::now();
        let (n, failed, base) = baseline_connects(&b.director, farm, BENCH_TCP_PORT, 1000, WINDOW);
        let (cpu1, t) = cpu_and_threads(pid);
        threads_seen = t;
        let wall = start.elapsed().as_secs_f64();
        let (tcp1, _) = b.seen();
        let (l1, si1) = (b.listener_cpu(), softirq_time());
        softirq += si1 - si0;
        listener_cpu.user += l1.user - l0.user;
        listener_cpu.sys += l1.sys - l0.sys;
        assert!(alive(pid), "rvs health is gone (a zombie)\n{}", h.log());
        assert_eq!(failed, 0, "baseline connects failed");
        let checks = (tcp1 - tcp0).saturating_sub(n);
        let rvs = cpu1.rate(cpu0, wall);
        let base = base.rate(Cpu::default(), wall);
        eprintln!(
            "window {w} ({wall:.1} s, load average {}): rvs {:.3} CPU s/s (user {:.3}, system {:.3}) \
             for {:.0} checks/s; baseline {:.3} (user {:.3}, system {:.3}) for {:.0} connects/s; \
             rvs/baseline {:.2}; softirq {:.3} CPU s/s",
            loadavg(),
            rvs.total(),
            rvs.user,
            rvs.sys,
            checks as f64 / wall,
            base.total(),
            base.user,
            base.sys,
            n as f64 / wall,
            rvs.total() / base.total(),
            (si1 - si0) / wall,
        );
        rvs_cpu.user += rvs.user * wall;
        rvs_cpu.sys += rvs.sys * wall;
        base_cpu.user += base.user * wall;
        base_cpu.sys += base.sys * wall;
        wall_all += wall;
        checks_all += checks;
    }
    let (rvs, base) = (
        rvs_cpu.rate(Cpu::default(), wall_all),
        base_cpu.rate(Cpu::default(), wall_all),
    );
    let per_s = checks_all as f64 / wall_all;
    let listener = listener_cpu.rate(Cpu::default(), wall_all);
    let down = 1000 - b.in_table();
    let rss = rss(pid);
    eprintln!(
        "rvs health ({build}), 1000 real servers ({farm:?}) with TCP_CHECK, delay_loop 1, {wall_all:.1} s, \
         load average {}: {:.3} CPU s per s ({:.1} % of one core; user {:.3}, system {:.3}), \
         {threads_seen} threads, RSS {rss}, {per_s:.0} checks/s, {:.1} us CPU per check; \
         baseline (1000 blocking connect+close/s, one thread): {:.3} CPU s per s (user {:.3}, \
         system {:.3}), {:.1} us per connect; rvs/baseline {:.2}; rvs minus baseline {:.3} CPU s \
         per s; the listener's accepting thread (both): {:.3} CPU s per s (user {:.3}, system \
         {:.3}); softirq time of both CPUs {:.3} CPU s per s; {down} real server(s) out of the \
         table",
        loadavg(),
        rvs.total(),
        rvs.total() * 100.0,
        rvs.user,
        rvs.sys,
        rvs.total() / per_s * 1e6,
        base.total(),
        base.user,
        base.sys,
        base.total() / 1000.0 * 1e6,
        rvs.total() / base.total(),
        rvs.total() - base.total(),
        listener.total(),
        listener.user,
        listener.sys,
        softirq / wall_all,
    );
    assert_eq!(down, 0, "{}", h.log());
    drop(h);

    // Forwarding: without checks, with the bare loop's 1000 connects a
    // second, then with rvs health's checks, then with them at
    // keepalived's `checker_priority 10` (nice 10), `rounds` times.
    let niced = b.lab.dir().join("tcp-1000-nice.conf");
    std::fs::write(
        &niced,
        format!(
            "global_defs {{\n checker_priority 10\n}}\n{}",
            std::fs::read_to_string(&file).unwrap()
        ),
    )
    .unwrap();
    // `RVS_HEALTH_NICE=0` leaves the checker_priority 10 phase out (more
    // rounds in the same time for the main comparison).
    let niced_phase = std::env::var("RVS_HEALTH_NICE").map_or(true, |v| v != "0");
    let (mut without, mut with, mut bare, mut nice) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        std::thread::sleep(Duration::from_secs(1));
        let off = forwarding_rate(&b.lab, PHASE);
        let load_off = loadavg();
        let director = b.director.clone();
        let stand_in = std::thread::spawn(move || {
            let window = PHASE + Duration::from_millis(400);
            baseline_connects(&director, farm, BENCH_TCP_PORT, 1000, window)
        });
        let by_loop = forwarding_rate(&b.lab, PHASE);
        let (_, failed, _) = stand_in.join().expect("the bare loop");
        assert_eq!(failed, 0, "the bare loop's connects failed");
        let (h, pid) = b.health(&file, "64", &format!("tcp-1000-fwd{round}"));
        std::thread::sleep(Duration::from_secs(2));
        let ((cpu0, _), l0) = (cpu_and_threads(pid), b.listener_cpu());
        let t0 = Instant::now();
        let on = forwarding_rate(&b.lab, PHASE);
        let ((cpu1, _), l1) = (cpu_and_threads(pid), b.listener_cpu());
        assert!(alive(pid), "rvs health is gone (a zombie)\n{}", h.log());
        let wall = t0.elapsed().as_secs_f64();
        let (cpu, listener) = (cpu1.rate(cpu0, wall), l1.rate(l0, wall));
        assert_eq!(b.in_table(), 1000, "{}", h.log());
        drop(h);
        let load_on = loadavg();
        let (on_nice, cpu_nice) = if niced_phase {
            let (h, pid) = b.health(&niced, "64", &format!("tcp-1000-nice{round}"));
            std::thread::sleep(Duration::from_secs(2));
            let (cpu0, _) = cpu_and_threads(pid);
            let t0 = Instant::now();
            let on_nice = forwarding_rate(&b.lab, PHASE);
            let (cpu1, _) = cpu_and_threads(pid);
            assert!(alive(pid), "rvs health is gone (a zombie)\n{}", h.log());
            let cpu_nice = cpu1.rate(cpu0, t0.elapsed().as_secs_f64());
            assert_eq!(b.in_table(), 1000, "{}", h.log());
            drop(h);
            (on_nice, cpu_nice.total())
        } else {
            (f64::NAN, f64::NAN)
        };
        // Without checks again: the rounds' ratios are taken against the
        // mean of the phases without checks before and after (A-B-A), so
        // that a drift of the machine's pace over the round cancels.
        std::thread::sleep(Duration::from_secs(1));
        let off_after = forwarding_rate(&b.lab, PHASE);
        let off_mean = (off + off_after) / 2.0;
        eprintln!(
            "forwarding round {round}: without checks {off:.0} exchanges/s (load average \
             {load_off}), with the bare loop {by_loop:.0}, with rvs health {on:.0} (load average \
             {load_on}; rvs {:.3} CPU s/s meanwhile, the listener {:.3}), with rvs health at \
             checker_priority 10 {on_nice:.0} (rvs {cpu_nice:.3} CPU s/s), without checks \
             again {off_after:.0}; against the mean without: with {:.3}, bare loop {:.3}, \
             niced {:.3}; with/bare loop {:.3}",
            cpu.total(),
            listener.total(),
            on / off_mean,
            by_loop / off_mean,
            on_nice / off_mean,
            on / by_loop,
        );
        without.push(off_mean);
        with.push(on);
        bare.push(by_loop);
        nice.push(on_nice);
    }
    let ci = |a: &[f64], b: &[f64]| {
        let r: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
        let (m, h) = mean_ci95(&r);
        format!("{m:.3} ± {h:.3} ({:.3} to {:.3})", m - h, m + h)
    };
    eprintln!(
        "forwarding, means of the rounds' ratios with 95 % intervals (\"without\": the mean of a \
         round's phases without checks before and after): with the bare loop (1000 blocking \
         connect+close/s, the same servers) / without {}; with rvs health / with the bare loop \
         {}; with rvs health at checker_priority 10 / without {}; at checker_priority 10 / at \
         the default priority {}",
        ci(&bare, &without),
        ci(&with, &bare),
        if niced_phase {
            ci(&nice, &without)
        } else {
            "not run".into()
        },
        if niced_phase {
            ci(&nice, &with)
        } else {
            "not run".into()
        },
    );
    let (off, on) = (
        without.iter().sum::<f64>() / rounds as f64,
        with.iter().sum::<f64>() / rounds as f64,
    );
    let mut ratios: Vec<f64> = with.iter().zip(&without).map(|(a, b)| a / b).collect();
    let (mean, half) = mean_ci95(&ratios);
    ratios.sort_by(f64::total_cmp);
    eprintln!(
        "forwarding ({FWD_CONNS} ping-pong connections through the VIP, {rounds} × {} s each way): \
         without checks {off:.0} exchanges/s, with 1000 TCP_CHECKs {on:.0}; with/without {:.3} \
         ({:+.1} %), median of the rounds' ratios {:.3}, their mean {mean:.3} ± {half:.3} (95 % \
         confidence: {:.3} to {:.3})",
        PHASE.as_secs(),
        on / off,
        (on / off - 1.0) * 100.0,
        ratios[rounds / 2],
        mean - half,
        mean + half,
    );
}

/// A measurement (issue 16): what 1000 TCP_CHECKs a second cost
/// forwarding, in phases paired within one run of the forwarding load,
/// the real servers remote ([`Farm::Remote`]).
///
/// The rounds of [`tcp_check_cpu_and_forwarding`] start the ping-pong's
/// connections and threads, and `rvs health`, again for each phase: where
/// the scheduler happens to put those threads moves a phase's rate by
/// ±10 %, which leaves a 5 % question open after 100 rounds. Here one set
/// of `FWD_CONNS` ping-pong connections runs through the VIP for the whole
/// measurement, and one `rvs health` checks 1000 real servers whose
/// virtual servers (at 10.8.0.100, not the forwarding's VIP) have
/// keepalived's `ha_suspend`: the checks run while 10.8.0.100 is an
/// address of the director and pause while it is not (a VRRP backup's
/// state), each checker keeping its slot, so they resume spread over the
/// second, not in a burst. The address is added and removed in turn:
/// `RVS_HEALTH_PAIRS` (default 100) phases with the checks, each between
/// two phases without, of `RVS_HEALTH_PHASE_MS` (default 2000) each,
/// counted from 300 ms after the switch. Each phase with checks is
/// compared with the mean of its two neighbours without; the mean of
/// those ratios with its 95 % interval. rvs's CPU and the checks a second
/// (the replies the director receives) are shown for both kinds of phase:
/// paused, `rvs health` still wakes for each checker's slot.
#[test]
#[ignore = "a measurement (BENCHMARKS.md), not a check"]
fn netns_health_tcp_check_forwarding_paired_by_ha_suspend() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const SWITCH: &str = "10.8.0.100";
    const SETTLE: Duration = Duration::from_millis(300);
    const BOUND: u64 = 500_000_000;
    let env = |name: &str, default: u64, lo: u64, hi: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
            .clamp(lo, hi)
    };
    let pairs = env("RVS_HEALTH_PAIRS", 100, 4, 1000) as usize;
    let phase = Duration::from_millis(env("RVS_HEALTH_PHASE_MS", 2000, 500, 10_000));
    if !can_run() {
        return;
    }
    if Command::new("clang").arg("--version").output().is_err() {
        eprintln!("skipped: no clang to build tests/bpf/remote_servers.c");
        return;
    }
    let b = Bench::start(false, Farm::Remote);
    let addr = |on: bool| {
        let verb = if on { "add" } else { "del" };
        rvs_testsupport::ipn(&b.director, &format!("addr {verb} {SWITCH}/32 dev lo"));
    };
    addr(true);
    let file = b.conf_at(
        "tcp-1000-suspend",
        SWITCH.parse().unwrap(),
        " ha_suspend\n",
        |_| format!("TCP_CHECK {{\n connect_port {BENCH_TCP_PORT}\n connect_timeout 2\n }}"),
    );
    forwarding_service(&b.lab);
    let (h, pid) = b.health(&file, "64", "tcp-1000-suspend");
    std::thread::sleep(Duration::from_secs(2));
    eprintln!(
        "the real servers remote (an XDP responder on the test's own veth; no host setting \
         changed); {pairs} phases with 1000 TCP_CHECKs a second, each between two without \
         (ha_suspend, {SWITCH} removed), {} ms each; load average at the start: {}",
        phase.as_millis(),
        loadavg()
    );

    // One ping-pong load for the whole run, bounded in count and by
    // `stop`; each read bounded by 5 s.
    let (count, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let dst = SocketAddr::from((b.lab.vip, FWD_PORT));
    let load = {
        let (count, stop) = (Arc::clone(&count), Arc::clone(&stop));
        rvs_testsupport::spawn_in_netns(&b.lab.ns("client"), move || {
            pingpong(dst, &stop, &count, BOUND)
                .into_iter()
                .all(|t| t.join().unwrap_or(false))
        })
    };
    std::thread::sleep(Duration::from_secs(1));

    // (exchanges/s, rvs CPU s per s, checks/s) of one phase.
    let run_phase = |on: bool| -> (f64, f64, f64) {
        addr(on);
        std::thread::sleep(SETTLE);
        let (n0, (cpu0, _), (k0, _), t0) = (
            count.load(Ordering::Relaxed),
            cpu_and_threads(pid),
            b.seen(),
            Instant::now(),
        );
        std::thread::sleep(phase);
        let (n1, (cpu1, _), (k1, _)) = (
            count.load(Ordering::Relaxed),
            cpu_and_threads(pid),
            b.seen(),
        );
        let wall = t0.elapsed().as_secs_f64();
        assert!(n1 > n0, "the forwarding stopped\n{}", h.log());
        (
            (n1 - n0) as f64 / wall,
            cpu1.rate(cpu0, wall).total(),
            (k1 - k0) as f64 / wall,
        )
    };
    let mut off = vec![run_phase(false)];
    let mut on = Vec::new();
    for _ in 0..pairs {
        on.push(run_phase(true));
        off.push(run_phase(false));
    }
    stop.store(true, Ordering::Relaxed);
    let all_ok = load.join().expect("the ping-pong");
    assert!(all_ok, "a ping-pong connection failed");
    addr(true);
    assert!(alive(pid), "rvs health is gone (a zombie)\n{}", h.log());
    assert_eq!(b.in_table(), 1000, "{}", h.log());

    let ratios: Vec<f64> = on
        .iter()
        .enumerate()
        .map(|(i, p)| p.0 / ((off[i].0 + off[i + 1].0) / 2.0))
        .collect();
    let (mean, half) = mean_ci95(&ratios);
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    let avg = |v: &[(f64, f64, f64)], f: fn(&(f64, f64, f64)) -> f64| {
        v.iter().map(f).sum::<f64>() / v.len() as f64
    };
    let (on_checks, off_checks) = (avg(&on, |p| p.2), avg(&off, |p| p.2));
    eprintln!(
        "forwarding ({FWD_CONNS} ping-pong connections through the VIP, one load for the run, \
         {pairs} phases with checks of {} ms, load average {}): without checks {:.0} \
         exchanges/s (rvs {:.3} CPU s/s, paused; {:.0} checks/s), with 1000 TCP_CHECKs {:.0} \
         (rvs {:.3} CPU s/s; {:.0} checks/s); with/without: mean of the phases' ratios \
         {mean:.4} ± {half:.4} (95 % confidence: {:.4} to {:.4}; {:+.2} %), median {:.4}, \
         ratio of the means {:.4}",
        phase.as_millis(),
        loadavg(),
        avg(&off, |p| p.0),
        avg(&off, |p| p.1),
        off_checks,
        avg(&on, |p| p.0),
        avg(&on, |p| p.1),
        on_checks,
        mean - half,
        mean + half,
        (mean - 1.0) * 100.0,
        sorted[pairs / 2],
        avg(&on, |p| p.0) / avg(&off, |p| p.0),
    );
    assert!(
        on_checks > 900.0 && off_checks < 100.0,
        "ha_suspend did not switch the checks: {on_checks:.0}/s on, {off_checks:.0}/s off\n{}",
        h.log()
    );
}

/// `ha_suspend`: while none of the virtual server's addresses is on the
/// director (a VRRP backup's state), its checkers pause: a real server
/// that stopped stays in the table. The address added, the checkers run
/// again and the stopped server leaves; the address removed, they pause
/// again. A virtual server without ha_suspend is checked throughout.
#[test]
fn netns_health_ha_suspend_follows_the_address() {
    let Some(mut w) = setup("suspend") else {
        return;
    };
    let rips = w.lab.rips.clone();
    // An address of the lab's subnet that nothing holds yet.
    let o = w.lab.vip.octets();
    let vip2 = Ipv4Addr::new(o[0], o[1], o[2], 200);
    let reals: String = rips.iter().map(|&r| http_real(r, "")).collect();
    let conf = format!(
        "virtual_server {vip2} {PORT} {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  \
         protocol TCP\n  ha_suspend\n{reals}}}\n\
         virtual_server {vip2} 8081 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  \
         protocol TCP\n{}}}\n",
        http_real(rips[2], "")
            .replace(&format!("{} {PORT}", rips[2]), &format!("{} 8081", rips[2]))
    );
    let table = |w: &World, port: u16| {
        let out = w
            .lab
            .try_adm(&["-L", "-n", "-t", &format!("{vip2}:{port}")])
            .unwrap_or_default();
        let mut v: Vec<Ipv4Addr> = rs_lines(&out)
            .into_iter()
            .map(|(a, _)| a.split(':').next().unwrap().parse().unwrap())
            .collect();
        v.sort();
        v
    };
    let wait = |w: &World, port: u16, want: &[Ipv4Addr], bound: Duration, h: &Health| {
        let t0 = Instant::now();
        while table(w, port) != want {
            assert!(
                t0.elapsed() < bound,
                "VS {vip2}:{port} is {:?}, not {want:?}\n{}",
                table(w, port),
                h.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    w.stop_server(2);
    let h = w.health(&conf, "s");
    // Both services in, then port 8081, where nothing listens, checked:
    // its real server leaves.
    wait(&w, PORT, &rips, Duration::from_secs(5), &h);
    wait(&w, 8081, &[], DOWN_BOUND, &h);
    // VS :8080 is paused: rs3, stopped, stays.
    std::thread::sleep(DOWN_BOUND);
    assert_eq!(table(&w, PORT), rips, "{}", h.log());
    let rs3 = format!("[{}]:tcp:{PORT} for VS [{vip2}]:tcp:{PORT}", rips[2]);
    assert!(
        h.log()
            .contains(&format!("Deactivating healthchecker for service {rs3}")),
        "{}",
        h.log()
    );
    let show = w.show();
    assert!(show.contains("checkers suspended (ha_suspend"), "{show}");
    // The address on the director: checked, rs3 leaves.
    let director = w.lab.ns("director");
    // Followed through netlink: the checkers resume and pause within
    // well under the second the addresses were looked at before. Timed
    // from before `ip` starts to the log line (the log looked at every
    // 10 ms).
    let logged = |line: &str, h: &Health| {
        let t0 = Instant::now();
        while !h.log().contains(line) {
            assert!(t0.elapsed() < Duration::from_secs(3), "{line}\n{}", h.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let t0 = Instant::now();
    rvs_testsupport::ipn(&director, &format!("addr add {vip2}/32 dev lo"));
    logged(&format!("Activating healthchecker for service {rs3}"), &h);
    let took = t0.elapsed();
    eprintln!("ha_suspend: resumed {took:?} after `ip addr add`");
    assert!(took < Duration::from_millis(300), "resumed after {took:?}");
    wait(
        &w,
        PORT,
        &rips[..2],
        Duration::from_secs(1) + DOWN_BOUND,
        &h,
    );
    assert!(
        h.log()
            .contains(&format!("Activating healthchecker for service {rs3}"))
    );
    // And gone again: paused, rs3 back up would not be seen.
    let t0 = Instant::now();
    rvs_testsupport::ipn(&director, &format!("addr del {vip2}/32 dev lo"));
    logged(&format!("Suspending healthchecker for service {rs3}"), &h);
    let took = t0.elapsed();
    eprintln!("ha_suspend: paused {took:?} after `ip addr del`");
    assert!(took < Duration::from_millis(300), "paused after {took:?}");
    w.start_server(2);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(table(&w, PORT), rips[..2], "{}", h.log());
}
