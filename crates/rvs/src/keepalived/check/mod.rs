// SPDX-License-Identifier: GPL-2.0-or-later
//! One attempt of each checker, bounded in time: TCP_CHECK (a connect
//! within `connect_timeout`), HTTP_GET and SSL_GET (a GET of every `url`,
//! status and MD5 digest checked, the whole exchange within
//! `connect_timeout` per url), MISC_CHECK (the script, killed with its
//! process group after `misc_timeout`), DNS_CHECK, SMTP_CHECK, UDP_CHECK
//! and PING_CHECK (each within `connect_timeout`); FILE_CHECK reads its
//! file.
//!
//! Where they run: all but MISC_CHECK and FILE_CHECK on nonblocking
//! sockets in one epoll set, driven by the scheduler's thread
//! ([`Checks`], `evented.rs`, which says why); MISC_CHECK and FILE_CHECK
//! as blocking attempts on the pool's workers ([`run`]). [`run`] runs any
//! checker once, blocking: those of the event loop (but TCP_CHECK, one
//! connect) through its code on an epoll set of their own.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::conf::{CheckKind, Checker};

mod dgram;
mod evented;
mod http;
pub(crate) mod pattern;
mod probes;
mod response;
mod script;
mod smtp;
mod tcp;
#[cfg(test)]
mod tests;

pub use evented::{Checks, evented};

#[cfg(test)]
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
    /// The attempt could not run: its socket could not be created, marked
    /// or bound (`bindto`/`bind_port`: EADDRINUSE, EADDRNOTAVAIL…), or its
    /// connect failed for a reason of this host's, not the server's. As
    /// keepalived (its `connect_error`): the line is logged and the check
    /// comes again after `delay_loop`, neither a success nor a failed
    /// attempt (the checker's state and retry count stay as they are).
    Reschedule(String),
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
        CheckKind::Tcp => match connect(ck) {
            Ok(s) => {
                if ck.bind_port.is_some() {
                    tcp::close_with_reset(&Socket::from(s));
                }
                tcp_outcome(ck, Ok(()))
            }
            Err(Start::Failed(e)) => tcp_outcome(ck, Err(e)),
            Err(not_run) => not_run.reschedule("TCP", &fmt_checker(ck)),
        },
        CheckKind::Http { .. }
        | CheckKind::Smtp { .. }
        | CheckKind::Dns { .. }
        | CheckKind::Udp { .. }
        | CheckKind::Ping => evented::run_one(ck),
        CheckKind::Misc { .. } => evented::run_one(ck),
        CheckKind::File(f) => Outcome::Value(read_track_file(&f.path)),
        // Never scheduled: its session's changes drive it (keepalived/bfd).
        CheckKind::Bfd { name } => {
            Outcome::Reschedule(format!("BFD_CHECK {name} follows its session"))
        }
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

/// Why an attempt ended before its exchange began.
#[derive(Debug)]
pub(super) enum Start {
    /// The socket could not be created (EMFILE, ENOBUFS…).
    Socket(std::io::Error),
    /// The socket could not be marked (`fwmark`) or bound
    /// (`bindto`/`bind_port`), or its connect failed for a reason of this
    /// host's (EADDRNOTAVAIL, EADDRINUSE of the 4-tuple, EPERM…).
    Bind(std::io::Error),
    /// The connect failed: the server's or the network's doing, a failed
    /// attempt.
    Failed(std::io::Error),
}

impl Start {
    /// The outcome of an attempt that could not run ([`Start::Socket`],
    /// [`Start::Bind`]): keepalived's `connect_error`, rescheduled after
    /// `delay_loop` without counting (check_tcp.c `tcp_connect_thread`,
    /// check_http.c `http_connect_thread`, check_smtp.c
    /// `smtp_connect_thread`, check_dns.c `dns_connect_thread`, which log
    /// "… socket bind failed. Rescheduling." and add the next attempt's
    /// timer instead of calling their epilog); `what` is keepalived's name
    /// for the checker in that line (`TCP`, `WEB`, `SMTP_CHECK`, `UDP`,
    /// `ICMP`), `t` the target's `[ip]:proto:port` ([`fmt_checker`]). A
    /// [`Start::Failed`] is the checker's own failure: the caller words
    /// it.
    pub(super) fn reschedule(self, what: &str, t: &str) -> Outcome {
        Outcome::Reschedule(match self {
            Start::Socket(e) => {
                format!("{what} connect fail to create socket for {t} ({e}). Rescheduling.")
            }
            Start::Bind(e) | Start::Failed(e) => {
                format!("{what} socket bind failed for {t} ({e}). Rescheduling.")
            }
        })
    }
}

/// Whether a connect() that failed at once failed because of the server
/// or the network (a failed attempt), as keepalived judges it in
/// layer4.c `socket_bind_connect` (its `connect_fail`: ENETUNREACH,
/// EHOSTUNREACH, ECONNREFUSED, EHOSTDOWN, ENETDOWN, ECONNRESET,
/// ECONNABORTED, ETIMEDOUT); any other error is its `connect_error`,
/// like a failed bind: the attempt did not run.
fn connect_failed(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    let Some(code) = e.raw_os_error() else {
        return true;
    };
    [
        Errno::NETUNREACH,
        Errno::HOSTUNREACH,
        Errno::CONNREFUSED,
        Errno::HOSTDOWN,
        Errno::NETDOWN,
        Errno::CONNRESET,
        Errno::CONNABORTED,
        Errno::TIMEDOUT,
    ]
    .iter()
    .any(|x| x.raw_os_error() == code)
}

/// A socket for the checker's target, bound to `bindto`/`bind_port`, with
/// the checker's `fwmark`.
fn socket(ck: &Checker, ty: Type, proto: Option<Protocol>) -> Result<Socket, Start> {
    let dst = SocketAddr::new(ck.connect_ip, ck.connect_port);
    let sock = Socket::new(Domain::for_address(dst), ty, proto).map_err(Start::Socket)?;
    bind(ck, &sock).map_err(Start::Bind)?;
    Ok(sock)
}

/// `bind_if`, `bindto`/`bind_port` and `fwmark` on `sock`.
fn bind(ck: &Checker, sock: &Socket) -> std::io::Result<()> {
    let dst = SocketAddr::new(ck.connect_ip, ck.connect_port);
    if let Some(mark) = ck.fwmark {
        sock.set_mark(mark)?;
    }
    bind_device(ck, sock)?;
    if ck.bindto.is_some() || ck.bind_port.is_some() {
        let ip = ck.bindto.unwrap_or(match dst {
            SocketAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
            SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
        });
        let from = scoped(ck, SocketAddr::new(ip, ck.bind_port.unwrap_or(0)), sock)?;
        sock.bind(&SockAddr::from(from))?;
    }
    Ok(())
}

/// `bind_if` on `sock` (SO_BINDTODEVICE): its packets leave by that
/// interface only. An interface that does not exist is ENODEV, a
/// [`Start::Bind`] for the caller.
fn bind_device(ck: &Checker, sock: &Socket) -> std::io::Result<()> {
    match &ck.bind_if {
        Some(dev) => sock.bind_device(Some(dev.as_bytes())),
        None => Ok(()),
    }
}

/// `a` with the scope of `bind_if`'s interface if it is a link-local
/// IPv6 address (which names no interface of its own); else `a`.
fn scoped(ck: &Checker, mut a: SocketAddr, sock: &Socket) -> std::io::Result<SocketAddr> {
    if let (SocketAddr::V6(v6), Some(dev)) = (&mut a, &ck.bind_if)
        && v6.ip().is_unicast_link_local()
    {
        v6.set_scope_id(rustix::net::netdevice::name_to_index(sock, dev)?);
    }
    Ok(a)
}

/// The checker's target, `port` (a link-local one in `bind_if`'s scope).
fn target(ck: &Checker, port: u16, sock: &Socket) -> Result<SocketAddr, Start> {
    scoped(ck, SocketAddr::new(ck.connect_ip, port), sock).map_err(Start::Bind)
}

/// A nonblocking TCP socket for the checker's target, from
/// `bindto`/`bind_port`, its connect started: connected at once (true)
/// or in progress.
pub(super) fn open(ck: &Checker) -> Result<(Socket, bool), Start> {
    let sock = socket(ck, Type::STREAM.nonblocking().cloexec(), None)?;
    let dst = target(ck, ck.connect_port, &sock)?;
    match sock.connect(&SockAddr::from(dst)) {
        Ok(()) => Ok((sock, true)),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error()) => {
            Ok((sock, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok((sock, false)),
        Err(e) if connect_failed(&e) => Err(Start::Failed(e)),
        Err(e) => Err(Start::Bind(e)),
    }
}

/// The result of a connect in progress that the kernel reported on
/// (readable or writable, or `hup`: hung up or in error), as socket2's
/// `connect_timeout` judges it.
pub(super) fn connected(sock: &Socket, hup: bool) -> std::io::Result<()> {
    if !hup {
        return Ok(());
    }
    match sock.take_error() {
        Ok(Some(e)) | Err(e) => Err(e),
        Ok(None) => Err(std::io::Error::other("no error set after POLLHUP")),
    }
}

/// A TCP connection to the checker's target, from `bindto`/`bind_port`,
/// within `connect_timeout`; blocking.
fn connect(ck: &Checker) -> Result<TcpStream, Start> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let (sock, mut done) = open(ck)?;
    let deadline = Instant::now() + ck.timing.connect_timeout.max(Duration::from_millis(1));
    while !done {
        let t = left(deadline).map_err(Start::Failed)?;
        let ts = Timespec::try_from(t).unwrap_or(Timespec {
            tv_sec: i64::from(i32::MAX),
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(&sock, PollFlags::OUT)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => {}
            Ok(_) => {
                let hup = fds[0].revents().intersects(PollFlags::HUP | PollFlags::ERR);
                connected(&sock, hup).map_err(Start::Failed)?;
                done = true;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Start::Failed(e.into())),
        }
    }
    sock.set_nonblocking(false).map_err(Start::Failed)?;
    Ok(sock.into())
}

/// Time left before `deadline`, or a timeout error.
fn left(deadline: Instant) -> std::io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// MD5 of `data`, lower-case hex (genhash's output); HTTP_GET computes
/// it as the body comes (`response.rs`).
#[cfg(test)]
pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex(&Md5::digest(data))
}

/// `bytes` in lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
