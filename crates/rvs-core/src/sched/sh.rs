//! `sh` — source hashing (`ip_vs_sh.c`, reference §4.13), with the
//! `sh-fallback` ([`SCHED_FLAG1`]) and `sh-port` ([`SCHED_FLAG2`]) flags.
//!
//! Table: 256 buckets (`CONFIG_IP_VS_SH_TAB_BITS` = 8), filled by walking the
//! dest list and giving each dest `weight` consecutive buckets before moving
//! on, cycling until all are filled. The kernel moves on once
//! `++count >= weight`, so a weight-0 dest still occupies one bucket (it is
//! then unusable there). Rebuilt on add, delete and edit.
//!
//! Key: `hash_32(port + addr_fold(saddr), 8)` (wrapping u32 sum), where `port`
//! is the client's source port with `sh-port` and a TCP/UDP/SCTP packet, else
//! 0; with an offset `o` the bucket is `(o + hash) & 255`.
//!
//! Without `sh-fallback` the bucket's dest is used unless it has weight 0 or
//! is OVERLOAD (then: no destination). With it, an unusable first choice makes
//! the scheduler probe offsets `(k + first_bucket) % 256` for k = 0..255 and
//! take the first usable dest; an empty bucket ends the search.

use super::hash::{addr_fold, hash_32, resolve};
use super::{DestChange, SCHED_FLAG1, SCHED_FLAG2, SchedError, SchedInput, Scheduler};
use crate::dest::{Dest, DestId};

/// Table size in bits.
const TAB_BITS: u32 = 8;
/// Number of buckets.
const TAB_SIZE: usize = 1 << TAB_BITS;
/// Bucket index mask.
const TAB_MASK: u32 = TAB_SIZE as u32 - 1;

/// Source-hashing scheduler.
#[derive(Debug, Clone, Default)]
pub struct SourceHash {
    /// Bucket → (dest, its index at build time); empty when there are no dests.
    buckets: Vec<(DestId, usize)>,
}

/// `true` if the protocol carries ports that `sh-port`/`mh-port` may use.
pub(crate) fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132)
}

/// The port a hashing scheduler keys on: the client's source port when the
/// `*-port` flag is set and the protocol has ports, else 0.
pub(crate) fn key_port(input: &SchedInput) -> u16 {
    if input.svc_flags & SCHED_FLAG2 != 0 && has_ports(input.proto) {
        input.sport
    } else {
        0
    }
}

impl SourceHash {
    fn reassign(&mut self, dests: &[Dest]) {
        self.buckets.clear();
        if dests.is_empty() {
            return;
        }
        let (mut p, mut count) = (0usize, 0i64);
        for _ in 0..TAB_SIZE {
            self.buckets.push((dests[p].id, p));
            count += 1;
            if count >= i64::from(dests[p].weight) {
                p = (p + 1) % dests.len();
                count = 0;
            }
        }
    }

    /// Each bucket's dest, as its index in the list the table was built from
    /// (all `None` without dests).
    #[cfg(test)]
    pub(crate) fn slots(&self) -> Vec<Option<usize>> {
        if self.buckets.is_empty() {
            return vec![None; TAB_SIZE];
        }
        self.buckets.iter().map(|&(_, i)| Some(i)).collect()
    }

    /// `ip_vs_sh_hashkey`: the bucket for `fold`/`port` at `offset`.
    fn bucket(fold: u32, port: u16, offset: u32) -> usize {
        (offset.wrapping_add(hash_32(u32::from(port).wrapping_add(fold), TAB_BITS)) & TAB_MASK)
            as usize
    }

    /// The dest index in bucket `b`: `None` if empty, else `Some(Some(i))`
    /// when usable and `Some(None)` when not.
    fn lookup(&self, dests: &[Dest], b: usize) -> Option<Option<usize>> {
        let &(id, hint) = self.buckets.get(b)?;
        let i = resolve(dests, id, hint)?;
        Some(dests[i].is_schedulable().then_some(i))
    }
}

impl Scheduler for SourceHash {
    fn name(&self) -> &'static str {
        "sh"
    }

    fn update(&mut self, dests: &[Dest], _change: DestChange) -> Result<(), SchedError> {
        self.reassign(dests);
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let fold = addr_fold(&input.saddr);
        let port = key_port(input);
        let ihash = Self::bucket(fold, port, 0);
        let first = self.lookup(dests, ihash)?;
        if first.is_some() || input.svc_flags & SCHED_FLAG1 == 0 {
            return first;
        }
        for k in 0..TAB_SIZE as u32 {
            let roffset = (k + ihash as u32) % TAB_SIZE as u32;
            match self.lookup(dests, Self::bucket(fold, port, roffset)) {
                None => return None,
                Some(Some(i)) => return Some(i),
                Some(None) => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::support::*;
    use super::*;
    use core::net::IpAddr;

    fn sh(dests: &[Dest]) -> SourceHash {
        let mut s = SourceHash::default();
        init(&mut s, dests);
        s
    }

    fn shares(s: &SourceHash) -> Vec<(u32, usize)> {
        let mut v: Vec<(u32, usize)> = Vec::new();
        for &(id, _) in &s.buckets {
            match v.iter_mut().find(|(x, _)| *x == id.0) {
                Some(e) => e.1 += 1,
                None => v.push((id.0, 1)),
            }
        }
        v.sort();
        v
    }

    #[test]
    fn buckets_are_filled_by_weight_runs() {
        let s = sh(&list(&[3, 1, 2]));
        let ids: Vec<u32> = s.buckets.iter().take(8).map(|(id, _)| id.0).collect();
        assert_eq!(ids, [1, 1, 1, 2, 3, 3, 1, 1]);
        // 256 = 42 * 6 + 4: the last partial run is A A A B.
        assert_eq!(shares(&s), [(1, 129), (2, 43), (3, 84)]);
    }

    #[test]
    fn quiesced_dests_still_hold_one_bucket() {
        let s = sh(&list(&[0, 2, 0]));
        let ids: Vec<u32> = s.buckets.iter().take(8).map(|(id, _)| id.0).collect();
        assert_eq!(ids, [1, 2, 2, 3, 1, 2, 2, 3]);
        assert_eq!(shares(&s), [(1, 64), (2, 128), (3, 64)]);
    }

    #[test]
    fn huge_weight_takes_the_whole_table() {
        let s = sh(&list(&[1000, 1]));
        assert_eq!(shares(&s), [(1, 256)]);
    }

    #[test]
    fn pick_is_the_bucket_of_the_source_address() {
        let dests = list(&[2, 1, 3, 1]);
        let mut s = sh(&dests);
        for k in 0..300 {
            let saddr = client(k);
            let b = hash_32(addr_fold(&saddr), 8) as usize;
            let want = s.buckets[b].0.0;
            assert_eq!(pick(&mut s, &dests, &from(saddr)), Some(want));
            // Same key, same server, whatever the destination / port.
            let other = SchedInput {
                sport: 1,
                daddr: client(k + 7),
                ..from(saddr)
            };
            assert_eq!(pick(&mut s, &dests, &other), Some(want));
        }
    }

    #[test]
    fn sh_port_adds_the_source_port_for_tcp_udp_sctp() {
        let dests = list(&[1; 16]);
        let mut s = sh(&dests);
        let saddr: IpAddr = "192.0.2.77".parse().unwrap();
        let fold = addr_fold(&saddr);
        let with_port = |sport: u16, proto: u8| SchedInput {
            sport,
            proto,
            svc_flags: SCHED_FLAG2,
            ..from(saddr)
        };
        let mut seen = std::collections::BTreeSet::new();
        for sport in 1000..1064u16 {
            for proto in [6, 17, 132] {
                let b = hash_32(fold.wrapping_add(u32::from(sport)), 8) as usize;
                let got = pick(&mut s, &dests, &with_port(sport, proto));
                assert_eq!(got, Some(s.buckets[b].0.0));
                seen.insert(got);
            }
            // ICMP (and anything else) has no ports: key as without the flag.
            assert_eq!(
                pick(&mut s, &dests, &with_port(sport, 1)),
                pick(&mut s, &dests, &from(saddr))
            );
            // Without the flag the port is ignored.
            let plain = SchedInput {
                sport,
                ..from(saddr)
            };
            assert_eq!(
                pick(&mut s, &dests, &plain),
                pick(&mut s, &dests, &from(saddr))
            );
        }
        assert!(seen.len() > 8, "port spreads one client: {seen:?}");
    }

    fn client_in_bucket_of(s: &SourceHash, id: u32) -> IpAddr {
        (0..)
            .map(client)
            .find(|a| s.buckets[hash_32(addr_fold(a), 8) as usize].0.0 == id)
            .unwrap()
    }

    #[test]
    fn unusable_without_fallback_fails() {
        let mut dests = list(&[1, 1, 1]);
        let mut s = sh(&dests);
        let saddr = client_in_bucket_of(&s, 2);
        assert_eq!(pick(&mut s, &dests, &from(saddr)), Some(2));
        dests[1].overload = true;
        assert_eq!(pick(&mut s, &dests, &from(saddr)), None);
        dests[1].overload = false;
        edit_weight(&mut s, &mut dests, DestId(2), 0);
        // Rebuilt on edit: 2 still holds one bucket in three, but unusable.
        assert_eq!(shares(&s), [(1, 86), (2, 85), (3, 85)]);
        assert_eq!(pick(&mut s, &dests, &from(saddr)), None);
    }

    #[test]
    fn fallback_probes_offsets_from_the_first_bucket() {
        let mut dests = list(&[1, 1, 1, 1]);
        let mut s = sh(&dests);
        let saddr = client_in_bucket_of(&s, 3);
        dests[2].weight = 0; // quiesced without telling the scheduler: table as before
        let inp = SchedInput {
            svc_flags: SCHED_FLAG1,
            ..from(saddr)
        };
        // Expected by the reference recipe.
        let fold = addr_fold(&saddr);
        let ihash = hash_32(fold, 8);
        let want = (0..256u32)
            .map(|k| ((k + ihash) % 256 + hash_32(fold, 8)) & 255)
            .map(|b| s.buckets[b as usize].0.0)
            .find(|&id| id != 3)
            .unwrap();
        let got = pick(&mut s, &dests, &inp);
        assert_eq!(got, Some(want));
        // Deterministic.
        assert_eq!(pick(&mut s, &dests, &inp), got);
        // Other clients keep their servers.
        for k in 0..100 {
            let a = client(k);
            let own = s.buckets[hash_32(addr_fold(&a), 8) as usize].0.0;
            if own != 3 {
                let inp = SchedInput {
                    svc_flags: SCHED_FLAG1,
                    ..from(a)
                };
                assert_eq!(pick(&mut s, &dests, &inp), Some(own));
            }
        }
        // Everything unusable: none.
        for d in &mut dests {
            d.overload = true;
        }
        assert_eq!(pick(&mut s, &dests, &inp), None);
    }

    #[test]
    fn empty_table_fails() {
        let mut s = sh(&[]);
        let inp = SchedInput {
            svc_flags: SCHED_FLAG1 | SCHED_FLAG2,
            ..input()
        };
        assert_eq!(s.schedule(&[], &inp), None);
    }

    #[test]
    fn rebuilt_on_add_and_remove() {
        let mut s = SourceHash::default();
        let mut dests = Vec::new();
        init(&mut s, &dests);
        add(&mut s, &mut dests, dest(1, 2));
        add(&mut s, &mut dests, dest(2, 1)); // list 2, 1
        let ids: Vec<u32> = s.buckets.iter().take(6).map(|(id, _)| id.0).collect();
        assert_eq!(ids, [2, 1, 1, 2, 1, 1]);
        remove(&mut s, &mut dests, DestId(2));
        assert_eq!(shares(&s), [(1, 256)]);
    }
}
