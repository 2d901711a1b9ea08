//! Persistence templates and control connections: n_control, forced
//! deletes, flushes, neutralised templates, rekeys, the get_mut guard.

use super::*;

// ===========================================================================
// Templates and control

/// A template plus one controlled conn.
fn tpl_and_conn(t: &mut ConnTable, tpl_timeout: u32, conn_timeout: u32) -> (ConnId, ConnId) {
    let now = secs(0);
    let ti = t
        .insert(
            tpl(
                PROTO_TCP,
                "1.1.1.0",
                ("10.0.0.1", 80),
                ("192.168.1.10", 80),
                tpl_timeout,
                now,
            ),
            false,
            now,
        )
        .unwrap();
    let mut c = tcp(1000, dr_flags(), conn_timeout, now);
    c.control = Some(ti);
    let ci = t.insert(c, false, now).unwrap();
    (ti, ci)
}

#[test]
fn insert_and_remove_maintain_n_control() {
    let mut t = table(1000, 64, 100);
    let (ti, ci) = tpl_and_conn(&mut t, 360_000, 60_000);
    assert_eq!(t.get(ti).unwrap().n_control, 1);
    let now = secs(0);
    let mut c2 = mk(
        PROTO_TCP,
        ("1.1.1.2", 1000),
        ("10.0.0.1", 80),
        ("192.168.1.10", 80),
        dr_flags(),
        60_000,
        now,
    );
    c2.control = Some(ti);
    let c2 = t.insert(c2, false, now).unwrap();
    assert_eq!(t.get(ti).unwrap().n_control, 2);
    t.remove(ci);
    assert_eq!(t.get(ti).unwrap().n_control, 1);
    // Removing the template detaches what it still controls.
    t.remove(ti);
    assert_eq!(t.get(c2).unwrap().control, None);
    t.check_invariants();
    // A dead control handle is cleared on insert.
    let mut c3 = mk(
        PROTO_TCP,
        ("1.1.1.3", 1000),
        ("10.0.0.1", 80),
        ("192.168.1.10", 80),
        dr_flags(),
        60_000,
        now,
    );
    c3.control = Some(ConnId::from_index(50));
    let c3 = t.insert(c3, false, now).unwrap();
    assert_eq!(t.get(c3).unwrap().control, None);
    t.check_invariants();
}

#[test]
fn template_outlives_controlled_conns_with_60s_rearm() {
    let mut t = table(1000, 4096, 100);
    let mut out = vec![];
    // Template 5 s, conn 100 s.
    let (ti, ci) = tpl_and_conn(&mut t, 5_000, 100_000);
    t.poll_expired(secs(5), &mut out);
    assert!(out.is_empty(), "template kept while it controls a conn");
    let tc = t.get(ti).unwrap();
    assert_eq!(tc.expires, secs(65));
    assert_eq!(tc.timeout_ms, 60_000);
    t.poll_expired(secs(65), &mut out);
    assert!(out.is_empty());
    assert_eq!(t.get(ti).unwrap().expires, secs(125));
    t.poll_expired(secs(100), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].cport, 1000);
    assert_eq!(t.get(ci), None);
    assert_eq!(t.get(ti).unwrap().n_control, 0);
    out.clear();
    t.poll_expired(ms(124_999), &mut out);
    assert!(
        out.is_empty(),
        "template lives until its own timer runs out"
    );
    t.poll_expired(secs(125), &mut out);
    assert_eq!(out.len(), 1);
    assert!(out[0].is_template());
    assert!(t.is_empty());
}

#[test]
fn template_with_longer_timer_survives_its_conn() {
    let mut t = table(1000, 4096, 100);
    let mut out = vec![];
    let (ti, _ci) = tpl_and_conn(&mut t, 360_000, 10_000);
    t.poll_expired(secs(10), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(t.get(ti).unwrap().n_control, 0);
    out.clear();
    t.poll_expired(ms(359_999), &mut out);
    assert!(out.is_empty());
    t.poll_expired(secs(360), &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn forced_delete_takes_unassured_template() {
    let mut t = table(1000, 64, 100);
    let mut out = vec![];
    let (ti, ci) = tpl_and_conn(&mut t, 360_000, 60_000);
    // The template controls a conn: cannot be force-deleted.
    assert!(!t.remove_forced(ti, &mut out));
    assert!(t.remove_forced(ci, &mut out));
    assert_eq!(out.len(), 2);
    assert!(out[1].is_template());
    assert!(t.is_empty());

    // ASSURED templates stay.
    out.clear();
    let (ti, ci) = tpl_and_conn(&mut t, 360_000, 60_000);
    let tm = Timeouts::default();
    t.tcp_update(ci, Direction::Input, tcp_flags::SYN, &tm, secs(0));
    assert_eq!(t.get(ti).unwrap().state_name(), "NONE");
    t.tcp_update(ci, Direction::Input, tcp_flags::ACK, &tm, secs(0));
    assert_eq!(t.get(ti).unwrap().state, TPL_ASSURED);
    assert_eq!(t.get(ti).unwrap().state_name(), "ASSURED");
    assert!(t.remove_forced(ci, &mut out));
    assert_eq!(out.len(), 1);
    assert!(t.get(ti).is_some());

    // Not with other conns still controlled.
    t.clear();
    out.clear();
    let (ti, ci) = tpl_and_conn(&mut t, 360_000, 60_000);
    let mut c2 = mk(
        PROTO_TCP,
        ("1.1.1.2", 1000),
        ("10.0.0.1", 80),
        ("192.168.1.10", 80),
        dr_flags(),
        60_000,
        secs(0),
    );
    c2.control = Some(ti);
    let c2 = t.insert(c2, false, secs(0)).unwrap();
    assert!(t.remove_forced(ci, &mut out));
    assert_eq!(out.len(), 1);
    assert!(t.remove_forced(c2, &mut out));
    assert_eq!(out.len(), 3);
    assert!(t.is_empty());
}

#[test]
fn flush_removes_everything_with_accounting() {
    let mut t = table(1000, 64, 100);
    let mut out = vec![];
    let (ti, ci) = tpl_and_conn(&mut t, 360_000, 60_000);
    t.assure_control(ci);
    assert_eq!(t.get(ti).unwrap().state, TPL_ASSURED);
    for p in 0..5 {
        t.insert(
            mk(
                PROTO_UDP,
                ("1.1.1.9", p),
                ("10.0.0.1", 53),
                ("192.168.1.10", 53),
                dr_flags(),
                3000,
                secs(0),
            ),
            false,
            secs(0),
        )
        .unwrap();
    }
    let lone = t
        .insert(
            tpl(
                PROTO_UDP,
                "2.2.2.0",
                ("10.0.0.1", 53),
                ("192.168.1.10", 53),
                360_000,
                secs(0),
            ),
            false,
            secs(0),
        )
        .unwrap();
    // Only UDP entries of one dest: expire_nodest-style partial flush.
    t.flush_matching(|c| c.proto == PROTO_UDP && !c.is_template(), &mut out);
    assert_eq!(out.len(), 5);
    assert!(t.get(lone).is_some());
    t.flush_matching(|_| true, &mut out);
    assert_eq!(out.len(), 8);
    assert!(t.is_empty());
    t.check_invariants();
}

#[test]
fn neutralized_template_no_longer_matches() {
    let mut t = table(1000, 64, 100);
    let (ti, _) = tpl_and_conn(&mut t, 360_000, 60_000);
    assert_eq!(
        t.lookup_template(PROTO_TCP, ip("1.1.1.0"), ip("10.0.0.1"), 80),
        Some(ti)
    );
    t.neutralize_template(ti);
    assert_eq!(
        t.lookup_template(PROTO_TCP, ip("1.1.1.0"), ip("10.0.0.1"), 80),
        None
    );
    let c = t.get(ti).unwrap();
    assert_eq!((c.cport, c.vport, c.dport), (0, 0xffff, 0xffff));
    assert_eq!(c.n_control, 1, "still controls its conn");
    // A fresh template with the same key can be created.
    let now = secs(1);
    let t2 = t
        .insert(
            tpl(
                PROTO_TCP,
                "1.1.1.0",
                ("10.0.0.1", 80),
                ("192.168.1.11", 80),
                360_000,
                now,
            ),
            false,
            now,
        )
        .unwrap();
    assert_eq!(
        t.lookup_template(PROTO_TCP, ip("1.1.1.0"), ip("10.0.0.1"), 80),
        Some(t2)
    );
    t.check_invariants();
}

#[test]
fn rekey_reindexes_changed_keys_and_control() {
    let mut t = table(1000, 64, 100);
    let now = secs(0);
    let (ti, _) = tpl_and_conn(&mut t, 360_000, 60_000);
    let id = t.insert(tcp(1, nat_flags(), 3000, now), true, now).unwrap();
    assert!(t.rekey(id, |c| {
        c.cport = 2;
        c.daddr = ip("192.168.1.99");
        c.in_pkts += 1;
        c.control = Some(ti);
        c.n_control = 77; // the table's field: undone
    }));
    assert_eq!(t.get(id).unwrap().n_control, 0);
    assert_eq!(
        t.lookup_in(PROTO_TCP, &ip("1.1.1.1"), 1, &ip("10.0.0.1"), 80),
        None
    );
    assert_eq!(
        t.lookup_in(PROTO_TCP, &ip("1.1.1.1"), 2, &ip("10.0.0.1"), 80),
        Some(id)
    );
    assert_eq!(
        t.lookup_out(PROTO_TCP, &ip("192.168.1.10"), 80, &ip("1.1.1.1"), 1),
        None
    );
    assert_eq!(
        t.lookup_out(PROTO_TCP, &ip("192.168.1.99"), 80, &ip("1.1.1.1"), 2),
        Some(id)
    );
    assert_eq!(t.get(ti).unwrap().n_control, 2);
    t.check_invariants();
    assert!(t.set_control(id, None));
    assert_eq!(t.get(ti).unwrap().n_control, 1);
    // Self-control and dead handles are refused.
    t.set_control(id, Some(id));
    assert_eq!(t.get(id).unwrap().control, None);
    t.set_control(id, Some(ConnId::from_index(60)));
    assert_eq!(t.get(id).unwrap().control, None);
    // Turning a conn into a template moves it between lookups.
    t.rekey(id, |c| c.flags |= flags::TEMPLATE);
    assert_eq!(
        t.lookup_in(PROTO_TCP, &ip("1.1.1.1"), 2, &ip("10.0.0.1"), 80),
        None
    );
    assert_eq!(
        t.lookup_template(PROTO_TCP, ip("1.1.1.1"), ip("10.0.0.1"), 80),
        None,
        "cport is 2"
    );
    t.rekey(id, |c| c.cport = 0);
    assert_eq!(
        t.lookup_template(PROTO_TCP, ip("1.1.1.1"), ip("10.0.0.1"), 80),
        Some(id)
    );
    // Shortened expiry through rekey is honoured.
    t.rekey(id, |c| c.expires = secs(7));
    let mut out = vec![];
    t.poll_expired(ms(6999), &mut out);
    assert!(out.is_empty());
    t.poll_expired(secs(7), &mut out);
    assert_eq!(out.len(), 1);
    t.check_invariants();
    assert!(!t.rekey(id, |_| {}));
}

#[test]
fn get_mut_allows_plain_fields() {
    let mut t = table(1000, 64, 100);
    let now = secs(0);
    let id = t.insert(tcp(1, nat_flags(), 3000, now), true, now).unwrap();
    {
        let mut c = t.get_mut(id).unwrap();
        assert_eq!(c.id(), id);
        c.in_pkts += 1;
        c.state = TcpState::Established as u8;
        c.flags &= !flags::INACTIVE;
        c.timeout_ms = 900_000;
        c.expires = secs(900);
        c.owner = 42;
        c.dest = DestId(9);
        assert!(format!("{c:?}").starts_with("ConnMut(Conn {"));
    }
    let c = t.get(id).unwrap();
    assert_eq!((c.in_pkts, c.owner, c.dest), (1, 42, DestId(9)));
    assert_eq!(t.get_mut(ConnId::from_index(5)).map(|c| c.id()), None);
    t.check_invariants();
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "must not be changed through the guard")]
fn get_mut_key_change_is_caught_in_debug() {
    let mut t = table(1000, 64, 100);
    let now = secs(0);
    let id = t.insert(tcp(1, nat_flags(), 3000, now), true, now).unwrap();
    t.get_mut(id).unwrap().cport = 2;
}
