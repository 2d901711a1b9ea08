//! Per-worker engines: every packet of a connection, request or NAT reply,
//! fragment or not, is steered to the one replica that holds it, and a
//! persistence template shares its replica with the clients it covers.

mod common;

use common::*;
use rvs_core::engine::{Action, Engine, Hop, steer_owner};
use rvs_core::service::{ServiceConfig, ServiceKey};
use rvs_core::{Af, DestConfig, FwdMethod, Instant};
use rvs_wire::EthernetAddress;

/// `n` replicas with the same configuration (`persistent`: `-p 300 -M
/// 255.255.255.0`).
fn replicas(n: usize, fwd: FwdMethod, persistent: bool) -> Vec<Engine> {
    (0..n)
        .map(|_| {
            let mut e = engine();
            let key = svc_key(80);
            let mut cfg = ServiceConfig::new(Af::Inet);
            cfg.scheduler = "rr".into();
            if persistent {
                cfg.flags |= rvs_core::service::SVC_F_PERSISTENT;
                cfg.timeout = 300;
                cfg.netmask = 0xffff_ff00;
            }
            e.add_service(key, cfg).unwrap();
            for rs in [RS1, RS2] {
                let mut d = DestConfig::new(v4(rs), 8080);
                d.fwd = fwd;
                e.add_dest(&key, &d, Instant::ZERO).unwrap();
            }
            e
        })
        .collect()
}

/// Process `f` (with headroom) in the replica that owns it, as a worker
/// hands it over; the owner's index and the action.
fn steered(
    rs: &mut [Engine],
    f: &mut Vec<u8>,
    ingress: rvs_core::engine::PortId,
) -> (usize, Action) {
    let h = rs[0].steer(&f[HEADROOM..], ingress).expect("an IP packet");
    // Every replica steers alike (the decision reads the configuration only).
    for r in rs.iter() {
        assert_eq!(r.steer(&f[HEADROOM..], ingress), Some(h));
    }
    let i = steer_owner(h, rs.len());
    (i, run(&mut rs[i], f, ingress, Instant::ZERO))
}

fn client(i: u32) -> [u8; 4] {
    let a = 0xac10_0000u32 + i * 7919;
    a.to_be_bytes()
}

#[test]
fn both_directions_of_a_nat_connection_find_their_replica() {
    for n in [1usize, 2, 3, 4] {
        let mut rs = replicas(n, FwdMethod::Masq, false);
        let mut used = vec![0usize; n];
        for i in 0..200u32 {
            let (c, cport) = (client(i), 10_000 + i as u16);
            for e in rs.iter_mut() {
                e.set_hop(
                    v4(c),
                    Hop {
                        port: CLIENT_PORT,
                        mac: EthernetAddress(CLIENT_MAC),
                    },
                );
            }
            let mut syn = tcp_frame(
                CLIENT_MAC,
                DIRECTOR_MAC_C,
                (c, cport),
                (VIP, 80),
                Flags::Syn,
                b"",
            );
            let (owner, a) = steered(&mut rs, &mut syn, CLIENT_PORT);
            used[owner] += 1;
            assert!(matches!(a, Action::Forward { .. }), "syn: {a:?}");
            // The server it went to answers from its own address.
            let server = if syn[HEADROOM + 30..HEADROOM + 34] == RS1 {
                RS1
            } else {
                RS2
            };
            let mut reply = tcp_frame(
                RS1_MAC,
                DIRECTOR_MAC_S,
                (server, 8080),
                (c, cport),
                Flags::SynAck,
                b"",
            );
            let (o2, a) = steered(&mut rs, &mut reply, SERVER_PORT);
            assert_eq!(o2, owner, "the reply goes to the request's replica");
            assert!(matches!(a, Action::Forward { .. }), "reply: {a:?}");
            // Translated back to the virtual address.
            assert_eq!(reply[HEADROOM + 26..HEADROOM + 30], VIP);
            let mut ack = tcp_frame(
                CLIENT_MAC,
                DIRECTOR_MAC_C,
                (c, cport),
                (VIP, 80),
                Flags::Ack,
                b"x",
            );
            assert_eq!(steered(&mut rs, &mut ack, CLIENT_PORT).0, owner);
        }
        // Each replica holds only its own connections, and together all.
        let total: usize = rs.iter().map(|e| e.conns().len()).sum();
        assert_eq!(total, 200);
        for (i, u) in used.iter().enumerate() {
            assert_eq!(rs[i].conns().len(), *u);
            assert!(
                *u > 200 / n / 3,
                "replica {i} of {n} got {u} of 200: {used:?}"
            );
        }
    }
}

#[test]
fn a_persistence_template_shares_the_replica_of_its_clients() {
    let mut rs = replicas(4, FwdMethod::Route, true);
    // 20 clients of one /24, several connections each: one server for all.
    let mut servers = std::collections::HashSet::new();
    let mut owners = std::collections::HashSet::new();
    for host in 1..=20u8 {
        for cport in [1000u16, 2000] {
            let mut syn = tcp_frame(
                CLIENT_MAC,
                DIRECTOR_MAC_C,
                ([172, 16, 9, host], cport),
                (VIP, 80),
                Flags::Syn,
                b"",
            );
            let (owner, a) = steered(&mut rs, &mut syn, CLIENT_PORT);
            assert!(matches!(a, Action::Forward { .. }));
            owners.insert(owner);
            servers.insert(syn[HEADROOM..HEADROOM + 6].to_vec());
        }
    }
    assert_eq!(owners.len(), 1, "one replica for the /24");
    assert_eq!(
        servers.len(),
        1,
        "one real server for the /24 (persistence)"
    );
    // Deleting the persistent service widens nothing any more.
    let key: ServiceKey = svc_key(80);
    for e in rs.iter_mut() {
        e.delete_service(&key).unwrap();
        assert_eq!(e.services().persist_masks(), (u32::MAX, 128));
    }
}

#[test]
fn the_masks_follow_persistent_services() {
    let mut e = engine();
    assert_eq!(e.services().persist_masks(), (u32::MAX, 128));
    let key = svc_key(80);
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.flags |= rvs_core::service::SVC_F_PERSISTENT;
    cfg.netmask = 0xffff_0000;
    e.add_service(key, cfg.clone()).unwrap();
    assert_eq!(e.services().persist_masks().0, 0xffff_0000);
    let key2 = svc_key(443);
    let mut cfg2 = cfg.clone();
    cfg2.netmask = 0xff00_0000;
    e.add_service(key2, cfg2).unwrap();
    assert_eq!(e.services().persist_masks().0, 0xff00_0000);
    // -E without -p: the /8 is gone.
    e.edit_service(&key2, ServiceConfig::new(Af::Inet)).unwrap();
    assert_eq!(e.services().persist_masks().0, 0xffff_0000);
    e.flush();
    assert_eq!(e.services().persist_masks(), (u32::MAX, 128));
    // The steering hash of a client is the one of its masked address.
    e.add_service(key, cfg).unwrap();
    assert_eq!(
        e.steer_addr(v4([10, 1, 2, 3])),
        e.steer_addr(v4([10, 1, 200, 9]))
    );
}

#[test]
fn owner_spreads_and_stays_in_range() {
    let e = engine();
    for n in 1..=8usize {
        let mut seen = vec![0u32; n];
        for i in 0..4096u32 {
            let o = steer_owner(e.steer_addr(v4(client(i))), n);
            assert!(o < n);
            seen[o] += 1;
        }
        let min = *seen.iter().min().unwrap();
        assert!(min > 4096 / n as u32 / 2, "{n}: {seen:?}");
    }
}

#[test]
fn a_replica_has_the_configuration_and_no_state() {
    let mut e = replicas(1, FwdMethod::Masq, true).remove(0);
    e.set_timeouts(100, 20, 30).unwrap();
    let key2 = svc_key(443);
    e.add_service(key2, ServiceConfig::new(Af::Inet)).unwrap();
    e.add_dest(&key2, &DestConfig::new(v4(RS2), 443), Instant::ZERO)
        .unwrap();
    // Some state in the original.
    let (a, _) = client_pkt(&mut e, 5555, 80, Flags::Syn, Instant::ZERO);
    assert!(matches!(a, Action::Forward { .. }));
    let r = e.replica();
    assert_eq!(r.conns().len(), 0);
    assert_eq!(r.timeouts(), e.timeouts());
    assert_eq!(r.services().persist_masks(), e.services().persist_masks());
    let list = |e: &Engine| {
        let mut v: Vec<_> = e
            .services()
            .iter()
            .map(|(_, s)| {
                let d: Vec<_> = s.dests.iter().map(|d| d.config()).collect();
                (s.seq, s.key, s.config.clone(), d)
            })
            .collect();
        v.sort_by_key(|x| x.0);
        v.into_iter()
            .map(|(_, k, c, d)| (k, c, d))
            .collect::<Vec<_>>()
    };
    assert_eq!(list(&r), list(&e));
    // And it forwards on its own (ports and hops came along).
    let mut r = r;
    let (a, _) = client_pkt(&mut r, 5556, 80, Flags::Syn, Instant::ZERO);
    assert!(matches!(a, Action::Forward { .. }), "{a:?}");
}

#[test]
fn a_replica_of_mh_keeps_a_quiesced_servers_slots() {
    let mut e = engine();
    let key = svc_key(80);
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "mh".into();
    e.add_service(key, cfg).unwrap();
    for (rs, w) in [(RS1, 3u32), (RS2, 1)] {
        let mut d = DestConfig::new(v4(rs), 80);
        d.weight = w;
        e.add_dest(&key, &d, Instant::ZERO).unwrap();
    }
    // Quiesce RS1: mh keeps its slots (last_weight).
    let mut d = DestConfig::new(v4(RS1), 80);
    d.weight = 0;
    e.edit_dest(&key, &d).unwrap();
    let mut r = e.replica();
    for cport in 1000..1100u16 {
        let (a1, f1) = client_pkt(&mut e, cport, 80, Flags::Syn, Instant::ZERO);
        let (a2, f2) = client_pkt(&mut r, cport, 80, Flags::Syn, Instant::ZERO);
        assert_eq!(a1, a2);
        assert_eq!(
            f1[HEADROOM..HEADROOM + 6],
            f2[HEADROOM..HEADROOM + 6],
            "port {cport}"
        );
    }
}

/// Replicas that share their servers' totals schedule on the counts of
/// every replica, as the kernel's one `ip_vs_dest` for all CPUs: a server
/// one replica filled to its upper threshold is OVERLOADED for the others.
#[test]
fn shared_totals_make_thresholds_global() {
    let setup = || {
        let mut e = engine();
        let key = svc_key(80);
        let mut cfg = ServiceConfig::new(Af::Inet);
        cfg.scheduler = "fo".into();
        e.add_service(key, cfg).unwrap();
        let mut d1 = DestConfig::new(v4(RS1), 80);
        d1.weight = 10;
        d1.u_threshold = 2;
        e.add_dest(&key, &d1, Instant::ZERO).unwrap();
        e.add_dest(&key, &DestConfig::new(v4(RS2), 80), Instant::ZERO)
            .unwrap();
        e
    };
    for shared in [false, true] {
        let mut e0 = setup();
        let mut e1 = e0.replica();
        if shared {
            e0.share_dest_totals(None);
            e1.share_dest_totals(Some(&e0));
        }
        // Two connections in replica 0: both to RS1 (fo: highest weight).
        for cport in [1000u16, 1001] {
            let (a, f) = client_pkt(&mut e0, cport, 80, Flags::Syn, Instant::ZERO);
            assert!(matches!(a, Action::Forward { .. }));
            assert_eq!(f[HEADROOM..HEADROOM + 6], RS1_MAC);
        }
        // Replica 1's first connection.
        let (_, f) = client_pkt(&mut e1, 2000, 80, Flags::Syn, Instant::ZERO);
        let expect = if shared { RS2_MAC } else { RS1_MAC };
        assert_eq!(f[HEADROOM..HEADROOM + 6], expect, "shared {shared}");
        // Each replica still lists only its own connections.
        let d = |e: &Engine| e.services().iter().next().unwrap().1.dests.clone();
        let rs1 = |ds: Vec<rvs_core::Dest>| ds.into_iter().find(|x| x.addr == v4(RS1)).unwrap();
        assert_eq!(rs1(d(&e0)).inactconns + rs1(d(&e0)).activeconns, 2);
        if shared {
            assert_eq!(rs1(d(&e1)).total_conns(), 2, "the total over both");
            assert_eq!(rs1(d(&e1)).inactconns, 0, "its own");
        }
    }
}

/// The real server (address, port) a NAT frame was sent to.
fn picked(a: &Action, f: &[u8]) -> ([u8; 4], u16) {
    let Action::Forward { start, .. } = *a else {
        panic!("not forwarded: {a:?}");
    };
    let ip = &f[start + 14..];
    let ihl = usize::from(ip[0] & 0xf) * 4;
    (
        ip[16..20].try_into().unwrap(),
        u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]),
    )
}

/// A NAT service with `sched` and three real servers (RS1:8080 weight 3,
/// RS1:8081 weight 2, RS2:8080 weight 1).
fn three_servers(sched: &str) -> Engine {
    let mut e = engine();
    let key = svc_key(80);
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = sched.into();
    e.add_service(key, cfg).unwrap();
    for (rs, port, w) in [(RS1, 8080, 3), (RS1, 8081, 2), (RS2, 8080, 1)] {
        let mut d = DestConfig::new(v4(rs), port);
        d.fwd = FwdMethod::Masq;
        d.weight = w;
        e.add_dest(&key, &d, Instant::ZERO).unwrap();
    }
    e
}

/// Replicas that share their schedulers' state (`rr`/`wrr`'s position,
/// `lblc`/`lblcr`'s table) and their servers' counts pick, between them, the
/// sequence one engine picks alone (the kernel's one state per service,
/// whichever CPU schedules), through a real server's removal and a
/// scheduler change, each applied to one replica after the other.
#[test]
fn shared_scheduler_state_makes_one_scheduler() {
    for sched in ["rr", "wrr", "lblc", "lblcr"] {
        let mut one = three_servers(sched);
        let mut e0 = three_servers(sched);
        let mut e1 = e0.replica();
        e0.share_dest_totals(None);
        e1.share_dest_totals(Some(&e0));
        e1.share_sched_state(&e0);
        let key = svc_key(80);
        let mut cport = 1000u16;
        let mut step = |one: &mut Engine, e0: &mut Engine, e1: &mut Engine, n: usize| {
            for i in 0..n {
                cport += 1;
                let (a, f) = client_pkt(one, cport, 80, Flags::Syn, Instant::ZERO);
                let want = picked(&a, &f);
                let r = if i % 3 == 0 { &mut *e0 } else { &mut *e1 };
                let (a, f) = client_pkt(r, cport, 80, Flags::Syn, Instant::ZERO);
                assert_eq!(picked(&a, &f), want, "{sched}: pick {i}");
            }
        };
        step(&mut one, &mut e0, &mut e1, 14);
        // A removal, applied to one replica, then the other.
        let gone = (v4(RS1), 8081);
        for e in [&mut one, &mut e0, &mut e1] {
            e.delete_dest(&key, gone.0, gone.1, Instant::ZERO).unwrap();
        }
        step(&mut one, &mut e0, &mut e1, 10);
        // `-E` to the other scheduler: a fresh position, shared again.
        let mut cfg = ServiceConfig::new(Af::Inet);
        cfg.scheduler = match sched {
            "rr" => "wrr",
            "wrr" => "rr",
            "lblc" => "lblcr",
            _ => "lblc",
        }
        .into();
        for e in [&mut one, &mut e0, &mut e1] {
            e.edit_service(&key, cfg.clone()).unwrap();
        }
        e0.share_dest_totals(None);
        e1.share_dest_totals(Some(&e0));
        e1.share_sched_state(&e0);
        step(&mut one, &mut e0, &mut e1, 10);
        // Unshared, the replicas' sequences differ from one engine's.
        if sched == "rr" {
            let mut e2 = three_servers(sched);
            let mut e3 = e2.replica();
            let mut mine = Vec::new();
            let mut want = Vec::new();
            let mut solo = three_servers(sched);
            for i in 0..6u16 {
                let (a, f) = client_pkt(&mut solo, 3000 + i, 80, Flags::Syn, Instant::ZERO);
                want.push(picked(&a, &f));
                let r = if i % 2 == 0 { &mut e2 } else { &mut e3 };
                let (a, f) = client_pkt(r, 3000 + i, 80, Flags::Syn, Instant::ZERO);
                mine.push(picked(&a, &f));
            }
            assert_ne!(mine, want, "replicas apart keep positions apart");
        }
    }
}
