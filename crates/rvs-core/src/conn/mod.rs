//! The connection table: one entry per flow (and per persistence template),
//! the protocol state machines that drive it, and the timers that expire it.
//!
//! Reference: `ipvs-interface.md` §5 (kernel `ip_vs_conn.c`,
//! `ip_vs_proto_tcp.c`, `ip_vs_proto_udp.c`, `ip_vs_proto_sctp.c`).
//!
//! # Layout
//!
//! * [`ConnTable`] — a slab arena of [`Conn`] entries plus two hashbrown
//!   `HashTable<u32>` indices holding only slab indices (the *in* index keyed
//!   by the client→virtual tuple, used for client packets and templates, and
//!   the *out* index keyed by the real-server→client tuple, used for NAT
//!   replies). Equality is checked against the slab entry.
//! * The hash is **randomly keyed** ([ahash] with four 64-bit seeds passed to
//!   [`ConnTable::new`]); the table faces the internet, so flows an attacker
//!   chooses must not be able to collide on purpose. The core never reads
//!   randomness itself: the caller supplies the key.
//! * Expiry uses a single-level **hashed timing wheel** (see `wheel.rs`):
//!   each entry stores its own `expires`; a packet refresh only moves
//!   `expires` later and does no wheel work; popping a slot lazily re-arms
//!   entries that were refreshed. Expiry is never early and at most one wheel
//!   tick late (given the caller polls at least once a tick).
//! * A **hard cap** on entries: [`ConnTable::insert`] fails with
//!   [`TableFull`] and counts the drop.
//! * [`state`] — TCP/UDP/SCTP state machines, names, default timeouts,
//!   active/inactive accounting.
//!
//! # Memory per entry
//!
//! `size_of::<Conn>()` is 104 bytes (asserted by a unit test). Per live entry
//! the table adds 4 bytes of wheel bookkeeping in a parallel array, one 4-byte
//! wheel reference, and 5 bytes (`u32` + control byte) per hash bucket of
//! each index it is in. hashbrown keeps its load between 7/16 and 7/8, so an
//! index costs 5.7–11.4 bytes per entry; with exactly 1 M entries (2²¹
//! buckets) it is 10.5 bytes. Totals at 1 M entries:
//!
//! | entry kind | bytes |
//! |---|---|
//! | DR / TUN conn or template (in index only) | 104 + 4 + 4 + 10.5 ≈ **122.5** |
//! | NAT conn (in and out index) | ≈ 133 |
//!
//! Outside the table, the engine keeps an 8-byte handle for each TCP entry
//! still in its handshake (the table-full eviction's queue), dropped once
//! the handshake completes: nothing per established connection.
//!
//! [`ConnTable::approx_memory_bytes`] reports the real figure of a live table.

mod key;
pub mod state;
mod table;
mod wheel;

#[cfg(test)]
mod tests;

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::num::NonZeroU32;

use crate::dest::DestId;
use crate::time::Instant;

pub use state::{
    Activity, Direction, SctpEvent, SctpState, TcpState, Timeouts, is_new_conn_expected,
    sctp_event, sctp_transition, sctp_update, state_name, tcp_transition, tcp_update, udp_update,
};
pub use table::{ConnMut, ConnTable, ConnTableConfig, MAX_ENTRIES_LIMIT, TableFull, pe_tag};

/// `IP_VS_CONN_F_*` connection flag bits (`include/uapi/linux/ip_vs.h`).
pub mod flags {
    /// Mask of the forwarding-method bits.
    pub const FWD_MASK: u32 = 0x0007;
    /// NAT ("masquerading").
    pub const MASQ: u32 = 0x0000;
    /// Local node.
    pub const LOCALNODE: u32 = 0x0001;
    /// IP-in-IP tunnelling.
    pub const TUNNEL: u32 = 0x0002;
    /// Direct routing.
    pub const DROUTE: u32 = 0x0003;
    /// Cache bypass.
    pub const BYPASS: u32 = 0x0004;
    /// Entry created by the sync daemon.
    pub const SYNC: u32 = 0x0020;
    /// Hashed entry (kernel-internal; informational here).
    pub const HASHED: u32 = 0x0040;
    /// Replies are never seen (non-NAT dest): TCP/SCTP use the INPUT-ONLY table.
    pub const NOOUTPUT: u32 = 0x0080;
    /// Counted in the real server's `inactconns` rather than `activeconns`.
    pub const INACTIVE: u32 = 0x0100;
    /// Entry matches any client port (FTP). Not supported by [`super::ConnTable`] lookups.
    pub const NO_CPORT: u32 = 0x0800;
    /// Persistence template.
    pub const TEMPLATE: u32 = 0x1000;
    /// One-packet scheduling (`-o`, UDP): expires right after its packet.
    pub const ONE_PACKET: u32 = 0x2000;
}

/// Handle of an entry in a [`ConnTable`]: its slab index.
///
/// A handle stays valid until its entry is removed; afterwards the slot may
/// be reused by another entry, so do not keep handles across removals
/// (the table itself keeps [`Conn::control`] consistent).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(NonZeroU32);

impl ConnId {
    /// The slab index.
    #[inline]
    pub const fn index(self) -> u32 {
        self.0.get() - 1
    }

    /// The handle of slab index `index` (`index < u32::MAX`).
    #[inline]
    pub const fn from_index(index: u32) -> Self {
        match NonZeroU32::new(index.wrapping_add(1)) {
            Some(n) => ConnId(n),
            None => panic!("ConnId index out of range"),
        }
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({})", self.index())
    }
}

/// One connection entry (or persistence template, with [`flags::TEMPLATE`]).
///
/// Key fields — `proto`, `caddr`, `cport`, `vaddr`, `vport`, `daddr`, `dport`
/// and the TEMPLATE flag — decide which index buckets an entry lives in;
/// `control`/`n_control` are the table's reference counting. Once the entry
/// is in a table, change those only through [`ConnTable::rekey`],
/// [`ConnTable::set_control`] or [`ConnTable::neutralize_template`]; every
/// other field may be changed through [`ConnTable::get_mut`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// IP protocol (6 TCP, 17 UDP, 132 SCTP); 0 (`IPPROTO_IP`) for fwmark templates.
    pub proto: u8,
    /// Client address (for templates: the masked client network).
    pub caddr: IpAddr,
    /// Client port (0 for templates).
    pub cport: u16,
    /// Virtual address (fwmark templates: [`fwmark_vaddr`]).
    pub vaddr: IpAddr,
    /// Virtual port.
    pub vport: u16,
    /// Real-server address (may be of another family than `caddr` when tunnelling).
    pub daddr: IpAddr,
    /// Real-server port.
    pub dport: u16,
    /// Firewall mark of the service (0 if none).
    pub fwmark: u32,
    /// `IP_VS_CONN_F_*` bits, see [`flags`].
    pub flags: u32,
    /// Index into the protocol's state table (templates: 0 NONE, 1 ASSURED).
    pub state: u8,
    /// Timeout of the current state, in milliseconds.
    pub timeout_ms: u32,
    /// When the entry expires unless refreshed.
    pub expires: Instant,
    /// Opaque to the table: the engine's service reference.
    pub owner: u64,
    /// Real server.
    pub dest: DestId,
    /// Owning template (or control connection), maintained by the table's
    /// `n_control` accounting.
    pub control: Option<ConnId>,
    /// Number of entries this one controls (templates). Maintained by the table.
    pub n_control: u32,
    /// Packets received (drives sync thresholds).
    pub in_pkts: u32,
    /// The state when the entry was last sent by a sync master (a change
    /// out of it forces a send).
    pub old_state: u8,
}

impl Conn {
    /// Whether this is a persistence template.
    #[inline]
    pub const fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }

    /// The forwarding-method bits (`flags & FWD_MASK`).
    #[inline]
    pub const fn fwd(&self) -> u32 {
        self.flags & flags::FWD_MASK
    }

    /// Whether the entry is counted as inactive (INACTIVE flag).
    #[inline]
    pub const fn is_inactive(&self) -> bool {
        self.flags & flags::INACTIVE != 0
    }

    /// The client port listings and sync messages show: `cport`, but 0
    /// for a template with persistence-engine data (`has_pe`), whose
    /// `cport` holds the data's tag ([`pe_tag`]).
    #[inline]
    pub const fn shown_cport(&self, has_pe: bool) -> u16 {
        if has_pe && self.is_template() {
            0
        } else {
            self.cport
        }
    }

    /// State name as `-c` and `/proc/net/ip_vs_conn` show it.
    pub fn state_name(&self) -> &'static str {
        state::state_name(self.proto, self.flags, self.state)
    }

    /// Whole seconds until the entry's timer fires, as `/proc/net/ip_vs_conn`
    /// prints it (`-c` renders it as `mm:ss`); 0 once due.
    pub fn expire_secs(&self, now: Instant) -> u64 {
        self.expires.as_millis().saturating_sub(now.as_millis()) / 1000
    }

    /// Re-arm the entry's timer as the kernel's `ip_vs_conn_put` does:
    /// `expires = now + timeout` (`now` for ONE_PACKET entries).
    #[inline]
    pub fn rearm(&mut self, now: Instant) {
        self.expires = if self.flags & flags::ONE_PACKET != 0 {
            now
        } else {
            Instant::from_millis(now.as_millis() + u64::from(self.timeout_ms))
        };
    }
}

/// The virtual address the kernel stores in fwmark-service templates:
/// `htonl(mark)` in the first 32 bits of the address (IPv4: `0.0.0.<mark>`-style,
/// IPv6: `<mark>::` with the mark's big-endian bytes first).
pub fn fwmark_vaddr(ipv6: bool, mark: u32) -> IpAddr {
    if ipv6 {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&mark.to_be_bytes());
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        IpAddr::V4(Ipv4Addr::from(mark))
    }
}
