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
mod dataplane;
pub mod fwmark;
pub mod packed;

pub use dataplane::{ClassifierCounters, DataPlaneWorker, EngineCounters, FastPathCounters};

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
    /// `-t`/`-u`/`--sctp-service` `address[:port]`.
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
