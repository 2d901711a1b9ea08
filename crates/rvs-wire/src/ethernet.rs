//! Ethernet II frames, optionally carrying one IEEE 802.1Q VLAN tag.
//!
//! # Invariants
//!
//! [`Frame::new_checked`] guarantees that the buffer holds the whole link
//! header: 14 bytes, or 18 bytes when the outer EtherType is
//! [`EtherType::VLAN`]. After that no accessor can panic. A frame with a second
//! tag (QinQ) is a tagged frame whose payload EtherType is itself a VLAN TPID;
//! this crate does not look further.
//!
//! The frame check sequence is not part of the buffer (NICs strip it).

use core::fmt;
use core::str::FromStr;

use crate::{Error, Result};

/// A 48-bit IEEE MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// The address in the first six bytes of `bytes`, or `None` if shorter.
    pub fn from_bytes(bytes: &[u8]) -> Option<EthernetAddress> {
        let b = bytes.get(..6)?;
        Some(EthernetAddress([b[0], b[1], b[2], b[3], b[4], b[5]]))
    }

    /// The six octets.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// True for the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True for group addresses (the I/G bit is set), broadcast included.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for individual (unicast) addresses.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// True for locally administered addresses (the U/L bit is set).
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl From<[u8; 6]> for EthernetAddress {
    fn from(b: [u8; 6]) -> Self {
        EthernetAddress(b)
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for EthernetAddress {
    type Err = Error;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-` separators), case-insensitive.
    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for o in out.iter_mut() {
            let p = parts.next().ok_or(Error::Malformed)?;
            if p.is_empty() || p.len() > 2 {
                return Err(Error::Malformed);
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| Error::Malformed)?;
        }
        if parts.next().is_some() {
            return Err(Error::Malformed);
        }
        Ok(EthernetAddress(out))
    }
}

/// An EtherType value. The associated constants name the ones this crate
/// knows; any other value is carried as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP.
    pub const ARP: EtherType = EtherType(0x0806);
    /// IEEE 802.1Q VLAN tag (TPID).
    pub const VLAN: EtherType = EtherType(0x8100);
    /// IEEE 802.1ad service tag (QinQ outer TPID).
    pub const QINQ: EtherType = EtherType(0x88a8);
    /// IPv6.
    pub const IPV6: EtherType = EtherType(0x86dd);
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04x}", self.0)
    }
}

mod field {
    use core::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const VLAN_TCI: Range<usize> = 14..16;
    pub const VLAN_ETHERTYPE: Range<usize> = 16..18;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of an Ethernet II header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = 18;

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking its length; accessors may panic if
    /// [`check_len`](Self::check_len) would fail.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let f = Frame::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Fails with [`Error::Truncated`] unless the whole link header (with the
    /// VLAN tag, if any) is in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.ethertype() == EtherType::VLAN && d.len() < VLAN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The destination address.
    pub fn dst_addr(&self) -> EthernetAddress {
        let d = &self.buffer.as_ref()[field::DESTINATION];
        EthernetAddress([d[0], d[1], d[2], d[3], d[4], d[5]])
    }

    /// The source address.
    pub fn src_addr(&self) -> EthernetAddress {
        let d = &self.buffer.as_ref()[field::SOURCE];
        EthernetAddress([d[0], d[1], d[2], d[3], d[4], d[5]])
    }

    /// The outer EtherType ([`EtherType::VLAN`] for a tagged frame).
    pub fn ethertype(&self) -> EtherType {
        let d = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType(u16::from_be_bytes([d[0], d[1]]))
    }

    /// True if the frame carries an 802.1Q tag.
    pub fn is_tagged(&self) -> bool {
        self.ethertype() == EtherType::VLAN
    }

    /// The tag control information (PCP, DEI, VID) if the frame is tagged.
    pub fn vlan_tci(&self) -> Option<u16> {
        if self.is_tagged() {
            let d = &self.buffer.as_ref()[field::VLAN_TCI];
            Some(u16::from_be_bytes([d[0], d[1]]))
        } else {
            None
        }
    }

    /// The 12-bit VLAN identifier if the frame is tagged.
    pub fn vlan_id(&self) -> Option<u16> {
        self.vlan_tci().map(|tci| tci & 0x0fff)
    }

    /// The EtherType of the payload: the one after the tag if tagged.
    pub fn payload_ethertype(&self) -> EtherType {
        if self.is_tagged() {
            let d = &self.buffer.as_ref()[field::VLAN_ETHERTYPE];
            EtherType(u16::from_be_bytes([d[0], d[1]]))
        } else {
            self.ethertype()
        }
    }

    /// Length of the link header: 14, or 18 if tagged.
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The bytes after the link header (which may include Ethernet padding
    /// after the network packet).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType of the payload: the one after the tag if tagged,
    /// else the outer one. (The tagging itself cannot be changed through
    /// this view, so the checked length stays valid.)
    pub fn set_payload_ethertype(&mut self, ethertype: EtherType) {
        let r = if self.is_tagged() {
            field::VLAN_ETHERTYPE
        } else {
            field::ETHERTYPE
        };
        self.buffer.as_mut()[r].copy_from_slice(&ethertype.0.to_be_bytes());
    }

    /// The bytes after the link header, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Frame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Writes an Ethernet header into the start of `buf`: untagged if `tci` is
/// `None`, else with an 802.1Q tag carrying `tci`. Returns the header length.
pub fn emit_header(
    buf: &mut [u8],
    src: EthernetAddress,
    dst: EthernetAddress,
    tci: Option<u16>,
    ethertype: EtherType,
) -> Result<usize> {
    let len = if tci.is_some() {
        VLAN_HEADER_LEN
    } else {
        HEADER_LEN
    };
    let h = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
    h[field::DESTINATION].copy_from_slice(&dst.0);
    h[field::SOURCE].copy_from_slice(&src.0);
    match tci {
        Some(tci) => {
            h[field::ETHERTYPE].copy_from_slice(&EtherType::VLAN.0.to_be_bytes());
            h[field::VLAN_TCI].copy_from_slice(&tci.to_be_bytes());
            h[field::VLAN_ETHERTYPE].copy_from_slice(&ethertype.0.to_be_bytes());
        }
        None => h[field::ETHERTYPE].copy_from_slice(&ethertype.0.to_be_bytes()),
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 16] = [
        0x02, 0, 0, 0, 0, 0x02, // dst
        0x02, 0, 0, 0, 0, 0x01, // src
        0x08, 0x00, // IPv4
        0x45, 0x00,
    ];

    const TAGGED: [u8; 20] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0, 0, 0, 0, 0x01, // src
        0x81, 0x00, // 802.1Q
        0x20, 0x64, // PCP 1, VID 100
        0x86, 0xdd, // IPv6
        0x60, 0x00,
    ];

    #[test]
    fn untagged() {
        let f = Frame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.src_addr(), EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert_eq!(f.payload_ethertype(), EtherType::IPV4);
        assert_eq!(f.vlan_id(), None);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn tagged() {
        let f = Frame::new_checked(&TAGGED[..]).unwrap();
        assert!(f.dst_addr().is_broadcast());
        assert_eq!(f.ethertype(), EtherType::VLAN);
        assert_eq!(f.vlan_tci(), Some(0x2064));
        assert_eq!(f.vlan_id(), Some(100));
        assert_eq!(f.payload_ethertype(), EtherType::IPV6);
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload(), &[0x60, 0x00]);
    }

    #[test]
    fn truncation() {
        for n in 0..14 {
            assert_eq!(
                Frame::new_checked(&UNTAGGED[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        for n in 0..18 {
            assert_eq!(
                Frame::new_checked(&TAGGED[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        assert!(Frame::new_checked(&TAGGED[..18]).is_ok());
    }

    #[test]
    fn setters() {
        let mut b = TAGGED;
        let mut f = Frame::new_checked(&mut b[..]).unwrap();
        f.set_dst_addr(EthernetAddress([1, 2, 3, 4, 5, 6]));
        f.set_src_addr(EthernetAddress([7, 8, 9, 10, 11, 12]));
        f.set_payload_ethertype(EtherType::IPV4);
        assert_eq!(f.dst_addr().0, [1, 2, 3, 4, 5, 6]);
        assert_eq!(f.src_addr().0, [7, 8, 9, 10, 11, 12]);
        assert_eq!(f.ethertype(), EtherType::VLAN);
        assert_eq!(f.payload_ethertype(), EtherType::IPV4);
    }

    #[test]
    fn emit() {
        let mut b = [0u8; 18];
        let n = emit_header(
            &mut b,
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            EthernetAddress::BROADCAST,
            Some(0x2064),
            EtherType::IPV6,
        )
        .unwrap();
        assert_eq!(n, 18);
        assert_eq!(b, TAGGED[..18]);
        assert_eq!(
            emit_header(
                &mut b[..13],
                EthernetAddress::default(),
                EthernetAddress::default(),
                None,
                EtherType::IPV4
            ),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn address_text() {
        let a: EthernetAddress = "02:AB:cd:00:01:ff".parse().unwrap();
        assert_eq!(a, EthernetAddress([0x02, 0xab, 0xcd, 0x00, 0x01, 0xff]));
        assert_eq!(a.to_string(), "02:ab:cd:00:01:ff");
        assert!(a.is_local() && a.is_unicast() && !a.is_multicast());
        for bad in [
            "",
            "02:ab:cd:00:01",
            "02:ab:cd:00:01:ff:00",
            "02:ab:cd:00:01:fff",
            "0g:00:00:00:00:00",
            "02::cd:00:01:ff",
        ] {
            assert!(bad.parse::<EthernetAddress>().is_err(), "{bad}");
        }
    }
}
