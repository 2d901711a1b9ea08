// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived's BFD_CHECK in `rvs health run`, against a real BFD peer: a
//! kept `rvs lab dr` with two real servers; rs1 runs BIRD 2 with a BFD
//! session to the director (100 ms x 3), the director's `rvs health run`
//! follows it with a `bfd_instance` and a BFD_CHECK on rs1. The session
//! comes Up and rs1 is in the table; BIRD killed, rs1 leaves within the
//! detection time (300 ms) and a margin; BIRD started again, rs1 returns;
//! rs1's link set down and up again, the same; a SIGHUP keeps the session.
//! Also over IPv6 and multihop (BIRD), and against FRR's bfdd.
//!
//! Needs root, iproute2, BIRD 2 (`bird2`) and FRR (`frr`), both installed
//! by scripts/test.sh; without one its tests say so and skip, unless
//! `RVS_REQUIRE_BIRD` / `RVS_REQUIRE_FRR` is set.

mod common;

use common::*;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PORT: u16 = 8080;

/// Detection time (3 x 100 ms) plus what the table takes to follow: the
/// event to the scheduler, its change to rvsd, this test's 20 ms polls of
/// rvsadm, on a shared two-core machine.
const DOWN_BOUND: Duration = Duration::from_millis(300 + 1200);
/// The handshake at idle_tx (1 s) on both sides, plus BIRD's start.
const UP_BOUND: Duration = Duration::from_secs(8);

/// A child process killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Bfd {
    lab: Lab,
    dir: PathBuf,
}

impl Drop for Bfd {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Bfd {
    fn new(tag: &str) -> Bfd {
        let lab = Lab::start("dr", 2, "rr");
        let dir = std::env::temp_dir().join(format!("rvs-health-bfd-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Bfd { lab, dir }
    }

    /// BIRD in rs1 with a BFD session to `director`.
    fn bird(&self, director: Ipv4Addr) -> Proc {
        self.bird_in("rs1", &format!("neighbor {director};"))
    }

    /// BIRD in real server `rs` with BFD `neighbors` (100 ms x 3).
    fn bird_in(&self, rs: &str, neighbors: &str) -> Proc {
        let conf = self.dir.join(format!("bird-{rs}.conf"));
        let t = "min rx interval 100 ms; min tx interval 100 ms; multiplier 3;";
        std::fs::write(
            &conf,
            format!(
                "router id 10.255.0.1;\nprotocol device {{ scan time 1; }}\n\
                 protocol bfd {{ debug {{ states }}; interface \"*\" {{ {t} }}; \
                 multihop {{ {t} }}; {neighbors} }}\n"
            ),
        )
        .unwrap();
        let sock = self.dir.join(format!("bird-{rs}.ctl"));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.lab.ns(rs), "bird", "-f", "-c"])
            .arg(&conf)
            .arg("-s")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join(format!("bird-{rs}.log"))).unwrap())
            .spawn()
            .expect("bird");
        Proc(child)
    }

    fn health(&self, conf: &str) -> (Proc, PathBuf) {
        let file = self.dir.join("keepalived.conf");
        std::fs::write(&file, conf).unwrap();
        let log = self.dir.join("health.log");
        let state = self.dir.join("health.json");
        let child = health_run(&self.lab.ns("director"), &file, &state, &log, &[]);
        (Proc(child), log)
    }

    fn show(&self) -> String {
        let o = Command::new(RVS)
            .args(["health", "show", "--state"])
            .arg(self.dir.join("health.json"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `rvs health show` once `done` says so, or after 5 s.
    fn show_until(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = self.show();
            if done(&s) || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn table(&self) -> Option<Vec<Ipv4Addr>> {
        let out = self
            .lab
            .try_adm(&["-L", "-n", "-t", &self.lab.vip_port(PORT)])
            .ok()?;
        let mut v: Vec<Ipv4Addr> = rs_lines(&out)
            .into_iter()
            .map(|(a, _)| a.split(':').next().unwrap().parse().unwrap())
            .collect();
        v.sort();
        Some(v)
    }

    /// Wait until the table is `want`; how long it took.
    fn wait(&self, want: &[Ipv4Addr], bound: Duration, log: &PathBuf) -> Duration {
        let t0 = Instant::now();
        loop {
            let got = self.table();
            if got.as_deref() == Some(want) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < bound,
                "after {:?} the table is {got:?}, not {want:?}\nrvs health log:\n{}\nBIRD logs:\n{}{}",
                t0.elapsed(),
                std::fs::read_to_string(log).unwrap_or_default(),
                std::fs::read_to_string(self.dir.join("bird-rs1.log")).unwrap_or_default(),
                std::fs::read_to_string(self.dir.join("bird-rs2.log")).unwrap_or_default(),
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The device of namespace `ns` towards `to`.
fn dev_towards(ns: &str, to: &str) -> String {
    let route = sh(&["ip", "-n", ns, "route", "get", to]);
    route
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .unwrap_or_else(|| panic!("no dev in {route}"))
        .to_string()
}

/// The director's source address towards `rip`.
fn source_towards(lab: &Lab, rip: Ipv4Addr) -> Ipv4Addr {
    let ns = lab.ns("director");
    let out = sh(&["ip", "-n", &ns, "-4", "route", "get", &rip.to_string()]);
    out.split_whitespace()
        .skip_while(|w| *w != "src")
        .nth(1)
        .unwrap_or_else(|| panic!("no src in {out}"))
        .parse()
        .unwrap()
}

#[test]
fn netns_health_bfd_check_follows_a_bird_session() {
    if !can_run_with(&[]) || !bird_runs() {
        return;
    }
    let t = Bfd::new("v4");
    let (rs1, rs2) = (t.lab.rips[0], t.lab.rips[1]);
    let director = source_towards(&t.lab, rs1);
    let mut bird = Some(t.bird(director));
    let conf = format!(
        "bfd_instance rs1 {{\n  neighbor_ip {rs1}\n  min_rx 100\n  min_tx 100\n  multiplier 3\n}}\n\
         virtual_server {} {PORT} {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
         \x20 real_server {rs1} {PORT} {{\n    BFD_CHECK {{\n      name rs1\n    }}\n  }}\n\
         \x20 real_server {rs2} {PORT} {{\n  }}\n}}\n",
        t.lab.vip
    );
    let (health, log) = t.health(&conf);
    let both = [rs1, rs2];
    // rs2 (no checker) at once; rs1 once the session is Up.
    let took = t.wait(&both, UP_BOUND, &log);
    eprintln!("session Up, rs1 in the table after {took:?}");
    let show = t.show_until(|s| s.contains("session Up (detection 300 ms)"));
    assert!(
        show.contains("BFD_CHECK") && show.contains("session Up (detection 300 ms)"),
        "{show}"
    );

    // BIRD killed: no more packets; rs1 leaves within the detection time.
    let mut b = bird.take().unwrap();
    b.0.kill().unwrap();
    b.0.wait().unwrap();
    let took = t.wait(&[rs2], DOWN_BOUND, &log);
    eprintln!("BIRD killed: rs1 left the table after {took:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(
            "(rs1) Entering Down state (Local diagnostic - Control Detection Time Expired"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "BFD check of [rs1] RS([{rs1}]:tcp:{PORT}) is DOWN"
        )),
        "{text}"
    );

    // BIRD again: rs1 returns.
    bird = Some(t.bird(director));
    let took = t.wait(&both, UP_BOUND, &log);
    eprintln!("BIRD restarted: rs1 back after {took:?}");

    // rs1's link down: the same.
    let ns = t.lab.ns("rs1");
    let dev = dev_towards(&ns, &director.to_string());
    sh(&["ip", "-n", &ns, "link", "set", &dev, "down"]);
    let took = t.wait(&[rs2], DOWN_BOUND, &log);
    eprintln!("link down: rs1 left the table after {took:?}");
    sh(&["ip", "-n", &ns, "link", "set", &dev, "up"]);
    let took = t.wait(&both, UP_BOUND, &log);
    eprintln!("link up: rs1 back after {took:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("BFD check of [rs1] RS([{rs1}]:tcp:{PORT}) is UP")),
        "{text}"
    );

    // SIGHUP with the same file: the session keeps running, rs1 stays.
    let downs = text.matches("Entering Down").count();
    sh(&["kill", "-HUP", &health.0.id().to_string()]);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        assert_eq!(t.table().as_deref(), Some(&both[..]), "after SIGHUP");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("Reloaded: 1 virtual server(s), 2 real server(s) keep their state"),
        "{text}"
    );
    assert_eq!(text.matches("Entering Down").count(), downs, "{text}");
    eprintln!("rvs health log:\n{text}");
    drop(bird);
}

/// An IPv6 single-hop session with a `source_ip` (hop limit 255 both ways,
/// the destination address checked) and an IPv4 multihop one (port 4784;
/// BIRD sends it with TTL 64, which `max_hops 191` lets in: without it
/// the packets are dropped, as keepalived drops them), each followed by a
/// real server; each peer killed takes its own out.
#[test]
fn netns_health_bfd_ipv6_and_multihop() {
    if !can_run_with(&[]) || !bird_runs() {
        return;
    }
    let t = Bfd::new("v6mh");
    let (rs1, rs2) = (t.lab.rips[0], t.lab.rips[1]);
    let director = source_towards(&t.lab, rs1);
    // IPv6 on the director's link to rs1.
    let (dns, rns) = (t.lab.ns("director"), t.lab.ns("rs1"));
    let ddev = dev_towards(&dns, &rs1.to_string());
    let rdev = dev_towards(&rns, &director.to_string());
    sh(&[
        "ip",
        "-n",
        &dns,
        "addr",
        "add",
        "fd00:bfd::1/64",
        "dev",
        &ddev,
        "nodad",
    ]);
    sh(&[
        "ip",
        "-n",
        &rns,
        "addr",
        "add",
        "fd00:bfd::2/64",
        "dev",
        &rdev,
        "nodad",
    ]);
    let _b1 = t.bird_in("rs1", "neighbor fd00:bfd::1;");
    let _b2 = t.bird_in(
        "rs2",
        &format!("neighbor {director} local {rs2} multihop yes;"),
    );
    let conf = format!(
        "bfd_instance six {{\n  neighbor_ip fd00:bfd::2\n  source_ip fd00:bfd::1\n  min_rx 100\n  min_tx 100\n  multiplier 3\n}}\n\
         bfd_instance mh {{\n  neighbor_ip {rs2}\n  multihop\n  max_hops 191\n  min_rx 100\n  min_tx 100\n  multiplier 3\n}}\n\
         virtual_server {} {PORT} {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
         \x20 real_server {rs1} {PORT} {{\n    BFD_CHECK {{\n      name six\n    }}\n  }}\n\
         \x20 real_server {rs2} {PORT} {{\n    BFD_CHECK {{\n      name mh\n    }}\n  }}\n}}\n",
        t.lab.vip
    );
    let (_health, log) = t.health(&conf);
    let took = t.wait(&[rs1, rs2], UP_BOUND, &log);
    eprintln!("both sessions Up after {took:?}");
    // Up here may come before the peer's poll to 100 ms: until then the
    // detection time is 3 x its idle 1 s.
    let show = t.show_until(|s| s.matches("session Up (detection 300 ms)").count() == 2);
    assert_eq!(
        show.matches("session Up (detection 300 ms)").count(),
        2,
        "{show}"
    );
    drop(_b2);
    let took = t.wait(&[rs1], DOWN_BOUND, &log);
    eprintln!("multihop peer killed: rs2 left after {took:?}");
    drop(_b1);
    let took = t.wait(&[], DOWN_BOUND, &log);
    eprintln!("IPv6 peer killed: rs1 left after {took:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    for name in ["six", "mh"] {
        assert!(
            text.contains(&format!("({name}) Entering Up state")),
            "{text}"
        );
        assert!(
            text.contains(&format!("({name}) Entering Down state")),
            "{text}"
        );
    }
}

/// FRR's daemons as Debian installs them.
const FRR_DIR: &str = "/usr/lib/frr";

/// The same against FRR's bfdd (with zebra, configured through vtysh):
/// the session comes Up, bfdd killed takes rs1 out.
#[test]
fn netns_health_bfd_against_frr_bfdd() {
    if !can_run_with(&[]) || !frr_runs(&["zebra", "bfdd"]) {
        return;
    }
    let t = Bfd::new("frr");
    let rs1 = t.lab.rips[0];
    let director = source_towards(&t.lab, rs1);
    let ns = t.lab.ns("rs1");
    let run = t.dir.join("frr");
    std::fs::create_dir_all(&run).unwrap();
    sh(&["chown", "frr:frr", run.to_str().unwrap()]);
    let empty = t.dir.join("empty.conf");
    std::fs::write(&empty, "").unwrap();
    let zserv = run.join("zserv.api");
    let mut daemons = Vec::new();
    for d in ["zebra", "bfdd"] {
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, &format!("{FRR_DIR}/{d}"), "-f"])
            .arg(&empty)
            .arg("-i")
            .arg(run.join(format!("{d}.pid")))
            .arg("--vty_socket")
            .arg(&run)
            .arg("-z")
            .arg(&zserv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(t.dir.join(format!("{d}.log"))).unwrap())
            .spawn()
            .expect("FRR");
        daemons.push(Proc(child));
        let sock = run.join(format!("{d}.vty"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "FRR's {d} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let conf = t.dir.join("frr.conf");
    std::fs::write(
        &conf,
        format!(
            "bfd\n peer {director}\n  receive-interval 100\n  transmit-interval 100\n  \
             detect-multiplier 3\n  no shutdown\n exit\n!\n"
        ),
    )
    .unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, "vtysh", "--vty_socket"])
        .arg(&run)
        .arg("-f")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "vtysh: {out:?}");
    let conf = format!(
        "bfd_instance frr {{\n  neighbor_ip {rs1}\n  min_rx 100\n  min_tx 100\n  multiplier 3\n}}\n\
         virtual_server {} {PORT} {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
         \x20 real_server {rs1} {PORT} {{\n    BFD_CHECK {{\n      name frr\n    }}\n  }}\n}}\n",
        t.lab.vip
    );
    let (_health, log) = t.health(&conf);
    let took = t.wait(&[rs1], UP_BOUND, &log);
    eprintln!("session with bfdd Up after {took:?}");
    let show = t.show_until(|s| s.contains("session Up (detection 300 ms)"));
    assert!(show.contains("session Up (detection 300 ms)"), "{show}");
    // bfdd killed (SIGKILL: no AdminDown sent).
    let mut bfdd = daemons.pop().unwrap();
    bfdd.0.kill().unwrap();
    bfdd.0.wait().unwrap();
    let took = t.wait(&[], DOWN_BOUND, &log);
    eprintln!("bfdd killed: rs1 left the table after {took:?}");
}
