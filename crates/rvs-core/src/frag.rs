//! IP fragments: the decision of a datagram's first fragment, remembered
//! for the others.
//!
//! The kernel reassembles fragments before IPVS sees them (`ip_vs_in`
//! runs after defragmentation) and fragments again on the way out. rvs
//! forwards fragments as they come instead, and tracks them by datagram:
//! the key is (source, destination, protocol, IP identification), the
//! datagram's identity for RFC 791. Only the first fragment (offset 0)
//! carries the transport header, so it alone goes through the connection
//! lookup and the scheduler; what was decided for it (forward to this real
//! server with this method, translate this NAT reply, pass, drop) is
//! recorded here, and the datagram's other fragments are handled the same
//! way without a transport header: DR rewrites MACs only, NAT the IP
//! header only (the first fragment's transport checksum covers the whole
//! datagram and is updated incrementally, which stays right), TUN
//! encapsulates each fragment (cut again if it does not fit, see
//! [`rvs_wire::ipv4_fragment`]).
//!
//! Fragments that come before their first fragment are held, bounded: at
//! most [`FragConfig::max_pending`] datagrams waiting, [`FragConfig::max_held_per_datagram`]
//! fragments each and [`FragConfig::max_held_bytes`] bytes in all; beyond
//! that a fragment is dropped ([`FragCounters::no_room`]). When the first
//! fragment comes, the held ones are released ([`FragTable::pop_released`])
//! for the data plane to process again after it.
//!
//! Every datagram is forgotten [`FRAG_TIMEOUT`] after its first fragment
//! (of any offset) was seen; fragments still held then are dropped
//! ([`FragCounters::expired`]). The kernel keeps an incomplete datagram
//! for `ipfrag_time`, 30 s; 5 s is plenty for fragments that left the
//! sender together and keeps the table small (a datagram whose pieces
//! take longer is lost, as when the kernel's queue is full). A datagram
//! whose bytes have all been seen (the last fragment gave its length) is
//! forgotten at once. The table holds at most [`FragConfig::max_datagrams`]
//! datagrams; when full, the oldest is evicted ([`FragCounters::evicted`]).
//!
//! Not handled (yet): IPv6 fragments. The engine passes them (the XDP
//! classifier does not walk IPv6 extension headers, so it leaves them to
//! the kernel), and [`FragKey::ident`] is wide enough for the Fragment
//! header's 32-bit identification when they are. A datagram whose pieces
//! come through several rvs directors (ECMP in front) cannot be tracked
//! either: each sees only its share.
//!
//! Pure and deterministic like the rest of the core: time is passed in.

use core::net::IpAddr;
use core::time::Duration;
use std::collections::VecDeque;

use hashbrown::HashMap;

use crate::engine::PortId;
use crate::time::Instant;

/// How long a datagram is remembered after its first-seen fragment.
pub const FRAG_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes before a held fragment in its buffer (room for a tunnel header
/// when it is processed again).
pub const HELD_HEADROOM: usize = 128;

/// Bounds of the fragment table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragConfig {
    /// Datagrams tracked at most (decided or waiting).
    pub max_datagrams: usize,
    /// Datagrams waiting for their first fragment at most.
    pub max_pending: usize,
    /// Fragments held per waiting datagram at most.
    pub max_held_per_datagram: usize,
    /// Bytes of held fragments at most, in all.
    pub max_held_bytes: usize,
}

impl Default for FragConfig {
    fn default() -> Self {
        FragConfig {
            max_datagrams: 16384,
            max_pending: 1024,
            max_held_per_datagram: 64,
            max_held_bytes: 4 << 20,
        }
    }
}

/// A datagram's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol.
    pub proto: u8,
    /// IPv4 identification (IPv6: the Fragment header's).
    pub ident: u32,
}

/// A fragment held until its datagram's first fragment comes.
#[derive(Debug)]
pub struct HeldFragment {
    /// [`HELD_HEADROOM`] bytes, then the frame.
    pub buf: Vec<u8>,
    /// Port it arrived on.
    pub ingress: PortId,
}

impl HeldFragment {
    /// Length of the frame.
    pub fn len(&self) -> usize {
        self.buf.len() - HELD_HEADROOM
    }

    /// Whether the frame is empty (never: frames are not).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters of the fragment table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragCounters {
    /// Datagrams whose first fragment was decided and recorded.
    pub tracked: u64,
    /// Fragments held, waiting for their first fragment.
    pub held: u64,
    /// Held fragments released when their first fragment came.
    pub released: u64,
    /// Held fragments dropped because their datagram timed out or was evicted.
    pub expired: u64,
    /// Datagrams evicted to make room in a full table.
    pub evicted: u64,
    /// Fragments dropped because the holding bounds were reached.
    pub no_room: u64,
}

#[derive(Debug)]
enum State<D> {
    Decided(D),
    Pending(Vec<HeldFragment>),
}

#[derive(Debug)]
struct Entry<D> {
    state: State<D>,
    seq: u64,
    /// Data bytes seen of the datagram.
    seen: u32,
    /// The datagram's data length, once its last fragment was seen.
    total: Option<u32>,
}

/// The fragment table, generic over the decision `D` recorded per datagram.
#[derive(Debug)]
pub struct FragTable<D> {
    cfg: FragConfig,
    entries: HashMap<FragKey, Entry<D>>,
    /// Entries in creation order, with their expiry; items whose sequence
    /// number no longer matches the entry are stale.
    order: VecDeque<(Instant, FragKey, u64)>,
    next_seq: u64,
    pending: usize,
    held_bytes: usize,
    released: VecDeque<HeldFragment>,
    spare: Vec<Vec<u8>>,
    counters: FragCounters,
}

impl<D: Copy> FragTable<D> {
    /// An empty table.
    pub fn new(cfg: FragConfig) -> Self {
        FragTable {
            cfg,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            pending: 0,
            held_bytes: 0,
            released: VecDeque::new(),
            spare: Vec::new(),
            counters: FragCounters::default(),
        }
    }

    /// Counters.
    pub fn counters(&self) -> &FragCounters {
        &self.counters
    }

    /// Datagrams tracked now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no datagram is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of fragments held now (waiting or released, not yet taken).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The decision recorded for `key`'s datagram, if its first fragment came.
    pub fn decision(&self, key: &FragKey) -> Option<D> {
        match self.entries.get(key).map(|e| &e.state) {
            Some(State::Decided(d)) => Some(*d),
            _ => None,
        }
    }

    /// Whether `key`'s datagram is tracked (decided or waiting).
    pub fn contains(&self, key: &FragKey) -> bool {
        self.entries.contains_key(key)
    }

    /// A new entry, evicting the oldest one when the table is full.
    fn insert(&mut self, key: FragKey, state: State<D>, now: Instant) -> &mut Entry<D> {
        while self.entries.len() >= self.cfg.max_datagrams.max(1) {
            if !self.evict_oldest() {
                break;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back((now + FRAG_TIMEOUT, key, seq));
        if self.order.len() > 2 * self.cfg.max_datagrams.max(16) {
            let entries = &self.entries;
            self.order
                .retain(|(_, k, s)| entries.get(k).is_some_and(|e| e.seq == *s));
        }
        self.entries.entry(key).insert(Entry {
            state,
            seq,
            seen: 0,
            total: None,
        });
        self.entries.get_mut(&key).expect("just inserted")
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((_, k, s)) = self.order.pop_front() {
            if self.entries.get(&k).is_some_and(|e| e.seq == s) {
                self.remove(&k, true);
                self.counters.evicted += 1;
                return true;
            }
        }
        false
    }

    /// Forget `key`; its held fragments are dropped (counted as expired).
    fn remove(&mut self, key: &FragKey, dropped: bool) {
        let Some(e) = self.entries.remove(key) else {
            return;
        };
        if let State::Pending(frames) = e.state {
            self.pending -= 1;
            for f in frames {
                self.held_bytes -= f.buf.len();
                if dropped {
                    self.counters.expired += 1;
                }
                self.spare.push(f.buf);
            }
        }
    }

    /// Record the decision of `key`'s first fragment: its held fragments
    /// are released ([`FragTable::pop_released`]).
    pub fn record(&mut self, key: FragKey, d: D, now: Instant) {
        match self.entries.get_mut(&key) {
            Some(e) => {
                let old = core::mem::replace(&mut e.state, State::Decided(d));
                if let State::Pending(frames) = old {
                    self.pending -= 1;
                    self.counters.tracked += 1;
                    self.counters.released += frames.len() as u64;
                    self.released.extend(frames);
                }
            }
            None => {
                self.insert(key, State::Decided(d), now);
                self.counters.tracked += 1;
            }
        }
    }

    /// Hold a fragment of `key` whose first fragment has not come
    /// (`frame`: the whole frame). False if there was no room (counted);
    /// the caller drops it then.
    pub fn hold(&mut self, key: FragKey, frame: &[u8], ingress: PortId, now: Instant) -> bool {
        let size = HELD_HEADROOM + frame.len();
        if self.held_bytes + size > self.cfg.max_held_bytes {
            self.counters.no_room += 1;
            return false;
        }
        let exists = match self.entries.get(&key).map(|e| &e.state) {
            Some(State::Pending(frames)) if frames.len() >= self.cfg.max_held_per_datagram => {
                self.counters.no_room += 1;
                return false;
            }
            Some(State::Pending(_)) => true,
            Some(State::Decided(_)) => return false,
            None => false,
        };
        if !exists {
            if self.pending >= self.cfg.max_pending {
                self.counters.no_room += 1;
                return false;
            }
            self.insert(key, State::Pending(Vec::new()), now);
            self.pending += 1;
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.resize(HELD_HEADROOM, 0);
        buf.extend_from_slice(frame);
        self.held_bytes += buf.len();
        if let Some(Entry {
            state: State::Pending(frames),
            ..
        }) = self.entries.get_mut(&key)
        {
            frames.push(HeldFragment { buf, ingress });
            self.counters.held += 1;
            true
        } else {
            self.held_bytes -= size;
            false
        }
    }

    /// Account `data_len` bytes of `key`'s datagram at `offset` handled
    /// (`more`: MF set); once every byte up to the last fragment's end was
    /// seen the datagram is forgotten.
    pub fn seen(&mut self, key: &FragKey, offset: u32, data_len: u32, more: bool) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        e.seen = e.seen.saturating_add(data_len);
        if !more {
            e.total = Some(offset.saturating_add(data_len));
        }
        if e.total.is_some_and(|t| e.seen >= t) && matches!(e.state, State::Decided(_)) {
            self.remove(key, false);
        }
    }

    /// A released fragment to process again (after the first fragment that
    /// released it), oldest first.
    pub fn pop_released(&mut self) -> Option<HeldFragment> {
        let f = self.released.pop_front()?;
        self.held_bytes -= f.buf.len();
        Some(f)
    }

    /// Whether released fragments wait to be taken.
    pub fn has_released(&self) -> bool {
        !self.released.is_empty()
    }

    /// Give a buffer back for the next held fragment.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < 64 {
            self.spare.push(buf);
        }
    }

    /// Forget the datagrams whose time is up; their held fragments are
    /// dropped.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(at, k, s)) = self.order.front() {
            if at > now {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&k).is_some_and(|e| e.seq == s) {
                self.remove(&k, true);
            }
        }
    }

    /// Forget everything (held fragments dropped, not counted).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.released.clear();
        self.pending = 0;
        self.held_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn key(ident: u32) -> FragKey {
        FragKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            proto: 17,
            ident,
        }
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn first_then_others_then_complete() {
        let mut ft = FragTable::<u8>::new(FragConfig::default());
        ft.record(key(1), 7, t(0));
        assert_eq!(ft.decision(&key(1)), Some(7));
        assert_eq!(ft.decision(&key(2)), None);
        ft.seen(&key(1), 0, 1480, true);
        ft.seen(&key(1), 2960, 48, false);
        assert!(ft.contains(&key(1)));
        ft.seen(&key(1), 1480, 1480, true);
        assert!(!ft.contains(&key(1)), "every byte seen");
        assert_eq!(ft.counters().tracked, 1);
    }

    #[test]
    fn held_then_released_in_order() {
        let mut ft = FragTable::<u8>::new(FragConfig::default());
        let p = PortId(3);
        assert!(ft.hold(key(1), &[1; 60], p, t(0)));
        assert!(ft.hold(key(1), &[2; 70], p, t(1)));
        assert_eq!(ft.decision(&key(1)), None);
        assert!(!ft.has_released());
        ft.record(key(1), 9, t(2));
        let a = ft.pop_released().unwrap();
        let b = ft.pop_released().unwrap();
        assert!(ft.pop_released().is_none());
        assert_eq!((a.len(), a.buf[HELD_HEADROOM], a.ingress), (60, 1, p));
        assert_eq!((b.len(), b.buf[HELD_HEADROOM]), (70, 2));
        assert_eq!(ft.held_bytes(), 0);
        let c = ft.counters();
        assert_eq!((c.held, c.released, c.tracked), (2, 2, 1));
    }

    #[test]
    fn bounds_and_eviction() {
        let cfg = FragConfig {
            max_datagrams: 4,
            max_pending: 2,
            max_held_per_datagram: 2,
            max_held_bytes: 3 * (HELD_HEADROOM + 100),
        };
        let mut ft = FragTable::<u8>::new(cfg);
        let p = PortId(1);
        assert!(ft.hold(key(1), &[0; 100], p, t(0)));
        assert!(ft.hold(key(1), &[0; 100], p, t(0)));
        assert!(!ft.hold(key(1), &[0; 100], p, t(0)), "per datagram");
        assert!(ft.hold(key(2), &[0; 100], p, t(0)));
        assert!(!ft.hold(key(3), &[0; 10], p, t(0)), "pending datagrams");
        ft.record(key(2), 1, t(0));
        let _ = ft.pop_released();
        assert!(ft.hold(key(3), &[0; 100], p, t(0)));
        assert!(!ft.hold(key(3), &[0; 100], p, t(0)), "bytes");
        assert_eq!(ft.counters().no_room, 3);
        // Full (1, 2, 3 tracked, 4 makes four): the fifth evicts the oldest (1).
        ft.record(key(4), 1, t(1));
        ft.record(key(5), 1, t(1));
        assert!(!ft.contains(&key(1)));
        assert!(ft.contains(&key(5)));
        assert_eq!(ft.counters().evicted, 1);
        assert_eq!(ft.counters().expired, 2, "key 1's two held fragments");
        assert_eq!(ft.held_bytes(), HELD_HEADROOM + 100);
    }

    #[test]
    fn expiry() {
        let mut ft = FragTable::<u8>::new(FragConfig::default());
        assert!(ft.hold(key(1), &[0; 50], PortId(1), t(0)));
        ft.record(key(2), 1, t(1000));
        ft.expire(t(4999));
        assert_eq!(ft.len(), 2);
        ft.expire(t(5000));
        assert!(!ft.contains(&key(1)));
        assert!(ft.contains(&key(2)));
        assert_eq!(ft.counters().expired, 1);
        assert_eq!(ft.held_bytes(), 0);
        ft.expire(t(6000));
        assert!(ft.is_empty());
        // A late first fragment of an expired datagram is tracked afresh.
        ft.record(key(1), 3, t(7000));
        assert!(!ft.has_released());
        assert_eq!(ft.decision(&key(1)), Some(3));
    }
}
