//! `rvs bench conntable`: the connection table at scale, in process.
//!
//! Drives [`rvs_core::engine::Engine`] directly (no I/O), as
//! `crates/rvs-core/benches/engine.rs` does, with one TCP service of 10 DR
//! real servers:
//!
//! * **new connections per second**: SYNs of never-seen flows, each a
//!   lookup miss, a scheduling decision and an insert, until the table holds
//!   N entries (the rate over the whole fill, so it includes the table's
//!   growth);
//! * **bytes per entry**: growth of the process's resident memory over that
//!   fill, divided by N;
//! * **per-packet cost**: established packets of flows picked at random over
//!   the N entries (the lookups miss the CPU caches, as under real load).
//!
//! Baseline in the same run: restoring the frame, patching the flow into it
//! and parsing it (`rvs_wire::parse_frame`), the same work the measured loop
//! does around `Engine::process`: the floor under any per-packet decision.

use super::Row;
use core::net::{IpAddr, Ipv4Addr};
use etherparse::PacketBuilder;
use rvs_core::engine::{Action, Engine, EngineConfig, Frame, Hop, PortConfig, PortId};
use rvs_core::service::{ServiceConfig, ServiceKey};
use rvs_core::{Af, DestConfig, FwdMethod, Instant, Protocol};
use rvs_wire::EthernetAddress;
use std::hint::black_box;
use std::time::Instant as WallInstant;

const HEADROOM: usize = 128;
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
/// Offset of the IPv4 header in a frame buffer.
const IP: usize = HEADROOM + 14;

/// Client address and port of flow `i`: distinct for every `i < 2^26`.
pub fn client(i: u32) -> (Ipv4Addr, u16) {
    let addr = Ipv4Addr::from(0x6400_0000u32 + (i >> 6));
    (addr, 1024 + (i & 63) as u16 * 613 % 60000)
}

fn template(syn: bool) -> Result<Vec<u8>, String> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xc], [2, 0, 0, 0, 0, 1])
        .ipv4([100, 0, 0, 1], VIP.octets(), 64)
        .tcp(1024, 80, 1, 65535);
    let b = if syn { b.syn() } else { b.ack(1) };
    let mut v = vec![0u8; HEADROOM];
    b.write(&mut v, &[0u8; 6]).map_err(|e| e.to_string())?;
    Ok(v)
}

/// Restore `work` from `tpl` and patch in flow `i`'s client.
fn patch(work: &mut [u8], tpl: &[u8], i: u32) {
    let (addr, port) = client(i);
    work.copy_from_slice(tpl);
    work[IP + 12..IP + 16].copy_from_slice(&addr.octets());
    work[IP + 20..IP + 22].copy_from_slice(&port.to_be_bytes());
    rvs_wire::Ipv4Packet::new_unchecked(&mut work[IP..IP + 20]).fill_checksum();
}

fn process(e: &mut Engine, f: &mut [u8], now: Instant) -> Action {
    let len = f.len() - HEADROOM;
    e.process(
        Frame {
            buf: f,
            start: HEADROOM,
            len,
            ingress: PortId(0),
            fwmark: 0,
        },
        now,
    )
}

fn setup(max_conns: usize) -> Result<Engine, String> {
    let mut e = Engine::new(EngineConfig {
        max_conns,
        ..EngineConfig::default()
    });
    for p in 0..2u8 {
        e.set_port(
            PortId(p.into()),
            PortConfig {
                mac: EthernetAddress([2, 0, 0, 0, p, 1]),
                mtu: 1500,
                addr_v4: Some(Ipv4Addr::new(192, 168, p, 1)),
                addr_v6: None,
            },
        );
    }
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: IpAddr::V4(VIP),
        port: 80,
    };
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "wlc".into();
    e.add_service(key, cfg).map_err(|e| e.to_string())?;
    for i in 0..10u8 {
        let rs = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10 + i));
        let mut d = DestConfig::new(rs, 80);
        d.fwd = FwdMethod::Route;
        e.add_dest(&key, &d, Instant::ZERO)
            .map_err(|e| e.to_string())?;
        e.set_hop(
            rs,
            Hop {
                port: PortId(1),
                mac: EthernetAddress([2, 0, 0, 0, 1, 10 + i]),
            },
        );
    }
    // Nothing expires during the bench.
    e.set_timeouts(2_000_000, 2_000_000, 2_000_000)
        .map_err(|e| e.to_string())?;
    Ok(e)
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A pseudo-random walk over `0..n` (multiplicative hash), step `k`.
fn pick(k: u32, n: u32) -> u32 {
    (k.wrapping_mul(2_654_435_761) >> 3) % n.max(1)
}

/// Nanoseconds per restore, patch (client address, port, header checksum)
/// and parse of the frame: the baseline, the same work the measured loop
/// does around `Engine::process`.
fn baseline(iters: u32) -> Result<f64, String> {
    let tpl = template(false)?;
    let mut work = tpl.clone();
    let start = WallInstant::now();
    for k in 0..iters {
        patch(&mut work, &tpl, k & 0xffff);
        black_box(rvs_wire::parse_frame(black_box(&work[HEADROOM..])).is_ok());
    }
    Ok(start.elapsed().as_nanos() as f64 / f64::from(iters.max(1)))
}

/// Fill a table with `n` connections and measure; one row.
fn at_scale(n: u32, iters: u32) -> Result<Row, String> {
    let mut e = setup(n as usize + (n as usize / 4) + 1024)?;
    let syn = template(true)?;
    let ack = template(false)?;
    let mut work = syn.clone();
    let before = rss_bytes();
    let start = WallInstant::now();
    for i in 0..n {
        patch(&mut work, &syn, i);
        if !matches!(
            process(&mut e, &mut work, Instant::ZERO),
            Action::Forward { .. }
        ) {
            return Err(format!(
                "new connection {i} was not forwarded (counters {:?})",
                e.counters()
            ));
        }
    }
    let fill = start.elapsed().as_secs_f64();
    let grown = rss_bytes().saturating_sub(before);
    let entries = e.conns().len() as f64;
    let start = WallInstant::now();
    let now = Instant::from_secs(1);
    for k in 0..iters {
        patch(&mut work, &ack, pick(k, n));
        black_box(process(&mut e, &mut work, now));
    }
    let per_pkt = start.elapsed().as_nanos() as f64 / f64::from(iters.max(1));
    let forwarded = e.counters().forwarded;
    if forwarded < u64::from(n) + u64::from(iters) {
        return Err(format!(
            "only {forwarded} of {} packets were forwarded",
            u64::from(n) + u64::from(iters)
        ));
    }
    Ok(Row::new("conntable", format!("rvs dr {}", count_name(n)))
        .with("entries", Some(entries))
        .with("bytes_per_entry", Some(grown as f64 / entries.max(1.0)))
        .with("ns_per_pkt", Some(per_pkt))
        .with("new_conns_per_s", Some(f64::from(n) / fill.max(1e-9))))
}

/// `1M`, `10M`, `200k`: a table size for humans.
pub fn count_name(n: u32) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Run the family: the baseline, then each table size (quick: 1 M only).
pub fn run(quick: bool) -> Result<Vec<Row>, String> {
    let (sizes, iters): (&[u32], u32) = if quick {
        (&[1_000_000], 1_000_000)
    } else {
        (&[1_000_000, 10_000_000], 5_000_000)
    };
    let mut rows = vec![
        Row::new("conntable", "baseline copy+patch+parse")
            .with("entries", None)
            .with("bytes_per_entry", None)
            .with("ns_per_pkt", Some(baseline(iters)?))
            .with("new_conns_per_s", None),
    ];
    for &n in sizes {
        rows.push(at_scale(n, iters)?);
    }
    Ok(rows)
}
