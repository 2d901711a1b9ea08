//! TCP headers (RFC 9293).
//!
//! # Invariants
//!
//! [`Packet::new_checked`] guarantees a data offset of at least 5 (else
//! [`Error::Malformed`]) and the whole header, options included, in the buffer
//! (else [`Error::Truncated`]). The buffer is the whole segment: wrap the IP
//! payload, not the rest of an Ethernet frame, or the payload and checksum
//! helpers will include the padding.

use core::net::IpAddr;

use crate::bytes::{be16, be32};
use crate::checksum;
use crate::ip_protocol;
use crate::{Error, Result};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// Byte offset of the source port.
pub const SRC_PORT_OFFSET: usize = field::SRC_PORT.start;
/// Byte offset of the destination port.
pub const DST_PORT_OFFSET: usize = field::DST_PORT.start;
/// Byte offset of the flags byte.
pub const FLAGS_OFFSET: usize = field::FLAGS;
/// Byte offset of the checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;
/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// Bits of the flags byte.
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
    /// ECN-Echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;
}

/// A read/write view of a TCP segment.
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

    /// Validates the data offset and the buffer length.
    pub fn check_len(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if d.len() < hl {
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQ_NUM])
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::ACK_NUM])
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flags byte (see [`flags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// FIN flag.
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    /// SYN flag.
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    /// RST flag.
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    /// ACK flag.
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    /// Window size.
    pub fn window_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::WIN_SIZE])
    }

    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::URGENT])
    }

    /// The options (empty if the data offset is 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The segment data.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// True if the checksum over the pseudo-header and the whole buffer is
    /// valid. False if `src` and `dst` differ in family or the segment is
    /// longer than a pseudo-header length can describe.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        let d = self.buffer.as_ref();
        let Ok(len) = u32::try_from(d.len()) else {
            return false;
        };
        match checksum::pseudo_header(src, dst, ip_protocol::TCP, len) {
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

    /// Sets the sequence number. Does not update the checksum.
    pub fn set_seq_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the acknowledgment number. Does not update the checksum.
    pub fn set_ack_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::ACK_NUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the flags byte. Does not update the checksum.
    pub fn set_flags(&mut self, f: u8) {
        self.buffer.as_mut()[field::FLAGS] = f;
    }

    /// Sets the window size. Does not update the checksum.
    pub fn set_window_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::WIN_SIZE].copy_from_slice(&v.to_be_bytes());
    }

    /// Stores a checksum.
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Recomputes the checksum over the pseudo-header and the whole buffer
    /// (O(segment); the data path uses incremental updates instead).
    /// Fails with [`Error::AddressFamilyMismatch`] if `src` and `dst` differ
    /// in family and [`Error::Unsupported`] for a buffer over 4 GiB.
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) -> Result<()> {
        self.set_checksum(0);
        let d = self.buffer.as_ref();
        let len = u32::try_from(d.len()).map_err(|_| Error::Unsupported)?;
        let ph = checksum::pseudo_header(src, dst, ip_protocol::TCP, len)
            .ok_or(Error::AddressFamilyMismatch)?;
        let c = !checksum::combine(&[ph, checksum::data(d)]);
        self.set_checksum(c);
        Ok(())
    }

    /// The segment data, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
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
    use core::net::Ipv4Addr;

    fn sample() -> Vec<u8> {
        vec![
            0x30, 0x39, 0x00, 0x50, // 12345 -> 80
            0, 0, 0, 1, 0, 0, 0, 2, // seq, ack
            0x60, 0x12, 0xff, 0xff, // doff 6, SYN|ACK, window
            0, 0, 0, 0, // checksum, urgent
            2, 4, 5, 0xb4, // MSS 1460
            b'h', b'i',
        ]
    }

    #[test]
    fn fields() {
        let b = sample();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (12345, 80));
        assert_eq!((p.seq_number(), p.ack_number()), (1, 2));
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), flags::SYN | flags::ACK);
        assert!(p.syn() && p.ack() && !p.fin() && !p.rst());
        assert_eq!(p.window_len(), 0xffff);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4]);
        assert_eq!(p.payload(), b"hi");
    }

    #[test]
    fn rejects() {
        let b = sample();
        for n in 0..24 {
            assert_eq!(
                Packet::new_checked(&b[..n]).unwrap_err(),
                Error::Truncated,
                "{n}"
            );
        }
        for doff in 0..5u8 {
            let mut x = b.clone();
            x[12] = doff << 4;
            assert_eq!(Packet::new_checked(&x[..]).unwrap_err(), Error::Malformed);
        }
    }

    #[test]
    fn checksum_roundtrip() {
        let mut b = sample();
        let s = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let d = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(&s, &d).unwrap();
        assert!(p.verify_checksum(&s, &d));
        assert!(!p.verify_checksum(&d, &d));
        assert!(!p.verify_checksum(&s, &IpAddr::V6(core::net::Ipv6Addr::LOCALHOST)));
        assert_eq!(
            p.fill_checksum(&s, &IpAddr::V6(core::net::Ipv6Addr::LOCALHOST)),
            Err(Error::AddressFamilyMismatch)
        );
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(3);
        p.set_ack_number(4);
        p.set_flags(flags::RST);
        p.set_window_len(5);
        p.payload_mut()[0] = b'H';
        assert_eq!(
            (
                p.src_port(),
                p.dst_port(),
                p.seq_number(),
                p.ack_number(),
                p.flags(),
                p.window_len()
            ),
            (1, 2, 3, 4, flags::RST, 5)
        );
        assert_eq!(p.payload(), b"Hi");
    }
}
