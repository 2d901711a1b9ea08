//! The IPVS forwarding rewrites, in place over an Ethernet frame.
//!
//! Every function that takes a [`FlowMeta`] expects the one [`parse_frame`]
//! returned for the same bytes. Offsets from it are still bounds-checked (a
//! stale or forged `FlowMeta` yields [`Error::Truncated`] or
//! [`Error::Malformed`], never a panic), and every check is made before the
//! first byte is written, so a failed rewrite leaves the frame as it was.
//!
//! Checksums are kept valid with RFC 1624 incremental updates
//! ([`crate::checksum`]); nothing is recomputed over a payload, except the
//! SCTP CRC32c, which cannot be updated incrementally (as in the kernel's
//! `sctp_nat_csum`).
//!
//! | method | director does | here |
//! |---|---|---|
//! | DR  | new MACs | [`set_macs`] (+ [`decrement_ttl`] if routing) |
//! | NAT | DNAT in, SNAT out, ICMP errors both ways | [`dnat`], [`snat`], [`icmp_error_in`], [`icmp_error_out`] |
//! | TUN | prepend an outer IP header | [`encap_ipip`], [`icmp_frag_needed`] when it does not fit |
//!
//! [`icmp_port_unreachable`] is what the kernel's `ip_vs_leave` sends when a
//! service has no available real server.
//!
//! [`parse_frame`]: crate::parse_frame

use core::net::IpAddr;

use crate::bytes::{addr_at, get, put_addr, put_u8, put_u16, u8_at, u16_at};
use crate::checksum::{self, Delta};
use crate::ethernet::{self, EtherType, EthernetAddress, Frame};
use crate::parse::FlowMeta;
use crate::{Error, Result, icmpv4, icmpv6, ip_protocol, ipv4, ipv6, tcp, udp};

mod icmp_error;

pub use icmp_error::{icmp_frag_needed, icmp_port_unreachable};

/// Outcome of [`decrement_ttl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TtlVerdict {
    /// The TTL / hop limit was decremented; forward the packet.
    Decremented,
    /// The TTL / hop limit was 0 or 1: the packet must not be forwarded (the
    /// frame was not modified). The caller may send an ICMP time exceeded.
    Expired,
}

/// Outcome of [`encap_ipip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncapResult {
    /// The frame now occupies `buf[start..start + len]`.
    Encapsulated {
        /// Offset of the new frame in the buffer.
        start: usize,
        /// Length of the new frame.
        len: usize,
    },
    /// The encapsulated packet would exceed the MTU and the inner packet may
    /// not be fragmented (IPv4 with DF, or IPv6). Nothing was modified; the
    /// caller should answer with [`icmp_frag_needed`] carrying `mtu`, the
    /// largest inner packet that fits.
    TooBig {
        /// The path MTU to report to the sender (egress MTU minus the outer
        /// header).
        mtu: u16,
    },
}

/// Offset of the destination MAC in the frame.
const ETH_DST: usize = 0;
/// Offset of the source MAC in the frame.
const ETH_SRC: usize = 6;

/// Sets the source and destination MAC addresses. This is the whole of DR
/// forwarding: destination = the real server's MAC, source = the director's
/// egress MAC.
pub fn set_macs(frame: &mut [u8], src: EthernetAddress, dst: EthernetAddress) -> Result<()> {
    let h = frame
        .get_mut(..ethernet::HEADER_LEN)
        .ok_or(Error::Truncated)?;
    h[ETH_DST..ETH_DST + 6].copy_from_slice(&dst.0);
    h[ETH_SRC..ETH_SRC + 6].copy_from_slice(&src.0);
    Ok(())
}

/// Decrements the IPv4 TTL (updating the header checksum incrementally) or
/// the IPv6 hop limit. Returns [`TtlVerdict::Expired`] without touching the
/// frame if the value is 0 or 1.
pub fn decrement_ttl(frame: &mut [u8], meta: &FlowMeta) -> Result<TtlVerdict> {
    l3_end(frame, meta)?;
    let l3 = meta.l3_offset;
    if meta.af_v6 {
        let off = l3 + ipv6::HOP_LIMIT_OFFSET;
        let hl = u8_at(frame, off)?;
        if hl <= 1 {
            return Ok(TtlVerdict::Expired);
        }
        put_u8(frame, off, hl - 1)?;
    } else {
        let off = l3 + ipv4::TTL_OFFSET;
        let csum_off = l3 + ipv4::CHECKSUM_OFFSET;
        // TTL and protocol form one 16-bit word.
        let old = u16_at(frame, off)?;
        let csum = u16_at(frame, csum_off)?;
        let ttl = (old >> 8) as u8;
        if ttl <= 1 {
            return Ok(TtlVerdict::Expired);
        }
        let new = old - 0x0100;
        put_u16(frame, off, new)?;
        put_u16(frame, csum_off, checksum::update16(csum, old, new))?;
    }
    Ok(TtlVerdict::Decremented)
}

/// Which end of a flow a rewrite changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Src,
    Dst,
}

fn addr_offset(v6: bool, end: End) -> usize {
    match (v6, end) {
        (false, End::Src) => ipv4::SRC_ADDR_OFFSET,
        (false, End::Dst) => ipv4::DST_ADDR_OFFSET,
        (true, End::Src) => ipv6::SRC_ADDR_OFFSET,
        (true, End::Dst) => ipv6::DST_ADDR_OFFSET,
    }
}

fn port_offset(end: End) -> usize {
    match end {
        End::Src => 0,
        End::Dst => 2,
    }
}

fn same_family(a: &IpAddr, v6: bool) -> Result<()> {
    if a.is_ipv6() == v6 {
        Ok(())
    } else {
        Err(Error::AddressFamilyMismatch)
    }
}

/// End of the IP packet in the frame, checked against the frame. Once this
/// succeeded, `l3_offset <= l4_offset <= end <= frame.len()`, so adding a
/// header field offset to them cannot overflow.
fn l3_end(frame: &[u8], meta: &FlowMeta) -> Result<usize> {
    let end = meta
        .l3_offset
        .checked_add(meta.l3_len)
        .ok_or(Error::Truncated)?;
    if end > frame.len() || meta.l4_offset > end || meta.l4_offset < meta.l3_offset {
        return Err(Error::Truncated);
    }
    Ok(end)
}

/// A pending change to the transport header, computed before any write.
enum L4Fix {
    None,
    /// TCP or UDP: a new port and a new checksum (`None`: leave the checksum,
    /// e.g. a zero UDP checksum).
    Inet {
        port_off: usize,
        port: u16,
        csum: Option<(usize, u16)>,
    },
    /// ICMPv6: only the pseudo-header changes.
    Csum {
        off: usize,
        value: u16,
    },
    /// SCTP: new port, then recompute the CRC32c over `l4..end`.
    Sctp {
        port_off: usize,
        port: u16,
        l4: usize,
        end: usize,
    },
}

fn nat(frame: &mut [u8], meta: &FlowMeta, end: End, new_addr: IpAddr, new_port: u16) -> Result<()> {
    let v6 = meta.af_v6;
    same_family(&new_addr, v6)?;
    let l3 = meta.l3_offset;
    let ip_end = l3_end(frame, meta)?;
    let addr_off = l3 + addr_offset(v6, end);
    let old_addr = addr_at(frame, addr_off, v6)?;
    let addr_delta = Delta::ZERO.addr(old_addr, new_addr);
    let ip_csum = if v6 {
        None
    } else {
        let off = l3 + ipv4::CHECKSUM_OFFSET;
        Some((off, checksum::apply(u16_at(frame, off)?, addr_delta)))
    };

    let l4 = meta.l4_offset;
    let seg = &frame[..ip_end];
    let port_off = l4 + port_offset(end);
    let fix = if !meta.l4_present {
        L4Fix::None
    } else {
        match (meta.proto, v6) {
            (ip_protocol::TCP, _) => {
                let old_port = u16_at(seg, port_off)?;
                let off = l4 + tcp::CHECKSUM_OFFSET;
                let c = checksum::apply(u16_at(seg, off)?, addr_delta.word(old_port, new_port));
                L4Fix::Inet {
                    port_off,
                    port: new_port,
                    csum: Some((off, c)),
                }
            }
            (ip_protocol::UDP, _) => {
                let old_port = u16_at(seg, port_off)?;
                let off = l4 + udp::CHECKSUM_OFFSET;
                let old = u16_at(seg, off)?;
                // 0: no checksum (IPv4); left alone on IPv6 too, where it is
                // invalid anyway and no correct update exists.
                let csum = (old != 0).then(|| {
                    (
                        off,
                        checksum::udp_finish(checksum::apply(
                            old,
                            addr_delta.word(old_port, new_port),
                        )),
                    )
                });
                L4Fix::Inet {
                    port_off,
                    port: new_port,
                    csum,
                }
            }
            (ip_protocol::SCTP, _) => {
                get(seg, l4, crate::sctp::HEADER_LEN)?;
                if meta.is_fragment {
                    // The CRC32c covers the whole datagram, which we do not have.
                    return Err(Error::Unsupported);
                }
                L4Fix::Sctp {
                    port_off,
                    port: new_port,
                    l4,
                    end: ip_end,
                }
            }
            (ip_protocol::ICMPV6, true) => {
                let off = l4 + icmpv6::CHECKSUM_OFFSET;
                L4Fix::Csum {
                    off,
                    value: checksum::apply(u16_at(seg, off)?, addr_delta),
                }
            }
            _ => L4Fix::None,
        }
    };

    // All reads done and bounds checked: write.
    put_addr(frame, addr_off, new_addr)?;
    if let Some((off, c)) = ip_csum {
        put_u16(frame, off, c)?;
    }
    match fix {
        L4Fix::None => {}
        L4Fix::Inet {
            port_off,
            port,
            csum,
        } => {
            put_u16(frame, port_off, port)?;
            if let Some((off, c)) = csum {
                put_u16(frame, off, c)?;
            }
        }
        L4Fix::Csum { off, value } => put_u16(frame, off, value)?,
        L4Fix::Sctp {
            port_off,
            port,
            l4,
            end,
        } => {
            put_u16(frame, port_off, port)?;
            let mut p = crate::sctp::Packet::new_checked(&mut frame[l4..end])?;
            p.fill_checksum();
        }
    }
    Ok(())
}

/// NAT, client → real server: rewrites the destination address to `new_dst`
/// and, for TCP, UDP and SCTP, the destination port to `new_dport`.
///
/// Updates the IPv4 header checksum and the transport checksum (its
/// pseudo-header and the port); a zero UDP checksum is left zero. For ICMPv6
/// only the checksum's pseudo-header part changes. For other protocols only
/// the IP header is rewritten and `new_dport` is ignored (a checksum they may
/// have over a pseudo-header, as DCCP or UDP-Lite do, is not updated; IPVS
/// does not NAT them). For a non-first
/// fragment only the IP header is rewritten (the transport checksum, in the
/// first fragment, is updated when that one passes).
///
/// The port is written as given: resolving port-0 services is the caller's
/// business. Fails with [`Error::AddressFamilyMismatch`] if `new_dst` is not
/// of the packet's family, and [`Error::Unsupported`] for a fragmented SCTP
/// packet.
///
/// As in the kernel, an IPv6 Routing header is not consulted: the
/// pseudo-header is updated with the address in the fixed header.
pub fn dnat(frame: &mut [u8], meta: &FlowMeta, new_dst: IpAddr, new_dport: u16) -> Result<()> {
    nat(frame, meta, End::Dst, new_dst, new_dport)
}

/// NAT, real server → client: rewrites the source address to `new_src`
/// (the virtual address) and, for TCP, UDP and SCTP, the source port to
/// `new_sport` (the virtual port). Otherwise as [`dnat`].
pub fn snat(frame: &mut [u8], meta: &FlowMeta, new_src: IpAddr, new_sport: u16) -> Result<()> {
    nat(frame, meta, End::Src, new_src, new_sport)
}

/// Checks that `[off, off + len)` lies inside `[lo, hi)`.
fn within(off: usize, len: usize, lo: usize, hi: usize) -> Result<()> {
    let e = off.checked_add(len).ok_or(Error::Truncated)?;
    if off < lo || e > hi {
        return Err(Error::Truncated);
    }
    Ok(())
}

/// Rewrites the outer `outer_end` address and the embedded packet's
/// `inner_end` address and port of an ICMP error, keeping the outer IPv4
/// header checksum, the embedded IPv4 header checksum, the embedded transport
/// checksum (if quoted) and the ICMP checksum valid.
fn icmp_nat(
    frame: &mut [u8],
    meta: &FlowMeta,
    outer_end: End,
    inner_end: End,
    addr: IpAddr,
    port: u16,
) -> Result<()> {
    let info = meta.icmp.as_ref().ok_or(Error::Unsupported)?;
    let v6 = meta.af_v6;
    same_family(&addr, v6)?;
    let expected_proto = if v6 {
        ip_protocol::ICMPV6
    } else {
        ip_protocol::ICMP
    };
    if meta.proto != expected_proto || !meta.l4_present {
        return Err(Error::Unsupported);
    }
    let l3 = meta.l3_offset;
    let ip_end = l3_end(frame, meta)?;
    let icmp = meta.l4_offset;
    let quote = icmp + icmpv4::HEADER_LEN;
    let (il3, il4) = (info.inner_l3_offset, info.inner_l4_offset);
    // Every changed word must be 16-bit aligned relative to the ICMP message.
    if il3 < quote
        || il4 < il3
        || il4 > ip_end
        || !(il3 - icmp).is_multiple_of(2)
        || !(il4 - icmp).is_multiple_of(2)
    {
        return Err(Error::Malformed);
    }
    let f: &[u8] = frame;

    // Outer address.
    let outer_off = l3 + addr_offset(v6, outer_end);
    let old_outer = addr_at(f, outer_off, v6)?;
    let outer_delta = Delta::ZERO.addr(old_outer, addr);
    let outer_ip_csum = if v6 {
        None
    } else {
        let off = l3 + ipv4::CHECKSUM_OFFSET;
        Some((off, checksum::apply(u16_at(f, off)?, outer_delta)))
    };
    // ICMPv6 covers the outer addresses through its pseudo-header.
    let mut icmp_delta = if v6 { outer_delta } else { Delta::ZERO };

    // Embedded address.
    let inner_off = il3 + addr_offset(v6, inner_end);
    within(inner_off, if v6 { 16 } else { 4 }, quote, ip_end)?;
    let old_inner = addr_at(f, inner_off, v6)?;
    let inner_delta = Delta::ZERO.addr(old_inner, addr);
    icmp_delta = icmp_delta.and(inner_delta);

    // Embedded IPv4 header checksum.
    let inner_ip_csum = if v6 {
        None
    } else {
        let off = il3 + ipv4::CHECKSUM_OFFSET;
        within(off, 2, quote, ip_end)?;
        let old = u16_at(f, off)?;
        let new = checksum::apply(old, inner_delta);
        icmp_delta = icmp_delta.word(old, new);
        Some((off, new))
    };

    // Embedded port and transport checksum (when quoted).
    let mut port_write = None;
    let mut l4_csum = None;
    if info.inner_l4_present {
        let csum_field = |off: usize| -> Result<Option<u16>> {
            Ok(if within(off, 2, quote, ip_end).is_ok() {
                Some(u16_at(f, off)?)
            } else {
                None
            })
        };
        match (info.inner_proto, v6) {
            (ip_protocol::TCP | ip_protocol::UDP | ip_protocol::SCTP, _) => {
                let off = il4 + port_offset(inner_end);
                within(off, 2, quote, ip_end)?;
                let old_port = u16_at(f, off)?;
                icmp_delta = icmp_delta.word(old_port, port);
                port_write = Some((off, port));
                let l4_delta = inner_delta.word(old_port, port);
                match info.inner_proto {
                    ip_protocol::TCP => {
                        let off = il4 + tcp::CHECKSUM_OFFSET;
                        if let Some(old) = csum_field(off)? {
                            let new = checksum::apply(old, l4_delta);
                            icmp_delta = icmp_delta.word(old, new);
                            l4_csum = Some((off, new));
                        }
                    }
                    ip_protocol::UDP => {
                        let off = il4 + udp::CHECKSUM_OFFSET;
                        if let Some(old) = csum_field(off)?.filter(|&c| c != 0) {
                            let new = checksum::udp_finish(checksum::apply(old, l4_delta));
                            icmp_delta = icmp_delta.word(old, new);
                            l4_csum = Some((off, new));
                        }
                    }
                    // SCTP's CRC32c covers the whole (not quoted) packet.
                    _ => {}
                }
            }
            (ip_protocol::ICMPV6, true) => {
                let off = il4 + icmpv6::CHECKSUM_OFFSET;
                if let Some(old) = csum_field(off)? {
                    let new = checksum::apply(old, inner_delta);
                    icmp_delta = icmp_delta.word(old, new);
                    l4_csum = Some((off, new));
                }
            }
            _ => {}
        }
    }

    let icmp_csum_off = icmp + icmpv4::CHECKSUM_OFFSET;
    let icmp_csum = checksum::apply(u16_at(f, icmp_csum_off)?, icmp_delta);

    // Write.
    put_addr(frame, outer_off, addr)?;
    if let Some((off, c)) = outer_ip_csum {
        put_u16(frame, off, c)?;
    }
    put_addr(frame, inner_off, addr)?;
    if let Some((off, c)) = inner_ip_csum {
        put_u16(frame, off, c)?;
    }
    if let Some((off, p)) = port_write {
        put_u16(frame, off, p)?;
    }
    if let Some((off, c)) = l4_csum {
        put_u16(frame, off, c)?;
    }
    put_u16(frame, icmp_csum_off, icmp_csum)?;
    Ok(())
}

/// NAT of an ICMP error travelling from the real-server side to the client
/// (the kernel's `ip_vs_nat_icmp(.., inout = 1)`, called from
/// `ip_vs_out_icmp`).
///
/// The real server (or a router beside it) complains about a packet it
/// *received*: the embedded packet is client → real server, i.e. the request
/// after DNAT (src = client:cport, dst = RIP:rport). To undo the DNAT in the
/// quote and hide the real server:
/// * outer source := `vaddr` (as the kernel does, whatever the outer source
///   was: the client only knows the virtual address);
/// * embedded destination address := `vaddr`, embedded destination port :=
///   `vport` (TCP, UDP, SCTP).
///
/// Fixes the outer IPv4 header checksum, the embedded IPv4 header checksum,
/// the embedded TCP/UDP checksum if the quote is long enough to hold it (a
/// zero UDP checksum stays zero; this restores the checksum the client
/// sent), and the ICMP/ICMPv6 checksum (ICMPv6 includes the outer
/// pseudo-header). `meta.icmp` must be set ([`Error::Unsupported`]
/// otherwise).
pub fn icmp_error_out(frame: &mut [u8], meta: &FlowMeta, vaddr: IpAddr, vport: u16) -> Result<()> {
    icmp_nat(frame, meta, End::Src, End::Dst, vaddr, vport)
}

/// NAT of an ICMP error travelling from the client side to the real server
/// (the kernel's `ip_vs_nat_icmp(.., inout = 0)`, called from
/// `ip_vs_in_icmp`).
///
/// Someone on the client side complains about a packet the director *sent*
/// to the client: the embedded packet is a reply after SNAT (src =
/// VIP:vport, dst = client:cport). To deliver it to the real server as a
/// complaint about the packet the real server sent:
/// * outer destination := `daddr` (the real server);
/// * embedded source address := `daddr`, embedded source port := `dport`
///   (TCP, UDP, SCTP).
///
/// Checksums are fixed as in [`icmp_error_out`].
pub fn icmp_error_in(frame: &mut [u8], meta: &FlowMeta, daddr: IpAddr, dport: u16) -> Result<()> {
    icmp_nat(frame, meta, End::Dst, End::Src, daddr, dport)
}

/// IP-in-IP encapsulation for TUN forwarding (RFC 2003 / RFC 2473).
///
/// The Ethernet frame occupies `buf[frame_start..frame_start + frame_len]`
/// and must carry IPv4 or IPv6 ([`Error::Unsupported`] otherwise). The link
/// header (14 bytes, or 18 with a VLAN tag, which is kept) moves back by the
/// outer header's length (20 for an IPv4 outer header, 40 for IPv6; the
/// family of `outer_src`/`outer_dst`) and the outer header is written between
/// it and the untouched inner packet; the payload EtherType becomes the
/// outer family's. Ethernet padding after the inner packet is dropped.
///
/// Outer IPv4: protocol 4 (inner IPv4) or 41 (inner IPv6); TOS copied from
/// the inner packet; DF copied from the inner IPv4 packet, always set for
/// inner IPv6; identification 0 when DF is set, else the inner packet's
/// identification; TTL `ttl`; header checksum computed. Outer IPv6: next
/// header 4 or 41, traffic class and (for inner IPv6) flow label copied, hop
/// limit `ttl`.
///
/// `mtu` is the egress link MTU. If the outer packet would exceed it and
/// the inner packet may not be fragmented (IPv4 DF, or IPv6), returns
/// [`EncapResult::TooBig`] with `mtu` minus the outer header, without
/// modifying anything. If the inner IPv4 packet has DF clear, it is
/// encapsulated anyway with outer DF clear: the result may then exceed
/// `mtu` and the caller must fragment the outer packet.
///
/// Errors: [`Error::NoHeadroom`] if `frame_start` is less than the outer
/// header length, [`Error::AddressFamilyMismatch`] if `outer_src` and
/// `outer_dst` differ in family, [`Error::Unsupported`] if the outer packet
/// would exceed 65535 bytes, and the inner packet's parse errors.
pub fn encap_ipip(
    buf: &mut [u8],
    frame_start: usize,
    frame_len: usize,
    outer_src: IpAddr,
    outer_dst: IpAddr,
    mtu: u16,
    ttl: u8,
) -> Result<EncapResult> {
    let frame_end = frame_start.checked_add(frame_len).ok_or(Error::Truncated)?;
    let frame = buf.get(frame_start..frame_end).ok_or(Error::Truncated)?;
    let eth = Frame::new_checked(frame)?;
    let eth_len = eth.header_len();

    struct Inner {
        v6: bool,
        len: usize,
        df: bool,
        tos: u8,
        flow: u32,
        ident: u16,
    }
    let inner = match eth.payload_ethertype() {
        EtherType::IPV4 => {
            let p = ipv4::Packet::new_checked(eth.payload())?;
            Inner {
                v6: false,
                len: usize::from(p.total_len()),
                df: p.dont_frag(),
                tos: p.tos(),
                flow: 0,
                ident: p.ident(),
            }
        }
        EtherType::IPV6 => {
            let p = ipv6::Packet::new_checked(eth.payload())?;
            Inner {
                v6: true,
                len: p.total_len(),
                df: true,
                tos: p.traffic_class(),
                flow: p.flow_label(),
                ident: 0,
            }
        }
        _ => return Err(Error::Unsupported),
    };
    let outer_v6 = match (outer_src, outer_dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => return Err(Error::AddressFamilyMismatch),
    };
    let hdr = if outer_v6 {
        ipv6::HEADER_LEN
    } else {
        ipv4::HEADER_LEN
    };
    let outer_len = inner.len + hdr;
    if outer_len > usize::from(mtu) && inner.df {
        return Ok(EncapResult::TooBig {
            mtu: mtu.saturating_sub(hdr as u16),
        });
    }
    // IPv4 total length / IPv6 payload length must fit 16 bits.
    if (outer_v6 && inner.len > 0xffff) || (!outer_v6 && outer_len > 0xffff) {
        return Err(Error::Unsupported);
    }
    if frame_start < hdr {
        return Err(Error::NoHeadroom);
    }
    let start = frame_start - hdr;
    let next = if inner.v6 {
        ip_protocol::IPV6
    } else {
        ip_protocol::IPIP
    };

    buf.copy_within(frame_start..frame_start + eth_len, start);
    let ethertype = if outer_v6 {
        EtherType::IPV6
    } else {
        EtherType::IPV4
    };
    put_u16(buf, start + eth_len - 2, ethertype.0)?;
    let out = &mut buf[start + eth_len..start + eth_len + hdr];
    match (outer_src, outer_dst) {
        (IpAddr::V4(src_addr), IpAddr::V4(dst_addr)) => ipv4::Repr {
            src_addr,
            dst_addr,
            protocol: next,
            payload_len: inner.len,
            ttl,
            tos: inner.tos,
            ident: if inner.df { 0 } else { inner.ident },
            dont_frag: inner.df,
        }
        .emit(out)?,
        (IpAddr::V6(src_addr), IpAddr::V6(dst_addr)) => ipv6::Repr {
            src_addr,
            dst_addr,
            next_header: next,
            payload_len: inner.len,
            hop_limit: ttl,
            traffic_class: inner.tos,
            flow_label: inner.flow,
        }
        .emit(out)?,
        _ => return Err(Error::AddressFamilyMismatch),
    }
    Ok(EncapResult::Encapsulated {
        start,
        len: eth_len + outer_len,
    })
}
