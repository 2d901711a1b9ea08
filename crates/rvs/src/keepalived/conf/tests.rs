// SPDX-License-Identifier: GPL-2.0-or-later
//! The parser's tests: whole files in, values or file:line errors out.

use super::process::RT_RLIMIT_DEFAULT;
use super::*;
use rvs_proto::{SVC_F_SCHED1, SVC_F_SCHED2};
use std::net::Ipv4Addr;

pub(super) fn parse(text: &str) -> Result<(Config, Vec<String>), ConfError> {
    let mut w = Vec::new();
    let t = lex::parse_text(text, "k.conf", Path::new("/nonexistent"), &mut w)?;
    let c = build(&t, &mut w)?;
    Ok((c, w))
}

pub(super) fn ip(s: &str) -> IpAddr {
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
pub(super) fn default_user_warning() -> Vec<String> {
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

/// `persistence_engine sip` reaches the service's `--pe`; another name is
/// warned about (with its line) and ignored.
#[test]
fn persistence_engine_sip() {
    let (c, w) = parse(
        "virtual_server 10.0.0.100 5060 {\nprotocol UDP\nlvs_sched rr\npersistence_timeout 60\n\
         persistence_engine sip\nreal_server 10.0.1.11 5060 {\n}\n}\n\
         virtual_server 10.0.0.100 5061 {\nprotocol UDP\npersistence_engine rtsp\n}\n",
    )
    .unwrap();
    assert_eq!(c.services[0].persistence_engine.as_deref(), Some("sip"));
    assert_eq!(c.services[1].persistence_engine, None);
    assert!(
        w.iter()
            .any(|w| w.contains("k.conf:11") && w.contains("unknown persistence_engine 'rtsp'")),
        "{w:?}"
    );
    assert!(!w.iter().any(|w| w.contains("k.conf:5")), "{w:?}");
    let id = rvs_proto::ServiceId::Addr {
        proto: rvs_proto::Proto::Udp,
        addr: ip("10.0.0.100"),
        port: 5060,
    };
    let spec = crate::keepalived::apply::service_spec(&c.services[0], id);
    assert_eq!(spec.pe.as_deref(), Some("sip"));
}
