//! IPv4 fragments through `Engine::process`: a UDP datagram cut by its
//! sender, forwarded fragment by fragment in DR, NAT (both directions) and
//! TUN (cut again to fit the tunnel), in order and out of order.
//!
//! Datagrams are built with etherparse and reassembled here by hand,
//! independently of rvs-wire.

use core::net::IpAddr;

use etherparse::PacketBuilder;
use rvs_core::engine::{Action, DropReason, Engine, Frame};
use rvs_core::frag::{FragConfig, HELD_HEADROOM};
use rvs_core::service::{ServiceConfig, ServiceKey};
use rvs_core::{Af, DestConfig, FwdMethod, Instant, Protocol};

mod common;
use common::*;

fn udp_key(port: u16) -> ServiceKey {
    ServiceKey::Addr {
        proto: Protocol::Udp,
        addr: v4(VIP),
        port,
    }
}

fn udp_service(e: &mut Engine, fwd: FwdMethod, dport: u16) {
    e.add_service(udp_key(53), ServiceConfig::new(Af::Inet))
        .unwrap();
    let mut d = DestConfig::new(v4(RS1), dport);
    d.fwd = fwd;
    e.add_dest(&udp_key(53), &d, Instant::ZERO).unwrap();
}

fn ipv4_csum(h: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for w in h.chunks(2) {
        s += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// The payload of a test datagram.
fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// A UDP datagram `src` → `dst` with `data`, cut into fragments of at most
/// `mtu` bytes (IP), each a frame with [`HEADROOM`] bytes before it.
fn fragments(
    mac: ([u8; 6], [u8; 6]),
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    data: &[u8],
    ident: u16,
    mtu: usize,
) -> Vec<Vec<u8>> {
    let b = PacketBuilder::ethernet2(mac.0, mac.1)
        .ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1);
    let mut whole = Vec::new();
    b.write(&mut whole, data).unwrap();
    let l4 = &whole[34..];
    let chunk = (mtu - 20) & !7;
    let mut out = Vec::new();
    for (i, part) in l4.chunks(chunk).enumerate() {
        let mut f = vec![0u8; HEADROOM];
        f.extend_from_slice(&whole[..34]);
        f.extend_from_slice(part);
        let h = &mut f[HEADROOM + 14..HEADROOM + 34];
        h[2..4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&ident.to_be_bytes());
        let more = (i + 1) * chunk < l4.len();
        let fo = ((i * chunk / 8) as u16) | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&fo.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let c = ipv4_csum(h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        out.push(f);
    }
    out
}

/// The frames an action sends.
fn sent(e: &Engine, a: &Action, buf: &[u8]) -> Vec<Vec<u8>> {
    match *a {
        Action::Forward { start, len, .. } => vec![buf[start..start + len].to_vec()],
        Action::Frames { count, .. } => (0..count).map(|i| e.frame_at(i).to_vec()).collect(),
        ref other => panic!("expected frames out, got {other:?}"),
    }
}

/// Reassembled IPv4 datagram of the fragments `frames` (IP header at
/// `l3`): (source, destination, UDP source port, UDP destination port,
/// UDP payload); checks every IP header checksum and the UDP checksum.
fn reassemble(frames: &[Vec<u8>], l3: usize) -> (IpAddr, IpAddr, u16, u16, Vec<u8>) {
    let mut parts: Vec<(usize, Vec<u8>, bool)> = Vec::new();
    let mut addrs = None;
    for f in frames {
        let h = &f[l3..l3 + 20];
        assert_eq!(ipv4_csum(h), 0, "ip header checksum");
        let tl = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let fo = u16::from_be_bytes([h[6], h[7]]);
        assert_eq!(fo & 0x4000, 0, "no DF on fragments");
        let a: [u8; 8] = h[12..20].try_into().unwrap();
        assert!(addrs.is_none_or(|x| x == a), "one datagram");
        addrs = Some(a);
        parts.push((
            usize::from(fo & 0x1fff) * 8,
            f[l3 + 20..l3 + tl].to_vec(),
            fo & 0x2000 != 0,
        ));
    }
    parts.sort_by_key(|p| p.0);
    let mut data = Vec::new();
    for (off, d, _) in &parts {
        assert_eq!(*off, data.len(), "contiguous");
        data.extend_from_slice(d);
    }
    assert!(!parts.last().unwrap().2, "last fragment has MF clear");
    let a = addrs.unwrap();
    // UDP checksum over the pseudo-header and the whole datagram.
    let mut pseudo = a.to_vec();
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(data.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&data);
    assert_eq!(ipv4_csum(&pseudo), 0, "udp checksum of the datagram");
    let udp_len = usize::from(u16::from_be_bytes([data[4], data[5]]));
    assert_eq!(udp_len, data.len());
    let ip = |b: &[u8]| IpAddr::V4(<[u8; 4]>::try_from(b).unwrap().into());
    (
        ip(&a[0..4]),
        ip(&a[4..8]),
        u16::from_be_bytes([data[0], data[1]]),
        u16::from_be_bytes([data[2], data[3]]),
        data[8..].to_vec(),
    )
}

fn process_released(e: &mut Engine, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(mut h) = e.pop_released_fragment() {
        let len = h.len();
        let a = e.process(
            Frame {
                buf: &mut h.buf,
                start: HELD_HEADROOM,
                len,
                ingress: h.ingress,
                fwmark: 0,
            },
            now,
        );
        out.extend(sent(e, &a, &h.buf));
        e.recycle_fragment(h.buf);
    }
    out
}

const C: ([u8; 6], [u8; 6]) = (CLIENT_MAC, DIRECTOR_MAC_C);

#[test]
fn dr_in_order_every_fragment_counted() {
    let mut e = engine();
    udp_service(&mut e, FwdMethod::Route, 53);
    let t = Instant::from_secs(1);
    let data = payload(3000);
    let frags = fragments(C, (CIP, 5000), (VIP, 53), &data, 77, 1500);
    assert_eq!(frags.len(), 3);
    let mut out = Vec::new();
    for mut f in frags.clone() {
        let a = run(&mut e, &mut f, CLIENT_PORT, t);
        let s = sent(&e, &a, &f);
        assert_eq!(s.len(), 1);
        assert_eq!(&s[0][0..6], &RS1_MAC);
        assert_eq!(&s[0][14..], &f[HEADROOM + 14..], "DR: IP packet untouched");
        out.extend(s);
    }
    let (src, dst, sport, dport, got) = reassemble(&out, 14);
    assert_eq!((src, dst, sport, dport), (v4(CIP), v4(VIP), 5000, 53));
    assert_eq!(got, data);
    let c = e.counters();
    assert_eq!((c.frag.tracked, c.frag.held, c.forwarded), (1, 0, 3));
    assert_eq!(e.frag_datagrams(), 0, "forgotten once every byte passed");
    let svc = e
        .services()
        .get(e.services().find(&udp_key(53)).unwrap())
        .unwrap();
    assert_eq!(svc.stats.counters().inpkts, 3);
    assert_eq!(svc.stats.counters().conns, 1);
    let total: u64 = frags.iter().map(|f| (f.len() - HEADROOM - 14) as u64).sum();
    assert_eq!(svc.stats.counters().inbytes, total);
}

#[test]
fn out_of_order_held_then_released() {
    let mut e = engine();
    udp_service(&mut e, FwdMethod::Route, 53);
    let t = Instant::from_secs(1);
    let data = payload(3000);
    let mut frags = fragments(C, (CIP, 5000), (VIP, 53), &data, 78, 1500);
    for f in frags[1..].iter_mut().rev() {
        let a = run(&mut e, f, CLIENT_PORT, t);
        assert_eq!(a, Action::Drop(DropReason::FragmentHeld));
    }
    assert!(!e.has_released_fragments());
    let a = run(&mut e, &mut frags[0], CLIENT_PORT, t);
    let mut out = sent(&e, &a, &frags[0]);
    assert!(e.has_released_fragments());
    out.extend(process_released(&mut e, t));
    assert_eq!(out.len(), 3);
    let (_, _, _, _, got) = reassemble(&out, 14);
    assert_eq!(got, data);
    let c = e.counters().frag;
    assert_eq!((c.held, c.released, c.expired, c.no_room), (2, 2, 0, 0));
    assert_eq!(e.counters().drop_other, 0);
}

#[test]
fn nat_both_directions_checksums_right() {
    let mut e = engine();
    udp_service(&mut e, FwdMethod::Masq, 5353);
    let t = Instant::from_secs(1);
    let data = payload(3000);
    let mut out = Vec::new();
    // Out of order: the last fragment first.
    let mut frags = fragments(C, (CIP, 5000), (VIP, 53), &data, 79, 1500);
    let last = frags.len() - 1;
    frags.swap(0, last);
    for mut f in frags {
        let a = run(&mut e, &mut f, CLIENT_PORT, t);
        if a == Action::Drop(DropReason::FragmentHeld) {
            continue;
        }
        out.extend(sent(&e, &a, &f));
        out.extend(process_released(&mut e, t));
    }
    let (src, dst, sport, dport, got) = reassemble(&out, 14);
    assert_eq!((src, dst, sport, dport), (v4(CIP), v4(RS1), 5000, 5353));
    assert_eq!(got, data);

    // The reply, 3000 bytes back, fragmented by the real server.
    let back = payload(3001);
    let s = (RS1_MAC, DIRECTOR_MAC_S);
    let mut out = Vec::new();
    for mut f in fragments(s, (RS1, 5353), (CIP, 5000), &back, 4242, 1500) {
        let a = run(&mut e, &mut f, SERVER_PORT, t);
        let got = sent(&e, &a, &f);
        assert_eq!(&got[0][0..6], &CLIENT_MAC);
        out.extend(got);
    }
    let (src, dst, sport, dport, got) = reassemble(&out, 14);
    assert_eq!((src, dst, sport, dport), (v4(VIP), v4(CIP), 53, 5000));
    assert_eq!(got, back);
    for f in &out {
        assert_eq!(f[14 + 8], 63, "replies are routed: TTL down by one");
    }
    let svc = e
        .services()
        .get(e.services().find(&udp_key(53)).unwrap())
        .unwrap();
    assert_eq!(
        (svc.stats.counters().inpkts, svc.stats.counters().outpkts),
        (3, 3)
    );
}

#[test]
fn tun_cuts_fragments_to_fit_the_tunnel() {
    let mut e = engine();
    udp_service(&mut e, FwdMethod::Tunnel, 53);
    let t = Instant::from_secs(1);
    let data = payload(3000);
    let mut out = Vec::new();
    for mut f in fragments(C, (CIP, 5000), (VIP, 53), &data, 80, 1500) {
        let a = run(&mut e, &mut f, CLIENT_PORT, t);
        out.extend(sent(&e, &a, &f));
    }
    assert!(out.len() > 3, "full-size fragments are cut again");
    let mut inner = Vec::new();
    for f in &out {
        assert!(f.len() <= 14 + 1500, "each encapsulated frame fits the MTU");
        assert_eq!(&f[0..6], &RS1_MAC);
        let h = &f[14..34];
        assert_eq!(ipv4_csum(h), 0);
        assert_eq!(h[9], 4, "IPIP");
        assert_eq!(&h[16..20], &RS1);
        assert_eq!(u16::from_be_bytes([h[6], h[7]]), 0, "outer not fragmented");
        inner.push(f[20..].to_vec()); // the inner IP header at 14
    }
    let (src, dst, sport, dport, got) = reassemble(&inner, 14);
    assert_eq!((src, dst, sport, dport), (v4(CIP), v4(VIP), 5000, 53));
    assert_eq!(got, data);
    assert_eq!(e.counters().tunnel_fragmented, 2);

    // An unfragmented packet without DF that does not fit: cut too.
    let mut big = udp_frame((CIP, 5001), (VIP, 53), &payload(1472));
    let h = &mut big[HEADROOM + 14..HEADROOM + 34];
    h[6] &= !0x40; // DF clear (etherparse sets it)
    h[10..12].copy_from_slice(&[0, 0]);
    let c = ipv4_csum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    let a = run(&mut e, &mut big, CLIENT_PORT, t);
    let out = sent(&e, &a, &big);
    assert_eq!(out.len(), 2);
    let inner: Vec<Vec<u8>> = out.iter().map(|f| f[20..].to_vec()).collect();
    let (_, _, sport, _, got) = reassemble(&inner, 14);
    assert_eq!((sport, got), (5001, payload(1472)));
}

#[test]
fn not_ours_passed_and_unknown_dropped_with_the_first() {
    let mut e = engine();
    udp_service(&mut e, FwdMethod::Route, 53);
    let t = Instant::from_secs(1);
    // To another address: every fragment passed, nothing held.
    for mut f in fragments(C, (CIP, 5000), ([10, 9, 9, 9], 53), &payload(3000), 1, 1500) {
        assert_eq!(run(&mut e, &mut f, CLIENT_PORT, t), Action::Pass);
    }
    // To the VIP but a port no service has: passed (after holding the later ones).
    let mut frags = fragments(C, (CIP, 5000), (VIP, 54), &payload(3000), 2, 1500);
    assert_eq!(
        run(&mut e, &mut frags[2], CLIENT_PORT, t),
        Action::Drop(DropReason::FragmentHeld)
    );
    assert_eq!(run(&mut e, &mut frags[0], CLIENT_PORT, t), Action::Pass);
    let mut h = e.pop_released_fragment().unwrap();
    let len = h.len();
    let a = e.process(
        Frame {
            buf: &mut h.buf,
            start: HELD_HEADROOM,
            len,
            ingress: CLIENT_PORT,
            fwmark: 0,
        },
        t,
    );
    assert_eq!(a, Action::Pass);
    assert_eq!(run(&mut e, &mut frags[1], CLIENT_PORT, t), Action::Pass);
    assert_eq!(e.counters().forwarded, 0);
}

#[test]
fn bounded_and_expiring() {
    let mut e = engine();
    udp_service(&mut e, FwdMethod::Route, 53);
    e.set_frag_config(FragConfig {
        max_datagrams: 8,
        max_pending: 4,
        max_held_per_datagram: 4,
        max_held_bytes: 1 << 20,
    });
    let t = Instant::from_secs(1);
    // Later fragments of six datagrams whose first fragment never comes.
    for id in 0..6u16 {
        let mut frags = fragments(C, (CIP, 5000), (VIP, 53), &payload(3000), id, 1500);
        let a = run(&mut e, &mut frags[1], CLIENT_PORT, t);
        let want = if id < 4 {
            DropReason::FragmentHeld
        } else {
            DropReason::Fragment
        };
        assert_eq!(a, Action::Drop(want), "datagram {id}");
    }
    assert_eq!(e.counters().frag.no_room, 2);
    assert_eq!(e.frag_datagrams(), 4);
    e.poll(t + core::time::Duration::from_millis(4900));
    assert_eq!(e.frag_datagrams(), 4);
    e.poll(t + core::time::Duration::from_secs(5));
    assert_eq!(e.frag_datagrams(), 0);
    assert_eq!(e.counters().frag.expired, 4);
    // A flood of first fragments: the table stays at its bound, oldest out.
    for id in 100..120u16 {
        let mut frags = fragments(C, (CIP, 5000), (VIP, 53), &payload(3000), id, 1500);
        assert!(matches!(
            run(&mut e, &mut frags[0], CLIENT_PORT, t),
            Action::Forward { .. }
        ));
    }
    assert_eq!(e.frag_datagrams(), 8);
    assert_eq!(e.counters().frag.evicted, 12);
}

#[test]
fn ipv6_fragments_passed_untracked() {
    let mut e = engine();
    udp_service(&mut e, FwdMethod::Route, 53);
    let t = Instant::from_secs(1);
    // IPv6 (next header 44) + Fragment header (UDP, offset 1480, M) + data.
    let mut f = vec![0u8; HEADROOM];
    f.extend_from_slice(&CLIENT_MAC.map(|b| b ^ 1));
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x86, 0xdd]);
    let mut ip = vec![0x60, 0, 0, 0, 0, 40, 44, 64];
    ip.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
    ip.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64]);
    ip.extend_from_slice(&[17, 0]);
    ip.extend_from_slice(&((1480u16) | 1).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 9]);
    ip.extend_from_slice(&[0x33; 32]);
    f.extend_from_slice(&ip);
    let Ok(rvs_wire::Parsed::Ip(m)) = rvs_wire::parse_frame(&f[HEADROOM..]) else {
        panic!("parse")
    };
    assert!(m.af_v6 && m.is_fragment && !m.l4_present);
    assert_eq!(run(&mut e, &mut f, CLIENT_PORT, t), Action::Pass);
    assert_eq!(e.frag_datagrams(), 0);
}
