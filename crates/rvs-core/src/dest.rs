//! Real servers ("destinations") of a virtual service.
//!
//! Counters and the OVERLOAD flag follow the kernel's `ip_vs_bind_dest` /
//! `ip_vs_unbind_dest` / `__ip_vs_update_dest` (reference §4.16).

use core::net::IpAddr;

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
        }
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
            self.overload = false;
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
        ((self.activeconns as u64) << 8) + self.inactconns as u64
    }

    /// Usable by a scheduler for a new connection: weight > 0 and not OVERLOAD.
    pub fn is_schedulable(&self) -> bool {
        self.weight > 0 && !self.overload
    }

    /// `activeconns + inactconns` (templates are not counted).
    pub fn total_conns(&self) -> u32 {
        self.activeconns.saturating_add(self.inactconns)
    }

    /// A connection or template was bound (after its counter was incremented).
    pub fn after_bind(&mut self) {
        if self.u_threshold != 0 && self.total_conns() >= self.u_threshold {
            self.overload = true;
        }
    }

    /// A connection or template was unbound (after its counter was decremented).
    pub fn after_unbind(&mut self) {
        let total = self.total_conns() as u64;
        if self.l_threshold != 0 {
            if total < self.l_threshold as u64 {
                self.overload = false;
            }
        } else if self.u_threshold != 0 {
            if total * 4 < self.u_threshold as u64 * 3 {
                self.overload = false;
            }
        } else {
            self.overload = false;
        }
    }
}
