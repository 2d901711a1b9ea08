//! IPv6 fixed headers (RFC 8200) and a bounded walk over extension headers.
//!
//! # Invariants
//!
//! [`Packet::new_checked`] guarantees that the version is 6 (else
//! [`Error::Malformed`]) and that the 40-byte header and the declared payload
//! are in the buffer (else [`Error::Truncated`]). After that no accessor can
//! panic. Jumbograms (payload length 0 with a Jumbo Payload option) are not
//! supported: their payload is seen as empty.
//!
//! Extension headers are not interpreted by the view; [`upper_layer`] walks
//! them to find the transport header.

use core::net::Ipv6Addr;

use crate::bytes::{be16, ipv6};
use crate::ip_protocol;
use crate::{Error, Result};

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// Byte offset of the hop limit.
pub const HOP_LIMIT_OFFSET: usize = field::HOP_LIMIT;
/// Byte offset of the source address.
pub const SRC_ADDR_OFFSET: usize = field::SRC_ADDR.start;
/// Byte offset of the destination address.
pub const DST_ADDR_OFFSET: usize = field::DST_ADDR.start;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// The minimum link MTU of IPv6 (RFC 8200 §5).
pub const MIN_MTU: usize = 1280;

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without any check.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Validates version and lengths (see the module docs).
    pub fn check_len(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if d.len() < self.total_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// IP version (6 once checked).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    fn first_word(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    /// Payload length (extension headers included).
    pub fn payload_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// 40 + payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// The header following the fixed header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        ipv6(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        ipv6(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// The payload (extension headers included), up to the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_first_word(&mut self, w: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes());
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = (self.first_word() & 0xf00f_ffff) | (u32::from(tc) << 20);
        self.set_first_word(w);
    }

    /// Sets the flow label (low 20 bits of `label`).
    pub fn set_flow_label(&mut self, label: u32) {
        let w = (self.first_word() & 0xfff0_0000) | (label & 0x000f_ffff);
        self.set_first_word(w);
    }

    /// Sets the next header.
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = nh;
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, hl: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hl;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let t = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..t]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The fields of an IPv6 fixed header to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Length of the emitted header (40).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte header into the start of `buf`. Fails with
    /// [`Error::BufferTooSmall`] if `buf` is too short and
    /// [`Error::Unsupported`] if the payload exceeds 65535 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let len = u16::try_from(self.payload_len).map_err(|_| Error::Unsupported)?;
        let b = buf.get_mut(..HEADER_LEN).ok_or(Error::BufferTooSmall)?;
        let w =
            (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0x000f_ffff);
        b[field::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes());
        b[field::LENGTH].copy_from_slice(&len.to_be_bytes());
        b[field::NXT_HDR] = self.next_header;
        b[field::HOP_LIMIT] = self.hop_limit;
        b[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        b[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        Ok(())
    }
}

/// True for the extension headers [`upper_layer`] walks: Hop-by-Hop,
/// Routing, Fragment, Destination Options and Authentication Header.
pub const fn is_extension_header(next_header: u8) -> bool {
    matches!(
        next_header,
        ip_protocol::HOPOPTS
            | ip_protocol::ROUTING
            | ip_protocol::FRAGMENT
            | ip_protocol::DSTOPTS
            | ip_protocol::AH
    )
}

/// The most extension headers [`upper_layer`] follows before giving up.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// Where the upper-layer header of an IPv6 packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// The upper-layer protocol (the last next-header value); may be
    /// [`ip_protocol::NONE`], [`ip_protocol::ESP`] or anything else that
    /// is not walked.
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the IPv6 payload.
    pub offset: usize,
    /// True if any extension header was present.
    pub has_extension_headers: bool,
    /// The Fragment header's offset (in bytes) and M flag, if present.
    pub fragment: Option<(u16, bool)>,
}

/// Walks the extension headers at the start of an IPv6 `payload` whose fixed
/// header announced `next_header`.
///
/// Stops at the first header that is not an extension header, or right
/// after a Fragment header whose offset is not zero (the rest belongs to a
/// fragment, not to a header). Fails with [`Error::Truncated`] if an
/// extension header runs past the payload and with [`Error::Unsupported`]
/// after [`MAX_EXTENSION_HEADERS`] headers.
pub fn upper_layer(payload: &[u8], next_header: u8) -> Result<UpperLayer> {
    let mut nh = next_header;
    let mut off = 0usize;
    let mut fragment = None;
    let mut count = 0;
    while is_extension_header(nh) {
        if count == MAX_EXTENSION_HEADERS {
            return Err(Error::Unsupported);
        }
        count += 1;
        let h = payload.get(off..off + 2).ok_or(Error::Truncated)?;
        let len = match nh {
            ip_protocol::FRAGMENT => 8,
            ip_protocol::AH => (usize::from(h[1]) + 2) * 4,
            _ => (usize::from(h[1]) + 1) * 8,
        };
        let hdr = payload.get(off..off + len).ok_or(Error::Truncated)?;
        let this = nh;
        nh = hdr[0];
        off += len;
        if this == ip_protocol::FRAGMENT {
            let w = be16(&hdr[2..4]);
            let frag_off = w & 0xfff8;
            fragment = Some((frag_off, w & 1 != 0));
            if frag_off != 0 {
                break;
            }
        }
    }
    Ok(UpperLayer {
        protocol: nh,
        offset: off,
        has_extension_headers: count > 0,
        fragment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: &[u8], nh: u8) -> Vec<u8> {
        let r = Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "2001:db8::2".parse().unwrap(),
            next_header: nh,
            payload_len: payload.len(),
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        };
        let mut b = vec![0u8; 40];
        r.emit(&mut b).unwrap();
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn fields() {
        let b = sample(&[1, 2, 3, 4], 17);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 4);
        assert_eq!(p.total_len(), 44);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
    }

    #[test]
    fn rejects() {
        let b = sample(&[1, 2, 3, 4], 17);
        for n in 0..44 {
            assert_eq!(Packet::new_checked(&b[..n]).unwrap_err(), Error::Truncated);
        }
        let mut x = b.clone();
        x[0] = 0x45;
        assert_eq!(Packet::new_checked(&x[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn setters() {
        let mut b = sample(&[0; 4], 6);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_traffic_class(0x01);
        p.set_flow_label(0xfffff);
        p.set_next_header(17);
        p.set_hop_limit(3);
        p.set_src_addr(Ipv6Addr::LOCALHOST);
        p.set_dst_addr(Ipv6Addr::UNSPECIFIED);
        p.payload_mut()[3] = 9;
        assert_eq!(
            (
                p.version(),
                p.traffic_class(),
                p.flow_label(),
                p.next_header(),
                p.hop_limit()
            ),
            (6, 1, 0xfffff, 17, 3)
        );
        assert_eq!(
            (p.src_addr(), p.dst_addr()),
            (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED)
        );
        assert_eq!(p.payload(), &[0, 0, 0, 9]);
    }

    #[test]
    fn extension_headers() {
        // Hop-by-hop (8 bytes) -> Fragment (offset 0, M) -> UDP.
        let ext = [
            ip_protocol::FRAGMENT,
            0,
            1,
            4,
            0,
            0,
            0,
            0, // HBH: PadN
            ip_protocol::UDP,
            0,
            0x00,
            0x01,
            0,
            0,
            0,
            1, // fragment, offset 0, M
            0,
            1,
            0,
            2,
            0,
            8,
            0,
            0, // UDP header
        ];
        let u = upper_layer(&ext, ip_protocol::HOPOPTS).unwrap();
        assert_eq!(
            u,
            UpperLayer {
                protocol: ip_protocol::UDP,
                offset: 16,
                has_extension_headers: true,
                fragment: Some((0, true))
            }
        );
        // Non-first fragment: stop after the fragment header.
        let mut ext2 = ext;
        ext2[10] = 0x00;
        ext2[11] = 0x10;
        let u = upper_layer(&ext2, ip_protocol::HOPOPTS).unwrap();
        assert_eq!(u.fragment, Some((16, false)));
        // Truncations.
        for n in 0..16 {
            assert_eq!(
                upper_layer(&ext[..n], ip_protocol::HOPOPTS).unwrap_err(),
                Error::Truncated,
                "{n}"
            );
        }
        // No extension headers.
        assert_eq!(
            upper_layer(&[], ip_protocol::TCP).unwrap(),
            UpperLayer {
                protocol: 6,
                offset: 0,
                has_extension_headers: false,
                fragment: None
            }
        );
        // An endless chain of destination options.
        let chain = [ip_protocol::DSTOPTS, 0, 0, 0, 0, 0, 0, 0].repeat(20);
        assert_eq!(
            upper_layer(&chain, ip_protocol::DSTOPTS).unwrap_err(),
            Error::Unsupported
        );
        // AH length is in 4-byte units (+2).
        let ah = [ip_protocol::TCP, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(upper_layer(&ah, ip_protocol::AH).unwrap().offset, 12);
    }
}
