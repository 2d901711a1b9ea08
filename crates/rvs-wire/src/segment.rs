//! Cutting a TCP super-frame into wire-sized segments (software TSO).
//!
//! An AF_PACKET socket reads frames as the kernel holds them: a local
//! sender whose device has TCP segmentation offload (every veth whose peer
//! has no XDP program) hands over TCP packets of up to 64 KiB, and GRO on
//! the receiving interface merges segments into such packets too. The
//! kernel's own forwarding segments them on the way out; rvs must do the
//! same before it forwards them. Any cut into segments that fit the MTU is
//! valid TCP: the receiver reassembles the byte stream whatever the
//! boundaries. As the kernel's `tcp_gso_segment`: every segment carries the
//! headers (options included), its sequence number advances by the payload
//! before it, CWR stays on the first segment only and FIN and PSH on the
//! last; IPv4 identifiers count up from the super-frame's; every checksum
//! is computed whole (the super-frame's is usually partial).
//!
//! UDP super-frames (UDP GSO) cannot be cut without the sender's segment
//! size (datagram boundaries matter) and are not handled here.

use crate::ip_protocol;
use crate::parse::FlowMeta;

/// TCP flags that stay on one segment only.
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// Why [`tcp_segments`] cannot cut a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentError {
    /// Not a TCP packet with its header present (UDP GSO, a fragment, ICMP).
    NotTcp,
    /// The headers leave no room for payload under `max_ip_len`, or the
    /// scratch buffer cannot hold one segment.
    TooSmall,
    /// The frame is shorter than its headers say.
    Truncated,
}

/// Cuts the TCP packet of `frame` (as [`parse_frame`](crate::parse_frame)
/// described it in `meta`) into segments whose IP packets are at most
/// `max_ip_len` bytes, builds each in `scratch` (a complete Ethernet frame
/// with complete checksums, any Ethernet padding of `frame` dropped) and
/// hands it to `emit`. Returns the number of segments. A packet that
/// already fits yields one segment, equal to it but for its checksum,
/// which is computed whole.
///
/// # Errors
///
/// [`SegmentError`]; nothing was emitted then.
pub fn tcp_segments(
    frame: &[u8],
    meta: &FlowMeta,
    max_ip_len: usize,
    scratch: &mut [u8],
    mut emit: impl FnMut(&mut [u8]),
) -> Result<usize, SegmentError> {
    let mut i = 0;
    while let Some(len) = tcp_segment(frame, meta, max_ip_len, i, scratch)? {
        emit(&mut scratch[..len]);
        i += 1;
    }
    Ok(i)
}

/// Builds segment `index` of [`tcp_segments`] at the start of `scratch`
/// and returns its length; `None` past the last one.
///
/// # Errors
///
/// [`SegmentError`], whatever the index.
pub fn tcp_segment(
    frame: &[u8],
    meta: &FlowMeta,
    max_ip_len: usize,
    index: usize,
    scratch: &mut [u8],
) -> Result<Option<usize>, SegmentError> {
    if meta.proto != ip_protocol::TCP || !meta.l4_present || meta.is_fragment {
        return Err(SegmentError::NotTcp);
    }
    let end = meta.l3_offset + meta.l3_len;
    let l3 = meta.l3_offset;
    let l4 = meta.l4_offset;
    let tcp = frame.get(l4..end).ok_or(SegmentError::Truncated)?;
    let thl = usize::from(tcp.get(12).ok_or(SegmentError::Truncated)? >> 4) * 4;
    if thl < 20 || thl > tcp.len() {
        return Err(SegmentError::Truncated);
    }
    let hdr_len = l4 + thl; // Ethernet + IP + TCP headers
    let ip_hdr_len = l4 - l3;
    let payload = &frame[hdr_len..end];
    let room = max_ip_len
        .checked_sub(ip_hdr_len + thl)
        .filter(|&r| r > 0)
        .ok_or(SegmentError::TooSmall)?;
    let mss = room.min(scratch.len().saturating_sub(hdr_len));
    if mss == 0 {
        return Err(SegmentError::TooSmall);
    }
    let count = payload.len().div_ceil(mss).max(1);
    if index >= count {
        return Ok(None);
    }
    let seq0 = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let flags0 = tcp[13];
    let off = index * mss;
    let chunk = &payload[off.min(payload.len())..(off + mss).min(payload.len())];
    let seg = &mut scratch[..hdr_len + chunk.len()];
    seg[..hdr_len].copy_from_slice(&frame[..hdr_len]);
    seg[hdr_len..].copy_from_slice(chunk);
    let ip_len = ip_hdr_len + thl + chunk.len();
    if meta.af_v6 {
        let pl = (ip_len - 40) as u16;
        seg[l3 + 4..l3 + 6].copy_from_slice(&pl.to_be_bytes());
    } else {
        let id0 = u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]);
        seg[l3 + 2..l3 + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        seg[l3 + 4..l3 + 6].copy_from_slice(&id0.wrapping_add(index as u16).to_be_bytes());
        crate::ipv4::Packet::new_unchecked(&mut seg[l3..l4]).fill_checksum();
    }
    let t = &mut seg[l4..];
    let seq = seq0.wrapping_add(off as u32);
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    let mut flags = flags0;
    if index + 1 != count {
        flags &= !(FIN | PSH);
    }
    if index != 0 {
        flags &= !CWR;
    }
    t[13] = flags;
    crate::tcp::Packet::new_unchecked(t)
        .fill_checksum(&meta.src, &meta.dst)
        .map_err(|_| SegmentError::NotTcp)?;
    Ok(Some(hdr_len + chunk.len()))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
    use proptest::prelude::*;

    use super::*;
    use crate::checksum;
    use crate::parse::{Parsed, parse_frame};

    fn meta(f: &[u8]) -> FlowMeta {
        match parse_frame(f).unwrap() {
            Parsed::Ip(m) => m,
            p => panic!("{p:?}"),
        }
    }

    fn super_frame(v6: bool, payload: &[u8], fin: bool) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let b = if v6 {
            b.ipv6([0xfd; 16], [0xfe; 16], 64)
        } else {
            b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        };
        let mut t = b.tcp(40000, 80, 1_000_000, 65535).ack(7).psh().cwr();
        if fin {
            t = t.fin();
        }
        let mut v = Vec::new();
        t.write(&mut v, payload).unwrap();
        v
    }

    /// Segments, each checked by etherparse: (seq, flags, payload).
    fn cut(f: &[u8], max: usize) -> Vec<(u32, bool, bool, bool, Vec<u8>)> {
        let m = meta(f);
        let mut scratch = std::vec![0u8; 9000];
        let mut out = Vec::new();
        tcp_segments(f, &m, max, &mut scratch, |s| {
            let p = SlicedPacket::from_ethernet(s).unwrap();
            let Some(TransportSlice::Tcp(t)) = p.transport else {
                panic!("not tcp")
            };
            let mm = meta(s);
            assert!(mm.l3_len <= max);
            let ph = checksum::pseudo_header(
                &mm.src,
                &mm.dst,
                6,
                (mm.l3_len - (mm.l4_offset - mm.l3_offset)) as u32,
            )
            .unwrap();
            assert_eq!(
                checksum::combine(&[
                    ph,
                    checksum::data(&s[mm.l4_offset..mm.l3_offset + mm.l3_len])
                ]),
                0xffff,
                "tcp checksum"
            );
            if !mm.af_v6 {
                assert_eq!(checksum::data(&s[14..34]), 0xffff, "ip checksum");
            }
            out.push((
                t.sequence_number(),
                t.fin(),
                t.psh(),
                t.cwr(),
                t.payload().to_vec(),
            ));
        })
        .unwrap();
        out
    }

    #[test]
    fn cuts_and_keeps_the_stream() {
        for v6 in [false, true] {
            let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
            let f = super_frame(v6, &payload, true);
            let segs = cut(&f, 1500);
            let hl = if v6 { 40 } else { 20 } + 20;
            assert_eq!(segs.len(), 10_000usize.div_ceil(1500 - hl));
            let mut joined = Vec::new();
            let mut seq = 1_000_000u32;
            for (i, (s, fin, psh, cwr, p)) in segs.iter().enumerate() {
                assert_eq!(*s, seq);
                seq += p.len() as u32;
                let last = i + 1 == segs.len();
                assert_eq!((*fin, *psh, *cwr), (last, last, i == 0));
                joined.extend_from_slice(p);
            }
            assert_eq!(joined, payload);
        }
    }

    #[test]
    fn errors() {
        let f = super_frame(false, b"x", false);
        let m = meta(&f);
        let mut s = [0u8; 100];
        assert_eq!(
            tcp_segments(&f, &m, 40, &mut s, |_| {}),
            Err(SegmentError::TooSmall)
        );
        let mut u = Vec::new();
        PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv4([1; 4], [2; 4], 9)
            .udp(1, 2)
            .write(&mut u, b"abc")
            .unwrap();
        assert_eq!(
            tcp_segments(&u, &meta(&u), 1500, &mut s, |_| {}),
            Err(SegmentError::NotTcp)
        );
    }

    proptest! {
        #[test]
        fn any_size_any_mtu(len in 0usize..20_000, max in 100usize..9000, v6 in any::<bool>()) {
            let payload: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
            let f = super_frame(v6, &payload, false);
            let segs = cut(&f, max);
            let joined: Vec<u8> = segs.iter().flat_map(|s| s.4.clone()).collect();
            prop_assert_eq!(joined, payload);
        }
    }
}
