//! Scheduler state that engine replicas share: the position of `rr` and
//! `wrr` (here), the tables of `lblc` and `lblcr` (in their files).
//!
//! The kernel has one `rr`/`wrr` position per service, which every CPU
//! moves under the service's `sched_lock`. With `rvsd --engines
//! per-worker` each worker has its own engine replica, and so its own
//! scheduler; replicas of one service share one [`SharedPos`] instead, so
//! that the service's picks form one round robin whichever workers make
//! them, as the kernel's do.
//!
//! A position is one 128-bit word: the key of the last chosen real server
//! (its address and port, [`dest_key`]: the same in every replica, unlike
//! a [`crate::dest::DestId`], which each replica numbers itself), the index
//! where it was (a hint), and `wrr`'s current weight. A pick reads the
//! word, walks the list as the kernel does and publishes the new word with
//! a compare-and-swap, retrying on a race: lock-free, and linearisable, so
//! two workers never pick as if from the same position. A replica alone
//! owns its word; nothing else differs.
//!
//! List changes reach every replica one after the other (the same change
//! each), so each update of the shared word must be idempotent: `rr` moves
//! a position whose server is no longer in the list to the entry before
//! the removed one (a second replica then finds its server present and
//! leaves it); `wrr`'s reset to the head and realignment of the current
//! weight give the same word when applied twice. While a change is half
//! applied, a replica that has not seen it yet may still pick the server
//! being removed, as a CPU may in the kernel just before the deletion.

use core::net::IpAddr;
use std::sync::Arc;

use core::sync::atomic::AtomicU32;

use portable_atomic::{AtomicU128, Ordering};

use crate::dest::Dest;

/// A real server's identity across replicas: IPv4 address and port
/// exactly; an IPv6 address and port hashed to 63 bits with the top bit
/// set (a collision between two servers of one service would only merge
/// their positions).
pub fn dest_key(addr: &IpAddr, port: u16) -> u64 {
    match addr {
        IpAddr::V4(a) => (u64::from(a.to_bits()) << 16) | u64::from(port),
        IpAddr::V6(a) => {
            let b = a.to_bits();
            let mut h = (b as u64) ^ ((b >> 64) as u64).rotate_left(29) ^ u64::from(port);
            // splitmix64's finaliser.
            h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (h ^ (h >> 31)) | (1 << 63)
        }
    }
}

/// The key of `d` ([`dest_key`]).
pub(crate) fn key_of(d: &Dest) -> u64 {
    dest_key(&d.addr, d.port)
}

/// Where `key` is in `dests` now: at `hint` if it is still there, else
/// found by a scan; `None` if it is gone.
pub(crate) fn resolve_key(dests: &[Dest], key: u64, hint: u32) -> Option<usize> {
    let hint = hint as usize;
    match dests.get(hint) {
        Some(d) if key_of(d) == key => Some(hint),
        _ => dests.iter().position(|d| key_of(d) == key),
    }
}

/// [`resolve_key`] with the hint kept in an atomic that replicas share (a
/// table entry's): refreshed when the server moved.
pub(crate) fn resolve_key_at(dests: &[Dest], key: u64, hint: &AtomicU32) -> Option<usize> {
    let seen = hint.load(Ordering::Relaxed);
    let i = resolve_key(dests, key, seen)?;
    if i as u32 != seen {
        hint.store(i as u32, Ordering::Relaxed);
    }
    Some(i)
}

/// A scheduler's position: the last chosen server (`None`: the list
/// head) and `wrr`'s current weight (0 for `rr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    /// The last chosen server's key and the index where it was.
    pub last: Option<(u64, u32)>,
    /// `wrr`'s current weight, 0..=`i32::MAX` (weights are at most that).
    pub cw: i64,
}

/// The hint that stands for "the list head".
const HEAD: u32 = u32::MAX;

impl Pos {
    /// The list head, current weight 0.
    pub const HEAD: Pos = Pos { last: None, cw: 0 };

    fn encode(self) -> u128 {
        let (key, hint) = match self.last {
            Some((key, hint)) => (key, hint.min(HEAD - 1)),
            None => (0, HEAD),
        };
        (u128::from(key) << 64)
            | (u128::from(hint) << 32)
            | u128::from(self.cw.clamp(0, i64::from(u32::MAX)) as u32)
    }

    fn decode(w: u128) -> Pos {
        let hint = (w >> 32) as u32;
        Pos {
            last: (hint != HEAD).then_some(((w >> 64) as u64, hint)),
            cw: i64::from(w as u32),
        }
    }
}

/// One service's position, shared by the replicas' schedulers (one cache
/// line, so that two services' positions do not share one).
#[derive(Debug)]
#[repr(align(64))]
pub struct SharedPos(AtomicU128);

impl Default for SharedPos {
    fn default() -> Self {
        SharedPos(AtomicU128::new(Pos::HEAD.encode()))
    }
}

impl SharedPos {
    /// The position now.
    pub(crate) fn load(&self) -> Pos {
        Pos::decode(self.0.load(Ordering::Acquire))
    }

    /// Move from `seen` to `next`; `false` (nothing changed) if another
    /// pick moved it since `seen` was read.
    pub(crate) fn advance(&self, seen: Pos, next: Pos) -> bool {
        self.0
            .compare_exchange(
                seen.encode(),
                next.encode(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// A position of its own where this one is now (a scheduler's clone).
    pub(crate) fn copy(&self) -> PosCell {
        Arc::new(SharedPos(AtomicU128::new(self.0.load(Ordering::Acquire))))
    }

    /// Apply `f` to the position until it sticks (list changes).
    pub(crate) fn update(&self, mut f: impl FnMut(Pos) -> Pos) {
        loop {
            let seen = self.load();
            if self.advance(seen, f(seen)) {
                return;
            }
        }
    }
}

/// A handle on a position: a replica's own, or shared with other replicas.
pub type PosCell = Arc<SharedPos>;

/// A scheduler's state as replicas share it ([`super::Scheduler::shared`]).
#[derive(Debug, Clone)]
pub enum Shared {
    /// `rr`, `wrr`: the position.
    Pos(PosCell),
    /// `lblc`: the table.
    Lblc(Arc<super::lblc::Table>),
    /// `lblcr`: the table.
    Lblcr(Arc<super::lblcr::Table>),
}

impl Shared {
    /// Whether `self` and `other` are the same state (not two equal ones).
    pub fn same(&self, other: &Shared) -> bool {
        match (self, other) {
            (Shared::Pos(a), Shared::Pos(b)) => Arc::ptr_eq(a, b),
            (Shared::Lblc(a), Shared::Lblc(b)) => Arc::ptr_eq(a, b),
            (Shared::Lblcr(a), Shared::Lblcr(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn positions_round_trip() {
        for p in [
            Pos::HEAD,
            Pos {
                last: Some((dest_key(&Ipv4Addr::new(10, 0, 0, 1).into(), 80), 3)),
                cw: 7,
            },
            Pos {
                last: Some((u64::MAX, 0)),
                cw: i64::from(i32::MAX),
            },
            Pos { last: None, cw: 12 },
        ] {
            assert_eq!(Pos::decode(p.encode()), p);
        }
    }

    #[test]
    fn keys_tell_servers_apart() {
        let a = dest_key(&Ipv4Addr::new(10, 0, 0, 1).into(), 80);
        assert_eq!(a, 0x0a00_0001_0050);
        assert_ne!(a, dest_key(&Ipv4Addr::new(10, 0, 0, 1).into(), 81));
        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let b = dest_key(&v6.into(), 80);
        assert_ne!(b, dest_key(&v6.into(), 81));
        assert!(b >> 63 == 1 && a >> 63 == 0);
    }

    #[test]
    fn a_stale_advance_fails() {
        let s = SharedPos::default();
        let seen = s.load();
        let one = Pos {
            last: Some((1, 0)),
            cw: 0,
        };
        assert!(s.advance(seen, one));
        assert!(!s.advance(seen, Pos::HEAD));
        assert_eq!(s.load(), one);
        s.update(|p| Pos { cw: p.cw + 1, ..p });
        assert_eq!(s.load().cw, 1);
    }
}
