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
//! Reading statistics stops no worker. The counters of every service, real
//! server and the table live in atomics each replica alone writes
//! ([`rvs_core::stats::StatCells`], [`rvs_core::dest::CountCells`]); a
//! [`Board`] built after each change of the configuration holds the
//! services' descriptions and, per replica, the `Arc`s of those cells, so a
//! listing or a metrics scrape sums them without locking any replica. The
//! engine's own counters (drops, table size…) are copied into per-replica
//! atomics whenever a replica's lock is released ([`Replica`]'s drop: after
//! each worker batch, housekeeping pass or control request), and read from
//! there. What still takes the replicas: crediting the XDP fast path's
//! packets before an exact listing (`rvsadm -L --stats`), connection
//! listings, and changes.
//!
//! Lock order: the state lock ([`crate::handler::State`]), then the board,
//! then replicas in index order; the data plane's own locks (fast path,
//! filter) after a replica's.

use std::net::IpAddr;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rvs_core::Engine;
use rvs_core::dest::CountCells;
use rvs_core::service::Service;
use rvs_core::stats::StatCells;
use rvs_proto::{EngineCounters, Rates, ServiceId, ServiceInfo, Stats};

/// How the engine is kept (`--engines`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineMode {
    /// One engine, locked by each worker for a batch.
    Shared,
    /// One replica per worker, frames steered by client address (the
    /// default: no lock shared on the packet path).
    #[default]
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

/// The replicas (at least one), what listings read of them without
/// their locks.
#[derive(Debug)]
pub struct Engines {
    replicas: Vec<Mutex<Engine>>,
    /// Per replica: its engine counters as of its last unlock.
    published: Vec<Published>,
    /// What listings read; rebuilt when `stale`.
    board: Mutex<Arc<Board>>,
    /// The configuration may have changed since the board was built.
    stale: AtomicBool,
}

/// The number of fields of [`EngineCounters`].
const ENGINE_COUNTERS: usize = 22;

/// Every field of `c`, in declaration order.
fn fields(c: &mut EngineCounters) -> [&mut u64; ENGINE_COUNTERS] {
    [
        &mut c.conns,
        &mut c.max_conns,
        &mut c.evicted_syn_recv,
        &mut c.table_full,
        &mut c.hops,
        &mut c.hops_pruned,
        &mut c.drop_malformed,
        &mut c.drop_no_conn,
        &mut c.drop_no_dest,
        &mut c.drop_dest_gone,
        &mut c.drop_table_full,
        &mut c.drop_ttl,
        &mut c.drop_rewrite,
        &mut c.drop_other,
        &mut c.frag_datagrams,
        &mut c.frag_tracked,
        &mut c.frag_held,
        &mut c.frag_released,
        &mut c.frag_expired,
        &mut c.frag_evicted,
        &mut c.frag_no_room,
        &mut c.tunnel_fragmented,
    ]
}

/// One replica's engine counters, as its last holder left them.
#[derive(Debug, Default)]
struct Published([AtomicU64; ENGINE_COUNTERS]);

impl Published {
    fn store(&self, e: &Engine) {
        let mut c = crate::convert::engine_counters(e);
        for (cell, v) in self.0.iter().zip(fields(&mut c)) {
            cell.store(*v, Ordering::Relaxed);
        }
    }

    fn load(&self) -> EngineCounters {
        let mut c = EngineCounters::default();
        for (v, cell) in fields(&mut c).into_iter().zip(&self.0) {
            *v = cell.load(Ordering::Relaxed);
        }
        c
    }
}

/// A locked replica; unlocking publishes its engine counters.
#[derive(Debug)]
pub struct Replica<'a> {
    engine: MutexGuard<'a, Engine>,
    published: &'a Published,
}

impl Deref for Replica<'_> {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl DerefMut for Replica<'_> {
    fn deref_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

impl Drop for Replica<'_> {
    fn drop(&mut self) {
        self.published.store(&self.engine);
    }
}

/// What a listing of the services reads without the replicas: each
/// service's and real server's description (as listed, in the listing's
/// order) and, per replica, its counters' cells.
#[derive(Debug, Default)]
struct Board {
    services: Vec<ServiceInfo>,
    cells: Vec<ServiceCells>,
    total: Vec<Arc<StatCells>>,
}

/// The cells of one service in every replica, and of its real servers (in
/// the listing's order).
#[derive(Debug, Default)]
struct ServiceCells {
    stats: Vec<Arc<StatCells>>,
    dests: Vec<DestCells>,
}

/// The cells of one real server in every replica: statistics, counts.
type DestCells = (Vec<Arc<StatCells>>, Vec<Arc<CountCells>>);

/// Every service of `e` in the listing's order: address services first,
/// then fwmark ones, each newest first (the kernel's unsorted order).
pub fn listing_order(e: &Engine) -> Vec<&Service> {
    let mut svcs: Vec<_> = e.services().iter().map(|(_, s)| s).collect();
    // The kernel lists every address service before every fwmark one.
    svcs.sort_unstable_by_key(|s| {
        (
            matches!(s.key, rvs_core::service::ServiceKey::Fwmark { .. }),
            std::cmp::Reverse(s.seq),
        )
    });
    svcs
}

/// The sum of `cells` as listed.
fn summed(cells: &[Arc<StatCells>]) -> (Stats, Rates) {
    let mut out = (Stats::default(), Rates::default());
    for c in cells {
        add_stats(&mut out.0, &crate::convert::stats(&c.shown()));
        add_rates(&mut out.1, &crate::convert::rates(&c.rates()));
    }
    out
}

fn locked(m: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engines {
    /// One replica: `engine`.
    pub fn new(engine: Engine) -> Engines {
        Engines {
            replicas: vec![Mutex::new(engine)],
            published: vec![Published::default()],
            board: Mutex::default(),
            stale: AtomicBool::new(true),
        }
    }

    fn replica(&self, i: usize) -> Replica<'_> {
        Replica {
            engine: locked(&self.replicas[i]),
            published: &self.published[i],
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
            self.published.push(Published::default());
        }
        self.stale.store(true, Ordering::Release);
        self.share_totals();
    }

    /// Let every replica's real servers share their counts, its services
    /// their schedulers' state, and its connection table the bound (the
    /// first's are the reference): after changes that may add real
    /// servers, services or schedulers.
    pub fn share_totals(&self) {
        if self.replicas.len() < 2 {
            return;
        }
        let mut first = self.first();
        first.share_dest_totals(None);
        first.share_conn_bound(None);
        for i in 1..self.replicas.len() {
            let mut r = self.replica(i);
            r.share_dest_totals(Some(&first));
            r.share_sched_state(&first);
            r.share_conn_bound(Some(&first));
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
    pub fn lock(&self, i: usize) -> Replica<'_> {
        self.replica(i.min(self.replicas.len() - 1))
    }

    /// The first replica, locked: the one that validates changes and
    /// whose configuration is read.
    pub fn first(&self) -> Replica<'_> {
        self.replica(0)
    }

    /// Every replica, locked (in index order: the lock order).
    pub fn lock_all(&self) -> Vec<Replica<'_>> {
        (0..self.replicas.len()).map(|i| self.replica(i)).collect()
    }

    /// `f` on every replica in turn (each locked alone); the results.
    /// The listings' board is rebuilt before the next listing, in case `f`
    /// changed what they show.
    pub fn each<R>(&self, f: impl FnMut(&mut Engine) -> R) -> Vec<R> {
        self.changed();
        self.each_unchanged(f)
    }

    /// `f`, which changes no configuration (housekeeping, reading
    /// connections), on every replica in turn (each locked alone).
    pub fn each_unchanged<R>(&self, mut f: impl FnMut(&mut Engine) -> R) -> Vec<R> {
        (0..self.replicas.len())
            .map(|i| f(&mut self.replica(i)))
            .collect()
    }

    /// The configuration changed (or may have) outside [`Engines::change`]:
    /// the next listing rebuilds its board.
    pub fn changed(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// `f` on the first replica; if it succeeds, on the others (whose
    /// configuration is the same, so it succeeds there too: a failure
    /// there is logged as the bug it is).
    pub fn change<E: std::fmt::Display>(
        &self,
        mut f: impl FnMut(&mut Engine) -> Result<(), E>,
    ) -> Result<(), E> {
        self.changed();
        f(&mut self.first())?;
        for i in 1..self.replicas.len() {
            if let Err(e) = f(&mut self.replica(i)) {
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

    /// The board, rebuilt first if the configuration changed since.
    fn board(&self) -> Arc<Board> {
        let mut board = self.board.lock().unwrap_or_else(|p| p.into_inner());
        if self.stale.swap(false, Ordering::AcqRel) {
            *board = Arc::new(self.build_board());
        }
        Arc::clone(&board)
    }

    /// The board as the replicas are now (each locked alone, once).
    fn build_board(&self) -> Board {
        let mut board = Board::default();
        let mut keys = Vec::new();
        {
            let e = self.first();
            for svc in listing_order(&e) {
                let info = crate::convert::service_info(svc);
                board.cells.push(ServiceCells {
                    stats: vec![Arc::clone(svc.stats.cells())],
                    dests: svc
                        .dests
                        .iter()
                        .map(|d| {
                            (
                                vec![Arc::clone(d.stats.cells())],
                                vec![Arc::clone(d.counts.cells())],
                            )
                        })
                        .collect(),
                });
                keys.push(svc.key);
                board.services.push(info);
            }
            board.total.push(Arc::clone(e.stats().cells()));
        }
        for i in 1..self.replicas.len() {
            let e = self.replica(i);
            let services = e.services();
            for ((key, info), cells) in keys.iter().zip(&board.services).zip(&mut board.cells) {
                let Some(svc) = services.find(key).and_then(|r| services.get(r)) else {
                    continue;
                };
                cells.stats.push(Arc::clone(svc.stats.cells()));
                for (d, dc) in info.dests.iter().zip(&mut cells.dests) {
                    if let Some(md) = svc
                        .dests
                        .iter()
                        .find(|md| md.addr == d.spec.addr && md.port == d.spec.port)
                    {
                        dc.0.push(Arc::clone(md.stats.cells()));
                        dc.1.push(Arc::clone(md.counts.cells()));
                    }
                }
            }
            board.total.push(Arc::clone(e.stats().cells()));
        }
        board
    }

    /// Service `i` of `board` with its counters summed over the replicas.
    fn filled(board: &Board, i: usize) -> ServiceInfo {
        let mut s = board.services[i].clone();
        let cells = &board.cells[i];
        (s.stats, s.rates) = summed(&cells.stats);
        for (d, (stats, counts)) in s.dests.iter_mut().zip(&cells.dests) {
            (d.stats, d.rates) = summed(stats);
            (d.active, d.inactive, d.persist) = (0, 0, 0);
            for c in counts {
                let (a, i, p) = c.get();
                d.active += a;
                d.inactive += i;
                d.persist += p;
            }
        }
        s
    }

    /// Every service as listed (in the listing's order), statistics and
    /// connection counts summed over the replicas: read without them.
    pub fn services(&self) -> Vec<ServiceInfo> {
        let board = self.board();
        (0..board.services.len())
            .map(|i| Self::filled(&board, i))
            .collect()
    }

    /// Service `id` as listed, if there is one.
    pub fn service(&self, id: &ServiceId) -> Option<ServiceInfo> {
        let board = self.board();
        let i = board.services.iter().position(|s| s.spec.id == *id)?;
        Some(Self::filled(&board, i))
    }

    /// The engines' counters as their last holders left them, summed
    /// (`max_conns`: the one bound the tables share; `hops`: every
    /// replica's).
    pub fn counters(&self) -> EngineCounters {
        let mut all = self.published.iter().map(Published::load);
        let mut out = all.next().unwrap_or_default();
        for c in all {
            add_counters(&mut out, &c);
        }
        out
    }

    /// The global statistics and rates, summed.
    pub fn stats(&self) -> (Stats, Rates) {
        summed(&self.board().total)
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

fn add_counters(a: &mut EngineCounters, b: &EngineCounters) {
    // Every replica holds every next hop, and the connection tables share
    // one bound: each counted once.
    let hops = a.hops.max(b.hops);
    let max_conns = a.max_conns.max(b.max_conns);
    let mut b = *b;
    for (x, y) in fields(a).into_iter().zip(fields(&mut b)) {
        *x += *y;
    }
    a.hops = hops;
    a.max_conns = max_conns;
}
