// SPDX-License-Identifier: GPL-2.0-or-later
//! The checkers against servers started here (TCP, HTTP, TLS, DNS, SMTP,
//! UDP, ICMP) and their parsers.

use super::response::dechunk;
use super::*;
use crate::keepalived::conf::{RunAs, Timing, Url};
use std::io::Write;
use std::net::TcpListener;
use std::net::UdpSocket;
use std::sync::Arc;

mod evented;
mod fuzz;
mod probes;
mod tls_client;

fn checker(kind: CheckKind, ip: IpAddr, port: u16) -> Checker {
    Checker {
        kind,
        connect_ip: ip,
        connect_port: port,
        bindto: None,
        bind_port: None,
        bind_if: None,
        fwmark: None,
        timing: Timing {
            delay_loop: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            retry: 1,
            delay_before_retry: Duration::from_secs(1),
            warmup: None,
        },
        alpha: false,
        pos: crate::keepalived::lex::Pos {
            file: "t".into(),
            line: 1,
        },
    }
}

#[test]
fn md5_of_rfc1321_vectors() {
    assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
}

#[test]
fn dechunks() {
    assert_eq!(
        dechunk(b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n").unwrap(),
        b"Wikipedia"
    );
    assert!(dechunk(b"4\r\nWi").is_none());
}

/// A one-shot HTTP server answering `resp`; the request it got.
fn serve(resp: &'static str) -> (u16, std::thread::JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 1024];
        while !req.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut b).unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&b[..n]);
        }
        s.write_all(resp.as_bytes()).unwrap();
        String::from_utf8(req).unwrap()
    });
    (port, h)
}

fn http(status: Vec<(u16, u16)>, digest: Option<&str>) -> CheckKind {
    CheckKind::Http {
        tls: false,
        sni: false,
        sni_name: None,
        tls_compliant: false,
        urls: vec![Url {
            path: "/index.html".into(),
            digest: digest.map(str::to_string),
            status,
            virtualhost: None,
            regex: None,
            regex_no_match: false,
            regex_options: Default::default(),
            tls_compliant: false,
        }],
        virtualhost: Some("www.example.com".into()),
        http_protocol: "1.0".into(),
        client: None,
    }
}

#[test]
fn http_get_status_digest_and_host() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let (port, h) = serve("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    let ck = checker(
        http(vec![], Some("900150983cd24fb0d6963f7d28e17f72")),
        lo,
        port,
    );
    assert_eq!(run(&ck), Outcome::Up(None));
    let req = h.join().unwrap();
    assert!(req.starts_with("GET /index.html HTTP/1.0\r\n"), "{req}");
    assert!(req.contains("\r\nHost: www.example.com\r\n"), "{req}");

    let (port, _h) = serve("HTTP/1.0 200 OK\r\n\r\nabd");
    let ck = checker(
        http(vec![], Some("900150983cd24fb0d6963f7d28e17f72")),
        lo,
        port,
    );
    let Outcome::Down(e) = run(&ck) else {
        panic!("a wrong digest must fail")
    };
    assert!(e.starts_with("MD5 digest error to [127.0.0.1]:tcp:"), "{e}");

    let (port, _h) = serve("HTTP/1.0 500 Oops\r\n\r\n");
    let Outcome::Down(e) = run(&checker(http(vec![], None), lo, port)) else {
        panic!("500 must fail")
    };
    assert!(e.contains("status_code [500]"), "{e}");

    // regex: a miss fails; regex_no_match inverts it.
    let with_regex = |r: &str, no: bool| {
        let mut k = http(vec![], None);
        if let CheckKind::Http { urls, .. } = &mut k {
            urls[0].regex = Some(r.to_string());
            urls[0].regex_no_match = no;
        }
        k
    };
    let (port, _h) = serve("HTTP/1.0 200 OK\r\n\r\nstatus: ok 42\n");
    assert_eq!(
        run(&checker(with_regex("ok [0-9]+", false), lo, port)),
        Outcome::Up(None)
    );
    let (port, _h) = serve("HTTP/1.0 200 OK\r\n\r\nstatus: degraded\n");
    let Outcome::Down(e) = run(&checker(with_regex("ok [0-9]+", false), lo, port)) else {
        panic!("a regex miss must fail")
    };
    assert!(
        e.starts_with("Regex match failed on [127.0.0.1]:tcp:"),
        "{e}"
    );
    let (port, _h) = serve("HTTP/1.0 200 OK\r\n\r\nstatus: degraded\n");
    assert_eq!(
        run(&checker(with_regex("degraded", false), lo, port)),
        Outcome::Up(None)
    );
    let (port, _h) = serve("HTTP/1.0 200 OK\r\n\r\nstatus: degraded\n");
    assert!(matches!(
        run(&checker(with_regex("degraded", true), lo, port)),
        Outcome::Down(_)
    ));

    let (port, _h) = serve("HTTP/1.0 302 Found\r\n\r\n");
    let ck = checker(http(vec![(200, 200), (301, 302)], None), lo, port);
    assert_eq!(run(&ck), Outcome::Up(None));
}

#[test]
fn tcp_check_and_refusal() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let lo = IpAddr::from([127, 0, 0, 1]);
    assert_eq!(run(&checker(CheckKind::Tcp, lo, port)), Outcome::Up(None));
    drop(l);
    let Outcome::Down(e) = run(&checker(CheckKind::Tcp, lo, port)) else {
        panic!("a closed port must fail")
    };
    assert!(
        e.starts_with(&format!("TCP connection to [127.0.0.1]:tcp:{port} failed")),
        "{e}"
    );
}

/// Run `cks` through [`Checks`] (all started at once, as the
/// scheduler does); their outcomes in the order they came, with when.
fn evented_checks(cks: &[Checker]) -> Vec<(usize, Outcome, Duration)> {
    let mut t = Checks::new().unwrap();
    let mut done = Vec::new();
    let t0 = Instant::now();
    for (i, ck) in cks.iter().enumerate() {
        t.start(ck, i, &mut done);
    }
    let mut out: Vec<(usize, Outcome, Duration)> = Vec::new();
    while out.len() < cks.len() {
        assert!(t0.elapsed() < Duration::from_secs(10), "{out:?}");
        out.extend(done.drain(..).map(|(i, o)| (i, o, t0.elapsed())));
        t.wait(Duration::from_millis(100), &mut done).unwrap();
    }
    out
}

/// A listener whose accept queue is full (never accepted): a further
/// connect hangs (its SYNs are dropped); the connections that filled it.
fn full_listener() -> (u16, TcpListener, Vec<std::net::TcpStream>) {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))
        .unwrap();
    s.listen(0).unwrap();
    let l: TcpListener = s.into();
    let addr = l.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(c) => held.push(c),
            Err(_) => return (addr.port(), l, held),
        }
    }
    panic!("the accept queue of {addr} never filled");
}

/// The epoll-driven TCP_CHECKs judge as the blocking one (same outcomes,
/// same lines): a listener up, a closed port refused, `bindto` and
/// `bind_port` as the source, `fwmark` (allowed or not, the same); a hung
/// server times out at its own connect_timeout, after the others.
#[test]
fn tcp_checks_on_one_thread_as_run() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap().port();
    let closed = {
        let c = TcpListener::bind("127.0.0.1:0").unwrap();
        c.local_addr().unwrap().port()
    };
    let (hung, _full, _held) = full_listener();
    let lo = IpAddr::from([127, 0, 0, 1]);
    let mut from = checker(CheckKind::Tcp, lo, up);
    from.bindto = Some(IpAddr::from([127, 0, 0, 2]));
    from.bind_port = Some(40_000 + (std::process::id() % 20_000) as u16);
    let mut marked = checker(CheckKind::Tcp, lo, up);
    marked.fwmark = Some(7);
    let mut slow = checker(CheckKind::Tcp, lo, hung);
    slow.timing.connect_timeout = Duration::from_millis(400);
    let cks = [
        slow,
        checker(CheckKind::Tcp, lo, up),
        checker(CheckKind::Tcp, lo, closed),
        from.clone(),
        marked,
    ];
    let got = evented_checks(&cks);
    let peer = l.accept().unwrap().1;
    let mut peers = vec![peer];
    l.set_nonblocking(true).unwrap();
    while let Ok((_, p)) = l.accept() {
        peers.push(p);
    }
    assert!(
        peers
            .iter()
            .any(|p| *p == SocketAddr::new(from.bindto.unwrap(), from.bind_port.unwrap())),
        "{peers:?}"
    );
    // The hung one last, at its timeout.
    let (i, last, at) = got.last().unwrap();
    assert_eq!(*i, 0, "{got:?}");
    assert!(*at >= Duration::from_millis(400), "{got:?}");
    assert_eq!(
        *last,
        Outcome::Down(format!("TCP connection to [127.0.0.1]:tcp:{hung} timeout."))
    );
    // The same checks blocking, `bind_port` too: the connects above
    // closed with an RST and left no TIME_WAIT on the port.
    for (i, o, _) in &got {
        assert_eq!(*o, run(&cks[*i]), "check {i}");
    }
    assert_eq!(got.iter().find(|g| g.0 == 1).unwrap().1, Outcome::Up(None));
    assert!(
        matches!(&got.iter().find(|g| g.0 == 2).unwrap().1, Outcome::Down(e)
            if e.starts_with(&format!("TCP connection to [127.0.0.1]:tcp:{closed} failed (Connection refused"))),
        "{got:?}"
    );
}

/// TCP connections in TIME_WAIT (state 06 of /proc/net/tcp) between
/// 127.0.0.1:`a` and 127.0.0.1:`b`, either side's.
fn time_wait(a: u16, b: u16) -> usize {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let (a, b) = (format!("0100007F:{a:04X}"), format!("0100007F:{b:04X}"));
    tcp.lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 3 && f[3] == "06")
        .filter(|f| (f[1] == a && f[2] == b) || (f[1] == b && f[2] == a))
        .count()
}

/// A TCP_CHECK with a fixed `bind_port` that connected closes with an
/// RST, not a FIN: no TIME_WAIT is left on either side, so the next check
/// binds the port again at once, epoll-driven and blocking, whether the
/// server never accepts (the checker closes first) or accepts and closes
/// at once (the server does, or the checker: a race).
#[test]
fn tcp_check_with_bind_port_closes_with_a_reset_and_leaves_no_time_wait() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    // A free port to bind the checks to.
    let src = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Never accepts: its connections wait in the accept queue.
    let idle = TcpListener::bind("127.0.0.1:0").unwrap();
    // Accepts and closes.
    let closing = TcpListener::bind("127.0.0.1:0").unwrap();
    let closing_port = closing.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in closing.incoming() {
            drop(c);
        }
    });
    for port in [idle.local_addr().unwrap().port(), closing_port] {
        let mut ck = checker(CheckKind::Tcp, lo, port);
        ck.bindto = Some(lo);
        ck.bind_port = Some(src);
        let t0 = Instant::now();
        for round in 0..3 {
            let got = evented_checks(std::slice::from_ref(&ck));
            assert_eq!(got[0].1, Outcome::Up(None), "port {port}, round {round}");
            assert_eq!(run(&ck), Outcome::Up(None), "port {port}, round {round}");
        }
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        // What the server's side may still be doing, let it end.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            time_wait(src, port),
            0,
            "TIME_WAIT between :{src} and :{port}"
        );
    }
}

/// What the real server sees: a TCP_CHECK without `bind_port` closes as
/// keepalived's does, with a FIN (the server reads an end of file); with
/// a `bind_port`, with an RST (the server reads a reset).
#[test]
fn tcp_check_closes_with_a_fin_as_keepalived_unless_bind_port() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let plain = checker(CheckKind::Tcp, lo, port);
    let mut bound = plain.clone();
    bound.bind_port = Some(
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
    );
    for (ck, blocking) in [
        (&plain, false),
        (&plain, true),
        (&bound, false),
        (&bound, true),
    ] {
        let got = if blocking {
            run(ck)
        } else {
            evented_checks(std::slice::from_ref(ck)).remove(0).1
        };
        assert_eq!(got, Outcome::Up(None));
        let (mut c, peer) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let r = c.read(&mut [0u8; 16]);
        if ck.bind_port.is_some() {
            assert_eq!(peer.port(), bound.bind_port.unwrap());
            let e = r.expect_err("a reset");
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
        } else {
            assert_eq!(r.unwrap(), 0, "an end of file (blocking: {blocking})");
        }
    }
}

#[test]
fn misc_exit_codes_dynamic_weight_and_timeout() {
    let m = |cmd: &str, dynamic| {
        let kind = CheckKind::Misc {
            path: cmd.to_string(),
            timeout: Duration::from_millis(500),
            dynamic,
            user: RunAs::ourselves(),
        };
        run(&checker(kind, IpAddr::from([127, 0, 0, 1]), 0))
    };
    assert_eq!(m("/bin/true", false), Outcome::Up(None));
    assert!(matches!(m("/bin/false", false), Outcome::Down(_)));
    assert!(matches!(m("/bin/sh -c exit\\ 7", false), Outcome::Down(_)));
    assert_eq!(m("/bin/true", true), Outcome::Up(None));
    assert!(matches!(m("/bin/false", true), Outcome::Down(_)));
    // A script path with arguments: exit 7 is weight 5.
    let dir = std::env::temp_dir().join(format!("rvs-ka-misc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("w.sh");
    std::fs::write(&script, "#!/bin/sh\nexit $1\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = script.display();
    assert_eq!(m(&format!("{s} 7"), true), Outcome::Up(Some(5)));
    assert_eq!(m(&format!("{s} 2"), true), Outcome::Up(Some(0)));
    assert!(matches!(m(&format!("{s} 7"), false), Outcome::Down(_)));
    // A hung script is killed at misc_timeout.
    let t = Instant::now();
    let Outcome::Down(e) = m("/bin/sleep 30", false) else {
        panic!("a hung script must fail")
    };
    assert!(e.contains("timed out"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(matches!(m("/nonexistent/x", false), Outcome::Down(_)));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// MISC_CHECK's `user`: the script runs with that uid and gid (root
/// needed to switch; skipped otherwise).
#[test]
fn misc_script_runs_as_its_user() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: switching a script's user needs root");
        return;
    }
    let nobody = RunAs::resolve("nobody", None, false).unwrap();
    let dir = std::env::temp_dir().join(format!("rvs-ka-misc-user-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.join("whoami.sh");
    // Exits 0 only as uid:gid $1:$2 with exactly the groups $3.
    std::fs::write(
        &script,
        "#!/bin/sh
[ \"$(id -u):$(id -g)\" = \"$1:$2\" ] && [ \"$(id -G)\" = \"$3\" ]
",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let m = |user: &RunAs, expect: &str| {
        let kind = CheckKind::Misc {
            path: format!("{} {expect}", script.display()),
            timeout: Duration::from_secs(5),
            dynamic: false,
            user: user.clone(),
        };
        run(&checker(kind, IpAddr::from([127, 0, 0, 1]), 0))
    };
    let n = nobody.uid;
    assert_eq!(m(&nobody, &format!("{n} {n} {n}")), Outcome::Up(None));
    // Not as root, nor as anyone else.
    assert!(matches!(m(&nobody, "0 0 0"), Outcome::Down(_)));
    let root = RunAs::ourselves();
    assert_eq!(m(&root, "0 0 0"), Outcome::Up(None));
    // Another primary group, root's supplementary groups dropped.
    let nobody_root = RunAs::resolve("nobody", Some("root"), false).unwrap();
    assert_eq!(m(&nobody_root, &format!("{n} 0 0")), Outcome::Up(None));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// 300 hung scripts and a quick one on the event loop, on this thread
/// alone: the quick one is judged at once, every hung one is killed at
/// its own misc_timeout (1 s), none of them waits for another, and no
/// script is left running.
#[test]
fn hung_scripts_on_the_event_loop_time_out_only_their_own_checks() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let misc = |cmd: &str| {
        let kind = CheckKind::Misc {
            path: cmd.to_string(),
            timeout: Duration::from_secs(1),
            dynamic: false,
            user: RunAs::ourselves(),
        };
        checker(kind, lo, 0)
    };
    // A marker in the command line, to find leftovers.
    let mark = format!("3{}.5", std::process::id() % 1000);
    let mut cks: Vec<Checker> = (0..300)
        .map(|_| misc(&format!("/bin/sleep {mark}")))
        .collect();
    cks.push(misc("/bin/true"));
    // On this thread (`evented_checks`): were they run one after another,
    // or by a few workers, the last would end 300 / workers s late.
    let out = evented_checks(&cks);
    for (i, o, at) in out {
        if i == 300 {
            assert_eq!(o, Outcome::Up(None));
            // Serialised it would wait 300 timeouts (300 s), with a few
            // workers 75 s; starting 300 processes on a loaded 2-vCPU
            // host can take more than the timeout itself (1.7 s seen).
            assert!(
                at < Duration::from_secs(5),
                "the quick script waited {at:?}"
            );
        } else {
            assert!(
                matches!(&o, Outcome::Down(e) if e.contains("timed out")),
                "{o:?}"
            );
            assert!(
                at < Duration::from_secs(4),
                "a hung script timed out after {at:?}"
            );
        }
    }
    let left = std::process::Command::new("pgrep")
        .args(["-f", &format!("sleep {mark}")])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "scripts left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

fn with_timeout(mut ck: Checker, ms: u64) -> Checker {
    ck.timing.connect_timeout = Duration::from_millis(ms);
    ck
}

/// A TLS server's configuration: a self-signed certificate for
/// `www.example.com` made now.
fn tls_server_config() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["www.example.com".into()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap(),
    )
}

/// A one-shot TLS server with a self-signed certificate for
/// `www.example.com`, answering `resp` then closing with a close_notify;
/// the SNI it got, and whether the client closed with a close_notify too.
fn serve_tls(resp: &'static str) -> (u16, std::thread::JoinHandle<(Option<String>, bool)>) {
    let cfg = tls_server_config();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let conn = rustls::ServerConnection::new(cfg).unwrap();
        let mut t = rustls::StreamOwned::new(conn, s);
        let mut req = Vec::new();
        let mut b = [0u8; 1024];
        while !req.ends_with(b"\r\n\r\n") {
            let n = t.read(&mut b).unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&b[..n]);
        }
        let sni = t.conn.server_name().map(str::to_string);
        t.write_all(resp.as_bytes()).unwrap();
        t.conn.send_close_notify();
        let _ = t.flush();
        // Ok(0): the client's close_notify; an error: closed without it.
        let notified = loop {
            match t.read(&mut b) {
                Ok(0) => break true,
                Ok(_) => {}
                Err(_) => break false,
            }
        };
        (sni, notified)
    });
    (port, h)
}

#[test]
fn ssl_get_any_certificate_sni_status_and_digest() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let ssl = |sni: bool, digest: Option<&str>| {
        let mut k = http(vec![], digest);
        if let CheckKind::Http { tls, sni: s, .. } = &mut k {
            *tls = true;
            *s = sni;
        }
        k
    };
    // A self-signed certificate is accepted; with enable_sni the
    // virtualhost is the SNI.
    let (port, h) = serve_tls("HTTP/1.0 200 OK\r\n\r\nabc");
    let ck = checker(
        ssl(true, Some("900150983cd24fb0d6963f7d28e17f72")),
        lo,
        port,
    );
    assert_eq!(run(&ck), Outcome::Up(None));
    // keepalived's quiet shutdown: no close_notify.
    assert_eq!(
        h.join().unwrap(),
        (Some("www.example.com".to_string()), false)
    );
    // Without enable_sni: no SNI.
    let (port, h) = serve_tls("HTTP/1.0 200 OK\r\n\r\nabc");
    assert_eq!(run(&checker(ssl(false, None), lo, port)), Outcome::Up(None));
    assert_eq!(h.join().unwrap().0, None);
    // Status and digest as HTTP_GET.
    let (port, _h) = serve_tls("HTTP/1.0 503 Busy\r\n\r\n");
    let Outcome::Down(e) = run(&checker(ssl(true, None), lo, port)) else {
        panic!("503 must fail")
    };
    assert!(e.contains("status_code [503]"), "{e}");
    let (port, _h) = serve_tls("HTTP/1.0 200 OK\r\n\r\nabd");
    let ck = checker(
        ssl(true, Some("900150983cd24fb0d6963f7d28e17f72")),
        lo,
        port,
    );
    assert!(matches!(run(&ck), Outcome::Down(e) if e.starts_with("MD5 digest error")));
    // A plain HTTP server is not a TLS one.
    let (port, _h) = serve("HTTP/1.0 200 OK\r\n\r\nabc");
    assert!(matches!(
        run(&with_timeout(checker(ssl(true, None), lo, port), 500)),
        Outcome::Down(_)
    ));
}

/// A checker whose socket cannot be bound (`bind_port` taken:
/// EADDRINUSE; `bindto` not an address of this host: EADDRNOTAVAIL) does
/// not run: keepalived logs it and tries again after delay_loop without
/// counting a failed attempt (its `connect_error`), for TCP_CHECK and
/// HTTP_GET (on the event loop and blocking), SMTP_CHECK, DNS_CHECK and
/// PING_CHECK; UDP_CHECK counts it as a failure, as keepalived's does.
#[test]
fn bind_failure_reschedules_without_counting() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    // A TCP and a UDP port held by this test.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port();
    let held_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken_udp = held_udp.local_addr().unwrap().port();
    let not_here = IpAddr::from([192, 0, 2, 1]);
    let dns = CheckKind::Dns {
        qtype: 6,
        name: ".".into(),
    };
    let smtp = CheckKind::Smtp {
        helo: "me.example".into(),
    };
    let cases = [
        (CheckKind::Tcp, taken, "TCP socket bind failed"),
        (http(vec![], None), taken, "WEB socket bind failed"),
        (smtp, taken, "SMTP_CHECK socket bind failed"),
        (dns, taken_udp, "UDP socket bind failed"),
    ];
    for (kind, taken, line) in cases {
        for (from, errno) in [(lo, "(os error 98)"), (not_here, "(os error 99)")] {
            let mut ck = checker(kind.clone(), lo, port);
            ck.bindto = Some(from);
            ck.bind_port = Some(taken);
            let got = run(&ck);
            let Outcome::Reschedule(e) = &got else {
                panic!("{kind:?} from {from}: {got:?}")
            };
            assert!(e.starts_with(line), "{e}");
            assert!(e.contains(errno) && e.ends_with("Rescheduling."), "{e}");
            if evented(&kind) {
                assert_eq!(evented_checks(std::slice::from_ref(&ck))[0].1, got);
            }
        }
    }
    let mut ping = checker(CheckKind::Ping, lo, 0);
    ping.bindto = Some(not_here);
    assert!(
        matches!(run(&ping), Outcome::Reschedule(e) if e.starts_with("ICMP socket bind failed")),
        "{:?}",
        run(&ping)
    );
    // UDP_CHECK: a failed attempt.
    let mut udp = checker(
        CheckKind::Udp {
            payload: vec![1],
            require_reply: None,
            reply_mask: vec![],
            min_len: 0,
            max_len: 255,
        },
        lo,
        port,
    );
    udp.bind_port = Some(taken_udp);
    assert!(matches!(run(&udp), Outcome::Down(_)), "{:?}", run(&udp));
    // Nothing reached the server.
    server.set_nonblocking(true).unwrap();
    assert!(server.accept().is_err());
}

/// SSL_GET's `sni_name` is the SNI (with `enable_sni` only), before the
/// virtualhost; `tls_compliant` (the checker's or the url's) ends the
/// exchange with a close_notify, on the event loop as blocking.
#[test]
fn ssl_get_sni_name_and_tls_compliant() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let ssl = |enable: bool, name: Option<&str>, compliant: (bool, bool)| {
        let mut k = http(vec![], None);
        if let CheckKind::Http {
            tls,
            sni,
            sni_name,
            tls_compliant,
            urls,
            ..
        } = &mut k
        {
            (*tls, *sni) = (true, enable);
            *sni_name = name.map(str::to_string);
            *tls_compliant = compliant.0;
            urls[0].tls_compliant = compliant.1;
        }
        k
    };
    let cases = [
        (
            true,
            Some("api.example.org"),
            (false, false),
            Some("api.example.org"),
            false,
        ),
        (false, Some("api.example.org"), (false, false), None, false),
        (true, None, (true, false), Some("www.example.com"), true),
        (true, None, (false, true), Some("www.example.com"), true),
    ];
    for (enable, name, compliant, want_sni, want_notify) in cases {
        for on_loop in [false, true] {
            let (port, h) = serve_tls("HTTP/1.0 200 OK\r\n\r\nabc");
            let ck = checker(ssl(enable, name, compliant), lo, port);
            let got = if on_loop {
                evented_checks(std::slice::from_ref(&ck)).remove(0).1
            } else {
                run(&ck)
            };
            assert_eq!(got, Outcome::Up(None));
            let (sni, notified) = h.join().unwrap();
            assert_eq!(
                (sni.as_deref(), notified),
                (want_sni, want_notify),
                "{enable} {name:?} {compliant:?}"
            );
        }
    }
}

/// `bind_if`: the checker's socket is bound to the interface
/// (SO_BINDTODEVICE): through `lo` it reaches a loopback server; an
/// interface that does not exist means the check cannot run (ENODEV,
/// rescheduled as a failed bind), for the TCP, UDP and ICMP checkers.
#[test]
fn bind_if_binds_the_socket_to_the_interface() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let dns = CheckKind::Dns {
        qtype: 6,
        name: ".".into(),
    };
    for kind in [CheckKind::Tcp, http(vec![], None), dns, CheckKind::Ping] {
        let mut ck = checker(kind.clone(), lo, port);
        ck.bind_if = Some("rvs-no-such0".into());
        let got = run(&ck);
        let Outcome::Reschedule(e) = &got else {
            panic!("{kind:?}: {got:?}")
        };
        assert!(e.contains("(os error 19)"), "{kind:?}: {e}");
        if evented(&kind) {
            assert_eq!(evented_checks(std::slice::from_ref(&ck))[0].1, got);
        }
    }
    let mut ck = checker(CheckKind::Tcp, lo, port);
    ck.bind_if = Some("lo".into());
    assert_eq!(run(&ck), Outcome::Up(None));
    assert_eq!(
        evented_checks(std::slice::from_ref(&ck))[0].1,
        Outcome::Up(None)
    );
}
