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
mod tests;
