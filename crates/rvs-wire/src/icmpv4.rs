//! ICMP for IPv4 (RFC 792, RFC 1191).
//!
//! # Invariants
//!
//! [`Packet::new_checked`] guarantees the 8-byte header (type, code,
//! checksum and the 4-byte rest-of-header). The buffer is the whole ICMP
//! message: the checksum covers all of it, and no pseudo-header.

use crate::bytes::be16;
use crate::checksum;
use crate::{Error, Result};

/// ICMP message types.
pub mod msg_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 3;
    /// Source quench (deprecated, RFC 6633).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
    /// Timestamp.
    pub const TIMESTAMP: u8 = 13;
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: u8 = 14;
}

/// Codes of [`msg_type::DST_UNREACHABLE`].
pub mod unreachable {
    /// Network unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set (carries the next-hop MTU).
    pub const FRAG_NEEDED: u8 = 4;
}

/// True for the error messages that quote an offending datagram and that an
/// ICMP error must never be sent about: destination unreachable, source
/// quench, redirect, time exceeded, parameter problem.
pub const fn is_error(msg_type: u8) -> bool {
    matches!(
        msg_type,
        msg_type::DST_UNREACHABLE
            | msg_type::SOURCE_QUENCH
            | msg_type::REDIRECT
            | msg_type::TIME_EXCEEDED
            | msg_type::PARAM_PROBLEM
    )
}

mod field {
    use core::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    pub const MTU: Range<usize> = 6..8;
}

/// Byte offset of the checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;
/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// A read/write view of an ICMP message.
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

    /// The four bytes after the checksum.
    pub fn rest_of_header(&self) -> [u8; 4] {
        let d = &self.buffer.as_ref()[field::REST];
        [d[0], d[1], d[2], d[3]]
    }

    /// Echo identifier (meaningful for echo request/reply).
    pub fn echo_ident(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }

    /// Echo sequence number (meaningful for echo request/reply).
    pub fn echo_seq_no(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ECHO_SEQNO])
    }

    /// Next-hop MTU (meaningful for "fragmentation needed", RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::MTU])
    }

    /// The data after the header (for errors: the quoted datagram).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// True if the checksum over the whole buffer is valid.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
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
    pub fn set_rest_of_header(&mut self, v: [u8; 4]) {
        self.buffer.as_mut()[field::REST].copy_from_slice(&v);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::ECHO_IDENT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        self.buffer.as_mut()[field::ECHO_SEQNO].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the next-hop MTU.
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        self.buffer.as_mut()[field::MTU].copy_from_slice(&v.to_be_bytes());
    }

    /// Recomputes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = !checksum::data(self.buffer.as_ref());
        self.set_checksum(c);
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
        let mut b = vec![8, 0, 0, 0, 0x12, 0x34, 0x00, 0x07, b'x'];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.msg_code(), p.echo_ident(), p.echo_seq_no()),
            (8, 0, 0x1234, 7)
        );
        assert_eq!(p.rest_of_header(), [0x12, 0x34, 0, 7]);
        assert_eq!(p.data(), b"x");
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.set_msg_type(msg_type::DST_UNREACHABLE);
        p.set_msg_code(unreachable::FRAG_NEEDED);
        p.set_rest_of_header([0; 4]);
        p.set_next_hop_mtu(1400);
        p.set_echo_ident(0);
        p.data_mut()[0] = 0;
        assert_eq!(p.next_hop_mtu(), 1400);
        assert!(!p.verify_checksum());
        p.set_echo_seq_no(9);
        assert_eq!(p.echo_seq_no(), 9);
        assert!(is_error(p.msg_type()) && !is_error(msg_type::ECHO_REQUEST));
        for n in 0..8 {
            assert_eq!(Packet::new_checked(&b[..n]).unwrap_err(), Error::Truncated);
        }
    }
}
