//! Test helpers: packet builders on etherparse's `PacketBuilder` and an
//! independent oracle (etherparse's parsers and checksum calculators plus a
//! naive word-by-word internet checksum).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    IpHeaders, NetSlice, PacketBuilder, PacketBuilderStep, SlicedPacket, TransportSlice, VlanId,
};

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

pub fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

/// Ethernet (optionally tagged) + IP header builder step.
pub fn ip_step(
    vlan: Option<u16>,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
) -> PacketBuilderStep<IpHeaders> {
    let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
    match (vlan, src, dst) {
        (None, IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), ttl),
        (None, IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), ttl),
        (Some(v), IpAddr::V4(s), IpAddr::V4(d)) => eth
            .single_vlan(VlanId::try_new(v).unwrap())
            .ipv4(s.octets(), d.octets(), ttl),
        (Some(v), IpAddr::V6(s), IpAddr::V6(d)) => eth
            .single_vlan(VlanId::try_new(v).unwrap())
            .ipv6(s.octets(), d.octets(), ttl),
        _ => panic!("mixed families"),
    }
}

pub fn tcp(
    vlan: Option<u16>,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let b = ip_step(vlan, src, dst, 64)
        .tcp(sport, dport, 0x0102_0304, 65535)
        .syn()
        .ack(7);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

pub fn udp(
    vlan: Option<u16>,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let b = ip_step(vlan, src, dst, 64).udp(sport, dport);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

pub fn icmp_echo(
    vlan: Option<u16>,
    src: IpAddr,
    dst: IpAddr,
    id: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    if src.is_ipv4() {
        ip_step(vlan, src, dst, 64)
            .icmpv4_echo_request(id, seq)
            .write(&mut out, payload)
            .unwrap();
    } else {
        ip_step(vlan, src, dst, 64)
            .icmpv6_echo_request(id, seq)
            .write(&mut out, payload)
            .unwrap();
    }
    out
}

/// An ICMP (v4 or v6 by family) message quoting `quoted` (an IP packet).
pub fn icmp_error(
    vlan: Option<u16>,
    src: IpAddr,
    dst: IpAddr,
    icmp_type: u8,
    code: u8,
    rest: [u8; 4],
    quoted: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    if src.is_ipv4() {
        ip_step(vlan, src, dst, 64)
            .icmpv4_raw(icmp_type, code, rest)
            .write(&mut out, quoted)
            .unwrap();
    } else {
        ip_step(vlan, src, dst, 64)
            .icmpv6_raw(icmp_type, code, rest)
            .write(&mut out, quoted)
            .unwrap();
    }
    out
}

/// The IP packet of an Ethernet frame (after a 14- or 18-byte header).
pub fn ip_of(frame: &[u8]) -> &[u8] {
    if frame[12..14] == [0x81, 0x00] {
        &frame[18..]
    } else {
        &frame[14..]
    }
}

/// Word-by-word one's-complement sum, the textbook way.
pub fn naive_sum(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u32::from(c[0]) << 8 | u32::from(c[1])
        } else {
            u32::from(c[0]) << 8
        };
        acc += w;
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

pub fn naive_pseudo(src: &IpAddr, dst: &IpAddr, proto: u8, len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            v.extend_from_slice(&s.octets());
            v.extend_from_slice(&d.octets());
            v.extend_from_slice(&[0, proto]);
            v.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            v.extend_from_slice(&s.octets());
            v.extend_from_slice(&d.octets());
            v.extend_from_slice(&(len as u32).to_be_bytes());
            v.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => panic!("mixed"),
    }
    v
}

/// What the oracle saw in a frame whose checksums it verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub udp_csum: Option<u16>,
}

/// Parses `frame` with etherparse and asserts that the IPv4 header checksum
/// and the transport checksum (TCP, UDP, ICMP, ICMPv6) are valid.
pub fn verify(frame: &[u8]) -> Seen {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse rejects the frame");
    let (src, dst, proto) = match p.net.as_ref().expect("no IP") {
        NetSlice::Ipv4(ip) => {
            let h = ip.header();
            assert_eq!(
                h.header_checksum(),
                h.to_header().calc_header_checksum(),
                "IPv4 header checksum"
            );
            assert_eq!(naive_sum(h.slice()), 0xffff);
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                ip.payload_ip_number().0,
            )
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                ip.payload().ip_number.0,
            )
        }
        NetSlice::Arp(_) => panic!("arp"),
    };
    let mut seen = Seen {
        src,
        dst,
        proto,
        sport: 0,
        dport: 0,
        udp_csum: None,
    };
    match p.transport.as_ref() {
        Some(TransportSlice::Tcp(t)) => {
            let c = match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    t.calc_checksum_ipv4(s.octets(), d.octets()).unwrap()
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    t.calc_checksum_ipv6(s.octets(), d.octets()).unwrap()
                }
                _ => unreachable!(),
            };
            assert_eq!(t.checksum(), c, "TCP checksum");
            let mut all = naive_pseudo(&src, &dst, 6, t.slice().len());
            all.extend_from_slice(t.slice());
            assert_eq!(naive_sum(&all), 0xffff);
            seen.sport = t.source_port();
            seen.dport = t.destination_port();
        }
        Some(TransportSlice::Udp(u)) => {
            let h = u.to_header();
            seen.udp_csum = Some(u.checksum());
            if !(src.is_ipv4() && u.checksum() == 0) {
                let c = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => h
                        .calc_checksum_ipv4_raw(s.octets(), d.octets(), u.payload())
                        .unwrap(),
                    (IpAddr::V6(s), IpAddr::V6(d)) => h
                        .calc_checksum_ipv6_raw(s.octets(), d.octets(), u.payload())
                        .unwrap(),
                    _ => unreachable!(),
                };
                assert_eq!(u.checksum(), c, "UDP checksum");
                assert_ne!(u.checksum(), 0);
            }
            seen.sport = u.source_port();
            seen.dport = u.destination_port();
        }
        Some(TransportSlice::Icmpv4(i)) => {
            assert_eq!(naive_sum(i.slice()), 0xffff, "ICMP checksum");
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else {
                unreachable!()
            };
            assert!(
                i.is_checksum_valid(s.octets(), d.octets()),
                "ICMPv6 checksum"
            );
            let mut all = naive_pseudo(&src, &dst, 58, i.slice().len());
            all.extend_from_slice(i.slice());
            assert_eq!(naive_sum(&all), 0xffff);
        }
        _ => {}
    }
    seen
}

/// Sets the UDP checksum of an IPv4/UDP frame to zero ("none").
pub fn zero_udp_checksum(frame: &mut [u8]) {
    let off = frame.len() - ip_of(frame).len();
    let ihl = usize::from(frame[off] & 0x0f) * 4;
    frame[off + ihl + 6] = 0;
    frame[off + ihl + 7] = 0;
}
