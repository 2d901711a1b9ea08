//! Tests of the `mh` scheduler (`sched/mh.rs`).

use core::net::IpAddr;

use proptest::prelude::*;

use super::super::hash::support::*;
use super::*;
use crate::sched::SCHED_FLAG2;

/// SipHash-c-d written from the description (reference §4.14 and the
/// SipHash paper), independent of the `siphasher` crate.
fn siphash_ref(c: usize, d: usize, k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let mut v = [
        0x736f_6d65_7073_6575 ^ k0,
        0x646f_7261_6e64_6f6d ^ k1,
        0x6c79_6765_6e65_7261 ^ k0,
        0x7465_6462_7974_6573 ^ k1,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13);
        v[1] ^= v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16);
        v[3] ^= v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21);
        v[3] ^= v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17);
        v[1] ^= v[2];
        v[2] = v[2].rotate_left(32);
    }
    let compress = |m: u64, v: &mut [u64; 4], rounds: usize| {
        v[3] ^= m;
        for _ in 0..rounds {
            round(v);
        }
        v[0] ^= m;
    };
    let mut chunks = msg.chunks_exact(8);
    for ch in &mut chunks {
        let m = u64::from_le_bytes(ch.try_into().unwrap());
        compress(m, &mut v, c);
    }
    let mut b = (msg.len() as u64 & 0xff) << 56;
    for (i, &byte) in chunks.remainder().iter().enumerate() {
        b |= u64::from(byte) << (8 * i);
    }
    compress(b, &mut v, c);
    v[2] ^= 0xff;
    for _ in 0..d {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[test]
fn reference_siphash_matches_the_paper() {
    // SipHash-2-4 vectors: key 00..0f; empty message and message 00..0e.
    let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
    let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
    assert_eq!(siphash_ref(2, 4, k0, k1, &[]), 0x726f_db47_dd0e_0e31);
    let msg: Vec<u8> = (0..15).collect();
    assert_eq!(siphash_ref(2, 4, k0, k1, &msg), 0xa129_ca61_49be_45e5);
}

#[test]
fn hsiphash_is_siphash_1_3_of_the_le_u32() {
    // hsiphash on 64-bit: b = (4 << 56) | v; v3 ^= b; 1 round; v0 ^= b;
    // v2 ^= 0xff; 3 rounds; low 32 bits of v0 ^ v1 ^ v2 ^ v3.
    for key in [HASH1, HASH2, (0, 0), (u64::MAX, 1)] {
        for v in [0u32, 1, 80, 0x0A00_0001, 0xC000_0201, u32::MAX, 0xDEAD_BEEF] {
            let want = siphash_ref(1, 3, key.0, key.1, &v.to_le_bytes()) as u32;
            assert_eq!(hsiphash_u32(key, v), want, "key {key:?} v {v:#x}");
        }
    }
}

#[test]
fn hashkey_sums_offset_port_and_fold() {
    let a: IpAddr = "10.0.0.1".parse().unwrap();
    assert_eq!(
        hashkey(HASH1, &a, 80, 7),
        hsiphash_u32(HASH1, 7 + 80 + 0x0A00_0001)
    );
    let b: IpAddr = "255.255.255.255".parse().unwrap();
    assert_eq!(hashkey(HASH2, &b, 2, 0), hsiphash_u32(HASH2, 1));
}

fn mh(dests: &[Dest]) -> Maglev {
    let mut s = Maglev::default();
    init(&mut s, dests);
    s
}

/// Slots per dest id, in list order of `dests`.
fn counts(s: &Maglev, dests: &[Dest]) -> Vec<usize> {
    dests
        .iter()
        .map(|d| {
            s.table
                .iter()
                .filter(|e| matches!(e, Some((id, _)) if *id == d.id))
                .count()
        })
        .collect()
}

fn owners(s: &Maglev) -> Vec<u32> {
    s.table
        .iter()
        .map(|e| e.map_or(0, |(id, _)| id.0))
        .collect()
}

#[test]
fn table_is_fully_populated_and_deterministic() {
    let dests = list(&[1, 2, 3, 4]);
    let s = mh(&dests);
    assert_eq!(s.table.len(), TABLE_SIZE);
    assert!(s.table.iter().all(Option::is_some));
    assert_eq!(counts(&s, &dests).iter().sum::<usize>(), TABLE_SIZE);
    // Same list, same table: whether built at once or by successive adds.
    assert_eq!(owners(&mh(&dests)), owners(&s));
    let mut t = Maglev::default();
    let mut built = Vec::new();
    init(&mut t, &built);
    for d in dests.iter().rev() {
        add(&mut t, &mut built, d.clone());
    }
    assert_eq!(owners(&t), owners(&s));
}

#[test]
fn first_dest_takes_its_preferred_slot() {
    let dests = list(&[1, 1]);
    let s = mh(&dests);
    let off = hashkey(HASH1, &dests[0].addr, dests[0].port, 0) as usize % TABLE_SIZE;
    assert_eq!(s.table[off].map(|(id, _)| id.0), Some(1));
}

#[test]
fn equal_weights_split_evenly() {
    // Turns of 1 each: slots alternate, so shares differ by at most one.
    let dests = list(&[5, 5, 5]);
    let s = mh(&dests);
    assert_eq!(counts(&s, &dests), [1365, 1364, 1364]);
}

#[test]
fn large_weights_are_shifted() {
    // gcd 100: 64, 32, 1; fls(64) = 7 so rshift = 1: turns 32, 16, 1 (0 -> 1).
    // 49 slots per round, 83 rounds = 4067, the last 26 go to the first dest.
    let dests = list(&[6400, 3200, 100]);
    let s = mh(&dests);
    assert_eq!(counts(&s, &dests), [83 * 32 + 26, 83 * 16, 83]);
}

#[test]
fn zero_last_weight_gets_no_slot_and_all_zero_empties_the_table() {
    let dests = list(&[0, 1]);
    let s = mh(&dests);
    assert_eq!(counts(&s, &dests), [0, TABLE_SIZE]);
    let mut dests = list(&[0, 0]);
    let mut s = mh(&dests);
    assert!(s.table.iter().all(Option::is_none));
    assert_eq!(pick(&mut s, &dests, &input()), None);
    let fb = SchedInput {
        svc_flags: SCHED_FLAG1,
        ..input()
    };
    assert_eq!(pick(&mut s, &dests, &fb), None);
    edit_weight(&mut s, &mut dests, DestId(2), 3);
    assert_eq!(pick(&mut s, &dests, &input()), Some(2));
}

#[test]
fn lookup_uses_the_client_address_slot() {
    let dests = list(&[1, 2, 3]);
    let mut s = mh(&dests);
    for k in 0..300 {
        let a = client(k);
        let slot = hashkey(HASH1, &a, 0, 0) as usize % TABLE_SIZE;
        let want = s.table[slot].unwrap().0.0;
        assert_eq!(pick(&mut s, &dests, &from(a)), Some(want));
        // The port only matters with mh-port.
        let other = SchedInput {
            sport: 9,
            ..from(a)
        };
        assert_eq!(pick(&mut s, &dests, &other), Some(want));
    }
}

#[test]
fn mh_port_keys_on_the_source_port_for_tcp_udp_sctp() {
    let dests = list(&[1; 8]);
    let mut s = mh(&dests);
    let a: IpAddr = "192.0.2.200".parse().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for sport in 2000..2050u16 {
        for proto in [6u8, 17, 132] {
            let inp = SchedInput {
                sport,
                proto,
                svc_flags: SCHED_FLAG2,
                ..from(a)
            };
            let slot = hashkey(HASH1, &a, sport, 0) as usize % TABLE_SIZE;
            let got = pick(&mut s, &dests, &inp);
            assert_eq!(got, Some(s.table[slot].unwrap().0.0));
            seen.insert(got);
        }
        let icmp = SchedInput {
            sport,
            proto: 1,
            svc_flags: SCHED_FLAG2,
            ..from(a)
        };
        assert_eq!(pick(&mut s, &dests, &icmp), pick(&mut s, &dests, &from(a)));
    }
    assert!(seen.len() > 4, "{seen:?}");
}

#[test]
fn quiescing_keeps_the_table_and_fallback_moves_only_its_clients() {
    let mut dests = list(&[1, 1, 1, 1]);
    let mut s = mh(&dests);
    let before = owners(&s);
    edit_weight(&mut s, &mut dests, DestId(2), 0);
    // last_weight is kept, so the table does not change.
    assert_eq!(owners(&s), before);
    let fb = |a| SchedInput {
        svc_flags: SCHED_FLAG1,
        ..from(a)
    };
    let mut moved = 0;
    for k in 0..400 {
        let a = client(k);
        let slot = hashkey(HASH1, &a, 0, 0) as usize % TABLE_SIZE;
        let own = before[slot];
        if own == 2 {
            moved += 1;
            assert_eq!(pick(&mut s, &dests, &from(a)), None);
            // Reference recipe for the fallback.
            let want = (0..TABLE_SIZE as u32)
                .map(|k| hashkey(HASH1, &a, 0, (k + slot as u32) % TABLE_SIZE as u32))
                .map(|h| before[h as usize % TABLE_SIZE])
                .find(|&id| id != 2)
                .unwrap();
            assert_eq!(pick(&mut s, &dests, &fb(a)), Some(want));
        } else {
            assert_eq!(pick(&mut s, &dests, &from(a)), Some(own));
            assert_eq!(pick(&mut s, &dests, &fb(a)), Some(own));
        }
    }
    assert!(moved > 50, "{moved}");
    // Overloaded is unusable too; all unusable: none, even with fallback.
    for d in &mut dests {
        d.overload = true;
    }
    assert_eq!(pick(&mut s, &dests, &fb(client(1))), None);
}

#[test]
fn too_many_dests() {
    let dests: Vec<Dest> = (1..=TABLE_SIZE as u32 + 1).map(|n| dest(n, 1)).collect();
    let mut s = Maglev::default();
    assert_eq!(
        s.update(&dests, DestChange::Init),
        Err(SchedError::TooManyDests)
    );
    let s = mh(&dests[..TABLE_SIZE]);
    // One slot each.
    assert!(counts(&s, &dests[..TABLE_SIZE]).iter().all(|&c| c == 1));
}

#[test]
fn removal_rebuilds_without_the_removed_dest() {
    let mut dests = list(&[1, 1, 1]);
    let mut s = mh(&dests);
    remove(&mut s, &mut dests, DestId(2));
    assert!(owners(&s).iter().all(|&id| id == 1 || id == 3));
    for k in 0..100 {
        assert_ne!(pick(&mut s, &dests, &from(client(k))), Some(2));
    }
}

/// Distinct real servers 10.x.y.z:port from arbitrary numbers.
fn servers(seeds: &[u32], weights: &[u32]) -> Vec<Dest> {
    let mut out: Vec<Dest> = Vec::new();
    for (i, (&seed, &w)) in seeds.iter().zip(weights).enumerate() {
        let mut d = dest(i as u32 + 1, w);
        d.addr = IpAddr::V4((0x0A00_0000 | (seed & 0x00FF_FFFF)).into());
        d.port = 80 + (seed >> 24) as u16;
        if out.iter().any(|o| o.addr == d.addr && o.port == d.port) {
            d.port += 1000;
        }
        out.push(d);
    }
    out
}

/// A dest's Maglev skip.
fn skip_of(d: &Dest) -> u32 {
    hashkey(HASH2, &d.addr, d.port, 0) % (TABLE_SIZE as u32 - 1) + 1
}

/// For each dest of `dests` (equal weights), the number of slots *not* owned
/// by it that change owner when it alone is removed.
fn removal_churn(dests: &[Dest]) -> Vec<usize> {
    let s0 = mh(dests);
    let before = owners(&s0);
    (0..dests.len())
        .map(|v| {
            let (mut s, mut rest) = (s0.clone(), dests.to_vec());
            let id = rest[v].id;
            remove(&mut s, &mut rest, id);
            before
                .iter()
                .zip(owners(&s))
                .filter(|&(&b, a)| b != id.0 && b != a)
                .count()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// With weights below 64 there is no shift: every dest takes `w / gcd`
    /// slots per round, the last round is partial, so each dest owns its
    /// exact share `M * w / W` up to at most `w` slots (w / M < 1.6 % of
    /// the table).
    #[test]
    fn shares_follow_weights(
        seeds in prop::collection::vec(any::<u32>(), 2..24),
        weights in prop::collection::vec(1u32..64, 24),
    ) {
        let dests = servers(&seeds, &weights);
        let s = mh(&dests);
        let total: u64 = dests.iter().map(|d| u64::from(d.weight)).sum();
        let m = TABLE_SIZE as u64;
        for (d, c) in dests.iter().zip(counts(&s, &dests)) {
            let w = u64::from(d.weight);
            // |c - M w / W| <= w, in integers.
            prop_assert!((c as u64 * total).abs_diff(m * w) <= w * total,
                "dest {:?} weight {} got {} of {}", d.id, w, c, m);
        }
    }

    /// Removing one of N servers must move its own ~M/N slots; how many
    /// *other* slots move is not bounded by any theorem — Maglev's minimal
    /// disruption is statistical — so the bounds are measured ones
    /// (`removal_churn_measurement`, 379,140 removals in 18,717 random
    /// configurations of 2..40 servers): mean 1.7 % of M, 99.99th
    /// percentile 3.5 %, maximum 7.3 % for a single removal; the mean over
    /// all N removals of one configuration at most 3.0 %. Asserted: every
    /// single removal < 10 % and the per-configuration mean < 5 %.
    ///
    /// Excluded: configurations where two servers share a skip (probability
    /// about N²/8184). Their permutations are rotations of one sequence, so
    /// the two chase each other and removing any third server can swap large
    /// parts of their slots — up to 47 % of M measured with N = 3. That is
    /// the kernel's behaviour too, not a defect of this port.
    #[test]
    fn removal_moves_few_other_slots(seeds in prop::collection::vec(any::<u32>(), 2..40)) {
        let dests = servers(&seeds, &vec![1; seeds.len()]);
        let mut skips: Vec<u32> = dests.iter().map(skip_of).collect();
        skips.sort_unstable();
        skips.dedup();
        prop_assume!(skips.len() == dests.len());
        let churn = removal_churn(&dests);
        let m = TABLE_SIZE;
        for (d, &c) in dests.iter().zip(&churn) {
            prop_assert!(c * 100 < m * 10, "removing {:?} of {} moved {} other slots", d.id, dests.len(), c);
        }
        let sum: usize = churn.iter().sum();
        prop_assert!(sum * 100 < m * 5 * dests.len(), "mean churn {} of {}", sum / dests.len(), m);
    }
}

#[test]
fn removal_moves_the_removed_servers_slots_only_mostly() {
    // Deterministic companion of the property above, on 10.0.0.1..=10 :80.
    let dests = list(&[1; 10]);
    let s0 = mh(&dests);
    let before = owners(&s0);
    for (v, c) in removal_churn(&dests).into_iter().enumerate() {
        let own = before.iter().filter(|&&o| o == dests[v].id.0).count();
        assert!((409..=410).contains(&own));
        assert!(c * 100 < TABLE_SIZE * 5, "{c}");
    }
}

/// Measures removal churn over many random configurations (the numbers
/// quoted on `removal_moves_few_other_slots`). Run with
/// `cargo test --release -p rvs-core removal_churn_measurement -- --ignored --nocapture`.
#[test]
#[ignore]
#[allow(clippy::disallowed_macros)] // reports the churn it measured
fn removal_churn_measurement() {
    let mut x: u64 = 0x5555_5432_1abc_def1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut singles, mut worst_mean, mut skipped) = (Vec::new(), 0f64, 0);
    for _ in 0..20_000 {
        let n = 2 + rnd() as usize % 39;
        let seeds: Vec<u32> = (0..n).map(|_| rnd() as u32).collect();
        let dests = servers(&seeds, &vec![1; n]);
        let mut skips: Vec<u32> = dests.iter().map(skip_of).collect();
        skips.sort_unstable();
        skips.dedup();
        if skips.len() < n {
            skipped += 1;
            continue;
        }
        let churn = removal_churn(&dests);
        worst_mean = worst_mean.max(churn.iter().sum::<usize>() as f64 / n as f64);
        singles.extend(churn);
    }
    singles.sort_unstable();
    let l = singles.len();
    let pct = |c: f64| c * 100.0 / TABLE_SIZE as f64;
    println!(
        "{l} removals ({skipped} configurations with a shared skip left out): \
         mean {:.2} %, p99 {:.2} %, p99.99 {:.2} %, max {:.2} %; worst per-configuration mean {:.2} %",
        pct(singles.iter().sum::<usize>() as f64 / l as f64),
        pct(singles[l * 99 / 100] as f64),
        pct(singles[l * 9999 / 10000] as f64),
        pct(singles[l - 1] as f64),
        pct(worst_mean),
    );
}
