//! Real servers ("destinations") of a virtual service.
//!
//! Counters and the OVERLOAD flag follow the kernel's `ip_vs_bind_dest` /
//! `ip_vs_unbind_dest` / `__ip_vs_update_dest` (reference §4.16).

use core::net::IpAddr;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use crate::stats::Stats;
use crate::types::{FwdMethod, Tunnel};

/// Stable identity of a real server inside one service. Never reused within
/// the life of an engine, so scheduler state and connections can refer to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestId(pub u32);

/// What an operator sets on a real server (`-a`/`-e`): everything an edit replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DestConfig {
    /// Real server address (may be of another family than the service only when tunnelling).
    pub addr: IpAddr,
    /// Real server port; 0 means "the packet's destination port".
    pub port: u16,
    /// Forwarding method.
    pub fwd: FwdMethod,
    /// Tunnel settings (meaningful with [`FwdMethod::Tunnel`]).
    pub tunnel: Tunnel,
    /// Weight, 0..=65535 from ipvsadm; 0 = quiesced.
    pub weight: u32,
    /// Upper connection threshold (`-x`), 0 = none.
    pub u_threshold: u32,
    /// Lower connection threshold (`-y`), 0 = none.
    pub l_threshold: u32,
}

impl DestConfig {
    /// A DR real server with weight 1 and no thresholds: ipvsadm's defaults.
    pub fn new(addr: IpAddr, port: u16) -> Self {
        DestConfig {
            addr,
            port,
            fwd: FwdMethod::Route,
            tunnel: Tunnel::default(),
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        }
    }
}

/// What the engine replicas of one real server share
/// ([`Dest::totals`], `rvsd --engines per-worker`): its connection counts
/// over every replica and its OVERLOAD flag, as the kernel keeps them in
/// one `struct ip_vs_dest` (atomics) for all CPUs. Schedulers and
/// thresholds read these; each replica's own counts stay in [`Dest`] for
/// its listing (summed by the caller).
/// One cache line each, so that two servers' counts written by different
/// cores do not share one.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct DestTotals {
    active: AtomicU32,
    inact: AtomicU32,
    overload: AtomicBool,
}

/// A replica's own connection counts of one real server, mirrored into
/// atomics whenever they change, so that a listing on another thread reads
/// them without the replica (see [`crate::stats::StatCells`]). A clone has
/// its own (each replica counts apart).
#[derive(Debug, Default)]
pub struct CountCells {
    active: AtomicU32,
    inact: AtomicU32,
    persist: AtomicU32,
}

impl CountCells {
    /// Active, inactive and persistence-template counts.
    pub fn get(&self) -> (u32, u32, u32) {
        (
            self.active.load(Ordering::Relaxed),
            self.inact.load(Ordering::Relaxed),
            self.persist.load(Ordering::Relaxed),
        )
    }

    fn set(&self, active: u32, inact: u32, persist: u32) {
        self.active.store(active, Ordering::Relaxed);
        self.inact.store(inact, Ordering::Relaxed);
        self.persist.store(persist, Ordering::Relaxed);
    }
}

/// The [`CountCells`] of one [`Dest`]: an `Arc` for readers, copied (not
/// shared) by `clone`.
#[derive(Debug, Default)]
pub struct Counts(Arc<CountCells>);

impl Clone for Counts {
    fn clone(&self) -> Counts {
        let (a, i, p) = self.0.get();
        let c = CountCells::default();
        c.set(a, i, p);
        Counts(Arc::new(c))
    }
}

impl Counts {
    /// The cells, for a reader on another thread.
    pub fn cells(&self) -> &Arc<CountCells> {
        &self.0
    }
}

/// Add `delta` to a shared count, not below 0.
fn shift(c: &AtomicU32, delta: i32) {
    let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_add_signed(delta))
    });
}

/// A real server's next hop and its egress port's MAC address, as the
/// engine last looked them up, valid while the engine's next hops and ports
/// are unchanged (its epoch; the kernel keeps a route in each `ip_vs_dest`
/// the same way, `ip_vs_dest_dst`). A copy starts empty: the epoch is only
/// meaningful in the engine that filled it.
#[derive(Debug, Default)]
pub struct EgressCache(pub(crate) Option<(u32, crate::engine::Hop, rvs_wire::EthernetAddress)>);

impl Clone for EgressCache {
    fn clone(&self) -> Self {
        EgressCache(None)
    }
}

/// A real server with its live state.
#[derive(Debug, Clone)]
pub struct Dest {
    /// Stable identity.
    pub id: DestId,
    /// Address.
    pub addr: IpAddr,
    /// Port (0 = keep the packet's port).
    pub port: u16,
    /// Forwarding method.
    pub fwd: FwdMethod,
    /// Tunnel settings.
    pub tunnel: Tunnel,
    /// Current weight (0 = quiesced).
    pub weight: u32,
    /// Most recent non-zero weight (used by `mh`).
    pub last_weight: u32,
    /// Upper threshold.
    pub u_threshold: u32,
    /// Lower threshold.
    pub l_threshold: u32,
    /// Still linked to its service (cleared on deletion).
    pub available: bool,
    /// OVERLOAD flag: set when the upper threshold is reached.
    pub overload: bool,
    /// Connections in an active state.
    pub activeconns: u32,
    /// Connections in an inactive state.
    pub inactconns: u32,
    /// Persistence templates bound to this server.
    pub persistconns: u32,
    /// Traffic counters and rate estimator.
    pub stats: Stats,
    /// The counts and flag every replica of this server shares (`None`:
    /// one engine, [`Dest::activeconns`] and the rest are the whole).
    pub totals: Option<Arc<DestTotals>>,
    /// `activeconns`, `inactconns` and `persistconns` as other threads read
    /// them ([`Dest::count`] and [`Dest::count_persist`] keep them equal).
    pub counts: Counts,
    /// The packet path's next hop towards this server.
    pub egress: EgressCache,
}

impl Dest {
    /// A new, available real server from its configuration.
    pub fn new(id: DestId, cfg: &DestConfig) -> Self {
        Dest {
            id,
            addr: cfg.addr,
            port: cfg.port,
            fwd: cfg.fwd,
            tunnel: cfg.tunnel,
            weight: cfg.weight,
            last_weight: cfg.weight,
            u_threshold: cfg.u_threshold,
            l_threshold: cfg.l_threshold,
            available: true,
            overload: false,
            activeconns: 0,
            inactconns: 0,
            persistconns: 0,
            stats: Stats::default(),
            totals: None,
            counts: Counts::default(),
            egress: EgressCache::default(),
        }
    }

    /// Share `t` with the other replicas of this server, adding this
    /// replica's counts to it (so that, once every replica has joined, it
    /// holds the sum).
    pub fn share_totals(&mut self, t: Arc<DestTotals>) {
        shift(&t.active, self.activeconns.min(i32::MAX as u32) as i32);
        shift(&t.inact, self.inactconns.min(i32::MAX as u32) as i32);
        if self.overload {
            t.overload.store(true, Ordering::Relaxed);
        }
        self.totals = Some(t);
    }

    /// Active connections (over every replica when shared).
    #[inline]
    pub fn active(&self) -> u32 {
        match &self.totals {
            Some(t) => t.active.load(Ordering::Relaxed),
            None => self.activeconns,
        }
    }

    /// Inactive connections (over every replica when shared).
    #[inline]
    pub fn inactive(&self) -> u32 {
        match &self.totals {
            Some(t) => t.inact.load(Ordering::Relaxed),
            None => self.inactconns,
        }
    }

    /// The OVERLOAD flag (shared by the replicas when shared).
    #[inline]
    pub fn overloaded(&self) -> bool {
        match &self.totals {
            Some(t) => t.overload.load(Ordering::Relaxed),
            None => self.overload,
        }
    }

    fn set_overload(&mut self, on: bool) {
        self.overload = on;
        if let Some(t) = &self.totals {
            t.overload.store(on, Ordering::Relaxed);
        }
    }

    /// Change the active and inactive counts by `da` and `di`.
    pub fn count(&mut self, da: i32, di: i32) {
        self.activeconns = self.activeconns.saturating_add_signed(da);
        self.inactconns = self.inactconns.saturating_add_signed(di);
        if let Some(t) = &self.totals {
            shift(&t.active, da);
            shift(&t.inact, di);
        }
        self.publish_counts();
    }

    /// Change the persistence-template count by `delta`.
    pub fn count_persist(&mut self, delta: i32) {
        self.persistconns = self.persistconns.saturating_add_signed(delta);
        self.publish_counts();
    }

    /// Mirror the counts into [`Dest::counts`] (after a change made to the
    /// fields directly).
    pub fn publish_counts(&self) {
        self.counts
            .0
            .set(self.activeconns, self.inactconns, self.persistconns);
    }

    /// The configuration as an operator would see it in `-S`.
    pub fn config(&self) -> DestConfig {
        DestConfig {
            addr: self.addr,
            port: self.port,
            fwd: self.fwd,
            tunnel: self.tunnel,
            weight: self.weight,
            u_threshold: self.u_threshold,
            l_threshold: self.l_threshold,
        }
    }

    /// Replace the configuration (`-e`), keeping counters, as `__ip_vs_update_dest`:
    /// OVERLOAD is cleared when the new upper threshold is 0 or larger than the old.
    pub fn apply_config(&mut self, cfg: &DestConfig) {
        if cfg.u_threshold == 0 || cfg.u_threshold > self.u_threshold {
            self.set_overload(false);
        }
        self.fwd = cfg.fwd;
        self.tunnel = cfg.tunnel;
        self.weight = cfg.weight;
        if cfg.weight != 0 {
            self.last_weight = cfg.weight;
        }
        self.u_threshold = cfg.u_threshold;
        self.l_threshold = cfg.l_threshold;
    }

    /// `ip_vs_dest_conn_overhead`: active × 256 + inactive.
    pub fn overhead(&self) -> u64 {
        ((self.active() as u64) << 8) + self.inactive() as u64
    }

    /// Usable by a scheduler for a new connection: weight > 0 and not OVERLOAD.
    pub fn is_schedulable(&self) -> bool {
        self.weight > 0 && !self.overloaded()
    }

    /// `activeconns + inactconns` (templates are not counted).
    pub fn total_conns(&self) -> u32 {
        self.active().saturating_add(self.inactive())
    }

    /// A connection or template was bound (after its counter was incremented).
    pub fn after_bind(&mut self) {
        if self.u_threshold != 0 && self.total_conns() >= self.u_threshold {
            self.set_overload(true);
        }
    }

    /// A connection or template was unbound (after its counter was decremented).
    pub fn after_unbind(&mut self) {
        let total = self.total_conns() as u64;
        if self.l_threshold != 0 {
            if total < self.l_threshold as u64 {
                self.set_overload(false);
            }
        } else if self.u_threshold != 0 {
            if total * 4 < self.u_threshold as u64 * 3 {
                self.set_overload(false);
            }
        } else {
            self.set_overload(false);
        }
    }
}
