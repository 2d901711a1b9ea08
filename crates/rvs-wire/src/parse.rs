//! One pass over an Ethernet frame into a [`FlowMeta`]: what the engine needs
//! to look a packet up and rewrite it, without parsing it again.
//!
//! # What is checked
//!
//! * Ethernet II, optionally one 802.1Q tag. ARP is validated as an ARP
//!   packet; any other non-IP EtherType (including a second VLAN tag) is
//!   [`Parsed::Other`].
//! * IPv4: everything [`ipv4::Packet::new_checked`] checks, plus the header
//!   checksum ([`Error::BadChecksum`]). IPv6: [`ipv6::Packet::new_checked`],
//!   then the extension-header chain ([`ipv6::upper_layer`]).
//! * The transport header, unless this is a non-first fragment: TCP (data
//!   offset, header in the packet), UDP (length field; only the 8-byte header
//!   in a first fragment), SCTP (common header), ICMP/ICMPv6 (8-byte header).
//! * For ICMP errors: the embedded IP header and the first 8 bytes of its
//!   transport header (all RFC 792 guarantees), unless the embedded packet is
//!   itself a non-first fragment.
//!
//! Transport checksums are not verified (that would cost O(payload)); the
//! rewrites update them incrementally, so a bad checksum stays bad and the
//! receiver drops the packet.
//!
//! All offsets in [`FlowMeta`] and [`IcmpInfo`] are from the start of the
//! frame.

use core::net::IpAddr;

use crate::bytes::{addr_at, be16};
use crate::ethernet::{EtherType, Frame};
use crate::{Error, Result, arp, icmpv4, icmpv6, ip_protocol, ipv4, ipv6, sctp, tcp, udp};

/// The flow summary of an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowMeta {
    /// The 802.1Q VLAN identifier, if the frame is tagged.
    pub vlan: Option<u16>,
    /// Offset of the IP header in the frame (14 or 18).
    pub l3_offset: usize,
    /// Offset of the transport header: after the IPv4 options or the IPv6
    /// extension headers. For a non-first fragment it is where the fragment
    /// data starts, and no transport header is there (see `l4_present`).
    pub l4_offset: usize,
    /// The IP packet length as declared: IPv4 total length, or 40 + IPv6
    /// payload length. The frame may be longer (Ethernet padding).
    pub l3_len: usize,
    /// True for IPv6, false for IPv4.
    pub af_v6: bool,
    /// Transport protocol: the IPv4 protocol, or the IPv6 next header after
    /// the extension headers (6, 17, 132, 1, 58, 4, 41, 50, 59, ...).
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port for TCP, UDP and SCTP; the identifier for ICMP/ICMPv6 echo
    /// request and reply; 0 otherwise and for non-first fragments.
    pub sport: u16,
    /// Destination port for TCP, UDP and SCTP; 0 otherwise (ICMP echo
    /// included) and for non-first fragments.
    pub dport: u16,
    /// The raw TCP flags byte (see [`tcp::flags`]); 0 for other protocols.
    pub tcp_flags: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 DF flag. Always true for IPv6, which routers never fragment.
    pub dont_fragment: bool,
    /// IPv4: MF set or a non-zero offset. IPv6: a Fragment header with M set
    /// or a non-zero offset (an atomic fragment, offset 0 without M, is not a
    /// fragment).
    pub is_fragment: bool,
    /// IPv4: the header has options (IHL > 5). IPv6: extension headers are
    /// present.
    pub has_ip_options: bool,
    /// True if the transport header is in this packet; false only for
    /// non-first fragments, whose ports are then 0 and whose `l4_offset`
    /// points at fragment data.
    pub l4_present: bool,
    /// For ICMP errors (ICMPv4 destination unreachable, source quench, time
    /// exceeded, parameter problem; ICMPv6 destination unreachable, packet too
    /// big, time exceeded, parameter problem): the embedded flow.
    pub icmp: Option<IcmpInfo>,
}

/// The packet embedded ("quoted") in an ICMP error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpInfo {
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u8,
    /// Offset in the frame of the embedded IP header.
    pub inner_l3_offset: usize,
    /// Offset in the frame of the embedded transport header.
    pub inner_l4_offset: usize,
    /// Protocol of the embedded packet (after its IPv6 extension headers).
    pub inner_proto: u8,
    /// Source address of the embedded packet.
    pub inner_src: IpAddr,
    /// Destination address of the embedded packet.
    pub inner_dst: IpAddr,
    /// Source port of the embedded packet (echo identifier for ICMP echo),
    /// 0 if none.
    pub inner_sport: u16,
    /// Destination port of the embedded packet, 0 if none.
    pub inner_dport: u16,
    /// False if the embedded packet is a non-first fragment (no ports).
    pub inner_l4_present: bool,
}

/// What [`parse_frame`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parsed {
    /// An IPv4 or IPv6 packet.
    Ip(FlowMeta),
    /// A well-formed ARP packet.
    Arp,
    /// Any other EtherType.
    Other,
}

/// What [`parse_frame_into`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An IPv4 or IPv6 packet: the [`FlowMeta`] was written.
    Ip,
    /// A well-formed ARP packet.
    Arp,
    /// Any other EtherType.
    Other,
}

impl FlowMeta {
    /// A summary of nothing (`0.0.0.0` to `0.0.0.0`, offsets 0), to be
    /// overwritten by [`parse_frame_into`].
    pub const EMPTY: FlowMeta = FlowMeta {
        vlan: None,
        l3_offset: 0,
        l4_offset: 0,
        l3_len: 0,
        af_v6: false,
        proto: 0,
        src: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        ttl: 0,
        dont_fragment: false,
        is_fragment: false,
        has_ip_options: false,
        l4_present: false,
        icmp: None,
    };
}

/// [`parse_frame`] into the caller's `meta` (written for [`Kind::Ip`],
/// unspecified otherwise and on error): the packet path keeps one
/// `FlowMeta` in place instead of moving ~150 bytes out of a `Result` per
/// frame.
///
/// # Errors
///
/// As [`parse_frame`].
#[inline]
pub fn parse_frame_into(frame: &[u8], meta: &mut FlowMeta) -> Result<Kind> {
    let eth = Frame::new_checked(frame)?;
    let vlan = eth.vlan_id();
    let l3 = eth.header_len();
    let rest = eth.payload();
    match eth.payload_ethertype() {
        EtherType::IPV4 => parse_ipv4_into(rest, l3, vlan, meta).map(|()| Kind::Ip),
        EtherType::IPV6 => {
            *meta = parse_ipv6(rest, l3, vlan)?;
            Ok(Kind::Ip)
        }
        EtherType::ARP => arp::Packet::new_checked(rest).map(|_| Kind::Arp),
        _ => Ok(Kind::Other),
    }
}

/// Parses an Ethernet frame (without FCS) into a [`Parsed`].
///
/// Fails on a frame that announces IPv4, IPv6 or ARP but is truncated or
/// malformed (see the module docs). Never panics and never allocates.
#[inline]
pub fn parse_frame(frame: &[u8]) -> Result<Parsed> {
    let eth = Frame::new_checked(frame)?;
    let vlan = eth.vlan_id();
    let l3 = eth.header_len();
    let rest = eth.payload();
    match eth.payload_ethertype() {
        EtherType::IPV4 => parse_ipv4(rest, l3, vlan).map(Parsed::Ip),
        EtherType::IPV6 => parse_ipv6(rest, l3, vlan).map(Parsed::Ip),
        EtherType::ARP => arp::Packet::new_checked(rest).map(|_| Parsed::Arp),
        _ => Ok(Parsed::Other),
    }
}

/// `ip` is the frame from the IP header on; `l3` its offset in the frame.
#[inline]
fn parse_ipv4(ip: &[u8], l3: usize, vlan: Option<u16>) -> Result<FlowMeta> {
    let mut meta = FlowMeta::EMPTY;
    parse_ipv4_into(ip, l3, vlan, &mut meta)?;
    Ok(meta)
}

/// [`parse_ipv4`] into `meta`.
#[inline]
fn parse_ipv4_into(ip: &[u8], l3: usize, vlan: Option<u16>, meta: &mut FlowMeta) -> Result<()> {
    let p = ipv4::Packet::new_checked(ip)?;
    if !p.verify_checksum() {
        return Err(Error::BadChecksum);
    }
    let hl = p.header_len();
    let l4_present = p.frag_offset() == 0;
    *meta = FlowMeta {
        vlan,
        l3_offset: l3,
        l4_offset: l3 + hl,
        l3_len: usize::from(p.total_len()),
        af_v6: false,
        proto: p.protocol(),
        src: IpAddr::V4(p.src_addr()),
        dst: IpAddr::V4(p.dst_addr()),
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        ttl: p.ttl(),
        dont_fragment: p.dont_frag(),
        is_fragment: p.is_fragment(),
        has_ip_options: hl > ipv4::HEADER_LEN,
        l4_present,
        icmp: None,
    };
    if l4_present {
        transport(meta, p.payload(), ip)?;
    }
    Ok(())
}

fn parse_ipv6(ip: &[u8], l3: usize, vlan: Option<u16>) -> Result<FlowMeta> {
    let p = ipv6::Packet::new_checked(ip)?;
    let ul = ipv6::upper_layer(p.payload(), p.next_header())?;
    let (is_fragment, l4_present) = match ul.fragment {
        Some((off, more)) => (off != 0 || more, off == 0),
        None => (false, true),
    };
    let l4_rel = ipv6::HEADER_LEN + ul.offset;
    let mut meta = FlowMeta {
        vlan,
        l3_offset: l3,
        l4_offset: l3 + l4_rel,
        l3_len: p.total_len(),
        af_v6: true,
        proto: ul.protocol,
        src: IpAddr::V6(p.src_addr()),
        dst: IpAddr::V6(p.dst_addr()),
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        ttl: p.hop_limit(),
        dont_fragment: true,
        is_fragment,
        has_ip_options: ul.has_extension_headers,
        l4_present,
        icmp: None,
    };
    if l4_present {
        let l4 = ip.get(l4_rel..p.total_len()).ok_or(Error::Truncated)?;
        transport(&mut meta, l4, ip)?;
    }
    Ok(meta)
}

/// Fills ports, flags and ICMP info. `l4` is the transport segment up to the
/// end of the IP packet, `ip` the frame from the IP header on (the embedded
/// packet of an ICMP error is addressed relative to it).
#[inline]
fn transport(meta: &mut FlowMeta, l4: &[u8], ip: &[u8]) -> Result<()> {
    match (meta.proto, meta.af_v6) {
        (ip_protocol::TCP, _) => {
            let t = tcp::Packet::new_checked(l4)?;
            meta.sport = t.src_port();
            meta.dport = t.dst_port();
            meta.tcp_flags = t.flags();
        }
        (ip_protocol::UDP, _) => {
            if meta.is_fragment {
                // First fragment: the length field covers the whole datagram.
                if l4.len() < udp::HEADER_LEN {
                    return Err(Error::Truncated);
                }
            } else {
                udp::Packet::new_checked(l4)?;
            }
            meta.sport = be16(&l4[0..2]);
            meta.dport = be16(&l4[2..4]);
        }
        (ip_protocol::SCTP, _) => {
            let s = sctp::Packet::new_checked(l4)?;
            meta.sport = s.src_port();
            meta.dport = s.dst_port();
        }
        (ip_protocol::ICMP, false) => {
            let m = icmpv4::Packet::new_checked(l4)?;
            let t = m.msg_type();
            match t {
                icmpv4::msg_type::ECHO_REQUEST | icmpv4::msg_type::ECHO_REPLY => {
                    meta.sport = m.echo_ident()
                }
                icmpv4::msg_type::DST_UNREACHABLE
                | icmpv4::msg_type::SOURCE_QUENCH
                | icmpv4::msg_type::TIME_EXCEEDED
                | icmpv4::msg_type::PARAM_PROBLEM => {
                    meta.icmp = Some(embedded(meta, t, m.msg_code(), ip)?);
                }
                _ => {}
            }
        }
        (ip_protocol::ICMPV6, true) => {
            let m = icmpv6::Packet::new_checked(l4)?;
            let t = m.msg_type();
            match t {
                icmpv6::msg_type::ECHO_REQUEST | icmpv6::msg_type::ECHO_REPLY => {
                    meta.sport = m.echo_ident()
                }
                icmpv6::msg_type::DST_UNREACHABLE
                | icmpv6::msg_type::PKT_TOO_BIG
                | icmpv6::msg_type::TIME_EXCEEDED
                | icmpv6::msg_type::PARAM_PROBLEM => {
                    meta.icmp = Some(embedded(meta, t, m.msg_code(), ip)?);
                }
                _ => {}
            }
        }
        _ => {}
    }
    Ok(())
}

/// Ports (or echo identifier) from the first 8 bytes of a transport header.
/// Returns `None` for protocols without ports.
fn quoted_ports(proto: u8, v6: bool, l4: &[u8]) -> Result<Option<(u16, u16)>> {
    let has = matches!(
        proto,
        ip_protocol::TCP | ip_protocol::UDP | ip_protocol::SCTP
    ) || (proto == ip_protocol::ICMP && !v6)
        || (proto == ip_protocol::ICMPV6 && v6);
    if !has {
        return Ok(None);
    }
    let h = l4.get(..8).ok_or(Error::Truncated)?;
    Ok(Some(match proto {
        ip_protocol::ICMP
            if matches!(
                h[0],
                icmpv4::msg_type::ECHO_REQUEST | icmpv4::msg_type::ECHO_REPLY
            ) =>
        {
            (be16(&h[4..6]), 0)
        }
        ip_protocol::ICMPV6
            if matches!(
                h[0],
                icmpv6::msg_type::ECHO_REQUEST | icmpv6::msg_type::ECHO_REPLY
            ) =>
        {
            (be16(&h[4..6]), 0)
        }
        ip_protocol::ICMP | ip_protocol::ICMPV6 => (0, 0),
        _ => (be16(&h[0..2]), be16(&h[2..4])),
    }))
}

/// Parses the packet quoted by an ICMP error. `ip` is the frame from the outer
/// IP header on; the quoted packet starts 8 bytes into the ICMP message and
/// ends with the outer IP packet.
fn embedded(meta: &FlowMeta, icmp_type: u8, code: u8, ip: &[u8]) -> Result<IcmpInfo> {
    let base = meta.l3_offset;
    let icmp_rel = meta.l4_offset - base;
    let q_rel = icmp_rel + icmpv4::HEADER_LEN;
    let q = ip.get(q_rel..meta.l3_len).ok_or(Error::Truncated)?;
    let v6 = meta.af_v6;
    let (inner_proto, inner_src, inner_dst, l4_rel, l4_present) = if v6 {
        if q.len() < ipv6::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if q[0] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        // The quoted packet is cut short: walk what is there.
        let ul = ipv6::upper_layer(&q[ipv6::HEADER_LEN..], q[6])?;
        let present = ul.fragment.is_none_or(|(off, _)| off == 0);
        (
            ul.protocol,
            addr_at(q, ipv6::SRC_ADDR_OFFSET, true)?,
            addr_at(q, ipv6::DST_ADDR_OFFSET, true)?,
            ipv6::HEADER_LEN + ul.offset,
            present,
        )
    } else {
        if q.len() < ipv4::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if q[0] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let hl = usize::from(q[0] & 0x0f) * 4;
        if hl < ipv4::HEADER_LEN {
            return Err(Error::Malformed);
        }
        if q.len() < hl {
            return Err(Error::Truncated);
        }
        let frag_off = be16(&q[6..8]) & 0x1fff;
        (
            q[9],
            addr_at(q, ipv4::SRC_ADDR_OFFSET, false)?,
            addr_at(q, ipv4::DST_ADDR_OFFSET, false)?,
            hl,
            frag_off == 0,
        )
    };
    let (inner_sport, inner_dport) = if l4_present {
        quoted_ports(inner_proto, v6, &q[l4_rel..])?.unwrap_or((0, 0))
    } else {
        (0, 0)
    };
    Ok(IcmpInfo {
        icmp_type,
        code,
        inner_l3_offset: base + q_rel,
        inner_l4_offset: base + q_rel + l4_rel,
        inner_proto,
        inner_src,
        inner_dst,
        inner_sport,
        inner_dport,
        inner_l4_present: l4_present,
    })
}
