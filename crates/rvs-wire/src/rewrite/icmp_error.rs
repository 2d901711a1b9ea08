//! ICMP errors the director generates itself: "fragmentation needed" /
//! "packet too big" when an encapsulated packet does not fit
//! ([`icmp_frag_needed`]) and "port unreachable" when a service has no
//! real server ([`icmp_port_unreachable`]), with the kernel's limits on
//! what may be answered (RFC 1812, RFC 4443).

use super::*;

/// Hop limit / TTL of generated ICMP errors.
const ICMP_TTL: u8 = 64;
/// RFC 1812 §4.3.2.3: an ICMPv4 error is at most 576 bytes.
const ICMPV4_MAX_LEN: usize = 576;
/// RFC 4443 §2.4(c): an ICMPv6 error must not exceed the minimum MTU.
const ICMPV6_MAX_LEN: usize = ipv6::MIN_MTU;

/// The highest ICMPv4 type Linux knows (address mask reply).
const ICMPV4_LAST_KNOWN_TYPE: u8 = 18;

#[derive(Debug, Clone, Copy)]
enum ErrorKind {
    TooBig(u16),
    PortUnreachable,
}

/// RFC 1122 §3.2.2, RFC 1812 §4.3.2.7, RFC 4443 §2.4(e): whether an ICMP
/// error may be sent about the packet.
fn icmp_allowed(orig: &[u8], meta: &FlowMeta, kind: ErrorKind) -> Result<()> {
    if !meta.l4_present || meta.icmp.is_some() {
        return Err(Error::IcmpNotAllowed);
    }
    match (meta.src, meta.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            if meta.proto == ip_protocol::ICMP {
                let t = u8_at(orig, meta.l4_offset)?;
                // Types above 18 (address mask reply, the last one Linux
                // knows, NR_ICMP_TYPES) are treated as errors, as Linux does.
                if icmpv4::is_error(t) || t > ICMPV4_LAST_KNOWN_TYPE {
                    return Err(Error::IcmpNotAllowed);
                }
            }
            if s.is_unspecified()
                || s.is_broadcast()
                || s.is_multicast()
                || d.is_broadcast()
                || d.is_multicast()
            {
                return Err(Error::IcmpNotAllowed);
            }
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            if meta.proto == ip_protocol::ICMPV6 && icmpv6::is_error(u8_at(orig, meta.l4_offset)?) {
                return Err(Error::IcmpNotAllowed);
            }
            // Packet Too Big may answer a multicast destination (e.2).
            let to_multicast_ok = matches!(kind, ErrorKind::TooBig(_));
            if s.is_unspecified() || s.is_multicast() || (d.is_multicast() && !to_multicast_ok) {
                return Err(Error::IcmpNotAllowed);
            }
        }
        _ => return Err(Error::Malformed),
    }
    Ok(())
}

fn build_icmp_error(
    orig: &[u8],
    meta: &FlowMeta,
    kind: ErrorKind,
    from: IpAddr,
    out: &mut [u8],
) -> Result<usize> {
    let v6 = meta.af_v6;
    same_family(&from, v6)?;
    let eth = Frame::new_checked(orig)?;
    if eth.header_len() != meta.l3_offset || meta.src.is_ipv6() != v6 {
        return Err(Error::Malformed);
    }
    icmp_allowed(orig, meta, kind)?;
    let ip_end = l3_end(orig, meta)?;
    let l3 = meta.l3_offset;

    let eth_len = eth.header_len();
    let ip_hdr = if v6 {
        ipv6::HEADER_LEN
    } else {
        ipv4::HEADER_LEN
    };
    let max = if v6 { ICMPV6_MAX_LEN } else { ICMPV4_MAX_LEN };
    let fixed = eth_len + ip_hdr + icmpv4::HEADER_LEN;
    let room = out.len().saturating_sub(fixed);
    let want = (ip_end - l3).min(max - ip_hdr - icmpv4::HEADER_LEN);
    // At least the offending IP header(s) and 8 bytes of transport header.
    let min = want.min(meta.l4_offset - l3 + 8);
    let quote_len = want.min(room);
    if quote_len < min {
        return Err(Error::BufferTooSmall);
    }
    let icmp_len = icmpv4::HEADER_LEN + quote_len;
    let total = fixed + quote_len;
    let quote = get(orig, l3, quote_len)?;
    let out = out.get_mut(..total).ok_or(Error::BufferTooSmall)?;

    ethernet::emit_header(
        out,
        eth.dst_addr(),
        eth.src_addr(),
        eth.vlan_tci(),
        if v6 { EtherType::IPV6 } else { EtherType::IPV4 },
    )?;
    let ip_out = &mut out[eth_len..];
    match (from, meta.src) {
        (IpAddr::V4(src_addr), IpAddr::V4(dst_addr)) => {
            // Linux: precedence "internetwork control", the original's TOS bits.
            let tos = (u8_at(orig, l3 + 1)? & 0x1e) | 0xc0;
            ipv4::Repr {
                src_addr,
                dst_addr,
                protocol: ip_protocol::ICMP,
                payload_len: icmp_len,
                ttl: ICMP_TTL,
                tos,
                ident: 0,
                dont_frag: false,
            }
            .emit(ip_out)?;
        }
        (IpAddr::V6(src_addr), IpAddr::V6(dst_addr)) => ipv6::Repr {
            src_addr,
            dst_addr,
            next_header: ip_protocol::ICMPV6,
            payload_len: icmp_len,
            hop_limit: ICMP_TTL,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(ip_out)?,
        _ => return Err(Error::AddressFamilyMismatch),
    }
    let msg = &mut out[eth_len + ip_hdr..];
    msg[icmpv4::HEADER_LEN..].copy_from_slice(quote);
    let (t, c, rest) = match (kind, v6) {
        (ErrorKind::TooBig(mtu), false) => (
            icmpv4::msg_type::DST_UNREACHABLE,
            icmpv4::unreachable::FRAG_NEEDED,
            u32::from(mtu),
        ),
        (ErrorKind::TooBig(mtu), true) => (icmpv6::msg_type::PKT_TOO_BIG, 0, u32::from(mtu)),
        (ErrorKind::PortUnreachable, false) => (
            icmpv4::msg_type::DST_UNREACHABLE,
            icmpv4::unreachable::PORT,
            0,
        ),
        (ErrorKind::PortUnreachable, true) => (
            icmpv6::msg_type::DST_UNREACHABLE,
            icmpv6::unreachable::PORT,
            0,
        ),
    };
    msg[0] = t;
    msg[1] = c;
    msg[2..4].copy_from_slice(&[0, 0]);
    msg[4..8].copy_from_slice(&rest.to_be_bytes());
    let sum = match (from, meta.src) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u32::try_from(icmp_len).map_err(|_| Error::Unsupported)?;
            checksum::combine(&[
                checksum::pseudo_header_v6(&s, &d, ip_protocol::ICMPV6, len),
                checksum::data(msg),
            ])
        }
        _ => checksum::data(msg),
    };
    msg[2..4].copy_from_slice(&(!sum).to_be_bytes());
    Ok(total)
}

/// Builds into `out` an Ethernet frame carrying an ICMP "fragmentation
/// needed" (type 3 code 4, next-hop MTU `mtu`, RFC 1191) for an IPv4 packet,
/// or an ICMPv6 "packet too big" (type 2, MTU `mtu`) for an IPv6 packet,
/// from `from` to the original packet's source. Returns the frame length.
///
/// The message quotes the original IP packet from its header on, as much as
/// fits in 576 bytes (IPv4) or 1280 bytes (IPv6) of IP packet, and as fits in
/// `out` (at least the IP header(s) and 8 bytes of transport header, else
/// [`Error::BufferTooSmall`]). The Ethernet addresses are the original's,
/// swapped, and its VLAN tag is kept; the caller may overwrite them with
/// [`set_macs`]. TTL / hop limit 64.
///
/// Fails with [`Error::IcmpNotAllowed`] for packets no ICMP error may be sent
/// about: ICMP errors, non-first fragments, packets from an unspecified,
/// broadcast or multicast source, or to a broadcast or (except for packet too
/// big) multicast destination. [`Error::AddressFamilyMismatch`] if `from` is
/// not of the packet's family.
pub fn icmp_frag_needed(
    orig_frame: &[u8],
    meta: &FlowMeta,
    mtu: u16,
    from: IpAddr,
    out: &mut [u8],
) -> Result<usize> {
    build_icmp_error(orig_frame, meta, ErrorKind::TooBig(mtu), from, out)
}

/// As [`icmp_frag_needed`], but ICMP "port unreachable" (type 3 code 3) or
/// ICMPv6 "destination unreachable / port unreachable" (type 1 code 4): what
/// the kernel's `ip_vs_leave` answers when a service has no available real
/// server.
pub fn icmp_port_unreachable(
    orig_frame: &[u8],
    meta: &FlowMeta,
    from: IpAddr,
    out: &mut [u8],
) -> Result<usize> {
    build_icmp_error(orig_frame, meta, ErrorKind::PortUnreachable, from, out)
}
