//! A spoofed-SYN flood at a NAT service (issue #13): for 60 s, TCP SYNs
//! from random sources (172.16.0.0/12, random ports, each one a new
//! connection) at twice the rate rvsd's slow path forwards them, measured
//! first in the same run. While it lasts:
//!
//! * rvsd's resident memory levels off below a bound set by `--max-conns`
//!   ([`rss_bound_kib`], documented in the README);
//! * the engine's "table full" and "SYN_RECV evicted" counters rise, and
//!   the table never holds more than its bound;
//! * a real client that opens a connection every 250 ms (3 s connect
//!   timeout, so at most a few SYN retransmissions) gets through for at
//!   least half of them.
//!
//! The flood is sent with an AF_PACKET generator (rvs-bench's
//! `PacketGenerator`, 60-byte SYN frames, `sendmmsg`) from the client's
//! namespace, so it needs no live-frames test runs. `RVS_SYNFLOOD_SECS`
//! shortens the flood when iterating locally; CI runs the full 60 s.

#[path = "../../rvsd/tests/common/mod.rs"]
mod common;
use common::*;

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rvs_bench::trafficgen::{FRAME_LEN, PacketGenerator, syn_frame};

const PREFIX: &str = "rvsdf";

/// `--max-conns` of the rvsd under attack.
const MAX_CONNS: u64 = 65_536;

/// Distinct spoofed SYNs sent round robin: eight times the table, so that
/// every SYN the director sees is a new connection.
const FRAMES: usize = 8 * MAX_CONNS as usize;

/// The documented bound on rvsd's resident memory under a flood, in KiB:
/// what it holds before the flood, plus 2.5 KiB per entry of
/// `--max-conns` (the entry and its indexes, about 130 bytes, the SYN_RECV
/// queue, and above all the next hop of each spoofed NAT client, in the
/// engine and in the resolver, until pruned; see the README), plus 64 MiB
/// for the data plane's frame buffers (touched as traffic comes) and the
/// allocator's slack.
fn rss_bound_kib(before_kib: u64) -> u64 {
    before_kib + MAX_CONNS * 5 / 2 + 64 * 1024
}

/// A TCP server: accepts and answers "ok\n" to each connection.
const SERVER: &str = "
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4096)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b'ok\\n')
    except OSError:
        pass
    c.close()
";

fn flood_secs() -> u64 {
    std::env::var("RVS_SYNFLOOD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// xorshift64*: spoofed addresses and ports, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn parse_mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(s.split(':')) {
        *b = u8::from_str_radix(p, 16).expect("mac");
    }
    m
}

/// SYNs from random sources in 172.16.0.0/12 to the VIP, port 80.
fn syn_frames(client_mac: [u8; 6], director_mac: [u8; 6]) -> Vec<[u8; FRAME_LEN]> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    (0..FRAMES)
        .map(|_| {
            let r = rng.next();
            let host = (r as u32) & 0x000f_ffff;
            let src = (0xac10_0000u32 | host).to_be_bytes();
            let sport = 1024 + ((r >> 32) as u16 % 64_000);
            syn_frame(
                (client_mac, director_mac),
                (src, sport),
                ([10, 0, 1, 100], 80),
                (r >> 16) as u32,
            )
        })
        .collect()
}

/// The engine's counters of `rvs dataplane`.
struct Snapshot {
    conns: u64,
    table_full: u64,
    evicted: u64,
}

fn dataplane(ns: &str) -> (String, Snapshot) {
    let o = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(bin("rvs"))
        .arg("dataplane")
        .env_remove("RVS_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("rvs dataplane");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let num_after = |what: &str| -> u64 {
        text.split(what)
            .nth(1)
            .and_then(|r| {
                r.split(|c: char| !c.is_ascii_digit())
                    .find(|s| !s.is_empty())
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let snap = Snapshot {
        conns: num_after("engine: connections "),
        table_full: num_after("table full "),
        evicted: num_after("SYN_RECV evicted "),
    };
    (text, snap)
}

fn rss_kib(pid: u32) -> u64 {
    let mut s = String::new();
    File::open(format!("/proc/{pid}/status"))
        .and_then(|mut f| f.read_to_string(&mut s))
        .expect("rvsd status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

#[test]
fn netns_spoofed_syn_flood_at_a_nat_service() {
    require_root();
    let mut lab = Lab::new(PREFIX, "syn");
    let t = nat_topology(&mut lab);
    // Answers to the spoofed sources go back towards the client side.
    ipn(&t.director, "route add 172.16.0.0/12 via 10.0.1.1");
    lab.spawn(
        &t.rs1,
        "python3",
        &["-c", SERVER, "10.0.2.11", "8080"],
        Stdio::null(),
    );
    let max = MAX_CONNS.to_string();
    let idx = lab.start_rvsd(
        &t.director,
        Some("xdp"),
        &["eth0", "eth1"],
        &["--max-conns", &max],
    );
    let pid = lab.children[idx].id();
    lab.adm_lines(
        &t.director,
        "-A -t 10.0.1.100:80 -s rr
         -a -t 10.0.1.100:80 -r 10.0.2.11:8080 -m",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch(&t.client, "10.0.1.100", 80).as_deref() != Some("ok") {
        assert!(Instant::now() < deadline, "{}", lab.rvsd_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let before_kib = rss_kib(pid);

    let frames = syn_frames(
        parse_mac(&mac_of(&t.client, "eth0")),
        parse_mac(&mac_of(&t.director, "eth0")),
    );
    let frames = Arc::new(frames);

    // 1. Calibration: how many of the flood's SYNs the slow path forwards
    //    a second at most (new connections a second, each SYN's SYN-ACK
    //    forwarded back too): offered rates doubling from 5000/s, 1 s each,
    //    until it forwards less than 80% of what it is offered.
    let conns = |lab: &Lab| -> u64 {
        service_stats(
            &lab.adm_ok(&t.director, &["-L", "-n", "--stats"]),
            "10.0.1.100:80",
        )[0]
    };
    let mut slow_cps = 0.0f64;
    let mut offered = 5000u64;
    let mut steps = Vec::new();
    // One generator throughout: each step goes on with new frames (a frame
    // sent again would find its connection still there).
    let f = Arc::clone(&frames);
    let mut generator = Some(
        spawn_in_netns(&t.client, move || {
            PacketGenerator::from_frames("eth0", f.to_vec()).expect("generator")
        })
        .join()
        .expect("generator"),
    );
    loop {
        let c0 = conns(&lab);
        let mut g = generator.take().expect("generator");
        let (g, sent, secs) = std::thread::spawn(move || {
            g.pace(Some(offered));
            let (n0, t0) = (g.generated(), Instant::now());
            let until = t0 + Duration::from_secs(1);
            while Instant::now() < until {
                g.send(u64::MAX, until).expect("send");
            }
            let sent = g.generated() - n0;
            (g, sent, t0.elapsed().as_secs_f64())
        })
        .join()
        .expect("calibration");
        generator = Some(g);
        // What it still had queued goes through within a moment.
        std::thread::sleep(Duration::from_millis(200));
        let got = (conns(&lab) - c0) as f64 / secs;
        let sent_rate = sent as f64 / secs;
        steps.push((sent_rate as u64, got as u64));
        slow_cps = slow_cps.max(got);
        if got < 0.8 * sent_rate || offered >= 2_560_000 {
            break;
        }
        offered *= 2;
    }
    eprintln!("calibration (SYN/s offered, SYN/s forwarded): {steps:?}");
    assert!(
        slow_cps > 1000.0,
        "the slow path forwarded nothing: {steps:?}"
    );
    let slow_pps = slow_cps;
    let rate = (2.0 * slow_cps) as u64;

    // 2. The flood, a real client, and memory samples.
    let secs = flood_secs();
    let stop = Arc::new(AtomicBool::new(false));
    let mut g = generator.take().expect("generator");
    let flood = std::thread::spawn(move || {
        g.pace(Some(rate));
        let (n0, t0) = (g.generated(), Instant::now());
        let until = t0 + Duration::from_secs(secs);
        while Instant::now() < until {
            g.send(u64::MAX, until).expect("send");
        }
        (g.generated() - n0, t0.elapsed().as_secs_f64())
    });
    // Real clients: four, each opening one connection after the other
    // (10 s to connect: a few SYN retransmissions, as a browser waits).
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            spawn_in_netns(&t.client, move || {
                let vip: SocketAddr = "10.0.1.100:80".parse().expect("vip");
                let (mut tried, mut ok) = (0u32, 0u32);
                // Let the flood fill the table first.
                std::thread::sleep(Duration::from_secs(2));
                while !stop.load(Ordering::Relaxed) {
                    tried += 1;
                    if let Ok(mut s) = TcpStream::connect_timeout(&vip, Duration::from_secs(10)) {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut buf = [0u8; 3];
                        if s.read_exact(&mut buf).is_ok() && &buf == b"ok\n" {
                            ok += 1;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                (tried, ok)
            })
        })
        .collect();
    let mut samples = Vec::new();
    let t0 = Instant::now();
    let mut mid = None;
    while !flood.is_finished() {
        std::thread::sleep(Duration::from_secs(1));
        let rss = rss_kib(pid);
        samples.push((t0.elapsed().as_secs(), rss));
        if mid.is_none() && t0.elapsed() >= Duration::from_secs(secs / 2) {
            mid = Some(dataplane(&t.director).1);
        }
    }
    let (flooded, flood_secs) = flood.join().expect("flood");
    stop.store(true, Ordering::Relaxed);
    let (mut tried, mut ok) = (0, 0);
    for c in clients {
        let (t, o) = c.join().expect("client");
        tried += t;
        ok += o;
    }
    let (text, end) = dataplane(&t.director);
    let flood_pps = flooded as f64 / flood_secs;
    let ratio = flood_pps / slow_pps;
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let half = samples.len() / 2;
    let first_half_peak = samples[..half].iter().map(|s| s.1).max().unwrap_or(0);
    let second_half_peak = samples[half..].iter().map(|s| s.1).max().unwrap_or(0);
    eprintln!(
        "flood: {flooded} SYNs in {flood_secs:.1} s = {flood_pps:.0}/s = {ratio:.2}x the {slow_pps:.0} \
         SYN/s the slow path forwards at most; clients {ok}/{tried} connections; rvsd RSS {before_kib} KiB before, peak {peak} \
         KiB (first half {first_half_peak}, second half {second_half_peak}), bound {} KiB\n\
         RSS samples (s, KiB): {samples:?}\n{text}",
        rss_bound_kib(before_kib)
    );
    assert!(
        ratio >= 1.6,
        "the flood reached only {ratio:.2}x the slow path's rate"
    );
    assert!(
        peak <= rss_bound_kib(before_kib),
        "rvsd's RSS {peak} KiB passed the bound {} KiB",
        rss_bound_kib(before_kib)
    );
    assert!(
        second_half_peak <= first_half_peak + first_half_peak / 10 + 4096,
        "rvsd's RSS still grows: {first_half_peak} KiB then {second_half_peak} KiB"
    );
    let mid = mid.expect("a mid-flood sample");
    assert!(
        mid.table_full > 0 && end.table_full > mid.table_full,
        "table-full counter: {} mid-flood, {} at the end",
        mid.table_full,
        end.table_full
    );
    assert!(
        mid.evicted > 0 && end.evicted > mid.evicted,
        "eviction counter: {} mid-flood, {} at the end",
        mid.evicted,
        end.evicted
    );
    assert!(end.conns <= MAX_CONNS, "{} entries", end.conns);
    assert!(
        tried >= 4 && ok * 2 >= tried,
        "the real client got through for {ok} of {tried} connections"
    );
}
