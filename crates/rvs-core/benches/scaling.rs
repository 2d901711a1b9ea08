//! Does the packet path scale with cores? The engine plus a worker's
//! per-frame work (the frame copied out of an RX ring into a buffer with
//! headroom, processed, copied into a TX ring), no NIC, in four shapes
//! measured in one run:
//!
//! - `shared, 1 thread` / `shared, 2 threads`: one engine behind one
//!   `Mutex`, locked once per batch of 64 frames — `rvsd --engines shared`;
//! - `per-worker, 1 thread` / `per-worker, 2 threads`: one engine replica
//!   per worker, no shared lock (the real servers' counts and the
//!   schedulers' state shared, as rvsd links them); every frame is steered
//!   ([`Engine::steer`]) and one another replica owns is copied into a
//!   hand-off batch for its worker (a channel per worker), as
//!   `rvsd --engines per-worker` does.
//!
//! Frames reach the threads as RSS would spread them (alternately, which
//! the steering hash ignores), so with 2 workers about half are handed
//! over. Workloads: established flows (100k connections, ACKs), and new
//! flows (a SYN each, from distinct clients), with `wlc` (whose picks read
//! the servers' counts: shared between replicas as atomics) and `rr`
//! (whose position the replicas share: one compare-and-swap word per
//! service), and `rr` with a position per replica (`rr apart`, the
//! price of sharing it); `lblc` with its table shared (a concurrent map)
//! and apart. Each figure is the best of
//! three runs; the ratios are within this run.
//!
//! `cargo bench -p rvs-core --bench scaling` (BENCHMARKS.md has a run).
//!
//! `-- --pairs N` measures the per-worker shapes in paired rounds instead,
//! as noise on a shared host calls for: one thread, two threads, the bound,
//! one thread, two threads, … (single runs, `N` of each 2-thread shape);
//! each 2-thread figure is set against the mean of the 1-thread runs
//! before and after it, and the ratios are given as a mean with its 95 %
//! interval. `--only TEXT` keeps the workloads whose name contains it.

#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

mod common;

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant as Wall};

use common::*;
use rvs_core::engine::{Action, Engine, steer_owner};
use rvs_core::{FwdMethod, Instant};
use rvs_testsupport::mean_ci95;

const BATCH: usize = 64;
const ESTABLISHED: u32 = 100_000;
const EST_FRAMES: usize = 2_000_000;
const NEW_FRAMES: usize = 600_000;
const REPS: usize = 3;

/// What one worker's RX ring holds: frames without headroom.
type Ring = Vec<Vec<u8>>;

/// A worker's per-frame work around the engine: copy in (headroom), process,
/// copy what is sent into the TX ring. Returns whether it was forwarded.
fn work(e: &mut Engine, frame: &[u8], buf: &mut Vec<u8>, tx: &mut Vec<u8>, now: Instant) -> bool {
    buf.clear();
    buf.resize(HEADROOM, 0);
    buf.extend_from_slice(frame);
    match run(e, buf, now) {
        Action::Forward { start, len, .. } => {
            tx.clear();
            tx.extend_from_slice(&buf[start..start + len]);
            true
        }
        _ => false,
    }
}

fn split(frames: &[Vec<u8>], n: usize) -> Vec<Ring> {
    let mut rings = vec![Vec::new(); n];
    for (i, f) in frames.iter().enumerate() {
        rings[i % n].push(f[HEADROOM..].to_vec());
    }
    rings
}

/// Frames through one shared engine, `rings.len()` threads.
fn shared(engine: Engine, rings: &[Ring], now: Instant) -> (Duration, u64) {
    let engine = Mutex::new(engine);
    let t0 = Wall::now();
    let fwd: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = rings
            .iter()
            .map(|ring| {
                let engine = &engine;
                s.spawn(move || {
                    let (mut buf, mut tx, mut fwd) = (Vec::new(), Vec::new(), 0u64);
                    for chunk in ring.chunks(BATCH) {
                        let mut e = engine.lock().unwrap();
                        for f in chunk {
                            fwd += u64::from(work(&mut e, f, &mut buf, &mut tx, now));
                        }
                    }
                    fwd
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    (t0.elapsed(), fwd)
}

/// A hand-off batch: frames back to back, their lengths.
#[derive(Default)]
struct Handoff {
    /// Reused without clearing: a frame's headroom is not zeroed again.
    data: Vec<u8>,
    used: usize,
    lens: Vec<u16>,
}

enum Msg {
    Frames(Handoff),
    Done,
}

/// Frames through one replica per thread, steered.
fn per_worker(engines: Vec<Engine>, rings: &[Ring], now: Instant) -> (Duration, u64) {
    let n = engines.len();
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel::<Msg>()).unzip();
    let t0 = Wall::now();
    let fwd: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = engines
            .into_iter()
            .zip(rings)
            .zip(rxs)
            .enumerate()
            .map(|(me, ((mut e, ring), rx))| {
                let txs = txs.clone();
                s.spawn(move || {
                    let (mut buf, mut tx, mut fwd) = (Vec::new(), Vec::new(), 0u64);
                    let mut out: Vec<Handoff> = (0..n).map(|_| Handoff::default()).collect();
                    let mut spare: Vec<Handoff> = Vec::new();
                    let mut done = 0;
                    let drain = |e: &mut Engine,
                                 m: Handoff,
                                 buf: &mut Vec<u8>,
                                 tx: &mut Vec<u8>,
                                 spare: &mut Vec<Handoff>|
                     -> u64 {
                        // Each frame after its own headroom: processed
                        // where it is, without a copy.
                        let _ = buf;
                        let mut m = m;
                        let mut fwd = 0;
                        let mut at = 0;
                        for &l in &m.lens {
                            let end = at + HEADROOM + l as usize;
                            let f = &mut m.data[at..end];
                            at = end;
                            if let Action::Forward { start, len, .. } = run(e, f, now) {
                                tx.clear();
                                tx.extend_from_slice(&f[start..start + len]);
                                fwd += 1;
                            }
                        }
                        spare.push(m);
                        fwd
                    };
                    for chunk in ring.chunks(BATCH) {
                        for f in chunk {
                            // One worker owns everything: nothing to steer.
                            let o = match n {
                                1 => me,
                                _ => e
                                    .steer(f, rvs_core::engine::PortId(0))
                                    .map_or(me, |h| steer_owner(h, n)),
                            };
                            if o == me {
                                fwd += u64::from(work(&mut e, f, &mut buf, &mut tx, now));
                            } else {
                                let h = &mut out[o];
                                let (at, end) = (h.used + HEADROOM, h.used + HEADROOM + f.len());
                                if h.data.len() < end {
                                    h.data.resize(end, 0);
                                }
                                h.data[at..end].copy_from_slice(f);
                                h.used = end;
                                h.lens.push(f.len() as u16);
                            }
                        }
                        for (o, h) in out.iter_mut().enumerate() {
                            if !h.lens.is_empty() {
                                let mut next = spare.pop().unwrap_or_default();
                                next.used = 0;
                                next.lens.clear();
                                let full = std::mem::replace(h, next);
                                txs[o].send(Msg::Frames(full)).unwrap();
                            }
                        }
                        while let Ok(m) = rx.try_recv() {
                            match m {
                                Msg::Frames(m) => {
                                    fwd += drain(&mut e, m, &mut buf, &mut tx, &mut spare)
                                }
                                Msg::Done => done += 1,
                            }
                        }
                    }
                    for (o, t) in txs.iter().enumerate() {
                        if o != me {
                            t.send(Msg::Done).unwrap();
                        }
                    }
                    while done < n - 1 {
                        match rx.recv().unwrap() {
                            Msg::Frames(m) => {
                                fwd += drain(&mut e, m, &mut buf, &mut tx, &mut spare)
                            }
                            Msg::Done => done += 1,
                        }
                    }
                    fwd
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    (t0.elapsed(), fwd)
}

/// The bound: each thread its own engine and only frames it owns (no
/// steering, no hand-off: a perfectly partitioned input).
fn partitioned(engines: Vec<Engine>, rings: &[Ring], now: Instant) -> (Duration, u64) {
    let t0 = Wall::now();
    let fwd: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = engines
            .into_iter()
            .zip(rings)
            .map(|(mut e, ring)| {
                s.spawn(move || {
                    let (mut buf, mut tx, mut fwd) = (Vec::new(), Vec::new(), 0u64);
                    for f in ring {
                        fwd += u64::from(work(&mut e, f, &mut buf, &mut tx, now));
                    }
                    fwd
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    (t0.elapsed(), fwd)
}

/// Frames split by owner, as if RSS steered them (the bound).
fn by_owner(frames: &[Vec<u8>], rs: &[Engine]) -> Vec<Ring> {
    let n = rs.len();
    let mut rings = vec![Vec::new(); n];
    for f in frames {
        let o = steer_owner(
            rs[0]
                .steer(&f[HEADROOM..], rvs_core::engine::PortId(0))
                .unwrap(),
            n,
        );
        rings[o].push(f[HEADROOM..].to_vec());
    }
    rings
}

/// `n` replicas with scheduler `sched`, holding between them the
/// `ESTABLISHED` connections, each its own (steered as their packets will
/// be).
fn replicas(n: usize, established: bool, sched: &str, apart: bool) -> Vec<Engine> {
    let mut rs: Vec<Engine> = (0..n)
        .map(|_| {
            let mut e = setup(FwdMethod::Route);
            let key = rvs_core::service::ServiceKey::Addr {
                proto: rvs_core::Protocol::Tcp,
                addr: VIP.into(),
                port: 80,
            };
            let mut cfg = rvs_core::service::ServiceConfig::new(rvs_core::Af::Inet);
            cfg.scheduler = sched.into();
            e.edit_service(&key, cfg).unwrap();
            e
        })
        .collect();
    if n > 1 {
        // As rvsd links them: the servers' counts shared (atomics), one
        // count of the tables' entries against their bound, and the
        // schedulers' state (rr/wrr's position: one compare-and-swap
        // word per service; lblc's table: a concurrent map).
        let (first, rest) = rs.split_at_mut(1);
        first[0].share_dest_totals(None);
        first[0].share_conn_bound(None);
        for r in rest {
            r.share_dest_totals(Some(&first[0]));
            r.share_conn_bound(Some(&first[0]));
            if !apart {
                r.share_sched_state(&first[0]);
            }
        }
    }
    if established {
        for i in 0..ESTABLISHED {
            let c = client(i);
            for syn in [true, false] {
                let mut f = frame(c, syn);
                let o = steer_owner(
                    rs[0]
                        .steer(&f[HEADROOM..], rvs_core::engine::PortId(0))
                        .unwrap(),
                    n,
                );
                assert!(matches!(
                    run(&mut rs[o], &mut f, Instant::ZERO),
                    Action::Forward { .. }
                ));
            }
        }
    }
    rs
}

fn best(mut f: impl FnMut() -> (Duration, u64), frames: usize) -> f64 {
    let mut best = 0f64;
    for _ in 0..REPS {
        let (d, fwd) = f();
        assert_eq!(fwd as usize, frames, "every frame forwarded");
        best = best.max(frames as f64 / d.as_secs_f64() / 1e6);
    }
    best
}

/// The per-worker shapes in `pairs` paired rounds (see the module docs):
/// prints each 2-thread shape's ratio to one thread, mean and 95 %
/// interval, and the rates.
fn paired(
    name: &str,
    frames: &[Vec<u8>],
    pairs: usize,
    established: bool,
    sched: &str,
    apart: bool,
) {
    let now = Instant::ZERO;
    let n = frames.len();
    let once = |(d, fwd): (Duration, u64)| {
        assert_eq!(fwd as usize, n, "every frame forwarded");
        n as f64 / d.as_secs_f64() / 1e6
    };
    let one = || {
        once(per_worker(
            replicas(1, established, sched, apart),
            &split(frames, 1),
            now,
        ))
    };
    let (mut ones, mut twos, mut bounds) = (vec![one()], Vec::new(), Vec::new());
    for _ in 0..pairs {
        twos.push(once(per_worker(
            replicas(2, established, sched, apart),
            &split(frames, 2),
            now,
        )));
        let rs = replicas(2, established, sched, apart);
        let rings = by_owner(frames, &rs);
        bounds.push(once(partitioned(rs, &rings, now)));
        ones.push(one());
    }
    let against = |x: &[f64]| -> Vec<f64> {
        x.iter()
            .zip(ones.windows(2))
            .map(|(v, w)| v / ((w[0] + w[1]) / 2.0))
            .collect()
    };
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let (r2, h2) = mean_ci95(&against(&twos));
    let (rb, hb) = mean_ci95(&against(&bounds));
    println!(
        "{name:>23}: {pairs} rounds; per-worker 2 threads / 1 thread {r2:.3} ± {h2:.3} \
         (95 %); bound (input pre-partitioned) / 1 thread {rb:.3} ± {hb:.3}; \
         mean Mpps: 1 thread {:.2}, 2 threads {:.2}, bound {:.2}",
        mean(&ones),
        mean(&twos),
        mean(&bounds),
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it once, small.
    let args: Vec<String> = std::env::args().collect();
    // A flag's value; a flag given without one stops the run.
    let arg = |flag: &str| {
        args.iter().position(|a| a == flag).map(|i| {
            args.get(i + 1)
                .filter(|v| !v.starts_with("--"))
                .cloned()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        })
    };
    let pairs: Option<usize> = arg("--pairs").map(|p| {
        p.parse()
            .unwrap_or_else(|_| panic!("--pairs N: N rounds, a number, not {p:?}"))
    });
    let only = arg("--only");
    let quick = !args.iter().any(|a| a == "--bench");
    let (est_frames, new_frames) = if quick {
        (20_000, 20_000)
    } else {
        (EST_FRAMES, NEW_FRAMES)
    };
    let now = Instant::ZERO;

    // Established: ACKs of the 100k connections, round and round.
    let est: Vec<Vec<u8>> = (0..est_frames)
        .map(|i| frame(client(i as u32 % ESTABLISHED), false))
        .collect();
    // New flows: one SYN per client, none seen before.
    let new: Vec<Vec<u8>> = (0..new_frames)
        .map(|i| frame(client(ESTABLISHED + i as u32), true))
        .collect();

    match pairs {
        Some(p) => println!(
            "packet path scaling (engine + per-frame copy in/out, DR, 10 servers), {p} paired rounds:"
        ),
        None => println!(
            "packet path scaling (engine + per-frame copy in/out, DR, 10 servers), best of {REPS}, Mpps:"
        ),
    }
    for (name, frames, established, sched, apart) in [
        ("established", &est, true, "wlc", false),
        ("new flow", &new, false, "wlc", false),
        ("new flow", &new, false, "rr", false),
        // The price of one rr position for all replicas (rvsd's way): the
        // same with a position per replica (before 2026-12-07).
        ("new flow", &new, false, "rr", true),
        // lblc's one table for all replicas: every SYN to the one VIP
        // reads (and touches) its one entry.
        ("new flow", &new, false, "lblc", false),
        ("new flow", &new, false, "lblc", true),
    ] {
        let name = format!("{name}, {sched}{}", if apart { " apart" } else { "" });
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        if let Some(p) = pairs {
            paired(&name, frames, p.max(2), established, sched, apart);
            continue;
        }
        let n = frames.len();
        let shared_1 = best(
            || {
                shared(
                    replicas(1, established, sched, apart).remove(0),
                    &split(frames, 1),
                    now,
                )
            },
            n,
        );
        let shared_2 = best(
            || {
                shared(
                    replicas(1, established, sched, apart).remove(0),
                    &split(frames, 2),
                    now,
                )
            },
            n,
        );
        let pw_1 = best(
            || {
                per_worker(
                    replicas(1, established, sched, apart),
                    &split(frames, 1),
                    now,
                )
            },
            n,
        );
        let pw_2 = best(
            || {
                per_worker(
                    replicas(2, established, sched, apart),
                    &split(frames, 2),
                    now,
                )
            },
            n,
        );
        let bound = best(
            || {
                let rs = replicas(2, established, sched, apart);
                let rings = by_owner(frames, &rs);
                partitioned(rs, &rings, now)
            },
            n,
        );
        println!(
            "{name:>23}: shared 1 thread {shared_1:.2}, 2 threads {shared_2:.2} ({:.2}x); \
             per-worker 1 thread {pw_1:.2} ({:.2}x shared), 2 threads {pw_2:.2} ({:.2}x); \
             bound (2 threads, input pre-partitioned, no steering) {bound:.2} ({:.2}x shared 1 thread)",
            shared_2 / shared_1,
            pw_1 / shared_1,
            pw_2 / pw_1,
            bound / shared_1,
        );
    }
}
