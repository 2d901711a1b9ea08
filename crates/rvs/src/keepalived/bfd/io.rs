// SPDX-License-Identifier: GPL-2.0-or-later
//! The BFD sessions' thread: sockets, timers, and the state changes it
//! hands to the scheduler.
//!
//! Why a thread of its own and not the scheduler's epoll set
//! (`check/evented.rs`): BFD's timers are tens of milliseconds (keepalived's
//! default `min_tx` is 10 ms, with a 5 x 10 ms detection time at the peer),
//! and the scheduler's thread blocks for longer than that in its work: each
//! change goes to rvsd as a synchronous request, a reconcile lists and
//! sends the whole table, the state file is written. A late packet there
//! would be a session the peer declares down. Here nothing blocks but
//! poll(2) on the sockets until the next timer; the sessions themselves are
//! the pure state machines of `session.rs`. A change reaches the scheduler
//! as an [`Event`] on a channel and a wake of its epoll set, as the
//! FILE_CHECK pool's results do (keepalived: the BFD process writes its
//! events into a pipe the checker process reads).
//!
//! Sockets, as RFC 5881/5883 and keepalived's bfd_scheduler.c: one
//! receiving socket per family and port in use (3784 single-hop, 4784
//! multihop), with the TTL / hop limit and destination address of each
//! datagram (IP_RECVTTL, IP_PKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVPKTINFO);
//! one sending socket per session, bound to its `source_ip` (if any) and a
//! random port in 49152-65535, sending with the session's `ttl` (255 by
//! default). A packet is given to the session its Your Discriminator names,
//! or when that is zero to the one whose neighbour sent it (and whose
//! `source_ip`, if set, it was sent to); one whose TTL is more than
//! `max_hops` below the session's `ttl` is dropped (RFC 5881's GTSM; a
//! `max_hops` of 255 turns the check off, as in keepalived).

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::session::{Params, Session};
use super::wire::{Control, State, diag};
use crate::keepalived::conf::BfdInstance;

/// A session's state, for the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `bfd_instance`.
    pub name: String,
    /// Its state now.
    pub state: State,
    /// Its detection time (zero before the neighbour is heard).
    pub detect: Duration,
}

enum Cmd {
    Reload(Vec<BfdInstance>),
    Stop,
}

/// The running thread.
#[derive(Debug)]
pub struct Bfd {
    cmd: mpsc::Sender<Cmd>,
    events: mpsc::Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::Reload(v) => write!(f, "Reload({} instances)", v.len()),
            Cmd::Stop => write!(f, "Stop"),
        }
    }
}

impl Bfd {
    /// Start the thread with `instances`; `wake` is called after each
    /// batch of events, `log` says what keepalived's BFD process logs.
    pub fn start(
        instances: Vec<BfdInstance>,
        wake: impl Fn() + Send + 'static,
        log: fn(&str),
    ) -> Result<Bfd, String> {
        let (cmd, cmd_rx) = mpsc::channel();
        let (ev_tx, events) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("rvs-bfd".into())
            .spawn(move || {
                let mut r = Runner {
                    sessions: Vec::new(),
                    rx: HashMap::new(),
                    rng: seed(),
                    log,
                    out: ev_tx,
                    wake: Box::new(wake),
                };
                r.reload(instances, Instant::now());
                r.run(&cmd_rx);
            })
            .map_err(|e| format!("cannot start the BFD thread: {e}"))?;
        Ok(Bfd {
            cmd,
            events,
            thread: Some(thread),
        })
    }

    /// New instances (a reload): sessions whose name and addresses are the
    /// same keep running (new timers through a poll sequence), the others
    /// start or stop; every session's state is sent again.
    pub fn reload(&self, instances: Vec<BfdInstance>) {
        let _ = self.cmd.send(Cmd::Reload(instances));
    }

    /// The events since the last call.
    pub fn events(&self) -> Vec<Event> {
        self.events.try_iter().collect()
    }
}

impl Drop for Bfd {
    fn drop(&mut self) {
        let _ = self.cmd.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id()) | 1
}

/// One session with its instance and sending socket.
struct Sess {
    inst: BfdInstance,
    s: Session,
    sock: Option<UdpSocket>,
    /// When to try to open `sock` again.
    retry_open: Instant,
    send_error: bool,
    ttl_logged: bool,
    last_detect: Duration,
}

impl Sess {
    /// A new session of `inst` with local discriminator `discr`, its
    /// socket opened at the first send.
    fn new(inst: BfdInstance, discr: u32, now: Instant) -> Sess {
        Sess {
            s: Session::new(params(&inst), discr, now),
            inst,
            sock: None,
            retry_open: now,
            send_error: false,
            ttl_logged: false,
            last_detect: Duration::ZERO,
        }
    }
}

/// (family is IPv6, multihop) of a receiving socket.
type RxKey = (bool, bool);

struct Runner {
    sessions: Vec<Sess>,
    rx: HashMap<RxKey, UdpSocket>,
    rng: u64,
    log: fn(&str),
    out: mpsc::Sender<Event>,
    wake: Box<dyn Fn() + Send>,
}

fn params(b: &BfdInstance) -> Params {
    Params {
        min_tx: b.min_tx,
        min_rx: b.min_rx,
        idle_tx: b.idle_tx,
        mult: b.mult,
        passive: b.passive,
    }
}

/// The addresses that make a session the same one across a reload.
fn same_peer(a: &BfdInstance, b: &BfdInstance) -> bool {
    a.name == b.name
        && a.neighbor == b.neighbor
        && a.source == b.source
        && a.multihop == b.multihop
        && a.ttl == b.ttl
}

impl Runner {
    fn rand(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 16) as u32
    }

    fn discr(&mut self) -> u32 {
        loop {
            let d = self.rand();
            if d != 0 && !self.sessions.iter().any(|s| s.s.local_discr == d) {
                return d;
            }
        }
    }

    fn reload(&mut self, instances: Vec<BfdInstance>, now: Instant) {
        let mut old = std::mem::take(&mut self.sessions);
        for inst in instances {
            if let Some(i) = old.iter().position(|o| same_peer(&o.inst, &inst)) {
                let mut s = old.swap_remove(i);
                s.s.set_params(params(&inst), now);
                s.inst = inst;
                self.sessions.push(s);
                continue;
            }
            let d = self.discr();
            self.sessions.push(Sess::new(inst, d, now));
        }
        // Gone: the neighbour is told (AdminDown), then the socket closes.
        for mut o in old {
            let c = o.s.admin_down();
            (self.log)(&format!("({}) Entering AdminDown state", o.inst.name));
            if let Some(sock) = &o.sock {
                let _ = sock.send_to(&c.emit(), (o.inst.neighbor, o.inst.port()));
            }
        }
        // Receiving sockets for what is in use; the others close.
        let want: Vec<RxKey> = self
            .sessions
            .iter()
            .map(|s| (s.inst.neighbor.is_ipv6(), s.inst.multihop))
            .collect();
        self.rx.retain(|k, _| want.contains(k));
        for k in want {
            if self.rx.contains_key(&k) {
                continue;
            }
            match rx_socket(k) {
                Ok(s) => {
                    self.rx.insert(k, s);
                }
                Err(e) => (self.log)(&format!(
                    "BFD: cannot open the {} {} listening socket: {e}",
                    if k.0 { "IPv6" } else { "IPv4" },
                    if k.1 { "multihop" } else { "single-hop" }
                )),
            }
        }
        // keepalived's bfd_register_workers: every state to the checker.
        for i in 0..self.sessions.len() {
            let e = self.event(i);
            let _ = self.out.send(e);
        }
        (self.wake)();
    }

    fn event(&self, i: usize) -> Event {
        let s = &self.sessions[i];
        Event {
            name: s.inst.name.clone(),
            state: s.s.state(),
            detect: s.s.detect_time(),
        }
    }

    fn run(&mut self, cmds: &mpsc::Receiver<Cmd>) {
        loop {
            let cmd = if self.sessions.is_empty() {
                cmds.recv().ok().or(Some(Cmd::Stop))
            } else {
                cmds.try_recv().ok()
            };
            match cmd {
                Some(Cmd::Stop) => return,
                Some(Cmd::Reload(v)) => self.reload(v, Instant::now()),
                None => {}
            }
            let now = Instant::now();
            let mut woke = false;
            for i in 0..self.sessions.len() {
                self.sessions[i].s.on_timeout(now);
                self.transmit(i, now);
                woke |= self.changes(i);
            }
            if woke {
                (self.wake)();
            }
            let next = self
                .sessions
                .iter()
                .filter_map(|s| s.s.next_timeout())
                .min()
                .map_or(Duration::from_millis(100), |t| {
                    t.saturating_duration_since(Instant::now())
                })
                .min(Duration::from_millis(100));
            // Whole milliseconds, rounded up: a timer is never run early.
            let ms = next.as_micros().div_ceil(1000) as u16;
            self.wait(ms);
        }
    }

    /// Wait for datagrams up to `ms` and take them.
    fn wait(&mut self, ms: u16) {
        use nix::poll::{PollFd, PollFlags, poll};
        let keys: Vec<RxKey> = self.rx.keys().copied().collect();
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = keys
                .iter()
                .map(|k| PollFd::new(self.rx[k].as_fd(), PollFlags::POLLIN))
                .collect();
            if fds.is_empty() {
                std::thread::sleep(Duration::from_millis(ms.into()));
                return;
            }
            if poll(&mut fds, ms).is_err() {
                return;
            }
            fds.iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        let mut woke = false;
        for (k, r) in keys.into_iter().zip(ready) {
            if r {
                woke |= self.receive(k);
            }
        }
        if woke {
            (self.wake)();
        }
    }

    /// Every datagram waiting on socket `k`; whether a state changed.
    fn receive(&mut self, k: RxKey) -> bool {
        let mut changed = false;
        let mut buf = [0u8; 512];
        let mut cbuf = [0u8; 256];
        loop {
            let Some(sock) = self.rx.get(&k) else {
                return changed;
            };
            let fd = sock.as_raw_fd();
            let mut iov = [IoSliceMut::new(&mut buf)];
            let Ok(m) = recvmsg::<SockaddrStorage>(
                fd,
                &mut iov,
                Some(&mut cbuf[..]),
                MsgFlags::MSG_DONTWAIT,
            ) else {
                return changed;
            };
            let (mut ttl, mut dst) = (None, None);
            if let Ok(cm) = m.cmsgs() {
                for c in cm {
                    match c {
                        ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => {
                            ttl = Some(t)
                        }
                        ControlMessageOwned::Ipv4PacketInfo(p) => {
                            dst = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr))))
                        }
                        ControlMessageOwned::Ipv6PacketInfo(p) => {
                            dst = Some(IpAddr::V6(Ipv6Addr::from(p.ipi6_addr.s6_addr)))
                        }
                        _ => {}
                    }
                }
            }
            let src = m.address.and_then(|a| sockaddr_ip(&a));
            let n = m.bytes;
            let (Some(src), Ok(c)) = (src, Control::parse(&buf[..n])) else {
                continue;
            };
            let Some(i) = self.demux(&c, src, dst, k.1) else {
                continue;
            };
            let s = &mut self.sessions[i];
            if let Some(t) = ttl
                && s.inst.max_hops != 255
                && t + s.inst.max_hops < i32::from(s.inst.ttl)
            {
                if !s.ttl_logged {
                    s.ttl_logged = true;
                    (self.log)(&format!(
                        "({}) Packet from {src} {}({t}) < {} - discarding",
                        s.inst.name,
                        if src.is_ipv4() { "ttl" } else { "hop_limit" },
                        i32::from(s.inst.ttl) - s.inst.max_hops
                    ));
                }
                continue;
            }
            s.ttl_logged = false;
            let now = Instant::now();
            s.s.on_packet(now, &c);
            // An answer to a Poll goes at once.
            self.transmit(i, now);
            changed |= self.changes(i);
        }
    }

    /// RFC 5880 §6.8.6: the session a packet is for (of the family and
    /// port it came on).
    fn demux(
        &self,
        c: &Control,
        src: IpAddr,
        dst: Option<IpAddr>,
        multihop: bool,
    ) -> Option<usize> {
        self.sessions.iter().position(|s| {
            s.inst.multihop == multihop
                && s.inst.neighbor.is_ipv6() == src.is_ipv6()
                && if c.your_discr != 0 {
                    s.s.local_discr == c.your_discr
                } else {
                    s.inst.neighbor == src && s.inst.source.is_none_or(|a| Some(a) == dst)
                }
        })
    }

    /// Send what session `i` has due.
    fn transmit(&mut self, i: usize, now: Instant) {
        let rnd = self.rand();
        let log = self.log;
        let s = &mut self.sessions[i];
        let Some(c) = s.s.poll_transmit(now, rnd) else {
            return;
        };
        if s.sock.is_none() && now >= s.retry_open {
            match tx_socket(&s.inst, rnd) {
                Ok(sock) => s.sock = Some(sock),
                Err(e) => {
                    s.retry_open = now + Duration::from_secs(5);
                    if !s.send_error {
                        log(&format!("({}) cannot open its socket: {e}", s.inst.name));
                        s.send_error = true;
                    }
                }
            }
        }
        let Some(sock) = &s.sock else {
            return;
        };
        match sock.send_to(&c.emit(), (s.inst.neighbor, s.inst.port())) {
            Ok(_) => s.send_error = false,
            Err(e) => {
                if !s.send_error {
                    log(&format!("({}) Error sending packet: {e}", s.inst.name));
                    s.send_error = true;
                }
            }
        }
    }

    /// Session `i`'s state changes, logged as keepalived logs them and
    /// sent on; whether there were any.
    fn changes(&mut self, i: usize) -> bool {
        let log = self.log;
        let s = &mut self.sessions[i];
        let name = s.inst.name.clone();
        let detect = s.s.detect_time();
        // A new detection time is said too (`rvs health` shows it).
        let mut any = detect != s.last_detect;
        if any {
            log(&format!(
                "({name}) Detection time is {} us (was {} us)",
                detect.as_micros(),
                s.last_detect.as_micros()
            ));
            s.last_detect = detect;
        }
        let new_detect = any;
        let mut sent = false;
        while let Some(ch) = s.s.poll_event() {
            any = true;
            sent = true;
            match ch.to {
                State::Down if ch.from == State::Up => log(&format!(
                    "({name}) Entering Down state (Local diagnostic - {}, Remote diagnostic - {})",
                    diag::name(ch.diag),
                    diag::name(ch.remote_diag)
                )),
                State::Up => log(&format!("({name}) Entering Up state")),
                _ => {}
            }
            let _ = self.out.send(Event {
                name: name.clone(),
                state: ch.to,
                detect,
            });
        }
        if new_detect && !sent {
            let _ = self.out.send(Event {
                name,
                state: s.s.state(),
                detect,
            });
        }
        any
    }
}

fn sockaddr_ip(a: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    a.as_sockaddr_in6().map(|v6| {
        let ip = v6.ip();
        // An IPv4-mapped sender on an IPv6 socket is an IPv4 neighbour.
        ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4)
    })
}

/// The receiving socket of family and port `k`.
fn rx_socket((v6, multihop): RxKey) -> std::io::Result<UdpSocket> {
    let port = if multihop { 4784 } else { 3784 };
    let (domain, any) = if v6 {
        (Domain::IPV6, IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    } else {
        (Domain::IPV4, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    if v6 {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    let u: UdpSocket = s.into();
    let io = |e: nix::Error| std::io::Error::from_raw_os_error(e as i32);
    if v6 {
        setsockopt(&u, sockopt::Ipv6RecvHopLimit, &true).map_err(io)?;
        setsockopt(&u, sockopt::Ipv6RecvPacketInfo, &true).map_err(io)?;
    } else {
        setsockopt(&u, sockopt::Ipv4RecvTtl, &true).map_err(io)?;
        setsockopt(&u, sockopt::Ipv4PacketInfo, &true).map_err(io)?;
    }
    let s = Socket::from(u);
    s.bind(&SockAddr::from(SocketAddr::new(any, port)))?;
    Ok(s.into())
}

/// A session's sending socket: its source address, a port in
/// 49152-65535 (RFC 5881 §4), its TTL / hop limit.
fn tx_socket(b: &BfdInstance, rnd: u32) -> std::io::Result<UdpSocket> {
    let domain = if b.neighbor.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if b.neighbor.is_ipv6() {
        s.set_unicast_hops_v6(b.ttl.into())?;
    } else {
        s.set_ttl_v4(b.ttl.into())?;
    }
    s.set_nonblocking(true)?;
    let src = b.source.unwrap_or(if b.neighbor.is_ipv6() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    let span = 65535 - 49152 + 1;
    let start = rnd % span;
    let mut last = None;
    for k in 0..span {
        let port = 49152 + ((start + k) % span) as u16;
        match s.bind(&SockAddr::from(SocketAddr::new(src, port))) {
            Ok(()) => return Ok(s.into()),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free source port")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::lex::Pos;

    fn inst(name: &str, neighbor: &str, source: Option<&str>, multihop: bool) -> BfdInstance {
        BfdInstance {
            name: name.into(),
            neighbor: neighbor.parse().unwrap(),
            source: source.map(|s| s.parse().unwrap()),
            min_rx: 10_000,
            min_tx: 10_000,
            idle_tx: 1_000_000,
            mult: 5,
            passive: false,
            ttl: 255,
            max_hops: 0,
            multihop,
            pos: Pos {
                file: "k.conf".into(),
                line: 1,
            },
        }
    }

    fn runner(instances: Vec<BfdInstance>) -> Runner {
        let (out, _) = mpsc::channel();
        let now = Instant::now();
        let mut r = Runner {
            sessions: Vec::new(),
            rx: HashMap::new(),
            rng: 1,
            log: |_| {},
            out,
            wake: Box::new(|| {}),
        };
        for (i, inst) in instances.into_iter().enumerate() {
            r.sessions.push(Sess::new(inst, 100 + i as u32, now));
        }
        r
    }

    fn pkt(your: u32) -> Control {
        Control::down(9, your, 1_000_000, 1_000_000)
    }

    #[test]
    fn demultiplexing() {
        let r = runner(vec![
            inst("a", "10.0.0.2", None, false),
            inst("b", "10.0.0.3", Some("10.0.0.1"), false),
            inst("c", "10.0.0.2", None, true),
            inst("d", "2001:db8::2", None, false),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Your Discriminator names the session, whoever sends it.
        assert_eq!(r.demux(&pkt(101), ip("10.9.9.9"), None, false), Some(1));
        assert_eq!(r.demux(&pkt(555), ip("10.0.0.2"), None, false), None);
        // Zero: the neighbour's address, single-hop or multihop port.
        assert_eq!(r.demux(&pkt(0), ip("10.0.0.2"), None, false), Some(0));
        assert_eq!(r.demux(&pkt(0), ip("10.0.0.2"), None, true), Some(2));
        assert_eq!(r.demux(&pkt(0), ip("2001:db8::2"), None, false), Some(3));
        // With a source_ip, the packet must have been sent to it.
        let to = |d: &str| Some(ip(d));
        assert_eq!(
            r.demux(&pkt(0), ip("10.0.0.3"), to("10.0.0.1"), false),
            Some(1)
        );
        assert_eq!(
            r.demux(&pkt(0), ip("10.0.0.3"), to("10.0.0.7"), false),
            None
        );
        // Nor a session's discriminator from the other family.
        assert_eq!(r.demux(&pkt(103), ip("10.0.0.2"), None, false), None);
    }

    #[test]
    fn the_same_session_across_a_reload() {
        let a = inst("a", "10.0.0.2", None, false);
        let mut b = a.clone();
        b.min_tx = 50_000;
        b.passive = true;
        assert!(same_peer(&a, &b), "timers change through a poll");
        for change in [
            |b: &mut BfdInstance| b.name = "z".into(),
            |b: &mut BfdInstance| b.neighbor = "10.0.0.9".parse().unwrap(),
            |b: &mut BfdInstance| b.source = Some("10.0.0.1".parse().unwrap()),
            |b: &mut BfdInstance| b.multihop = true,
            |b: &mut BfdInstance| b.ttl = 1,
        ] {
            let mut b = a.clone();
            change(&mut b);
            assert!(!same_peer(&a, &b), "{b:?}");
        }
    }

    #[test]
    fn ipv4_mapped_senders_are_ipv4() {
        let v6: SockaddrStorage =
            SocketAddr::from(("::ffff:10.0.0.2".parse::<Ipv6Addr>().unwrap(), 1)).into();
        assert_eq!(sockaddr_ip(&v6), Some("10.0.0.2".parse().unwrap()));
        let v4: SockaddrStorage = SocketAddr::from(([10, 0, 0, 3], 1)).into();
        assert_eq!(sockaddr_ip(&v4), Some("10.0.0.3".parse().unwrap()));
    }
}
