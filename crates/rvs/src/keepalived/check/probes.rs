// SPDX-License-Identifier: GPL-2.0-or-later
//! DNS_CHECK, SMTP_CHECK, UDP_CHECK and PING_CHECK: one exchange each.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Instant;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::*;
use crate::keepalived::conf::Checker;

/// A connected UDP socket to the checker's target (ICMP errors then come
/// back as errors of `recv`).
pub(super) fn udp_socket(ck: &Checker) -> Result<UdpSocket, Start> {
    let dst = SocketAddr::new(ck.connect_ip, ck.connect_port);
    let sock = socket(ck, Type::DGRAM, Some(Protocol::UDP))?;
    match sock.connect(&SockAddr::from(dst)) {
        Ok(()) => Ok(sock.into()),
        Err(e) if connect_failed(&e) => Err(Start::Failed(e)),
        Err(e) => Err(Start::Bind(e)),
    }
}

/// The error of a [`Start`], whatever it is (UDP_CHECK counts every one
/// as a failed attempt, as keepalived's check_udp.c `udp_connect_thread`).
fn start_error(s: Start) -> std::io::Error {
    match s {
        Start::Socket(e) | Start::Bind(e) | Start::Failed(e) => e,
    }
}

/// A query id: 16 bits that differ from one query to the next.
pub(super) fn query_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u16
}

/// A DNS query for `name`/`qtype`, class IN, recursion desired. Built by
/// hand: one question in a fixed 12-byte header is all DNS_CHECK sends,
/// and its answer is judged on the header alone, so a DNS library would
/// add nothing but weight. `name`'s labels were checked at parse time
/// (1 to 63 bytes); a longer one is cut here rather than overflow.
pub fn dns_query(id: u16, qtype: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    q
}

/// keepalived's judgement of a datagram answering query `id`
/// (check_dns.c `dns_recv_thread`): `None` to ignore it and wait for
/// another (shorter than a header, another id, not a response);
/// `Some(Ok)` for rcode 0, `Some(Err(rcode))` otherwise.
pub fn dns_judge(id: u16, reply: &[u8]) -> Option<Result<(), u8>> {
    let h = reply.get(..12)?;
    if u16::from_be_bytes([h[0], h[1]]) != id {
        return None;
    }
    let flags = u16::from_be_bytes([h[2], h[3]]);
    if flags & 0x8000 == 0 {
        return None;
    }
    match (flags & 0x000f) as u8 {
        0 => Some(Ok(())),
        rcode => Some(Err(rcode)),
    }
}

/// One DNS_CHECK: the query, and a reply within `connect_timeout`; a
/// socket that cannot be bound reschedules it (check_dns.c
/// `dns_connect_thread`).
pub(super) fn dns(ck: &Checker, qtype: u16, name: &str) -> Result<(), Attempt> {
    let deadline = Instant::now() + ck.timing.connect_timeout;
    let s = match udp_socket(ck) {
        Ok(s) => s,
        Err(Start::Failed(e)) => return Err(format!("connection failure ({e}).").into()),
        Err(not_run) => return Err(Attempt::NotRun(not_run.reschedule("UDP", &fmt_checker(ck)))),
    };
    let id = query_id();
    let q = dns_query(id, qtype, name);
    s.send(&q)
        .map_err(|e| format!("failed to write socket ({e})."))?;
    let mut buf = [0u8; 4096];
    loop {
        let t = left(deadline).map_err(|_| "read timeout from socket".to_string())?;
        s.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
        match s.recv(&mut buf) {
            Ok(n) => match dns_judge(id, &buf[..n]) {
                None => continue,
                Some(Ok(())) => return Ok(()),
                Some(Err(rcode)) => {
                    return Err(format!("read error occurred. (rcode = {rcode})").into());
                }
            },
            Err(e) if is_timeout(&e) => {
                return Err(Attempt::Failed("read timeout from socket".into()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("failed to read socket; {e}").into()),
        }
    }
}

/// One SMTP reply (the lines up to one whose code is followed by a blank,
/// not `-`); its code, or `None` when it does not start with 3 digits.
pub(super) fn smtp_reply(
    s: &mut TcpStream,
    deadline: Instant,
    pending: &mut Vec<u8>,
) -> std::io::Result<Option<u16>> {
    let mut buf = [0u8; 1024];
    loop {
        while let Some(eol) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=eol).collect();
            let code = line
                .get(..3)
                .filter(|c| c.iter().all(u8::is_ascii_digit))
                .map(|c| c.iter().fold(0u16, |a, d| a * 10 + u16::from(d - b'0')));
            match (code, line.get(3)) {
                (Some(_), Some(b'-')) => continue,
                (code, _) => return Ok(code),
            }
        }
        if pending.len() > 64 << 10 {
            return Ok(None);
        }
        s.set_read_timeout(Some(left(deadline)?))?;
        match s.read(&mut buf) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One SMTP_CHECK: banner 220, `HELO` answered by 250, `QUIT`; within
/// `connect_timeout`; a socket that cannot be bound reschedules it
/// (check_smtp.c `smtp_connect_thread`).
pub(super) fn smtp(ck: &Checker, helo: &str) -> Result<(), Attempt> {
    let t = fmt_target(ck.connect_ip, ck.connect_port);
    let deadline = Instant::now() + ck.timing.connect_timeout;
    let mut s = match connect(ck) {
        Ok(s) => s,
        Err(Start::Failed(e)) => {
            return Err(format!("Error connecting to server {t} ({e}).").into());
        }
        Err(not_run) => {
            return Err(Attempt::NotRun(
                not_run.reschedule("SMTP_CHECK", &fmt_checker(ck)),
            ));
        }
    };
    let mut pending = Vec::new();
    let mut expect =
        |s: &mut TcpStream, want: u16, what: &str| match smtp_reply(s, deadline, &mut pending) {
            Ok(Some(c)) if c == want => Ok(()),
            Ok(Some(c)) => Err(format!("Bad {what} response code {c} from server {t}.")),
            Ok(None) => Err(format!("Bad {what} response from server {t}.")),
            Err(e) if is_timeout(&e) => Err(format!("Read timeout from server {t}.")),
            Err(e) => Err(format!("Read failure from server {t} ({e}).")),
        };
    expect(&mut s, 220, "greeting")?;
    let write = |s: &mut TcpStream, line: &str| -> Result<(), String> {
        s.set_write_timeout(Some(
            left(deadline).map_err(|_| format!("Write timeout to server {t}."))?,
        ))
        .map_err(|e| e.to_string())?;
        s.write_all(line.as_bytes())
            .map_err(|e| format!("Write failure to server {t} ({e})."))
    };
    write(&mut s, &format!("HELO {helo}\r\n"))?;
    expect(&mut s, 250, "HELO")?;
    // keepalived sends QUIT and does not wait for its answer.
    let _ = write(&mut s, "QUIT\r\n");
    Ok(())
}

/// Whether a UDP_CHECK reply passes (keepalived's `check_udp_reply`): its
/// length within the bounds, and its first bytes those of `want` (as
/// many as both have) but for the bits set in `mask` (wildcard nibbles).
pub fn udp_reply_ok(reply: &[u8], want: &[u8], mask: &[u8], (min, max): (u16, u16)) -> bool {
    let len = reply.len();
    if len < usize::from(min) || len > usize::from(max) {
        return false;
    }
    reply
        .iter()
        .zip(want)
        .enumerate()
        .all(|(i, (a, b))| (a ^ b) & !mask.get(i).copied().unwrap_or(0) == 0)
}

/// One UDP_CHECK: `payload` sent to a connected socket, then within
/// `connect_timeout` keepalived's rule: an ICMP error (the kernel's
/// ECONNREFUSED for a port unreachable) fails; a reply passes (matched
/// against `require_reply`'s data when there is some); no reply passes
/// unless `require_reply` is set.
pub(super) fn udp(
    ck: &Checker,
    payload: &[u8],
    require_reply: Option<(&[u8], &[u8])>,
    lens: (u16, u16),
) -> Result<(), String> {
    let deadline = Instant::now() + ck.timing.connect_timeout;
    let s = udp_socket(ck).map_err(|e| format!("connect: {}", start_error(e)))?;
    s.send(payload).map_err(|e| format!("send: {e}"))?;
    let mut buf = vec![0u8; usize::from(lens.1) + 1];
    loop {
        let Ok(t) = left(deadline) else {
            return match require_reply {
                Some(_) => Err("no reply".into()),
                None => Ok(()),
            };
        };
        s.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
        match s.recv(&mut buf) {
            Ok(n) => {
                return match require_reply {
                    Some((want, mask))
                        if !want.is_empty() && !udp_reply_ok(&buf[..n], want, mask, lens) =>
                    {
                        Err("reply data mismatch".into())
                    }
                    _ => Ok(()),
                };
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Internet checksum (RFC 1071) of `data`.
pub(super) fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP socket to the checker's address: first an unprivileged ping
/// socket (SOCK_DGRAM, IPPROTO_ICMP: the kernel sets the echo id, the
/// checksum and filters the replies; it needs the process's group in
/// `net.ipv4.ping_group_range`), else a raw socket (root or CAP_NET_RAW).
/// `true` when raw: the id and, for IPv4, the checksum are ours, and the
/// IPv4 replies come with their IP header. A socket that cannot be
/// created or bound is [`Start::Socket`] or [`Start::Bind`] (check_ping.c
/// `icmp_connect_thread` reschedules those).
pub(super) fn icmp_socket(ck: &Checker) -> Result<(Socket, bool), Start> {
    let (domain, proto) = match ck.connect_ip {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let (sock, raw) = match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => (s, false),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::Unsupported
            ) || e.raw_os_error() == Some(rustix::io::Errno::PROTONOSUPPORT.raw_os_error()) =>
        {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "PING_CHECK: ping sockets are not permitted ({e}: this group is not in \
                     net.ipv4.ping_group_range); using raw ICMP sockets"
                )
            });
            (
                Socket::new(domain, Type::RAW, Some(proto)).map_err(Start::Socket)?,
                true,
            )
        }
        Err(e) => return Err(Start::Socket(e)),
    };
    if let Some(mark) = ck.fwmark {
        sock.set_mark(mark).map_err(Start::Bind)?;
    }
    if let Some(ip) = ck.bindto {
        sock.bind(&SockAddr::from(SocketAddr::new(ip, 0)))
            .map_err(Start::Bind)?;
    }
    sock.connect(&SockAddr::from(SocketAddr::new(ck.connect_ip, 0)))
        .map_err(Start::Failed)?;
    Ok((sock, raw))
}

/// One PING_CHECK: an echo request, and its reply within `connect_timeout`.
pub(super) fn ping(ck: &Checker) -> Result<(), Attempt> {
    let deadline = Instant::now() + ck.timing.connect_timeout;
    let (sock, raw) = match icmp_socket(ck) {
        Ok(s) => s,
        Err(Start::Failed(e)) => return Err(format!("socket: {e}").into()),
        Err(not_run) => {
            return Err(Attempt::NotRun(
                not_run.reschedule("ICMP", &fmt_checker(ck)),
            ));
        }
    };
    let v6 = ck.connect_ip.is_ipv6();
    let (req_type, reply_type) = if v6 { (128u8, 129u8) } else { (8u8, 0u8) };
    let id = (std::process::id() as u16) ^ query_id();
    let seq = query_id();
    let mut pkt = vec![req_type, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(b"rvs health PING_CHECK");
    if !v6 {
        // ICMPv6's checksum covers a pseudo-header: the kernel computes it.
        let c = inet_checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
    let s: UdpSocket = sock.into();
    s.send(&pkt).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 2048];
    loop {
        let t = left(deadline).map_err(|_| "timeout".to_string())?;
        s.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
        let n = match s.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if is_timeout(&e) => return Err(Attempt::Failed("timeout".into())),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string().into()),
        };
        let mut icmp = &buf[..n];
        if raw && !v6 {
            // The IPv4 header, of IHL words.
            let ihl = usize::from(icmp.first().map_or(0, |b| b & 0x0f)) * 4;
            icmp = icmp.get(ihl..).unwrap_or_default();
        }
        let Some(h) = icmp.get(..8) else { continue };
        let got_id = u16::from_be_bytes([h[4], h[5]]);
        let got_seq = u16::from_be_bytes([h[6], h[7]]);
        // A ping socket rewrites the id to its own and filters on it.
        if h[0] == reply_type && got_seq == seq && (!raw || got_id == id) {
            return Ok(());
        }
    }
}
