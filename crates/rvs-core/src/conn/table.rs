// Over ~800 lines on purpose (issue #14): the arena, its two hashed indices and the timer wheel keep one invariant (every live entry in each, exactly once), so their insert, remove, re-key and expiry paths stay in one file (the SIP templates' Call-ID map too, emptied where a slot is); the wheel, the keys and the states are in their own.
//! [`ConnTable`]: slab arena + keyed hash indices + timing wheel.

use core::fmt;
use core::net::IpAddr;
use core::ops::{Deref, DerefMut};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hashbrown::HashTable;

use super::key::{KeyHasher, KeySnap};
use super::state::{self, Activity, Direction, EXPIRE_LATER_MS, SctpEvent, TPL_ASSURED, Timeouts};
use super::wheel::Wheel;
use super::{Conn, ConnId};
use crate::time::Instant;

#[cfg(test)]
mod checks;
mod guard;

pub use guard::ConnMut;

/// Index values: slab index in the low 31 bits; in the *in* index the top
/// bit records that the entry is also in the *out* index.
const IDX_MASK: u32 = 0x7fff_ffff;
const OUT_BIT: u32 = 0x8000_0000;

/// The largest `max_entries` a table accepts (2³¹ − 1).
pub const MAX_ENTRIES_LIMIT: usize = IDX_MASK as usize;

/// Sizing of a [`ConnTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnTableConfig {
    /// Hard cap on entries (conns + templates); clamped to [`MAX_ENTRIES_LIMIT`].
    pub max_entries: usize,
    /// Timing-wheel tick in milliseconds: expiry is at most this late.
    pub wheel_tick_ms: u64,
    /// Timing-wheel slots (rounded up to a power of two); the wheel spans
    /// `wheel_slots * wheel_tick_ms`. Longer timeouts work (they are re-armed
    /// when the span's end comes round).
    pub wheel_slots: usize,
    /// Entries to allocate up front (arena and in index), to avoid rehash
    /// pauses on the data path. Clamped to `max_entries`.
    pub initial_capacity: usize,
    /// Entries to allocate up front in the out index (NAT entries only).
    /// Growing an index re-reads every entry it holds to rehash it.
    pub initial_out_capacity: usize,
}

impl Default for ConnTableConfig {
    /// 1 Mi entries, 1 s ticks, 4096 slots (68 min span), nothing preallocated.
    fn default() -> Self {
        ConnTableConfig {
            max_entries: 1 << 20,
            wheel_tick_ms: 1000,
            wheel_slots: 4096,
            initial_capacity: 0,
            initial_out_capacity: 0,
        }
    }
}

/// [`ConnTable::insert`] on a full table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("connection table full")]
pub struct TableFull;

/// The connection table of one worker. See the [module docs](super).
pub struct ConnTable {
    /// The arena. `None` = free slot (listed in `free`).
    slots: Vec<Option<Conn>>,
    /// Armed wheel tick (truncated) per slot.
    armed: Vec<u32>,
    free: Vec<u32>,
    len: usize,
    /// In index: `(proto, template, caddr, cport, vaddr, vport)`.
    idx_in: HashTable<u32>,
    /// Out index: `(proto, daddr, dport, caddr, cport)`; NAT entries only.
    idx_out: HashTable<u32>,
    hasher: KeyHasher,
    wheel: Wheel,
    max_entries: usize,
    /// The entries of every table that shares this one's bound (engine
    /// replicas: `max_entries` is then their sum's bound), with the room
    /// each has reserved but not used yet; `None`: this table's own `len`
    /// is what the bound counts.
    shared_len: Option<Arc<AtomicUsize>>,
    /// Room reserved in `shared_len` and not used yet: taken in chunks
    /// ([`ConnTable::reserve_chunk`]), so that replicas inserting at once
    /// write the shared count once per chunk, not once per entry.
    spare: usize,
    dropped_full: u64,
    /// The persistence-engine data (a SIP Call-ID) of the templates that
    /// have some, by slab index. Such a template's `cport` holds a tag of
    /// the data ([`pe_tag`]): IPVS's templates have cport 0 and hash their
    /// PE data instead; the tag puts it in the in-key without growing
    /// every entry. Listings and sync show such templates' cport as 0.
    pe: BTreeMap<u32, Box<[u8]>>,
}

/// The tag a template with persistence-engine data `data` carries as its
/// `cport`: never 0, so that a template without PE data (cport 0) and one
/// with never share an in-key. FNV-1a folded to 16 bits; a collision only
/// puts two templates of one client in one hash chain (the data is
/// compared).
pub fn pe_tag(data: &[u8]) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    ((h >> 16) ^ h) as u16 | 1
}

impl fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnTable")
            .field("len", &self.len)
            .field("max_entries", &self.max_entries)
            .field("out_indexed", &self.idx_out.len())
            .field("dropped_full", &self.dropped_full)
            .field("wheel_tick_ms", &self.wheel.tick_ms())
            .field("wheel_slots", &self.wheel.slot_count())
            .finish_non_exhaustive()
    }
}

#[inline(always)]
fn slot_conn(slots: &[Option<Conn>], v: u32) -> &Conn {
    match slots.get((v & IDX_MASK) as usize) {
        Some(Some(c)) => c,
        _ => unreachable!("conn index points at a free slot"),
    }
}

/// `a == b`, reading only the bytes of their family: the packet path's
/// addresses come straight from the parser, which wrote an IPv4 address in
/// five bytes; the derived comparison's 16-byte read of it would wait on
/// store forwarding at every look-up.
#[inline(always)]
fn same_addr(a: &IpAddr, b: &IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.to_bits() == b.to_bits(),
        (IpAddr::V6(a), IpAddr::V6(b)) => a.to_bits() == b.to_bits(),
        _ => false,
    }
}

impl ConnTable {
    /// An empty table. `hash_key` seeds the keyed hash: pass 256 fresh random
    /// bits (e.g. from `getrandom`) per table.
    pub fn new(cfg: ConnTableConfig, hash_key: [u64; 4]) -> Self {
        let max_entries = cfg.max_entries.min(MAX_ENTRIES_LIMIT);
        let initial = cfg.initial_capacity.min(max_entries);
        ConnTable {
            slots: Vec::with_capacity(initial),
            armed: Vec::with_capacity(initial),
            free: Vec::new(),
            len: 0,
            idx_in: HashTable::with_capacity(initial),
            idx_out: HashTable::with_capacity(cfg.initial_out_capacity.min(max_entries)),
            hasher: KeyHasher::new(hash_key),
            wheel: Wheel::new(cfg.wheel_tick_ms, cfg.wheel_slots),
            max_entries,
            shared_len: None,
            spare: 0,
            dropped_full: 0,
            pe: BTreeMap::new(),
        }
    }

    /// Count this table's entries against one bound with other tables
    /// (engine replicas): with `with`, theirs; without, a new count that
    /// others may join ([`ConnTable::bound_share`]). This table's entries
    /// are added to it. The bound itself ([`ConnTable::capacity_limit`])
    /// then holds for all of them together (give them the same one).
    pub fn share_bound(&mut self, with: Option<Arc<AtomicUsize>>) {
        let share = with.unwrap_or_default();
        if self
            .shared_len
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, &share))
        {
            return;
        }
        if let Some(old) = self.shared_len.take() {
            old.fetch_sub(self.len + self.spare, Ordering::Relaxed);
        }
        self.spare = 0;
        share.fetch_add(self.len, Ordering::Relaxed);
        self.shared_len = Some(share);
    }

    /// How much room a shared table reserves at a time: 1/1024 of the
    /// bound, at most 64 (so the default bound's replicas write the shared
    /// count once per 64 entries, and a small bound stays exact).
    fn reserve_chunk(&self) -> usize {
        (self.max_entries / 1024).clamp(1, 64)
    }

    /// Room for one more entry: this table's own bound, or room reserved
    /// in the shared count (a chunk at a time, or what is left of it).
    fn make_room(&mut self) -> bool {
        let Some(shared) = &self.shared_len else {
            return self.len < self.max_entries;
        };
        if self.spare == 0 {
            let chunk = self.reserve_chunk();
            let max = self.max_entries;
            let got = shared.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then(|| n + chunk.min(max - n))
            });
            match got {
                Ok(n) => self.spare = chunk.min(max - n),
                Err(_) => return false,
            }
        }
        self.spare -= 1;
        true
    }

    /// An entry left: its room goes back to this table's reserve, and a
    /// reserve over two chunks gives one back to the shared count (the
    /// slack keeps a table that inserts and removes around a chunk's edge
    /// from writing the shared count every time).
    fn free_room(&mut self) {
        if let Some(shared) = &self.shared_len {
            self.spare += 1;
            let chunk = self.reserve_chunk();
            // A bound small enough for chunks of 1 stays exact: the room
            // goes back at once.
            let keep = if chunk == 1 { 0 } else { 2 * chunk };
            if self.spare > keep {
                shared.fetch_sub(chunk, Ordering::Relaxed);
                self.spare -= chunk;
            }
        }
    }

    /// The count this table's bound is shared through, if it is.
    pub fn bound_share(&self) -> Option<Arc<AtomicUsize>> {
        self.shared_len.clone()
    }

    /// The entries the bound counts: this table's, or those of every table
    /// sharing the bound ([`ConnTable::share_bound`]) with the room they
    /// have reserved (at most two chunks each, [`ConnTable::reserve_chunk`]).
    #[inline]
    pub fn occupancy(&self) -> usize {
        self.shared_len
            .as_ref()
            .map_or(self.len, |s| s.load(Ordering::Relaxed))
    }

    /// Live entries (conns and templates).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no entry.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The hard cap.
    #[inline]
    pub fn capacity_limit(&self) -> usize {
        self.max_entries
    }

    /// Insertions refused because the table was full.
    #[inline]
    pub fn dropped_full(&self) -> u64 {
        self.dropped_full
    }

    /// Entries present in the out index (NAT).
    #[inline]
    pub fn out_indexed(&self) -> usize {
        self.idx_out.len()
    }

    // -- lookups -----------------------------------------------------------

    /// The non-template entry for a client → virtual packet.
    #[inline]
    pub fn lookup_in(
        &self,
        proto: u8,
        caddr: &IpAddr,
        cport: u16,
        vaddr: &IpAddr,
        vport: u16,
    ) -> Option<ConnId> {
        let h = self
            .hasher
            .hash_in(proto, false, caddr, cport, vaddr, vport);
        let slots = &self.slots;
        self.idx_in
            .find(h, |&v| {
                let c = slot_conn(slots, v);
                c.cport == cport
                    && c.vport == vport
                    && c.proto == proto
                    && !c.is_template()
                    && same_addr(&c.caddr, caddr)
                    && same_addr(&c.vaddr, vaddr)
            })
            .map(|&v| ConnId::from_index(v & IDX_MASK))
    }

    /// The entry for a real server → client reply (`daddr:dport` is the
    /// reply's source, `caddr:cport` its destination). Only entries inserted
    /// with `index_out` are found.
    #[inline]
    pub fn lookup_out(
        &self,
        proto: u8,
        daddr: &IpAddr,
        dport: u16,
        caddr: &IpAddr,
        cport: u16,
    ) -> Option<ConnId> {
        if self.idx_out.is_empty() {
            return None;
        }
        let h = self.hasher.hash_out(proto, daddr, dport, caddr, cport);
        let slots = &self.slots;
        self.idx_out
            .find(h, |&v| {
                let c = slot_conn(slots, v);
                c.cport == cport
                    && c.dport == dport
                    && c.proto == proto
                    && same_addr(&c.caddr, caddr)
                    && same_addr(&c.daddr, daddr)
            })
            .map(|&v| ConnId::from_index(v & IDX_MASK))
    }

    /// The persistence template `<proto, snet, 0, vaddr, vport>` (templates only).
    #[inline]
    pub fn lookup_template(
        &self,
        proto: u8,
        snet: IpAddr,
        vaddr: IpAddr,
        vport: u16,
    ) -> Option<ConnId> {
        self.find_template(proto, snet, vaddr, vport, None)
    }

    /// The persistence template `<proto, snet, vaddr, vport>` with the
    /// persistence-engine data `pe` (a SIP Call-ID; see [`pe_tag`]).
    pub fn lookup_template_pe(
        &self,
        proto: u8,
        snet: IpAddr,
        vaddr: IpAddr,
        vport: u16,
        pe: &[u8],
    ) -> Option<ConnId> {
        self.find_template(proto, snet, vaddr, vport, Some(pe))
    }

    /// A template without persistence-engine data (its cport 0), or with
    /// `pe` (its cport the data's tag, never 0, and the data equal).
    #[inline]
    fn find_template(
        &self,
        proto: u8,
        snet: IpAddr,
        vaddr: IpAddr,
        vport: u16,
        pe: Option<&[u8]>,
    ) -> Option<ConnId> {
        let tag = pe.map_or(0, pe_tag);
        let h = self.hasher.hash_in(proto, true, &snet, tag, &vaddr, vport);
        let (slots, data) = (&self.slots, &self.pe);
        self.idx_in
            .find(h, |&v| {
                let c = slot_conn(slots, v);
                c.cport == tag
                    && c.vport == vport
                    && c.proto == proto
                    && c.is_template()
                    && c.caddr == snet
                    && c.vaddr == vaddr
                    && pe.is_none_or(|pe| data.get(&(v & IDX_MASK)).is_some_and(|d| **d == *pe))
            })
            .map(|&v| ConnId::from_index(v & IDX_MASK))
    }

    /// The persistence-engine data of template `id`, if it has some.
    #[inline]
    pub fn pe_data(&self, id: ConnId) -> Option<&[u8]> {
        if self.pe.is_empty() {
            return None;
        }
        self.pe.get(&id.index()).map(|d| &**d)
    }

    /// The client port entry `id` shows in listings and sync messages:
    /// its `cport`, but 0 for a template with persistence-engine data
    /// (whose `cport` is the data's tag).
    #[inline]
    pub fn shown_cport(&self, id: ConnId, c: &Conn) -> u16 {
        c.shown_cport(self.pe_data(id).is_some())
    }

    // -- access ------------------------------------------------------------

    /// The entry `id`, if live.
    #[inline]
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slots.get(id.index() as usize)?.as_ref()
    }

    /// Mutable access to entry `id` through a guard that derefs to [`Conn`].
    ///
    /// Any field except the key fields (`proto`, `caddr`, `cport`, `vaddr`,
    /// `vport`, `daddr`, `dport`, the TEMPLATE flag), `control` and
    /// `n_control` may be changed. Changing `expires` is legal in both
    /// directions: moving it later (the per-packet refresh) costs nothing,
    /// and if it moved earlier the guard re-arms the timing wheel when it
    /// drops. Use [`Self::rekey`] / [`Self::set_control`] /
    /// [`Self::neutralize_template`] to change the others; debug builds
    /// assert that the guard did not.
    #[inline]
    pub fn get_mut(&mut self, id: ConnId) -> Option<ConnMut<'_>> {
        let idx = id.index();
        let ConnTable {
            slots,
            armed,
            wheel,
            ..
        } = self;
        let conn = slots.get_mut(idx as usize)?.as_mut()?;
        let old_expires = conn.expires;
        #[cfg(debug_assertions)]
        let check = (KeySnap::of(conn), conn.control, conn.n_control);
        Some(ConnMut {
            armed: &mut armed[idx as usize],
            conn,
            wheel,
            idx,
            old_expires,
            #[cfg(debug_assertions)]
            check,
        })
    }

    /// Change any fields of entry `id`, key fields and `control` included:
    /// the entry is re-indexed, `n_control` counts follow `control` (a dead
    /// or self-referencing handle is cleared), and the wheel follows an
    /// earlier `expires`. Returns false if `id` is not live. (`n_control`
    /// itself stays the table's: writes to it are undone.)
    pub fn rekey(&mut self, id: ConnId, f: impl FnOnce(&mut Conn)) -> bool {
        let idx = id.index();
        let Some(c) = self.slot_mut(idx) else {
            return false;
        };
        let snap = Snapshot {
            key: KeySnap::of(c),
            control: c.control,
            n_control: c.n_control,
            expires: c.expires,
        };
        f(c);
        self.after_rekey(idx, &snap);
        true
    }

    /// Set entry `id`'s control (moving the `n_control` count). Returns
    /// false if `id` is not live.
    pub fn set_control(&mut self, id: ConnId, control: Option<ConnId>) -> bool {
        self.rekey(id, |c| c.control = control)
    }

    /// Iterate over the entries from slab index `start` on, in slab order
    /// (a listing taken in chunks: a later chunk starts after the last
    /// handle the previous one returned).
    pub fn iter_from(&self, start: u32) -> impl Iterator<Item = (ConnId, &Conn)> + '_ {
        let start = (start as usize).min(self.slots.len());
        self.slots[start..]
            .iter()
            .enumerate()
            .filter_map(move |(i, s)| {
                s.as_ref()
                    .map(|c| (ConnId::from_index((start + i) as u32), c))
            })
    }

    /// Iterate over all entries, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|c| (ConnId::from_index(i as u32), c)))
    }

    // -- insertion and removal ----------------------------------------------

    /// Insert `conn`, arm its timer at `conn.expires`, index it in the in
    /// index and, with `index_out` (NAT), in the out index. If `conn.control`
    /// names a live entry, that entry's `n_control` is incremented (a dead
    /// control handle is cleared). `conn.n_control` is reset to 0.
    ///
    /// The table does not check for an existing entry with the same key;
    /// look up first (duplicates are allowed, lookups return one of them).
    pub fn insert(
        &mut self,
        mut conn: Conn,
        index_out: bool,
        now: Instant,
    ) -> Result<ConnId, TableFull> {
        if !self.make_room() {
            self.dropped_full += 1;
            return Err(TableFull);
        }
        self.wheel.start(now);
        conn.n_control = 0;
        if let Some(t) = conn.control {
            match self.slot_mut(t.index()) {
                Some(tc) => tc.n_control += 1,
                None => conn.control = None,
            }
        }
        let h_in = self.hasher.hash_in_of(&conn);
        let h_out = index_out.then(|| self.hasher.hash_out_of(&conn));
        let tick = self.wheel.tick_for(conn.expires);

        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(conn);
                self.armed[i as usize] = tick as u32;
                i
            }
            None => {
                let i = self.slots.len() as u32;
                self.slots.push(Some(conn));
                self.armed.push(tick as u32);
                i
            }
        };
        self.len += 1;
        self.wheel.push(tick, idx);

        let (hasher, slots) = (&self.hasher, &self.slots);
        let v = if h_out.is_some() { idx | OUT_BIT } else { idx };
        self.idx_in
            .insert_unique(h_in, v, |&v| hasher.hash_in_of(slot_conn(slots, v)));
        if let Some(h) = h_out {
            self.idx_out
                .insert_unique(h, idx, |&v| hasher.hash_out_of(slot_conn(slots, v)));
        }
        Ok(ConnId::from_index(idx))
    }

    /// Insert the persistence template `conn` with persistence-engine data
    /// `pe` (see [`pe_tag`]; `conn.cport` is set to the tag), as
    /// [`Self::insert`] does (templates are not in the out index).
    pub fn insert_template_pe(
        &mut self,
        mut conn: Conn,
        pe: Box<[u8]>,
        now: Instant,
    ) -> Result<ConnId, TableFull> {
        debug_assert!(conn.is_template());
        conn.cport = pe_tag(&pe);
        let id = self.insert(conn, false, now)?;
        self.pe.insert(id.index(), pe);
        Ok(id)
    }

    /// Remove entry `id` now (conn reuse, flush, …) and return it. If it was
    /// controlled, its control's `n_control` is decremented (the control
    /// itself stays; see [`Self::remove_forced`]). If it still controls
    /// entries, they are detached (`control = None`) — that needs a scan of
    /// the table, so prefer removing controlled entries first.
    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let idx = id.index();
        let n_control = self.slot(idx)?.n_control;
        if n_control > 0 {
            for c in self.slots.iter_mut().flatten() {
                if c.control == Some(id) {
                    c.control = None;
                }
            }
        }
        let mut conn = self.unlink(idx)?;
        conn.n_control = 0;
        Some(conn)
    }

    /// Force-delete entry `id` as the kernel's `ip_vs_conn_del` /
    /// `ip_vs_conn_expire_now` do (flush, `expire_nodest_conn`, drop_entry).
    ///
    /// An entry that still controls others is not removed (returns false).
    /// Otherwise it is removed and pushed to `out`; if this was the last
    /// conn its control held, the control is deleted too (also pushed to
    /// `out`) when it is a template that is not ASSURED, or a non-template
    /// control conn.
    pub fn remove_forced(&mut self, id: ConnId, out: &mut Vec<Conn>) -> bool {
        let idx = id.index();
        match self.slot(idx) {
            Some(c) if c.n_control == 0 => {}
            _ => return false,
        }
        let Some(conn) = self.unlink(idx) else {
            return false;
        };
        let ctl = conn.control;
        out.push(conn);
        if let Some(t) = ctl
            && let Some(tc) = self.slot(t.index())
            && tc.n_control == 0
            && (!tc.is_template() || tc.state & TPL_ASSURED == 0)
        {
            self.remove_forced(t, out);
        }
        true
    }

    /// The kernel's flush loop (`ip_vs_conn_flush`,
    /// `ip_vs_expire_nodest_conn_flush`): every entry for which `pred` holds
    /// and that controls nothing is force-deleted; a control left with no
    /// controlled entries is deleted with it, ASSURED or not. Removed entries
    /// go to `out`. With `|_| true` this empties the table. Full scan.
    pub fn flush_matching(&mut self, mut pred: impl FnMut(&Conn) -> bool, out: &mut Vec<Conn>) {
        for i in 0..self.slots.len() as u32 {
            let ctl = match self.slot(i) {
                Some(c) if c.n_control == 0 && pred(c) => c.control,
                _ => continue,
            };
            self.remove_forced(ConnId::from_index(i), out);
            if let Some(t) = ctl
                && self.slot(t.index()).is_some_and(|tc| tc.n_control == 0)
            {
                self.remove_forced(t, out);
            }
        }
    }

    /// Drop every entry (no accounting; use [`Self::flush_matching`] when
    /// real-server counters must follow). `dropped_full` is kept.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.armed.clear();
        self.free.clear();
        self.idx_in.clear();
        self.idx_out.clear();
        self.wheel.clear();
        if let Some(s) = &self.shared_len {
            s.fetch_sub(self.len + self.spare, Ordering::Relaxed);
        }
        self.spare = 0;
        self.len = 0;
        self.pe.clear();
    }

    /// Make a template unmatchable, as the kernel does with an invalid one:
    /// `cport = 0`, `vport = dport = 0xffff`, re-indexed.
    pub fn neutralize_template(&mut self, id: ConnId) {
        let idx = id.index();
        let Some(c) = self.slot(idx) else { return };
        let old = KeySnap::of(c);
        if let Some(c) = self.slot_mut(idx) {
            c.cport = 0;
            c.vport = 0xffff;
            c.dport = 0xffff;
        }
        self.reindex(idx, &old);
    }

    /// Mark `id`'s control ASSURED if it is a template
    /// (`ip_vs_control_assure_ct`). [`Self::tcp_update`] does this itself.
    pub fn assure_control(&mut self, id: ConnId) {
        let Some(t) = self.get(id).and_then(|c| c.control) else {
            return;
        };
        if let Some(tc) = self.slot_mut(t.index())
            && tc.is_template()
        {
            tc.state |= TPL_ASSURED;
        }
    }

    // -- per-packet updates ---------------------------------------------------

    /// [`state::tcp_update`] on entry `id`, plus: the wheel follows a shorter
    /// timeout, and reaching ESTABLISHED marks the owning template ASSURED.
    /// `None` if `id` is not live.
    #[inline]
    pub fn tcp_update(
        &mut self,
        id: ConnId,
        dir: Direction,
        tcp_flags: u8,
        timeouts: &Timeouts,
        now: Instant,
    ) -> Option<Activity> {
        let idx = id.index();
        let c = self.slot_mut(idx)?;
        let (old_state, old_expires) = (c.state, c.expires);
        let act = state::tcp_update(c, dir, tcp_flags, timeouts, now);
        let est = c.state == state::TcpState::Established as u8 && old_state != c.state;
        let earlier = c.expires < old_expires;
        if earlier {
            self.rearm_if_earlier(idx);
        }
        if est {
            self.assure_control(id);
        }
        Some(act)
    }

    /// [`state::udp_update`] on entry `id`.
    #[inline]
    pub fn udp_update(
        &mut self,
        id: ConnId,
        timeouts: &Timeouts,
        now: Instant,
    ) -> Option<Activity> {
        let idx = id.index();
        let c = self.slot_mut(idx)?;
        let old_expires = c.expires;
        let act = state::udp_update(c, timeouts, now);
        if c.expires < old_expires {
            self.rearm_if_earlier(idx);
        }
        Some(act)
    }

    /// [`state::sctp_update`] on entry `id`.
    #[inline]
    pub fn sctp_update(
        &mut self,
        id: ConnId,
        dir: Direction,
        event: SctpEvent,
        timeouts: &Timeouts,
        now: Instant,
    ) -> Option<Activity> {
        let idx = id.index();
        let c = self.slot_mut(idx)?;
        let old_expires = c.expires;
        let act = state::sctp_update(c, dir, event, timeouts, now);
        if c.expires < old_expires {
            self.rearm_if_earlier(idx);
        }
        Some(act)
    }

    /// Count one client → server packet on entry `id` (`in_pkts`).
    #[inline]
    pub fn count_in_pkt(&mut self, id: ConnId) {
        if let Some(c) = self.slot_mut(id.index()) {
            c.in_pkts = c.in_pkts.wrapping_add(1);
        }
    }

    /// Re-arm entry `id` at `now + timeout_ms` (the kernel's `ip_vs_conn_put`,
    /// e.g. on template reuse). Returns false if `id` is not live.
    #[inline]
    pub fn refresh(&mut self, id: ConnId, now: Instant) -> bool {
        let idx = id.index();
        let Some(c) = self.slot_mut(idx) else {
            return false;
        };
        let old = c.expires;
        c.rearm(now);
        if c.expires < old {
            self.rearm_if_earlier(idx);
        }
        true
    }

    // -- expiry ---------------------------------------------------------------

    /// Remove every entry whose timer ran out (`expires <= now`, seen at the
    /// first wheel tick boundary at or after `expires`), pushing it to `out`.
    ///
    /// An expired entry that still controls others (`n_control > 0`) is kept
    /// and re-armed for 60 s with `timeout_ms` = 60 s (kernel
    /// `expire_later`). Removing a controlled entry decrements its control's
    /// `n_control`; the control then goes at its own next expiry.
    ///
    /// Cost: the due wheel slots (expired entries plus refreshed ones being
    /// lazily re-armed); never a scan of the table.
    pub fn poll_expired(&mut self, now: Instant, out: &mut Vec<Conn>) {
        if !self.wheel.started() {
            self.wheel.start(now);
            return;
        }
        let (first, last) = self.wheel.due_range(now);
        let keep = 2 * (self.len / self.wheel.slot_count()) + 64;
        let mut k = first;
        while k <= last {
            let refs = self.wheel.take(k);
            for &idx in &refs {
                let i = idx as usize;
                let Some(Some(c)) = self.slots.get_mut(i) else {
                    continue;
                };
                if !self.wheel.ref_valid(k, self.armed[i]) {
                    continue;
                }
                if c.expires <= now {
                    if c.n_control > 0 {
                        c.timeout_ms = EXPIRE_LATER_MS;
                        c.expires =
                            Instant::from_millis(now.as_millis() + u64::from(EXPIRE_LATER_MS));
                    } else {
                        if let Some(conn) = self.unlink(idx) {
                            out.push(conn);
                        }
                        continue;
                    }
                }
                let tick = self.wheel.tick_for(c.expires);
                self.armed[i] = tick as u32;
                self.wheel.push(tick, idx);
            }
            self.wheel.give_back(k, refs, keep);
            k += 1;
        }
    }

    /// When [`Self::poll_expired`] next has work: the boundary of the next
    /// wheel tick holding references (possibly stale ones). `None` when
    /// empty. Scans at most the wheel's slots.
    pub fn next_expiry_hint(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        self.wheel.next_nonempty()
    }

    /// Heap bytes held by the table (arena, indices, wheel).
    pub fn approx_memory_bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<Option<Conn>>()
            + self.armed.capacity() * 4
            + self.free.capacity() * 4
            + self.idx_in.allocation_size()
            + self.idx_out.allocation_size()
            + self.wheel.heap_bytes()
            + self.pe.values().map(|d| d.len() + 32).sum::<usize>()
    }

    // -- internals ------------------------------------------------------------

    #[inline]
    fn slot(&self, idx: u32) -> Option<&Conn> {
        self.slots.get(idx as usize)?.as_ref()
    }

    #[inline]
    fn slot_mut(&mut self, idx: u32) -> Option<&mut Conn> {
        self.slots.get_mut(idx as usize)?.as_mut()
    }

    /// Take `idx` out of the indices and the arena; decrement its control's
    /// `n_control`. The wheel keeps a stale reference.
    fn unlink(&mut self, idx: u32) -> Option<Conn> {
        let c = self.slots.get(idx as usize)?.as_ref()?;
        let h_in = self.hasher.hash_in_of(c);
        let v = match self.idx_in.find_entry(h_in, |&v| v & IDX_MASK == idx) {
            Ok(e) => e.remove().0,
            Err(_) => {
                // Only reachable if a key field was changed behind the
                // table's back (release build); recover with a scan.
                debug_assert!(false, "conn {idx} not at its in-index position");
                let mut found = 0;
                self.idx_in.retain(|v| {
                    let hit = *v & IDX_MASK == idx;
                    if hit {
                        found = *v;
                    }
                    !hit
                });
                found
            }
        };
        if v & OUT_BIT != 0 {
            let h_out = self.hasher.hash_out_of(c);
            match self.idx_out.find_entry(h_out, |&v| v == idx) {
                Ok(e) => {
                    e.remove();
                }
                Err(_) => {
                    debug_assert!(false, "conn {idx} not at its out-index position");
                    self.idx_out.retain(|v| *v != idx);
                }
            }
        }
        let conn = self.slots[idx as usize].take()?;
        if !self.pe.is_empty() {
            self.pe.remove(&idx);
        }
        self.free.push(idx);
        self.len -= 1;
        self.free_room();
        if let Some(t) = conn.control
            && let Some(tc) = self.slot_mut(t.index())
        {
            tc.n_control = tc.n_control.saturating_sub(1);
        }
        Some(conn)
    }

    /// Move `idx` from the index positions of `old` to those of its current key.
    fn reindex(&mut self, idx: u32, old: &KeySnap) {
        let (hasher, slots) = (&self.hasher, &self.slots);
        let Some(Some(c)) = slots.get(idx as usize) else {
            return;
        };
        let in_changed = old.in_differs(c);
        let out_changed = old.out_differs(c);
        let has_out = {
            let h_old = hasher.hash_in_snap(old);
            match self.idx_in.find_entry(h_old, |&v| v & IDX_MASK == idx) {
                Ok(e) if in_changed => {
                    let v = e.remove().0;
                    let h_new = hasher.hash_in_of(c);
                    self.idx_in
                        .insert_unique(h_new, v, |&v| hasher.hash_in_of(slot_conn(slots, v)));
                    v & OUT_BIT != 0
                }
                Ok(e) => *e.get() & OUT_BIT != 0,
                Err(_) => unreachable!("live conn missing from the in index"),
            }
        };
        if has_out && out_changed {
            let h_old = hasher.hash_out_snap(old);
            if let Ok(e) = self.idx_out.find_entry(h_old, |&v| v == idx) {
                e.remove();
            }
            let h_new = hasher.hash_out_of(c);
            self.idx_out
                .insert_unique(h_new, idx, |&v| hasher.hash_out_of(slot_conn(slots, v)));
        }
    }

    /// After `expires` moved earlier: arm a new reference if the entry is
    /// currently armed later than its new expiry tick.
    #[inline]
    fn rearm_if_earlier(&mut self, idx: u32) {
        let Some(c) = self.slot(idx) else { return };
        let tick = self.wheel.tick_for(c.expires);
        if self.wheel.earlier(tick, self.armed[idx as usize]) {
            self.armed[idx as usize] = tick as u32;
            self.wheel.push(tick, idx);
        }
    }

    /// Apply the effects of a [`Self::rekey`] session.
    fn after_rekey(&mut self, idx: u32, snap: &Snapshot) {
        let Some(c) = self.slot_mut(idx) else { return };
        c.n_control = snap.n_control;
        let (key_changed, ctl, earlier) = (
            snap.key.in_differs(c) || snap.key.out_differs(c),
            c.control,
            c.expires < snap.expires,
        );
        if key_changed {
            self.reindex(idx, &snap.key);
        }
        if ctl != snap.control {
            if let Some(t) = snap.control
                && let Some(tc) = self.slot_mut(t.index())
            {
                tc.n_control = tc.n_control.saturating_sub(1);
            }
            let valid = match ctl {
                Some(t) if t.index() != idx => match self.slot_mut(t.index()) {
                    Some(tc) => {
                        tc.n_control += 1;
                        true
                    }
                    None => false,
                },
                Some(_) => false,
                None => true,
            };
            if !valid && let Some(c) = self.slot_mut(idx) {
                c.control = None;
            }
        }
        if earlier {
            self.rearm_if_earlier(idx);
        }
    }
}

/// State captured by [`ConnTable::rekey`].
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    key: KeySnap,
    control: Option<ConnId>,
    n_control: u32,
    expires: Instant,
}
