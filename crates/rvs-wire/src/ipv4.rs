//! IPv4 headers (RFC 791), options included.
//!
//! # Invariants
//!
//! [`Packet::new_checked`] guarantees:
//! * the version is 4 and the IHL at least 5 (else [`Error::Malformed`]);
//! * the whole header, options included, is in the buffer;
//! * the total length is at least the header length (else
//!   [`Error::Malformed`]) and at most the buffer length (else
//!   [`Error::Truncated`]). A longer buffer (Ethernet padding) is fine:
//!   [`Packet::payload`] ends at the total length.
//!
//! After that no accessor can panic. The header checksum is *not* checked by
//! `new_checked`; see [`Packet::verify_checksum`].

use core::net::Ipv4Addr;

use crate::bytes::{be16, ipv4};
use crate::checksum;
use crate::{Error, Result};

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Byte offset of the TTL field.
pub const TTL_OFFSET: usize = field::TTL;
/// Byte offset of the header checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;
/// Byte offset of the source address.
pub const SRC_ADDR_OFFSET: usize = field::SRC_ADDR.start;
/// Byte offset of the destination address.
pub const DST_ADDR_OFFSET: usize = field::DST_ADDR.start;
/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Largest header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without any check; accessors may panic if
    /// [`check_len`](Self::check_len) would fail.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Validates version, IHL, total length and the buffer length (see the
    /// module docs).
    pub fn check_len(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if d.len() < hl {
            return Err(Error::Truncated);
        }
        let tl = usize::from(self.total_len());
        if tl < hl {
            return Err(Error::Malformed);
        }
        if d.len() < tl {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// IP version (4 once checked).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The former TOS byte: DSCP and ECN.
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Differentiated services code point.
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    /// ECN bits.
    pub fn ecn(&self) -> u8 {
        self.tos() & 0x03
    }

    /// Total length (header + payload).
    pub fn total_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::IDENT])
    }

    fn flags_offset(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::FLG_OFF])
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) << 3
    }

    /// True if this is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum as stored.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// The header options (empty if IHL is 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The whole header, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The payload, up to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    /// True if the header checksum is valid.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.header()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the TOS byte (DSCP and ECN). Does not update the checksum.
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = tos;
    }

    /// Sets the identification. Does not update the checksum.
    pub fn set_ident(&mut self, ident: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&ident.to_be_bytes());
    }

    /// Sets the TTL. Does not update the checksum.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol. Does not update the checksum.
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    /// Stores a checksum.
    pub fn set_checksum(&mut self, csum: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&csum.to_be_bytes());
    }

    /// Sets the source address. Does not update the checksum.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address. Does not update the checksum.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Recomputes the header checksum over the whole header.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = !checksum::data(self.header());
        self.set_checksum(c);
    }

    /// The payload, up to the total length, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[h..t]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The fields of an option-less IPv4 header to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length in bytes (the total length is this plus 20).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// TOS byte (DSCP and ECN).
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
}

impl Repr {
    /// Length of the emitted header (20).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 20-byte header, checksum included, into the start of `buf`.
    /// Fails with [`Error::BufferTooSmall`] if `buf` is shorter than 20 bytes,
    /// and [`Error::Unsupported`] if the total length exceeds 65535.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let total = u16::try_from(self.payload_len + HEADER_LEN).map_err(|_| Error::Unsupported)?;
        let b = buf.get_mut(..HEADER_LEN).ok_or(Error::BufferTooSmall)?;
        b[field::VER_IHL] = 0x45;
        b[field::DSCP_ECN] = self.tos;
        b[field::LENGTH].copy_from_slice(&total.to_be_bytes());
        b[field::IDENT].copy_from_slice(&self.ident.to_be_bytes());
        let flags = if self.dont_frag { FLAG_DF } else { 0 };
        b[field::FLG_OFF].copy_from_slice(&flags.to_be_bytes());
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        b[field::CHECKSUM].copy_from_slice(&[0, 0]);
        b[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        b[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        let c = !checksum::data(b);
        b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.0.1 -> 10.0.0.2, UDP, TTL 64, DF, id 0x1234, 4 bytes of payload,
    // followed by 2 bytes of Ethernet padding.
    fn sample() -> Vec<u8> {
        let mut b = vec![
            0x45, 0x00, 0x00, 24, 0x12, 0x34, 0x40, 0x00, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0,
            2, //
            1, 2, 3, 4, 0, 0,
        ];
        let c = !checksum::data(&b[..20]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn fields() {
        let b = sample();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        assert!(p.options().is_empty());
        assert!(p.verify_checksum());
    }

    #[test]
    fn rejects_bad_headers() {
        let b = sample();
        for n in 0..24 {
            assert_eq!(
                Packet::new_checked(&b[..n]).unwrap_err(),
                Error::Truncated,
                "len {n}"
            );
        }
        let mut v6 = b.clone();
        v6[0] = 0x65;
        assert_eq!(Packet::new_checked(&v6[..]).unwrap_err(), Error::Malformed);
        for ihl in 0..5u8 {
            let mut x = b.clone();
            x[0] = 0x40 | ihl;
            assert_eq!(Packet::new_checked(&x[..]).unwrap_err(), Error::Malformed);
        }
        let mut x = b.clone();
        x[0] = 0x4f; // 60-byte header in a 26-byte buffer
        assert_eq!(Packet::new_checked(&x[..]).unwrap_err(), Error::Truncated);
        let mut x = b.clone();
        x[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&x[..]).unwrap_err(), Error::Malformed);
        let mut x = b.clone();
        x[2..4].copy_from_slice(&27u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&x[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn options() {
        // IHL 6 with a 4-byte NOP/EOL option.
        let mut b = vec![
            0x46, 0, 0, 28, 0, 0, 0x20, 0x01, 1, 6, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 0, 9, 9,
            9, 9,
        ];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[9, 9, 9, 9]);
        assert!(p.more_frags() && p.is_fragment());
        assert_eq!(p.frag_offset(), 8);
    }

    #[test]
    fn setters_and_repr() {
        let r = Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 1),
            dst_addr: Ipv4Addr::new(198, 51, 100, 7),
            protocol: 4,
            payload_len: 8,
            ttl: 9,
            tos: 0xb8,
            ident: 7,
            dont_frag: true,
        };
        let mut b = [0u8; 28];
        r.emit(&mut b).unwrap();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(
            (
                p.src_addr(),
                p.dst_addr(),
                p.protocol(),
                p.ttl(),
                p.tos(),
                p.ident()
            ),
            (r.src_addr, r.dst_addr, 4, 9, 0xb8, 7)
        );
        assert_eq!((p.dscp(), p.ecn()), (0x2e, 0));
        assert!(p.dont_frag());
        assert_eq!(p.total_len(), 28);
        p.set_ttl(1);
        p.set_tos(0);
        p.set_ident(1);
        p.set_protocol(17);
        p.set_src_addr(Ipv4Addr::new(1, 2, 3, 4));
        p.set_dst_addr(Ipv4Addr::new(5, 6, 7, 8));
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.payload_mut()[0] = 0xaa;
        assert_eq!(p.payload()[0], 0xaa);
        assert_eq!(r.emit(&mut b[..19]), Err(Error::BufferTooSmall));
        let big = Repr {
            payload_len: 65516,
            ..r
        };
        assert_eq!(big.emit(&mut b), Err(Error::Unsupported));
    }
}
