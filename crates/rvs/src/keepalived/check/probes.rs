// SPDX-License-Identifier: GPL-2.0-or-later
//! DNS_CHECK, UDP_CHECK and PING_CHECK: their sockets, what they send
//! and how they judge what comes back (pure functions); the exchanges are
//! `dgram.rs`'s, on the event loop.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::*;
use crate::keepalived::conf::Checker;

/// A connected UDP socket to the checker's target (ICMP errors then come
/// back as errors of `recv`).
pub(super) fn udp_socket(ck: &Checker) -> Result<UdpSocket, Start> {
    // Nonblocking from the start: no fcntl calls after.
    let sock = socket(ck, Type::DGRAM.nonblocking(), Some(Protocol::UDP))?;
    let dst = target(ck, ck.connect_port, &sock)?;
    match sock.connect(&SockAddr::from(dst)) {
        Ok(()) => Ok(sock.into()),
        Err(e) if connect_failed(&e) => Err(Start::Failed(e)),
        Err(e) => Err(Start::Bind(e)),
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
    use std::sync::atomic::{AtomicBool, Ordering};
    // Ping sockets refused once (per family): raw sockets from then on,
    // without asking again at every check.
    static REFUSED: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
    let (domain, proto, refused) = match ck.connect_ip {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4, &REFUSED[0]),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6, &REFUSED[1]),
    };
    let raw_socket = || {
        Socket::new(domain, Type::RAW.nonblocking(), Some(proto))
            .map(|s| (s, true))
            .map_err(Start::Socket)
    };
    let (sock, raw) = if refused.load(Ordering::Relaxed) {
        raw_socket()?
    } else {
        match Socket::new(domain, Type::DGRAM.nonblocking(), Some(proto)) {
            Ok(s) => (s, false),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::Unsupported
                ) || e.raw_os_error()
                    == Some(rustix::io::Errno::PROTONOSUPPORT.raw_os_error()) =>
            {
                if !refused.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "PING_CHECK: ping sockets are not permitted ({e}: this group is not in \
                         net.ipv4.ping_group_range); using raw ICMP sockets"
                    );
                }
                raw_socket()?
            }
            Err(e) => return Err(Start::Socket(e)),
        }
    };
    if let Some(mark) = ck.fwmark {
        sock.set_mark(mark).map_err(Start::Bind)?;
    }
    bind_device(ck, &sock).map_err(Start::Bind)?;
    if let Some(ip) = ck.bindto {
        let from = scoped(ck, SocketAddr::new(ip, 0), &sock).map_err(Start::Bind)?;
        sock.bind(&SockAddr::from(from)).map_err(Start::Bind)?;
    }
    sock.connect(&SockAddr::from(target(ck, 0, &sock)?))
        .map_err(Start::Failed)?;
    Ok((sock, raw))
}

/// PING_CHECK's echo request `id`/`seq` (the kernel computes an ICMPv6
/// checksum: it covers a pseudo-header; a ping socket rewrites the id).
pub(super) fn echo_request(id: u16, seq: u16, v6: bool) -> Vec<u8> {
    let mut pkt = vec![if v6 { 128u8 } else { 8u8 }, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(b"rvs health PING_CHECK");
    if !v6 {
        let c = inet_checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
    pkt
}

/// Whether the datagram `got` is the echo reply to request `id`/`seq`;
/// `raw`: read on a raw socket (an IPv4 one has the IP header first, and
/// the id is ours: a ping socket rewrites it to its own and filters on
/// it).
pub(super) fn echo_reply(got: &[u8], id: u16, seq: u16, raw: bool, v6: bool) -> bool {
    let mut icmp = got;
    if raw && !v6 {
        // The IPv4 header, of IHL words.
        let ihl = usize::from(icmp.first().map_or(0, |b| b & 0x0f)) * 4;
        icmp = icmp.get(ihl..).unwrap_or_default();
    }
    let Some(h) = icmp.get(..8) else {
        return false;
    };
    let reply_type = if v6 { 129u8 } else { 0u8 };
    let got_id = u16::from_be_bytes([h[4], h[5]]);
    let got_seq = u16::from_be_bytes([h[6], h[7]]);
    h[0] == reply_type && got_seq == seq && (!raw || got_id == id)
}
