// SPDX-License-Identifier: GPL-2.0-or-later
//! The checkers' tests: SSL_GET, DNS_CHECK, SMTP_CHECK, UDP_CHECK,
//! PING_CHECK, FILE_CHECK and `track_file`, HTTP_GET's regex options.

use super::tests::{ip, parse};
use super::*;

#[test]
fn ssl_dns_smtp_udp_ping_checkers() {
    let (c, w) = parse(
        "virtual_server 10.0.0.1 443 {\n  delay_loop 3\n  real_server 10.0.0.2 443 {\n    \
         SSL_GET {\n      url { path /h }\n      virtualhost www.example.com\n      \
         enable_sni\n      connect_port 8443\n      bindto 10.0.0.9\n      bind_port 999\n      \
         fwmark 7\n      connect_timeout 2\n    }\n    \
         DNS_CHECK {\n      type aaaa\n      name example.com.\n      connect_ip 10.0.0.3\n    }\n    \
         DNS_CHECK {\n    }\n    \
         SMTP_CHECK {\n      helo_name me.example\n      connect_port 25\n      \
         host {\n        connect_ip 10.0.0.4\n        connect_timeout 4\n      }\n      \
         host {\n        connect_ip 10.0.0.5\n        connect_port 587\n      }\n    }\n    \
         SMTP_CHECK {\n    }\n    \
         UDP_CHECK {\n      payload 1 02ab\n      require_reply 0304 5x\n      \
         min_reply_length 2\n      max_reply_length 9\n    }\n    \
         UDP_CHECK {\n      require_reply\n    }\n    \
         PING_CHECK {\n      connect_ip 10.0.0.6\n      retry 5\n    }\n  }\n}\n",
    )
    .unwrap();
    assert_eq!(
        w,
        [
            "k.conf:24: The SMTP_CHECK host block is deprecated. Please define additional checkers.",
            "k.conf:28: The SMTP_CHECK host block is deprecated. Please define additional checkers.",
        ]
    );
    let ck = &c.services[0].reals[0].checkers;
    assert_eq!(ck.len(), 9);
    let CheckKind::Http {
        tls,
        sni,
        virtualhost,
        ..
    } = &ck[0].kind
    else {
        panic!("{:?}", ck[0])
    };
    assert!(*tls && *sni);
    assert_eq!(virtualhost.as_deref(), Some("www.example.com"));
    assert_eq!(ck[0].connect_port, 8443);
    assert_eq!(ck[0].bindto, Some(ip("10.0.0.9")));
    assert_eq!(ck[0].bind_port, Some(999));
    assert_eq!(ck[0].fwmark, Some(7));
    assert_eq!(ck[0].timing.connect_timeout, Duration::from_secs(2));
    assert_eq!(
        ck[1].kind,
        CheckKind::Dns {
            qtype: 28,
            name: "example.com.".into()
        }
    );
    assert_eq!(ck[1].connect_ip, ip("10.0.0.3"));
    assert_eq!(
        ck[1].timing.retry, 3,
        "DNS_CHECK retries 3 times by default"
    );
    assert_eq!(
        ck[1].timing.delay_before_retry,
        Duration::from_secs(3),
        "DNS_CHECK retries after delay_loop by default"
    );
    assert_eq!(
        ck[2].kind,
        CheckKind::Dns {
            qtype: 6,
            name: ".".into()
        },
        "SOA of the root by default"
    );
    assert_eq!(ck[2].connect_ip, ip("10.0.0.2"));
    // SMTP: one checker per host, options from the checker's own.
    let helo = CheckKind::Smtp {
        helo: "me.example".into(),
    };
    assert_eq!(
        (&ck[3].kind, ck[3].connect_ip, ck[3].connect_port),
        (&helo, ip("10.0.0.4"), 25)
    );
    assert_eq!(ck[3].timing.connect_timeout, Duration::from_secs(4));
    assert_eq!(
        (&ck[4].kind, ck[4].connect_ip, ck[4].connect_port),
        (&helo, ip("10.0.0.5"), 587)
    );
    assert_eq!(ck[4].timing.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    assert_eq!(
        ck[5].kind,
        CheckKind::Smtp {
            helo: SMTP_DEFAULT_HELO.into()
        }
    );
    assert_eq!(
        (ck[5].connect_ip, ck[5].connect_port),
        (ip("10.0.0.2"), 443)
    );
    assert_eq!(
        ck[6].kind,
        CheckKind::Udp {
            payload: vec![1, 2, 0xab],
            require_reply: Some(vec![3, 4, 0x50]),
            reply_mask: vec![0, 0, 0x0f],
            min_len: 2,
            max_len: 9
        }
    );
    assert_eq!(
        ck[7].kind,
        CheckKind::Udp {
            payload: vec![],
            require_reply: Some(vec![]),
            reply_mask: vec![],
            min_len: 0,
            max_len: 255
        }
    );
    assert_eq!(ck[8].kind, CheckKind::Ping);
    assert_eq!(ck[8].connect_ip, ip("10.0.0.6"));
    assert_eq!(ck[8].timing.retry, 5);

    let e = |t: &str| parse(t).unwrap_err().to_string();
    let one = |body: &str| {
        format!("virtual_server 10.0.0.1 53 {{\n real_server 10.0.0.2 53 {{\n  {body}\n }}\n}}\n")
    };
    let (c, w) = parse(&one("DNS_CHECK {\n type PTR\n name a..b\n }")).unwrap();
    assert_eq!(
        w,
        [
            "k.conf:4: Unknown DNS check type PTR - ignoring (A NS CNAME SOA MX TXT AAAA)",
            "k.conf:5: DNS_CHECK name 'a..b' has an empty or over-long label - ignoring"
        ]
    );
    assert_eq!(
        c.services[0].reals[0].checkers[0].kind,
        CheckKind::Dns {
            qtype: 6,
            name: ".".into()
        }
    );
    assert_eq!(
        e(&one("UDP_CHECK { payload 0g }")),
        "k.conf:3: invalid hex string for 'payload'"
    );
    assert_eq!(
        e(&one("UDP_CHECK { payload 0x }")),
        "k.conf:3: invalid hex string for 'payload'"
    );
    let (_, w) = parse(&one(
        "UDP_CHECK {\n min_reply_length 9\n max_reply_length 2\n }",
    ))
    .unwrap();
    assert!(w[0].contains("will always fail"), "{w:?}");
}

#[test]
fn file_check_and_track_file() {
    let text = "virtual_server 10.0.0.1 80 {\n\
         real_server 10.0.0.2 80 {\n\
          FILE_CHECK { track_file up }\n\
          FILE_CHECK {\n track_file up\n weight -3 reverse\n }\n\
          FILE_CHECK { track_file drain }\n\
         }\n}\n\
         track_file up {\n file /run/up\n init_file 5 overwrite\n}\n\
         vrrp_track_file drain {\n file /run/drain\n weight 0 reverse\n init_file\n}\n";
    let (c, w) = parse(text).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let cks = &c.services[0].reals[0].checkers;
    let f = |i: usize| match &cks[i].kind {
        CheckKind::File(f) => f.clone(),
        k => panic!("{k:?}"),
    };
    // Defined after its use; the track_file's weight (default 1).
    assert_eq!(
        f(0),
        FileCheck {
            name: "up".into(),
            path: "/run/up".into(),
            weight: 1,
            reverse: false,
            init: Some((5, true)),
        }
    );
    assert_eq!((f(1).weight, f(1).reverse), (-3, true));
    assert_eq!(
        (f(2).weight, f(2).reverse, f(2).init),
        (0, true, Some((0, false)))
    );
    assert_eq!(cks[0].timing.delay_loop, FILE_POLL);
    assert_eq!((cks[0].timing.retry, cks[0].alpha), (0, false));
    assert_eq!(cks[1].pos.line, 4);
    // An out-of-range init value is kept, with keepalived's warning.
    let (_, w) = parse("track_file t {\n file /x\n init_file 300\n}\n").unwrap();
    assert_eq!(
        w,
        ["k.conf:3: track_file init value 300 is outside the sensible range [-254, 254]"]
    );
}

#[test]
fn file_check_errors_name_file_and_line() {
    let e = |t: &str| parse(t).unwrap_err().to_string();
    let vs = |body: &str| {
        format!(
            "track_file t {{\n file /x\n}}\nvirtual_server 10.0.0.1 80 {{\n real_server 10.0.0.2 80 {{\n{body}\n }}\n}}\n"
        )
    };
    assert_eq!(
        e(&vs("  FILE_CHECK {\n   track_file nope\n  }")),
        "k.conf:7: track_file 'nope' is not defined"
    );
    assert_eq!(
        e(&vs("  FILE_CHECK {\n  }")),
        "k.conf:6: FILE_CHECK needs a track_file"
    );
    assert_eq!(
        e(&vs(
            "  FILE_CHECK {\n   track_file t\n   weight 2 sideways\n  }"
        )),
        "k.conf:8: 'weight': unknown option 'sideways' (reverse)"
    );
    assert_eq!(
        e(&vs("  FILE_CHECK {\n   track_file t\n   weight x\n  }")),
        "k.conf:8: 'weight': invalid number 'x' (expected -2147483647..=2147483647)"
    );
    assert_eq!(
        e("track_file t {\n weight 300\n file /x\n}\n"),
        "k.conf:2: 'weight': invalid number '300' (expected -254..=254)"
    );
    assert_eq!(
        e("track_file t {\n weight 1\n}\n"),
        "k.conf:1: track_file needs a 'file'"
    );
    assert_eq!(
        e("track_file t {\n file /x\n file /y\n}\n"),
        "k.conf:3: track_file: 'file' is set twice"
    );
    assert_eq!(
        e("track_file t {\n file /x\n init_file abc\n}\n"),
        "k.conf:3: init_file: invalid value 'abc'"
    );
    assert_eq!(
        e("track_file t {\n file /x\n}\ntrack_file t {\n file /y\n}\n"),
        "k.conf:4: track_file 't' is defined twice"
    );
}

#[test]
fn file_check_semantics() {
    let fc = |weight, reverse| FileCheck {
        name: "t".into(),
        path: "/x".into(),
        weight,
        reverse,
        init: None,
    };
    // Weight 0: non-zero is down; reverse: zero is down. No weight change.
    assert_eq!(fc(0, false).status(0), Some(0));
    assert_eq!(fc(0, false).status(1), None);
    assert_eq!(fc(0, false).status(-7), None);
    assert_eq!(fc(0, true).status(0), None);
    assert_eq!(fc(0, true).status(3), Some(0));
    // Otherwise value * weight (negated with reverse) is added...
    assert_eq!(fc(1, false).status(0), Some(0));
    assert_eq!(fc(1, false).status(5), Some(5));
    assert_eq!(fc(-2, false).status(5), Some(-10));
    assert_eq!(fc(2, true).status(5), Some(-10));
    assert_eq!(fc(2, true).status(-5), Some(10));
    // ... unless it reaches -2^31: down.
    assert_eq!(fc(1, false).status(-2147483648), None);
    assert_eq!(fc(1, false).status(-2147483647), Some(-2147483647));
    assert_eq!(fc(254, false).status(-10_000_000), None);
    assert_eq!(fc(254, false).status(10_000_000), Some(i64::from(i32::MAX)));
    // strtol(…, 0): blanks, sign, hex, octal, trailing text.
    assert_eq!(track_value(b""), Some(0));
    assert_eq!(track_value(b"junk"), Some(0));
    assert_eq!(track_value(b"  42\n"), Some(42));
    assert_eq!(track_value(b"-3 down"), Some(-3));
    assert_eq!(track_value(b"+7"), Some(7));
    assert_eq!(track_value(b"0x1F"), Some(31));
    assert_eq!(track_value(b"010"), Some(8));
    assert_eq!(track_value(b"0x"), Some(0));
    assert_eq!(track_value(b"09"), Some(0));
    assert_eq!(track_value(b"2147483648"), Some(2147483648));
    assert_eq!(track_value(b"2147483649"), None);
    assert_eq!(track_value(b"-2147483649"), None);
    assert_eq!(track_value(b"99999999999999999999999"), None);
}

/// The url's regex options and offsets, as keepalived reads them: the
/// options rvs applies set, the ones that change nothing taken, the rest
/// warned about; offsets without a regex, or min past max, warned about
/// and dropped; a bad pattern refused at its line.
#[test]
fn regex_options_and_offsets() {
    let web = |url: &str| {
        format!(
            "virtual_server 10.0.0.1 80 {{\n real_server 10.0.0.2 80 {{\n  HTTP_GET {{\n   \
             url {{\n    path /\n{url}   }}\n  }}\n }}\n}}\n"
        )
    };
    let url_of = |c: &Config| {
        let CheckKind::Http { urls, .. } = &c.services[0].reals[0].checkers[0].kind else {
            panic!("an HTTP_GET")
        };
        urls[0].clone()
    };
    let (c, w) = parse(&web(
        "    regex ^ok$\n    regex_options caseless multiline dotall extended ungreedy utf \
         firstline dollar_endonly no_start_optimize alt_bsux allow_empty_class alt_circumflex \
         alt_verbnames bogus\n    regex_stack 4096 65536\n    \
         regex_min_offset 2\n    regex_max_offset 10\n",
    ))
    .unwrap();
    assert_eq!(
        w,
        [
            "k.conf:7: regex option 'alt_verbnames' is not supported by rvs; ignored",
            "k.conf:7: unknown regex option 'bogus' - ignoring",
        ]
    );
    assert_eq!(
        url_of(&c).regex_options,
        RegexOptions {
            caseless: true,
            multiline: true,
            dotall: true,
            extended: true,
            ungreedy: true,
            unicode: true,
            firstline: true,
            dollar_endonly: true,
            alt_bsux: true,
            allow_empty_class: true,
            match_unset_backref: false,
            min_offset: 2,
            max_offset: Some(10),
        }
    );
    // min past max: both dropped.
    let (c, w) = parse(&web(
        "    regex ok\n    regex_min_offset 9\n    regex_max_offset 3\n",
    ))
    .unwrap();
    assert_eq!(
        w,
        ["k.conf:4: regex_min_offset 9 > regex_max_offset 3 - ignoring both"]
    );
    assert_eq!(url_of(&c).regex_options, RegexOptions::default());
    // Options without a regex.
    let (c, w) = parse(&web("    regex_options caseless\n")).unwrap();
    assert_eq!(
        w,
        ["k.conf:6: regex parameters specified without regex - ignoring"]
    );
    assert_eq!(url_of(&c).regex_options, RegexOptions::default());
    // Errors: at their lines, nothing built.
    for (url, e) in [
        ("    regex (\n", "k.conf:6: invalid regex '('"),
        (
            "    regex_min_offset x\n",
            "k.conf:6: 'regex_min_offset': invalid number 'x'",
        ),
        (
            "    regex_stack 9\n",
            "k.conf:6: regex_stack needs a start and a max size",
        ),
        (
            "    regex_stack 9 8\n",
            "k.conf:6: regex_stack: the start exceeds the max",
        ),
    ] {
        let got = parse(&web(url)).unwrap_err().to_string();
        assert!(got.starts_with(e), "{url}: {got}");
    }
}

/// SSL_GET's sni_name and tls_compliant (its own and a url's), bind_if,
/// fast_recovery; what keepalived refuses or drops, warned about.
#[test]
fn ssl_get_sni_name_tls_compliant_bind_if_fast_recovery() {
    let (c, w) = parse(
        "virtual_server 10.0.0.1 443 {\n real_server 10.0.0.2 443 {\n  SSL_GET {\n   \
         url { path /a\n    tls_compliant\n   }\n   url { path /b }\n   enable_sni\n   \
         sni_name www.example.org\n   fast_recovery\n   bind_if eth0\n  }\n  \
         SSL_GET {\n   url { path /c }\n   tls_compliant\n  }\n  \
         HTTP_GET {\n   url { path /d\n    tls_compliant\n   }\n   \
         bind_if an-interface-name-too-long\n  }\n }\n}\n",
    )
    .unwrap();
    assert_eq!(
        w,
        [
            "k.conf:19: Unknown keyword 'tls_compliant'",
            "k.conf:21: Interface name an-interface-name-too-long is too long - ignoring",
        ]
    );
    let ck = &c.services[0].reals[0].checkers;
    let CheckKind::Http {
        sni,
        sni_name,
        tls_compliant,
        urls,
        ..
    } = &ck[0].kind
    else {
        panic!("{:?}", ck[0])
    };
    assert!(*sni && !*tls_compliant);
    assert_eq!(sni_name.as_deref(), Some("www.example.org"));
    assert!(urls[0].tls_compliant && !urls[1].tls_compliant);
    assert_eq!(ck[0].bind_if.as_deref(), Some("eth0"));
    assert!(matches!(
        &ck[1].kind,
        CheckKind::Http {
            tls_compliant: true,
            ..
        }
    ));
    assert_eq!(ck[2].bind_if, None);
    // A link-local target needs bind_if: without it the checker is
    // dropped (keepalived's check_conn_opts), with it kept.
    let ll = |opts: &str| {
        parse(&format!(
            "virtual_server 10.0.0.1 80 {{\n real_server 10.0.0.2 80 {{\n  TCP_CHECK {{\n   \
             connect_ip fe80::1\n{opts}  }}\n }}\n}}\n"
        ))
        .unwrap()
    };
    let (c, w) = ll("");
    assert!(c.services[0].reals[0].checkers.is_empty());
    assert_eq!(
        w,
        ["k.conf:3: Checker link local address fe80::1 requires a bind_if; the checker is ignored"]
    );
    let (c, w) = ll("   bind_if eth1\n");
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.services[0].reals[0].checkers.len(), 1);
}
