//! Tests of configuration batches: validation against the model, atomic
//! application.

use super::*;
use crate::engine::EngineConfig;
use crate::service::SVC_F_PERSISTENT;
use crate::types::{FwdMethod, Protocol, TunType};
use core::fmt::Write;
use core::net::Ipv4Addr;

fn tcp(a: [u8; 4], port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::from(a)),
        port,
    }
}

fn rs(a: [u8; 4], port: u16) -> DestConfig {
    DestConfig::new(IpAddr::V4(Ipv4Addr::from(a)), port)
}

fn svc(sched: &str) -> ServiceConfig {
    let mut c = ServiceConfig::new(Af::Inet);
    c.scheduler = sched.into();
    c
}

fn engine() -> Engine {
    Engine::new(EngineConfig::default())
}

/// Everything a listing shows, in kernel order (services newest first).
fn dump(e: &Engine) -> String {
    let mut out = String::new();
    let mut svcs: Vec<_> = e.services().iter().map(|(_, s)| s).collect();
    svcs.sort_by_key(|s| core::cmp::Reverse(s.seq));
    for s in svcs {
        let _ = writeln!(
            out,
            "{:?} {:?} sched={} seq={} {:?}",
            s.key,
            s.config,
            s.scheduler.name(),
            s.seq,
            s.stats.shown()
        );
        for d in &s.dests {
            let _ = writeln!(
                out,
                "  {:?} id={:?} a={} i={} p={} {:?}",
                d.config(),
                d.id,
                d.activeconns,
                d.inactconns,
                d.persistconns,
                d.stats.shown()
            );
        }
        for (d, at) in &s.trash {
            let _ = writeln!(out, "  trash {:?} {:?}", d.config(), at);
        }
    }
    let t = e.timeouts();
    let _ = writeln!(
        out,
        "timeouts {} {} {}",
        t.tcp_established_secs(),
        t.tcp_fin_secs(),
        t.udp_secs()
    );
    out
}

fn populated() -> Engine {
    let mut e = engine();
    let now = Instant::ZERO;
    let ops = [
        ConfigOp::AddService(tcp([10, 0, 0, 1], 80), svc("rr")),
        ConfigOp::AddDest(tcp([10, 0, 0, 1], 80), rs([192, 168, 1, 1], 80)),
        ConfigOp::AddDest(tcp([10, 0, 0, 1], 80), rs([192, 168, 1, 2], 80)),
        ConfigOp::AddService(tcp([10, 0, 0, 2], 443), svc("mh")),
        ConfigOp::AddDest(tcp([10, 0, 0, 2], 443), rs([192, 168, 1, 3], 443)),
        ConfigOp::SetTimeouts(100, 20, 30),
    ];
    e.apply_batch(&ops, now).unwrap();
    e
}

#[test]
fn single_ops_apply() {
    let mut e = engine();
    let k = tcp([10, 0, 0, 1], 80);
    e.apply(&ConfigOp::AddService(k, svc("wlc")), Instant::ZERO)
        .unwrap();
    assert_eq!(
        e.apply(&ConfigOp::AddService(k, svc("wlc")), Instant::ZERO),
        Err(CtlError::Exists)
    );
    e.apply(&ConfigOp::AddDest(k, rs([1, 1, 1, 1], 80)), Instant::ZERO)
        .unwrap();
    e.apply(&ConfigOp::Zero(Some(k)), Instant::ZERO).unwrap();
    e.apply(
        &ConfigOp::DeleteDest(k, "1.1.1.1".parse().unwrap(), 80),
        Instant::ZERO,
    )
    .unwrap();
    e.apply(&ConfigOp::DeleteService(k), Instant::ZERO).unwrap();
    assert!(e.services().is_empty());
}

#[test]
fn bad_line_in_the_middle_changes_nothing() {
    let mut e = populated();
    let before = dump(&e);
    let k1 = tcp([10, 0, 0, 1], 80);
    let k3 = tcp([10, 0, 0, 3], 80);
    let mut bad = svc("nope");
    bad.flags = SVC_F_PERSISTENT;
    let ops = [
        ConfigOp::AddService(k3, svc("wrr")),
        ConfigOp::AddDest(k3, rs([192, 168, 2, 1], 80)),
        ConfigOp::EditDest(k1, {
            let mut d = rs([192, 168, 1, 1], 80);
            d.weight = 7;
            d
        }),
        ConfigOp::DeleteDest(k1, "192.168.1.2".parse().unwrap(), 80),
        ConfigOp::Zero(None),
        ConfigOp::SetTimeouts(1, 1, 1),
        ConfigOp::EditService(k1, bad),
        ConfigOp::AddService(tcp([10, 0, 0, 4], 80), svc("rr")),
    ];
    let err = e.apply_batch(&ops, Instant::from_secs(5)).unwrap_err();
    assert_eq!(err, (6, CtlError::NotFound("scheduler")));
    assert_eq!(err.1.errno(), 2);
    assert_eq!(dump(&e), before);

    // A failing line after a flush also changes nothing.
    let ops = [ConfigOp::Flush, ConfigOp::DeleteService(k1)];
    assert_eq!(
        e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
        (1, CtlError::NoSuchService)
    );
    assert_eq!(dump(&e), before);
}

#[test]
fn duplicates_within_the_batch_fail_at_the_second() {
    let mut e = engine();
    let k = tcp([10, 0, 0, 1], 80);
    let ops = [
        ConfigOp::AddService(k, svc("rr")),
        ConfigOp::AddDest(k, rs([1, 1, 1, 1], 80)),
        ConfigOp::AddService(k, svc("rr")),
    ];
    assert_eq!(
        e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
        (2, CtlError::Exists)
    );
    let ops = [
        ConfigOp::AddService(k, svc("rr")),
        ConfigOp::AddDest(k, rs([1, 1, 1, 1], 80)),
        ConfigOp::AddDest(k, rs([1, 1, 1, 2], 80)),
        ConfigOp::AddDest(k, rs([1, 1, 1, 1], 80)),
    ];
    assert_eq!(
        e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
        (3, CtlError::Exists)
    );
    assert!(e.services().is_empty());
    // Against the live table too.
    e.apply_batch(&ops[..3], Instant::ZERO).unwrap();
    assert_eq!(
        e.apply_batch(&[ConfigOp::AddDest(k, rs([1, 1, 1, 2], 80))], Instant::ZERO)
            .unwrap_err(),
        (0, CtlError::Exists)
    );
}

#[test]
fn delete_then_add_in_one_batch() {
    let mut e = populated();
    let k = tcp([10, 0, 0, 1], 80);
    let ops = [
        ConfigOp::DeleteService(k),
        ConfigOp::AddDest(k, rs([9, 9, 9, 9], 80)),
    ];
    assert_eq!(
        e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
        (1, CtlError::NoSuchService)
    );
    let ops = [
        ConfigOp::DeleteService(k),
        ConfigOp::AddService(k, svc("sh")),
        ConfigOp::AddDest(k, rs([192, 168, 1, 1], 80)),
        ConfigOp::DeleteDest(k, "192.168.1.1".parse().unwrap(), 80),
        ConfigOp::AddDest(k, rs([192, 168, 1, 1], 80)),
    ];
    e.apply_batch(&ops, Instant::ZERO).unwrap();
    let s = e.services().get(e.services().find(&k).unwrap()).unwrap();
    assert_eq!(s.scheduler.name(), "sh");
    assert_eq!(s.dests.len(), 1);
}

#[test]
fn flush_inside_a_batch() {
    let mut e = populated();
    let k1 = tcp([10, 0, 0, 1], 80);
    let k2 = tcp([10, 0, 0, 2], 443);
    // Services from before the flush are gone for the rest of the batch.
    let ops = [
        ConfigOp::AddService(tcp([10, 0, 0, 9], 80), svc("rr")),
        ConfigOp::Flush,
        ConfigOp::AddDest(k1, rs([1, 1, 1, 1], 80)),
    ];
    assert_eq!(
        e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
        (2, CtlError::NoSuchService)
    );
    let ops = [
        ConfigOp::Flush,
        ConfigOp::AddService(k2, svc("rr")),
        ConfigOp::AddDest(k2, rs([192, 168, 1, 3], 443)),
        ConfigOp::AddService(k1, svc("wlc")),
    ];
    e.apply_batch(&ops, Instant::ZERO).unwrap();
    assert_eq!(e.services().len(), 2);
    let s = e.services().get(e.services().find(&k2).unwrap()).unwrap();
    assert_eq!(s.scheduler.name(), "rr");
    assert_eq!(s.dests.len(), 1);
}

#[test]
fn model_errnos_match_the_engine() {
    // Each op alone, against the populated table: the dry run and the
    // real operation must agree.
    let k1 = tcp([10, 0, 0, 1], 80);
    let missing = tcp([10, 9, 9, 9], 80);
    let v6 = DestConfig::new("2001:db8::1".parse().unwrap(), 80);
    let mut gue = rs([1, 2, 3, 4], 80);
    gue.fwd = FwdMethod::Tunnel;
    gue.tunnel.kind = TunType::Gue;
    let mut range = rs([1, 2, 3, 4], 80);
    range.l_threshold = 9;
    let mut weight = rs([1, 2, 3, 4], 80);
    weight.weight = u32::MAX;
    let mut v6mask = ServiceConfig::new(Af::Inet6);
    v6mask.netmask = 129;
    let mut pe = svc("rr");
    pe.pe = Some("nope".into());
    let cases: Vec<(ConfigOp, Option<i32>)> = vec![
        (ConfigOp::AddService(k1, svc("rr")), Some(17)),
        (ConfigOp::AddService(missing, svc("nope")), Some(2)),
        (ConfigOp::AddService(missing, pe.clone()), Some(2)),
        (
            ConfigOp::AddService(
                ServiceKey::Fwmark {
                    af: Af::Inet,
                    mark: 0,
                },
                svc("rr"),
            ),
            Some(22),
        ),
        (
            ConfigOp::AddService(
                ServiceKey::Addr {
                    proto: Protocol::Udp,
                    addr: "2001:db8::80".parse().unwrap(),
                    port: 80,
                },
                v6mask,
            ),
            Some(22),
        ),
        (ConfigOp::EditService(missing, svc("rr")), Some(3)),
        (ConfigOp::EditService(k1, pe), Some(2)),
        (ConfigOp::EditService(k1, svc("lblc")), None),
        (ConfigOp::DeleteService(missing), Some(3)),
        (ConfigOp::AddDest(missing, rs([1, 1, 1, 1], 80)), Some(3)),
        (ConfigOp::AddDest(k1, rs([192, 168, 1, 1], 80)), Some(17)),
        (ConfigOp::AddDest(k1, v6), Some(22)),
        (ConfigOp::AddDest(k1, gue), Some(22)),
        (ConfigOp::AddDest(k1, range), Some(34)),
        (ConfigOp::AddDest(k1, weight), Some(34)),
        (
            ConfigOp::AddDest(k1, rs([255, 255, 255, 255], 80)),
            Some(22),
        ),
        (ConfigOp::AddDest(k1, rs([224, 0, 0, 1], 80)), Some(22)),
        (ConfigOp::EditDest(k1, rs([1, 1, 1, 1], 80)), Some(2)),
        (ConfigOp::EditDest(missing, rs([1, 1, 1, 1], 80)), Some(3)),
        (ConfigOp::EditDest(k1, range), Some(34)),
        (
            ConfigOp::DeleteDest(k1, "1.1.1.1".parse().unwrap(), 80),
            Some(2),
        ),
        (
            ConfigOp::DeleteDest(missing, "1.1.1.1".parse().unwrap(), 80),
            Some(3),
        ),
        (ConfigOp::Zero(Some(missing)), Some(3)),
        (ConfigOp::Zero(None), None),
        (ConfigOp::Flush, None),
        (ConfigOp::SetTimeouts(MAX_TIMEOUT_SECS, 0, 0), None),
        (ConfigOp::SetTimeouts(0, MAX_TIMEOUT_SECS + 1, 0), Some(22)),
        (ConfigOp::SetTimeouts(0, 0, u32::MAX), Some(22)),
    ];
    for (op, want) in cases {
        let e = populated();
        let dry = e.check_batch(core::slice::from_ref(&op));
        let mut real = populated();
        let got = real.apply(&op, Instant::ZERO);
        assert_eq!(
            dry.map_err(|(_, e)| e.errno()),
            got.clone().map_err(|e| e.errno()),
            "{op:?}"
        );
        assert_eq!(got.err().map(|e| e.errno()), want, "{op:?}");
    }
}

#[test]
fn mh_dest_limit() {
    let mut e = engine();
    let k = tcp([10, 0, 0, 1], 80);
    e.apply(&ConfigOp::AddService(k, svc("rr")), Instant::ZERO)
        .unwrap();
    let many: Vec<ConfigOp> = (0..=mh::TABLE_SIZE as u32)
        .map(|i| ConfigOp::AddDest(k, rs((0x0a01_0000 + i).to_be_bytes(), 80)))
        .collect();
    e.apply_batch(&many, Instant::ZERO).unwrap();
    let before = dump(&e);
    // Switching to mh with 4094 real servers fails, in the model and for real.
    let edit = ConfigOp::EditService(k, svc("mh"));
    assert_eq!(
        e.check_batch(core::slice::from_ref(&edit))
            .unwrap_err()
            .1
            .errno(),
        22
    );
    assert_eq!(e.apply(&edit, Instant::ZERO).unwrap_err().errno(), 22);
    assert_eq!(dump(&e), before);
    // One fewer and it works; then the 4094th add fails.
    let del = ConfigOp::DeleteDest(k, "10.1.0.0".parse().unwrap(), 80);
    let readd = ConfigOp::AddDest(k, rs([10, 1, 0, 0], 80));
    e.apply_batch(&[del.clone(), edit.clone()], Instant::ZERO)
        .unwrap();
    let before = dump(&e);
    assert_eq!(
        e.apply_batch(core::slice::from_ref(&readd), Instant::ZERO)
            .unwrap_err(),
        (0, CtlError::Invalid("too many destinations"))
    );
    assert_eq!(e.apply(&readd, Instant::ZERO).unwrap_err().errno(), 22);
    assert_eq!(dump(&e), before);
}

#[test]
fn error_index_is_right() {
    let mut e = engine();
    let k = tcp([10, 0, 0, 1], 80);
    let mut ops = vec![ConfigOp::AddService(k, svc("rr"))];
    for i in 0..50u8 {
        ops.push(ConfigOp::AddDest(k, rs([10, 2, 0, i], 80)));
    }
    ops.push(ConfigOp::EditDest(k, rs([10, 2, 0, 77], 80)));
    ops.push(ConfigOp::AddDest(k, rs([10, 2, 0, 99], 80)));
    assert_eq!(
        e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
        (51, CtlError::NotFound("destination"))
    );
    assert!(e.services().is_empty());
    assert_eq!(e.apply_batch(&[], Instant::ZERO), Ok(()));
}

/// 10 000 services × 10 real servers. Timed in release builds only.
#[test]
#[allow(clippy::disallowed_methods)] // times itself: a test, not the engine
fn large_batch_scales() {
    let n: u32 = if cfg!(debug_assertions) {
        2_000
    } else {
        10_000
    };
    let mut ops = Vec::with_capacity(n as usize * 11);
    for i in 0..n {
        let k = tcp((0x0a00_0000 + i).to_be_bytes(), 80);
        ops.push(ConfigOp::AddService(k, svc("wlc")));
        for j in 0..10u32 {
            ops.push(ConfigOp::AddDest(
                k,
                rs((0xc0a8_0000 + i * 16 + j).to_be_bytes(), 80),
            ));
        }
    }
    let mut e = engine();
    let t = std::time::Instant::now();
    e.apply_batch(&ops, Instant::ZERO).unwrap();
    let took = t.elapsed();
    assert_eq!(e.services().len(), n as usize);
    // A second identical batch fails at its first line, quickly, changing nothing.
    assert_eq!(
        e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
        (0, CtlError::Exists)
    );
    if !cfg!(debug_assertions) {
        assert!(took.as_millis() < 1000, "took {took:?}");
    }
}

fn mark_rule(a: [u8; 4], len: u8, mark: u32) -> FwmarkRule {
    FwmarkRule {
        addr: IpAddr::V4(Ipv4Addr::from(a)),
        prefix_len: len,
        proto: Some(Protocol::Tcp),
        dports: vec![80, 443],
        iif: None,
        mark,
    }
}

#[test]
fn fwmark_rules_in_a_batch_are_all_or_nothing() {
    let mut e = engine();
    let key = ServiceKey::Fwmark {
        af: Af::Inet,
        mark: 10,
    };
    let ok = vec![
        ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 1], 32, 10)),
        ConfigOp::AddService(key, svc("rr")),
        ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 2], 32, 10)),
    ];
    e.apply_batch(&ok, Instant::ZERO).unwrap();
    assert_eq!(e.fwmark_rules().len(), 2);
    let before = e.fwmark_rules().clone();
    // A duplicate rule, a missing rule, a bad rule: each fails at its
    // line and nothing of the batch stays.
    for (bad, err) in [
        (
            ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 1], 32, 10)),
            CtlError::Exists,
        ),
        (
            ConfigOp::DeleteFwmarkRule(mark_rule([10, 0, 0, 9], 32, 10)),
            CtlError::NotFound("fwmark rule"),
        ),
        (
            ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 9], 33, 10)),
            CtlError::Invalid("fwmark rule: prefix length too long for the address family"),
        ),
    ] {
        let ops = vec![
            ConfigOp::FlushFwmarkRules,
            ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 1], 32, 10)),
            ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 3], 32, 10)),
            bad,
        ];
        assert_eq!(e.apply_batch(&ops, Instant::ZERO), Err((3, err)));
        assert_eq!(*e.fwmark_rules(), before);
    }
    // The dry run sees the batch's own earlier rule operations.
    let ops = vec![
        ConfigOp::DeleteFwmarkRule(mark_rule([10, 0, 0, 1], 32, 10)),
        ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 1], 32, 10)),
        ConfigOp::FlushFwmarkRules,
        ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 2], 32, 10)),
    ];
    e.apply_batch(&ops, Instant::ZERO).unwrap();
    assert_eq!(e.fwmark_rules().len(), 1);
    // `-C` leaves the rules (as it leaves iptables' rules).
    e.apply(&ConfigOp::Flush, Instant::ZERO).unwrap();
    assert_eq!(e.fwmark_rules().len(), 1);
}

/// A check allowing at most `nat` NAT sources and `rules` claimed rules.
fn limit(nat: usize, rules: usize) -> std::sync::Arc<crate::claims::ClaimCheck> {
    std::sync::Arc::new(move |c: &crate::claims::Claims| {
        if c.nat.len() > nat {
            return Err(format!("{} NAT sources, room for {nat}", c.nat.len()));
        }
        if c.fwmark.len() > rules {
            return Err(format!("{} rules, room for {rules}", c.fwmark.len()));
        }
        Ok(())
    })
}

#[test]
fn claims_past_the_filter_are_refused_whole() {
    let mut e = engine();
    e.set_claim_check(limit(1, 8)).unwrap();
    let key = tcp([10, 0, 0, 1], 80);
    e.apply(&ConfigOp::AddService(key, svc("rr")), Instant::ZERO)
        .unwrap();
    let nat = |a: [u8; 4]| {
        let mut d = rs(a, 80);
        d.fwd = FwdMethod::Masq;
        d
    };
    e.apply(
        &ConfigOp::AddDest(key, nat([192, 168, 0, 1])),
        Instant::ZERO,
    )
    .unwrap();
    // A second NAT real server does not fit; a DR one does.
    let err = e
        .apply(
            &ConfigOp::AddDest(key, nat([192, 168, 0, 2])),
            Instant::ZERO,
        )
        .unwrap_err();
    assert_eq!(err, CtlError::NoRoom("2 NAT sources, room for 1".into()));
    assert_eq!(err.errno(), 12);
    let dr = rs([192, 168, 0, 2], 80);
    e.apply(&ConfigOp::AddDest(key, dr), Instant::ZERO).unwrap();
    // Switching it to NAT (-e ... -m) is a claim too.
    let before = dump(&e);
    let err = e
        .apply(
            &ConfigOp::EditDest(key, nat([192, 168, 0, 2])),
            Instant::ZERO,
        )
        .unwrap_err();
    assert!(matches!(err, CtlError::NoRoom(_)));
    assert_eq!(dump(&e), before);
    // In a batch, room made earlier counts, and a refusal changes nothing.
    let swap = [
        ConfigOp::DeleteDest(key, IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)), 80),
        ConfigOp::EditDest(key, nat([192, 168, 0, 2])),
    ];
    e.check_batch(&swap).unwrap();
    let both = [
        ConfigOp::EditDest(key, nat([192, 168, 0, 2])),
        ConfigOp::Zero(None),
    ];
    assert_eq!(
        e.apply_batch(&both, Instant::ZERO).unwrap_err().0,
        0,
        "reported at the last operation that adds claims"
    );
    assert_eq!(dump(&e), before);
}

#[test]
fn deleting_a_rule_that_hid_another_is_a_claim() {
    let mut e = engine();
    let key = ServiceKey::Fwmark {
        af: Af::Inet,
        mark: 10,
    };
    e.apply(&ConfigOp::AddService(key, svc("rr")), Instant::ZERO)
        .unwrap();
    let a = mark_rule([10, 0, 0, 1], 32, 10);
    let b = mark_rule([10, 0, 0, 2], 32, 10);
    // Mark 20 has no service: this later, overlapping rule hides `b`.
    let hider = mark_rule([10, 0, 0, 2], 32, 20);
    for r in [&a, &b, &hider] {
        e.apply(&ConfigOp::AddFwmarkRule(r.clone()), Instant::ZERO)
            .unwrap();
    }
    e.set_claim_check(limit(0, 1)).unwrap();
    let err = e
        .apply(&ConfigOp::DeleteFwmarkRule(hider.clone()), Instant::ZERO)
        .unwrap_err();
    assert_eq!(err, CtlError::NoRoom("2 rules, room for 1".into()));
    assert_eq!(e.fwmark_rules().len(), 3);
    // Too big already: not installed.
    assert!(e.set_claim_check(limit(0, 0)).is_err());
}
