//! Control and read access: services, real servers, timeouts, sysctls,
//! firewall-mark rules and the claim check (`-A`, `-a`, `-Z`, `--set` …,
//! each validating first and changing nothing on error), the listings'
//! read access, and housekeeping ([`Engine::poll`]: expiry, estimators,
//! next-hop pruning).

use core::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use rvs_wire::FlowMeta;

use super::{
    CONN_F_INACTIVE, CONN_F_TEMPLATE, Engine, EngineCounters, Frame, HOP_SLACK, PRUNED_HOPS_KEPT,
    Sysctls,
};
use crate::claims::{ClaimCheck, ClaimGuard, TableView};
use crate::conn::{Conn, ConnTable, Timeouts};
use crate::dest::{Dest, DestConfig};
use crate::fastpath::FastPathOp;
use crate::fwmark::{FwmarkRule, FwmarkRules};
use crate::service::{
    CtlError, Service, ServiceConfig, ServiceKey, ServiceRef, Services, addr_key,
};
use crate::stats::{Counters, Stats};
use crate::time::Instant;
use crate::types::Protocol;

impl Engine {
    // ----- read access for listings ---------------------------------------------

    /// The installed claim check ([`Engine::set_claim_check`]), if any.
    pub fn claim_guard(&self) -> Option<&ClaimGuard> {
        self.claim_guard.as_ref()
    }

    /// Refuse, from now on, every change whose table `check` says the data
    /// plane's filter cannot hold ([`crate::claims`]): such a change fails
    /// with [`CtlError::NoRoom`] and changes nothing. The table as it is
    /// must pass: otherwise `Err` with the check's reason, and nothing is
    /// installed.
    pub fn set_claim_check(&mut self, check: Arc<ClaimCheck>) -> Result<(), String> {
        check(&crate::claims::claims(&TableView::of(self)))?;
        self.claim_guard = Some(ClaimGuard(check));
        Ok(())
    }

    /// A new engine with this one's configuration and none of its state:
    /// its services and real servers (added in the order this one's were,
    /// with fresh schedulers), firewall-mark rules, sysctls, timeouts,
    /// ports and next hops; no connection, statistic, counter, claim
    /// check, sync role or fast-path bookkeeping. The replicas of
    /// per-worker engines ([`crate::engine::steer`]) start so; from then
    /// on every change is applied to each.
    pub fn replica(&self) -> Engine {
        let mut e = Engine::new(super::EngineConfig {
            sysctls: self.sysctls,
            ..self.config
        });
        let mut svcs: Vec<&crate::service::Service> =
            self.services.iter().map(|(_, s)| s).collect();
        svcs.sort_unstable_by_key(|s| s.seq);
        for s in svcs {
            // Valid here, so valid there: the same checks on the same input.
            if e.services.add(s.key, s.config.clone()).is_ok() {
                // Newest first in the list (the kernel adds at the head):
                // oldest added first.
                for d in s.dests.iter().rev() {
                    let _ = e.services.add_dest(&s.key, &d.config(), Instant::ZERO);
                }
                // What the configuration does not carry but a scheduler
                // reads: `mh` keeps a quiesced server's last weight.
                if let Some(r) = e.services.find(&s.key)
                    && let Some(svc) = e.services.get_mut(r)
                    && s.dests.iter().any(|d| d.last_weight != d.weight)
                {
                    for (to, from) in svc.dests.iter_mut().zip(&s.dests) {
                        to.last_weight = from.last_weight;
                    }
                    let _ = svc
                        .scheduler
                        .update(&svc.dests, crate::sched::DestChange::Init);
                }
            }
        }
        e.fwmark_rules = self.fwmark_rules.clone();
        e.timeouts = self.timeouts;
        e.ports = self.ports.clone();
        e.hops = self.hops.clone();
        e.hop_epoch = self.hop_epoch;
        e
    }

    /// Share real servers' counts and OVERLOAD flags among engine
    /// replicas ([`crate::dest::DestTotals`]) where scheduling reads them
    /// (a scheduler of the least-connection family, `ovf`, lblc/lblcr, or
    /// an upper threshold), for every such server (live or deleted and
    /// draining) that does not share yet: without `from` (the first
    /// replica), a new share; with `from`, the share of `from`'s server of
    /// the same service, address and port. Each adds its own counts. Call
    /// it on the first replica, then on the others, after changes that may
    /// add servers, thresholds or schedulers. Elsewhere the counts stay
    /// each replica's own (nothing reads them but the listing, which sums
    /// them), and cost no shared write.
    pub fn share_dest_totals(&mut self, from: Option<&Engine>) {
        for svc in self.services.iter_mut() {
            let reads_counts = matches!(
                svc.scheduler.name(),
                "lc" | "wlc" | "sed" | "nq" | "ovf" | "lblc" | "lblcr"
            );
            let src = from.and_then(|f| f.services.find(&svc.key).and_then(|r| f.services.get(r)));
            let dests = svc
                .dests
                .iter_mut()
                .chain(svc.trash.iter_mut().map(|(d, _)| d));
            for d in dests.filter(|d| d.totals.is_none() && (reads_counts || d.u_threshold > 0)) {
                match (from, src) {
                    (None, _) => d.share_totals(Default::default()),
                    (Some(_), Some(s)) => {
                        let t = s
                            .dests
                            .iter()
                            .chain(s.trash.iter().map(|(d, _)| d))
                            .find(|x| x.addr == d.addr && x.port == d.port)
                            .and_then(|x| x.totals.clone());
                        if let Some(t) = t {
                            d.share_totals(t);
                        }
                    }
                    (Some(_), None) => {}
                }
            }
        }
    }

    /// Count this engine's connection table against one bound with the
    /// other replicas' (`--max-conns` is then the bound of them all, as of
    /// the kernel's one table; each replica holds the same bound): without
    /// `from` (the first replica), a new count; with `from`, its count.
    pub fn share_conn_bound(&mut self, from: Option<&Engine>) {
        match from {
            // The first replica: a count of its own, once.
            None if self.conns.bound_share().is_none() => self.conns.share_bound(None),
            None => {}
            // Another: the first's count (joined once: `share_bound`).
            Some(f) => {
                if let Some(s) = f.conns.bound_share() {
                    self.conns.share_bound(Some(s));
                }
            }
        }
    }

    /// Let every service's scheduler use the state of `from`'s service of
    /// the same key and scheduler (`rr`/`wrr`'s position, `lblc`/`lblcr`'s
    /// table: [`crate::sched::shared`]), where it does not yet, so that the
    /// replicas of a service schedule as one, as the kernel's CPUs do on
    /// the service's one state. Call it on every replica but the first,
    /// with the first, after changes that may add services or bind
    /// schedulers.
    pub fn share_sched_state(&mut self, from: &Engine) {
        for svc in self.services.iter_mut() {
            let Some(mine) = svc.scheduler.shared() else {
                continue;
            };
            let theirs = from
                .services
                .find(&svc.key)
                .and_then(|r| from.services.get(r))
                .filter(|s| s.scheduler.name() == svc.scheduler.name())
                .and_then(|s| s.scheduler.shared());
            if let Some(t) = theirs
                && !t.same(&mine)
            {
                svc.scheduler.share(t);
            }
        }
    }

    /// The services.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The connection table (connections and templates).
    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }

    /// Current timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Global statistics.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Handles of entries a SYN made that the table-full eviction may
    /// still take: the ones in their handshake, plus stale ones not yet
    /// pruned by [`Engine::poll`] (8 bytes each).
    pub fn embryonic_tracked(&self) -> usize {
        self.embryonic.len()
    }

    /// Engine counters.
    pub fn counters(&self) -> &EngineCounters {
        &self.counters
    }

    /// Sysctls in force.
    pub fn sysctls(&self) -> &Sysctls {
        &self.sysctls
    }

    /// Change sysctls.
    pub fn set_sysctls(&mut self, s: Sysctls) {
        if self.sysctls != s {
            self.fast_path_invalidate(|_| true);
        }
        self.sysctls = s;
    }

    // ----- control operations ---------------------------------------------------

    /// `-A`.
    pub fn add_service(&mut self, key: ServiceKey, cfg: ServiceConfig) -> Result<(), CtlError> {
        self.services.add(key, cfg).map(|_| ())
    }

    /// `-E` (replaces every setting).
    pub fn edit_service(&mut self, key: &ServiceKey, cfg: ServiceConfig) -> Result<(), CtlError> {
        self.services.edit(key, cfg)?;
        if let Some(r) = self.services.find(key) {
            let owner = r.to_owner();
            self.fast_path_invalidate(|c| c.owner == owner);
        }
        Ok(())
    }

    /// `-D`: the service, its real servers and its connections go.
    pub fn delete_service(&mut self, key: &ServiceKey) -> Result<(), CtlError> {
        let r = self.services.find(key).ok_or(CtlError::NoSuchService)?;
        self.services.delete(key)?;
        self.drop_conns_where(|c| c.owner == r.to_owner());
        Ok(())
    }

    /// `-C`.
    pub fn flush(&mut self) {
        self.services.clear();
        self.conns.clear();
        self.frags.clear();
        if let Some(fp) = self.fast.as_deref_mut() {
            fp.installed.clear();
            fp.ops.push(FastPathOp::RemoveAll);
        }
    }

    /// `-a`.
    pub fn add_dest(
        &mut self,
        key: &ServiceKey,
        cfg: &DestConfig,
        now: Instant,
    ) -> Result<(), CtlError> {
        self.services.add_dest(key, cfg, now).map(|_| ())
    }

    /// `-e`.
    pub fn edit_dest(&mut self, key: &ServiceKey, cfg: &DestConfig) -> Result<(), CtlError> {
        self.services.edit_dest(key, cfg)?;
        if let Some(r) = self.services.find(key) {
            let owner = r.to_owner();
            self.fast_path_invalidate(|c| c.owner == owner);
        }
        Ok(())
    }

    /// `-d`. With `expire_nodest_conn` the server's connections go at once;
    /// otherwise they stay (their packets are dropped) until they expire.
    pub fn delete_dest(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
        now: Instant,
    ) -> Result<(), CtlError> {
        let id = self.services.delete_dest(key, addr, port, now)?;
        if self.sysctls.expire_nodest_conn {
            self.drop_conns_where(|c| c.dest == id);
        } else {
            // The connections stay, their packets are dropped: by the engine.
            self.fast_path_invalidate(|c| c.dest == id);
        }
        Ok(())
    }

    /// `-Z` for one service (and its real servers), or everything.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), CtlError> {
        match key {
            Some(k) => {
                let r = self.services.find(k).ok_or(CtlError::NoSuchService)?;
                let svc = self.services.get_mut(r).ok_or(CtlError::NoSuchService)?;
                zero_service(svc);
            }
            None => {
                for svc in self.services.iter_mut() {
                    zero_service(svc);
                }
                self.stats.zero();
            }
        }
        Ok(())
    }

    /// `--set tcp tcpfin udp` (seconds, 0 = unchanged).
    pub fn set_timeouts(&mut self, tcp: u32, tcpfin: u32, udp: u32) -> Result<(), CtlError> {
        const MAX: u32 = i32::MAX as u32 / 1000;
        if tcp > MAX || tcpfin > MAX || udp > MAX {
            return Err(CtlError::Invalid("timeout too large"));
        }
        if tcp != 0 {
            self.timeouts.set_tcp_established(tcp);
        }
        if tcpfin != 0 {
            self.timeouts.set_tcp_fin(tcpfin);
        }
        if udp != 0 {
            self.timeouts.set_udp(udp);
        }
        Ok(())
    }

    pub(super) fn drop_conns_where(&mut self, pred: impl FnMut(&Conn) -> bool) {
        let mut out = core::mem::take(&mut self.expired);
        self.conns.flush_matching(pred, &mut out);
        for c in out.drain(..) {
            self.unbind(&c);
        }
        self.expired = out;
    }

    // ----- firewall-mark rules ---------------------------------------------------

    /// The firewall-mark rules, in order.
    pub fn fwmark_rules(&self) -> &FwmarkRules {
        &self.fwmark_rules
    }

    /// Append a firewall-mark rule (see [`FwmarkRules::add`]).
    pub fn add_fwmark_rule(&mut self, rule: &FwmarkRule) -> Result<(), CtlError> {
        self.fwmark_rules.add(rule)
    }

    /// Remove a firewall-mark rule (see [`FwmarkRules::delete`]).
    pub fn delete_fwmark_rule(&mut self, rule: &FwmarkRule) -> Result<(), CtlError> {
        self.fwmark_rules.delete(rule)
    }

    /// Remove every firewall-mark rule (`-C` leaves them, as it leaves
    /// iptables' rules).
    pub fn flush_fwmark_rules(&mut self) {
        self.fwmark_rules.clear();
    }

    /// Replace the rules mirrored from the host's firewall (they run before
    /// rvs's own, see [`FwmarkRules`]). Refused, changing nothing, when the
    /// claim check ([`Engine::set_claim_check`]) says the data plane's filter
    /// cannot hold the table they make: `Err` with its reason.
    pub fn set_host_fwmark_rules(&mut self, rules: &[FwmarkRule]) -> Result<(), String> {
        let mut next = self.fwmark_rules.clone();
        next.set_host(rules);
        if next == self.fwmark_rules {
            return Ok(());
        }
        if let Some(guard) = &self.claim_guard {
            let mut view = TableView::of(self);
            view.fwmark = next.ordered().cloned().collect();
            (guard.0)(&crate::claims::claims(&view))?;
        }
        self.fwmark_rules = next;
        Ok(())
    }

    /// The mark a new flow is looked up with: the frame's own, or else the
    /// rules' (free when there are no rules).
    #[inline]
    pub(super) fn flow_mark(&self, frame: &Frame<'_>, meta: &FlowMeta, proto: Protocol) -> u32 {
        if frame.fwmark != 0 || self.fwmark_rules.is_empty() {
            return frame.fwmark;
        }
        self.fwmark_rules
            .mark_of(frame.ingress.0, meta.dst, proto, meta.dport)
    }

    // ----- time -----------------------------------------------------------------

    /// Housekeeping: expire connections, run the rate estimators, age
    /// scheduler caches and the real-server trash. Call it often (every
    /// 100 ms to 1 s); its cost is proportional to the work due.
    pub fn poll(&mut self, now: Instant) {
        let mut out = core::mem::take(&mut self.expired);
        self.conns.poll_expired(now, &mut out);
        for c in out.drain(..) {
            self.unbind(&c);
        }
        self.expired = out;
        self.sync_prune();
        self.prune_embryonic();
        self.stats.estimate(now);
        for svc in self.services.iter_mut() {
            svc.stats.estimate(now);
            for d in svc.dests.iter_mut() {
                d.stats.estimate(now);
            }
            svc.scheduler.tick(now);
        }
        // Trash entries are kept while connections still count on them.
        self.services.purge_trash(now, |_| false);
        self.prune_hops();
        self.frags.expire(now);
        self.sync_frag_counters();
    }

    /// The next-hop map is keyed by addresses others choose (every NAT
    /// client gets one, a spoofed one too): when it holds more than twice
    /// what the real servers and the connections need, plus
    /// [`HOP_SLACK`], keep only those (an O(table) pass, rare by that
    /// rule). A pruned address that shows up again is resolved again.
    pub(super) fn prune_hops(&mut self) {
        let dests: usize = self.services.iter().map(|(_, s)| s.dests.len()).sum();
        let needed = self.conns.len() + dests;
        if self.hops.len() <= HOP_SLACK + 2 * needed {
            return;
        }
        let mut keep: hashbrown::HashSet<u128> = hashbrown::HashSet::with_capacity(2 * needed);
        for (_, s) in self.services.iter() {
            for d in s.dests.iter() {
                keep.insert(addr_key(d.addr));
            }
        }
        for (_, c) in self.conns.iter() {
            keep.insert(addr_key(c.caddr));
            keep.insert(addr_key(c.daddr));
        }
        let before = self.hops.len();
        let pruned = &mut self.pruned_hops;
        self.hops.retain(|k, _| {
            let kept = keep.contains(k);
            if !kept && pruned.len() < PRUNED_HOPS_KEPT {
                let v6 = Ipv6Addr::from_bits(*k);
                pruned.push(match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6(v6),
                });
            }
            kept
        });
        self.counters.hops_pruned += (before - self.hops.len()) as u64;
        if self.hops.len() != before {
            self.hop_epoch = self.hop_epoch.wrapping_add(1);
        }
    }

    /// Next hops pruned since the last call (for the resolver to forget).
    pub fn take_pruned_hops(&mut self) -> Vec<IpAddr> {
        core::mem::take(&mut self.pruned_hops)
    }

    /// Next hops known now.
    pub fn hop_count(&self) -> usize {
        self.hops.len()
    }

    /// A connection left the table: settle its real server's counters.
    pub(super) fn unbind(&mut self, c: &Conn) {
        self.fast_path_gone(c);
        let Some(svc) = self.services.get_mut(ServiceRef::from_owner(c.owner)) else {
            return;
        };
        let Some(d) = svc.dest_by_id_mut(c.dest) else {
            return;
        };
        unbind_dest(d, c.flags);
    }

    /// Sum of the counters of every service (for checks and listings).
    pub fn total_counters(&self) -> Counters {
        self.stats.shown()
    }
}

pub(super) fn zero_service(svc: &mut Service) {
    svc.stats.zero();
    for d in svc.dests.iter_mut() {
        d.stats.zero();
    }
}

pub(super) fn unbind_dest(d: &mut Dest, flags: u32) {
    if flags & CONN_F_TEMPLATE != 0 {
        d.count_persist(-1);
    } else if flags & CONN_F_INACTIVE != 0 {
        d.count(0, -1);
    } else {
        d.count(-1, 0);
    }
    d.after_unbind();
}
