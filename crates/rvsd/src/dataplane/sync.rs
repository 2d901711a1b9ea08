//! The sync thread: the engine's next hops and ports in step with the
//! resolver, the filter in step with the table, the SYN guard, and the fast
//! path's cache in step with the engine.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rvs_core::engine::{Hop, PortId};
use rvs_io::flowcache;
use rvs_io::neigh::NextHop;
use rvs_io::nft::{Claims, FwmarkMatch};
use rvs_wire::EthernetAddress;

use super::probe::{PROBE_INTERVAL, TRIAL_CHECK_INTERVAL, probe_inputs, trial_spent};
use super::{DpShared, Filter, port_config};
use crate::classes::{ClassSet, class_set};
use crate::server::Shared;

fn hop_of(h: &NextHop) -> Hop {
    Hop {
        port: PortId(h.ifindex),
        mac: EthernetAddress(h.neighbour_mac),
    }
}

/// The fwmark rules to claim, as the classifier and the nftables table
/// take them.
fn nft_claims(set: &ClassSet) -> Vec<FwmarkMatch> {
    crate::classes::fwmark_matches(&set.fwmark)
}

/// The sync thread's memory: what it last put into the filter and engine.
#[derive(Debug, Default)]
pub(super) struct Sync {
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
    /// The namespace's own addresses as last put into the classifier, and
    /// when they were last read.
    local_addrs: Vec<IpAddr>,
    last_local_scan: Option<Instant>,
    /// Whether reading them failed last time (logged once per failure).
    local_failed: bool,
}

/// How often the director's own addresses are read again (an address
/// added since is left to the kernel at most this late).
const LOCAL_SCAN: Duration = Duration::from_secs(1);

/// How often the sync thread looks up every address a worker is waiting
/// for (new hops come from [`Resolver::take_ready`](rvs_io::neigh::Resolver::take_ready) every round).
const WANTED_SCAN: Duration = Duration::from_millis(20);

/// The resolver forgets destinations nobody asked for during this long
/// (rvs-io's default, 300 s; `RVSD_RESOLVER_IDLE_SECS` shortens it for the
/// tests that check real servers are never forgotten).
pub(super) fn resolver_idle() -> Duration {
    static IDLE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *IDLE.get_or_init(|| {
        let default = rvs_io::neigh::ResolverConfig::default().idle_timeout;
        match std::env::var("RVSD_RESOLVER_IDLE_SECS") {
            Ok(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => {
                    tracing::warn!(
                        "RVSD_RESOLVER_IDLE_SECS={v:?} is not a number of seconds; \
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
    pub(super) fn run_once(&mut self, dp: &DpShared, shared: &Shared) {
        self.sync(dp, shared);
        self.locals(dp);
        self.fast(dp, shared);
    }

    /// Keep the filter's set of the director's own addresses (the XDP
    /// classifier's map, or the nftables table's NAT rules): a NAT real server's frames to them are the director's own
    /// connections (health checks: `rvs health`, keepalived, ldirectord)
    /// and go to the kernel; without this they were taken for replies and
    /// lost, and every NAT real server failed its checks.
    fn locals(&mut self, dp: &DpShared) {
        if self
            .last_local_scan
            .is_some_and(|t| t.elapsed() < LOCAL_SCAN)
        {
            return;
        }
        self.last_local_scan = Some(Instant::now());
        let addrs = match rvs_io::localaddr::local_addrs() {
            Ok(a) => a,
            Err(e) => {
                if !self.local_failed {
                    tracing::error!(
                        "cannot read this namespace's addresses (getifaddrs: {e}): the \
                         director's own connections to NAT real servers may be lost"
                    );
                    self.local_failed = true;
                }
                return;
            }
        };
        self.local_failed = false;
        if addrs == self.local_addrs {
            return;
        }
        let mut filter = dp.filter();
        match &mut *filter {
            Some(Filter::Xdp(c)) => match c.set_local_addrs(&addrs) {
                Ok(()) => self.local_addrs = addrs,
                Err(e) => crate::limited!(
                    error,
                    "local_addr",
                    "the classifier's map of local addresses: {e}"
                ),
            },
            Some(Filter::Nft(_)) => {
                // The NAT drop rules name them: the table is written
                // again at the next turn.
                self.local_addrs = addrs;
                self.config_gen = None;
            }
            None => {}
        }
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
        let state = shared.lock();
        // Lock order: the state, the replicas, the fast path, the filter.
        let engines = std::sync::Arc::clone(state.engines());
        let mut guards = engines.lock_all();
        if inputs.is_empty() && !guards.iter().any(|e| e.has_fast_path_ops()) {
            return;
        }
        let mut list: Vec<&mut rvs_core::Engine> = guards.iter_mut().map(|g| &mut **g).collect();
        let mut set = super::fastsync::EngineSet::new(&mut list, 0);
        let Some(mut fast) = dp.fast() else {
            return;
        };
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
            fast.apply_probes(&dp.fast_probed, inputs, cache, &mut set, now, mono, wall);
            self.trials = fast.trials(&dp.fast_probed);
        }
        fast.apply_ops(cache, &mut set, now, mono);
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
        let state = shared.lock();
        let engines = std::sync::Arc::clone(state.engines());
        // Hops the engines pruned (addresses nothing needs any more): the
        // resolver stops tracking them too, so neither grows without bound.
        // (Each replica prunes its own; an address another still needs is
        // looked up again when it asks.)
        for pruned in engines.each(|e| e.take_pruned_hops()) {
            for a in pruned {
                dp.resolver.forget(a);
            }
        }
        let cgen = state.generation();
        if found.is_empty() && !resolver_changed && self.config_gen == Some(cgen) {
            return;
        }
        if !found.is_empty() {
            let mut wanted = dp.wanted();
            engines.each(|engine| {
                for (a, h) in &found {
                    engine.set_hop(*a, hop_of(h));
                }
            });
            for (a, _) in &found {
                wanted.remove(a);
            }
        }
        if resolver_changed {
            self.resolver_gen = Some(rgen);
            let mut wanted = dp.wanted();
            let hops = dp.resolver.hops();
            engines.each(|engine| {
                for (a, h) in &hops {
                    engine.set_hop(*a, hop_of(h));
                }
            });
            for (a, _) in &hops {
                wanted.remove(a);
            }
            for p in &dp.ports {
                if let Some(cfg) = port_config(&dp.resolver, p.ifindex) {
                    engines.each(|engine| engine.set_port(PortId(p.ifindex), cfg));
                    // The classifier's idea of the interface's address
                    // follows a change of it (lock order: state, filter).
                    if let Some(Filter::Xdp(c)) = &mut *dp.filter()
                        && let Err(e) = c.set_if_mac(p.ifindex, cfg.mac.0)
                    {
                        tracing::error!(iface = %p.name, "cannot update the classifier's MAC: {e}");
                    }
                }
            }
        }
        if self.config_gen != Some(cgen) {
            if let Some((_, at)) = &self.failed
                && wall.duration_since(*at) < SYNC_RETRY
            {
                return;
            }
            let set = class_set(&engines.first());
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
            let errors = put_into_filter(&mut dp.filter(), &set, &self.local_addrs);
            if errors.is_empty() {
                if let Some((why, _)) = self.failed.take() {
                    tracing::info!(
                        "data plane: the filter holds the table again \
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
                    tracing::error!(
                        generation = cgen,
                        reason = %why,
                        "data plane: cannot put table generation {cgen} into the \
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
                crate::limited!(error, "", "data plane: SYN guard: {e}");
                return;
            }
            let permille = (shed * 1000.0).round() as u32;
            let was = dp.syn_shed_permille.swap(permille, Ordering::Relaxed);
            if (was == 0) != (permille == 0) {
                tracing::warn!(
                    "data plane: SYN guard {}",
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
fn put_into_filter(filter: &mut Option<Filter>, set: &ClassSet, local: &[IpAddr]) -> Vec<String> {
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
                local,
            };
            if let Err(e) = t.set(&claims) {
                errors.push(format!("the nftables table: {e}"));
            }
        }
        None => {}
    }
    errors
}

/// In debug builds (the tests'), `RVSD_INJECT_SYNC_FAIL=PORT`: the filter
/// refuses every table with a service on PORT (a test hook, like
/// `RVSD_INJECT_PANIC`: the tests of a data plane that cannot take a change
/// need one that fails on demand).
fn injected_sync_failure() -> Option<u16> {
    static PORT: std::sync::OnceLock<Option<u16>> = std::sync::OnceLock::new();
    if !cfg!(debug_assertions) {
        return None;
    }
    *PORT.get_or_init(|| {
        std::env::var("RVSD_INJECT_SYNC_FAIL")
            .ok()
            .and_then(|v| v.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
