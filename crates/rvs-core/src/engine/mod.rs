//! The per-packet decision: [`Engine::process`].
//!
//! One call takes a whole Ethernet frame and `now`, and returns what to do
//! with it: hand it to the kernel, drop it, send it (rewritten in place) out
//! of a port, or send a reply the engine built (an ICMP error). On the way it
//! looks up or creates the connection, runs the scheduler and persistence,
//! advances the protocol state machine, keeps the real servers' active and
//! inactive counts and the statistics, and rewrites the frame for the
//! forwarding method. It performs no I/O: neighbours and ports are told to it
//! by the data plane ([`Engine::set_port`], [`Engine::set_hop`]), and when it
//! lacks a next hop it says so ([`Action::NeedHop`]).
//!
//! IPv4 fragments are forwarded one by one, by datagram ([`crate::frag`]):
//! the first fragment is decided as any packet and the decision recorded,
//! the others follow it (held until it comes when they come first:
//! [`Action::Drop`] with [`DropReason::FragmentHeld`], then
//! [`Engine::pop_released_fragment`]). A tunnelled IPv4 packet without DF
//! that would not fit the egress once encapsulated (a full-size fragment,
//! typically) is cut into fragments, each encapsulated on its own
//! ([`Action::Frames`]). IPv6 fragments are passed, untracked.
//!
//! Control operations (`-A`, `-a`, `-Z`, `--set` …) are methods too; they
//! validate first and change nothing on error.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::time::Duration;
use std::collections::VecDeque;
use std::sync::Arc;

use hashbrown::HashMap;
use rvs_wire::{EncapResult, EthernetAddress, FlowMeta, Parsed, TtlVerdict};

use crate::claims::{ClaimCheck, ClaimGuard, TableView};
use crate::conn::{self, Activity, Conn, ConnId, ConnTable, ConnTableConfig, Direction, Timeouts};
use crate::dest::{Dest, DestConfig, DestId};
use crate::fastpath::{self, FastFlow, FastPathOp, FlowKey};
use crate::frag::{FragConfig, FragCounters, FragKey, FragTable, HeldFragment};
use crate::fwmark::{FwmarkRule, FwmarkRules};
use crate::sched::SchedInput;
use crate::service::{
    CtlError, SVC_F_ONEPACKET, Service, ServiceConfig, ServiceKey, ServiceRef, Services, addr_key,
};
use crate::stats::{Counters, Stats};
use crate::time::Instant;
use crate::types::{Af, FwdMethod, Protocol};

/// Identifies a port (an interface) of the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u32);

/// What the engine knows about one of its ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// The port's MAC address (source of frames the engine sends).
    pub mac: EthernetAddress,
    /// IP MTU of the link.
    pub mtu: u16,
    /// The director's IPv4 address on this link (outer source for tunnels, ICMP source).
    pub addr_v4: Option<Ipv4Addr>,
    /// The director's IPv6 address on this link.
    pub addr_v6: Option<Ipv6Addr>,
}

/// A resolved next hop: where to send frames for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// Egress port.
    pub port: PortId,
    /// The neighbour's MAC address.
    pub mac: EthernetAddress,
}

/// IPVS sysctls that change the packet path (reference §5.8, §5.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sysctls {
    /// Expire connections whose real server is gone (or quiesced, for new SYNs).
    pub expire_nodest_conn: bool,
    /// Treat persistence templates of weight-0 servers as invalid.
    pub expire_quiescent_template: bool,
    /// Reuse mode for a new SYN on an old connection (0 off, 1 default, bit 2 FIN_WAIT too).
    pub conn_reuse_mode: u8,
    /// Create TCP connections from any non-RST segment, not only SYN.
    pub sloppy_tcp: bool,
    /// Create SCTP associations from any chunk, not only INIT.
    pub sloppy_sctp: bool,
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls {
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: 1,
            sloppy_tcp: false,
            sloppy_sctp: false,
        }
    }
}

/// Engine settings fixed at creation.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Hard cap on connection entries (templates included).
    pub max_conns: usize,
    /// Key of the connection hash (random, from the caller: the core reads no entropy).
    pub hash_key: [u64; 4],
    /// Sysctls.
    pub sysctls: Sysctls,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_conns: 1 << 20,
            hash_key: [0x5eed_0001, 0x5eed_0002, 0x5eed_0003, 0x5eed_0004],
            sysctls: Sysctls::default(),
        }
    }
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The frame did not parse.
    Malformed,
    /// A packet for a service that is neither a connection start nor part of a known connection.
    NoConnection,
    /// No real server available (an ICMP unreachable may have been sent instead).
    NoDest,
    /// The connection's real server was deleted (and `expire_nodest_conn` is off).
    DestGone,
    /// The connection table is full.
    TableFull,
    /// TTL or hop limit ran out.
    TtlExpired,
    /// The rewrite failed (for instance no headroom for a tunnel header).
    RewriteFailed,
    /// A fragment that could not be held until its datagram's first
    /// fragment comes (no room, see [`crate::frag`]), or of a datagram
    /// whose first fragment was dropped.
    Fragment,
    /// Not a loss: a fragment whose datagram's first fragment has not come
    /// yet, held by the engine (a copy); the data plane drops its own and
    /// processes the copy when [`Engine::pop_released_fragment`] returns it.
    FragmentHeld,
    /// The ingress port is unknown to the engine.
    UnknownPort,
    /// An ICMP error about a connection that cannot be translated.
    Icmp,
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Not ours: give the frame to the kernel unchanged.
    Pass,
    /// Drop the frame.
    Drop(DropReason),
    /// Send `buf[start..start + len]` (rewritten in place) out of `port`.
    Forward {
        /// Egress port.
        port: PortId,
        /// Start of the frame in the buffer (moves when a header was prepended).
        start: usize,
        /// Frame length.
        len: usize,
    },
    /// Send the frame in [`Engine::reply_frame`] (`len` bytes) out of `port`;
    /// drop the original.
    Reply {
        /// Egress port.
        port: PortId,
        /// Length of the reply frame.
        len: usize,
    },
    /// Send the `count` frames [`Engine::frame_at`] returns (0..count) out of
    /// `port`, in order; drop the original. A tunnelled packet without DF
    /// too big for the egress once encapsulated, cut into fragments each
    /// encapsulated on its own.
    Frames {
        /// Egress port.
        port: PortId,
        /// Number of frames.
        count: usize,
    },
    /// The next hop for `addr` is not resolved: resolve it. The frame is
    /// untouched and nothing was counted for it, so it may be held and
    /// processed again once the hop is known (as the kernel queues packets
    /// for an unresolved neighbour).
    NeedHop(IpAddr),
}

/// Counters of the engine itself (not IPVS statistics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Frames handed back to the kernel.
    pub passed: u64,
    /// Frames forwarded.
    pub forwarded: u64,
    /// Replies built (ICMP).
    pub replies: u64,
    /// Drops: malformed.
    pub drop_malformed: u64,
    /// Drops: no connection.
    pub drop_no_conn: u64,
    /// Drops: no real server.
    pub drop_no_dest: u64,
    /// Drops: real server gone.
    pub drop_dest_gone: u64,
    /// Drops: table full.
    pub drop_table_full: u64,
    /// Drops: TTL.
    pub drop_ttl: u64,
    /// Drops: rewrite failed.
    pub drop_rewrite: u64,
    /// Drops: waiting for a neighbour.
    pub need_hop: u64,
    /// Drops: other.
    pub drop_other: u64,
    /// Frames whose checksum the sender's offload left partial, finished
    /// here (see [`rvs_wire::offload`]).
    pub csum_completed: u64,
    /// Entries in `SYN_RECV` evicted to make room near the table's bound
    /// (a SYN flood's, usually).
    pub evicted_syn_recv: u64,
    /// New connections that found the table full: at [`NEAR_FULL`] of its
    /// bound (each then evicts a `SYN_RECV` entry or, finding none, is
    /// dropped as [`DropReason::TableFull`]).
    pub table_full: u64,
    /// Next hops pruned: of addresses no real server and no connection
    /// needs any more (NAT clients gone, spoofed sources).
    pub hops_pruned: u64,
    /// IP fragments (see [`crate::frag`]).
    pub frag: FragCounters,
    /// Tunnelled packets without DF cut into fragments to fit the egress
    /// MTU once encapsulated.
    pub tunnel_fragmented: u64,
}

/// A frame handed to [`Engine::process`]: bytes with headroom before `start`.
#[derive(Debug)]
pub struct Frame<'a> {
    /// The buffer; the frame is `buf[start..start + len]`.
    pub buf: &'a mut [u8],
    /// Start of the Ethernet header.
    pub start: usize,
    /// Frame length.
    pub len: usize,
    /// Port it arrived on.
    pub ingress: PortId,
    /// Firewall mark the classifier gave it (0 = none).
    pub fwmark: u32,
}

use conn::flags::{
    INACTIVE as CONN_F_INACTIVE, NOOUTPUT as CONN_F_NOOUTPUT, TEMPLATE as CONN_F_TEMPLATE,
};

/// Timeout of a new connection until its first state transition.
const INITIAL_TIMEOUT: Duration = Duration::from_millis(conn::state::INITIAL_TIMEOUT_MS as u64);

/// The IPVS engine.
#[derive(Debug)]
pub struct Engine {
    services: Services,
    conns: ConnTable,
    timeouts: Timeouts,
    sysctls: Sysctls,
    stats: Stats,
    ports: Vec<Option<PortConfig>>,
    /// Next hops keyed by [`addr_key`] (one 128-bit word hashes faster than an `IpAddr`).
    hops: HashMap<u128, Hop>,
    counters: EngineCounters,
    expired: Vec<Conn>,
    reply: Vec<u8>,
    /// Firewall-mark rules: the mark of packets that arrive without one.
    fwmark_rules: FwmarkRules,
    /// The XDP fast path's bookkeeping; `None` when it is off.
    fast: Option<Box<FastPath>>,
    /// TCP entries a SYN made, oldest first, with their client (a handle
    /// may be reused: the entry must still be this one, and still
    /// `SYN_RECV`). The first evicted when the table is near full.
    embryonic: VecDeque<(ConnId, IpAddr, u16)>,
    /// Next hops pruned since the data plane last took them
    /// ([`Engine::take_pruned_hops`]), at most [`PRUNED_HOPS_KEPT`].
    pruned_hops: Vec<IpAddr>,
    /// The data plane's capacity check of a table's claims, if any.
    claim_guard: Option<ClaimGuard>,
    /// Fragmented datagrams: their first fragment's decision, and the
    /// fragments that came before it.
    frags: FragTable<FragDecision>,
    /// Counters of the fragment tables replaced before `frags`.
    frag_base: FragCounters,
    /// What the current packet was forwarded as, for a first fragment's
    /// record (set by [`Engine::emit_in`] and [`Engine::conn_out`]).
    last_fwd: Option<FragDecision>,
    /// The frames of the last [`Action::Frames`], one after the other.
    frames: Vec<u8>,
    /// (start, length) of each frame in `frames`.
    frame_spans: Vec<(usize, usize)>,
    /// Where one piece of [`Action::Frames`] is built and encapsulated.
    piece: Vec<u8>,
}

/// Next hops kept beyond what the table needs before [`Engine::poll`]
/// prunes them.
const HOP_SLACK: usize = 4096;

/// Pruned addresses kept for the data plane (its resolver forgets them).
const PRUNED_HOPS_KEPT: usize = 1 << 16;

/// The table is "near full" from this fraction of its bound
/// (numerator/denominator): a new connection then first evicts the oldest
/// entry still in `SYN_RECV` (a SYN flood's), the defence the kernel's
/// `drop_entry` gives, so that a client whose handshake completes still
/// gets a slot while spoofed SYNs fill the rest.
const NEAR_FULL: (usize, usize) = (15, 16);

/// Stale handles skipped at most per eviction (entries already gone or
/// past `SYN_RECV`), so that a new connection costs O(1).
const EVICT_SCAN: usize = 8;

/// What the engine knows of the fast path's cache.
#[derive(Debug, Default)]
struct FastPath {
    /// Connections with cached flows, by their client → server key: the
    /// handle and which directions ([`FP_IN`], [`FP_OUT`]) are cached.
    installed: HashMap<FlowKey, (ConnId, u8)>,
    /// Work for the data plane.
    ops: Vec<FastPathOp>,
}

/// The client → server flow is cached.
const FP_IN: u8 = 1;
/// The NAT reply flow is cached.
const FP_OUT: u8 = 2;

/// Largest reply frame the engine builds.
const REPLY_CAPACITY: usize = 1600;

impl Engine {
    /// A new engine with no services.
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            services: Services::new(),
            conns: ConnTable::new(
                ConnTableConfig {
                    max_entries: cfg.max_conns,
                    ..ConnTableConfig::default()
                },
                cfg.hash_key,
            ),
            timeouts: Timeouts::default(),
            sysctls: cfg.sysctls,
            stats: Stats::default(),
            ports: Vec::new(),
            hops: HashMap::new(),
            counters: EngineCounters::default(),
            expired: Vec::new(),
            reply: vec![0; REPLY_CAPACITY],
            fwmark_rules: FwmarkRules::default(),
            fast: None,
            embryonic: VecDeque::new(),
            pruned_hops: Vec::new(),
            claim_guard: None,
            frags: FragTable::new(FragConfig::default()),
            frag_base: FragCounters::default(),
            last_fwd: None,
            frames: Vec::new(),
            frame_spans: Vec::new(),
            piece: Vec::new(),
        }
    }

    // ----- the XDP fast path --------------------------------------------------

    /// Turn the fast-path bookkeeping on or off (off by default). When on,
    /// the engine queues [`FastPathOp`]s: flows to cache once they are
    /// eligible ([`fastpath::eligibility`]) and forwarded, and flows to
    /// forget when their connection leaves the table or stops being
    /// eligible, or when a change (real server deleted or edited, service
    /// edited, next hop, port or sysctls changed, `-C`) could alter the
    /// decision. Turning it off forgets everything (queue a
    /// [`FastPathOp::RemoveAll`] yourself if the cache is not empty).
    pub fn set_fast_path(&mut self, on: bool) {
        match (on, self.fast.is_some()) {
            (true, false) => self.fast = Some(Box::default()),
            (false, true) => self.fast = None,
            _ => {}
        }
    }

    /// Whether the fast-path bookkeeping is on.
    pub fn fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// Whether fast-path work is queued (see [`Engine::take_fast_path_ops`]).
    pub fn has_fast_path_ops(&self) -> bool {
        self.fast.as_ref().is_some_and(|fp| !fp.ops.is_empty())
    }

    /// Move the queued fast-path work to `out`, in order.
    pub fn take_fast_path_ops(&mut self, out: &mut Vec<FastPathOp>) {
        if let Some(fp) = self.fast.as_mut() {
            out.append(&mut fp.ops);
        }
    }

    /// Forget every cached flow (queue their removal): the next packet of
    /// each goes through the engine, which caches it again if it is still
    /// eligible. For the data plane, when what it can cache changed (an
    /// egress that now takes redirected frames).
    pub fn fast_path_forget_all(&mut self) {
        self.fast_path_invalidate(|_| true);
    }

    /// Number of connections with cached flows.
    pub fn fast_path_flows(&self) -> usize {
        self.fast.as_ref().map_or(0, |fp| fp.installed.len())
    }

    /// Credit `packets` and `bytes` (IP lengths) the fast path forwarded on
    /// `flow` to its service, real server and the totals, as the slow path
    /// would have counted them; when the connection is still the one the
    /// entry was made for, count the packets on it and re-arm its timer
    /// from `last_seen` (the last packet's time) if that is later than what
    /// the engine saw.
    pub fn credit_fast_path(
        &mut self,
        flow: &FastFlow,
        packets: u64,
        bytes: u64,
        last_seen: Option<Instant>,
    ) {
        if packets == 0 && bytes == 0 {
            return;
        }
        let sref = ServiceRef::from_owner(flow.owner);
        if let Some(svc) = self.services.get_mut(sref) {
            if flow.reply {
                svc.stats.count_out_many(packets, bytes);
            } else {
                svc.stats.count_in_many(packets, bytes);
            }
            if let Some(d) = svc.dest_by_id_mut(flow.dest) {
                if flow.reply {
                    d.stats.count_out_many(packets, bytes);
                } else {
                    d.stats.count_in_many(packets, bytes);
                }
            }
        }
        if flow.reply {
            self.stats.count_out_many(packets, bytes);
        } else {
            self.stats.count_in_many(packets, bytes);
        }
        let Some(c) = self.conns.get(flow.conn) else {
            return;
        };
        if !fastpath::matches(&flow.key, c) || c.owner != flow.owner {
            return;
        }
        let (timeout, expires) = (c.timeout_ms, c.expires);
        if !flow.reply
            && let Some(mut m) = self.conns.get_mut(flow.conn)
        {
            m.in_pkts = m.in_pkts.wrapping_add(packets as u32);
        }
        if let Some(seen) = last_seen
            && seen.as_millis() + u64::from(timeout) > expires.as_millis()
        {
            self.conns.refresh(flow.conn, seen);
        }
    }

    /// After a forwarded packet of `id`: cache its flows if it is eligible
    /// and they are not cached yet, forget them if it no longer is.
    fn fast_path_update(&mut self, id: ConnId) {
        let Some(fp) = self.fast.as_deref() else {
            return;
        };
        let Some(c) = self.conns.get(id) else {
            return;
        };
        let key = fastpath::flow_in(c);
        let have = match fp.installed.get(&key) {
            Some(&(i, bits)) if i == id => bits,
            _ => 0,
        };
        let nat = c.fwd() == conn::flags::MASQ;
        if fastpath::eligibility(c).is_err() {
            if have != 0 {
                self.fast_path_forget(key);
            }
            return;
        }
        if have & FP_IN != 0 && (!nat || have & FP_OUT != 0) {
            return;
        }
        let flow = |key: FlowKey, reply: bool| fast_flow(id, c, key, reply);
        let mut bits = have;
        let mut new = [None, None];
        if have & FP_IN == 0
            && let Ok((hop, port)) = self.egress(c.daddr)
            && let Some(a) = fastpath::action_in(c, id, &hop, &port)
        {
            new[0] = Some(FastPathOp::Install(flow(key, false), a));
            bits |= FP_IN;
        }
        if nat
            && have & FP_OUT == 0
            && let Some(out) = fastpath::flow_out(c)
            && let Ok((hop, port)) = self.egress(c.caddr)
            && let Some(a) = fastpath::action_out(c, id, &hop, &port)
        {
            new[1] = Some(FastPathOp::Install(flow(out, true), a));
            bits |= FP_OUT;
        }
        if bits == have {
            return;
        }
        if let Some(fp) = self.fast.as_deref_mut() {
            fp.ops.extend(new.into_iter().flatten());
            fp.installed.insert(key, (id, bits));
        }
    }

    /// Forget the cached flows of the connection whose client → server key
    /// is `key` (queue their removal).
    fn fast_path_forget(&mut self, key: FlowKey) {
        let Some(fp) = self.fast.as_deref_mut() else {
            return;
        };
        let Some((id, bits)) = fp.installed.remove(&key) else {
            return;
        };
        let Some(c) = self.conns.get(id) else {
            return;
        };
        queue_removals(&mut fp.ops, id, bits, c, key);
    }

    /// A connection that leaves the table: queue the removal of its cached
    /// flows (`c` is no longer in the table).
    fn fast_path_gone(&mut self, c: &Conn) {
        let Some(fp) = self.fast.as_deref_mut() else {
            return;
        };
        if c.is_template() {
            return;
        }
        let key = fastpath::flow_in(c);
        let Some((id, bits)) = fp.installed.remove(&key) else {
            return;
        };
        queue_removals(&mut fp.ops, id, bits, c, key);
    }

    /// Forget the cached flows of every connection `pred` selects; their
    /// next packets go through the engine, which caches them again if they
    /// are still eligible (with the decision as it now stands).
    fn fast_path_invalidate(&mut self, mut pred: impl FnMut(&Conn) -> bool) {
        let Some(fp) = self.fast.as_deref() else {
            return;
        };
        let keys: Vec<FlowKey> = fp
            .installed
            .iter()
            .filter(|(_, (id, _))| self.conns.get(*id).is_some_and(&mut pred))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.fast_path_forget(k);
        }
    }

    // ----- data-plane environment -------------------------------------------------

    /// Declare or update a port.
    pub fn set_port(&mut self, id: PortId, cfg: PortConfig) {
        let i = id.0 as usize;
        if self.ports.len() <= i {
            self.ports.resize(i + 1, None);
        }
        let old = self.ports[i].replace(cfg);
        if old.is_some_and(|o| o != cfg) {
            self.fast_path_invalidate(|_| true);
        }
    }

    #[inline]
    fn port(&self, id: PortId) -> Option<PortConfig> {
        self.ports.get(id.0 as usize).copied().flatten()
    }

    /// Set the next hop for an address (a real server, or a client / its router).
    pub fn set_hop(&mut self, addr: IpAddr, hop: Hop) {
        let old = self.hops.insert(addr_key(addr), hop);
        if old.is_some_and(|o| o != hop) {
            self.fast_path_invalidate(|c| c.daddr == addr || c.caddr == addr);
        }
    }

    /// Whether the next hop of `addr` is known.
    pub fn has_hop(&self, addr: IpAddr) -> bool {
        self.hops.contains_key(&addr_key(addr))
    }

    /// Forget a next hop.
    pub fn remove_hop(&mut self, addr: &IpAddr) {
        if self.hops.remove(&addr_key(*addr)).is_some() {
            let a = *addr;
            self.fast_path_invalidate(|c| c.daddr == a || c.caddr == a);
        }
    }

    /// The next hop and egress port for `addr`, or the action to take
    /// instead (resolve the neighbour; unknown port).
    #[inline]
    fn egress(&self, addr: IpAddr) -> Result<(Hop, PortConfig), Action> {
        let Some(&hop) = self.hops.get(&addr_key(addr)) else {
            return Err(Action::NeedHop(addr));
        };
        match self.port(hop.port) {
            Some(port) => Ok((hop, port)),
            None => Err(Action::Drop(DropReason::UnknownPort)),
        }
    }

    /// The reply frame of the last [`Action::Reply`].
    pub fn reply_frame(&self, len: usize) -> &[u8] {
        &self.reply[..len.min(self.reply.len())]
    }

    /// Frame `i` of the last [`Action::Frames`] (empty past its count).
    pub fn frame_at(&self, i: usize) -> &[u8] {
        match self.frame_spans.get(i) {
            Some(&(start, len)) => &self.frames[start..start + len],
            None => &[],
        }
    }

    /// A held fragment whose datagram's first fragment came since
    /// (oldest first): process it again ([`Engine::process`], the frame at
    /// [`crate::frag::HELD_HEADROOM`] in its buffer) after that first
    /// fragment, then give the buffer back ([`Engine::recycle_fragment`]).
    pub fn pop_released_fragment(&mut self) -> Option<HeldFragment> {
        self.frags.pop_released()
    }

    /// Whether released fragments wait ([`Engine::pop_released_fragment`]).
    pub fn has_released_fragments(&self) -> bool {
        self.frags.has_released()
    }

    /// Give back the buffer of a released fragment.
    pub fn recycle_fragment(&mut self, buf: Vec<u8>) {
        self.frags.recycle(buf);
    }

    /// Replace the fragment table's bounds (forgets what it holds; the
    /// counters go on).
    pub fn set_frag_config(&mut self, cfg: FragConfig) {
        self.frag_base = self.counters.frag;
        self.frags = FragTable::new(cfg);
        self.sync_frag_counters();
    }

    /// Datagrams the fragment table tracks now.
    pub fn frag_datagrams(&self) -> usize {
        self.frags.len()
    }

    fn sync_frag_counters(&mut self) {
        let (b, t) = (self.frag_base, *self.frags.counters());
        self.counters.frag = FragCounters {
            tracked: b.tracked + t.tracked,
            held: b.held + t.held,
            released: b.released + t.released,
            expired: b.expired + t.expired,
            evicted: b.evicted + t.evicted,
            no_room: b.no_room + t.no_room,
        };
    }

    // ----- read access for listings ---------------------------------------------

    /// The installed claim check ([`Engine::set_claim_check`]), if any.
    pub fn claim_guard(&self) -> Option<&ClaimGuard> {
        self.claim_guard.as_ref()
    }

    /// Refuse, from now on, every change whose table `check` says the data
    /// plane's filter cannot hold ([`crate::claims`]): such a change fails
    /// with [`CtlError::NoRoom`] and changes nothing. The table as it is
    /// must pass: otherwise `Err` with the check's reason, and nothing is
    /// installed.
    pub fn set_claim_check(&mut self, check: Arc<ClaimCheck>) -> Result<(), String> {
        check(&crate::claims::claims(&TableView::of(self)))?;
        self.claim_guard = Some(ClaimGuard(check));
        Ok(())
    }

    /// The services.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The connection table (connections and templates).
    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }

    /// Current timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Global statistics.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Engine counters.
    pub fn counters(&self) -> &EngineCounters {
        &self.counters
    }

    /// Sysctls in force.
    pub fn sysctls(&self) -> &Sysctls {
        &self.sysctls
    }

    /// Change sysctls.
    pub fn set_sysctls(&mut self, s: Sysctls) {
        if self.sysctls != s {
            self.fast_path_invalidate(|_| true);
        }
        self.sysctls = s;
    }

    // ----- control operations ---------------------------------------------------

    /// `-A`.
    pub fn add_service(&mut self, key: ServiceKey, cfg: ServiceConfig) -> Result<(), CtlError> {
        self.services.add(key, cfg).map(|_| ())
    }

    /// `-E` (replaces every setting).
    pub fn edit_service(&mut self, key: &ServiceKey, cfg: ServiceConfig) -> Result<(), CtlError> {
        self.services.edit(key, cfg)?;
        if let Some(r) = self.services.find(key) {
            let owner = r.to_owner();
            self.fast_path_invalidate(|c| c.owner == owner);
        }
        Ok(())
    }

    /// `-D`: the service, its real servers and its connections go.
    pub fn delete_service(&mut self, key: &ServiceKey) -> Result<(), CtlError> {
        let r = self.services.find(key).ok_or(CtlError::NoSuchService)?;
        self.services.delete(key)?;
        self.drop_conns_where(|c| c.owner == r.to_owner());
        Ok(())
    }

    /// `-C`.
    pub fn flush(&mut self) {
        self.services.clear();
        self.conns.clear();
        self.frags.clear();
        if let Some(fp) = self.fast.as_deref_mut() {
            fp.installed.clear();
            fp.ops.push(FastPathOp::RemoveAll);
        }
    }

    /// `-a`.
    pub fn add_dest(
        &mut self,
        key: &ServiceKey,
        cfg: &DestConfig,
        now: Instant,
    ) -> Result<(), CtlError> {
        self.services.add_dest(key, cfg, now).map(|_| ())
    }

    /// `-e`.
    pub fn edit_dest(&mut self, key: &ServiceKey, cfg: &DestConfig) -> Result<(), CtlError> {
        self.services.edit_dest(key, cfg)?;
        if let Some(r) = self.services.find(key) {
            let owner = r.to_owner();
            self.fast_path_invalidate(|c| c.owner == owner);
        }
        Ok(())
    }

    /// `-d`. With `expire_nodest_conn` the server's connections go at once;
    /// otherwise they stay (their packets are dropped) until they expire.
    pub fn delete_dest(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
        now: Instant,
    ) -> Result<(), CtlError> {
        let id = self.services.delete_dest(key, addr, port, now)?;
        if self.sysctls.expire_nodest_conn {
            self.drop_conns_where(|c| c.dest == id);
        } else {
            // The connections stay, their packets are dropped: by the engine.
            self.fast_path_invalidate(|c| c.dest == id);
        }
        Ok(())
    }

    /// `-Z` for one service (and its real servers), or everything.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), CtlError> {
        match key {
            Some(k) => {
                let r = self.services.find(k).ok_or(CtlError::NoSuchService)?;
                let svc = self.services.get_mut(r).ok_or(CtlError::NoSuchService)?;
                zero_service(svc);
            }
            None => {
                for svc in self.services.iter_mut() {
                    zero_service(svc);
                }
                self.stats.zero();
            }
        }
        Ok(())
    }

    /// `--set tcp tcpfin udp` (seconds, 0 = unchanged).
    pub fn set_timeouts(&mut self, tcp: u32, tcpfin: u32, udp: u32) -> Result<(), CtlError> {
        const MAX: u32 = i32::MAX as u32 / 1000;
        if tcp > MAX || tcpfin > MAX || udp > MAX {
            return Err(CtlError::Invalid("timeout too large"));
        }
        if tcp != 0 {
            self.timeouts.set_tcp_established(tcp);
        }
        if tcpfin != 0 {
            self.timeouts.set_tcp_fin(tcpfin);
        }
        if udp != 0 {
            self.timeouts.set_udp(udp);
        }
        Ok(())
    }

    fn drop_conns_where(&mut self, pred: impl FnMut(&Conn) -> bool) {
        let mut out = core::mem::take(&mut self.expired);
        self.conns.flush_matching(pred, &mut out);
        for c in out.drain(..) {
            self.unbind(&c);
        }
        self.expired = out;
    }

    // ----- firewall-mark rules ---------------------------------------------------

    /// The firewall-mark rules, in order.
    pub fn fwmark_rules(&self) -> &FwmarkRules {
        &self.fwmark_rules
    }

    /// Append a firewall-mark rule (see [`FwmarkRules::add`]).
    pub fn add_fwmark_rule(&mut self, rule: &FwmarkRule) -> Result<(), CtlError> {
        self.fwmark_rules.add(rule)
    }

    /// Remove a firewall-mark rule (see [`FwmarkRules::delete`]).
    pub fn delete_fwmark_rule(&mut self, rule: &FwmarkRule) -> Result<(), CtlError> {
        self.fwmark_rules.delete(rule)
    }

    /// Remove every firewall-mark rule (`-C` leaves them, as it leaves
    /// iptables' rules).
    pub fn flush_fwmark_rules(&mut self) {
        self.fwmark_rules.clear();
    }

    /// The mark a new flow is looked up with: the frame's own, or else the
    /// rules' (free when there are no rules).
    #[inline]
    fn flow_mark(&self, frame: &Frame<'_>, meta: &FlowMeta, proto: Protocol) -> u32 {
        if frame.fwmark != 0 || self.fwmark_rules.is_empty() {
            return frame.fwmark;
        }
        self.fwmark_rules
            .mark_of(frame.ingress.0, meta.dst, proto, meta.dport)
    }

    // ----- time -----------------------------------------------------------------

    /// Housekeeping: expire connections, run the rate estimators, age
    /// scheduler caches and the real-server trash. Call it often (every
    /// 100 ms to 1 s); its cost is proportional to the work due.
    pub fn poll(&mut self, now: Instant) {
        let mut out = core::mem::take(&mut self.expired);
        self.conns.poll_expired(now, &mut out);
        for c in out.drain(..) {
            self.unbind(&c);
        }
        self.expired = out;
        self.stats.estimate(now);
        for svc in self.services.iter_mut() {
            svc.stats.estimate(now);
            for d in svc.dests.iter_mut() {
                d.stats.estimate(now);
            }
            svc.scheduler.tick(now);
        }
        // Trash entries are kept while connections still count on them.
        self.services.purge_trash(now, |_| false);
        self.prune_hops();
        self.frags.expire(now);
        self.sync_frag_counters();
    }

    /// The next-hop map is keyed by addresses others choose (every NAT
    /// client gets one, a spoofed one too): when it holds more than twice
    /// what the real servers and the connections need, plus
    /// [`HOP_SLACK`], keep only those (an O(table) pass, rare by that
    /// rule). A pruned address that shows up again is resolved again.
    fn prune_hops(&mut self) {
        let dests: usize = self.services.iter().map(|(_, s)| s.dests.len()).sum();
        let needed = self.conns.len() + dests;
        if self.hops.len() <= HOP_SLACK + 2 * needed {
            return;
        }
        let mut keep: hashbrown::HashSet<u128> = hashbrown::HashSet::with_capacity(2 * needed);
        for (_, s) in self.services.iter() {
            for d in s.dests.iter() {
                keep.insert(addr_key(d.addr));
            }
        }
        for (_, c) in self.conns.iter() {
            keep.insert(addr_key(c.caddr));
            keep.insert(addr_key(c.daddr));
        }
        let before = self.hops.len();
        let pruned = &mut self.pruned_hops;
        self.hops.retain(|k, _| {
            let kept = keep.contains(k);
            if !kept && pruned.len() < PRUNED_HOPS_KEPT {
                let v6 = Ipv6Addr::from_bits(*k);
                pruned.push(match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(v6),
                });
            }
            kept
        });
        self.counters.hops_pruned += (before - self.hops.len()) as u64;
    }

    /// Next hops pruned since the last call (for the resolver to forget).
    pub fn take_pruned_hops(&mut self) -> Vec<IpAddr> {
        core::mem::take(&mut self.pruned_hops)
    }

    /// Next hops known now.
    pub fn hop_count(&self) -> usize {
        self.hops.len()
    }

    /// A connection left the table: settle its real server's counters.
    fn unbind(&mut self, c: &Conn) {
        self.fast_path_gone(c);
        let Some(svc) = self.services.get_mut(ServiceRef::from_owner(c.owner)) else {
            return;
        };
        let Some(d) = svc.dest_by_id_mut(c.dest) else {
            return;
        };
        unbind_dest(d, c.flags);
    }

    // ----- the packet path ------------------------------------------------------

    /// Decide what to do with one frame.
    pub fn process(&mut self, frame: Frame<'_>, now: Instant) -> Action {
        let action = self.process_inner(frame, now);
        let c = &mut self.counters;
        match action {
            Action::Pass => c.passed += 1,
            Action::Forward { .. } => c.forwarded += 1,
            Action::Reply { .. } => c.replies += 1,
            Action::Frames { .. } => c.forwarded += 1,
            Action::NeedHop(_) => c.need_hop += 1,
            Action::Drop(r) => match r {
                DropReason::Malformed => c.drop_malformed += 1,
                DropReason::NoConnection => c.drop_no_conn += 1,
                DropReason::NoDest => c.drop_no_dest += 1,
                DropReason::DestGone => c.drop_dest_gone += 1,
                DropReason::TableFull => c.drop_table_full += 1,
                DropReason::TtlExpired => c.drop_ttl += 1,
                DropReason::RewriteFailed => c.drop_rewrite += 1,
                DropReason::UnknownPort | DropReason::Icmp | DropReason::Fragment => {
                    c.drop_other += 1
                }
                DropReason::FragmentHeld => {}
            },
        }
        action
    }

    fn process_inner(&mut self, frame: Frame<'_>, now: Instant) -> Action {
        let end = frame.start.saturating_add(frame.len);
        let Some(bytes) = frame.buf.get(frame.start..end) else {
            return Action::Drop(DropReason::Malformed);
        };
        let meta = match rvs_wire::parse_frame(bytes) {
            Ok(Parsed::Ip(m)) => m,
            Ok(_) => return Action::Pass,
            Err(_) => return Action::Pass,
        };
        if meta.icmp.is_some() {
            return self.process_icmp_error(frame, &meta);
        }
        let Some(proto) = Protocol::from_number(meta.proto) else {
            return Action::Pass;
        };
        if !meta.is_fragment {
            return self.process_l4(frame, &meta, proto, now);
        }
        if meta.af_v6 {
            // IPv6 fragments are not tracked (the classifier does not
            // claim them either): see the crate::frag docs.
            return Action::Pass;
        }
        let (key, offset, more) = frag_fields(&frame, &meta);
        let data_len = (meta.l3_len - (meta.l4_offset - meta.l3_offset)) as u32;
        let action = if meta.l4_present {
            // The first fragment: decided as any packet, and recorded.
            self.last_fwd = None;
            let fwmark = frame.fwmark;
            let action = self.process_l4(frame, &meta, proto, now);
            let decision = match action {
                Action::Forward { .. } | Action::Frames { .. } => self.last_fwd,
                Action::Pass if self.frags.contains(&key) || self.frag_claimed(&meta, fwmark) => {
                    Some(FragDecision::Pass)
                }
                Action::Pass | Action::NeedHop(_) => None,
                Action::Drop(_) | Action::Reply { .. } => Some(FragDecision::Drop),
            };
            if let Some(d) = decision {
                self.frags.record(key, d, now);
                self.frags.seen(&key, offset, data_len, more);
            }
            action
        } else {
            match self.frags.decision(&key) {
                Some(d) => {
                    let action = self.later_fragment(frame, &meta, d);
                    if !matches!(action, Action::NeedHop(_)) {
                        self.frags.seen(&key, offset, data_len, more);
                    }
                    action
                }
                None if !self.frag_claimed(&meta, frame.fwmark) => Action::Pass,
                None => {
                    let bytes = &frame.buf[frame.start..frame.start + frame.len];
                    if self.frags.hold(key, bytes, frame.ingress, now) {
                        Action::Drop(DropReason::FragmentHeld)
                    } else {
                        Action::Drop(DropReason::Fragment)
                    }
                }
            }
        };
        self.sync_frag_counters();
        action
    }

    /// Whether a fragment without ports may be of a datagram rvs serves:
    /// to a virtual address (or one a fwmark rule covers, or marked by the
    /// classifier), or from a NAT real server.
    fn frag_claimed(&self, meta: &FlowMeta, fwmark: u32) -> bool {
        fwmark != 0
            || self.services.is_virtual_addr(meta.dst)
            || self.services.is_nat_source(meta.src)
            || self
                .fwmark_rules
                .rules()
                .iter()
                .any(|r| crate::fwmark::prefix_contains(r.addr, r.prefix_len, meta.dst))
    }

    /// A fragment without transport header of a datagram whose first
    /// fragment was decided `d`: forwarded the same way.
    fn later_fragment(&mut self, frame: Frame<'_>, meta: &FlowMeta, d: FragDecision) -> Action {
        match d {
            FragDecision::Pass => Action::Pass,
            FragDecision::Drop => Action::Drop(DropReason::Fragment),
            FragDecision::In(target) => {
                // Counted like the first fragment, after the hop is known.
                self.forward_in(frame, meta, &target)
            }
            FragDecision::Out {
                sref,
                dest,
                vaddr,
                caddr,
            } => {
                let (hop, port) = match self.egress(caddr) {
                    Ok(e) => e,
                    Err(a) => return a,
                };
                self.count_out(sref, dest, meta.l3_len);
                let f = &mut frame.buf[frame.start..frame.start + frame.len];
                match rvs_wire::decrement_ttl(f, meta) {
                    Ok(TtlVerdict::Expired) => return Action::Drop(DropReason::TtlExpired),
                    Ok(_) => {}
                    Err(_) => return Action::Drop(DropReason::RewriteFailed),
                }
                // No transport header: the address alone (the port is ignored).
                if rvs_wire::snat(f, meta, vaddr, 0).is_err()
                    || rvs_wire::set_macs(f, port.mac, hop.mac).is_err()
                {
                    return Action::Drop(DropReason::RewriteFailed);
                }
                Action::Forward {
                    port: hop.port,
                    start: frame.start,
                    len: frame.len,
                }
            }
        }
    }

    /// The path of an unfragmented packet or a first fragment (ports present).
    fn process_l4(
        &mut self,
        mut frame: Frame<'_>,
        meta: &FlowMeta,
        proto: Protocol,
        now: Instant,
    ) -> Action {
        if let Some(id) = self
            .conns
            .lookup_in(meta.proto, meta.src, meta.sport, meta.dst, meta.dport)
        {
            self.finish_checksum(&mut frame, meta);
            return self.conn_in(frame, meta, id, proto, now);
        }
        if self.services.is_nat_source(meta.src)
            && let Some(id) = self
                .conns
                .lookup_out(meta.proto, meta.src, meta.sport, meta.dst, meta.dport)
        {
            self.finish_checksum(&mut frame, meta);
            return self.conn_out(frame, meta, id, proto, now);
        }
        let af = if meta.af_v6 { Af::Inet6 } else { Af::Inet };
        frame.fwmark = self.flow_mark(&frame, meta, proto);
        let Some(sref) = self
            .services
            .lookup(frame.fwmark, af, proto, meta.dst, meta.dport)
        else {
            return Action::Pass;
        };
        self.finish_checksum(&mut frame, meta);
        self.new_conn(frame, meta, sref, proto, now)
    }

    /// Finish a TCP/UDP checksum or SCTP CRC32c that the sender's checksum
    /// offload left partial ([`rvs_wire::complete_partial`]), before any
    /// rewrite: the incremental updates of NAT assume a complete checksum,
    /// and DR and TUN would carry the partial one to a receiver that drops
    /// it. Only for frames the engine handles; finishing is idempotent, so
    /// a frame held for its next hop ([`Action::NeedHop`]) and processed
    /// again is not finished (nor counted) twice.
    fn finish_checksum(&mut self, frame: &mut Frame<'_>, meta: &FlowMeta) {
        let end = frame.start.saturating_add(frame.len);
        if let Some(bytes) = frame.buf.get_mut(frame.start..end)
            && rvs_wire::complete_partial(bytes, meta).completed()
        {
            self.counters.csum_completed += 1;
        }
    }

    /// Whether this packet may create a connection (reference §5.5).
    fn may_schedule(&self, proto: Protocol, meta: &FlowMeta, frame: &Frame<'_>) -> bool {
        match proto {
            Protocol::Tcp => {
                let f = meta.tcp_flags;
                f & TCP_RST == 0 && (f & TCP_SYN != 0 || self.sysctls.sloppy_tcp)
            }
            Protocol::Udp => true,
            Protocol::Sctp => {
                self.sysctls.sloppy_sctp || sctp_first_chunk(frame, meta) == Some(SCTP_INIT)
            }
        }
    }

    fn new_conn(
        &mut self,
        frame: Frame<'_>,
        meta: &FlowMeta,
        sref: ServiceRef,
        proto: Protocol,
        now: Instant,
    ) -> Action {
        if !self.may_schedule(proto, meta, &frame) {
            return Action::Drop(DropReason::NoConnection);
        }
        self.evict_if_near_full();
        let svc_persistent = match self.services.get(sref) {
            Some(s) => s.persistent(),
            None => return Action::Pass,
        };
        let scheduled = if svc_persistent {
            self.schedule_persist(sref, meta, proto, now)
        } else {
            self.schedule_plain(sref, meta, now)
        };
        let sched = match scheduled {
            Ok(s) => s,
            Err(SchedFail::NoDest) => return self.leave(frame, meta),
            Err(SchedFail::NoConnection) => return Action::Drop(DropReason::NoConnection),
            Err(SchedFail::TableFull) => return Action::Drop(DropReason::TableFull),
        };
        let Some(svc) = self.services.get_mut(sref) else {
            return Action::Pass;
        };
        let one_packet = svc.config.flags & SVC_F_ONEPACKET != 0 && proto == Protocol::Udp;
        let Some(dest) = svc.dests.get_mut(sched.dest_index) else {
            return Action::Drop(DropReason::NoDest);
        };
        let (dest_id, daddr, fwd) = (dest.id, dest.addr, dest.fwd);
        if one_packet {
            // Not hashed: counted, forwarded and gone (a template, if any, stays).
            // Nothing is counted before the next hop is known (NeedHop
            // leaves the table as it was, so the frame can be processed again).
            if !self.hops.contains_key(&addr_key(daddr)) {
                return Action::NeedHop(daddr);
            }
            dest.stats.counters.conns += 1;
            svc.stats.counters.conns += 1;
            self.stats.counters.conns += 1;
            let target = Target {
                sref,
                dest: dest_id,
                daddr,
                dport: sched.dport,
                fwd,
            };
            return self.forward_in(frame, meta, &target);
        }
        let mut flags = fwd.conn_flag() | CONN_F_INACTIVE;
        if fwd != FwdMethod::Masq {
            flags |= CONN_F_NOOUTPUT;
        }
        let conn = Conn {
            proto: meta.proto,
            caddr: meta.src,
            cport: meta.sport,
            vaddr: meta.dst,
            vport: meta.dport,
            daddr,
            dport: sched.dport,
            fwmark: frame.fwmark,
            flags,
            state: 0,
            timeout_ms: INITIAL_TIMEOUT.as_millis() as u32,
            expires: now + INITIAL_TIMEOUT,
            owner: sref.to_owner(),
            dest: dest_id,
            control: sched.template,
            n_control: 0,
            in_pkts: 0,
        };
        let id = match self.conns.insert(conn, fwd == FwdMethod::Masq, now) {
            Ok(id) => id,
            Err(_) => return Action::Drop(DropReason::TableFull),
        };
        if proto == Protocol::Tcp {
            self.embryonic.push_back((id, meta.src, meta.sport));
            if self.embryonic.len() > self.conns.capacity_limit() {
                self.embryonic.pop_front();
            }
        }
        dest.inactconns += 1;
        dest.after_bind();
        dest.stats.counters.conns += 1;
        svc.stats.counters.conns += 1;
        self.stats.counters.conns += 1;
        self.conn_in(frame, meta, id, proto, now)
    }

    fn schedule_plain(
        &mut self,
        sref: ServiceRef,
        meta: &FlowMeta,
        now: Instant,
    ) -> Result<Scheduled, SchedFail> {
        let svc = self.services.get_mut(sref).ok_or(SchedFail::NoDest)?;
        if svc.key.port() == 0 && matches!(svc.key, ServiceKey::Addr { .. }) {
            // "port zero only supported in persistent services"
            return Err(SchedFail::NoConnection);
        }
        let input = sched_input(svc, meta, now);
        let i = svc
            .scheduler
            .schedule(&svc.dests, &input)
            .ok_or(SchedFail::NoDest)?;
        let d = &svc.dests[i];
        Ok(Scheduled {
            dest_index: i,
            dport: if d.port != 0 { d.port } else { meta.dport },
            template: None,
        })
    }

    /// `ip_vs_sched_persist` (reference §5.7).
    fn schedule_persist(
        &mut self,
        sref: ServiceRef,
        meta: &FlowMeta,
        proto: Protocol,
        now: Instant,
    ) -> Result<Scheduled, SchedFail> {
        let svc = self.services.get_mut(sref).ok_or(SchedFail::NoDest)?;
        let snet = mask_addr(meta.src, svc.config.netmask);
        let svc_port = svc.key.port();
        let (t_proto, t_vaddr, t_vport) = match svc.key {
            ServiceKey::Fwmark { af, mark } => (0u8, conn::fwmark_vaddr(af == Af::Inet6, mark), 0),
            ServiceKey::Addr { .. } if svc_port == 0 || svc_port == 21 => {
                (proto.number(), meta.dst, 0)
            }
            ServiceKey::Addr { .. } => (proto.number(), meta.dst, meta.dport),
        };
        // The real connection's port: the packet's, or the server's when the
        // packet is for the service port.
        let port_of = |d: &Dest| -> u16 {
            if meta.dport == svc_port && d.port != 0 {
                d.port
            } else {
                meta.dport
            }
        };

        if let Some(tid) = self.conns.lookup_template(t_proto, snet, t_vaddr, t_vport) {
            let tmpl_dest = self.conns.get(tid).map(|t| t.dest);
            let valid = tmpl_dest
                .and_then(|id| svc.dest_index_by_id(id))
                .filter(|&i| {
                    let d = &svc.dests[i];
                    d.available && !(self.sysctls.expire_quiescent_template && d.weight == 0)
                });
            match valid {
                Some(i) => {
                    // ip_vs_conn_put: each use re-arms the template.
                    self.conns.refresh(tid, now);
                    return Ok(Scheduled {
                        dest_index: i,
                        dport: port_of(&svc.dests[i]),
                        template: Some(tid),
                    });
                }
                None => self.conns.neutralize_template(tid),
            }
        }

        let input = sched_input(svc, meta, now);
        let i = svc
            .scheduler
            .schedule(&svc.dests, &input)
            .ok_or(SchedFail::NoDest)?;
        let timeout = Duration::from_secs(svc.config.timeout.max(1) as u64);
        let fwmark = match svc.key {
            ServiceKey::Fwmark { mark, .. } => mark,
            ServiceKey::Addr { .. } => 0,
        };
        let d = &mut svc.dests[i];
        // PPC templates keep the server port; PCC / fwmark / FTP ones use 0.
        let t_dport = if t_vport != 0 { d.port } else { 0 };
        let tmpl = Conn {
            proto: t_proto,
            caddr: snet,
            cport: 0,
            vaddr: t_vaddr,
            vport: t_vport,
            daddr: d.addr,
            dport: t_dport,
            fwmark,
            flags: CONN_F_TEMPLATE | d.fwd.conn_flag(),
            state: conn::state::TPL_NONE,
            timeout_ms: timeout.as_millis() as u32,
            expires: now + timeout,
            owner: sref.to_owner(),
            dest: d.id,
            control: None,
            n_control: 0,
            in_pkts: 0,
        };
        let tid = self
            .conns
            .insert(tmpl, false, now)
            .map_err(|_| SchedFail::TableFull)?;
        d.persistconns += 1;
        d.after_bind();
        Ok(Scheduled {
            dest_index: i,
            dport: port_of(d),
            template: Some(tid),
        })
    }

    /// `ip_vs_leave`: no server for a new connection. Answer with ICMP port
    /// unreachable from the virtual address when we can, else drop.
    fn leave(&mut self, frame: Frame<'_>, meta: &FlowMeta) -> Action {
        let orig = &frame.buf[frame.start..frame.start + frame.len];
        match rvs_wire::icmp_port_unreachable(orig, meta, meta.dst, &mut self.reply) {
            Ok(len) if self.port(frame.ingress).is_some() => Action::Reply {
                port: frame.ingress,
                len,
            },
            _ => Action::Drop(DropReason::NoDest),
        }
    }

    /// A client → server packet of a known connection: the hot path.
    fn conn_in(
        &mut self,
        frame: Frame<'_>,
        meta: &FlowMeta,
        id: ConnId,
        proto: Protocol,
        now: Instant,
    ) -> Action {
        let Some(c) = self.conns.get(id) else {
            return Action::Drop(DropReason::NoConnection);
        };
        let target = Target::of(c);
        let egress = self.egress(target.daddr);
        let svc = self.services.get_mut(target.sref);
        let dest_index = svc
            .as_ref()
            .and_then(|svc| svc.dests.iter().position(|d| d.id == target.dest));
        let dest_weight = match (&svc, dest_index) {
            (Some(svc), Some(i)) => Some(svc.dests[i].weight),
            _ => None,
        };

        // A new connection attempt on an old entry (reference §5.8).
        if proto != Protocol::Udp && is_conn_start(proto, meta, &frame) {
            let reuse = self.sysctls.conn_reuse_mode != 0
                && conn::is_new_conn_expected(c, self.sysctls.conn_reuse_mode as u32);
            let nodest = self.sysctls.expire_nodest_conn && dest_weight.unwrap_or(0) == 0;
            if reuse || nodest {
                self.expire_now(id);
                return self.reschedule(frame, meta, proto, now);
            }
        }
        let (Some(svc), Some(di)) = (svc, dest_index) else {
            if self.sysctls.expire_nodest_conn {
                self.expire_now(id);
                return self.reschedule(frame, meta, proto, now);
            }
            return Action::Drop(DropReason::DestGone);
        };
        // No state change and no counting without a next hop (NeedHop
        // leaves everything as it was, so the frame can be processed again).
        let (hop, port) = match egress {
            Ok(e) => e,
            Err(a) => return a,
        };

        let activity = update_state(
            &mut self.conns,
            &self.timeouts,
            id,
            Direction::Input,
            proto,
            &frame,
            meta,
            now,
        );
        self.conns.count_in_pkt(id);

        // Counters and activity, with one look-up of the real server.
        let bytes = meta.l3_len;
        svc.stats.count_in(bytes);
        let d = &mut svc.dests[di];
        d.stats.count_in(bytes);
        apply_activity(d, activity.unwrap_or(Activity::Unchanged));
        self.stats.count_in(bytes);
        let action = self.emit_in(frame, meta, &target, hop, port);
        if self.fast.is_some() && matches!(action, Action::Forward { .. }) {
            self.fast_path_update(id);
        }
        action
    }

    fn reschedule(
        &mut self,
        mut frame: Frame<'_>,
        meta: &FlowMeta,
        proto: Protocol,
        now: Instant,
    ) -> Action {
        let af = if meta.af_v6 { Af::Inet6 } else { Af::Inet };
        frame.fwmark = self.flow_mark(&frame, meta, proto);
        match self
            .services
            .lookup(frame.fwmark, af, proto, meta.dst, meta.dport)
        {
            Some(sref) => self.new_conn(frame, meta, sref, proto, now),
            None => Action::Pass,
        }
    }

    /// Near the table's bound ([`NEAR_FULL`]), evict the oldest entry that
    /// a SYN made and that is still in `SYN_RECV`, with no entry under it.
    fn evict_if_near_full(&mut self) {
        let limit = self.conns.capacity_limit();
        if self.conns.len() * NEAR_FULL.1 < limit * NEAR_FULL.0 {
            return;
        }
        self.counters.table_full += 1;
        for _ in 0..EVICT_SCAN {
            let Some((id, caddr, cport)) = self.embryonic.pop_front() else {
                return;
            };
            let victim = self.conns.get(id).is_some_and(|c| {
                c.caddr == caddr
                    && c.cport == cport
                    && c.proto == 6
                    && !c.is_template()
                    && c.n_control == 0
                    && c.state == conn::state::TcpState::SynRecv as u8
            });
            if victim {
                self.expire_now(id);
                self.counters.evicted_syn_recv += 1;
                return;
            }
        }
    }

    fn expire_now(&mut self, id: ConnId) {
        let mut out = core::mem::take(&mut self.expired);
        self.conns.remove_forced(id, &mut out);
        for c in out.drain(..) {
            self.unbind(&c);
        }
        self.expired = out;
    }

    fn apply_activity(&mut self, sref: ServiceRef, dest: DestId, a: Activity) {
        if let Some(d) = self
            .services
            .get_mut(sref)
            .and_then(|s| s.dest_by_id_mut(dest))
        {
            apply_activity(d, a);
        }
    }

    /// Count a client → server packet, rewrite it for the forwarding method,
    /// and pick the egress.
    fn forward_in(&mut self, frame: Frame<'_>, meta: &FlowMeta, t: &Target) -> Action {
        let (hop, port) = match self.egress(t.daddr) {
            Ok(e) => e,
            Err(a) => return a,
        };
        let bytes = meta.l3_len;
        if let Some(svc) = self.services.get_mut(t.sref) {
            svc.stats.count_in(bytes);
            if let Some(d) = svc.dest_by_id_mut(t.dest) {
                d.stats.count_in(bytes);
            }
        }
        self.stats.count_in(bytes);
        self.emit_in(frame, meta, t, hop, port)
    }

    /// Rewrite a client → server packet for the forwarding method towards
    /// the egress `hop`/`port` (counting is the caller's).
    fn emit_in(
        &mut self,
        frame: Frame<'_>,
        meta: &FlowMeta,
        t: &Target,
        hop: Hop,
        port: PortConfig,
    ) -> Action {
        let end = frame.start + frame.len;
        self.last_fwd = Some(FragDecision::In(*t));
        match t.fwd {
            FwdMethod::Route | FwdMethod::Masq => {
                let f = &mut frame.buf[frame.start..end];
                let rewritten = if t.fwd == FwdMethod::Masq {
                    if meta.icmp.is_some() {
                        rvs_wire::icmp_error_in(f, meta, t.daddr, t.dport)
                    } else {
                        rvs_wire::dnat(f, meta, t.daddr, t.dport)
                    }
                } else {
                    Ok(())
                };
                if rewritten.is_err() || rvs_wire::set_macs(f, port.mac, hop.mac).is_err() {
                    return Action::Drop(DropReason::RewriteFailed);
                }
                Action::Forward {
                    port: hop.port,
                    start: frame.start,
                    len: frame.len,
                }
            }
            FwdMethod::Tunnel => {
                let src = match t.daddr {
                    IpAddr::V4(_) => port.addr_v4.map(IpAddr::V4),
                    IpAddr::V6(_) => port.addr_v6.map(IpAddr::V6),
                };
                let Some(src) = src else {
                    return Action::Drop(DropReason::RewriteFailed);
                };
                let outer = if t.daddr.is_ipv6() { 40 } else { 20 };
                if !meta.af_v6 && !meta.dont_fragment && meta.l3_len + outer > usize::from(port.mtu)
                {
                    // No DF: cut the inner packet (a fragment too) so that
                    // each piece fits once encapsulated, as the kernel's
                    // tunnels fragment (RFC 2003 allows either).
                    let bytes = &frame.buf[frame.start..end];
                    return self.tunnel_pieces(bytes, meta, src, t.daddr, hop, port, outer);
                }
                let encap = rvs_wire::encap_ipip(
                    frame.buf,
                    frame.start,
                    frame.len,
                    src,
                    t.daddr,
                    port.mtu,
                    TUNNEL_TTL,
                );
                match encap {
                    Ok(EncapResult::Encapsulated { start, len }) => {
                        let f = &mut frame.buf[start..start + len];
                        if rvs_wire::set_macs(f, port.mac, hop.mac).is_err() {
                            return Action::Drop(DropReason::RewriteFailed);
                        }
                        Action::Forward {
                            port: hop.port,
                            start,
                            len,
                        }
                    }
                    Ok(EncapResult::TooBig { mtu }) => {
                        let orig = &frame.buf[frame.start..end];
                        match rvs_wire::icmp_frag_needed(orig, meta, mtu, meta.dst, &mut self.reply)
                        {
                            Ok(len) => Action::Reply {
                                port: frame.ingress,
                                len,
                            },
                            Err(_) => Action::Drop(DropReason::RewriteFailed),
                        }
                    }
                    Err(_) => Action::Drop(DropReason::RewriteFailed),
                }
            }
        }
    }

    /// Cut the inner IPv4 packet `bytes` (a frame, DF clear) into pieces
    /// that fit `port`'s MTU under an `outer`-byte header, encapsulate each
    /// towards `daddr` and keep them for [`Action::Frames`].
    #[allow(clippy::too_many_arguments)]
    fn tunnel_pieces(
        &mut self,
        bytes: &[u8],
        meta: &FlowMeta,
        src: IpAddr,
        daddr: IpAddr,
        hop: Hop,
        port: PortConfig,
        outer: usize,
    ) -> Action {
        const ROOM: usize = 64;
        let max_ip_len = usize::from(port.mtu).saturating_sub(outer);
        self.frames.clear();
        self.frame_spans.clear();
        let want = ROOM + meta.l3_offset + max_ip_len;
        if self.piece.len() < want {
            self.piece.resize(want, 0);
        }
        for i in 0.. {
            let len = match rvs_wire::ipv4_fragment(
                bytes,
                meta,
                max_ip_len,
                i,
                &mut self.piece[ROOM..],
            ) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(_) => return Action::Drop(DropReason::RewriteFailed),
            };
            let encap =
                rvs_wire::encap_ipip(&mut self.piece, ROOM, len, src, daddr, port.mtu, TUNNEL_TTL);
            let Ok(EncapResult::Encapsulated { start, len }) = encap else {
                return Action::Drop(DropReason::RewriteFailed);
            };
            let f = &mut self.piece[start..start + len];
            if rvs_wire::set_macs(f, port.mac, hop.mac).is_err() {
                return Action::Drop(DropReason::RewriteFailed);
            }
            self.frame_spans.push((self.frames.len(), len));
            self.frames.extend_from_slice(f);
        }
        self.counters.tunnel_fragmented += 1;
        Action::Frames {
            port: hop.port,
            count: self.frame_spans.len(),
        }
    }

    /// A real server → client packet of a NAT connection.
    fn conn_out(
        &mut self,
        frame: Frame<'_>,
        meta: &FlowMeta,
        id: ConnId,
        proto: Protocol,
        now: Instant,
    ) -> Action {
        let Some(c) = self.conns.get(id) else {
            return Action::Drop(DropReason::NoConnection);
        };
        let (sref, dest_id, vaddr, vport, caddr) = (
            ServiceRef::from_owner(c.owner),
            c.dest,
            c.vaddr,
            c.vport,
            c.caddr,
        );
        // No state change and no counting without a next hop.
        let (hop, port) = match self.egress(caddr) {
            Ok(e) => e,
            Err(a) => return a,
        };
        let activity = update_state(
            &mut self.conns,
            &self.timeouts,
            id,
            Direction::Output,
            proto,
            &frame,
            meta,
            now,
        );
        self.apply_activity(sref, dest_id, activity.unwrap_or(Activity::Unchanged));
        self.count_out(sref, dest_id, meta.l3_len);
        self.last_fwd = Some(FragDecision::Out {
            sref,
            dest: dest_id,
            vaddr,
            caddr,
        });

        let f = &mut frame.buf[frame.start..frame.start + frame.len];
        // Replies are routed by the director: TTL goes down by one.
        match rvs_wire::decrement_ttl(f, meta) {
            Ok(TtlVerdict::Expired) => return Action::Drop(DropReason::TtlExpired),
            Ok(_) => {}
            Err(_) => return Action::Drop(DropReason::RewriteFailed),
        }
        if rvs_wire::snat(f, meta, vaddr, vport).is_err()
            || rvs_wire::set_macs(f, port.mac, hop.mac).is_err()
        {
            return Action::Drop(DropReason::RewriteFailed);
        }
        if self.fast.is_some() {
            self.fast_path_update(id);
        }
        Action::Forward {
            port: hop.port,
            start: frame.start,
            len: frame.len,
        }
    }

    /// ICMP errors that refer to a connection (reference §5.4): translated
    /// for NAT, forwarded to the real server for client-side errors.
    fn process_icmp_error(&mut self, frame: Frame<'_>, meta: &FlowMeta) -> Action {
        let Some(icmp) = meta.icmp else {
            return Action::Pass;
        };
        // From the real-server side (the kernel's `inout = 1`): the quoted
        // packet is the request the server received (src = client, dst = server).
        if let Some(id) = self.conns.lookup_out(
            icmp.inner_proto,
            icmp.inner_dst,
            icmp.inner_dport,
            icmp.inner_src,
            icmp.inner_sport,
        ) {
            let Some(c) = self.conns.get(id) else {
                return Action::Drop(DropReason::Icmp);
            };
            let (sref, dest, vaddr, vport, caddr) = (
                ServiceRef::from_owner(c.owner),
                c.dest,
                c.vaddr,
                c.vport,
                c.caddr,
            );
            let (hop, port) = match self.egress(caddr) {
                Ok(e) => e,
                Err(a) => return a,
            };
            self.count_out(sref, dest, meta.l3_len);
            let f = &mut frame.buf[frame.start..frame.start + frame.len];
            if rvs_wire::icmp_error_out(f, meta, vaddr, vport).is_err()
                || rvs_wire::set_macs(f, port.mac, hop.mac).is_err()
            {
                return Action::Drop(DropReason::Icmp);
            }
            return Action::Forward {
                port: hop.port,
                start: frame.start,
                len: frame.len,
            };
        }
        // From the client side: the quoted packet is one the director sent to
        // the client (src = virtual address, dst = client). It goes to the
        // real server like the connection's other packets.
        if let Some(id) = self.conns.lookup_in(
            icmp.inner_proto,
            icmp.inner_dst,
            icmp.inner_dport,
            icmp.inner_src,
            icmp.inner_sport,
        ) {
            let Some(c) = self.conns.get(id) else {
                return Action::Drop(DropReason::Icmp);
            };
            let target = Target::of(c);
            return self.forward_in(frame, meta, &target);
        }
        Action::Pass
    }

    fn count_out(&mut self, sref: ServiceRef, dest: DestId, bytes: usize) {
        if let Some(svc) = self.services.get_mut(sref) {
            svc.stats.count_out(bytes);
            if let Some(d) = svc.dest_by_id_mut(dest) {
                d.stats.count_out(bytes);
            }
        }
        self.stats.count_out(bytes);
    }

    /// Sum of the counters of every service (for checks and listings).
    pub fn total_counters(&self) -> Counters {
        self.stats.shown()
    }
}

use conn::state::tcp_flags::{ACK as TCP_ACK, RST as TCP_RST, SYN as TCP_SYN};

/// TCP SYN (without ACK/RST) or SCTP INIT: a packet that opens a connection.
fn is_conn_start(proto: Protocol, meta: &FlowMeta, frame: &Frame<'_>) -> bool {
    match proto {
        Protocol::Tcp => meta.tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN,
        Protocol::Sctp => sctp_first_chunk(frame, meta) == Some(SCTP_INIT),
        Protocol::Udp => false,
    }
}

/// Advance a connection's protocol state machine for one packet.
#[inline]
#[allow(clippy::too_many_arguments)]
fn update_state(
    conns: &mut ConnTable,
    timeouts: &Timeouts,
    id: ConnId,
    dir: Direction,
    proto: Protocol,
    frame: &Frame<'_>,
    meta: &FlowMeta,
    now: Instant,
) -> Option<Activity> {
    match proto {
        Protocol::Tcp => conns.tcp_update(id, dir, meta.tcp_flags, timeouts, now),
        Protocol::Udp => conns.udp_update(id, timeouts, now),
        Protocol::Sctp => conns.sctp_update(id, dir, sctp_event_of(frame, meta), timeouts, now),
    }
}

fn apply_activity(d: &mut Dest, a: Activity) {
    match a {
        Activity::ToActive => {
            d.inactconns = d.inactconns.saturating_sub(1);
            d.activeconns += 1;
        }
        Activity::ToInactive => {
            d.activeconns = d.activeconns.saturating_sub(1);
            d.inactconns += 1;
        }
        Activity::Unchanged => {}
    }
}

/// SCTP chunk type INIT.
const SCTP_INIT: u8 = 1;
/// The fast-path flow `key` of connection `id` (`c`); `reply`: the NAT
/// reply direction.
fn fast_flow(id: ConnId, c: &Conn, key: FlowKey, reply: bool) -> FastFlow {
    FastFlow {
        key,
        conn: id,
        owner: c.owner,
        dest: c.dest,
        reply,
    }
}

/// Queue the removal of the cached flows of connection `id` (`c`): the
/// client → server flow `key` and, for NAT, the reply flow, as `bits` says
/// they were installed.
fn queue_removals(ops: &mut Vec<FastPathOp>, id: ConnId, bits: u8, c: &Conn, key: FlowKey) {
    let flow = |key: FlowKey, reply: bool| fast_flow(id, c, key, reply);
    if bits & FP_IN != 0 {
        ops.push(FastPathOp::Remove(flow(key, false)));
    }
    if bits & FP_OUT != 0
        && let Some(out) = fastpath::flow_out(c)
    {
        ops.push(FastPathOp::Remove(flow(out, true)));
    }
}

/// TTL of the outer header of tunnelled packets.
const TUNNEL_TTL: u8 = 64;

/// What a fragmented datagram's first fragment was decided (its other
/// fragments follow it, see [`crate::frag`]).
#[derive(Debug, Clone, Copy)]
enum FragDecision {
    /// Not ours.
    Pass,
    /// Dropped (or answered with an ICMP error).
    Drop,
    /// Client → server, to this real server.
    In(Target),
    /// A NAT reply to translate to `vaddr` and send to `caddr`.
    Out {
        sref: ServiceRef,
        dest: DestId,
        vaddr: IpAddr,
        caddr: IpAddr,
    },
}

/// The datagram key of an IPv4 fragment, its offset in bytes and its MF flag.
fn frag_fields(frame: &Frame<'_>, meta: &FlowMeta) -> (FragKey, u32, bool) {
    let at = |i: usize| {
        frame
            .buf
            .get(frame.start + meta.l3_offset + i)
            .copied()
            .unwrap_or(0)
    };
    let ident = u32::from(u16::from_be_bytes([at(4), at(5)]));
    let fo = u16::from_be_bytes([at(6), at(7)]);
    let key = FragKey {
        src: meta.src,
        dst: meta.dst,
        proto: meta.proto,
        ident,
    };
    (key, u32::from(fo & 0x1fff) * 8, fo & 0x2000 != 0)
}

/// Where a client → server packet goes.
#[derive(Debug, Clone, Copy)]
struct Target {
    sref: ServiceRef,
    dest: DestId,
    daddr: IpAddr,
    dport: u16,
    fwd: FwdMethod,
}

impl Target {
    fn of(c: &Conn) -> Target {
        Target {
            sref: ServiceRef::from_owner(c.owner),
            dest: c.dest,
            daddr: c.daddr,
            dport: c.dport,
            fwd: fwd_of(c.flags),
        }
    }
}

/// Type of the SCTP chunk at `off` bytes into the packet's transport part.
fn sctp_chunk_at(frame: &Frame<'_>, meta: &FlowMeta, off: usize) -> Option<u8> {
    let l4 = frame.start.checked_add(meta.l4_offset)?;
    let end = frame.start.checked_add(frame.len)?;
    let pos = l4.checked_add(off)?;
    if pos >= end {
        return None;
    }
    frame.buf.get(pos).copied()
}

/// Type of the first chunk of an SCTP packet (after the 12-byte common header).
fn sctp_first_chunk(frame: &Frame<'_>, meta: &FlowMeta) -> Option<u8> {
    sctp_chunk_at(frame, meta, 12)
}

/// The state-machine event of an SCTP packet: its first chunk, and the
/// second one when present (COOKIE-ECHO/ACK followed by ABORT).
fn sctp_event_of(frame: &Frame<'_>, meta: &FlowMeta) -> conn::SctpEvent {
    let first = sctp_first_chunk(frame, meta).unwrap_or(0);
    let len_hi = sctp_chunk_at(frame, meta, 14).unwrap_or(0) as usize;
    let len_lo = sctp_chunk_at(frame, meta, 15).unwrap_or(0) as usize;
    let len = (len_hi << 8 | len_lo).div_ceil(4) * 4;
    let second = if len >= 4 {
        sctp_chunk_at(frame, meta, 12 + len)
    } else {
        None
    };
    conn::sctp_event(first, second)
}

#[derive(Debug, Clone, Copy)]
struct Scheduled {
    dest_index: usize,
    dport: u16,
    template: Option<ConnId>,
}

#[derive(Debug, Clone, Copy)]
enum SchedFail {
    NoDest,
    NoConnection,
    TableFull,
}

fn zero_service(svc: &mut Service) {
    svc.stats.zero();
    for d in svc.dests.iter_mut() {
        d.stats.zero();
    }
}

fn unbind_dest(d: &mut Dest, flags: u32) {
    if flags & CONN_F_TEMPLATE != 0 {
        d.persistconns = d.persistconns.saturating_sub(1);
    } else if flags & CONN_F_INACTIVE != 0 {
        d.inactconns = d.inactconns.saturating_sub(1);
    } else {
        d.activeconns = d.activeconns.saturating_sub(1);
    }
    d.after_unbind();
}

fn fwd_of(flags: u32) -> FwdMethod {
    match flags & conn::flags::FWD_MASK {
        0 => FwdMethod::Masq,
        2 => FwdMethod::Tunnel,
        _ => FwdMethod::Route,
    }
}

fn sched_input(svc: &Service, meta: &FlowMeta, now: Instant) -> SchedInput {
    SchedInput {
        saddr: meta.src,
        sport: meta.sport,
        daddr: meta.dst,
        dport: meta.dport,
        proto: meta.proto,
        svc_flags: svc.config.flags,
        now,
    }
}

/// The client network for persistence: IPv4 `addr & mask`, IPv6 prefix of `len`.
pub fn mask_addr(addr: IpAddr, netmask: u32) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & netmask)),
        IpAddr::V6(a) => {
            let len = netmask.min(128);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}
