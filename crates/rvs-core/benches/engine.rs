//! Per-packet cost of `Engine::process` with 1 M connections in the table,
//! and the memory each connection entry costs.
//!
//! Run: `cargo bench -p rvs-core --bench engine`
//! (results are summarised in BENCHMARKS.md).

// A harness, not the engine: it reads its settings, measures and reports
// (crates/rvs-core/clippy.toml keeps those out of the engine).
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_macros,
    clippy::disallowed_types
)]

mod common;
use common::*;

use core::net::Ipv4Addr;
use core::time::Duration;
use std::hint::black_box;
use std::time::Instant as WallInstant;

use criterion::{Criterion, criterion_group, criterion_main};
use rvs_core::engine::Action;
use rvs_core::{FwdMethod, Instant};

const CONNS: u32 = 1_000_000;

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn bench_established(c: &mut Criterion) {
    for (name, fwd) in [
        ("dr", FwdMethod::Route),
        ("nat", FwdMethod::Masq),
        ("tun", FwdMethod::Tunnel),
    ] {
        let mut e = setup(fwd);
        let before = rss_bytes();
        fill(&mut e, CONNS);
        let after = rss_bytes();
        if name == "dr" {
            eprintln!(
                "memory: {} connections, RSS grew by {} bytes = {:.1} bytes/connection",
                e.conns().len(),
                after - before,
                (after - before) as f64 / e.conns().len() as f64
            );
        }
        // One hot flow (cache-resident) and a rotation over 64 Ki flows spread
        // across the 1 M table (cache misses, as under real load).
        // Each iteration restores the frame from a pristine copy (a ~70-byte
        // memcpy, included in the figure): NAT and TUN rewrite it in place.
        let hot = frame(client(12345), false);
        let mut work = hot.clone();
        let mut g = c.benchmark_group(format!("established/{name}"));
        // Baseline in the same run: restoring and parsing the frame alone
        // (rvs-wire), the floor under any per-packet decision.
        if name == "dr" {
            g.bench_function("baseline-copy-and-parse", |b| {
                b.iter(|| {
                    work.copy_from_slice(&hot);
                    black_box(rvs_wire::parse_frame(black_box(&work[HEADROOM..])).is_ok())
                })
            });
        }
        g.bench_function("hot-flow", |b| {
            b.iter(|| {
                work.copy_from_slice(&hot);
                black_box(run(&mut e, &mut work, Instant::from_secs(1)))
            })
        });
        // A rotation over 64 Ki flows spread across the 1 M table: the
        // table's cache misses, as under real load. The frame itself stays
        // hot (as a just-received one is): each iteration patches the client
        // address and port into it and refills the IPv4 header checksum.
        let flows: Vec<(Ipv4Addr, u16)> = (0..65536u32)
            .map(|i| client(i.wrapping_mul(2_654_435_761) % CONNS))
            .collect();
        let mut k = 0usize;
        let ip = HEADROOM + 14;
        g.bench_function("1M-table-random-flow", |b| {
            b.iter(|| {
                k = (k + 1) & 65535;
                let (addr, port) = flows[k];
                work.copy_from_slice(&hot);
                work[ip + 12..ip + 16].copy_from_slice(&addr.octets());
                work[ip + 20..ip + 22].copy_from_slice(&port.to_be_bytes());
                rvs_wire::Ipv4Packet::new_unchecked(&mut work[ip..ip + 20]).fill_checksum();
                black_box(run(&mut e, &mut work, Instant::from_secs(1)))
            })
        });
        g.finish();
        // Every iteration must have been forwarded, not dropped or passed.
        work.copy_from_slice(&hot);
        assert!(matches!(
            run(&mut e, &mut work, Instant::from_secs(1)),
            Action::Forward { .. }
        ));
        let fwd = e.counters().forwarded;
        assert_eq!(
            e.counters().passed + e.counters().drop_no_conn,
            0,
            "{name}: {:?}",
            e.counters()
        );
        assert!(fwd > 0);
    }
}

fn bench_new_flow(c: &mut Criterion) {
    let mut e = setup(FwdMethod::Route);
    // The clock moves 61 s per chunk below: with the default 15 minutes the
    // 1 M established entries would expire after 15 chunks and the SYNs
    // would meet an empty table. The longest timeout `--set` takes (24
    // days) keeps them for the whole run (checked at the end).
    e.set_timeouts(i32::MAX as u32 / 1000, 0, 0).unwrap();
    fill(&mut e, CONNS);
    let mut f = frame((Ipv4Addr::new(1, 0, 0, 0), 1), true);
    let mut t = Instant::from_secs(10);
    let mut n: u32 = 0;
    c.bench_function("new-flow/dr/1M-table", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(200_000);
                let start = WallInstant::now();
                for _ in 0..chunk {
                    n = n.wrapping_add(1);
                    // A new client address and port per SYN. The IPv4
                    // header checksum is refilled (20 bytes, included).
                    let ip = HEADROOM + 14;
                    f[ip + 12..ip + 16].copy_from_slice(&(0x0100_0000 + n).to_be_bytes());
                    f[ip + 20..ip + 22].copy_from_slice(&((n as u16) | 1).to_be_bytes());
                    rvs_wire::Ipv4Packet::new_unchecked(&mut f[ip..ip + 20]).fill_checksum();
                    black_box(run(&mut e, &mut f, t));
                }
                spent += start.elapsed();
                left -= chunk;
                // Untimed: let this chunk's SYN_RECV entries (60 s) expire so the
                // table stays at 1 M established + at most one chunk.
                t = t + Duration::from_secs(61);
                e.poll(t);
            }
            spent
        })
    });
    let c = e.counters();
    assert_eq!(
        c.passed + c.drop_no_conn + c.drop_table_full,
        0,
        "new flows: {c:?}"
    );
    assert!(
        e.conns().len() >= CONNS as usize,
        "the established entries outlived the run: {} left",
        e.conns().len()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(4));
    targets = bench_established, bench_new_flow
}
criterion_main!(benches);
