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
//!   A frame the engine would [`Action::Pass`](rvs_core::Action::Pass) cannot be handed back from
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
//! the engine also queues [`FastPathOp`](rvs_core::fastpath::FastPathOp)s: the sync thread installs the
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

mod backend;
mod counters;
mod error;
mod fastsync;
mod probe;
mod sync;
mod worker;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use fastsync::EngineSet;
use rvs_core::Engine;
use rvs_core::engine::{PortConfig, PortId};

pub use crate::engines::EngineMode;
use rvs_io::flowcache;
use rvs_io::neigh::Resolver;
use rvs_proto::{ClassifierCounters, DataPlaneWorker, FastPathCounters, Reply};
use rvs_wire::EthernetAddress;

use crate::handler::State;
use crate::options::{FastPathMode, IoMode};
use crate::server::Shared;

use backend::{Filter, Port, WorkerSocks, choose, open_packet, open_xdp, ports_of};
pub use counters::WorkerCounters;
pub use error::{OpenError, SpawnError};
use fastsync::FastSync;
use probe::{Probed, fast_egress};
use sync::{Sync, resolver_idle};
use worker::Worker;

/// How often the sync thread looks for table and neighbour changes.
const SYNC_INTERVAL: Duration = Duration::from_millis(2);

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
    /// Why this packet I/O (`rvs dataplane` says it, as the log does).
    why: String,
}

impl DpShared {
    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Each worker's loop turns so far (the watchdog's sign of progress).
    pub fn heartbeats(&self) -> Vec<u64> {
        self.workers
            .iter()
            .map(|w| w.heartbeat.load(std::sync::atomic::Ordering::Relaxed))
            .collect()
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
    pub fn credit_fast_path(&self, engines: &crate::engines::Engines, now: rvs_core::Instant) {
        if self.fast.is_none() {
            return;
        }
        // Lock order: the replicas, the fast path, the filter.
        let mut guards = engines.lock_all();
        let mut list: Vec<&mut Engine> = guards.iter_mut().map(|g| &mut **g).collect();
        let mut set = EngineSet::new(&mut list, 0);
        let Some(mut fast) = self.fast() else {
            return;
        };
        let filter = self.filter();
        if let Some(Filter::Xdp(c)) = &*filter {
            fast.credit_all(c.flow_cache(), &mut set, now, flowcache::monotonic_now_ns());
        }
    }

    /// Apply the queued fast-path work (installs, removals) of `engine`,
    /// replica `replica`, to the cache now. A worker calls it at the start
    /// of each batch (the frames of the previous one sent), holding its
    /// replica's lock (lock order: replica, fast, filter), so that a flow's
    /// next packets are forwarded in XDP rather than after the sync
    /// thread's next turn: for short connections (a request per
    /// connection) that is most of their packets.
    pub fn apply_fast_ops(&self, engine: &mut Engine, replica: usize, now: rvs_core::Instant) {
        if !engine.has_fast_path_ops() {
            return;
        }
        let Some(mut fast) = self.fast() else {
            return;
        };
        let mut list = [engine];
        let mut set = EngineSet::new(&mut list, replica);
        let mut filter = self.filter();
        if let Some(Filter::Xdp(c)) = &mut *filter {
            fast.apply_ops(
                c.flow_cache_mut(),
                &mut set,
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
            io_why: Some(self.why.clone().into_boxed_str()),
        }
    }
}

/// The open data plane, not yet running.
#[derive(Debug)]
pub struct DataPlane {
    shared: Arc<DpShared>,
    workers: Vec<WorkerSocks>,
    why: String,
    engines: EngineMode,
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

impl DataPlane {
    /// Open the data plane of `mode` (not `None`) on `interfaces` and declare
    /// the interfaces to the engine of `state`. `Auto` tries XDP, then
    /// AF_PACKET, and says why in [`describe`](Self::describe).
    pub fn open(
        mode: IoMode,
        interfaces: &[String],
        fast: FastPathConfig,
        engines: EngineMode,
        state: &mut State,
    ) -> Result<DataPlane, OpenError> {
        let resolver = Resolver::start_with(rvs_io::neigh::ResolverConfig {
            idle_timeout: resolver_idle(),
            ..rvs_io::neigh::ResolverConfig::default()
        })
        .map_err(OpenError::Resolver)?;
        let ports = ports_of(&resolver, interfaces)?;
        let mut umem_note = None;
        let (backend, (mut filter, workers), mut why) = choose(
            mode,
            || open_xdp(&ports, fast.entries, &mut umem_note),
            || open_packet(&ports),
        )?;
        if let (Backend::Xdp, Some(note)) = (backend, umem_note) {
            why = format!("{why}; {note}");
        }
        let per_worker = engines == EngineMode::PerWorker && workers.len() > 1;
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
        state.engine().set_fast_path(fast_sync.is_some());
        if let Filter::Xdp(_) = &filter {
            // From now on a change the classifier's maps cannot hold is
            // refused before anything changes; the table loaded so far
            // (--rules) must fit too.
            state
                .engine()
                .set_claim_check(crate::classes::xdp_claim_check())
                .map_err(OpenError::ClaimCheck)?;
        }
        for p in &ports {
            let cfg = port_config(&resolver, p.ifindex)
                .ok_or_else(|| OpenError::UnknownInterface(p.name.clone()))?;
            state.engine().set_port(PortId(p.ifindex), cfg);
            if let Filter::Xdp(c) = &mut filter {
                // Frames addressed to other stations are not claimed.
                c.set_if_mac(p.ifindex, cfg.mac.0)
                    .map_err(|source| OpenError::Classifier {
                        name: p.name.clone(),
                        source,
                    })?;
            }
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
            why: why.clone(),
        });
        if per_worker {
            // One replica per worker, each with the ports just declared.
            state.replicate_engines(workers.len());
        }
        Ok(DataPlane {
            shared,
            workers,
            why,
            engines: if per_worker {
                EngineMode::PerWorker
            } else {
                EngineMode::Shared
            },
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
            "{} — {}; {}; {} worker thread(s), engine {}; {fast}",
            match self.shared.backend {
                Backend::Xdp => "AF_XDP",
                Backend::Packet => "AF_PACKET + nftables",
            },
            self.why,
            parts.join(", "),
            self.workers.len(),
            match self.engines {
                EngineMode::Shared => "shared",
                EngineMode::PerWorker => "per worker (frames steered by client address)",
            }
        )
    }

    /// Start the sync thread and the workers; they run until shutdown.
    pub fn spawn(self, shared: Arc<Shared>) -> Result<Running, SpawnError> {
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
            .map_err(SpawnError::Thread)?;
        threads.push(t);
        let engines = Arc::clone(shared.lock().engines());
        let n = self.workers.len();
        let owners = match self.engines {
            EngineMode::PerWorker => n,
            EngineMode::Shared => 1,
        };
        let mut inboxes = Vec::new();
        let mut peers = Vec::new();
        if owners > 1 {
            for _ in 0..n {
                let (tx, rx) = std::sync::mpsc::sync_channel(worker::HANDOFF_QUEUE);
                let wake = Arc::new(worker::Wake::new().map_err(SpawnError::Eventfd)?);
                peers.push((tx, Arc::clone(&wake)));
                inboxes.push(Some((rx, wake)));
            }
        }
        for (i, socks) in self.workers.into_iter().enumerate() {
            let dp = Arc::clone(&self.shared);
            let sh = Arc::clone(&shared);
            let (inbox, wake) = match inboxes.get_mut(i).and_then(Option::take) {
                Some((rx, wake)) => (Some(rx), wake),
                None => (
                    None,
                    Arc::new(worker::Wake::new().map_err(SpawnError::Eventfd)?),
                ),
            };
            let lane = worker::Lane {
                engines: Arc::clone(&engines),
                replica: if owners > 1 { i } else { 0 },
                owners,
                inbox,
                wake,
                peers: peers.clone(),
            };
            let t = std::thread::Builder::new()
                .name(format!("dp-worker-{i}"))
                .spawn(move || Worker::new(i, socks, dp, lane).run(&sh))
                .map_err(SpawnError::Thread)?;
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
                tracing::error!("a data plane thread panicked");
            }
        }
        for (i, w) in self.shared.workers.iter().enumerate() {
            let s = w.snapshot(i as u32);
            tracing::info!(
                worker = i,
                "worker {i}: rx {}, tx {}, forwarded {}, replies {}, passed {}, dropped {}, \
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
                Some(c) => tracing::info!(
                    "classifier: redirected {}, passed {}, no socket {}, malformed {}, \
                     fragments {} (claimed {})",
                    c.redirected,
                    c.passed,
                    c.no_socket,
                    c.malformed,
                    c.fragments,
                    c.fragments_claimed
                ),
                None => tracing::warn!("classifier counters unavailable"),
            }
        }
        let filter = self.shared.filter().take();
        match filter {
            Some(Filter::Nft(t)) => {
                if let Err(e) = t.remove() {
                    tracing::error!("cannot delete the nftables table: {e}");
                }
            }
            Some(Filter::Xdp(c)) => {
                if let Some(f) = self.shared.fast()
                    && let Ok(s) = c.flow_cache().stats()
                {
                    let t = &f.totals;
                    tracing::info!(
                        "fast path: hits {}, misses {}, skipped {}, too big {}, ttl {}, \
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
        tracing::info!(
            "data plane stopped ({passed_as}: {}, to unserved ports: {}, tx full: {})",
            total(|w| w.passed),
            total(|w| w.no_port),
            total(|w| w.tx_full)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
