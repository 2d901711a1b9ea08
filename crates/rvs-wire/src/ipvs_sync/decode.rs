//! Reading sync messages: [`Message`] checks the header as the kernel's
//! `ip_vs_process_message` does and [`Conns`] walks the entries
//! (`ip_vs_proc_sync_conn` / `ip_vs_process_message_v0`).

use super::*;

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
