//! The packet path of `--io xdp`: the XDP classifier on the served
//! interfaces, one AF_XDP socket per RX queue, and one worker thread that
//! runs the engine over what the sockets receive.
//!
//! The classifier redirects to the sockets only service traffic (TCP, UDP,
//! SCTP to a virtual address and port) and replies from NAT real servers;
//! everything else (ARP, the director's own traffic) stays with the kernel.
//! Fwmark services are not classified yet. A frame the engine would
//! [`Action::Pass`] cannot be handed back from AF_XDP: it is dropped and
//! counted ([`WorkerCounters::passed`]).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use rvs_core::engine::{Frame, Hop, PortConfig, PortId};
use rvs_core::{Action, Engine};
use rvs_io::neigh::{NextHop, Resolver};
use rvs_io::xdp::Classifier;
use rvs_io::xsk::{self, UmemConfig, Verdict, XskSocket};
use rvs_wire::EthernetAddress;

use crate::classes::class_set;
use crate::handler::State;
use crate::server::Shared;

/// Frames taken from one socket per batch.
const BATCH: usize = 64;
/// How long the worker sleeps without traffic, in milliseconds.
const IDLE_WAIT_MS: i32 = 10;

/// One served interface.
#[derive(Debug)]
struct Port {
    ifindex: u32,
    /// Indexes into [`DataPlane::socks`], one per RX queue, by queue.
    socks: Vec<usize>,
}

/// The open data plane: what the worker owns.
#[derive(Debug)]
pub struct DataPlane {
    resolver: Resolver,
    ports: Vec<Port>,
    socks: Vec<XskSocket>,
    /// The port of each socket (index into `ports`).
    sock_port: Vec<usize>,
    // Dropped after the sockets (fields drop in order): detaches XDP.
    classifier: Classifier,
}

/// What the worker counts beyond the engine's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerCounters {
    /// Frames the engine passed (dropped: AF_XDP cannot give them back).
    pub passed: u64,
    /// Frames the engine forwarded to a port rvsd does not serve.
    pub no_port: u64,
    /// Copies the TX ring of the egress socket had no room for.
    pub tx_full: u64,
}

fn port_config(resolver: &Resolver, ifindex: u32) -> Option<PortConfig> {
    let info = resolver.interface(ifindex)?;
    let addr_v4 = info.addrs.iter().find_map(|a| match a {
        IpAddr::V4(v) => Some(*v),
        IpAddr::V6(_) => None,
    });
    let addr_v6 = info.addrs.iter().find_map(|a| match a {
        IpAddr::V6(v) => Some(*v),
        IpAddr::V4(_) => None,
    });
    Some(PortConfig {
        mac: EthernetAddress(info.mac),
        mtu: u16::try_from(info.mtu).unwrap_or(u16::MAX),
        addr_v4,
        addr_v6,
    })
}

fn hop_of(h: &NextHop) -> Hop {
    Hop {
        port: PortId(h.ifindex),
        mac: EthernetAddress(h.neighbour_mac),
    }
}

impl DataPlane {
    /// Attach the classifier to `interfaces`, open a socket per RX queue,
    /// and declare the interfaces to the engine of `state`.
    pub fn open(interfaces: &[String], state: &mut State) -> Result<DataPlane, String> {
        let resolver =
            Resolver::start().map_err(|e| format!("cannot start the neighbour resolver: {e}"))?;
        let mut classifier = Classifier::attach(interfaces)
            .map_err(|e| format!("cannot attach the XDP classifier: {e}"))?;
        let mut ports = Vec::new();
        let mut socks = Vec::new();
        let mut sock_port = Vec::new();
        let mut base = 0u32;
        for name in interfaces {
            let info = resolver
                .interface_by_name(name)
                .ok_or_else(|| format!("{name}: interface not found by the resolver"))?;
            let ifindex = info.ifindex;
            let queues = XskSocket::queue_count(name)
                .map_err(|e| format!("{name}: cannot count RX queues: {e}"))?
                .max(1);
            classifier
                .set_if_base(ifindex, base)
                .map_err(|e| format!("{name}: {e}"))?;
            let mut port_socks = Vec::new();
            for q in 0..queues {
                let s = XskSocket::open(name, q, &UmemConfig::default()).map_err(|e| {
                    format!("{name}: cannot open an AF_XDP socket on queue {q}: {e}")
                })?;
                classifier
                    .xsk_map_set(base + q, s.fd())
                    .map_err(|e| format!("{name} queue {q}: {e}"))?;
                port_socks.push(socks.len());
                sock_port.push(ports.len());
                socks.push(s);
            }
            base += queues;
            let cfg = port_config(&resolver, ifindex)
                .ok_or_else(|| format!("{name}: interface not found by the resolver"))?;
            state.engine_mut().set_port(PortId(ifindex), cfg);
            ports.push(Port {
                ifindex,
                socks: port_socks,
            });
        }
        Ok(DataPlane {
            resolver,
            ports,
            socks,
            sock_port,
            classifier,
        })
    }

    /// A description for the log.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for a in self.classifier.attachments() {
            let q = self
                .ports
                .iter()
                .find(|p| p.ifindex == a.ifindex)
                .map_or(0, |p| p.socks.len());
            parts.push(format!("{} ({:?} mode, {q} queue(s))", a.iface, a.mode));
        }
        parts.join(", ")
    }

    /// Run the worker until shutdown.
    pub fn spawn(self, shared: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
        shared.set_dataplane_active();
        std::thread::Builder::new()
            .name("dataplane".into())
            .spawn(move || {
                let mut w = Worker::new(self);
                w.run(&shared);
            })
    }
}

/// A frame to copy out of another socket after the batch.
struct Pending {
    sock: usize,
    bytes: Vec<u8>,
}

struct Worker {
    dp: DataPlane,
    /// Socket index of each served ifindex's queue 0, by ifindex.
    port_of_ifindex: HashMap<u32, usize>,
    pending: Vec<Pending>,
    /// Spare buffers for `pending`.
    spare: Vec<Vec<u8>>,
    /// Addresses that needed a hop and have none yet.
    wanted: HashSet<IpAddr>,
    config_gen: Option<u64>,
    resolver_gen: Option<u64>,
    counters: WorkerCounters,
}

impl Worker {
    fn new(dp: DataPlane) -> Worker {
        let port_of_ifindex = dp
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| (p.ifindex, i))
            .collect();
        Worker {
            dp,
            port_of_ifindex,
            pending: Vec::new(),
            spare: Vec::new(),
            wanted: HashSet::new(),
            config_gen: None,
            resolver_gen: None,
            counters: WorkerCounters::default(),
        }
    }

    fn run(&mut self, shared: &Shared) {
        let clock = shared.clock();
        while !shared.stopping() {
            {
                let socks: Vec<&XskSocket> = self.dp.socks.iter().collect();
                if let Err(e) = xsk::wait_readable(&socks, IDLE_WAIT_MS) {
                    eprintln!("rvsd: data plane: poll: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(IDLE_WAIT_MS as u64));
                }
            }
            self.housekeeping(shared);
            for si in 0..self.dp.socks.len() {
                self.batch(si, shared, clock);
            }
            for s in &mut self.dp.socks {
                if let Err(e) = s.flush() {
                    eprintln!("rvsd: data plane: {} flush: {e}", s.ifname());
                }
            }
        }
        eprintln!(
            "rvsd: data plane stopped (passed to no one: {}, to unserved ports: {}, tx full: {})",
            self.counters.passed, self.counters.no_port, self.counters.tx_full
        );
        match self.dp.classifier.stats() {
            Ok(c) => eprintln!(
                "rvsd: classifier: redirected {}, passed {}, no socket {}, malformed {}, fragments {}",
                c.redirected, c.passed, c.no_socket, c.malformed, c.fragments
            ),
            Err(e) => eprintln!("rvsd: classifier counters unavailable: {e}"),
        }
    }

    /// Hops, ports and classifier maps in step with the resolver and the table.
    fn housekeeping(&mut self, shared: &Shared) {
        let rgen = self.dp.resolver.generation();
        let resolver_changed = self.resolver_gen != Some(rgen);
        let mut found = Vec::new();
        if !resolver_changed {
            for a in &self.wanted {
                if let Some(h) = self.dp.resolver.lookup(*a) {
                    found.push((*a, h));
                }
            }
        }
        let mut state = shared.lock();
        let cgen = state.generation();
        if found.is_empty() && !resolver_changed && self.config_gen == Some(cgen) {
            return;
        }
        let engine = state.engine_mut();
        for (a, h) in &found {
            engine.set_hop(*a, hop_of(h));
            self.wanted.remove(a);
        }
        if resolver_changed {
            self.resolver_gen = Some(rgen);
            for (a, h) in self.dp.resolver.hops() {
                engine.set_hop(a, hop_of(&h));
                self.wanted.remove(&a);
            }
            for p in &self.dp.ports {
                if let Some(cfg) = port_config(&self.dp.resolver, p.ifindex) {
                    engine.set_port(PortId(p.ifindex), cfg);
                }
            }
        }
        if self.config_gen != Some(cgen) {
            self.config_gen = Some(cgen);
            let set = class_set(engine);
            drop(state);
            // Start resolving real servers now, before their first packet.
            for &d in &set.dests {
                if self.dp.resolver.lookup(d).is_none() {
                    self.wanted.insert(d);
                }
            }
            if let Err(e) = self.dp.classifier.set_services(&set.services) {
                eprintln!("rvsd: data plane: cannot update the service map: {e}");
            }
            if let Err(e) = self.dp.classifier.set_nat_sources(&set.nat) {
                eprintln!("rvsd: data plane: cannot update the NAT source map: {e}");
            }
            shared.mark_synced(cgen);
        }
    }

    /// One batch of socket `si`.
    fn batch(&mut self, si: usize, shared: &Shared, clock: crate::system::Clock) {
        let port = &self.dp.ports[self.dp.sock_port[si]];
        let ingress = PortId(port.ifindex);
        let queue = self.dp.socks[si].queue() as usize;
        let mut guard = None::<std::sync::MutexGuard<'_, State>>;
        let mut now = None;
        let ports = &self.dp.ports;
        let port_of_ifindex = &self.port_of_ifindex;
        let pending = &mut self.pending;
        let spare = &mut self.spare;
        let wanted = &mut self.wanted;
        let counters = &mut self.counters;
        let resolver = &self.dp.resolver;
        let res = self.dp.socks[si].rx_batch(BATCH, |fb| {
            // Lock once per batch, and only when there is a frame.
            let state = guard.get_or_insert_with(|| shared.lock());
            let now = *now.get_or_insert_with(|| clock.now());
            let engine: &mut Engine = state.engine_mut();
            let (start, len) = (fb.start(), fb.len());
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
                    if port == ingress {
                        return Verdict::TxSame { start, len };
                    }
                    (port, &fb.buf()[start..start + len])
                }
                Action::Reply { port, len } => (port, engine.reply_frame(len)),
                Action::Pass => {
                    counters.passed += 1;
                    return Verdict::Drop;
                }
                Action::Drop(_) => return Verdict::Drop,
                Action::NeedHop(a) => {
                    // Starts the resolution; housekeeping hands the hop to
                    // the engine once it is known.
                    let _ = resolver.lookup(a);
                    wanted.insert(a);
                    return Verdict::Drop;
                }
            };
            let Some(&pi) = port_of_ifindex.get(&egress.0) else {
                counters.no_port += 1;
                return Verdict::Drop;
            };
            let socks = &ports[pi].socks;
            let sock = socks[queue % socks.len()];
            let mut b = spare.pop().unwrap_or_default();
            b.clear();
            b.extend_from_slice(bytes);
            pending.push(Pending { sock, bytes: b });
            Verdict::Done
        });
        drop(guard);
        if let Err(e) = res {
            eprintln!(
                "rvsd: data plane: {} receive: {e}",
                self.dp.socks[si].ifname()
            );
        }
        for p in self.pending.drain(..) {
            if !self.dp.socks[p.sock].tx_copy(&p.bytes) {
                self.counters.tx_full += 1;
            }
            self.spare.push(p.bytes);
        }
    }
}
