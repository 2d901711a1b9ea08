//! `lblcr` — locality-based least connection with replication
//! (`ip_vs_lblcr.c`, reference §4.11).
//!
//! Each packet destination address (`daddr`) maps to a *set* of real servers
//! (newest member first). On a hit:
//!
//! 1. `dest` = the weighted least-connection member (`wlc_pick_among` over
//!    the members that are available; OVERLOAD and weight 0 excluded);
//! 2. if the set has more than one member and was last modified more than
//!    `lblcr_expiration` ago (default 24 h), the weighted *most* loaded member
//!    is removed (and the set counts as modified) — this happens after step 1,
//!    so the member just chosen may be the one removed and still be used;
//! 3. if `dest` exists and is not lblc-overloaded (`lblc_overloaded`) it is
//!    used; otherwise WLC over all dests picks one, which joins the set (the
//!    set is modified only if it was not already a member).
//!
//! On a miss WLC picks a server and a new entry with that single member is
//! created. Every lookup refreshes `lastuse`; garbage collection is the same
//! as lblc's (`Gc`, driven by [`Scheduler::tick`]).
//!
//! The kernel keeps deleted servers in the sets (skipped as "not available").
//! Here they are removed from every set at once; that only differs in the
//! set-size test of step 2 and in which member step 2 may pick.
//!
//! The table is one per service, shared by the service's engine replicas
//! (`rvsd --engines per-worker`) as the kernel's is by its CPUs (see
//! `lblc.rs`): lookups take no lock and read a set as the kernel's RCU
//! readers do; a change of a set (a member shed or joining) replaces the
//! entry with a changed copy by compare-and-swap, where the kernel changes
//! the set under the service's lock. Members are named by their key
//! (address and port, the same in every replica).

use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::lblc::{AtomicInstant, DEFAULT_EXPIRATION, LastUse, TableOf, lblc_overloaded};
use super::shared::{Shared, key_of, resolve_key_at};
use super::wlc::{wlc_pick, wlc_pick_among};
use super::{DestChange, SchedError, SchedInput, Scheduler};
use crate::dest::Dest;
use crate::time::Instant;

/// A member of a set: its key and where it was last seen.
#[derive(Debug)]
struct Member {
    key: u64,
    hint: AtomicU32,
}

/// One destination address's server set.
#[derive(Debug)]
pub struct Entry {
    /// Members, newest first.
    set: Vec<Member>,
    /// Last change of the set.
    lastmod: Instant,
    /// Last lookup.
    lastuse: AtomicInstant,
}

impl LastUse for Entry {
    fn lastuse(&self) -> Instant {
        self.lastuse.get()
    }
}

impl Entry {
    fn new(key: u64, index: usize, now: Instant) -> Self {
        Entry {
            set: vec![Member {
                key,
                hint: AtomicU32::new(index as u32),
            }],
            lastmod: now,
            lastuse: AtomicInstant::new(now),
        }
    }

    /// A copy to change and put in this one's place.
    fn copy(&self) -> Self {
        Entry {
            set: self
                .set
                .iter()
                .map(|m| Member {
                    key: m.key,
                    hint: AtomicU32::new(m.hint.load(Ordering::Relaxed)),
                })
                .collect(),
            lastmod: self.lastmod,
            lastuse: AtomicInstant::new(self.lastuse.get()),
        }
    }

    /// Members present in `dests`, as `(index, dest)`, in set order.
    fn members<'a>(&'a self, dests: &'a [Dest]) -> impl Iterator<Item = (usize, &'a Dest)> + 'a {
        self.set.iter().filter_map(|m| {
            let i = resolve_key_at(dests, m.key, &m.hint)?;
            Some((i, &dests[i]))
        })
    }

    /// `ip_vs_dest_set_max`: the weighted most-loaded member with weight > 0
    /// (first among equals; OVERLOAD and availability are not looked at).
    fn most_loaded(&self, dests: &[Dest]) -> Option<u64> {
        let mut most: Option<(&Dest, u64)> = None;
        for (_, d) in self.members(dests).filter(|(_, d)| d.weight > 0) {
            let doh = d.overhead();
            let replace = match most {
                None => true,
                Some((m, moh)) => {
                    u128::from(moh) * u128::from(d.weight) < u128::from(doh) * u128::from(m.weight)
                }
            };
            if replace {
                most = Some((d, doh));
            }
        }
        most.map(|(d, _)| key_of(d))
    }

    fn has(&self, key: u64) -> bool {
        self.set.iter().any(|m| m.key == key)
    }

    /// `ip_vs_dest_set_insert(check = true)`: add at the head unless present.
    fn insert(&mut self, key: u64, index: usize, now: Instant) {
        if !self.has(key) {
            self.set.insert(
                0,
                Member {
                    key,
                    hint: AtomicU32::new(index as u32),
                },
            );
            self.lastmod = now;
        }
    }
}

/// lblcr's table.
pub type Table = TableOf<Entry>;

/// Locality-based least-connection scheduler with replication. A clone has
/// its own copy of the table; replicas share one through
/// [`Scheduler::share`].
#[derive(Debug)]
pub struct Lblcr {
    table: Arc<Table>,
    expiration: Duration,
}

impl Default for Lblcr {
    fn default() -> Self {
        Lblcr::with_expiration(DEFAULT_EXPIRATION)
    }
}

impl Clone for Lblcr {
    fn clone(&self) -> Self {
        Lblcr {
            table: Arc::new(self.table.copy(Entry::copy)),
            expiration: self.expiration,
        }
    }
}

impl Lblcr {
    /// A scheduler with `lblcr_expiration` = `expiration`: the age after
    /// which a set sheds its most loaded member, and after which the full GC
    /// check drops unused entries.
    pub fn with_expiration(expiration: Duration) -> Self {
        Lblcr {
            table: Arc::default(),
            expiration,
        }
    }

    /// Number of cached destination addresses.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// No cached destination addresses.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

impl Scheduler for Lblcr {
    fn name(&self) -> &'static str {
        "lblcr"
    }

    fn update(&mut self, _dests: &[Dest], change: DestChange) -> Result<(), SchedError> {
        match change {
            DestChange::Init => self.table.reset(),
            DestChange::Removed { key, .. } => {
                let table = self.table.map.pin();
                for (daddr, en) in table.iter() {
                    if en.has(key) {
                        table.update(*daddr, |old| {
                            let mut n = old.copy();
                            n.set.retain(|m| m.key != key);
                            n
                        });
                    }
                }
            }
            DestChange::Added(_) | DestChange::Edited(_) => {}
        }
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let now = input.now;
        self.table.arm(now);
        let table = self.table.map.pin();
        let Some(mut en) = table.get(&input.daddr) else {
            let i = wlc_pick(dests, Dest::overhead)?;
            let key = key_of(&dests[i]);
            // Another replica may have made it meanwhile: join its set.
            table.update_or_insert_with(
                input.daddr,
                |old| {
                    let mut n = old.copy();
                    n.insert(key, i, now);
                    n
                },
                || Entry::new(key, i, now),
            );
            return Some(i);
        };

        en.lastuse.set(now);
        let least = wlc_pick_among(
            en.members(dests).filter(|(_, d)| d.available),
            Dest::overhead,
        );
        if en.set.len() > 1 && now > en.lastmod + self.expiration {
            let expiration = self.expiration;
            if let Some(n) = table.update(input.daddr, |old| {
                let mut n = old.copy();
                if n.set.len() > 1
                    && now > n.lastmod + expiration
                    && let Some(m) = n.most_loaded(dests)
                {
                    n.set.retain(|x| x.key != m);
                    n.lastmod = now;
                }
                n
            }) {
                en = n;
            }
        }
        if let Some(i) = least
            && !lblc_overloaded(&dests[i], dests)
        {
            return Some(i);
        }
        let i = wlc_pick(dests, Dest::overhead)?;
        let key = key_of(&dests[i]);
        if !en.has(key) {
            table.update(input.daddr, |old| {
                let mut n = old.copy();
                n.insert(key, i, now);
                n
            });
        }
        Some(i)
    }

    fn tick(&mut self, now: Instant) {
        self.table.tick(now, self.expiration);
    }

    fn shared(&self) -> Option<Shared> {
        Some(Shared::Lblcr(self.table.clone()))
    }

    fn share(&mut self, with: Shared) {
        if let Shared::Lblcr(t) = with {
            self.table = t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::support::*;
    use super::*;
    use crate::dest::DestId;
    use core::net::IpAddr;

    fn lblcr(dests: &[Dest]) -> Lblcr {
        let mut s = Lblcr::default();
        init(&mut s, dests);
        s
    }

    fn at(daddr: IpAddr, secs: u64) -> SchedInput {
        to(daddr, Instant::from_secs(secs))
    }

    /// The set's members as the `n` of their addresses 10.0.0.n.
    fn set_of(s: &Lblcr, daddr: IpAddr) -> Vec<u32> {
        let t = s.table.map.pin();
        t.get(&daddr)
            .map(|e| {
                e.set
                    .iter()
                    .map(|m| (m.key >> 16) as u32 & 0xff_ffff)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn lastmod(s: &Lblcr, daddr: IpAddr) -> Instant {
        s.table.map.pin().get(&daddr).unwrap().lastmod
    }

    #[test]
    fn same_destination_sticks() {
        let mut dests = list(&[1, 1, 1]);
        let mut s = lblcr(&dests);
        let a = client(1);
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        dests[0].activeconns = 1;
        assert_eq!(pick(&mut s, &dests, &at(client(2), 0)), Some(2));
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        assert_eq!(set_of(&s, a), [1]);
    }

    #[test]
    fn overloaded_member_gets_a_replica() {
        let mut dests = list(&[2, 4, 4]);
        let mut s = lblcr(&dests);
        let a = client(1);
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        // Dest 1: 3 active > 2 and dest 2 has 1*2 < 4: lblc-overloaded. WLC
        // over all: overheads 768/2, 256/4, 1280/4 -> dest 2 joins the set.
        conns(&mut dests, &[(3, 0), (1, 0), (5, 0)]);
        assert_eq!(pick(&mut s, &dests, &at(a, 10)), Some(2));
        assert_eq!(set_of(&s, a), [2, 1]);
        assert_eq!(lastmod(&s, a), Instant::from_secs(10));
        // Now the set's least loaded serves: 2 (64 per weight vs 384).
        assert_eq!(pick(&mut s, &dests, &at(a, 20)), Some(2));
        // When 1 becomes lighter it is used again, from the set.
        conns(&mut dests, &[(0, 0), (3, 0), (5, 0)]);
        assert_eq!(pick(&mut s, &dests, &at(a, 30)), Some(1));
        assert_eq!(set_of(&s, a), [2, 1]);
        assert_eq!(lastmod(&s, a), Instant::from_secs(10));
    }

    #[test]
    fn overload_flag_and_quiesced_members_are_skipped_in_the_set() {
        let mut dests = list(&[1, 1, 1]);
        let mut s = lblcr(&dests);
        let a = client(1);
        // Build the set {2, 1}.
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        dests[0].weight = 0;
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(2));
        dests[0].weight = 1;
        assert_eq!(set_of(&s, a), [2, 1]);
        dests[1].overload = true;
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        dests[0].overload = true;
        // No usable member: WLC over all -> 3 joins.
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(3));
        assert_eq!(set_of(&s, a), [3, 2, 1]);
    }

    #[test]
    fn old_sets_shed_their_most_loaded_member() {
        let mut dests = list(&[1, 1, 1]);
        let mut s = Lblcr::with_expiration(Duration::from_secs(100));
        init(&mut s, &dests);
        let a = client(1);
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        dests[0].weight = 0;
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(2)); // set {2, 1}, lastmod 0
        dests[0].weight = 1;
        conns(&mut dests, &[(2, 0), (1, 0), (0, 0)]);
        // Not yet expired (strictly after lastmod + 100).
        assert_eq!(pick(&mut s, &dests, &at(a, 100)), Some(2));
        assert_eq!(set_of(&s, a), [2, 1]);
        // Expired: least is 2 (used), most loaded 1 is removed.
        assert_eq!(pick(&mut s, &dests, &at(a, 101)), Some(2));
        assert_eq!(set_of(&s, a), [2]);
        assert_eq!(lastmod(&s, a), Instant::from_secs(101));
        // A single member is never removed.
        assert_eq!(pick(&mut s, &dests, &at(a, 500)), Some(2));
        assert_eq!(set_of(&s, a), [2]);
    }

    #[test]
    fn shed_member_may_still_serve_this_once() {
        // The least loaded member is chosen before the shedding, so it can be
        // shed and still serve this connection: here dest 2 is both the least
        // loaded usable member and the only member with weight > 0, hence
        // the "most loaded" one.
        let mut dests = list(&[1, 1]);
        let mut s = Lblcr::with_expiration(Duration::from_secs(10));
        init(&mut s, &dests);
        let a = client(1);
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        dests[0].overload = true;
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(2)); // set {2, 1}
        dests[0].overload = false;
        dests[0].weight = 0; // 1 can't be most loaded (weight 0), 2 is.
        assert_eq!(pick(&mut s, &dests, &at(a, 11)), Some(2));
        assert_eq!(set_of(&s, a), [1]);
    }

    #[test]
    fn removed_dest_leaves_every_set() {
        let mut dests = list(&[1, 1]);
        let mut s = lblcr(&dests);
        let a = client(1);
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        remove(&mut s, &mut dests, DestId(1));
        assert_eq!(set_of(&s, a), Vec::<u32>::new());
        assert_eq!(pick(&mut s, &dests, &at(a, 5)), Some(2));
        assert_eq!(set_of(&s, a), [2]);
        assert_eq!(lastmod(&s, a), Instant::from_secs(5));
    }

    #[test]
    fn nothing_usable() {
        let mut dests = list(&[1]);
        let mut s = lblcr(&dests);
        dests[0].overload = true;
        assert_eq!(pick(&mut s, &dests, &at(client(1), 0)), None);
        assert!(s.is_empty());
    }

    #[test]
    fn gc_removes_stale_entries() {
        let dests = list(&[1, 1]);
        let mut s = Lblcr::with_expiration(Duration::from_secs(600));
        init(&mut s, &dests);
        pick(&mut s, &dests, &at(client(1), 0));
        pick(&mut s, &dests, &at(client(2), 0));
        for t in (60..1800).step_by(60) {
            if t == 1500 {
                pick(&mut s, &dests, &at(client(2), t));
            }
            s.tick(Instant::from_secs(t));
        }
        assert_eq!(s.len(), 2);
        s.tick(Instant::from_secs(1800));
        assert_eq!(s.len(), 1);
        assert!(s.table.map.pin().contains_key(&client(2)));
    }

    /// Two replicas scheduling at once on one shared table, each seeing
    /// its own counts (as replicas between two syncs of the shared ones):
    /// sets change under both, every member stays a server of the list, no
    /// set holds a server twice, and a removal (applied by each replica in
    /// turn) leaves every set.
    #[test]
    fn replicas_racing_share_one_table() {
        let dests = list(&[1, 2, 3, 1]);
        let mut a = Lblcr::with_expiration(Duration::from_secs(1));
        init(&mut a, &dests);
        let mut b = Lblcr::with_expiration(Duration::from_secs(1));
        init(&mut b, &dests);
        b.share(a.shared().unwrap());
        std::thread::scope(|s| {
            // Other handles on the one table, one per thread.
            let handle = |s: &Lblcr| Lblcr {
                table: s.table.clone(),
                expiration: s.expiration,
            };
            for (t, mut r) in [(0u32, handle(&a)), (1, handle(&b))] {
                let mut dests = dests.clone();
                s.spawn(move || {
                    for k in 0..20_000u32 {
                        // Loads that make members lblc-overloaded now and then.
                        let j = (k as usize + t as usize) % dests.len();
                        dests[j].activeconns = (k * 7 + t) % 6;
                        let inp = at(client(k % 64), u64::from(k / 500));
                        assert!(r.schedule(&dests, &inp).is_some());
                    }
                });
            }
        });
        let keys: Vec<u64> = dests.iter().map(key_of).collect();
        let t = a.table.map.pin();
        assert!(!t.is_empty());
        for (_, e) in t.iter() {
            assert!(e.set.iter().all(|m| keys.contains(&m.key)));
            let mut ks: Vec<u64> = e.set.iter().map(|m| m.key).collect();
            ks.sort_unstable();
            ks.dedup();
            assert_eq!(ks.len(), e.set.len(), "a server twice in a set");
        }
        drop(t);
        let mut da = dests.clone();
        remove(&mut a, &mut da, DestId(2));
        let mut db = dests.clone();
        remove(&mut b, &mut db, DestId(2));
        let gone = key_of(&dests[1]);
        assert!(a.table.map.pin().iter().all(|(_, e)| !e.has(gone)));
    }
}
