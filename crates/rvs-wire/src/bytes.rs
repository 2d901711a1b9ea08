//! Bounds-checked big-endian accessors used where an offset comes from a
//! caller (a [`FlowMeta`](crate::FlowMeta)) rather than from a view whose
//! length was already checked.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{Error, Result};

#[inline]
pub(crate) fn get(buf: &[u8], off: usize, len: usize) -> Result<&[u8]> {
    let end = off.checked_add(len).ok_or(Error::Truncated)?;
    buf.get(off..end).ok_or(Error::Truncated)
}

#[inline]
pub(crate) fn get_mut(buf: &mut [u8], off: usize, len: usize) -> Result<&mut [u8]> {
    let end = off.checked_add(len).ok_or(Error::Truncated)?;
    buf.get_mut(off..end).ok_or(Error::Truncated)
}

#[inline]
pub(crate) fn u8_at(buf: &[u8], off: usize) -> Result<u8> {
    buf.get(off).copied().ok_or(Error::Truncated)
}

#[inline]
pub(crate) fn u16_at(buf: &[u8], off: usize) -> Result<u16> {
    let b = get(buf, off, 2)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

#[inline]
pub(crate) fn put_u8(buf: &mut [u8], off: usize, v: u8) -> Result<()> {
    *buf.get_mut(off).ok_or(Error::Truncated)? = v;
    Ok(())
}

#[inline]
pub(crate) fn put_u16(buf: &mut [u8], off: usize, v: u16) -> Result<()> {
    get_mut(buf, off, 2)?.copy_from_slice(&v.to_be_bytes());
    Ok(())
}

/// Reads a big-endian `u16` from the first two bytes of `b` (caller checked).
#[inline]
pub(crate) fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Reads a big-endian `u32` from the first four bytes of `b` (caller checked).
#[inline]
pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// An IPv4 address from the first four bytes of `b` (caller checked).
#[inline]
pub(crate) fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// An IPv6 address from the first sixteen bytes of `b` (caller checked).
#[inline]
pub(crate) fn ipv6(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

/// Reads an address of `v6`'s family at `off`.
#[inline]
pub(crate) fn addr_at(buf: &[u8], off: usize, v6: bool) -> Result<IpAddr> {
    Ok(if v6 {
        IpAddr::V6(ipv6(get(buf, off, 16)?))
    } else {
        IpAddr::V4(ipv4(get(buf, off, 4)?))
    })
}

/// Writes `addr` at `off`.
#[inline]
pub(crate) fn put_addr(buf: &mut [u8], off: usize, addr: IpAddr) -> Result<()> {
    match addr {
        IpAddr::V4(a) => get_mut(buf, off, 4)?.copy_from_slice(&a.octets()),
        IpAddr::V6(a) => get_mut(buf, off, 16)?.copy_from_slice(&a.octets()),
    }
    Ok(())
}
