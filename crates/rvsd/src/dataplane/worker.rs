//! A worker: one RX queue (or fanout member) of every served interface,
//! its frames through the engine in batches, out of the egress sockets.

use std::net::IpAddr;
use std::os::fd::RawFd;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use rvs_core::engine::{DropReason, Frame, PortId};
use rvs_core::{Action, Engine};
use rvs_io::xsk::Verdict;

use super::DpShared;
use super::backend::{Sock, WorkerSocks};
use super::counters::{Tally, WorkerCounters};
use crate::engines::Engines;
use crate::held::{self, Held, HeldFrames};
use crate::server::Shared;
use crate::system::Clock;

/// Frames taken from one socket per batch.
const BATCH: usize = 64;
/// How long a worker sleeps without traffic, in milliseconds.
const IDLE_WAIT_MS: i32 = 10;
/// How often a worker reads its sockets' kernel drop counters.
pub(super) const KERNEL_STATS_INTERVAL: Duration = Duration::from_millis(100);

/// A frame to copy out of another socket after the batch.
struct Pending {
    sock: usize,
    bytes: Vec<u8>,
}

/// Frames for another worker's engine replica, each after
/// [`held::HEADROOM`] bytes of its own (so that the owner rewrites them in
/// place): (offset of the frame, its length, its GSO size).
#[derive(Debug, Default)]
pub(super) struct Handoff {
    ingress: u32,
    /// Reused without clearing (`used` says how much is filled), so that
    /// headroom is not zeroed again for every frame.
    data: Vec<u8>,
    used: usize,
    frames: Vec<(u32, u32, u16)>,
}

impl Handoff {
    /// Empty, for reuse (its buffer kept, not zeroed).
    fn reset(mut self) -> Handoff {
        self.used = 0;
        self.frames.clear();
        self
    }
}

/// Hand-off batches a worker's queue holds (then frames are dropped and
/// counted).
pub(super) const HANDOFF_QUEUE: usize = 256;

/// How a worker wakes another: an eventfd in its poll set, written once
/// per sleep.
#[derive(Debug)]
pub(super) struct Wake {
    fd: OwnedFd,
    signaled: AtomicBool,
}

impl Wake {
    pub(super) fn new() -> std::io::Result<Wake> {
        let fd = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::NONBLOCK | rustix::event::EventfdFlags::CLOEXEC,
        )?;
        Ok(Wake {
            fd,
            signaled: AtomicBool::new(false),
        })
    }

    fn signal(&self) {
        if !self.signaled.swap(true, Ordering::AcqRel) {
            let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
        }
    }

    fn clear(&self) {
        if self.signaled.swap(false, Ordering::AcqRel) {
            let mut b = [0u8; 8];
            let _ = rustix::io::read(&self.fd, &mut b);
        }
    }
}

/// A worker's place among the engine replicas.
pub(super) struct Lane {
    pub(super) engines: Arc<Engines>,
    /// Its own replica.
    pub(super) replica: usize,
    /// Replicas frames are steered among (1: none, `--engines shared`).
    pub(super) owners: usize,
    /// Frames other workers hand to it.
    pub(super) inbox: Option<Receiver<Handoff>>,
    pub(super) wake: Arc<Wake>,
    /// Every worker's queue and wake-up, by worker index.
    pub(super) peers: Vec<(SyncSender<Handoff>, Arc<Wake>)>,
}

pub(super) struct Worker {
    index: usize,
    lane: Lane,
    /// Frames of this batch for other replicas, by worker index.
    out: Vec<Handoff>,
    /// Emptied hand-off batches, for reuse (each [`Handoff::reset`]).
    spare_handoffs: Vec<Handoff>,
    /// Hand-off batches taken from the queue, being processed.
    received: Vec<Handoff>,
    socks: Vec<Sock>,
    receives: Vec<bool>,
    dp: Arc<DpShared>,
    counters: Arc<WorkerCounters>,
    /// Port index of each served ifindex.
    port_of_ifindex: std::collections::HashMap<u32, usize>,
    /// Frames for a socket that cannot take them at once (the one being
    /// read: a reply out of the port it came in on; several frames of one
    /// decision), sent after the batch, and every frame behind them so
    /// that none overtakes another. The rest go straight into their
    /// egress socket.
    pending: Vec<Pending>,
    /// Spare buffers for `pending`.
    spare: Vec<Vec<u8>>,
    /// Addresses that needed a hop during the batch.
    need: Vec<IpAddr>,
    /// Frames waiting for a hop.
    held: HeldFrames,
    /// Held frames whose hop is known, being processed again.
    ready: Vec<Held>,
    /// TCP super-frames of the current batch, cut after it
    /// ([`Worker::cut_super_frames`]).
    big: Vec<(u16, Vec<u8>)>,
    /// Where one segment is built (headroom for a tunnel header, then
    /// the frame).
    seg: Vec<u8>,
}

impl Worker {
    pub(super) fn new(index: usize, socks: WorkerSocks, dp: Arc<DpShared>, lane: Lane) -> Worker {
        let port_of_ifindex = dp
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| (p.ifindex, i))
            .collect();
        let counters = Arc::clone(&dp.workers[index]);
        let out = (0..lane.peers.len()).map(|_| Handoff::default()).collect();
        Worker {
            index,
            lane,
            out,
            spare_handoffs: Vec::new(),
            received: Vec::new(),
            socks: socks.socks,
            receives: socks.receives,
            dp,
            counters,
            port_of_ifindex,
            pending: Vec::new(),
            spare: Vec::new(),
            need: Vec::new(),
            held: HeldFrames::default(),
            ready: Vec::new(),
            big: Vec::new(),
            seg: vec![0; held::HEADROOM + SEGMENT_MAX],
        }
    }

    pub(super) fn run(&mut self, shared: &Shared) {
        let clock = shared.clock();
        let mut fds: Vec<RawFd> = self
            .socks
            .iter()
            .zip(&self.receives)
            .filter(|(_, r)| **r)
            .map(|(s, _)| s.fd())
            .collect();
        if self.lane.inbox.is_some() {
            fds.push(self.lane.wake.fd.as_raw_fd());
        }
        let mut dropped_seen = vec![0u64; self.socks.len()];
        let mut stats_at = Instant::now();
        let started = Instant::now();
        while !shared.stopping() {
            self.counters.heartbeat.fetch_add(1, Ordering::Relaxed);
            crate::inject_stall("worker", started);
            if stats_at.elapsed() >= KERNEL_STATS_INTERVAL {
                stats_at = Instant::now();
                self.refresh_kernel_drops();
            }
            if let Err(e) = rvs_io::packet::wait_readable(&fds, IDLE_WAIT_MS) {
                crate::limited!(
                    error,
                    self.index,
                    worker = self.index,
                    "worker {}: {e}",
                    self.index
                );
                std::thread::sleep(Duration::from_millis(IDLE_WAIT_MS as u64));
            }
            self.lane.wake.clear();
            for si in 0..self.socks.len() {
                if self.receives[si] {
                    self.batch(si, clock);
                }
            }
            if self.lane.inbox.is_some() {
                self.take_handoffs(clock);
            }
            if !self.held.is_empty() {
                self.release_held(clock);
            }
            for (s, seen) in self.socks.iter_mut().zip(&mut dropped_seen) {
                if let Err(e) = s.flush() {
                    crate::limited!(
                        error,
                        format_args!("{} {}", self.index, s.ifname()),
                        worker = self.index,
                        iface = s.ifname(),
                        "worker {}: {} flush: {e}",
                        self.index,
                        s.ifname()
                    );
                }
                // What the kernel refused to send counts as no room.
                let dropped = s.tx_dropped();
                if dropped > *seen {
                    self.counters
                        .tx_full
                        .fetch_add(dropped - *seen, Ordering::Relaxed);
                    *seen = dropped;
                }
            }
        }
        self.refresh_kernel_drops();
        for sock in &self.socks {
            if let Sock::Xsk(x) = sock {
                tracing::info!(
                    worker = self.index,
                    iface = x.ifname(),
                    "worker {}: {} queue {}: {:?}",
                    self.index,
                    x.ifname(),
                    x.queue(),
                    x.stats()
                );
            }
        }
    }

    /// One batch of socket `si` (the socket of port `si`).
    fn batch(&mut self, si: usize, clock: Clock) {
        let ingress = PortId(self.dp.ports[si].ifindex);
        let engines = Arc::clone(&self.lane.engines);
        let (replica, owners) = (self.lane.replica, self.lane.owners);
        let out = &mut self.out;
        let mut guard = None::<crate::engines::Replica<'_>>;
        let mut now = None;
        let mut t = Tally::default();
        // The engine's count of finished checksums when the batch began.
        let mut csum_before = 0;
        let port_of_ifindex = &self.port_of_ifindex;
        let pending = &mut self.pending;
        let spare = &mut self.spare;
        let need = &mut self.need;
        let held = &mut self.held;
        let resolver = &self.dp.resolver;
        let dp = &self.dp;
        let big = &mut self.big;
        // The other ports' sockets, to send into while this one receives.
        let (before, rest) = self.socks.split_at_mut(si);
        let (sock, after) = rest.split_first_mut().expect("a socket per port");
        let res = sock.rx_batch(BATCH, |fb| {
            t.rx += 1;
            // Lock once per batch, and only when there is a frame: the
            // worker's own replica (the one engine with --engines shared).
            let engine: &mut Engine = guard.get_or_insert_with(|| engines.lock(replica));
            let now = *now.get_or_insert_with(|| {
                csum_before = engine.counters().csum_completed;
                let now = clock.now();
                // The fast-path work the previous batch queued, now that
                // its frames are sent: a flow's next packets go through XDP
                // without waiting for the sync thread, and never overtake
                // the packets the engine forwarded before.
                dp.apply_fast_ops(engine, replica, now);
                now
            });
            let (start, len) = (fb.start(), fb.len());
            if owners > 1 {
                let bytes = &fb.buf()[start..start + len];
                let owner = engine
                    .steer(bytes, ingress)
                    .map_or(replica, |h| rvs_core::engine::steer_owner(h, owners));
                if owner != replica {
                    // Another replica's connection: its worker's.
                    let h = &mut out[owner];
                    if h.frames.is_empty() {
                        h.ingress = ingress.0;
                    } else if h.ingress != ingress.0 {
                        // One ingress per hand-off batch (a worker reads
                        // one socket per batch: never met).
                        t.dropped += 1;
                        return Verdict::Drop;
                    }
                    let at = h.used + held::HEADROOM;
                    if h.data.len() < at + len {
                        h.data.resize(at + len, 0);
                    }
                    h.data[at..at + len].copy_from_slice(bytes);
                    h.used = at + len;
                    h.frames.push((at as u32, len as u32, fb.gso_size()));
                    t.handed_off += 1;
                    return Verdict::Drop;
                }
            }
            if len > WIRE_FRAME_MAX {
                // A TCP super-frame (the sender's TSO, or GRO): cut into
                // segments of the ingress MTU after the batch.
                t.segmented += 1;
                let mut b = spare.pop().unwrap_or_default();
                b.clear();
                b.extend_from_slice(&fb.buf()[start..start + len]);
                big.push((fb.gso_size(), b));
                return Verdict::Done;
            }
            let action = engine.process(
                Frame {
                    buf: fb.buf_mut(),
                    start,
                    len,
                    ingress,
                    fwmark: 0,
                },
                now,
            );
            let (egress, bytes) = match action {
                Action::Forward { port, start, len } => {
                    t.forwarded += 1;
                    if port == ingress {
                        t.tx += 1;
                        return Verdict::TxSame { start, len };
                    }
                    (port, &fb.buf()[start..start + len])
                }
                Action::Reply { port, len } => {
                    t.replies += 1;
                    (port, engine.reply_frame(len))
                }
                Action::Frames { port, count } => {
                    t.forwarded += 1;
                    let Some(&pi) = port_of_ifindex.get(&port.0) else {
                        t.no_port += 1;
                        return Verdict::Drop;
                    };
                    for i in 0..count {
                        let mut b = spare.pop().unwrap_or_default();
                        b.clear();
                        b.extend_from_slice(engine.frame_at(i));
                        pending.push(Pending { sock: pi, bytes: b });
                    }
                    return Verdict::Done;
                }
                Action::Pass => {
                    t.passed += 1;
                    return Verdict::Drop;
                }
                Action::Drop(DropReason::FragmentHeld) => {
                    // The engine keeps a copy until its first fragment comes.
                    return Verdict::Drop;
                }
                Action::Drop(_) => {
                    t.dropped += 1;
                    return Verdict::Drop;
                }
                Action::NeedHop(a) => {
                    // Starts the resolution; the sync thread hands the hop
                    // to the engine once it is known, and the held copy of
                    // the (untouched) frame is processed again then.
                    t.need_hop += 1;
                    let _ = resolver.lookup(a);
                    need.push(a);
                    t.dropped +=
                        held.hold(a, ingress, &fb.buf()[start..start + len], Instant::now());
                    return Verdict::Drop;
                }
            };
            let Some(&pi) = port_of_ifindex.get(&egress.0) else {
                t.no_port += 1;
                return Verdict::Drop;
            };
            // Straight into another port's socket (one copy, no `Vec`),
            // unless frames wait in `pending`, which this one must not
            // overtake; a reply out of this port waits for the batch.
            if pending.is_empty() && pi != si {
                let other = if pi < si {
                    &mut before[pi]
                } else {
                    &mut after[pi - si - 1]
                };
                send_counted(other, bytes, &mut t);
                return Verdict::Done;
            }
            let mut b = spare.pop().unwrap_or_default();
            b.clear();
            b.extend_from_slice(bytes);
            pending.push(Pending { sock: pi, bytes: b });
            Verdict::Done
        });
        if let Some(engine) = guard.as_mut()
            && let Some(now) = now
        {
            self.cut_super_frames(engine, ingress, now, &mut t);
            self.release_fragments(engine, now, &mut t);
        }
        if let Some(engine) = guard.as_mut() {
            t.csum_completed = engine.counters().csum_completed.saturating_sub(csum_before);
        }
        drop(guard);
        self.hand_off(&mut t);
        if let Err(e) = res {
            crate::limited!(
                error,
                format_args!("{} {}", self.index, self.socks[si].ifname()),
                worker = self.index,
                iface = self.socks[si].ifname(),
                "worker {}: {} receive: {e}",
                self.index,
                self.socks[si].ifname()
            );
        }
        self.send_pending(&mut t);
        if !self.need.is_empty() {
            self.dp.wanted().extend(self.need.drain(..));
        }
        if t.rx > 0 {
            self.counters.add(&t);
            crate::inject_panic("worker");
        }
    }
}

/// Copy `bytes` out of `sock`, counted as sent or as no room.
fn send_counted(sock: &mut Sock, bytes: &[u8], t: &mut Tally) {
    if sock.tx_copy(bytes) {
        t.tx += 1;
    } else {
        t.tx_full += 1;
    }
}

/// Released fragments are processed like held frames (their headroom is
/// the same, so that a NAT or tunnel rewrite finds room for a header).
use rvs_core::frag::HELD_HEADROOM;
const _: () = assert!(HELD_HEADROOM == held::HEADROOM);

/// The longest frame a served interface delivers unmerged: 1500-byte IP
/// packets, an Ethernet header and one VLAN tag. Longer ones are TCP
/// super-frames (a local sender's TSO, or GRO), which only AF_PACKET reads
/// (see the notes after [`Filter`](super::backend::Filter)).
const WIRE_FRAME_MAX: usize = 1518;

/// The longest segment cut from a super-frame (jumbo MTUs included).
const SEGMENT_MAX: usize = 9216 + 18;

impl Worker {
    /// Cut the batch's TCP super-frames into segments of the ingress
    /// interface's MTU (`rvs_wire::tcp_segments`, as the kernel's GSO
    /// would before the wire) and process each through the engine; what
    /// is not TCP (UDP GSO: its segment size is unknown here) is dropped
    /// and counted.
    fn cut_super_frames(
        &mut self,
        engine: &mut Engine,
        ingress: PortId,
        now: rvs_core::Instant,
        t: &mut Tally,
    ) {
        let mtu = self
            .dp
            .ports
            .iter()
            .find(|p| PortId(p.ifindex) == ingress)
            .map_or(1500, |p| p.mtu as usize);
        let mut big = std::mem::take(&mut self.big);
        let mut seg = std::mem::take(&mut self.seg);
        for (gso, frame) in big.drain(..) {
            let meta = match rvs_wire::parse_frame(&frame) {
                Ok(rvs_wire::Parsed::Ip(m)) => m,
                _ => {
                    t.dropped += 1;
                    self.spare.push(frame);
                    continue;
                }
            };
            // The sender's segment size when the kernel told it (it follows
            // the path MTU the sender learnt, e.g. from the frag-needed
            // errors of a TUN service), else the ingress MTU.
            let tcp_hdr = frame
                .get(meta.l4_offset + 12)
                .map_or(20, |b| usize::from(b >> 4) * 4);
            let max_ip_len = if gso > 0 {
                (meta.l4_offset - meta.l3_offset + tcp_hdr + usize::from(gso)).min(mtu)
            } else {
                mtu
            };
            for i in 0.. {
                let len = match rvs_wire::tcp_segment(
                    &frame,
                    &meta,
                    max_ip_len,
                    i,
                    &mut seg[held::HEADROOM..],
                ) {
                    Ok(Some(len)) => len,
                    Ok(None) => break,
                    Err(_) => {
                        t.dropped += 1;
                        break;
                    }
                };
                let action = engine.process(
                    Frame {
                        buf: &mut seg,
                        start: held::HEADROOM,
                        len,
                        ingress,
                        fwmark: 0,
                    },
                    now,
                );
                self.route(engine, action, &seg, len, ingress, Instant::now(), t);
            }
            self.spare.push(frame);
        }
        self.big = big;
        self.seg = seg;
    }

    /// Process the fragments the engine held until their datagram's first
    /// fragment came, now that it has (they are sent after it).
    fn release_fragments(&mut self, engine: &mut Engine, now: rvs_core::Instant, t: &mut Tally) {
        while let Some(mut h) = engine.pop_released_fragment() {
            let len = h.len();
            let action = engine.process(
                Frame {
                    buf: &mut h.buf,
                    start: HELD_HEADROOM,
                    len,
                    ingress: h.ingress,
                    fwmark: 0,
                },
                now,
            );
            self.route(engine, action, &h.buf, len, h.ingress, Instant::now(), t);
            engine.recycle_fragment(h.buf);
        }
    }

    /// Carry out what the engine decided for a frame built in `buf` (at
    /// [`held::HEADROOM`], `len` bytes): a forwarded frame or a reply
    /// copied into its egress socket (or queued behind frames waiting in
    /// `pending`), a frame whose hop is unknown held (as waiting since
    /// `since`).
    #[allow(clippy::too_many_arguments)]
    fn route(
        &mut self,
        engine: &Engine,
        action: Action,
        buf: &[u8],
        len: usize,
        ingress: PortId,
        since: Instant,
        t: &mut Tally,
    ) {
        let (port, bytes) = match action {
            Action::Forward { port, start, len } => {
                t.forwarded += 1;
                (port, &buf[start..start + len])
            }
            Action::Reply { port, len } => {
                t.replies += 1;
                (port, engine.reply_frame(len))
            }
            Action::Frames { port, count } => {
                t.forwarded += 1;
                let Some(&pi) = self.port_of_ifindex.get(&port.0) else {
                    t.no_port += 1;
                    return;
                };
                for i in 0..count {
                    let mut b = self.spare.pop().unwrap_or_default();
                    b.clear();
                    b.extend_from_slice(engine.frame_at(i));
                    self.pending.push(Pending { sock: pi, bytes: b });
                }
                return;
            }
            Action::NeedHop(a) => {
                t.need_hop += 1;
                let _ = self.dp.resolver.lookup(a);
                self.need.push(a);
                let frame = &buf[held::HEADROOM..held::HEADROOM + len];
                t.dropped += self.held.hold(a, ingress, frame, since);
                return;
            }
            Action::Pass => {
                t.passed += 1;
                return;
            }
            Action::Drop(DropReason::FragmentHeld) => return,
            Action::Drop(_) => {
                t.dropped += 1;
                return;
            }
        };
        match self.port_of_ifindex.get(&port.0) {
            // Straight into its socket (one copy), unless frames wait in
            // `pending` that this one must not overtake.
            Some(&pi) if self.pending.is_empty() => {
                send_counted(&mut self.socks[pi], bytes, t);
            }
            Some(&pi) => {
                let mut b = self.spare.pop().unwrap_or_default();
                b.clear();
                b.extend_from_slice(bytes);
                self.pending.push(Pending { sock: pi, bytes: b });
            }
            None => t.no_port += 1,
        }
    }

    /// Read the kernel's receive drops of every socket of this worker.
    fn refresh_kernel_drops(&mut self) {
        let drops = self.socks.iter_mut().map(Sock::kernel_drops).sum();
        self.counters.kernel_drops.store(drops, Ordering::Relaxed);
    }

    /// Copy the frames of `pending` out of their egress sockets.
    fn send_pending(&mut self, t: &mut Tally) {
        for p in self.pending.drain(..) {
            send_counted(&mut self.socks[p.sock], &p.bytes, t);
            self.spare.push(p.bytes);
        }
    }

    /// Process again the held frames whose next hop is now known; drop
    /// those that waited too long.
    fn release_held(&mut self, clock: Clock) {
        let mut t = Tally::default();
        let engines = Arc::clone(&self.lane.engines);
        let mut state = engines.lock(self.lane.replica);
        let engine: &mut Engine = &mut state;
        t.dropped += self
            .held
            .take_ready(Instant::now(), |a| engine.has_hop(a), &mut self.ready);
        if self.ready.is_empty() {
            drop(state);
            self.counters.add(&t);
            return;
        }
        let now = clock.now();
        let mut ready = std::mem::take(&mut self.ready);
        for mut h in ready.drain(..) {
            let len = h.len();
            let action = engine.process(
                Frame {
                    buf: &mut h.buf,
                    start: held::HEADROOM,
                    len,
                    ingress: h.ingress,
                    fwmark: 0,
                },
                now,
            );
            // Another hop missing now (rare): held again, since it first was.
            self.route(engine, action, &h.buf, len, h.ingress, h.since, &mut t);
            self.held.recycle(h.buf);
        }
        self.ready = ready;
        self.release_fragments(engine, now, &mut t);
        drop(state);
        self.send_pending(&mut t);
        if !self.need.is_empty() {
            self.dp.wanted().extend(self.need.drain(..));
        }
        self.counters.add(&t);
    }

    /// Send this batch's frames for other replicas to their workers, and
    /// wake them.
    fn hand_off(&mut self, t: &mut Tally) {
        for o in 0..self.out.len() {
            if self.out[o].frames.is_empty() {
                continue;
            }
            let fresh = self.spare_handoffs.pop().unwrap_or_default();
            let h = std::mem::replace(&mut self.out[o], fresh);
            let (tx, wake) = &self.lane.peers[o];
            match tx.try_send(h) {
                Ok(()) => wake.signal(),
                Err(TrySendError::Full(h) | TrySendError::Disconnected(h)) => {
                    t.handoff_dropped += h.frames.len() as u64;
                    t.dropped += h.frames.len() as u64;
                    self.spare_handoffs.push(h.reset());
                }
            }
        }
    }

    /// Process the frames other workers handed over (this replica's
    /// connections), as if read here.
    fn take_handoffs(&mut self, clock: Clock) {
        let Some(inbox) = &self.lane.inbox else {
            return;
        };
        let mut got = std::mem::take(&mut self.received);
        while got.len() < HANDOFF_QUEUE
            && let Ok(h) = inbox.try_recv()
        {
            got.push(h);
        }
        if got.is_empty() {
            self.received = got;
            return;
        }
        let mut t = Tally::default();
        let engines = Arc::clone(&self.lane.engines);
        let mut guard = engines.lock(self.lane.replica);
        let engine: &mut Engine = &mut guard;
        let now = clock.now();
        let csum_before = engine.counters().csum_completed;
        for mut h in got.drain(..) {
            let ingress = PortId(h.ingress);
            for &(at, len, gso) in &h.frames {
                let (at, len) = (at as usize, len as usize);
                let buf = &mut h.data[at - held::HEADROOM..at + len];
                if len > WIRE_FRAME_MAX {
                    t.segmented += 1;
                    let mut b = self.spare.pop().unwrap_or_default();
                    b.clear();
                    b.extend_from_slice(&buf[held::HEADROOM..]);
                    self.big.push((gso, b));
                    continue;
                }
                let action = engine.process(
                    Frame {
                        buf,
                        start: held::HEADROOM,
                        len,
                        ingress,
                        fwmark: 0,
                    },
                    now,
                );
                let buf = &h.data[at - held::HEADROOM..at + len];
                self.route(engine, action, buf, len, ingress, Instant::now(), &mut t);
            }
            if !self.big.is_empty() {
                self.cut_super_frames(engine, ingress, now, &mut t);
            }
            if self.spare_handoffs.len() < HANDOFF_QUEUE {
                self.spare_handoffs.push(h.reset());
            }
        }
        self.received = got;
        self.release_fragments(engine, now, &mut t);
        t.csum_completed = engine.counters().csum_completed.saturating_sub(csum_before);
        drop(guard);
        self.send_pending(&mut t);
        if !self.need.is_empty() {
            self.dp.wanted().extend(self.need.drain(..));
        }
        self.counters.add(&t);
    }
}
