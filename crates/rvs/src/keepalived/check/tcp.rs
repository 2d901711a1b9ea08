// SPDX-License-Identifier: GPL-2.0-or-later
//! TCP_CHECK on the event loop (`evented.rs`): one nonblocking connect.
//! The outcome and its log line are [`super::run`]'s.
//!
//! A connect that succeeded is closed as keepalived closes it (a FIN),
//! unless the check has a `bind_port`: then with an RST, so that its next
//! check can bind the port again ([`close_with_reset`]).

use std::net::IpAddr;
use std::time::Duration;

use socket2::Socket;

use super::evented::Ready;
use super::{Outcome, Start, connected, tcp_result_line};
use crate::keepalived::conf::Checker;

/// One TCP_CHECK's connect.
pub(super) struct Connect {
    ip: IpAddr,
    port: u16,
    /// Close with an RST once connected (a fixed `bind_port`).
    reset: bool,
}

impl Connect {
    pub(super) fn new(ck: &Checker) -> Connect {
        Connect {
            ip: ck.connect_ip,
            port: ck.connect_port,
            reset: ck.bind_port.is_some(),
        }
    }

    /// The outcome of the connect the kernel reported on (or that was
    /// connected at once); the caller closes the socket.
    pub(super) fn ready(&self, sock: &Socket, r: Ready) -> Outcome {
        let c = connected(sock, r.hup);
        if c.is_ok() && self.reset {
            close_with_reset(sock);
        }
        tcp_result_line(self.ip, self.port, c)
    }

    pub(super) fn timeout(&self) -> Outcome {
        tcp_result_line(self.ip, self.port, Err(std::io::ErrorKind::TimedOut.into()))
    }

    pub(super) fn not_started(&self, e: Start) -> Outcome {
        match e {
            Start::Failed(e) => tcp_result_line(self.ip, self.port, Err(e)),
            e => e.reschedule("TCP", &super::fmt_target(self.ip, self.port)),
        }
    }
}

/// Make the close of a connected check's socket an RST (SO_LINGER on,
/// timeout 0) instead of a FIN, as HAProxy closes its checks; for checks
/// with a fixed `bind_port` only. After a FIN the side that closed first
/// keeps the connection for 60 s (FIN_WAIT2, TIME_WAIT): when that is the
/// checker (a server that waits for a request closes last), the next
/// check cannot bind its port (EADDRINUSE), a failure every time after
/// the first. An RST leaves nothing on either side. Not for the other
/// checks: keepalived closes them with a FIN (a plain close), a real
/// server reading the connection then sees an end of file where an RST
/// makes it an error (ECONNRESET), which some servers log as "connection
/// reset by peer" at each check; and the RST does not make a check
/// measurably cheaper for the director (BENCHMARKS.md, issue 16).
pub(super) fn close_with_reset(sock: &Socket) {
    let _ = sock.set_linger(Some(Duration::ZERO));
}
