//! The classifier's decisions, frame by frame, through `BPF_PROG_TEST_RUN`.
//!
//! Needs root (CAP_BPF and CAP_NET_ADMIN) but no network changes: the kernel
//! runs the program as if the frame came in on `lo`, queue 0. No socket is
//! registered, so every frame is passed; the counters tell what the
//! classifier decided. Skipped (with a message) when not root.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_io::xdp::{ClassKey, ClassStats, Classifier, MAX_SERVICES, XDP_DROP, XDP_PASS, XdpError};

mod common;
use common::*;

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

const VIP4: [u8; 4] = [10, 0, 0, 1];
const VIP4_ANY: [u8; 4] = [10, 0, 0, 2];
const CLIENT4: [u8; 4] = [192, 0, 2, 7];
const RS4: [u8; 4] = [10, 1, 0, 5];
const RS4_ANY: [u8; 4] = [10, 1, 0, 6];
const VIP6: &str = "2001:db8::80";
const RS6: &str = "2001:db8:1::5";
const CLIENT6: &str = "2001:db8:2::7";

fn key(proto: u8, addr: impl Into<IpAddr>, port: u16) -> ClassKey {
    ClassKey {
        proto,
        addr: addr.into(),
        port,
    }
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// A classifier with the services and NAT sources every test uses, loaded
/// but attached nowhere.
fn classifier() -> Classifier {
    let mut c = Classifier::attach(&[]).expect("load classify.o");
    c.set_services(&[
        key(TCP, Ipv4Addr::from(VIP4), 80),
        key(UDP, Ipv4Addr::from(VIP4), 53),
        key(SCTP, Ipv4Addr::from(VIP4), 9),
        key(TCP, Ipv4Addr::from(VIP4_ANY), 0),
        key(TCP, v6(VIP6), 443),
    ])
    .unwrap();
    c.set_nat_sources(&[
        key(TCP, Ipv4Addr::from(RS4), 8080),
        key(UDP, Ipv4Addr::from(RS4_ANY), 0),
        key(TCP, v6(RS6), 8443),
    ])
    .unwrap();
    c
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Ours,
    Passed,
    Malformed,
    Fragment,
}

fn run(c: &Classifier, frame: &[u8]) -> Verdict {
    let before = c.stats().unwrap();
    let act = c.test_run(frame).unwrap();
    assert_eq!(act, XDP_PASS, "no socket is registered: everything passes");
    let after = c.stats().unwrap();
    let d = ClassStats {
        redirected: after.redirected - before.redirected,
        passed: after.passed - before.passed,
        no_socket: after.no_socket - before.no_socket,
        malformed: after.malformed - before.malformed,
        fragments: after.fragments - before.fragments,
        syns: after.syns - before.syns,
        syn_shed: after.syn_shed - before.syn_shed,
        fragments_claimed: after.fragments_claimed - before.fragments_claimed,
    };
    let v = match d {
        ClassStats { no_socket: 1, .. } => Verdict::Ours,
        ClassStats { passed: 1, .. } => Verdict::Passed,
        ClassStats { malformed: 1, .. } => Verdict::Malformed,
        ClassStats { fragments: 1, .. } => Verdict::Fragment,
        _ => panic!("counters moved oddly: {d:?}"),
    };
    let total = d.redirected + d.passed + d.no_socket + d.malformed + d.fragments;
    assert_eq!(total, 1, "one frame, one count: {d:?}");
    v
}

// ---- frame builders (checksums do not matter to the classifier) ----

fn icmp(ty: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let mut h = vec![ty, code, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(quoted);
    h
}

/// What an ICMP error quotes: the IP header and 8 bytes of payload.
fn quote(packet: &[u8], ip_header_len: usize) -> Vec<u8> {
    packet[..ip_header_len + 8].to_vec()
}

#[test]
fn services_v4() {
    if !privileged("BPF") {
        return;
    }
    let c = classifier();
    let tcp = |dst, dport| eth(ETH_IP, &[], &ipv4(CLIENT4, dst, TCP, &l4(40000, dport)));
    assert_eq!(run(&c, &tcp(VIP4, 80)), Verdict::Ours);
    assert_eq!(run(&c, &tcp(VIP4, 81)), Verdict::Passed, "other port");
    assert_eq!(
        run(&c, &tcp(VIP4, 22)),
        Verdict::Passed,
        "SSH to the director"
    );
    assert_eq!(
        run(&c, &tcp(VIP4_ANY, 22)),
        Verdict::Ours,
        "port-0 service owns every port"
    );
    assert_eq!(run(&c, &tcp(VIP4_ANY, 1)), Verdict::Ours);
    assert_eq!(run(&c, &tcp(CLIENT4, 80)), Verdict::Passed, "not a VIP");
    let udp = eth(ETH_IP, &[], &ipv4(CLIENT4, VIP4, UDP, &l4(5353, 53)));
    assert_eq!(run(&c, &udp), Verdict::Ours);
    let udp80 = eth(ETH_IP, &[], &ipv4(CLIENT4, VIP4, UDP, &l4(5353, 80)));
    assert_eq!(run(&c, &udp80), Verdict::Passed, "TCP service, UDP packet");
    let udp_any = eth(ETH_IP, &[], &ipv4(CLIENT4, VIP4_ANY, UDP, &l4(5353, 80)));
    assert_eq!(
        run(&c, &udp_any),
        Verdict::Passed,
        "port-0 TCP service, UDP packet"
    );
    let sctp = eth(ETH_IP, &[], &ipv4(CLIENT4, VIP4, SCTP, &l4(5000, 9)));
    assert_eq!(run(&c, &sctp), Verdict::Ours);
}

/// The SYN guard sheds only pure SYNs to what rvs claims, in the share set.
#[test]
fn syn_guard_sheds_pure_syns_only() {
    if !privileged("BPF") {
        return;
    }
    let mut c = classifier();
    let tcp = |dst, sport, dport, flags: u8| {
        let mut h = l4(sport, dport);
        h.resize(20, 0);
        h[12] = 5 << 4;
        h[13] = flags;
        eth(ETH_IP, &[], &ipv4(CLIENT4, dst, TCP, &h))
    };
    let (syn, syn_ack, ack) = (0x02, 0x12, 0x10);
    let count = |c: &Classifier| {
        let s = c.stats().unwrap();
        (s.syns, s.syn_shed)
    };
    // Off: a SYN is counted and goes on (here: no socket, so passed).
    let before = count(&c);
    assert_eq!(run(&c, &tcp(VIP4, 40000, 80, syn)), Verdict::Ours);
    assert_eq!(count(&c), (before.0 + 1, before.1));
    // Everything shed: a SYN to a service is dropped...
    c.set_syn_shed(1.0).unwrap();
    let before = count(&c);
    assert_eq!(c.test_run(&tcp(VIP4, 40000, 80, syn)).unwrap(), XDP_DROP);
    assert_eq!(count(&c), (before.0 + 1, before.1 + 1));
    // ...not a SYN-ACK of a NAT real server, an ACK, or a SYN not rvs's.
    let reply = eth(
        ETH_IP,
        &[],
        &ipv4(RS4, CLIENT4, TCP, &{
            let mut h = l4(8080, 40000);
            h.resize(20, 0);
            h[12] = 5 << 4;
            h[13] = syn_ack;
            h
        }),
    );
    assert_eq!(c.test_run(&reply).unwrap(), XDP_PASS);
    assert_eq!(c.test_run(&tcp(VIP4, 40000, 80, ack)).unwrap(), XDP_PASS);
    assert_eq!(c.test_run(&tcp(VIP4, 40000, 81, syn)).unwrap(), XDP_PASS);
    // Half: about half of many SYNs.
    c.set_syn_shed(0.5).unwrap();
    let before = count(&c);
    for i in 0..400u16 {
        let _ = c.test_run(&tcp(VIP4, 1024 + i, 80, syn)).unwrap();
    }
    let shed = count(&c).1 - before.1;
    assert!((120..=280).contains(&shed), "{shed} of 400 shed at 50%");
    c.set_syn_shed(0.0).unwrap();
    assert_eq!(c.test_run(&tcp(VIP4, 40000, 80, syn)).unwrap(), XDP_PASS);
}

#[test]
fn ip_options_vlan_and_other_ethertypes() {
    if !privileged("BPF") {
        return;
    }
    let c = classifier();
    let with_opts = ipv4_opts(CLIENT4, VIP4, TCP, 0, 10, &l4(40000, 80)); // IHL 15
    assert_eq!(run(&c, &eth(ETH_IP, &[], &with_opts)), Verdict::Ours);
    let plain = ipv4(CLIENT4, VIP4, TCP, &l4(40000, 80));
    assert_eq!(
        run(&c, &eth(ETH_IP, &[0x8100], &plain)),
        Verdict::Ours,
        "802.1Q"
    );
    assert_eq!(
        run(&c, &eth(ETH_IP, &[0x88a8], &plain)),
        Verdict::Ours,
        "802.1ad"
    );
    assert_eq!(
        run(&c, &eth(ETH_IP, &[0x88a8, 0x8100], &plain)),
        Verdict::Passed,
        "two tags are not looked into"
    );
    let arp = eth(0x0806, &[], &[0; 28]);
    assert_eq!(run(&c, &arp), Verdict::Passed);
    let ping = eth(
        ETH_IP,
        &[],
        &ipv4(CLIENT4, VIP4, ICMP, &icmp(8, 0, &[0; 8])),
    );
    assert_eq!(run(&c, &ping), Verdict::Passed, "echo request to a VIP");
    let gre = eth(ETH_IP, &[], &ipv4(CLIENT4, VIP4, 47, &[0; 8]));
    assert_eq!(run(&c, &gre), Verdict::Passed);
}

#[test]
fn fragments() {
    if !privileged("BPF") {
        return;
    }
    let c = classifier();
    let claimed = |frame: &[u8]| {
        let before = c.stats().unwrap().fragments_claimed;
        let v = run(&c, frame);
        let n = c.stats().unwrap().fragments_claimed - before;
        assert_eq!(n, u64::from(v == Verdict::Ours), "{v:?}");
        v
    };
    let frag =
        |src, dst, proto, fo, l4: &[u8]| eth(ETH_IP, &[], &ipv4_opts(src, dst, proto, fo, 0, l4));
    // To a virtual address of the same protocol: every fragment, by address.
    let first = frag(CLIENT4, VIP4, UDP, 0x2000, &l4(5353, 53)); // MF, offset 0
    assert_eq!(claimed(&first), Verdict::Ours);
    let middle = frag(CLIENT4, VIP4, UDP, 0x2000 | 185, &[0; 32]);
    assert_eq!(claimed(&middle), Verdict::Ours);
    let last = frag(CLIENT4, VIP4, UDP, 370, &[0; 32]);
    assert_eq!(claimed(&last), Verdict::Ours);
    let other_port = frag(CLIENT4, VIP4, UDP, 0x2000, &l4(5353, 54));
    assert_eq!(claimed(&other_port), Verdict::Ours, "by address: any port");
    let tcp = frag(CLIENT4, VIP4, TCP, 185, &[0; 32]);
    assert_eq!(claimed(&tcp), Verdict::Ours);
    // From a NAT real server (UDP, any port).
    let reply = frag(RS4_ANY, CLIENT4, UDP, 185, &[0; 32]);
    assert_eq!(claimed(&reply), Verdict::Ours);
    // Not ours: another address, a protocol the address has no service
    // of, a protocol rvs does not serve.
    let other = frag(CLIENT4, [10, 0, 0, 9], UDP, 0x2000 | 185, &[0; 32]);
    assert_eq!(claimed(&other), Verdict::Fragment);
    let no_udp = frag(CLIENT4, VIP4_ANY, UDP, 185, &[0; 32]);
    assert_eq!(claimed(&no_udp), Verdict::Fragment, "TCP-only address");
    let rs_tcp = frag(RS4_ANY, CLIENT4, TCP, 185, &[0; 32]);
    assert_eq!(claimed(&rs_tcp), Verdict::Fragment);
    let icmp_frag = frag(CLIENT4, VIP4, ICMP, 185, &[0; 32]);
    assert_eq!(claimed(&icmp_frag), Verdict::Fragment);
}

#[test]
fn nat_replies() {
    if !privileged("BPF") {
        return;
    }
    let c = classifier();
    let reply = |src, sport| eth(ETH_IP, &[], &ipv4(src, CLIENT4, TCP, &l4(sport, 40000)));
    assert_eq!(run(&c, &reply(RS4, 8080)), Verdict::Ours);
    assert_eq!(
        run(&c, &reply(RS4, 22)),
        Verdict::Passed,
        "the real server's SSH"
    );
    let udp_any = eth(ETH_IP, &[], &ipv4(RS4_ANY, CLIENT4, UDP, &l4(1234, 40000)));
    assert_eq!(run(&c, &udp_any), Verdict::Ours, "port-0 NAT source");
    let tcp_any = eth(ETH_IP, &[], &ipv4(RS4_ANY, CLIENT4, TCP, &l4(1234, 40000)));
    assert_eq!(run(&c, &tcp_any), Verdict::Passed);
    let r6 = eth(ETH_IP6, &[], &ipv6(RS6, CLIENT6, TCP, &l4(8443, 40000)));
    assert_eq!(run(&c, &r6), Verdict::Ours);
}

#[test]
fn services_v6() {
    if !privileged("BPF") {
        return;
    }
    let c = classifier();
    let tcp = |dst, dport| eth(ETH_IP6, &[], &ipv6(CLIENT6, dst, TCP, &l4(40000, dport)));
    assert_eq!(run(&c, &tcp(VIP6, 443)), Verdict::Ours);
    assert_eq!(run(&c, &tcp(VIP6, 80)), Verdict::Passed);
    // Hop-by-hop options before TCP: extension headers are not walked.
    let mut hbh = vec![TCP, 0, 1, 4, 0, 0, 0, 0];
    hbh.extend_from_slice(&l4(40000, 443));
    let f = eth(ETH_IP6, &[], &ipv6(CLIENT6, VIP6, 0, &hbh));
    assert_eq!(run(&c, &f), Verdict::Passed);
    // Neighbour solicitation for the VIP.
    let ns = eth(
        ETH_IP6,
        &[],
        &ipv6(CLIENT6, "ff02::1:ff00:80", ICMPV6, &icmp(135, 0, &[0; 16])),
    );
    assert_eq!(run(&c, &ns), Verdict::Passed);
}

#[test]
fn v4_service_does_not_match_v6_with_same_words() {
    if !privileged("BPF") {
        return;
    }
    let mut c = classifier();
    c.set_services(&[key(TCP, Ipv4Addr::new(32, 1, 13, 184), 80)])
        .unwrap();
    let f4 = eth(
        ETH_IP,
        &[],
        &ipv4(CLIENT4, [32, 1, 13, 184], TCP, &l4(1, 80)),
    );
    assert_eq!(run(&c, &f4), Verdict::Ours);
    let f6 = eth(ETH_IP6, &[], &ipv6(CLIENT6, "2001:db8::", TCP, &l4(1, 80)));
    assert_eq!(run(&c, &f6), Verdict::Passed);
}

#[test]
fn icmp_errors_v4() {
    if !privileged("BPF") {
        return;
    }
    let c = classifier();
    // Director -> real server (NAT, after DNAT): a router or the server
    // reports it back towards the client, through the director.
    let to_rs = ipv4(CLIENT4, RS4, TCP, &l4(40000, 8080));
    let unreach = |quoted: &[u8], dst| {
        eth(
            ETH_IP,
            &[],
            &ipv4([10, 1, 0, 254], dst, ICMP, &icmp(3, 1, quoted)),
        )
    };
    assert_eq!(
        run(&c, &unreach(&quote(&to_rs, 20), CLIENT4)),
        Verdict::Ours
    );
    for ty in [4, 11, 12] {
        let f = eth(
            ETH_IP,
            &[],
            &ipv4(
                [10, 1, 0, 254],
                CLIENT4,
                ICMP,
                &icmp(ty, 0, &quote(&to_rs, 20)),
            ),
        );
        assert_eq!(run(&c, &f), Verdict::Ours, "ICMP type {ty}");
    }
    // VIP -> client (a NAT reply after SNAT): errors come back to the VIP.
    let from_vip = ipv4(VIP4, CLIENT4, UDP, &l4(53, 5353));
    assert_eq!(
        run(&c, &unreach(&quote(&from_vip, 20), VIP4)),
        Verdict::Ours
    );
    let from_vip_any = ipv4(VIP4_ANY, CLIENT4, TCP, &l4(2222, 5353));
    assert_eq!(
        run(&c, &unreach(&quote(&from_vip_any, 20), VIP4_ANY)),
        Verdict::Ours
    );
    // A quoted header with options.
    let opts = ipv4_opts(VIP4, CLIENT4, UDP, 0, 3, &l4(53, 5353));
    assert_eq!(run(&c, &unreach(&quote(&opts, 32), VIP4)), Verdict::Ours);
    // The director's own traffic.
    let own = ipv4(VIP4, CLIENT4, TCP, &l4(22, 5353));
    assert_eq!(run(&c, &unreach(&quote(&own, 20), VIP4)), Verdict::Passed);
    // Not an error: an echo reply quoting nothing.
    let reply = eth(
        ETH_IP,
        &[],
        &ipv4(CLIENT4, VIP4, ICMP, &icmp(0, 0, &quote(&to_rs, 20))),
    );
    assert_eq!(run(&c, &reply), Verdict::Passed);
    // A quoted non-first fragment has no ports.
    let frag = ipv4_opts(CLIENT4, RS4, TCP, 100, 0, &l4(40000, 8080));
    assert_eq!(
        run(&c, &unreach(&quote(&frag, 20), CLIENT4)),
        Verdict::Passed
    );
    // Truncated quotes.
    assert_eq!(
        run(&c, &unreach(&to_rs[..20 + 2], CLIENT4)),
        Verdict::Malformed
    );
    assert_eq!(run(&c, &unreach(&to_rs[..12], CLIENT4)), Verdict::Malformed);
}

#[test]
fn icmp_errors_v6() {
    if !privileged("BPF") {
        return;
    }
    let c = classifier();
    let to_rs = ipv6(CLIENT6, RS6, TCP, &l4(40000, 8443));
    let err = |ty, quoted: &[u8], dst| {
        eth(
            ETH_IP6,
            &[],
            &ipv6("2001:db8:1::fe", dst, ICMPV6, &icmp(ty, 0, quoted)),
        )
    };
    for ty in 1..=4 {
        assert_eq!(
            run(&c, &err(ty, &quote(&to_rs, 40), CLIENT6)),
            Verdict::Ours,
            "type {ty}"
        );
    }
    let from_vip = ipv6(VIP6, CLIENT6, TCP, &l4(443, 40000));
    assert_eq!(
        run(&c, &err(2, &quote(&from_vip, 40), VIP6)),
        Verdict::Ours,
        "packet too big"
    );
    let own = ipv6(VIP6, CLIENT6, TCP, &l4(22, 40000));
    assert_eq!(run(&c, &err(1, &quote(&own, 40), VIP6)), Verdict::Passed);
    assert_eq!(
        run(&c, &err(128, &quote(&to_rs, 40), VIP6)),
        Verdict::Passed,
        "echo request"
    );
    assert_eq!(run(&c, &err(1, &to_rs[..42], CLIENT6)), Verdict::Malformed);
}

#[test]
fn malformed_frames_pass() {
    if !privileged("BPF") {
        return;
    }
    let c = classifier();
    let tcp = ipv4(CLIENT4, VIP4, TCP, &l4(40000, 80));
    // Ethernet header, then 10 bytes of an IPv4 header.
    assert_eq!(run(&c, &eth(ETH_IP, &[], &tcp[..10])), Verdict::Malformed);
    // Options announced (IHL 15) but absent.
    let mut bad_ihl = tcp.clone();
    bad_ihl[0] = 0x4f;
    assert_eq!(
        run(&c, &eth(ETH_IP, &[], &bad_ihl[..24])),
        Verdict::Malformed
    );
    // IHL below 5.
    bad_ihl[0] = 0x44;
    assert_eq!(run(&c, &eth(ETH_IP, &[], &bad_ihl)), Verdict::Malformed);
    // Version 6 in an IPv4 EtherType.
    let mut bad_ver = tcp.clone();
    bad_ver[0] = 0x65;
    assert_eq!(run(&c, &eth(ETH_IP, &[], &bad_ver)), Verdict::Malformed);
    // Two bytes of TCP header.
    assert_eq!(run(&c, &eth(ETH_IP, &[], &tcp[..22])), Verdict::Malformed);
    // A VLAN tag cut short.
    let mut short_vlan = eth(ETH_IP, &[0x8100], &[]);
    short_vlan.truncate(16);
    assert_eq!(run(&c, &short_vlan), Verdict::Malformed);
    // Half an IPv6 header.
    let t6 = ipv6(CLIENT6, VIP6, TCP, &l4(40000, 443));
    assert_eq!(run(&c, &eth(ETH_IP6, &[], &t6[..30])), Verdict::Malformed);
}

#[test]
fn set_services_replaces_the_set() {
    if !privileged("BPF") {
        return;
    }
    let mut c = classifier();
    let to = |port| eth(ETH_IP, &[], &ipv4(CLIENT4, VIP4, TCP, &l4(40000, port)));
    let a = key(TCP, Ipv4Addr::from(VIP4), 1000);
    let b = key(TCP, Ipv4Addr::from(VIP4), 1001);
    let cc = key(TCP, Ipv4Addr::from(VIP4), 1002);
    c.set_services(&[a, b]).unwrap();
    assert_eq!(
        run(&c, &to(80)),
        Verdict::Passed,
        "80 was in the previous set"
    );
    assert_eq!(run(&c, &to(1000)), Verdict::Ours);
    assert_eq!(run(&c, &to(1001)), Verdict::Ours);
    c.set_services(&[b, cc, b]).unwrap();
    assert_eq!(run(&c, &to(1000)), Verdict::Passed);
    assert_eq!(run(&c, &to(1001)), Verdict::Ours);
    assert_eq!(run(&c, &to(1002)), Verdict::Ours);
    c.set_services(&[]).unwrap();
    assert_eq!(run(&c, &to(1001)), Verdict::Passed);
    c.set_nat_sources(&[]).unwrap();
    let reply = eth(ETH_IP, &[], &ipv4(RS4, CLIENT4, TCP, &l4(8080, 40000)));
    assert_eq!(run(&c, &reply), Verdict::Passed);
}

#[test]
fn map_limits() {
    if !privileged("BPF") {
        return;
    }
    let mut c = classifier();
    // A full map, then a disjoint full map: stale keys must go first.
    let set = |base: u32| -> Vec<ClassKey> {
        (0..MAX_SERVICES as u32)
            .map(|i| key(UDP, Ipv4Addr::from(base + i), 53))
            .collect()
    };
    c.set_services(&set(0x0a00_0000)).unwrap();
    c.set_services(&set(0x0b00_0000)).unwrap();
    let f = eth(ETH_IP, &[], &ipv4(CLIENT4, [11, 0, 0, 7], UDP, &l4(1, 53)));
    assert_eq!(run(&c, &f), Verdict::Ours);
    let f = eth(ETH_IP, &[], &ipv4(CLIENT4, [10, 0, 0, 7], UDP, &l4(1, 53)));
    assert_eq!(run(&c, &f), Verdict::Passed);
    let mut too_many = set(0x0c00_0000);
    too_many.push(key(UDP, Ipv4Addr::LOCALHOST, 1));
    assert!(matches!(
        c.set_services(&too_many),
        Err(XdpError::TooMany { .. })
    ));

    // The xsks map takes AF_XDP sockets only, and has MAX_XSK_SLOTS slots.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    use std::os::fd::AsRawFd;
    assert!(c.xsk_map_set(0, udp.as_raw_fd()).is_err());
    c.xsk_map_unset(3).unwrap();
    assert!(c.xsk_map_unset(rvs_io::xdp::MAX_XSK_SLOTS).is_err());
    c.set_if_base(1, 0).unwrap();
    c.unset_if_base(1).unwrap();
    c.unset_if_base(1).unwrap();
}

/// A unicast frame addressed to another station than the interface (a
/// switch flooding it) is the kernel's to drop, not claimed: another
/// director's traffic would be forwarded twice. Broadcast, multicast and
/// VRRP virtual MACs (keepalived's use_vmac) are the host's; without the
/// interface's MAC nothing is checked.
#[test]
fn frames_for_other_stations_pass() {
    if !privileged("BPF") {
        return;
    }
    let mut c = classifier();
    let frame = |dst: [u8; 6]| {
        let mut f = eth(ETH_IP, &[], &ipv4(CLIENT4, VIP4, TCP, &l4(40000, 80)));
        f[..6].copy_from_slice(&dst);
        f
    };
    let ours = [0x02, 0, 0, 0, 0, 1];
    let other = [0x02, 0, 0, 0, 0, 9];
    assert_eq!(
        run(&c, &frame(other)),
        Verdict::Ours,
        "no MAC known: unchecked"
    );
    // test_run delivers the frame as if on `lo` (ifindex 1).
    c.set_if_mac(1, ours).unwrap();
    assert_eq!(run(&c, &frame(ours)), Verdict::Ours);
    assert_eq!(run(&c, &frame(other)), Verdict::Passed, "another station's");
    assert_eq!(run(&c, &frame([0xff; 6])), Verdict::Ours, "broadcast");
    assert_eq!(
        run(&c, &frame([0x01, 0, 0x5e, 0, 0, 1])),
        Verdict::Ours,
        "multicast"
    );
    assert_eq!(
        run(&c, &frame([0, 0, 0x5e, 0, 1, 51])),
        Verdict::Ours,
        "VRRP virtual MAC (IPv4)"
    );
    assert_eq!(
        run(&c, &frame([0, 0, 0x5e, 0, 2, 51])),
        Verdict::Ours,
        "VRRP virtual MAC (IPv6)"
    );
}
