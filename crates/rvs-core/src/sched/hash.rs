//! Hash helpers shared by the hashing schedulers (`dh`, `sh`, `mh`, `lblc`,
//! `lblcr`), reference §4.13.
//!
//! * [`hash_32`] is the kernel's generic `hash_32()` from `include/linux/hash.h`:
//!   multiply by `GOLDEN_RATIO_32` (wrapping, 32 bit) and keep the top `bits`.
//! * [`addr_fold`] is the `ntohl(addr_fold)` that every IPVS hashing scheduler
//!   feeds to it: an IPv4 address as a host-order integer, an IPv6 address
//!   folded to 32 bits by XOR-ing its four words.
//!
//! The kernel computes the IPv6 fold on the raw network-order words and
//! converts the result with `ntohl` afterwards. Byte swapping distributes over
//! XOR (`swap(a ^ b) == swap(a) ^ swap(b)`), so that equals the XOR of the four
//! words each read big-endian, which is what we compute — on any host.
//!
//! Also here: [`resolve`], which turns a table slot (a [`DestId`] plus the
//! index it had when the table was built) back into an index of the current
//! list.

use core::net::IpAddr;

use crate::dest::{Dest, DestId};

/// `GOLDEN_RATIO_32` of `include/linux/hash.h`.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// The kernel's `hash_32(val, bits)`: `(val * GOLDEN_RATIO_32) >> (32 - bits)`.
///
/// `bits` is 1..=32 in every kernel use; 0 yields 0 (the C shift by 32 would be
/// undefined) and values above 32 are treated as 32.
pub fn hash_32(val: u32, bits: u32) -> u32 {
    let h = val.wrapping_mul(GOLDEN_RATIO_32);
    match bits {
        0 => 0,
        1..=31 => h >> (32 - bits),
        _ => h,
    }
}

/// `ntohl(addr_fold)` as the IPVS schedulers compute it.
///
/// IPv4: the address as a host-order integer (`u32::from(v4)`, i.e. `ntohl(ip)`).
/// IPv6: `ntohl(w0 ^ w1 ^ w2 ^ w3)` over the four network-order 32-bit words,
/// which equals the XOR of the four words each read as a big-endian integer.
pub fn addr_fold(addr: &IpAddr) -> u32 {
    match addr {
        IpAddr::V4(v4) => u32::from(*v4),
        IpAddr::V6(v6) => v6
            .octets()
            .chunks_exact(4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .fold(0, |acc, w| acc ^ w),
    }
}

/// Where dest `id` is in `dests` now. `hint` is where it was when the caller
/// recorded it; it is checked first, so lookups stay O(1) while the list is
/// unchanged, and fall back to a scan otherwise. `None` if it is gone.
pub(crate) fn resolve(dests: &[Dest], id: DestId, hint: usize) -> Option<usize> {
    match dests.get(hint) {
        Some(d) if d.id == id => Some(hint),
        _ => dests.iter().position(|d| d.id == id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn hash_32_matches_hand_computed_values() {
        // 1 * 0x61C88647 = 0x61C88647; top 8 bits 0x61.
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(1, 32), 0x61C8_8647);
        assert_eq!(hash_32(0, 10), 0);
        // 2 * 0x61C88647 = 0xC3910C8E; top 10 bits = 0x30E (782).
        assert_eq!(hash_32(2, 10), 0xC391_0C8E >> 22);
        assert_eq!(hash_32(2, 10), 782);
        // 3 * 0x61C88647 = 0x1_2559_92D5 -> wraps to 0x255992D5; top 8 bits 0x25.
        assert_eq!(hash_32(3, 8), 0x25);
        // 0xFFFFFFFF * g = -g mod 2^32 = 0x9E3779B9; top 8 bits 0x9E.
        assert_eq!(hash_32(u32::MAX, 8), 0x9E);
        assert_eq!(hash_32(7, 0), 0);
    }

    #[test]
    fn addr_fold_v4_is_host_order() {
        let a = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2));
        assert_eq!(addr_fold(&a), 0xC0A8_0102);
    }

    #[test]
    fn addr_fold_v6_xors_words() {
        let a: Ipv6Addr = "2001:db8:0:1:0:0:0:ff".parse().unwrap();
        // Words (big-endian): 0x20010db8, 0x00000001, 0x00000000, 0x000000ff.
        let expect = 0x2001_0db8 ^ 0x0000_0001 ^ 0x0000_00ff;
        assert_eq!(addr_fold(&IpAddr::V6(a)), expect);
        // Same as the kernel's recipe: XOR the words as stored (read in native
        // order from the network bytes), then ntohl.
        let o = a.octets();
        let raw = o
            .chunks_exact(4)
            .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
            .fold(0, |acc, w| acc ^ w);
        assert_eq!(addr_fold(&IpAddr::V6(a)), u32::from_be(raw));
    }
}

#[cfg(test)]
#[path = "tests/support.rs"]
pub(crate) mod support;
