// SPDX-License-Identifier: GPL-2.0-or-later
//! One attempt of each checker, bounded in time: TCP_CHECK (a connect
//! within `connect_timeout`), HTTP_GET and SSL_GET (a GET of every `url`,
//! status and MD5 digest checked, the whole exchange within
//! `connect_timeout` per url), MISC_CHECK (the script, killed with its
//! process group after `misc_timeout`), DNS_CHECK, SMTP_CHECK, UDP_CHECK
//! and PING_CHECK (each within `connect_timeout`); FILE_CHECK reads its
//! file.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::conf::{CheckKind, Checker};

mod http;
mod probes;
mod tcp;
#[cfg(test)]
mod tests;

pub use tcp::TcpChecks;

use http::*;
use probes::*;

/// Largest HTTP response read (the rest is not part of the digest).
const MAX_RESPONSE: usize = 4 << 20;

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success; `Some(w)`: MISC_CHECK with misc_dynamic set the weight.
    Up(Option<u32>),
    /// Failure, and keepalived's log line for it.
    Down(String),
    /// FILE_CHECK: the number read (a missing or empty file is 0), or why
    /// the text is not one (keepalived ignores it: the last value stays).
    Value(Result<i64, String>),
}

/// `[ip]:tcp:port`, as keepalived's `FMT_CHK`.
pub fn fmt_target(ip: IpAddr, port: u16) -> String {
    fmt_target_proto(ip, "tcp", port)
}

/// `[ip]:proto:port` of a checker, as keepalived's log lines name it: `udp`
/// for the checkers that speak UDP (DNS_CHECK, UDP_CHECK), else `tcp`.
pub fn fmt_checker(ck: &Checker) -> String {
    let proto = match ck.kind {
        CheckKind::Dns { .. } | CheckKind::Udp { .. } => "udp",
        _ => "tcp",
    };
    fmt_target_proto(ck.connect_ip, proto, ck.connect_port)
}

/// `[ip]:proto:port`.
pub fn fmt_target_proto(ip: IpAddr, proto: &str, port: u16) -> String {
    format!("[{ip}]:{proto}:{port}")
}

/// Run one attempt of `ck`.
pub fn run(ck: &Checker) -> Outcome {
    match &ck.kind {
        CheckKind::Tcp => tcp_outcome(
            ck,
            connect(ck).map(|s| {
                if ck.bind_port.is_some() {
                    tcp::close_with_reset(&Socket::from(s));
                }
            }),
        ),
        CheckKind::Http {
            tls,
            sni,
            urls,
            virtualhost,
            http_protocol,
        } => {
            for u in urls {
                let vhost = u.virtualhost.as_deref().or(virtualhost.as_deref());
                let sni = if *tls { Some(*sni) } else { None };
                if let Err(e) = http_get(ck, u, vhost, http_protocol, sni) {
                    return Outcome::Down(e);
                }
            }
            Outcome::Up(None)
        }
        CheckKind::Dns { qtype, name } => match dns(ck, *qtype, name) {
            Ok(()) => Outcome::Up(None),
            Err(e) => Outcome::Down(format!(
                "DNS_CHECK ({}) {e}",
                fmt_target_proto(ck.connect_ip, "udp", ck.connect_port)
            )),
        },
        CheckKind::Smtp { helo } => match smtp(ck, helo) {
            Ok(()) => Outcome::Up(None),
            Err(e) => Outcome::Down(format!("SMTP_CHECK {e}")),
        },
        CheckKind::Udp {
            payload,
            require_reply,
            reply_mask,
            min_len,
            max_len,
        } => match udp(
            ck,
            payload,
            require_reply.as_deref().map(|d| (d, reply_mask.as_slice())),
            (*min_len, *max_len),
        ) {
            Ok(()) => Outcome::Up(None),
            Err(e) => Outcome::Down(format!(
                "UDP_CHECK on service {} failed ({e}).",
                fmt_target_proto(ck.connect_ip, "udp", ck.connect_port)
            )),
        },
        CheckKind::Ping => match ping(ck) {
            Ok(()) => Outcome::Up(None),
            Err(e) => Outcome::Down(format!(
                "ICMP connection to address {} failed ({e}).",
                ck.connect_ip
            )),
        },
        CheckKind::Misc {
            path,
            timeout,
            dynamic,
        } => misc(path, *timeout, *dynamic),
        CheckKind::File(f) => Outcome::Value(read_track_file(&f.path)),
    }
}

/// TCP_CHECK's outcome for the result of its connect.
fn tcp_outcome(ck: &Checker, r: std::io::Result<()>) -> Outcome {
    tcp_result_line(ck.connect_ip, ck.connect_port, r)
}

/// TCP_CHECK's outcome for the result of a connect to `ip`:`port`, and
/// keepalived's line for a failure.
fn tcp_result_line(ip: IpAddr, port: u16, r: std::io::Result<()>) -> Outcome {
    match r {
        Ok(()) => Outcome::Up(None),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Outcome::Down(format!(
            "TCP connection to {} timeout.",
            fmt_target(ip, port)
        )),
        Err(e) => Outcome::Down(format!(
            "TCP connection to {} failed ({e}).",
            fmt_target(ip, port)
        )),
    }
}

/// The number in a tracked file, as keepalived reads it: a file that
/// cannot be opened (missing, removed) or is empty is 0.
pub fn read_track_file(path: &str) -> Result<i64, String> {
    let mut buf = Vec::with_capacity(128);
    match std::fs::File::open(path) {
        Ok(f) => {
            if let Err(e) = f.take(127).read_to_end(&mut buf) {
                return Err(format!("cannot read {path}: {e}"));
            }
        }
        Err(_) => return Ok(0),
    }
    super::conf::track_value(&buf)
        .ok_or_else(|| format!("Invalid number read from {path} - ignoring"))
}

/// A socket for the checker's target, bound to `bindto`/`bind_port`, with
/// the checker's `fwmark`.
fn socket(ck: &Checker, ty: Type, proto: Option<Protocol>) -> std::io::Result<Socket> {
    let dst = SocketAddr::new(ck.connect_ip, ck.connect_port);
    let sock = Socket::new(Domain::for_address(dst), ty, proto)?;
    bind(ck, &sock)?;
    Ok(sock)
}

/// `bindto`/`bind_port` and `fwmark` on `sock`.
fn bind(ck: &Checker, sock: &Socket) -> std::io::Result<()> {
    let dst = SocketAddr::new(ck.connect_ip, ck.connect_port);
    if let Some(mark) = ck.fwmark {
        sock.set_mark(mark)?;
    }
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
    Ok(())
}

/// A TCP connection to the checker's target, from `bindto`/`bind_port`.
fn connect(ck: &Checker) -> std::io::Result<TcpStream> {
    let dst = SocketAddr::new(ck.connect_ip, ck.connect_port);
    let sock = socket(ck, Type::STREAM, None)?;
    let t = ck.timing.connect_timeout.max(Duration::from_millis(1));
    sock.connect_timeout(&SockAddr::from(dst), t)?;
    Ok(sock.into())
}

/// Time left before `deadline`, or a timeout error.
fn left(deadline: Instant) -> std::io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// Whether `e` is a receive timeout.
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
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
