//! Whole conversations through `Engine::process`, for every forwarding method.
//!
//! Frames are built and checked with etherparse, independently of rvs-wire.

use core::net::IpAddr;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use rvs_core::conn;
use rvs_core::engine::{Action, DropReason, Engine, EngineConfig, Frame, Hop};
use rvs_core::service::{SVC_F_ONEPACKET, SVC_F_PERSISTENT, ServiceConfig, ServiceKey};
use rvs_core::{Af, DestConfig, FwdMethod, Instant, Protocol};
use rvs_wire::EthernetAddress;

mod common;
use common::*;

fn out_frame(a: &Action, buf: &[u8]) -> Vec<u8> {
    match a {
        Action::Forward { start, len, .. } => buf[*start..start + len].to_vec(),
        other => panic!("expected Forward, got {other:?}"),
    }
}

/// Destination IPv4 address and TCP port of a frame, with checksums verified.
fn tcp_dst(frame: &[u8]) -> (IpAddr, u16, [u8; 6]) {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum(), "ipv4 checksum");
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not tcp")
    };
    let th = t.to_header();
    let expect = th
        .calc_checksum_ipv4(&h, ip.payload().payload[th.header_len()..].as_ref())
        .unwrap();
    assert_eq!(th.checksum, expect, "tcp checksum");
    let mac: [u8; 6] = frame[0..6].try_into().unwrap();
    (IpAddr::V4(h.destination.into()), th.destination_port, mac)
}

fn tcp_src(frame: &[u8]) -> (IpAddr, u16) {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not ipv4")
    };
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not tcp")
    };
    (IpAddr::V4(ip.header().source_addr()), t.source_port())
}

fn dest_counts(e: &Engine, key: &ServiceKey, rs: [u8; 4]) -> (u32, u32, u32) {
    let svc = e.services().get(e.services().find(key).unwrap()).unwrap();
    let d = svc.dests.iter().find(|d| d.addr == v4(rs)).unwrap();
    (d.activeconns, d.inactconns, d.persistconns)
}

#[test]
fn dr_conversation_states_counters_and_expiry() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Route, &[80]);
    let t0 = Instant::from_secs(100);

    let (a, f) = client_pkt(&mut e, 40000, 80, Flags::Syn, t0);
    let out = out_frame(&a, &f);
    assert!(matches!(
        a,
        Action::Forward {
            port: SERVER_PORT,
            ..
        }
    ));
    // DR: only the MACs change.
    assert_eq!(&out[0..6], &RS1_MAC);
    assert_eq!(&out[6..12], &DIRECTOR_MAC_S);
    let orig = tcp_frame(
        CLIENT_MAC,
        DIRECTOR_MAC_C,
        (CIP, 40000),
        (VIP, 80),
        Flags::Syn,
        b"hello",
    );
    assert_eq!(&out[12..], &orig[HEADROOM + 12..]);
    let c = the_conn(&e);
    assert_eq!(conn::state_name(c.proto, c.flags, c.state), "SYN_RECV");
    assert_eq!(dest_counts(&e, &key, RS1), (1, 0, 0));

    let (a, _) = client_pkt(&mut e, 40000, 80, Flags::Ack, t0);
    assert!(matches!(a, Action::Forward { .. }));
    let c = the_conn(&e);
    assert_eq!(conn::state_name(c.proto, c.flags, c.state), "ESTABLISHED");
    assert_eq!(c.expires, t0 + core::time::Duration::from_secs(900));

    let (a, _) = client_pkt(&mut e, 40000, 80, Flags::FinAck, t0);
    assert!(matches!(a, Action::Forward { .. }));
    let c = the_conn(&e);
    assert_eq!(conn::state_name(c.proto, c.flags, c.state), "FIN_WAIT");
    assert_eq!(dest_counts(&e, &key, RS1), (0, 1, 0));

    let svc = e.services().get(e.services().find(&key).unwrap()).unwrap();
    let st = svc.stats.shown();
    assert_eq!((st.conns, st.inpkts, st.outpkts), (1, 3, 0));
    assert_eq!(st.inbytes, 3 * (20 + 20 + 5));
    assert_eq!(e.stats().shown().inpkts, 3);

    // FIN_WAIT lasts 120 s.
    e.poll(t0 + core::time::Duration::from_secs(119));
    assert_eq!(e.conns().len(), 1);
    e.poll(t0 + core::time::Duration::from_secs(122));
    assert_eq!(e.conns().len(), 0);
    assert_eq!(dest_counts(&e, &key, RS1), (0, 0, 0));
}

#[test]
fn nat_conversation_rewrites_both_directions() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Masq, &[8080]);
    let t0 = Instant::from_secs(5);

    let (a, f) = client_pkt(&mut e, 40001, 80, Flags::Syn, t0);
    let out = out_frame(&a, &f);
    let (dst, dport, mac) = tcp_dst(&out);
    assert_eq!((dst, dport, mac), (v4(RS1), 8080, RS1_MAC));
    assert_eq!(tcp_src(&out), (v4(CIP), 40001));

    // The server answers to the client through the director.
    let mut r = tcp_frame(
        RS1_MAC,
        DIRECTOR_MAC_S,
        (RS1, 8080),
        (CIP, 40001),
        Flags::SynAck,
        b"",
    );
    let a = run(&mut e, &mut r, SERVER_PORT, t0);
    assert!(matches!(
        a,
        Action::Forward {
            port: CLIENT_PORT,
            ..
        }
    ));
    let out = out_frame(&a, &r);
    assert_eq!(tcp_src(&out), (v4(VIP), 80));
    let (dst, dport, mac) = tcp_dst(&out);
    assert_eq!((dst, dport, mac), (v4(CIP), 40001, CLIENT_MAC));
    assert_eq!(out[14 + 8], 63, "reply TTL decremented");

    let (a, _) = client_pkt(&mut e, 40001, 80, Flags::Ack, t0);
    assert!(matches!(a, Action::Forward { .. }));
    let c = the_conn(&e);
    assert_eq!(conn::state_name(c.proto, c.flags, c.state), "ESTABLISHED");
    assert_eq!(dest_counts(&e, &key, RS1), (1, 0, 0));

    // Server closes first: FIN from the server, then client FIN.
    let mut r = tcp_frame(
        RS1_MAC,
        DIRECTOR_MAC_S,
        (RS1, 8080),
        (CIP, 40001),
        Flags::FinAck,
        b"",
    );
    assert!(matches!(
        run(&mut e, &mut r, SERVER_PORT, t0),
        Action::Forward { .. }
    ));
    let c = the_conn(&e);
    assert_eq!(conn::state_name(c.proto, c.flags, c.state), "FIN_WAIT");
    let (a, _) = client_pkt(&mut e, 40001, 80, Flags::FinAck, t0);
    assert!(matches!(a, Action::Forward { .. }));
    let c = the_conn(&e);
    assert_eq!(conn::state_name(c.proto, c.flags, c.state), "TIME_WAIT");
    assert_eq!(dest_counts(&e, &key, RS1), (0, 1, 0));

    let st = e.stats().shown();
    assert_eq!((st.conns, st.inpkts, st.outpkts), (1, 3, 2));
}

#[test]
fn tun_encapsulates_and_reports_mtu() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Tunnel, &[80]);
    let t0 = Instant::from_secs(1);
    let (a, f) = client_pkt(&mut e, 40002, 80, Flags::Syn, t0);
    let out = out_frame(&a, &f);
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv4(outer)) = p.net else {
        panic!("no outer ipv4")
    };
    let oh = outer.header().to_header();
    assert_eq!(oh.protocol, etherparse::IpNumber::IPV4);
    assert_eq!(oh.header_checksum, oh.calc_header_checksum());
    assert_eq!(IpAddr::V4(oh.destination.into()), v4(RS1));
    assert_eq!(IpAddr::V4(oh.source.into()), v4([192, 168, 1, 1]));
    assert_eq!(&out[0..6], &RS1_MAC);
    let orig = tcp_frame(
        CLIENT_MAC,
        DIRECTOR_MAC_C,
        (CIP, 40002),
        (VIP, 80),
        Flags::Syn,
        b"hello",
    );
    assert_eq!(
        &out[14 + 20..],
        &orig[HEADROOM + 14..],
        "inner packet intact"
    );

    // A full-size DF packet no longer fits: ICMP fragmentation needed back to the client.
    let (a, _) = client_pkt(&mut e, 40002, 80, Flags::Ack, t0);
    assert!(matches!(a, Action::Forward { .. }));
    let mut big = tcp_frame(
        CLIENT_MAC,
        DIRECTOR_MAC_C,
        (CIP, 40002),
        (VIP, 80),
        Flags::Ack,
        &[7u8; 1460],
    );
    big[HEADROOM + 14 + 6] |= 0x40; // DF
    // fix IPv4 header checksum after setting DF
    fix_ipv4_csum(&mut big[HEADROOM + 14..HEADROOM + 34]);
    let a = run(&mut e, &mut big, CLIENT_PORT, t0);
    let Action::Reply { port, len } = a else {
        panic!("expected Reply, got {a:?}")
    };
    assert_eq!(port, CLIENT_PORT);
    let reply = e.reply_frame(len).to_vec();
    let p = SlicedPacket::from_ethernet(&reply).unwrap();
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!("not icmp")
    };
    match icmp.icmp_type() {
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu },
        ) => assert_eq!(next_hop_mtu, 1480),
        other => panic!("unexpected icmp {other:?}"),
    }
}

fn fix_ipv4_csum(h: &mut [u8]) {
    h[10] = 0;
    h[11] = 0;
    let mut s: u32 = 0;
    for w in h.chunks(2) {
        s += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    let c = !(s as u16);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn no_dest_answers_port_unreachable() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "wlc", FwdMethod::Route, &[]);
    let (a, _) = client_pkt(&mut e, 40003, 80, Flags::Syn, Instant::ZERO);
    let Action::Reply { port, len } = a else {
        panic!("expected Reply, got {a:?}")
    };
    assert_eq!(port, CLIENT_PORT);
    let reply = e.reply_frame(len).to_vec();
    let p = SlicedPacket::from_ethernet(&reply).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!()
    };
    assert_eq!(IpAddr::V4(ip.header().source_addr()), v4(VIP));
    assert_eq!(IpAddr::V4(ip.header().destination_addr()), v4(CIP));
    assert!(matches!(p.transport, Some(TransportSlice::Icmpv4(_))));
    assert_eq!(e.conns().len(), 0);
}

#[test]
fn unrelated_and_midstream_traffic() {
    let mut e = engine();
    add_service(&mut e, svc_key(80), "rr", FwdMethod::Route, &[80]);
    // Another port of the VIP: not ours.
    let (a, _) = client_pkt(&mut e, 40004, 22, Flags::Syn, Instant::ZERO);
    assert_eq!(a, Action::Pass);
    // An ACK for no connection: not scheduled, not passed (no RST from us).
    let (a, _) = client_pkt(&mut e, 40004, 80, Flags::Ack, Instant::ZERO);
    assert_eq!(a, Action::Drop(DropReason::NoConnection));
    let (a, _) = client_pkt(&mut e, 40004, 80, Flags::Rst, Instant::ZERO);
    assert_eq!(a, Action::Drop(DropReason::NoConnection));
    // Garbage and ARP go to the kernel.
    let mut junk = vec![0u8; HEADROOM + 10];
    let len = 10;
    let a = e.process(
        Frame {
            buf: &mut junk,
            start: HEADROOM,
            len,
            ingress: CLIENT_PORT,
            fwmark: 0,
        },
        Instant::ZERO,
    );
    assert_eq!(a, Action::Pass);
}

#[test]
fn rr_alternates_and_wrr_follows_weights() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Route, &[80, 80]);
    let mut macs = Vec::new();
    for i in 0..6 {
        let (a, f) = client_pkt(&mut e, 41000 + i, 80, Flags::Syn, Instant::ZERO);
        macs.push(out_frame(&a, &f)[0..6].to_vec());
    }
    // Newest real server first: RS2, RS1, RS2, ...
    for (i, m) in macs.iter().enumerate() {
        assert_eq!(m.as_slice(), if i % 2 == 0 { &RS2_MAC } else { &RS1_MAC });
    }

    let mut e = engine();
    let key = svc_key(80);
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "wrr".into();
    e.add_service(key, cfg).unwrap();
    for (rs, w) in [(RS1, 1), (RS2, 3)] {
        let mut d = DestConfig::new(v4(rs), 80);
        d.weight = w;
        e.add_dest(&key, &d, Instant::ZERO).unwrap();
    }
    let mut n2 = 0;
    for i in 0..400 {
        let (a, f) = client_pkt(&mut e, 10000 + i, 80, Flags::Syn, Instant::ZERO);
        if out_frame(&a, &f)[0..6] == RS2_MAC {
            n2 += 1;
        }
    }
    assert_eq!(n2, 300);
}

#[test]
fn persistence_ppc_and_template_expiry() {
    let mut e = engine();
    let key = svc_key(80);
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "rr".into();
    cfg.flags = SVC_F_PERSISTENT;
    cfg.timeout = 60;
    e.add_service(key, cfg).unwrap();
    for rs in [RS1, RS2] {
        e.add_dest(&key, &DestConfig::new(v4(rs), 80), Instant::ZERO)
            .unwrap();
    }
    let t0 = Instant::from_secs(10);
    let mut first = None;
    for i in 0..20 {
        let (a, f) = client_pkt(&mut e, 42000 + i, 80, Flags::Syn, t0);
        let mac = out_frame(&a, &f)[0..6].to_vec();
        assert_eq!(*first.get_or_insert(mac.clone()), mac);
    }
    let templates: Vec<_> = e
        .conns()
        .iter()
        .filter(|(_, c)| c.flags & conn::flags::TEMPLATE != 0)
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0].cport, 0);
    assert_eq!(templates[0].vport, 80);
    assert_eq!(templates[0].n_control, 20);
    let (_, _, p) = dest_counts(
        &e,
        &key,
        if first.as_deref() == Some(&RS1_MAC[..]) {
            RS1
        } else {
            RS2
        },
    );
    assert_eq!(p, 1);

    // The SYN_RECV conns go after 60 s; the template lives its own 60 s after the last use.
    e.poll(t0 + core::time::Duration::from_secs(61));
    assert_eq!(
        e.conns()
            .iter()
            .filter(|(_, c)| c.flags & conn::flags::TEMPLATE == 0)
            .count(),
        0
    );
    e.poll(t0 + core::time::Duration::from_secs(200));
    assert_eq!(e.conns().len(), 0, "template expired");
}

#[test]
fn persistence_pcc_all_ports_one_server() {
    let mut e = engine();
    let key = svc_key(0);
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "rr".into();
    cfg.flags = SVC_F_PERSISTENT;
    cfg.timeout = 360;
    e.add_service(key, cfg).unwrap();
    for rs in [RS1, RS2] {
        e.add_dest(&key, &DestConfig::new(v4(rs), 0), Instant::ZERO)
            .unwrap();
    }
    let (a, f) = client_pkt(&mut e, 43000, 80, Flags::Syn, Instant::ZERO);
    let m80 = out_frame(&a, &f)[0..6].to_vec();
    let (a, f) = client_pkt(&mut e, 43001, 443, Flags::Syn, Instant::ZERO);
    let m443 = out_frame(&a, &f)[0..6].to_vec();
    assert_eq!(m80, m443);
}

#[test]
fn non_persistent_port_zero_never_schedules() {
    let mut e = engine();
    let key = svc_key(0);
    add_service(&mut e, key, "rr", FwdMethod::Route, &[0]);
    let (a, _) = client_pkt(&mut e, 43000, 80, Flags::Syn, Instant::ZERO);
    assert_eq!(a, Action::Drop(DropReason::NoConnection));
}

#[test]
fn quiesced_server_keeps_its_connections() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Route, &[80, 80]);
    let (a, f) = client_pkt(&mut e, 44000, 80, Flags::Syn, Instant::ZERO);
    assert_eq!(out_frame(&a, &f)[0..6], RS2_MAC);
    let mut d = DestConfig::new(v4(RS2), 80);
    d.weight = 0;
    e.edit_dest(&key, &d).unwrap();
    // The existing connection goes on to RS2 ...
    let (a, f) = client_pkt(&mut e, 44000, 80, Flags::Ack, Instant::ZERO);
    assert_eq!(out_frame(&a, &f)[0..6], RS2_MAC);
    // ... new ones go to RS1 only.
    for i in 1..5 {
        let (a, f) = client_pkt(&mut e, 44000 + i, 80, Flags::Syn, Instant::ZERO);
        assert_eq!(out_frame(&a, &f)[0..6], RS1_MAC);
    }
}

#[test]
fn deleted_server_drops_or_reschedules() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Route, &[80, 80]);
    let (a, f) = client_pkt(&mut e, 45000, 80, Flags::Syn, Instant::ZERO);
    assert_eq!(out_frame(&a, &f)[0..6], RS2_MAC);
    e.delete_dest(&key, v4(RS2), 80, Instant::ZERO).unwrap();
    let (a, _) = client_pkt(&mut e, 45000, 80, Flags::Ack, Instant::ZERO);
    assert_eq!(a, Action::Drop(DropReason::DestGone));

    let mut s = *e.sysctls();
    s.expire_nodest_conn = true;
    e.set_sysctls(s);
    let (a, f) = client_pkt(&mut e, 45000, 80, Flags::Syn, Instant::ZERO);
    assert_eq!(
        out_frame(&a, &f)[0..6],
        RS1_MAC,
        "rescheduled to a live server"
    );
    assert_eq!(dest_counts(&e, &key, RS1), (1, 0, 0));
}

#[test]
fn upper_threshold_overloads_and_lower_resumes() {
    let mut e = engine();
    let key = svc_key(80);
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "fo".into();
    e.add_service(key, cfg).unwrap();
    let mut d1 = DestConfig::new(v4(RS1), 80);
    d1.weight = 100;
    d1.u_threshold = 2;
    d1.l_threshold = 1;
    e.add_dest(&key, &d1, Instant::ZERO).unwrap();
    let mut d2 = DestConfig::new(v4(RS2), 80);
    d2.weight = 1;
    e.add_dest(&key, &d2, Instant::ZERO).unwrap();
    let mut macs = Vec::new();
    for i in 0..4 {
        let (a, f) = client_pkt(&mut e, 46000 + i, 80, Flags::Syn, Instant::ZERO);
        macs.push(out_frame(&a, &f)[0..6].to_vec());
    }
    assert_eq!(macs[0], RS1_MAC);
    assert_eq!(macs[1], RS1_MAC);
    assert_eq!(macs[2], RS2_MAC, "RS1 reached u_threshold 2");
    assert_eq!(macs[3], RS2_MAC);
    // Reset both of RS1's connections: after they expire (CLOSE 10 s) it resumes.
    // (RST in SYN_RECV keeps SYN_RECV in the kernel's table: establish first.)
    for i in 0..2 {
        client_pkt(&mut e, 46000 + i, 80, Flags::Ack, Instant::ZERO);
        let (a, _) = client_pkt(&mut e, 46000 + i, 80, Flags::Rst, Instant::ZERO);
        assert!(matches!(a, Action::Forward { .. }));
    }
    e.poll(Instant::from_secs(12));
    let svc = e.services().get(e.services().find(&key).unwrap()).unwrap();
    assert!(!svc.dests.iter().any(|d| d.overload));
}

#[test]
fn table_full_is_counted() {
    let mut capped = engine_with(EngineConfig {
        max_conns: 3,
        ..EngineConfig::default()
    });
    let key = svc_key(80);
    add_service(&mut capped, key, "rr", FwdMethod::Route, &[80]);
    for i in 0..3 {
        let (a, _) = client_pkt(&mut capped, 47000 + i, 80, Flags::Syn, Instant::ZERO);
        assert!(matches!(a, Action::Forward { .. }));
        // Established: not evicted to make room (SYN_RECV ones would be).
        client_pkt(&mut capped, 47000 + i, 80, Flags::Ack, Instant::ZERO);
    }
    let (a, _) = client_pkt(&mut capped, 47100, 80, Flags::Syn, Instant::ZERO);
    assert_eq!(a, Action::Drop(DropReason::TableFull));
    assert_eq!(capped.counters().drop_table_full, 1);
    assert_eq!(capped.conns().dropped_full(), 1);
}

#[test]
fn missing_neighbour_is_requested() {
    let mut e = engine();
    e.remove_hop(&v4(RS1));
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Route, &[80]);
    let (a, _) = client_pkt(&mut e, 48000, 80, Flags::Syn, Instant::ZERO);
    assert_eq!(a, Action::NeedHop(v4(RS1)));
}

/// A frame that needs a hop is left untouched and uncounted, so the data
/// plane can hold it and process it again once the neighbour is resolved:
/// every packet is then counted exactly once (in, out and for NAT replies).
#[test]
fn need_hop_leaves_frame_and_counters_untouched() {
    let mut e = engine();
    e.remove_hop(&v4(RS1));
    e.remove_hop(&v4(CIP));
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Masq, &[8080]);
    let t0 = Instant::from_secs(5);

    // Client SYN: the real server's hop is missing.
    let mut f = tcp_frame(
        CLIENT_MAC,
        DIRECTOR_MAC_C,
        (CIP, 40001),
        (VIP, 80),
        Flags::Syn,
        b"hello",
    );
    let orig = f.clone();
    assert_eq!(
        run(&mut e, &mut f, CLIENT_PORT, t0),
        Action::NeedHop(v4(RS1))
    );
    assert_eq!(f, orig, "frame untouched");
    let st = e.stats().shown();
    assert_eq!((st.inpkts, st.outpkts), (0, 0));
    e.set_hop(
        v4(RS1),
        Hop {
            port: SERVER_PORT,
            mac: EthernetAddress(RS1_MAC),
        },
    );
    let a = run(&mut e, &mut f, CLIENT_PORT, t0);
    assert_eq!(tcp_dst(&out_frame(&a, &f)), (v4(RS1), 8080, RS1_MAC));

    // The server's SYN-ACK: the client's hop is missing.
    let mut r = tcp_frame(
        RS1_MAC,
        DIRECTOR_MAC_S,
        (RS1, 8080),
        (CIP, 40001),
        Flags::SynAck,
        b"",
    );
    let orig = r.clone();
    assert_eq!(
        run(&mut e, &mut r, SERVER_PORT, t0),
        Action::NeedHop(v4(CIP))
    );
    assert_eq!(r, orig, "frame untouched");
    let c = the_conn(&e);
    assert_eq!(conn::state_name(c.proto, c.flags, c.state), "SYN_RECV");
    e.set_hop(
        v4(CIP),
        Hop {
            port: CLIENT_PORT,
            mac: EthernetAddress(CLIENT_MAC),
        },
    );
    let a = run(&mut e, &mut r, SERVER_PORT, t0);
    assert_eq!(tcp_dst(&out_frame(&a, &r)), (v4(CIP), 40001, CLIENT_MAC));
    let st = e.stats().shown();
    assert_eq!((st.conns, st.inpkts, st.outpkts), (1, 1, 1));
}

/// A real server's next hop is kept with the server for the packet path
/// (`EgressCache`; DR: the frame keeps the VIP, only the MACs say where it
/// goes); every change of the hop or of the port reaches the
/// connection's next packet, and a hop that goes is asked for again.
#[test]
fn next_hop_changes_reach_established_connections() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Route, &[80]);
    let t = Instant::from_secs(1);
    let (a, f) = client_pkt(&mut e, 47000, 80, Flags::Syn, t);
    let out = out_frame(&a, &f);
    assert_eq!(tcp_dst(&out), (v4(VIP), 80, RS1_MAC));
    assert_eq!(out[6..12], DIRECTOR_MAC_S);

    // The neighbour's MAC address changes.
    let moved = [2, 0, 0, 0, 0x77, 0x01];
    e.set_hop(
        v4(RS1),
        Hop {
            port: SERVER_PORT,
            mac: EthernetAddress(moved),
        },
    );
    let (a, f) = client_pkt(&mut e, 47000, 80, Flags::Ack, t);
    assert_eq!(tcp_dst(&out_frame(&a, &f)).2, moved);

    // The egress port's own MAC address changes.
    let port_mac = [2, 0, 0, 0, 0x77, 0x02];
    e.set_port(
        SERVER_PORT,
        rvs_core::engine::PortConfig {
            mac: EthernetAddress(port_mac),
            mtu: 1500,
            addr_v4: Some(std::net::Ipv4Addr::new(192, 168, 1, 1)),
            addr_v6: None,
        },
    );
    let (a, f) = client_pkt(&mut e, 47000, 80, Flags::Ack, t);
    let out = out_frame(&a, &f);
    assert_eq!(
        (out[0..6].to_vec(), out[6..12].to_vec()),
        (moved.to_vec(), port_mac.to_vec())
    );

    // The hop goes: the next packet asks for it, untouched; back, it flows.
    e.remove_hop(&v4(RS1));
    let (a, _) = client_pkt(&mut e, 47000, 80, Flags::Ack, t);
    assert_eq!(a, Action::NeedHop(v4(RS1)));
    e.set_hop(
        v4(RS1),
        Hop {
            port: SERVER_PORT,
            mac: EthernetAddress(RS1_MAC),
        },
    );
    let (a, f) = client_pkt(&mut e, 47000, 80, Flags::Ack, t);
    assert_eq!(tcp_dst(&out_frame(&a, &f)), (v4(VIP), 80, RS1_MAC));

    // A new address's hop (another client's) leaves the cache valid.
    e.set_hop(
        v4([10, 0, 0, 99]),
        Hop {
            port: CLIENT_PORT,
            mac: EthernetAddress(CLIENT_MAC),
        },
    );
    let (a, f) = client_pkt(&mut e, 47000, 80, Flags::Ack, t);
    assert_eq!(tcp_dst(&out_frame(&a, &f)), (v4(VIP), 80, RS1_MAC));
}

#[test]
fn udp_and_one_packet_scheduling() {
    let mut e = engine();
    let key = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: v4(VIP),
        port: 53,
    };
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "rr".into();
    e.add_service(key, cfg.clone()).unwrap();
    for rs in [RS1, RS2] {
        let mut d = DestConfig::new(v4(rs), 53);
        d.fwd = FwdMethod::Masq;
        e.add_dest(&key, &d, Instant::ZERO).unwrap();
    }
    // Same flow: same server, one UDP connection, inactive.
    for _ in 0..3 {
        let mut f = udp_frame((CIP, 5353), (VIP, 53), b"q");
        let a = run(&mut e, &mut f, CLIENT_PORT, Instant::ZERO);
        assert_eq!(out_frame(&a, &f)[0..6], RS2_MAC);
    }
    let c = the_conn(&e);
    assert_eq!(conn::state_name(c.proto, c.flags, c.state), "UDP");
    assert_eq!(dest_counts(&e, &key, RS2), (0, 1, 0));
    assert_eq!(c.expires, Instant::from_secs(300));

    // With -o each datagram is scheduled on its own and nothing is kept.
    cfg.flags = SVC_F_ONEPACKET;
    e.edit_service(&key, cfg).unwrap();
    let mut macs = Vec::new();
    for _ in 0..4 {
        let mut f = udp_frame((CIP, 6000), (VIP, 53), b"q");
        let a = run(&mut e, &mut f, CLIENT_PORT, Instant::ZERO);
        macs.push(out_frame(&a, &f)[0..6].to_vec());
    }
    assert_ne!(macs[0], macs[1]);
    assert_eq!(macs[0], macs[2]);
    assert_eq!(e.conns().len(), 1, "one-packet conns are not kept");
}

#[test]
fn delete_service_and_flush_drop_connections() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Route, &[80]);
    client_pkt(&mut e, 49000, 80, Flags::Syn, Instant::ZERO);
    assert_eq!(e.conns().len(), 1);
    e.delete_service(&key).unwrap();
    assert_eq!(e.conns().len(), 0);
    let (a, _) = client_pkt(&mut e, 49000, 80, Flags::Ack, Instant::ZERO);
    assert_eq!(a, Action::Pass);
}

#[test]
fn zero_resets_shown_counters() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Route, &[80]);
    client_pkt(&mut e, 49100, 80, Flags::Syn, Instant::ZERO);
    e.zero(None).unwrap();
    assert_eq!(e.stats().shown().inpkts, 0);
    let svc = e.services().get(e.services().find(&key).unwrap()).unwrap();
    assert_eq!(svc.stats.shown().conns, 0);
    assert_eq!(
        svc.dests[0].inactconns + svc.dests[0].activeconns,
        1,
        "-Z keeps conn counts"
    );
    assert_eq!(e.zero(Some(&svc_key(81))).unwrap_err().errno(), 3);
}

#[test]
fn set_timeouts_changes_new_states() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Route, &[80]);
    e.set_timeouts(30, 0, 0).unwrap();
    client_pkt(&mut e, 49200, 80, Flags::Syn, Instant::ZERO);
    client_pkt(&mut e, 49200, 80, Flags::Ack, Instant::ZERO);
    assert_eq!(the_conn(&e).expires, Instant::from_secs(30));
}

#[test]
fn fwmark_persistence_one_template_for_all_marked_ports() {
    let mut e = engine();
    let key = ServiceKey::Fwmark {
        af: Af::Inet,
        mark: 7,
    };
    let mut cfg = ServiceConfig::new(Af::Inet);
    cfg.scheduler = "rr".into();
    cfg.flags = SVC_F_PERSISTENT;
    cfg.timeout = 360;
    e.add_service(key, cfg).unwrap();
    for rs in [RS1, RS2] {
        e.add_dest(&key, &DestConfig::new(v4(rs), 0), Instant::ZERO)
            .unwrap();
    }
    let mut macs = Vec::new();
    for (i, vport) in [80u16, 443, 80, 443].into_iter().enumerate() {
        let mut f = tcp_frame(
            CLIENT_MAC,
            DIRECTOR_MAC_C,
            (CIP, 50000 + i as u16),
            (VIP, vport),
            Flags::Syn,
            b"",
        );
        let len = f.len() - HEADROOM;
        let a = e.process(
            Frame {
                buf: &mut f,
                start: HEADROOM,
                len,
                ingress: CLIENT_PORT,
                fwmark: 7,
            },
            Instant::ZERO,
        );
        let out = out_frame(&a, &f);
        // DR keeps the packet's port (port-0 real servers).
        assert_eq!(tcp_dst(&out).1, vport);
        macs.push(out[0..6].to_vec());
    }
    assert!(macs.iter().all(|m| *m == macs[0]));
    let t: Vec<_> = e
        .conns()
        .iter()
        .filter(|(_, c)| c.flags & conn::flags::TEMPLATE != 0)
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].proto, 0, "fwmark templates are protocol IP");
    assert_eq!(t[0].vaddr, v4([0, 0, 0, 7]));
    // Without the mark the VIP is not a service.
    let (a, _) = client_pkt(&mut e, 50100, 80, Flags::Syn, Instant::ZERO);
    assert_eq!(a, Action::Pass);
}

#[test]
fn nat_icmp_error_from_server_is_translated() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Masq, &[8080]);
    client_pkt(&mut e, 51000, 80, Flags::Syn, Instant::ZERO);
    // The real server answers the DNATed SYN with ICMP port unreachable.
    let quoted = tcp_frame(
        RS1_MAC,
        DIRECTOR_MAC_S,
        (CIP, 51000),
        (RS1, 8080),
        Flags::Syn,
        b"",
    );
    let quoted_ip = &quoted[HEADROOM + 14..];
    let b = PacketBuilder::ethernet2(RS1_MAC, DIRECTOR_MAC_S)
        .ipv4(RS1, CIP, 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ));
    let mut f = vec![0u8; HEADROOM];
    b.write(&mut f, quoted_ip).unwrap();
    let a = run(&mut e, &mut f, SERVER_PORT, Instant::ZERO);
    assert!(
        matches!(
            a,
            Action::Forward {
                port: CLIENT_PORT,
                ..
            }
        ),
        "{a:?}"
    );
    let out = out_frame(&a, &f);
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!()
    };
    assert_eq!(IpAddr::V4(ip.header().source_addr()), v4(VIP));
    assert_eq!(IpAddr::V4(ip.header().destination_addr()), v4(CIP));
    // The quoted packet now reads client -> VIP:80, as the client sent it.
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!()
    };
    let q = icmp.payload();
    assert_eq!(&q[16..20], &VIP);
    assert_eq!(u16::from_be_bytes([q[22], q[23]]), 80);
    let mut icmp_bytes = icmp.slice().to_vec();
    let sum = {
        let mut s: u32 = 0;
        if icmp_bytes.len() % 2 == 1 {
            icmp_bytes.push(0);
        }
        for w in icmp_bytes.chunks(2) {
            s += u16::from_be_bytes([w[0], w[1]]) as u32;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s
    };
    assert_eq!(sum, 0xffff, "ICMP checksum valid");
}

#[test]
fn ipv6_dr_and_nat() {
    let mut e = engine();
    let vip6: IpAddr = "2001:db8::100".parse().unwrap();
    let cip6: IpAddr = "2001:db8:c::5".parse().unwrap();
    let rs6: IpAddr = "2001:db8:1::11".parse().unwrap();
    e.set_hop(
        rs6,
        Hop {
            port: SERVER_PORT,
            mac: EthernetAddress(RS1_MAC),
        },
    );
    e.set_hop(
        cip6,
        Hop {
            port: CLIENT_PORT,
            mac: EthernetAddress(CLIENT_MAC),
        },
    );
    let key = ServiceKey::Addr {
        proto: Protocol::Tcp,
        addr: vip6,
        port: 443,
    };
    e.add_service(key, ServiceConfig::new(Af::Inet6)).unwrap();
    let mut d = DestConfig::new(rs6, 8443);
    d.fwd = FwdMethod::Masq;
    e.add_dest(&key, &d, Instant::ZERO).unwrap();
    let (IpAddr::V6(c), IpAddr::V6(v), IpAddr::V6(r)) = (cip6, vip6, rs6) else {
        unreachable!()
    };
    let mut f = vec![0u8; HEADROOM];
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC_C)
        .ipv6(c.octets(), v.octets(), 64)
        .tcp(52000, 443, 1, 1000)
        .syn()
        .write(&mut f, b"x")
        .unwrap();
    let a = run(&mut e, &mut f, CLIENT_PORT, Instant::ZERO);
    let out = out_frame(&a, &f);
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!()
    };
    let ih = ip.header().to_header();
    assert_eq!(ih.destination, r.octets());
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        panic!()
    };
    let th = t.to_header();
    assert_eq!(th.destination_port, 8443);
    let payload = &ip.payload().payload[th.header_len()..];
    assert_eq!(th.checksum, th.calc_checksum_ipv6(&ih, payload).unwrap());

    // The reply is translated back to the VIP.
    let mut r6 = vec![0u8; HEADROOM];
    PacketBuilder::ethernet2(RS1_MAC, DIRECTOR_MAC_S)
        .ipv6(r.octets(), c.octets(), 64)
        .tcp(8443, 52000, 1, 1000)
        .syn()
        .ack(2)
        .write(&mut r6, b"")
        .unwrap();
    let a = run(&mut e, &mut r6, SERVER_PORT, Instant::ZERO);
    let out = out_frame(&a, &r6);
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().source_addr(), v);
    assert_eq!(ip.header().hop_limit(), 63);
}

/// An SCTP/IPv4 frame with one chunk of type `chunk` (CRC left zero: the
/// engine does not verify it, the real server would).
fn sctp_frame(cport: u16, chunk: u8) -> Vec<u8> {
    let mut sctp = Vec::new();
    sctp.extend_from_slice(&cport.to_be_bytes());
    sctp.extend_from_slice(&5060u16.to_be_bytes());
    sctp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
    sctp.extend_from_slice(&[chunk, 0, 0, 20]);
    sctp.extend_from_slice(&[0u8; 16]);
    let mut v = vec![0u8; HEADROOM];
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC_C)
        .ipv4(CIP, VIP, 64)
        .write(&mut v, etherparse::IpNumber(132), &sctp)
        .unwrap();
    v
}

#[test]
fn sctp_init_schedules_other_chunks_do_not() {
    let mut e = engine();
    let key = ServiceKey::Addr {
        proto: Protocol::Sctp,
        addr: v4(VIP),
        port: 5060,
    };
    e.add_service(key, ServiceConfig::new(Af::Inet)).unwrap();
    e.add_dest(&key, &DestConfig::new(v4(RS1), 5060), Instant::ZERO)
        .unwrap();
    // DATA (0) without an association: not a connection start.
    let mut f = sctp_frame(53000, 0);
    assert_eq!(
        run(&mut e, &mut f, CLIENT_PORT, Instant::ZERO),
        Action::Drop(DropReason::NoConnection)
    );
    // INIT (1) creates one; DATA then follows it.
    let mut f = sctp_frame(53000, 1);
    let a = run(&mut e, &mut f, CLIENT_PORT, Instant::ZERO);
    assert_eq!(out_frame(&a, &f)[0..6], RS1_MAC);
    let mut f = sctp_frame(53000, 0);
    assert!(matches!(
        run(&mut e, &mut f, CLIENT_PORT, Instant::ZERO),
        Action::Forward { .. }
    ));
    assert_eq!(e.conns().len(), 1);
    assert_eq!(e.stats().shown().conns, 1);
}

/// Makes the TCP/UDP checksum of an IPv4 frame (after `HEADROOM`) partial,
/// as a sender's checksum offload leaves it: the pseudo-header's sum.
fn make_partial(f: &mut [u8]) {
    let ip = &f[HEADROOM + 14..];
    let (src, dst): ([u8; 4], [u8; 4]) = (
        ip[12..16].try_into().unwrap(),
        ip[16..20].try_into().unwrap(),
    );
    let proto = ip[9];
    let tot = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let seg_len = (tot - 20) as u32;
    let ph = rvs_wire::checksum::pseudo_header(&v4(src), &v4(dst), proto, seg_len).unwrap();
    let off = HEADROOM + 34 + if proto == 6 { 16 } else { 6 };
    f[off..off + 2].copy_from_slice(&ph.to_be_bytes());
}

/// Frames whose checksum a sender's offload left partial are finished
/// before the rewrite: NAT both ways and DR deliver verified checksums
/// (`tcp_dst` checks them), and the engine counts them.
#[test]
fn partial_checksums_are_finished_in_every_direction() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Masq, &[8080]);
    let t0 = Instant::from_secs(5);
    let mut f = tcp_frame(
        CLIENT_MAC,
        DIRECTOR_MAC_C,
        (CIP, 40001),
        (VIP, 80),
        Flags::Syn,
        b"hello",
    );
    make_partial(&mut f);
    let a = run(&mut e, &mut f, CLIENT_PORT, t0);
    assert_eq!(tcp_dst(&out_frame(&a, &f)).1, 8080);
    assert_eq!(e.counters().csum_completed, 1);
    let mut r = tcp_frame(
        RS1_MAC,
        DIRECTOR_MAC_S,
        (RS1, 8080),
        (CIP, 40001),
        Flags::SynAck,
        b"a reply of odd length",
    );
    make_partial(&mut r);
    let a = run(&mut e, &mut r, SERVER_PORT, t0);
    let out = out_frame(&a, &r);
    assert_eq!(tcp_src(&out), (v4(VIP), 80));
    tcp_dst(&out);
    assert_eq!(e.counters().csum_completed, 2);
    // A complete checksum is neither changed nor counted.
    let (a, f) = client_pkt(&mut e, 40001, 80, Flags::Ack, t0);
    tcp_dst(&out_frame(&a, &f));
    assert_eq!(e.counters().csum_completed, 2);

    // DR: the frame keeps its addresses and gets a complete checksum.
    let mut e = engine();
    add_service(&mut e, key, "rr", FwdMethod::Route, &[80]);
    let mut f = tcp_frame(
        CLIENT_MAC,
        DIRECTOR_MAC_C,
        (CIP, 40002),
        (VIP, 80),
        Flags::Syn,
        b"hello",
    );
    make_partial(&mut f);
    let a = run(&mut e, &mut f, CLIENT_PORT, t0);
    assert_eq!(tcp_dst(&out_frame(&a, &f)), (v4(VIP), 80, RS1_MAC));
    assert_eq!(e.counters().csum_completed, 1);
    // UDP too.
    let mut e = engine();
    let ukey = ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: v4(VIP),
        port: 80,
    };
    add_service(&mut e, ukey, "rr", FwdMethod::Masq, &[5300]);
    let mut u = udp_frame((CIP, 5353), (VIP, 80), b"query");
    make_partial(&mut u);
    let a = run(&mut e, &mut u, CLIENT_PORT, t0);
    let out = out_frame(&a, &u);
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(udp))) = (p.net, p.transport) else {
        panic!("not udp/ipv4")
    };
    let h = udp.to_header();
    let want = h
        .calc_checksum_ipv4(&ip.header().to_header(), udp.payload())
        .unwrap();
    assert_eq!(h.checksum, want);
    assert_eq!(e.counters().csum_completed, 1);
}

/// A SYN flood from spoofed sources fills the table to its bound, not
/// beyond; near the bound each new SYN evicts the oldest entry still in
/// SYN_RECV (counted), so an established connection is never evicted and
/// a real client's handshake still completes.
#[test]
fn syn_flood_evicts_embryonic_entries_first() {
    let mut e = engine_with(EngineConfig {
        max_conns: 64,
        ..EngineConfig::default()
    });
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Route, &[80]);
    let t0 = Instant::from_secs(5);
    // A real client, established before the flood.
    let (a, _) = client_pkt(&mut e, 40001, 80, Flags::Syn, t0);
    assert!(matches!(a, Action::Forward { .. }));
    let (a, _) = client_pkt(&mut e, 40001, 80, Flags::Ack, t0);
    assert!(matches!(a, Action::Forward { .. }));
    let spoofed = |e: &mut Engine, i: u32| {
        let src = [10, 200, (i >> 8) as u8, i as u8];
        let mut f = tcp_frame(
            CLIENT_MAC,
            DIRECTOR_MAC_C,
            (src, 1024 + (i % 60000) as u16),
            (VIP, 80),
            Flags::Syn,
            b"",
        );
        run(e, &mut f, CLIENT_PORT, t0)
    };
    for i in 0..1000 {
        spoofed(&mut e, i);
        assert!(e.conns().len() <= 64);
    }
    let c = *e.counters();
    assert!(c.evicted_syn_recv > 900, "{c:?}");
    assert!(c.table_full >= c.evicted_syn_recv, "{c:?}");
    // The established connection is still there.
    let established = e.conns().iter().filter(|(_, c)| c.cport == 40001).count();
    assert_eq!(established, 1);
    // A new real client completes its handshake during the flood.
    let (a, _) = client_pkt(&mut e, 40002, 80, Flags::Syn, t0);
    assert!(matches!(a, Action::Forward { .. }));
    spoofed(&mut e, 5000);
    let (a, _) = client_pkt(&mut e, 40002, 80, Flags::Ack, t0);
    assert!(matches!(a, Action::Forward { .. }));
    let st = e
        .conns()
        .iter()
        .find(|(_, c)| c.cport == 40002)
        .map(|(_, c)| conn::state_name(c.proto, c.flags, c.state))
        .expect("the new client's entry");
    assert_eq!(st, "ESTABLISHED");
}

/// The eviction's queue of embryonic handles holds the entries still in
/// their handshake, not a handle per connection ever made: a handshake
/// that completes before the next SYN leaves none, housekeeping drops the
/// others once their entries are established or gone, and keeps the ones
/// still in SYN_RECV.
#[test]
fn embryonic_handles_do_not_outlive_the_handshake() {
    let mut e = engine_with(EngineConfig {
        max_conns: 100_000,
        ..EngineConfig::default()
    });
    add_service(&mut e, svc_key(80), "rr", FwdMethod::Route, &[80]);
    let t0 = Instant::from_secs(5);
    // One after the other: nothing left.
    for p in 10_000..11_000u16 {
        client_pkt(&mut e, p, 80, Flags::Syn, t0);
        client_pkt(&mut e, p, 80, Flags::Ack, t0);
    }
    assert_eq!(e.embryonic_tracked(), 0);
    // Interleaved: 1000 SYNs, then the ACKs of the first 900.
    for p in 20_000..21_000u16 {
        client_pkt(&mut e, p, 80, Flags::Syn, t0);
    }
    for p in 20_000..20_900u16 {
        client_pkt(&mut e, p, 80, Flags::Ack, t0);
    }
    assert_eq!(e.embryonic_tracked(), 1000);
    e.poll(t0);
    assert_eq!(e.embryonic_tracked(), 100, "the 100 still in SYN_RECV");
    // Their entries expire (SYN_RECV: 60 s): their handles go too.
    e.poll(t0 + core::time::Duration::from_secs(62));
    e.poll(t0 + core::time::Duration::from_secs(62));
    assert_eq!(e.conns().len(), 1900);
    assert_eq!(e.embryonic_tracked(), 0);
}

/// The next-hop map does not grow without bound with the addresses of
/// clients that are gone (or spoofed): past what the table needs plus a
/// slack, housekeeping keeps only the real servers' and the connections'
/// hops, and hands the others to the data plane to forget.
#[test]
fn next_hops_of_gone_clients_are_pruned() {
    let mut e = engine();
    let key = svc_key(80);
    add_service(&mut e, key, "rr", FwdMethod::Masq, &[8080]);
    let hop = Hop {
        port: CLIENT_PORT,
        mac: EthernetAddress(CLIENT_MAC),
    };
    for i in 0..10_000u32 {
        e.set_hop(IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i)), hop);
    }
    let t0 = Instant::from_secs(5);
    let (a, _) = client_pkt(&mut e, 40001, 80, Flags::Syn, t0);
    assert!(matches!(a, Action::Forward { .. }));
    let before = e.hop_count();
    e.poll(t0);
    assert!(e.hop_count() < 10, "{} of {before} left", e.hop_count());
    assert_eq!(e.counters().hops_pruned as usize, before - e.hop_count());
    let pruned = e.take_pruned_hops();
    assert_eq!(pruned.len(), before - e.hop_count());
    assert!(pruned.contains(&IpAddr::V4(std::net::Ipv4Addr::new(11, 0, 0, 7))));
    // The client's and the real server's hops stay: the connection works.
    assert!(e.has_hop(v4(CIP)) && e.has_hop(v4(RS1)));
    let (a, _) = client_pkt(&mut e, 40001, 80, Flags::Ack, t0);
    assert!(matches!(a, Action::Forward { .. }));
    // Below the threshold nothing is pruned.
    e.poll(t0);
    assert!(e.take_pruned_hops().is_empty());
}
