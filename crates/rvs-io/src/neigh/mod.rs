//! Next hops for the data plane: the egress interface, the neighbour's MAC and
//! the source address for a destination, from the kernel's routes and
//! neighbour tables (rtnetlink).
//!
//! rvs forwards frames itself (AF_XDP), so it must fill in destination MACs
//! the way the kernel would: route lookup, then the gateway's (or the
//! destination's) neighbour entry. A [`Resolver`] owns one thread that keeps a
//! cache current; the data plane only reads that cache ([`Resolver::lookup`]
//! takes a read lock and never makes a syscall on a hit).
//!
//! # The resolver thread
//!
//! * At start it subscribes to the link, address, neighbour, route, rule and
//!   nexthop multicast groups, then dumps links, addresses and the IPv4 and
//!   IPv6 neighbour tables on that same socket, so dump replies and events
//!   reach it in the order the kernel produced them.
//! * A destination is *tracked* from its first [`Resolver::lookup`] or
//!   [`Resolver::resolve`]: the thread asks the kernel for the route
//!   (`RTM_GETROUTE`, a second socket that belongs to no group), which gives the
//!   egress interface, the gateway (`RTA_GATEWAY`, or `RTA_VIA` for an IPv4
//!   route with an IPv6 gateway) and the preferred source. The hop is then
//!   `(ifindex, gateway or destination)`; when that neighbour has no usable
//!   entry the thread makes the kernel resolve it (`RTM_NEWNEIGH` with
//!   `NTF_USE`, which starts ARP / neighbour solicitation exactly as an
//!   outgoing packet would) and picks the answer up from the neighbour events.
//!   If the kernel refuses `NTF_USE` it falls back to one UDP datagram to the
//!   neighbour's discard port.
//! * Any route, rule or nexthop event re-runs `RTM_GETROUTE` for every
//!   tracked destination (once per batch of events); neighbour events update
//!   the destinations that use that neighbour; link and address events update
//!   the interface table.
//! * The kernel does not see the frames rvs sends, so it never confirms the
//!   neighbours rvs uses: every [`ResolverConfig::refresh_interval`] the
//!   thread sends `NTF_USE` for each neighbour in use that went `STALE`, which
//!   makes the kernel probe it (unicast) and report `REACHABLE` or `FAILED`.
//! * A neighbour in use that is deleted (`ip neigh flush`, garbage collection)
//!   keeps its last MAC while the kernel resolves it again; a neighbour that
//!   goes `FAILED` fails the destinations behind it
//!   ([`NeighError::Unresolved`]).
//! * Lost events (`ENOBUFS` on the event socket) make the thread dump
//!   everything again.
//! * Destinations nobody asked for during [`ResolverConfig::idle_timeout`]
//!   are forgotten (the generation moves if one of them had a hop).
//!
//! # Namespaces
//!
//! The netlink sockets belong to the network namespace of the thread that
//! calls [`Resolver::start`] (the resolver thread inherits it; a thread that
//! `setns`'d into a namespace can start a resolver for that namespace).

use std::collections::{HashMap, HashSet, hash_map::Entry};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr as InetSocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteType, RouteVia,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::RecvFlags;

// ----- public types ------------------------------------------------------------

/// Where to send frames for a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// Egress interface.
    pub ifindex: u32,
    /// Its name.
    pub ifname: String,
    /// The MAC address of `via` (all zeros on an interface without one, such
    /// as a tunnel or a `NOARP` link).
    pub neighbour_mac: [u8; 6],
    /// The gateway, or the destination itself when it is directly connected.
    pub via: IpAddr,
    /// The preferred source address of the route (`RTA_PREFSRC`).
    pub src: Option<IpAddr>,
}

/// An interface as the resolver last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfInfo {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub name: String,
    /// Its MAC address (all zeros when it has no Ethernet address).
    pub mac: [u8; 6],
    /// IP MTU.
    pub mtu: u32,
    /// Its IPv4 and IPv6 addresses, in the kernel's order, without tentative
    /// (duplicate address detection still running) or DAD-failed ones.
    pub addrs: Vec<IpAddr>,
    /// Administratively up and running (carrier).
    pub up: bool,
}

/// Why a destination has no next hop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NeighError {
    /// The destination is an address of this host (`RTN_LOCAL`, or a local
    /// IPv6 anycast address).
    #[error("{0} is an address of this host")]
    Local(IpAddr),
    /// No usable route: none at all, or an unreachable / prohibit / blackhole
    /// route, or a broadcast or multicast destination.
    #[error("no route to {dst}: {reason}")]
    NoRoute {
        /// The destination.
        dst: IpAddr,
        /// What the kernel said.
        reason: String,
    },
    /// The neighbour did not answer (the kernel's entry went `FAILED`, or no
    /// answer within [`ResolverConfig::pending_timeout`]).
    #[error("neighbour {via} (ifindex {ifindex}) for {dst} does not answer")]
    Unresolved {
        /// The destination.
        dst: IpAddr,
        /// The neighbour that was asked: the gateway or the destination.
        via: IpAddr,
        /// The interface it was asked on.
        ifindex: u32,
    },
    /// [`Resolver::resolve`] gave up waiting.
    #[error("timed out resolving {0}")]
    Timeout(IpAddr),
    /// A netlink or socket error.
    #[error("netlink: {0}")]
    Netlink(String),
    /// The resolver thread has stopped.
    #[error("the resolver thread has stopped: {0}")]
    Stopped(String),
}

impl NeighError {
    fn netlink(context: &str, e: impl std::fmt::Display) -> Self {
        NeighError::Netlink(format!("{context}: {e}"))
    }
}

/// Tunables of the resolver thread. [`Default`] suits a director.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// A destination that failed is tried again by [`Resolver::lookup`] after
    /// this long ([`Resolver::resolve`] always tries again).
    pub retry_after: Duration,
    /// A neighbour that neither answers nor fails within this long fails the
    /// destinations waiting for it (the kernel itself gives up after about
    /// 3 s with the default `mcast_solicit`/`retrans_time`).
    pub pending_timeout: Duration,
    /// How often neighbours in use that went `STALE` are re-probed.
    pub refresh_interval: Duration,
    /// Destinations not asked for during this long are forgotten.
    pub idle_timeout: Duration,
    /// How long [`Resolver::start`] waits for the initial dumps.
    pub start_timeout: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            retry_after: Duration::from_secs(1),
            pending_timeout: Duration::from_secs(5),
            refresh_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(300),
            start_timeout: Duration::from_secs(5),
        }
    }
}

/// Handle to the resolver thread and its cache. Share it with `Arc`; dropping
/// it stops the thread.
#[derive(Debug)]
pub struct Resolver {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Resolver {
    /// Start the resolver thread with the default configuration; returns once
    /// links, addresses and neighbours have been dumped.
    pub fn start() -> Result<Resolver, NeighError> {
        Self::start_with(ResolverConfig::default())
    }

    /// [`Resolver::start`] with explicit tunables.
    pub fn start_with(config: ResolverConfig) -> Result<Resolver, NeighError> {
        let wake = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| NeighError::netlink("eventfd", e))?;
        let shared = Arc::new(Shared {
            hops: RwLock::new(HashMap::new()),
            links: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            ready: Mutex::new(Vec::new()),
            requests: Mutex::new(HashMap::new()),
            wake,
            changes: Mutex::new(0),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            stopped: Mutex::new(None),
            retry_after: config.retry_after,
        });
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread_shared = Arc::clone(&shared);
        let start_timeout = config.start_timeout;
        let thread = std::thread::Builder::new()
            .name("rvs-neigh".into())
            .spawn(move || {
                let worker = match Worker::new(Arc::clone(&thread_shared), config) {
                    Ok(w) => w,
                    Err(e) => {
                        thread_shared.set_stopped(e.to_string());
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                worker.run();
            })
            .map_err(|e| NeighError::netlink("spawning the resolver thread", e))?;
        let mut resolver = Resolver {
            shared,
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(start_timeout) {
            Ok(Ok(())) => Ok(resolver),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                resolver.stop();
                Err(NeighError::Netlink(
                    "the initial netlink dumps did not finish".into(),
                ))
            }
        }
    }

    /// The cached next hop for `dst`. Non-blocking: on a miss (or a failure
    /// older than [`ResolverConfig::retry_after`]) it returns `None` and asks
    /// the resolver thread to resolve `dst`; later calls return the hop once
    /// it is known. A hit takes a read lock and clones the hop.
    pub fn lookup(&self, dst: IpAddr) -> Option<NextHop> {
        {
            let hops = read(&self.shared.hops);
            if let Some(slot) = hops.get(&dst) {
                slot.used.store(true, Ordering::Relaxed);
                match &slot.state {
                    SlotState::Ready(hop) => return Some(hop.clone()),
                    SlotState::Pending => return None,
                    SlotState::Failed { at, .. } => {
                        if at.elapsed() < self.shared.retry_after {
                            return None;
                        }
                    }
                }
            }
        }
        self.shared.request(dst, Request::Resolve { force: false });
        None
    }

    /// The next hop for `dst`, waiting up to `timeout` for it to resolve.
    /// Meant for start-up and tests; a destination that failed before is
    /// tried again.
    pub fn resolve(&self, dst: IpAddr, timeout: Duration) -> Result<NextHop, NeighError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut requested = false;
        loop {
            let seen = *lock(&self.shared.changes);
            if let Some(reason) = lock(&self.shared.stopped).clone() {
                return Err(NeighError::Stopped(reason));
            }
            {
                let hops = read(&self.shared.hops);
                match hops.get(&dst) {
                    Some(slot) => {
                        slot.used.store(true, Ordering::Relaxed);
                        match &slot.state {
                            SlotState::Ready(hop) => return Ok(hop.clone()),
                            SlotState::Failed { err, at } if *at >= start => {
                                return Err(err.clone());
                            }
                            SlotState::Failed { .. } if !requested => {
                                drop(hops);
                                self.shared.request(dst, Request::Resolve { force: true });
                                requested = true;
                            }
                            _ => {}
                        }
                    }
                    None if !requested => {
                        drop(hops);
                        self.shared.request(dst, Request::Resolve { force: true });
                        requested = true;
                    }
                    None => {}
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(NeighError::Timeout(dst));
            }
            let guard = lock(&self.shared.changes);
            let _ = self
                .shared
                .changed
                .wait_timeout_while(guard, deadline - now, |c| *c == seen)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Stop tracking `dst` (a real server that was removed). Its hop
    /// disappears from the cache; a later lookup starts over.
    pub fn forget(&self, dst: IpAddr) {
        if write(&self.shared.hops).remove(&dst).is_some() {
            self.shared.request(dst, Request::Forget);
        }
    }

    /// The destinations that became ready since the last call, with their
    /// hop: what a data plane copies after each round, instead of every hop
    /// ([`Resolver::hops`]) whenever one is added. A destination becoming
    /// ready does not move [`Resolver::generation`] (a hop changing or
    /// going does), unless more than [`READY_QUEUE_MAX`] wait here.
    pub fn take_ready(&self) -> Vec<(IpAddr, NextHop)> {
        std::mem::take(&mut *lock(&self.shared.ready))
    }

    /// Every resolved destination and its next hop (for the data plane to
    /// refresh what it copied when [`Resolver::generation`] moved).
    pub fn hops(&self) -> Vec<(IpAddr, NextHop)> {
        read(&self.shared.hops)
            .iter()
            .filter_map(|(dst, slot)| match &slot.state {
                SlotState::Ready(hop) => Some((*dst, hop.clone())),
                _ => None,
            })
            .collect()
    }

    /// The interface with index `ifindex`.
    pub fn interface(&self, ifindex: u32) -> Option<IfInfo> {
        read(&self.shared.links).get(&ifindex).cloned()
    }

    /// The interface called `name`.
    pub fn interface_by_name(&self, name: &str) -> Option<IfInfo> {
        read(&self.shared.links)
            .values()
            .find(|l| l.name == name)
            .cloned()
    }

    /// All interfaces, by index.
    pub fn interfaces(&self) -> Vec<IfInfo> {
        let mut v: Vec<IfInfo> = read(&self.shared.links).values().cloned().collect();
        v.sort_by_key(|l| l.ifindex);
        v
    }

    /// Moves whenever something the data plane may have copied changed: a
    /// next hop (new, changed, failed or forgotten), an interface (MAC, MTU,
    /// addresses, state, name), a route, rule or nexthop object, or a
    /// neighbour entry used as a next hop.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Whether the resolver thread is still running (`None`), or why it stopped.
    pub fn stopped(&self) -> Option<String> {
        lock(&self.shared.stopped).clone()
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop();
    }
}

// ----- state shared with the resolver thread ---------------------------------------

#[derive(Debug)]
struct Shared {
    /// Tracked destinations: what the data plane reads.
    hops: RwLock<HashMap<IpAddr, Slot>>,
    links: RwLock<HashMap<u32, IfInfo>>,
    generation: AtomicU64,
    /// Destinations that became ready since the data plane last took them
    /// ([`Resolver::take_ready`]); at most [`READY_QUEUE_MAX`], past which
    /// the generation moves instead.
    ready: Mutex<Vec<(IpAddr, NextHop)>>,
    /// Work for the resolver thread. Non-empty means the thread has been
    /// woken and has not taken it yet.
    requests: Mutex<HashMap<IpAddr, Request>>,
    /// eventfd that wakes the resolver thread.
    wake: OwnedFd,
    /// Bumped (and `changed` notified) whenever a slot is written.
    changes: Mutex<u64>,
    changed: Condvar,
    stop: AtomicBool,
    stopped: Mutex<Option<String>>,
    retry_after: Duration,
}

#[derive(Debug)]
struct Slot {
    state: SlotState,
    /// Asked for since the last idle sweep.
    used: AtomicBool,
}

/// What a caller asked the resolver thread for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// Stop tracking the destination.
    Forget,
    /// Resolve it; `force`: even if it failed recently.
    Resolve { force: bool },
}

#[derive(Debug, Clone, PartialEq)]
enum SlotState {
    Pending,
    Ready(NextHop),
    Failed { err: NeighError, at: Instant },
}

impl Shared {
    fn request(&self, dst: IpAddr, req: Request) {
        let mut requests = lock(&self.requests);
        let was_empty = requests.is_empty();
        let entry = requests.entry(dst).or_insert(req);
        *entry = match (*entry, req) {
            (Request::Resolve { force: a }, Request::Resolve { force: b }) => {
                Request::Resolve { force: a || b }
            }
            (_, req) => req,
        };
        drop(requests);
        if was_empty {
            self.wake();
        }
    }

    fn wake(&self) {
        // A full eventfd counter (EAGAIN) still means "readable": fine.
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }

    fn notify(&self) {
        *lock(&self.changes) += 1;
        self.changed.notify_all();
    }

    fn set_stopped(&self, reason: String) {
        *lock(&self.stopped) = Some(reason);
        self.notify();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

// ----- kernel constants ------------------------------------------------------------

const MSG_TRUNC: i32 = RecvFlags::TRUNC.bits() as i32;
const ENOBUFS: i32 = Errno::NOBUFS.raw_os_error();
const ENETUNREACH: i32 = Errno::NETUNREACH.raw_os_error();
const EHOSTUNREACH: i32 = Errno::HOSTUNREACH.raw_os_error();
const EACCES: i32 = Errno::ACCESS.raw_os_error();
const EINVAL: i32 = Errno::INVAL.raw_os_error();

// rtnetlink multicast groups (enum rtnetlink_groups in linux/rtnetlink.h).
const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_NEIGH: u32 = 3;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV4_RULE: u32 = 8;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
const RTNLGRP_IPV6_ROUTE: u32 = 11;
const RTNLGRP_IPV6_RULE: u32 = 19;
const RTNLGRP_NEXTHOP: u32 = 32;

const GROUPS: [u32; 9] = [
    RTNLGRP_LINK,
    RTNLGRP_NEIGH,
    RTNLGRP_IPV4_IFADDR,
    RTNLGRP_IPV6_IFADDR,
    RTNLGRP_IPV4_ROUTE,
    RTNLGRP_IPV6_ROUTE,
    RTNLGRP_IPV4_RULE,
    RTNLGRP_IPV6_RULE,
    RTNLGRP_NEXTHOP,
];

// Message types the packet crate may not parse (nexthop objects), and the
// ranges whose parse failures mean "routes may have changed".
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;

/// Newly ready destinations kept for [`Resolver::take_ready`].
pub const READY_QUEUE_MAX: usize = 1 << 16;
const RTM_NEWRULE: u16 = 32;
const RTM_GETRULE: u16 = 34;
const RTM_NEWNEXTHOP: u16 = 104;
const RTM_GETNEXTHOP: u16 = 106;

// Neighbour states (NUD_*).
const NUD_INCOMPLETE: u16 = 0x01;
const NUD_REACHABLE: u16 = 0x02;
const NUD_STALE: u16 = 0x04;
const NUD_DELAY: u16 = 0x08;
const NUD_PROBE: u16 = 0x10;
const NUD_FAILED: u16 = 0x20;
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;
/// States in which the entry's link-layer address can be used.
const NUD_USABLE: u16 =
    NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_NOARP | NUD_PERMANENT;

/// Receive buffer asked for the event socket (capped by net.core.rmem_max).
const EVENT_RCVBUF: i32 = 4 << 20;
/// How long a synchronous netlink request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one dump may take.
const DUMP_TIMEOUT: Duration = Duration::from_secs(5);
/// A failed resynchronisation is tried again after this long.
const RESYNC_RETRY: Duration = Duration::from_secs(1);
/// `NTF_USE` is not repeated within this long while the kernel is resolving.
const SOLICIT_DEDUP: Duration = Duration::from_secs(1);

// ----- netlink socket --------------------------------------------------------------

type Msg = NetlinkMessage<RouteNetlinkMessage>;

/// What one read from a netlink socket gave.
enum Recv {
    /// Parsed messages, and the raw types of those that did not parse.
    Msgs(Vec<Msg>, Vec<u16>),
    /// Nothing to read.
    Empty,
    /// Multicast messages were lost (ENOBUFS, or a truncated datagram).
    Overrun,
}

struct NlSock {
    sock: Socket,
    port: u32,
    seq: u32,
    buf: Vec<u8>,
}

impl NlSock {
    fn open(groups: &[u32]) -> io::Result<NlSock> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        let addr = sock.bind_auto()?;
        for &g in groups {
            sock.add_membership(g)?;
        }
        if !groups.is_empty() {
            // Best effort: the default is enough for small hosts.
            let _ = sock.set_rx_buf_sz(EVENT_RCVBUF);
        }
        sock.connect(&SocketAddr::new(0, 0))?;
        sock.set_non_blocking(true)?;
        Ok(NlSock {
            sock,
            port: addr.port_number(),
            seq: 0,
            buf: vec![0; 64 << 10],
        })
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        msg.finalize();
        let mut bytes = vec![0; msg.buffer_len()];
        msg.serialize(&mut bytes);
        self.sock.send(&bytes, 0)?;
        Ok(self.seq)
    }

    /// Wait until readable or `deadline`; false on timeout.
    fn wait(&self, deadline: Instant) -> io::Result<bool> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let ts = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            let mut fds = [PollFd::new(&self.sock, PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(0) => continue,
                Ok(_) => return Ok(true),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn recv(&mut self) -> io::Result<Recv> {
        let n = {
            let mut slice = &mut self.buf[..];
            match self.sock.recv(&mut slice, MSG_TRUNC) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Recv::Empty),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Recv::Empty),
                Err(e) if e.raw_os_error() == Some(ENOBUFS) => return Ok(Recv::Overrun),
                Err(e) => return Err(e),
            }
        };
        if n > self.buf.len() {
            // The datagram was cut: grow for the next one, and resynchronise.
            self.buf.resize(n.next_power_of_two(), 0);
            return Ok(Recv::Overrun);
        }
        let mut msgs = Vec::new();
        let mut unparsed = Vec::new();
        let mut off = 0;
        while off + 16 <= n {
            let b = &self.buf[off..n];
            let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
            if len < 16 || len > b.len() {
                break;
            }
            match Msg::deserialize(&b[..len]) {
                Ok(m) => msgs.push(m),
                Err(_) => unparsed.push(u16::from_ne_bytes([b[4], b[5]])),
            }
            off += (len + 3) & !3;
        }
        Ok(Recv::Msgs(msgs, unparsed))
    }

    /// Send a request and wait for the answer with its sequence number: the
    /// reply message (`Ok(Some)`), an ACK (`Ok(None)`) or an error.
    fn transact(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Result<Option<RouteNetlinkMessage>, io::Error>> {
        let seq = self.send(msg, flags)?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            match self.recv()? {
                Recv::Empty | Recv::Overrun => {
                    if !self.wait(deadline)? {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no answer from the kernel",
                        ));
                    }
                }
                Recv::Msgs(msgs, _) => {
                    for m in msgs {
                        if m.header.sequence_number != seq {
                            continue; // a late answer to an earlier request
                        }
                        match m.payload {
                            NetlinkPayload::InnerMessage(inner) => return Ok(Ok(Some(inner))),
                            NetlinkPayload::Error(e) => {
                                return Ok(match e.code {
                                    None => Ok(None),
                                    Some(_) => Err(e.to_io()),
                                });
                            }
                            NetlinkPayload::Done(_) => return Ok(Ok(None)),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}

// ----- the resolver thread ---------------------------------------------------------

type NKey = (u32, IpAddr);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Neigh {
    state: u16,
    mac: Option<[u8; 6]>,
}

impl Neigh {
    fn usable_mac(&self) -> Option<[u8; 6]> {
        if self.state & NUD_USABLE != 0 {
            self.mac
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    name: String,
    mac: Option<[u8; 6]>,
    mtu: u32,
    flags: LinkFlags,
}

impl Link {
    /// Frames out of this link need a neighbour's MAC.
    fn needs_neighbour(&self) -> bool {
        self.mac.is_some()
            && !self
                .flags
                .intersects(LinkFlags::Noarp | LinkFlags::Loopback)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    ifindex: u32,
    via: IpAddr,
    src: Option<IpAddr>,
}

/// What the thread knows about a tracked destination.
#[derive(Debug)]
struct Dst {
    route: Result<Route, NeighError>,
    /// What is published in the slot (without the failure time); `None`
    /// before the first publication.
    published: Option<Published>,
    /// When the current wait for a neighbour started.
    pending_since: Option<Instant>,
    failed_at: Instant,
}

#[derive(Debug, Clone, PartialEq)]
enum Published {
    Pending,
    Ready(NextHop),
    Failed(NeighError),
}

struct Worker {
    shared: Arc<Shared>,
    cfg: ResolverConfig,
    ev: NlSock,
    rq: NlSock,
    links: HashMap<u32, Link>,
    addrs: HashMap<u32, Vec<IpAddr>>,
    neighs: HashMap<NKey, Neigh>,
    dsts: HashMap<IpAddr, Dst>,
    /// Neighbour → destinations whose next hop it is.
    users: HashMap<NKey, HashSet<IpAddr>>,
    /// When `NTF_USE` was last sent for a neighbour.
    solicited: HashMap<NKey, Instant>,
    // Work found while applying messages, done by `settle`.
    dirty_keys: HashSet<NKey>,
    routes_dirty: bool,
    links_dirty: bool,
    /// Events were lost: dump everything again (not before `resync_at`).
    need_resync: bool,
    resync_at: Instant,
    bump: bool,
    /// Destinations with `pending_since` set: the timers look at these
    /// only, not at every tracked destination.
    pending: HashSet<IpAddr>,
    next_refresh: Instant,
    next_sweep: Instant,
}

impl Worker {
    fn new(shared: Arc<Shared>, cfg: ResolverConfig) -> Result<Worker, NeighError> {
        let ev = NlSock::open(&GROUPS).map_err(|e| NeighError::netlink("event socket", e))?;
        let rq = NlSock::open(&[]).map_err(|e| NeighError::netlink("request socket", e))?;
        let now = Instant::now();
        let mut w = Worker {
            shared,
            next_refresh: now + cfg.refresh_interval,
            next_sweep: now + cfg.idle_timeout,
            cfg,
            ev,
            rq,
            links: HashMap::new(),
            addrs: HashMap::new(),
            neighs: HashMap::new(),
            dsts: HashMap::new(),
            users: HashMap::new(),
            solicited: HashMap::new(),
            dirty_keys: HashSet::new(),
            routes_dirty: false,
            links_dirty: false,
            need_resync: false,
            resync_at: now,
            bump: false,
            pending: HashSet::new(),
        };
        w.dump_all()?;
        w.settle();
        Ok(w)
    }

    fn run(mut self) {
        let reason = match self.main_loop() {
            Ok(()) => "stopped".to_string(),
            Err(e) => e.to_string(),
        };
        self.shared.set_stopped(reason);
    }

    fn main_loop(&mut self) -> Result<(), NeighError> {
        loop {
            if self.shared.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            let now = Instant::now();
            let next = self.next_timer();
            let left = next
                .saturating_duration_since(now)
                .min(Duration::from_secs(60));
            let ts = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            let mut fds = [
                PollFd::new(&self.ev.sock, PollFlags::IN),
                PollFd::from_borrowed_fd(self.shared.wake.as_fd(), PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(NeighError::netlink("poll", e)),
            }
            if fds[1].revents().contains(PollFlags::IN) {
                let mut b = [0u8; 8];
                let _ = rustix::io::read(&self.shared.wake, &mut b);
            }
            self.drain_events()?;
            let now = Instant::now();
            if self.need_resync && now >= self.resync_at {
                self.need_resync = false;
                if self.resync().is_err() {
                    self.need_resync = true;
                    self.resync_at = now + RESYNC_RETRY;
                }
            }
            self.take_requests();
            self.timers(Instant::now());
            self.settle();
        }
    }

    fn next_timer(&self) -> Instant {
        let mut next = self.next_refresh.min(self.next_sweep);
        if self.need_resync {
            next = next.min(self.resync_at);
        }
        for dst in &self.pending {
            if let Some(since) = self.dsts.get(dst).and_then(|d| d.pending_since) {
                next = next.min(since + self.cfg.pending_timeout);
            }
        }
        next
    }

    // ----- dumps and events --------------------------------------------------------

    fn dump_all(&mut self) -> Result<(), NeighError> {
        let mut link = LinkMessage::default();
        link.header.interface_family = AddressFamily::Unspec;
        self.dump(RouteNetlinkMessage::GetLink(link))?;
        self.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))?;
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut n = NeighbourMessage::default();
            n.header.family = family;
            self.dump(RouteNetlinkMessage::GetNeighbour(n))?;
        }
        self.links_dirty = true;
        self.routes_dirty = true;
        Ok(())
    }

    /// Dump on the event socket, applying the events that arrive meanwhile.
    fn dump(&mut self, req: RouteNetlinkMessage) -> Result<(), NeighError> {
        for _ in 0..5 {
            let seq = self
                .ev
                .send(req.clone(), NLM_F_REQUEST | NLM_F_DUMP)
                .map_err(|e| NeighError::netlink("dump request", e))?;
            let deadline = Instant::now() + DUMP_TIMEOUT;
            let mut interrupted = false;
            let mut overrun = false;
            'dump: loop {
                match self.ev.recv().map_err(|e| NeighError::netlink("dump", e))? {
                    Recv::Empty => {
                        if !self
                            .ev
                            .wait(deadline)
                            .map_err(|e| NeighError::netlink("dump", e))?
                        {
                            return Err(NeighError::Netlink("dump timed out".into()));
                        }
                    }
                    Recv::Overrun => overrun = true,
                    Recv::Msgs(msgs, unparsed) => {
                        self.unparsed(&unparsed);
                        let mut done = false;
                        for m in msgs {
                            let ours = m.header.sequence_number == seq
                                && m.header.port_number == self.ev.port;
                            if ours && m.header.flags & NLM_F_DUMP_INTR != 0 {
                                interrupted = true;
                            }
                            match m.payload {
                                NetlinkPayload::Done(_) if ours => done = true,
                                NetlinkPayload::Error(e) if ours => {
                                    if e.code.is_some() {
                                        return Err(NeighError::netlink("dump", e.to_io()));
                                    }
                                    done = true;
                                }
                                NetlinkPayload::InnerMessage(inner) => self.apply(inner),
                                _ => {}
                            }
                        }
                        if done {
                            break 'dump;
                        }
                    }
                }
            }
            if overrun {
                // Events were lost while dumping: dump everything again.
                self.need_resync = true;
            }
            if !interrupted {
                return Ok(());
            }
        }
        Err(NeighError::Netlink("dump kept being interrupted".into()))
    }

    fn drain_events(&mut self) -> Result<(), NeighError> {
        for _ in 0..4096 {
            match self
                .ev
                .recv()
                .map_err(|e| NeighError::netlink("events", e))?
            {
                Recv::Empty => return Ok(()),
                Recv::Overrun => self.need_resync = true,
                Recv::Msgs(msgs, unparsed) => {
                    self.unparsed(&unparsed);
                    for m in msgs {
                        if let NetlinkPayload::InnerMessage(inner) = m.payload {
                            self.apply(inner);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Events were lost: dump the tables again (on failure, keep the old
    /// ones and try again later).
    fn resync(&mut self) -> Result<(), NeighError> {
        let old_neighs = std::mem::take(&mut self.neighs);
        let old_links = std::mem::take(&mut self.links);
        let old_addrs = std::mem::take(&mut self.addrs);
        if let Err(e) = self.dump_all() {
            self.neighs = old_neighs;
            self.links = old_links;
            self.addrs = old_addrs;
            return Err(e);
        }
        for (key, n) in &old_neighs {
            if self.neighs.get(key) != Some(n) && self.users.contains_key(key) {
                self.dirty_keys.insert(*key);
            }
        }
        for key in self.neighs.keys() {
            if !old_neighs.contains_key(key) && self.users.contains_key(key) {
                self.dirty_keys.insert(*key);
            }
        }
        Ok(())
    }

    fn unparsed(&mut self, types: &[u16]) {
        for &t in types {
            if (RTM_NEWROUTE..=RTM_GETROUTE).contains(&t)
                || (RTM_NEWRULE..=RTM_GETRULE).contains(&t)
                || (RTM_NEWNEXTHOP..=RTM_GETNEXTHOP).contains(&t)
            {
                self.routes_dirty = true;
            }
        }
    }

    fn apply(&mut self, msg: RouteNetlinkMessage) {
        match msg {
            RouteNetlinkMessage::NewLink(m) => self.link_msg(m, true),
            RouteNetlinkMessage::DelLink(m) => self.link_msg(m, false),
            RouteNetlinkMessage::NewAddress(m) => self.addr_msg(m, true),
            RouteNetlinkMessage::DelAddress(m) => self.addr_msg(m, false),
            RouteNetlinkMessage::NewNeighbour(m) => self.neigh_msg(m, true),
            RouteNetlinkMessage::DelNeighbour(m) => self.neigh_msg(m, false),
            RouteNetlinkMessage::NewRoute(_)
            | RouteNetlinkMessage::DelRoute(_)
            | RouteNetlinkMessage::NewRule(_)
            | RouteNetlinkMessage::DelRule(_) => self.routes_dirty = true,
            _ => {}
        }
    }

    fn link_msg(&mut self, m: LinkMessage, new: bool) {
        // AF_BRIDGE messages describe bridge ports, not the link itself.
        if m.header.interface_family == AddressFamily::Bridge {
            return;
        }
        let ifindex = m.header.index;
        if !new {
            if self.links.remove(&ifindex).is_some() {
                self.addrs.remove(&ifindex);
                // The kernel flushes the link's neighbours without telling.
                let gone: Vec<NKey> = self
                    .neighs
                    .keys()
                    .filter(|k| k.0 == ifindex)
                    .copied()
                    .collect();
                for key in gone {
                    self.neighs.remove(&key);
                    if self.users.contains_key(&key) {
                        self.dirty_keys.insert(key);
                    }
                }
                self.links_dirty = true;
                self.routes_dirty = true;
            }
            return;
        }
        let mut link = Link {
            name: String::new(),
            mac: None,
            mtu: 0,
            flags: m.header.flags,
        };
        for a in m.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                LinkAttribute::Mtu(mtu) => link.mtu = mtu,
                _ => {}
            }
        }
        let old = self.links.insert(ifindex, link.clone());
        if let Some(old) = old {
            if old == link {
                return;
            }
            if old.flags.contains(LinkFlags::Up) != link.flags.contains(LinkFlags::Up) {
                self.routes_dirty = true;
            }
        }
        self.links_dirty = true;
    }

    fn addr_msg(&mut self, m: AddressMessage, new: bool) {
        let ifindex = m.header.index;
        let mut local = None;
        let mut address = None;
        let mut flags = AddressFlags::from_bits_retain(u32::from(m.header.flags.bits()));
        for a in m.attributes {
            match a {
                AddressAttribute::Local(ip) => local = Some(ip),
                AddressAttribute::Address(ip) => address = Some(ip),
                AddressAttribute::Flags(f) => flags = f,
                _ => {}
            }
        }
        let Some(ip) = local.or(address) else { return };
        let usable = new && !flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed);
        let list = self.addrs.entry(ifindex).or_default();
        let pos = list.iter().position(|a| *a == ip);
        match (usable, pos) {
            (true, None) => list.push(ip),
            (false, Some(i)) => {
                list.remove(i);
            }
            _ => return,
        }
        self.links_dirty = true;
        self.routes_dirty = true;
    }

    fn neigh_msg(&mut self, m: NeighbourMessage, new: bool) {
        if !matches!(m.header.family, AddressFamily::Inet | AddressFamily::Inet6)
            || m.header.flags.contains(NeighbourFlags::Proxy)
        {
            return;
        }
        let mut dst = None;
        let mut mac = None;
        for a in m.attributes {
            match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
                    dst = Some(IpAddr::V4(ip));
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => {
                    dst = Some(IpAddr::V6(ip));
                }
                NeighbourAttribute::LinkLayerAddress(a) => {
                    mac = <[u8; 6]>::try_from(a.as_slice()).ok();
                }
                _ => {}
            }
        }
        let Some(dst) = dst else { return };
        let key = (m.header.ifindex, dst);
        let (changed, significant) = if new {
            let n = Neigh {
                state: u16::from(m.header.state),
                mac,
            };
            let old = self.neighs.insert(key, n);
            (
                old != Some(n),
                old.and_then(|o| o.usable_mac()) != n.usable_mac(),
            )
        } else {
            let gone = self.neighs.remove(&key).is_some();
            (gone, gone)
        };
        if changed && self.users.contains_key(&key) {
            self.dirty_keys.insert(key);
            // REACHABLE <-> STALE and the like change nothing copied.
            self.bump |= significant;
        }
    }

    // ----- requests, timers ------------------------------------------------------------

    fn take_requests(&mut self) {
        let requests = std::mem::take(&mut *lock(&self.shared.requests));
        let now = Instant::now();
        for (dst, req) in requests {
            let force = match req {
                Request::Forget => {
                    self.untrack(dst);
                    continue;
                }
                Request::Resolve { force } => force,
            };
            if !read(&self.shared.hops).contains_key(&dst) {
                // New, or forgotten and asked for again.
                self.untrack(dst);
                self.attempt(dst);
                continue;
            }
            if let Some(d) = self.dsts.get(&dst)
                && matches!(d.published, Some(Published::Failed(_)))
                && (force || now.duration_since(d.failed_at) >= self.cfg.retry_after)
            {
                self.attempt(dst);
            }
        }
    }

    /// Resolve `dst` from scratch: route, then neighbour.
    fn attempt(&mut self, dst: IpAddr) {
        let route = self.get_route(dst);
        self.set_route(dst, route);
        self.evaluate(dst, true);
    }

    fn untrack(&mut self, dst: IpAddr) {
        write(&self.shared.hops).remove(&dst);
        self.pending.remove(&dst);
        if let Some(d) = self.dsts.remove(&dst) {
            if let Ok(r) = &d.route {
                self.unuse((r.ifindex, r.via), dst);
            }
            if matches!(d.published, Some(Published::Ready(_))) {
                self.bump = true;
            }
        }
    }

    fn unuse(&mut self, key: NKey, dst: IpAddr) {
        if let Entry::Occupied(mut e) = self.users.entry(key) {
            e.get_mut().remove(&dst);
            if e.get().is_empty() {
                e.remove();
                self.solicited.remove(&key);
            }
        }
    }

    fn set_route(&mut self, dst: IpAddr, route: Result<Route, NeighError>) {
        let old_key = self
            .dsts
            .get(&dst)
            .and_then(|d| d.route.as_ref().ok())
            .map(|r| (r.ifindex, r.via));
        let new_key = route.as_ref().ok().map(|r| (r.ifindex, r.via));
        if old_key != new_key {
            if let Some(k) = old_key {
                self.unuse(k, dst);
            }
            if let Some(k) = new_key {
                self.users.entry(k).or_default().insert(dst);
            }
        }
        match self.dsts.entry(dst) {
            Entry::Occupied(mut e) => e.get_mut().route = route,
            Entry::Vacant(e) => {
                e.insert(Dst {
                    route,
                    published: None,
                    pending_since: None,
                    failed_at: Instant::now(),
                });
            }
        }
    }

    fn timers(&mut self, now: Instant) {
        // Neighbours that neither answered nor failed.
        let expired: Vec<IpAddr> = self
            .pending
            .iter()
            .filter(|dst| {
                self.dsts.get(dst).is_some_and(|d| {
                    d.pending_since
                        .is_some_and(|s| now >= s + self.cfg.pending_timeout)
                })
            })
            .copied()
            .collect();
        for dst in expired {
            let err = match &self.dsts[&dst].route {
                Ok(r) => NeighError::Unresolved {
                    dst,
                    via: r.via,
                    ifindex: r.ifindex,
                },
                Err(e) => e.clone(),
            };
            self.publish(dst, Published::Failed(err), true);
        }
        if now >= self.next_refresh {
            self.next_refresh = now + self.cfg.refresh_interval;
            let stale: Vec<NKey> = self
                .users
                .iter()
                .filter(|(key, users)| {
                    self.neighs.get(key).is_some_and(|n| n.state == NUD_STALE)
                        && users.iter().any(|d| {
                            self.dsts
                                .get(d)
                                .is_some_and(|d| matches!(d.published, Some(Published::Ready(_))))
                        })
                })
                .map(|(key, _)| *key)
                .collect();
            for key in stale {
                self.solicit(key);
            }
        }
        if now >= self.next_sweep {
            self.next_sweep = now + self.cfg.idle_timeout;
            let mut idle = Vec::new();
            {
                let mut hops = write(&self.shared.hops);
                hops.retain(|dst, slot| {
                    let keep = slot.used.swap(false, Ordering::Relaxed)
                        || slot.state == SlotState::Pending;
                    if !keep {
                        idle.push(*dst);
                    }
                    keep
                });
            }
            for dst in idle {
                self.untrack(dst);
            }
        }
    }

    // ----- settling: routes, neighbours, publication --------------------------------------

    fn settle(&mut self) {
        if self.links_dirty {
            self.links_dirty = false;
            self.publish_links();
            // Names and MAC-less links show in the hops.
            let all: Vec<IpAddr> = self.dsts.keys().copied().collect();
            for dst in all {
                self.evaluate(dst, false);
            }
        }
        if self.routes_dirty {
            self.routes_dirty = false;
            self.bump = true;
            let all: Vec<IpAddr> = self.dsts.keys().copied().collect();
            for dst in all {
                let route = self.get_route(dst);
                if self.dsts.get(&dst).is_some_and(|d| d.route != route) {
                    self.set_route(dst, route);
                    self.evaluate(dst, true);
                }
            }
        }
        let keys: Vec<NKey> = self.dirty_keys.drain().collect();
        for key in keys {
            let Some(users) = self.users.get(&key) else {
                continue;
            };
            let users: Vec<IpAddr> = users.iter().copied().collect();
            for dst in users {
                self.evaluate(dst, false);
            }
        }
        if std::mem::take(&mut self.bump) {
            self.shared.generation.fetch_add(1, Ordering::AcqRel);
            self.shared.notify();
        }
    }

    fn publish_links(&mut self) {
        let mut map = HashMap::with_capacity(self.links.len());
        for (&ifindex, l) in &self.links {
            map.insert(
                ifindex,
                IfInfo {
                    ifindex,
                    name: l.name.clone(),
                    mac: l.mac.unwrap_or([0; 6]),
                    mtu: l.mtu,
                    addrs: self.addrs.get(&ifindex).cloned().unwrap_or_default(),
                    up: l.flags.contains(LinkFlags::Up | LinkFlags::Running),
                },
            );
        }
        let mut links = write(&self.shared.links);
        if *links != map {
            *links = map;
            self.bump = true;
        }
    }

    /// Work out the state of `dst` from its route and the tables, solicit the
    /// neighbour if needed, and publish. `fresh`: a new attempt (first
    /// request, retry, route change), which may solicit even a neighbour that
    /// failed.
    fn evaluate(&mut self, dst: IpAddr, fresh: bool) {
        let Some(d) = self.dsts.get(&dst) else { return };
        let prev = d.published.clone();
        let r = match &d.route {
            Err(e) => {
                let e = e.clone();
                self.publish(dst, Published::Failed(e), fresh);
                return;
            }
            Ok(r) => r.clone(),
        };
        let Some((ifname, needs_neighbour)) = self
            .links
            .get(&r.ifindex)
            .map(|l| (l.name.clone(), l.needs_neighbour()))
        else {
            let reason = format!("unknown egress interface {}", r.ifindex);
            self.publish(
                dst,
                Published::Failed(NeighError::NoRoute { dst, reason }),
                fresh,
            );
            return;
        };
        let hop = NextHop {
            ifindex: r.ifindex,
            ifname,
            neighbour_mac: [0; 6],
            via: r.via,
            src: r.src,
        };
        if !needs_neighbour {
            self.publish(dst, Published::Ready(hop), fresh);
            return;
        }
        let key = (r.ifindex, r.via);
        let n = self.neighs.get(&key).copied();
        if let Some(mac) = n.and_then(|n| n.usable_mac()) {
            self.solicited.remove(&key);
            self.publish(
                dst,
                Published::Ready(NextHop {
                    neighbour_mac: mac,
                    ..hop
                }),
                fresh,
            );
            return;
        }
        let failed = n.is_some_and(|n| n.state == NUD_FAILED);
        let unresolved = NeighError::Unresolved {
            dst,
            via: r.via,
            ifindex: r.ifindex,
        };
        let next = match prev {
            // Deleted, or being probed again: keep the last MAC meanwhile (same
            // interface and neighbour only).
            Some(Published::Ready(old))
                if !fresh && old.ifindex == hop.ifindex && old.via == hop.via =>
            {
                if failed {
                    Published::Failed(unresolved)
                } else {
                    self.solicit(key);
                    Published::Ready(NextHop {
                        neighbour_mac: old.neighbour_mac,
                        ..hop
                    })
                }
            }
            // Stays failed until retried.
            Some(Published::Failed(e)) if !fresh => Published::Failed(e),
            Some(Published::Pending) if !fresh && failed && self.solicited.contains_key(&key) => {
                Published::Failed(unresolved)
            }
            _ => {
                self.solicit(key);
                Published::Pending
            }
        };
        self.publish(dst, next, fresh);
    }

    /// Ask the kernel to resolve a neighbour, unless it is already at it.
    fn solicit(&mut self, key: NKey) {
        let now = Instant::now();
        let entry = self.neighs.get(&key);
        let resolving = entry.is_some_and(|n| n.state == NUD_INCOMPLETE);
        if resolving
            && self
                .solicited
                .get(&key)
                .is_some_and(|t| now.duration_since(*t) < SOLICIT_DEDUP)
        {
            return;
        }
        self.solicited.insert(key, now);
        let (ifindex, ip) = key;
        let mut m = NeighbourMessage::default();
        m.header.family = family(ip);
        m.header.ifindex = ifindex;
        m.header.state = NeighbourState::None;
        m.header.flags = NeighbourFlags::Use;
        m.attributes.push(NeighbourAttribute::Destination(match ip {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
        let ok = matches!(
            self.rq.transact(
                RouteNetlinkMessage::NewNeighbour(m),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
            ),
            Ok(Ok(_))
        );
        if !ok {
            poke(ip, ifindex);
        }
        // The kernel is resolving now, but does not announce INCOMPLETE.
        match self.neighs.entry(key) {
            Entry::Occupied(mut e) => {
                if e.get().state & (NUD_USABLE | NUD_INCOMPLETE) == 0 {
                    e.get_mut().state = NUD_INCOMPLETE;
                }
            }
            Entry::Vacant(e) => {
                e.insert(Neigh {
                    state: NUD_INCOMPLETE,
                    mac: None,
                });
            }
        }
    }

    /// Publish the state of `dst`. `attempt`: the outcome of a new attempt,
    /// whose failure time is refreshed even when the failure is the same.
    fn publish(&mut self, dst: IpAddr, next: Published, attempt: bool) {
        let now = Instant::now();
        let Some(d) = self.dsts.get_mut(&dst) else {
            return;
        };
        let changed = d.published.as_ref() != Some(&next);
        match &next {
            Published::Pending => {
                if d.pending_since.is_none() || changed {
                    d.pending_since = Some(now);
                }
                self.pending.insert(dst);
            }
            Published::Ready(_) => {
                d.pending_since = None;
                self.pending.remove(&dst);
            }
            Published::Failed(_) => {
                d.pending_since = None;
                self.pending.remove(&dst);
                if changed || attempt {
                    d.failed_at = now;
                }
            }
        }
        let was_ready = matches!(d.published, Some(Published::Ready(_)));
        if changed {
            match (&next, was_ready) {
                // New: queued for the data plane (a spoofed-source flood
                // makes thousands a second; each used to make it copy
                // every hop).
                (Published::Ready(h), false) => {
                    let mut ready = lock(&self.shared.ready);
                    if ready.len() < READY_QUEUE_MAX {
                        ready.push((dst, h.clone()));
                    } else {
                        self.bump = true;
                    }
                }
                // Changed or gone: everything is copied again.
                (_, true) => self.bump = true,
                _ => {}
            }
        }
        d.published = Some(next.clone());
        let refresh_failure = attempt && matches!(next, Published::Failed(_));
        if !changed && !refresh_failure {
            return;
        }
        let state = match next {
            Published::Pending => SlotState::Pending,
            Published::Ready(h) => SlotState::Ready(h),
            Published::Failed(err) => SlotState::Failed { err, at: now },
        };
        {
            let mut hops = write(&self.shared.hops);
            match hops.entry(dst) {
                Entry::Occupied(mut e) => e.get_mut().state = state,
                Entry::Vacant(e) => {
                    e.insert(Slot {
                        state,
                        used: AtomicBool::new(true),
                    });
                }
            }
        }
        self.shared.notify();
    }

    // ----- RTM_GETROUTE ------------------------------------------------------------------

    fn get_route(&mut self, dst: IpAddr) -> Result<Route, NeighError> {
        let mut m = RouteMessage::default();
        m.header.address_family = family(dst);
        m.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
        m.attributes.push(RouteAttribute::Destination(match dst {
            IpAddr::V4(v4) => RouteAddress::Inet(v4),
            IpAddr::V6(v6) => RouteAddress::Inet6(v6),
        }));
        let reply = match self
            .rq
            .transact(RouteNetlinkMessage::GetRoute(m), NLM_F_REQUEST)
        {
            Err(e) => return Err(NeighError::netlink("RTM_GETROUTE", e)),
            Ok(Err(e)) => return Err(route_errno(dst, &e)),
            Ok(Ok(Some(RouteNetlinkMessage::NewRoute(r)))) => r,
            Ok(Ok(other)) => {
                return Err(NeighError::Netlink(format!(
                    "unexpected RTM_GETROUTE answer {other:?}"
                )));
            }
        };
        parse_route(dst, &reply)
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// What an `RTM_GETROUTE` error means.
fn route_errno(dst: IpAddr, e: &io::Error) -> NeighError {
    match e.raw_os_error() {
        Some(e) if [ENETUNREACH, EHOSTUNREACH, EACCES, EINVAL].contains(&e) => {
            NeighError::NoRoute {
                dst,
                reason: e.to_string(),
            }
        }
        _ => NeighError::netlink("RTM_GETROUTE", e),
    }
}

/// The next hop in an `RTM_GETROUTE` answer.
fn parse_route(dst: IpAddr, r: &RouteMessage) -> Result<Route, NeighError> {
    match r.header.kind {
        RouteType::Unicast => {}
        RouteType::Local | RouteType::Anycast => return Err(NeighError::Local(dst)),
        kind => {
            return Err(NeighError::NoRoute {
                dst,
                reason: format!("route type {kind:?}"),
            });
        }
    }
    let mut ifindex = None;
    let mut via = None;
    let mut src = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Oif(i) => ifindex = Some(*i),
            RouteAttribute::Gateway(g) => via = route_addr(g),
            RouteAttribute::Via(RouteVia::Inet(v4)) => via = Some(IpAddr::V4(*v4)),
            RouteAttribute::Via(RouteVia::Inet6(v6)) => via = Some(IpAddr::V6(*v6)),
            RouteAttribute::PrefSource(s) => src = route_addr(s),
            _ => {}
        }
    }
    let Some(ifindex) = ifindex else {
        return Err(NeighError::NoRoute {
            dst,
            reason: "route without egress interface".into(),
        });
    };
    Ok(Route {
        ifindex,
        via: via.unwrap_or(dst),
        src,
    })
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Fallback when the kernel refuses `NTF_USE`: one datagram to the
/// neighbour's discard port makes the kernel resolve it.
fn poke(ip: IpAddr, ifindex: u32) {
    let (bind, to): (InetSocketAddr, InetSocketAddr) = match ip {
        IpAddr::V4(v4) => ((Ipv4Addr::UNSPECIFIED, 0).into(), (v4, 9).into()),
        IpAddr::V6(v6) => {
            let scope = if v6.is_unicast_link_local() {
                ifindex
            } else {
                0
            };
            (
                (Ipv6Addr::UNSPECIFIED, 0).into(),
                SocketAddrV6::new(v6, 9, 0, scope).into(),
            )
        }
    };
    if let Ok(s) = UdpSocket::bind(bind) {
        let _ = s.send_to(&[], to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(kind: RouteType, attrs: Vec<RouteAttribute>) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.kind = kind;
        m.attributes = attrs;
        m
    }

    #[test]
    fn route_answers() {
        let dst: IpAddr = "192.0.2.7".parse().unwrap();
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        let src = Ipv4Addr::new(10, 0, 0, 2);
        let r = route(
            RouteType::Unicast,
            vec![
                RouteAttribute::Oif(3),
                RouteAttribute::Gateway(RouteAddress::Inet(gw)),
                RouteAttribute::PrefSource(RouteAddress::Inet(src)),
            ],
        );
        assert_eq!(
            parse_route(dst, &r).unwrap(),
            Route {
                ifindex: 3,
                via: gw.into(),
                src: Some(src.into())
            }
        );
        let direct = route(RouteType::Unicast, vec![RouteAttribute::Oif(3)]);
        assert_eq!(parse_route(dst, &direct).unwrap().via, dst);
        let v6gw: Ipv6Addr = "fe80::1".parse().unwrap();
        let rfc5549 = route(
            RouteType::Unicast,
            vec![
                RouteAttribute::Oif(4),
                RouteAttribute::Via(RouteVia::Inet6(v6gw)),
            ],
        );
        assert_eq!(parse_route(dst, &rfc5549).unwrap().via, IpAddr::V6(v6gw));
        assert_eq!(
            parse_route(dst, &route(RouteType::Local, vec![])),
            Err(NeighError::Local(dst))
        );
        assert!(matches!(
            parse_route(
                dst,
                &route(RouteType::Broadcast, vec![RouteAttribute::Oif(3)])
            ),
            Err(NeighError::NoRoute { .. })
        ));
        assert!(matches!(
            route_errno(dst, &io::Error::from_raw_os_error(ENETUNREACH)),
            NeighError::NoRoute { .. }
        ));
        assert!(matches!(
            route_errno(
                dst,
                &io::Error::from_raw_os_error(Errno::PERM.raw_os_error())
            ),
            NeighError::Netlink(_)
        ));
    }

    #[test]
    fn resolver_is_shareable() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Resolver>();
        send_sync::<NeighError>();
    }

    #[test]
    fn neighbour_states() {
        let mac = Some([2, 0, 0, 0, 0, 1]);
        for s in [
            NUD_REACHABLE,
            NUD_STALE,
            NUD_DELAY,
            NUD_PROBE,
            NUD_PERMANENT,
            NUD_NOARP,
        ] {
            assert_eq!(Neigh { state: s, mac }.usable_mac(), mac);
        }
        for s in [0, NUD_INCOMPLETE, NUD_FAILED] {
            assert_eq!(Neigh { state: s, mac }.usable_mac(), None);
        }
        assert_eq!(
            Neigh {
                state: NUD_REACHABLE,
                mac: None
            }
            .usable_mac(),
            None
        );
        assert_eq!(u16::from(NeighbourState::Stale), NUD_STALE);
    }

    #[test]
    fn links_needing_neighbours() {
        let eth = Link {
            name: "eth0".into(),
            mac: Some([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
            flags: LinkFlags::Up | LinkFlags::Running,
        };
        assert!(eth.needs_neighbour());
        assert!(
            !Link {
                flags: LinkFlags::Noarp,
                ..eth.clone()
            }
            .needs_neighbour()
        );
        assert!(
            !Link {
                flags: LinkFlags::Loopback,
                ..eth.clone()
            }
            .needs_neighbour()
        );
        assert!(!Link { mac: None, ..eth }.needs_neighbour());
    }
}
