//! Protocol state machines, state names and timeouts (reference §5.2–§5.4).
//!
//! * TCP: the kernel's `tcp_states` tables (INPUT, OUTPUT, INPUT-ONLY; events
//!   chosen with priority RST > SYN > FIN > ACK, a segment with none of them
//!   leads to CLOSE). The `secure_tcp` "dos" table is not implemented.
//! * UDP: one state, `UDP`, whose timeout every packet re-applies.
//! * SCTP: the full chunk-driven state machine of `ip_vs_proto_sctp.c`
//!   (Linux ≥ 3.13: INIT1/INIT/C-SENT/… states), events from the first chunk
//!   type as [`sctp_event`] maps it.
//! * Templates: `NONE` (0) and `ASSURED` (1).
//!
//! The `*_update` helpers apply one packet to a [`Conn`] the way the kernel's
//! `set_tcp_state` / `set_sctp_state` / `udp_state_transition` do, then
//! re-arm `expires` like `ip_vs_conn_put`. They flip the INACTIVE flag and
//! report the flip as an [`Activity`]: the caller moves the conn between the
//! real server's `activeconns` and `inactconns`.
//!
//! For a conn in a table, prefer [`super::ConnTable::tcp_update`] (and
//! friends): besides the wheel bookkeeping (which a [`super::ConnMut`] guard
//! also does) it marks the owning template ASSURED when a TCP conn reaches
//! ESTABLISHED (`ip_vs_control_assure_ct`).

use crate::time::Instant;

use super::{Conn, flags};

/// `IPPROTO_TCP`.
pub const PROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const PROTO_UDP: u8 = 17;
/// `IPPROTO_SCTP`.
pub const PROTO_SCTP: u8 = 132;

/// Timeout of a freshly created entry until its first state transition (`3*HZ`).
pub const INITIAL_TIMEOUT_MS: u32 = 3_000;
/// How long an expired entry that still controls others is kept (`expire_later`).
pub const EXPIRE_LATER_MS: u32 = 60_000;

// ---------------------------------------------------------------------------
// TCP

/// Number of TCP states (`IP_VS_TCP_S_LAST`).
pub const TCP_STATE_COUNT: usize = 11;

/// TCP connection states; the discriminant is the value stored in [`Conn::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TcpState {
    /// `NONE` (2 s).
    None = 0,
    /// `ESTABLISHED` (900 s, active).
    Established = 1,
    /// `SYN_SENT` (120 s, active).
    SynSent = 2,
    /// `SYN_RECV` (60 s, active).
    SynRecv = 3,
    /// `FIN_WAIT` (120 s).
    FinWait = 4,
    /// `TIME_WAIT` (120 s).
    TimeWait = 5,
    /// `CLOSE` (10 s).
    Close = 6,
    /// `CLOSE_WAIT` (60 s).
    CloseWait = 7,
    /// `LAST_ACK` (30 s).
    LastAck = 8,
    /// `LISTEN` (120 s).
    Listen = 9,
    /// `SYNACK` (120 s, active).
    SynAck = 10,
}

impl TcpState {
    /// All states in index order.
    pub const ALL: [TcpState; TCP_STATE_COUNT] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The state with index `n`.
    pub const fn from_u8(n: u8) -> Option<Self> {
        if (n as usize) < TCP_STATE_COUNT {
            Some(Self::ALL[n as usize])
        } else {
            None
        }
    }

    /// The state index.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Name as `-c` prints it.
    pub const fn name(self) -> &'static str {
        TCP_NAMES[self as usize]
    }

    /// Whether a conn in this state counts in `activeconns`.
    pub const fn is_active(self) -> bool {
        matches!(
            self,
            TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )
    }
}

const TCP_NAMES: [&str; TCP_STATE_COUNT] = [
    "NONE",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "SYNACK",
];

/// Name of TCP state `state`; `ERR!` when out of range (the table's
/// `BUG!` entry at index 11 is unreachable through the kernel's name function).
pub fn tcp_state_name(state: u8) -> &'static str {
    TcpState::from_u8(state).map_or("ERR!", TcpState::name)
}

/// Whether TCP state `state` is active (false when out of range).
pub fn tcp_state_active(state: u8) -> bool {
    TcpState::from_u8(state).is_some_and(TcpState::is_active)
}

/// TCP header flag bits (byte 13 of the header).
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// Which transition table applies to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → real server.
    Input,
    /// Real server → client (seen only for NAT).
    Output,
    /// Client → real server on a conn whose replies are never seen
    /// (NOOUTPUT). The `*_update` helpers pick this table themselves from the
    /// NOOUTPUT flag; pass [`Direction::Input`] to them.
    InputOnly,
}

impl Direction {
    const fn table(self) -> usize {
        match self {
            Direction::Input => 0,
            Direction::Output => 1,
            Direction::InputOnly => 2,
        }
    }
}

/// TCP event index: 0 syn, 1 fin, 2 ack, 3 rst; `None` for none of them.
const fn tcp_event(tcp_flags: u8) -> Option<usize> {
    if tcp_flags & tcp_flags::RST != 0 {
        Some(3)
    } else if tcp_flags & tcp_flags::SYN != 0 {
        Some(0)
    } else if tcp_flags & tcp_flags::FIN != 0 {
        Some(1)
    } else if tcp_flags & tcp_flags::ACK != 0 {
        Some(2)
    } else {
        None
    }
}

mod tcp_abbrev {
    pub const ES: u8 = 1;
    pub const SS: u8 = 2;
    pub const SR: u8 = 3;
    pub const FW: u8 = 4;
    pub const TW: u8 = 5;
    pub const CL: u8 = 6;
    pub const CW: u8 = 7;
    pub const LA: u8 = 8;
    pub const LI: u8 = 9;
    // NO (0) and SA (10) are never the target of a transition.
}

/// `TCP_TABLE[direction][event][state]` = next state (kernel `tcp_states`).
#[rustfmt::skip]
const TCP_TABLE: [[[u8; TCP_STATE_COUNT]; 4]; 3] = {
    use tcp_abbrev::*;
    [
        // INPUT         NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
        [
            /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
            /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
            /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
            /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
        ],
        // OUTPUT
        [
            /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
            /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
            /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
            /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
        ],
        // INPUT-ONLY
        [
            /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
            /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
            /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
            /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
        ],
    ]
};

/// Next TCP state from `cur` for a segment with `tcp_flags` in table `dir`.
///
/// A segment without RST/SYN/FIN/ACK leads to CLOSE; so does an out-of-range
/// current state.
pub fn tcp_transition(cur: u8, dir: Direction, tcp_flags: u8) -> u8 {
    match tcp_event(tcp_flags) {
        Some(ev) if (cur as usize) < TCP_STATE_COUNT => TCP_TABLE[dir.table()][ev][cur as usize],
        _ => TcpState::Close as u8,
    }
}

// ---------------------------------------------------------------------------
// UDP and templates

/// The only UDP state (`IP_VS_UDP_S_NORMAL`).
pub const UDP_NORMAL: u8 = 0;
/// Template state: not yet assured.
pub const TPL_NONE: u8 = 0;
/// Template state bit: a controlled TCP conn reached ESTABLISHED.
pub const TPL_ASSURED: u8 = 1;

/// Name of UDP state `state`.
pub fn udp_state_name(state: u8) -> &'static str {
    if state == UDP_NORMAL { "UDP" } else { "ERR!" }
}

/// Name of template state `state`.
pub fn template_state_name(state: u8) -> &'static str {
    match state {
        TPL_NONE => "NONE",
        TPL_ASSURED => "ASSURED",
        _ => "ERR!",
    }
}

// ---------------------------------------------------------------------------
// SCTP

/// Number of SCTP states (`IP_VS_SCTP_S_LAST`).
pub const SCTP_STATE_COUNT: usize = 14;

/// SCTP association states; the discriminant is the value stored in [`Conn::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SctpState {
    /// `NONE` (2 s).
    None = 0,
    /// `INIT1`: first client INIT (4 s).
    Init1 = 1,
    /// `INIT`: next client INIT (61 s).
    Init = 2,
    /// `C-SENT`: server INIT-ACK sent (61 s).
    CookieSent = 3,
    /// `C-REPLIED`: client COOKIE-ECHO sent (61 s).
    CookieReplied = 4,
    /// `C-WAIT`: server INIT sent (61 s).
    CookieWait = 5,
    /// `COOKIE`: client INIT-ACK sent (61 s).
    Cookie = 6,
    /// `C-ECHOED`: server COOKIE-ECHO sent (61 s).
    CookieEchoed = 7,
    /// `ESTABLISHED` (900 s, the only active state).
    Established = 8,
    /// `S-SENT` (61 s).
    ShutdownSent = 9,
    /// `S-RECEIVED` (61 s).
    ShutdownReceived = 10,
    /// `S-ACK-SENT` (61 s).
    ShutdownAckSent = 11,
    /// `REJECTED` (4 s).
    Rejected = 12,
    /// `CLOSED` (61 s).
    Closed = 13,
}

impl SctpState {
    /// All states in index order.
    pub const ALL: [SctpState; SCTP_STATE_COUNT] = [
        SctpState::None,
        SctpState::Init1,
        SctpState::Init,
        SctpState::CookieSent,
        SctpState::CookieReplied,
        SctpState::CookieWait,
        SctpState::Cookie,
        SctpState::CookieEchoed,
        SctpState::Established,
        SctpState::ShutdownSent,
        SctpState::ShutdownReceived,
        SctpState::ShutdownAckSent,
        SctpState::Rejected,
        SctpState::Closed,
    ];

    /// The state with index `n`.
    pub const fn from_u8(n: u8) -> Option<Self> {
        if (n as usize) < SCTP_STATE_COUNT {
            Some(Self::ALL[n as usize])
        } else {
            None
        }
    }

    /// Name as `-c` prints it.
    pub const fn name(self) -> &'static str {
        SCTP_NAMES[self as usize]
    }

    /// Whether a conn in this state counts in `activeconns` (ESTABLISHED only).
    pub const fn is_active(self) -> bool {
        matches!(self, SctpState::Established)
    }
}

const SCTP_NAMES: [&str; SCTP_STATE_COUNT] = [
    "NONE",
    "INIT1",
    "INIT",
    "C-SENT",
    "C-REPLIED",
    "C-WAIT",
    "COOKIE",
    "C-ECHOED",
    "ESTABLISHED",
    "S-SENT",
    "S-RECEIVED",
    "S-ACK-SENT",
    "REJECTED",
    "CLOSED",
];

/// Name of SCTP state `state`; `ERR!` when out of range.
pub fn sctp_state_name(state: u8) -> &'static str {
    SctpState::from_u8(state).map_or("ERR!", SctpState::name)
}

/// SCTP state-machine events (kernel `ipvs_sctp_event_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SctpEvent {
    /// DATA, SACK, HEARTBEAT(-ACK), ECNE, CWR and unknown chunks.
    Data = 0,
    /// INIT.
    Init = 1,
    /// INIT ACK.
    InitAck = 2,
    /// COOKIE ECHO.
    CookieEcho = 3,
    /// COOKIE ACK.
    CookieAck = 4,
    /// SHUTDOWN.
    Shutdown = 5,
    /// SHUTDOWN ACK.
    ShutdownAck = 6,
    /// SHUTDOWN COMPLETE.
    ShutdownComplete = 7,
    /// ERROR.
    Error = 8,
    /// ABORT.
    Abort = 9,
}

/// SCTP chunk type numbers (RFC 9260 §3.2).
pub mod sctp_chunk {
    /// DATA.
    pub const DATA: u8 = 0;
    /// INIT.
    pub const INIT: u8 = 1;
    /// INIT ACK.
    pub const INIT_ACK: u8 = 2;
    /// SACK.
    pub const SACK: u8 = 3;
    /// HEARTBEAT.
    pub const HEARTBEAT: u8 = 4;
    /// HEARTBEAT ACK.
    pub const HEARTBEAT_ACK: u8 = 5;
    /// ABORT.
    pub const ABORT: u8 = 6;
    /// SHUTDOWN.
    pub const SHUTDOWN: u8 = 7;
    /// SHUTDOWN ACK.
    pub const SHUTDOWN_ACK: u8 = 8;
    /// ERROR.
    pub const ERROR: u8 = 9;
    /// COOKIE ECHO.
    pub const COOKIE_ECHO: u8 = 10;
    /// COOKIE ACK.
    pub const COOKIE_ACK: u8 = 11;
    /// ECNE.
    pub const ECN_ECNE: u8 = 12;
    /// CWR.
    pub const ECN_CWR: u8 = 13;
    /// SHUTDOWN COMPLETE.
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

/// The event of an SCTP packet: from the type of its first chunk, except that
/// a COOKIE ECHO or COOKIE ACK followed by an ABORT counts as ABORT
/// (`second` = type of the chunk after the first, if any). Unknown chunk
/// types count as DATA.
pub fn sctp_event(first: u8, second: Option<u8>) -> SctpEvent {
    use sctp_chunk::*;
    let ty = if (first == COOKIE_ECHO || first == COOKIE_ACK) && second == Some(ABORT) {
        ABORT
    } else {
        first
    };
    match ty {
        INIT => SctpEvent::Init,
        INIT_ACK => SctpEvent::InitAck,
        ABORT => SctpEvent::Abort,
        SHUTDOWN => SctpEvent::Shutdown,
        SHUTDOWN_ACK => SctpEvent::ShutdownAck,
        ERROR => SctpEvent::Error,
        COOKIE_ECHO => SctpEvent::CookieEcho,
        COOKIE_ACK => SctpEvent::CookieAck,
        SHUTDOWN_COMPLETE => SctpEvent::ShutdownComplete,
        _ => SctpEvent::Data,
    }
}

mod sctp_abbrev {
    // NO (0) is never the target of a transition.
    pub const I1: u8 = 1;
    pub const IN: u8 = 2;
    pub const CS: u8 = 3;
    pub const CR: u8 = 4;
    pub const CW: u8 = 5;
    pub const CO: u8 = 6;
    pub const CE: u8 = 7;
    pub const ES: u8 = 8;
    pub const SS: u8 = 9;
    pub const SR: u8 = 10;
    pub const SA: u8 = 11;
    pub const RJ: u8 = 12;
    pub const CL: u8 = 13;
}

/// `SCTP_TABLE[direction][event][state]` = next state (kernel `sctp_states`).
#[rustfmt::skip]
const SCTP_TABLE: [[[u8; SCTP_STATE_COUNT]; 10]; 3] = {
    use sctp_abbrev::*;
    [
        // INPUT          NO  I1  IN  CS  CR  CW  CO  CE  ES  SS  SR  SA  RJ  CL
        [
            /* data  */ [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* init  */ [I1, IN, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, IN, IN],
            /* i_ack */ [CW, CW, CW, CS, CR, CO, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* c_e   */ [CR, IN, IN, CR, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* c_a   */ [ES, I1, IN, CS, CR, CW, CO, ES, ES, SS, SR, SA, RJ, CL],
            /* s     */ [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
            /* s_a   */ [CL, IN, IN, CS, CR, CW, CO, CE, ES, CL, SR, CL, RJ, CL],
            /* s_c   */ [CL, CL, CL, CS, CR, CW, CO, CE, ES, SS, SR, CL, RJ, CL],
            /* err   */ [CL, I1, IN, CS, CR, CW, CO, CL, ES, SS, SR, SA, RJ, CL],
            /* abort */ [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
        ],
        // OUTPUT
        [
            /* data  */ [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* init  */ [CW, CW, CW, CW, CW, CW, CW, CW, ES, CW, CW, CW, CW, CW],
            /* i_ack */ [CS, CS, CS, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* c_e   */ [CE, CE, CE, CE, CE, CE, CE, CE, ES, SS, SR, SA, RJ, CL],
            /* c_a   */ [ES, ES, ES, ES, ES, ES, ES, ES, ES, SS, SR, SA, RJ, CL],
            /* s     */ [SS, SS, SS, SS, SS, SS, SS, SS, SS, SS, SR, SA, RJ, CL],
            /* s_a   */ [SA, SA, SA, SA, SA, CW, CO, CE, ES, SA, SA, SA, RJ, CL],
            /* s_c   */ [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* err   */ [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* abort */ [CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        ],
        // INPUT-ONLY
        [
            /* data  */ [ES, I1, IN, CS, CR, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* init  */ [I1, IN, IN, IN, IN, IN, CO, CE, ES, SS, SR, SA, IN, IN],
            /* i_ack */ [CE, CE, CE, CE, CE, CE, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* c_e   */ [ES, ES, ES, ES, ES, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* c_a   */ [ES, I1, IN, ES, ES, CW, ES, ES, ES, SS, SR, SA, RJ, CL],
            /* s     */ [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
            /* s_a   */ [CL, IN, IN, CS, CR, CW, CO, CE, CL, CL, SR, CL, RJ, CL],
            /* s_c   */ [CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, CL, CL, RJ, CL],
            /* err   */ [CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
            /* abort */ [CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
        ],
    ]
};

/// Next SCTP state from `cur` for `event` in table `dir` (CLOSED when `cur`
/// is out of range).
pub fn sctp_transition(cur: u8, dir: Direction, event: SctpEvent) -> u8 {
    if (cur as usize) < SCTP_STATE_COUNT {
        SCTP_TABLE[dir.table()][event as usize][cur as usize]
    } else {
        SctpState::Closed as u8
    }
}

// ---------------------------------------------------------------------------
// Timeouts

const fn secs(s: u32) -> u32 {
    s * 1000
}

/// Per-state timeouts in milliseconds (the kernel's per-netns timeout tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// TCP, indexed by state.
    pub tcp: [u32; TCP_STATE_COUNT],
    /// UDP.
    pub udp: u32,
    /// SCTP, indexed by state.
    pub sctp: [u32; SCTP_STATE_COUNT],
}

/// Timeout used for an out-of-range state (the tables' `LAST` entry, 2 s).
pub const FALLBACK_TIMEOUT_MS: u32 = secs(2);

/// `IP_VS_SCTP_MAX_RTO` = (60 + 1) s.
const SCTP_MAX_RTO: u32 = secs(61);

impl Default for Timeouts {
    /// Kernel defaults: `Timeout (tcp tcpfin udp): 900 120 300`.
    fn default() -> Self {
        Timeouts {
            tcp: [
                secs(2),   // NONE
                secs(900), // ESTABLISHED
                secs(120), // SYN_SENT
                secs(60),  // SYN_RECV
                secs(120), // FIN_WAIT
                secs(120), // TIME_WAIT
                secs(10),  // CLOSE
                secs(60),  // CLOSE_WAIT
                secs(30),  // LAST_ACK
                secs(120), // LISTEN
                secs(120), // SYNACK
            ],
            udp: secs(300),
            sctp: [
                secs(2),      // NONE
                secs(4),      // INIT1
                SCTP_MAX_RTO, // INIT
                SCTP_MAX_RTO, // C-SENT
                SCTP_MAX_RTO, // C-REPLIED
                SCTP_MAX_RTO, // C-WAIT
                SCTP_MAX_RTO, // COOKIE
                SCTP_MAX_RTO, // C-ECHOED
                secs(900),    // ESTABLISHED
                SCTP_MAX_RTO, // S-SENT
                SCTP_MAX_RTO, // S-RECEIVED
                SCTP_MAX_RTO, // S-ACK-SENT
                secs(4),      // REJECTED
                SCTP_MAX_RTO, // CLOSED
            ],
        }
    }
}

fn secs_to_ms(s: u32) -> u32 {
    s.saturating_mul(1000)
}

impl Timeouts {
    /// Timeout of TCP state `state` in ms (2 s when out of range).
    #[inline]
    pub fn tcp_ms(&self, state: u8) -> u32 {
        self.tcp
            .get(state as usize)
            .copied()
            .unwrap_or(FALLBACK_TIMEOUT_MS)
    }

    /// Timeout of SCTP state `state` in ms (2 s when out of range).
    #[inline]
    pub fn sctp_ms(&self, state: u8) -> u32 {
        self.sctp
            .get(state as usize)
            .copied()
            .unwrap_or(FALLBACK_TIMEOUT_MS)
    }

    /// `--set` `tcp`: the ESTABLISHED timeout in seconds; 0 leaves it unchanged.
    /// (Range checks — ipvsadm's `0..=2678400`, the kernel's `INT_MAX/HZ` —
    /// belong to the caller; the value saturates at `u32::MAX` ms.)
    pub fn set_tcp_established(&mut self, secs: u32) {
        if secs != 0 {
            self.tcp[TcpState::Established as usize] = secs_to_ms(secs);
        }
    }

    /// `--set` `tcpfin`: the FIN_WAIT timeout in seconds; 0 leaves it unchanged.
    pub fn set_tcp_fin(&mut self, secs: u32) {
        if secs != 0 {
            self.tcp[TcpState::FinWait as usize] = secs_to_ms(secs);
        }
    }

    /// `--set` `udp`: the UDP timeout in seconds; 0 leaves it unchanged.
    pub fn set_udp(&mut self, secs: u32) {
        if secs != 0 {
            self.udp = secs_to_ms(secs);
        }
    }

    /// `--timeout` listing: the TCP ESTABLISHED timeout in seconds.
    pub fn tcp_established_secs(&self) -> u32 {
        self.tcp[TcpState::Established as usize] / 1000
    }

    /// `--timeout` listing: the TCP FIN_WAIT timeout in seconds.
    pub fn tcp_fin_secs(&self) -> u32 {
        self.tcp[TcpState::FinWait as usize] / 1000
    }

    /// `--timeout` listing: the UDP timeout in seconds.
    pub fn udp_secs(&self) -> u32 {
        self.udp / 1000
    }
}

// ---------------------------------------------------------------------------
// Applying packets to a conn

/// How a packet changed a conn's active/inactive standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    /// No change.
    Unchanged,
    /// Inactive → active: the real server's `inactconns -= 1`, `activeconns += 1`.
    ToActive,
    /// Active → inactive: `activeconns -= 1`, `inactconns += 1`.
    ToInactive,
}

/// Resolve the table: a NOOUTPUT conn uses INPUT-ONLY for input and loses
/// NOOUTPUT on its first output packet.
#[inline]
fn effective_direction(conn: &mut Conn, dir: Direction) -> Direction {
    if conn.flags & flags::NOOUTPUT != 0 {
        if dir == Direction::Output {
            conn.flags &= !flags::NOOUTPUT;
            Direction::Output
        } else {
            Direction::InputOnly
        }
    } else {
        dir
    }
}

/// Move to `new_state`, flipping INACTIVE on a state change as the kernel does.
#[inline]
fn enter(conn: &mut Conn, new_state: u8, active: bool) -> Activity {
    let mut act = Activity::Unchanged;
    if new_state != conn.state {
        let inactive = conn.flags & flags::INACTIVE != 0;
        if !inactive && !active {
            conn.flags |= flags::INACTIVE;
            act = Activity::ToInactive;
        } else if inactive && active {
            conn.flags &= !flags::INACTIVE;
            act = Activity::ToActive;
        }
    }
    conn.state = new_state;
    act
}

/// Apply a TCP segment with `tcp_flags` travelling in `dir`
/// ([`Direction::Input`] or [`Direction::Output`]) to `conn`: the kernel's
/// `set_tcp_state` followed by the timer re-arm (`expires = now + timeout`).
///
/// A NOOUTPUT conn uses the INPUT-ONLY table for input; an output packet
/// clears NOOUTPUT (from then on the INPUT table applies).
pub fn tcp_update(
    conn: &mut Conn,
    dir: Direction,
    tcp_flags: u8,
    timeouts: &Timeouts,
    now: Instant,
) -> Activity {
    let dir = effective_direction(conn, dir);
    let new_state = tcp_transition(conn.state, dir, tcp_flags);
    let act = enter(conn, new_state, tcp_state_active(new_state));
    conn.timeout_ms = timeouts.tcp_ms(new_state);
    conn.rearm(now);
    act
}

/// Apply a UDP datagram: the timeout becomes the UDP timeout, the timer is
/// re-armed. UDP conns are never active.
pub fn udp_update(conn: &mut Conn, timeouts: &Timeouts, now: Instant) -> Activity {
    conn.timeout_ms = timeouts.udp;
    conn.rearm(now);
    Activity::Unchanged
}

/// Apply an SCTP packet with `event` (see [`sctp_event`]) travelling in `dir`:
/// the kernel's `set_sctp_state` followed by the timer re-arm.
pub fn sctp_update(
    conn: &mut Conn,
    dir: Direction,
    event: SctpEvent,
    timeouts: &Timeouts,
    now: Instant,
) -> Activity {
    let dir = effective_direction(conn, dir);
    let new_state = sctp_transition(conn.state, dir, event);
    let act = enter(conn, new_state, new_state == SctpState::Established as u8);
    conn.timeout_ms = timeouts.sctp_ms(new_state);
    conn.rearm(now);
    act
}

/// State name for the `-c` listing and `/proc/net/ip_vs_conn`
/// (kernel `ip_vs_state_name`): templates `NONE`/`ASSURED`; TCP, UDP and
/// SCTP from their tables; `NONE` for protocol 0; `ERR!` for anything out of
/// range or any other protocol.
pub fn state_name(proto: u8, conn_flags: u32, state: u8) -> &'static str {
    if conn_flags & flags::TEMPLATE != 0 {
        return template_state_name(state);
    }
    match proto {
        PROTO_TCP => tcp_state_name(state),
        PROTO_UDP => udp_state_name(state),
        PROTO_SCTP => sctp_state_name(state),
        0 => "NONE",
        _ => "ERR!",
    }
}

/// Protocol name as `/proc/net/ip_vs_conn` and `-c` print it
/// (`ip_vs_proto_name`); `None` means "print `IP_<n>`".
pub fn proto_name(proto: u8) -> Option<&'static str> {
    match proto {
        0 => Some("IP"),
        PROTO_UDP => Some("UDP"),
        PROTO_TCP => Some("TCP"),
        PROTO_SCTP => Some("SCTP"),
        1 => Some("ICMP"),
        58 => Some("ICMPv6"),
        _ => None,
    }
}

/// Whether a new-connection packet (TCP SYN / SCTP INIT) that hit `conn` may
/// expire it and be scheduled afresh under `conn_reuse_mode` (kernel
/// `is_new_conn_expected`; the caller has already checked the mode is
/// non-zero): not for controlled conns; TCP in TIME_WAIT or CLOSE, or in
/// FIN_WAIT with NOOUTPUT when mode bit 2 is set; SCTP in CLOSED.
pub fn is_new_conn_expected(conn: &Conn, conn_reuse_mode: u32) -> bool {
    if conn.control.is_some() {
        return false;
    }
    match conn.proto {
        PROTO_TCP => {
            conn.state == TcpState::TimeWait as u8
                || conn.state == TcpState::Close as u8
                || (conn_reuse_mode & 2 != 0
                    && conn.state == TcpState::FinWait as u8
                    && conn.flags & flags::NOOUTPUT != 0)
        }
        PROTO_SCTP => conn.state == SctpState::Closed as u8,
        _ => false,
    }
}
