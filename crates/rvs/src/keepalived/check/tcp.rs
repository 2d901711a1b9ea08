// SPDX-License-Identifier: GPL-2.0-or-later
//! TCP_CHECKs without a thread each: nonblocking connects watched by one
//! epoll set, driven by the scheduler's own thread.
//!
//! A TCP_CHECK is one connect, so a worker of the pool spends nearly all
//! of it blocked, and each check costs two hand-offs between threads (the
//! job to a worker, its result back). Here [`TcpChecks::start`] opens the
//! socket (`fwmark`, `bindto`/`bind_port` as [`super::run`] does), starts
//! the connect and adds the socket to the epoll set; [`TcpChecks::wait`]
//! is where the scheduler sleeps (the pool's workers wake it through an
//! eventfd when they have a result) and collects the connects that
//! finished and those past their `connect_timeout`. The outcome and its
//! log line are [`super::run`]'s: the connect is judged as socket2's
//! `connect_timeout` judges it (readable or writable: connected, unless
//! hung up or in error: the socket's error), and each check has its own
//! deadline, so a hung server times out only its own check. A check past
//! its deadline is polled once more before it is called a timeout: a
//! scheduler held up elsewhere (rvsd slow to answer) does not turn a
//! connect that succeeded into a failure.
//!
//! A connect that succeeded is closed as keepalived closes it (a FIN),
//! unless the check has a `bind_port`: then with an RST, so that its next
//! check can bind the port again ([`close_with_reset`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, epoll};
use socket2::Socket;

use super::{Outcome, Start, open, tcp_outcome, tcp_result_line};
use crate::keepalived::conf::Checker;

/// The epoll data of the eventfd (sockets get 0, 1, 2…).
const WAKE: u64 = u64::MAX;

/// One connect in progress.
struct Pending<T> {
    sock: Socket,
    ck_ip: std::net::IpAddr,
    ck_port: u16,
    /// Close with an RST once connected (a fixed `bind_port`).
    reset: bool,
    tag: T,
}

/// The TCP_CHECKs in progress; `T` tags each (the scheduler's
/// generation and checker index).
pub struct TcpChecks<T> {
    epoll: OwnedFd,
    wake: Arc<OwnedFd>,
    pending: HashMap<u64, Pending<T>>,
    /// Deadlines; entries of checks already done are skipped.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next: u64,
    events: Vec<epoll::Event>,
}

/// Wakes [`TcpChecks::wait`] from another thread.
#[derive(Clone)]
pub struct Waker(Arc<OwnedFd>);

impl Waker {
    /// Wake the waiting thread (a write to its eventfd).
    pub fn wake(&self) {
        let _ = rustix::io::write(&*self.0, &1u64.to_ne_bytes());
    }
}

impl<T> TcpChecks<T> {
    /// An empty set.
    pub fn new() -> std::io::Result<TcpChecks<T>> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?;
        epoll::add(
            &epoll,
            &wake,
            epoll::EventData::new_u64(WAKE),
            epoll::EventFlags::IN,
        )?;
        Ok(TcpChecks {
            epoll,
            wake: Arc::new(wake),
            pending: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next: 0,
            events: Vec::with_capacity(256),
        })
    }

    /// What wakes [`TcpChecks::wait`].
    pub fn waker(&self) -> Waker {
        Waker(Arc::clone(&self.wake))
    }

    /// The earliest deadline of a connect in progress.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((t, id))) = self.deadlines.peek().copied() {
            if self.pending.contains_key(&id) {
                return Some(t);
            }
            self.deadlines.pop();
        }
        None
    }

    /// Start TCP_CHECK `ck`; when it is over at once (a socket or bind
    /// error, or connected already) its outcome goes to `done`.
    pub fn start(&mut self, ck: &Checker, tag: T, done: &mut Vec<(T, Outcome)>) {
        let sock = match open(ck) {
            Ok((sock, false)) => sock,
            Ok((sock, true)) => {
                if ck.bind_port.is_some() {
                    close_with_reset(&sock);
                }
                return done.push((tag, tcp_outcome(ck, Ok(()))));
            }
            Err(Start::Failed(e)) => return done.push((tag, tcp_outcome(ck, Err(e)))),
            Err(not_run) => return done.push((tag, not_run.reschedule("TCP", ck))),
        };
        let id = self.next;
        self.next += 1;
        if let Err(e) = epoll::add(
            &self.epoll,
            &sock,
            epoll::EventData::new_u64(id),
            epoll::EventFlags::IN | epoll::EventFlags::OUT,
        ) {
            return done.push((tag, tcp_outcome(ck, Err(e.into()))));
        }
        let t = ck.timing.connect_timeout.max(Duration::from_millis(1));
        self.deadlines.push(Reverse((Instant::now() + t, id)));
        self.pending.insert(
            id,
            Pending {
                sock,
                ck_ip: ck.connect_ip,
                ck_port: ck.connect_port,
                reset: ck.bind_port.is_some(),
                tag,
            },
        );
    }

    /// Sleep up to `timeout` (less when a connect's deadline comes
    /// first) or until woken; the checks over go to `done`.
    pub fn wait(&mut self, timeout: Duration, done: &mut Vec<(T, Outcome)>) -> std::io::Result<()> {
        let now = Instant::now();
        let timeout = match self.next_deadline() {
            Some(t) => timeout.min(t.saturating_duration_since(now)),
            None => timeout,
        };
        let ts = rustix::event::Timespec::try_from(timeout).unwrap_or(rustix::event::Timespec {
            tv_sec: i64::from(i32::MAX),
            tv_nsec: 0,
        });
        self.events.clear();
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut self.events),
            Some(&ts),
        ) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        for i in 0..self.events.len() {
            let ev = self.events[i];
            let id = ev.data.u64();
            if id == WAKE {
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(&*self.wake, &mut buf);
                continue;
            }
            if let Some(p) = self.pending.remove(&id) {
                let flags = ev.flags;
                let hup = flags.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR);
                done.push(finish(p, hup));
            }
        }
        // Past their deadline: one last look, then a timeout.
        let now = Instant::now();
        while let Some(Reverse((t, id))) = self.deadlines.peek().copied() {
            if t > now {
                break;
            }
            self.deadlines.pop();
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            let mut fds = [PollFd::new(&p.sock, PollFlags::IN | PollFlags::OUT)];
            let ready = rustix::event::poll(&mut fds, Some(&rustix::event::Timespec::default()))
                .unwrap_or(0);
            let flags = fds[0].revents();
            if ready > 0 && !flags.is_empty() {
                let hup = flags.intersects(PollFlags::HUP | PollFlags::ERR);
                done.push(finish(p, hup));
            } else {
                let out = timeout_outcome(p.ck_ip, p.ck_port);
                done.push((p.tag, out));
            }
        }
        Ok(())
    }
}

/// The outcome of a connect the kernel reported on, as socket2's
/// `connect_timeout` judges it; the socket is closed (and so leaves the
/// epoll set).
fn finish<T>(p: Pending<T>, hup: bool) -> (T, Outcome) {
    let r = if hup {
        match p.sock.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => Err(std::io::Error::other("no error set after POLLHUP")),
        }
    } else {
        if p.reset {
            close_with_reset(&p.sock);
        }
        Ok(())
    };
    (p.tag, tcp_result_line(p.ck_ip, p.ck_port, r))
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

fn timeout_outcome(ip: std::net::IpAddr, port: u16) -> Outcome {
    tcp_result_line(ip, port, Err(std::io::ErrorKind::TimedOut.into()))
}
