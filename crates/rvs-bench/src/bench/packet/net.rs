// SPDX-License-Identifier: GPL-2.0-or-later
//! The bench's topology (`gen` ── `dut` ── `sink`), its generator and
//! its sink counter; the measurements are in `packet.rs`.

use super::super::generator::{self, Flows, Kind, UdpCsum};
use super::super::topo::{self, Topo, addr, in_ns, run_cmd, veth};
use crate::child::sibling;

pub(in crate::bench) const VIP: &str = "10.9.1.100";
pub(in crate::bench) const RIPS: [&str; 2] = ["10.9.2.11", "10.9.2.12"];
pub(in crate::bench) const DUT_CPU: usize = 0;
pub(in crate::bench) const GEN_CPU: usize = 1;
pub(in crate::bench) const PORT: u16 = 9;

/// What this family changes from the host's defaults, printed with its
/// output.
pub const SETTINGS: &str = "settings changed for this run (packet): GRO on dutin (NAPI mode, \
so it takes XDP frames, for the contenders without an XDP program of their own; rvs-packet: \
a pass-all XDP program instead); threaded NAPI on dutin and dutout pinned to CPU 0, on sink0 \
pinned to CPU 1 at SCHED_FIFO 1; RPS of dutin to CPU 0; rp_filter 0 in the DUT; rvsd pinned to \
CPU 0, the generator to CPU 1; offloads at the host's defaults";

/// Whether this rvsd offers `--io packet`.
pub(in crate::bench) fn rvsd_has_packet_io() -> bool {
    let Ok(rvsd) = sibling("rvsd") else {
        return false;
    };
    std::process::Command::new(rvsd)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("`packet`"))
        .unwrap_or(false)
}

pub(in crate::bench) struct Net {
    pub(in crate::bench) gen_ns: String,
    pub(in crate::bench) dut: String,
    pub(in crate::bench) sink: String,
    pub(in crate::bench) gen_mac: [u8; 6],
    pub(in crate::bench) dutin_mac: [u8; 6],
    /// The XDP counter on `sink0`.
    sink_prog: crate::trafficgen::Sink,
    /// The generator of this run.
    pub(in crate::bench) gen_kind: Kind,
}

/// The topology, with the generator this host allows (`live_frames`:
/// try live frames, printing which and why; else AF_PACKET, silently: the
/// caller says why).
pub(in crate::bench) fn build(t: &mut Topo, live_frames: bool) -> Result<Net, String> {
    let gen_ns = t.ns("gen")?;
    let dut = t.ns("dut")?;
    let sink = t.ns("sink")?;
    veth(&gen_ns, "gen0", &dut, "dutin")?;
    veth(&dut, "dutout", &sink, "sink0")?;
    addr(&gen_ns, "10.9.1.1/24", "gen0")?;
    addr(&dut, "10.9.1.2/24", "dutin")?;
    addr(&dut, "10.9.2.1/24", "dutout")?;
    addr(&dut, &format!("{VIP}/32"), "lo")?;
    for r in RIPS {
        addr(&sink, &format!("{r}/24"), "sink0")?;
    }
    run_cmd(&[
        "ip", "-n", &sink, "route", "add", "default", "via", "10.9.2.1",
    ])?;
    for knob in [
        "/proc/sys/net/ipv4/conf/all/rp_filter",
        "/proc/sys/net/ipv4/conf/default/rp_filter",
        "/proc/sys/net/ipv4/conf/dutin/rp_filter",
    ] {
        topo::ns_write(&dut, knob, "0")?;
    }
    // RPS: the kernel contenders' receive work on the DUT's CPU, not the
    // generator's.
    topo::ns_write(
        &dut,
        "/sys/class/net/dutin/queues/rx-0/rps_cpus",
        &format!("{:x}", 1u32 << DUT_CPU),
    )?;
    // The sink: an XDP program that counts and drops every IPv4 frame
    // (it also puts sink0 in NAPI mode, which frames redirected by XDP
    // need); threaded NAPI on the generator's CPU, ahead of the generator.
    let sink_prog = in_ns(&sink, || {
        crate::trafficgen::Sink::attach("sink0").map_err(|e| format!("sink on sink0: {e}"))
    })?;
    topo::threaded_napi(&sink, "sink0", GEN_CPU)?;
    for p in topo::napi_threads("sink0") {
        topo::chrt(p, "fifo1")?;
    }
    // The DUT's ingress in NAPI mode too (GRO on), threaded, on its CPU.
    topo::gro_on(&dut, "dutin")?;
    topo::threaded_napi(&dut, "dutin", DUT_CPU)?;
    // The DUT knows the real servers' MAC address from the start.
    let sink_mac = topo::mac(&sink, "sink0")?;
    let sm = mac_text(&sink_mac);
    for r in RIPS {
        run_cmd(&[
            "ip",
            "-n",
            &dut,
            "neigh",
            "replace",
            r,
            "lladdr",
            &sm,
            "dev",
            "dutout",
            "nud",
            "permanent",
        ])?;
    }
    let gen_mac = topo::mac(&gen_ns, "gen0")?;
    let dutin_mac = topo::mac(&dut, "dutin")?;
    // The generator: live frames unless the host refuses them (one frame
    // tried; the DUT does not forward yet), or the caller's AF_PACKET.
    let gen_kind = if live_frames {
        choose_generator(&gen_ns, gen_mac, dutin_mac)?
    } else {
        Kind::Packet
    };
    Ok(Net {
        gen_mac,
        dutin_mac,
        gen_ns,
        dut,
        sink,
        sink_prog,
        gen_kind,
    })
}

/// Live frames unless the host refuses them, printed with the reason.
fn choose_generator(gen_ns: &str, gen_mac: [u8; 6], dutin_mac: [u8; 6]) -> Result<Kind, String> {
    let (gen_kind, why) = generator::choose(
        gen_ns,
        "gen0",
        &generator::Frames::Udp(flows(gen_mac, dutin_mac, ip4(RIPS[0]), UdpCsum::Full)),
    )?;
    match why {
        None => println!(
            "packet generator: {} (BPF_PROG_TEST_RUN in live-frames mode, XDP_TX out of gen0, CPU {GEN_CPU})",
            gen_kind.name()
        ),
        Some(why) => println!(
            "packet generator: {} (sendmmsg out of gen0, CPU {GEN_CPU}) because {why}; every XDP \
             contender pays veth's skb-to-XDP copy and the generator may limit the fastest: \
             compare ratios within this run",
            gen_kind.name()
        ),
    }
    Ok(gen_kind)
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Load an nftables ruleset in `ns`.
pub(in crate::bench) fn nft(ns: &str, rules: &str) -> Result<(), String> {
    use std::io::Write;
    let mut c = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    if let Some(mut w) = c.stdin.take() {
        w.write_all(rules.as_bytes())
            .map_err(|e| format!("nft stdin: {e}"))?;
    }
    let o = c.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "nft -f failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(())
}

/// IPv4 frames the sink counted so far.
pub(in crate::bench) fn sink_count(n: &Net) -> Result<u64, String> {
    n.sink_prog
        .count()
        .map(|c| c.packets)
        .map_err(|e| format!("sink counter: {e}"))
}

/// The bench's traffic: 1024 UDP flows from the generator to `dst_ip`.
pub(in crate::bench) fn flows(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    dst_ip: [u8; 4],
    csum: UdpCsum,
) -> Flows {
    Flows {
        src_mac,
        dst_mac,
        src_ip: [10, 9, 1, 1],
        dst_ip,
        dst_port: PORT,
        sport_base: 10000,
        flows: 1024,
        csum,
    }
}

pub(in crate::bench) fn ip4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .unwrap_or([0; 4])
}
