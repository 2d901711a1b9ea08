// SPDX-License-Identifier: GPL-2.0-or-later
//! SMTP_CHECK, DNS_CHECK, UDP_CHECK and PING_CHECK on the event loop:
//! many at once on one thread, one of them against a server that never
//! answers; only that one times out, at its own deadline, while the
//! others are over long before.

use super::*;

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
