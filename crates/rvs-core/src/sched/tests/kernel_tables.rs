//! `mh` and `sh` tables against an independent generator of the kernel's
//! algorithm: `scripts/ipvs_hash_tables.py` (Python, standard library only,
//! written from `ip_vs_mh.c`, `ip_vs_sh.c` and `lib/siphash.c`; it shares no
//! code with rvs). For each case — 2 to 5 real servers, IPv4 and IPv6,
//! varied ports, weights (0 when added, quiesced to 0 later, large ones
//! that are shifted), list orders — every one of the 4093 (`mh`) or 256
//! (`sh`) slots must name the same server, and so must the pick for a set
//! of clients, with and without the `-fallback` and `-port` flags.
//!
//! Needs `python3`; without it the test fails (set `RVS_SKIP_PYTHON=1` to
//! skip it on a host that has none).

// A test, not the engine: it runs the generator as a child process.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

use core::fmt::Write as _;
use core::net::IpAddr;
use std::io::Write as _;
use std::process::{Command, Stdio};

use super::mh::{Maglev, TABLE_SIZE};
use super::sh::SourceHash;
use super::{DestChange, SCHED_FLAG1, SCHED_FLAG2, SchedInput, Scheduler};
use crate::dest::{Dest, DestConfig, DestId};
use crate::time::Instant;

/// One case: the scheduler, the list (kernel order, newest first) as
/// (address, port, weight history) and the flags.
struct Case {
    sched: &'static str,
    dests: Vec<(IpAddr, u16, Vec<u32>)>,
    fallback: bool,
    port: bool,
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A small deterministic generator (xorshift), so the cases are varied but
/// the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let v4 = |i: u64| addr(&format!("10.{}.{}.{}", i % 7, (i * 37) % 256, 1 + i % 250));
    let v6 = |i: u64| {
        addr(&format!(
            "2001:db8:{:x}::{:x}:{:x}",
            i % 97,
            i >> 16,
            1 + (i & 0xfffe)
        ))
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for sched in ["mh", "sh"] {
        for n in 2..=5u64 {
            for variant in 0..8u64 {
                let six = variant % 2 == 1;
                let dests = (0..n)
                    .map(|k| {
                        let id = rng.below(100_000);
                        let a = if six { v6(id) } else { v4(id) };
                        let port = match variant % 4 {
                            0 | 1 => 80,
                            2 => 0,
                            _ => 1024 + rng.below(60_000) as u16,
                        };
                        // Weight histories: plain, large (shifted by mh),
                        // added at 0, quiesced to 0 later, re-weighted.
                        let w = match (variant + k) % 6 {
                            0 => vec![1],
                            1 => vec![1 + rng.below(10) as u32],
                            2 => vec![100 + rng.below(5000) as u32],
                            3 => vec![0],
                            4 => vec![1 + rng.below(8) as u32, 0],
                            _ => vec![3, 0, 5 + rng.below(3) as u32],
                        };
                        (a, port, w)
                    })
                    .collect::<Vec<_>>();
                out.push(Case {
                    sched,
                    dests: dests.clone(),
                    fallback: variant % 3 == 0,
                    port: variant % 4 >= 2,
                });
                // The same servers in another order: the table depends on it.
                let mut rev = dests;
                rev.rotate_left(1);
                rev.reverse();
                out.push(Case {
                    sched,
                    dests: rev,
                    fallback: variant % 3 != 0,
                    port: variant % 4 < 2,
                });
            }
        }
        // Corner cases: all quiesced (mh: table kept, picks fail), all added
        // at 0 (mh: empty table), a huge weight beside a small one.
        let a = |s: &str| addr(s);
        out.push(Case {
            sched,
            dests: vec![
                (a("10.0.0.1"), 80, vec![2, 0]),
                (a("10.0.0.2"), 80, vec![4, 0]),
            ],
            fallback: true,
            port: false,
        });
        out.push(Case {
            sched,
            dests: vec![(a("10.0.0.1"), 80, vec![0]), (a("10.0.0.2"), 80, vec![0])],
            fallback: false,
            port: false,
        });
        out.push(Case {
            sched,
            dests: vec![
                (a("192.168.1.10"), 8080, vec![65_535]),
                (a("192.168.1.11"), 8080, vec![1]),
                (a("2001:db8::7"), 443, vec![300]),
            ],
            fallback: true,
            port: true,
        });
    }
    out
}

fn clients() -> Vec<(IpAddr, u16)> {
    let mut rng = Rng(12345);
    (0..64)
        .map(|i| {
            let a = if i % 4 == 3 {
                addr(&format!("2001:db8:ff::{:x}", rng.below(1 << 16)))
            } else {
                IpAddr::V4(core::net::Ipv4Addr::from(rng.next() as u32))
            };
            (a, 1024 + rng.below(64_000) as u16)
        })
        .collect()
}

fn to_json(cases: &[Case], clients: &[(IpAddr, u16)]) -> String {
    let mut s = String::from("{\"cases\":[");
    for (i, c) in cases.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        write!(s, "{{\"sched\":\"{}\",\"dests\":[", c.sched).unwrap();
        for (j, (a, p, w)) in c.dests.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            let w: Vec<String> = w.iter().map(u32::to_string).collect();
            write!(
                s,
                "{{\"addr\":\"{a}\",\"port\":{p},\"weights\":[{}]}}",
                w.join(",")
            )
            .unwrap();
        }
        s.push_str("],\"clients\":[");
        for (j, (a, p)) in clients.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            write!(s, "[\"{a}\",{p}]").unwrap();
        }
        write!(
            s,
            "],\"flags\":{{\"fallback\":{},\"port\":{}}}}}",
            c.fallback, c.port
        )
        .unwrap();
    }
    s.push_str("]}");
    s
}

fn parse(line: &str, tag: &str) -> Vec<Option<usize>> {
    let rest = line
        .strip_prefix(tag)
        .unwrap_or_else(|| panic!("expected {tag}: {line:.40}"));
    rest.split_whitespace()
        .map(|t| (t != "-").then(|| t.parse().unwrap()))
        .collect()
}

/// Run the generator; `None` when python3 is missing and skipping is allowed.
fn generate(input: &str) -> Option<String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/ipvs_hash_tables.py"
    );
    let child = Command::new("python3")
        .arg(script)
        .arg("--lines")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("RVS_SKIP_PYTHON").is_some() => {
            eprintln!("skipped: python3: {e}");
            return None;
        }
        Err(e) => panic!("python3 (set RVS_SKIP_PYTHON=1 to skip): {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "generator failed");
    Some(String::from_utf8(out.stdout).unwrap())
}

/// The list as the service code keeps it: each dest added with its first
/// weight, then edited with each later one (`-e`), ids by position.
fn build(c: &Case) -> Vec<Dest> {
    c.dests
        .iter()
        .enumerate()
        .map(|(i, (a, p, w))| {
            let cfg = DestConfig {
                weight: w[0],
                ..DestConfig::new(*a, *p)
            };
            let mut d = Dest::new(DestId(i as u32 + 1), &cfg);
            for &later in &w[1..] {
                d.apply_config(&DestConfig {
                    weight: later,
                    ..d.config()
                });
            }
            d
        })
        .collect()
}

#[test]
fn mh_and_sh_tables_equal_the_independent_generator() {
    let cases = cases();
    let clients = clients();
    let Some(text) = generate(&to_json(&cases, &clients)) else {
        return;
    };
    let mut lines = text.lines();
    let (mut mh_cases, mut sh_cases) = (0, 0);
    for (n, c) in cases.iter().enumerate() {
        let want_table = parse(lines.next().expect("table line"), "table ");
        let want_picks = parse(lines.next().expect("picks line"), "picks ");
        let dests = build(c);
        let (mut s, got_table): (Box<dyn Scheduler>, Vec<Option<usize>>) = if c.sched == "mh" {
            mh_cases += 1;
            let mut m = Maglev::default();
            m.update(&dests, DestChange::Init).unwrap();
            let t = m.slots();
            assert_eq!(t.len(), TABLE_SIZE);
            (Box::new(m), t)
        } else {
            sh_cases += 1;
            let mut h = SourceHash::default();
            h.update(&dests, DestChange::Init).unwrap();
            let t = h.slots();
            (Box::new(h), t)
        };
        let ctx = || {
            format!(
                "case {n} ({}, fallback {}, port {}): {:?}",
                c.sched, c.fallback, c.port, c.dests
            )
        };
        assert_eq!(got_table.len(), want_table.len(), "{}", ctx());
        if let Some(slot) = (0..want_table.len()).find(|&k| got_table[k] != want_table[k]) {
            panic!(
                "{}: slot {slot}: rvs {:?}, kernel {:?}",
                ctx(),
                got_table[slot],
                want_table[slot]
            );
        }
        let flags = if c.fallback { SCHED_FLAG1 } else { 0 } | if c.port { SCHED_FLAG2 } else { 0 };
        for (k, &(saddr, sport)) in clients.iter().enumerate() {
            let inp = SchedInput {
                saddr,
                sport,
                daddr: addr("198.51.100.1"),
                dport: 80,
                proto: 6,
                svc_flags: flags,
                now: Instant::ZERO,
            };
            assert_eq!(
                s.schedule(&dests, &inp),
                want_picks[k],
                "{}: client {saddr}:{sport}",
                ctx()
            );
        }
    }
    assert!(mh_cases >= 60 && sh_cases >= 60, "{mh_cases} {sh_cases}");
}
