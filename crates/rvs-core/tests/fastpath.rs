//! The engine's fast-path bookkeeping (`Engine::set_fast_path`): which
//! flows it asks the data plane to cache and to forget, and how the fast
//! path's traffic is credited.
//!
//! Helpers in tests/common (shared with tests/engine.rs).

use rvs_core::engine::{Action, DropReason, Engine, Hop};
use rvs_core::fastpath::{FastFlow, FastPathOp, FastRewrite};
use rvs_core::service::{SVC_F_ONEPACKET, ServiceConfig, ServiceKey};
use rvs_core::{Af, DestConfig, FwdMethod, Instant, Protocol};
use rvs_wire::EthernetAddress;

mod common;
use common::*;

/// The queued fast-path work, taken; `has_fast_path_ops` says the same
/// before, and nothing is left after.
fn ops(e: &mut Engine) -> Vec<FastPathOp> {
    let queued = e.has_fast_path_ops();
    let mut v = Vec::new();
    e.take_fast_path_ops(&mut v);
    assert_eq!(queued, !v.is_empty());
    assert!(!e.has_fast_path_ops());
    v
}

fn installs(v: &[FastPathOp]) -> Vec<(FastFlow, FastRewrite)> {
    v.iter()
        .filter_map(|o| match o {
            FastPathOp::Install(f, a) => Some((*f, a.rewrite)),
            _ => None,
        })
        .collect()
}

fn removes(v: &[FastPathOp]) -> Vec<FastFlow> {
    v.iter()
        .filter_map(|o| match o {
            FastPathOp::Remove(f) => Some(*f),
            _ => None,
        })
        .collect()
}

fn server_pkt(e: &mut Engine, flags: Flags, now: Instant) -> Action {
    let mut r = tcp_frame(
        RS1_MAC,
        DIRECTOR_MAC_S,
        (RS1, 8080),
        (CIP, 40001),
        flags,
        b"",
    );
    run(e, &mut r, SERVER_PORT, now)
}

/// NAT handshake to ESTABLISHED on 40001 → VIP:80 → RS1:8080.
fn nat_established(e: &mut Engine, t: Instant) {
    let (a, _) = client_pkt(e, 40001, 80, Flags::Syn, t);
    assert!(matches!(a, Action::Forward { .. }));
    assert!(matches!(
        server_pkt(e, Flags::SynAck, t),
        Action::Forward { .. }
    ));
    let (a, _) = client_pkt(e, 40001, 80, Flags::Ack, t);
    assert!(matches!(a, Action::Forward { .. }));
}

#[test]
fn off_by_default_queues_nothing() {
    let mut e = engine();
    add_service(&mut e, svc_key(80), "rr", FwdMethod::Masq, &[8080]);
    nat_established(&mut e, Instant::from_secs(1));
    assert!(!e.fast_path());
    assert!(ops(&mut e).is_empty());
}

#[test]
fn nat_installs_both_ways_once_established_and_forgets_on_fin() {
    let mut e = engine();
    e.set_fast_path(true);
    add_service(&mut e, svc_key(80), "rr", FwdMethod::Masq, &[8080]);
    let t = Instant::from_secs(1);
    let (a, _) = client_pkt(&mut e, 40001, 80, Flags::Syn, t);
    assert!(matches!(a, Action::Forward { .. }));
    assert!(ops(&mut e).is_empty(), "SYN_RECV is not cached");
    assert!(matches!(
        server_pkt(&mut e, Flags::SynAck, t),
        Action::Forward { .. }
    ));
    assert!(ops(&mut e).is_empty());
    let (a, _) = client_pkt(&mut e, 40001, 80, Flags::Ack, t);
    assert!(matches!(a, Action::Forward { .. }));
    let v = ops(&mut e);
    let ins = installs(&v);
    assert_eq!(ins.len(), 2, "{v:?}");
    let (fin, rin) = ins[0];
    assert!(!fin.reply);
    assert_eq!(
        (fin.key.src, fin.key.sport, fin.key.dst, fin.key.dport),
        (v4(CIP), 40001, v4(VIP), 80)
    );
    assert_eq!(
        rin,
        FastRewrite::NatIn {
            addr: v4(RS1),
            port: 8080
        }
    );
    let (fout, rout) = ins[1];
    assert!(fout.reply);
    assert_eq!(
        (fout.key.src, fout.key.sport, fout.key.dst, fout.key.dport),
        (v4(RS1), 8080, v4(CIP), 40001)
    );
    assert_eq!(
        rout,
        FastRewrite::NatOut {
            addr: v4(VIP),
            port: 80
        }
    );
    assert_eq!(e.fast_path_flows(), 1);

    // Further packets (which a miss would bring) install nothing again.
    let (a, _) = client_pkt(&mut e, 40001, 80, Flags::Ack, t);
    assert!(matches!(a, Action::Forward { .. }));
    assert!(ops(&mut e).is_empty());

    // The fast path's traffic is credited: counters and timer.
    let before = e.stats().shown();
    let t2 = Instant::from_secs(100);
    e.credit_fast_path(&fin, 10, 1000, Some(t2));
    e.credit_fast_path(&fout, 7, 700, Some(t2));
    let after = e.stats().shown();
    assert_eq!(after.inpkts - before.inpkts, 10);
    assert_eq!(after.inbytes - before.inbytes, 1000);
    assert_eq!(after.outpkts - before.outpkts, 7);
    assert_eq!(after.outbytes - before.outbytes, 700);
    let svc = e
        .services()
        .get(e.services().find(&svc_key(80)).unwrap())
        .unwrap();
    assert_eq!(svc.stats.shown().inpkts, after.inpkts);
    assert_eq!(svc.dests[0].stats.shown().outbytes, after.outbytes);
    let c = the_conn(&e);
    assert_eq!(
        c.expires.as_millis(),
        t2.as_millis() + u64::from(c.timeout_ms),
        "re-armed from last seen"
    );
    // An older last-seen does not shorten the timer.
    e.credit_fast_path(&fin, 1, 100, Some(Instant::from_secs(2)));
    assert_eq!(the_conn(&e).expires, c.expires);

    // The server's FIN (a slow-path packet): both entries go.
    assert!(matches!(
        server_pkt(&mut e, Flags::FinAck, t2),
        Action::Forward { .. }
    ));
    let v = ops(&mut e);
    let rm = removes(&v);
    assert_eq!(rm, vec![fin, fout], "{v:?}");
    assert_eq!(e.fast_path_flows(), 0);
    // Crediting after the removal still counts (the service's totals).
    e.credit_fast_path(&fin, 2, 200, None);
    assert_eq!(e.stats().shown().inpkts, after.inpkts + 1 + 2);
}

#[test]
fn dr_and_tun_install_one_way() {
    for (fwd, want) in [
        (FwdMethod::Route, FastRewrite::Dr),
        (
            FwdMethod::Tunnel,
            FastRewrite::Tun {
                src: v4([192, 168, 1, 1]),
                dst: v4(RS1),
            },
        ),
    ] {
        let mut e = engine();
        e.set_fast_path(true);
        add_service(&mut e, svc_key(80), "rr", fwd, &[80]);
        let t = Instant::from_secs(1);
        client_pkt(&mut e, 40001, 80, Flags::Syn, t);
        assert!(ops(&mut e).is_empty());
        client_pkt(&mut e, 40001, 80, Flags::Ack, t);
        let v = ops(&mut e);
        let ins = installs(&v);
        assert_eq!(ins.len(), 1, "{v:?}");
        assert_eq!(ins[0].1, want);
        // Expiry removes it.
        e.poll(Instant::from_secs(1));
        e.poll(Instant::from_secs(100_000));
        let v = ops(&mut e);
        assert_eq!(removes(&v), vec![ins[0].0], "{v:?}");
    }
}

#[test]
fn udp_installs_at_the_first_packet_one_packet_never() {
    let mut e = engine();
    e.set_fast_path(true);
    let key = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: v4(VIP),
        port: 53,
    };
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "rr".into();
    e.add_service(key, cfg.clone()).unwrap();
    let mut d = DestConfig::new(v4(RS1), 53);
    d.fwd = FwdMethod::Masq;
    e.add_dest(&key, &d, Instant::ZERO).unwrap();
    let mut f = udp_frame((CIP, 5353), (VIP, 53), b"q");
    assert!(matches!(
        run(&mut e, &mut f, CLIENT_PORT, Instant::from_secs(1)),
        Action::Forward { .. }
    ));
    assert_eq!(installs(&ops(&mut e)).len(), 2);

    // -o: every packet is scheduled: nothing cached.
    cfg.flags |= SVC_F_ONEPACKET;
    e.edit_service(&key, cfg).unwrap();
    let v = ops(&mut e);
    assert_eq!(
        removes(&v).len(),
        2,
        "editing the service forgets its flows: {v:?}"
    );
    let mut f = udp_frame((CIP, 5354), (VIP, 53), b"q");
    assert!(matches!(
        run(&mut e, &mut f, CLIENT_PORT, Instant::from_secs(1)),
        Action::Forward { .. }
    ));
    assert!(installs(&ops(&mut e)).is_empty());
}

#[test]
fn configuration_changes_forget_cached_flows() {
    let t = Instant::from_secs(1);
    // Deleting the real server (connections stay, their packets dropped).
    let mut e = engine();
    e.set_fast_path(true);
    add_service(&mut e, svc_key(80), "rr", FwdMethod::Masq, &[8080]);
    nat_established(&mut e, t);
    assert_eq!(installs(&ops(&mut e)).len(), 2);
    e.delete_dest(&svc_key(80), v4(RS1), 8080, t).unwrap();
    assert_eq!(removes(&ops(&mut e)).len(), 2);
    let (a, _) = client_pkt(&mut e, 40001, 80, Flags::Ack, t);
    assert_eq!(a, Action::Drop(DropReason::DestGone));
    assert!(ops(&mut e).is_empty(), "a dropped flow is not cached again");

    // Editing the real server (weight 0): forgotten, cached again by the
    // next packet (the connection keeps its server, as in IPVS).
    let mut e = engine();
    e.set_fast_path(true);
    add_service(&mut e, svc_key(80), "rr", FwdMethod::Masq, &[8080]);
    nat_established(&mut e, t);
    ops(&mut e);
    let mut d = DestConfig::new(v4(RS1), 8080);
    d.fwd = FwdMethod::Masq;
    d.weight = 0;
    e.edit_dest(&svc_key(80), &d).unwrap();
    assert_eq!(removes(&ops(&mut e)).len(), 2);
    let (a, _) = client_pkt(&mut e, 40001, 80, Flags::Ack, t);
    assert!(matches!(a, Action::Forward { .. }));
    assert_eq!(installs(&ops(&mut e)).len(), 2);

    // A next hop that moves; one set again unchanged does nothing.
    e.set_hop(
        v4(RS1),
        Hop {
            port: SERVER_PORT,
            mac: EthernetAddress(RS1_MAC),
        },
    );
    assert!(ops(&mut e).is_empty());
    e.set_hop(
        v4(RS1),
        Hop {
            port: SERVER_PORT,
            mac: EthernetAddress(RS2_MAC),
        },
    );
    assert_eq!(removes(&ops(&mut e)).len(), 2);
    let (a, _) = client_pkt(&mut e, 40001, 80, Flags::Ack, t);
    assert!(matches!(a, Action::Forward { .. }));
    let v = ops(&mut e);
    let ins: Vec<_> = v
        .iter()
        .filter_map(|o| match o {
            FastPathOp::Install(f, a) if !f.reply => Some(a.dst_mac),
            _ => None,
        })
        .collect();
    assert_eq!(ins, vec![EthernetAddress(RS2_MAC)]);

    // Forgetting everything (the data plane's egress set changed).
    e.fast_path_forget_all();
    assert_eq!(removes(&ops(&mut e)).len(), 2);
    let (a, _) = client_pkt(&mut e, 40001, 80, Flags::Ack, t);
    assert!(matches!(a, Action::Forward { .. }));
    assert_eq!(installs(&ops(&mut e)).len(), 2);

    // -C: everything.
    e.flush();
    assert_eq!(ops(&mut e), vec![FastPathOp::RemoveAll]);
    assert_eq!(e.fast_path_flows(), 0);

    // Deleting the service drops its connections: their entries go.
    let mut e = engine();
    e.set_fast_path(true);
    add_service(&mut e, svc_key(80), "rr", FwdMethod::Masq, &[8080]);
    nat_established(&mut e, t);
    ops(&mut e);
    e.delete_service(&svc_key(80)).unwrap();
    assert_eq!(removes(&ops(&mut e)).len(), 2);
}
