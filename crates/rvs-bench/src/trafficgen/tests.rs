//! Unit tests of the generators' frames (nothing loaded).

use super::*;

#[test]
fn syn_frames_are_valid_syns() {
    let f = syn_frame(
        ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]),
        ([172, 16, 3, 4], 40000),
        ([10, 0, 1, 100], 80),
        0xdead_beef,
    );
    let rvs_wire::Parsed::Ip(m) = rvs_wire::parse_frame(&f).unwrap() else {
        panic!("not IP");
    };
    assert_eq!((m.proto, m.sport, m.dport), (6, 40000, 80));
    assert_eq!(rvs_wire::checksum::data(&f[14..34]), 0xffff, "IP checksum");
    let sum = rvs_wire::checksum::combine(&[
        rvs_wire::checksum::pseudo_header_v4(
            &Ipv4Addr::new(172, 16, 3, 4),
            &Ipv4Addr::new(10, 0, 1, 100),
            6,
            20,
        ),
        rvs_wire::checksum::data(&f[34..54]),
    ]);
    assert_eq!(sum, 0xffff, "TCP checksum");
    assert_eq!(f[34 + 13], 0x02, "SYN only");
}

fn flows() -> Flows {
    Flows {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        src_ip: [10, 9, 1, 1],
        dst_ip: [10, 9, 1, 100],
        dst_port: 9,
        sport_base: 10000,
        flows: 1024,
        csum: UdpCsum::Zero,
    }
}

/// The one's-complement sum of the pseudo-header and the UDP segment of
/// frame `f`, its checksum field included.
fn udp_sum(f: &[u8; FRAME_LEN]) -> u16 {
    let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    rvs_wire::checksum::combine(&[
        rvs_wire::checksum::pseudo_header_v4(&src, &dst, 17, u32::from(UDP_LEN)),
        rvs_wire::checksum::data(&f[34..]),
    ])
}

#[test]
fn full_checksums_verify_for_every_flow() {
    let mut fl = flows();
    fl.csum = UdpCsum::Full;
    for i in [0, 1, 2, 77, 1023] {
        let f = frame(&fl, i);
        assert_ne!(u16::from_be_bytes([f[40], f[41]]), 0);
        assert_eq!(udp_sum(&f), 0xffff, "flow {i}");
    }
    // The source port that makes the sum 0xffff without a checksum:
    // the checksum goes out as 0xffff, never as 0 ("none").
    let base = csum_base(&fl);
    let sport = !base;
    assert_eq!(full_csum(base, sport), 0xffff);
}

#[test]
fn partial_checksum_is_the_pseudo_header_sum_and_finishes_right() {
    let mut fl = flows();
    fl.csum = UdpCsum::Partial;
    let a = frame(&fl, 0);
    let b = frame(&fl, 500);
    let p = rvs_wire::checksum::pseudo_header_v4(
        &Ipv4Addr::from(fl.src_ip),
        &Ipv4Addr::from(fl.dst_ip),
        17,
        26,
    );
    assert_eq!(u16::from_be_bytes([a[40], a[41]]), p);
    assert_eq!(&a[40..42], &b[40..42], "the same for every flow");
    // Finished (as a device would: sum from the UDP header on, the
    // partial field included, inverted), it is the full checksum.
    let mut full = fl.clone();
    full.csum = UdpCsum::Full;
    let done = !rvs_wire::checksum::data(&b[34..]);
    assert_eq!(done.to_be_bytes(), frame(&full, 500)[40..42]);
}

#[test]
fn frame_is_udp_ipv4_with_a_valid_header_checksum() {
    let f = frame(&flows(), 3);
    assert_eq!(&f[12..14], &[0x08, 0x00]);
    assert_eq!(
        !rvs_wire::checksum::data(&f[14..34]),
        0,
        "header sums to 0xffff"
    );
    assert_eq!(u16::from_be_bytes([f[34], f[35]]), 10003);
    assert_eq!(u16::from_be_bytes([f[36], f[37]]), 9);
    assert_eq!(u16::from_be_bytes([f[38], f[39]]), 26);
    assert_eq!(u16::from_be_bytes([f[16], f[17]]), 46);
}

#[test]
fn the_checksum_ignores_the_ports() {
    // The program rewrites only the source port: the IPv4 header
    // checksum of the template holds for every flow.
    let a = frame(&flows(), 0);
    let b = frame(&flows(), 1023);
    assert_eq!(&a[14..34], &b[14..34]);
}

#[test]
fn too_many_flows_is_an_error_before_anything_is_loaded() {
    let mut f = flows();
    f.sport_base = 65000;
    f.flows = 1000;
    let e = Generator::load("lo", &f).unwrap_err().to_string();
    assert!(e.contains("do not fit"), "{e}");
    f.flows = 0;
    assert!(Generator::load("lo", &f).is_err());
}
