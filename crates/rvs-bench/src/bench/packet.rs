//! `rvs bench packet`: 64-byte UDP packets through the director.
//!
//! Topology (three namespaces, two veth pairs):
//!
//! ```text
//!  gen: gen0 10.9.1.1 ── dutin 10.9.1.2 [dut] dutout 10.9.2.1 ── sink0 10.9.2.11, .12 :sink
//! ```
//!
//! The VIP 10.9.1.100 sits on the director's (`dut`) `lo`; the real servers
//! are 10.9.2.11 and 10.9.2.12, both on the sink. Contenders, in turn, on
//! identical traffic (1024 flows, UDP to port 9):
//!
//! * `kernel-forward`: the kernel's IP forwarding, frames addressed to the
//!   real server (the ceiling of the kernel path);
//! * `xdp-redirect`: a bare XDP forwarder on `dutin` (rewrite the Ethernet
//!   addresses, redirect out of `dutout`: [`crate::trafficgen::Redirect`]),
//!   the floor of what forwarding in XDP costs;
//! * `nft-dnat`: the kernel with an nftables `numgen` map DNAT of the VIP to
//!   the two real servers (kube-proxy's nft mode), conntrack included;
//! * `rvs-xdp dr|nat|tun`: `rvsd --io xdp --fast-path off`, `-g`, `-m`,
//!   `-i`: every packet through the engine (AF_XDP);
//! * `rvs-xdp-fast dr|nat|tun`: `rvsd --io xdp --fast-path on`: established
//!   flows forwarded inside the XDP program;
//! * `rvs-packet dr|nat|tun`: `rvsd --io packet` (AF_PACKET), reported
//!   unavailable when this rvsd does not have it.
//!
//! The generator ([`super::generator`], CPU 1) sends native XDP frames
//! (`BPF_PROG_TEST_RUN` in live-frames mode) out of `gen0`: they reach
//! `dutin` without an skb, and it offers several times what the kernel can
//! forward, so the DUT is the limit. Where the host refuses live-frames
//! test runs (or under `RVS_LIVE_FRAMES=off`) the run says why in one line
//! and uses the AF_PACKET generator instead: the same frames as socket
//! buffers, which every XDP contender then copies into XDP frames on
//! `dutin`. Every row names the generator that measured it (`generator`);
//! ratios compare rows of one run, measured alike.
//!
//! Frames carry full UDP checksums. `rvs-xdp dr partial-csum` and
//! `rvs-xdp-fast dr partial-csum` repeat the DR rows with checksums left
//! partial, as a Linux sender with checksum offload leaves them (the
//! pseudo-header sum), which the director must finish: `x_full_csum` and
//! `cost_x_full_csum` are their rate and CPU per packet over the rows with
//! full checksums (the cost of finishing them).
//!
//! Offloads stay at the host's defaults; what the bench changes to measure
//! (GRO, threaded NAPI, pinning...) it prints ([`SETTINGS`]). `dutin` must be in NAPI mode to take
//! them: GRO on for the kernel contenders, their XDP program for the XDP
//! ones, a pass-everything XDP program for `rvs-packet` (rvsd turns GRO
//! off there). The sink counts and drops IPv4 frames with an XDP program
//! on `sink0` ([`crate::trafficgen::Sink`]), which also puts `sink0` in
//! NAPI mode for the frames XDP redirects to it.
//!
//! CPU placement (BENCHMARKING.md): CPU 0 is the device under test's:
//! rvsd's threads and the threaded NAPI of `dutin` and `dutout`; CPU 1 runs
//! the generator and the sink's NAPI thread (SCHED_FIFO 1, so the sink
//! keeps up).
//!
//! Each contender gets a paced warm-up (1 s at 100 kpps, 0.5 s in quick
//! mode: every flow scheduled, fast-path entries installed), then:
//!
//! * flat-out runs (median of 3 in full mode, 1 in quick mode): `mpps` is
//!   the rate the sink received at full offered load (the DUT's maximum
//!   throughput), `offered_mpps` what the generator sent, `dut_out_mpps`
//!   what the DUT put on `dutout` (sent + dropped at the sink's ring);
//! * a drop-rate search (full mode only): paced trials of 1 s, first at
//!   the flat-out delivered rate, then halving the interval 5 times;
//!   `pdr_mpps` is the highest rate with at most 0.5% loss
//!   ([`PDR_LOSS`]: FD.io CSIT's "partial drop rate"), a failed trial
//!   being run once more. A zero-loss rate (NDR) cannot be measured on
//!   this VM: even at 100–600 kpps with the DUT's CPU a third idle, 0.2–0.6%
//!   of the frames are lost to scheduling stalls of about a millisecond
//!   that overflow veth's fixed 256-frame ring, and now and then a stall of
//!   ~100 ms loses several percent (hence the retrial).
//!
//! CPU per packet (`ns_per_pkt`, flat-out runs): CPU time of the DUT over
//! the run divided by the packets delivered. The DUT's CPU time is the
//! user + system time (`/proc/PID/task/*/stat`) of its threads (its NAPI
//! threads, where the kernel's forwarding and the XDP programs run, and
//! every rvsd thread) plus CPU 0's softirq time (`/proc/stat`), capped at
//! CPU 0's busy time (the two can count the same tick); so it holds when
//! other work shares the machine. `mpps_per_cpu` is its inverse (what one
//! whole CPU would forward at that cost). `cpu0_pct`/`cpu1_pct` are the
//! CPUs' busy shares from `/proc/stat`, whoever used them.
//!
//! `RVS_BENCH_DEBUG=1` prints the interface counters of every hop after
//! each run (where packets were dropped).

use super::generator::{self, Frames, Pace, UdpCsum};
use super::topo::{self, Stop, Topo, adm, in_ns, run_cmd};
use super::{Opts, Row};
use crate::child::sibling;
use std::time::{Duration, Instant};

mod net;

pub(super) use net::{
    DUT_CPU, GEN_CPU, Net, PORT, RIPS, SETTINGS, VIP, build, flows, ip4, nft, rvsd_has_packet_io,
    sink_count,
};

/// One measured point.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Point {
    pub(super) offered_pps: f64,
    pub(super) delivered_pps: f64,
    /// What the DUT sent out of `dutout` (delivered or dropped by the sink's
    /// full receive ring).
    forwarded_pps: f64,
    /// CPU time of the DUT's threads per delivered packet.
    pub(super) dut_ns_per_pkt: Option<f64>,
    /// Share of one CPU the DUT's threads used.
    pub(super) dut_busy: f64,
    /// Share of one CPU the generator thread used.
    gen_busy: f64,
    /// Busy shares of the DUT's and the generator's CPUs, whoever used them.
    pub(super) cpu_dut: f64,
    pub(super) cpu_gen: f64,
}

/// CPU seconds of the DUT: its threads plus its CPU's softirq time, at most
/// its CPU's busy time (the two overlap when a tick lands in softirq work
/// done on a DUT thread's time).
pub fn dut_cpu(threads: f64, softirq: f64, cpu_busy: f64) -> f64 {
    (threads + softirq).min(cpu_busy.max(threads))
}

/// Frames the DUT put on `dutout`: sent plus dropped at the peer.
pub(super) fn dut_out(n: &Net) -> Result<u64, String> {
    Ok(topo::if_stat(&n.dut, "dutout", "tx_packets")?
        + topo::if_stat(&n.dut, "dutout", "tx_dropped")?)
}

/// The DUT's threads: its NAPI threads and `extra` (rvsd).
pub(super) fn dut_pids(extra: Option<u32>) -> Vec<u32> {
    let mut v = topo::napi_threads("dutin");
    v.extend(topo::napi_threads("dutout"));
    v.extend(extra);
    v
}

/// What a contender is sent: the destination and the UDP checksum.
#[derive(Debug, Clone, Copy)]
struct Traffic {
    dst_ip: [u8; 4],
    csum: UdpCsum,
}

impl Traffic {
    /// Full checksums to `dst`.
    fn to(dst: &str) -> Traffic {
        Traffic {
            dst_ip: ip4(dst),
            csum: UdpCsum::Full,
        }
    }
}

fn measure(
    n: &Net,
    traffic: Traffic,
    pace: Pace,
    duration: Duration,
    rvsd: Option<u32>,
    stop: &Stop,
) -> Result<Point, String> {
    let flows = flows(n.gen_mac, n.dutin_mac, traffic.dst_ip, traffic.csum);
    let max = 20_000_000 * duration.as_secs().max(1);
    measure_frames(n, &Frames::Udp(flows), pace, duration, max, rvsd, stop)
}

/// One run of the generator (`frames`, at most `max_packets` of them, for
/// `duration` at `pace`): what the sink received, what the DUT's CPU did.
pub(super) fn measure_frames(
    n: &Net,
    frames: &Frames,
    pace: Pace,
    duration: Duration,
    max_packets: u64,
    rvsd: Option<u32>,
    stop: &Stop,
) -> Result<Point, String> {
    let pids = dut_pids(rvsd);
    let before = sink_count(n)?;
    let fwd0 = dut_out(n)?;
    let cpu0 = topo::CpuTimes::now();
    let dut0 = topo::cpu_ticks(&pids);
    let t0 = Instant::now();
    let sent = generator::send(
        n.gen_kind,
        &n.gen_ns,
        "gen0",
        GEN_CPU,
        frames,
        pace,
        duration,
        max_packets,
        stop.clone(),
    )?;
    std::thread::sleep(Duration::from_millis(100));
    let wall = t0.elapsed().as_secs_f64().max(1e-9);
    let cpu1 = topo::CpuTimes::now();
    // The DUT's threads plus softirq work on its CPU (RPS backlog
    // processing when an interface has no NAPI, e.g. with AF_PACKET); a
    // tick in softirq while a DUT thread runs counts in both, so at most
    // the CPU's busy time.
    let dut = dut_cpu(
        topo::cpu_seconds_between(&dut0, &topo::cpu_ticks(&pids)),
        cpu1.softirq_since(&cpu0, DUT_CPU).unwrap_or(0.0),
        cpu1.busy_since(&cpu0, DUT_CPU).unwrap_or(0.0),
    );
    let after = sink_count(n)?;
    let delivered = after.saturating_sub(before);
    let forwarded = dut_out(n)?.saturating_sub(fwd0);
    // RVS_BENCH_DEBUG=1: where the packets went (ip -s link of every hop).
    if std::env::var_os("RVS_BENCH_DEBUG").is_some() {
        eprintln!("sent {sent:?} delivered {delivered} dut_out {forwarded}");
        for (ns, i) in [
            (&n.gen_ns, "gen0"),
            (&n.dut, "dutin"),
            (&n.dut, "dutout"),
            (&n.sink, "sink0"),
        ] {
            eprintln!(
                "{}",
                run_cmd(&["ip", "-s", "-s", "-n", ns, "link", "show", i]).unwrap_or_default()
            );
        }
    }
    Ok(Point {
        offered_pps: sent.packets as f64 / sent.seconds.max(1e-9),
        delivered_pps: delivered as f64 / sent.seconds.max(1e-9),
        forwarded_pps: forwarded as f64 / sent.seconds.max(1e-9),
        dut_ns_per_pkt: (delivered > 0).then(|| dut * 1e9 / delivered as f64),
        dut_busy: dut / wall,
        gen_busy: sent.cpu_seconds / sent.seconds.max(1e-9),
        cpu_dut: cpu1.busy_since(&cpu0, DUT_CPU).unwrap_or(0.0) / wall,
        cpu_gen: cpu1.busy_since(&cpu0, GEN_CPU).unwrap_or(0.0) / wall,
    })
}

/// How each contender is measured.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Length of each flat-out run.
    run: Duration,
    /// Flat-out runs (the median is reported).
    repeats: u32,
    /// Length of each trial of the drop-rate search.
    trial: Duration,
    /// Halvings of the drop-rate search's interval; `None`: no search
    /// (quick mode).
    steps: Option<u32>,
    /// Length of the paced warm-up.
    warm_up: Duration,
}

impl Plan {
    fn new(o: &Opts) -> Plan {
        Plan {
            run: Duration::from_secs(u64::from(o.seconds())),
            repeats: o.repeats(),
            trial: Duration::from_secs(1),
            steps: if o.quick { None } else { Some(5) },
            warm_up: if o.quick {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(1)
            },
        }
    }
}

/// Loss a trial of the drop-rate search may show and still pass: 0.5%
/// (the "partial drop rate" of FD.io CSIT).
pub const PDR_LOSS: f64 = 0.005;

/// Whether a paced trial passes.
fn pdr_ok(p: &Point) -> bool {
    p.offered_pps > 0.0 && p.delivered_pps >= p.offered_pps * (1.0 - PDR_LOSS)
}

/// The drop-rate search: the highest offered rate at which the sink
/// receives all but [`PDR_LOSS`] of the frames, searched by
/// halving `[0, start]` `steps` times after a trial at `start` (the
/// flat-out delivered rate, above which no rate can pass). Returns
/// the rate the generator achieved in the best passing trial (0 if none).
pub fn search(
    start: f64,
    steps: u32,
    mut trial: impl FnMut(f64) -> Result<(f64, bool), String>,
) -> Result<f64, String> {
    if start <= 0.0 {
        return Ok(0.0);
    }
    let (achieved, ok) = trial(start)?;
    if ok {
        return Ok(achieved);
    }
    let (mut lo, mut hi, mut best) = (0.0f64, start, 0.0f64);
    for _ in 0..steps {
        let mid = (lo + hi) / 2.0;
        let (achieved, ok) = trial(mid)?;
        if ok {
            lo = mid;
            best = best.max(achieved);
        } else {
            hi = mid;
        }
    }
    Ok(best)
}

/// One contender, measured: a paced warm-up (every flow scheduled, fast
/// paths installed), the median of `plan.repeats` flat-out runs (by
/// delivered rate), then the drop-rate search (a trial that loses more
/// than [`PDR_LOSS`] is run once more and passes if the second
/// does: this VM stalls a vCPU for up to ~100 ms now and then, which
/// overflows a veth's 256-frame ring at any rate).
fn contender(
    n: &Net,
    traffic: Traffic,
    rvsd: Option<u32>,
    plan: &Plan,
    stop: &Stop,
) -> Result<(Point, Option<f64>), String> {
    measure(
        n,
        traffic,
        Pace::Rate(WARM_UP_PPS),
        plan.warm_up,
        rvsd,
        stop,
    )?;
    let mut v = Vec::new();
    for _ in 0..plan.repeats.max(1) {
        topo::check(stop)?;
        v.push(measure(n, traffic, Pace::Flat, plan.run, rvsd, stop)?);
    }
    v.sort_by(|a, b| a.delivered_pps.total_cmp(&b.delivered_pps));
    let p = v[v.len() / 2];
    let Some(steps) = plan.steps else {
        return Ok((p, None));
    };
    let pdr = search(p.delivered_pps, steps, |rate| {
        let mut last = (0.0, false);
        for _ in 0..2 {
            topo::check(stop)?;
            let t = measure(n, traffic, Pace::Rate(rate), plan.trial, rvsd, stop)?;
            last = (t.offered_pps, pdr_ok(&t));
            if last.1 {
                break;
            }
        }
        Ok(last)
    })?;
    Ok((p, Some(pdr)))
}

/// The warm-up's rate: slow enough for any contender.
const WARM_UP_PPS: f64 = 100_000.0;

/// Which side limited the run, from the busy shares of the DUT's CPU and
/// of the rig's (generator and sink), and the loss. With losses and the
/// DUT's CPU saturated (85% busy or more), the DUT is the limit; with
/// losses, the DUT's CPU under 80% busy and the rig's saturated, the rig
/// is (the DUT's rate understates it: `mpps_per_cpu` does not); without
/// losses the DUT kept up with all the generator could offer.
pub fn saturated(cpu_dut: f64, cpu_rig: f64, loss: f64) -> &'static str {
    if loss > 0.01 && cpu_dut >= 0.85 {
        "DUT CPU saturated"
    } else if loss > 0.01 && cpu_dut < 0.8 && cpu_rig >= 0.9 {
        "rig-limited: CPU 1 (generator + sink) saturated, the DUT's is not"
    } else if loss > 0.01 {
        "DUT drops below CPU saturation"
    } else {
        "generator-limited: the DUT kept up"
    }
}

/// The note of a row: what limited it, and whether other work shared the
/// DUT's CPU (then the rate understates the DUT; `ns_per_pkt` does not).
pub fn note(cpu_dut: f64, dut_threads: f64, cpu_rig: f64, loss: f64) -> String {
    let mut s = saturated(cpu_dut, cpu_rig, loss).to_string();
    if cpu_dut - dut_threads > 0.2 {
        s.push_str(&format!(
            "; CPU {DUT_CPU} shared: DUT threads {:.0}% of it",
            dut_threads * 100.0
        ));
    }
    s
}

/// The share of `offered` frames not `delivered` (0 when none offered).
pub(super) fn loss(offered: f64, delivered: f64) -> f64 {
    if offered > 0.0 {
        (1.0 - delivered / offered).max(0.0)
    } else {
        0.0
    }
}

fn row(n: &Net, name: &str, p: Point, pdr_pps: Option<f64>) -> Row {
    let loss = loss(p.offered_pps, p.delivered_pps);
    Row::new("packet", name)
        .with("offered_mpps", Some(p.offered_pps / 1e6))
        .with("mpps", Some(p.delivered_pps / 1e6))
        .with("pdr_mpps", pdr_pps.map(|v| v / 1e6))
        .with("dut_out_mpps", Some(p.forwarded_pps / 1e6))
        .with("loss_pct", Some(loss * 100.0))
        .with("ns_per_pkt", p.dut_ns_per_pkt)
        .with(
            "mpps_per_cpu",
            p.dut_ns_per_pkt.map(|ns| 1e3 / ns.max(1e-9)),
        )
        .with("dut_cpu_pct", Some(p.dut_busy * 100.0))
        .with("gen_cpu_pct", Some(p.gen_busy * 100.0))
        .with("cpu0_pct", Some(p.cpu_dut * 100.0))
        .with("cpu1_pct", Some(p.cpu_gen * 100.0))
        .tag("generator", n.gen_kind.name())
        .note(note(p.cpu_dut, p.dut_busy, p.cpu_gen, loss))
}

fn unavailable(n: &Net, name: &str, why: &str) -> Row {
    Row::new("packet", name)
        .with("offered_mpps", None)
        .with("mpps", None)
        .with("pdr_mpps", None)
        .with("dut_out_mpps", None)
        .with("loss_pct", None)
        .with("ns_per_pkt", None)
        .with("mpps_per_cpu", None)
        .with("dut_cpu_pct", None)
        .with("gen_cpu_pct", None)
        .with("cpu0_pct", None)
        .with("cpu1_pct", None)
        .tag("generator", n.gen_kind.name())
        .note(format!("unavailable: {why}"))
}

/// Run rvsd with `io` on the DUT and measure DR, NAT and TUN.
fn rvs_rows(t: &mut Topo, n: &Net, io: &str, plan: &Plan, stop: &Stop) -> Result<Vec<Row>, String> {
    let rvsd = sibling("rvsd")?;
    let rvsd = rvsd.to_str().ok_or("rvsd path is not UTF-8")?.to_string();
    topo::ns_write(&n.dut, "/proc/sys/net/ipv4/ip_forward", "0")?;
    let log = format!("rvsd-{io}.log");
    // `xdp`: the slow path alone; `xdp-fast`: with the XDP fast path.
    let (io_arg, fast) = match io {
        "xdp" => ("xdp", "off"),
        "xdp-fast" => ("xdp", "on"),
        other => (other, "off"),
    };
    let pid = t.spawn(
        &n.dut,
        &log,
        &rvsd,
        &[
            "--io",
            io_arg,
            "--fast-path",
            fast,
            "--interface",
            "dutin",
            "--interface",
            "dutout",
        ],
    )?;
    let up = topo::wait_for(stop, Duration::from_secs(10), || {
        adm(&n.dut, &["-L", "-n"]).is_ok()
    });
    if !up || t.exited(pid) {
        let l = t.log(&log);
        t.stop(pid);
        return Err(format!("rvsd --io {io} did not come up: {}", l.trim()));
    }
    // AF_PACKET: rvsd turns GRO off on its interfaces, so `dutin` would
    // not be in NAPI mode and would drop the generator's XDP frames; a
    // pass-everything XDP program keeps it in NAPI mode (the frames become
    // socket buffers there, as a NIC's would).
    let napi = if io == "packet" {
        Some(in_ns(&n.dut, || {
            crate::trafficgen::Pass::attach("dutin").map_err(|e| format!("NAPI mode on dutin: {e}"))
        }))
        .transpose()
    } else {
        Ok(None)
    };
    let res = (|| {
        let _napi = napi?;
        topo::pin(pid, DUT_CPU)?;
        // Attaching XDP may have made new NAPI threads: (re)pin them. An
        // interface has none without XDP and GRO (rvsd --io packet turns
        // GRO off): then RPS puts its receive work on the DUT's CPU.
        let _ = topo::threaded_napi(&n.dut, "dutin", DUT_CPU);
        let _ = topo::threaded_napi(&n.dut, "dutout", DUT_CPU);
        let mut rows = Vec::new();
        let svc = format!("{VIP}:{PORT}");
        for (mode, flag) in [("dr", "-g"), ("nat", "-m"), ("tun", "-i")] {
            topo::check(stop)?;
            adm(&n.dut, &["-C"])?;
            adm(&n.dut, &["-A", "-u", &svc, "-s", "rr"])?;
            for r in RIPS {
                adm(&n.dut, &["-a", "-u", &svc, "-r", r, flag, "-w", "1"])?;
            }
            // The warm-up schedules every flow (and the director resolves
            // the real servers).
            let (p, pdr) = contender(n, Traffic::to(VIP), Some(pid), plan, stop)?;
            rows.push(row(n, &format!("rvs-{io} {mode}"), p, pdr));
            // DR again with partial checksums, for the director to finish:
            // what finishing them costs (rvs-xdp and rvs-xdp-fast).
            if mode == "dr" && io.starts_with("xdp") {
                topo::check(stop)?;
                let partial = Traffic {
                    csum: UdpCsum::Partial,
                    ..Traffic::to(VIP)
                };
                let (p, pdr) = contender(n, partial, Some(pid), plan, stop)?;
                rows.push(row(
                    n,
                    &format!("rvs-{io} {mode}{}", super::PARTIAL_CSUM),
                    p,
                    pdr,
                ));
            }
        }
        adm(&n.dut, &["-C"])?;
        Ok(rows)
    })();
    t.stop(pid);
    super::print_worker_summary(&format!("packet, rvsd --io {io}"), &t.log(&log));
    res.map_err(|e: String| format!("{e}\nrvsd log:\n{}", t.log(&log).trim()))
}

/// Run the family.
pub fn run(o: &Opts, stop: &Stop) -> Result<Vec<Row>, String> {
    sibling("rvsd")?;
    sibling("rvsadm")?;
    let plan = Plan::new(o);
    let mut t = Topo::new("pkt")?;
    println!("{SETTINGS}");
    let n = build(&mut t, true)?;
    let mut rows = Vec::new();

    // The kernel's plain forwarding.
    topo::ns_write(&n.dut, "/proc/sys/net/ipv4/ip_forward", "1")?;
    let (p, lf) = contender(&n, Traffic::to(RIPS[0]), None, &plan, stop)?;
    rows.push(row(&n, "kernel-forward", p, lf));
    topo::check(stop)?;

    // The bare XDP forwarder: what forwarding in XDP costs at the least.
    let (src, dst) = (topo::mac(&n.dut, "dutout")?, topo::mac(&n.sink, "sink0")?);
    let fwd = in_ns(&n.dut, move || {
        crate::trafficgen::Redirect::attach("dutin", "dutout", src, dst)
            .map_err(|e| format!("bare XDP forwarder: {e}"))
    });
    match fwd {
        Ok(fwd) => {
            let _ = topo::threaded_napi(&n.dut, "dutin", DUT_CPU);
            let r = contender(&n, Traffic::to(RIPS[0]), None, &plan, stop);
            drop(fwd);
            let (p, lf) = r?;
            rows.push(row(&n, "xdp-redirect", p, lf));
        }
        Err(e) => rows.push(unavailable(&n, "xdp-redirect", &e)),
    }
    topo::check(stop)?;

    // nftables DNAT load balancing (kube-proxy nft style).
    nft(
        &n.dut,
        &format!(
            "table ip rvsbench_lb {{\n chain pre {{\n  type nat hook prerouting priority dstnat;\n  \
             ip daddr {VIP} udp dport {PORT} dnat to numgen inc mod 2 map {{ 0 : {}, 1 : {} }}\n }}\n}}\n",
            RIPS[0], RIPS[1]
        ),
    )?;
    let (p, lf) = contender(&n, Traffic::to(VIP), None, &plan, stop)?;
    rows.push(row(&n, "nft-dnat", p, lf));
    nft(&n.dut, "delete table ip rvsbench_lb\n")?;
    topo::check(stop)?;

    match rvs_rows(&mut t, &n, "xdp", &plan, stop) {
        Ok(r) => rows.extend(r),
        Err(e) => {
            for m in ["dr", "dr partial-csum", "nat", "tun"] {
                rows.push(unavailable(
                    &n,
                    &format!("rvs-xdp {m}"),
                    e.lines().next().unwrap_or(""),
                ));
            }
            eprintln!("rvs bench packet: rvs-xdp: {e}");
        }
    }
    topo::check(stop)?;
    match rvs_rows(&mut t, &n, "xdp-fast", &plan, stop) {
        Ok(r) => rows.extend(r),
        Err(e) => {
            for m in ["dr", "dr partial-csum", "nat", "tun"] {
                rows.push(unavailable(
                    &n,
                    &format!("rvs-xdp-fast {m}"),
                    e.lines().next().unwrap_or(""),
                ));
            }
            eprintln!("rvs bench packet: rvs-xdp-fast: {e}");
        }
    }
    topo::check(stop)?;
    if rvsd_has_packet_io() {
        match rvs_rows(&mut t, &n, "packet", &plan, stop) {
            Ok(r) => rows.extend(r),
            Err(e) => {
                for m in ["dr", "nat", "tun"] {
                    rows.push(unavailable(
                        &n,
                        &format!("rvs-packet {m}"),
                        e.lines().next().unwrap_or(""),
                    ));
                }
                eprintln!("rvs bench packet: rvs-packet: {e}");
            }
        }
    } else {
        for m in ["dr", "nat", "tun"] {
            rows.push(unavailable(
                &n,
                &format!("rvs-packet {m}"),
                "this rvsd has no --io packet",
            ));
        }
    }
    Ok(rows)
}
