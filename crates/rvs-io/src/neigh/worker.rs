//! The resolver thread's state: the kernel tables it mirrors (links,
//! addresses, neighbours), the tracked destinations and which neighbour
//! each uses, the pending / ready / failed bookkeeping and its publication
//! to [`Shared`], and the timers (pending timeout, re-probing of stale
//! neighbours, idle sweep).

use std::collections::{HashMap, HashSet, hash_map::Entry};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkFlags;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rustix::event::{PollFd, PollFlags, Timespec};

use super::netlink::{GROUPS, NlSock, family, poke};
use super::state::{
    self, Dst, Link, NKey, NUD_INCOMPLETE, NUD_USABLE, Neigh, Published, Route, decide,
    pending_expired, reassign, record, stale_in_use,
};
use super::{
    IfInfo, NeighError, READY_QUEUE_MAX, Request, ResolverConfig, Shared, Slot, SlotState, lock,
    read, write,
};

/// A failed resynchronisation is tried again after this long.
pub(super) const RESYNC_RETRY: Duration = Duration::from_secs(1);
/// `NTF_USE` is not repeated within this long while the kernel is resolving.
pub(super) const SOLICIT_DEDUP: Duration = Duration::from_secs(1);

// ----- the resolver thread ---------------------------------------------------------

pub(super) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) cfg: ResolverConfig,
    pub(super) ev: NlSock,
    pub(super) rq: NlSock,
    pub(super) links: HashMap<u32, Link>,
    pub(super) addrs: HashMap<u32, Vec<IpAddr>>,
    pub(super) neighs: HashMap<NKey, Neigh>,
    pub(super) dsts: HashMap<IpAddr, Dst>,
    /// Neighbour → destinations whose next hop it is.
    pub(super) users: HashMap<NKey, HashSet<IpAddr>>,
    /// When `NTF_USE` was last sent for a neighbour.
    pub(super) solicited: HashMap<NKey, Instant>,
    // Work found while applying messages, done by `settle`.
    pub(super) dirty_keys: HashSet<NKey>,
    pub(super) routes_dirty: bool,
    pub(super) links_dirty: bool,
    /// Events were lost: dump everything again (not before `resync_at`).
    pub(super) need_resync: bool,
    pub(super) resync_at: Instant,
    pub(super) bump: bool,
    /// Destinations with `pending_since` set: the timers look at these
    /// only, not at every tracked destination.
    pub(super) pending: HashSet<IpAddr>,
    pub(super) next_refresh: Instant,
    pub(super) next_sweep: Instant,
}

impl Worker {
    pub(super) fn new(shared: Arc<Shared>, cfg: ResolverConfig) -> Result<Worker, NeighError> {
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

    pub(super) fn run(mut self) {
        let reason = match self.main_loop() {
            Ok(()) => "stopped".to_string(),
            Err(e) => e.to_string(),
        };
        self.shared.set_stopped(reason);
    }

    pub(super) fn main_loop(&mut self) -> Result<(), NeighError> {
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

    pub(super) fn next_timer(&self) -> Instant {
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

    // ----- requests, timers ------------------------------------------------------------

    pub(super) fn take_requests(&mut self) {
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
    pub(super) fn attempt(&mut self, dst: IpAddr) {
        let route = self.get_route(dst);
        self.set_route(dst, route);
        self.evaluate(dst, true);
    }

    pub(super) fn untrack(&mut self, dst: IpAddr) {
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

    pub(super) fn unuse(&mut self, key: NKey, dst: IpAddr) {
        state::unuse(&mut self.users, &mut self.solicited, key, dst);
    }

    pub(super) fn set_route(&mut self, dst: IpAddr, route: Result<Route, NeighError>) {
        let old_key = self
            .dsts
            .get(&dst)
            .and_then(|d| d.route.as_ref().ok())
            .map(|r| (r.ifindex, r.via));
        let new_key = route.as_ref().ok().map(|r| (r.ifindex, r.via));
        reassign(&mut self.users, &mut self.solicited, dst, old_key, new_key);
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

    pub(super) fn timers(&mut self, now: Instant) {
        // Neighbours that neither answered nor failed.
        let expired = pending_expired(&self.pending, &self.dsts, self.cfg.pending_timeout, now);
        for (dst, err) in expired {
            self.publish(dst, Published::Failed(err), true);
        }
        if now >= self.next_refresh {
            self.next_refresh = now + self.cfg.refresh_interval;
            for key in stale_in_use(&self.users, &self.neighs, &self.dsts) {
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

    pub(super) fn settle(&mut self) {
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

    pub(super) fn publish_links(&mut self) {
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
    pub(super) fn evaluate(&mut self, dst: IpAddr, fresh: bool) {
        let Some(d) = self.dsts.get(&dst) else { return };
        let decision = decide(
            dst,
            &d.route,
            d.published.as_ref(),
            &self.links,
            &self.neighs,
            &self.solicited,
            fresh,
        );
        if let Some(key) = decision.answered {
            self.solicited.remove(&key);
        }
        if let Some(key) = decision.solicit {
            self.solicit(key);
        }
        self.publish(dst, decision.next, fresh);
    }

    /// Ask the kernel to resolve a neighbour, unless it is already at it.
    pub(super) fn solicit(&mut self, key: NKey) {
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
    pub(super) fn publish(&mut self, dst: IpAddr, next: Published, attempt: bool) {
        let now = Instant::now();
        let Some(d) = self.dsts.get_mut(&dst) else {
            return;
        };
        let fx = record(d, &mut self.pending, dst, &next, attempt, now);
        // New: queued for the data plane (a spoofed-source flood makes
        // thousands a second; each used to make it copy every hop).
        if fx.newly_ready
            && let Published::Ready(h) = &next
        {
            let mut ready = lock(&self.shared.ready);
            if ready.len() < READY_QUEUE_MAX {
                ready.push((dst, h.clone()));
            } else {
                self.bump = true;
            }
        }
        // Changed or gone: everything is copied again.
        if fx.bump {
            self.bump = true;
        }
        if !fx.write {
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
}
