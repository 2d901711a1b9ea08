//! The classifier's fwmark-rule claims, frame by frame, through
//! `BPF_PROG_TEST_RUN`.
//!
//! Needs root (CAP_BPF) but no network changes: the kernel runs the program
//! as if the frame came in on `lo` (the ingress interface of `-i` rules),
//! queue 0. No socket is registered, so every frame is passed; the counters
//! tell what the classifier decided. Skipped (with a message) when not root.

use std::net::IpAddr;

use rvs_io::nft::FwmarkMatch;
use rvs_io::xdp::{ClassKey, ClassStats, Classifier, XDP_PASS, XdpError};

mod common;
use common::*;

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;
const ICMP: u8 = 1;

const VIP: [u8; 4] = [122, 161, 1, 100];
const CLIENT: [u8; 4] = [192, 0, 2, 7];
const VIP6: &str = "2001:db8::80";
const CLIENT6: &str = "2001:db8:2::7";
/// `lo`: the ingress interface of test runs.
const LO: u32 = 1;

fn rule(addr: &str, len: u8, proto: Option<u8>, dports: &[u16], iif: Option<u32>) -> FwmarkMatch {
    FwmarkMatch {
        addr: addr.parse().unwrap(),
        prefix_len: len,
        proto,
        dports: dports.to_vec(),
        iif,
    }
}

/// Whether the classifier claimed the frame (it is then passed only
/// because no socket is registered, and counted as `no_socket`).
fn claimed(c: &Classifier, frame: &[u8]) -> bool {
    let before = c.stats().unwrap();
    assert_eq!(c.test_run(frame).unwrap(), XDP_PASS);
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
    match d {
        ClassStats { no_socket: 1, .. } => true,
        ClassStats { passed: 1, .. } => false,
        _ => panic!("counters moved oddly: {d:?}"),
    }
}

fn v4(dst: [u8; 4], proto: u8, dport: u16) -> Vec<u8> {
    eth(ETH_IP, &[], &ipv4(CLIENT, dst, proto, &l4(40000, dport)))
}

fn v6(dst: &str, proto: u8, dport: u16) -> Vec<u8> {
    eth(ETH_IP6, &[], &ipv6(CLIENT6, dst, proto, &l4(40000, dport)))
}

/// The seed's PFWMC: ports 80 and 443 of one VIP marked for one service.
#[test]
fn pfwmc_ports_of_the_vip_and_nothing_else() {
    if !privileged("BPF") {
        return;
    }
    let mut c = Classifier::attach(&[]).expect("load classify.o");
    assert!(!claimed(&c, &v4(VIP, TCP, 80)), "no rule yet");
    c.set_fwmark_rules(&[rule("122.161.1.100", 32, Some(TCP), &[80, 443], None)])
        .unwrap();
    assert!(claimed(&c, &v4(VIP, TCP, 80)));
    assert!(claimed(&c, &v4(VIP, TCP, 443)));
    assert!(!claimed(&c, &v4(VIP, TCP, 22)), "SSH to the VIP stays");
    assert!(!claimed(&c, &v4(VIP, UDP, 443)), "other protocol");
    assert!(
        !claimed(&c, &v4([122, 161, 1, 101], TCP, 80)),
        "other address"
    );
    assert!(!claimed(&c, &v4(VIP, ICMP, 80)), "not TCP/UDP/SCTP");
    // Clearing the rules unclaims.
    c.set_fwmark_rules(&[]).unwrap();
    assert!(!claimed(&c, &v4(VIP, TCP, 80)));
}

#[test]
fn prefixes_protocols_and_every_port() {
    if !privileged("BPF") {
        return;
    }
    let mut c = Classifier::attach(&[]).expect("load classify.o");
    c.set_fwmark_rules(&[
        rule("10.0.0.0", 8, None, &[53], None),
        rule("10.1.0.0", 16, Some(SCTP), &[], None),
        rule("0.0.0.0", 0, Some(UDP), &[9999], None),
    ])
    .unwrap();
    // The /8 rule: every L4 protocol, port 53 only.
    for proto in [TCP, UDP, SCTP] {
        assert!(claimed(&c, &v4([10, 200, 0, 1], proto, 53)), "{proto}");
    }
    assert!(!claimed(&c, &v4([10, 200, 0, 1], TCP, 54)));
    // Inside the /16, the longest match still carries the /8's and /0's rules.
    assert!(claimed(&c, &v4([10, 1, 2, 3], SCTP, 1)));
    assert!(claimed(&c, &v4([10, 1, 2, 3], TCP, 53)));
    assert!(claimed(&c, &v4([10, 1, 2, 3], UDP, 9999)));
    assert!(!claimed(&c, &v4([10, 1, 2, 3], TCP, 9999)));
    // Prefix edges.
    assert!(claimed(&c, &v4([10, 1, 255, 255], SCTP, 7)));
    assert!(!claimed(&c, &v4([10, 2, 0, 0], SCTP, 7)));
    assert!(!claimed(&c, &v4([11, 0, 0, 0], TCP, 53)));
    assert!(claimed(&c, &v4([11, 0, 0, 0], UDP, 9999)), "the /0 rule");
    // Replacing the rules replaces the claims (stale prefixes go).
    c.set_fwmark_rules(&[rule("10.1.0.0", 16, Some(TCP), &[80], None)])
        .unwrap();
    assert!(!claimed(&c, &v4([10, 200, 0, 1], UDP, 53)));
    assert!(!claimed(&c, &v4([11, 0, 0, 0], UDP, 9999)));
    assert!(!claimed(&c, &v4([10, 1, 2, 3], SCTP, 1)));
    assert!(claimed(&c, &v4([10, 1, 2, 3], TCP, 80)));
}

#[test]
fn ipv6_rules() {
    if !privileged("BPF") {
        return;
    }
    let mut c = Classifier::attach(&[]).expect("load classify.o");
    c.set_fwmark_rules(&[
        rule("2001:db8::", 64, Some(TCP), &[443], None),
        rule("2001:db8::80", 128, Some(UDP), &[], None),
    ])
    .unwrap();
    assert!(claimed(&c, &v6(VIP6, TCP, 443)));
    assert!(claimed(&c, &v6("2001:db8::ffff", TCP, 443)));
    assert!(
        !claimed(&c, &v6("2001:db8:0:1::1", TCP, 443)),
        "outside the /64"
    );
    assert!(claimed(&c, &v6(VIP6, UDP, 1)), "the /128 rule, every port");
    assert!(!claimed(&c, &v6("2001:db8::81", UDP, 1)));
    assert!(!claimed(&c, &v6(VIP6, TCP, 80)));
    // IPv4 rules do not leak into IPv6 and back.
    assert!(!claimed(&c, &v4([32, 1, 13, 184], TCP, 443)));
}

#[test]
fn ingress_interface() {
    if !privileged("BPF") {
        return;
    }
    let mut c = Classifier::attach(&[]).expect("load classify.o");
    c.set_fwmark_rules(&[rule("122.161.1.100", 32, Some(TCP), &[80], Some(LO + 1000))])
        .unwrap();
    assert!(!claimed(&c, &v4(VIP, TCP, 80)), "another interface");
    c.set_fwmark_rules(&[rule("122.161.1.100", 32, Some(TCP), &[80], Some(LO))])
        .unwrap();
    assert!(claimed(&c, &v4(VIP, TCP, 80)), "lo");
}

#[test]
fn services_and_rules_together_and_limits() {
    if !privileged("BPF") {
        return;
    }
    let mut c = Classifier::attach(&[]).expect("load classify.o");
    c.set_services(&[ClassKey {
        proto: TCP,
        addr: IpAddr::from(VIP),
        port: 8080,
    }])
    .unwrap();
    c.set_fwmark_rules(&[rule("122.161.1.100", 32, Some(TCP), &[80], None)])
        .unwrap();
    assert!(claimed(&c, &v4(VIP, TCP, 8080)), "address service");
    assert!(claimed(&c, &v4(VIP, TCP, 80)), "fwmark rule");
    assert!(!claimed(&c, &v4(VIP, TCP, 81)));
    // Too many matchers for one prefix: refused, the claims stay as they were.
    let many: Vec<_> = (1..=9)
        .map(|i| rule("122.161.1.100", 32, Some(TCP), &[80], Some(i)))
        .collect();
    assert!(matches!(
        c.set_fwmark_rules(&many),
        Err(XdpError::FwmarkTooComplex { .. })
    ));
    assert!(claimed(&c, &v4(VIP, TCP, 80)));
}

/// IPv4 fragments are claimed by prefix: a matcher of their protocol (and
/// ingress interface) claims them whatever its ports (only the first
/// fragment has ports).
#[test]
fn fragments_by_prefix() {
    if !privileged("BPF") {
        return;
    }
    let mut c = Classifier::attach(&[]).expect("load classify.o");
    c.set_fwmark_rules(&[rule("10.0.0.0", 8, Some(UDP), &[53], None)])
        .unwrap();
    let frag = |dst: [u8; 4], proto: u8| {
        eth(
            ETH_IP,
            &[],
            &ipv4_opts(CLIENT, dst, proto, 0x2000 | 185, 0, &[0; 32]),
        )
    };
    let claimed_frag = |frame: &[u8]| {
        let before = c.stats().unwrap();
        assert_eq!(c.test_run(frame).unwrap(), XDP_PASS);
        let after = c.stats().unwrap();
        match (
            after.fragments_claimed - before.fragments_claimed,
            after.fragments - before.fragments,
        ) {
            (1, 0) => true,
            (0, 1) => false,
            d => panic!("counters moved oddly: {d:?}"),
        }
    };
    assert!(claimed_frag(&frag([10, 9, 8, 7], UDP)));
    assert!(!claimed_frag(&frag([10, 9, 8, 7], TCP)), "other protocol");
    assert!(
        !claimed_frag(&frag([11, 9, 8, 7], UDP)),
        "outside the prefix"
    );
}
