//! Building sync messages: [`sync_maxlen`] (the kernel's message size) and
//! [`SyncBuffer`], which appends entries as `ip_vs_sync_conn` (v1) and
//! `ip_vs_sync_conn_v0` do.

use super::*;

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
