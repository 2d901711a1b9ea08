//! The SCTP common header (RFC 9260 §3.1): ports, verification tag and the
//! CRC32c checksum. Chunks are not interpreted.
//!
//! # Invariants
//!
//! [`Packet::new_checked`] guarantees the 12-byte common header. The buffer is
//! the whole SCTP packet (the checksum covers all of it).

use crate::bytes::{be16, be32};
use crate::checksum::crc32c_update;
use crate::{Error, Result};

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const VERIFICATION_TAG: Range<usize> = 4..8;
    pub const CHECKSUM: Range<usize> = 8..12;
}

/// Length of the common header.
pub const HEADER_LEN: usize = 12;

/// A read/write view of an SCTP packet.
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

    /// Fails with [`Error::Truncated`] if the common header is incomplete.
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

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// Verification tag.
    pub fn verification_tag(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::VERIFICATION_TAG])
    }

    /// The CRC32c as stored (it is little-endian on the wire).
    pub fn checksum(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::CHECKSUM];
        u32::from_le_bytes([d[0], d[1], d[2], d[3]])
    }

    /// The CRC32c of the packet with the checksum field taken as zero.
    pub fn compute_checksum(&self) -> u32 {
        let d = self.buffer.as_ref();
        let mut c = crc32c_update(!0, &d[..field::CHECKSUM.start]);
        c = crc32c_update(c, &[0; 4]);
        c = crc32c_update(c, &d[field::CHECKSUM.end..]);
        !c
    }

    /// True if the stored checksum is right.
    pub fn verify_checksum(&self) -> bool {
        self.checksum() == self.compute_checksum()
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

    /// Recomputes and stores the CRC32c (O(packet)).
    pub fn fill_checksum(&mut self) {
        let c = self.compute_checksum();
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&c.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_crc() {
        let mut b = vec![
            0x0b, 0x59, 0x0b, 0x59, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 0, 0, 4,
        ];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(
            (p.src_port(), p.dst_port(), p.verification_tag()),
            (2905, 2905, 0)
        );
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.set_src_port(1);
        assert!(!p.verify_checksum());
        p.set_dst_port(2);
        p.fill_checksum();
        assert!(p.verify_checksum());
        for n in 0..12 {
            assert_eq!(Packet::new_checked(&b[..n]).unwrap_err(), Error::Truncated);
        }
    }
}
