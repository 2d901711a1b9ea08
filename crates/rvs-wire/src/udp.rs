//! UDP headers (RFC 768).
//!
//! # Invariants
//!
//! [`Packet::new_checked`] guarantees the 8-byte header, a length field of at
//! least 8 (else [`Error::Malformed`]) and at most the buffer length (else
//! [`Error::Truncated`]). [`Packet::payload`] ends at the length field.
//!
//! A checksum of `0` means "none" over IPv4; see [`crate::checksum`].

use core::net::IpAddr;

use crate::bytes::be16;
use crate::checksum;
use crate::ip_protocol;
use crate::{Error, Result};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// Byte offset of the checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;
/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// A read/write view of a UDP datagram.
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

    /// Validates the length field against the buffer.
    pub fn check_len(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = usize::from(self.len());
        if l < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if l > d.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// Length field (header + payload).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Checksum as stored (`0`: none, IPv4 only).
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// True if the checksum is valid, or absent (`0`) over IPv4. False if
    /// `src` and `dst` differ in family.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if src.is_ipv4() && dst.is_ipv4() && self.checksum() == 0 {
            return true;
        }
        let d = &self.buffer.as_ref()[..usize::from(self.len())];
        match checksum::pseudo_header(src, dst, ip_protocol::UDP, u32::from(self.len())) {
            Some(ph) => checksum::combine(&[ph, checksum::data(d)]) == 0xffff,
            None => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port. Does not update the checksum.
    pub fn set_src_port(&mut self, port: u16) {
        self.buffer.as_mut()[field::SRC_PORT].copy_from_slice(&port.to_be_bytes());
    }

    /// Sets the destination port. Does not update the checksum.
    pub fn set_dst_port(&mut self, port: u16) {
        self.buffer.as_mut()[field::DST_PORT].copy_from_slice(&port.to_be_bytes());
    }

    /// Stores a checksum.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Recomputes the checksum over the pseudo-header and the datagram
    /// (a computed `0` is stored as `0xffff`).
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) -> Result<()> {
        self.set_checksum(0);
        let len = self.len();
        let d = &self.buffer.as_ref()[..usize::from(len)];
        let ph = checksum::pseudo_header(src, dst, ip_protocol::UDP, u32::from(len))
            .ok_or(Error::AddressFamilyMismatch)?;
        let c = checksum::udp_finish(!checksum::combine(&[ph, checksum::data(d)]));
        self.set_checksum(c);
        Ok(())
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv6Addr;

    #[test]
    fn fields_and_checksum() {
        let mut b = vec![0x00, 0x35, 0x04, 0xd2, 0x00, 0x0b, 0, 0, 1, 2, 3, 0xee];
        let s = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (53, 1234, 11));
        assert_eq!(p.payload(), &[1, 2, 3]);
        assert!(!p.verify_checksum(&s, &s));
        p.fill_checksum(&s, &s).unwrap();
        assert!(p.verify_checksum(&s, &s));
        p.set_src_port(1);
        p.set_dst_port(2);
        p.payload_mut()[0] = 7;
        assert_eq!((p.src_port(), p.dst_port(), p.payload()[0]), (1, 2, 7));
        let v4 = IpAddr::V4(core::net::Ipv4Addr::LOCALHOST);
        p.set_checksum(0);
        assert!(p.verify_checksum(&v4, &v4));
        assert!(!p.verify_checksum(&v4, &s));
    }

    #[test]
    fn rejects() {
        let b = [0x00, 0x35, 0x04, 0xd2, 0x00, 0x0b, 0, 0, 1, 2, 3];
        for n in 0..11 {
            assert_eq!(Packet::new_checked(&b[..n]).unwrap_err(), Error::Truncated);
        }
        let mut x = b;
        x[5] = 7;
        assert_eq!(Packet::new_checked(&x[..]).unwrap_err(), Error::Malformed);
    }
}
