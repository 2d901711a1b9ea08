// SPDX-License-Identifier: GPL-2.0-or-later
//! DNS_CHECK, UDP_CHECK and PING_CHECK on the event loop (`evented.rs`):
//! one datagram out on a connected nonblocking socket, then the
//! datagrams that come back, each judged by the same pure functions as
//! before (`probes.rs`: [`dns_judge`], [`udp_reply_ok`], the echo reply's
//! id and sequence), until one decides or `connect_timeout` from the
//! socket's creation is over. An ICMP error for a connected UDP socket
//! (port unreachable) is the socket's error, returned by its next
//! `recv`: the kernel reports it to epoll as readable and in error.
//!
//! [`super::run`] runs these checkers through the same [`Probe`] on an
//! epoll set of its own (`evented::run_one`).

use std::net::IpAddr;

use rustix::event::epoll::EventFlags;
use socket2::Socket;

use super::evented::{Ready, Step};
use super::probes::*;
use super::{Outcome, Start, fmt_checker};
use crate::keepalived::conf::{CheckKind, Checker};

/// What a [`Probe`] sends and how it judges what comes back.
enum Kind {
    /// DNS_CHECK's query id.
    Dns { id: u16 },
    /// UDP_CHECK: the data to match (and its mask), the length bounds.
    Udp {
        require_reply: Option<(Vec<u8>, Vec<u8>)>,
        lens: (u16, u16),
    },
    /// PING_CHECK: the echo's id and sequence; a raw socket (ours to
    /// filter, and IPv4 replies with their IP header).
    Ping {
        id: u16,
        seq: u16,
        raw: bool,
        v6: bool,
    },
}

/// One DNS_CHECK, UDP_CHECK or PING_CHECK in progress.
pub(super) struct Probe {
    kind: Kind,
    /// The datagram to send; `None` once sent.
    out: Option<Vec<u8>>,
    /// `[ip]:proto:port`.
    target: String,
    ip: IpAddr,
    buf: Vec<u8>,
}

/// The socket of `ck` (a DNS_CHECK, UDP_CHECK or PING_CHECK), nonblocking
/// and connected; for PING_CHECK, whether it is a raw socket.
pub(super) fn open(ck: &Checker) -> Result<(Socket, bool), Start> {
    // Both open their sockets nonblocking.
    match ck.kind {
        CheckKind::Ping => icmp_socket(ck),
        _ => Ok((udp_socket(ck)?.into(), false)),
    }
}

impl Probe {
    /// The check of `ck`; its socket is opened next ([`open`]).
    pub(super) fn new(ck: &Checker) -> Probe {
        let (kind, out, buf_len) = match &ck.kind {
            CheckKind::Dns { qtype, name } => {
                let id = query_id();
                (Kind::Dns { id }, dns_query(id, *qtype, name), 4096)
            }
            CheckKind::Udp {
                payload,
                require_reply,
                reply_mask,
                min_len,
                max_len,
            } => (
                Kind::Udp {
                    require_reply: require_reply.clone().map(|d| (d, reply_mask.clone())),
                    lens: (*min_len, *max_len),
                },
                payload.clone(),
                usize::from(*max_len) + 1,
            ),
            CheckKind::Ping => {
                let v6 = ck.connect_ip.is_ipv6();
                // getpid(2) once, not at every check.
                static PID: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
                let pid = *PID.get_or_init(|| std::process::id() as u16);
                let id = pid ^ query_id();
                let seq = query_id();
                (
                    Kind::Ping {
                        id,
                        seq,
                        raw: false,
                        v6,
                    },
                    echo_request(id, seq, v6),
                    2048,
                )
            }
            _ => unreachable!("a Probe is a DNS_CHECK's, UDP_CHECK's or PING_CHECK's"),
        };
        Probe {
            kind,
            out: Some(out),
            target: fmt_checker(ck),
            ip: ck.connect_ip,
            buf: vec![0; buf_len],
        }
    }

    /// PING_CHECK on a raw socket ([`open`]'s flag): IPv4 replies come
    /// with their IP header, and the id is ours to filter on.
    pub(super) fn set_raw(&mut self, is_raw: bool) {
        if let Kind::Ping { raw, .. } = &mut self.kind {
            *raw = is_raw;
        }
    }

    /// keepalived's line of a failure.
    fn line(&self, e: &str) -> String {
        match self.kind {
            Kind::Dns { .. } => format!("DNS_CHECK ({}) {e}", self.target),
            Kind::Udp { .. } => format!("UDP_CHECK on service {} failed ({e}).", self.target),
            Kind::Ping { .. } => format!("ICMP connection to address {} failed ({e}).", self.ip),
        }
    }

    fn down(&self, e: &str) -> Step {
        Step::Done(Outcome::Down(self.line(e)))
    }

    /// Drive the check: the datagram out (at its first drive), then the
    /// replies in until one decides or the kernel would block.
    pub(super) fn ready(&mut self, mut sock: &Socket, _r: Ready) -> Step {
        use std::io::ErrorKind::{Interrupted, WouldBlock};
        use std::io::{Read, Write};
        if let Some(out) = &self.out {
            match sock.write(out) {
                Ok(_) => self.out = None,
                Err(e) if e.kind() == WouldBlock => return Step::Wait(EventFlags::OUT),
                Err(e) if e.kind() == Interrupted => return Step::Wait(EventFlags::OUT),
                Err(e) => {
                    return self.down(&match self.kind {
                        Kind::Dns { .. } => format!("failed to write socket ({e})."),
                        _ => format!("send: {e}"),
                    });
                }
            }
        }
        loop {
            let n = match sock.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == WouldBlock => return Step::Wait(EventFlags::IN),
                Err(e) if e.kind() == Interrupted => continue,
                Err(e) => {
                    return self.down(&match self.kind {
                        Kind::Dns { .. } => format!("failed to read socket; {e}"),
                        _ => e.to_string(),
                    });
                }
            };
            let reply = &self.buf[..n];
            match &self.kind {
                Kind::Dns { id } => match dns_judge(*id, reply) {
                    None => continue,
                    Some(Ok(())) => return Step::Done(Outcome::Up(None)),
                    Some(Err(rcode)) => {
                        return self.down(&format!("read error occurred. (rcode = {rcode})"));
                    }
                },
                Kind::Udp {
                    require_reply,
                    lens,
                } => {
                    return match require_reply {
                        Some((want, mask))
                            if !want.is_empty() && !udp_reply_ok(reply, want, mask, *lens) =>
                        {
                            self.down("reply data mismatch")
                        }
                        _ => Step::Done(Outcome::Up(None)),
                    };
                }
                Kind::Ping { id, seq, raw, v6 } => {
                    if echo_reply(reply, *id, *seq, *raw, *v6) {
                        return Step::Done(Outcome::Up(None));
                    }
                }
            }
        }
    }

    /// The outcome of a check past its deadline: UDP_CHECK without
    /// `require_reply` is up (silence passes), the others down.
    pub(super) fn timeout(&self) -> Outcome {
        match &self.kind {
            Kind::Dns { .. } => Outcome::Down(self.line("read timeout from socket")),
            Kind::Udp { require_reply, .. } => match require_reply {
                Some(_) => Outcome::Down(self.line("no reply")),
                None => Outcome::Up(None),
            },
            Kind::Ping { .. } => Outcome::Down(self.line("timeout")),
        }
    }

    /// The outcome of a socket that could not be opened: UDP_CHECK counts
    /// every such error as a failed attempt (check_udp.c
    /// `udp_connect_thread`); DNS_CHECK and PING_CHECK reschedule a
    /// socket or bind error (check_dns.c `dns_connect_thread`, check_ping.c
    /// `icmp_connect_thread`).
    pub(super) fn not_started(&self, e: Start) -> Outcome {
        match (&self.kind, e) {
            (Kind::Udp { .. }, Start::Socket(e) | Start::Bind(e) | Start::Failed(e)) => {
                Outcome::Down(self.line(&format!("connect: {e}")))
            }
            (Kind::Dns { .. }, Start::Failed(e)) => {
                Outcome::Down(self.line(&format!("connection failure ({e}).")))
            }
            (Kind::Ping { .. }, Start::Failed(e)) => {
                Outcome::Down(self.line(&format!("socket: {e}")))
            }
            (Kind::Dns { .. }, e) => e.reschedule("UDP", &self.target),
            (Kind::Ping { .. }, e) => e.reschedule("ICMP", &self.target),
        }
    }
}
