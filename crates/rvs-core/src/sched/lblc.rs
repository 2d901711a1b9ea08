//! `lblc` — locality-based least connection (`ip_vs_lblc.c`, reference §4.10).
//!
//! Each packet destination address (`daddr`) is bound to one real server.
//! A cached server is reused while it is available, has weight > 0 and is not
//! *lblc-overloaded* — more active connections than its weight while some
//! server of the service has fewer than half its weight in active connections
//! (`lblc_overloaded`). The OVERLOAD flag is not consulted on that path.
//! Otherwise WLC over all dests picks a server and the entry is (re)bound to
//! it. Every lookup refreshes the entry's `lastuse`.
//!
//! Garbage collection (`Gc`, shared with `lblcr`) is the kernel's timer,
//! driven by [`Scheduler::tick`]: every 60 s; when the table holds more than
//! 16384 entries (1024 buckets × 16), entries unused for 6 minutes are removed
//! bucket by bucket from a rotating position until `(entries − 16384) × 4/3`
//! (at most 8192) are gone; every 30th run instead removes all entries unused
//! for `lblc_expiration` (default 24 h). The kernel's bucket order
//! (`hash_32(addr_fold(daddr), 10)`) is reproduced for that partial sweep;
//! lookups themselves use a hash map keyed by the full address.
//!
//! The kernel keeps entries pointing to deleted servers until they are next
//! looked up (then the server is "not available" and the entry is rebound).
//! Here entries of a removed server are dropped at once, which schedules the
//! same way.
//!
//! The table ([`Table`]) is one per service, shared by the service's engine
//! replicas (`rvsd --engines per-worker`, [`Scheduler::share`]) as the
//! kernel's is by its CPUs: a concurrent map (papaya) whose lookups take no
//! lock, as the kernel's RCU lookups; an entry's server and last use are
//! atomics updated in place; a rebinding replaces the entry (the kernel
//! replaces its server under the service's lock: two CPUs that miss at
//! once both pick, and the later one's binding stays, here as there). The
//! garbage collector runs in one replica's tick at a time. Entries name
//! servers by their key (address and port, the same in every replica).

use core::net::IpAddr;
use core::time::Duration;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::hash::{addr_fold, hash_32};
use super::shared::{Shared, key_of, resolve_key_at};
use super::wlc::wlc_pick;
use super::{DestChange, SchedError, SchedInput, Scheduler};
use crate::dest::Dest;
use crate::time::Instant;

/// Default `lblc_expiration` / `lblcr_expiration` sysctl: 24 hours.
pub const DEFAULT_EXPIRATION: Duration = Duration::from_secs(24 * 60 * 60);
/// GC timer period.
const CHECK_EXPIRE_INTERVAL: Duration = Duration::from_secs(60);
/// Idle time after which an entry may be collected when the table is full.
const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// Every this many timer runs (without a partial sweep), a full expiration check.
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;
/// `CONFIG_IP_VS_LBLC_TAB_BITS` (and `..._LBLCR_...`).
const TAB_BITS: u32 = 10;
/// Buckets of the kernel table.
const TAB_SIZE: usize = 1 << TAB_BITS;
/// Entries above which the timer starts collecting.
const MAX_SIZE: usize = TAB_SIZE * 16;

/// Lblc-overloaded (`is_overloaded` of lblc/lblcr): `dest` has more active
/// connections than its weight and some dest of the service has
/// `activeconns * 2 < weight`.
pub(crate) fn lblc_overloaded(dest: &Dest, dests: &[Dest]) -> bool {
    dest.active() > dest.weight
        && dests
            .iter()
            .any(|d| u64::from(d.active()) * 2 < u64::from(d.weight))
}

/// A time as an atomic holds it.
pub(crate) struct AtomicInstant(AtomicU64);

impl AtomicInstant {
    pub(crate) fn new(t: Instant) -> Self {
        AtomicInstant(AtomicU64::new(t.as_millis()))
    }

    pub(crate) fn get(&self) -> Instant {
        Instant::from_millis(self.0.load(Ordering::Relaxed))
    }

    /// A lookup's `lastuse = now` (a plain store, as the kernel's).
    pub(crate) fn set(&self, t: Instant) {
        if self.0.load(Ordering::Relaxed) != t.as_millis() {
            self.0.store(t.as_millis(), Ordering::Relaxed);
        }
    }
}

impl core::fmt::Debug for AtomicInstant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.get().fmt(f)
    }
}

/// An entry the garbage collector can age.
pub trait LastUse {
    /// The entry's last lookup.
    fn lastuse(&self) -> Instant;
}

/// A table of lblc or lblcr entries keyed by destination address, with its
/// garbage collector: one per service, shared by its replicas.
#[derive(Debug)]
pub struct TableOf<E> {
    pub(crate) map: papaya::HashMap<IpAddr, E>,
    gc: Gc,
}

impl<E> Default for TableOf<E> {
    fn default() -> Self {
        TableOf {
            map: papaya::HashMap::new(),
            gc: Gc::default(),
        }
    }
}

impl<E: LastUse + Send + Sync> TableOf<E> {
    /// Number of cached destination addresses.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No cached destination addresses.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forget every entry and restart the timer (the scheduler bound anew).
    pub(crate) fn reset(&self) {
        self.map.pin().clear();
        self.gc.reset();
    }

    /// A copy (a scheduler's clone: its own table from now on).
    pub(crate) fn copy(&self, entry: impl Fn(&E) -> E) -> Self {
        let t = TableOf::default();
        {
            let (from, to) = (self.map.pin(), t.map.pin());
            for (k, v) in from.iter() {
                to.insert(*k, entry(v));
            }
        }
        t.gc.copy_from(&self.gc);
        t
    }

    /// Run the garbage collector if due (in one replica at a time).
    pub(crate) fn tick(&self, now: Instant, expiration: Duration) {
        self.gc.tick(now, &self.map, expiration);
    }

    pub(crate) fn arm(&self, now: Instant) {
        self.gc.arm(now);
    }
}

/// The periodic garbage collector of the lblc/lblcr tables.
#[derive(Debug, Default)]
pub(crate) struct Gc {
    /// Next timer expiry, in milliseconds + 1; 0 until the first time is
    /// seen.
    next: AtomicU64,
    /// Where the last sweep stopped and the runs since the last full
    /// check; held by the replica whose tick runs the timer.
    sweep: Mutex<Sweep>,
}

#[derive(Debug, Clone, Copy)]
struct Sweep {
    /// Bucket where the last sweep stopped.
    rover: usize,
    /// Runs since the last full check (starts at 1, like the kernel).
    counter: u32,
}

impl Default for Sweep {
    fn default() -> Self {
        Sweep {
            rover: 0,
            counter: 1,
        }
    }
}

impl Gc {
    /// Arm the timer at the first instant seen (the kernel arms it when the
    /// scheduler is bound; we learn the time with the first call).
    pub(crate) fn arm(&self, now: Instant) {
        if self.next.load(Ordering::Relaxed) == 0 {
            let at = (now + CHECK_EXPIRE_INTERVAL).as_millis() + 1;
            let _ = self
                .next
                .compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Back to unarmed (the scheduler bound anew). Never waits: a sweep
    /// under way in another replica keeps its place (`rover`, `counter`).
    fn reset(&self) {
        self.next.store(0, Ordering::Relaxed);
        if let Ok(mut s) = self.sweep.try_lock() {
            *s = Sweep::default();
        }
    }

    fn copy_from(&self, other: &Gc) {
        self.next
            .store(other.next.load(Ordering::Relaxed), Ordering::Relaxed);
        if let (Ok(mut to), Ok(from)) = (self.sweep.try_lock(), other.sweep.try_lock()) {
            *to = *from;
        }
    }

    /// Where the last partial sweep stopped.
    #[cfg(test)]
    pub(crate) fn rover(&self) -> usize {
        self.sweep.lock().map_or(0, |s| s.rover)
    }

    /// Run the timer if due. Replicas sharing the table all tick it; the
    /// one that finds the collector busy leaves it to the other (never
    /// waits).
    fn tick<E: LastUse + Send + Sync>(
        &self,
        now: Instant,
        table: &papaya::HashMap<IpAddr, E>,
        expiration: Duration,
    ) {
        self.arm(now);
        let Ok(mut sweep) = self.sweep.try_lock() else {
            return;
        };
        let next = match self.next.load(Ordering::Relaxed) {
            // Reset since the arming above (another replica bound the
            // scheduler anew): armed from now on.
            0 => return self.arm(now),
            n => Instant::from_millis(n - 1),
        };
        if now < next {
            return;
        }
        self.next.store(
            (now + CHECK_EXPIRE_INTERVAL).as_millis() + 1,
            Ordering::Relaxed,
        );
        let table = table.pin();
        if sweep.counter.is_multiple_of(COUNT_FOR_FULL_EXPIRATION) {
            // Full check: every bucket, from rover+1 round to rover.
            table.retain(|_, e| now < e.lastuse() + expiration);
            sweep.counter = 1;
            return;
        }
        if table.len() <= MAX_SIZE {
            sweep.counter += 1;
            return;
        }

        let mut goal = ((table.len() - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2) as i64;
        // Expired entries by kernel bucket.
        let mut buckets: Vec<Vec<IpAddr>> = vec![Vec::new(); TAB_SIZE];
        for (addr, e) in table.iter() {
            if now >= e.lastuse() + ENTRY_TIMEOUT {
                buckets[hash_32(addr_fold(addr), TAB_BITS) as usize].push(*addr);
            }
        }
        let mut j = sweep.rover;
        for _ in 0..TAB_SIZE {
            j = (j + 1) % TAB_SIZE;
            for addr in &buckets[j] {
                table.remove(addr);
                goal -= 1;
            }
            if goal <= 0 {
                break;
            }
        }
        sweep.rover = j;
    }
}

/// One cached binding: the server's key, where it was last seen, the last
/// lookup. Atomics, so that replicas sharing the table update it in place.
#[derive(Debug)]
pub struct Entry {
    dest: AtomicU64,
    hint: AtomicU32,
    lastuse: AtomicInstant,
}

impl Entry {
    fn new(dest: u64, hint: usize, now: Instant) -> Self {
        Entry {
            dest: AtomicU64::new(dest),
            hint: AtomicU32::new(hint as u32),
            lastuse: AtomicInstant::new(now),
        }
    }
}

impl LastUse for Entry {
    fn lastuse(&self) -> Instant {
        self.lastuse.get()
    }
}

/// lblc's table.
pub type Table = TableOf<Entry>;

/// Locality-based least-connection scheduler. A clone has its own copy of
/// the table; replicas share one through [`Scheduler::share`].
#[derive(Debug)]
pub struct Lblc {
    table: Arc<Table>,
    expiration: Duration,
}

impl Default for Lblc {
    fn default() -> Self {
        Lblc::with_expiration(DEFAULT_EXPIRATION)
    }
}

impl Clone for Lblc {
    fn clone(&self) -> Self {
        let table = self.table.copy(|e| Entry {
            dest: AtomicU64::new(e.dest.load(Ordering::Relaxed)),
            hint: AtomicU32::new(e.hint.load(Ordering::Relaxed)),
            lastuse: AtomicInstant::new(e.lastuse.get()),
        });
        Lblc {
            table: Arc::new(table),
            expiration: self.expiration,
        }
    }
}

impl Lblc {
    /// A scheduler whose full GC check drops entries unused for `expiration`
    /// (the `lblc_expiration` sysctl).
    pub fn with_expiration(expiration: Duration) -> Self {
        Lblc {
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

impl Scheduler for Lblc {
    fn name(&self) -> &'static str {
        "lblc"
    }

    fn update(&mut self, _dests: &[Dest], change: DestChange) -> Result<(), SchedError> {
        match change {
            DestChange::Init => self.table.reset(),
            DestChange::Removed { key, .. } => self
                .table
                .map
                .pin()
                .retain(|_, e| e.dest.load(Ordering::Relaxed) != key),
            DestChange::Added(_) | DestChange::Edited(_) => {}
        }
        Ok(())
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let now = input.now;
        self.table.arm(now);
        let table = self.table.map.pin();
        if let Some(en) = table.get(&input.daddr) {
            en.lastuse.set(now);
            if let Some(i) = resolve_key_at(dests, en.dest.load(Ordering::Relaxed), &en.hint) {
                let d = &dests[i];
                if d.available && d.weight > 0 && !lblc_overloaded(d, dests) {
                    return Some(i);
                }
            }
        }
        let i = wlc_pick(dests, Dest::overhead)?;
        table.insert(input.daddr, Entry::new(key_of(&dests[i]), i, now));
        Some(i)
    }

    fn tick(&mut self, now: Instant) {
        self.table.tick(now, self.expiration);
    }

    fn shared(&self) -> Option<Shared> {
        Some(Shared::Lblc(self.table.clone()))
    }

    fn share(&mut self, with: Shared) {
        if let Shared::Lblc(t) = with {
            self.table = t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::hash::support::*;
    use super::*;
    use crate::dest::DestId;

    fn lblc(dests: &[Dest]) -> Lblc {
        let mut s = Lblc::default();
        init(&mut s, dests);
        s
    }

    fn at(daddr: IpAddr, secs: u64) -> SchedInput {
        to(daddr, Instant::from_secs(secs))
    }

    #[test]
    fn same_destination_sticks() {
        let mut dests = list(&[1, 1, 1]);
        let mut s = lblc(&dests);
        let a = client(1);
        let b = client(2);
        // WLC: all idle -> first.
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        dests[0].activeconns = 1;
        // A new address goes to the least loaded, the cached one stays.
        assert_eq!(pick(&mut s, &dests, &at(b, 0)), Some(2));
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        // Even when dest 1 is busier than others (not lblc-overloaded).
        dests[0].activeconns = 1;
        dests[0].inactconns = 500;
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn cached_path_ignores_the_overload_flag() {
        let mut dests = list(&[1, 1]);
        let mut s = lblc(&dests);
        let a = client(1);
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        dests[0].overload = true;
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        // A new address does not get it.
        assert_eq!(pick(&mut s, &dests, &at(client(2), 0)), Some(2));
    }

    #[test]
    fn rebinds_when_quiesced() {
        let mut dests = list(&[1, 1]);
        let mut s = lblc(&dests);
        let a = client(1);
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        dests[0].weight = 0;
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(2));
        dests[0].weight = 1;
        // Now bound to 2.
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(2));
    }

    #[test]
    fn rebinds_when_lblc_overloaded() {
        let mut dests = list(&[2, 4]);
        let mut s = lblc(&dests);
        let a = client(1);
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        // 3 active > weight 2, but nobody has active*2 < weight: stay.
        conns(&mut dests, &[(3, 0), (2, 0)]);
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        // Dest 2 at 1 active: 2 < 4, so dest 1 is overloaded: rebind by WLC.
        conns(&mut dests, &[(3, 0), (1, 0)]);
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(2));
        conns(&mut dests, &[(0, 0), (3, 0)]);
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(2));
    }

    #[test]
    fn removed_dest_entries_are_dropped() {
        let mut dests = list(&[1, 1]);
        let mut s = lblc(&dests);
        let a = client(1);
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(1));
        dests[1].inactconns = 5;
        remove(&mut s, &mut dests, DestId(1));
        assert!(s.is_empty());
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(2));
        add(&mut s, &mut dests, dest(3, 1));
        // Still bound to 2 (cached, not lblc-overloaded), though 3 is idle.
        assert_eq!(pick(&mut s, &dests, &at(a, 0)), Some(2));
    }

    #[test]
    fn no_server_keeps_the_stale_entry() {
        let mut dests = list(&[1]);
        let mut s = lblc(&dests);
        assert_eq!(pick(&mut s, &dests, &at(client(1), 0)), Some(1));
        dests[0].weight = 0;
        assert_eq!(pick(&mut s, &dests, &at(client(1), 0)), None);
        assert_eq!(pick(&mut s, &dests, &at(client(2), 0)), None);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn full_check_every_30_minutes_removes_entries_older_than_expiration() {
        let dests = list(&[1, 1]);
        let mut s = Lblc::with_expiration(Duration::from_secs(600));
        init(&mut s, &dests);
        pick(&mut s, &dests, &at(client(1), 0));
        pick(&mut s, &dests, &at(client(2), 0));
        // Timer runs at 60, 120, …; the 30th run (t = 1800) is the full check.
        for t in (60..1800).step_by(60) {
            if t == 1500 {
                pick(&mut s, &dests, &at(client(2), t)); // refresh entry 2
            }
            s.tick(Instant::from_secs(t));
            assert_eq!(s.len(), 2, "t = {t}");
        }
        s.tick(Instant::from_secs(1800));
        // Entry 1 unused for 1800 s >= 600 s; entry 2 for 300 s.
        assert_eq!(s.len(), 1);
        assert!(s.table.map.pin().contains_key(&client(2)));
    }

    #[test]
    fn default_expiration_is_a_day() {
        let dests = list(&[1]);
        let mut s = lblc(&dests);
        pick(&mut s, &dests, &at(client(1), 0));
        // Ticks every minute for almost a day: the entry stays.
        let mut t = 60;
        while t < 86_400 {
            s.tick(Instant::from_secs(t));
            t += 60;
        }
        assert_eq!(s.len(), 1);
        // The next full checks (every 30 min) after 24 h remove it.
        while t <= 86_400 + 1800 {
            s.tick(Instant::from_secs(t));
            t += 60;
        }
        assert!(s.is_empty());
    }

    #[test]
    fn ticks_between_timer_expiries_do_nothing() {
        let dests = list(&[1]);
        let mut s = Lblc::with_expiration(Duration::from_secs(1));
        init(&mut s, &dests);
        pick(&mut s, &dests, &at(client(1), 0));
        // Many ticks within one interval count as one run at most.
        for ms in 0..60_000u64 {
            if ms % 1000 == 0 {
                s.tick(Instant::from_millis(ms));
            }
        }
        for t in 1..=29 {
            s.tick(Instant::from_secs(60 * t));
        }
        assert_eq!(s.len(), 1);
        s.tick(Instant::from_secs(60 * 30));
        assert!(s.is_empty());
    }

    #[test]
    fn over_capacity_collects_idle_entries() {
        let dests = list(&[1]);
        let mut s = lblc(&dests);
        let n = MAX_SIZE + 3000;
        // Old entries at t = 0, fresh ones at t = 500.
        for k in 0..n as u32 {
            let t = if k < 4000 { 0 } else { 500 };
            pick(&mut s, &dests, &at(client(k), t));
        }
        assert_eq!(s.len(), n);
        // First run at 60 s: nothing idle for 6 minutes yet.
        s.tick(Instant::from_secs(60));
        assert_eq!(s.len(), n);
        // At 600 s the 4000 old entries are idle: goal 3000 * 4/3 = 4000,
        // removed bucket by bucket; the fresh ones stay.
        s.tick(Instant::from_secs(600));
        assert_eq!(s.len(), n - 4000);
        assert!((4000..n as u32).all(|k| s.table.map.pin().contains_key(&client(k))));
    }

    #[test]
    fn partial_sweep_stops_at_the_bucket_reaching_the_goal() {
        let dests = list(&[1]);
        let mut s = lblc(&dests);
        let n = MAX_SIZE + 3;
        for k in 0..n as u32 {
            pick(&mut s, &dests, &at(client(k), 0));
        }
        s.tick(Instant::from_secs(60));
        s.tick(Instant::from_secs(400));
        // Goal 4: buckets 1, 2, … are swept whole until 4 entries are gone.
        let mut per_bucket = vec![0usize; TAB_SIZE];
        for k in 0..n as u32 {
            per_bucket[hash_32(addr_fold(&client(k)), TAB_BITS) as usize] += 1;
        }
        let mut removed = 0;
        let mut j = 0;
        while removed < 4 {
            j += 1;
            removed += per_bucket[j];
        }
        assert_eq!(s.len(), n - removed);
        assert_eq!(s.table.gc.rover(), j);
    }
}
