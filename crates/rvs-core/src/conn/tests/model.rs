//! Keyed hashing, memory per entry, and the property test of the table
//! against a model (its regressions: proptest-regressions/conn/tests/model.txt).

use super::*;

// ===========================================================================
// Keyed hashing

#[test]
fn keyed_hash_depends_on_key() {
    let cfg = ConnTableConfig::default();
    let a = ConnTable::new(cfg, KEY);
    let a2 = ConnTable::new(cfg, KEY);
    let b = ConnTable::new(cfg, [1, 2, 3, 4]);
    let tuple = (PROTO_TCP, ip("1.1.1.1"), 4000, ip("10.0.0.1"), 80);
    let h = |t: &ConnTable| t.debug_hash_in(tuple.0, tuple.1, tuple.2, tuple.3, tuple.4);
    assert_eq!(h(&a), h(&a2));
    assert_ne!(h(&a), h(&b));
    // Hash uses every field.
    let base = h(&a);
    assert_ne!(
        a.debug_hash_in(PROTO_UDP, tuple.1, tuple.2, tuple.3, tuple.4),
        base
    );
    assert_ne!(
        a.debug_hash_in(tuple.0, ip("1.1.1.2"), tuple.2, tuple.3, tuple.4),
        base
    );
    assert_ne!(
        a.debug_hash_in(tuple.0, tuple.1, 4001, tuple.3, tuple.4),
        base
    );
    assert_ne!(
        a.debug_hash_in(tuple.0, tuple.1, tuple.2, ip("10.0.0.2"), tuple.4),
        base
    );
    assert_ne!(
        a.debug_hash_in(tuple.0, tuple.1, tuple.2, tuple.3, 81),
        base
    );
    // Swapping client and virtual endpoints changes the hash.
    assert_ne!(
        a.debug_hash_in(tuple.0, tuple.3, tuple.4, tuple.1, tuple.2),
        base
    );
}

#[test]
fn flows_colliding_under_one_key_spread_under_another() {
    let cfg = ConnTableConfig::default();
    let a = ConnTable::new(cfg, KEY);
    let b = ConnTable::new(cfg, [11, 22, 33, 44]);
    const BUCKETS: u64 = 1 << 12;
    // Flows an attacker found to share a bucket under key A.
    let mut colliding = vec![];
    for i in 0u32..400_000 {
        let caddr = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let cport = (i % 50_000) as u16;
        if a.debug_hash_in(PROTO_TCP, caddr, cport, ip("10.0.0.1"), 80)
            .is_multiple_of(BUCKETS)
        {
            colliding.push((caddr, cport));
        }
    }
    assert!(colliding.len() >= 50, "{}", colliding.len());
    let spread: HashSet<u64> = colliding
        .iter()
        .map(|&(c, p)| b.debug_hash_in(PROTO_TCP, c, p, ip("10.0.0.1"), 80) % BUCKETS)
        .collect();
    assert!(
        spread.len() * 10 >= colliding.len() * 9,
        "{} of {}",
        spread.len(),
        colliding.len()
    );
}

// ===========================================================================
// Memory

#[test]
fn entry_size_and_memory_estimate() {
    assert_eq!(core::mem::size_of::<Conn>(), 104);
    assert_eq!(
        core::mem::size_of::<Option<Conn>>(),
        104,
        "the slab slot has no extra tag"
    );
    // Per live entry: slot 104 + armed tick 4 + wheel ref 4, plus 5 bytes per
    // index bucket (u32 + control byte). At 1 Mi entries hashbrown has 2^21
    // buckets (load 0.5): 10 bytes per index.
    let n = 1usize << 20;
    let buckets = (n * 8 / 7).next_power_of_two();
    let index = 5.0 * buckets as f64 / n as f64;
    let dr = 104.0 + 4.0 + 4.0 + index;
    let nat = dr + index;
    assert!(dr <= 128.0, "DR entry {dr} B");
    assert!(nat <= 140.0, "NAT entry {nat} B");
}

#[test]
fn measured_memory_per_entry() {
    // Steady state with the arena and index sized for the load.
    let n = 100_000usize;
    let mut t = ConnTable::new(
        ConnTableConfig {
            max_entries: n,
            initial_capacity: n,
            ..ConnTableConfig::default()
        },
        KEY,
    );
    let now = secs(0);
    for i in 0..n as u32 {
        let c = Conn {
            caddr: IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()),
            ..tcp(1000, dr_flags(), 900_000 + (i % 600) * 1000, now)
        };
        t.insert(c, false, now).unwrap();
    }
    let per = t.approx_memory_bytes() as f64 / n as f64;
    // 104 + 4 + 4 + index (131072 buckets * 5 / 100k = 6.6) + wheel slack.
    assert!(per <= 128.0, "{per} bytes per DR entry");
}

// ===========================================================================
// Property test against a model

#[derive(Debug, Clone)]
enum Op {
    Insert { timeout_ms: u32, out: bool },
    Refresh { which: usize, timeout_ms: u32 },
    Remove { which: usize },
    Advance { ms: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..120_000, any::<bool>()).prop_map(|(timeout_ms, out)| Op::Insert { timeout_ms, out }),
        3 => (any::<usize>(), 0u32..120_000).prop_map(|(which, timeout_ms)| Op::Refresh { which, timeout_ms }),
        1 => any::<usize>().prop_map(|which| Op::Remove { which }),
        4 => (0u32..5_000).prop_map(|ms| Op::Advance { ms }),
        1 => (0u32..300_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn table_matches_model(
        tick in prop_oneof![Just(100u64), Just(1000u64), Just(250u64)],
        slots in prop_oneof![Just(4usize), Just(16), Just(64)],
        start in 0u64..10_000_000,
        ops in proptest::collection::vec(op(), 1..250),
    ) {
        let mut t = table(tick, slots, 64);
        // cport -> (id, expires ms, out-indexed)
        let mut model: BTreeMap<u16, (ConnId, u64, bool)> = BTreeMap::new();
        let mut now = start;
        let mut next_port = 1u16;
        let mut out = vec![];
        for op in ops {
            match op {
                Op::Insert { timeout_ms, out: o } => {
                    let c = tcp(next_port, nat_flags(), timeout_ms, ms(now));
                    match t.insert(c, o, ms(now)) {
                        Ok(id) => {
                            model.insert(next_port, (id, now + u64::from(timeout_ms), o));
                        }
                        Err(TableFull) => prop_assert_eq!(model.len(), 64),
                    }
                    next_port += 1;
                }
                Op::Refresh { which, timeout_ms } => {
                    if model.is_empty() { continue; }
                    let port = *model.keys().nth(which % model.len()).unwrap();
                    let e = model.get_mut(&port).unwrap();
                    e.1 = now + u64::from(timeout_ms);
                    t.get_mut(e.0).unwrap().expires = ms(e.1);
                }
                Op::Remove { which } => {
                    if model.is_empty() { continue; }
                    let port = *model.keys().nth(which % model.len()).unwrap();
                    let (id, _, _) = model.remove(&port).unwrap();
                    prop_assert_eq!(t.remove(id).map(|c| c.cport), Some(port));
                }
                Op::Advance { ms: d } => {
                    now += u64::from(d);
                    out.clear();
                    t.poll_expired(ms(now), &mut out);
                    for c in &out {
                        let (_, exp, _) = model.remove(&c.cport).expect("expired entry is in the model");
                        prop_assert!(exp <= now, "expired early: expires {} now {}", exp, now);
                        prop_assert_eq!(c.expires, ms(exp));
                    }
                    for (port, &(_, exp, _)) in &model {
                        prop_assert!(now < exp + tick, "port {} overdue: expires {} now {}", port, exp, now);
                    }
                }
            }
            prop_assert_eq!(t.len(), model.len());
            for (&port, &(id, exp, o)) in &model {
                prop_assert_eq!(t.lookup_in(PROTO_TCP, &ip("1.1.1.1"), port, &ip("10.0.0.1"), 80), Some(id));
                let want_out = if o { Some(id) } else { None };
                prop_assert_eq!(t.lookup_out(PROTO_TCP, &ip("192.168.1.10"), 80, &ip("1.1.1.1"), port), want_out);
                prop_assert_eq!(t.get(id).map(|c| c.expires), Some(ms(exp)));
            }
        }
        t.check_invariants();
    }
}
