//! (2) Incremental checksum updates agree with a full recompute.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::{naive_pseudo, naive_sum};
use proptest::prelude::*;
use rvs_wire::checksum::{self, Delta};

/// Random data that never sums to zero (it starts with a non-zero word, as
/// every real header does), plus an even offset for a field of `field` bytes.
fn data_and_offset(field: usize) -> impl Strategy<Value = (Vec<u8>, usize)> {
    prop::collection::vec(any::<u8>(), field..600).prop_flat_map(move |mut v| {
        v.splice(0..0, [0x45, 0x00]);
        let words = (v.len() - field) / 2;
        (Just(v), (1..=words).prop_map(|w| w * 2))
    })
}

fn full(v: &[u8]) -> u16 {
    !naive_sum(v)
}

proptest! {
    #[test]
    fn data_matches_naive(v in prop::collection::vec(any::<u8>(), 0..2000)) {
        prop_assert_eq!(checksum::data(&v), naive_sum(&v));
    }

    #[test]
    fn combine_matches_naive(a in prop::collection::vec(any::<u8>(), 0..100), b in prop::collection::vec(any::<u8>(), 0..100)) {
        // `a` padded to even length so the concatenation keeps b's alignment.
        let mut a = a;
        if a.len() % 2 == 1 { a.push(0); }
        let mut ab = a.clone();
        ab.extend_from_slice(&b);
        prop_assert_eq!(checksum::combine(&[checksum::data(&a), checksum::data(&b)]), naive_sum(&ab));
    }

    #[test]
    fn pseudo_headers_match_naive(s4 in any::<[u8; 4]>(), d4 in any::<[u8; 4]>(), s6 in any::<[u8; 16]>(), d6 in any::<[u8; 16]>(), proto in any::<u8>(), len in any::<u16>()) {
        let (s, d) = (IpAddr::V4(Ipv4Addr::from(s4)), IpAddr::V4(Ipv4Addr::from(d4)));
        prop_assert_eq!(checksum::pseudo_header(&s, &d, proto, u32::from(len)), Some(naive_sum(&naive_pseudo(&s, &d, proto, usize::from(len)))));
        let (s, d) = (IpAddr::V6(Ipv6Addr::from(s6)), IpAddr::V6(Ipv6Addr::from(d6)));
        prop_assert_eq!(checksum::pseudo_header(&s, &d, proto, u32::from(len)), Some(naive_sum(&naive_pseudo(&s, &d, proto, usize::from(len)))));
        prop_assert_eq!(checksum::pseudo_header(&IpAddr::V4(Ipv4Addr::from(s4)), &d, proto, 0), None);
    }

    #[test]
    fn update16_matches_recompute((mut v, off) in data_and_offset(2), new in any::<u16>()) {
        let c = full(&v);
        let old = u16::from_be_bytes([v[off], v[off + 1]]);
        v[off..off + 2].copy_from_slice(&new.to_be_bytes());
        prop_assert_eq!(checksum::update16(c, old, new), full(&v));
        prop_assert_eq!(checksum::apply(c, Delta::ZERO.word(old, new)), full(&v));
    }

    #[test]
    fn update32_matches_recompute((mut v, off) in data_and_offset(4), new in any::<u32>()) {
        let c = full(&v);
        let old_b: [u8; 4] = v[off..off + 4].try_into().unwrap();
        let old = u32::from_be_bytes(old_b);
        v[off..off + 4].copy_from_slice(&new.to_be_bytes());
        let want = full(&v);
        prop_assert_eq!(checksum::update32(c, old, new), want);
        let (o, n) = (IpAddr::V4(Ipv4Addr::from(old_b)), IpAddr::V4(Ipv4Addr::from(new)));
        prop_assert_eq!(checksum::update_addr(c, o, n), want);
        prop_assert_eq!(checksum::apply(c, Delta::ZERO.addr(o, n)), want);
        prop_assert_eq!(checksum::update_bytes(c, &old_b, &new.to_be_bytes()), want);
    }

    #[test]
    fn update128_matches_recompute((mut v, off) in data_and_offset(16), new in any::<[u8; 16]>()) {
        let c = full(&v);
        let old_b: [u8; 16] = v[off..off + 16].try_into().unwrap();
        v[off..off + 16].copy_from_slice(&new);
        let want = full(&v);
        let (o, n) = (IpAddr::V6(Ipv6Addr::from(old_b)), IpAddr::V6(Ipv6Addr::from(new)));
        prop_assert_eq!(checksum::update_addr(c, o, n), want);
        prop_assert_eq!(checksum::apply(c, Delta::ZERO.addr(o, n)), want);
        prop_assert_eq!(checksum::update_bytes(c, &old_b, &new), want);
    }

    /// Several changes folded into one delta, including an odd-length field.
    #[test]
    fn combined_and_odd_updates((mut v, off) in data_and_offset(7), new in any::<[u8; 7]>(), w in any::<u16>()) {
        let c = full(&v);
        let old: Vec<u8> = v[off..off + 7].to_vec();
        v[off..off + 7].copy_from_slice(&new);
        prop_assert_eq!(checksum::update_bytes(c, &old, &new), full(&v));
        // And a 16-bit change at the start on top.
        let c2 = full(&v);
        let old0 = u16::from_be_bytes([v[0], v[1]]);
        let w = w | 0x0100; // keep the data non-zero
        v[0..2].copy_from_slice(&w.to_be_bytes());
        prop_assert_eq!(checksum::update16(c2, old0, w), full(&v));
    }

    /// UDP: a checksum that updates to 0 is sent as 0xffff, which verifies.
    #[test]
    fn udp_zero_rule(c in any::<u16>()) {
        let f = checksum::udp_finish(c);
        prop_assert_ne!(f, 0);
        prop_assert!(f == c || (c == 0 && f == 0xffff));
    }
}
