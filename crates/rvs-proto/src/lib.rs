//! rvs-proto: the control API between `rvsadm` (and other clients) and `rvsd`.
//!
//! Requests and replies are plain, typed values ([`Request`], [`Reply`]),
//! versioned by [`PROTOCOL_VERSION`], and encoded as one JSON document per
//! line over a Unix stream socket ([`encode`], [`decode`], [`client`]).
//! The types are deliberately independent of the engine's own (`rvs-core`):
//! they are the stable contract; `rvsd` converts between the two.
//!
//! Semantics worth knowing:
//! * every request is validated whole before anything changes;
//! * a [`Request::Batch`] (what `rvsadm -R` sends) is atomic: if any line is
//!   bad, nothing is applied and the [`ErrorReply`] names the line;
//! * errors carry the errno the kernel would have returned, so the CLI can
//!   print ipvsadm's exact texts.

#![warn(missing_docs)]

pub mod client;
pub mod fwmark;
pub mod packed;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Version of this protocol; a daemon refuses other versions with a clear error.
pub const PROTOCOL_VERSION: u32 = 1;

/// `IP_VS_VERSION_CODE` that ipvsadm prints (`1.2.1`).
pub const IPVS_VERSION_CODE: u32 = 0x010201;

/// Service flag: persistent.
pub const SVC_F_PERSISTENT: u32 = 0x0001;
/// Service flag: hashed (set on every live service).
pub const SVC_F_HASHED: u32 = 0x0002;
/// Service flag: one-packet scheduling.
pub const SVC_F_ONEPACKET: u32 = 0x0004;
/// Scheduler flag 1 (`flag-1`, `sh-fallback`, `mh-fallback`).
pub const SVC_F_SCHED1: u32 = 0x0008;
/// Scheduler flag 2 (`flag-2`, `sh-port`, `mh-port`).
pub const SVC_F_SCHED2: u32 = 0x0010;
/// Scheduler flag 3 (`flag-3`).
pub const SVC_F_SCHED3: u32 = 0x0020;

/// Tunnel checksum flag: checksum.
pub const TUN_F_CSUM: u16 = 1;
/// Tunnel checksum flag: remote checksum offload.
pub const TUN_F_REMCSUM: u16 = 2;

/// Transport protocol of an address service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Proto {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    /// Name as ipvsadm prints it.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
            Proto::Sctp => "SCTP",
        }
    }

    /// Lower-case name for service-name lookups (`tcp`, `udp`, `sctp`).
    pub fn lower(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// What identifies a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceId {
    /// `-t`/`-u`/`--sctp-service` address[:port].
    Addr {
        /// Protocol.
        proto: Proto,
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port (0 = all ports, persistent services only).
        port: u16,
    },
    /// `-f mark` (with `-6` for IPv6).
    Fwmark {
        /// IPv6 family.
        v6: bool,
        /// The mark.
        mark: u32,
    },
}

impl ServiceId {
    /// Whether the service is IPv6.
    pub fn is_v6(&self) -> bool {
        match self {
            ServiceId::Addr { addr, .. } => addr.is_ipv6(),
            ServiceId::Fwmark { v6, .. } => *v6,
        }
    }
}

/// Everything `-A`/`-E` sets; an edit replaces all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Identity.
    pub id: ServiceId,
    /// Scheduler name.
    pub scheduler: String,
    /// `SVC_F_*` flags (persistent, one-packet, scheduler flags).
    pub flags: u32,
    /// Persistence timeout, seconds.
    pub timeout: u32,
    /// Netmask: IPv4 mask as a host-order u32, or IPv6 prefix length.
    pub netmask: u32,
    /// Persistence engine name.
    pub pe: Option<String>,
}

/// Forwarding method of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Fwd {
    /// NAT (`-m`).
    Masq,
    /// Local node (listed as `Local`; not settable with ipvsadm).
    Local,
    /// IP-in-IP tunnelling (`-i`).
    Tunnel,
    /// Direct routing (`-g`).
    Route,
}

impl Fwd {
    /// Name as `-L` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Fwd::Masq => "Masq",
            Fwd::Local => "Local",
            Fwd::Tunnel => "Tunnel",
            Fwd::Route => "Route",
        }
    }

    /// Switch as `-S` prints it.
    pub fn switch(self) -> &'static str {
        match self {
            Fwd::Masq => "-m",
            Fwd::Tunnel => "-i",
            Fwd::Local | Fwd::Route => "-g",
        }
    }
}

/// Tunnel encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TunKind {
    /// IP-in-IP.
    #[default]
    Ipip,
    /// GUE.
    Gue,
    /// GRE.
    Gre,
}

impl TunKind {
    /// Name as ipvsadm prints and parses it.
    pub fn name(self) -> &'static str {
        match self {
            TunKind::Ipip => "ipip",
            TunKind::Gue => "gue",
            TunKind::Gre => "gre",
        }
    }
}

/// Tunnel settings of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct TunnelSpec {
    /// Encapsulation.
    pub kind: TunKind,
    /// GUE port.
    pub port: u16,
    /// `TUN_F_*` flags.
    pub flags: u16,
}

/// Everything `-a`/`-e` sets; an edit replaces all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestSpec {
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Forwarding method.
    pub fwd: Fwd,
    /// Weight (0..=65535 from ipvsadm).
    pub weight: u32,
    /// Upper threshold (0 = none).
    pub u_threshold: u32,
    /// Lower threshold (0 = none).
    pub l_threshold: u32,
    /// Tunnel settings.
    pub tunnel: TunnelSpec,
}

/// Sync daemon role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaemonRole {
    /// Master.
    Master,
    /// Backup.
    Backup,
}

/// `--start-daemon` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonSpec {
    /// Role.
    pub role: DaemonRole,
    /// Multicast interface.
    pub mcast_ifn: String,
    /// Sync id.
    pub syncid: u32,
    /// Max message length (0 = default).
    pub maxlen: u16,
    /// Multicast group (None = default).
    pub group: Option<IpAddr>,
    /// Port (0 = default).
    pub port: u16,
    /// TTL (0 = default).
    pub ttl: u8,
}

/// One change to the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `-A`.
    AddService(ServiceSpec),
    /// `-E`.
    EditService(ServiceSpec),
    /// `-D`.
    DeleteService(ServiceId),
    /// `-C`.
    Flush,
    /// `-a`.
    AddDest {
        /// Service.
        service: ServiceId,
        /// Real server.
        dest: DestSpec,
    },
    /// `-e`.
    EditDest {
        /// Service.
        service: ServiceId,
        /// Real server (identified by address and port).
        dest: DestSpec,
    },
    /// `-d`.
    DeleteDest {
        /// Service.
        service: ServiceId,
        /// Real server address.
        addr: IpAddr,
        /// Real server port.
        port: u16,
    },
    /// `-Z` (one service or all).
    Zero(Option<ServiceId>),
    /// `--set tcp tcpfin udp` (seconds, 0 = unchanged).
    SetTimeouts {
        /// TCP established.
        tcp: u32,
        /// TCP FIN_WAIT.
        tcpfin: u32,
        /// UDP.
        udp: u32,
    },
    /// `--start-daemon`.
    StartDaemon(DaemonSpec),
    /// `--stop-daemon`.
    StopDaemon(DaemonRole),
}

/// One line of a batch, with its line number in the restore input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLine {
    /// 1-based line number.
    pub line: usize,
    /// The change.
    pub op: Op,
}

/// A request to rvsd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Version and connection-table size (`IPVS_CMD_GET_INFO`).
    Info,
    /// Apply one change.
    Apply(Op),
    /// Apply all changes or none (restore).
    Batch(Vec<BatchLine>),
    /// Every service with its real servers.
    ListServices,
    /// One service with its real servers.
    GetService(ServiceId),
    /// The three timeouts.
    GetTimeouts,
    /// Sync daemons.
    ListDaemons,
    /// Connection entries (and templates).
    ListConns,
    /// Connection entries (and templates) in parts: the reply is zero or
    /// more [`Reply::ConnsPart`] lines, then one [`Reply::Conns`] (the last
    /// part, maybe empty), so that neither rvsd nor the client holds a
    /// large table's whole listing at once. Daemons older than this answer
    /// with an error: ask with [`Request::ListConns`] then
    /// ([`client::Client::list_conns`] does).
    ListConnsParts,
    /// Connection entries (and templates) in blocks of the compact
    /// encoding ([`packed`]): the reply is one or more
    /// [`Reply::ConnsPacked`] lines, each followed by its block of records
    /// (raw bytes, not JSON), the last one marked. Daemons older than this
    /// answer with an error: ask with [`Request::ListConnsParts`] then
    /// ([`client::Client::list_conn_records`] does).
    ListConnsPacked,
    /// Counters and rates of the whole table (`/proc/net/ip_vs_stats`).
    GlobalStats,
    /// Counters of the packet path: per worker thread, and the XDP
    /// classifier's (`rvs dataplane`).
    DataPlaneStats,
    /// Append a firewall-mark rule (`rvs fwmark add`).
    FwmarkAdd(fwmark::FwmarkSpec),
    /// Remove a firewall-mark rule (`rvs fwmark del`).
    FwmarkDel(fwmark::FwmarkSpec),
    /// The firewall-mark rules, in order (`rvs fwmark list`).
    FwmarkList,
    /// Remove every firewall-mark rule (`rvs fwmark flush`).
    FwmarkFlush,
    /// The MARK rules mirrored from the host's firewall, and those left
    /// to the kernel (`rvs fwmark list`).
    FwmarkHost,
    /// The IPVS sysctls (`rvs sysctl -a`).
    GetSysctls,
    /// Set IPVS sysctls by name (`net.ipv4.vs.NAME` or `NAME`), all or
    /// none (`rvs sysctl -w`, `-p`).
    SetSysctls(Vec<(String, String)>),
}

/// One IPVS sysctl as `rvs sysctl` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlValue {
    /// Full name, `net.ipv4.vs.NAME`.
    pub name: String,
    /// Value in force (the kernel's default for those rvs does not apply).
    pub value: String,
    /// Whether rvs applies it.
    pub applies: bool,
    /// Why not, when it does not.
    #[serde(default)]
    pub note: String,
}

/// A request with its protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Must be [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The request.
    pub request: Request,
}

/// Counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Connections.
    pub conns: u64,
    /// Incoming packets.
    pub inpkts: u64,
    /// Outgoing packets.
    pub outpkts: u64,
    /// Incoming bytes.
    pub inbytes: u64,
    /// Outgoing bytes.
    pub outbytes: u64,
}

/// Rates (per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub inpps: u64,
    /// Outgoing packets per second.
    pub outpps: u64,
    /// Incoming bytes per second.
    pub inbps: u64,
    /// Outgoing bytes per second.
    pub outbps: u64,
}

/// A real server as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestInfo {
    /// Settings.
    pub spec: DestSpec,
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// Persistence templates.
    pub persist: u32,
    /// Counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
}

/// A service as listed, real servers newest first (kernel order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Settings.
    pub spec: ServiceSpec,
    /// Counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
    /// Real servers, newest first.
    pub dests: Vec<DestInfo>,
}

/// A connection entry as `/proc/net/ip_vs_conn` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    /// IP protocol number (0 for fwmark templates).
    pub proto: u8,
    /// Client address.
    pub caddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual address.
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real server address.
    pub daddr: IpAddr,
    /// Real server port.
    pub dport: u16,
    /// State name (`ESTABLISHED`, `NONE`, `ASSURED`, `UDP`, …).
    pub state: String,
    /// Seconds until expiry.
    pub expire_secs: u64,
    /// `IP_VS_CONN_F_*` flags.
    pub flags: u32,
    /// Persistence engine name and data, if any.
    pub pe: Option<(String, String)>,
}

/// A running sync daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// Settings in force.
    pub spec: DaemonSpec,
}

/// An error, with the errno the kernel would have returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Positive errno (EEXIST 17, ESRCH 3, ENOENT 2, EINVAL 22, ERANGE 34,
    /// EPERM 1, …).
    pub errno: i32,
    /// Human-readable detail.
    pub message: String,
    /// For batches: the 1-based input line that failed.
    pub line: Option<usize>,
    /// For batches: the operation of that line (to pick ipvsadm's text).
    pub op: Option<Op>,
    /// Whether `message` explains what ipvsadm's text for `errno` cannot
    /// (a failure the kernel never has: the data plane's limits, a data
    /// plane that did not take a change); rvsadm then prints it on a
    /// line of its own after ipvsadm's text.
    #[serde(default)]
    pub explain: bool,
}

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

/// A reply from rvsd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Done.
    Ok,
    /// Failed; nothing changed.
    Error(ErrorReply),
    /// `Request::Info`.
    Info {
        /// `IPVS_VERSION_CODE`.
        version: u32,
        /// Connection table size shown as `(size=N)`.
        conn_tab_size: u32,
    },
    /// Services.
    Services(Vec<ServiceInfo>),
    /// One service.
    Service(ServiceInfo),
    /// Timeouts in seconds.
    Timeouts {
        /// TCP established.
        tcp: u32,
        /// TCP FIN_WAIT.
        tcpfin: u32,
        /// UDP.
        udp: u32,
    },
    /// Sync daemons (master first).
    Daemons(Vec<DaemonInfo>),
    /// Connection entries (the whole table, or the last part of
    /// [`Request::ListConnsParts`]'s answer).
    Conns(Vec<ConnInfo>),
    /// A part of [`Request::ListConnsParts`]'s answer; more follow.
    ConnsPart(Vec<ConnInfo>),
    /// A block of [`Request::ListConnsPacked`]'s answer: `len` bytes of
    /// [`packed`] records follow the line; more blocks follow unless
    /// `last`.
    ConnsPacked {
        /// Bytes of records after the line (at most [`packed::MAX_BLOCK`]).
        len: u32,
        /// Whether this block ends the listing.
        last: bool,
    },
    /// Totals of the whole table.
    GlobalStats {
        /// Counters.
        stats: Stats,
        /// Rates.
        rates: Rates,
    },
    /// `Request::DataPlaneStats`.
    DataPlaneStats {
        /// The packet I/O in use: `xdp`, `packet` or `none`.
        mode: String,
        /// One entry per worker thread, by worker index.
        workers: Vec<DataPlaneWorker>,
        /// The XDP classifier's counters (`xdp` mode only).
        classifier: Option<ClassifierCounters>,
        /// The XDP fast path's counters (when it is on; absent from the
        /// replies of older daemons).
        #[serde(default)]
        fast_path: Option<FastPathCounters>,
        /// The engine's own counters: every drop reason, the table's fill
        /// (absent from the replies of older daemons).
        #[serde(default)]
        engine: Option<Box<EngineCounters>>,
        /// Why the data plane's filter does not hold rvsd's table (`None`:
        /// it does; absent from the replies of older daemons).
        #[serde(default)]
        filter_out_of_step: Option<String>,
        /// Why this packet I/O: what `--io` asked, what was refused and
        /// what was given up for it (absent from older daemons' replies).
        #[serde(default)]
        io_why: Option<Box<str>>,
    },
    /// Firewall-mark rules, in order.
    FwmarkRules(Vec<fwmark::FwmarkSpec>),
    /// `Request::FwmarkHost`.
    FwmarkHost(fwmark::HostMarks),
    /// `Request::GetSysctls`, by name.
    Sysctls(Vec<SysctlValue>),
}

impl Reply {
    /// `Request::DataPlaneStats` of a daemon without a data plane
    /// (`--io none`): mode `none`, no workers, nothing else.
    pub fn no_data_plane() -> Reply {
        Reply::DataPlaneStats {
            mode: "none".into(),
            workers: Vec::new(),
            classifier: None,
            fast_path: None,
            engine: None,
            filter_out_of_step: None,
            io_why: None,
        }
    }
}

/// Encode a value as one line (JSON, newline-terminated).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain types cannot fail.
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.push(b'\n');
    v
}

/// Decode one line.
pub fn decode<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(line).map_err(|e| format!("malformed message: {e}"))
}

#[cfg(test)]
mod tests;
