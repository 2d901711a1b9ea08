//! `dh` — destination hashing (`ip_vs_dh.c`, reference §4.12).
//!
//! A 256-bucket table (`CONFIG_IP_VS_DH_TAB_BITS` = 8) is filled by cycling
//! through the dest list, one bucket per dest, ignoring weights: bucket `i`
//! holds dest `i mod n` in list order. It is rebuilt when a dest is added or
//! deleted, not when one is edited. A packet goes to the dest of bucket
//! `hash_32(addr_fold(daddr), 8)`; if that dest is unavailable, has weight 0
//! or is OVERLOAD the packet is not scheduled — there is no fallback.

use super::hash::{addr_fold, hash_32, resolve};
use super::{DestChange, SchedError, SchedInput, Scheduler};
use crate::dest::{Dest, DestId};

/// Table size in bits.
const TAB_BITS: u32 = 8;
/// Number of buckets.
const TAB_SIZE: usize = 1 << TAB_BITS;

/// Destination-hashing scheduler.
#[derive(Debug, Clone, Default)]
pub struct DestHash {
    /// Bucket → (dest, its index at build time); empty when there are no dests.
    buckets: Vec<(DestId, usize)>,
}

impl DestHash {
    fn reassign(&mut self, dests: &[Dest]) {
        self.buckets.clear();
        if !dests.is_empty() {
            self.buckets
                .extend((0..TAB_SIZE).map(|b| (dests[b % dests.len()].id, b % dests.len())));
        }
    }
}

impl Scheduler for DestHash {
    fn name(&self) -> &'static str {
        "dh"
    }

    fn update(&mut self, dests: &[Dest], change: DestChange) -> Result<(), SchedError> {
        match change {
            DestChange::Init | DestChange::Added(_) | DestChange::Removed { .. } => {
                self.reassign(dests)
            }
            DestChange::Edited(_) => {}
        }
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let bucket = hash_32(addr_fold(&input.daddr), TAB_BITS) as usize;
        let &(id, hint) = self.buckets.get(bucket)?;
        let i = resolve(dests, id, hint)?;
        let d = &dests[i];
        (d.available && d.is_schedulable()).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::support::*;
    use super::*;
    use crate::time::Instant;
    use core::net::IpAddr;

    fn dh(dests: &[Dest]) -> DestHash {
        let mut s = DestHash::default();
        init(&mut s, dests);
        s
    }

    fn bucket_of(daddr: IpAddr) -> usize {
        hash_32(addr_fold(&daddr), 8) as usize
    }

    #[test]
    fn bucket_i_holds_dest_i_mod_n_ignoring_weights() {
        let dests = list(&[1, 100, 3]);
        let mut s = dh(&dests);
        for k in 0..500 {
            let daddr = client(k);
            let want = dests[bucket_of(daddr) % 3].id.0;
            assert_eq!(pick(&mut s, &dests, &to(daddr, Instant::ZERO)), Some(want));
        }
    }

    #[test]
    fn known_bucket() {
        // 198.51.100.1 = 0xC6336401: bucket = top 8 bits of its product with
        // GOLDEN_RATIO_32.
        let daddr: IpAddr = "198.51.100.1".parse().unwrap();
        // 0xC6336401 * 0x61C88647 mod 2^32 = 0x60614247.
        let b = 96;
        assert_eq!(bucket_of(daddr), b);
        let dests = list(&[1; 7]);
        let mut s = dh(&dests);
        assert_eq!(
            pick(&mut s, &dests, &to(daddr, Instant::ZERO)),
            Some(dests[b % 7].id.0)
        );
    }

    #[test]
    fn same_destination_same_server_whatever_the_source() {
        let dests = list(&[1, 1, 1, 1, 1]);
        let mut s = dh(&dests);
        let daddr: IpAddr = "203.0.113.9".parse().unwrap();
        let first = pick(&mut s, &dests, &to(daddr, Instant::ZERO));
        for k in 0..50 {
            let inp = SchedInput {
                saddr: client(k),
                sport: k as u16,
                ..to(daddr, Instant::ZERO)
            };
            assert_eq!(pick(&mut s, &dests, &inp), first);
        }
    }

    #[test]
    fn unusable_bucket_dest_fails_without_fallback() {
        let mut dests = list(&[1, 1]);
        let mut s = dh(&dests);
        let daddr = (0..)
            .map(client)
            .find(|&a| bucket_of(a).is_multiple_of(2))
            .unwrap();
        let inp = to(daddr, Instant::ZERO);
        assert_eq!(pick(&mut s, &dests, &inp), Some(1));
        dests[0].weight = 0;
        assert_eq!(pick(&mut s, &dests, &inp), None);
        dests[0].weight = 1;
        dests[0].overload = true;
        assert_eq!(pick(&mut s, &dests, &inp), None);
        dests[0].overload = false;
        dests[0].available = false;
        assert_eq!(pick(&mut s, &dests, &inp), None);
    }

    #[test]
    fn rebuilt_on_add_and_remove() {
        let mut s = DestHash::default();
        let mut dests = Vec::new();
        init(&mut s, &dests);
        assert_eq!(pick(&mut s, &dests, &input()), None);
        add(&mut s, &mut dests, dest(1, 1));
        add(&mut s, &mut dests, dest(2, 1));
        add(&mut s, &mut dests, dest(3, 1)); // list 3, 2, 1
        let check = |s: &mut DestHash, dests: &[Dest]| {
            for k in 0..200 {
                let daddr = client(k);
                let want = dests[bucket_of(daddr) % dests.len()].id.0;
                assert_eq!(pick(s, dests, &to(daddr, Instant::ZERO)), Some(want));
            }
        };
        check(&mut s, &dests);
        remove(&mut s, &mut dests, DestId(2));
        check(&mut s, &dests);
        edit_weight(&mut s, &mut dests, DestId(3), 9);
        check(&mut s, &dests);
    }

    #[test]
    fn ipv6_destinations_fold() {
        let dests = list(&[1, 1, 1]);
        let mut s = dh(&dests);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8:0:1::".parse().unwrap();
        // Same fold (0x20010db8 ^ 1) -> same bucket -> same server.
        assert_eq!(addr_fold(&a), addr_fold(&b));
        assert_eq!(
            pick(&mut s, &dests, &to(a, Instant::ZERO)),
            pick(&mut s, &dests, &to(b, Instant::ZERO))
        );
    }
}
