//! The packet path: sockets on the served interfaces, a filter that decides
//! what the kernel keeps, one worker thread per RX queue running the engine,
//! and one sync thread that keeps the filter and the engine's next hops in
//! step with the table and the kernel.
//!
//! Two backends share everything but the sockets and the filter:
//!
//! * `--io xdp`: the XDP classifier redirects what rvs claims (service
//!   traffic, replies of NAT real servers, ICMP errors about them) to one
//!   AF_XDP socket per RX queue, and passes everything else to the kernel.
//!   A frame the engine would [`Action::Pass`] cannot be handed back from
//!   AF_XDP: it is dropped and counted as passed.
//! * `--io packet`: an AF_PACKET socket per interface and worker (fanout by
//!   flow hash when there are several workers) sees a copy of every frame;
//!   an nftables table drops what rvs claims in front of the kernel's stack
//!   ([`rvs_io::nft`]). `Action::Pass` means "the kernel has it". TCP
//!   super-frames (a local sender's TSO, GRO) are cut into segments first
//!   (offloads are left as they are: see the notes after [`Filter`]).
//!
//! Worker `q` serves RX queue `q` of every served interface (AF_XDP), or the
//! `q`-th socket of every interface's fanout group (AF_PACKET). The engine
//! stays behind the one state mutex, locked once per batch. Class sync and
//! hop resolution happen in the sync thread only, once per change, and end
//! with [`Shared::mark_synced`] so that rvsadm's change is acknowledged only
//! once the filter holds it.
//!
//! With `--io xdp` and the fast path on (`--fast-path on`, the default),
//! the engine also queues [`FastPathOp`]s: the sync thread installs the
//! flows of established connections into the classifier's flow cache
//! (rvs-io's `flowcache`), whose XDP program then forwards their packets
//! itself, and removes them when the engine says so. What the cache
//! forwarded is credited to the engine's statistics and timers
//! ([`Engine::credit_fast_path`]) when an entry goes, and for the others
//! by [`DpShared::credit_fast_path`]: before every housekeeping pass (so
//! expiry sees the last packet) and before every control request that
//! reads or resets counters or connections (so `rvsadm -L --stats`,
//! `-L -c` and `-Z` are exact at the moment of the request).
//!
//! Lock order: the state (`Shared::lock`), then the fast path's
//! bookkeeping, then the filter.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rvs_core::engine::{DropReason, Frame, Hop, PortConfig, PortId};
use rvs_core::fastpath::{FastAction, FastFlow, FastPathOp, FastRewrite};
use rvs_core::{Action, Engine};
use rvs_io::flowcache::{self, FlowAction, FlowCache, FlowCounters, FlowEntry, FlowRewrite, Gate};
use rvs_io::neigh::{NextHop, Resolver};
use rvs_io::nft::{Claims, FwmarkMatch, NftInterface, NftTable};
use rvs_io::packet::{PacketConfig, PacketSocket};
use rvs_io::redirwatch::{RedirectWatch, Sample};
use rvs_io::xdp::{AttachMode, Classifier, XdpError};
use rvs_io::xsk::{FrameBuf, UmemConfig, Verdict, XskSocket};
use rvs_proto::{ClassifierCounters, DataPlaneWorker, FastPathCounters, Reply};
use rvs_wire::EthernetAddress;

use crate::classes::{ClassSet, class_set};
use crate::handler::State;
use crate::held::{self, Held, HeldFrames};
use crate::options::{FastPathMode, IoMode};
use crate::server::Shared;
use crate::system::Clock;

/// Frames taken from one socket per batch.
const BATCH: usize = 64;
/// How long a worker sleeps without traffic, in milliseconds.
const IDLE_WAIT_MS: i32 = 10;
/// How often the sync thread looks for table and neighbour changes.
const SYNC_INTERVAL: Duration = Duration::from_millis(2);
/// How often a worker reads its sockets' kernel drop counters.
const KERNEL_STATS_INTERVAL: Duration = Duration::from_millis(100);

/// The fast-path settings of the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastPathConfig {
    /// `--fast-path`.
    pub mode: FastPathMode,
    /// `--fast-path-entries`.
    pub entries: u32,
}

/// The packet I/O in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// XDP classifier and AF_XDP sockets.
    Xdp,
    /// AF_PACKET sockets and nftables.
    Packet,
}

impl Backend {
    /// `xdp` or `packet`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Xdp => "xdp",
            Backend::Packet => "packet",
        }
    }
}

/// What keeps the kernel from handling claimed frames.
#[derive(Debug)]
enum Filter {
    Xdp(Box<Classifier>),
    Nft(NftTable),
}

// What reaches rvs with the kernel's default offloads, which rvsd leaves
// as they are (measured on veth, kernel 6.18; see drivers/net/veth.c and
// net/core/dev.c):
// * Transmit checksum offload of a local sender: frames carry partial
//   TCP/UDP checksums (the pseudo-header sum) and zero SCTP CRCs on
//   every path (XDP, AF_XDP, AF_PACKET); the engine and the XDP fast path
//   finish them (`rvs_wire::offload`), counted in `rvs dataplane`.
// * TSO/GSO of a local sender: while an XDP program without multi-buffer
//   support is attached to a veth, the kernel clears TSO on its peer
//   (`ethtool -k`: tcp-segmentation-offload off), so software GSO cuts
//   MTU-sized segments before the veth, each with its own partial
//   checksum; native XDP on a NIC disables LRO. XDP and AF_XDP never see
//   a super-frame. Without XDP (`--io packet`) the peer keeps TSO and
//   AF_PACKET reads its TCP packets of up to 64 KiB whole.
// * GRO runs after XDP (on the frames XDP passes), so it merges nothing
//   that XDP or AF_XDP see; AF_PACKET taps frames after GRO, merged.
//
// So `--io packet` reads into 64 KiB buffers and its workers cut TCP
// super-frames into segments of the ingress MTU before the engine
// ([`Worker::cut_super_frames`], `rvs_wire::tcp_segment`), as the
// kernel's GSO would on the way out. UDP super-frames (UDP GSO, or
// GRO with `rx-udp-gro-forwarding`, off by default) cannot be cut without
// the sender's segment size and are dropped (counted).

/// One served interface.
#[derive(Debug, Clone)]
struct Port {
    ifindex: u32,
    name: String,
    /// RX queues (XDP sockets opened, or fanout members).
    queues: u32,
    /// IP MTU: the size TCP super-frames read from it are cut to.
    mtu: u32,
}

/// Counters of one worker, readable while it runs.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Frames received.
    pub rx: AtomicU64,
    /// Frames queued for transmission.
    pub tx: AtomicU64,
    /// [`Action::Forward`]s.
    pub forwarded: AtomicU64,
    /// [`Action::Reply`]s.
    pub replies: AtomicU64,
    /// [`Action::Pass`]es (dropped with AF_XDP, left to the kernel with
    /// AF_PACKET).
    pub passed: AtomicU64,
    /// [`Action::Drop`]s.
    pub dropped: AtomicU64,
    /// [`Action::NeedHop`]s (the frame is held while the hop resolves,
    /// see [`crate::held`]).
    pub need_hop: AtomicU64,
    /// Copies the egress socket had no room for.
    pub tx_full: AtomicU64,
    /// Frames for an interface rvsd does not serve.
    pub no_port: AtomicU64,
    /// Frames whose partial checksum (a sender's checksum offload) the
    /// engine finished.
    pub csum_completed: AtomicU64,
    /// TCP super-frames (a sender's TSO, GRO) cut into segments before
    /// the engine saw them (AF_PACKET only).
    pub segmented: AtomicU64,
    /// Frames the kernel dropped before the worker read them (the sum over
    /// the worker's sockets, refreshed every [`KERNEL_STATS_INTERVAL`]).
    pub kernel_drops: AtomicU64,
}

/// The same counters, counted locally during a batch.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    rx: u64,
    tx: u64,
    forwarded: u64,
    replies: u64,
    passed: u64,
    dropped: u64,
    need_hop: u64,
    tx_full: u64,
    no_port: u64,
    csum_completed: u64,
    segmented: u64,
}

impl WorkerCounters {
    fn add(&self, t: &Tally) {
        let r = Ordering::Relaxed;
        self.rx.fetch_add(t.rx, r);
        self.tx.fetch_add(t.tx, r);
        self.forwarded.fetch_add(t.forwarded, r);
        self.replies.fetch_add(t.replies, r);
        self.passed.fetch_add(t.passed, r);
        self.dropped.fetch_add(t.dropped, r);
        self.need_hop.fetch_add(t.need_hop, r);
        self.tx_full.fetch_add(t.tx_full, r);
        self.no_port.fetch_add(t.no_port, r);
        self.csum_completed.fetch_add(t.csum_completed, r);
        self.segmented.fetch_add(t.segmented, r);
    }

    fn snapshot(&self, worker: u32) -> DataPlaneWorker {
        let r = Ordering::Relaxed;
        DataPlaneWorker {
            worker,
            rx: self.rx.load(r),
            tx: self.tx.load(r),
            forwarded: self.forwarded.load(r),
            replies: self.replies.load(r),
            passed: self.passed.load(r),
            dropped: self.dropped.load(r),
            need_hop: self.need_hop.load(r),
            tx_full: self.tx_full.load(r),
            no_port: self.no_port.load(r),
            kernel_drops: self.kernel_drops.load(r),
            csum_completed: self.csum_completed.load(r),
            segmented: self.segmented.load(r),
        }
    }
}

/// What the workers, the sync thread and the control server share.
#[derive(Debug)]
pub struct DpShared {
    backend: Backend,
    resolver: Resolver,
    ports: Vec<Port>,
    workers: Vec<Arc<WorkerCounters>>,
    /// `None` once shut down (the classifier detached, the table deleted).
    filter: Mutex<Option<Filter>>,
    /// Addresses that needed a hop and have none yet.
    wanted: Mutex<HashSet<IpAddr>>,
    /// With the fast path on: its bookkeeping (the sync thread's, and the
    /// control requests' that credit it).
    fast: Option<Mutex<FastSync>>,
    /// Interfaces whose taking redirected frames is probed again and again
    /// (virtual ones in native mode, with `--fast-path on`).
    fast_probed: Vec<Probed>,
    /// With the fast path off: why (for the log).
    fast_off: Option<String>,
    /// The share of pure SYNs the classifier sheds now, per mille
    /// ([`crate::synguard`]).
    syn_shed_permille: std::sync::atomic::AtomicU32,
}

/// An interface the fast path probes ([`Classifier::probe_redirect`]).
#[derive(Debug, Clone)]
struct Probed {
    ifindex: u32,
    name: String,
    mac: [u8; 6],
}

impl DpShared {
    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn filter(&self) -> MutexGuard<'_, Option<Filter>> {
        self.filter.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wanted(&self) -> MutexGuard<'_, HashSet<IpAddr>> {
        self.wanted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fast path's bookkeeping, if it is on.
    fn fast(&self) -> Option<MutexGuard<'_, FastSync>> {
        self.fast
            .as_ref()
            .map(|f| f.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Credit to `engine` what the fast path forwarded since the last
    /// credit, read from the cache now: afterwards the engine's statistics,
    /// connection counters and timers include every packet the XDP program
    /// forwarded so far. The caller holds the state lock (that `engine` is
    /// in); nothing happens with the fast path off.
    pub fn credit_fast_path(&self, engine: &mut Engine, now: rvs_core::Instant) {
        let Some(mut fast) = self.fast() else {
            return;
        };
        let filter = self.filter();
        if let Some(Filter::Xdp(c)) = &*filter {
            fast.credit_all(c.flow_cache(), engine, now, flowcache::monotonic_now_ns());
        }
    }

    /// Apply the engine's queued fast-path work (installs, removals) to the
    /// cache now. A worker calls it at the start of each batch (the frames
    /// of the previous one sent), with the state lock that `engine` is in
    /// held (lock order: state, fast, filter), so that a flow's next packets
    /// are forwarded in XDP rather than after the sync thread's next turn:
    /// for short connections (a request per connection) that is most of
    /// their packets.
    pub fn apply_fast_ops(&self, engine: &mut Engine, now: rvs_core::Instant) {
        if !engine.has_fast_path_ops() {
            return;
        }
        let Some(mut fast) = self.fast() else {
            return;
        };
        let mut filter = self.filter();
        if let Some(Filter::Xdp(c)) = &mut *filter {
            fast.apply_ops(
                c.flow_cache_mut(),
                engine,
                now,
                flowcache::monotonic_now_ns(),
            );
        }
    }

    /// The fast path's counters, if it is on (its packets and bytes are
    /// those credited so far: the server credits before it asks).
    fn fast_path_counters(&self) -> Option<FastPathCounters> {
        let fast = self.fast()?;
        let stats = match &*self.filter() {
            Some(Filter::Xdp(c)) => c.flow_cache().stats().ok(),
            _ => None,
        };
        Some(fast.counters(&self.ports, &self.fast_probed, stats.as_ref()))
    }

    fn classifier_counters(&self) -> Option<ClassifierCounters> {
        match &*self.filter() {
            Some(Filter::Xdp(c)) => c.stats().ok().map(|s| ClassifierCounters {
                redirected: s.redirected,
                passed: s.passed,
                no_socket: s.no_socket,
                malformed: s.malformed,
                fragments: s.fragments,
                syns: s.syns,
                syn_shed: s.syn_shed,
                syn_shed_permille: self.syn_shed_permille.load(Ordering::Relaxed),
                fragments_claimed: s.fragments_claimed,
            }),
            _ => None,
        }
    }

    /// The reply to `Request::DataPlaneStats`.
    pub fn report(&self) -> Reply {
        Reply::DataPlaneStats {
            mode: self.backend.name().into(),
            workers: self
                .workers
                .iter()
                .enumerate()
                .map(|(i, w)| w.snapshot(i as u32))
                .collect(),
            classifier: self.classifier_counters(),
            fast_path: self.fast_path_counters(),
            engine: None,
            filter_out_of_step: None,
        }
    }
}

/// A socket of a worker.
#[derive(Debug)]
enum Sock {
    Xsk(Box<XskSocket>),
    Packet(Box<PacketSocket>),
}

impl Sock {
    fn rx_batch(
        &mut self,
        max: usize,
        f: impl FnMut(&mut FrameBuf<'_>) -> Verdict,
    ) -> Result<usize, String> {
        match self {
            Sock::Xsk(s) => s.rx_batch(max, f).map_err(|e| e.to_string()),
            Sock::Packet(s) => s.rx_batch(max, f).map_err(|e| e.to_string()),
        }
    }

    fn tx_copy(&mut self, frame: &[u8]) -> bool {
        match self {
            Sock::Xsk(s) => s.tx_copy(frame),
            Sock::Packet(s) => s.tx_copy(frame),
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        match self {
            Sock::Xsk(s) => s.flush().map_err(|e| e.to_string()),
            Sock::Packet(s) => s.flush().map_err(|e| e.to_string()),
        }
    }

    /// Frames dropped at send time, counted by the socket (AF_PACKET:
    /// refused by the kernel in `flush`; AF_XDP counts them at `tx_copy`).
    fn tx_dropped(&self) -> u64 {
        match self {
            Sock::Xsk(_) => 0,
            Sock::Packet(s) => s.stats().tx_dropped,
        }
    }

    /// Frames the kernel dropped on receive so far (one getsockopt).
    fn kernel_drops(&mut self) -> u64 {
        match self {
            Sock::Xsk(s) => s.stats().kernel.map_or(0, |k| {
                k.rx_dropped + k.rx_ring_full + k.rx_fill_ring_empty_descs
            }),
            Sock::Packet(s) => s.kernel_stats().map_or(0, |k| k.drops),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Sock::Xsk(s) => s.fd(),
            Sock::Packet(s) => s.fd(),
        }
    }

    fn ifname(&self) -> &str {
        match self {
            Sock::Xsk(s) => s.ifname(),
            Sock::Packet(s) => s.ifname(),
        }
    }
}

/// The sockets of one worker: per served port (by index), the socket it
/// transmits with, which also receives unless it is a transmit-only
/// AF_PACKET socket (an XDP worker for a queue that port does not have).
#[derive(Debug)]
struct WorkerSocks {
    socks: Vec<Sock>,
    receives: Vec<bool>,
}

/// The open data plane, not yet running.
#[derive(Debug)]
pub struct DataPlane {
    shared: Arc<DpShared>,
    workers: Vec<WorkerSocks>,
    why: String,
}

/// The running data plane: its threads.
#[derive(Debug)]
pub struct Running {
    shared: Arc<DpShared>,
    threads: Vec<JoinHandle<()>>,
}

fn port_config(resolver: &Resolver, ifindex: u32) -> Option<PortConfig> {
    let info = resolver.interface(ifindex)?;
    let addr_v4 = info.addrs.iter().find_map(|a| match a {
        IpAddr::V4(v) => Some(*v),
        IpAddr::V6(_) => None,
    });
    let addr_v6 = tunnel_source_v6(&info.addrs);
    Some(PortConfig {
        mac: EthernetAddress(info.mac),
        mtu: u16::try_from(info.mtu).unwrap_or(u16::MAX),
        addr_v4,
        addr_v6,
    })
}

/// The IPv6 address of an interface the engine sends from (the outer
/// source of IPv6 tunnels): the first that is not link-local, as the
/// kernel's source selection would pick for a real server's global
/// address. Link-local ones are left out: they also appear only once
/// duplicate address detection is done, a second or two after the link
/// comes up, and a port whose configuration changes drops every flow the
/// fast path cached.
fn tunnel_source_v6(addrs: &[IpAddr]) -> Option<std::net::Ipv6Addr> {
    addrs.iter().find_map(|a| match a {
        IpAddr::V6(v) if !v.is_unicast_link_local() => Some(*v),
        _ => None,
    })
}

fn hop_of(h: &NextHop) -> Hop {
    Hop {
        port: PortId(h.ifindex),
        mac: EthernetAddress(h.neighbour_mac),
    }
}

/// RX queues of `name`, at least 1.
fn queues_of(name: &str) -> Result<u32, String> {
    XskSocket::queue_count(name)
        .map(|n| n.max(1))
        .map_err(|e| format!("{name}: cannot count RX queues: {e}"))
}

/// The served ports, as the resolver knows them.
fn ports_of(resolver: &Resolver, interfaces: &[String]) -> Result<Vec<Port>, String> {
    interfaces
        .iter()
        .map(|name| {
            let info = resolver
                .interface_by_name(name)
                .ok_or_else(|| format!("{name}: interface not found by the resolver"))?;
            Ok(Port {
                ifindex: info.ifindex,
                name: name.clone(),
                queues: queues_of(name)?,
                mtu: crate::system::interface_mtu(name).unwrap_or(1500),
            })
        })
        .collect()
}

/// The fwmark rules to claim, as the classifier and the nftables table
/// take them.
fn nft_claims(set: &ClassSet) -> Vec<FwmarkMatch> {
    crate::classes::fwmark_matches(&set.fwmark)
}

impl DataPlane {
    /// Open the data plane of `mode` (not `None`) on `interfaces` and declare
    /// the interfaces to the engine of `state`. `Auto` tries XDP, then
    /// AF_PACKET, and says why in [`describe`](Self::describe).
    pub fn open(
        mode: IoMode,
        interfaces: &[String],
        fast: FastPathConfig,
        state: &mut State,
    ) -> Result<DataPlane, String> {
        let resolver = Resolver::start_with(rvs_io::neigh::ResolverConfig {
            idle_timeout: resolver_idle(),
            ..rvs_io::neigh::ResolverConfig::default()
        })
        .map_err(|e| format!("cannot start the neighbour resolver: {e}"))?;
        let ports = ports_of(&resolver, interfaces)?;
        let (backend, (mut filter, workers), why) = choose(
            mode,
            || open_xdp(&ports, fast.entries),
            || open_packet(&ports),
        )?;
        let (fast_sync, fast_probed, fast_off) = match (&mut filter, fast.mode) {
            (Filter::Xdp(c), FastPathMode::On | FastPathMode::All) => {
                let (set, probed, answers) = fast_egress(c, &ports, fast.mode, |i| {
                    port_config(&resolver, i).map(|p| p.mac.0)
                });
                let mut fs = FastSync::new(fast.mode, set, Vec::new());
                for (p, answer) in probed.iter().zip(answers) {
                    let probe = fs.first_probe(c.flow_cache_mut(), p, answer);
                    fs.probes.push(probe);
                }
                (Some(Mutex::new(fs)), probed, None)
            }
            (_, FastPathMode::Off) => (None, Vec::new(), Some("--fast-path off".to_string())),
            (Filter::Nft(..), _) => (
                None,
                Vec::new(),
                Some("it needs XDP, and AF_PACKET is in use".to_string()),
            ),
        };
        state.engine_mut().set_fast_path(fast_sync.is_some());
        if let Filter::Xdp(_) = &filter {
            // From now on a change the classifier's maps cannot hold is
            // refused before anything changes; the table loaded so far
            // (--rules) must fit too.
            state
                .engine_mut()
                .set_claim_check(crate::classes::xdp_claim_check())
                .map_err(|e| format!("the rules loaded do not fit: {e}"))?;
        }
        for p in &ports {
            let cfg = port_config(&resolver, p.ifindex)
                .ok_or_else(|| format!("{}: interface not found by the resolver", p.name))?;
            state.engine_mut().set_port(PortId(p.ifindex), cfg);
        }
        let shared = Arc::new(DpShared {
            backend,
            resolver,
            ports,
            workers: workers
                .iter()
                .map(|_| Arc::new(WorkerCounters::default()))
                .collect(),
            filter: Mutex::new(Some(filter)),
            wanted: Mutex::new(HashSet::new()),
            fast: fast_sync,
            fast_probed,
            fast_off,
            syn_shed_permille: std::sync::atomic::AtomicU32::new(0),
        });
        Ok(DataPlane {
            shared,
            workers,
            why,
        })
    }

    /// The backend chosen.
    pub fn backend(&self) -> Backend {
        self.shared.backend
    }

    /// A description for the log: backend, why, interfaces and workers.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let filter = self.shared.filter();
        for p in &self.shared.ports {
            let mode = match &*filter {
                Some(Filter::Xdp(c)) => c
                    .attachments()
                    .iter()
                    .find(|a| a.ifindex == p.ifindex)
                    .map(|a| format!("XDP {:?} mode, ", a.mode))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            parts.push(format!("{} ({mode}{} queue(s))", p.name, p.queues));
        }
        let fast = match self.shared.fast() {
            None => format!(
                "fast path off ({})",
                self.shared.fast_off.as_deref().unwrap_or("not asked for")
            ),
            Some(f) => {
                let names: Vec<&str> = self
                    .shared
                    .ports
                    .iter()
                    .filter(|p| f.egress.contains(&p.ifindex))
                    .map(|p| p.name.as_str())
                    .collect();
                let watched: Vec<&str> = self
                    .shared
                    .fast_probed
                    .iter()
                    .zip(&f.probes)
                    .filter(|(_, pr)| pr.watching())
                    .map(|(p, _)| p.name.as_str())
                    .collect();
                let mut s = if names.is_empty() {
                    "fast path on, but no interface takes redirected XDP frames yet \
                     (a veth does once its peer is in NAPI mode: checked every second)"
                        .to_string()
                } else {
                    format!("fast path on towards {}", names.join(", "))
                };
                if !watched.is_empty() {
                    s.push_str(&format!(
                        "; towards {}: live-frames test runs refused, deciding by watching \
                         real redirects (`rvs dataplane` says where it stands)",
                        watched.join(", ")
                    ));
                }
                s
            }
        };
        format!(
            "{} — {}; {}; {} worker thread(s); {fast}",
            match self.shared.backend {
                Backend::Xdp => "AF_XDP",
                Backend::Packet => "AF_PACKET + nftables",
            },
            self.why,
            parts.join(", "),
            self.workers.len()
        )
    }

    /// Start the sync thread and the workers; they run until shutdown.
    pub fn spawn(self, shared: Arc<Shared>) -> Result<Running, String> {
        shared.set_dataplane(Arc::clone(&self.shared));
        let mut threads = Vec::new();
        let dp = Arc::clone(&self.shared);
        let sh = Arc::clone(&shared);
        let t = std::thread::Builder::new()
            .name("dp-sync".into())
            .spawn(move || {
                let mut sync = Sync::default();
                while !sh.stopping() {
                    sync.run_once(&dp, &sh);
                    std::thread::sleep(SYNC_INTERVAL);
                }
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        threads.push(t);
        for (i, socks) in self.workers.into_iter().enumerate() {
            let dp = Arc::clone(&self.shared);
            let sh = Arc::clone(&shared);
            let t = std::thread::Builder::new()
                .name(format!("dp-worker-{i}"))
                .spawn(move || Worker::new(i, socks, dp).run(&sh))
                .map_err(|e| format!("cannot start a thread: {e}"))?;
            threads.push(t);
        }
        Ok(Running {
            shared: self.shared,
            threads,
        })
    }
}

impl Running {
    /// Join the threads (they stop with the shared stop flag), log the
    /// counters, then detach the classifier or delete the nftables table.
    pub fn stop(self) {
        for t in self.threads {
            if t.join().is_err() {
                eprintln!("rvsd: a data plane thread panicked");
            }
        }
        for (i, w) in self.shared.workers.iter().enumerate() {
            let s = w.snapshot(i as u32);
            eprintln!(
                "rvsd: worker {i}: rx {}, tx {}, forwarded {}, replies {}, passed {}, dropped {}, \
                 need-hop {}, tx-full {}, no-port {}, kernel-drop {}",
                s.rx,
                s.tx,
                s.forwarded,
                s.replies,
                s.passed,
                s.dropped,
                s.need_hop,
                s.tx_full,
                s.no_port,
                s.kernel_drops
            );
        }
        if self.shared.backend == Backend::Xdp {
            match self.shared.classifier_counters() {
                Some(c) => eprintln!(
                    "rvsd: classifier: redirected {}, passed {}, no socket {}, malformed {}, \
                     fragments {} (claimed {})",
                    c.redirected,
                    c.passed,
                    c.no_socket,
                    c.malformed,
                    c.fragments,
                    c.fragments_claimed
                ),
                None => eprintln!("rvsd: classifier counters unavailable"),
            }
        }
        let filter = self.shared.filter().take();
        match filter {
            Some(Filter::Nft(t)) => {
                if let Err(e) = t.remove() {
                    eprintln!("rvsd: cannot delete the nftables table: {e}");
                }
            }
            Some(Filter::Xdp(c)) => {
                if let Some(f) = self.shared.fast()
                    && let Ok(s) = c.flow_cache().stats()
                {
                    let t = &f.totals;
                    eprintln!(
                        "rvsd: fast path: hits {}, misses {}, skipped {}, too big {}, ttl {}, \
                         errors {}, checksums finished {} (left to the engine {}); \
                         installs {}, removals {}, evictions {}",
                        s.hits,
                        s.misses,
                        s.skipped,
                        s.too_big,
                        s.ttl,
                        s.errors,
                        s.csum_completed,
                        s.csum_slow,
                        t.installs,
                        t.removals,
                        t.evictions
                    );
                }
                (*c).detach()
            }
            None => {}
        }
        let total = |f: fn(&DataPlaneWorker) -> u64| -> u64 {
            self.shared
                .workers
                .iter()
                .enumerate()
                .map(|(i, w)| f(&w.snapshot(i as u32)))
                .sum()
        };
        let passed_as = match self.shared.backend {
            // AF_XDP cannot hand a frame back to the kernel.
            Backend::Xdp => "passed to no one",
            Backend::Packet => "left to the kernel",
        };
        eprintln!(
            "rvsd: data plane stopped ({passed_as}: {}, to unserved ports: {}, tx full: {})",
            total(|w| w.passed),
            total(|w| w.no_port),
            total(|w| w.tx_full)
        );
    }
}

/// Pick the backend of `mode` (not `None`): the one asked for, or for
/// `Auto` XDP if `xdp` opens it, else AF_PACKET. Returns the backend, what
/// the opener gave, and why (for the log).
fn choose<T>(
    mode: IoMode,
    xdp: impl FnOnce() -> Result<T, String>,
    packet: impl FnOnce() -> Result<T, String>,
) -> Result<(Backend, T, String), String> {
    match mode {
        IoMode::Xdp => Ok((Backend::Xdp, xdp()?, "asked for (--io xdp)".into())),
        IoMode::Packet => Ok((Backend::Packet, packet()?, "asked for (--io packet)".into())),
        IoMode::Auto => match xdp() {
            Ok(t) => Ok((
                Backend::Xdp,
                t,
                "--io auto: the XDP classifier attached and the AF_XDP sockets opened".into(),
            )),
            Err(xdp_err) => match packet() {
                Ok(t) => Ok((
                    Backend::Packet,
                    t,
                    format!("--io auto: XDP is unavailable ({xdp_err}); using AF_PACKET"),
                )),
                Err(packet_err) => Err(format!(
                    "no packet I/O works: xdp: {xdp_err}; packet: {packet_err} \
                     (use --io none for the control plane only)"
                )),
            },
        },
        IoMode::None => Err("--io none has no data plane".into()),
    }
}

/// Attach the classifier and open a socket per RX queue; worker `q` gets
/// queue `q` of every port, or a transmit-only AF_PACKET socket for a port
/// with fewer queues.
fn open_xdp(ports: &[Port], flow_entries: u32) -> Result<(Filter, Vec<WorkerSocks>), String> {
    let names: Vec<String> = ports.iter().map(|p| p.name.clone()).collect();
    let mut classifier = Classifier::attach_sized(&names, flow_entries)
        .map_err(|e| format!("cannot attach the XDP classifier: {e}"))?;
    let n = ports.iter().map(|p| p.queues).max().unwrap_or(1).max(1);
    let mut workers: Vec<WorkerSocks> = (0..n)
        .map(|_| WorkerSocks {
            socks: Vec::new(),
            receives: Vec::new(),
        })
        .collect();
    let mut base = 0u32;
    for p in ports {
        classifier
            .set_if_base(p.ifindex, base)
            .map_err(|e| format!("{}: {e}", p.name))?;
        for (q, w) in (0..n).zip(workers.iter_mut()) {
            if q < p.queues {
                let s = XskSocket::open(&p.name, q, &UmemConfig::default()).map_err(|e| {
                    format!("{}: cannot open an AF_XDP socket on queue {q}: {e}", p.name)
                })?;
                classifier
                    .xsk_map_set(base + q, s.fd())
                    .map_err(|e| format!("{} queue {q}: {e}", p.name))?;
                w.socks.push(Sock::Xsk(Box::new(s)));
                w.receives.push(true);
            } else {
                let s = PacketSocket::open_tx_only(&p.name, &PacketConfig::default())
                    .map_err(|e| format!("{}: {e}", p.name))?;
                w.socks.push(Sock::Packet(Box::new(s)));
                w.receives.push(false);
            }
        }
        base += p.queues;
    }
    Ok((Filter::Xdp(Box::new(classifier)), workers))
}

/// Install the nftables table and open the AF_PACKET
/// sockets: one per port and worker, the workers of a port in one fanout
/// group.
fn open_packet(ports: &[Port]) -> Result<(Filter, Vec<WorkerSocks>), String> {
    let table = NftTable::install(
        ports
            .iter()
            .map(|p| NftInterface {
                name: p.name.clone(),
                ifindex: p.ifindex,
            })
            .collect(),
    )
    .map_err(|e| e.to_string())?;
    let n = ports.iter().map(|p| p.queues).max().unwrap_or(1).max(1);
    let mut workers: Vec<WorkerSocks> = (0..n)
        .map(|_| WorkerSocks {
            socks: Vec::new(),
            receives: Vec::new(),
        })
        .collect();
    for p in ports {
        let mut group = None;
        for w in workers.iter_mut() {
            // Buffers that hold a 64 KiB TCP super-frame (a local sender's
            // TSO reaches AF_PACKET whole): cut by the worker.
            // cut by the worker into the sender's segment size, which the
            // vnet header tells.
            let rx_cfg = PacketConfig {
                buf_size: PacketConfig::default().headroom + rvs_io::packet::SUPER_FRAME_MAX,
                vnet_hdr: true,
                ..PacketConfig::default()
            };
            let mut s =
                PacketSocket::open(&p.name, &rx_cfg).map_err(|e| format!("{}: {e}", p.name))?;
            if n > 1 {
                group = Some(
                    s.join_fanout(group)
                        .map_err(|e| format!("{}: {e}", p.name))?,
                );
            }
            w.socks.push(Sock::Packet(Box::new(s)));
            w.receives.push(true);
        }
    }
    Ok((Filter::Nft(table), workers))
}

/// The interfaces the fast path may send to (it always redirects, also back
/// out of the ingress interface), and those to probe: in
/// generic (SKB) mode, redirects go through the kernel's
/// transmit path, and physical interfaces in native mode take redirected
/// frames; a virtual one (veth...) in native mode does only when its peer
/// is in NAPI mode (an XDP program or GRO on it): with `--fast-path all`
/// it is assumed, with `on` probed ([`Classifier::probe_redirect`]), now
/// and then every [`PROBE_INTERVAL`]; the first probes' answers are
/// returned (one per probed interface; where live-frames test runs are
/// refused, [`FastSync::first_probe`] watches real redirects instead).
fn fast_egress(
    c: &Classifier,
    ports: &[Port],
    mode: FastPathMode,
    mac_of: impl Fn(u32) -> Option<[u8; 6]>,
) -> (HashSet<u32>, Vec<Probed>, Vec<Result<bool, XdpError>>) {
    let mut set = HashSet::new();
    let mut probed = Vec::new();
    let mut answers = Vec::new();
    for p in ports {
        let skb = c
            .attachments()
            .iter()
            .any(|a| a.ifindex == p.ifindex && a.mode == AttachMode::Skb);
        if skb || mode == FastPathMode::All || !is_virtual(&p.name) {
            set.insert(p.ifindex);
            continue;
        }
        let Some(mac) = mac_of(p.ifindex) else {
            continue;
        };
        let pr = Probed {
            ifindex: p.ifindex,
            name: p.name.clone(),
            mac,
        };
        let answer = c.probe_redirect(&pr.name, pr.ifindex, pr.mac);
        if matches!(answer, Ok(true)) {
            set.insert(p.ifindex);
        }
        answers.push(answer);
        probed.push(pr);
    }
    (set, probed, answers)
}

/// How often the probed interfaces are probed again.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Whether `ifname` is a virtual device (`/sys/class/net/IF` points under
/// `/sys/devices/virtual`). Unknown counts as virtual.
fn is_virtual(ifname: &str) -> bool {
    std::fs::read_link(format!("/sys/class/net/{ifname}"))
        .map(|p| p.to_string_lossy().contains("/virtual/"))
        .unwrap_or(true)
}

/// The rvs-io form of an engine's flow key.
fn io_key(k: &rvs_core::fastpath::FlowKey) -> flowcache::FlowKey {
    flowcache::FlowKey {
        proto: k.proto,
        src: k.src,
        dst: k.dst,
        sport: k.sport,
        dport: k.dport,
    }
}

/// The rvs-io form of an engine's fast-path decision.
fn io_action(a: &FastAction) -> FlowAction {
    FlowAction {
        rewrite: match a.rewrite {
            FastRewrite::Dr => FlowRewrite::Dr,
            FastRewrite::Tun { src, dst } => FlowRewrite::Tun { src, dst },
            FastRewrite::NatIn { addr, port } => FlowRewrite::NatIn { addr, port },
            FastRewrite::NatOut { addr, port } => FlowRewrite::NatOut { addr, port },
        },
        ifindex: a.port.0,
        src_mac: a.src_mac.0,
        dst_mac: a.dst_mac.0,
        mtu: a.mtu,
        conn: a.conn.index(),
        cookie: 0,
    }
}

/// What the sync thread installed, and what of its traffic it credited.
#[derive(Debug, Clone, Copy)]
struct Installed {
    flow: FastFlow,
    /// Egress interface.
    ifindex: u32,
    packets: u64,
    bytes: u64,
    last_seen_ns: u64,
}

/// Consecutive probes that must disagree with what an interface is
/// thought to do before the fast path changes its mind: one probe lost
/// among a busy peer's traffic must not move every flow of the interface
/// to the engine and back.
const PROBE_FLIP: u8 = 2;

/// Whether a probed interface takes redirected XDP frames, as its probes
/// tell, with hysteresis ([`PROBE_FLIP`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProbeState {
    takes: bool,
    /// Consecutive probes that said otherwise.
    against: u8,
}

impl ProbeState {
    /// Starting from the first probe's answer.
    fn new(takes: bool) -> ProbeState {
        ProbeState { takes, against: 0 }
    }

    /// Take one probe's answer (`None`: the probe failed, which tells
    /// nothing and changes nothing). Returns the new answer when it flips.
    fn observe(&mut self, answer: Option<bool>) -> Option<bool> {
        let a = answer?;
        if a == self.takes {
            self.against = 0;
            return None;
        }
        self.against = self.against.saturating_add(1);
        if self.against < PROBE_FLIP {
            return None;
        }
        self.takes = a;
        self.against = 0;
        Some(a)
    }
}

/// How the fast path decides whether a probed interface takes redirected
/// XDP frames.
#[derive(Debug)]
enum ProbeHow {
    /// Live-frames probes ([`Classifier::probe_redirect`]) every
    /// [`PROBE_INTERVAL`], with hysteresis.
    Live(ProbeState),
    /// The host refuses live-frames test runs (`refused` says how): the
    /// fast path's own redirects there are watched, every
    /// [`PROBE_INTERVAL`] ([`rvs_io::redirwatch`]).
    Watch {
        watch: RedirectWatch,
        refused: String,
    },
}

/// A probed interface's state, one per [`DpShared::fast_probed`].
#[derive(Debug)]
struct Probe {
    how: ProbeHow,
    /// The last probe or reading failed: why.
    failed: Option<String>,
    /// Live frames refused and its redirects cannot be watched either:
    /// no longer probed (off, `failed` says why).
    given_up: bool,
}

impl Probe {
    fn live(takes: bool) -> Probe {
        Probe {
            how: ProbeHow::Live(ProbeState::new(takes)),
            failed: None,
            given_up: false,
        }
    }

    fn watching(&self) -> bool {
        matches!(self.how, ProbeHow::Watch { .. })
    }

    /// Where it stands and why, for `rvs dataplane`: `NAME: on|off|trial: …`.
    fn why(&self, name: &str, now: Instant) -> String {
        let mut s = match &self.how {
            ProbeHow::Live(st) if st.takes => format!(
                "{name}: on: probe frames redirected out of it reach its peer \
                 (in NAPI mode); probed every second"
            ),
            ProbeHow::Live(_) if self.given_up => format!("{name}: off"),
            ProbeHow::Live(_) => format!(
                "{name}: off: probe frames redirected out of it are refused whole: its \
                 peer is not in NAPI mode (no XDP program or GRO on it); probed every second"
            ),
            ProbeHow::Watch { watch, refused } => format!(
                "{name}: {}; {refused}, so deciding by watching real redirects",
                watch.describe(now)
            ),
        };
        if let Some(e) = &self.failed {
            s.push_str(&format!("; last probe failed: {e}"));
        }
        s
    }
}

/// One round's reading of a probed interface.
#[derive(Debug)]
enum ProbeInput {
    /// Not probed this round.
    Skip,
    /// A live-frames probe's answer.
    Live(Result<bool, XdpError>),
    /// The watch's readings.
    Watch(Result<Sample, String>),
}

/// Start watching the redirects to `p` ([`rvs_io::redirwatch`]): counted
/// from now on, gated (a trial).
fn start_watch(cache: &mut FlowCache, p: &Probed) -> Result<RedirectWatch, String> {
    cache
        .watch(p.ifindex, Gate::Budget(0))
        .map_err(|e| e.to_string())?;
    let watch = cache
        .watch_counts(p.ifindex)
        .map_err(|e| e.to_string())?
        .ok_or("not watched")?;
    let counters = rvs_io::xdp::xdp_xmit_counters(&p.name).map_err(|e| e.to_string())?;
    let (w, gate) = RedirectWatch::new(Sample { watch, counters });
    cache.set_gate(p.ifindex, gate).map_err(|e| e.to_string())?;
    Ok(w)
}

/// What the fast path did since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct FastTotals {
    installs: u64,
    removals: u64,
    evictions: u64,
    /// Credited packets and bytes.
    packets: u64,
    bytes: u64,
}

/// The fast path's bookkeeping: what is in the cache, what of its traffic
/// was credited, where it may send.
#[derive(Debug)]
struct FastSync {
    mode: FastPathMode,
    /// The interfaces it may send to (ifindex).
    egress: HashSet<u32>,
    /// One per [`DpShared::fast_probed`], in order.
    probes: Vec<Probe>,
    /// Watched interfaces (live frames refused): their flows are cached
    /// whether they take redirects or not, their gates decide
    /// ([`rvs_io::flowcache::Gate`]).
    watched: HashSet<u32>,
    installed: HashMap<flowcache::FlowKey, Installed>,
    ops: Vec<FastPathOp>,
    entries: Vec<FlowEntry>,
    totals: FastTotals,
    errors_logged: u32,
}

/// Errors logged by the fast path's sync, at most (then silence).
const FAST_ERRORS_LOGGED: u32 = 10;

impl FastSync {
    fn new(mode: FastPathMode, egress: HashSet<u32>, probes: Vec<Probe>) -> FastSync {
        FastSync {
            mode,
            egress,
            probes,
            watched: HashSet::new(),
            installed: HashMap::new(),
            ops: Vec::new(),
            entries: Vec::new(),
            totals: FastTotals::default(),
            errors_logged: 0,
        }
    }

    fn log(&mut self, msg: std::fmt::Arguments<'_>) {
        if self.errors_logged < FAST_ERRORS_LOGGED {
            self.errors_logged += 1;
            eprintln!("rvsd: fast path: {msg}");
        }
    }

    /// The counters `rvs dataplane` shows.
    fn counters(
        &self,
        ports: &[Port],
        probed: &[Probed],
        stats: Option<&flowcache::FastPathStats>,
    ) -> FastPathCounters {
        let s = stats.copied().unwrap_or_default();
        let t = &self.totals;
        FastPathCounters {
            mode: self.mode.name().into(),
            egress: ports
                .iter()
                .filter(|p| self.egress.contains(&p.ifindex))
                .map(|p| p.name.clone())
                .collect(),
            probed: probed.iter().map(|p| p.name.clone()).collect(),
            why: probed
                .iter()
                .zip(&self.probes)
                .map(|(p, pr)| pr.why(&p.name, Instant::now()))
                .collect(),
            entries: self.installed.len() as u64,
            installs: t.installs,
            removals: t.removals,
            evictions: t.evictions,
            packets: t.packets,
            bytes: t.bytes,
            hits: s.hits,
            misses: s.misses,
            skipped: s.skipped,
            too_big: s.too_big,
            ttl: s.ttl,
            errors: s.errors,
            csum_completed: s.csum_completed,
            csum_slow: s.csum_slow,
        }
    }

    /// The state of probed interface `p` from its first probe's `answer`;
    /// where live-frames test runs are refused, its redirects are watched
    /// instead. Failures are logged.
    fn first_probe(
        &mut self,
        cache: &mut FlowCache,
        p: &Probed,
        answer: Result<bool, XdpError>,
    ) -> Probe {
        match answer {
            Ok(takes) => Probe::live(takes),
            Err(XdpError::LiveFramesRefused { detail, .. }) => self.watch_probe(cache, p, detail),
            Err(e) => {
                eprintln!(
                    "rvsd: fast path: {}: redirect probe failed: {e}; the fast path does \
                     not send there (probed again every second)",
                    p.name
                );
                Probe {
                    failed: Some(e.to_string()),
                    ..Probe::live(false)
                }
            }
        }
    }

    /// Live frames are refused (`refused`): watch `p`'s real redirects.
    fn watch_probe(&mut self, cache: &mut FlowCache, p: &Probed, refused: String) -> Probe {
        match start_watch(cache, p) {
            Ok(watch) => {
                eprintln!(
                    "rvsd: fast path: {}: {refused}; deciding by watching real redirects \
                     (trials of {} frame(s), retried after 1 s doubling to 60 s while lost)",
                    p.name,
                    rvs_io::redirwatch::TRIAL_BUDGET
                );
                self.watched.insert(p.ifindex);
                Probe {
                    how: ProbeHow::Watch { watch, refused },
                    failed: None,
                    given_up: false,
                }
            }
            Err(e) => {
                eprintln!(
                    "rvsd: fast path: {}: {refused}, and its redirects cannot be watched \
                     ({e}): the fast path does not send there",
                    p.name
                );
                Probe {
                    failed: Some(format!("{refused}; cannot watch its redirects: {e}")),
                    given_up: true,
                    ..Probe::live(false)
                }
            }
        }
    }

    /// Take the probes' readings (one per probed interface): an interface
    /// whose answer flips gains or loses the fast path.
    #[allow(clippy::too_many_arguments)]
    fn apply_probes(
        &mut self,
        probed: &[Probed],
        inputs: Vec<ProbeInput>,
        cache: &mut FlowCache,
        engine: &mut Engine,
        now: rvs_core::Instant,
        mono: u64,
        wall: Instant,
    ) {
        for (i, (p, input)) in probed.iter().zip(inputs).enumerate() {
            if i >= self.probes.len() {
                break;
            }
            let flip = match input {
                ProbeInput::Skip => None,
                ProbeInput::Live(Err(XdpError::LiveFramesRefused { detail, .. })) => {
                    // Its entries have no watch slot: gone, cached again
                    // (with one) at their next packet.
                    self.egress.remove(&p.ifindex);
                    self.remove_towards(cache, engine, p.ifindex, now, mono);
                    let probe = self.watch_probe(cache, p, detail);
                    self.probes[i] = probe;
                    engine.fast_path_forget_all();
                    continue;
                }
                ProbeInput::Live(answer) => {
                    let pr = &mut self.probes[i];
                    let answer = match answer {
                        Ok(a) => {
                            pr.failed = None;
                            Some(a)
                        }
                        Err(e) => {
                            pr.failed = Some(e.to_string());
                            None
                        }
                    };
                    match &mut pr.how {
                        ProbeHow::Live(st) => st.observe(answer),
                        ProbeHow::Watch { .. } => None,
                    }
                }
                ProbeInput::Watch(reading) => {
                    let pr = &mut self.probes[i];
                    let ProbeHow::Watch { watch, .. } = &mut pr.how else {
                        continue;
                    };
                    match reading {
                        Ok(sample) => {
                            pr.failed = None;
                            let step = watch.round(sample, wall);
                            if let Some(g) = step.gate
                                && let Err(e) = cache.set_gate(p.ifindex, g)
                            {
                                pr.failed = Some(format!("cannot set its gate: {e}"));
                            }
                            step.flip
                        }
                        Err(e) => {
                            pr.failed = Some(e);
                            None
                        }
                    }
                }
            };
            let watched = self.probes[i].watching();
            match flip {
                Some(true) => {
                    eprintln!(
                        "rvsd: fast path: {} takes redirected XDP frames now{}",
                        p.name,
                        if watched {
                            " (real redirects reached its peer)"
                        } else {
                            ""
                        }
                    );
                    self.egress.insert(p.ifindex);
                    if !watched {
                        // Flows the engine thought cached but that were not
                        // (their egress was left out): cached at their next
                        // packet.
                        engine.fast_path_forget_all();
                    }
                }
                Some(false) => {
                    eprintln!(
                        "rvsd: fast path: {} no longer takes redirected XDP frames{}: \
                         its flows go through the engine",
                        p.name,
                        if watched {
                            " (real redirects left its xdp_xmit counters still)"
                        } else {
                            ""
                        }
                    );
                    self.egress.remove(&p.ifindex);
                    if !watched {
                        self.remove_towards(cache, engine, p.ifindex, now, mono);
                    }
                }
                None => {}
            }
        }
    }

    /// The watched interfaces (ifindex) in a trial.
    fn trials(&self, probed: &[Probed]) -> Vec<u32> {
        probed
            .iter()
            .zip(&self.probes)
            .filter(|(_, pr)| {
                matches!(&pr.how, ProbeHow::Watch { watch, .. }
                    if watch.phase() == rvs_io::redirwatch::Phase::Trial)
            })
            .map(|(p, _)| p.ifindex)
            .collect()
    }

    /// Remove the entries that send to `ifindex`.
    fn remove_towards(
        &mut self,
        cache: &mut FlowCache,
        engine: &mut Engine,
        ifindex: u32,
        now: rvs_core::Instant,
        mono: u64,
    ) {
        let gone: Vec<flowcache::FlowKey> = self
            .installed
            .iter()
            .filter(|(_, e)| e.ifindex == ifindex)
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            self.remove(cache, engine, &k, now, mono);
        }
    }

    /// Apply the engine's queued work to the cache (the caller holds the
    /// state lock, so the engine and the cache move together).
    fn apply_ops(
        &mut self,
        cache: &mut FlowCache,
        engine: &mut Engine,
        now: rvs_core::Instant,
        mono: u64,
    ) {
        engine.take_fast_path_ops(&mut self.ops);
        let mut ops = std::mem::take(&mut self.ops);
        for op in ops.drain(..) {
            match op {
                FastPathOp::Install(flow, action) => {
                    let port = action.port.0;
                    if !self.egress.contains(&port) && !self.watched.contains(&port) {
                        continue;
                    }
                    self.install(cache, engine, flow, &action, now, mono);
                }
                FastPathOp::Remove(flow) => {
                    self.remove(cache, engine, &io_key(&flow.key), now, mono)
                }
                FastPathOp::RemoveAll => {
                    let keys: Vec<flowcache::FlowKey> = self.installed.keys().copied().collect();
                    for k in keys {
                        self.remove(cache, engine, &k, now, mono);
                    }
                }
            }
        }
        self.ops = ops;
    }

    fn install(
        &mut self,
        cache: &mut FlowCache,
        engine: &mut Engine,
        flow: FastFlow,
        action: &FastAction,
        now: rvs_core::Instant,
        mono: u64,
    ) {
        let key = io_key(&flow.key);
        match cache.replace(&key, &io_action(action)) {
            Ok(old) => {
                if let (Some(old), Some(prev)) = (old, self.installed.get(&key).copied()) {
                    self.credit(engine, &prev, &old, now, mono);
                }
                self.totals.installs += 1;
                self.installed.insert(
                    key,
                    Installed {
                        flow,
                        ifindex: action.port.0,
                        packets: 0,
                        bytes: 0,
                        last_seen_ns: 0,
                    },
                );
            }
            Err(e) => self.log(format_args!("cannot cache {key:?}: {e}")),
        }
    }

    fn remove(
        &mut self,
        cache: &mut FlowCache,
        engine: &mut Engine,
        key: &flowcache::FlowKey,
        now: rvs_core::Instant,
        mono: u64,
    ) {
        let Some(prev) = self.installed.remove(key) else {
            return;
        };
        match cache.remove(key) {
            Ok(Some(last)) => {
                self.totals.removals += 1;
                self.credit(engine, &prev, &last, now, mono);
            }
            // Evicted: what it counted since the last read is lost.
            Ok(None) => self.totals.evictions += 1,
            Err(e) => self.log(format_args!("cannot remove {key:?}: {e}")),
        }
    }

    /// Credit every entry's traffic since the last read. An installed
    /// entry the cache no longer has was evicted: forgotten here (its flow
    /// goes through the engine), counted.
    fn credit_all(
        &mut self,
        cache: &FlowCache,
        engine: &mut Engine,
        now: rvs_core::Instant,
        mono: u64,
    ) {
        if self.installed.is_empty() {
            return;
        }
        let mut entries = std::mem::take(&mut self.entries);
        if let Err(e) = cache.counters(&mut entries) {
            self.log(format_args!("cannot read the counters: {e}"));
            self.entries = entries;
            return;
        }
        let mut found = 0usize;
        for e in &entries {
            if let Some(prev) = self.installed.get(&e.key).copied() {
                found += 1;
                self.credit(engine, &prev, &e.counters, now, mono);
                if let Some(p) = self.installed.get_mut(&e.key) {
                    p.packets = e.counters.packets;
                    p.bytes = e.counters.bytes;
                    p.last_seen_ns = e.counters.last_seen_ns;
                }
            }
        }
        // Only rvsd adds or removes entries, under this lock (the XDP
        // program never does), so one missing from a complete read was
        // evicted.
        if found < self.installed.len() {
            let present: HashSet<flowcache::FlowKey> = entries.iter().map(|e| e.key).collect();
            let before = self.installed.len();
            self.installed.retain(|k, _| present.contains(k));
            self.totals.evictions += (before - self.installed.len()) as u64;
        }
        self.entries = entries;
    }

    /// Credit to the engine what `cur` holds beyond what `prev` says was
    /// credited already, and count it.
    fn credit(
        &mut self,
        engine: &mut Engine,
        prev: &Installed,
        cur: &FlowCounters,
        now: rvs_core::Instant,
        mono: u64,
    ) {
        if let Some((packets, bytes)) = credit(engine, prev, cur, now, mono) {
            self.totals.packets += packets;
            self.totals.bytes += bytes;
        }
    }
}

/// Credit to the engine what `cur` holds beyond what `prev` says was
/// credited already; the packets and bytes credited, if anything changed.
fn credit(
    engine: &mut Engine,
    prev: &Installed,
    cur: &FlowCounters,
    now: rvs_core::Instant,
    mono: u64,
) -> Option<(u64, u64)> {
    // Counters below the credited ones: the entry was replaced meanwhile.
    let (packets, bytes) = if cur.packets >= prev.packets {
        (
            cur.packets - prev.packets,
            cur.bytes.saturating_sub(prev.bytes),
        )
    } else {
        (cur.packets, cur.bytes)
    };
    if packets == 0 && cur.last_seen_ns == prev.last_seen_ns {
        return None;
    }
    let last_seen = (cur.last_seen_ns != 0).then(|| {
        let age_ms = mono.saturating_sub(cur.last_seen_ns) / 1_000_000;
        rvs_core::Instant::from_millis(now.as_millis().saturating_sub(age_ms))
    });
    engine.credit_fast_path(&prev.flow, packets, bytes, last_seen);
    Some((packets, bytes))
}

/// One round's readings of the probed interfaces (without the state lock:
/// the workers go on meanwhile): a live-frames probe each, or for those
/// watched (live frames refused), the fast path's counts of its redirects
/// there (with the filter lock) and then the veth's xdp_xmit counters
/// (without), read again after a moment when redirects were counted and
/// the counters did not move (the kernel sends a redirected frame at the
/// end of its poll, after the count).
fn probe_inputs(dp: &DpShared) -> Vec<ProbeInput> {
    let (watching, skip): (Vec<bool>, Vec<bool>) = match dp.fast() {
        Some(f) => f
            .probes
            .iter()
            .map(|pr| (pr.watching(), pr.given_up))
            .unzip(),
        None => return Vec::new(),
    };
    let n = dp.fast_probed.len().min(watching.len());
    let mut inputs: Vec<ProbeInput> = (0..n).map(|_| ProbeInput::Skip).collect();
    let mut counts = vec![None; n];
    if let Some(Filter::Xdp(c)) = &*dp.filter() {
        for (i, p) in dp.fast_probed.iter().take(n).enumerate() {
            if skip[i] {
                continue;
            }
            if watching[i] {
                counts[i] = Some(
                    c.flow_cache()
                        .watch_counts(p.ifindex)
                        .map_err(|e| e.to_string()),
                );
            } else {
                inputs[i] = ProbeInput::Live(c.probe_redirect(&p.name, p.ifindex, p.mac));
            }
        }
    }
    let read = |i: usize, p: &Probed| -> Option<Result<Sample, String>> {
        let watch = match counts[i].clone()? {
            Ok(Some(w)) => w,
            Ok(None) => return Some(Err("not watched".into())),
            Err(e) => return Some(Err(format!("reading its redirect counts: {e}"))),
        };
        Some(
            rvs_io::xdp::xdp_xmit_counters(&p.name)
                .map(|counters| Sample { watch, counters })
                .map_err(|e| e.to_string()),
        )
    };
    let mut settle = Vec::new();
    for (i, p) in dp.fast_probed.iter().take(n).enumerate() {
        if let Some(r) = read(i, p) {
            if let Ok(s) = &r
                && let Some(f) = dp.fast()
                && let Some(Probe {
                    how: ProbeHow::Watch { watch, .. },
                    ..
                }) = f.probes.get(i)
                && watch.settle_wanted(s)
            {
                settle.push(i);
            }
            inputs[i] = ProbeInput::Watch(r);
        }
    }
    if !settle.is_empty() {
        std::thread::sleep(WATCH_SETTLE);
        for i in settle {
            if let Some(r) = read(i, &dp.fast_probed[i]) {
                inputs[i] = ProbeInput::Watch(r);
            }
        }
    }
    inputs
}

/// Whether the trial budget of one of `trials` (watched interfaces) is
/// spent: its frame redirected, the answer can be read now rather than at
/// the next [`PROBE_INTERVAL`].
fn trial_spent(dp: &DpShared, trials: &[u32]) -> bool {
    let filter = dp.filter();
    let Some(Filter::Xdp(c)) = &*filter else {
        return false;
    };
    trials.iter().any(|&i| {
        matches!(
            c.flow_cache().watch_counts(i),
            Ok(Some(w)) if w.budget_left.is_some_and(|b| b <= 0)
        )
    })
}

/// How often the sync thread looks whether a trial's frame went
/// ([`trial_spent`]).
const TRIAL_CHECK_INTERVAL: Duration = Duration::from_millis(5);

/// How long [`probe_inputs`] waits before reading a veth's counters again.
const WATCH_SETTLE: Duration = Duration::from_millis(5);

/// The sync thread's memory: what it last put into the filter and engine.
#[derive(Debug, Default)]
struct Sync {
    config_gen: Option<u64>,
    /// The last failure to put the table into the filter, and when it was:
    /// retried once a second, logged once per distinct reason.
    failed: Option<(String, Instant)>,
    resolver_gen: Option<u64>,
    /// When the probed interfaces were last probed.
    last_probe: Option<Instant>,
    /// Watched interfaces in a trial as of the last round (ifindex): a
    /// spent trial budget brings the next round forward.
    trials: Vec<u32>,
    /// When their gates were last looked at.
    last_trial_check: Option<Instant>,
    /// The real servers of the table as of `config_gen`.
    dests: Vec<IpAddr>,
    /// When they were last asked of the resolver.
    last_dest_touch: Option<Instant>,
    /// When the wanted addresses were last looked up one by one.
    last_wanted_scan: Option<Instant>,
    /// The SYN guard's controller, and when it last stepped.
    syn_guard: crate::synguard::SynGuard,
    last_syn_step: Option<Instant>,
}

/// How often the sync thread looks up every address a worker is waiting
/// for (new hops come from [`Resolver::take_ready`] every round).
const WANTED_SCAN: Duration = Duration::from_millis(20);

/// The resolver forgets destinations nobody asked for during this long
/// (rvs-io's default, 300 s; `RVSD_RESOLVER_IDLE_SECS` shortens it for the
/// tests that check real servers are never forgotten).
fn resolver_idle() -> Duration {
    static IDLE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *IDLE.get_or_init(|| {
        let default = rvs_io::neigh::ResolverConfig::default().idle_timeout;
        match std::env::var("RVSD_RESOLVER_IDLE_SECS") {
            Ok(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => {
                    eprintln!(
                        "rvsd: RVSD_RESOLVER_IDLE_SECS={v:?} is not a number of seconds; \
                         using {}",
                        default.as_secs()
                    );
                    default
                }
            },
            Err(_) => default,
        }
    })
}

/// How often the sync thread asks the resolver for every real server: a
/// fifth of its idle timeout, at most a minute. The engine keeps its own
/// copy of their hops, so the packet path never asks, and without this the
/// resolver forgot them 5-10 minutes after the last change and stopped
/// following their neighbours (a real server's new MAC or route went
/// unseen).
fn dest_touch_interval() -> Duration {
    (resolver_idle() / 5).min(Duration::from_secs(60))
}

impl Sync {
    /// Hops, ports and the filter in step with the resolver and the table;
    /// the fast path's cache in step with the engine.
    fn run_once(&mut self, dp: &DpShared, shared: &Shared) {
        self.sync(dp, shared);
        self.fast(dp, shared);
    }

    /// Probe the probed interfaces when due (without the state lock: the
    /// workers go on meanwhile), then apply the answers and the engine's
    /// queued fast-path work.
    fn fast(&mut self, dp: &DpShared, shared: &Shared) {
        if dp.fast.is_none() {
            return;
        }
        let mut probe_due = !dp.fast_probed.is_empty()
            && self
                .last_probe
                .is_none_or(|t| t.elapsed() >= PROBE_INTERVAL);
        if !probe_due
            && !self.trials.is_empty()
            && self
                .last_trial_check
                .is_none_or(|t| t.elapsed() >= TRIAL_CHECK_INTERVAL)
        {
            self.last_trial_check = Some(Instant::now());
            probe_due = trial_spent(dp, &self.trials);
        }
        let mut inputs = Vec::new();
        if probe_due {
            self.last_probe = Some(Instant::now());
            inputs = probe_inputs(dp);
        }
        let mut state = shared.lock();
        let engine = state.engine_mut();
        let Some(mut fast) = dp.fast() else {
            return;
        };
        engine.take_fast_path_ops(&mut fast.ops);
        if fast.ops.is_empty() && inputs.is_empty() {
            return;
        }
        let mut filter = dp.filter();
        let Some(Filter::Xdp(c)) = &mut *filter else {
            fast.ops.clear();
            return;
        };
        let now = shared.clock().now();
        let mono = flowcache::monotonic_now_ns();
        let cache = c.flow_cache_mut();
        if !inputs.is_empty() {
            let wall = Instant::now();
            fast.apply_probes(&dp.fast_probed, inputs, cache, engine, now, mono, wall);
            self.trials = fast.trials(&dp.fast_probed);
        }
        fast.apply_ops(cache, engine, now, mono);
    }

    /// Hops, ports and the filter in step with the resolver and the table.
    fn sync(&mut self, dp: &DpShared, shared: &Shared) {
        let wall = Instant::now();
        if self
            .last_syn_step
            .is_none_or(|t| wall.duration_since(t) >= crate::synguard::INTERVAL)
        {
            self.last_syn_step = Some(wall);
            self.guard_syns(dp);
        }
        if self
            .last_dest_touch
            .is_none_or(|t| wall.duration_since(t) >= dest_touch_interval())
        {
            self.last_dest_touch = Some(wall);
            for &d in &self.dests {
                let _ = dp.resolver.lookup(d);
            }
        }
        let rgen = dp.resolver.generation();
        let resolver_changed = self.resolver_gen != Some(rgen);
        // Hops that became ready since the last round (a flood of spoofed
        // sources makes thousands a second: each is copied once, not the
        // whole table each time). The addresses still wanted are looked up
        // too, less often: one may have been ready before it was asked for.
        let mut found = dp.resolver.take_ready();
        if !resolver_changed
            && self
                .last_wanted_scan
                .is_none_or(|t| wall.duration_since(t) >= WANTED_SCAN)
        {
            self.last_wanted_scan = Some(wall);
            for a in dp.wanted().iter() {
                if let Some(h) = dp.resolver.lookup(*a) {
                    found.push((*a, h));
                }
            }
        }
        let mut state = shared.lock();
        // Hops the engine pruned (addresses nothing needs any more): the
        // resolver stops tracking them too, so neither grows without bound.
        for a in state.engine_mut().take_pruned_hops() {
            dp.resolver.forget(a);
        }
        let cgen = state.generation();
        if found.is_empty() && !resolver_changed && self.config_gen == Some(cgen) {
            return;
        }
        let engine = state.engine_mut();
        if !found.is_empty() {
            let mut wanted = dp.wanted();
            for (a, h) in &found {
                engine.set_hop(*a, hop_of(h));
                wanted.remove(a);
            }
        }
        if resolver_changed {
            self.resolver_gen = Some(rgen);
            let mut wanted = dp.wanted();
            for (a, h) in dp.resolver.hops() {
                engine.set_hop(a, hop_of(&h));
                wanted.remove(&a);
            }
            for p in &dp.ports {
                if let Some(cfg) = port_config(&dp.resolver, p.ifindex) {
                    engine.set_port(PortId(p.ifindex), cfg);
                }
            }
        }
        if self.config_gen != Some(cgen) {
            if let Some((_, at)) = &self.failed
                && wall.duration_since(*at) < SYNC_RETRY
            {
                return;
            }
            let set = class_set(engine);
            drop(state);
            self.dests = set.dests.to_vec();
            // Start resolving real servers now, before their first packet.
            {
                let mut wanted = dp.wanted();
                for &d in &set.dests {
                    if dp.resolver.lookup(d).is_none() {
                        wanted.insert(d);
                    }
                }
            }
            let errors = put_into_filter(&mut dp.filter(), &set);
            if errors.is_empty() {
                if let Some((why, _)) = self.failed.take() {
                    eprintln!(
                        "rvsd: data plane: the filter holds the table again \
                         (generation {cgen}; it failed with: {why})"
                    );
                }
                self.config_gen = Some(cgen);
                shared.mark_synced(cgen);
            } else {
                // Not acknowledged: rvsadm's change fails with this reason
                // ([`Shared::wait_synced`]); retried until it takes.
                let why = errors.join("; ");
                if self.failed.as_ref().is_none_or(|(w, _)| *w != why) {
                    eprintln!(
                        "rvsd: data plane: cannot put table generation {cgen} into the \
                         filter: {why} (retrying every {} s)",
                        SYNC_RETRY.as_secs()
                    );
                }
                shared.sync_failed(cgen, why.clone());
                self.failed = Some((why, wall));
            }
        }
    }
}

impl Sync {
    /// Step the SYN guard ([`crate::synguard`]) with the rings' drops and
    /// the classifier's counters; tell the classifier when the share to
    /// shed changes (XDP only: AF_PACKET has no ring in front of rvsd to
    /// keep from overflowing).
    fn guard_syns(&mut self, dp: &DpShared) {
        let mut filter = dp.filter();
        let Some(Filter::Xdp(c)) = &mut *filter else {
            return;
        };
        let Ok(stats) = c.stats() else {
            return;
        };
        let ring_drops = dp
            .workers
            .iter()
            .map(|w| w.kernel_drops.load(Ordering::Relaxed))
            .sum();
        let before = self.syn_guard.shed();
        let shed = self.syn_guard.step(crate::synguard::Reading {
            ring_drops,
            redirected: stats.redirected,
            syns: stats.syns,
            shed: stats.syn_shed,
        });
        if shed != before {
            if let Err(e) = c.set_syn_shed(shed) {
                eprintln!("rvsd: data plane: SYN guard: {e}");
                return;
            }
            let permille = (shed * 1000.0).round() as u32;
            let was = dp.syn_shed_permille.swap(permille, Ordering::Relaxed);
            if (was == 0) != (permille == 0) {
                eprintln!(
                    "rvsd: data plane: SYN guard {}",
                    if permille == 0 {
                        "off: the slow path keeps up again".to_string()
                    } else {
                        format!(
                            "on: the slow path's rings overflow under a SYN flood; \
                             shedding {:.1}% of new TCP connections' SYNs",
                            shed * 100.0
                        )
                    }
                );
            }
        }
    }
}

/// How often the sync thread retries a table the filter refused.
const SYNC_RETRY: Duration = Duration::from_secs(1);

/// Make the filter claim `set`: every failure, described.
fn put_into_filter(filter: &mut Option<Filter>, set: &ClassSet) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(port) = injected_sync_failure()
        && set.services.iter().any(|k| k.port == port)
    {
        errors.push(format!(
            "refusing a service on port {port} (RVSD_INJECT_SYNC_FAIL, a test hook)"
        ));
        return errors;
    }
    match filter {
        Some(Filter::Xdp(c)) => {
            if let Err(e) = c.set_services(&set.services) {
                errors.push(format!("the service map: {e}"));
            }
            if let Err(e) = c.set_nat_sources(&set.nat) {
                errors.push(format!("the NAT source map: {e}"));
            }
            if let Err(e) = c.set_fwmark_rules(&nft_claims(set)) {
                errors.push(format!("the fwmark maps: {e}"));
            }
        }
        Some(Filter::Nft(t)) => {
            let fwmark = nft_claims(set);
            let claims = Claims {
                services: &set.services,
                nat: &set.nat,
                fwmark: &fwmark,
            };
            if let Err(e) = t.set(&claims) {
                errors.push(format!("the nftables table: {e}"));
            }
        }
        None => {}
    }
    errors
}

/// `RVSD_INJECT_SYNC_FAIL=PORT`: the filter refuses every table with a
/// service on PORT (a test hook, like `RVSD_INJECT_PANIC`: the tests of a
/// data plane that cannot take a change need one that fails on demand).
fn injected_sync_failure() -> Option<u16> {
    static PORT: std::sync::OnceLock<Option<u16>> = std::sync::OnceLock::new();
    *PORT.get_or_init(|| {
        std::env::var("RVSD_INJECT_SYNC_FAIL")
            .ok()
            .and_then(|v| v.parse().ok())
    })
}

/// A frame to copy out of another socket after the batch.
struct Pending {
    sock: usize,
    bytes: Vec<u8>,
}

struct Worker {
    index: usize,
    socks: Vec<Sock>,
    receives: Vec<bool>,
    dp: Arc<DpShared>,
    counters: Arc<WorkerCounters>,
    /// Port index of each served ifindex.
    port_of_ifindex: std::collections::HashMap<u32, usize>,
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
    fn new(index: usize, socks: WorkerSocks, dp: Arc<DpShared>) -> Worker {
        let port_of_ifindex = dp
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| (p.ifindex, i))
            .collect();
        let counters = Arc::clone(&dp.workers[index]);
        Worker {
            index,
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

    fn run(&mut self, shared: &Shared) {
        let clock = shared.clock();
        let fds: Vec<RawFd> = self
            .socks
            .iter()
            .zip(&self.receives)
            .filter(|(_, r)| **r)
            .map(|(s, _)| s.fd())
            .collect();
        let mut dropped_seen = vec![0u64; self.socks.len()];
        let mut stats_at = Instant::now();
        while !shared.stopping() {
            if stats_at.elapsed() >= KERNEL_STATS_INTERVAL {
                stats_at = Instant::now();
                self.refresh_kernel_drops();
            }
            if let Err(e) = rvs_io::packet::wait_readable(&fds, IDLE_WAIT_MS) {
                eprintln!("rvsd: worker {}: {e}", self.index);
                std::thread::sleep(Duration::from_millis(IDLE_WAIT_MS as u64));
            }
            for si in 0..self.socks.len() {
                if self.receives[si] {
                    self.batch(si, shared, clock);
                }
            }
            if !self.held.is_empty() {
                self.release_held(shared, clock);
            }
            for (s, seen) in self.socks.iter_mut().zip(&mut dropped_seen) {
                if let Err(e) = s.flush() {
                    eprintln!("rvsd: worker {}: {} flush: {e}", self.index, s.ifname());
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
                eprintln!(
                    "rvsd: worker {}: {} queue {}: {:?}",
                    self.index,
                    x.ifname(),
                    x.queue(),
                    x.stats()
                );
            }
        }
    }

    /// One batch of socket `si` (the socket of port `si`).
    fn batch(&mut self, si: usize, shared: &Shared, clock: Clock) {
        let ingress = PortId(self.dp.ports[si].ifindex);
        let mut guard = None::<MutexGuard<'_, State>>;
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
        let res = self.socks[si].rx_batch(BATCH, |fb| {
            t.rx += 1;
            // Lock once per batch, and only when there is a frame.
            let state = guard.get_or_insert_with(|| shared.lock());
            let now = *now.get_or_insert_with(|| {
                csum_before = state.engine_mut().counters().csum_completed;
                let now = clock.now();
                // The fast-path work the previous batch queued, now that
                // its frames are sent: a flow's next packets go through XDP
                // without waiting for the sync thread, and never overtake
                // the packets the engine forwarded before.
                dp.apply_fast_ops(state.engine_mut(), now);
                now
            });
            let engine: &mut Engine = state.engine_mut();
            let (start, len) = (fb.start(), fb.len());
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
            let mut b = spare.pop().unwrap_or_default();
            b.clear();
            b.extend_from_slice(bytes);
            pending.push(Pending { sock: pi, bytes: b });
            Verdict::Done
        });
        if let Some(state) = guard.as_mut()
            && let Some(now) = now
        {
            self.cut_super_frames(state.engine_mut(), ingress, now, &mut t);
            self.release_fragments(state.engine_mut(), now, &mut t);
        }
        if let Some(state) = guard.as_mut() {
            t.csum_completed = state
                .engine_mut()
                .counters()
                .csum_completed
                .saturating_sub(csum_before);
        }
        drop(guard);
        if let Err(e) = res {
            eprintln!(
                "rvsd: worker {}: {} receive: {e}",
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

/// Released fragments are processed like held frames (their headroom is
/// the same, so that a NAT or tunnel rewrite finds room for a header).
use rvs_core::frag::HELD_HEADROOM;
const _: () = assert!(HELD_HEADROOM == held::HEADROOM);

/// The longest frame a served interface delivers unmerged: 1500-byte IP
/// packets, an Ethernet header and one VLAN tag. Longer ones are TCP
/// super-frames (a local sender's TSO, or GRO), which only AF_PACKET reads
/// (see the notes after [`Filter`]).
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

    /// Queue what the engine decided for a frame built in `buf` (at
    /// [`held::HEADROOM`], `len` bytes): a forwarded frame or a reply for
    /// its egress socket, a frame whose hop is unknown held (as waiting
    /// since `since`).
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
            if self.socks[p.sock].tx_copy(&p.bytes) {
                t.tx += 1;
            } else {
                t.tx_full += 1;
            }
            self.spare.push(p.bytes);
        }
    }

    /// Process again the held frames whose next hop is now known; drop
    /// those that waited too long.
    fn release_held(&mut self, shared: &Shared, clock: Clock) {
        let mut t = Tally::default();
        let mut state = shared.lock();
        let engine: &mut Engine = state.engine_mut();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_falls_back_to_packet() {
        let ok = || Ok::<u8, String>(1);
        let bad = || Err::<u8, String>("no AF_XDP".into());
        let bad2 = || Err::<u8, String>("no nft".into());
        let (b, _, why) = choose(IoMode::Auto, ok, bad2).unwrap();
        assert_eq!(b, Backend::Xdp);
        assert!(why.contains("auto"), "{why}");
        let (b, _, why) = choose(IoMode::Auto, bad, ok).unwrap();
        assert_eq!(b, Backend::Packet);
        assert!(why.contains("no AF_XDP"), "{why}");
        let e = choose(IoMode::Auto, bad, bad2).unwrap_err();
        assert!(
            e.contains("no AF_XDP") && e.contains("no nft") && e.contains("--io none"),
            "{e}"
        );
        // An explicit mode never falls back.
        assert_eq!(choose(IoMode::Xdp, bad, ok).unwrap_err(), "no AF_XDP");
        assert_eq!(choose(IoMode::Packet, ok, bad2).unwrap_err(), "no nft");
        assert_eq!(choose(IoMode::Packet, bad, ok).unwrap().0, Backend::Packet);
        assert!(choose(IoMode::None, ok, ok).is_err());
    }

    #[test]
    fn counters_add_up() {
        let c = WorkerCounters::default();
        let t = Tally {
            rx: 3,
            tx: 2,
            forwarded: 2,
            replies: 1,
            passed: 1,
            dropped: 4,
            need_hop: 5,
            tx_full: 6,
            no_port: 7,
            csum_completed: 8,
            segmented: 9,
        };
        c.add(&t);
        c.add(&t);
        let s = c.snapshot(1);
        assert_eq!(
            s,
            DataPlaneWorker {
                worker: 1,
                rx: 6,
                tx: 4,
                forwarded: 4,
                replies: 2,
                passed: 2,
                dropped: 8,
                need_hop: 10,
                tx_full: 12,
                no_port: 14,
                kernel_drops: 0,
                csum_completed: 16,
                segmented: 18,
            }
        );
    }

    #[test]
    fn tunnel_source_is_not_link_local() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(tunnel_source_v6(&[a("10.0.0.1"), a("fe80::1")]), None);
        assert_eq!(
            tunnel_source_v6(&[a("fe80::1"), a("10.0.0.1"), a("2001:db8::1"), a("fd00::1")]),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(tunnel_source_v6(&[]), None);
    }

    #[test]
    fn probe_answers_flip_after_two_in_a_row() {
        let mut st = ProbeState::new(true);
        // One "no" (a probe lost among a busy peer's traffic): no change.
        assert_eq!(st.observe(Some(false)), None);
        assert_eq!(st.observe(Some(true)), None);
        assert_eq!(st.observe(Some(false)), None);
        // A failed probe tells nothing: neither flips nor resets.
        assert_eq!(st.observe(None), None);
        assert_eq!(st.observe(Some(false)), Some(false));
        assert!(!st.takes);
        // And back, again after two in a row.
        assert_eq!(st.observe(Some(true)), None);
        assert_eq!(st.observe(Some(true)), Some(true));
        assert_eq!(st.observe(Some(true)), None);
        // Alternating answers never flip it.
        let mut st = ProbeState::new(false);
        for i in 0..10 {
            assert_eq!(st.observe(Some(i % 2 == 0)), None, "probe {i}");
        }
        assert!(!st.takes);
    }

    #[test]
    fn fast_path_counters_name_interfaces() {
        let port = |ifindex, name: &str| Port {
            ifindex,
            name: name.into(),
            queues: 1,
            mtu: 1500,
        };
        let ports = [port(4, "eth0"), port(5, "eth1"), port(6, "eth2")];
        let probed = [Probed {
            ifindex: 5,
            name: "eth1".into(),
            mac: [2, 0, 0, 0, 0, 1],
        }];
        let mut fs = FastSync::new(
            FastPathMode::On,
            [6, 4].into_iter().collect(),
            vec![Probe::live(false)],
        );
        fs.totals = FastTotals {
            installs: 3,
            removals: 1,
            evictions: 1,
            packets: 10,
            bytes: 1000,
        };
        let stats = flowcache::FastPathStats {
            hits: 11,
            misses: 2,
            ..flowcache::FastPathStats::default()
        };
        assert_eq!(
            fs.counters(&ports, &probed, Some(&stats)),
            FastPathCounters {
                mode: "on".into(),
                egress: vec!["eth0".into(), "eth2".into()],
                probed: vec!["eth1".into()],
                why: vec![
                    "eth1: off: probe frames redirected out of it are refused whole: its \
                     peer is not in NAPI mode (no XDP program or GRO on it); probed every second"
                        .into()
                ],
                entries: 0,
                installs: 3,
                removals: 1,
                evictions: 1,
                packets: 10,
                bytes: 1000,
                hits: 11,
                misses: 2,
                ..FastPathCounters::default()
            }
        );
        assert_eq!(fs.counters(&ports, &probed, None).hits, 0);
    }

    #[test]
    fn fwmark_rules_become_nft_matches() {
        use rvs_core::fwmark::FwmarkRule;
        use rvs_core::types::Protocol;
        let set = ClassSet {
            fwmark: vec![FwmarkRule {
                addr: "10.1.0.0".parse().unwrap(),
                prefix_len: 24,
                proto: Some(Protocol::Tcp),
                dports: vec![80],
                iif: Some(4),
                mark: 7,
            }],
            ..ClassSet::default()
        };
        assert_eq!(
            nft_claims(&set),
            vec![FwmarkMatch {
                addr: "10.1.0.0".parse().unwrap(),
                prefix_len: 24,
                proto: Some(6),
                dports: vec![80],
                iif: Some(4),
            }]
        );
    }
}
