//! The cost of connection sync (issue 15): what a master daemon adds to
//! each packet, and how fast connections go from one engine to another
//! through the IPVS sync messages (a backup learning a master's table, or
//! rvsd's restart hand-over).
//!
//! Run: `cargo bench -p rvs-core --bench sync`
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

use core::time::Duration;
use std::hint::black_box;
use std::time::Instant as WallInstant;

use criterion::{Criterion, criterion_group, criterion_main};
use rvs_core::{FwdMethod, Instant};
use rvs_wire::ipvs_sync::{Message, SyncBuffer, SyncConn, Version};

const CONNS: u32 = 100_000;

/// Per packet of an established flow: the master daemon off, then on (the
/// sync decision after every packet; the queue drained as rvsd's sync
/// thread drains it, every 1024 packets here, in both runs alike).
fn bench_master_cost(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync/established-hot-flow");
    for master in [false, true] {
        let mut e = setup(FwdMethod::Route);
        fill(&mut e, CONNS);
        e.set_sync_master(master);
        let hot = frame(client(12345), false);
        let mut work = hot.clone();
        let mut out = Vec::new();
        let mut k = 0u32;
        g.bench_function(if master { "master-on" } else { "master-off" }, |b| {
            b.iter(|| {
                k = k.wrapping_add(1);
                if k.is_multiple_of(1024) {
                    out.clear();
                    e.take_sync(&mut out, usize::MAX);
                }
                work.copy_from_slice(&hot);
                black_box(run(&mut e, &mut work, Instant::from_secs(1)))
            })
        });
    }
    g.finish();
}

/// 100 000 connections: every entry taken from the master's table, encoded
/// into 1472-byte messages, decoded and applied by a backup engine with the
/// same service (the whole table once, as a backup learns it or rvsd's
/// restart hands it over; the network aside).
fn bench_transfer(c: &mut Criterion) {
    let mut m = setup(FwdMethod::Route);
    fill(&mut m, CONNS);
    let mut taken = Vec::new();
    m.sync_snapshot(&mut taken);
    let entries: Vec<SyncConn<'static>> = taken.into_iter().map(|e| e.conn).collect();
    assert_eq!(entries.len(), CONNS as usize);
    let mut g = c.benchmark_group("sync/100k-connections");
    g.sample_size(10);
    g.bench_function("encode", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = WallInstant::now();
                black_box(encode(&entries));
                spent += start.elapsed();
            }
            spent
        })
    });
    let msgs = encode(&entries);
    eprintln!(
        "100k connections: {} messages of at most 1472 bytes, {} bytes",
        msgs.len(),
        msgs.iter().map(Vec::len).sum::<usize>()
    );
    g.bench_function("decode-and-apply", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let mut backup = setup(FwdMethod::Route);
                let start = WallInstant::now();
                for m in &msgs {
                    let msg = Message::parse(m).expect("message");
                    for e in msg.conns() {
                        backup.apply_sync(&e.expect("entry"), Version::V1, Instant::from_secs(2));
                    }
                }
                spent += start.elapsed();
                assert_eq!(backup.conns().len(), CONNS as usize);
            }
            spent
        })
    });
    g.finish();
}

fn encode(entries: &[SyncConn<'_>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut sb = SyncBuffer::new(vec![0u8; 1500], Version::V1, 0, 1472).expect("buffer");
    for e in entries {
        if !sb.try_push(e).expect("entry") {
            out.push(sb.as_bytes().to_vec());
            sb.reset();
            sb.try_push(e).expect("entry");
        }
    }
    if !sb.is_empty() {
        out.push(sb.as_bytes().to_vec());
    }
    out
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(4));
    targets = bench_master_cost, bench_transfer
}
criterion_main!(benches);
