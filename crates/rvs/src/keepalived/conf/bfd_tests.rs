// SPDX-License-Identifier: GPL-2.0-or-later
//! `bfd_instance` and `BFD_CHECK`: keepalived's defaults, ranges, and its
//! warnings (a bad value ignored, a bad instance or checker dropped).

use super::super::tests::parse;
use super::*;

fn one(body: &str) -> (Vec<BfdInstance>, Vec<String>) {
    let (c, w) = parse(&format!("bfd_instance b1 {{\n{body}\n}}\n")).unwrap();
    (c.bfd, w)
}

#[test]
fn defaults() {
    let (b, w) = one("neighbor_ip 10.0.0.2");
    assert!(w.is_empty(), "{w:?}");
    let b = &b[0];
    assert_eq!(b.name, "b1");
    assert_eq!(b.neighbor, "10.0.0.2".parse::<IpAddr>().unwrap());
    assert_eq!((b.min_rx, b.min_tx, b.idle_tx), (10_000, 10_000, 1_000_000));
    assert_eq!((b.mult, b.ttl, b.max_hops), (5, 255, 0));
    assert!(!b.passive && !b.multihop && b.source.is_none());
    assert_eq!(b.port(), 3784);
    // IPv6: 255 too (RFC 5881; keepalived's default is 64).
    let (b, _) = one("neighbour_ip fe80::2");
    assert_eq!(b[0].ttl, 255);
}

#[test]
fn every_keyword() {
    let (b, w) = one(
        "neighbor_ip 2001:db8::2\nsource_ip 2001:db8::1\nmin_rx 100\nmin_tx 50.5\n\
         idle_tx 2000\nmultiplier 3\npassive\nhoplimit 200\nmax_hops 2\nmultihop\n\
         weight 10 reverse\nchecker",
    );
    assert!(w.is_empty(), "{w:?}");
    let b = &b[0];
    assert_eq!(b.source, Some("2001:db8::1".parse().unwrap()));
    assert_eq!(
        (b.min_rx, b.min_tx, b.idle_tx),
        (100_000, 50_500, 2_000_000)
    );
    assert_eq!((b.mult, b.ttl, b.max_hops), (3, 200, 2));
    assert!(b.passive && b.multihop);
    assert_eq!(b.port(), 4784);
    let (b, _) = one("neighbor_ip 10.0.0.2\nmultihop no\nttl 1");
    assert!(!b[0].multihop);
    assert_eq!(b[0].ttl, 1);
}

#[test]
fn bad_values_are_ignored_with_a_warning() {
    let (b, w) = one(
        "neighbor_ip 10.0.0.2\nmin_rx 0\nmin_tx 1.2345\nidle_tx 999\nmultiplier 0\n\
         ttl 256\nmax_hops -2\nmultihop maybe\nsource_ip nowhere\nfrobnicate 1",
    );
    let b = &b[0];
    assert_eq!((b.min_rx, b.min_tx, b.idle_tx), (10_000, 10_000, 1_000_000));
    assert_eq!((b.mult, b.ttl, b.max_hops), (5, 255, 0));
    assert_eq!(b.source, None);
    let max = u32::MAX / 1000;
    assert_eq!(
        w,
        [
            format!("k.conf:3: Configuration error: BFD instance b1 min_rx value 0 is not valid (must be in range [1-{max}]), ignoring"),
            format!("k.conf:4: Configuration error: BFD instance b1 min_tx value 1.2345 is not valid (must be in range [1-{max}]), ignoring"),
            format!("k.conf:5: Configuration error: BFD instance b1 idle_tx value 999 is not valid (must be in range [1000-{max}]), ignoring"),
            "k.conf:6: Configuration error: BFD instance b1 multiplier value 0 is not valid (must be in range [1-255]), ignoring".into(),
            "k.conf:7: Configuration error: BFD instance b1 ttl/hoplimit value 256 is not valid (must be in range [1-255]), ignoring".into(),
            "k.conf:8: Configuration error: BFD instance b1 max_hops value -2 is not valid (must be in range [-1-255]), ignoring".into(),
            "k.conf:9: Configuration error: BFD instance b1 multihop setting not valid - maybe".into(),
            "k.conf:10: Configuration error: BFD instance b1 has malformed source address nowhere, ignoring".into(),
            "k.conf:11: Unknown keyword 'frobnicate'".into(),
        ]
    );
    // Above "max sensible": kept, with keepalived's warning.
    let (b, w) = one("neighbor_ip 10.0.0.2\nmin_rx 20000");
    assert_eq!(b[0].min_rx, 20_000_000);
    assert_eq!(
        w,
        [
            "k.conf:3: Configuration warning: BFD instance b1 min_rx value 20000 is larger than max sensible (10000)"
        ]
    );
    // max_hops above ttl is brought down to it.
    let (b, w) = one("neighbor_ip 10.0.0.2\nttl 10\nmax_hops 20");
    assert_eq!(b[0].max_hops, 10);
    assert_eq!(
        w,
        ["k.conf:1: BFD instance b1: max_hops exceeds ttl/hoplimit - setting to ttl/hoplimit"]
    );
    // A value that is not one word still refuses the file, as every
    // keyword's does in rvs.
    assert!(parse("bfd_instance b1 {\nneighbor_ip 10.0.0.2\nmin_rx\n}\n").is_err());
}

#[test]
fn bad_instances_are_dropped() {
    let cases = [
        (
            "bfd_instance b1 {\nmin_rx 10\n}\n",
            "k.conf:1: Configuration error: BFD instance b1 has no neighbor address set, disabling instance",
        ),
        (
            "bfd_instance b1 {\nneighbour_ip 10.0.0.300\n}\n",
            "k.conf:2: Configuration error: BFD instance b1 has malformed neighbour address 10.0.0.300, ignoring instance",
        ),
        (
            "bfd_instance b1 {\nneighbor_ip 10.0.0.2\nsource_ip ::1\n}\n",
            "k.conf:1: Configuration error: BFD instance b1 source address ::1 and neighbor address 10.0.0.2 are not of the same family, disabling instance",
        ),
        (
            "bfd_instance a_name_that_is_far_too_long_for_bfd {\nneighbor_ip 10.0.0.2\n}\n",
            "k.conf:1: Configuration error: BFD instance a_name_that_is_far_too_long_for_bfd name too long (maximum length is 31 characters) - ignoring",
        ),
    ];
    for (text, warning) in cases {
        let (c, w) = parse(text).unwrap();
        assert!(c.bfd.is_empty(), "{text}");
        assert_eq!(w, [warning], "{text}");
    }
    let (c, w) = parse(
        "bfd_instance b1 {\nneighbor_ip 10.0.0.2\n}\nbfd_instance b1 {\nneighbor_ip 10.0.0.3\n}\n\
         bfd_instance b2 {\nneighbor_ip 10.0.0.2\n}\nbfd_instance b3 {\nneighbor_ip 10.0.0.2\nmultihop\n}\n",
    )
    .unwrap();
    assert_eq!(
        c.bfd.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
        ["b1", "b3"]
    );
    assert_eq!(
        w,
        [
            "k.conf:4: Configuration error: BFD instance b1 already configured - ignoring",
            "k.conf:7: Configuration error: BFD instance b2 has duplicate neighbor address 10.0.0.2, ignoring instance",
        ]
    );
    // A dropped instance leaves its name to a later one.
    let (c, w) =
        parse("bfd_instance b1 {\nmin_rx 10\n}\nbfd_instance b1 {\nneighbor_ip 10.0.0.2\n}\n")
            .unwrap();
    assert_eq!(c.bfd.len(), 1);
    assert_eq!(w.len(), 1, "{w:?}");
    // For keepalived's VRRP process only: no session here.
    let (c, w) = parse("bfd_instance b1 {\nneighbor_ip 10.0.0.2\nvrrp\n}\n").unwrap();
    assert!(c.bfd.is_empty() && w.is_empty());
}

const VS: &str = "bfd_instance b1 {\nneighbor_ip 10.0.0.2\n}\nbfd_instance b2 {\nneighbor_ip 10.0.0.3\n}\n\
                  virtual_server 10.0.0.1 80 {\nreal_server 10.0.0.2 80 {\n";

fn checks(body: &str) -> (Vec<Checker>, Vec<String>) {
    let (mut c, w) = parse(&format!("{VS}{body}\n}}\n}}\n")).unwrap();
    (std::mem::take(&mut c.services[0].reals[0].checkers), w)
}

#[test]
fn bfd_check() {
    let (cks, w) = checks("BFD_CHECK {\nname b1\n}\nBFD_CHECK {\nname b2\nalpha\n}");
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(cks.len(), 2);
    assert_eq!(cks[0].kind, CheckKind::Bfd { name: "b1".into() });
    assert!(!cks[0].alpha && cks[1].alpha);
    assert_eq!(cks[0].pos.line, 9);
    // Defined after the virtual server: found too.
    let (c, w) = parse(
        "virtual_server 10.0.0.1 80 {\nreal_server 10.0.0.2 80 {\nBFD_CHECK { name b9 }\n}\n}\n\
         bfd_instance b9 {\nneighbor_ip 10.0.0.2\n}\n",
    )
    .unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.services[0].reals[0].checkers.len(), 1);
}

#[test]
fn bad_bfd_checks_are_dropped() {
    let cases = [
        (
            "BFD_CHECK { name nope }",
            "k.conf:9: (10.0.0.2:80) BFD_CHECK - BFD nope not configured - skipping checker",
        ),
        (
            "BFD_CHECK { name }",
            "k.conf:9: (10.0.0.2:80) BFD_CHECK - No or too many names specified - skipping checker",
        ),
        (
            "BFD_CHECK { name b1 b2 }",
            "k.conf:9: (10.0.0.2:80) BFD_CHECK - No or too many names specified - skipping checker",
        ),
        (
            "BFD_CHECK {\nname b1\nname b2\n}",
            "k.conf:9: (10.0.0.2:80) BFD_CHECK - BFD b2 already specified as b1",
        ),
        (
            "BFD_CHECK { alpha }",
            "k.conf:9: (10.0.0.2:80) No name has been specified for BFD_CHECKER - skipping",
        ),
        (
            "BFD_CHECK { name b1 }\nBFD_CHECK { name b1 }",
            "k.conf:10: (10.0.0.2:80) BFD_CHECK - RS already monitoring b1",
        ),
    ];
    for (body, warning) in cases {
        let (cks, w) = checks(body);
        assert_eq!(w, [warning], "{body}");
        assert!(cks.len() <= 1, "{body}");
        assert!(!body.contains("b1 }\nBFD") || cks.len() == 1);
    }
    // keepalived's BFD_CHECK has no weight: an unknown keyword; a bad
    // alpha is ignored with its line.
    let (cks, w) = checks("BFD_CHECK {\nname b1\nweight 3\nalpha maybe\n}");
    assert_eq!(cks.len(), 1);
    assert_eq!(
        w,
        [
            "k.conf:11: Unknown keyword 'weight'",
            "k.conf:12: Invalid alpha parameter maybe"
        ]
    );
}
