//! `rvs bench syn`: new connections per second through the director's slow
//! path, against the kernel forwarding the same SYNs.
//!
//! The topology of `rvs bench packet` (generator — director — sink, the
//! VIP on the director's `lo`, two real servers on the sink), but every
//! frame is a TCP SYN of a connection never seen before: from
//! 10.(16+run).h.l, source ports 1024–2047, to VIP:80 (or, for the kernel,
//! to the first real server), each measured run with source addresses of
//! its own, so no SYN repeats in the whole invocation. Every SYN the
//! director forwards is a connection it scheduled: `sched_per_syn` checks
//! that against its `Conns` counter (`rvsadm -L -n --stats --exact`). A
//! SYN always takes rvs's slow path (the XDP fast path caches established
//! flows only), so these rows measure the engine's new-connection path
//! with rvsd's defaults (`--io xdp`, fast path on), DR and NAT.
//!
//! rvsd's table bound is its default (`--max-conns` 1048576): once the
//! flood has filled 15/16 of it, each new connection first evicts the
//! oldest entry still in SYN_RECV, so the later runs measure a director
//! whose table is full of half-open connections, a SYN flood's steady
//! state. The kernel row is plain IP forwarding (no conntrack in the
//! director's namespace): the ceiling of what the kernel does per SYN,
//! not IPVS's new-connection path, which this host does not have.
//!
//! The generator is the AF_PACKET one (`sendmmsg` of prepared frames,
//! pinned to CPU 1) for every row: the live-frames generator rewrites only
//! a source port per frame, and new connections need new addresses too.
//! It offers about 1 Mpps; a row without losses was limited by it (the
//! note says so). Figures: `kcps` (thousand SYNs the sink received per
//! second: connections scheduled), `offered_kpps`, `loss_pct`,
//! `ns_per_conn` (the director's CPU time per delivered SYN, as
//! `ns_per_pkt` of the packet family), `x_kernel` (`kcps` over the kernel
//! row's), the median of the flat-out runs.

use std::time::{Duration, Instant};

use super::packet::{self, DUT_CPU, GEN_CPU, Net, RIPS, VIP, dut_pids, sink_count};
use super::topo::{self, Stop, Topo, adm};
use super::{Opts, Row};
use crate::child::sibling;

/// The service's port.
const PORT: u16 = 80;

/// Source ports per source address.
const PORTS_PER_HOST: u32 = 1024;

/// SYNs prepared for one run: enough for the generator's ~1 Mpps.
fn frames_for(duration: Duration) -> usize {
    (1_200_000.0 * duration.as_secs_f64()).clamp(200_000.0, 6_000_000.0) as usize
}

/// The SYNs of run `run` (0..200): connection `i` from
/// 10.(16+run).(host/256).(host%256):(1024 + i%1024), host = i/1024.
fn syns(n: &Net, run: u32, dst: [u8; 4], count: usize) -> Vec<[u8; crate::trafficgen::FRAME_LEN]> {
    (0..count as u32)
        .map(|i| {
            let host = i / PORTS_PER_HOST;
            let src = [10, 16 + (run % 200) as u8, (host >> 8) as u8, host as u8];
            let sport = 1024 + (i % PORTS_PER_HOST) as u16;
            crate::trafficgen::syn_frame((n.gen_mac, n.dutin_mac), (src, sport), (dst, PORT), i)
        })
        .collect()
}

/// One flat-out run.
#[derive(Debug, Clone, Copy, Default)]
struct Point {
    offered_pps: f64,
    delivered_pps: f64,
    dut_ns_per_conn: Option<f64>,
    dut_busy: f64,
    cpu_dut: f64,
    cpu_gen: f64,
    /// Connections the director counted, over SYNs delivered.
    sched_per_syn: Option<f64>,
}

/// The `Conns` of the director's TCP service (`rvsadm -L -n --stats
/// --exact`).
fn scheduled(n: &Net) -> Result<u64, String> {
    let out = adm(&n.dut, &["-L", "-n", "--stats", "--exact"])?;
    out.lines()
        .find(|l| l.starts_with("TCP"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no TCP service in rvsadm's listing:\n{out}"))
}

/// Send `frames` flat out (each once at most) for `duration`, from the
/// generator's namespace and CPU; (frames sent, seconds).
fn send(
    n: &Net,
    frames: Vec<[u8; crate::trafficgen::FRAME_LEN]>,
    duration: Duration,
    stop: &Stop,
) -> Result<(u64, f64), String> {
    let path = format!("/run/netns/{}", n.gen_ns);
    let stop = stop.clone();
    std::thread::spawn(move || -> Result<(u64, f64), String> {
        topo::enter(&path)?;
        topo::pin_self(GEN_CPU)?;
        let max = frames.len() as u64;
        let mut g = crate::trafficgen::PacketGenerator::from_frames("gen0", frames)
            .map_err(|e| format!("SYN generator on gen0: {e}"))?;
        g.pace(None);
        let start = Instant::now();
        let end = start + duration;
        while g.generated() < max && Instant::now() < end && !topo::stopped(&stop) {
            g.send(
                (max - g.generated()).min(super::generator::PACKET_CHUNK),
                end.min(Instant::now() + Duration::from_millis(100)),
            )
            .map_err(|e| format!("SYN generator on gen0: {e}"))?;
        }
        Ok((g.generated(), start.elapsed().as_secs_f64()))
    })
    .join()
    .map_err(|_| "generator thread panicked".to_string())?
}

fn measure(
    n: &Net,
    run: u32,
    dst: [u8; 4],
    duration: Duration,
    rvsd: Option<u32>,
    stop: &Stop,
) -> Result<Point, String> {
    let frames = syns(n, run, dst, frames_for(duration));
    let pids = dut_pids(rvsd);
    let conns0 = rvsd.map(|_| scheduled(n)).transpose()?;
    let before = sink_count(n)?;
    let cpu0 = topo::CpuTimes::now();
    let dut0 = topo::cpu_ticks(&pids);
    let t0 = Instant::now();
    let (sent, seconds) = send(n, frames, duration, stop)?;
    std::thread::sleep(Duration::from_millis(100));
    let wall = t0.elapsed().as_secs_f64().max(1e-9);
    let cpu1 = topo::CpuTimes::now();
    let dut = packet::dut_cpu(
        topo::cpu_seconds_between(&dut0, &topo::cpu_ticks(&pids)),
        cpu1.softirq_since(&cpu0, DUT_CPU).unwrap_or(0.0),
        cpu1.busy_since(&cpu0, DUT_CPU).unwrap_or(0.0),
    );
    let delivered = sink_count(n)?.saturating_sub(before);
    let conns = match conns0 {
        Some(c0) => Some(scheduled(n)?.saturating_sub(c0)),
        None => None,
    };
    let seconds = seconds.max(1e-9);
    Ok(Point {
        offered_pps: sent as f64 / seconds,
        delivered_pps: delivered as f64 / seconds,
        dut_ns_per_conn: (delivered > 0).then(|| dut * 1e9 / delivered as f64),
        dut_busy: dut / wall,
        cpu_dut: cpu1.busy_since(&cpu0, DUT_CPU).unwrap_or(0.0) / wall,
        cpu_gen: cpu1.busy_since(&cpu0, GEN_CPU).unwrap_or(0.0) / wall,
        sched_per_syn: conns
            .filter(|_| delivered > 0)
            .map(|c| c as f64 / delivered as f64),
    })
}

/// A warm-up run (the director resolves the real servers), then the median
/// of `repeats` flat-out runs; `run` numbers every run of the invocation.
fn contender(
    n: &Net,
    run: &mut u32,
    dst: [u8; 4],
    o: &Opts,
    rvsd: Option<u32>,
    stop: &Stop,
) -> Result<Point, String> {
    measure(n, *run, dst, Duration::from_millis(300), rvsd, stop)?;
    *run += 1;
    let mut v = Vec::new();
    for _ in 0..o.repeats().max(1) {
        topo::check(stop)?;
        v.push(measure(
            n,
            *run,
            dst,
            Duration::from_secs(u64::from(o.seconds())),
            rvsd,
            stop,
        )?);
        *run += 1;
    }
    v.sort_by(|a, b| a.delivered_pps.total_cmp(&b.delivered_pps));
    Ok(v[v.len() / 2])
}

fn row(name: &str, p: Point) -> Row {
    let loss = packet::loss(p.offered_pps, p.delivered_pps);
    Row::new("syn", name)
        .with("offered_kpps", Some(p.offered_pps / 1e3))
        .with("kcps", Some(p.delivered_pps / 1e3))
        .with("loss_pct", Some(loss * 100.0))
        .with("ns_per_conn", p.dut_ns_per_conn)
        .with("sched_per_syn", p.sched_per_syn)
        .with("dut_cpu_pct", Some(p.dut_busy * 100.0))
        .with("cpu0_pct", Some(p.cpu_dut * 100.0))
        .with("cpu1_pct", Some(p.cpu_gen * 100.0))
        .tag("generator", "af-packet")
        .note(packet::note(p.cpu_dut, p.dut_busy, p.cpu_gen, loss))
}

/// rvsd (its defaults) on the director: DR, then NAT.
fn rvs_rows(
    t: &mut Topo,
    n: &Net,
    run: &mut u32,
    o: &Opts,
    stop: &Stop,
) -> Result<Vec<Row>, String> {
    let rvsd = sibling("rvsd")?;
    let rvsd = rvsd.to_str().ok_or("rvsd path is not UTF-8")?.to_string();
    topo::ns_write(&n.dut, "/proc/sys/net/ipv4/ip_forward", "0")?;
    let log = "rvsd-syn.log";
    let pid = t.spawn(
        &n.dut,
        log,
        &rvsd,
        &["--interface", "dutin", "--interface", "dutout"],
    )?;
    let up = topo::wait_for(stop, Duration::from_secs(10), || {
        adm(&n.dut, &["-L", "-n"]).is_ok()
    });
    if !up || t.exited(pid) {
        let l = t.log(log);
        t.stop(pid);
        return Err(format!("rvsd did not come up: {}", l.trim()));
    }
    let res = (|| {
        topo::pin(pid, DUT_CPU)?;
        let _ = topo::threaded_napi(&n.dut, "dutin", DUT_CPU);
        let _ = topo::threaded_napi(&n.dut, "dutout", DUT_CPU);
        let svc = format!("{VIP}:{PORT}");
        let mut rows = Vec::new();
        for (mode, flag) in [("dr", "-g"), ("nat", "-m")] {
            topo::check(stop)?;
            adm(&n.dut, &["-C"])?;
            adm(&n.dut, &["-A", "-t", &svc, "-s", "rr"])?;
            for r in RIPS {
                adm(&n.dut, &["-a", "-t", &svc, "-r", r, flag, "-w", "1"])?;
            }
            let p = contender(n, run, packet::ip4(VIP), o, Some(pid), stop)?;
            rows.push(row(&format!("rvs-xdp {mode}"), p));
        }
        adm(&n.dut, &["-C"])?;
        Ok(rows)
    })();
    t.stop(pid);
    super::print_worker_summary("syn, rvsd", &t.log(log));
    res.map_err(|e: String| format!("{e}\nrvsd log:\n{}", t.log(log).trim()))
}

/// Run the family.
pub fn run(o: &Opts, stop: &Stop) -> Result<Vec<Row>, String> {
    sibling("rvsd")?;
    sibling("rvsadm")?;
    let mut t = Topo::new("syn")?;
    println!(
        "{}; SYN generator: af-packet (sendmmsg of prepared SYNs, every one a new connection, CPU {GEN_CPU})",
        packet::SETTINGS.replace("(packet)", "(syn)")
    );
    let n = packet::build(&mut t, false)?;
    let mut run = 0u32;
    let mut rows = Vec::new();
    topo::ns_write(&n.dut, "/proc/sys/net/ipv4/ip_forward", "1")?;
    let p = contender(&n, &mut run, packet::ip4(RIPS[0]), o, None, stop)?;
    rows.push(row("kernel-forward", p));
    topo::check(stop)?;
    match rvs_rows(&mut t, &n, &mut run, o, stop) {
        Ok(r) => rows.extend(r),
        Err(e) => {
            eprintln!("rvs bench syn: {e}");
            return Err(e);
        }
    }
    Ok(rows)
}
