// SPDX-License-Identifier: GPL-2.0-or-later
//! A fuzz harness on stable Rust for what a BFD neighbour (or anyone who
//! can reach port 3784) sends: mutated and random datagrams through
//! [`Control::parse`], each verdict checked against the rules written out
//! again bit by bit here, each accepted packet re-emitted and parsed to
//! the same value, and fed to a session with time moving, which must
//! never panic and only send packets that parse.
//!
//! Deterministic, as the other harnesses (README, "Fuzzing"): a seeded
//! xorshift; a failure reproduces from `RVS_FUZZ_SEED` and its iteration.
//! `cargo test -p rvs --bin rvs fuzz_bfd_packets` runs `RVS_FUZZ_ITERS`
//! inputs (default 100 000: about 0.1 s in a debug build).

use std::time::{Duration, Instant};

use rvs_testsupport::FuzzRng as Rng;

use super::session::{Params, Session};
use super::wire::{Control, State};

/// The verdict the RFC's rules give, written independently of `parse`.
fn oracle(b: &[u8]) -> bool {
    if b.len() < 24 || b[0] >> 5 != 1 {
        return false;
    }
    let (len, auth) = (usize::from(b[3]), b[1] & 0x04 != 0);
    let state = b[1] >> 6;
    let your = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    let my = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    len >= 24
        && len <= b.len()
        && b[2] != 0
        && b[1] & 0x01 == 0
        && my != 0
        && (your != 0 || state <= 1)
        && b[1] & 0x30 != 0x30
        && b[0] & 0x1f <= 8
        && !auth
}

fn corpus() -> Vec<Vec<u8>> {
    let base = Control::down(0x1234, 0, 1_000_000, 100_000);
    let mut c = Vec::new();
    for (state, your) in [
        (State::Down, 0),
        (State::Init, 7),
        (State::Up, 7),
        (State::AdminDown, 7),
    ] {
        for (poll, fin) in [(false, false), (true, false), (false, true)] {
            let p = Control {
                state,
                your_discr: your,
                poll,
                fin,
                ..base
            };
            c.push(p.emit().to_vec());
        }
    }
    // With an authentication section (simple password, type 1).
    let mut a = base.emit().to_vec();
    a[1] |= 0x04;
    a[3] = 24 + 7;
    a.extend([1, 7, 1, b'p', b'a', b's', b's']);
    c.push(a);
    c
}

fn mutate(r: &mut Rng, b: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    match r.below(6) {
        0 if !b.is_empty() => {
            let i = r.below(b.len());
            b[i] ^= 1 << r.below(8);
        }
        1 => b.truncate(r.below(b.len() + 1)),
        2 => {
            let n = r.below(40);
            let extra = r.bytes(n);
            b.extend(extra);
        }
        3 if b.len() > 3 => b[3] = r.next() as u8,
        4 if b.len() > 1 => b[1] = r.next() as u8,
        _ => *b = corpus[r.below(corpus.len())].clone(),
    }
}

#[test]
fn fuzz_bfd_packets() {
    let (iters, seed) = rvs_testsupport::fuzz_env(100_000, 0xbfd_5eed);
    let mut r = Rng(seed | 1);
    let corpus = corpus();
    let t0 = Instant::now();
    let mut now = t0;
    let p = Params {
        min_tx: 10_000,
        min_rx: 10_000,
        idle_tx: 1_000_000,
        mult: 3,
        passive: false,
    };
    let mut s = Session::new(p, 7, now);
    let mut b = corpus[0].clone();
    let mut accepted = 0u64;
    for i in 0..iters {
        let rounds = 1 + r.below(4);
        for _ in 0..rounds {
            mutate(&mut r, &mut b, &corpus);
        }
        if r.below(20) == 0 {
            let n = r.below(64);
            b = r.bytes(n);
        }
        let got = Control::parse(&b);
        assert_eq!(
            got.is_ok(),
            oracle(&b),
            "seed {seed:#x} iteration {i}: {b:02x?} -> {got:?}"
        );
        if let Ok(c) = got {
            accepted += 1;
            assert_eq!(Control::parse(&c.emit()), Ok(c), "iteration {i}");
            s.on_packet(now, &c);
        }
        now += Duration::from_micros(r.below(200_000) as u64);
        s.on_timeout(now);
        if let Some(out) = s.poll_transmit(now, r.next() as u32) {
            assert_eq!(Control::parse(&out.emit()), Ok(out), "iteration {i}");
        }
        while s.poll_event().is_some() {}
    }
    eprintln!(
        "{iters} datagrams in {:?}: {accepted} accepted, 0 panics",
        t0.elapsed()
    );
}
