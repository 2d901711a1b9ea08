//! `mh` — Maglev hashing (`ip_vs_mh.c`, reference §4.14), with the
//! `mh-fallback` ([`SCHED_FLAG1`]) and `mh-port` ([`SCHED_FLAG2`](super::SCHED_FLAG2)) flags.
//!
//! * Lookup table of M = 4093 slots (`primes[CONFIG_IP_VS_MH_TAB_INDEX - 8]`
//!   with the default index 12); `IP_VS_MH_TAB_BITS` = 12 / 2 = 6.
//! * Hash: `hsiphash(&v, 4, key)` of the u32 `v = offset + port + addr_fold`
//!   (wrapping), hashed as its 4 little-endian bytes (x86). On 64-bit kernels
//!   `hsiphash` is SipHash-1-3 with the 128-bit key `(key[0], key[1])`,
//!   truncated to 32 bits. Keys are fixed: `hash1 = {2654435761, 2654435761}`,
//!   `hash2 = {2654446892, 2654446892}`, so every director builds the same
//!   table.
//! * Weights are `last_weight` (the latest non-zero weight), so quiescing a
//!   server (weight 0) keeps its slots: its clients fail, or move with the
//!   fallback, instead of reshuffling everybody. `gcd` of the positive
//!   last_weights; `rshift = max(0, fls(max / gcd) - 6)`;
//!   `turns = (lw / gcd) >> rshift`, or 1 if that is 0 and `lw` ≠ 0. No
//!   positive last_weight ⇒ the table is emptied.
//! * Permutation of each dest (list order): `offset = h1(addr, port) % M`,
//!   `skip = h2(addr, port) % (M - 1) + 1`.
//! * Population: cycling over the list, each dest with turns ≥ 1 takes the
//!   next free slot of its permutation `turns` times in a row; stop when all M
//!   slots are taken.
//! * Lookup: slot `h1(client addr, port or 0) % M`; the dest there is unusable
//!   with weight 0 or OVERLOAD ⇒ fail, unless `mh-fallback`: probe
//!   `h1(addr, port, offset = (k + slot) % M) % M` for k = 0..M-1, first usable
//!   wins, an empty slot stops.
//! * More than M dests: [`SchedError::TooManyDests`] (the kernel's EINVAL).
//!   Rebuilt on add, delete and edit.
//!
//! Dest addresses are folded by their own family. The kernel folds with the
//! service's family, which only differs for a tunnelled real server of the
//! other family (an IPv6 server of an IPv4 service hashes its first word only
//! in the kernel).

use core::net::IpAddr;

use siphasher::sip::SipHasher13;

use super::hash::{addr_fold, resolve};
use super::sh::key_port;
use super::{DestChange, SCHED_FLAG1, SchedError, SchedInput, Scheduler};
use crate::dest::{Dest, DestId};

/// Table size: a prime, so that every `skip` walks the whole table.
pub const TABLE_SIZE: usize = 4093;
/// `IP_VS_MH_TAB_BITS`: weights are scaled down to at most this many bits.
const TAB_BITS: u32 = 6;

/// `hsiphash_key_t` of `hash1` (slot offsets and lookups).
const HASH1: (u64, u64) = (2_654_435_761, 2_654_435_761);
/// `hsiphash_key_t` of `hash2` (skips).
const HASH2: (u64, u64) = (2_654_446_892, 2_654_446_892);

/// `hsiphash(&v, sizeof(v), key)` on a 64-bit little-endian kernel.
fn hsiphash_u32(key: (u64, u64), v: u32) -> u32 {
    SipHasher13::new_with_keys(key.0, key.1).hash(&v.to_le_bytes()) as u32
}

/// `ip_vs_mh_hashkey`.
fn hashkey(key: (u64, u64), addr: &IpAddr, port: u16, offset: u32) -> u32 {
    let v = offset
        .wrapping_add(u32::from(port))
        .wrapping_add(addr_fold(addr));
    hsiphash_u32(key, v)
}

/// Maglev-hashing scheduler.
#[derive(Debug, Clone, Default)]
pub struct Maglev {
    /// Slot → (dest, its index at build time). Empty (no slots at all) or all
    /// `None` when there is no dest with a positive last_weight.
    table: Vec<Option<(DestId, usize)>>,
}

/// Per-dest population state (`struct ip_vs_mh_dest_setup`).
#[derive(Debug, Clone, Copy)]
struct Setup {
    skip: usize,
    perm: usize,
    turns: u32,
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `fls`: 1-based position of the highest set bit, 0 for 0.
fn fls(x: u32) -> u32 {
    u32::BITS - x.leading_zeros()
}

impl Maglev {
    fn reassign(&mut self, dests: &[Dest]) -> Result<(), SchedError> {
        if dests.len() > TABLE_SIZE {
            return Err(SchedError::TooManyDests);
        }
        let g = dests
            .iter()
            .map(|d| d.last_weight)
            .filter(|&w| w > 0)
            .fold(0, gcd);
        self.table.clear();
        self.table.resize(TABLE_SIZE, None);
        if g < 1 {
            return Ok(());
        }
        let max = dests.iter().map(|d| d.last_weight).max().unwrap_or(0);
        let rshift = fls(max / g).saturating_sub(TAB_BITS);

        let m = TABLE_SIZE as u32;
        let mut setup: Vec<Setup> = dests
            .iter()
            .map(|d| {
                let offset = hashkey(HASH1, &d.addr, d.port, 0) % m;
                let skip = hashkey(HASH2, &d.addr, d.port, 0) % (m - 1) + 1;
                let scaled = (d.last_weight / g) >> rshift;
                let turns = if scaled == 0 {
                    u32::from(d.last_weight != 0)
                } else {
                    scaled
                };
                Setup {
                    skip: skip as usize,
                    perm: offset as usize,
                    turns,
                }
            })
            .collect();

        let mut taken = vec![false; TABLE_SIZE];
        let (mut filled, mut i, mut run) = (0, 0, 0);
        while filled < TABLE_SIZE {
            let s = &mut setup[i];
            if s.turns < 1 {
                i = (i + 1) % dests.len();
                continue;
            }
            while taken[s.perm] {
                s.perm += s.skip;
                if s.perm >= TABLE_SIZE {
                    s.perm -= TABLE_SIZE;
                }
            }
            taken[s.perm] = true;
            self.table[s.perm] = Some((dests[i].id, i));
            filled += 1;
            run += 1;
            if run >= s.turns {
                run = 0;
                i = (i + 1) % dests.len();
            }
        }
        Ok(())
    }

    /// Each slot's dest, as its index in the list the table was built from.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> Vec<Option<usize>> {
        self.table.iter().map(|s| s.map(|(_, i)| i)).collect()
    }

    /// The slot's dest: `None` if empty, `Some(Some(i))` when usable,
    /// `Some(None)` when not.
    fn lookup(&self, dests: &[Dest], slot: u32) -> Option<Option<usize>> {
        let (id, hint) = (*self.table.get(slot as usize)?)?;
        let i = resolve(dests, id, hint)?;
        Some(dests[i].is_schedulable().then_some(i))
    }
}

/// The table built from `list` (each `(address, port, weight)`, in the
/// order they were added): each slot's server. The service's list has the
/// newest first (`ServiceTable::add_dest` inserts at index 0, as the
/// kernel's `list_add_rcu`), and the population cycles in that order.
fn table_of(list: &[(IpAddr, u16, u32)]) -> Vec<Option<(IpAddr, u16)>> {
    let dests: Vec<Dest> = list
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &(a, p, w))| {
            let cfg = crate::dest::DestConfig {
                weight: w,
                ..crate::dest::DestConfig::new(a, p)
            };
            Dest::new(DestId(i as u32 + 1), &cfg)
        })
        .collect();
    let mut m = Maglev::default();
    if m.reassign(&dests).is_err() {
        return vec![None; TABLE_SIZE];
    }
    let mut t: Vec<_> = m
        .table
        .iter()
        .map(|s| s.map(|(_, i)| (dests[i].addr, dests[i].port)))
        .collect();
    t.resize(TABLE_SIZE, None);
    t
}

/// How many of the table's [`TABLE_SIZE`] slots change real server when
/// the list `before` becomes `after` (each `(address, port, weight)`, in
/// the order they were added): the share of flows a change of the set
/// sends to another server where no connection entry holds them (what
/// `rvs lab ecmp --add-server` reports). Returns (moved, total).
pub fn slots_moved(before: &[(IpAddr, u16, u32)], after: &[(IpAddr, u16, u32)]) -> (usize, usize) {
    let (a, b) = (table_of(before), table_of(after));
    let moved = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    (moved, TABLE_SIZE)
}

/// The real server `mh` gives a new flow from `client`, with the list
/// `list` (as for [`slots_moved`]); `key_port` is the client's port with
/// `mh-port`, 0 without. Every server of the list counts as usable (no
/// weight 0, no overload, so no fallback). `None`: an empty table.
pub fn server_for(
    list: &[(IpAddr, u16, u32)],
    client: IpAddr,
    key_port: u16,
) -> Option<(IpAddr, u16)> {
    let slot = hashkey(HASH1, &client, key_port, 0) % TABLE_SIZE as u32;
    table_of(list)[slot as usize]
}

impl Scheduler for Maglev {
    fn name(&self) -> &'static str {
        "mh"
    }

    fn update(&mut self, dests: &[Dest], _change: DestChange) -> Result<(), SchedError> {
        self.reassign(dests)
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let m = TABLE_SIZE as u32;
        let port = key_port(input);
        let ihash = hashkey(HASH1, &input.saddr, port, 0) % m;
        let first = self.lookup(dests, ihash)?;
        if first.is_some() || input.svc_flags & SCHED_FLAG1 == 0 {
            return first;
        }
        for k in 0..m {
            let roffset = (k + ihash) % m;
            let slot = hashkey(HASH1, &input.saddr, port, roffset) % m;
            match self.lookup(dests, slot) {
                None => return None,
                Some(Some(i)) => return Some(i),
                Some(None) => {}
            }
        }
        None
    }
}

#[cfg(test)]
#[path = "tests/mh.rs"]
mod tests;

#[cfg(test)]
mod slots_moved_tests {
    use super::*;

    #[test]
    fn adding_a_third_server_moves_about_a_third() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let before = [(a, 80, 1), (b, 80, 1)];
        assert_eq!(slots_moved(&before, &before), (0, TABLE_SIZE));
        let (moved, total) = slots_moved(&before, &[(a, 80, 1), (b, 80, 1), (c, 80, 1)]);
        let share = moved as f64 / total as f64;
        assert!((0.30..0.50).contains(&share), "{share}");
    }

    /// `server_for` agrees with the scheduler itself (`mh-port`: the client's
    /// port is hashed too), and flows change server exactly where
    /// `slots_moved` counts a changed slot.
    #[test]
    fn pick_matches_the_scheduler() {
        use crate::sched::{SCHED_FLAG2, SchedInput};
        let mut m = Maglev::default();
        let list: Vec<(IpAddr, u16, u32)> = (1..=3)
            .map(|i| (IpAddr::from([10, 0, 0, i]), 9000, 1))
            .collect();
        // As `ServiceTable::add_dest` builds it: each new one at index 0.
        let mut dests: Vec<Dest> = Vec::new();
        for (i, &(a, p, w)) in list.iter().enumerate() {
            let cfg = crate::dest::DestConfig {
                weight: w,
                ..crate::dest::DestConfig::new(a, p)
            };
            let d = Dest::new(DestId(i as u32 + 1), &cfg);
            dests.insert(0, d);
            m.update(&dests, DestChange::Added(DestId(i as u32 + 1)))
                .unwrap();
        }
        let client = IpAddr::from([10, 6, 1, 2]);
        let mut more = list.clone();
        more.push((IpAddr::from([10, 0, 0, 4]), 9000, 1));
        let (mut changed, n) = (0, 2000u16);
        for port in 40000..40000 + n {
            let input = SchedInput {
                saddr: client,
                sport: port,
                proto: 6,
                svc_flags: SCHED_FLAG2,
                ..crate::sched::hash::support::input()
            };
            let i = m.schedule(&dests, &input).unwrap();
            let want = (dests[i].addr, dests[i].port);
            assert_eq!(server_for(&list, client, port), Some(want), "port {port}");
            changed += usize::from(server_for(&more, client, port) != Some(want));
        }
        let (moved, total) = slots_moved(&list, &more);
        let p = moved as f64 / total as f64;
        let expect = f64::from(n) * p;
        let sigma = (expect * (1.0 - p)).sqrt();
        assert!(
            (changed as f64 - expect).abs() < 4.0 * sigma,
            "{changed} vs {expect}"
        );
    }
}
