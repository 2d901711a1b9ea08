//! `parse_frame` and the views against packets built with etherparse.

mod common;

use std::net::IpAddr;

use common::*;
use etherparse::{
    IpFragOffset, IpHeaders, IpNumber, Ipv4Header, Ipv6FragmentHeader, Ipv6Header,
    Ipv6RawExtHeader, PacketBuilder,
};
use rvs_wire::{
    Error, EtherType, EthernetAddress, EthernetFrame, FlowMeta, Icmpv4Packet, Icmpv6Packet,
    Ipv4Packet, Ipv6Packet, Parsed, TcpPacket, UdpPacket, ip_protocol, parse_frame,
};

fn meta(frame: &[u8]) -> FlowMeta {
    match parse_frame(frame).unwrap() {
        Parsed::Ip(m) => m,
        other => panic!("not IP: {other:?}"),
    }
}

/// Every strict prefix of a frame whose IP packet fills it must fail.
fn all_prefixes_fail(frame: &[u8]) {
    for n in 0..frame.len() {
        assert!(
            parse_frame(&frame[..n]).is_err(),
            "prefix of {n} bytes parsed"
        );
    }
}

#[test]
fn tcp_v4() {
    let f = tcp(
        None,
        v4(10, 0, 0, 1),
        v4(10, 0, 0, 2),
        40000,
        80,
        b"GET / HTTP/1.0\r\n\r\n",
    );
    let m = meta(&f);
    assert_eq!(m.vlan, None);
    assert_eq!((m.l3_offset, m.l4_offset, m.l3_len), (14, 34, f.len() - 14));
    assert!(!m.af_v6);
    assert_eq!(m.proto, ip_protocol::TCP);
    assert_eq!(
        (m.src, m.dst, m.sport, m.dport),
        (v4(10, 0, 0, 1), v4(10, 0, 0, 2), 40000, 80)
    );
    assert_eq!(
        m.tcp_flags,
        rvs_wire::tcp::flags::SYN | rvs_wire::tcp::flags::ACK
    );
    assert_eq!(m.ttl, 64);
    assert!(m.dont_fragment && !m.is_fragment && !m.has_ip_options && m.l4_present);
    assert_eq!(m.icmp, None);

    let eth = EthernetFrame::new_checked(&f[..]).unwrap();
    assert_eq!(eth.src_addr(), EthernetAddress(MAC_A));
    assert_eq!(eth.dst_addr(), EthernetAddress(MAC_B));
    assert_eq!(eth.payload_ethertype(), EtherType::IPV4);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (t.seq_number(), t.ack_number(), t.window_len()),
        (0x0102_0304, 7, 65535)
    );
    assert_eq!(t.payload(), b"GET / HTTP/1.0\r\n\r\n");
    assert!(t.verify_checksum(&m.src, &m.dst));
    all_prefixes_fail(&f);
}

#[test]
fn tcp_v6_vlan() {
    let f = tcp(
        Some(42),
        v6("2001:db8::1"),
        v6("2001:db8::2"),
        1,
        443,
        &[7; 33],
    );
    let m = meta(&f);
    assert_eq!(m.vlan, Some(42));
    assert_eq!((m.l3_offset, m.l4_offset, m.l3_len), (18, 58, f.len() - 18));
    assert!(m.af_v6 && m.dont_fragment && !m.has_ip_options && !m.is_fragment);
    assert_eq!((m.proto, m.sport, m.dport, m.ttl), (6, 1, 443, 64));
    let ip = Ipv6Packet::new_checked(ip_of(&f)).unwrap();
    assert_eq!(IpAddr::V6(ip.src_addr()), m.src);
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(t.verify_checksum(&m.src, &m.dst));
    all_prefixes_fail(&f);
}

#[test]
fn udp_both_families() {
    for (s, d) in [
        (v4(192, 0, 2, 1), v4(198, 51, 100, 1)),
        (v6("2001:db8::a"), v6("2001:db8::b")),
    ] {
        for vlan in [None, Some(4095)] {
            let f = udp(vlan, s, d, 5353, 53, b"query");
            let m = meta(&f);
            assert_eq!(
                (m.proto, m.sport, m.dport, m.tcp_flags, m.vlan),
                (17, 5353, 53, 0, vlan)
            );
            let u = UdpPacket::new_checked(&f[m.l4_offset..]).unwrap();
            assert_eq!(u.payload(), b"query");
            assert!(u.verify_checksum(&s, &d));
            all_prefixes_fail(&f);
        }
    }
}

#[test]
fn icmp_echo_uses_identifier_as_sport() {
    for (s, d) in [
        (v4(10, 0, 0, 1), v4(10, 0, 0, 2)),
        (v6("fe80::1"), v6("fe80::2")),
    ] {
        let f = icmp_echo(None, s, d, 0xbeef, 3, b"ping");
        let m = meta(&f);
        assert_eq!((m.sport, m.dport, m.icmp), (0xbeef, 0, None));
        if s.is_ipv4() {
            let i = Icmpv4Packet::new_checked(&f[m.l4_offset..]).unwrap();
            assert!(i.verify_checksum());
            assert_eq!((i.echo_ident(), i.echo_seq_no()), (0xbeef, 3));
        } else {
            let i = Icmpv6Packet::new_checked(&f[m.l4_offset..]).unwrap();
            let (IpAddr::V6(s6), IpAddr::V6(d6)) = (s, d) else {
                unreachable!()
            };
            assert!(i.verify_checksum(&s6, &d6));
        }
        all_prefixes_fail(&f);
    }
}

#[test]
fn icmp_errors_expose_the_embedded_flow() {
    // Real server 10.1.0.5:8080 says "port unreachable" about the client's
    // packet 203.0.113.9:5555 -> 10.1.0.5:8080.
    let inner = udp(
        None,
        v4(203, 0, 113, 9),
        v4(10, 1, 0, 5),
        5555,
        8080,
        b"hello world",
    );
    for quote_len in [28usize, ip_of(&inner).len()] {
        let q = &ip_of(&inner)[..quote_len];
        let f = icmp_error(
            Some(7),
            v4(10, 1, 0, 5),
            v4(203, 0, 113, 9),
            3,
            3,
            [0; 4],
            q,
        );
        let m = meta(&f);
        assert_eq!((m.proto, m.sport, m.dport), (1, 0, 0));
        let i = m.icmp.expect("icmp info");
        assert_eq!((i.icmp_type, i.code), (3, 3));
        assert_eq!(i.inner_l3_offset, m.l4_offset + 8);
        assert_eq!(i.inner_l4_offset, m.l4_offset + 28);
        assert_eq!(
            (i.inner_proto, i.inner_src, i.inner_dst),
            (17, v4(203, 0, 113, 9), v4(10, 1, 0, 5))
        );
        assert_eq!(
            (i.inner_sport, i.inner_dport, i.inner_l4_present),
            (5555, 8080, true)
        );
        all_prefixes_fail(&f);
    }
    // Fewer than 8 bytes of transport header quoted: rejected.
    let f = icmp_error(
        None,
        v4(10, 1, 0, 5),
        v4(203, 0, 113, 9),
        3,
        3,
        [0; 4],
        &ip_of(&inner)[..27],
    );
    assert_eq!(parse_frame(&f), Err(Error::Truncated));
    // An IPv6 header quoted in ICMPv4: rejected.
    let inner6 = udp(None, v6("::1"), v6("::2"), 1, 2, b"");
    let f = icmp_error(
        None,
        v4(10, 1, 0, 5),
        v4(203, 0, 113, 9),
        11,
        0,
        [0; 4],
        ip_of(&inner6),
    );
    assert_eq!(parse_frame(&f), Err(Error::Malformed));
    // Echo requests are not errors; redirects are not reported.
    let f = icmp_error(
        None,
        v4(10, 1, 0, 5),
        v4(203, 0, 113, 9),
        5,
        1,
        [10, 0, 0, 1],
        ip_of(&inner),
    );
    assert_eq!(meta(&f).icmp, None);

    // ICMPv6 packet too big about a TCP segment.
    let inner = tcp(
        None,
        v6("2001:db8::c"),
        v6("2001:db8::5"),
        33000,
        443,
        &[0; 100],
    );
    let f = icmp_error(
        None,
        v6("2001:db8::1"),
        v6("2001:db8::c"),
        2,
        0,
        1280u32.to_be_bytes(),
        ip_of(&inner),
    );
    let m = meta(&f);
    let i = m.icmp.unwrap();
    assert_eq!(
        (i.icmp_type, i.inner_proto, i.inner_sport, i.inner_dport),
        (2, 6, 33000, 443)
    );
    assert_eq!(
        (i.inner_src, i.inner_dst),
        (v6("2001:db8::c"), v6("2001:db8::5"))
    );
    assert_eq!(
        (i.inner_l3_offset, i.inner_l4_offset),
        (m.l4_offset + 8, m.l4_offset + 48)
    );
    assert_eq!(
        Icmpv6Packet::new_checked(&f[m.l4_offset..])
            .unwrap()
            .pkt_too_big_mtu(),
        1280
    );
    all_prefixes_fail(&f);
    // ICMPv6 quoting an ICMPv6 echo: identifier as inner sport.
    let inner = icmp_echo(None, v6("2001:db8::c"), v6("2001:db8::5"), 77, 1, b"x");
    let f = icmp_error(
        None,
        v6("2001:db8::1"),
        v6("2001:db8::c"),
        3,
        0,
        [0; 4],
        ip_of(&inner),
    );
    let i = meta(&f).icmp.unwrap();
    assert_eq!((i.inner_proto, i.inner_sport, i.inner_dport), (58, 77, 0));
}

#[test]
fn ipv4_rejects_bad_headers() {
    let good = udp(None, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 1, 2, b"abcd");
    let fix = |f: &mut Vec<u8>| {
        let mut p = Ipv4Packet::new_unchecked(&mut f[14..34]);
        p.fill_checksum();
    };
    // Version.
    let mut f = good.clone();
    f[14] = 0x65;
    fix(&mut f);
    assert_eq!(parse_frame(&f), Err(Error::Malformed));
    // IHL < 5.
    for ihl in 0..5 {
        let mut f = good.clone();
        f[14] = 0x40 | ihl;
        assert_eq!(parse_frame(&f), Err(Error::Malformed));
    }
    // IHL beyond the total length / buffer.
    let mut f = good.clone();
    f[14] = 0x4f;
    assert!(parse_frame(&f).is_err());
    // Total length > buffer.
    let mut f = good.clone();
    f[17] += 1;
    fix(&mut f);
    assert_eq!(parse_frame(&f), Err(Error::Truncated));
    // Total length < header length.
    let mut f = good.clone();
    f[16] = 0;
    f[17] = 19;
    fix(&mut f);
    assert_eq!(parse_frame(&f), Err(Error::Malformed));
    // Bad header checksum.
    let mut f = good.clone();
    f[24] ^= 0xff;
    assert_eq!(parse_frame(&f), Err(Error::BadChecksum));
    // UDP length beyond the IP payload.
    let mut f = good.clone();
    f[14 + 20 + 5] += 1;
    assert_eq!(parse_frame(&f), Err(Error::Truncated));
    // UDP length below 8.
    let mut f = good.clone();
    f[14 + 20 + 4] = 0;
    f[14 + 20 + 5] = 7;
    assert_eq!(parse_frame(&f), Err(Error::Malformed));
    // TCP data offset below 5.
    let mut f = tcp(None, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 1, 2, b"");
    f[14 + 20 + 12] = 0x40;
    assert_eq!(parse_frame(&f), Err(Error::Malformed));
    // IPv6 version field wrong.
    let mut f = udp(None, v6("::1"), v6("::2"), 1, 2, b"");
    f[14] = 0x40;
    assert_eq!(parse_frame(&f), Err(Error::Malformed));
}

#[test]
fn ethernet_padding_is_ignored() {
    let mut f = udp(None, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 1, 2, b"ab");
    let l3_len = f.len() - 14;
    f.resize(60, 0);
    let m = meta(&f);
    assert_eq!(m.l3_len, l3_len);
    assert_eq!((m.sport, m.dport), (1, 2));
}

#[test]
fn ipv4_options_and_fragments() {
    let mut h = Ipv4Header::new(0, 9, IpNumber::UDP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
    h.options = [1u8, 1, 1, 0].into();
    h.dont_fragment = false;
    h.more_fragments = true;
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ip(IpHeaders::Ipv4(h.clone(), Default::default()))
        .udp(7, 9);
    let mut f = Vec::new();
    b.write(&mut f, &[1; 16]).unwrap();
    let m = meta(&f);
    assert!(m.has_ip_options && m.is_fragment && m.l4_present && !m.dont_fragment);
    assert_eq!((m.l4_offset, m.sport, m.dport, m.ttl), (14 + 24, 7, 9, 9));

    // A non-first fragment: no transport header.
    h.fragment_offset = IpFragOffset::try_new(185).unwrap();
    h.more_fragments = false;
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B).ip(IpHeaders::Ipv4(h, Default::default()));
    let mut f = Vec::new();
    b.write(&mut f, IpNumber::UDP, &[0xff; 3]).unwrap();
    let m = meta(&f);
    assert!(m.is_fragment && !m.l4_present);
    assert_eq!((m.sport, m.dport, m.proto, m.l4_offset), (0, 0, 17, 38));
    assert_eq!(
        Ipv4Packet::new_checked(ip_of(&f)).unwrap().frag_offset(),
        185 * 8
    );
}

#[test]
fn ipv6_extension_headers() {
    let h = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: 0,
        next_header: IpNumber::UDP,
        hop_limit: 5,
        source: v6o("2001:db8::1"),
        destination: v6o("2001:db8::2"),
    };
    let mut ext = etherparse::Ipv6Extensions {
        hop_by_hop_options: Some(
            Ipv6RawExtHeader::new_raw(IpNumber::UDP, &[1, 4, 0, 0, 0, 0]).unwrap(),
        ),
        fragment: Some(Ipv6FragmentHeader::new(
            IpNumber::UDP,
            IpFragOffset::ZERO,
            true,
            99,
        )),
        ..Default::default()
    };
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ip(IpHeaders::Ipv6(h.clone(), ext.clone()))
        .udp(1000, 2000);
    let mut f = Vec::new();
    b.write(&mut f, b"frag0").unwrap();
    let m = meta(&f);
    assert!(m.af_v6 && m.has_ip_options && m.is_fragment && m.l4_present);
    assert_eq!(
        (m.proto, m.l4_offset, m.sport, m.dport, m.ttl),
        (17, 14 + 40 + 16, 1000, 2000, 5)
    );
    all_prefixes_fail(&f);

    // Non-first fragment.
    ext.fragment = Some(Ipv6FragmentHeader::new(
        IpNumber::UDP,
        IpFragOffset::try_new(2).unwrap(),
        false,
        99,
    ));
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B).ip(IpHeaders::Ipv6(h, ext));
    let mut f = Vec::new();
    b.write(&mut f, IpNumber::UDP, &[0; 4]).unwrap();
    let m = meta(&f);
    assert!(m.is_fragment && !m.l4_present);
    assert_eq!((m.proto, m.sport, m.dport), (17, 0, 0));
}

fn v6o(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

#[test]
fn sctp_and_other_protocols() {
    let mut sctp = vec![0x0b, 0x59, 0x00, 0x50, 1, 2, 3, 4, 0, 0, 0, 0];
    sctp.extend_from_slice(&[1, 0, 0, 4]);
    let mut f = Vec::new();
    ip_step(None, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 64)
        .write(&mut f, IpNumber(132), &sctp)
        .unwrap();
    let m = meta(&f);
    assert_eq!((m.proto, m.sport, m.dport), (132, 2905, 80));
    all_prefixes_fail(&f);
    // GRE: no ports.
    let mut f = Vec::new();
    ip_step(None, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 64)
        .write(&mut f, IpNumber(47), &[0; 4])
        .unwrap();
    let m = meta(&f);
    assert_eq!((m.proto, m.sport, m.dport, m.l4_present), (47, 0, 0, true));
}

#[test]
fn arp_and_non_ip() {
    let arp = rvs_wire::arp::Repr {
        operation: rvs_wire::arp::operation::REQUEST,
        sender_hardware_addr: EthernetAddress(MAC_A),
        sender_protocol_addr: "10.0.0.1".parse().unwrap(),
        target_hardware_addr: EthernetAddress::default(),
        target_protocol_addr: "10.0.0.2".parse().unwrap(),
    };
    let mut f = vec![0u8; 14 + 28];
    rvs_wire::ethernet::emit_header(
        &mut f,
        EthernetAddress(MAC_A),
        EthernetAddress::BROADCAST,
        None,
        EtherType::ARP,
    )
    .unwrap();
    arp.emit(&mut f[14..]).unwrap();
    assert_eq!(parse_frame(&f), Ok(Parsed::Arp));
    all_prefixes_fail(&f);

    let mut f = vec![0u8; 60];
    f[12..14].copy_from_slice(&0x88ccu16.to_be_bytes()); // LLDP
    assert_eq!(parse_frame(&f), Ok(Parsed::Other));
    // QinQ: a second tag after the first is "other".
    f[12..14].copy_from_slice(&[0x81, 0x00]);
    f[16..18].copy_from_slice(&[0x81, 0x00]);
    assert_eq!(parse_frame(&f), Ok(Parsed::Other));
    assert_eq!(parse_frame(&f[..17]), Err(Error::Truncated));
}
