//! ARP packets (RFC 826).
//!
//! # Invariants
//!
//! [`Packet::new_checked`] guarantees that the fixed 8-byte header and the four
//! addresses, whose lengths the header declares, are in the buffer. After that
//! no accessor can panic. [`Repr`] handles the only combination in use on
//! Ethernet: hardware type 1 (6-byte MACs) and protocol IPv4 (4-byte
//! addresses).

use core::net::Ipv4Addr;

use crate::bytes::{be16, ipv4};
use crate::ethernet::{EtherType, EthernetAddress};
use crate::{Error, Result};

/// Hardware type of Ethernet.
pub const HARDWARE_ETHERNET: u16 = 1;

/// ARP operation codes.
pub mod operation {
    /// Request.
    pub const REQUEST: u16 = 1;
    /// Reply.
    pub const REPLY: u16 = 2;
}

mod field {
    use core::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;

    pub const fn sha(hlen: u8, _plen: u8) -> Range<usize> {
        8..8 + hlen as usize
    }
    pub const fn spa(hlen: u8, plen: u8) -> Range<usize> {
        let s = sha(hlen, plen).end;
        s..s + plen as usize
    }
    pub const fn tha(hlen: u8, plen: u8) -> Range<usize> {
        let s = spa(hlen, plen).end;
        s..s + hlen as usize
    }
    pub const fn tpa(hlen: u8, plen: u8) -> Range<usize> {
        let s = tha(hlen, plen).end;
        s..s + plen as usize
    }
}

/// Length of the fixed part of the header.
pub const FIXED_HEADER_LEN: usize = 8;
/// Length of an Ethernet/IPv4 ARP packet.
pub const ETHERNET_IPV4_LEN: usize = 28;

/// A read/write view of an ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Fails with [`Error::Truncated`] unless the fixed header and the four
    /// declared addresses are in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < FIXED_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if d.len() < field::tpa(self.hardware_len(), self.protocol_len()).end {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::HTYPE])
    }

    /// Protocol type (an EtherType; 0x0800 for IPv4).
    pub fn protocol_type(&self) -> EtherType {
        EtherType(be16(&self.buffer.as_ref()[field::PTYPE]))
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation (see [`operation`]).
    pub fn operation(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::OPER])
    }

    /// Sender hardware address.
    pub fn sender_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::sha(self.hardware_len(), self.protocol_len())]
    }

    /// Sender protocol address.
    pub fn sender_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::spa(self.hardware_len(), self.protocol_len())]
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::tha(self.hardware_len(), self.protocol_len())]
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::tpa(self.hardware_len(), self.protocol_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the operation.
    pub fn set_operation(&mut self, op: u16) {
        self.buffer.as_mut()[field::OPER].copy_from_slice(&op.to_be_bytes());
    }

    /// Sender hardware address, mutable.
    pub fn sender_hardware_addr_mut(&mut self) -> &mut [u8] {
        let r = field::sha(self.hardware_len(), self.protocol_len());
        &mut self.buffer.as_mut()[r]
    }

    /// Sender protocol address, mutable.
    pub fn sender_protocol_addr_mut(&mut self) -> &mut [u8] {
        let r = field::spa(self.hardware_len(), self.protocol_len());
        &mut self.buffer.as_mut()[r]
    }

    /// Target hardware address, mutable.
    pub fn target_hardware_addr_mut(&mut self) -> &mut [u8] {
        let r = field::tha(self.hardware_len(), self.protocol_len());
        &mut self.buffer.as_mut()[r]
    }

    /// Target protocol address, mutable.
    pub fn target_protocol_addr_mut(&mut self) -> &mut [u8] {
        let r = field::tpa(self.hardware_len(), self.protocol_len());
        &mut self.buffer.as_mut()[r]
    }
}

/// A decoded Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Operation (see [`operation`]).
    pub operation: u16,
    /// Sender MAC.
    pub sender_hardware_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub sender_protocol_addr: Ipv4Addr,
    /// Target MAC.
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Decodes a checked packet; [`Error::Unsupported`] unless it is
    /// Ethernet/IPv4.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        if p.hardware_type() != HARDWARE_ETHERNET
            || p.protocol_type() != EtherType::IPV4
            || p.hardware_len() != 6
            || p.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        let sha = EthernetAddress::from_bytes(p.sender_hardware_addr()).ok_or(Error::Truncated)?;
        let tha = EthernetAddress::from_bytes(p.target_hardware_addr()).ok_or(Error::Truncated)?;
        Ok(Repr {
            operation: p.operation(),
            sender_hardware_addr: sha,
            sender_protocol_addr: ipv4(p.sender_protocol_addr()),
            target_hardware_addr: tha,
            target_protocol_addr: ipv4(p.target_protocol_addr()),
        })
    }

    /// Length of the emitted packet (28).
    pub const fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Writes the packet into the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let b = buf
            .get_mut(..ETHERNET_IPV4_LEN)
            .ok_or(Error::BufferTooSmall)?;
        b[field::HTYPE].copy_from_slice(&HARDWARE_ETHERNET.to_be_bytes());
        b[field::PTYPE].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        b[field::OPER].copy_from_slice(&self.operation.to_be_bytes());
        b[field::sha(6, 4)].copy_from_slice(&self.sender_hardware_addr.0);
        b[field::spa(6, 4)].copy_from_slice(&self.sender_protocol_addr.octets());
        b[field::tha(6, 4)].copy_from_slice(&self.target_hardware_addr.0);
        b[field::tpa(6, 4)].copy_from_slice(&self.target_protocol_addr.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, //
        0x02, 0, 0, 0, 0, 0x01, 10, 0, 0, 1, //
        0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ];

    #[test]
    fn parse_and_emit() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.operation, operation::REQUEST);
        assert_eq!(r.sender_hardware_addr, EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(r.sender_protocol_addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.target_hardware_addr, EthernetAddress([0; 6]));
        assert_eq!(r.target_protocol_addr, Ipv4Addr::new(10, 0, 0, 2));
        let mut out = [0u8; 28];
        r.emit(&mut out).unwrap();
        assert_eq!(out, REQUEST);
        assert_eq!(r.emit(&mut out[..27]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn truncation_and_odd_lengths() {
        for n in 0..28 {
            assert_eq!(
                Packet::new_checked(&REQUEST[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        // Declared address lengths larger than the buffer.
        let mut b = REQUEST;
        b[4] = 255;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        // Consistent but unsupported lengths.
        let mut b = REQUEST;
        b[4] = 4;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.sender_hardware_addr().len(), 4);
        assert_eq!(Repr::parse(&p).unwrap_err(), Error::Unsupported);
    }

    #[test]
    fn setters() {
        let mut b = REQUEST;
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_operation(operation::REPLY);
        p.target_hardware_addr_mut()
            .copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        p.sender_protocol_addr_mut().copy_from_slice(&[10, 0, 0, 9]);
        p.sender_hardware_addr_mut()[0] = 0x04;
        p.target_protocol_addr_mut()[3] = 7;
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.operation, operation::REPLY);
        assert_eq!(r.target_hardware_addr.0, [1, 2, 3, 4, 5, 6]);
        assert_eq!(r.sender_protocol_addr, Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(r.sender_hardware_addr.0[0], 4);
        assert_eq!(r.target_protocol_addr, Ipv4Addr::new(10, 0, 0, 7));
    }
}
