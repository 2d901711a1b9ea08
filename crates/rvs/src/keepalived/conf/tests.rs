// SPDX-License-Identifier: GPL-2.0-or-later
//! The parser's tests: whole files in, values or file:line errors out.

use super::*;
use rvs_proto::{SVC_F_SCHED1, SVC_F_SCHED2};
use std::net::Ipv4Addr;

pub(super) fn parse(text: &str) -> Result<(Config, Vec<String>), ConfError> {
    let mut w = Vec::new();
    let t = lex::parse_text(text, "k.conf", Path::new("/nonexistent"), &mut w)?;
    let c = build(&t, &mut w)?;
    Ok((c, w))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const FULL: &str = r#"
global_defs {
router_id LVS_TEST
notification_email { root@localhost }
script_user nobody
enable_script_security
}
vrrp_instance VI_1 {
state MASTER
virtual_ipaddress { 10.0.0.100 }
}
virtual_server 10.0.0.100 80 {
delay_loop 2
lvs_sched wrr
lvs_method DR
protocol TCP
persistence_timeout 120
persistence_granularity 255.255.255.0
retry 2
delay_before_retry 1.5
connect_timeout 3
inhibit_on_failure
alpha
omega
quorum 2
hysteresis 1
sorry_server 10.0.0.99 8080
sorry_server_inhibit
sorry_server_lvs_method NAT
quorum_up "/bin/echo up"
quorum_down /bin/false
virtualhost www.example.com
real_server 10.0.0.11 80 {
    weight 3
    uthreshold 100
    lthreshold 10
    notify_up "/bin/echo up"
    notify_down "/bin/echo down" root
    HTTP_GET {
        url {
            path /health
            digest 9B3A0C85A887A256D6939DA88AABD8CD
            status_code 200 301-302
            regex "^ok [0-9]+"
            regex_no_match
        }
        url { path /second }
        connect_ip 10.0.1.11
        connect_port 8080
        bindto 10.0.0.1
        connect_timeout 1
        nb_get_retry 4
        warmup 2
        http_protocol 1.1
    }
    TCP_CHECK {
        delay_before_retry 0.5
    }
}
real_server 10.0.0.12 {
    inhibit_on_failure false
    lvs_method NAT
    MISC_CHECK {
        misc_path "/bin/echo 10.0.0.12"
        misc_timeout 4
        misc_dynamic
    }
}
}
virtual_server fwmark 7 {
lb_algo sh sh-port sh-fallback
lb_kind TUN
protocol UDP
real_server 10.0.0.21 53 { TCP_CHECK { } }
}
"#;

#[test]
fn every_keyword() {
    let (c, w) = parse(FULL).unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.services.len(), 2);
    let vs = &c.services[0];
    assert_eq!(vs.addr, VsAddr::Addr(ip("10.0.0.100"), 80));
    assert_eq!(vs.pos.line, 12);
    assert_eq!(vs.sched, "wrr");
    assert_eq!(vs.fwd, Fwd::Route);
    assert_eq!(vs.proto, Proto::Tcp);
    assert_eq!(vs.persistence_timeout, Some(120));
    assert_eq!(
        vs.persistence_granularity,
        Some(u32::from(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert!(vs.alpha && vs.omega && vs.sorry_server_inhibit);
    assert_eq!((vs.quorum, vs.hysteresis), (2, 1));
    assert_eq!(vs.sorry_server, Some((ip("10.0.0.99"), 8080)));
    let sorry = vs.sorry().unwrap();
    assert_eq!((sorry.fwd, sorry.weight), (Fwd::Masq, 1));
    assert!(sorry.inhibit_on_failure);
    let nobody = RunAs::resolve("nobody", None, false).unwrap();
    let root = RunAs::resolve("root", None, false).unwrap();
    let notify = |n: &Option<Notify>| n.as_ref().map(|n| (n.cmd.clone(), n.user.clone()));
    assert_eq!(
        notify(&vs.quorum_up),
        Some(("/bin/echo up".into(), nobody.clone()))
    );
    assert_eq!(
        notify(&vs.quorum_down),
        Some(("/bin/false".into(), nobody.clone()))
    );
    assert_eq!(vs.quorum_down.as_ref().unwrap().pos.line, 31);
    let r1 = &vs.reals[0];
    assert_eq!((r1.addr, r1.port, r1.weight), (ip("10.0.0.11"), 80, 3));
    assert_eq!((r1.uthreshold, r1.lthreshold), (100, 10));
    assert!(r1.inhibit_on_failure);
    assert_eq!(r1.fwd, Fwd::Route);
    assert_eq!(
        notify(&r1.notify_up),
        Some(("/bin/echo up".into(), nobody.clone()))
    );
    assert_eq!(
        notify(&r1.notify_down),
        Some(("/bin/echo down".into(), root)),
        "its own user"
    );
    let http = &r1.checkers[0];
    assert_eq!(http.connect_ip, ip("10.0.1.11"));
    assert_eq!(http.connect_port, 8080);
    assert_eq!(http.bindto, Some(ip("10.0.0.1")));
    assert!(http.alpha);
    assert_eq!(
        http.timing,
        Timing {
            delay_loop: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            retry: 4,
            delay_before_retry: Duration::from_millis(1500),
            warmup: Some(Duration::from_secs(2)),
        }
    );
    let CheckKind::Http {
        tls,
        urls,
        virtualhost,
        http_protocol,
        ..
    } = &http.kind
    else {
        panic!("{http:?}")
    };
    assert!(!tls);
    assert_eq!(virtualhost.as_deref(), Some("www.example.com"));
    assert_eq!(http_protocol, "1.1");
    assert_eq!(urls[0].path, "/health");
    assert_eq!(
        urls[0].digest.as_deref(),
        Some("9b3a0c85a887a256d6939da88aabd8cd")
    );
    assert_eq!(urls[0].status, [(200, 200), (301, 302)]);
    assert_eq!(urls[0].regex.as_deref(), Some("^ok [0-9]+"));
    assert!(urls[0].regex_no_match && !urls[1].regex_no_match);
    assert!(urls[0].status_ok(301) && !urls[0].status_ok(204));
    assert!(urls[1].status_ok(204) && !urls[1].status_ok(500));
    let tcp = &r1.checkers[1];
    assert_eq!(tcp.kind, CheckKind::Tcp);
    assert_eq!((tcp.connect_ip, tcp.connect_port), (ip("10.0.0.11"), 80));
    assert_eq!(tcp.timing.retry, 2);
    assert_eq!(tcp.timing.delay_before_retry, Duration::from_millis(500));
    assert_eq!(tcp.timing.connect_timeout, Duration::from_secs(3));
    let r2 = &vs.reals[1];
    assert_eq!(r2.port, 80, "the virtual server's port");
    assert!(!r2.inhibit_on_failure);
    assert_eq!(r2.fwd, Fwd::Masq);
    assert_eq!(
        r2.checkers[0].kind,
        CheckKind::Misc {
            path: "/bin/echo 10.0.0.12".into(),
            timeout: Duration::from_secs(4),
            dynamic: true,
            user: nobody,
        }
    );
    let fw = &c.services[1];
    assert_eq!(fw.addr, VsAddr::Fwmark(7));
    assert_eq!(
        (fw.sched.as_str(), fw.sched_flags),
        ("sh", SVC_F_SCHED1 | SVC_F_SCHED2)
    );
    assert_eq!((fw.fwd, fw.proto), (Fwd::Tunnel, Proto::Udp));
    let d = &fw.reals[0].checkers[0];
    // keepalived's defaults.
    assert_eq!(
        d.timing,
        Timing {
            delay_loop: DEFAULT_DELAY_LOOP,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: 1,
            delay_before_retry: Duration::from_secs(1),
            warmup: None,
        }
    );
    assert!(!d.alpha);
}

#[test]
fn groups_and_defaults() {
    let (c, w) = parse(
        "global_defs {\n  script_user nobody\n  enable_script_security\n}\n\
         virtual_server_group G {\n  10.0.0.1 80\n  10.0.0.5-7 443\n  fwmark 3\n}\n\
         virtual_server group G {\n  real_server 10.1.0.1 80 {\n    HTTP_GET { url { path / } }\n    \
         MISC_CHECK { misc_path /bin/true }\n  }\n}\n",
    )
    .unwrap();
    assert!(w.is_empty(), "{w:?}");
    let VsAddr::Group(name, m) = &c.services[0].addr else {
        panic!()
    };
    assert_eq!(name, "G");
    assert_eq!(
        m,
        &[
            GroupMember::Addr(ip("10.0.0.1"), 80),
            GroupMember::Addr(ip("10.0.0.5"), 443),
            GroupMember::Addr(ip("10.0.0.6"), 443),
            GroupMember::Addr(ip("10.0.0.7"), 443),
            GroupMember::Fwmark(3),
        ]
    );
    let vs = &c.services[0];
    assert_eq!(
        (vs.sched.as_str(), vs.fwd, vs.proto),
        ("wlc", Fwd::Masq, Proto::Tcp)
    );
    let ck = &vs.reals[0].checkers;
    assert_eq!(ck[0].timing.delay_before_retry, Duration::from_secs(3));
    assert_eq!(ck[1].timing.retry, 0, "MISC_CHECK: no retry by default");
    let CheckKind::Misc { timeout, .. } = &ck[1].kind else {
        panic!()
    };
    assert_eq!(
        *timeout, DEFAULT_DELAY_LOOP,
        "misc_timeout defaults to delay_loop"
    );
}

#[test]
fn unknown_keywords_warn_with_file_and_line() {
    let (c, w) = parse(
        "frobnicate 1\nvirtual_server 10.0.0.1 80 {\n  bogus_key 1\n  real_server 10.0.0.2 80 {\n    \
         weight 2\n    funky\n    TCP_CHECK { wat 3 }\n    BFD_CHECK { name x }\n  }\n}\n",
    )
    .unwrap();
    assert_eq!(
        w,
        [
            "k.conf:1: Unknown keyword 'frobnicate'",
            "k.conf:3: Unknown keyword 'bogus_key'",
            "k.conf:6: Unknown keyword 'funky'",
            "k.conf:7: Unknown keyword 'wat'",
            "k.conf:8: (10.0.0.2:80) BFD_CHECK - BFD x not configured - skipping checker",
        ]
    );
    assert_eq!(c.services[0].reals[0].weight, 2);
    assert_eq!(c.services[0].reals[0].checkers.len(), 1);
}

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
fn errors_name_file_and_line() {
    let e = |t: &str| parse(t).unwrap_err().to_string();
    assert_eq!(
        e("virtual_server 10.0.0.1 80 {\n  delay_loop x\n}\n"),
        "k.conf:2: 'delay_loop': invalid time 'x'"
    );
    assert_eq!(
        e("virtual_server 10.0.0.1 80 {\n  real_server 10.0.0.300 80 {\n  }\n}\n"),
        "k.conf:2: invalid address '10.0.0.300'"
    );
    assert_eq!(
        e("virtual_server 10.0.0.1 80 {\n  real_server 10.0.0.3 80 {\n   weight\n  }\n}\n"),
        "k.conf:3: 'weight' needs a value"
    );
    assert_eq!(
        e("virtual_server 10.0.0.1 80 {\n  real_server 10.0.0.3 80 {\n   weight 70000\n  }\n}\n"),
        "k.conf:3: 'weight': invalid number '70000' (expected 0..=65535)"
    );
    assert_eq!(
        e("virtual_server 10.0.0.1 99999 {\n}\n"),
        "k.conf:1: invalid port '99999'"
    );
    assert_eq!(
        e("virtual_server 10.0.0.1 80 {\n  lb_kind FOO\n}\n"),
        "k.conf:2: 'lb_kind': unknown method 'FOO' (NAT, DR or TUN)"
    );
    assert_eq!(
        e("virtual_server group NOPE {\n}\n"),
        "k.conf:1: virtual_server_group 'NOPE' is not defined"
    );
    assert_eq!(
        e(
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n    status_code 200-100\n    path /\n}}}}\n"
        ),
        "k.conf:5: invalid status_code range '200-100'"
    );
    assert_eq!(
        e("virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  MISC_CHECK {\n  }\n }\n}\n"),
        "k.conf:3: MISC_CHECK needs misc_path"
    );
    assert_eq!(
        e("virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n"),
        "k.conf:2: '{' is never closed"
    );
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

/// keepalived's own samples (tests/fixtures/keepalived/SOURCE.md).
#[test]
fn keepalived_samples_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keepalived");
    let load = |n: &str| load(&dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    let (c, w) = load("keepalived.conf.sample");
    assert_eq!(c.services.len(), 1);
    assert!(w.is_empty(), "{w:?}");
    let vs = &c.services[0];
    assert_eq!(vs.addr, VsAddr::Addr(ip("10.10.10.2"), 1358));
    assert_eq!(vs.persistence_timeout, Some(50));
    let ck = &vs.reals[0].checkers[0];
    assert_eq!(ck.timing.retry, 3);
    assert_eq!(ck.timing.delay_loop, Duration::from_secs(6));

    let (c, w) = load("keepalived.conf.status_code");
    assert!(w.is_empty(), "{w:?}");
    let CheckKind::Http { tls, urls, .. } = &c.services[0].reals[0].checkers[0].kind else {
        panic!()
    };
    assert!(*tls);
    assert_eq!(urls.len(), 2);
    assert_eq!(urls[1].status, [(200, 200)]);

    let (c, w) = load("keepalived.conf.virtual_server_group");
    assert!(w.is_empty(), "{w:?}");
    let VsAddr::Group(_, m) = &c.services[0].addr else {
        panic!()
    };
    assert_eq!(m.len(), 3 + 8 + 2);
    assert_eq!(c.services[0].reals.len(), 2);

    let (c, w) = load("keepalived.conf.misc_check");
    // Its script would run as keepalived's default user; it does not
    // exist here, so its MISC_CHECK is disabled at load, as keepalived
    // disables it.
    let (last, first) = w.split_last().unwrap();
    assert_eq!(first, default_user_warning(), "{w:?}");
    assert!(
        last.ends_with(
            "keepalived.conf.misc_check:23: Script /usr/local/bin/script.sh cannot be accessed - \
             No such file or directory (os error 2); Disabling misc script \
             /usr/local/bin/script.sh since not found/accessible"
        ),
        "{w:?}"
    );
    assert!(c.services[0].reals[0].checkers.is_empty());
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
         firstline dollar_endonly no_start_optimize alt_bsux bogus\n    regex_stack 4096 65536\n    \
         regex_min_offset 2\n    regex_max_offset 10\n",
    ))
    .unwrap();
    assert_eq!(
        w,
        [
            "k.conf:7: regex option 'alt_bsux' is not supported by rvs; ignored",
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

/// virtual_server_group members in each of keepalived's forms: the last
/// byte or hextet running, a span between two addresses, a prefix; each
/// address a service. Bad ranges are refused at their line.
#[test]
fn group_ranges_spans_and_prefixes() {
    let members = |m: &str| {
        let (c, w) = parse(&format!(
            "virtual_server_group G {{\n  {m}\n}}\nvirtual_server group G {{\n}}\n"
        ))?;
        assert!(w.is_empty(), "{w:?}");
        let VsAddr::Group(_, m) = &c.services[0].addr else {
            panic!()
        };
        Ok::<_, ConfError>(
            m.iter()
                .map(|g| match g {
                    GroupMember::Addr(a, p) => format!("{a}:{p}"),
                    GroupMember::Fwmark(f) => format!("fwmark {f}"),
                })
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        members("10.0.0.254-10.0.1.1 80").unwrap(),
        [
            "10.0.0.254:80",
            "10.0.0.255:80",
            "10.0.1.0:80",
            "10.0.1.1:80"
        ]
    );
    assert_eq!(
        members("192.168.202.8/30 443").unwrap(),
        [
            "192.168.202.8:443",
            "192.168.202.9:443",
            "192.168.202.10:443",
            "192.168.202.11:443"
        ]
    );
    assert_eq!(members("10.0.0.7/32 80").unwrap(), ["10.0.0.7:80"]);
    assert_eq!(members("2001:db8::fe-101 80").unwrap().len(), 4);
    assert_eq!(
        members("2001:db8::/126 80").unwrap(),
        [
            "2001:db8:::80",
            "2001:db8::1:80",
            "2001:db8::2:80",
            "2001:db8::3:80"
        ]
    );
    assert_eq!(members("10.0.0.0/16 80").unwrap().len(), 65_536);
    for (m, e) in [
        ("10.0.0.9/29 80", "address mask bits not empty"),
        ("10.0.0.8/33 80", "bad prefix length"),
        ("10.0.0.9-3 80", "the end is below the start"),
        ("10.0.0.9-10.0.0.1 80", "the end is below the start"),
        ("10.0.0.1-300 80", "bad range end"),
        ("10.0.0.1-2001:db8::1 80", "address families differ"),
        ("10.0.0.0/15 80", "holds 131072 addresses"),
        (
            "::/0 80",
            "holds 340282366920938463463374607431768211455 addresses",
        ),
    ] {
        let got = members(m).unwrap_err().to_string();
        assert!(
            got.starts_with("k.conf:2: ") && got.contains(e),
            "{m}: {got}"
        );
    }
}

/// HTTP_GET's virtualhost: the checker's, else the real server's, else
/// the virtual server's (check_http.c); ha_suspend read, and cleared with
/// keepalived's line for a fwmark service.
#[test]
fn real_server_virtualhost_and_ha_suspend() {
    let (c, w) = parse(
        "virtual_server 10.0.0.1 80 {\n ha_suspend\n virtualhost vs.example\n \
         real_server 10.0.0.2 80 {\n  virtualhost rs.example\n  HTTP_GET { url { path / } }\n  \
         HTTP_GET { url { path / }\n   virtualhost ck.example\n  }\n }\n \
         real_server 10.0.0.3 80 {\n  HTTP_GET { url { path / } }\n }\n}\n\
         virtual_server fwmark 3 {\n ha_suspend\n}\n",
    )
    .unwrap();
    assert_eq!(
        w,
        [
            "k.conf:15: Virtual server fwmark 3: cannot use ha_suspend with fwmarks - clearing ha_suspend"
        ]
    );
    let vhost = |r: usize, k: usize| match &c.services[0].reals[r].checkers[k].kind {
        CheckKind::Http { virtualhost, .. } => virtualhost.clone(),
        k => panic!("{k:?}"),
    };
    assert_eq!(vhost(0, 0).as_deref(), Some("rs.example"));
    assert_eq!(vhost(0, 1).as_deref(), Some("ck.example"));
    assert_eq!(vhost(1, 0).as_deref(), Some("vs.example"));
    assert!(c.services[0].ha_suspend && !c.services[1].ha_suspend);
}

/// What a file whose scripts have no user says where `keepalived_script`
/// does not exist (nothing where it does).
fn default_user_warning() -> Vec<String> {
    if RunAs::resolve("keepalived_script", None, false).is_ok() {
        return Vec::new();
    }
    let me = RunAs::ourselves();
    vec![format!(
        "Script user 'keepalived_script' does not exist: scripts without a user of their \
         own run as {} ({}); set global_defs' script_user",
        me.name,
        me.ids()
    )]
}

fn misc(text: &str) -> Result<(Option<RunAs>, Vec<String>), ConfError> {
    let (c, w) = parse(text)?;
    let user = c.services[0].reals[0]
        .checkers
        .iter()
        .find_map(|ck| match &ck.kind {
            CheckKind::Misc { user, .. } => Some(user.clone()),
            _ => None,
        });
    Ok((user, w))
}

const SECURE: &str = "global_defs {\n enable_script_security\n}\n";

/// keepalived's warning when scripts that exist run without
/// enable_script_security.
const VIOLATION: &str = "SECURITY VIOLATION - check scripts are being executed but \
    script_security not enabled (global_defs' enable_script_security).";

fn misc_user_conf(global: &str, user: &str) -> String {
    format!(
        "{global}virtual_server 10.0.0.1 80 {{\n real_server 10.0.0.2 80 {{\n  \
         TCP_CHECK {{ }}\n  MISC_CHECK {{\n   misc_path \"/bin/echo check arg\"\n   {user}\n  }}\n }}\n}}\n"
    )
}

#[test]
fn misc_check_user_and_group() {
    let nobody = RunAs::resolve("nobody", None, false).unwrap();
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .expect("group nogroup")
        .gid
        .as_raw();
    let (u, w) = misc(&misc_user_conf(SECURE, "user nobody")).unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(u.as_ref(), Some(&nobody));
    assert!(
        nobody.groups.is_empty(),
        "keepalived sets no supplementary groups"
    );
    let (u, w) = misc(&misc_user_conf(SECURE, "user nobody nogroup")).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let u = u.unwrap();
    assert_eq!(
        (u.name.as_str(), u.uid, u.gid),
        ("nobody", nobody.uid, nogroup)
    );
    // `:GROUP` (or `:` alone, the user's own group) sets the user's
    // supplementary groups too; so does set_supplementary_groups.
    let (u, _) = misc(&misc_user_conf(SECURE, "user nobody :nogroup")).unwrap();
    let u = u.unwrap();
    assert_eq!(u.gid, nogroup);
    assert!(u.groups.contains(&nobody.gid), "{u:?}");
    let (u2, _) = misc(&misc_user_conf(SECURE, "user nobody :")).unwrap();
    assert_eq!(u2.unwrap().groups, u.groups);
    let (u3, _) = misc(&misc_user_conf(
        "global_defs {\n set_supplementary_groups\n enable_script_security\n}\n",
        "user nobody",
    ))
    .unwrap();
    assert_eq!(u3.unwrap().groups, u.groups);
}

/// keepalived removes a MISC_CHECK whose user or group does not resolve
/// (never runs it as root), with its file and line.
#[test]
fn misc_check_unknown_user_or_group_removes_it() {
    let (c, w) = parse(&misc_user_conf(SECURE, "user rvs-no-such-user")).unwrap();
    assert_eq!(
        w,
        [
            "k.conf:9: Script user 'rvs-no-such-user' does not exist; failed to set the \
          uid/gid of misc checker script /bin/echo check arg - removing the MISC_CHECK"
        ]
    );
    let cks = &c.services[0].reals[0].checkers;
    assert_eq!(cks.len(), 1);
    assert_eq!(cks[0].kind, CheckKind::Tcp);
    let (u, w) = misc(&misc_user_conf(SECURE, "user nobody rvs-no-such-group")).unwrap();
    assert_eq!(u, None);
    assert_eq!(w.len(), 1);
    assert!(
        w[0].starts_with("k.conf:9: Script group 'rvs-no-such-group' does not exist;"),
        "{w:?}"
    );
    // A bare `user` is a bad line: the file is refused.
    let e = parse(&misc_user_conf(SECURE, "user")).unwrap_err();
    assert_eq!(e.to_string(), "k.conf:9: 'user' needs a user name");
}

/// script_user: every script without a user of its own; without it
/// keepalived_script if it exists, else rvs's own user (said once).
#[test]
fn script_user_and_the_default() {
    let nobody = RunAs::resolve("nobody", None, false).unwrap();
    let conf = |global: &str| {
        format!(
            "{global}virtual_server 10.0.0.1 80 {{\n quorum_up /bin/true\n \
             real_server 10.0.0.2 80 {{\n  notify_up \"/bin/echo n up\"\n  \
             notify_down /bin/true root\n  MISC_CHECK {{ misc_path /bin/false }}\n }}\n}}\n"
        )
    };
    let users = |c: &Config| {
        let vs = &c.services[0];
        let rs = &vs.reals[0];
        let CheckKind::Misc { user, .. } = &rs.checkers[0].kind else {
            panic!()
        };
        [
            vs.quorum_up.as_ref().map(|n| n.user.name.clone()),
            rs.notify_up.as_ref().map(|n| n.user.name.clone()),
            rs.notify_down.as_ref().map(|n| n.user.name.clone()),
            Some(user.name.clone()),
        ]
    };
    let (c, w) = parse(&conf(
        "global_defs {\n router_id X\n script_user nobody\n}\n",
    ))
    .unwrap();
    // notify_down runs as root: keepalived's warning without
    // enable_script_security.
    assert_eq!(w, [VIOLATION], "{w:?}");
    let n = Some(nobody.name.clone());
    assert_eq!(users(&c), [n.clone(), n.clone(), Some("root".into()), n]);

    // No script_user: keepalived's default, one warning for all the
    // scripts (where keepalived_script does not exist).
    let (c, w) = parse(&conf("")).unwrap();
    let (violation, w) = w.split_last().unwrap();
    assert_eq!(violation, VIOLATION);
    assert_eq!(w, default_user_warning());
    let d = if w.is_empty() {
        "keepalived_script".to_string()
    } else {
        RunAs::ourselves().name
    };
    assert_eq!(
        users(&c),
        [
            Some(d.clone()),
            Some(d.clone()),
            Some("root".into()),
            Some(d)
        ]
    );
    // No scripts: no warning.
    let (_, w) = parse(
        &misc_user_conf("", "")
            .replace("MISC_CHECK", "TCP_CHECK")
            .replace("misc_path \"/bin/echo check arg\"", ""),
    )
    .unwrap();
    assert!(w.is_empty(), "{w:?}");

    // A script_user that does not resolve: the scripts without a user of
    // their own are disabled (keepalived: "Error setting global script
    // uid/gid").
    let (c, w) = parse(&conf("global_defs {\n script_user rvs-no-such-user\n}\n")).unwrap();
    let vs = &c.services[0];
    assert!(vs.quorum_up.is_none() && vs.reals[0].notify_up.is_none());
    assert!(vs.reals[0].checkers.is_empty());
    assert_eq!(vs.reals[0].notify_down.as_ref().unwrap().user.name, "root");
    assert_eq!(w.len(), 5, "{w:?}");
    assert_eq!(w[4], VIOLATION);
    assert!(w[0].starts_with("k.conf:2: Script user 'rvs-no-such-user' does not exist;"));
    assert!(w[1].starts_with("k.conf:5: no default script user; invalid user/group for quorum_up"));
    assert!(w[3].contains("removing the MISC_CHECK"), "{w:?}");

    // With enable_script_security there is no falling back to root.
    if RunAs::resolve("keepalived_script", None, false).is_err() {
        let (c, w) = parse(&conf(SECURE)).unwrap();
        let rs = &c.services[0].reals[0];
        assert!(rs.checkers.is_empty() && rs.notify_up.is_none());
        assert!(rs.notify_down.is_some(), "its own user");
        assert!(
            w[0].starts_with(
                "Script user 'keepalived_script' does not exist: unable to set the default user"
            ),
            "{w:?}"
        );
        assert_eq!(w.len(), 4, "{w:?}");
    }

    // A notify line's words after the script are its user and group, as
    // in keepalived: an unquoted script with arguments names a user.
    let (c, w) = parse(
        "global_defs {\n script_user nobody\n}\nvirtual_server 10.0.0.1 80 {\n \
         quorum_up /bin/echo up\n}\n",
    )
    .unwrap();
    assert!(c.services[0].quorum_up.is_none());
    assert_eq!(
        w,
        [
            "k.conf:5: Script user 'up' does not exist; invalid user/group for quorum_up \
          script /bin/echo - ignoring it"
        ]
    );
}

/// enable_script_security: a script run as root that another user could
/// change is disabled; without it, only warned about.
#[test]
fn script_security() {
    let dir = std::env::temp_dir().join(format!("rvs-ka-security-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("check.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A directory anyone may write to (no sticky bit): the script could be
    // replaced.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let s = script.display().to_string();
    let conf = |global: &str, user: &str| {
        parse(&misc_user_conf(global, user).replace("/bin/echo check arg", &s)).unwrap()
    };
    let unsafe_line = |w: &str, line: usize| {
        w.starts_with(&format!(
            "k.conf:{line}: Unsafe permissions found for script '{s}' run as root (0:0): "
        ))
    };
    // As root, with enable_script_security: disabled.
    let (c, w) = conf(SECURE, "user root");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        unsafe_line(&w[0], 7) && w[0].ends_with(" - disabling"),
        "{w:?}"
    );
    if rustix::process::geteuid().is_root() {
        assert!(
            w[0].contains(&format!("{} is writable by others", dir.display())),
            "{w:?}"
        );
    }
    assert_eq!(
        c.services[0].reals[0].checkers.len(),
        1,
        "only TCP_CHECK left"
    );
    // Without it: kept, warned, and keepalived's SECURITY VIOLATION.
    let (c, w) = conf("", "user root");
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        unsafe_line(&w[0], 4) && w[0].ends_with("(enable_script_security would disable it)"),
        "{w:?}"
    );
    assert_eq!(
        w[1],
        "SECURITY VIOLATION - check scripts are being executed but script_security not \
         enabled (global_defs' enable_script_security). There are insecure scripts."
    );
    assert_eq!(c.services[0].reals[0].checkers.len(), 2);
    // As nobody it cannot do more than nobody can: not judged.
    let (c, w) = conf(SECURE, "user nobody");
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.services[0].reals[0].checkers.len(), 2);
    // gid 0 counts as root too.
    let (_, w) = conf(SECURE, "user nobody root");
    assert!(
        w[0].contains("run as nobody (65534:0)") && w[0].ends_with(" - disabling"),
        "{w:?}"
    );
    // A root-owned script in root-owned directories is safe, found in PATH
    // too; without enable_script_security, the SECURITY VIOLATION alone.
    let text = misc_user_conf(SECURE, "user root").replace("/bin/echo check arg", "true");
    let (c, w) = parse(&text).unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(c.services[0].reals[0].checkers.len(), 2);
    let (_, w) = parse(&text.replace(SECURE, "")).unwrap();
    assert_eq!(
        w,
        [
            "SECURITY VIOLATION - check scripts are being executed but script_security not \
          enabled (global_defs' enable_script_security)."
        ]
    );
    // A sticky world-writable directory (as /tmp) is safe when root owns
    // it and the file.
    if rustix::process::geteuid().is_root() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let (_, w) = conf(SECURE, "user root");
        assert!(w.is_empty(), "{w:?}");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o757)).unwrap();
        let (_, w) = conf(SECURE, "user root");
        assert!(
            w[0].ends_with(&format!("{s} is writable by others - disabling")),
            "{w:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// global_defs' checker process settings: read, checked; the real-time
/// ones as keepalived reads them (clamped, warned about, the default
/// limit).
#[test]
fn global_defs_checker_process_settings() {
    let (c, w) = parse(
        "global_defs {\n router_id X\n checker_priority 10\n checker_cpu_affinity 0 1\n \
         checker_no_swap\n checker_rt_priority 50\n}\n",
    )
    .unwrap();
    assert_eq!(
        c.process,
        Process {
            priority: Some(10),
            cpu_affinity: vec![0, 1],
            no_swap: true,
            rt_priority: Some(50),
            rlimit_rttime: RT_RLIMIT_DEFAULT,
        }
    );
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(parse("").unwrap().0.process, Process::default());
    let rt = |lines: &str| {
        let (c, w) = parse(&format!("global_defs {{\n{lines}}}\n")).unwrap();
        (c.process.rt_priority, c.process.rlimit_rttime, w)
    };
    let (min, max) = rvs_io::sched::round_robin_range();
    assert_eq!(
        rt(" checker_rt_priority 0\n checker_rlimit_rttime 1\n"),
        (
            Some(min),
            2,
            vec![format!(
                "k.conf:2: checker process real-time priority 0 less than minimum {min} - \
                 setting to minimum"
            )]
        )
    );
    assert_eq!(
        rt(" checker_rt_priority 1000\n checker_rlimit_rtime 20000\n"),
        (
            Some(max),
            20000,
            vec![
                format!(
                    "k.conf:2: checker process real-time priority 1000 greater than maximum \
                     {max} - setting to maximum"
                ),
                "k.conf:3: Keyword 'checker_rlimit_rtime' is deprecated - please use \
                 'checker_rlimit_rttime'"
                    .to_string()
            ]
        )
    );
    assert_eq!(
        rt(" checker_rt_priority x\n checker_rlimit_rttime 0\n"),
        (
            None,
            0,
            vec![
                "k.conf:2: checker process real-time priority 'x' invalid".to_string(),
                "k.conf:3: Invalid checker real-time limit - 0".to_string()
            ]
        )
    );
    for (text, e) in [
        (
            "checker_priority 20",
            "k.conf:2: invalid checker_priority '20' (-20..=19)",
        ),
        (
            "checker_priority x",
            "k.conf:2: invalid checker_priority 'x'",
        ),
        (
            "checker_cpu_affinity",
            "k.conf:2: 'checker_cpu_affinity' needs a CPU",
        ),
        ("checker_cpu_affinity 0 z", "k.conf:2: invalid CPU 'z'"),
    ] {
        let got = parse(&format!("global_defs {{\n {text}\n}}\n"))
            .unwrap_err()
            .to_string();
        assert!(got.starts_with(e), "{text}: {got}");
    }
}

/// global_defs' alert settings and keepalived's smtp_alert defaults: a
/// virtual server's off, a real server's on, both following the global
/// `smtp_alert_checker` (else `smtp_alert`).
#[test]
fn smtp_alert_settings_and_defaults() {
    let (c, w) = parse(
        "global_defs {\n notification_email {\n  a@example.com\n  b@example.com\n }\n \
         notification_email_from lvs@example.com\n smtp_server 192.0.2.25\n smtp_helo_name me\n \
         smtp_connect_timeout 7\n router_id R1\n no_checker_emails\n}\n\
         virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n }\n \
         real_server 10.0.0.3 80 {\n  smtp_alert off\n }\n}\n\
         virtual_server 10.0.0.1 81 {\n smtp_alert\n}\n",
    )
    .unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        c.smtp,
        Smtp {
            server: Some(("192.0.2.25".into(), 25)),
            helo: "me".into(),
            from: "lvs@example.com".into(),
            to: vec!["a@example.com".into(), "b@example.com".into()],
            timeout: Duration::from_secs(7),
            router_id: "R1".into(),
            no_checker_emails: true,
        }
    );
    assert!(c.smtp.enabled());
    let s = &c.services;
    assert_eq!(
        (s[0].smtp_alert, s[1].smtp_alert),
        (Some(false), Some(true))
    );
    assert_eq!(
        (s[0].reals[0].smtp_alert, s[0].reals[1].smtp_alert),
        (Some(true), Some(false))
    );
    // The global smtp_alert_checker decides for both.
    let (c, _) = parse(
        "global_defs {\n smtp_alert_checker off\n smtp_alert on\n}\n\
         virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n }\n}\n",
    )
    .unwrap();
    assert_eq!(c.services[0].smtp_alert, Some(false));
    assert_eq!(c.services[0].reals[0].smtp_alert, Some(false));
    // Defaults: the host's name, port 25 (none: no alerts).
    let (c, _) = parse("").unwrap();
    assert!(!c.smtp.enabled());
    assert_eq!(c.smtp.timeout, Duration::from_secs(30));
    assert!(!c.smtp.router_id.is_empty() && c.smtp.from.contains('@'));
    let e = parse("global_defs {\n smtp_server 192.0.2.25 99999\n}\n").unwrap_err();
    assert!(e.to_string().starts_with("k.conf:2:"), "{e}");
}

/// keepalived's check_script_secure at load: a script that cannot be
/// found (a bare name not in PATH, a path that is not there) or that its
/// user cannot execute is disabled, with its line: a MISC_CHECK is
/// removed (its real server no longer waits for it), a notify script
/// dropped; `</path` (a file's readability) is not a program and stays.
#[test]
fn scripts_not_found_or_not_executable_are_disabled_at_load() {
    let dir = std::env::temp_dir().join(format!("rvs-noexec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let owner_only = dir.join("owner-only");
    std::fs::write(&owner_only, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(
        &owner_only,
        std::os::unix::fs::PermissionsExt::from_mode(0o744),
    )
    .unwrap();
    let (c, w) = parse(&format!(
        "global_defs {{\n script_user nobody\n enable_script_security\n}}\n\
         virtual_server 10.0.0.1 80 {{\n quorum_up rvs-no-such-program\n \
         quorum_down \"</etc/hostname\"\n \
         real_server 10.0.0.2 80 {{\n  notify_up /nonexistent/up\n  notify_down /bin/true\n  \
         TCP_CHECK {{ }}\n  MISC_CHECK {{ misc_path \"/nonexistent/check arg\" }}\n  \
         MISC_CHECK {{ misc_path {} }}\n  MISC_CHECK {{ misc_path /bin/true }}\n }}\n}}\n",
        owner_only.display()
    ))
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let vs = &c.services[0];
    let rs = &vs.reals[0];
    assert!(vs.quorum_up.is_none());
    assert_eq!(vs.quorum_down.as_ref().unwrap().cmd, "</etc/hostname");
    assert!(rs.notify_up.is_none());
    assert_eq!(rs.notify_down.as_ref().unwrap().cmd, "/bin/true");
    let kinds: Vec<String> = rs
        .checkers
        .iter()
        .map(|ck| match &ck.kind {
            CheckKind::Misc { path, .. } => path.clone(),
            k => format!("{k:?}"),
        })
        .collect();
    assert_eq!(kinds, ["Tcp", "/bin/true"]);
    let nobody = RunAs::resolve("nobody", None, false).unwrap();
    assert_eq!(
        w,
        [
            "k.conf:6: Cannot find script rvs-no-such-program in path - disabling".to_string(),
            "k.conf:9: Script /nonexistent/up cannot be accessed - No such file or directory \
             (os error 2)"
                .to_string(),
            "k.conf:12: Script /nonexistent/check cannot be accessed - No such file or directory \
             (os error 2); Disabling misc script /nonexistent/check arg since not \
             found/accessible"
                .to_string(),
            format!(
                "k.conf:13: WARNING - script '{}' is not executable for uid:gid {}:{} - disabling.",
                owner_only.display(),
                nobody.uid,
                nobody.gid
            ),
        ]
    );
}
