//! # rvs-wire
//!
//! Zero-copy packet views, checksums and the in-place rewrites of the IPVS
//! forwarding methods (DR, NAT, TUN) for **rvs**, a user-space Linux Virtual
//! Server.
//!
//! ## Layout
//!
//! * One module per header, in smoltcp's idiom: a `Packet<T: AsRef<[u8]>>`
//!   (or [`ethernet::Frame`]) view whose `new_checked` validates the buffer
//!   once, after which every getter is infallible and cannot panic; setters
//!   exist when `T: AsMut<[u8]>`. Each module's docs state what `new_checked`
//!   guarantees.
//! * [`checksum`]: the internet checksum and RFC 1624 incremental updates.
//! * [`offload`]: [`complete_partial`], finishing the checksums a sender's
//!   checksum offload left partial.
//! * [`segment`]: [`tcp_segments`], cutting a TCP super-frame (TSO, GRO)
//!   into wire-sized segments.
//! * [`parse`]: [`parse_frame`], one pass over an Ethernet frame into a
//!   [`FlowMeta`] (offsets, 5-tuple, flags, and the embedded flow of an ICMP
//!   error).
//! * [`rewrite`]: the forwarding rewrites, done in place on the frame with
//!   incremental checksum updates: [`set_macs`] (DR), [`dnat`]/[`snat`] and
//!   [`icmp_error_in`]/[`icmp_error_out`] (NAT), [`encap_ipip`] (TUN),
//!   [`decrement_ttl`], and the builders [`icmp_frag_needed`] and
//!   [`icmp_port_unreachable`].
//! * [`ipvs_sync`]: the IPVS connection-sync messages (versions 0 and 1,
//!   byte-compatible with Linux): [`SyncMessage`] parses a datagram,
//!   [`SyncBuffer`] builds one.
//!
//! ## Guarantees
//!
//! * No allocation and no `unsafe`.
//! * No panic on any input: every view rejects short or malformed buffers
//!   with an [`Error`], and the rewrites bounds-check every offset they take
//!   from a [`FlowMeta`], validating before they write so that a failed
//!   rewrite leaves the frame untouched.
//! * Rewrites never recompute a checksum over a payload (except the SCTP
//!   CRC32c, which cannot be updated incrementally).
//! * `no_std`: the crate uses only `core`.
//!
//! ## Example
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use rvs_wire::{EtherType, EthernetAddress, Parsed, UdpPacket, dnat, parse_frame};
//!
//! # fn main() -> Result<(), rvs_wire::Error> {
//! // A UDP datagram 203.0.113.7:5353 -> 192.0.2.10:53 in an Ethernet frame.
//! let (client, vip) = (Ipv4Addr::new(203, 0, 113, 7), Ipv4Addr::new(192, 0, 2, 10));
//! let mut frame = [0u8; 14 + 20 + 8 + 4];
//! let mac = |b| EthernetAddress([2, 0, 0, 0, 0, b]);
//! rvs_wire::ethernet::emit_header(&mut frame, mac(1), mac(2), None, EtherType::IPV4)?;
//! let ip = rvs_wire::ipv4::Repr {
//!     src_addr: client,
//!     dst_addr: vip,
//!     protocol: rvs_wire::ip_protocol::UDP,
//!     payload_len: 12,
//!     ttl: 64,
//!     tos: 0,
//!     ident: 0,
//!     dont_frag: true,
//! };
//! ip.emit(&mut frame[14..])?;
//! frame[34..].copy_from_slice(&[0x14, 0xe9, 0, 53, 0, 12, 0, 0, b'p', b'i', b'n', b'g']);
//! UdpPacket::new_checked(&mut frame[34..])?.fill_checksum(&client.into(), &vip.into())?;
//!
//! // One parse per packet...
//! let Parsed::Ip(meta) = parse_frame(&frame)? else { unreachable!() };
//! assert_eq!((meta.dst, meta.dport), (IpAddr::V4(vip), 53));
//!
//! // ...then NAT it to the real server 10.0.0.5:5300, checksums updated in place.
//! let rs = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
//! dnat(&mut frame, &meta, rs, 5300)?;
//! let Parsed::Ip(after) = parse_frame(&frame)? else { unreachable!() };
//! assert_eq!((after.dst, after.dport), (rs, 5300));
//! assert!(UdpPacket::new_checked(&frame[34..])?.verify_checksum(&client.into(), &rs));
//! # Ok(())
//! # }
//! ```

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bytes;
mod error;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod fragment;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod ipvs_sync;
pub mod offload;
pub mod parse;
pub mod rewrite;
pub mod sctp;
pub mod segment;
pub mod sip;
pub mod tcp;
pub mod udp;

pub use error::{Error, Result};
pub use ethernet::{EtherType, EthernetAddress};
pub use fragment::{ipv4_fragment, ipv4_fragment_count};
pub use ipvs_sync::{Message as SyncMessage, SyncBuffer, SyncConn, SyncError};
pub use offload::{Completion, complete_partial};
pub use parse::{FlowMeta, IcmpInfo, Kind, Parsed, parse_frame, parse_frame_into};
pub use rewrite::{
    EncapResult, TtlVerdict, decrement_ttl, dnat, encap_ipip, icmp_error_in, icmp_error_out,
    icmp_frag_needed, icmp_port_unreachable, set_macs, snat,
};
pub use segment::{SegmentError, tcp_segment, tcp_segments};

/// Short names for the views.
pub use arp::Packet as ArpPacket;
pub use ethernet::Frame as EthernetFrame;
pub use icmpv4::Packet as Icmpv4Packet;
pub use icmpv6::Packet as Icmpv6Packet;
pub use ipv4::Packet as Ipv4Packet;
pub use ipv6::Packet as Ipv6Packet;
pub use sctp::Packet as SctpPacket;
pub use tcp::Packet as TcpPacket;
pub use udp::Packet as UdpPacket;

/// IP protocol numbers (IPv4 protocol / IPv6 next header) used by this crate.
pub mod ip_protocol {
    /// IPv6 Hop-by-Hop Options.
    pub const HOPOPTS: u8 = 0;
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IPv4 encapsulation (IP-in-IP).
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulation.
    pub const IPV6: u8 = 41;
    /// IPv6 Routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// GRE.
    pub const GRE: u8 = 47;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 No Next Header.
    pub const NONE: u8 = 59;
    /// IPv6 Destination Options.
    pub const DSTOPTS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;
}
