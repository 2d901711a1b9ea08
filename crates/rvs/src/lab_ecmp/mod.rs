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
//!   vip`); with `--speaker frr`, FRR (zebra, staticd, bgpd, bfdd,
//!   `dist/bgp/frr-director.conf`) instead, `rvs announce` adding and
//!   removing bgpd's `network VIP/32` with `vtysh`.
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
//! connections were lost and whether new requests succeed; around (1),
//! (2) and (3) every long-lived connection sends a line every 100 ms and
//! waits for its echo, and the longest gap between two answers is reported
//! (`pauses, …`) for the connections the failed director carried and for
//! the others, and for control connections from the client to the real
//! servers' own addresses (no director on their path: what they stand
//! still is the loaded machine's, not the failover's). `--bench S`
//! measures requests/s for S seconds at each stage (N, N-1, … directors).
//!
//! # Files
//!
//! * this file: the options, the lab's namespaces and processes (torn
//!   down on drop) and [`run`];
//! * `setup.rs`: the BIRD configurations and the topology, then the
//!   requests and the report;
//! * `observe.rs`: what the client and the router see (next hops, requests,
//!   long-lived connections, request rates);
//! * `failover.rs`: the `--failover` phases and their report.

use crate::child::sibling;
use crate::lab::PREFIX;
use crate::netns::{in_ns, remove_ns, run_cmd};
use std::fs::File;
use std::io::BufReader;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod failover;
mod observe;
mod setup;

use setup::build_and_run;

const VIP: &str = "10.6.9.100";
/// The client's address (its flows reach the directors unchanged).
const CLIENT_IP: &str = "10.6.1.2";
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
    /// The directors' BGP speaker (the router runs BIRD either way).
    pub speaker: Speaker,
}

/// The directors' BGP speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// BIRD 2: one `bird` per director, `birdc enable/disable vip`.
    Bird,
    /// FRR: zebra, staticd, bgpd and bfdd per director with their own
    /// sockets and pid files, configured from `dist/bgp/frr-director.conf`;
    /// `vtysh … network VIP/32` (in bgpd's IPv4 unicast family)
    /// announces, `no network …` withdraws.
    Frr,
}

impl Speaker {
    /// `bird` or `frr`.
    pub fn parse(s: &str) -> Result<Speaker, String> {
        match s {
            "bird" => Ok(Speaker::Bird),
            "frr" => Ok(Speaker::Frr),
            _ => Err(format!("--speaker: {s:?} is neither bird nor frr")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Speaker::Bird => "BIRD",
            Speaker::Frr => "FRR",
        }
    }
}

/// Where Debian's frr package puts its daemons.
const FRR_DIR: &str = "/usr/lib/frr";

struct Director {
    ns: String,
    ip: String,
    rvsd: Option<Child>,
    /// BIRD, or FRR's daemons (zebra first).
    speaker: Vec<Child>,
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
            for c in [&mut d.announce, &mut d.rvsd].into_iter().flatten() {
                crate::child::stop(c);
            }
            for c in d.speaker.iter_mut().rev() {
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

    /// A BGP speaker's process, under [`SPEAKER_SCHED`], its log's times
    /// in UTC (the lab reads when the router's BFD expired a session).
    fn spawn_speaker(&self, ns: &str, args: &[&str], log: &str) -> Result<Child, String> {
        let v: Vec<&str> = ["env", "TZ=UTC"]
            .iter()
            .chain(&SPEAKER_SCHED)
            .chain(args)
            .copied()
            .collect();
        self.spawn(ns, &v, log)
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

/// How the BGP speakers run (the router's BIRD, each director's BIRD or
/// FRR daemons): with a real-time policy (`chrt --rr`), as one runs a BFD
/// daemon on a busy host (systemd: `dist/bgp/speaker-realtime.conf`).
/// BFD (100 ms x 3) declares a peer dead after 300 ms without its packets,
/// and an ordinary process waits far longer for a CPU on this 2-core
/// machine under load: a probe sleeping 10 ms in a loop overslept by up to
/// 1.9 s at nice 0 (1.8 s at nice -10) at load 30-75, by 2 ms at most under
/// `chrt`. A starved speaker sends no BFD packet, so its peers expire it,
/// and once it runs again finds every session's detection time passed: the
/// router's BIRD expired all four directors in the same millisecond (the
/// flakiness of the lab under load: the router lost several sessions at
/// once), the directors' BIRD expired the router and sent it a Cease; BIRD
/// then holds the session down for its error wait (60 s). With this, 0
/// spurious expiries at load 40-95 (BENCHMARKS.md, issue 18). The speakers
/// use little CPU, and the kernel keeps 5 % of it for the others
/// (`sched_rt_runtime_us`).
const SPEAKER_SCHED: [&str; 3] = ["chrt", "--rr", "10"];

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

/// A long-lived connection of the client.
struct Conn {
    port: u16,
    r: BufReader<TcpStream>,
    w: TcpStream,
    lost: Option<String>,
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
    if o.speaker == Speaker::Frr {
        for prog in [
            format!("{FRR_DIR}/zebra"),
            format!("{FRR_DIR}/bgpd"),
            "vtysh".to_string(),
        ] {
            if Command::new(&prog)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
            {
                return Err(format!(
                    "FRR not available ({prog}): install frr (apt-get install --no-install-recommends frr)"
                ));
            }
        }
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
    // A failure after the start: the last lines of the router's BIRD
    // (sessions lost? BFD expired?), of each director's `rvs announce`
    // (withdrawn, and why?) and of its BFD (BIRD, or FRR's bfdd: did it
    // expire the router?).
    res.map_err(|mut e| {
        let tail = |name: &str, n: usize| {
            let log = std::fs::read_to_string(lab.dir.join(name)).unwrap_or_default();
            let v: Vec<&str> = log.lines().collect();
            v[v.len().saturating_sub(n)..].join("\n")
        };
        e.push_str(&format!(
            "\n--- router BIRD:\n{}",
            tail("router-bird.log", 40)
        ));
        for i in 1..=o.directors {
            let log = format!("d{i}-announce.log");
            e.push_str(&format!("\n--- d{i} rvs announce:\n{}", tail(&log, 5)));
            let bfd = match o.speaker {
                Speaker::Bird => format!("d{i}-bird.log"),
                Speaker::Frr => format!("d{i}-bfdd.log"),
            };
            e.push_str(&format!("\n--- d{i} {bfd}:\n{}", tail(&bfd, 8)));
        }
        e
    })
}
