// SPDX-License-Identifier: GPL-2.0-or-later
//! DNS_CHECK, SMTP_CHECK, UDP_CHECK and PING_CHECK: their parsers, one
//! check of each against servers started here (moved from `tests.rs`
//! unchanged), and many at once on one thread, one of them against a
//! server that never answers: only that one times out, at its own
//! deadline, while the others are over long before.

use super::*;

#[test]
fn dns_query_bytes_and_judgement() {
    let q = dns_query(0x1234, 28, "example.com.");
    assert_eq!(
        q,
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x1c\x00\x01"
    );
    assert_eq!(
        dns_query(1, 6, "."),
        b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x06\x00\x01"
    );
    assert_eq!(
        dns_judge(1, b"\x00\x01\x81\x80"),
        None,
        "shorter than a header"
    );
    let reply = |id: u16, flags: u16| {
        let mut r = q.clone();
        r[..2].copy_from_slice(&id.to_be_bytes());
        r[2..4].copy_from_slice(&flags.to_be_bytes());
        r
    };
    assert_eq!(
        dns_judge(0x1234, &reply(0x1235, 0x8180)),
        None,
        "another id"
    );
    assert_eq!(dns_judge(0x1234, &reply(0x1234, 0x0100)), None, "a query");
    assert_eq!(dns_judge(0x1234, &reply(0x1234, 0x8180)), Some(Ok(())));
    assert_eq!(dns_judge(0x1234, &reply(0x1234, 0x8183)), Some(Err(3)));
}

/// A UDP responder: for each datagram, `answer` gives the replies.
fn udp_server(
    answer: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
) -> (u16, std::thread::JoinHandle<()>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let h = std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut b) {
            for r in answer(&b[..n]) {
                s.send_to(&r, from).unwrap();
            }
        }
    });
    (port, h)
}

#[test]
fn dns_check_against_a_responder() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let kind = CheckKind::Dns {
        qtype: 6,
        name: ".".into(),
    };
    // A stray reply with another id first, then the answer: up.
    let (port, _h) = udp_server(|q| {
        let mut stray = q.to_vec();
        stray[0] ^= 0xff;
        stray[2] |= 0x80;
        let mut ok = q.to_vec();
        ok[2] |= 0x80;
        vec![stray, ok]
    });
    assert_eq!(run(&checker(kind.clone(), lo, port)), Outcome::Up(None));
    // REFUSED (rcode 5): down.
    let (port, _h) = udp_server(|q| {
        let mut r = q.to_vec();
        r[2] |= 0x80;
        r[3] = 0x85;
        vec![r]
    });
    let Outcome::Down(e) = run(&checker(kind.clone(), lo, port)) else {
        panic!("rcode 5 must fail")
    };
    assert_eq!(
        e,
        format!("DNS_CHECK ([127.0.0.1]:udp:{port}) read error occurred. (rcode = 5)")
    );
    // Silence: down at connect_timeout.
    let (port, _h) = udp_server(|_| vec![]);
    let t = Instant::now();
    let Outcome::Down(e) = run(&with_timeout(checker(kind.clone(), lo, port), 300)) else {
        panic!("no reply must fail")
    };
    assert!(e.ends_with("read timeout from socket"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
    // Nobody on the port: the port unreachable fails it at once.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(matches!(run(&checker(kind, lo, port)), Outcome::Down(_)));
}

/// A one-shot SMTP server: `banner`, then `helo_reply` to the HELO;
/// the lines it got.
fn smtp_server(
    banner: &'static str,
    helo_reply: &'static str,
) -> (u16, std::thread::JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(banner.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 256];
        let mut answered = false;
        while let Ok(n) = s.read(&mut b) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&b[..n]);
            if !answered && got.ends_with(b"\r\n") {
                answered = true;
                s.write_all(helo_reply.as_bytes()).unwrap();
            }
        }
        String::from_utf8(got).unwrap()
    });
    (port, h)
}

#[test]
fn smtp_check_banner_helo_quit() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let kind = CheckKind::Smtp {
        helo: "me.example".into(),
    };
    let (port, h) = smtp_server(
        "220-mx.example ESMTP\r\n220 ready\r\n",
        "250 mx.example\r\n",
    );
    assert_eq!(run(&checker(kind.clone(), lo, port)), Outcome::Up(None));
    assert_eq!(h.join().unwrap(), "HELO me.example\r\nQUIT\r\n");
    let (port, _h) = smtp_server("554 go away\r\n", "");
    let Outcome::Down(e) = run(&checker(kind.clone(), lo, port)) else {
        panic!("554 must fail")
    };
    assert!(
        e.starts_with("SMTP_CHECK Bad greeting response code 554"),
        "{e}"
    );
    let (port, _h) = smtp_server("220 ready\r\n", "502 no\r\n");
    let Outcome::Down(e) = run(&checker(kind.clone(), lo, port)) else {
        panic!("502 to HELO must fail")
    };
    assert!(
        e.starts_with("SMTP_CHECK Bad HELO response code 502"),
        "{e}"
    );
    // A server that never greets: down at connect_timeout.
    let (port, _h) = smtp_server("", "");
    let Outcome::Down(e) = run(&with_timeout(checker(kind, lo, port), 300)) else {
        panic!("silence must fail")
    };
    assert!(e.contains("Read timeout"), "{e}");
}

#[test]
fn udp_check_replies_silence_and_port_unreachable() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let udp = |req: Option<&[u8]>| CheckKind::Udp {
        payload: vec![0xde, 0xad],
        require_reply: req.map(<[u8]>::to_vec),
        reply_mask: vec![],
        min_len: 0,
        max_len: 255,
    };
    let echo = || udp_server(|q| vec![q.to_vec()]);
    let (port, _h) = echo();
    assert_eq!(
        run(&checker(udp(Some(&[0xde])), lo, port)),
        Outcome::Up(None)
    );
    let (port, _h) = echo();
    assert_eq!(run(&checker(udp(Some(&[])), lo, port)), Outcome::Up(None));
    let (port, _h) = echo();
    let Outcome::Down(e) = run(&checker(udp(Some(&[0xbe, 0xef])), lo, port)) else {
        panic!("a mismatch must fail")
    };
    assert_eq!(
        e,
        format!("UDP_CHECK on service [127.0.0.1]:udp:{port} failed (reply data mismatch).")
    );
    // Lengths count when there is data to match.
    let (port, _h) = echo();
    let mut k = udp(Some(&[0xde]));
    if let CheckKind::Udp { min_len, .. } = &mut k {
        *min_len = 3;
    }
    assert!(matches!(run(&checker(k, lo, port)), Outcome::Down(_)));
    // Silence: up without require_reply, down with it.
    let (port, _h) = udp_server(|_| vec![]);
    assert_eq!(
        run(&with_timeout(checker(udp(None), lo, port), 300)),
        Outcome::Up(None)
    );
    assert!(matches!(
        run(&with_timeout(checker(udp(Some(&[])), lo, port), 300)),
        Outcome::Down(e) if e.contains("no reply")
    ));
    // A closed port: the ICMP port unreachable fails it.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Outcome::Down(e) = run(&checker(udp(None), lo, port)) else {
        panic!("a closed port must fail")
    };
    assert!(e.contains("refused"), "{e}");
}

#[test]
fn udp_reply_bounds() {
    let any = (0, 255);
    assert!(udp_reply_ok(b"abc", b"ab", &[], any));
    assert!(
        udp_reply_ok(b"a", b"ab", &[], any),
        "only as many bytes as both have"
    );
    assert!(!udp_reply_ok(b"xbc", b"ab", &[], any));
    assert!(!udp_reply_ok(b"abc", b"ab", &[], (4, 255)));
    assert!(!udp_reply_ok(b"abc", b"ab", &[], (0, 2)));
    // Wildcard nibbles: 0x5x matches 0x50..0x5f only.
    assert!(udp_reply_ok(&[1, 0x57], &[1, 0x50], &[0, 0x0f], any));
    assert!(!udp_reply_ok(&[1, 0x67], &[1, 0x50], &[0, 0x0f], any));
}

#[test]
fn ping_check_loopback() {
    assert_eq!(inet_checksum(&[0x08, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
    let ck = checker(CheckKind::Ping, IpAddr::from([127, 0, 0, 1]), 0);
    assert_eq!(run(&ck), Outcome::Up(None));
    let ck = checker(CheckKind::Ping, "::1".parse().unwrap(), 0);
    assert_eq!(run(&ck), Outcome::Up(None));
}

/// How many checks against the servers that answer.
const MANY: usize = 100;

/// The deadline of the check against the server that never answers; the
/// others have 10 s.
const HUNG_MS: u64 = 1000;

/// Run `answering` (each with a 10 s `connect_timeout`) and `hung` (with
/// [`HUNG_MS`]) at once through [`Checks`] on this thread: every
/// answering one up before `hung`'s deadline, and `hung`'s outcome, not
/// before its deadline nor long after it.
fn only_the_hung_one_times_out(answering: Vec<Checker>, hung: Checker) -> Outcome {
    let n = answering.len();
    let mut cks: Vec<Checker> = answering
        .into_iter()
        .map(|c| with_timeout(c, 10_000))
        .collect();
    cks.push(with_timeout(hung, HUNG_MS));
    let out = evented_checks(&cks);
    let deadline = Duration::from_millis(HUNG_MS);
    let mut hung_out = None;
    for (i, o, at) in out {
        if i == n {
            assert!(at >= deadline, "the hung check was over early: {at:?}");
            assert!(at < deadline * 3, "the hung check was over late: {at:?}");
            hung_out = Some(o);
        } else {
            assert_eq!(
                o,
                Outcome::Up(None),
                "check {i} against a server that answers"
            );
            assert!(
                at < deadline,
                "check {i} was over at {at:?}, not before the hung one"
            );
        }
    }
    hung_out.expect("the hung check is over")
}

/// An SMTP server greeting every connection, each on a thread of the
/// test's own: the greeting, 250 to the HELO, then it reads to the end.
fn smtp_many() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut s) = c else { return };
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let _ = s.write_all(b"220 ready\r\n");
                let mut got = Vec::new();
                let mut b = [0u8; 256];
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&b[..n]);
                    if got.ends_with(b"\r\n") && got.starts_with(b"HELO") {
                        let _ = s.write_all(b"250 mx.example\r\n");
                        got.clear();
                    }
                }
            });
        }
    });
    port
}

#[test]
fn smtp_checks_on_one_thread_a_hung_server_times_out_only_its_own() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let kind = CheckKind::Smtp {
        helo: "me.example".into(),
    };
    let port = smtp_many();
    // Accepted by the kernel, never greeted.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_port = silent.local_addr().unwrap().port();
    let answering = (0..MANY).map(|_| checker(kind.clone(), lo, port)).collect();
    let out = only_the_hung_one_times_out(answering, checker(kind, lo, hung_port));
    assert_eq!(
        out,
        Outcome::Down(format!(
            "SMTP_CHECK Read timeout from server [127.0.0.1]:tcp:{hung_port}."
        ))
    );
}

#[test]
fn dns_checks_on_one_thread_a_hung_server_times_out_only_its_own() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let kind = CheckKind::Dns {
        qtype: 6,
        name: ".".into(),
    };
    let (port, _h) = udp_server(|q| {
        let mut ok = q.to_vec();
        ok[2] |= 0x80;
        vec![ok]
    });
    let (hung_port, _s) = udp_server(|_| vec![]);
    let answering = (0..MANY).map(|_| checker(kind.clone(), lo, port)).collect();
    let out = only_the_hung_one_times_out(answering, checker(kind, lo, hung_port));
    assert_eq!(
        out,
        Outcome::Down(format!(
            "DNS_CHECK ([127.0.0.1]:udp:{hung_port}) read timeout from socket"
        ))
    );
}

#[test]
fn udp_checks_on_one_thread_a_hung_server_times_out_only_its_own() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let udp = |req: Option<&[u8]>| CheckKind::Udp {
        payload: vec![0xde, 0xad],
        require_reply: req.map(<[u8]>::to_vec),
        reply_mask: vec![],
        min_len: 0,
        max_len: 255,
    };
    let (port, _h) = udp_server(|q| vec![q.to_vec()]);
    let (hung_port, _s) = udp_server(|_| vec![]);
    let answering: Vec<Checker> = (0..MANY)
        .map(|_| checker(udp(Some(&[0xde])), lo, port))
        .collect();
    let out =
        only_the_hung_one_times_out(answering.clone(), checker(udp(Some(&[])), lo, hung_port));
    assert_eq!(
        out,
        Outcome::Down(format!(
            "UDP_CHECK on service [127.0.0.1]:udp:{hung_port} failed (no reply)."
        ))
    );
    // Without require_reply silence passes, at the deadline too.
    let out = only_the_hung_one_times_out(answering, checker(udp(None), lo, hung_port));
    assert_eq!(out, Outcome::Up(None));
}

/// Removes its network namespace when dropped.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// PING_CHECKs of loopback (both families) and one of an address behind
/// a veth whose other end drops its packets (sent to a MAC no one has:
/// no reply), in a namespace of the test's own.
#[test]
fn netns_ping_checks_on_one_thread_a_silent_address_times_out_only_its_own() {
    if !rvs_testsupport::privileged() {
        return;
    }
    let ns = Netns(format!("rvsping{}", std::process::id()));
    rvs_testsupport::ip(&["netns", "add", &ns.0]);
    rvs_testsupport::ipn(&ns.0, "link set lo up");
    rvs_testsupport::ipn(&ns.0, "link add v0 type veth peer name v1");
    rvs_testsupport::ipn(&ns.0, "addr add 10.9.9.1/24 dev v0");
    rvs_testsupport::ipn(&ns.0, "link set v0 up");
    rvs_testsupport::ipn(&ns.0, "link set v1 up");
    // A MAC no one has: v1 drops what comes for it, and nothing answers.
    rvs_testsupport::ipn(
        &ns.0,
        "neigh replace 10.9.9.2 lladdr 02:00:00:00:09:02 dev v0 nud permanent",
    );
    let out = rvs_testsupport::in_netns(&ns.0, || {
        let answering = (0..MANY)
            .map(|i| {
                let ip = if i % 2 == 0 {
                    IpAddr::from([127, 0, 0, 1])
                } else {
                    "::1".parse().unwrap()
                };
                checker(CheckKind::Ping, ip, 0)
            })
            .collect();
        let silent = checker(CheckKind::Ping, IpAddr::from([10, 9, 9, 2]), 0);
        only_the_hung_one_times_out(answering, silent)
    });
    assert_eq!(
        out,
        Outcome::Down("ICMP connection to address 10.9.9.2 failed (timeout).".into())
    );
}

/// `bind_if` with a link-local IPv6 target: the address names no
/// interface, `bind_if` gives its scope. Real servers in a namespace of
/// their own, behind a veth: TCP_CHECK, HTTP_GET (on the event loop) and
/// PING_CHECK reach `fe80::b` through `bind_if v0`; through an interface
/// that does not lead there (`lo`), they fail.
#[test]
fn netns_bind_if_reaches_a_link_local_real_server() {
    if !rvs_testsupport::privileged() {
        return;
    }
    let (a, b) = (
        Netns(format!("rvsllA{}", std::process::id())),
        Netns(format!("rvsllB{}", std::process::id())),
    );
    rvs_testsupport::ip(&["netns", "add", &a.0]);
    rvs_testsupport::ip(&["netns", "add", &b.0]);
    rvs_testsupport::ipn(
        &a.0,
        &format!("link add v0 type veth peer name v1 netns {}", b.0),
    );
    rvs_testsupport::ipn(&a.0, "addr add fe80::a/64 dev v0 nodad");
    rvs_testsupport::ipn(&b.0, "addr add fe80::b/64 dev v1 nodad");
    rvs_testsupport::ipn(&a.0, "link set v0 up");
    rvs_testsupport::ipn(&b.0, "link set v1 up");
    // The real server: answers one HTTP request per connection.
    let server = rvs_testsupport::in_netns(&b.0, || {
        // A link-local address is bound with its interface.
        let ll: std::net::Ipv6Addr = "fe80::b".parse().unwrap();
        let s = Socket::new(Domain::IPV6, Type::STREAM, None)?;
        s.bind_device(Some(b"v1"))?;
        s.bind(&SocketAddr::from(std::net::SocketAddrV6::new(ll, 0, 0, 0)).into())?;
        s.listen(64)?;
        Ok::<TcpListener, std::io::Error>(s.into())
    })
    .unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in server.incoming() {
            let Ok(mut s) = s else { continue };
            let mut b = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut b);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nok");
        }
    });
    let target: IpAddr = "fe80::b".parse().unwrap();
    let out = rvs_testsupport::in_netns(&a.0, || {
        // A link just up can lose the first SYN (neighbour discovery):
        // one connect first, with time for a retransmission.
        let mut warm = checker(CheckKind::Tcp, target, port);
        warm.timing.connect_timeout = Duration::from_secs(5);
        warm.bind_if = Some("v0".into());
        assert_eq!(run(&warm), Outcome::Up(None));
        let mut got = Vec::new();
        for dev in ["v0", "lo"] {
            for kind in [CheckKind::Tcp, http(vec![], None), CheckKind::Ping] {
                let mut ck = checker(kind.clone(), target, port);
                ck.timing.connect_timeout = Duration::from_millis(500);
                ck.bind_if = Some(dev.into());
                let blocking = run(&ck);
                let on_loop = evented_checks(std::slice::from_ref(&ck)).remove(0).1;
                got.push((dev, kind, blocking, on_loop));
            }
        }
        got
    });
    for (dev, kind, blocking, on_loop) in out {
        let up = matches!(blocking, Outcome::Up(_));
        assert_eq!(up, dev == "v0", "{dev} {kind:?}: {blocking:?}");
        if evented(&kind) || matches!(kind, CheckKind::Tcp) {
            assert_eq!(
                matches!(on_loop, Outcome::Up(_)),
                up,
                "{dev} {kind:?}: {on_loop:?}"
            );
        }
    }
}
