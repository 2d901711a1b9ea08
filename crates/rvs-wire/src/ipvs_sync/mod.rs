//! IPVS connection-sync messages, byte-compatible with Linux
//! (`net/netfilter/ipvs/ip_vs_sync.c`).
//!
//! A master director multicasts the connections it forwards (UDP, group
//! [`DEFAULT_GROUP_V4`], port [`DEFAULT_PORT`]) so that a backup can take
//! over established connections. One UDP datagram carries one *message*: a
//! header and up to 255 connection *entries*. This module parses and builds
//! messages; sockets, timers and which connections to send belong to the
//! caller.
//!
//! # Byte layout
//!
//! Every multi-byte field is big-endian unless stated otherwise.
//!
//! Version 1 header (`struct ip_vs_sync_mesg`, 8 bytes, sent by default):
//!
//! | off | len | field | value |
//! |---|---|---|---|
//! | 0 | 1 | reserved | 0 (a v0 receiver reads it as nr_conns = 0 and ignores the message) |
//! | 1 | 1 | syncid | the master's `--syncid` |
//! | 2 | 2 | size | whole datagram, header and padding included |
//! | 4 | 1 | nr_conns | entries that follow |
//! | 5 | 1 | version | 1 |
//! | 6 | 2 | spare | 0 |
//!
//! Version 1 entry (`struct ip_vs_sync_v4`, 36 bytes, or `ip_vs_sync_v6`, 72
//! bytes), then its options:
//!
//! | off | len | field | value |
//! |---|---|---|---|
//! | 0 | 1 | type | 0 = IPv4; bit 0 (`STYPE_F_INET6`) set = IPv6 |
//! | 1 | 1 | protocol | 6, 17, 132; 0 for a fwmark template |
//! | 2 | 2 | ver_size | version (high 4 bits, 0) and entry length with options, without padding (low 12 bits) |
//! | 4 | 4 | flags | `IP_VS_CONN_F_*`, HASHED cleared |
//! | 8 | 2 | state | the protocol's state number |
//! | 10 | 2 | cport | client port |
//! | 12 | 2 | vport | virtual port |
//! | 14 | 2 | dport | real server port |
//! | 16 | 4 | fwmark | firewall mark |
//! | 20 | 4 | timeout | the state's timeout in seconds (not the time left) |
//! | 24 | 4 / 16 | caddr | client address |
//! | 28 / 40 | 4 / 16 | vaddr | virtual address |
//! | 32 / 56 | 4 / 16 | daddr | real server address |
//!
//! Options are type–length–value (1-byte type, 1-byte length, never 0):
//!
//! | type | name | data |
//! |---|---|---|
//! | 1 | `IPVS_OPT_SEQ_DATA` | 24 bytes `ip_vs_sync_conn_options`: `in_seq` then `out_seq`, each `init_seq`, `delta`, `previous_delta` (u32) |
//! | 2 | `IPVS_OPT_PE_DATA` | persistence-engine data (SIP Call-ID), 1..=255 bytes |
//! | 3 | `IPVS_OPT_PE_NAME` | persistence-engine name (`sip`), 1..=16 bytes |
//!
//! A type with bit 0x40 (`IPVS_OPT_F_PARAM`) set is optional: unknown, it is
//! skipped. The kernel writes SEQ_DATA only when the flags carry
//! `IN_SEQ`/`OUT_SEQ`, and PE_NAME only after PE_DATA. Each entry after the
//! first starts on a 4-byte boundary: the sender writes 0 to 3 zero bytes
//! *before* it (counted in the header's size, not in the entry's), so a
//! message never ends with padding.
//!
//! Version 0 header (`struct ip_vs_sync_mesg_v0`, 4 bytes): nr_conns (u8),
//! syncid (u8), size (u16). Version 0 entry (`struct ip_vs_sync_conn_v0`, 24
//! bytes, IPv4 only, no padding):
//!
//! | off | len | field |
//! |---|---|---|
//! | 0 | 1 | reserved (0) |
//! | 1 | 1 | protocol |
//! | 2 / 4 / 6 | 2 each | cport, vport, dport |
//! | 8 / 12 / 16 | 4 each | caddr, vaddr, daddr |
//! | 20 | 2 | flags (low 16 bits, HASHED cleared) |
//! | 22 | 2 | state |
//! | 24 | 24 | only if flags & `IN_SEQ \| OUT_SEQ`: `ip_vs_sync_conn_options` in the **sender's host byte order** (the kernel copies the struct; read and written here little-endian, the order of x86 and arm64) |
//!
//! Version 0 has no fwmark, timeout or persistence-engine data: they decode
//! as 0 / `None` and are not sent.
//!
//! # Parsing: the kernel's checks, in the kernel's order
//!
//! [`Message::parse`] checks what `ip_vs_process_message` checks before it
//! looks at entries: at least 4 bytes, and `size` equal to the datagram's
//! length. The message is version 1 iff it has the 8-byte header with
//! version 1, reserved 0 and spare 0; otherwise it is version 0 (so a v1
//! message with a nonzero spare is read as a v0 message of `reserved` = 0
//! entries, as the kernel does). The syncid is not filtered here: see
//! [`Message::accepted_by`].
//!
//! [`Message::conns`] then walks the entries as `ip_vs_process_message` and
//! `ip_vs_proc_sync_conn` do, yielding one `Result` per entry. An error for
//! which [`SyncError::drops_rest`] is true ends the walk (the kernel drops
//! the rest of the message); any other error skips that one entry (the
//! kernel's positive return codes). No length read from the message is used
//! before it is checked against the datagram, and nothing is allocated: the
//! persistence-engine data and name borrow from the datagram.
//!
//! Not checked here, because they need the receiver's configuration: the
//! protocol must be one the receiver knows and, for a non-template, the
//! state below that protocol's number of states (both skip the entry), and
//! a PE name must name a loaded persistence engine.
//!
//! # Building
//!
//! [`SyncBuffer`] appends entries as `ip_vs_sync_conn` (v1) and
//! `ip_vs_sync_conn_v0` do: the header's size and count are kept current,
//! an entry that does not fit in `max_len` (the daemon's `sync_maxlen`, see
//! [`sync_maxlen`]) is refused so the caller sends the message and starts a
//! new one, and an entry larger than `max_len` on its own still goes alone in
//! a message sized to it (the kernel allocates `max(entry + header,
//! sync_maxlen)`). One deliberate difference: a message holds at most 255
//! entries, where the kernel's u8 count would wrap past 255 (only possible
//! with `--sync-maxlen` above 9188).
//!
//! # Checked against
//!
//! * Messages built field by field from the kernel's C structs, v0 with
//!   sequence data and v1 IPv4/IPv6 with every option, decoded and
//!   re-encoded byte for byte (`tests/sync_kernel_layout.rs`).
//! * Wireshark's IPVS dissector (`tests/tshark_sync.rs`, tshark 4.0): every
//!   field of v0 entries and of the fixed part of v1 entries. The dissector
//!   tells v1 from v0 by the first byte alone and steps over v1 entries by
//!   their fixed 36/72 bytes: it neither shows nor skips options, so it
//!   misreads the entries after one with options, in the kernel's messages
//!   as in ours; it reads v0 sequence data big-endian.
//! * A transcription of the kernel's entry walk, on 10^8 mutated datagrams
//!   (`tests/fuzz_sync.rs`).

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bytes::{be16, be32, ipv4, ipv6};
use crate::{Error, Result};

mod decode;
mod encode;
#[cfg(test)]
mod tests;

pub use decode::{Conns, Message};
pub use encode::{Role, SyncBuffer, sync_maxlen};

/// The default multicast group, 224.0.0.81 (`IP_VS_SYNC_GROUP`). There is no
/// IPv6 default: an IPv6 group must be configured.
pub const DEFAULT_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// The default UDP port (`IP_VS_SYNC_PORT`); with `sync_ports` = N the
/// daemons use ports 8848 ..= 8848 + N − 1.
pub const DEFAULT_PORT: u16 = 8848;
/// Length of the version 1 header.
pub const HEADER_V1_LEN: usize = 8;
/// Length of the version 0 header.
pub const HEADER_V0_LEN: usize = 4;
/// Length of a version 1 IPv4 entry without options (`ip_vs_sync_v4`).
pub const CONN_V4_LEN: usize = 36;
/// Length of a version 1 IPv6 entry without options (`ip_vs_sync_v6`).
pub const CONN_V6_LEN: usize = 72;
/// Length of a version 0 entry without sequence data (`ip_vs_sync_conn_v0`).
pub const CONN_V0_LEN: usize = 24;
/// Length of the sequence data (`ip_vs_sync_conn_options`).
pub const SEQ_OPTIONS_LEN: usize = 24;
/// Longest persistence-engine data (`IP_VS_PEDATA_MAXLEN`).
pub const PE_DATA_MAXLEN: usize = 255;
/// Longest persistence-engine name (`IP_VS_PENAME_MAXLEN`).
pub const PE_NAME_MAXLEN: usize = 16;
/// Most entries in one message (the count is one byte).
pub const MAX_CONNS: usize = 255;
/// Longest possible entry: IPv6 with sequence data and the longest PE data
/// and name (373 bytes).
pub const MAX_ENTRY_LEN: usize =
    CONN_V6_LEN + 2 + SEQ_OPTIONS_LEN + 2 + PE_DATA_MAXLEN + 2 + PE_NAME_MAXLEN;

const PROTO_VERSION: u8 = 1;
const STYPE_F_INET6: u8 = 0x01;
const SVER_SHIFT: u16 = 12;
const SVER_MASK: u16 = 0x0fff;

/// Connection flags as the kernel numbers them (`IP_VS_CONN_F_*`,
/// include/uapi/linux/ip_vs.h); the sync messages carry them as they are.
pub mod conn_flags {
    /// Mask of the forwarding method.
    pub const FWD_MASK: u32 = 0x0007;
    /// NAT.
    pub const MASQ: u32 = 0x0000;
    /// Local node.
    pub const LOCALNODE: u32 = 0x0001;
    /// Tunnel.
    pub const TUNNEL: u32 = 0x0002;
    /// Direct routing.
    pub const DROUTE: u32 = 0x0003;
    /// Cache bypass.
    pub const BYPASS: u32 = 0x0004;
    /// Created by the sync daemon (set by the receiver).
    pub const SYNC: u32 = 0x0020;
    /// In the connection table (never sent).
    pub const HASHED: u32 = 0x0040;
    /// No output packets.
    pub const NOOUTPUT: u32 = 0x0080;
    /// Not established.
    pub const INACTIVE: u32 = 0x0100;
    /// Output sequence adjustment.
    pub const OUT_SEQ: u32 = 0x0200;
    /// Input sequence adjustment.
    pub const IN_SEQ: u32 = 0x0400;
    /// Either sequence adjustment: the entry carries sequence data.
    pub const SEQ_MASK: u32 = IN_SEQ | OUT_SEQ;
    /// No client port yet.
    pub const NO_CPORT: u32 = 0x0800;
    /// A persistence template.
    pub const TEMPLATE: u32 = 0x1000;
    /// One-packet scheduling (never sent).
    pub const ONE_PACKET: u32 = 0x2000;
    /// Netfilter conntrack.
    pub const NFCT: u32 = 1 << 16;
    /// The flags a backup keeps from a version 1 entry
    /// (`IP_VS_CONN_F_BACKUP_MASK`).
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
    /// The flags a backup updates on a connection it already has
    /// (`IP_VS_CONN_F_BACKUP_UPD_MASK`).
    pub const BACKUP_UPD_MASK: u32 = INACTIVE | SEQ_MASK;
}

/// Option types of version 1 entries (`IPVS_OPT_*`).
pub mod option {
    /// Sequence data, 24 bytes.
    pub const SEQ_DATA: u8 = 1;
    /// Persistence-engine data.
    pub const PE_DATA: u8 = 2;
    /// Persistence-engine name.
    pub const PE_NAME: u8 = 3;
    /// Set on an optional option: an unknown one is skipped instead of
    /// making the receiver skip the entry (`IPVS_OPT_F_PARAM`).
    pub const F_PARAM: u8 = 0x40;
}

/// The message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The original format: IPv4 only, no fwmark, timeout or PE data
    /// (`sync_version` = 0).
    V0,
    /// The current format (`sync_version` = 1, the default).
    V1,
}

impl Version {
    /// Length of this version's header.
    pub const fn header_len(self) -> usize {
        match self {
            Version::V0 => HEADER_V0_LEN,
            Version::V1 => HEADER_V1_LEN,
        }
    }
}

/// One direction's TCP sequence adjustment (`struct ip_vs_seq`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SeqInfo {
    /// Sequence number where the adjustment starts.
    pub init_seq: u32,
    /// Delta applied from `init_seq` on.
    pub delta: u32,
    /// Delta applied before `init_seq`.
    pub previous_delta: u32,
}

/// The sequence data of an entry (`struct ip_vs_sync_conn_options`), sent
/// for connections whose payload the FTP helper rewrote (NAT).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SeqOptions {
    /// Client-to-server adjustment.
    pub in_seq: SeqInfo,
    /// Server-to-client adjustment.
    pub out_seq: SeqInfo,
}

impl SeqOptions {
    fn read(b: &[u8], little_endian: bool) -> SeqOptions {
        let w = |i: usize| {
            let x = [b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]];
            if little_endian {
                u32::from_le_bytes(x)
            } else {
                u32::from_be_bytes(x)
            }
        };
        SeqOptions {
            in_seq: SeqInfo {
                init_seq: w(0),
                delta: w(1),
                previous_delta: w(2),
            },
            out_seq: SeqInfo {
                init_seq: w(3),
                delta: w(4),
                previous_delta: w(5),
            },
        }
    }

    fn write(&self, b: &mut [u8], little_endian: bool) {
        let words = [
            self.in_seq.init_seq,
            self.in_seq.delta,
            self.in_seq.previous_delta,
            self.out_seq.init_seq,
            self.out_seq.delta,
            self.out_seq.previous_delta,
        ];
        for (i, w) in words.into_iter().enumerate() {
            let x = if little_endian {
                w.to_le_bytes()
            } else {
                w.to_be_bytes()
            };
            b[4 * i..4 * i + 4].copy_from_slice(&x);
        }
    }
}

/// The three addresses of an entry, all of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncAddrs {
    /// An IPv4 connection (entry type 0).
    V4 {
        /// Client.
        caddr: Ipv4Addr,
        /// Virtual address (for a fwmark template: the mark, big-endian).
        vaddr: Ipv4Addr,
        /// Real server.
        daddr: Ipv4Addr,
    },
    /// An IPv6 connection (entry type 1, version 1 only).
    V6 {
        /// Client.
        caddr: Ipv6Addr,
        /// Virtual address.
        vaddr: Ipv6Addr,
        /// Real server.
        daddr: Ipv6Addr,
    },
}

/// One synced connection, as carried by an entry. Values are host-order
/// numbers; the flags are the wire's (see [`SyncConn::backup_flags`] for
/// what a kernel backup keeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SyncConn<'a> {
    /// IP protocol (0 for a fwmark template).
    pub protocol: u8,
    /// `IP_VS_CONN_F_*` flags ([`conn_flags`]); 16 bits in version 0.
    pub flags: u32,
    /// The protocol's state number (templates: 0 NONE, 1 ASSURED).
    pub state: u16,
    /// Client port.
    pub cport: u16,
    /// Virtual port.
    pub vport: u16,
    /// Real server port.
    pub dport: u16,
    /// Addresses.
    pub addrs: SyncAddrs,
    /// Firewall mark (0 in version 0).
    pub fwmark: u32,
    /// The connection's state timeout in seconds (0 in version 0: the
    /// receiver uses its own).
    pub timeout: u32,
    /// Sequence data (TCP sequence adjustment).
    pub seq: Option<SeqOptions>,
    /// Persistence-engine data, 1..=255 bytes (version 1).
    pub pe_data: Option<&'a [u8]>,
    /// Persistence-engine name, 1..=16 bytes (version 1).
    pub pe_name: Option<&'a [u8]>,
}

impl SyncConn<'_> {
    /// True for an IPv6 connection.
    pub const fn is_ipv6(&self) -> bool {
        matches!(self.addrs, SyncAddrs::V6 { .. })
    }

    /// Client address.
    pub fn caddr(&self) -> IpAddr {
        match self.addrs {
            SyncAddrs::V4 { caddr, .. } => caddr.into(),
            SyncAddrs::V6 { caddr, .. } => caddr.into(),
        }
    }

    /// Virtual address.
    pub fn vaddr(&self) -> IpAddr {
        match self.addrs {
            SyncAddrs::V4 { vaddr, .. } => vaddr.into(),
            SyncAddrs::V6 { vaddr, .. } => vaddr.into(),
        }
    }

    /// Real server address.
    pub fn daddr(&self) -> IpAddr {
        match self.addrs {
            SyncAddrs::V4 { daddr, .. } => daddr.into(),
            SyncAddrs::V6 { daddr, .. } => daddr.into(),
        }
    }

    /// True for a persistence template.
    pub const fn is_template(&self) -> bool {
        self.flags & conn_flags::TEMPLATE != 0
    }

    /// The flags a kernel backup gives the connection it creates from this
    /// entry (`ip_vs_proc_sync_conn`, `ip_vs_process_message_v0`): version
    /// 1 keeps [`conn_flags::BACKUP_MASK`], version 0 keeps everything but
    /// HASHED; both add SYNC.
    pub const fn backup_flags(&self, version: Version) -> u32 {
        match version {
            Version::V1 => (self.flags & conn_flags::BACKUP_MASK) | conn_flags::SYNC,
            Version::V0 => (self.flags | conn_flags::SYNC) & !conn_flags::HASHED,
        }
    }

    /// Length of this connection's entry in a message of `version`, without
    /// padding.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for an IPv6 connection in version 0;
    /// [`Error::Malformed`] for empty or over-long PE data (> 255) or name
    /// (> 16) in version 1.
    pub fn wire_len(&self, version: Version) -> Result<usize> {
        match version {
            Version::V0 => {
                if self.is_ipv6() {
                    return Err(Error::Unsupported);
                }
                Ok(if self.flags & conn_flags::SEQ_MASK != 0 {
                    CONN_V0_LEN + SEQ_OPTIONS_LEN
                } else {
                    CONN_V0_LEN
                })
            }
            Version::V1 => {
                let mut len = if self.is_ipv6() {
                    CONN_V6_LEN
                } else {
                    CONN_V4_LEN
                };
                if self.seq.is_some() {
                    len += 2 + SEQ_OPTIONS_LEN;
                }
                for (data, max) in [
                    (self.pe_data, PE_DATA_MAXLEN),
                    (self.pe_name, PE_NAME_MAXLEN),
                ] {
                    if let Some(d) = data {
                        if d.is_empty() || d.len() > max {
                            return Err(Error::Malformed);
                        }
                        len += 2 + d.len();
                    }
                }
                Ok(len)
            }
        }
    }
}

/// Why a message, or one of its entries, was not accepted. The kernel's
/// return code for each case is given as "kernel: N".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyncError {
    /// The datagram is shorter than the 4-byte version 0 header.
    TooShort,
    /// The header's size is not the datagram's length.
    SizeMismatch {
        /// The header's size field.
        declared: u16,
        /// The datagram's length.
        actual: usize,
    },
    /// An entry's fixed part (v1: 36 bytes; v0: 24) does not fit in the
    /// datagram ("Dropping buffer, too small").
    EntryTruncated,
    /// A version 1 entry's size runs past the datagram ("msg > buffer").
    EntryOverrun,
    /// A version 1 entry's version (high 4 bits of `ver_size`) is not 0.
    EntryVersion(u8),
    /// A version 1 entry's type is neither 0 nor has bit 0 set (kernel: −10).
    BadType(u8),
    /// A version 1 entry's size is below its fixed part (36 or 72) (kernel: −20).
    EntryTooShort,
    /// An option header runs past the entry (kernel: −30).
    OptionTruncated,
    /// An option has length 0 or runs past the entry (kernel: −40).
    OptionLength,
    /// A sequence-data option whose length is not 24 (kernel: −50).
    SeqOptionLength(u8),
    /// An option appears twice in one entry (type given) (kernel: −50, −60, −70).
    DuplicateOption(u8),
    /// A PE name longer than 16 bytes (kernel: −70).
    PeNameTooLong(u8),
    /// A version 0 entry's flags announce sequence data that does not fit in
    /// the datagram ("bogus conn options").
    SeqTruncated,
    /// An unknown option without [`option::F_PARAM`]: this entry is skipped
    /// (kernel: 20).
    UnknownOption(u8),
    /// PE data without a PE name: this entry is skipped (kernel: 50).
    PeDataWithoutName,
}

impl SyncError {
    /// True if the kernel drops the rest of the message after this error;
    /// false if it skips only the entry (or, for the message-level errors,
    /// if there was nothing to drop).
    pub const fn drops_rest(&self) -> bool {
        !matches!(
            self,
            SyncError::UnknownOption(_) | SyncError::PeDataWithoutName
        )
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::TooShort => f.write_str("sync message shorter than its header"),
            SyncError::SizeMismatch { declared, actual } => write!(
                f,
                "sync message size {declared} differs from the datagram length {actual}"
            ),
            SyncError::EntryTruncated => f.write_str("sync entry truncated"),
            SyncError::EntryOverrun => f.write_str("sync entry runs past the message"),
            SyncError::EntryVersion(v) => write!(f, "sync entry version {v} unknown"),
            SyncError::BadType(t) => write!(f, "sync entry type {t:#x} unknown"),
            SyncError::EntryTooShort => f.write_str("sync entry shorter than its addresses"),
            SyncError::OptionTruncated => f.write_str("sync option header truncated"),
            SyncError::OptionLength => f.write_str("sync option length 0 or past the entry"),
            SyncError::SeqOptionLength(l) => write!(f, "sync sequence option of length {l}"),
            SyncError::DuplicateOption(t) => write!(f, "sync option {t} twice in one entry"),
            SyncError::PeNameTooLong(l) => write!(f, "sync PE name of {l} bytes"),
            SyncError::SeqTruncated => f.write_str("sync v0 sequence data truncated"),
            SyncError::UnknownOption(t) => write!(f, "sync option {t} unknown and mandatory"),
            SyncError::PeDataWithoutName => f.write_str("sync PE data without a PE name"),
        }
    }
}

impl core::error::Error for SyncError {}
