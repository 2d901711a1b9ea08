// SPDX-License-Identifier: GPL-2.0-or-later
//! The connection listing's compact encoding ([`Request::ListConnsPacked`]):
//! connection entries as fixed little-endian records, a block of them after
//! each [`Reply::ConnsPacked`] line, instead of a JSON object each.
//!
//! One record:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | `proto` |
//! | 1 | bits: 0 `caddr` is IPv6, 1 `vaddr`, 2 `daddr`, 3 a PE follows |
//! | 4 or 16, 2 | `caddr`, `cport` |
//! | 4 or 16, 2 | `vaddr`, `vport` |
//! | 4 or 16, 2 | `daddr`, `dport` |
//! | 4 | `flags` |
//! | 8 | `expire_secs` |
//! | 1, n | `state`: its length, its bytes (UTF-8) |
//! | 1, n, 2, m | with bit 3: the PE's name and data, each length first |
//!
//! A record is written from borrowed fields ([`ConnRecord`]) and read back
//! as one, so that neither the daemon (under its table's lock) nor the
//! client (formatting a million lines) allocates per entry.
//!
//! [`Request::ListConnsPacked`]: crate::Request::ListConnsPacked
//! [`Reply::ConnsPacked`]: crate::Reply::ConnsPacked

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ConnInfo;

/// The largest block a client accepts after one [`crate::Reply::ConnsPacked`].
pub const MAX_BLOCK: usize = 64 << 20;

const V6_C: u8 = 1;
const V6_V: u8 = 2;
const V6_D: u8 = 4;
const HAS_PE: u8 = 8;

/// A connection entry with borrowed text: what [`ConnInfo`] holds, as a
/// record of the compact encoding is written and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRecord<'a> {
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
    /// State name.
    pub state: &'a str,
    /// Seconds until expiry.
    pub expire_secs: u64,
    /// `IP_VS_CONN_F_*` flags.
    pub flags: u32,
    /// Persistence engine name and data, if any.
    pub pe: Option<(&'a str, &'a str)>,
}

impl ConnInfo {
    /// This entry as a [`ConnRecord`].
    pub fn record(&self) -> ConnRecord<'_> {
        ConnRecord {
            proto: self.proto,
            caddr: self.caddr,
            cport: self.cport,
            vaddr: self.vaddr,
            vport: self.vport,
            daddr: self.daddr,
            dport: self.dport,
            state: &self.state,
            expire_secs: self.expire_secs,
            flags: self.flags,
            pe: self.pe.as_ref().map(|(n, d)| (n.as_str(), d.as_str())),
        }
    }
}

impl ConnRecord<'_> {
    /// The owned entry.
    pub fn to_info(&self) -> ConnInfo {
        ConnInfo {
            proto: self.proto,
            caddr: self.caddr,
            cport: self.cport,
            vaddr: self.vaddr,
            vport: self.vport,
            daddr: self.daddr,
            dport: self.dport,
            state: self.state.to_string(),
            expire_secs: self.expire_secs,
            flags: self.flags,
            pe: self.pe.map(|(n, d)| (n.to_string(), d.to_string())),
        }
    }

    /// Append this record to `out`. Text longer than its length field
    /// holds (255 bytes; 65535 for the PE's data) is cut at a character
    /// boundary.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let v6 = |a: &IpAddr, bit| if a.is_ipv6() { bit } else { 0 };
        out.push(self.proto);
        out.push(
            v6(&self.caddr, V6_C)
                | v6(&self.vaddr, V6_V)
                | v6(&self.daddr, V6_D)
                | if self.pe.is_some() { HAS_PE } else { 0 },
        );
        for (a, p) in [
            (self.caddr, self.cport),
            (self.vaddr, self.vport),
            (self.daddr, self.dport),
        ] {
            match a {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
            out.extend_from_slice(&p.to_le_bytes());
        }
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.expire_secs.to_le_bytes());
        put_str(out, self.state, u8::MAX as usize, 1);
        if let Some((name, data)) = self.pe {
            put_str(out, name, u8::MAX as usize, 1);
            put_str(out, data, u16::MAX as usize, 2);
        }
    }
}

/// `s` cut to at most `max` bytes (at a character boundary), its length
/// in `width` bytes first.
fn put_str(out: &mut Vec<u8>, s: &str, max: usize, width: usize) {
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    out.extend_from_slice(&(n as u16).to_le_bytes()[..width]);
    out.extend_from_slice(&s.as_bytes()[..n]);
}

/// The records of a block, in order; an `Err` item (and then the end) at
/// the first malformed one.
pub fn records(block: &[u8]) -> Records<'_> {
    Records { rest: block }
}

/// Iterator of [`records`].
#[derive(Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<ConnRecord<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = decode_one(&mut self.rest);
        if r.is_err() {
            self.rest = &[];
        }
        Some(r)
    }
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if b.len() < n {
        return Err("malformed connection record: truncated".into());
    }
    let (head, tail) = b.split_at(n);
    *b = tail;
    Ok(head)
}

fn take_array<const N: usize>(b: &mut &[u8]) -> Result<[u8; N], String> {
    let mut a = [0; N];
    a.copy_from_slice(take(b, N)?);
    Ok(a)
}

fn take_addr(b: &mut &[u8], v6: bool) -> Result<(IpAddr, u16), String> {
    let a = if v6 {
        IpAddr::V6(Ipv6Addr::from(take_array::<16>(b)?))
    } else {
        IpAddr::V4(Ipv4Addr::from(take_array::<4>(b)?))
    };
    Ok((a, u16::from_le_bytes(take_array(b)?)))
}

fn take_str<'a>(b: &mut &'a [u8], width: usize) -> Result<&'a str, String> {
    let mut len = [0; 2];
    len[..width].copy_from_slice(take(b, width)?);
    std::str::from_utf8(take(b, usize::from(u16::from_le_bytes(len)))?)
        .map_err(|_| "malformed connection record: text not UTF-8".into())
}

fn decode_one<'a>(b: &mut &'a [u8]) -> Result<ConnRecord<'a>, String> {
    let [proto, bits] = take_array(b)?;
    let (caddr, cport) = take_addr(b, bits & V6_C != 0)?;
    let (vaddr, vport) = take_addr(b, bits & V6_V != 0)?;
    let (daddr, dport) = take_addr(b, bits & V6_D != 0)?;
    let flags = u32::from_le_bytes(take_array(b)?);
    let expire_secs = u64::from_le_bytes(take_array(b)?);
    let state = take_str(b, 1)?;
    let pe = if bits & HAS_PE != 0 {
        Some((take_str(b, 1)?, take_str(b, 2)?))
    } else {
        None
    };
    Ok(ConnRecord {
        proto,
        caddr,
        cport,
        vaddr,
        vport,
        daddr,
        dport,
        state,
        expire_secs,
        flags,
        pe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v6: bool, pe: Option<(&str, &str)>) -> ConnInfo {
        let a = |n: u8| -> IpAddr {
            if v6 {
                format!("2001:db8::{n}").parse().unwrap()
            } else {
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
            }
        };
        ConnInfo {
            proto: 6,
            caddr: a(1),
            cport: 40000,
            vaddr: a(100),
            vport: 80,
            daddr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2)),
            dport: 8080,
            state: "ESTABLISHED".into(),
            expire_secs: 899,
            flags: 0x100,
            pe: pe.map(|(n, d)| (n.into(), d.into())),
        }
    }

    #[test]
    fn records_round_trip() {
        let all = [
            entry(false, None),
            entry(true, None),
            entry(false, Some(("sip", "call-id-1"))),
            entry(true, Some(("", ""))),
        ];
        let mut block = Vec::new();
        for e in &all {
            e.record().encode(&mut block);
        }
        let back: Vec<ConnInfo> = records(&block).map(|r| r.unwrap().to_info()).collect();
        assert_eq!(back, all);
        // An IPv4 entry without a PE: 2 + 3 × 6 + 4 + 8 + 1 + 11 bytes.
        let mut one = Vec::new();
        all[0].record().encode(&mut one);
        assert_eq!(one.len(), 44);
    }

    #[test]
    fn truncated_or_bad_text_is_an_error() {
        let mut block = Vec::new();
        entry(false, None).record().encode(&mut block);
        for n in 1..block.len() {
            let mut it = records(&block[..n]);
            assert!(it.next().unwrap().is_err(), "{n} bytes");
            assert!(it.next().is_none());
        }
        let last = block.len() - 1;
        block[last] = 0xff;
        assert!(records(&block).next().unwrap().is_err());
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let mut e = entry(false, None);
        e.state = "é".repeat(200);
        let mut block = Vec::new();
        e.record().encode(&mut block);
        let r = records(&block).next().unwrap().unwrap();
        assert_eq!(r.state, "é".repeat(127));
    }
}
