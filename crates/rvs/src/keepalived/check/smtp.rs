// SPDX-License-Identifier: GPL-2.0-or-later
//! SMTP_CHECK on the event loop (`evented.rs`): a connection, the
//! server's greeting (220), `HELO` answered by 250, then `QUIT`, not
//! waited for (as keepalived's check_smtp.c). The whole exchange within
//! `connect_timeout` from the connect.
//!
//! The reading of a reply ([`smtp_reply`]) and the lines are pure; the
//! I/O is [`Smtp::ready`]'s, on the nonblocking socket, until the kernel
//! would block. [`super::run`] runs SMTP_CHECK through the same
//! [`Smtp`] on an epoll set of its own (`evented::run_one`).

use std::io::{Read, Write};

use rustix::event::epoll::EventFlags;
use socket2::Socket;

use super::evented::{Ready, Step};
use super::{Outcome, Start, connected, fmt_checker, fmt_target};
use crate::keepalived::conf::{CheckKind, Checker};

/// Longest reply read before it is called bad.
const MAX_REPLY: usize = 64 << 10;

/// One SMTP reply taken from the front of `pending` (the lines up to one
/// whose code is followed by a blank, not `-`): `None` while it is not
/// all there; then its code, or `None` when it does not start with 3
/// digits (or is longer than 64 KiB).
pub(super) fn smtp_reply(pending: &mut Vec<u8>) -> Option<Option<u16>> {
    while let Some(eol) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=eol).collect();
        let code = line
            .get(..3)
            .filter(|c| c.iter().all(u8::is_ascii_digit))
            .map(|c| c.iter().fold(0u16, |a, d| a * 10 + u16::from(d - b'0')));
        match (code, line.get(3)) {
            (Some(_), Some(b'-')) => continue,
            (code, _) => return Some(code),
        }
    }
    (pending.len() > MAX_REPLY).then_some(None)
}

/// Where an SMTP_CHECK is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// Reading the greeting.
    Greeting,
    /// Writing `HELO`.
    Helo,
    /// Reading its answer.
    HeloReply,
}

/// One SMTP_CHECK in progress.
pub(super) struct Smtp {
    /// `[ip]:tcp:port`.
    target: String,
    /// `[ip]:tcp:port` for keepalived's reschedule line.
    checker: String,
    helo: Vec<u8>,
    phase: Phase,
    /// What is still to be written of the line at hand.
    out: Vec<u8>,
    sent: usize,
    /// What was read and not yet taken as a reply.
    pending: Vec<u8>,
}

impl Smtp {
    pub(super) fn new(ck: &Checker) -> Smtp {
        let helo = match &ck.kind {
            CheckKind::Smtp { helo } => helo.as_str(),
            _ => unreachable!("an Smtp is an SMTP_CHECK's"),
        };
        Smtp {
            target: fmt_target(ck.connect_ip, ck.connect_port),
            checker: fmt_checker(ck),
            helo: format!("HELO {helo}\r\n").into_bytes(),
            phase: Phase::Connecting,
            out: Vec::new(),
            sent: 0,
            pending: Vec::new(),
        }
    }

    fn down(e: String) -> Step {
        Step::Done(Outcome::Down(format!("SMTP_CHECK {e}")))
    }

    /// The judgement of reply `code` to `what`, expected `want`.
    fn expect(&self, code: Option<u16>, want: u16, what: &str) -> Result<(), String> {
        let t = &self.target;
        match code {
            Some(c) if c == want => Ok(()),
            Some(c) => Err(format!("Bad {what} response code {c} from server {t}.")),
            None => Err(format!("Bad {what} response from server {t}.")),
        }
    }

    /// Read until a whole reply is in: `Ok(None)` when the kernel would
    /// block first.
    fn read_reply(&mut self, mut s: &Socket) -> Result<Option<Option<u16>>, String> {
        let mut buf = [0u8; 1024];
        loop {
            if let Some(r) = smtp_reply(&mut self.pending) {
                return Ok(Some(r));
            }
            match s.read(&mut buf) {
                Ok(0) => {
                    let e = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                    return Err(format!("Read failure from server {} ({e}).", self.target));
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(format!("Read failure from server {} ({e}).", self.target));
                }
            }
        }
    }

    /// Write what is left of `out`: false when the kernel would block.
    fn write_out(&mut self, mut s: &Socket) -> Result<bool, String> {
        while self.sent < self.out.len() {
            match s.write(&self.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(format!("Write failure to server {} ({e}).", self.target));
                }
            }
        }
        Ok(true)
    }

    /// Drive the check, its socket `r`.
    pub(super) fn ready(&mut self, sock: &Socket, r: Ready) -> Step {
        loop {
            match self.phase {
                Phase::Connecting => {
                    if let Err(e) = connected(sock, r.hup) {
                        return Self::down(format!(
                            "Error connecting to server {} ({e}).",
                            self.target
                        ));
                    }
                    self.phase = Phase::Greeting;
                }
                Phase::Greeting | Phase::HeloReply => {
                    let code = match self.read_reply(sock) {
                        Ok(None) => return Step::Wait(EventFlags::IN),
                        Ok(Some(c)) => c,
                        Err(e) => return Self::down(e),
                    };
                    if self.phase == Phase::Greeting {
                        if let Err(e) = self.expect(code, 220, "greeting") {
                            return Self::down(e);
                        }
                        self.out = std::mem::take(&mut self.helo);
                        self.sent = 0;
                        self.phase = Phase::Helo;
                    } else {
                        if let Err(e) = self.expect(code, 250, "HELO") {
                            return Self::down(e);
                        }
                        // keepalived sends QUIT and does not wait for its
                        // answer (nor mind whether it could be sent).
                        let _ = (&*sock).write(b"QUIT\r\n");
                        return Step::Done(Outcome::Up(None));
                    }
                }
                Phase::Helo => match self.write_out(sock) {
                    Ok(false) => return Step::Wait(EventFlags::OUT),
                    Ok(true) => self.phase = Phase::HeloReply,
                    Err(e) => return Self::down(e),
                },
            }
        }
    }

    /// The line of a check past its deadline.
    pub(super) fn timeout(&self) -> Outcome {
        let t = &self.target;
        Outcome::Down(format!(
            "SMTP_CHECK {}",
            match self.phase {
                Phase::Connecting => {
                    let e = std::io::Error::from(std::io::ErrorKind::TimedOut);
                    format!("Error connecting to server {t} ({e}).")
                }
                Phase::Helo => format!("Write timeout to server {t}."),
                Phase::Greeting | Phase::HeloReply => format!("Read timeout from server {t}."),
            }
        ))
    }

    /// The outcome of a connection that could not be opened.
    pub(super) fn not_started(&self, e: Start) -> Outcome {
        match e {
            Start::Failed(e) => Outcome::Down(format!(
                "SMTP_CHECK Error connecting to server {} ({e}).",
                self.target
            )),
            e => e.reschedule("SMTP_CHECK", &self.checker),
        }
    }
}
