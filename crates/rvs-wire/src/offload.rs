//! Finishing the checksums a sender left to "hardware" (checksum offload).
//!
//! # Why frames arrive unfinished
//!
//! A Linux sender whose device has transmit checksum offload (every veth,
//! virtio-net, most NICs) does not compute TCP and UDP checksums: the skb is
//! `CHECKSUM_PARTIAL` and the checksum field holds the folded, *not
//! inverted* sum of the pseudo-header (`__tcp_v4_send_check`,
//! `udp4_hwcsum`: `~tcp_v4_check(len, saddr, daddr, 0)`); the device is to
//! add the sum of the transport header and payload from `csum_start` and
//! store the inverted result at `csum_offset`. SCTP with `NETIF_F_SCTP_CRC`
//! (veth has it) leaves its CRC32c field at zero (`sctp_packet_pack`).
//! Over a veth, a bridge or a virtio queue the frame keeps that state; the
//! kernel's own forwarding finishes it on the way out, but the frame that an
//! XDP program, an AF_XDP socket or an AF_PACKET socket sees has lost the
//! `csum_start`/`csum_offset` metadata. Sent on unchanged, the receiver
//! counts a bad checksum and drops it.
//!
//! # How a partial checksum is recognised
//!
//! Without the skb's metadata, a TCP or UDP checksum field that equals the
//! pseudo-header sum of its own packet is taken as partial, and an SCTP
//! checksum of zero. Both tests are cheap (no pass over the payload), and
//! finishing is safe when the guess is wrong: a *complete* checksum `C`
//! that happens to equal the pseudo-header sum `P` satisfies
//! `P + D + C = 0xffff` (`D` the sum of the segment without its checksum),
//! so finishing it, `~(D + C)`, gives `P` = `C` again; a complete CRC32c of
//! zero recomputes to zero. Finishing never changes a frame whose checksum
//! was already right (proptests below), and it turns every partial frame a
//! Linux sender makes into a correct one. [`Completion`] reports a checksum
//! finished only when the field changed: a complete checksum that equals
//! its pseudo-header sum (one frame in 65 536 of a stream with offload off)
//! is neither changed nor counted, so a count of finished checksums
//! counts partial frames only.
//!
//! Segments that software GSO cut from a TSO super-packet carry the
//! pseudo-header sum of their own length (`tcp_gso_segment`), so they are
//! recognised the same way. IP fragments are never partial (the kernel
//! finishes the checksum before it fragments) and are left alone.

use crate::checksum;
use crate::ip_protocol;
use crate::parse::FlowMeta;

/// Offset of the TCP checksum in the TCP header.
const TCP_CSUM: usize = 16;
/// Offset of the UDP checksum in the UDP header.
const UDP_CSUM: usize = 6;
/// Offset of the SCTP CRC32c in the SCTP common header.
const SCTP_CSUM: usize = 8;

/// What [`complete_partial`] did to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Completion {
    /// The checksum did not look partial (or the packet has none to finish):
    /// the frame is unchanged.
    Untouched,
    /// A TCP or UDP checksum was finished.
    Inet,
    /// An SCTP CRC32c was computed.
    Crc32c,
}

impl Completion {
    /// Whether a checksum was finished.
    pub fn completed(self) -> bool {
        self != Completion::Untouched
    }
}

/// Finishes a TCP, UDP or SCTP checksum left partial by a sender's checksum
/// offload (see the module docs), in place. `meta` is what
/// [`parse_frame`](crate::parse_frame) returned for `frame`. Frames that are
/// not TCP, UDP or SCTP, fragments, and frames whose transport segment does
/// not fit in `frame` are left as they are.
pub fn complete_partial(frame: &mut [u8], meta: &FlowMeta) -> Completion {
    if !meta.l4_present || meta.is_fragment || meta.icmp.is_some() {
        return Completion::Untouched;
    }
    let end = meta.l3_offset.saturating_add(meta.l3_len);
    let Some(seg) = frame.get_mut(meta.l4_offset..end) else {
        return Completion::Untouched;
    };
    match meta.proto {
        ip_protocol::TCP => finish_inet(seg, meta, TCP_CSUM, seg.len(), false),
        ip_protocol::UDP => {
            let Some(len) = seg
                .get(4..6)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            else {
                return Completion::Untouched;
            };
            // A UDP length that does not fit the IP packet: not ours to fix.
            if len < 8 || len > seg.len() {
                return Completion::Untouched;
            }
            finish_inet(&mut seg[..len], meta, UDP_CSUM, len, true)
        }
        ip_protocol::SCTP => finish_crc32c(seg),
        _ => Completion::Untouched,
    }
}

fn finish_inet(seg: &mut [u8], meta: &FlowMeta, at: usize, len: usize, udp: bool) -> Completion {
    let Some(field) = seg.get(at..at + 2) else {
        return Completion::Untouched;
    };
    let field = u16::from_be_bytes([field[0], field[1]]);
    // IPv4 UDP without a checksum.
    if udp && field == 0 {
        return Completion::Untouched;
    }
    let Some(pseudo) = checksum::pseudo_header(&meta.src, &meta.dst, meta.proto, len as u32) else {
        return Completion::Untouched;
    };
    if field != pseudo {
        return Completion::Untouched;
    }
    // The field holds the pseudo-header's sum: the sum over the segment
    // as it is is the sum over pseudo-header, header and payload.
    let mut c = !checksum::data(seg);
    if udp && c == 0 {
        c = 0xffff;
    }
    if c == field {
        // Already right: a complete checksum that equals its pseudo-header
        // sum (one in 65 536 frames). Nothing finished, nothing counted.
        return Completion::Untouched;
    }
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Completion::Inet
}

fn finish_crc32c(seg: &mut [u8]) -> Completion {
    let Some(field) = seg.get(SCTP_CSUM..SCTP_CSUM + 4) else {
        return Completion::Untouched;
    };
    if field != [0, 0, 0, 0] {
        return Completion::Untouched;
    }
    let crc = checksum::crc32c(seg);
    if crc == 0 {
        // A complete CRC32c of zero: already right.
        return Completion::Untouched;
    }
    seg[SCTP_CSUM..SCTP_CSUM + 4].copy_from_slice(&crc.to_le_bytes());
    Completion::Crc32c
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::parse::{Parsed, parse_frame};

    fn meta(frame: &[u8]) -> FlowMeta {
        match parse_frame(frame).unwrap() {
            Parsed::Ip(m) => m,
            p => panic!("not IP: {p:?}"),
        }
    }

    /// An Ethernet frame with an IPv4 or IPv6 header and `l4` as its
    /// transport segment (checksum field as given).
    fn frame(v6: bool, proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = std::vec![0u8; 14];
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        if v6 {
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            let mut h = [0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
            h[6] = proto;
            h[7] = 64;
            h[8..24].copy_from_slice(&src6().octets());
            h[24..40].copy_from_slice(&dst6().octets());
            f.extend_from_slice(&h);
        } else {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            h[6] = 0x40;
            h[8] = 64;
            h[9] = proto;
            h[12..16].copy_from_slice(&src4().octets());
            h[16..20].copy_from_slice(&dst4().octets());
            let c = !checksum::data(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&h);
        }
        f.extend_from_slice(l4);
        f
    }

    fn src4() -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, 2)
    }
    fn dst4() -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, 1)
    }
    fn src6() -> Ipv6Addr {
        "fd00::2".parse().unwrap()
    }
    fn dst6() -> Ipv6Addr {
        "fd00::1".parse().unwrap()
    }
    fn addrs(v6: bool) -> (IpAddr, IpAddr) {
        if v6 {
            (src6().into(), dst6().into())
        } else {
            (src4().into(), dst4().into())
        }
    }

    /// A TCP or UDP segment with `payload`, its checksum full or partial
    /// (the pseudo-header sum, as Linux leaves it for the device).
    fn inet_segment(v6: bool, proto: u8, payload: &[u8], partial: bool) -> Vec<u8> {
        let (hl, at) = if proto == ip_protocol::TCP {
            (20, TCP_CSUM)
        } else {
            (8, UDP_CSUM)
        };
        let mut s = std::vec![0u8; hl];
        s[0..4].copy_from_slice(&[0x9c, 0x40, 0x00, 0x50]);
        if proto == ip_protocol::TCP {
            s[4..8].copy_from_slice(&[1, 2, 3, 4]);
            s[12] = 0x50;
            s[13] = 0x18;
            s[14..16].copy_from_slice(&[0xfa, 0xf0]);
        } else {
            s[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        }
        s.extend_from_slice(payload);
        let (src, dst) = addrs(v6);
        let pseudo = checksum::pseudo_header(&src, &dst, proto, s.len() as u32).unwrap();
        let c = if partial {
            pseudo
        } else {
            let mut c = !checksum::combine(&[pseudo, checksum::data(&s)]);
            if proto == ip_protocol::UDP && c == 0 {
                c = 0xffff;
            }
            c
        };
        s[at..at + 2].copy_from_slice(&c.to_be_bytes());
        s
    }

    fn verifies(f: &[u8]) -> bool {
        let m = meta(f);
        let seg = &f[m.l4_offset..m.l3_offset + m.l3_len];
        let pseudo = checksum::pseudo_header(&m.src, &m.dst, m.proto, seg.len() as u32).unwrap();
        checksum::combine(&[pseudo, checksum::data(seg)]) == 0xffff
    }

    #[test]
    fn tcp_and_udp_partial_checksums_are_finished() {
        for v6 in [false, true] {
            for proto in [ip_protocol::TCP, ip_protocol::UDP] {
                let partial = frame(v6, proto, &inet_segment(v6, proto, b"hello, rvs!", true));
                let full = frame(v6, proto, &inet_segment(v6, proto, b"hello, rvs!", false));
                assert!(!verifies(&partial));
                let mut f = partial.clone();
                let m = meta(&f);
                assert_eq!(complete_partial(&mut f, &m), Completion::Inet);
                assert!(verifies(&f), "v6 {v6} proto {proto}");
                assert_eq!(f, full);
            }
        }
    }

    /// A complete checksum that equals the pseudo-header sum looks
    /// partial: it is left as it is and not counted as finished (seen as
    /// a flaky count in CI: one such frame in 65 536).
    #[test]
    fn complete_checksum_equal_to_the_pseudo_header_sum_is_not_counted() {
        for v6 in [false, true] {
            for proto in [ip_protocol::TCP, ip_protocol::UDP] {
                let (src, dst) = addrs(v6);
                let hl = if proto == ip_protocol::TCP { 20 } else { 8 };
                let pseudo = checksum::pseudo_header(&src, &dst, proto, hl + 2).unwrap();
                let at = if proto == ip_protocol::TCP {
                    TCP_CSUM
                } else {
                    UDP_CSUM
                };
                // The two payload bytes that make the complete checksum
                // equal the pseudo-header sum.
                let s = (0..=u16::MAX)
                    .map(|w| inet_segment(v6, proto, &w.to_be_bytes(), false))
                    .find(|s| u16::from_be_bytes([s[at], s[at + 1]]) == pseudo)
                    .expect("some payload word gives it");
                let mut f = frame(v6, proto, &s);
                assert!(verifies(&f));
                let before = f.clone();
                let m = meta(&f);
                assert_eq!(complete_partial(&mut f, &m), Completion::Untouched);
                assert_eq!(f, before);
            }
        }
    }

    #[test]
    fn udp_without_checksum_is_left_alone() {
        let mut s = inet_segment(false, ip_protocol::UDP, b"x", false);
        s[6..8].copy_from_slice(&[0, 0]);
        let mut f = frame(false, ip_protocol::UDP, &s);
        let before = f.clone();
        let m = meta(&f);
        assert_eq!(complete_partial(&mut f, &m), Completion::Untouched);
        assert_eq!(f, before);
    }

    #[test]
    fn sctp_zero_crc_is_computed() {
        let mut s = std::vec![0u8; 12];
        s[0..4].copy_from_slice(&[0x9c, 0x40, 0x00, 0x50]);
        s.extend_from_slice(&[1, 0, 0, 8, 0, 0, 0, 0]);
        let crc = checksum::crc32c(&s);
        let mut f = frame(false, ip_protocol::SCTP, &s);
        let m = meta(&f);
        assert_eq!(complete_partial(&mut f, &m), Completion::Crc32c);
        assert_eq!(f[m.l4_offset + 8..m.l4_offset + 12], crc.to_le_bytes());
        // Now complete: untouched.
        let before = f.clone();
        assert_eq!(complete_partial(&mut f, &m), Completion::Untouched);
        assert_eq!(f, before);
    }

    #[test]
    fn fragments_and_icmp_are_left_alone() {
        let mut f = frame(
            false,
            ip_protocol::UDP,
            &inet_segment(false, ip_protocol::UDP, b"abc", true),
        );
        // MF set: a first fragment.
        f[14 + 6] = 0x20;
        f[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
        let c = !checksum::data(&f[14..34]);
        f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
        let before = f.clone();
        let m = meta(&f);
        assert!(m.is_fragment);
        assert_eq!(complete_partial(&mut f, &m), Completion::Untouched);
        assert_eq!(f, before);
    }

    fn proto() -> impl Strategy<Value = u8> {
        prop_oneof![Just(ip_protocol::TCP), Just(ip_protocol::UDP)]
    }

    proptest! {
        /// A frame whose checksum is right is never changed.
        #[test]
        fn complete_frames_are_unchanged(
            v6 in any::<bool>(),
            proto in proto(),
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
        ) {
            let mut f = frame(v6, proto, &inet_segment(v6, proto, &payload, false));
            let before = f.clone();
            let m = meta(&f);
            complete_partial(&mut f, &m);
            prop_assert_eq!(f, before);
        }

        /// A partial frame comes out equal to the fully computed one.
        #[test]
        fn partial_frames_come_out_complete(
            v6 in any::<bool>(),
            proto in proto(),
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
        ) {
            let mut f = frame(v6, proto, &inet_segment(v6, proto, &payload, true));
            let full = frame(v6, proto, &inet_segment(v6, proto, &payload, false));
            let m = meta(&f);
            let changed = f != full;
            // Finished, and counted, exactly when the field changed: one
            // partial checksum in 65 536 already is the complete one.
            prop_assert_eq!(complete_partial(&mut f, &m).completed(), changed);
            prop_assert_eq!(f, full);
        }

        /// Never panics on arbitrary frames, and finishing twice is
        /// finishing once.
        #[test]
        fn idempotent_on_arbitrary_frames(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut f = bytes;
            if let Ok(Parsed::Ip(m)) = parse_frame(&f) {
                complete_partial(&mut f, &m);
                let once = f.clone();
                complete_partial(&mut f, &m);
                prop_assert_eq!(f, once);
            }
        }
    }
}
