//! A measurement, not a check (run it by name with `--ignored`): forwarding
//! while `rvsadm -L -c` lists a million connections (issue 14). rvsd takes
//! 1 000 000 connections from a `--conn-state` file at start, then 8 TCP
//! connections exchange lines through it as fast as they can (the slow
//! path: `--fast-path off`), all along, counted in slots of 2 s: alone,
//! then 6 times a slot while another client lists the table in a loop (a
//! listing under way at the slot's end is killed) and a slot alone; each
//! listing slot is set against the mean of the alone slots around it (so
//! that the other work on a shared host, which drifts, weighs on both),
//! and the median of those ratios is the figure. By default the built
//! binaries, rvsadm's way (`Request::ListConnsPacked`) and the whole table
//! in one reply (RVSADM_LIST_WHOLE, a debug-build hook: the way before the
//! parts). `RVS_LISTING_BINS=label=DIR,label=DIR…` compares builds instead
//! (each DIR holds an rvsd and an rvsadm: a release build, an older
//! commit's; `label=DIR;VAR=VALUE` sets rvsadm's VAR as well), `RVS_LISTING_ROUNDS=N` repeats them, alternately. Besides
//! the exchanges, the memory each side needs for a listing: rvsd's peak
//! RSS over its RSS before the listings, and rvsadm's peak RSS.

mod common;
mod conn_state;
use conn_state::conn_state_file;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;

const VIP: &str = "10.0.0.100";
const PORT: u16 = 8080;
const TABLE: u32 = 1_000_000;
const CONNS: usize = 8;
const SECONDS: u64 = 3;

fn state_file(path: &std::path::Path) {
    conn_state_file(path, TABLE, PORT);
}

/// One director (10.0.0.2, the VIP on `lo`) in front of one DR real
/// server (10.0.0.11) running a line echo on `PORT`: (client, director).
fn director_with_echo(lab: &mut Lab) -> (String, String) {
    let (_sw, client, director, rs1) = one_segment_base(lab, 1);
    lab.vip_on_lo(&rs1, &format!("{VIP}/32"));
    spawn_in_netns(&rs1, || {
        let l = TcpListener::bind(("0.0.0.0", PORT)).expect("bind");
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                s.set_nodelay(true).ok();
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
    (client, director)
}

/// A thread with one connection to the VIP exchanging lines as fast as it
/// can until `stop`, calling `done` with each exchange's time (µs).
fn ping_pong(
    stop: Arc<AtomicBool>,
    done: impl Fn(u64) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let s = TcpStream::connect((VIP, PORT)).expect("connect");
        s.set_nodelay(true).ok();
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut w = s.try_clone().expect("clone");
        let mut r = BufReader::new(s);
        let mut line = String::new();
        while !stop.load(Ordering::Relaxed) {
            line.clear();
            let t = Instant::now();
            if writeln!(w, "ping").is_err() || r.read_line(&mut line).is_err() {
                return;
            }
            done(t.elapsed().as_micros() as u64);
        }
    })
}

/// Exchanges per second of `CONNS` ping-pong connections for `SECONDS`,
/// and the longest exchange (µs).
fn rate(client: &str, during: impl FnOnce() + Send + 'static) -> (f64, u64) {
    let count = Arc::new(AtomicU64::new(0));
    let worst = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&count);
    let wst = Arc::clone(&worst);
    in_netns(client, move || {
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..CONNS)
            .map(|_| {
                let (stop, c, wst) = (Arc::clone(&stop), Arc::clone(&c), Arc::clone(&wst));
                ping_pong(stop, move |micros| {
                    if c.load(Ordering::Relaxed) > CONNS as u64 * 10 {
                        wst.fetch_max(micros, Ordering::Relaxed);
                    }
                    c.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        during();
        std::thread::sleep(Duration::from_millis(SECONDS * 1000 - 500));
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
    });
    (
        count.load(Ordering::Relaxed) as f64 / SECONDS as f64,
        worst.load(Ordering::Relaxed),
    )
}

/// A `VmRSS`/`VmHWM`-like field of /proc/PID/status, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The binaries of a run.
struct Bins {
    label: String,
    rvsd: PathBuf,
    rvsadm: PathBuf,
    /// rvsadm asks for the whole table in one reply (RVSADM_LIST_WHOLE).
    whole: bool,
    /// rvsadm's environment besides.
    env: Vec<(String, String)>,
}

/// The builds to compare: `RVS_LISTING_BINS`, else the built binaries both
/// ways.
fn bin_sets() -> Vec<Bins> {
    let Ok(spec) = std::env::var("RVS_LISTING_BINS") else {
        return [
            ("streamed (rvsadm's way)", false),
            ("whole, one reply", true),
        ]
        .into_iter()
        .map(|(label, whole)| Bins {
            label: label.into(),
            rvsd: bin("rvsd"),
            rvsadm: bin("rvsadm"),
            whole,
            env: Vec::new(),
        })
        .collect();
    };
    spec.split(',')
        .map(|item| {
            let (label, rest) = item.split_once('=').expect("RVS_LISTING_BINS: label=DIR,…");
            let mut rest = rest.split(';');
            let dir = PathBuf::from(rest.next().expect("DIR"));
            let env = rest
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            for b in ["rvsd", "rvsadm"] {
                assert!(dir.join(b).exists(), "no {b} in {}", dir.display());
            }
            Bins {
                label: label.into(),
                rvsd: dir.join("rvsd"),
                rvsadm: dir.join("rvsadm"),
                whole: false,
                env,
            }
        })
        .collect()
}

/// What one [`run`] measured.
struct Run {
    /// Exchanges per slot alone, in order.
    alone: Vec<u64>,
    /// Exchanges per slot while listing (each between two of `alone`).
    listing: Vec<u64>,
    /// Longest exchange alone and while listing, µs.
    longest: (u64, u64),
    /// Listings completed (not cut by the end of their slot).
    listings: u64,
    /// Mean seconds per completed listing.
    secs_per_listing: f64,
    /// rvsd: peak RSS over RSS before the listings, kB.
    rvsd_growth_kb: u64,
    /// rvsadm: largest peak RSS of the listings, kB.
    rvsadm_peak_kb: u64,
    /// rvsd's CPU seconds (user + system) per slot, alone and listing.
    rvsd_cpu: (f64, f64),
}

impl Run {
    /// Each listing slot's exchanges over the mean of the alone slots
    /// around it, sorted.
    fn ratios(&self) -> Vec<f64> {
        let mut r: Vec<f64> = self
            .listing
            .iter()
            .enumerate()
            .map(|(i, &l)| l as f64 / ((self.alone[i] + self.alone[i + 1]) as f64 / 2.0))
            .collect();
        r.sort_by(f64::total_cmp);
        r
    }

    fn median_ratio(&self) -> f64 {
        let r = self.ratios();
        (r[(r.len() - 1) / 2] + r[r.len() / 2]) / 2.0
    }

    /// All listing slots' exchanges over all alone slots' (per slot).
    fn total_ratio(&self) -> f64 {
        let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
        mean(&self.listing) / mean(&self.alone)
    }
}

/// rvsd's CPU seconds so far (utime + stime of /proc/PID/stat, at 100 Hz).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

/// The host's 1-minute load average.
fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

/// Pairs of slots (listing, then alone) after the first alone slot.
const PAIRS: usize = 6;
/// One slot.
const SLOT: Duration = Duration::from_secs(2);

/// Lists the table with `b`'s rvsadm in a loop while `on` is set; a
/// listing under way when it is cleared is killed (so that the next slot
/// is alone). Ends when `done` is set.
fn lister(
    director: String,
    b: &Bins,
    on: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, Duration, u64)> {
    let (adm, whole, env) = (b.rvsadm.clone(), b.whole, b.env.clone());
    std::thread::spawn(move || {
        let (mut completed, mut spent, mut peak) = (0, Duration::ZERO, 0);
        while !done.load(Ordering::Relaxed) {
            if !on.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            let t = Instant::now();
            let mut cmd = std::process::Command::new("ip");
            cmd.args(["netns", "exec", &director])
                .arg(&adm)
                .args(["-L", "-c", "-n"])
                .stdout(std::process::Stdio::null());
            if whole {
                cmd.env("RVSADM_LIST_WHOLE", "1");
            }
            cmd.envs(env.iter().map(|(k, v)| (k, v)));
            let mut child = cmd.spawn().expect("rvsadm");
            // `ip netns exec` execs: the pid is rvsadm's. Its peak RSS,
            // read until it exits.
            loop {
                let hwm = status_kb(child.id(), "VmHWM:");
                if let Some(st) = child.try_wait().expect("wait") {
                    assert!(st.success(), "rvsadm -L -c: {st}");
                    completed += 1;
                    spent += t.elapsed();
                    break;
                }
                peak = peak.max(hwm);
                if !on.load(Ordering::Relaxed) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        (completed, spent, peak)
    })
}

/// Forwarding in slots of [`SLOT`]: alone, then [`PAIRS`] times listing
/// and alone, the same 8 ping-pong connections throughout.
fn run(lab: &mut Lab, director: &str, client: &str, rules: &str, b: &Bins) -> Run {
    let state = lab.temp_path("conns");
    state_file(&state);
    let idx = lab.start_rvsd_bin(
        &b.rvsd,
        director,
        None,
        &["eth0"],
        &[
            "--rules",
            rules,
            "--conn-state",
            state.to_str().expect("path"),
            "--fast-path",
            "off",
        ],
    );
    let n = lab
        .adm_ok(director, &["-L", "-n"])
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("-> 10.0.0.11:8080"))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum::<u64>();
    assert!(
        n >= u64::from(TABLE),
        "{n} connections restored\n{}",
        lab.rvsd_log()
    );
    let rvsd_pid = lab.children[idx].id();
    let _warm_up = rate(client, || {});
    let rss_before = status_kb(rvsd_pid, "VmRSS:");
    // Reset rvsd's peak RSS (the table's load at start had its own peak).
    std::fs::write(format!("/proc/{rvsd_pid}/clear_refs"), "5").expect("clear_refs");
    let (on, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let lister = lister(director.to_string(), b, Arc::clone(&on), Arc::clone(&done));
    let count = Arc::new(AtomicU64::new(0));
    let worst = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let (mut alone, mut listing, mut cpu) = (Vec::new(), Vec::new(), [0.0, 0.0]);
    in_netns(client, || {
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..CONNS)
            .map(|_| {
                let (stop, c) = (Arc::clone(&stop), Arc::clone(&count));
                let (worst, on) = (worst.clone(), Arc::clone(&on));
                ping_pong(stop, move |micros| {
                    let i = usize::from(on.load(Ordering::Relaxed));
                    worst[i].fetch_max(micros, Ordering::Relaxed);
                    c.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        for slot in 0..=2 * PAIRS {
            let listing_slot = slot % 2 == 1;
            on.store(listing_slot, Ordering::Relaxed);
            let (c0, cpu0) = (count.load(Ordering::Relaxed), cpu_secs(rvsd_pid));
            std::thread::sleep(SLOT);
            let n = count.load(Ordering::Relaxed) - c0;
            cpu[usize::from(listing_slot)] += cpu_secs(rvsd_pid) - cpu0;
            if listing_slot {
                listing.push(n);
            } else {
                alone.push(n);
            }
        }
        on.store(false, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
    });
    done.store(true, Ordering::Relaxed);
    let (listings, spent, rvsadm_peak_kb) = lister.join().expect("lister");
    let rvsd_peak = status_kb(rvsd_pid, "VmHWM:");
    let log = lab.stop_rvsd(idx);
    assert!(
        !log.contains("cannot lower the priority"),
        "the listing's writer kept its priority:\n{log}"
    );
    Run {
        alone,
        listing,
        longest: (
            worst[0].load(Ordering::Relaxed),
            worst[1].load(Ordering::Relaxed),
        ),
        listings,
        secs_per_listing: spent.as_secs_f64() / listings.max(1) as f64,
        rvsd_growth_kb: rvsd_peak.saturating_sub(rss_before),
        rvsadm_peak_kb,
        rvsd_cpu: (cpu[0] / (PAIRS + 1) as f64, cpu[1] / PAIRS as f64),
    }
}

#[test]
#[ignore = "a measurement (BENCHMARKS.md), not a check"]
fn netns_listing_a_million_connections_while_forwarding() {
    require_root();
    let mut lab = Lab::new("rvs-list", "1m");
    let (client, director) = director_with_echo(&mut lab);
    let rules = lab.temp_path("rules");
    std::fs::write(
        &rules,
        format!("-A -t {VIP}:{PORT} -s rr\n-a -t {VIP}:{PORT} -r 10.0.0.11:{PORT} -g\n"),
    )
    .expect("rules");
    let rules = rules.to_str().expect("path").to_string();
    let rounds: usize = std::env::var("RVS_LISTING_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let t = Instant::now();
    let mut out = format!(
        "forwarding (slow path, {CONNS} ping-pong connections) in slots of {SLOT:?}: alone, \
         then {PAIRS} times listing in a loop and alone; {TABLE} connections in the table; \
         load {} at start",
        load1()
    );
    for round in 1..=rounds {
        for b in bin_sets() {
            let r = run(&mut lab, &director, &client, &rules, &b);
            let per_s = |v: &[u64]| {
                v.iter()
                    .map(|n| format!("{:.0}", *n as f64 / SLOT.as_secs_f64()))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            out += &format!(
                "\n  round {round}, {}: exchanges/s alone [{}], listing [{}]; listing/alone \
                 median {:.2}x (each listing slot against the alone slots around it: {}), \
                 total {:.2}x; longest exchange {} ms alone, {} ms listing; {} listing(s) \
                 completed, {:.2} s each; rvsd CPU per slot {:.2} s alone, {:.2} s listing; rvsd peak RSS \
                 +{} MB over its RSS before; rvsadm peak RSS {} MB; load {}",
                b.label,
                per_s(&r.alone),
                per_s(&r.listing),
                r.median_ratio(),
                r.ratios()
                    .iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                r.total_ratio(),
                r.longest.0 / 1000,
                r.longest.1 / 1000,
                r.listings,
                r.secs_per_listing,
                r.rvsd_cpu.0,
                r.rvsd_cpu.1,
                r.rvsd_growth_kb / 1024,
                r.rvsadm_peak_kb / 1024,
                load1()
            );
        }
    }
    eprintln!("{out}\nin {:?}", t.elapsed());
}

/// A measurement (issue 15): what a master sync daemon costs forwarding.
/// The same 8 ping-pong connections through rvsd (`--fast-path off`: every
/// packet through the engine, where the sync decision is made), without a
/// master daemon, with one (sending to the segment), and without again, in
/// one run.
#[test]
#[ignore = "a measurement (BENCHMARKS.md), not a check"]
fn netns_sync_master_cost_on_forwarding() {
    require_root();
    let mut lab = Lab::new("rvs-list", "mcost");
    let (client, director) = director_with_echo(&mut lab);
    lab.start_rvsd(&director, None, &["eth0"], &["--fast-path", "off"]);
    lab.adm_lines(
        &director,
        &format!("-A -t {VIP}:{PORT} -s rr\n-a -t {VIP}:{PORT} -r 10.0.0.11:{PORT} -g"),
    );
    // The default sync_threshold ("3 50"): each connection is sent on its
    // 3rd packet and every 50th after.
    let _warm_up = rate(&client, || {});
    let mut rows = Vec::new();
    for (label, master) in [("off", false), ("on", true), ("off", false), ("on", true)] {
        if master {
            lab.adm_ok(
                &director,
                &["--start-daemon", "master", "--mcast-interface", "eth0"],
            );
        }
        let (r, _) = rate(&client, || {});
        if master {
            lab.adm_ok(&director, &["--stop-daemon", "master"]);
        }
        rows.push((label, r));
    }
    let off = (rows[0].1 + rows[2].1) / 2.0;
    let on = (rows[1].1 + rows[3].1) / 2.0;
    eprintln!(
        "slow path, {CONNS} ping-pong connections, {SECONDS} s each: {rows:?}; master daemon \
         on/off = {:.3}",
        on / off
    );
}

/// A measurement (issue 17): what scraping `rvsd --metrics` every second
/// costs forwarding. 100 services of 10 real servers each (1100 series of
/// node_ipvs_backend_*), the same 8 ping-pong connections through rvsd
/// (`--fast-path off`: every packet takes the engine's lock, which a scrape
/// takes too), without and with a scraper fetching /metrics every second,
/// alternating, in one run.
#[test]
#[ignore = "a measurement (BENCHMARKS.md), not a check"]
fn netns_metrics_scrape_cost_on_forwarding() {
    require_root();
    let mut lab = Lab::new("rvs-list", "scrape");
    let (client, director) = director_with_echo(&mut lab);
    let rules = lab.temp_path("rules");
    let mut text = format!("-A -t {VIP}:{PORT} -s rr\n-a -t {VIP}:{PORT} -r 10.0.0.11:{PORT} -g\n");
    for s in 1..100u32 {
        let vip = format!("10.0.5.{s}:80");
        text.push_str(&format!("-A -t {vip} -s wlc\n"));
        for r in 0..10u32 {
            text.push_str(&format!("-a -t {vip} -r 10.0.6.{}:80 -g\n", s * 2 + r));
        }
    }
    std::fs::write(&rules, text).expect("rules");
    lab.start_rvsd(
        &director,
        None,
        &["eth0"],
        &[
            "--rules",
            rules.to_str().expect("path"),
            "--fast-path",
            "off",
            "--metrics",
            "127.0.0.1:9476",
        ],
    );
    let _warm_up = rate(&client, || {});
    let size = http_get(&director, "http://127.0.0.1:9476/metrics").map_or(0, |b| b.len());
    let mut rows = Vec::new();
    for scrape in [false, true, false, true] {
        let stop = Arc::new(AtomicBool::new(false));
        let scraper = scrape.then(|| {
            let (stop, director) = (Arc::clone(&stop), director.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    assert!(http_get(&director, "http://127.0.0.1:9476/metrics").is_some());
                    n += 1;
                    std::thread::sleep(Duration::from_secs(1));
                }
                n
            })
        });
        let (r, worst) = rate(&client, || {});
        stop.store(true, Ordering::Relaxed);
        let scrapes = scraper.map_or(0, |h| h.join().expect("scraper"));
        rows.push((scrape, r, worst, scrapes));
    }
    let off = (rows[0].1 + rows[2].1) / 2.0;
    let on = (rows[1].1 + rows[3].1) / 2.0;
    eprintln!(
        "slow path, {CONNS} ping-pong connections, {SECONDS} s each, {size}-byte scrape: \
         (scraping, exchanges/s, longest us, scrapes) {rows:?}; with/without = {:.3}",
        on / off
    );
}
