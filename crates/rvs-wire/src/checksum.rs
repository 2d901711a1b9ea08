//! The internet checksum (RFC 1071), its incremental update (RFC 1624) and
//! CRC32c (the SCTP checksum, RFC 9260 appendix A).
//!
//! # Conventions
//!
//! As in smoltcp, a *sum* is the folded one's-complement sum of 16-bit
//! big-endian words, **not** inverted; a *checksum* (the value stored in a
//! header) is the inverted sum. To fill a checksum field: zero it, then store
//! `!combine(&[pseudo_header, data(bytes)])`. Data with a valid checksum sums to
//! `0xffff`.
//!
//! The `update*` functions take a stored checksum and return the checksum
//! after some 16-bit words of the covered data changed, with RFC 1624
//! equation 3, `HC' = ~(~HC + ~m + m')`. Unlike equation 2 of RFC 1141 it
//! never produces `0xffff` from a checksum computed by a full recompute; the
//! result is exactly the value a full recompute would give (for any data that
//! is not all zero). The changed words must sit at even offsets from the start
//! of the checksummed data; every header field rewritten by this crate does.
//!
//! # UDP
//!
//! A UDP checksum of `0` means "no checksum" (IPv4 only; IPv6 requires one).
//! It must be left at `0` by rewrites, and a computed checksum of `0` is
//! transmitted as `0xffff` ([`udp_finish`]).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Folds a 64-bit one's-complement accumulator to 16 bits with end-around
/// carry.
#[inline]
pub const fn fold(sum: u64) -> u16 {
    let mut s = sum;
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[inline]
const fn add64(acc: u64, w: u64) -> u64 {
    let (s, carry) = acc.overflowing_add(w);
    // On overflow `s <= u64::MAX - 1`, so adding the carry back cannot
    // overflow again.
    s + carry as u64
}

/// The one's-complement sum of `bytes` taken as big-endian 16-bit words, an
/// odd trailing byte padded with a zero (RFC 1071). Not inverted.
///
/// Sums 64-bit words with end-around carry, which is congruent to summing
/// 16-bit words because `2^64 - 1` is a multiple of `2^16 - 1`.
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc = add64(acc, w);
    }
    // The tail (0..=7 bytes) without a copy: 4, 2, then 1 byte, each placed
    // at its big-endian position within a 64-bit word.
    let mut rem = chunks.remainder();
    let mut shift = 64;
    if rem.len() >= 4 {
        shift -= 32;
        acc = add64(
            acc,
            u64::from(u32::from_be_bytes([rem[0], rem[1], rem[2], rem[3]])) << shift,
        );
        rem = &rem[4..];
    }
    if rem.len() >= 2 {
        shift -= 16;
        acc = add64(
            acc,
            u64::from(u16::from_be_bytes([rem[0], rem[1]])) << shift,
        );
        rem = &rem[2..];
    }
    if let Some(&b) = rem.first() {
        shift -= 8;
        acc = add64(acc, u64::from(b) << shift);
    }
    fold(acc)
}

/// The one's-complement sum of several partial sums.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().fold(0u64, |acc, &s| acc + u64::from(s)))
}

#[inline]
fn sum_v4(a: &Ipv4Addr) -> u64 {
    let o = a.octets();
    u64::from(u16::from_be_bytes([o[0], o[1]])) + u64::from(u16::from_be_bytes([o[2], o[3]]))
}

#[inline]
fn sum_v6(a: &Ipv6Addr) -> u64 {
    a.segments().iter().map(|&w| u64::from(w)).sum()
}

#[inline]
fn sum_addr(a: &IpAddr) -> u64 {
    match a {
        IpAddr::V4(a) => sum_v4(a),
        IpAddr::V6(a) => sum_v6(a),
    }
}

/// Sum of the *complements* of the words of `a` (its one's-complement
/// negation, word by word).
#[inline]
fn neg_sum_addr(a: &IpAddr) -> u64 {
    match a {
        IpAddr::V4(_) => 2 * 0xffff - sum_addr(a),
        IpAddr::V6(_) => 8 * 0xffff - sum_addr(a),
    }
}

#[inline]
fn len_words(length: u32) -> u64 {
    u64::from(length >> 16) + u64::from(length & 0xffff)
}

/// The sum of the IPv4 pseudo-header (RFC 793 / RFC 768): source, destination,
/// protocol and the transport length.
pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: u8, length: u32) -> u16 {
    fold(sum_v4(src) + sum_v4(dst) + u64::from(protocol) + len_words(length))
}

/// The sum of the IPv6 pseudo-header (RFC 8200 §8.1): source, destination,
/// upper-layer packet length and next header.
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, length: u32) -> u16 {
    fold(sum_v6(src) + sum_v6(dst) + u64::from(next_header) + len_words(length))
}

/// The sum of the pseudo-header of either family; `None` if `src` and `dst`
/// differ in family.
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, protocol: u8, length: u32) -> Option<u16> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(pseudo_header_v4(s, d, protocol, length)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(pseudo_header_v6(s, d, protocol, length)),
        _ => None,
    }
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word changed from `old` to
/// `new`.
#[inline]
pub const fn update16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(!csum as u64 + !old as u64 + new as u64)
}

/// The checksum after an aligned 32-bit field changed from `old` to `new`.
#[inline]
pub const fn update32(csum: u16, old: u32, new: u32) -> u16 {
    !fold(
        !csum as u64
            + !(old >> 16) as u16 as u64
            + !(old as u16) as u64
            + (new >> 16) as u64
            + (new & 0xffff) as u64,
    )
}

/// The checksum after an address changed from `old` to `new` (two words for
/// IPv4, eight for IPv6), in the header itself or in a pseudo-header.
///
/// If the families differ, the old words are removed and the new ones added,
/// which is what the sum requires if the covered data really changed so.
#[inline]
pub fn update_addr(csum: u16, old: IpAddr, new: IpAddr) -> u16 {
    !fold(u64::from(!csum) + neg_sum_addr(&old) + sum_addr(&new))
}

/// The checksum after the bytes `old` of a field were replaced by `new`.
///
/// The field must start at an even offset of the checksummed data. An odd
/// length is allowed: the missing low byte of the last word is the same
/// before and after, so padding both with zero gives the same difference.
/// `old` and `new` may differ in length (the field grew or shrank in place).
#[inline]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    !fold(u64::from(!csum) + u64::from(!data(old)) + u64::from(data(new)))
}

/// Adds a precomputed difference (from [`Delta`]) to a checksum.
#[inline]
pub fn apply(csum: u16, delta: Delta) -> u16 {
    !fold(u64::from(!csum) + delta.0)
}

/// An accumulated change of checksummed words, to apply to several
/// checksum fields at once (e.g. an address change affects both the IPv4
/// header checksum and the TCP checksum through its pseudo-header).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delta(u64);

impl Delta {
    /// No change.
    pub const ZERO: Delta = Delta(0);

    /// Records a 16-bit word changing from `old` to `new`.
    #[inline]
    #[must_use]
    pub const fn word(self, old: u16, new: u16) -> Delta {
        Delta(self.0 + !old as u64 + new as u64)
    }

    /// Records an address changing from `old` to `new`.
    #[inline]
    #[must_use]
    pub fn addr(self, old: IpAddr, new: IpAddr) -> Delta {
        Delta(self.0 + neg_sum_addr(&old) + sum_addr(&new))
    }

    /// Combines two deltas.
    #[inline]
    #[must_use]
    pub const fn and(self, other: Delta) -> Delta {
        Delta(self.0 + other.0)
    }
}

/// Maps a computed UDP checksum of `0` to `0xffff` (RFC 768: an all-zero
/// transmitted checksum means "no checksum").
#[inline]
pub const fn udp_finish(csum: u16) -> u16 {
    if csum == 0 { 0xffff } else { csum }
}

const CRC32C_POLY_REFLECTED: u32 = 0x82f6_3b78;

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ CRC32C_POLY_REFLECTED
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Feeds `data` into a running CRC32c register (pre-inverted convention:
/// start with `!0`, invert at the end).
pub fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// The CRC32c (Castagnoli) of `data`. SCTP stores it little-endian.
pub fn crc32c(data: &[u8]) -> u32 {
    !crc32c_update(!0, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        // Odd length: pad with zero.
        assert_eq!(data(&[0x01]), 0x0100);
        assert_eq!(data(&[]), 0);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
    }

    #[test]
    fn data_matches_wordwise_sum_for_many_lengths() {
        let bytes: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(151) ^ 0x5a) as u8)
            .collect();
        for n in 0..bytes.len() {
            let s = &bytes[..n];
            let mut acc: u32 = 0;
            for w in s.chunks(2) {
                let v = if w.len() == 2 {
                    u16::from_be_bytes([w[0], w[1]])
                } else {
                    u16::from(w[0]) << 8
                };
                acc += u32::from(v);
                acc = (acc & 0xffff) + (acc >> 16);
            }
            assert_eq!(u32::from(data(s)), acc, "len {n}");
        }
    }

    #[test]
    fn update16_rfc1624_example() {
        // RFC 1624 §4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives 0x0000.
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn crc32c_vectors() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
    }

    #[test]
    fn udp_zero_is_ffff() {
        assert_eq!(udp_finish(0), 0xffff);
        assert_eq!(udp_finish(0x1234), 0x1234);
    }
}
