//! The data plane's counters as `rvs dataplane` and the metrics read them
//! ([`Reply::DataPlaneStats`](crate::Reply::DataPlaneStats)): per worker, the classifier's,
//! the fast path's and the engine's.

use serde::{Deserialize, Serialize};

/// Counters of one data-plane worker thread (one per RX queue).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DataPlaneWorker {
    /// Worker index (= the RX queue it serves).
    pub worker: u32,
    /// Frames received.
    pub rx: u64,
    /// Frames queued for transmission.
    pub tx: u64,
    /// Frames the engine forwarded.
    pub forwarded: u64,
    /// Frames the engine answered (ICMP errors it generated).
    pub replies: u64,
    /// Frames the engine left to the kernel.
    pub passed: u64,
    /// Frames the engine dropped.
    pub dropped: u64,
    /// Frames dropped while the next hop was being resolved.
    pub need_hop: u64,
    /// Frames the egress socket had no room for.
    pub tx_full: u64,
    /// Frames forwarded to an interface rvsd does not serve (dropped).
    pub no_port: u64,
    /// Frames the kernel dropped before rvsd could read them: AF_XDP RX
    /// ring full, no fill-ring frame, or AF_PACKET receive buffer full.
    #[serde(default)]
    pub kernel_drops: u64,
    /// Frames whose TCP/UDP checksum or SCTP CRC32c a sender's checksum
    /// offload left partial, finished by the engine before forwarding.
    #[serde(default)]
    pub csum_completed: u64,
    /// TCP super-frames (a sender's TSO, GRO) cut into wire-sized segments
    /// before the engine (AF_PACKET).
    #[serde(default)]
    pub segmented: u64,
    /// Frames handed to the worker whose engine replica owns them
    /// (`rvsd --engines per-worker`).
    #[serde(default)]
    pub handed_off: u64,
    /// Frames that could not be handed over: the owner's queue was full.
    #[serde(default)]
    pub handoff_dropped: u64,
}

/// Counters of the XDP classifier, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClassifierCounters {
    /// Frames redirected to rvsd's sockets.
    pub redirected: u64,
    /// Frames left to the kernel.
    pub passed: u64,
    /// Claimed frames passed for want of a socket.
    pub no_socket: u64,
    /// Malformed frames (passed).
    pub malformed: u64,
    /// IPv4 fragments left to the kernel: not to a virtual address (nor a
    /// fwmark rule's prefix), not from a NAT real server.
    pub fragments: u64,
    /// Pure TCP SYNs among the claimed frames.
    #[serde(default)]
    pub syns: u64,
    /// Of those, shed by the SYN guard while the slow path was congested.
    #[serde(default)]
    pub syn_shed: u64,
    /// The share of pure SYNs the SYN guard sheds now, in per mille.
    #[serde(default)]
    pub syn_shed_permille: u32,
    /// IPv4 fragments claimed by address (to a virtual address or a fwmark
    /// rule's prefix, or from a NAT real server); absent from older daemons.
    #[serde(default)]
    pub fragments_claimed: u64,
}

/// Counters of the XDP fast path (`rvsd --fast-path on|all`): what it
/// holds, what it forwarded, and what rvsd did to it. Every field defaults
/// when absent, so replies of other versions decode.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FastPathCounters {
    /// `--fast-path` in effect: `on` or `all`.
    pub mode: String,
    /// Interfaces the fast path sends to now (the others' flows go through
    /// the engine), by name.
    pub egress: Vec<String>,
    /// Interfaces whose taking redirected XDP frames is probed, by name.
    pub probed: Vec<String>,
    /// For each probed interface, in order: `NAME: on|off|trial: why`
    /// (what the probe or, where live-frames test runs are refused, the
    /// watch of real redirects found).
    pub why: Vec<String>,
    /// Flow entries in the cache now (each direction of a NAT connection
    /// is one).
    pub entries: u64,
    /// Entries installed since start.
    pub installs: u64,
    /// Entries removed by rvsd since start (connection closed or expired,
    /// configuration change, egress lost).
    pub removals: u64,
    /// Entries found evicted by the cache (least recently used, when it is
    /// full); their flows went back to the engine.
    pub evictions: u64,
    /// Packets forwarded inside XDP and credited to the statistics.
    pub packets: u64,
    /// Their bytes (IP lengths, as the statistics count them).
    pub bytes: u64,
    /// Frames the XDP program forwarded (its own per-CPU counter).
    pub hits: u64,
    /// Packets it could have handled but found no entry for.
    pub misses: u64,
    /// Packets it never handles (TCP SYN/FIN/RST, fragments, options...).
    pub skipped: u64,
    /// Hits left to the engine: the tunnelled packet would exceed the MTU.
    pub too_big: u64,
    /// Hits left to the engine: TTL or hop limit too low.
    pub ttl: u64,
    /// Hits left to the engine (or dropped): entry mismatch, helper error.
    pub errors: u64,
    /// Hits whose checksum a sender's offload left partial, finished in
    /// XDP before forwarding.
    pub csum_completed: u64,
    /// Hits with a partial checksum left to the engine to finish (SCTP
    /// CRC32c, segments over 2048 bytes).
    pub csum_slow: u64,
}

/// The engine's counters (not IPVS statistics): why frames were dropped,
/// and how full the connection table is. Every field defaults when
/// absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineCounters {
    /// Connection entries now (templates included).
    pub conns: u64,
    /// The table's bound (`rvsd --max-conns`).
    pub max_conns: u64,
    /// Entries in SYN_RECV evicted to make room near the bound.
    pub evicted_syn_recv: u64,
    /// New connections that found the table full (at 15/16 of its bound:
    /// each evicted a SYN_RECV entry, or was dropped as table full).
    pub table_full: u64,
    /// Next hops known now.
    pub hops: u64,
    /// Next hops pruned (addresses no real server or connection needs).
    pub hops_pruned: u64,
    /// Drops: a frame that did not parse.
    pub drop_malformed: u64,
    /// Drops: neither a connection start nor part of a connection.
    pub drop_no_conn: u64,
    /// Drops: no real server available.
    pub drop_no_dest: u64,
    /// Drops: the connection's real server is gone.
    pub drop_dest_gone: u64,
    /// Drops: the connection table is full.
    pub drop_table_full: u64,
    /// Drops: TTL or hop limit ran out.
    pub drop_ttl: u64,
    /// Drops: the rewrite failed.
    pub drop_rewrite: u64,
    /// Drops: other (unknown ingress, an ICMP error that cannot be
    /// translated, a fragment with no room to wait for its first fragment
    /// or of a datagram whose first fragment was dropped).
    pub drop_other: u64,
    /// Fragmented datagrams tracked now (decided, or waiting for their
    /// first fragment).
    pub frag_datagrams: u64,
    /// Fragmented datagrams whose first fragment was decided; the other
    /// fragments followed it.
    pub frag_tracked: u64,
    /// Fragments held because they came before their first fragment.
    pub frag_held: u64,
    /// Held fragments released when their first fragment came.
    pub frag_released: u64,
    /// Held fragments dropped: their first fragment did not come in time
    /// (or the datagram was evicted).
    pub frag_expired: u64,
    /// Datagrams evicted from a full fragment table.
    pub frag_evicted: u64,
    /// Fragments dropped for want of room to hold them.
    pub frag_no_room: u64,
    /// Tunnelled packets without DF cut into fragments to fit the tunnel.
    pub tunnel_fragmented: u64,
}
