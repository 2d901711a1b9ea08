//! The fast path's bookkeeping: the flows installed into the classifier's
//! flow cache, the engine's queued work applied to it, and what the cache
//! forwarded credited to the engine.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use rvs_core::Engine;
use rvs_core::fastpath::{FastAction, FastFlow, FastPathOp, FastRewrite};
use rvs_io::flowcache::{self, FlowAction, FlowCache, FlowCounters, FlowEntry, FlowRewrite};
use rvs_proto::FastPathCounters;

use super::Port;
use super::probe::{Probe, Probed};
use crate::options::FastPathMode;

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

/// The engine replicas at hand (locked by the caller), by replica index
/// from `first`: every replica for the sync thread and the control
/// requests, a worker's own for its batch. A flow belongs to the replica
/// that installed it (flows are steered by client address, so a flow's
/// packets all meet one replica); work on a flow whose replica is not at
/// hand is left for whoever holds it.
pub(super) struct EngineSet<'a, 'b> {
    list: &'a mut [&'b mut Engine],
    first: usize,
}

impl<'a, 'b> EngineSet<'a, 'b> {
    /// `list[i]` is replica `first + i`.
    pub(super) fn new(list: &'a mut [&'b mut Engine], first: usize) -> Self {
        EngineSet { list, first }
    }

    fn get(&mut self, replica: usize) -> Option<&mut Engine> {
        let i = replica.checked_sub(self.first)?;
        self.list.get_mut(i).map(|e| &mut **e)
    }

    fn holds(&self, replica: usize) -> bool {
        replica >= self.first && replica - self.first < self.list.len()
    }

    /// The replicas at hand, with their indices.
    pub(super) fn each(&mut self, mut f: impl FnMut(usize, &mut Engine)) {
        for (i, e) in self.list.iter_mut().enumerate() {
            f(self.first + i, e);
        }
    }
}

/// What the sync thread installed, and what of its traffic it credited.
#[derive(Debug, Clone, Copy)]
struct Installed {
    /// The engine replica whose flow it is.
    owner: usize,
    flow: FastFlow,
    /// Egress interface.
    ifindex: u32,
    packets: u64,
    bytes: u64,
    last_seen_ns: u64,
}

/// What the fast path did since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct FastTotals {
    pub(super) installs: u64,
    pub(super) removals: u64,
    pub(super) evictions: u64,
    /// Credited packets and bytes.
    packets: u64,
    bytes: u64,
}

/// The fast path's bookkeeping: what is in the cache, what of its traffic
/// was credited, where it may send.
#[derive(Debug)]
pub(super) struct FastSync {
    mode: FastPathMode,
    /// The interfaces it may send to (ifindex).
    pub(super) egress: HashSet<u32>,
    /// One per [`DpShared::fast_probed`](super::DpShared::fast_probed), in order.
    pub(super) probes: Vec<Probe>,
    /// Watched interfaces (live frames refused): their flows are cached
    /// whether they take redirects or not, their gates decide
    /// ([`rvs_io::flowcache::Gate`]).
    pub(super) watched: HashSet<u32>,
    installed: HashMap<flowcache::FlowKey, Installed>,
    pub(super) ops: Vec<FastPathOp>,
    entries: Vec<FlowEntry>,
    pub(super) totals: FastTotals,
    errors_logged: u32,
    /// The flow cache's removal fallback was logged.
    fallback_logged: bool,
    /// The flow cache's batched-write fallback was logged.
    batch_fallback_logged: bool,
    /// New flows to install together ([`FastSync::flush_installs`]): the
    /// owner, the flow, the cache's key and action.
    new_flows: Vec<(usize, FastFlow, flowcache::FlowKey, flowcache::FlowAction)>,
    /// `new_flows`' entries, for the cache (reused).
    new_entries: Vec<(flowcache::FlowKey, flowcache::FlowAction)>,
}

/// Errors logged by the fast path's sync, at most (then silence).
const FAST_ERRORS_LOGGED: u32 = 10;

impl FastSync {
    pub(super) fn new(mode: FastPathMode, egress: HashSet<u32>, probes: Vec<Probe>) -> FastSync {
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
            fallback_logged: false,
            batch_fallback_logged: false,
            new_flows: Vec::new(),
            new_entries: Vec::new(),
        }
    }

    fn log(&mut self, msg: std::fmt::Arguments<'_>) {
        if self.errors_logged < FAST_ERRORS_LOGGED {
            self.errors_logged += 1;
            tracing::warn!("fast path: {msg}");
        }
    }

    /// The counters `rvs dataplane` shows.
    pub(super) fn counters(
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

    /// Remove the entries that send to `ifindex`.
    pub(super) fn remove_towards(
        &mut self,
        cache: &mut FlowCache,
        engines: &mut EngineSet<'_, '_>,
        ifindex: u32,
        now: rvs_core::Instant,
        mono: u64,
    ) {
        let gone: Vec<flowcache::FlowKey> = self
            .installed
            .iter()
            .filter(|(_, e)| e.ifindex == ifindex && engines.holds(e.owner))
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            self.remove(cache, engines, &k, now, mono);
        }
    }

    /// Apply the queued work of every replica at hand to the cache (the
    /// caller holds their locks, so the engines and the cache move
    /// together).
    pub(super) fn apply_ops(
        &mut self,
        cache: &mut FlowCache,
        engines: &mut EngineSet<'_, '_>,
        now: rvs_core::Instant,
        mono: u64,
    ) {
        let mut replicas = Vec::new();
        engines.each(|r, _| replicas.push(r));
        for replica in replicas {
            if let Some(e) = engines.get(replica) {
                e.take_fast_path_ops(&mut self.ops);
            }
            let mut ops = std::mem::take(&mut self.ops);
            for op in ops.drain(..) {
                match op {
                    FastPathOp::Install(flow, action) => {
                        let port = action.port.0;
                        if !self.egress.contains(&port) && !self.watched.contains(&port) {
                            continue;
                        }
                        let key = io_key(&flow.key);
                        if self.installed.contains_key(&key)
                            || self.new_flows.iter().any(|f| f.2 == key)
                        {
                            // Installed before: its counters are credited
                            // first, after what is queued.
                            self.flush_installs(cache);
                            self.install(cache, engines, replica, flow, &action, now, mono);
                        } else {
                            self.new_flows
                                .push((replica, flow, key, io_action(&action)));
                        }
                    }
                    FastPathOp::Remove(flow) => {
                        self.flush_installs(cache);
                        self.remove(cache, engines, &io_key(&flow.key), now, mono)
                    }
                    FastPathOp::RemoveAll => {
                        self.flush_installs(cache);
                        // This replica's flows (each replica asks for its own).
                        let keys: Vec<flowcache::FlowKey> = self
                            .installed
                            .iter()
                            .filter(|(_, i)| i.owner == replica)
                            .map(|(k, _)| *k)
                            .collect();
                        for k in keys {
                            self.remove(cache, engines, &k, now, mono);
                        }
                    }
                }
            }
            self.ops = ops;
        }
        self.flush_installs(cache);
    }

    /// Record `key` as installed for replica `owner`, sending to
    /// `ifindex`, nothing counted yet.
    fn installed_now(
        &mut self,
        key: flowcache::FlowKey,
        owner: usize,
        flow: FastFlow,
        ifindex: u32,
    ) {
        self.totals.installs += 1;
        self.installed.insert(
            key,
            Installed {
                owner,
                flow,
                ifindex,
                packets: 0,
                bytes: 0,
                last_seen_ns: 0,
            },
        );
    }

    /// Install the queued new flows, in order, in one write of the cache
    /// (`BPF_MAP_UPDATE_BATCH`: one system call for them all, where each
    /// was one).
    fn flush_installs(&mut self, cache: &mut FlowCache) {
        if self.new_flows.is_empty() {
            return;
        }
        let mut entries = std::mem::take(&mut self.new_entries);
        entries.clear();
        entries.extend(self.new_flows.iter().map(|f| (f.2, f.3)));
        let results = cache.insert_many(&entries);
        if !self.batch_fallback_logged
            && let Some(why) = cache.insert_fallback()
        {
            self.batch_fallback_logged = true;
            tracing::info!(
                "fast path: the kernel refused BPF_MAP_UPDATE_BATCH ({why}): \
                 new flows are installed one system call each"
            );
        }
        let mut flows = std::mem::take(&mut self.new_flows);
        for ((owner, flow, key, action), r) in flows.drain(..).zip(results) {
            match r {
                Ok(()) => self.installed_now(key, owner, flow, action.ifindex),
                Err(e) => self.log(format_args!("cannot cache {key:?}: {e}")),
            }
        }
        self.new_flows = flows;
        self.new_entries = entries;
    }

    #[allow(clippy::too_many_arguments)]
    fn install(
        &mut self,
        cache: &mut FlowCache,
        engines: &mut EngineSet<'_, '_>,
        owner: usize,
        flow: FastFlow,
        action: &FastAction,
        now: rvs_core::Instant,
        mono: u64,
    ) {
        let key = io_key(&flow.key);
        // A flow installed before: its entry's counters until now are
        // credited (a read, then the write). A new one (nearly every
        // install): the write alone, one system call.
        let put = if self.installed.contains_key(&key) {
            cache.replace(&key, &io_action(action))
        } else {
            cache.insert(&key, &io_action(action)).map(|()| None)
        };
        match put {
            Ok(old) => {
                if let (Some(old), Some(prev)) = (old, self.installed.get(&key).copied()) {
                    self.credit(engines, &prev, &old, now, mono);
                }
                self.installed_now(key, owner, flow, action.port.0);
            }
            Err(e) => self.log(format_args!("cannot cache {key:?}: {e}")),
        }
    }

    fn remove(
        &mut self,
        cache: &mut FlowCache,
        engines: &mut EngineSet<'_, '_>,
        key: &flowcache::FlowKey,
        now: rvs_core::Instant,
        mono: u64,
    ) {
        let Some(prev) = self.installed.remove(key) else {
            return;
        };
        let res = cache.remove(key);
        if !self.fallback_logged
            && let Some(why) = cache.remove_fallback()
        {
            self.fallback_logged = true;
            tracing::info!(
                "fast path: the kernel refused BPF_MAP_LOOKUP_AND_DELETE_ELEM ({why}): \
                 a flow's removal reads its counters, then deletes it (two system calls)"
            );
        }
        match res {
            Ok(Some(last)) => {
                self.totals.removals += 1;
                self.credit(engines, &prev, &last, now, mono);
            }
            // Evicted: what it counted since the last read is lost.
            Ok(None) => self.totals.evictions += 1,
            Err(e) => self.log(format_args!("cannot remove {key:?}: {e}")),
        }
    }

    /// Credit every entry's traffic since the last read. An installed
    /// entry the cache no longer has was evicted: forgotten here (its flow
    /// goes through the engine), counted.
    pub(super) fn credit_all(
        &mut self,
        cache: &FlowCache,
        engines: &mut EngineSet<'_, '_>,
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
                if !engines.holds(prev.owner) {
                    continue;
                }
                self.credit(engines, &prev, &e.counters, now, mono);
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
            self.installed
                .retain(|k, i| present.contains(k) || !engines.holds(i.owner));
            self.totals.evictions += (before - self.installed.len()) as u64;
        }
        self.entries = entries;
    }

    /// Credit to the engine what `cur` holds beyond what `prev` says was
    /// credited already, and count it.
    fn credit(
        &mut self,
        engines: &mut EngineSet<'_, '_>,
        prev: &Installed,
        cur: &FlowCounters,
        now: rvs_core::Instant,
        mono: u64,
    ) {
        // A flow of a replica not at hand: its worker credits it (the
        // counters read are not recorded as credited then).
        let Some(engine) = engines.get(prev.owner) else {
            return;
        };
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
