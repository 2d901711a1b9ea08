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
//!
//! The [`Engine`] and its types are here, with the dispatch of a frame
//! ([`Engine::process`]); the rest is split by job, each submodule adding
//! an `impl Engine` block over the same private fields:
//!
//! - `ctl`: control operations, listings' read access, sysctls, the claim
//!   check, firewall-mark rules, and housekeeping ([`Engine::poll`]);
//! - `schedule`: new connections (persistence templates, the scheduler,
//!   `ip_vs_leave`, eviction of embryonic entries near the table's bound);
//! - `xmit`: ports and next hops, a known connection's packets in both
//!   directions, and the rewrite for each forwarding method (DR, NAT, TUN);
//! - `icmp`: ICMP errors about a connection;
//! - `frag`: a fragmented datagram's first-fragment decision and the
//!   fragments that follow it (the table itself is [`crate::frag`]);
//! - `fast`: the XDP fast path's bookkeeping (the map formats are
//!   [`crate::fastpath`]);
//! - `steer`: which replica owns a packet, with per-worker engines;
//! - `sync`: connection sync: what a master queues, how a backup applies
//!   an entry (the messages are [`rvs_wire::ipvs_sync`]).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::VecDeque;

use hashbrown::HashMap;
use rvs_wire::{EthernetAddress, FlowMeta};

use crate::claims::ClaimGuard;
use crate::conn::{self, Conn, ConnId, ConnTable, ConnTableConfig, Timeouts};
use crate::frag::{FragConfig, FragCounters, FragTable};
use crate::fwmark::FwmarkRules;
use crate::service::Services;
use crate::stats::Stats;
use crate::time::Instant;
use crate::types::{Af, Protocol};

mod ctl;
mod fast;
mod frag;
mod icmp;
mod schedule;
mod steer;
mod sync;
mod xmit;

pub use sync::{SyncApplied, SyncCounters, SyncEntry, UNBOUND_OWNER};

pub use schedule::mask_addr;
pub use steer::owner as steer_owner;

use fast::FastPath;
use frag::{FragDecision, frag_fields};

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
    /// Do not forward while a backup sync daemon runs (`backup_only`).
    pub backup_only: bool,
    /// Sync only the templates of persistent connections (`sync_persist_mode`).
    pub sync_persist_mode: bool,
    /// A master's queue bound, in messages of ~40 entries (`sync_qlen_max`).
    pub sync_qlen_max: u32,
    /// Seconds (`sync_refresh_period`; 0: send on packet counts only).
    pub sync_refresh_period: u32,
    /// Resends within a refresh period (`sync_retries`, 0–3).
    pub sync_retries: u8,
    /// First of the two numbers of `sync_threshold`: the packet count at
    /// which a connection is first sent.
    pub sync_threshold: u32,
    /// Second number of `sync_threshold`: resend every this many packets
    /// (0: once).
    pub sync_period: u32,
    /// Message format sent (`sync_version`, 0 or 1).
    pub sync_version: u8,
    /// The sync sockets' buffer, bytes (`sync_sock_size`; 0: default).
    pub sync_sock_size: u32,
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls {
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: 1,
            sloppy_tcp: false,
            sloppy_sctp: false,
            backup_only: false,
            sync_persist_mode: false,
            sync_qlen_max: 16384,
            sync_refresh_period: 0,
            sync_retries: 0,
            sync_threshold: 3,
            sync_period: 50,
            sync_version: 1,
            sync_sock_size: 0,
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

/// The IPVS engine.
#[derive(Debug)]
pub struct Engine {
    /// The settings it was created with ([`Engine::replica`]).
    config: EngineConfig,
    services: Services,
    conns: ConnTable,
    timeouts: Timeouts,
    sysctls: Sysctls,
    stats: Stats,
    ports: Vec<Option<PortConfig>>,
    /// Next hops keyed by [`addr_key`](crate::service::addr_key) (one
    /// 128-bit word hashes faster than an `IpAddr`).
    hops: HashMap<u128, Hop>,
    /// Moves whenever a next hop or a port changes or goes: the real
    /// servers' [`EgressCache`](crate::dest::EgressCache)s of another epoch
    /// are stale.
    hop_epoch: u32,
    counters: EngineCounters,
    expired: Vec<Conn>,
    reply: Vec<u8>,
    /// Firewall-mark rules: the mark of packets that arrive without one.
    fwmark_rules: FwmarkRules,
    /// The XDP fast path's bookkeeping; `None` when it is off.
    fast: Option<Box<FastPath>>,
    /// TCP entries a SYN made, oldest first, each with a 32-bit tag of its
    /// client ([`client_tag`]): a handle may be reused, so the entry must
    /// still be this client's, and still `SYN_RECV`. The first evicted when
    /// the table is near full. Stale handles stay until they reach the
    /// front (at most the table's bound of them): 8 bytes each, not the
    /// 28 a full client address and port took (measured by the engine
    /// bench's bytes per connection).
    embryonic: VecDeque<(ConnId, u32)>,
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
    /// record (set by [`Engine::emit_in`] and [`Engine::conn_out`] for
    /// fragments only).
    last_fwd: Option<FragDecision>,
    /// The frames of the last [`Action::Frames`], one after the other.
    frames: Vec<u8>,
    /// (start, length) of each frame in `frames`.
    frame_spans: Vec<(usize, usize)>,
    /// Where one piece of [`Action::Frames`] is built and encapsulated.
    piece: Vec<u8>,
    /// Connection sync: the master's queue, the backup's flag, counters.
    sync: sync::SyncState,
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

/// A 32-bit tag of a client address and port: an embryonic handle whose
/// slot was reused by another client is told apart by it (a collision
/// only makes the eviction pick a younger `SYN_RECV` entry).
#[inline]
pub(super) fn client_tag(addr: IpAddr, port: u16) -> u32 {
    let a = crate::service::addr_key(addr);
    // splitmix64's finaliser (a bijection with full avalanche), applied to
    // the high half and the port, then to that mixed into the low half.
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let hi = mix(((a >> 64) as u64) ^ (u64::from(port) << 32));
    (mix(a as u64 ^ hi) >> 32) as u32
}

/// Embryonic handles looked at per [`Engine::poll`] (one slab read each):
/// more than the SYNs of a poll interval at the rates one worker decides.
const EMBRYONIC_PRUNE: usize = 16384;

/// Largest reply frame the engine builds.
const REPLY_CAPACITY: usize = 1600;

impl Engine {
    /// A new engine with no services.
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            config: cfg,
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
            hop_epoch: 0,
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
            sync: sync::SyncState::default(),
        }
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
        if self.backup_only_active() {
            // sysctl backup_only: no forwarding while a backup daemon runs.
            return Action::Pass;
        }
        let end = frame.start.saturating_add(frame.len);
        let Some(bytes) = frame.buf.get(frame.start..end) else {
            return Action::Drop(DropReason::Malformed);
        };
        let mut meta = FlowMeta::EMPTY;
        if !matches!(
            rvs_wire::parse_frame_into(bytes, &mut meta),
            Ok(rvs_wire::Kind::Ip)
        ) {
            return Action::Pass;
        }
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
            .lookup_in(meta.proto, &meta.src, meta.sport, &meta.dst, meta.dport)
        {
            self.finish_checksum(&mut frame, meta);
            return self.conn_in(frame, meta, id, proto, now);
        }
        if self.services.is_nat_source(&meta.src)
            && let Some(id) = self
                .conns
                .lookup_out(meta.proto, &meta.src, meta.sport, &meta.dst, meta.dport)
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
}
