//! The engine, as one shared replica or one replica per worker.
//!
//! `rvsd --engines shared` (the default) keeps one [`Engine`] that every
//! worker locks for a batch. `--engines per-worker` gives each worker its
//! own replica ([`Engine::replica`]): a worker locks only its own, so no
//! lock is shared on the packet path, and a frame another replica owns is
//! handed to that replica's worker ([`rvs_core::engine::steer_owner`]:
//! by client address). Control requests change every replica (the first
//! one validates) and read the configuration from the first; statistics,
//! counters and connection listings are summed or joined over all.
//!
//! Lock order: the state lock ([`crate::handler::State`]), then replicas
//! in index order; the data plane's own locks (fast path, filter) after a
//! replica's.

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use rvs_core::Engine;
use rvs_proto::{EngineCounters, Rates, ServiceInfo, Stats};

/// How the engine is kept (`--engines`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineMode {
    /// One engine, locked by each worker for a batch.
    #[default]
    Shared,
    /// One replica per worker, frames steered by client address.
    PerWorker,
}

impl EngineMode {
    /// `shared` or `per-worker`.
    pub fn name(self) -> &'static str {
        match self {
            EngineMode::Shared => "shared",
            EngineMode::PerWorker => "per-worker",
        }
    }

    /// Parse `--engines`' value.
    pub fn parse(s: &str) -> Option<EngineMode> {
        match s {
            "shared" => Some(EngineMode::Shared),
            "per-worker" => Some(EngineMode::PerWorker),
            _ => None,
        }
    }
}

/// The replicas (at least one).
#[derive(Debug)]
pub struct Engines {
    replicas: Vec<Mutex<Engine>>,
}

fn locked(m: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engines {
    /// One replica: `engine`.
    pub fn new(engine: Engine) -> Engines {
        Engines {
            replicas: vec![Mutex::new(engine)],
        }
    }

    /// Grow to `n` replicas, each new one a [`Engine::replica`] of the
    /// first (before the workers start).
    pub fn replicate(&mut self, n: usize) {
        while self.replicas.len() < n {
            let first = locked(&self.replicas[0]);
            let mut r = first.replica();
            r.set_fast_path(first.fast_path());
            drop(first);
            self.replicas.push(Mutex::new(r));
        }
        self.share_totals();
    }

    /// Let every replica's real servers share their counts (the first's
    /// are the reference): after changes that may add real servers.
    pub fn share_totals(&self) {
        if self.replicas.len() < 2 {
            return;
        }
        let mut first = self.first();
        first.share_dest_totals(None);
        for m in &self.replicas[1..] {
            locked(m).share_dest_totals(Some(&first));
        }
    }

    /// Number of replicas.
    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    /// Whether there is none (never).
    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// Replica `i`, locked.
    pub fn lock(&self, i: usize) -> MutexGuard<'_, Engine> {
        locked(&self.replicas[i.min(self.replicas.len() - 1)])
    }

    /// The first replica, locked: the one that validates changes and
    /// whose configuration is read.
    pub fn first(&self) -> MutexGuard<'_, Engine> {
        locked(&self.replicas[0])
    }

    /// Every replica, locked (in index order: the lock order).
    pub fn lock_all(&self) -> Vec<MutexGuard<'_, Engine>> {
        self.replicas.iter().map(locked).collect()
    }

    /// `f` on every replica in turn (each locked alone); the results.
    pub fn each<R>(&self, mut f: impl FnMut(&mut Engine) -> R) -> Vec<R> {
        self.replicas.iter().map(|m| f(&mut locked(m))).collect()
    }

    /// `f` on the first replica; if it succeeds, on the others (whose
    /// configuration is the same, so it succeeds there too: a failure
    /// there is logged as the bug it is).
    pub fn change<E: std::fmt::Display>(
        &self,
        mut f: impl FnMut(&mut Engine) -> Result<(), E>,
    ) -> Result<(), E> {
        f(&mut self.first())?;
        for (i, m) in self.replicas.iter().enumerate().skip(1) {
            if let Err(e) = f(&mut locked(m)) {
                tracing::error!("BUG: engine replica {i} refused a change the first accepted: {e}");
            }
        }
        Ok(())
    }

    /// The replica that owns connections of client `caddr`.
    pub fn owner_of(&self, caddr: IpAddr) -> usize {
        if self.replicas.len() == 1 {
            return 0;
        }
        let h = self.first().steer_addr(caddr);
        rvs_core::engine::steer_owner(h, self.replicas.len())
    }

    /// The services as listed, statistics and connection counts summed
    /// over the replicas.
    pub fn services(&self, list: impl Fn(&Engine) -> Vec<ServiceInfo>) -> Vec<ServiceInfo> {
        let mut all = self.each(|e| list(e)).into_iter();
        let mut out = all.next().unwrap_or_default();
        for more in all {
            add_services(&mut out, &more);
        }
        out
    }

    /// The engines' counters, summed (`max_conns`: the sum of the bounds).
    pub fn counters(&self) -> EngineCounters {
        let mut all = self
            .each(|e| crate::convert::engine_counters(e))
            .into_iter();
        let mut out = all.next().unwrap_or_default();
        for c in all {
            add_counters(&mut out, &c);
        }
        out
    }

    /// The global statistics and rates, summed.
    pub fn stats(&self) -> (Stats, Rates) {
        let mut out = (Stats::default(), Rates::default());
        for (s, r) in self.each(|e| {
            (
                crate::convert::stats(&e.stats().shown()),
                crate::convert::rates(&e.stats().rates()),
            )
        }) {
            add_stats(&mut out.0, &s);
            add_rates(&mut out.1, &r);
        }
        out
    }
}

fn add_stats(a: &mut Stats, b: &Stats) {
    a.conns += b.conns;
    a.inpkts += b.inpkts;
    a.outpkts += b.outpkts;
    a.inbytes += b.inbytes;
    a.outbytes += b.outbytes;
}

fn add_rates(a: &mut Rates, b: &Rates) {
    a.cps += b.cps;
    a.inpps += b.inpps;
    a.outpps += b.outpps;
    a.inbps += b.inbps;
    a.outbps += b.outbps;
}

/// Add `more` (another replica's listing) into `out`, service by service
/// and server by server (matched by identity: the lists are the same).
pub fn add_services(out: &mut [ServiceInfo], more: &[ServiceInfo]) {
    for s in out.iter_mut() {
        let Some(m) = more.iter().find(|m| m.spec.id == s.spec.id) else {
            continue;
        };
        add_stats(&mut s.stats, &m.stats);
        add_rates(&mut s.rates, &m.rates);
        for d in s.dests.iter_mut() {
            if let Some(md) = m
                .dests
                .iter()
                .find(|md| md.spec.addr == d.spec.addr && md.spec.port == d.spec.port)
            {
                d.active += md.active;
                d.inactive += md.inactive;
                d.persist += md.persist;
                add_stats(&mut d.stats, &md.stats);
                add_rates(&mut d.rates, &md.rates);
            }
        }
    }
}

fn add_counters(a: &mut EngineCounters, b: &EngineCounters) {
    // Every replica holds every next hop: counted once.
    a.hops = a.hops.max(b.hops);
    for (x, y) in [
        (&mut a.conns, b.conns),
        (&mut a.max_conns, b.max_conns),
        (&mut a.evicted_syn_recv, b.evicted_syn_recv),
        (&mut a.table_full, b.table_full),
        (&mut a.hops_pruned, b.hops_pruned),
        (&mut a.drop_malformed, b.drop_malformed),
        (&mut a.drop_no_conn, b.drop_no_conn),
        (&mut a.drop_no_dest, b.drop_no_dest),
        (&mut a.drop_dest_gone, b.drop_dest_gone),
        (&mut a.drop_table_full, b.drop_table_full),
        (&mut a.drop_ttl, b.drop_ttl),
        (&mut a.drop_rewrite, b.drop_rewrite),
        (&mut a.drop_other, b.drop_other),
        (&mut a.frag_datagrams, b.frag_datagrams),
        (&mut a.frag_tracked, b.frag_tracked),
        (&mut a.frag_held, b.frag_held),
        (&mut a.frag_released, b.frag_released),
        (&mut a.frag_expired, b.frag_expired),
        (&mut a.frag_evicted, b.frag_evicted),
        (&mut a.frag_no_room, b.frag_no_room),
        (&mut a.tunnel_fragmented, b.tunnel_fragmented),
    ] {
        *x += y;
    }
}
