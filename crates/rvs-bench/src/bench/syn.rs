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
//! The generator is the packet family's, in its SYN mode: live frames
//! (the XDP program writes each SYN's source address, port and both
//! checksums from the connection's number), or, where the host refuses
//! live-frames test runs, AF_PACKET `sendmmsg` of prepared SYNs (about
//! 1 Mpps), which makes every XDP contender pay veth's skb-to-XDP copy on
//! the director's CPU: the run says which, and why. A row without losses
//! was limited by the generator (the
//! note says so). Figures: `kcps` (thousand SYNs the sink received per
//! second: connections scheduled), `offered_kpps`, `loss_pct`,
//! `ns_per_conn` (the director's CPU time per delivered SYN, as
//! `ns_per_pkt` of the packet family), `x_kernel` (`kcps` over the kernel
//! row's), the median of the flat-out runs.

use std::time::Duration;

use super::generator::{self, Frames, Kind, Pace, SynFlows};
use super::packet::{self, DUT_CPU, GEN_CPU, Net, RIPS, VIP, sink_count};
use super::topo::{self, Stop, Topo, adm};
use super::{Opts, Row};
use crate::child::sibling;

/// The service's port.
const PORT: u16 = 80;

/// SYNs prepared for one run of `duration`: more than the generator can
/// send in that time (AF_PACKET: ~1 Mpps; live frames: several), so none
/// repeats.
fn conns_for(kind: Kind, duration: Duration) -> u32 {
    let rate = match kind {
        Kind::LiveFrames => 8_000_000.0,
        Kind::Packet => 1_200_000.0,
    };
    (rate * duration.as_secs_f64()).clamp(200_000.0, 60_000_000.0) as u32
}

/// The SYNs of run `run` (0..200): connection `i` from
/// 10.(16+run).(i>>10 as two bytes):(1024 + i%1024).
fn syns(n: &Net, run: u32, dst: [u8; 4], conns: u32) -> SynFlows {
    SynFlows {
        src_mac: n.gen_mac,
        dst_mac: n.dutin_mac,
        src_ip: [10, 16 + (run % 200) as u8, 0, 0],
        dst_ip: dst,
        dst_port: PORT,
        sport_base: 1024,
        conns,
    }
}

/// One flat-out run: the packet family's figures and the connections the
/// director counted over the SYNs delivered.
#[derive(Debug, Clone, Copy, Default)]
struct Point {
    p: packet::Point,
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

fn measure(
    n: &Net,
    run: u32,
    dst: [u8; 4],
    duration: Duration,
    rvsd: Option<u32>,
    stop: &Stop,
) -> Result<Point, String> {
    let conns = conns_for(n.gen_kind, duration);
    let frames = Frames::Syn(syns(n, run, dst, conns));
    let conns0 = rvsd.map(|_| scheduled(n)).transpose()?;
    let before = sink_count(n)?;
    let p = packet::measure_frames(
        n,
        &frames,
        Pace::Flat,
        duration,
        u64::from(conns),
        rvsd,
        stop,
    )?;
    let delivered = sink_count(n)?.saturating_sub(before);
    let sched_per_syn = match conns0 {
        Some(c0) if delivered > 0 => {
            Some(scheduled(n)?.saturating_sub(c0) as f64 / delivered as f64)
        }
        _ => None,
    };
    Ok(Point { p, sched_per_syn })
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
    v.sort_by(|a, b| a.p.delivered_pps.total_cmp(&b.p.delivered_pps));
    Ok(v[v.len() / 2])
}

fn row(n: &Net, name: &str, s: Point) -> Row {
    let p = s.p;
    let loss = packet::loss(p.offered_pps, p.delivered_pps);
    Row::new("syn", name)
        .with("offered_kpps", Some(p.offered_pps / 1e3))
        .with("kcps", Some(p.delivered_pps / 1e3))
        .with("loss_pct", Some(loss * 100.0))
        .with("ns_per_conn", p.dut_ns_per_pkt)
        .with("sched_per_syn", s.sched_per_syn)
        .with("dut_cpu_pct", Some(p.dut_busy * 100.0))
        .with("cpu0_pct", Some(p.cpu_dut * 100.0))
        .with("cpu1_pct", Some(p.cpu_gen * 100.0))
        .tag("generator", n.gen_kind.name())
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
            rows.push(row(n, &format!("rvs-xdp {mode}"), p));
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
    println!("{}", packet::SETTINGS.replace("(packet)", "(syn)"));
    let mut n = packet::build(&mut t, false)?;
    // Live frames unless the host refuses them (one SYN tried, to an
    // address nobody has).
    let probe = Frames::Syn(syns(&n, 199, [10, 9, 9, 9], 1));
    let (kind, why) = generator::choose(&n.gen_ns, "gen0", &probe)?;
    n.gen_kind = kind;
    match why {
        None => println!(
            "SYN generator: {} (BPF_PROG_TEST_RUN in live-frames mode, every SYN a new connection, CPU {GEN_CPU})",
            kind.name()
        ),
        Some(why) => println!(
            "SYN generator: {} (sendmmsg of prepared SYNs, every one a new connection, CPU {GEN_CPU}) \
             because {why}; every XDP contender pays veth's skb-to-XDP copy: compare ratios within \
             this run",
            kind.name()
        ),
    }
    let mut run = 0u32;
    let mut rows = Vec::new();
    topo::ns_write(&n.dut, "/proc/sys/net/ipv4/ip_forward", "1")?;
    let p = contender(&n, &mut run, packet::ip4(RIPS[0]), o, None, stop)?;
    rows.push(row(&n, "kernel-forward", p));
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
