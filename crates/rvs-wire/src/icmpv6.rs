//! ICMPv6 (RFC 4443).
//!
//! # Invariants
//!
//! [`Packet::new_checked`] guarantees the 8-byte header. The buffer is the
//! whole ICMPv6 message. Unlike ICMPv4, the checksum covers the IPv6
//! pseudo-header, so address rewrites must update it.

use core::net::Ipv6Addr;

use crate::bytes::{be16, be32};
use crate::checksum;
use crate::ip_protocol;
use crate::{Error, Result};

/// ICMPv6 message types.
pub mod msg_type {
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 1;
    /// Packet too big.
    pub const PKT_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbor solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Redirect.
    pub const REDIRECT: u8 = 137;
}

/// Codes of [`msg_type::DST_UNREACHABLE`].
pub mod unreachable {
    /// No route to destination.
    pub const NO_ROUTE: u8 = 0;
    /// Communication administratively prohibited.
    pub const ADMIN_PROHIBITED: u8 = 1;
    /// Address unreachable.
    pub const ADDR: u8 = 3;
    /// Port unreachable.
    pub const PORT: u8 = 4;
}

/// True for error messages (types 0..=127, RFC 4443 §2.1).
pub const fn is_error(msg_type: u8) -> bool {
    msg_type < 128
}

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
}

/// Byte offset of the checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;
/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// A read/write view of an ICMPv6 message.
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

    /// Fails with [`Error::Truncated`] if the 8-byte header is incomplete.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type (see [`msg_type`]).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// The four bytes after the checksum as one word (the MTU of "packet too
    /// big", the pointer of "parameter problem").
    pub fn rest_of_header(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::REST])
    }

    /// MTU of a "packet too big" message.
    pub fn pkt_too_big_mtu(&self) -> u32 {
        self.rest_of_header()
    }

    /// Echo identifier (meaningful for echo request/reply).
    pub fn echo_ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }

    /// Echo sequence number (meaningful for echo request/reply).
    pub fn echo_seq_no(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_SEQNO])
    }

    /// The data after the header (for errors: the quoted packet).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    fn sum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> Option<u16> {
        let d = self.buffer.as_ref();
        let len = u32::try_from(d.len()).ok()?;
        Some(checksum::combine(&[
            checksum::pseudo_header_v6(src, dst, ip_protocol::ICMPV6, len),
            checksum::data(d),
        ]))
    }

    /// True if the checksum over the pseudo-header and the message is valid.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        self.sum(src, dst) == Some(0xffff)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Stores a checksum.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the four bytes after the checksum.
    pub fn set_rest_of_header(&mut self, v: u32) {
        self.buffer.as_mut()[field::REST].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::ECHO_IDENT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        self.buffer.as_mut()[field::ECHO_SEQNO].copy_from_slice(&v.to_be_bytes());
    }

    /// Recomputes the checksum over the pseudo-header and the whole buffer.
    /// Fails with [`Error::Unsupported`] for a buffer over 4 GiB.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<()> {
        self.set_checksum(0);
        let s = self.sum(src, dst).ok_or(Error::Unsupported)?;
        self.set_checksum(!s);
        Ok(())
    }

    /// The data after the header, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let s: Ipv6Addr = "fe80::1".parse().unwrap();
        let d: Ipv6Addr = "fe80::2".parse().unwrap();
        let mut b = vec![128, 0, 0, 0, 0x12, 0x34, 0x00, 0x07, b'x'];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.msg_code(), p.echo_ident(), p.echo_seq_no()),
            (128, 0, 0x1234, 7)
        );
        assert_eq!(p.data(), b"x");
        p.fill_checksum(&s, &d).unwrap();
        assert!(p.verify_checksum(&s, &d));
        assert!(!p.verify_checksum(&s, &"fe80::3".parse().unwrap()));
        p.set_msg_type(msg_type::PKT_TOO_BIG);
        p.set_msg_code(0);
        p.set_rest_of_header(1280);
        assert_eq!(p.pkt_too_big_mtu(), 1280);
        p.set_echo_ident(1);
        p.set_echo_seq_no(2);
        p.data_mut()[0] = 0;
        assert_eq!(p.rest_of_header(), 0x0001_0002);
        assert!(is_error(p.msg_type()) && !is_error(msg_type::ECHO_REPLY));
        for n in 0..8 {
            assert_eq!(Packet::new_checked(&b[..n]).unwrap_err(), Error::Truncated);
        }
    }
}
