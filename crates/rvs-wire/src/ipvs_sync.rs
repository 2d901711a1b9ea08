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

/// A received sync message whose header passed the kernel's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    buf: &'a [u8],
    version: Version,
}

impl<'a> Message<'a> {
    /// Checks a datagram's header as `ip_vs_process_message` does and
    /// detects its version (see the module docs).
    ///
    /// # Errors
    /// [`SyncError::TooShort`] below 4 bytes, [`SyncError::SizeMismatch`] if
    /// the size field is not the datagram's length.
    pub fn parse(datagram: &'a [u8]) -> core::result::Result<Message<'a>, SyncError> {
        if datagram.len() < HEADER_V0_LEN {
            return Err(SyncError::TooShort);
        }
        let declared = be16(&datagram[2..4]);
        if usize::from(declared) != datagram.len() {
            return Err(SyncError::SizeMismatch {
                declared,
                actual: datagram.len(),
            });
        }
        // The kernel reads the v1 fields even from a datagram shorter than
        // the v1 header (stale buffer bytes); no entry fits in such a
        // message either way, so it is read as v0 here.
        let v1 = datagram.len() >= HEADER_V1_LEN
            && datagram[5] == PROTO_VERSION
            && datagram[0] == 0
            && datagram[6] == 0
            && datagram[7] == 0;
        Ok(Message {
            buf: datagram,
            version: if v1 { Version::V1 } else { Version::V0 },
        })
    }

    /// The message's format.
    pub const fn version(&self) -> Version {
        self.version
    }

    /// The sender's syncid.
    pub fn syncid(&self) -> u8 {
        self.buf[1]
    }

    /// The header's size (the datagram's length).
    pub fn size(&self) -> u16 {
        be16(&self.buf[2..4])
    }

    /// The header's count of entries.
    pub fn nr_conns(&self) -> u8 {
        match self.version {
            Version::V0 => self.buf[0],
            Version::V1 => self.buf[4],
        }
    }

    /// True if a backup daemon with syncid `backup_syncid` processes this
    /// message: its syncid is 0 (accept all) or equal to the message's.
    pub fn accepted_by(&self, backup_syncid: u8) -> bool {
        backup_syncid == 0 || backup_syncid == self.syncid()
    }

    /// The whole datagram.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The entries, one `Result` each (see the module docs).
    pub fn conns(&self) -> Conns<'a> {
        Conns {
            buf: self.buf,
            version: self.version,
            next: self.version.header_len(),
            remaining: self.nr_conns(),
        }
    }
}

/// Iterator over a message's entries, from [`Message::conns`]. It yields at
/// most `nr_conns` items and stops after an error that drops the rest of the
/// message.
#[derive(Debug, Clone)]
pub struct Conns<'a> {
    buf: &'a [u8],
    version: Version,
    next: usize,
    remaining: u8,
}

impl<'a> Iterator for Conns<'a> {
    type Item = core::result::Result<SyncConn<'a>, SyncError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let (item, next) = match self.version {
            Version::V1 => decode_v1(self.buf, self.next),
            Version::V0 => decode_v0(self.buf, self.next),
        };
        match next {
            Some(n) => self.next = n,
            None => self.remaining = 0,
        }
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.remaining)))
    }
}

type Decoded<'a> = (core::result::Result<SyncConn<'a>, SyncError>, Option<usize>);

/// Decodes the v1 entry at `p`; returns it and where the next one starts
/// (`None` when the rest of the message is dropped).
fn decode_v1(buf: &[u8], p: usize) -> Decoded<'_> {
    let fail = |e: SyncError| (Err(e), None);
    let Some(fixed) = buf.get(p..).filter(|r| r.len() >= CONN_V4_LEN) else {
        return fail(SyncError::EntryTruncated);
    };
    let ver_size = be16(&fixed[2..4]);
    let size = usize::from(ver_size & SVER_MASK);
    let end = p + size;
    if end > buf.len() {
        return fail(SyncError::EntryOverrun);
    }
    if ver_size >> SVER_SHIFT != 0 {
        return fail(SyncError::EntryVersion((ver_size >> SVER_SHIFT) as u8));
    }
    // The next entry starts on a 4-byte boundary (the padding is not read).
    let next = Some(p + ((size + 3) & !3));
    let entry = &buf[p..end];
    let kind = fixed[0];
    let base = if kind & STYPE_F_INET6 != 0 {
        CONN_V6_LEN
    } else if kind == 0 {
        CONN_V4_LEN
    } else {
        return fail(SyncError::BadType(kind));
    };
    if size < base {
        return fail(SyncError::EntryTooShort);
    }
    let mut seq = None;
    let mut pe_data = None;
    let mut pe_name = None;
    let mut q = base;
    while q < size {
        if q + 2 > size {
            return fail(SyncError::OptionTruncated);
        }
        let (ptype, plen) = (entry[q], usize::from(entry[q + 1]));
        q += 2;
        if plen == 0 || q + plen > size {
            return fail(SyncError::OptionLength);
        }
        let data = &entry[q..q + plen];
        match ptype & !option::F_PARAM {
            option::SEQ_DATA => {
                if plen != SEQ_OPTIONS_LEN {
                    return fail(SyncError::SeqOptionLength(plen as u8));
                }
                if seq.is_some() {
                    return fail(SyncError::DuplicateOption(option::SEQ_DATA));
                }
                seq = Some(SeqOptions::read(data, false));
            }
            option::PE_DATA => {
                if pe_data.is_some() {
                    return fail(SyncError::DuplicateOption(option::PE_DATA));
                }
                pe_data = Some(data);
            }
            option::PE_NAME => {
                if plen > PE_NAME_MAXLEN {
                    return fail(SyncError::PeNameTooLong(plen as u8));
                }
                if pe_name.is_some() {
                    return fail(SyncError::DuplicateOption(option::PE_NAME));
                }
                pe_name = Some(data);
            }
            _ if ptype & option::F_PARAM == 0 => {
                return (Err(SyncError::UnknownOption(ptype)), next);
            }
            _ => {}
        }
        q += plen;
    }
    if pe_data.is_some() && pe_name.is_none() {
        return (Err(SyncError::PeDataWithoutName), next);
    }
    let addrs = if base == CONN_V6_LEN {
        SyncAddrs::V6 {
            caddr: ipv6(&entry[24..40]),
            vaddr: ipv6(&entry[40..56]),
            daddr: ipv6(&entry[56..72]),
        }
    } else {
        SyncAddrs::V4 {
            caddr: ipv4(&entry[24..28]),
            vaddr: ipv4(&entry[28..32]),
            daddr: ipv4(&entry[32..36]),
        }
    };
    let conn = SyncConn {
        protocol: entry[1],
        flags: be32(&entry[4..8]),
        state: be16(&entry[8..10]),
        cport: be16(&entry[10..12]),
        vport: be16(&entry[12..14]),
        dport: be16(&entry[14..16]),
        addrs,
        fwmark: be32(&entry[16..20]),
        timeout: be32(&entry[20..24]),
        seq,
        pe_data,
        pe_name,
    };
    (Ok(conn), next)
}

/// Decodes the v0 entry at `p` (see [`decode_v1`]).
fn decode_v0(buf: &[u8], p: usize) -> Decoded<'_> {
    let Some(e) = buf.get(p..).filter(|r| r.len() >= CONN_V0_LEN) else {
        return (Err(SyncError::EntryTruncated), None);
    };
    let flags = u32::from(be16(&e[20..22]));
    let (seq, len) = if flags & conn_flags::SEQ_MASK != 0 {
        let Some(s) = e.get(CONN_V0_LEN..CONN_V0_LEN + SEQ_OPTIONS_LEN) else {
            return (Err(SyncError::SeqTruncated), None);
        };
        (
            Some(SeqOptions::read(s, true)),
            CONN_V0_LEN + SEQ_OPTIONS_LEN,
        )
    } else {
        (None, CONN_V0_LEN)
    };
    let conn = SyncConn {
        protocol: e[1],
        flags,
        state: be16(&e[22..24]),
        cport: be16(&e[2..4]),
        vport: be16(&e[4..6]),
        dport: be16(&e[6..8]),
        addrs: SyncAddrs::V4 {
            caddr: ipv4(&e[8..12]),
            vaddr: ipv4(&e[12..16]),
            daddr: ipv4(&e[16..20]),
        },
        fwmark: 0,
        timeout: 0,
        seq,
        pe_data: None,
        pe_name: None,
    };
    (Ok(conn), Some(p + len))
}

/// Which daemon a [`sync_maxlen`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The sender.
    Master,
    /// The receiver.
    Backup,
}

/// The message size limit a daemon uses, as `start_sync_thread` computes it:
/// `configured` (`--sync-maxlen`, 0 = unset) clamped to [1, 65535 − hlen] for
/// a master and [1024, 65535 − hlen] for a backup; unset, 1500 − hlen for a
/// master whatever the MTU, and clamp(`mtu`, 1500, 65535) − hlen for a
/// backup; hlen is 28 (IPv4 + UDP) or 48 (IPv6 + UDP) after the group's
/// family. A backup reads at most this many bytes per datagram.
pub fn sync_maxlen(role: Role, configured: u16, mtu: u32, ipv6_group: bool) -> usize {
    let hlen = if ipv6_group { 48 } else { 28 };
    let (mtu, min) = match role {
        Role::Master => (1500, 1),
        Role::Backup => (mtu.clamp(1500, 65535) as usize, 1024),
    };
    if configured != 0 {
        usize::from(configured).clamp(min, 65535 - hlen)
    } else {
        mtu - hlen
    }
}

/// Builds one sync message in a caller's buffer (see the module docs).
///
/// ```
/// use core::net::Ipv4Addr;
/// use rvs_wire::ipvs_sync::{Message, SyncAddrs, SyncBuffer, SyncConn, Version};
///
/// let conn = SyncConn {
///     protocol: 6,
///     flags: 0x0003, // DROUTE
///     state: 1,      // ESTABLISHED
///     cport: 40000,
///     vport: 80,
///     dport: 80,
///     addrs: SyncAddrs::V4 {
///         caddr: Ipv4Addr::new(203, 0, 113, 7),
///         vaddr: Ipv4Addr::new(192, 0, 2, 10),
///         daddr: Ipv4Addr::new(10, 0, 0, 5),
///     },
///     fwmark: 0,
///     timeout: 900,
///     seq: None,
///     pe_data: None,
///     pe_name: None,
/// };
/// let mut sb = SyncBuffer::new([0u8; 1472], Version::V1, 7, 1472).unwrap();
/// assert!(sb.try_push(&conn).unwrap());
/// let msg = Message::parse(sb.as_bytes()).unwrap();
/// assert_eq!((msg.syncid(), msg.nr_conns()), (7, 1));
/// assert_eq!(msg.conns().next(), Some(Ok(conn)));
/// ```
#[derive(Debug, Clone)]
pub struct SyncBuffer<T: AsRef<[u8]> + AsMut<[u8]>> {
    buf: T,
    version: Version,
    max_len: usize,
    len: usize,
    cap: usize,
    nr_conns: u8,
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SyncBuffer<T> {
    /// Starts an empty message of `version` from `syncid`, to be kept within
    /// `max_len` bytes (the UDP payload: the daemon's [`sync_maxlen`]).
    ///
    /// `buf` holds the datagram; it needs `max_len` bytes, or the header and
    /// the entry when one entry alone is larger ([`MAX_ENTRY_LEN`] + 8 always
    /// suffices for that).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` cannot hold the header;
    /// [`Error::Malformed`] if `max_len` exceeds 65535 (the size field).
    pub fn new(buf: T, version: Version, syncid: u8, max_len: usize) -> Result<Self> {
        if max_len > usize::from(u16::MAX) {
            return Err(Error::Malformed);
        }
        if buf.as_ref().len() < version.header_len() {
            return Err(Error::BufferTooSmall);
        }
        let mut sb = SyncBuffer {
            buf,
            version,
            max_len,
            len: 0,
            cap: 0,
            nr_conns: 0,
        };
        sb.buf.as_mut()[1] = syncid;
        sb.reset();
        Ok(sb)
    }

    /// Empties the message (same syncid and version), to build the next one.
    pub fn reset(&mut self) {
        let hlen = self.version.header_len();
        let b = self.buf.as_mut();
        let syncid = b[1];
        match self.version {
            // reserved (the old nr_conns) 0, so v0 receivers ignore it.
            Version::V1 => b[..hlen].copy_from_slice(&[0, syncid, 0, 8, 0, PROTO_VERSION, 0, 0]),
            Version::V0 => b[..hlen].copy_from_slice(&[0, syncid, 0, 4]),
        }
        self.len = hlen;
        self.cap = 0;
        self.nr_conns = 0;
    }

    /// Appends `conn`: `Ok(true)` if it was added, `Ok(false)` if the message
    /// is full (send it, [`reset`](Self::reset), push again). The entry is
    /// written as the kernel writes it: flags without HASHED (and cut to 16
    /// bits in version 0); in version 1 the options SEQ_DATA (if `seq`),
    /// PE_DATA, PE_NAME in that order; in version 0 the sequence data if the
    /// flags carry IN_SEQ or OUT_SEQ (zeros if `seq` is `None`), and no
    /// fwmark, timeout or PE data.
    ///
    /// # Errors
    /// Those of [`SyncConn::wire_len`]; [`Error::BufferTooSmall`] if the
    /// buffer is shorter than the message would be. The message is
    /// unchanged after an error.
    pub fn try_push(&mut self, conn: &SyncConn<'_>) -> Result<bool> {
        let elen = conn.wire_len(self.version)?;
        let hlen = self.version.header_len();
        let pad = if self.nr_conns == 0 {
            0
        } else {
            if usize::from(self.nr_conns) == MAX_CONNS {
                return Ok(false);
            }
            match self.version {
                Version::V1 => (4 - (self.len & 3)) & 3,
                Version::V0 => 0,
            }
        };
        let cap = if self.nr_conns == 0 {
            (hlen + elen).max(self.max_len)
        } else {
            self.cap
        };
        let new_len = self.len + pad + elen;
        if new_len > cap {
            return Ok(false);
        }
        let start = self.len + pad;
        let Some(out) = self.buf.as_mut().get_mut(self.len..new_len) else {
            return Err(Error::BufferTooSmall);
        };
        out[..pad].fill(0);
        match self.version {
            Version::V1 => write_v1(&mut out[pad..], conn, elen),
            Version::V0 => write_v0(&mut out[pad..], conn),
        }
        debug_assert_eq!(start + elen, new_len);
        self.cap = cap;
        self.len = new_len;
        self.nr_conns += 1;
        let (count_at, size) = (
            match self.version {
                Version::V1 => 4,
                Version::V0 => 0,
            },
            (new_len as u16).to_be_bytes(),
        );
        let b = self.buf.as_mut();
        b[count_at] = self.nr_conns;
        b[2..4].copy_from_slice(&size);
        Ok(true)
    }

    /// The message so far: a datagram ready to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf.as_ref()[..self.len]
    }

    /// Length of the message so far.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True if no entry was added since the start or the last reset.
    pub const fn is_empty(&self) -> bool {
        self.nr_conns == 0
    }

    /// Entries in the message.
    pub const fn nr_conns(&self) -> u8 {
        self.nr_conns
    }

    /// The message format.
    pub const fn version(&self) -> Version {
        self.version
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// Writes a v1 entry of `elen` bytes (from `wire_len`) into `out[..elen]`.
fn write_v1(out: &mut [u8], c: &SyncConn<'_>, elen: usize) {
    out[0] = if c.is_ipv6() { STYPE_F_INET6 } else { 0 };
    out[1] = c.protocol;
    put16(out, 2, elen as u16 & SVER_MASK);
    put32(out, 4, c.flags & !conn_flags::HASHED);
    put16(out, 8, c.state);
    put16(out, 10, c.cport);
    put16(out, 12, c.vport);
    put16(out, 14, c.dport);
    put32(out, 16, c.fwmark);
    put32(out, 20, c.timeout);
    let mut p = match c.addrs {
        SyncAddrs::V4 {
            caddr,
            vaddr,
            daddr,
        } => {
            out[24..28].copy_from_slice(&caddr.octets());
            out[28..32].copy_from_slice(&vaddr.octets());
            out[32..36].copy_from_slice(&daddr.octets());
            CONN_V4_LEN
        }
        SyncAddrs::V6 {
            caddr,
            vaddr,
            daddr,
        } => {
            out[24..40].copy_from_slice(&caddr.octets());
            out[40..56].copy_from_slice(&vaddr.octets());
            out[56..72].copy_from_slice(&daddr.octets());
            CONN_V6_LEN
        }
    };
    if let Some(seq) = &c.seq {
        out[p] = option::SEQ_DATA;
        out[p + 1] = SEQ_OPTIONS_LEN as u8;
        seq.write(&mut out[p + 2..p + 2 + SEQ_OPTIONS_LEN], false);
        p += 2 + SEQ_OPTIONS_LEN;
    }
    for (kind, data) in [(option::PE_DATA, c.pe_data), (option::PE_NAME, c.pe_name)] {
        if let Some(d) = data {
            out[p] = kind;
            out[p + 1] = d.len() as u8;
            out[p + 2..p + 2 + d.len()].copy_from_slice(d);
            p += 2 + d.len();
        }
    }
    debug_assert_eq!(p, elen);
}

/// Writes a v0 entry into `out` (exactly its length).
fn write_v0(out: &mut [u8], c: &SyncConn<'_>) {
    let SyncAddrs::V4 {
        caddr,
        vaddr,
        daddr,
    } = c.addrs
    else {
        return; // wire_len refuses IPv6 in version 0
    };
    out[0] = 0;
    out[1] = c.protocol;
    put16(out, 2, c.cport);
    put16(out, 4, c.vport);
    put16(out, 6, c.dport);
    out[8..12].copy_from_slice(&caddr.octets());
    out[12..16].copy_from_slice(&vaddr.octets());
    out[16..20].copy_from_slice(&daddr.octets());
    put16(out, 20, (c.flags & !conn_flags::HASHED) as u16);
    put16(out, 22, c.state);
    if c.flags & conn_flags::SEQ_MASK != 0 {
        c.seq
            .unwrap_or_default()
            .write(&mut out[CONN_V0_LEN..CONN_V0_LEN + SEQ_OPTIONS_LEN], true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn4() -> SyncConn<'static> {
        SyncConn {
            protocol: 6,
            flags: conn_flags::DROUTE,
            state: 1,
            cport: 40000,
            vport: 80,
            dport: 8080,
            addrs: SyncAddrs::V4 {
                caddr: Ipv4Addr::new(203, 0, 113, 7),
                vaddr: Ipv4Addr::new(192, 0, 2, 10),
                daddr: Ipv4Addr::new(10, 0, 0, 5),
            },
            fwmark: 0,
            timeout: 900,
            seq: None,
            pe_data: None,
            pe_name: None,
        }
    }

    #[test]
    fn header_checks() {
        assert_eq!(Message::parse(&[0, 0, 0]), Err(SyncError::TooShort));
        assert_eq!(
            Message::parse(&[0, 0, 0, 5]),
            Err(SyncError::SizeMismatch {
                declared: 5,
                actual: 4
            })
        );
        let m = Message::parse(&[0, 9, 0, 4]).unwrap();
        assert_eq!((m.version(), m.syncid(), m.nr_conns()), (Version::V0, 9, 0));
        let m = Message::parse(&[0, 9, 0, 8, 3, 1, 0, 0]).unwrap();
        assert_eq!((m.version(), m.nr_conns()), (Version::V1, 3));
        // A nonzero spare: read as v0 with reserved (0) entries.
        let m = Message::parse(&[0, 9, 0, 8, 3, 1, 0, 1]).unwrap();
        assert_eq!((m.version(), m.conns().count()), (Version::V0, 0));
        assert!(m.accepted_by(0) && m.accepted_by(9) && !m.accepted_by(8));
    }

    #[test]
    fn v1_padding_and_capacity() {
        let mut sb = SyncBuffer::new([0u8; 200], Version::V1, 1, 8 + 40 + 36).unwrap();
        let with_name = SyncConn {
            pe_data: Some(b"x"),
            pe_name: Some(b"sip"),
            ..conn4()
        };
        // 36 + 3 + 5 = 44 bytes: over max_len alone, so it gets a message
        // of its own sized to it.
        assert_eq!(with_name.wire_len(Version::V1), Ok(44));
        assert!(sb.try_push(&with_name).unwrap());
        assert_eq!(sb.len(), 52);
        assert!(!sb.try_push(&conn4()).unwrap());
        sb.reset();
        assert!(sb.try_push(&conn4()).unwrap());
        let odd = SyncConn {
            pe_data: Some(b"ab"),
            pe_name: Some(b"sip"),
            ..conn4()
        };
        sb = SyncBuffer::new([0u8; 200], Version::V1, 1, 200).unwrap();
        assert!(sb.try_push(&odd).unwrap()); // 8 + 45
        assert!(sb.try_push(&conn4()).unwrap()); // 3 bytes of padding
        assert_eq!(sb.len(), 8 + 45 + 3 + 36);
        assert_eq!(&sb.as_bytes()[53..56], &[0, 0, 0]);
        let m = Message::parse(sb.as_bytes()).unwrap();
        let got: Vec<_> = m.conns().collect();
        assert_eq!(got, vec![Ok(odd), Ok(conn4())]);
    }

    #[test]
    fn v0_refuses_ipv6_and_cuts_flags() {
        let mut sb = SyncBuffer::new([0u8; 100], Version::V0, 0, 100).unwrap();
        let v6 = SyncConn {
            addrs: SyncAddrs::V6 {
                caddr: Ipv6Addr::LOCALHOST,
                vaddr: Ipv6Addr::LOCALHOST,
                daddr: Ipv6Addr::LOCALHOST,
            },
            ..conn4()
        };
        assert_eq!(sb.try_push(&v6), Err(Error::Unsupported));
        let c = SyncConn {
            flags: conn_flags::NFCT | conn_flags::HASHED | conn_flags::INACTIVE,
            ..conn4()
        };
        assert!(sb.try_push(&c).unwrap());
        let m = Message::parse(sb.as_bytes()).unwrap();
        let got = m.conns().next().unwrap().unwrap();
        assert_eq!(got.flags, conn_flags::INACTIVE);
        assert_eq!((got.fwmark, got.timeout), (0, 0));
        assert_eq!(got.backup_flags(Version::V0), 0x120);
    }

    #[test]
    fn unknown_options() {
        let mut sb = SyncBuffer::new([0u8; 100], Version::V1, 0, 100).unwrap();
        assert!(sb.try_push(&conn4()).unwrap());
        assert!(sb.try_push(&conn4()).unwrap());
        let b = sb.as_bytes().to_vec();
        // Grow the first entry by a 4-byte option of type 9.
        let mut msg = b[..8].to_vec();
        let mut e1 = b[8..44].to_vec();
        e1.extend_from_slice(&[9, 2, 0xaa, 0xbb]);
        e1[3] = 40;
        msg.extend_from_slice(&e1);
        msg.extend_from_slice(&b[44..]);
        let n = msg.len() as u16;
        msg[2..4].copy_from_slice(&n.to_be_bytes());
        let m = Message::parse(&msg).unwrap();
        let got: Vec<_> = m.conns().collect();
        assert_eq!(got, vec![Err(SyncError::UnknownOption(9)), Ok(conn4())]);
        // Optional (0x49): skipped, the entry is accepted.
        msg[8 + 36] = 0x49;
        let m = Message::parse(&msg).unwrap();
        assert_eq!(m.conns().filter(|r| r.is_ok()).count(), 2);
        // A zero-length option drops the rest.
        msg[8 + 37] = 0;
        let m = Message::parse(&msg).unwrap();
        let got: Vec<_> = m.conns().collect();
        assert_eq!(got, vec![Err(SyncError::OptionLength)]);
    }

    #[test]
    fn maxlen_as_the_kernel() {
        assert_eq!(sync_maxlen(Role::Master, 0, 9000, false), 1472);
        assert_eq!(sync_maxlen(Role::Master, 0, 1400, true), 1452);
        assert_eq!(sync_maxlen(Role::Backup, 0, 9000, false), 8972);
        assert_eq!(sync_maxlen(Role::Backup, 0, 576, false), 1472);
        assert_eq!(sync_maxlen(Role::Backup, 100, 1500, false), 1024);
        assert_eq!(sync_maxlen(Role::Master, 100, 1500, false), 100);
        assert_eq!(sync_maxlen(Role::Master, 65535, 1500, false), 65507);
    }
}
