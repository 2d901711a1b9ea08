// SPDX-License-Identifier: GPL-2.0-or-later
//! One attempt of each checker, bounded in time: TCP_CHECK (a connect
//! within `connect_timeout`), HTTP_GET (a GET of every `url`, status and
//! MD5 digest checked, the whole exchange within `connect_timeout` per url)
//! and MISC_CHECK (the script, killed with its process group after
//! `misc_timeout`).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use socket2::{Domain, SockAddr, Socket, Type};

use super::conf::{CheckKind, Checker, Url};

/// Largest HTTP response read (the rest is not part of the digest).
const MAX_RESPONSE: usize = 4 << 20;

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success; `Some(w)`: MISC_CHECK with misc_dynamic set the weight.
    Up(Option<u32>),
    /// Failure, and keepalived's log line for it.
    Down(String),
}

/// `[ip]:tcp:port`, as keepalived's `FMT_CHK`.
pub fn fmt_target(ip: IpAddr, port: u16) -> String {
    format!("[{ip}]:tcp:{port}")
}

/// Run one attempt of `ck`.
pub fn run(ck: &Checker) -> Outcome {
    match &ck.kind {
        CheckKind::Tcp => match connect(ck) {
            Ok(_) => Outcome::Up(None),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Outcome::Down(format!(
                "TCP connection to {} timeout.",
                fmt_target(ck.connect_ip, ck.connect_port)
            )),
            Err(e) => Outcome::Down(format!(
                "TCP connection to {} failed ({e}).",
                fmt_target(ck.connect_ip, ck.connect_port)
            )),
        },
        CheckKind::Http {
            tls: true, urls, ..
        } => Outcome::Down(format!(
            "SSL_GET of {} to {}: TLS checks are not supported by rvs yet.",
            urls[0].path,
            fmt_target(ck.connect_ip, ck.connect_port)
        )),
        CheckKind::Http {
            urls,
            virtualhost,
            http_protocol,
            ..
        } => {
            for u in urls {
                if let Err(e) = http_get(ck, u, virtualhost.as_deref(), http_protocol) {
                    return Outcome::Down(e);
                }
            }
            Outcome::Up(None)
        }
        CheckKind::Misc {
            path,
            timeout,
            dynamic,
        } => misc(path, *timeout, *dynamic),
    }
}

/// A TCP connection to the checker's target, from `bindto`/`bind_port`.
fn connect(ck: &Checker) -> std::io::Result<TcpStream> {
    let dst = SocketAddr::new(ck.connect_ip, ck.connect_port);
    let sock = Socket::new(Domain::for_address(dst), Type::STREAM, None)?;
    if ck.bindto.is_some() || ck.bind_port.is_some() {
        let ip = ck.bindto.unwrap_or(match dst {
            SocketAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
            SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
        });
        sock.bind(&SockAddr::from(SocketAddr::new(
            ip,
            ck.bind_port.unwrap_or(0),
        )))?;
    }
    let t = ck.timing.connect_timeout.max(Duration::from_millis(1));
    sock.connect_timeout(&SockAddr::from(dst), t)?;
    Ok(sock.into())
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// One GET of `u`; `Err` is keepalived's log line.
fn http_get(ck: &Checker, u: &Url, vhost: Option<&str>, proto: &str) -> Result<(), String> {
    let target = fmt_target(ck.connect_ip, ck.connect_port);
    let deadline = Instant::now() + ck.timing.connect_timeout;
    let mut s = connect(ck).map_err(|e| format!("HTTP connection to {target} failed ({e})."))?;
    let host = match u.virtualhost.as_deref().or(vhost) {
        Some(h) => h.to_string(),
        None => match ck.connect_ip {
            IpAddr::V6(a) => format!("[{a}]:{}", ck.connect_port),
            IpAddr::V4(a) => format!("{a}:{}", ck.connect_port),
        },
    };
    let version = if proto == "1.1" { "1.1" } else { "1.0" };
    let close = if proto == "1.0" {
        ""
    } else {
        "Connection: close\r\n"
    };
    let req = format!(
        "GET {} HTTP/{version}\r\nUser-Agent: KeepAliveClient\r\nHost: {host}\r\n{close}\r\n",
        u.path
    );
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    };
    let timeout_msg = || format!("Timeout reading data to {target} url {}.", u.path);
    s.set_write_timeout(Some(left().ok_or_else(timeout_msg)?))
        .map_err(|e| e.to_string())?;
    s.write_all(req.as_bytes())
        .map_err(|e| format!("Cannot send the request to {target} url {} ({e}).", u.path))?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        s.set_read_timeout(Some(left().ok_or_else(timeout_msg)?))
            .map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                resp.extend_from_slice(&buf[..n]);
                if resp.len() >= MAX_RESPONSE {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timeout_msg());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!(
                    "Error reading data from {target} url {} ({e}).",
                    u.path
                ));
            }
        }
    }
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("Malformed HTTP response from {target} url {}.", u.path))?;
    let head = String::from_utf8_lossy(&resp[..split]);
    let mut body = resp[split + 4..].to_vec();
    let status: u16 = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Malformed HTTP status line from {target} url {}.", u.path))?;
    if !u.status_ok(status) {
        return Err(format!(
            "HTTP status code error to {target} url({}), status_code [{status}].",
            u.path
        ));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body)
            .ok_or_else(|| format!("Malformed chunked body from {target} url {}.", u.path))?;
    }
    if let Some(r) = &u.regex {
        let re = regex::bytes::Regex::new(r).map_err(|e| format!("regex {r}: {e}"))?;
        if re.is_match(&body) == u.regex_no_match {
            return Err(format!(
                "Regex {} failed on {target} url {}.",
                if u.regex_no_match {
                    "no-match"
                } else {
                    "match"
                },
                u.path
            ));
        }
    }
    if let Some(want) = &u.digest {
        let got = md5_hex(&body);
        if &got != want {
            return Err(format!(
                "MD5 digest error to {target} url[{}], MD5SUM [{got}].",
                u.path
            ));
        }
    }
    Ok(())
}

/// MD5 of `data`, lower-case hex (genhash's output).
pub fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Run the MISC_CHECK command `path` for at most `timeout`.
fn misc(path: &str, timeout: Duration, dynamic: bool) -> Outcome {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut words = path.split_whitespace();
    let Some(prog) = words.next() else {
        return Outcome::Down("Misc check: empty misc_path.".into());
    };
    let mut child = match Command::new(prog)
        .args(words)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Outcome::Down(format!("Misc check to {path} cannot run ({e}).")),
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                // The script and everything it started.
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::Down(format!("Misc check for [{path}] timed out."));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Outcome::Down(format!("Misc check to {path}: {e}.")),
        }
    };
    let Some(code) = status.code() else {
        return Outcome::Down(format!(
            "Misc check for [{path}] was killed by signal {}.",
            status.signal().unwrap_or(0)
        ));
    };
    match (code, dynamic) {
        (0, _) => Outcome::Up(None),
        (2..=255, true) => Outcome::Up(Some(code as u32 - 2)),
        (c, _) => Outcome::Down(format!("Misc check for [{path}] failed (exit {c}).")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::conf::Timing;
    use std::net::TcpListener;

    fn checker(kind: CheckKind, ip: IpAddr, port: u16) -> Checker {
        Checker {
            kind,
            connect_ip: ip,
            connect_port: port,
            bindto: None,
            bind_port: None,
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
            urls: vec![Url {
                path: "/index.html".into(),
                digest: digest.map(str::to_string),
                status,
                virtualhost: None,
                regex: None,
                regex_no_match: false,
            }],
            virtualhost: Some("www.example.com".into()),
            http_protocol: "1.0".into(),
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

    #[test]
    fn misc_exit_codes_dynamic_weight_and_timeout() {
        let m = |cmd: &str, dynamic| misc(cmd, Duration::from_millis(500), dynamic);
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
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
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
}
