//! The table: insert, lookups, removal, the hard cap, and expiry on the
//! timer wheel.

use super::*;

// ===========================================================================
// Table basics

#[test]
fn insert_lookup_in_and_out() {
    let mut t = table(1000, 64, 100);
    let now = secs(0);
    let nat = mk(
        PROTO_TCP,
        ("1.1.1.1", 4000),
        ("10.0.0.1", 80),
        ("192.168.1.10", 8080),
        nat_flags(),
        3000,
        now,
    );
    let dr = mk(
        PROTO_TCP,
        ("1.1.1.2", 4000),
        ("10.0.0.1", 80),
        ("192.168.1.11", 80),
        dr_flags(),
        3000,
        now,
    );
    let v6 = mk(
        PROTO_UDP,
        ("2001:db8::1", 53),
        ("2001:db8::100", 53),
        ("2001:db8:1::10", 53),
        nat_flags(),
        3000,
        now,
    );
    let a = t.insert(nat.clone(), true, now).unwrap();
    let b = t.insert(dr.clone(), false, now).unwrap();
    let c = t.insert(v6.clone(), true, now).unwrap();
    assert_eq!(t.len(), 3);
    assert_eq!(t.out_indexed(), 2);
    assert_eq!(
        t.lookup_in(PROTO_TCP, &ip("1.1.1.1"), 4000, &ip("10.0.0.1"), 80),
        Some(a)
    );
    assert_eq!(
        t.lookup_in(PROTO_TCP, &ip("1.1.1.2"), 4000, &ip("10.0.0.1"), 80),
        Some(b)
    );
    assert_eq!(
        t.lookup_in(PROTO_UDP, &ip("2001:db8::1"), 53, &ip("2001:db8::100"), 53),
        Some(c)
    );
    // Misses: other port, protocol, address, family.
    assert_eq!(
        t.lookup_in(PROTO_TCP, &ip("1.1.1.1"), 4001, &ip("10.0.0.1"), 80),
        None
    );
    assert_eq!(
        t.lookup_in(PROTO_UDP, &ip("1.1.1.1"), 4000, &ip("10.0.0.1"), 80),
        None
    );
    assert_eq!(
        t.lookup_in(PROTO_TCP, &ip("1.1.1.1"), 4000, &ip("10.0.0.2"), 80),
        None
    );
    assert_eq!(
        t.lookup_in(
            PROTO_TCP,
            &ip("::ffff:1.1.1.1"),
            4000,
            &ip("::ffff:10.0.0.1"),
            80
        ),
        None
    );
    // Out: reply from the real server to the client.
    assert_eq!(
        t.lookup_out(PROTO_TCP, &ip("192.168.1.10"), 8080, &ip("1.1.1.1"), 4000),
        Some(a)
    );
    assert_eq!(
        t.lookup_out(PROTO_TCP, &ip("192.168.1.10"), 80, &ip("1.1.1.1"), 4000),
        None
    );
    assert_eq!(
        t.lookup_out(PROTO_UDP, &ip("2001:db8:1::10"), 53, &ip("2001:db8::1"), 53),
        Some(c)
    );
    // DR entries are not in the out index.
    assert_eq!(
        t.lookup_out(PROTO_TCP, &ip("192.168.1.11"), 80, &ip("1.1.1.2"), 4000),
        None
    );
    assert_eq!(t.get(a), Some(&nat));
    assert_eq!(t.iter().count(), 3);
    t.check_invariants();
}

#[test]
fn templates_are_separate_from_conns() {
    let mut t = table(1000, 64, 100);
    let now = secs(0);
    let tp = tpl(
        PROTO_TCP,
        "1.1.1.0",
        ("10.0.0.1", 80),
        ("192.168.1.10", 80),
        360_000,
        now,
    );
    // A conn with the very same tuple (client port 0).
    let c = mk(
        PROTO_TCP,
        ("1.1.1.0", 0),
        ("10.0.0.1", 80),
        ("192.168.1.10", 80),
        dr_flags(),
        3000,
        now,
    );
    let ti = t.insert(tp, false, now).unwrap();
    assert_eq!(
        t.lookup_in(PROTO_TCP, &ip("1.1.1.0"), 0, &ip("10.0.0.1"), 80),
        None
    );
    assert_eq!(
        t.lookup_template(PROTO_TCP, ip("1.1.1.0"), ip("10.0.0.1"), 80),
        Some(ti)
    );
    let ci = t.insert(c, false, now).unwrap();
    assert_eq!(
        t.lookup_in(PROTO_TCP, &ip("1.1.1.0"), 0, &ip("10.0.0.1"), 80),
        Some(ci)
    );
    assert_eq!(
        t.lookup_template(PROTO_TCP, ip("1.1.1.0"), ip("10.0.0.1"), 80),
        Some(ti)
    );
    assert_eq!(
        t.lookup_template(PROTO_TCP, ip("1.1.1.0"), ip("10.0.0.1"), 443),
        None
    );
    // fwmark template: protocol 0, mark as address.
    let mut fw = tpl(
        0,
        "1.1.1.0",
        ("0.0.0.0", 0),
        ("192.168.1.10", 0),
        360_000,
        now,
    );
    fw.vaddr = fwmark_vaddr(false, 1);
    fw.fwmark = 1;
    let fi = t.insert(fw, false, now).unwrap();
    assert_eq!(
        t.lookup_template(0, ip("1.1.1.0"), ip("0.0.0.1"), 0),
        Some(fi)
    );
    assert_eq!(t.get(fi).unwrap().state_name(), "NONE");
    t.check_invariants();
}

#[test]
fn remove_and_slot_reuse() {
    let mut t = table(1000, 64, 100);
    let now = secs(0);
    let a = t.insert(tcp(1, nat_flags(), 3000, now), true, now).unwrap();
    let b = t.insert(tcp(2, nat_flags(), 3000, now), true, now).unwrap();
    let ra = t.remove(a).unwrap();
    assert_eq!(ra.cport, 1);
    assert_eq!(t.remove(a), None);
    assert_eq!(t.get(a), None);
    assert_eq!(t.len(), 1);
    assert_eq!(
        t.lookup_in(PROTO_TCP, &ip("1.1.1.1"), 1, &ip("10.0.0.1"), 80),
        None
    );
    assert_eq!(
        t.lookup_out(PROTO_TCP, &ip("192.168.1.10"), 80, &ip("1.1.1.1"), 1),
        None
    );
    assert_eq!(
        t.lookup_out(PROTO_TCP, &ip("192.168.1.10"), 80, &ip("1.1.1.1"), 2),
        Some(b)
    );
    let c = t.insert(tcp(3, dr_flags(), 3000, now), false, now).unwrap();
    assert_eq!(c, a, "freed slot is reused");
    t.check_invariants();
    t.clear();
    assert!(t.is_empty());
    assert_eq!(
        t.lookup_in(PROTO_TCP, &ip("1.1.1.1"), 2, &ip("10.0.0.1"), 80),
        None
    );
    t.check_invariants();
}

#[test]
fn hard_cap_counts_drops() {
    let mut t = table(1000, 64, 3);
    let now = secs(0);
    let mut ids = vec![];
    for p in 0..3 {
        ids.push(t.insert(udp(p, dr_flags(), 3000, now), false, now).unwrap());
    }
    let extra = udp(9, dr_flags(), 3000, now);
    assert_eq!(t.insert(extra.clone(), false, now), Err(TableFull));
    assert_eq!(t.insert(extra.clone(), false, now), Err(TableFull));
    assert_eq!(t.dropped_full(), 2);
    assert_eq!(t.len(), 3);
    assert_eq!(t.capacity_limit(), 3);
    t.remove(ids[0]);
    assert!(t.insert(extra, false, now).is_ok());
    assert_eq!(t.dropped_full(), 2);
    t.check_invariants();
}

#[test]
fn replicas_share_one_bound() {
    // Two tables (engine replicas) with the bound 3 for both together.
    let (mut a, mut b) = (table(1000, 64, 3), table(1000, 64, 3));
    let now = secs(0);
    let first = a.insert(udp(1, dr_flags(), 3000, now), false, now).unwrap();
    a.share_bound(None);
    b.share_bound(a.bound_share());
    b.share_bound(a.bound_share()); // again: nothing counted twice
    assert_eq!((a.occupancy(), b.occupancy()), (1, 1));
    let _ = a.insert(udp(2, dr_flags(), 3000, now), false, now).unwrap();
    let in_b = b.insert(udp(3, dr_flags(), 3000, now), false, now).unwrap();
    assert_eq!((a.len(), b.len(), b.occupancy()), (2, 1, 3));
    // Full for both, though each holds fewer than 3.
    assert_eq!(
        b.insert(udp(4, dr_flags(), 3000, now), false, now),
        Err(TableFull)
    );
    assert_eq!(
        a.insert(udp(4, dr_flags(), 3000, now), false, now),
        Err(TableFull)
    );
    // A removal in one makes room in the other.
    a.remove(first);
    assert!(b.insert(udp(4, dr_flags(), 3000, now), false, now).is_ok());
    b.remove(in_b);
    assert_eq!(a.occupancy(), 2);
    b.clear();
    assert_eq!((a.occupancy(), b.occupancy(), a.len()), (1, 1, 1));
    a.check_invariants();
    b.check_invariants();
}

#[test]
fn replicas_reserve_room_in_chunks_and_fill_the_bound_exactly() {
    // A bound of 8192: room is reserved 8 entries at a time (64 from
    // 65536 up, the default bound's case).
    let max = 8 * 1024;
    let (mut a, mut b) = (table(1000, 64, max), table(1000, 64, max));
    a.share_bound(None);
    b.share_bound(a.bound_share());
    let now = secs(0);
    let (mut got, mut ids_a) = (0, Vec::new());
    for p in 0.. {
        let ra = a.insert(udp(p, dr_flags(), 3000, now), false, now);
        let rb = b.insert(udp(p, dr_flags(), 3000, now), false, now);
        if let Ok(id) = ra {
            ids_a.push(id);
        }
        got += usize::from(ra.is_ok()) + usize::from(rb.is_ok());
        if ra.is_err() && rb.is_err() {
            break;
        }
        if p == 10 {
            // Reserved ahead of use: two chunks each so far (11 used).
            assert_eq!(a.occupancy(), 32);
        }
    }
    assert_eq!(got, max, "every entry of the bound used, none more");
    assert_eq!(a.len() + b.len(), max);
    // Room a table frees stays with it up to two chunks, then goes back.
    for id in ids_a.drain(..200) {
        a.remove(id);
    }
    // (a's reserve: 200 freed; at 17 a chunk of 8 goes back, 23 times)
    assert_eq!(a.occupancy(), max - 184);
    assert!(
        b.insert(udp(u16::MAX, dr_flags(), 3000, now), false, now)
            .is_ok()
    );
    a.check_invariants();
    b.check_invariants();
}

// ===========================================================================
// Expiry

#[test]
fn expiry_exact_with_one_second_wheel() {
    let mut t = table(1000, 64, 100);
    let now = secs(0);
    let mut out = vec![];
    // Expires on a tick boundary: removed exactly then.
    t.insert(tcp(1, dr_flags(), 5000, now), false, now).unwrap();
    // Expires mid-tick: removed at the next boundary, never before.
    t.insert(tcp(2, dr_flags(), 5001, now), false, now).unwrap();
    t.poll_expired(ms(4999), &mut out);
    assert!(out.is_empty());
    t.poll_expired(ms(5000), &mut out);
    assert_eq!(out.iter().map(|c| c.cport).collect::<Vec<_>>(), vec![1]);
    out.clear();
    t.poll_expired(ms(5999), &mut out);
    assert!(out.is_empty());
    assert_eq!(t.len(), 1);
    t.poll_expired(ms(6000), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].cport, 2);
    assert!(t.is_empty());
    assert_eq!(t.next_expiry_hint(), None);
}

#[test]
fn refreshed_entries_do_not_expire() {
    let mut t = table(1000, 16, 100);
    let mut out = vec![];
    let id = t
        .insert(tcp(1, dr_flags(), 10_000, secs(0)), false, secs(0))
        .unwrap();
    let mut now = 0;
    while now < 1_000_000 {
        now += 250;
        if now % 5000 == 0 {
            let mut c = t.get_mut(id).unwrap();
            c.expires = ms(now + 10_000);
        }
        t.poll_expired(ms(now), &mut out);
        assert!(out.is_empty(), "expired at {now}");
    }
    // Last refresh at 1_000_000: expires at 1_010_000.
    t.poll_expired(ms(1_009_999), &mut out);
    assert!(out.is_empty());
    t.poll_expired(ms(1_010_000), &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn long_timeouts_beyond_wheel_span() {
    // 64 s span, 24 h timeout.
    let day = 86_400_000u64;
    for poll_every in [1000u64, 3_600_000, 7_000] {
        let mut t = table(1000, 64, 100);
        let mut out = vec![];
        t.insert(tcp(1, dr_flags(), day as u32, secs(0)), false, secs(0))
            .unwrap();
        let mut now = 0;
        while now + poll_every < day {
            now += poll_every;
            t.poll_expired(ms(now), &mut out);
            assert!(out.is_empty(), "early at {now}");
        }
        t.poll_expired(ms(day - 1), &mut out);
        assert!(out.is_empty());
        t.poll_expired(ms(day), &mut out);
        assert_eq!(out.len(), 1, "poll_every {poll_every}");
        t.check_invariants();
    }
}

#[test]
fn tick_counter_wraps_u32() {
    // 1 ms ticks starting just below 2^32 ticks: the truncated armed ticks wrap.
    let start = (1u64 << 32) - 500;
    let mut t = table(1, 64, 100);
    let mut out = vec![];
    for p in 0..10u16 {
        t.insert(
            udp(p, dr_flags(), 100 * u32::from(p) + 1, ms(start)),
            false,
            ms(start),
        )
        .unwrap();
    }
    let mut now = start;
    while !t.is_empty() {
        now += 7;
        out.clear();
        t.poll_expired(ms(now), &mut out);
        for c in &out {
            assert!(c.expires <= ms(now));
            assert!(now < c.expires.as_millis() + 7 + 1);
        }
        t.check_invariants();
        assert!(now < start + 2000, "stuck");
    }
}

#[test]
fn long_gap_between_polls() {
    let mut t = table(100, 8, 100);
    let mut out = vec![];
    for p in 0..20u16 {
        let to = 1000 * u32::from(p) + 50;
        t.insert(udp(p, dr_flags(), to, secs(0)), false, secs(0))
            .unwrap();
    }
    // One poll after ten seconds with a 0.8 s wheel: exactly those due.
    t.poll_expired(ms(10_000), &mut out);
    let mut got: Vec<u16> = out.iter().map(|c| c.cport).collect();
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    t.check_invariants();
    out.clear();
    t.poll_expired(ms(100_000), &mut out);
    assert_eq!(out.len(), 10);
    assert!(t.is_empty());
}

#[test]
fn shortened_expiry_through_get_mut_is_honoured() {
    let mut t = table(1000, 4096, 100);
    let mut out = vec![];
    let id = t
        .insert(tcp(1, nat_flags(), 900_000, secs(0)), true, secs(0))
        .unwrap();
    t.poll_expired(secs(5), &mut out);
    {
        let mut c = t.get_mut(id).unwrap();
        c.timeout_ms = 10_000;
        c.expires = secs(15);
    }
    t.poll_expired(ms(14_999), &mut out);
    assert!(out.is_empty());
    t.poll_expired(secs(15), &mut out);
    assert_eq!(out.len(), 1);
    t.check_invariants();
}

#[test]
fn table_tcp_update_rst_shortens_timer() {
    let tm = Timeouts::default();
    let mut t = table(1000, 4096, 100);
    let mut out = vec![];
    let now = secs(0);
    let id = t.insert(tcp(1, nat_flags(), 3000, now), true, now).unwrap();
    assert_eq!(
        t.tcp_update(id, Direction::Input, tcp_flags::SYN, &tm, secs(1)),
        Some(Activity::ToActive)
    );
    assert_eq!(
        t.tcp_update(id, Direction::Input, tcp_flags::ACK, &tm, secs(2)),
        Some(Activity::Unchanged)
    );
    assert_eq!(t.get(id).unwrap().expires, secs(902));
    assert_eq!(
        t.tcp_update(id, Direction::Input, tcp_flags::RST, &tm, secs(3)),
        Some(Activity::ToInactive)
    );
    t.poll_expired(ms(12_999), &mut out);
    assert!(out.is_empty());
    t.poll_expired(secs(13), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state_name(), "CLOSE");
    assert_eq!(
        t.tcp_update(id, Direction::Input, tcp_flags::ACK, &tm, secs(14)),
        None
    );
}

#[test]
fn stale_wheel_refs_after_slot_reuse() {
    let mut t = table(1000, 64, 100);
    let mut out = vec![];
    let now = secs(0);
    let a = t.insert(udp(1, dr_flags(), 5000, now), false, now).unwrap();
    t.remove(a);
    let b = t.insert(udp(2, dr_flags(), 5000, now), false, now).unwrap();
    assert_eq!(a, b);
    t.remove(b);
    let c = t
        .insert(udp(3, dr_flags(), 10_000, now), false, now)
        .unwrap();
    assert_eq!(a, c);
    t.poll_expired(secs(5), &mut out);
    assert!(out.is_empty());
    t.poll_expired(secs(10), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].cport, 3);
    t.check_invariants();
}
