// SPDX-License-Identifier: GPL-2.0-or-later
//! The checks without a thread each: TCP_CHECK, HTTP_GET, SSL_GET,
//! SMTP_CHECK, DNS_CHECK, UDP_CHECK and PING_CHECK on nonblocking sockets
//! watched by one epoll set, driven by the scheduler's own thread.
//!
//! Which checker runs where, and why:
//!
//! * here, on the scheduler's thread: TCP_CHECK (one connect:
//!   `tcp.rs`), HTTP_GET and SSL_GET (a connect, the request, the
//!   response, per `url`; SSL_GET's TLS driven without I/O of its own by
//!   rustls: `http.rs`), SMTP_CHECK (a connect, the greeting, `HELO`,
//!   `QUIT`: `smtp.rs`), DNS_CHECK, UDP_CHECK and PING_CHECK (one
//!   datagram out, the replies in: `dgram.rs`). Each spends nearly all of
//!   its time waiting on a socket: on a worker thread that is a thread
//!   blocked per check in progress, and a hung server holds one for its
//!   whole `connect_timeout`; here it is an entry in the epoll set, with
//!   its own deadline.
//! * here too, MISC_CHECK (`script.rs`): the script is started and its
//!   exit watched through a pidfd in the same epoll set, its deadline
//!   `misc_timeout`, so hundreds of hung scripts hold no thread.
//! * on the pool's workers (`../pool.rs`): FILE_CHECK (it reads a file,
//!   which a file system that hangs could block). What asks for its
//!   reads is here: its files' inotify instance is a source of this
//!   epoll set ([`Checks::add_source`], `../run/file_watch.rs`), and so
//!   is ha_suspend's netlink socket of address events
//!   (`../run/addr_watch.rs`).
//!
//! [`Checks::start`] opens the socket (`fwmark`, `bindto`/`bind_port`
//! as [`super::run`] does), starts the connect and adds the socket to the
//! epoll set; [`Checks::wait`] is where the scheduler sleeps (the pool's
//! workers wake it through an eventfd when they have a result) and drives
//! each check whose socket is ready, as far as it goes without blocking:
//! the connect is judged as socket2's `connect_timeout` judges it
//! (readable or writable: connected, unless hung up or in error: the
//! socket's error; a datagram socket is connected at once), then an
//! exchange (HTTP, SMTP, a datagram and its replies) writes and reads
//! until the kernel would block, and the check waits again for what it
//! needs next.
//! Each connection has its own deadline (`connect_timeout` from its
//! connect: for HTTP_GET per `url`, as the blocking check had), so a hung
//! server or one that drips its answer times out only its own check. A
//! check past its deadline is driven once more before it is called a
//! timeout: a scheduler held up elsewhere (rvsd slow to answer) does not
//! turn a check that succeeded into a failure.
//!
//! The cost of that: the scheduler's thread does the checks' work too
//! (SSL_GET's handshakes are its CPU, not a worker's). Memory stays small
//! with many checks in progress: an HTTP_GET judges its response as it
//! is read (`response.rs`), holding its head, and of its body the MD5 so
//! far (`digest`, as keepalived computes it) but not the bytes, which are
//! dropped; only a url with `regex` keeps its body, up to 4 MiB (the
//! regex crate matches one whole text), as a worker kept every response
//! (there were at most `--threads` of those at once, here as many as the
//! checks with a `regex` in progress).
//!
//! [`run_one`] runs one check on an epoll set of its own, blocking the
//! caller: [`super::run`]'s HTTP_GET, SSL_GET, SMTP_CHECK, DNS_CHECK,
//! UDP_CHECK and PING_CHECK, so that there is one
//! implementation of them, not a blocking one beside this.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, epoll};
use socket2::Socket;

use super::{Outcome, Start, dgram, http, open, script, smtp, tcp};
use crate::keepalived::conf::{CheckKind, Checker};

/// The epoll data of the eventfd (sockets get 0, 1, 2…).
const WAKE: u64 = u64::MAX;

/// The epoll data of the scheduler's other file descriptors
/// ([`Checks::add_source`]): `SOURCES + n`, n < 8.
const SOURCES: u64 = WAKE - 8;

/// Whether `kind` runs on the event loop ([`Checks`]), not on the pool.
pub fn evented(kind: &CheckKind) -> bool {
    matches!(
        kind,
        CheckKind::Tcp
            | CheckKind::Misc { .. }
            | CheckKind::Http { .. }
            | CheckKind::Smtp { .. }
            | CheckKind::Dns { .. }
            | CheckKind::Udp { .. }
            | CheckKind::Ping
    )
}

/// What the kernel said of a socket that is ready (readable or
/// writable): a check reads and writes until it would block, whichever
/// the kernel said, so only a hang-up or an error counts (the judgement
/// of a connect in progress).
#[derive(Debug, Clone, Copy)]
pub(super) struct Ready {
    /// Hung up or in error.
    pub hup: bool,
}

impl Ready {
    fn of_epoll(f: epoll::EventFlags) -> Ready {
        use epoll::EventFlags as E;
        Ready {
            hup: f.intersects(E::HUP | E::ERR),
        }
    }

    fn of_poll(f: PollFlags) -> Ready {
        Ready {
            hup: f.intersects(PollFlags::HUP | PollFlags::ERR),
        }
    }

    /// Connected at once.
    const CONNECTED: Ready = Ready { hup: false };
}

/// What a check does after it was driven.
pub(super) enum Step {
    /// Wait for these events on its socket.
    Wait(epoll::EventFlags),
    /// Over.
    Done(Outcome),
    /// Close this connection and connect again (HTTP_GET's next url).
    Again,
}

/// A check's own state.
pub(super) enum Job {
    Tcp(tcp::Connect),
    Http(Box<http::Get>),
    Smtp(Box<smtp::Smtp>),
    Dgram(Box<dgram::Probe>),
    Script(Box<script::Script>),
}

impl Job {
    /// Drive the job; `sock`: its socket (a script has none).
    fn ready(&mut self, sock: Option<&Socket>, r: Ready) -> Step {
        let sock = || sock.expect("a check of a socket");
        match self {
            Job::Tcp(c) => Step::Done(c.ready(sock(), r)),
            Job::Http(g) => g.ready(sock(), r),
            Job::Smtp(m) => m.ready(sock(), r),
            Job::Dgram(p) => p.ready(sock(), r),
            Job::Script(s) => s.ready(),
        }
    }

    fn timeout(&mut self) -> Outcome {
        match self {
            Job::Tcp(c) => c.timeout(),
            Job::Http(g) => g.timeout(),
            Job::Smtp(m) => m.timeout(),
            Job::Dgram(p) => p.timeout(),
            Job::Script(s) => s.timeout(),
        }
    }

    fn not_started(&self, e: Start) -> Outcome {
        match self {
            Job::Tcp(c) => c.not_started(e),
            Job::Http(g) => g.not_started(e),
            Job::Smtp(m) => m.not_started(e),
            Job::Dgram(p) => p.not_started(e),
            Job::Script(_) => Outcome::Down(format!("Misc check: {e:?}")),
        }
    }
}

/// One check in progress.
struct Pending<T> {
    /// Its socket; a script's is none (its pidfd is in its job).
    sock: Option<Socket>,
    /// The events it waits for.
    interest: epoll::EventFlags,
    job: Job,
    tag: T,
}

/// The checks in progress; `T` tags each (the scheduler's generation and
/// checker index).
pub struct Checks<T> {
    epoll: OwnedFd,
    wake: Arc<OwnedFd>,
    pending: HashMap<u64, Pending<T>>,
    /// Deadlines, one per connection; entries of connections already
    /// over are skipped.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Scripts without a pidfd: looked at every 10 ms.
    polled: Vec<u64>,
    next: u64,
    events: Vec<epoll::Event>,
    /// Sources readable at the last wait, one bit each.
    ready: u8,
}

/// Wakes [`Checks::wait`] from another thread.
#[derive(Clone)]
pub struct Waker(Arc<OwnedFd>);

impl Waker {
    /// Wake the waiting thread (a write to its eventfd).
    pub fn wake(&self) {
        let _ = rustix::io::write(&*self.0, &1u64.to_ne_bytes());
    }
}

impl<T> Checks<T> {
    /// An empty set.
    pub fn new() -> std::io::Result<Checks<T>> {
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
        Ok(Checks {
            epoll,
            wake: Arc::new(wake),
            pending: HashMap::new(),
            deadlines: BinaryHeap::new(),
            polled: Vec::new(),
            next: 0,
            events: Vec::with_capacity(256),
            ready: 0,
        })
    }

    /// What wakes [`Checks::wait`].
    pub fn waker(&self) -> Waker {
        Waker(Arc::clone(&self.wake))
    }

    /// Watch `fd` too, as source `n` (< 8): [`Checks::wait`] returns when
    /// it is readable, and [`Checks::ready`] says so. Level-triggered:
    /// the caller reads it until it would block (tracked files' inotify
    /// events, netlink's address events).
    pub fn add_source(&mut self, fd: BorrowedFd<'_>, n: u8) -> std::io::Result<()> {
        assert!(n < 8, "source {n}");
        let data = epoll::EventData::new_u64(SOURCES + u64::from(n));
        Ok(epoll::add(&self.epoll, fd, data, epoll::EventFlags::IN)?)
    }

    /// Whether source `n` was readable at the last [`Checks::wait`]
    /// (asked once: the answer is cleared).
    pub fn ready(&mut self, n: u8) -> bool {
        let bit = 1u8 << n;
        let r = self.ready & bit != 0;
        self.ready &= !bit;
        r
    }

    /// The earliest deadline of a check in progress.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((t, id))) = self.deadlines.peek().copied() {
            if self.pending.contains_key(&id) {
                return Some(t);
            }
            self.deadlines.pop();
        }
        None
    }

    /// Start `ck` (a checker of the event loop: [`evented`]); when
    /// it is over at once (a socket or bind error, refused at once,
    /// HTTP_GET without a url) its outcome goes to `done`.
    pub fn start(&mut self, ck: &Checker, tag: T, done: &mut Vec<(T, Outcome)>) {
        let job = match &ck.kind {
            CheckKind::Tcp => Job::Tcp(tcp::Connect::new(ck)),
            CheckKind::Smtp { .. } => Job::Smtp(Box::new(smtp::Smtp::new(ck))),
            CheckKind::Dns { .. } | CheckKind::Udp { .. } | CheckKind::Ping => {
                let mut p = Box::new(dgram::Probe::new(ck));
                // Connected at once: the datagram goes out at the first drive.
                let opened = dgram::open(ck).map(|(sock, raw)| {
                    p.set_raw(raw);
                    (sock, true)
                });
                let t = ck.timing.connect_timeout;
                return self.watch(opened, t, Job::Dgram(p), tag, done);
            }
            CheckKind::Misc {
                path,
                timeout,
                dynamic,
                user,
            } => {
                return match script::Script::spawn(path, *dynamic, user) {
                    Ok(s) => self.watch_script(Box::new(s), *timeout, tag, done),
                    Err(out) => done.push((tag, out)),
                };
            }
            CheckKind::Http { .. } => match http::Get::new(ck) {
                Some(g) => Job::Http(Box::new(g)),
                // keepalived: no url, up without a check.
                None => return done.push((tag, Outcome::Up(None))),
            },
            _ => {
                debug_assert!(false, "{:?} is not a check of the event loop", ck.kind);
                return done.push((tag, super::run(ck)));
            }
        };
        self.watch(open(ck), ck.timing.connect_timeout, job, tag, done);
    }

    /// Watch the connection `opened` for `job`, its deadline
    /// `connect_timeout` from now.
    fn watch(
        &mut self,
        opened: Result<(Socket, bool), Start>,
        connect_timeout: Duration,
        job: Job,
        tag: T,
        done: &mut Vec<(T, Outcome)>,
    ) {
        let (sock, connected) = match opened {
            Ok(o) => o,
            Err(e) => return done.push((tag, job.not_started(e))),
        };
        let id = self.next;
        self.next += 1;
        let interest = epoll::EventFlags::IN | epoll::EventFlags::OUT;
        if let Err(e) = epoll::add(&self.epoll, &sock, epoll::EventData::new_u64(id), interest) {
            let out = job.not_started(Start::Failed(e.into()));
            return done.push((tag, out));
        }
        let t = connect_timeout.max(Duration::from_millis(1));
        self.deadlines.push(Reverse((Instant::now() + t, id)));
        self.pending.insert(
            id,
            Pending {
                sock: Some(sock),
                interest,
                job,
                tag,
            },
        );
        if connected {
            self.drive(id, Ready::CONNECTED, false, done);
        }
    }

    /// Watch the running script `s` (its pidfd, or every 10 ms without
    /// one), its deadline `misc_timeout` from now.
    fn watch_script(
        &mut self,
        s: Box<script::Script>,
        misc_timeout: Duration,
        tag: T,
        done: &mut Vec<(T, Outcome)>,
    ) {
        let id = self.next;
        self.next += 1;
        let interest = epoll::EventFlags::IN;
        match s.pidfd() {
            Some(fd) => {
                if let Err(e) = epoll::add(&self.epoll, fd, epoll::EventData::new_u64(id), interest)
                {
                    // Dropped: the script is killed and reaped.
                    return done.push((tag, Outcome::Down(format!("epoll: {e}"))));
                }
            }
            None => self.polled.push(id),
        }
        let t = misc_timeout.max(Duration::from_millis(1));
        self.deadlines.push(Reverse((Instant::now() + t, id)));
        self.pending.insert(
            id,
            Pending {
                sock: None,
                interest,
                job: Job::Script(s),
                tag,
            },
        );
    }

    /// Drive check `id`, its socket `r`; `late`: past its deadline, a
    /// last look (a check that still waits is a timeout).
    fn drive(&mut self, id: u64, r: Ready, late: bool, done: &mut Vec<(T, Outcome)>) {
        let Some(mut p) = self.pending.remove(&id) else {
            return;
        };
        match p.job.ready(p.sock.as_ref(), r) {
            Step::Wait(_) if late => done.push((p.tag, p.job.timeout())),
            Step::Wait(want) => {
                if let Some(sock) = &p.sock
                    && want != p.interest
                {
                    if let Err(e) =
                        epoll::modify(&self.epoll, sock, epoll::EventData::new_u64(id), want)
                    {
                        return done.push((p.tag, Outcome::Down(format!("epoll: {e}"))));
                    }
                    p.interest = want;
                }
                self.pending.insert(id, p);
            }
            // The socket closes here, and so leaves the epoll set.
            Step::Done(out) => done.push((p.tag, out)),
            Step::Again => {
                drop(p.sock);
                let Job::Http(g) = &p.job else {
                    unreachable!("only HTTP_GET connects again")
                };
                let (opened, t) = (open(&g.ck), g.ck.timing.connect_timeout);
                self.watch(opened, t, p.job, p.tag, done);
            }
        }
    }

    /// Sleep up to `timeout` (less when a check's deadline comes first)
    /// or until woken; the checks over go to `done`.
    pub fn wait(&mut self, timeout: Duration, done: &mut Vec<(T, Outcome)>) -> std::io::Result<()> {
        let now = Instant::now();
        let mut timeout = match self.next_deadline() {
            Some(t) => timeout.min(t.saturating_duration_since(now)),
            None => timeout,
        };
        if !self.polled.is_empty() {
            timeout = timeout.min(Duration::from_millis(10));
        }
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
            if (SOURCES..WAKE).contains(&id) {
                self.ready |= 1 << (id - SOURCES);
                continue;
            }
            self.drive(id, Ready::of_epoll(ev.flags), false, done);
        }
        // Scripts without a pidfd.
        let polled = std::mem::take(&mut self.polled);
        for &id in &polled {
            self.drive(id, Ready::CONNECTED, false, done);
        }
        self.polled = polled;
        self.polled.retain(|id| self.pending.contains_key(id));
        // Past their deadline: one last look, then a timeout.
        let now = Instant::now();
        while let Some(Reverse((t, id))) = self.deadlines.peek().copied() {
            if t > now {
                break;
            }
            self.deadlines.pop();
            let Some(p) = self.pending.get(&id) else {
                continue;
            };
            let Some(sock) = &p.sock else {
                // A script: exited by now, or killed.
                self.drive(id, Ready::CONNECTED, true, done);
                continue;
            };
            let mut fds = [PollFd::new(sock, PollFlags::IN | PollFlags::OUT)];
            let ready = rustix::event::poll(&mut fds, Some(&rustix::event::Timespec::default()))
                .unwrap_or(0);
            let flags = fds[0].revents();
            if ready > 0 && !flags.is_empty() {
                self.drive(id, Ready::of_poll(flags), true, done);
            } else if let Some(mut p) = self.pending.remove(&id) {
                done.push((p.tag, p.job.timeout()));
            }
        }
        Ok(())
    }
}

/// One check of `ck` on an epoll set of its own, blocking the caller
/// until it is over (at most its `connect_timeout` per connection).
pub(super) fn run_one(ck: &Checker) -> Outcome {
    let mut checks = match Checks::new() {
        Ok(c) => c,
        Err(e) => return Outcome::Down(format!("epoll: {e}")),
    };
    let mut done = Vec::with_capacity(1);
    checks.start(ck, (), &mut done);
    while done.is_empty() {
        if let Err(e) = checks.wait(Duration::from_secs(1), &mut done) {
            return Outcome::Down(format!("epoll: {e}"));
        }
    }
    done.remove(0).1
}
