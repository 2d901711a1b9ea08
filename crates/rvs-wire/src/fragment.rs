//! Cutting an IPv4 packet into fragments (RFC 791), for the tunnel: an
//! inner packet without DF that would not fit the egress MTU once
//! encapsulated is fragmented first, and each piece is encapsulated as an
//! unfragmented outer packet (what RFC 2003 allows and what the kernel's
//! tunnels do).
//!
//! The packet may itself be a fragment: fragments of fragments are legal.
//! Piece `i` carries the header, `ident` and addresses of the original, its
//! offset is the original's plus the data before it, and MF is set on every
//! piece but the last, which keeps the original's MF (set when the original
//! was a fragment that was not the last). Data is cut in multiples of 8
//! bytes. The header checksum of each piece is computed whole. The
//! transport checksum is left as it is: it covers the whole datagram, which
//! the receiver reassembles.
//!
//! A header with options is refused ([`Error::Unsupported`]): only options
//! with the copy bit may be repeated in later pieces, and IPVS traffic with
//! IP options is rare enough not to warrant filtering them.

use crate::ethernet::{EtherType, Frame};
use crate::ipv4;
use crate::parse::FlowMeta;
use crate::{Error, Result};

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// Number of pieces [`ipv4_fragment`] cuts a packet of `ip_len` bytes with
/// a `header_len`-byte header into, for pieces of at most `max_ip_len`
/// bytes; `None` if no data fits in a piece.
pub fn ipv4_fragment_count(ip_len: usize, header_len: usize, max_ip_len: usize) -> Option<usize> {
    let chunk = max_ip_len.checked_sub(header_len)? & !7;
    if chunk == 0 {
        return None;
    }
    let data = ip_len.saturating_sub(header_len);
    Some(data.div_ceil(chunk).max(1))
}

/// Builds in `out` piece `index` of the IPv4 packet of `frame` (an Ethernet
/// frame that [`parse_frame`](crate::parse_frame) described in `meta`), cut
/// into pieces whose IP packets are at most `max_ip_len` bytes: the frame's
/// Ethernet header (VLAN tag included), then the piece. Returns its length,
/// or `None` past the last piece. A packet that already fits yields one
/// piece, equal to the original (DF cleared, Ethernet padding dropped).
///
/// # Errors
///
/// [`Error::Unsupported`] for IPv6, a packet with DF set or with IP
/// options; [`Error::Truncated`] if `frame` is shorter than its IP length,
/// if no data fits under `max_ip_len` or if `out` is too small.
pub fn ipv4_fragment(
    frame: &[u8],
    meta: &FlowMeta,
    max_ip_len: usize,
    index: usize,
    out: &mut [u8],
) -> Result<Option<usize>> {
    if meta.af_v6 {
        return Err(Error::Unsupported);
    }
    let eth = Frame::new_checked(frame)?;
    if eth.payload_ethertype() != EtherType::IPV4 {
        return Err(Error::Unsupported);
    }
    let l3 = meta.l3_offset;
    let ip = frame.get(l3..).ok_or(Error::Truncated)?;
    let p = ipv4::Packet::new_checked(ip)?;
    let hl = p.header_len();
    if hl != ipv4::HEADER_LEN || p.dont_frag() {
        return Err(Error::Unsupported);
    }
    let total = usize::from(p.total_len());
    let chunk = max_ip_len.checked_sub(hl).ok_or(Error::Truncated)? & !7;
    if chunk == 0 {
        return Err(Error::Truncated);
    }
    let data_len = total - hl;
    let from = index.checked_mul(chunk).ok_or(Error::Truncated)?;
    if from >= data_len && !(index == 0 && data_len == 0) {
        return Ok(None);
    }
    let n = (data_len - from).min(chunk);
    let last = from + n == data_len;
    let len = l3 + hl + n;
    let o = out.get_mut(..len).ok_or(Error::Truncated)?;
    o[..l3 + hl].copy_from_slice(&frame[..l3 + hl]);
    o[l3 + hl..].copy_from_slice(&ip[hl + from..hl + from + n]);
    let orig = u16::from_be_bytes([ip[6], ip[7]]);
    let offset = (orig & OFFSET_MASK) + (from / 8) as u16;
    if offset > OFFSET_MASK {
        return Err(Error::Unsupported);
    }
    let mf = if last { orig & FLAG_MF } else { FLAG_MF };
    let flags = (mf | offset) & !FLAG_DF;
    let h = &mut o[l3..];
    h[2..4].copy_from_slice(&((hl + n) as u16).to_be_bytes());
    h[6..8].copy_from_slice(&flags.to_be_bytes());
    let mut q = ipv4::Packet::new_unchecked(&mut h[..]);
    q.fill_checksum();
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Parsed, parse_frame};

    /// An Ethernet frame with an IPv4 UDP packet of `payload` bytes, `flags_off`
    /// its flags/offset word.
    fn frame(payload: usize, flags_off: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + payload];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        ip[6..8].copy_from_slice(&flags_off.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        for (i, b) in ip[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        if flags_off & 0x1fff == 0 {
            // A UDP header whose length covers the packet.
            ip[24..26].copy_from_slice(&(payload as u16).to_be_bytes());
        }
        ipv4::Packet::new_unchecked(&mut f[14..]).fill_checksum();
        f
    }

    fn pieces(f: &[u8], max: usize) -> Vec<Vec<u8>> {
        let Ok(Parsed::Ip(meta)) = parse_frame(f) else {
            panic!("parse")
        };
        let mut out = vec![0u8; 2000];
        let mut v = Vec::new();
        for i in 0.. {
            match ipv4_fragment(f, &meta, max, i, &mut out).unwrap() {
                Some(len) => v.push(out[..len].to_vec()),
                None => break,
            }
        }
        assert_eq!(Some(v.len()), ipv4_fragment_count(meta.l3_len, 20, max));
        v
    }

    #[test]
    fn fragments_of_a_fragment() {
        // A first fragment (MF, offset 0) of 1480 bytes of data, cut to fit 1480.
        let f = frame(1480, 0x2000);
        let ps = pieces(&f, 1480);
        assert_eq!(ps.len(), 2);
        let mut data = Vec::new();
        for (i, p) in ps.iter().enumerate() {
            let q = ipv4::Packet::new_checked(&p[14..]).unwrap();
            assert!(q.verify_checksum());
            assert!(usize::from(q.total_len()) <= 1480);
            assert!(q.more_frags(), "piece {i}: not the datagram's last");
            assert_eq!(usize::from(q.frag_offset()), data.len());
            assert_eq!(q.ident(), 0x1234);
            data.extend_from_slice(q.payload());
        }
        assert_eq!(data, f[34..]);
        // A last fragment at offset 1480: the last piece has MF clear.
        let f = frame(1000, 1480 / 8);
        let ps = pieces(&f, 600);
        assert_eq!(ps.len(), 2);
        let a = ipv4::Packet::new_checked(&ps[0][14..]).unwrap();
        let b = ipv4::Packet::new_checked(&ps[1][14..]).unwrap();
        assert!(a.more_frags() && !b.more_frags());
        assert_eq!((a.frag_offset(), b.frag_offset()), (1480, 1480 + 576));
        assert_eq!(a.payload().len(), 576);
        assert_eq!(b.payload().len(), 1000 - 576);
    }

    #[test]
    fn whole_packet_without_df_and_refusals() {
        let f = frame(100, 0);
        let ps = pieces(&f, 1500);
        assert_eq!(ps, vec![f.clone()]);
        let ps = pieces(&f, 60);
        assert_eq!(ps.len(), 3); // 40 + 40 + 20
        let Ok(Parsed::Ip(meta)) = parse_frame(&f) else {
            panic!()
        };
        let mut out = [0u8; 100];
        assert_eq!(
            ipv4_fragment(&f, &meta, 27, 0, &mut out),
            Err(Error::Truncated)
        );
        let df = frame(100, 0x4000);
        let Ok(Parsed::Ip(meta)) = parse_frame(&df) else {
            panic!()
        };
        assert_eq!(
            ipv4_fragment(&df, &meta, 60, 0, &mut out),
            Err(Error::Unsupported)
        );
    }
}
