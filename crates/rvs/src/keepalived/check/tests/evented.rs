// SPDX-License-Identifier: GPL-2.0-or-later
//! HTTP_GET and SSL_GET on the event loop: many at once on one thread,
//! against servers that answer, hang or drip.

use super::*;

/// What a test server does with each connection.
#[derive(Clone, Copy)]
enum Serve {
    /// Read the request, answer this, close.
    Answer(&'static str),
    /// Accept and never answer (nor read).
    Hang,
    /// Read the request, answer this a byte at a time, one every so
    /// often, close.
    Drip(&'static str, Duration),
}

/// Read a request (up to its blank line).
fn read_request(s: &mut impl Read) -> Vec<u8> {
    let mut req = Vec::new();
    let mut b = [0u8; 1024];
    while !req.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&b[..n]),
        }
    }
    req
}

/// A plain HTTP server doing `how` on every connection, each on a thread
/// of its own (the test's, not the checker's).
fn http_server(how: Serve) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut s) = c else { return };
            std::thread::spawn(move || match how {
                Serve::Hang => std::thread::sleep(Duration::from_secs(10)),
                Serve::Answer(r) => {
                    read_request(&mut s);
                    let _ = s.write_all(r.as_bytes());
                }
                Serve::Drip(r, every) => {
                    read_request(&mut s);
                    for b in r.as_bytes() {
                        if s.write_all(&[*b]).is_err() {
                            return;
                        }
                        std::thread::sleep(every);
                    }
                }
            });
        }
    });
    port
}

/// A TLS server (self-signed certificate) doing `how` on every
/// connection (`Hang`: no handshake either); the SNI of each request
/// answered.
fn tls_server(how: Serve) -> (u16, Arc<std::sync::Mutex<Vec<Option<String>>>>) {
    let cfg = tls_server_config();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let snis = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&snis);
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(s) = c else { return };
            let (cfg, seen) = (Arc::clone(&cfg), Arc::clone(&seen));
            std::thread::spawn(move || {
                let r = match how {
                    Serve::Hang => return std::thread::sleep(Duration::from_secs(10)),
                    Serve::Answer(r) | Serve::Drip(r, _) => r,
                };
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut t = rustls::StreamOwned::new(conn, s);
                read_request(&mut t);
                seen.lock()
                    .unwrap()
                    .push(t.conn.server_name().map(str::to_string));
                match how {
                    Serve::Drip(_, every) => {
                        for b in r.as_bytes() {
                            if t.write_all(&[*b]).and_then(|()| t.flush()).is_err() {
                                return;
                            }
                            std::thread::sleep(every);
                        }
                    }
                    _ => {
                        let _ = t.write_all(r.as_bytes());
                    }
                }
                t.conn.send_close_notify();
                let _ = t.flush();
            });
        }
    });
    (port, snis)
}

/// HTTP_GET and SSL_GET on the event loop, all at once in one epoll set
/// on this thread: 200 with the right digest, 500, a wrong digest, a
/// regex miss, chunked, two urls; each over TLS too, with SNI; a server
/// that accepts and never answers (plain, and TLS: no handshake) and one
/// that drips its answer past the timeout time out, and only they: the
/// others are over before the first timeout; a drip within the timeout
/// passes. The lines are those of the blocking check.
#[test]
fn http_get_and_ssl_get_on_the_event_loop() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    const DIGEST: &str = "900150983cd24fb0d6963f7d28e17f72"; // "abc"
    let with = |tls: bool, digest: Option<&str>, regex: Option<&str>, paths: &[&str]| {
        let mut k = http(vec![], digest);
        if let CheckKind::Http {
            tls: t, sni, urls, ..
        } = &mut k
        {
            (*t, *sni) = (tls, true);
            urls[0].regex = regex.map(str::to_string);
            for p in paths {
                let mut u = urls[0].clone();
                u.path = p.to_string();
                urls.push(u);
            }
        }
        k
    };
    let ok = "HTTP/1.0 200 OK\r\n\r\nabc";
    let chunked =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n2\r\nbc\r\n0\r\n\r\n";
    let quick = Duration::from_secs(5);
    let short = Duration::from_millis(700);
    let drip = Serve::Drip("HTTP/1.0 200 OK\r\n\r\nabc", Duration::from_millis(10));
    let slow_drip = Serve::Drip(
        "HTTP/1.0 200 OK\r\nServer: a slow one, twenty bytes a second\r\n\r\nabc",
        Duration::from_millis(50),
    );
    // (tls, served, digest, regex, more urls, timeout, expected line: ""
    // for up, else its start)
    type Case = (
        bool,
        Serve,
        Option<&'static str>,
        Option<&'static str>,
        &'static [&'static str],
        Duration,
        &'static str,
    );
    let mut cases: Vec<Case> = Vec::new();
    for tls in [false, true] {
        cases.extend([
            (
                tls,
                Serve::Answer(ok),
                Some(DIGEST),
                None,
                &[][..],
                quick,
                "",
            ),
            (
                tls,
                Serve::Answer("HTTP/1.0 500 Oops\r\n\r\n"),
                None,
                None,
                &[],
                quick,
                "HTTP status code error to [127.0.0.1]:tcp:",
            ),
            (
                tls,
                Serve::Answer("HTTP/1.0 200 OK\r\n\r\nabd"),
                Some(DIGEST),
                None,
                &[],
                quick,
                "MD5 digest error to [127.0.0.1]:tcp:",
            ),
            (
                tls,
                Serve::Answer(ok),
                None,
                Some("x[0-9]"),
                &[],
                quick,
                "Regex match failed on [127.0.0.1]:tcp:",
            ),
            (
                tls,
                Serve::Answer(chunked),
                Some(DIGEST),
                None,
                &[],
                quick,
                "",
            ),
            (
                tls,
                Serve::Answer(ok),
                None,
                Some("ab"),
                &["/two"],
                quick,
                "",
            ),
            (tls, drip, Some(DIGEST), None, &[], quick, ""),
            (
                tls,
                Serve::Hang,
                None,
                None,
                &[],
                short,
                if tls {
                    "Cannot send the request to [127.0.0.1]:tcp:"
                } else {
                    "Timeout reading data to [127.0.0.1]:tcp:"
                },
            ),
            (
                tls,
                slow_drip,
                None,
                None,
                &[],
                short,
                "Timeout reading data to [127.0.0.1]:tcp:",
            ),
        ]);
    }
    let mut snis = Vec::new();
    let cks: Vec<Checker> = cases
        .iter()
        .map(|&(tls, how, digest, regex, more, timeout, _)| {
            let port = if tls {
                let (p, s) = tls_server(how);
                snis.push(s);
                p
            } else {
                http_server(how)
            };
            let mut ck = checker(with(tls, digest, regex, more), lo, port);
            ck.timing.connect_timeout = timeout;
            ck
        })
        .collect();
    let got = evented_checks(&cks);
    for (i, out, at) in &got {
        let (tls, _, _, _, _, timeout, want) = cases[*i];
        let port = cks[*i].connect_port;
        match out {
            Outcome::Up(None) => assert_eq!(want, "", "case {i} (tls {tls}) up at {at:?}"),
            Outcome::Down(e) => {
                assert!(
                    !want.is_empty() && e.starts_with(&format!("{want}{port}")),
                    "case {i} (tls {tls}): {e}"
                )
            }
            o => panic!("case {i}: {o:?}"),
        }
        if timeout == short {
            assert!(*at >= short, "case {i} timed out early: {at:?}");
            assert!(*at < short + Duration::from_secs(2), "case {i}: {at:?}");
            assert!(
                out != &Outcome::Up(None) && {
                    let Outcome::Down(e) = out else {
                        unreachable!()
                    };
                    e.ends_with("url /index.html.") || e.ends_with("(timed out).")
                },
                "case {i}: {out:?}"
            );
        } else {
            assert!(
                *at < short,
                "case {i} (tls {tls}) waited for the hung ones: {at:?}"
            );
        }
    }
    assert_eq!(got.len(), cases.len());
    // Every TLS request answered had the virtualhost as its SNI.
    for s in &snis {
        for sni in s.lock().unwrap().iter() {
            assert_eq!(sni.as_deref(), Some("www.example.com"));
        }
    }
    // The lines of the TLS server that never shakes hands and of the
    // plain one that never answers.
    let hung = |tls| {
        got.iter()
            .find(|(i, ..)| cases[*i].0 == tls && matches!(cases[*i].1, Serve::Hang))
            .unwrap()
    };
    let (i, out, _) = hung(true);
    assert_eq!(
        *out,
        Outcome::Down(format!(
            "Cannot send the request to [127.0.0.1]:tcp:{} url /index.html (timed out).",
            cks[*i].connect_port
        ))
    );
    let (i, out, _) = hung(false);
    assert_eq!(
        *out,
        Outcome::Down(format!(
            "Timeout reading data to [127.0.0.1]:tcp:{} url /index.html.",
            cks[*i].connect_port
        ))
    );
}

/// HTTP_GET with several urls: each in turn on a connection of its own;
/// the first that fails is the line (its path), and one that cannot
/// connect is a connect failure; an HTTP_GET without a url is up.
#[test]
fn http_get_urls_in_turn() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let paths = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&paths);
    std::thread::spawn(move || {
        for c in l.incoming() {
            let mut s = c.unwrap();
            let req = String::from_utf8(read_request(&mut s)).unwrap();
            let path = req.split_whitespace().nth(1).unwrap().to_string();
            let r = if path == "/bad" {
                "HTTP/1.0 404 No\r\n\r\n"
            } else {
                "HTTP/1.0 200 OK\r\n\r\n"
            };
            seen.lock().unwrap().push(path);
            s.write_all(r.as_bytes()).unwrap();
        }
    });
    let urls = |ps: &[&str]| {
        let mut k = http(vec![], None);
        if let CheckKind::Http { urls, .. } = &mut k {
            let u = urls.remove(0);
            for p in ps {
                let mut u = u.clone();
                u.path = p.to_string();
                urls.push(u);
            }
        }
        k
    };
    let all = checker(urls(&["/a", "/b", "/c"]), lo, port);
    assert_eq!(
        evented_checks(std::slice::from_ref(&all))[0].1,
        Outcome::Up(None)
    );
    assert_eq!(*paths.lock().unwrap(), ["/a", "/b", "/c"]);
    paths.lock().unwrap().clear();
    let bad = checker(urls(&["/a", "/bad", "/c"]), lo, port);
    assert_eq!(
        run(&bad),
        Outcome::Down(format!(
            "HTTP status code error to [127.0.0.1]:tcp:{port} url(/bad), status_code [404]."
        ))
    );
    assert_eq!(*paths.lock().unwrap(), ["/a", "/bad"]);
    let none = checker(urls(&[]), lo, port);
    assert_eq!(
        evented_checks(std::slice::from_ref(&none))[0].1,
        Outcome::Up(None)
    );
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = checker(urls(&["/a"]), lo, closed);
    let Outcome::Down(e) = evented_checks(std::slice::from_ref(&refused)).remove(0).1 else {
        panic!("a closed port must fail")
    };
    assert!(
        e.starts_with(&format!(
            "HTTP connection to [127.0.0.1]:tcp:{closed} failed (Connection refused"
        )),
        "{e}"
    );
}

/// A listener on 127.0.0.1 with room for `backlog` connections waiting.
fn listener(backlog: i32) -> TcpListener {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))
        .unwrap();
    s.listen(backlog).unwrap();
    s.into()
}

/// Hundreds of HTTP_GETs at once on this one thread: 200 against a
/// server that answers (one thread, a connection after the other) and
/// 200 against one that never accepts (their connects complete in its
/// accept queue, and nothing ever comes): the first are all up before
/// the others' timeout, which is each one's own.
#[test]
fn hundreds_of_http_gets_on_one_thread() {
    let lo = IpAddr::from([127, 0, 0, 1]);
    let answers = listener(1024);
    let good = answers.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in answers.incoming() {
            let mut s = c.unwrap();
            read_request(&mut s);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nabc");
        }
    });
    let silent = listener(1024);
    let hung = silent.local_addr().unwrap().port();
    let timeout = Duration::from_millis(2500);
    let cks: Vec<Checker> = (0..400)
        .map(|i| {
            let port = if i % 2 == 0 { good } else { hung };
            let mut ck = checker(http(vec![], Some(md5_hex(b"abc").as_str())), lo, port);
            ck.timing.connect_timeout = timeout;
            ck
        })
        .collect();
    let got = evented_checks(&cks);
    assert_eq!(got.len(), 400);
    let last_good = got
        .iter()
        .filter(|(i, ..)| i % 2 == 0)
        .map(|(i, o, at)| {
            assert_eq!(*o, Outcome::Up(None), "check {i}");
            *at
        })
        .max()
        .unwrap();
    assert!(last_good < timeout, "{last_good:?}");
    for (i, o, at) in got.iter().filter(|(i, ..)| i % 2 == 1) {
        assert!(*at >= timeout, "check {i} at {at:?}");
        assert_eq!(
            *o,
            Outcome::Down(format!(
                "Timeout reading data to [127.0.0.1]:tcp:{hung} url /index.html."
            )),
            "check {i}"
        );
    }
    drop(silent);
}
