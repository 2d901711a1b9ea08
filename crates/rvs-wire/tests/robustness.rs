//! (1) No input makes the parser, the views or the rewrites panic.

mod common;

use std::net::IpAddr;

use common::*;
use proptest::prelude::*;
use rvs_wire::{
    EthernetAddress, FlowMeta, IcmpInfo, Parsed, decrement_ttl, dnat, encap_ipip, icmp_error_in,
    icmp_error_out, icmp_frag_needed, icmp_port_unreachable, parse_frame, set_macs, snat,
};

fn seeds() -> Vec<Vec<u8>> {
    let inner4 = tcp(
        None,
        v4(203, 0, 113, 9),
        v4(10, 1, 0, 5),
        5555,
        8080,
        b"hello",
    );
    let inner6 = udp(
        None,
        v6("2001:db8::9"),
        v6("2001:db8::5"),
        5555,
        8080,
        b"hello",
    );
    vec![
        tcp(None, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 1, 2, b"payload"),
        tcp(
            Some(9),
            v6("2001:db8::1"),
            v6("2001:db8::2"),
            1,
            2,
            b"payload",
        ),
        udp(None, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 1, 2, b"payload"),
        udp(Some(1), v6("2001:db8::1"), v6("2001:db8::2"), 1, 2, b""),
        icmp_echo(None, v4(10, 0, 0, 1), v4(10, 0, 0, 2), 1, 2, b"x"),
        icmp_error(
            None,
            v4(10, 1, 0, 5),
            v4(203, 0, 113, 9),
            3,
            3,
            [0; 4],
            ip_of(&inner4),
        ),
        icmp_error(
            Some(2),
            v6("2001:db8::5"),
            v6("2001:db8::9"),
            1,
            4,
            [0; 4],
            ip_of(&inner6),
        ),
    ]
}

/// Runs every rewrite on a copy of `frame` with `meta`; only panics matter.
fn exercise(frame: &[u8], meta: &FlowMeta) {
    let a4 = v4(192, 0, 2, 1);
    let a6 = v6("2001:db8::77");
    let mut out = [0u8; 700];
    for a in [a4, a6] {
        let mut f = frame.to_vec();
        let _ = dnat(&mut f, meta, a, 9);
        let _ = snat(&mut f, meta, a, 9);
        let _ = icmp_error_out(&mut f, meta, a, 9);
        let _ = icmp_error_in(&mut f, meta, a, 9);
        let _ = decrement_ttl(&mut f, meta);
        let _ = set_macs(&mut f, EthernetAddress([1; 6]), EthernetAddress([2; 6]));
        let _ = icmp_frag_needed(frame, meta, 1400, a, &mut out);
        let _ = icmp_port_unreachable(frame, meta, a, &mut out);
        let _ = icmp_frag_needed(frame, meta, 1400, a, &mut out[..60]);
        let mut buf = vec![0u8; 40];
        buf.extend_from_slice(frame);
        let _ = encap_ipip(&mut buf, 40, frame.len(), a, a, 1500, 64);
        let _ = encap_ipip(&mut buf, 10, frame.len(), a, a, 1500, 64);
    }
}

fn check_meta_invariants(frame: &[u8], m: &FlowMeta) {
    assert!(m.l3_offset <= m.l4_offset);
    assert!(m.l4_offset <= m.l3_offset + m.l3_len);
    assert!(m.l3_offset + m.l3_len <= frame.len());
    if let Some(i) = m.icmp {
        assert!(m.l4_offset + 8 <= i.inner_l3_offset);
        assert!(i.inner_l3_offset <= i.inner_l4_offset);
        assert!(i.inner_l4_offset <= m.l3_offset + m.l3_len);
    }
}

fn views(bytes: &[u8]) {
    use rvs_wire::*;
    if let Ok(p) = EthernetFrame::new_checked(bytes) {
        let _ = (
            p.dst_addr(),
            p.src_addr(),
            p.vlan_id(),
            p.payload_ethertype(),
            p.payload().len(),
        );
    }
    if let Ok(p) = ArpPacket::new_checked(bytes) {
        let _ = (
            p.sender_hardware_addr(),
            p.sender_protocol_addr(),
            p.target_hardware_addr(),
            p.target_protocol_addr(),
        );
        let _ = arp::Repr::parse(&p);
    }
    if let Ok(p) = Ipv4Packet::new_checked(bytes) {
        let _ = (
            p.options(),
            p.payload(),
            p.verify_checksum(),
            p.src_addr(),
            p.frag_offset(),
        );
    }
    if let Ok(p) = Ipv6Packet::new_checked(bytes) {
        let _ = (p.payload(), p.flow_label(), p.src_addr());
        let _ = ipv6::upper_layer(p.payload(), p.next_header());
    }
    let a = IpAddr::V4([1, 2, 3, 4].into());
    if let Ok(p) = TcpPacket::new_checked(bytes) {
        let _ = (p.options(), p.payload(), p.verify_checksum(&a, &a));
    }
    if let Ok(p) = UdpPacket::new_checked(bytes) {
        let _ = (p.payload(), p.verify_checksum(&a, &a));
    }
    if let Ok(p) = SctpPacket::new_checked(bytes) {
        let _ = p.verify_checksum();
    }
    if let Ok(p) = Icmpv4Packet::new_checked(bytes) {
        let _ = (p.data(), p.verify_checksum(), p.next_hop_mtu());
    }
    if let Ok(p) = Icmpv6Packet::new_checked(bytes) {
        let _ = (
            p.data(),
            p.verify_checksum(&"::1".parse().unwrap(), &"::2".parse().unwrap()),
        );
    }
}

fn arb_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IpAddr::V4(a.into())),
        any::<[u8; 16]>().prop_map(|a| IpAddr::V6(a.into())),
    ]
}

prop_compose! {
    fn arb_meta()(
        offs in any::<[u8; 6]>(),
        flags in any::<[bool; 6]>(),
        proto in prop_oneof![Just(1u8), Just(6), Just(17), Just(58), Just(132), any::<u8>()],
        inner_proto in prop_oneof![Just(1u8), Just(6), Just(17), Just(58), Just(132)],
        src in arb_addr(), dst in arb_addr(),
    ) -> FlowMeta {
        // Mostly small offsets, sometimes ones that overflow when added to.
        let o = |i: usize| if offs[i] >= 250 { usize::MAX - usize::from(offs[i] - 250) } else { usize::from(offs[i]) };
        FlowMeta {
            vlan: None,
            l3_offset: o(0),
            l4_offset: o(1),
            l3_len: o(2),
            af_v6: flags[0],
            proto,
            src,
            dst,
            sport: 1,
            dport: 2,
            tcp_flags: 0,
            ttl: 9,
            dont_fragment: flags[1],
            is_fragment: flags[2],
            has_ip_options: false,
            l4_present: flags[3],
            icmp: flags[4].then_some(IcmpInfo {
                icmp_type: 3,
                code: 3,
                inner_l3_offset: o(3),
                inner_l4_offset: o(4),
                inner_proto,
                inner_src: src,
                inner_dst: dst,
                inner_sport: 1,
                inner_dport: 2,
                inner_l4_present: flags[5],
            }),
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(Parsed::Ip(m)) = parse_frame(&bytes) {
            check_meta_invariants(&bytes, &m);
            exercise(&bytes, &m);
        }
        views(&bytes);
    }

    /// Mutations of valid frames reach deep into the parsers.
    #[test]
    fn mutated_frames_never_panic(
        seed in 0usize..7,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let mut f = seeds().swap_remove(seed);
        for (i, b) in edits {
            let at = i.index(f.len());
            f[at] = b;
        }
        if do_cut {
            let n = cut.index(f.len());
            f.truncate(n);
        }
        if let Ok(Parsed::Ip(m)) = parse_frame(&f) {
            check_meta_invariants(&f, &m);
            exercise(&f, &m);
        }
        views(&f);
        for n in [14usize, 18, 34, 54, 58] {
            if n <= f.len() {
                views(&f[n..]);
            }
        }
    }

    /// `parse_frame_into` (the engine's, in place) finds exactly what
    /// `parse_frame` finds, on mutated valid frames, whatever the FlowMeta
    /// it writes into held before.
    #[test]
    fn parse_in_place_agrees(
        seed in 0usize..7,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        before in arb_meta(),
    ) {
        let mut f = seeds().swap_remove(seed);
        for (i, b) in edits {
            let at = i.index(f.len());
            f[at] = b;
        }
        let mut m = before;
        let got = rvs_wire::parse_frame_into(&f, &mut m);
        match (parse_frame(&f), got) {
            (Ok(Parsed::Ip(want)), Ok(rvs_wire::Kind::Ip)) => prop_assert_eq!(want, m),
            (Ok(Parsed::Arp), Ok(rvs_wire::Kind::Arp))
            | (Ok(Parsed::Other), Ok(rvs_wire::Kind::Other)) => {}
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "parse_frame {:?}, parse_frame_into {:?}", a, b),
        }
    }

    /// Rewrites given a nonsensical FlowMeta fail cleanly.
    #[test]
    fn forged_meta_never_panics(seed in 0usize..7, m in arb_meta(), cut in 0usize..120) {
        let mut f = seeds().swap_remove(seed);
        f.truncate(cut.max(1));
        exercise(&f, &m);
    }
}
