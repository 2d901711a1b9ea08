//! The forwarding rewrites, checked against etherparse and full recomputes.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice};
use proptest::prelude::*;
use rvs_wire::{
    EncapResult, Error, EthernetAddress, FlowMeta, Parsed, TtlVerdict, decrement_ttl, dnat,
    encap_ipip, icmp_error_in, icmp_error_out, icmp_frag_needed, icmp_port_unreachable,
    parse_frame, set_macs, snat,
};

fn meta(frame: &[u8]) -> FlowMeta {
    match parse_frame(frame).unwrap() {
        Parsed::Ip(m) => m,
        other => panic!("not IP: {other:?}"),
    }
}

fn arb_ip(v6: bool) -> BoxedStrategy<IpAddr> {
    if v6 {
        any::<[u8; 16]>()
            .prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)))
            .boxed()
    } else {
        any::<[u8; 4]>()
            .prop_map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .boxed()
    }
}

// ---------------------------------------------------------------- DR, TTL

#[test]
fn set_macs_rewrites_only_the_addresses() {
    let mut f = tcp(Some(3), v4(1, 1, 1, 1), v4(2, 2, 2, 2), 1, 2, b"x");
    let orig = f.clone();
    set_macs(&mut f, EthernetAddress([1; 6]), EthernetAddress([9; 6])).unwrap();
    assert_eq!(&f[0..6], &[9; 6]);
    assert_eq!(&f[6..12], &[1; 6]);
    assert_eq!(&f[12..], &orig[12..]);
    assert_eq!(
        set_macs(
            &mut f[..13],
            EthernetAddress([1; 6]),
            EthernetAddress([9; 6])
        ),
        Err(Error::Truncated)
    );
}

#[test]
fn ttl_decrement() {
    for (s, d) in [
        (v4(10, 0, 0, 1), v4(10, 0, 0, 2)),
        (v6("2001:db8::1"), v6("2001:db8::2")),
    ] {
        let mut f = udp(None, s, d, 1, 2, b"abc");
        let m = meta(&f);
        assert_eq!(decrement_ttl(&mut f, &m), Ok(TtlVerdict::Decremented));
        verify(&f);
        assert_eq!(meta(&f).ttl, 63);
        for ttl in [0u8, 1] {
            let off = if s.is_ipv4() { 14 + 8 } else { 14 + 7 };
            f[off] = ttl;
            if s.is_ipv4() {
                rvs_wire::Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
            }
            let before = f.clone();
            let m = meta(&f);
            assert_eq!(decrement_ttl(&mut f, &m), Ok(TtlVerdict::Expired));
            assert_eq!(f, before);
        }
    }
}

// ---------------------------------------------------------------- NAT

#[test]
fn dnat_and_snat_example() {
    let mut f = tcp(
        None,
        v4(203, 0, 113, 7),
        v4(192, 0, 2, 10),
        40000,
        80,
        b"GET /",
    );
    let m = meta(&f);
    dnat(&mut f, &m, v4(10, 0, 0, 5), 8080).unwrap();
    let s = verify(&f);
    assert_eq!(
        (s.src, s.dst, s.sport, s.dport),
        (v4(203, 0, 113, 7), v4(10, 0, 0, 5), 40000, 8080)
    );

    let mut r = tcp(
        None,
        v4(10, 0, 0, 5),
        v4(203, 0, 113, 7),
        8080,
        40000,
        b"HTTP/1.0 200 OK",
    );
    let m = meta(&r);
    snat(&mut r, &m, v4(192, 0, 2, 10), 80).unwrap();
    let s = verify(&r);
    assert_eq!(
        (s.src, s.dst, s.sport, s.dport),
        (v4(192, 0, 2, 10), v4(203, 0, 113, 7), 80, 40000)
    );
}

#[test]
fn nat_rejects_wrong_family_without_touching_the_frame() {
    let mut f = udp(None, v4(1, 2, 3, 4), v4(5, 6, 7, 8), 1, 2, b"");
    let before = f.clone();
    let m = meta(&f);
    assert_eq!(
        dnat(&mut f, &m, v6("::1"), 1),
        Err(Error::AddressFamilyMismatch)
    );
    assert_eq!(
        snat(&mut f, &m, v6("::1"), 1),
        Err(Error::AddressFamilyMismatch)
    );
    assert_eq!(
        icmp_error_out(&mut f, &m, v4(1, 1, 1, 1), 1),
        Err(Error::Unsupported)
    );
    assert_eq!(f, before);
    // A meta that points beyond the frame.
    let mut bad = m;
    bad.l4_offset = 1000;
    assert!(dnat(&mut f, &bad, v4(9, 9, 9, 9), 1).is_err());
    assert_eq!(f, before);
}

#[test]
fn nat_of_a_non_first_fragment_touches_only_the_ip_header() {
    let mut f = udp(None, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 1, 2, &[0x55; 16]);
    // Make it a non-first fragment (offset 8 bytes).
    f[14 + 6] = 0x00;
    f[14 + 7] = 0x01;
    rvs_wire::Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
    let m = meta(&f);
    assert!(!m.l4_present);
    let before = f.clone();
    dnat(&mut f, &m, v4(10, 9, 9, 9), 999).unwrap();
    let ip = rvs_wire::Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 9, 9, 9));
    assert_eq!(&f[34..], &before[34..]);
}

#[test]
fn nat_of_icmpv6_echo_fixes_the_pseudo_header() {
    let mut f = icmp_echo(None, v6("2001:db8::1"), v6("2001:db8::2"), 5, 6, b"ping");
    let m = meta(&f);
    dnat(&mut f, &m, v6("2001:db8::99"), 0).unwrap();
    let s = verify(&f);
    assert_eq!(s.dst, v6("2001:db8::99"));
}

#[test]
fn nat_of_sctp_recomputes_the_crc() {
    let mut sctp = vec![
        0x0b, 0x59, 0x00, 0x50, 1, 2, 3, 4, 0, 0, 0, 0, 1, 0, 0, 8, 1, 2, 3, 4,
    ];
    rvs_wire::SctpPacket::new_checked(&mut sctp[..])
        .unwrap()
        .fill_checksum();
    let mut f = Vec::new();
    ip_step(None, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 64)
        .write(&mut f, etherparse::IpNumber(132), &sctp)
        .unwrap();
    let m = meta(&f);
    dnat(&mut f, &m, v4(10, 0, 0, 3), 9000).unwrap();
    let m = meta(&f);
    assert_eq!((m.dst, m.dport), (v4(10, 0, 0, 3), 9000));
    let p = rvs_wire::SctpPacket::new_checked(&f[m.l4_offset..]).unwrap();
    assert!(p.verify_checksum());
    verify(&f);
}

#[derive(Debug, Clone)]
struct NatCase {
    tcp: bool,
    vlan: Option<u16>,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    payload: Vec<u8>,
    zero_udp: bool,
    new_addr: IpAddr,
    new_port: u16,
}

fn arb_nat_case() -> impl Strategy<Value = NatCase> {
    (any::<bool>(), any::<bool>()).prop_flat_map(|(v6, tcp)| {
        (
            prop::option::of(0u16..4096),
            arb_ip(v6),
            arb_ip(v6),
            any::<u16>(),
            any::<u16>(),
            prop::collection::vec(any::<u8>(), 0..300),
            any::<bool>(),
            arb_ip(v6),
            any::<u16>(),
        )
            .prop_map(
                move |(vlan, src, dst, sport, dport, payload, zero_udp, new_addr, new_port)| {
                    NatCase {
                        tcp,
                        vlan,
                        src,
                        dst,
                        sport,
                        dport,
                        payload,
                        zero_udp: zero_udp && !v6 && !tcp,
                        new_addr,
                        new_port,
                    }
                },
            )
    })
}

fn build(c: &NatCase) -> Vec<u8> {
    let mut f = if c.tcp {
        tcp(c.vlan, c.src, c.dst, c.sport, c.dport, &c.payload)
    } else {
        udp(c.vlan, c.src, c.dst, c.sport, c.dport, &c.payload)
    };
    if c.zero_udp {
        zero_udp_checksum(&mut f);
    }
    f
}

proptest! {
    /// (3) After DNAT/SNAT, etherparse sees the new address and port and
    /// valid IP and transport checksums; a zero UDP checksum stays zero.
    #[test]
    fn nat_keeps_checksums_valid(c in arb_nat_case()) {
        let orig = build(&c);

        let mut f = orig.clone();
        let m = meta(&f);
        dnat(&mut f, &m, c.new_addr, c.new_port).unwrap();
        let s = verify(&f);
        prop_assert_eq!((s.src, s.dst, s.sport, s.dport), (c.src, c.new_addr, c.sport, c.new_port));
        if c.zero_udp {
            prop_assert_eq!(s.udp_csum, Some(0));
        }
        // Our own parser agrees, and only the rewritten fields changed length-wise.
        let m2 = meta(&f);
        prop_assert_eq!((m2.dst, m2.dport, m2.l3_len), (c.new_addr, c.new_port, m.l3_len));

        let mut f = orig.clone();
        snat(&mut f, &m, c.new_addr, c.new_port).unwrap();
        let s = verify(&f);
        prop_assert_eq!((s.src, s.dst, s.sport, s.dport), (c.new_addr, c.dst, c.new_port, c.dport));
        if c.zero_udp {
            prop_assert_eq!(s.udp_csum, Some(0));
        }

        // DNAT there and back restores the original bytes exactly.
        let mut f = orig.clone();
        dnat(&mut f, &m, c.new_addr, c.new_port).unwrap();
        let m2 = meta(&f);
        dnat(&mut f, &m2, c.dst, c.dport).unwrap();
        prop_assert_eq!(f, orig);
    }

    /// (4) ICMP errors about NAT connections: after the rewrite the outer
    /// packet's checksums (IP, ICMP/ICMPv6) are valid and the quoted packet is
    /// byte for byte the packet before NAT, so its IPv4 header checksum is
    /// valid and its transport checksum (when quoted) is the original one.
    #[test]
    fn icmp_error_nat_roundtrip(
        v6 in any::<bool>(),
        tcp_inner in any::<bool>(),
        seed in any::<[u8; 16]>(),
        ports in any::<[u16; 3]>(),
        payload in prop::collection::vec(any::<u8>(), 0..200),
        quote_extra in 0usize..260,
        zero_udp in any::<bool>(),
        vlan in prop::option::of(0u16..4096),
        kind in 0usize..3,
        outer_is_rs in any::<bool>(),
    ) {
        let addr = |i: u8| -> IpAddr {
            if v6 {
                let mut a = seed;
                a[15] = i;
                IpAddr::V6(Ipv6Addr::from(a))
            } else {
                IpAddr::V4(Ipv4Addr::new(seed[0], seed[1], seed[2], i))
            }
        };
        let (client, vip, rip, router) = (addr(1), addr(2), addr(3), addr(4));
        let (cport, vport, rport) = (ports[0], ports[1], ports[2]);
        let zero_udp = zero_udp && !v6 && !tcp_inner;
        let mk = |s, d, sp, dp| {
            let mut f = if tcp_inner { tcp(None, s, d, sp, dp, &payload) } else { udp(None, s, d, sp, dp, &payload) };
            if zero_udp { zero_udp_checksum(&mut f); }
            f
        };
        let (icmp_type, code, rest): (u8, u8, [u8; 4]) = match (v6, kind) {
            (false, 0) => (3, 3, [0; 4]),
            (false, 1) => (11, 0, [0; 4]),
            (false, _) => (3, 4, [0, 0, 5, 0xdc]),
            (true, 0) => (1, 4, [0; 4]),
            (true, 1) => (3, 0, [0; 4]),
            (true, _) => (2, 0, 1280u32.to_be_bytes()),
        };

        // Out: the client's request P was DNATed to the real server, which
        // (or a router next to it) complains to the client.
        let p = mk(client, vip, cport, vport);
        let mut p2 = p.clone();
        dnat(&mut p2, &meta(&p), rip, rport).unwrap();
        let min = if v6 { 48 } else { 28 };
        // A quote that ends inside the TCP checksum field cannot be fixed
        // (the low byte decides the carry); such a half field is left as is.
        let cmp_len = |qlen: usize| if tcp_inner && qlen == min - 8 + 17 { qlen - 1 } else { qlen };
        let qlen = (min + quote_extra).min(ip_of(&p2).len());
        let from = if outer_is_rs { rip } else { router };
        let mut e = icmp_error(vlan, from, client, icmp_type, code, rest, &ip_of(&p2)[..qlen]);
        let m = meta(&e);
        let info = m.icmp.unwrap();
        prop_assert_eq!((info.inner_src, info.inner_dst, info.inner_sport, info.inner_dport), (client, rip, cport, rport));
        icmp_error_out(&mut e, &m, vip, vport).unwrap();
        let s = verify(&e);
        prop_assert_eq!((s.src, s.dst), (vip, client));
        let m2 = meta(&e);
        let at = m2.icmp.unwrap().inner_l3_offset;
        prop_assert_eq!(&e[at..at + cmp_len(qlen)], &ip_of(&p)[..cmp_len(qlen)]);

        // In: the real server's reply R was SNATed to the VIP; someone on the
        // client side complains to the VIP.
        let r = mk(rip, client, rport, cport);
        let mut r2 = r.clone();
        snat(&mut r2, &meta(&r), vip, vport).unwrap();
        let qlen = (min + quote_extra).min(ip_of(&r2).len());
        let from = if outer_is_rs { client } else { router };
        let mut e = icmp_error(vlan, from, vip, icmp_type, code, rest, &ip_of(&r2)[..qlen]);
        let m = meta(&e);
        icmp_error_in(&mut e, &m, rip, rport).unwrap();
        let s = verify(&e);
        prop_assert_eq!((s.src, s.dst), (from, rip));
        let m2 = meta(&e);
        let info = m2.icmp.unwrap();
        prop_assert_eq!((info.inner_src, info.inner_sport), (rip, rport));
        let at = info.inner_l3_offset;
        prop_assert_eq!(&e[at..at + cmp_len(qlen)], &ip_of(&r)[..cmp_len(qlen)]);
    }
}

#[test]
fn icmp_error_about_a_fragment_keeps_ports() {
    // Embedded packet is a non-first fragment: only addresses change.
    let mut inner = udp(None, v4(10, 0, 0, 9), v4(10, 1, 0, 5), 1, 2, &[0; 16]);
    inner[14 + 7] = 3;
    rvs_wire::Ipv4Packet::new_unchecked(&mut inner[14..34]).fill_checksum();
    let mut e = icmp_error(
        None,
        v4(10, 1, 0, 5),
        v4(10, 0, 0, 9),
        11,
        1,
        [0; 4],
        ip_of(&inner),
    );
    let m = meta(&e);
    assert!(!m.icmp.unwrap().inner_l4_present);
    icmp_error_out(&mut e, &m, v4(192, 0, 2, 1), 80).unwrap();
    verify(&e);
    let i = meta(&e).icmp.unwrap();
    assert_eq!(i.inner_dst, v4(192, 0, 2, 1));
    assert_eq!(
        naive_sum(&e[i.inner_l3_offset..i.inner_l3_offset + 20]),
        0xffff
    );
    assert_eq!(&e[i.inner_l4_offset..i.inner_l4_offset + 4], &[0, 1, 0, 2]);
}

// ---------------------------------------------------------------- TUN

#[derive(Debug, Clone)]
struct EncapCase {
    inner_v6: bool,
    outer_v6: bool,
    vlan: Option<u16>,
    payload_len: usize,
    df: bool,
    tos: u8,
    headroom: usize,
    padding: usize,
    mtu: u16,
    ttl: u8,
}

fn arb_encap_case() -> impl Strategy<Value = EncapCase> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0u16..4096),
        0usize..1600,
        any::<bool>(),
        any::<u8>(),
        0usize..80,
        0usize..8,
        0u16..2000,
        any::<u8>(),
    )
        .prop_map(
            |(inner_v6, outer_v6, vlan, payload_len, df, tos, headroom, padding, mtu, ttl)| {
                EncapCase {
                    inner_v6,
                    outer_v6,
                    vlan,
                    payload_len,
                    df,
                    tos,
                    headroom,
                    padding,
                    mtu,
                    ttl,
                }
            },
        )
}

proptest! {
    /// (5) IP-in-IP: the result parses, the outer header is right and its
    /// checksum valid, the inner packet is byte-identical; TooBig exactly when
    /// the packet does not fit and may not be fragmented; nothing is touched
    /// on TooBig or NoHeadroom.
    #[test]
    fn encap_ipip_is_correct(c in arb_encap_case()) {
        let (s, d) = if c.inner_v6 { (v6("2001:db8::1"), v6("2001:db8::2")) } else { (v4(10, 0, 0, 1), v4(10, 0, 0, 2)) };
        let mut frame = udp(c.vlan, s, d, 1000, 53, &vec![0xab; c.payload_len]);
        let eth_len = if c.vlan.is_some() { 18 } else { 14 };
        // Set the TOS / traffic class and the DF flag as asked.
        if c.inner_v6 {
            let mut p = rvs_wire::Ipv6Packet::new_checked(&mut frame[eth_len..]).unwrap();
            p.set_traffic_class(c.tos);
        } else {
            frame[eth_len + 1] = c.tos;
            frame[eth_len + 6] = if c.df { 0x40 } else { 0 };
            frame[eth_len + 4] = 0x12;
            rvs_wire::Ipv4Packet::new_unchecked(&mut frame[eth_len..eth_len + 20]).fill_checksum();
        }
        let inner = frame[eth_len..].to_vec();
        frame.extend(std::iter::repeat_n(0u8, c.padding));
        let mut buf = vec![0xeeu8; c.headroom];
        buf.extend_from_slice(&frame);
        buf.extend_from_slice(&[0xee; 4]);
        let before = buf.clone();

        let (os, od) = if c.outer_v6 { (v6("fd00::a"), v6("fd00::b")) } else { (v4(172, 16, 0, 1), v4(172, 16, 0, 2)) };
        let hdr = if c.outer_v6 { 40 } else { 20 };
        let inner_df = c.inner_v6 || c.df;
        let r = encap_ipip(&mut buf, c.headroom, frame.len(), os, od, c.mtu, c.ttl);

        if inner.len() + hdr > usize::from(c.mtu) && inner_df {
            prop_assert_eq!(r, Ok(EncapResult::TooBig { mtu: c.mtu.saturating_sub(hdr as u16) }));
            prop_assert_eq!(buf, before);
            return Ok(());
        }
        if c.headroom < hdr {
            prop_assert_eq!(r, Err(Error::NoHeadroom));
            prop_assert_eq!(buf, before);
            return Ok(());
        }
        let Ok(EncapResult::Encapsulated { start, len }) = r else { panic!("{r:?}") };
        prop_assert_eq!(start, c.headroom - hdr);
        prop_assert_eq!(len, eth_len + hdr + inner.len());
        let out = &buf[start..start + len];
        // Link header: same MACs, same tag, new EtherType.
        prop_assert_eq!(&out[..12], &frame[..12]);
        if c.vlan.is_some() {
            prop_assert_eq!(&out[12..16], &frame[12..16]);
        }
        let et = u16::from_be_bytes([out[eth_len - 2], out[eth_len - 1]]);
        prop_assert_eq!(et, if c.outer_v6 { 0x86dd } else { 0x0800 });
        let proto = if c.inner_v6 { 41 } else { 4 };
        if c.outer_v6 {
            let h = Ipv6HeaderSlice::from_slice(&out[eth_len..]).unwrap();
            prop_assert_eq!(h.next_header().0, proto);
            prop_assert_eq!(usize::from(h.payload_length()), inner.len());
            prop_assert_eq!(h.hop_limit(), c.ttl);
            prop_assert_eq!(h.traffic_class(), c.tos);
            prop_assert_eq!(IpAddr::V6(h.source_addr()), os);
            prop_assert_eq!(IpAddr::V6(h.destination_addr()), od);
        } else {
            let h = Ipv4HeaderSlice::from_slice(&out[eth_len..]).unwrap();
            prop_assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
            prop_assert_eq!(h.protocol().0, proto);
            prop_assert_eq!(usize::from(h.total_len()), inner.len() + 20);
            prop_assert_eq!(h.ttl(), c.ttl);
            prop_assert_eq!(h.dont_fragment(), inner_df);
            prop_assert_eq!((h.dcp().value() << 2) | h.ecn().value(), c.tos);
            prop_assert_eq!(IpAddr::V4(h.source_addr()), os);
            prop_assert_eq!(IpAddr::V4(h.destination_addr()), od);
        }
        prop_assert_eq!(&out[eth_len + hdr..], &inner[..]);
        // Our parser sees the tunnel.
        let m = meta(out);
        prop_assert_eq!((m.proto, m.l3_len), (proto, inner.len() + hdr));
    }

    /// (5) ICMP "fragmentation needed" / "packet too big" and "port
    /// unreachable" frames parse with etherparse and have valid checksums.
    #[test]
    fn icmp_builders_are_valid(
        is_v6 in any::<bool>(),
        tcp_inner in any::<bool>(),
        vlan in prop::option::of(0u16..4096),
        payload_len in 0usize..2000,
        mtu in 68u16..9000,
        out_len in 0usize..1600,
    ) {
        let (s, d, from) = if is_v6 {
            (v6("2001:db8::c"), v6("2001:db8::5"), v6("2001:db8::1"))
        } else {
            (v4(198, 51, 100, 7), v4(192, 0, 2, 5), v4(192, 0, 2, 1))
        };
        let payload = vec![0x5a; payload_len];
        let f = if tcp_inner { tcp(vlan, s, d, 1, 2, &payload) } else { udp(vlan, s, d, 1, 2, &payload) };
        let m = meta(&f);
        let mut out = vec![0u8; out_len];
        for port_unreach in [false, true] {
            let r = if port_unreach {
                icmp_port_unreachable(&f, &m, from, &mut out)
            } else {
                icmp_frag_needed(&f, &m, mtu, from, &mut out)
            };
            let eth_len = if vlan.is_some() { 18 } else { 14 };
            let hdr = if is_v6 { 48 } else { 28 };
            let min_quote = (m.l4_offset - m.l3_offset + 8).min(m.l3_len);
            let n = match r {
                Err(Error::BufferTooSmall) => {
                    prop_assert!(out_len < eth_len + hdr + min_quote);
                    continue;
                }
                other => other.unwrap(),
            };
            let o = &out[..n];
            let seen = verify(o);
            prop_assert_eq!((seen.src, seen.dst), (from, s));
            prop_assert_eq!(&o[0..6], &f[6..12]);
            prop_assert_eq!(&o[6..12], &f[0..6]);
            let om = meta(o);
            prop_assert_eq!(om.vlan, vlan);
            let l3_len = n - eth_len;
            let max_len = if is_v6 { 1280 } else { 576 };
            prop_assert!(l3_len <= max_len);
            let quote = &o[eth_len + hdr..];
            prop_assert_eq!(quote, &ip_of(&f)[..quote.len()]);
            // As much as fits.
            let want = m.l3_len.min(if is_v6 { 1280 - 48 } else { 576 - 28 });
            prop_assert_eq!(quote.len(), want.min(out_len - eth_len - hdr));
            let icmp = &o[om.l4_offset..];
            match (is_v6, port_unreach) {
                (false, false) => prop_assert_eq!(&icmp[..2], &[3, 4]),
                (false, true) => prop_assert_eq!(&icmp[..2], &[3, 3]),
                (true, false) => prop_assert_eq!(&icmp[..2], &[2, 0]),
                (true, true) => prop_assert_eq!(&icmp[..2], &[1, 4]),
            }
            if !port_unreach {
                if is_v6 {
                    prop_assert_eq!(&icmp[4..8], &u32::from(mtu).to_be_bytes());
                } else {
                    prop_assert_eq!(&icmp[4..8], &[0, 0, (mtu >> 8) as u8, mtu as u8]);
                }
            }
            // Our parser sees the embedded flow.
            let i = om.icmp.unwrap();
            prop_assert_eq!((i.inner_src, i.inner_dst, i.inner_sport, i.inner_dport), (s, d, 1, 2));
        }
    }
}

#[test]
fn encap_errors() {
    let f = tcp(None, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 1, 2, b"");
    let mut buf = vec![0u8; 20];
    buf.extend_from_slice(&f);
    let n = f.len();
    assert_eq!(
        encap_ipip(&mut buf, 20, n, v4(1, 1, 1, 1), v6("::1"), 1500, 64),
        Err(Error::AddressFamilyMismatch)
    );
    assert_eq!(
        encap_ipip(
            &mut buf,
            20,
            n + 1,
            v4(1, 1, 1, 1),
            v4(2, 2, 2, 2),
            1500,
            64
        ),
        Err(Error::Truncated)
    );
    assert_eq!(
        encap_ipip(
            &mut buf,
            usize::MAX,
            2,
            v4(1, 1, 1, 1),
            v4(2, 2, 2, 2),
            1500,
            64
        ),
        Err(Error::Truncated)
    );
    assert_eq!(
        encap_ipip(&mut buf, 20, n, v6("::1"), v6("::2"), 1500, 64),
        Err(Error::NoHeadroom)
    );
    let mut arp = vec![0u8; 20 + 60];
    arp[20 + 12..20 + 14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(
        encap_ipip(&mut arp, 20, 60, v4(1, 1, 1, 1), v4(2, 2, 2, 2), 1500, 64),
        Err(Error::Unsupported)
    );
}

#[test]
fn no_icmp_errors_about_icmp_errors_fragments_or_multicast() {
    let mut out = [0u8; 1600];
    // About an ICMP error.
    let inner = udp(None, v4(10, 0, 0, 9), v4(10, 1, 0, 5), 1, 2, b"x");
    let e = icmp_error(
        None,
        v4(10, 1, 0, 5),
        v4(10, 0, 0, 9),
        3,
        3,
        [0; 4],
        ip_of(&inner),
    );
    assert_eq!(
        icmp_port_unreachable(&e, &meta(&e), v4(1, 1, 1, 1), &mut out),
        Err(Error::IcmpNotAllowed)
    );
    let inner6 = udp(None, v6("2001:db8::9"), v6("2001:db8::5"), 1, 2, b"x");
    let e = icmp_error(
        None,
        v6("2001:db8::5"),
        v6("2001:db8::9"),
        1,
        4,
        [0; 4],
        ip_of(&inner6),
    );
    assert_eq!(
        icmp_frag_needed(&e, &meta(&e), 1280, v6("::1"), &mut out),
        Err(Error::IcmpNotAllowed)
    );
    // About an unknown ICMPv4 type (treated as an error, as Linux does).
    let e = icmp_error(None, v4(10, 1, 0, 5), v4(10, 0, 0, 9), 200, 0, [0; 4], b"");
    assert_eq!(
        icmp_port_unreachable(&e, &meta(&e), v4(1, 1, 1, 1), &mut out),
        Err(Error::IcmpNotAllowed)
    );
    // About an echo request: allowed.
    let e = icmp_echo(None, v4(10, 1, 0, 5), v4(10, 0, 0, 9), 1, 1, b"");
    assert!(icmp_port_unreachable(&e, &meta(&e), v4(1, 1, 1, 1), &mut out).is_ok());
    // From a multicast / broadcast / unspecified source, to broadcast.
    for (s, d) in [
        (v4(224, 0, 0, 1), v4(10, 0, 0, 1)),
        (v4(255, 255, 255, 255), v4(10, 0, 0, 1)),
        (v4(0, 0, 0, 0), v4(10, 0, 0, 1)),
        (v4(10, 0, 0, 1), v4(255, 255, 255, 255)),
        (v4(10, 0, 0, 1), v4(239, 1, 1, 1)),
    ] {
        let f = udp(None, s, d, 1, 2, b"");
        assert_eq!(
            icmp_port_unreachable(&f, &meta(&f), v4(1, 1, 1, 1), &mut out),
            Err(Error::IcmpNotAllowed)
        );
    }
    // IPv6: packet too big may answer a multicast destination, port unreachable may not.
    let f = udp(None, v6("2001:db8::1"), v6("ff02::1"), 1, 2, b"");
    assert_eq!(
        icmp_port_unreachable(&f, &meta(&f), v6("2001:db8::2"), &mut out),
        Err(Error::IcmpNotAllowed)
    );
    assert!(icmp_frag_needed(&f, &meta(&f), 1280, v6("2001:db8::2"), &mut out).is_ok());
    let f = udp(None, v6("::"), v6("2001:db8::1"), 1, 2, b"");
    assert_eq!(
        icmp_frag_needed(&f, &meta(&f), 1280, v6("2001:db8::2"), &mut out),
        Err(Error::IcmpNotAllowed)
    );
    // Non-first fragment.
    let mut f = udp(None, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 1, 2, &[0; 16]);
    f[14 + 7] = 1;
    rvs_wire::Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
    assert_eq!(
        icmp_frag_needed(&f, &meta(&f), 1400, v4(1, 1, 1, 1), &mut out),
        Err(Error::IcmpNotAllowed)
    );
    // Wrong family.
    let f = udp(None, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 1, 2, b"");
    assert_eq!(
        icmp_frag_needed(&f, &meta(&f), 1400, v6("::1"), &mut out),
        Err(Error::AddressFamilyMismatch)
    );
}
