//! Configuration changes as values, and atomic batches of them.
//!
//! [`ConfigOp`] is one control operation (`-A`, `-a`, `-C`, `--set` …).
//! [`Engine::apply`] performs one; the engine's control methods already check
//! everything before they change anything, so a single failed operation
//! leaves the table as it was.
//!
//! [`Engine::apply_batch`] performs a list of them all-or-nothing (what
//! `ipvsadm -R` through rvsd needs): it first runs the whole list against a
//! [`Model`] — a cheap copy-on-write picture of the configuration (which
//! services exist, their family and scheduler, the address and port of their
//! real servers) — with exactly the checks the real operations make, in the
//! same order, so that the first failing operation and its errno are the ones
//! the real sequence would have hit. Only if every operation passes is the
//! list applied for real.
//!
//! The model mirrors these checks of `service.rs` / `engine/ctl.rs` (and must be
//! kept in step with them):
//! * existence: adding an existing service or real server ⇒ EEXIST; any other
//!   operation on a missing service ⇒ ESRCH; editing or deleting a missing
//!   real server ⇒ ENOENT;
//! * the service configuration (fwmark 0, IPv6 netmask, persistence engine,
//!   scheduler name) through the very same `validate_config`;
//! * the real-server configuration (weight and threshold ranges, mixed
//!   families, GUE port, unicast address) through the very same `validate_dest`;
//! * the only scheduler whose update can fail: `mh` holds at most
//!   [`mh::TABLE_SIZE`] real servers (on `-a`, and on `-E` switching to `mh`);
//! * the timeout range of `--set`;
//! * firewall-mark rules: the model holds a copy of the rule list (made on
//!   the batch's first rule operation) and runs the very same
//!   `FwmarkRules::add` / `delete` on it.
//!
//! Because of that, the real pass cannot fail. If it does anyway, that is a
//! bug in the model: [`Engine::apply_batch`] then returns the error of the
//! operation that failed, and the operations before it stay applied.
//!
//! Cost: the dry run touches only the services the batch names (a service's
//! real servers are copied into the model the first time the batch touches
//! it), so it is proportional to the batch, not to the table.

use core::net::IpAddr;

use hashbrown::HashMap;

use crate::claims::{self, DestView, TableView};
use crate::dest::DestConfig;
use crate::engine::Engine;
use crate::fwmark::{FwmarkRule, FwmarkRules};
use crate::sched::mh;
use crate::service::{
    CtlError, ServiceConfig, ServiceKey, Services, validate_config, validate_dest,
};
use crate::time::Instant;
use crate::types::{Af, FwdMethod};

/// Largest `--set` value in seconds the engine accepts (the kernel's
/// `INT_MAX / HZ` with HZ = 1000); mirrors [`Engine::set_timeouts`].
const MAX_TIMEOUT_SECS: u32 = i32::MAX as u32 / 1000;

/// One control operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// `-A`.
    AddService(ServiceKey, ServiceConfig),
    /// `-E` (replaces every setting).
    EditService(ServiceKey, ServiceConfig),
    /// `-D`.
    DeleteService(ServiceKey),
    /// `-C`.
    Flush,
    /// `-a`.
    AddDest(ServiceKey, DestConfig),
    /// `-e` (the real server is identified by the address and port in the config).
    EditDest(ServiceKey, DestConfig),
    /// `-d`.
    DeleteDest(ServiceKey, IpAddr, u16),
    /// `-Z` of one service, or of everything.
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp` (seconds, 0 = unchanged).
    SetTimeouts(u32, u32, u32),
    /// `rvs fwmark add`: append a firewall-mark rule.
    AddFwmarkRule(FwmarkRule),
    /// `rvs fwmark del`: remove a firewall-mark rule.
    DeleteFwmarkRule(FwmarkRule),
    /// `rvs fwmark flush`: remove every firewall-mark rule (`-C` does not).
    FlushFwmarkRules,
}

/// What the dry run knows about one service.
#[derive(Debug, Clone)]
struct SvcModel {
    af: Af,
    scheduler: &'static str,
    /// Real servers by (address, port), with their method (the claims of
    /// NAT real servers depend on it).
    dests: HashMap<(IpAddr, u16), FwdMethod>,
}

/// A copy-on-write picture of the configuration for dry runs: the engine's
/// services, overlaid with what the batch did so far.
#[derive(Debug)]
pub struct Model<'e> {
    base: &'e Services,
    /// After a `-C` the base no longer counts.
    flushed: bool,
    /// Services the batch touched: `None` = deleted.
    overlay: HashMap<ServiceKey, Option<SvcModel>>,
    /// The firewall-mark rules as they are.
    base_fwmark: &'e FwmarkRules,
    /// The rules after the batch's rule operations (copied on first touch).
    fwmark: Option<FwmarkRules>,
}

/// How many real servers a scheduler can hold (`None` = no limit).
fn capacity(scheduler: &str) -> Option<usize> {
    (scheduler == "mh").then_some(mh::TABLE_SIZE)
}

impl<'e> Model<'e> {
    /// A model of `services` and `fwmark` rules as they are.
    pub fn new(services: &'e Services, fwmark: &'e FwmarkRules) -> Self {
        Model {
            base: services,
            flushed: false,
            overlay: HashMap::new(),
            base_fwmark: fwmark,
            fwmark: None,
        }
    }

    /// The model's rule list, copied on first touch.
    fn fwmark_mut(&mut self) -> &mut FwmarkRules {
        self.fwmark.get_or_insert_with(|| self.base_fwmark.clone())
    }

    fn exists(&self, key: &ServiceKey) -> bool {
        match self.overlay.get(key) {
            Some(m) => m.is_some(),
            None => !self.flushed && self.base.find(key).is_some(),
        }
    }

    /// The service, copied into the overlay on first touch.
    fn get_mut(&mut self, key: &ServiceKey) -> Result<&mut SvcModel, CtlError> {
        if !self.overlay.contains_key(key) {
            let copied = if self.flushed {
                None
            } else {
                self.base
                    .find(key)
                    .and_then(|r| self.base.get(r))
                    .map(|svc| SvcModel {
                        af: svc.key.af(),
                        scheduler: svc.scheduler.name(),
                        dests: svc
                            .dests
                            .iter()
                            .map(|d| ((d.addr, d.port), d.fwd))
                            .collect(),
                    })
            };
            self.overlay.insert(*key, copied);
        }
        self.overlay
            .get_mut(key)
            .and_then(Option::as_mut)
            .ok_or(CtlError::NoSuchService)
    }

    /// The table the operations checked so far end with.
    pub fn view(&self) -> TableView {
        let mut services: Vec<(ServiceKey, Vec<DestView>)> = Vec::new();
        if !self.flushed {
            for (_, svc) in self.base.iter() {
                if !self.overlay.contains_key(&svc.key) {
                    let dests = svc.dests.iter().map(|d| (d.addr, d.port, d.fwd)).collect();
                    services.push((svc.key, dests));
                }
            }
        }
        for (key, m) in &self.overlay {
            if let Some(m) = m {
                let dests = m.dests.iter().map(|(&(a, p), &f)| (a, p, f)).collect();
                services.push((*key, dests));
            }
        }
        let fwmark = self.fwmark.as_ref().unwrap_or(self.base_fwmark);
        TableView {
            services,
            fwmark: fwmark.ordered().cloned().collect(),
        }
    }

    /// Run `op` against the model with the checks the real operation makes.
    pub fn check(&mut self, op: &ConfigOp) -> Result<(), CtlError> {
        match op {
            ConfigOp::AddService(key, cfg) => {
                if self.exists(key) {
                    return Err(CtlError::Exists);
                }
                let sched = validate_config(key, cfg)?;
                self.overlay.insert(
                    *key,
                    Some(SvcModel {
                        af: key.af(),
                        scheduler: sched.name(),
                        dests: HashMap::new(),
                    }),
                );
            }
            ConfigOp::EditService(key, cfg) => {
                if !self.exists(key) {
                    return Err(CtlError::NoSuchService);
                }
                let sched = validate_config(key, cfg)?;
                let svc = self.get_mut(key)?;
                if sched.name() != svc.scheduler {
                    if capacity(sched.name()).is_some_and(|c| svc.dests.len() > c) {
                        return Err(CtlError::Invalid("too many destinations for the scheduler"));
                    }
                    svc.scheduler = sched.name();
                }
            }
            ConfigOp::DeleteService(key) => {
                if !self.exists(key) {
                    return Err(CtlError::NoSuchService);
                }
                self.overlay.insert(*key, None);
            }
            ConfigOp::Flush => {
                self.flushed = true;
                self.overlay.clear();
            }
            ConfigOp::AddDest(key, cfg) => {
                let svc = self.get_mut(key)?;
                validate_dest(svc.af, cfg)?;
                if svc.dests.contains_key(&(cfg.addr, cfg.port)) {
                    return Err(CtlError::Exists);
                }
                if capacity(svc.scheduler).is_some_and(|c| svc.dests.len() + 1 > c) {
                    return Err(CtlError::Invalid("too many destinations"));
                }
                svc.dests.insert((cfg.addr, cfg.port), cfg.fwd);
            }
            ConfigOp::EditDest(key, cfg) => {
                let svc = self.get_mut(key)?;
                validate_dest(svc.af, cfg)?;
                match svc.dests.get_mut(&(cfg.addr, cfg.port)) {
                    Some(fwd) => *fwd = cfg.fwd,
                    None => return Err(CtlError::NotFound("destination")),
                }
            }
            ConfigOp::DeleteDest(key, addr, port) => {
                let svc = self.get_mut(key)?;
                if svc.dests.remove(&(*addr, *port)).is_none() {
                    return Err(CtlError::NotFound("destination"));
                }
            }
            ConfigOp::Zero(Some(key)) => {
                if !self.exists(key) {
                    return Err(CtlError::NoSuchService);
                }
            }
            ConfigOp::Zero(None) => {}
            ConfigOp::SetTimeouts(tcp, tcpfin, udp) => {
                if *tcp > MAX_TIMEOUT_SECS || *tcpfin > MAX_TIMEOUT_SECS || *udp > MAX_TIMEOUT_SECS
                {
                    return Err(CtlError::Invalid("timeout too large"));
                }
            }
            ConfigOp::AddFwmarkRule(rule) => self.fwmark_mut().add(rule)?,
            ConfigOp::DeleteFwmarkRule(rule) => self.fwmark_mut().delete(rule)?,
            ConfigOp::FlushFwmarkRules => self.fwmark_mut().clear(),
        }
        Ok(())
    }
}

/// Whether `op` can make the filters claim more: new services, real
/// servers (a NAT one's replies), method changes, firewall-mark rules (a
/// deleted rule can stop hiding an earlier one). Deletions and flushes of
/// the table only ever claim less.
fn grows_claims(op: &ConfigOp) -> bool {
    matches!(
        op,
        ConfigOp::AddService(..)
            | ConfigOp::AddDest(..)
            | ConfigOp::EditDest(..)
            | ConfigOp::AddFwmarkRule(_)
            | ConfigOp::DeleteFwmarkRule(_)
    )
}

impl Engine {
    /// Perform one operation (it changes nothing when it fails), refused
    /// with [`CtlError::NoRoom`] when the installed claim check
    /// ([`Engine::set_claim_check`]) says the filter could not hold the
    /// table it would make.
    pub fn apply(&mut self, op: &ConfigOp, now: Instant) -> Result<(), CtlError> {
        if self.claim_guard().is_some() && grows_claims(op) {
            self.check_batch(core::slice::from_ref(op))
                .map_err(|(_, e)| e)?;
        }
        self.apply_after_check(op, now)
    }

    /// Perform one operation of a list that [`Engine::check_batch`] passed
    /// as a whole, in order, without running the claim check again (a
    /// 100k-line restore checks its claims once, not per line). Still
    /// changes nothing when it fails.
    pub fn apply_after_check(&mut self, op: &ConfigOp, now: Instant) -> Result<(), CtlError> {
        match op {
            ConfigOp::AddService(key, cfg) => self.add_service(*key, cfg.clone()),
            ConfigOp::EditService(key, cfg) => self.edit_service(key, cfg.clone()),
            ConfigOp::DeleteService(key) => self.delete_service(key),
            ConfigOp::Flush => {
                self.flush();
                Ok(())
            }
            ConfigOp::AddDest(key, cfg) => self.add_dest(key, cfg, now),
            ConfigOp::EditDest(key, cfg) => self.edit_dest(key, cfg),
            ConfigOp::DeleteDest(key, addr, port) => self.delete_dest(key, *addr, *port, now),
            ConfigOp::Zero(key) => self.zero(key.as_ref()),
            ConfigOp::SetTimeouts(tcp, tcpfin, udp) => self.set_timeouts(*tcp, *tcpfin, *udp),
            ConfigOp::AddFwmarkRule(rule) => self.add_fwmark_rule(rule),
            ConfigOp::DeleteFwmarkRule(rule) => self.delete_fwmark_rule(rule),
            ConfigOp::FlushFwmarkRules => {
                self.flush_fwmark_rules();
                Ok(())
            }
        }
    }

    /// Dry run of `ops`: the index and error of the first operation that
    /// would fail, changing nothing.
    ///
    /// With a claim check installed ([`Engine::set_claim_check`]) the
    /// claims of the table the list ends with are checked too (once, when
    /// some operation can add claims); a refusal is reported at the last
    /// such operation, as [`CtlError::NoRoom`].
    pub fn check_batch(&self, ops: &[ConfigOp]) -> Result<(), (usize, CtlError)> {
        let mut model = Model::new(self.services(), self.fwmark_rules());
        for (i, op) in ops.iter().enumerate() {
            model.check(op).map_err(|e| (i, e))?;
        }
        if let Some(guard) = self.claim_guard()
            && let Some(last) = ops.iter().rposition(grows_claims)
        {
            let claims = claims::claims(&model.view());
            (guard.0)(&claims).map_err(|e| (last, CtlError::NoRoom(e)))?;
        }
        Ok(())
    }

    /// Perform every operation of `ops`, or none: on error, the index of the
    /// first operation that fails and its error, with the engine unchanged.
    pub fn apply_batch(&mut self, ops: &[ConfigOp], now: Instant) -> Result<(), (usize, CtlError)> {
        self.check_batch(ops)?;
        for (i, op) in ops.iter().enumerate() {
            // Cannot fail after a clean dry run (see the module docs); if it
            // does, the model is out of step with the engine.
            self.apply_after_check(op, now).map_err(|e| (i, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::service::SVC_F_PERSISTENT;
    use crate::types::{FwdMethod, Protocol, TunType};
    use core::fmt::Write;
    use core::net::Ipv4Addr;

    fn tcp(a: [u8; 4], port: u16) -> ServiceKey {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::from(a)),
            port,
        }
    }

    fn rs(a: [u8; 4], port: u16) -> DestConfig {
        DestConfig::new(IpAddr::V4(Ipv4Addr::from(a)), port)
    }

    fn svc(sched: &str) -> ServiceConfig {
        let mut c = ServiceConfig::new(Af::Inet);
        c.scheduler = sched.into();
        c
    }

    fn engine() -> Engine {
        Engine::new(EngineConfig::default())
    }

    /// Everything a listing shows, in kernel order (services newest first).
    fn dump(e: &Engine) -> String {
        let mut out = String::new();
        let mut svcs: Vec<_> = e.services().iter().map(|(_, s)| s).collect();
        svcs.sort_by_key(|s| core::cmp::Reverse(s.seq));
        for s in svcs {
            let _ = writeln!(
                out,
                "{:?} {:?} sched={} seq={} {:?}",
                s.key,
                s.config,
                s.scheduler.name(),
                s.seq,
                s.stats.shown()
            );
            for d in &s.dests {
                let _ = writeln!(
                    out,
                    "  {:?} id={:?} a={} i={} p={} {:?}",
                    d.config(),
                    d.id,
                    d.activeconns,
                    d.inactconns,
                    d.persistconns,
                    d.stats.shown()
                );
            }
            for (d, at) in &s.trash {
                let _ = writeln!(out, "  trash {:?} {:?}", d.config(), at);
            }
        }
        let t = e.timeouts();
        let _ = writeln!(
            out,
            "timeouts {} {} {}",
            t.tcp_established_secs(),
            t.tcp_fin_secs(),
            t.udp_secs()
        );
        out
    }

    fn populated() -> Engine {
        let mut e = engine();
        let now = Instant::ZERO;
        let ops = [
            ConfigOp::AddService(tcp([10, 0, 0, 1], 80), svc("rr")),
            ConfigOp::AddDest(tcp([10, 0, 0, 1], 80), rs([192, 168, 1, 1], 80)),
            ConfigOp::AddDest(tcp([10, 0, 0, 1], 80), rs([192, 168, 1, 2], 80)),
            ConfigOp::AddService(tcp([10, 0, 0, 2], 443), svc("mh")),
            ConfigOp::AddDest(tcp([10, 0, 0, 2], 443), rs([192, 168, 1, 3], 443)),
            ConfigOp::SetTimeouts(100, 20, 30),
        ];
        e.apply_batch(&ops, now).unwrap();
        e
    }

    #[test]
    fn single_ops_apply() {
        let mut e = engine();
        let k = tcp([10, 0, 0, 1], 80);
        e.apply(&ConfigOp::AddService(k, svc("wlc")), Instant::ZERO)
            .unwrap();
        assert_eq!(
            e.apply(&ConfigOp::AddService(k, svc("wlc")), Instant::ZERO),
            Err(CtlError::Exists)
        );
        e.apply(&ConfigOp::AddDest(k, rs([1, 1, 1, 1], 80)), Instant::ZERO)
            .unwrap();
        e.apply(&ConfigOp::Zero(Some(k)), Instant::ZERO).unwrap();
        e.apply(
            &ConfigOp::DeleteDest(k, "1.1.1.1".parse().unwrap(), 80),
            Instant::ZERO,
        )
        .unwrap();
        e.apply(&ConfigOp::DeleteService(k), Instant::ZERO).unwrap();
        assert!(e.services().is_empty());
    }

    #[test]
    fn bad_line_in_the_middle_changes_nothing() {
        let mut e = populated();
        let before = dump(&e);
        let k1 = tcp([10, 0, 0, 1], 80);
        let k3 = tcp([10, 0, 0, 3], 80);
        let mut bad = svc("nope");
        bad.flags = SVC_F_PERSISTENT;
        let ops = [
            ConfigOp::AddService(k3, svc("wrr")),
            ConfigOp::AddDest(k3, rs([192, 168, 2, 1], 80)),
            ConfigOp::EditDest(k1, {
                let mut d = rs([192, 168, 1, 1], 80);
                d.weight = 7;
                d
            }),
            ConfigOp::DeleteDest(k1, "192.168.1.2".parse().unwrap(), 80),
            ConfigOp::Zero(None),
            ConfigOp::SetTimeouts(1, 1, 1),
            ConfigOp::EditService(k1, bad),
            ConfigOp::AddService(tcp([10, 0, 0, 4], 80), svc("rr")),
        ];
        let err = e.apply_batch(&ops, Instant::from_secs(5)).unwrap_err();
        assert_eq!(err, (6, CtlError::NotFound("scheduler")));
        assert_eq!(err.1.errno(), 2);
        assert_eq!(dump(&e), before);

        // A failing line after a flush also changes nothing.
        let ops = [ConfigOp::Flush, ConfigOp::DeleteService(k1)];
        assert_eq!(
            e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
            (1, CtlError::NoSuchService)
        );
        assert_eq!(dump(&e), before);
    }

    #[test]
    fn duplicates_within_the_batch_fail_at_the_second() {
        let mut e = engine();
        let k = tcp([10, 0, 0, 1], 80);
        let ops = [
            ConfigOp::AddService(k, svc("rr")),
            ConfigOp::AddDest(k, rs([1, 1, 1, 1], 80)),
            ConfigOp::AddService(k, svc("rr")),
        ];
        assert_eq!(
            e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
            (2, CtlError::Exists)
        );
        let ops = [
            ConfigOp::AddService(k, svc("rr")),
            ConfigOp::AddDest(k, rs([1, 1, 1, 1], 80)),
            ConfigOp::AddDest(k, rs([1, 1, 1, 2], 80)),
            ConfigOp::AddDest(k, rs([1, 1, 1, 1], 80)),
        ];
        assert_eq!(
            e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
            (3, CtlError::Exists)
        );
        assert!(e.services().is_empty());
        // Against the live table too.
        e.apply_batch(&ops[..3], Instant::ZERO).unwrap();
        assert_eq!(
            e.apply_batch(&[ConfigOp::AddDest(k, rs([1, 1, 1, 2], 80))], Instant::ZERO)
                .unwrap_err(),
            (0, CtlError::Exists)
        );
    }

    #[test]
    fn delete_then_add_in_one_batch() {
        let mut e = populated();
        let k = tcp([10, 0, 0, 1], 80);
        let ops = [
            ConfigOp::DeleteService(k),
            ConfigOp::AddDest(k, rs([9, 9, 9, 9], 80)),
        ];
        assert_eq!(
            e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
            (1, CtlError::NoSuchService)
        );
        let ops = [
            ConfigOp::DeleteService(k),
            ConfigOp::AddService(k, svc("sh")),
            ConfigOp::AddDest(k, rs([192, 168, 1, 1], 80)),
            ConfigOp::DeleteDest(k, "192.168.1.1".parse().unwrap(), 80),
            ConfigOp::AddDest(k, rs([192, 168, 1, 1], 80)),
        ];
        e.apply_batch(&ops, Instant::ZERO).unwrap();
        let s = e.services().get(e.services().find(&k).unwrap()).unwrap();
        assert_eq!(s.scheduler.name(), "sh");
        assert_eq!(s.dests.len(), 1);
    }

    #[test]
    fn flush_inside_a_batch() {
        let mut e = populated();
        let k1 = tcp([10, 0, 0, 1], 80);
        let k2 = tcp([10, 0, 0, 2], 443);
        // Services from before the flush are gone for the rest of the batch.
        let ops = [
            ConfigOp::AddService(tcp([10, 0, 0, 9], 80), svc("rr")),
            ConfigOp::Flush,
            ConfigOp::AddDest(k1, rs([1, 1, 1, 1], 80)),
        ];
        assert_eq!(
            e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
            (2, CtlError::NoSuchService)
        );
        let ops = [
            ConfigOp::Flush,
            ConfigOp::AddService(k2, svc("rr")),
            ConfigOp::AddDest(k2, rs([192, 168, 1, 3], 443)),
            ConfigOp::AddService(k1, svc("wlc")),
        ];
        e.apply_batch(&ops, Instant::ZERO).unwrap();
        assert_eq!(e.services().len(), 2);
        let s = e.services().get(e.services().find(&k2).unwrap()).unwrap();
        assert_eq!(s.scheduler.name(), "rr");
        assert_eq!(s.dests.len(), 1);
    }

    #[test]
    fn model_errnos_match_the_engine() {
        // Each op alone, against the populated table: the dry run and the
        // real operation must agree.
        let k1 = tcp([10, 0, 0, 1], 80);
        let missing = tcp([10, 9, 9, 9], 80);
        let v6 = DestConfig::new("2001:db8::1".parse().unwrap(), 80);
        let mut gue = rs([1, 2, 3, 4], 80);
        gue.fwd = FwdMethod::Tunnel;
        gue.tunnel.kind = TunType::Gue;
        let mut range = rs([1, 2, 3, 4], 80);
        range.l_threshold = 9;
        let mut weight = rs([1, 2, 3, 4], 80);
        weight.weight = u32::MAX;
        let mut v6mask = ServiceConfig::new(Af::Inet6);
        v6mask.netmask = 129;
        let mut pe = svc("rr");
        pe.pe = Some("nope".into());
        let cases: Vec<(ConfigOp, Option<i32>)> = vec![
            (ConfigOp::AddService(k1, svc("rr")), Some(17)),
            (ConfigOp::AddService(missing, svc("nope")), Some(2)),
            (ConfigOp::AddService(missing, pe.clone()), Some(2)),
            (
                ConfigOp::AddService(
                    ServiceKey::Fwmark {
                        af: Af::Inet,
                        mark: 0,
                    },
                    svc("rr"),
                ),
                Some(22),
            ),
            (
                ConfigOp::AddService(
                    ServiceKey::Addr {
                        proto: Protocol::Udp,
                        addr: "2001:db8::80".parse().unwrap(),
                        port: 80,
                    },
                    v6mask,
                ),
                Some(22),
            ),
            (ConfigOp::EditService(missing, svc("rr")), Some(3)),
            (ConfigOp::EditService(k1, pe), Some(2)),
            (ConfigOp::EditService(k1, svc("lblc")), None),
            (ConfigOp::DeleteService(missing), Some(3)),
            (ConfigOp::AddDest(missing, rs([1, 1, 1, 1], 80)), Some(3)),
            (ConfigOp::AddDest(k1, rs([192, 168, 1, 1], 80)), Some(17)),
            (ConfigOp::AddDest(k1, v6), Some(22)),
            (ConfigOp::AddDest(k1, gue), Some(22)),
            (ConfigOp::AddDest(k1, range), Some(34)),
            (ConfigOp::AddDest(k1, weight), Some(34)),
            (
                ConfigOp::AddDest(k1, rs([255, 255, 255, 255], 80)),
                Some(22),
            ),
            (ConfigOp::AddDest(k1, rs([224, 0, 0, 1], 80)), Some(22)),
            (ConfigOp::EditDest(k1, rs([1, 1, 1, 1], 80)), Some(2)),
            (ConfigOp::EditDest(missing, rs([1, 1, 1, 1], 80)), Some(3)),
            (ConfigOp::EditDest(k1, range), Some(34)),
            (
                ConfigOp::DeleteDest(k1, "1.1.1.1".parse().unwrap(), 80),
                Some(2),
            ),
            (
                ConfigOp::DeleteDest(missing, "1.1.1.1".parse().unwrap(), 80),
                Some(3),
            ),
            (ConfigOp::Zero(Some(missing)), Some(3)),
            (ConfigOp::Zero(None), None),
            (ConfigOp::Flush, None),
            (ConfigOp::SetTimeouts(MAX_TIMEOUT_SECS, 0, 0), None),
            (ConfigOp::SetTimeouts(0, MAX_TIMEOUT_SECS + 1, 0), Some(22)),
            (ConfigOp::SetTimeouts(0, 0, u32::MAX), Some(22)),
        ];
        for (op, want) in cases {
            let e = populated();
            let dry = e.check_batch(core::slice::from_ref(&op));
            let mut real = populated();
            let got = real.apply(&op, Instant::ZERO);
            assert_eq!(
                dry.map_err(|(_, e)| e.errno()),
                got.clone().map_err(|e| e.errno()),
                "{op:?}"
            );
            assert_eq!(got.err().map(|e| e.errno()), want, "{op:?}");
        }
    }

    #[test]
    fn mh_dest_limit() {
        let mut e = engine();
        let k = tcp([10, 0, 0, 1], 80);
        e.apply(&ConfigOp::AddService(k, svc("rr")), Instant::ZERO)
            .unwrap();
        let many: Vec<ConfigOp> = (0..=mh::TABLE_SIZE as u32)
            .map(|i| ConfigOp::AddDest(k, rs((0x0a01_0000 + i).to_be_bytes(), 80)))
            .collect();
        e.apply_batch(&many, Instant::ZERO).unwrap();
        let before = dump(&e);
        // Switching to mh with 4094 real servers fails, in the model and for real.
        let edit = ConfigOp::EditService(k, svc("mh"));
        assert_eq!(
            e.check_batch(core::slice::from_ref(&edit))
                .unwrap_err()
                .1
                .errno(),
            22
        );
        assert_eq!(e.apply(&edit, Instant::ZERO).unwrap_err().errno(), 22);
        assert_eq!(dump(&e), before);
        // One fewer and it works; then the 4094th add fails.
        let del = ConfigOp::DeleteDest(k, "10.1.0.0".parse().unwrap(), 80);
        let readd = ConfigOp::AddDest(k, rs([10, 1, 0, 0], 80));
        e.apply_batch(&[del.clone(), edit.clone()], Instant::ZERO)
            .unwrap();
        let before = dump(&e);
        assert_eq!(
            e.apply_batch(core::slice::from_ref(&readd), Instant::ZERO)
                .unwrap_err(),
            (0, CtlError::Invalid("too many destinations"))
        );
        assert_eq!(e.apply(&readd, Instant::ZERO).unwrap_err().errno(), 22);
        assert_eq!(dump(&e), before);
    }

    #[test]
    fn error_index_is_right() {
        let mut e = engine();
        let k = tcp([10, 0, 0, 1], 80);
        let mut ops = vec![ConfigOp::AddService(k, svc("rr"))];
        for i in 0..50u8 {
            ops.push(ConfigOp::AddDest(k, rs([10, 2, 0, i], 80)));
        }
        ops.push(ConfigOp::EditDest(k, rs([10, 2, 0, 77], 80)));
        ops.push(ConfigOp::AddDest(k, rs([10, 2, 0, 99], 80)));
        assert_eq!(
            e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
            (51, CtlError::NotFound("destination"))
        );
        assert!(e.services().is_empty());
        assert_eq!(e.apply_batch(&[], Instant::ZERO), Ok(()));
    }

    /// 10 000 services × 10 real servers. Timed in release builds only.
    #[test]
    #[allow(clippy::disallowed_methods)] // times itself: a test, not the engine
    fn large_batch_scales() {
        let n: u32 = if cfg!(debug_assertions) {
            2_000
        } else {
            10_000
        };
        let mut ops = Vec::with_capacity(n as usize * 11);
        for i in 0..n {
            let k = tcp((0x0a00_0000 + i).to_be_bytes(), 80);
            ops.push(ConfigOp::AddService(k, svc("wlc")));
            for j in 0..10u32 {
                ops.push(ConfigOp::AddDest(
                    k,
                    rs((0xc0a8_0000 + i * 16 + j).to_be_bytes(), 80),
                ));
            }
        }
        let mut e = engine();
        let t = std::time::Instant::now();
        e.apply_batch(&ops, Instant::ZERO).unwrap();
        let took = t.elapsed();
        assert_eq!(e.services().len(), n as usize);
        // A second identical batch fails at its first line, quickly, changing nothing.
        assert_eq!(
            e.apply_batch(&ops, Instant::ZERO).unwrap_err(),
            (0, CtlError::Exists)
        );
        if !cfg!(debug_assertions) {
            assert!(took.as_millis() < 1000, "took {took:?}");
        }
    }

    fn mark_rule(a: [u8; 4], len: u8, mark: u32) -> FwmarkRule {
        FwmarkRule {
            addr: IpAddr::V4(Ipv4Addr::from(a)),
            prefix_len: len,
            proto: Some(Protocol::Tcp),
            dports: vec![80, 443],
            iif: None,
            mark,
        }
    }

    #[test]
    fn fwmark_rules_in_a_batch_are_all_or_nothing() {
        let mut e = engine();
        let key = ServiceKey::Fwmark {
            af: Af::Inet,
            mark: 10,
        };
        let ok = vec![
            ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 1], 32, 10)),
            ConfigOp::AddService(key, svc("rr")),
            ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 2], 32, 10)),
        ];
        e.apply_batch(&ok, Instant::ZERO).unwrap();
        assert_eq!(e.fwmark_rules().len(), 2);
        let before = e.fwmark_rules().clone();
        // A duplicate rule, a missing rule, a bad rule: each fails at its
        // line and nothing of the batch stays.
        for (bad, err) in [
            (
                ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 1], 32, 10)),
                CtlError::Exists,
            ),
            (
                ConfigOp::DeleteFwmarkRule(mark_rule([10, 0, 0, 9], 32, 10)),
                CtlError::NotFound("fwmark rule"),
            ),
            (
                ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 9], 33, 10)),
                CtlError::Invalid("fwmark rule: prefix length too long for the address family"),
            ),
        ] {
            let ops = vec![
                ConfigOp::FlushFwmarkRules,
                ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 1], 32, 10)),
                ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 3], 32, 10)),
                bad,
            ];
            assert_eq!(e.apply_batch(&ops, Instant::ZERO), Err((3, err)));
            assert_eq!(*e.fwmark_rules(), before);
        }
        // The dry run sees the batch's own earlier rule operations.
        let ops = vec![
            ConfigOp::DeleteFwmarkRule(mark_rule([10, 0, 0, 1], 32, 10)),
            ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 1], 32, 10)),
            ConfigOp::FlushFwmarkRules,
            ConfigOp::AddFwmarkRule(mark_rule([10, 0, 0, 2], 32, 10)),
        ];
        e.apply_batch(&ops, Instant::ZERO).unwrap();
        assert_eq!(e.fwmark_rules().len(), 1);
        // `-C` leaves the rules (as it leaves iptables' rules).
        e.apply(&ConfigOp::Flush, Instant::ZERO).unwrap();
        assert_eq!(e.fwmark_rules().len(), 1);
    }

    /// A check allowing at most `nat` NAT sources and `rules` claimed rules.
    fn limit(nat: usize, rules: usize) -> std::sync::Arc<crate::claims::ClaimCheck> {
        std::sync::Arc::new(move |c: &crate::claims::Claims| {
            if c.nat.len() > nat {
                return Err(format!("{} NAT sources, room for {nat}", c.nat.len()));
            }
            if c.fwmark.len() > rules {
                return Err(format!("{} rules, room for {rules}", c.fwmark.len()));
            }
            Ok(())
        })
    }

    #[test]
    fn claims_past_the_filter_are_refused_whole() {
        let mut e = engine();
        e.set_claim_check(limit(1, 8)).unwrap();
        let key = tcp([10, 0, 0, 1], 80);
        e.apply(&ConfigOp::AddService(key, svc("rr")), Instant::ZERO)
            .unwrap();
        let nat = |a: [u8; 4]| {
            let mut d = rs(a, 80);
            d.fwd = FwdMethod::Masq;
            d
        };
        e.apply(
            &ConfigOp::AddDest(key, nat([192, 168, 0, 1])),
            Instant::ZERO,
        )
        .unwrap();
        // A second NAT real server does not fit; a DR one does.
        let err = e
            .apply(
                &ConfigOp::AddDest(key, nat([192, 168, 0, 2])),
                Instant::ZERO,
            )
            .unwrap_err();
        assert_eq!(err, CtlError::NoRoom("2 NAT sources, room for 1".into()));
        assert_eq!(err.errno(), 12);
        let dr = rs([192, 168, 0, 2], 80);
        e.apply(&ConfigOp::AddDest(key, dr), Instant::ZERO).unwrap();
        // Switching it to NAT (-e ... -m) is a claim too.
        let before = dump(&e);
        let err = e
            .apply(
                &ConfigOp::EditDest(key, nat([192, 168, 0, 2])),
                Instant::ZERO,
            )
            .unwrap_err();
        assert!(matches!(err, CtlError::NoRoom(_)));
        assert_eq!(dump(&e), before);
        // In a batch, room made earlier counts, and a refusal changes nothing.
        let swap = [
            ConfigOp::DeleteDest(key, IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)), 80),
            ConfigOp::EditDest(key, nat([192, 168, 0, 2])),
        ];
        e.check_batch(&swap).unwrap();
        let both = [
            ConfigOp::EditDest(key, nat([192, 168, 0, 2])),
            ConfigOp::Zero(None),
        ];
        assert_eq!(
            e.apply_batch(&both, Instant::ZERO).unwrap_err().0,
            0,
            "reported at the last operation that adds claims"
        );
        assert_eq!(dump(&e), before);
    }

    #[test]
    fn deleting_a_rule_that_hid_another_is_a_claim() {
        let mut e = engine();
        let key = ServiceKey::Fwmark {
            af: Af::Inet,
            mark: 10,
        };
        e.apply(&ConfigOp::AddService(key, svc("rr")), Instant::ZERO)
            .unwrap();
        let a = mark_rule([10, 0, 0, 1], 32, 10);
        let b = mark_rule([10, 0, 0, 2], 32, 10);
        // Mark 20 has no service: this later, overlapping rule hides `b`.
        let hider = mark_rule([10, 0, 0, 2], 32, 20);
        for r in [&a, &b, &hider] {
            e.apply(&ConfigOp::AddFwmarkRule(r.clone()), Instant::ZERO)
                .unwrap();
        }
        e.set_claim_check(limit(0, 1)).unwrap();
        let err = e
            .apply(&ConfigOp::DeleteFwmarkRule(hider.clone()), Instant::ZERO)
            .unwrap_err();
        assert_eq!(err, CtlError::NoRoom("2 rules, room for 1".into()));
        assert_eq!(e.fwmark_rules().len(), 3);
        // Too big already: not installed.
        assert!(e.set_claim_check(limit(0, 0)).is_err());
    }
}
