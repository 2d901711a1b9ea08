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
//!
//! # Layout
//!
//! This module holds the public API ([`Resolver`] and its types) and the
//! state it shares with the thread (the published slots, requests, the
//! generation). `netlink` builds and parses the rtnetlink messages: the
//! sockets, dumps and events, `RTM_GETROUTE` and its answer. `worker` is
//! the thread: its main loop, requests, timers, settling and publication.
//! `state` holds the decisions that need no socket (a destination's state
//! from its route and the tables, which destinations use which neighbour,
//! the pending/ready/failed bookkeeping, what the timers find), unit-tested
//! without namespaces; its module docs say what is still in the worker.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::EventfdFlags;

mod netlink;
mod state;
mod worker;

use worker::Worker;

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

/// Newly ready destinations kept for [`Resolver::take_ready`].
pub const READY_QUEUE_MAX: usize = 1 << 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolver_is_shareable() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Resolver>();
        send_sync::<NeighError>();
    }
}
