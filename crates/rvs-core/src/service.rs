//! Virtual services and the service table.
//!
//! Add, edit and delete follow IPVS: an edit replaces every setting (the
//! caller passes the whole new configuration), real servers are listed newest
//! first, and failures map to the kernel's errno so the CLI can print
//! ipvsadm's exact texts (reference §1.5, §3.3). Every check runs before
//! anything changes, so a failed request leaves the table as it was.

use core::net::IpAddr;

use hashbrown::HashMap;

use crate::dest::{Dest, DestConfig, DestId};
use crate::sched::{self, DestChange, Scheduler};
use crate::stats::Stats;
use crate::time::Instant;
use crate::types::{Af, FwdMethod, Protocol, TunType};

/// Service flag: persistent (`-p`).
pub const SVC_F_PERSISTENT: u32 = 0x0001;
/// Service flag: hashed (always set on a live service; shown in /proc).
pub const SVC_F_HASHED: u32 = 0x0002;
/// Service flag: one-packet scheduling (`-o`).
pub const SVC_F_ONEPACKET: u32 = 0x0004;
/// Mask of the scheduler flag bits.
pub const SVC_F_SCHED_MASK: u32 = sched::SCHED_FLAG1 | sched::SCHED_FLAG2 | sched::SCHED_FLAG3;

/// How long a deleted real server waits in the trash for revival (`IP_VS_DEST_TRASH_PERIOD`).
pub const DEST_TRASH_PERIOD_MS: u64 = 120_000;

/// What identifies a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    /// A protocol, address and port (`-t`, `-u`, `--sctp-service`).
    Addr {
        /// Protocol.
        proto: Protocol,
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port; 0 = every port (persistent services only).
        port: u16,
    },
    /// A firewall mark (`-f`), with its family (`-6`).
    Fwmark {
        /// Address family.
        af: Af,
        /// The mark, 1..=u32::MAX.
        mark: u32,
    },
}

impl ServiceKey {
    /// Address family of the service.
    pub fn af(&self) -> Af {
        match self {
            ServiceKey::Addr { addr, .. } => Af::of(addr),
            ServiceKey::Fwmark { af, .. } => *af,
        }
    }

    /// The virtual port (0 for fwmark services).
    pub fn port(&self) -> u16 {
        match self {
            ServiceKey::Addr { port, .. } => *port,
            ServiceKey::Fwmark { .. } => 0,
        }
    }
}

/// Everything `-A`/`-E` sets. An edit replaces all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Scheduler name.
    pub scheduler: String,
    /// `SVC_F_PERSISTENT`, `SVC_F_ONEPACKET` and scheduler flag bits.
    pub flags: u32,
    /// Persistence timeout in seconds (meaningful with `SVC_F_PERSISTENT`).
    pub timeout: u32,
    /// Persistence netmask: IPv4 mask as a host-order u32 (`0xffffffff` = /32);
    /// IPv6 prefix length (128 by default).
    pub netmask: u32,
    /// Persistence engine (`sip`), if any.
    pub pe: Option<String>,
}

impl ServiceConfig {
    /// ipvsadm's defaults for a service of family `af`: wlc, not persistent, full netmask.
    pub fn new(af: Af) -> Self {
        ServiceConfig {
            scheduler: "wlc".into(),
            flags: 0,
            timeout: 0,
            netmask: match af {
                Af::Inet => u32::MAX,
                Af::Inet6 => 128,
            },
            pe: None,
        }
    }

    /// Whether `-p` is set.
    pub fn persistent(&self) -> bool {
        self.flags & SVC_F_PERSISTENT != 0
    }
}

/// A failed control operation, by the errno the kernel would return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CtlError {
    /// EEXIST: service or real server already exists.
    #[error("already exists")]
    Exists,
    /// ESRCH: no such service.
    #[error("no such service")]
    NoSuchService,
    /// ENOENT: no such real server, or unknown scheduler / persistence engine.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// ERANGE: a value out of range (weight, thresholds).
    #[error("numerical result out of range")]
    Range,
    /// EINVAL with the reason.
    #[error("invalid operation: {0}")]
    Invalid(&'static str),
    /// EAFNOSUPPORT.
    #[error("address family not supported")]
    AfNotSupported,
    /// ENOMEM: the data plane's filter cannot hold the table the change
    /// would make (the reason names the filter's limit).
    #[error("{0}")]
    NoRoom(String),
}

impl CtlError {
    /// The positive errno value the kernel would report.
    pub fn errno(&self) -> i32 {
        match self {
            CtlError::Exists => 17,
            CtlError::NoSuchService => 3,
            CtlError::NotFound(_) => 2,
            CtlError::Range => 34,
            CtlError::Invalid(_) => 22,
            CtlError::AfNotSupported => 97,
            CtlError::NoRoom(_) => 12,
        }
    }
}

/// A virtual service with its real servers and live state.
#[derive(Debug)]
pub struct Service {
    /// Identity.
    pub key: ServiceKey,
    /// Settings.
    pub config: ServiceConfig,
    /// Real servers, newest first (the kernel's list order).
    pub dests: Vec<Dest>,
    /// Deleted real servers kept for revival and for their live connections,
    /// with the time they were deleted.
    pub trash: Vec<(Dest, Instant)>,
    /// The bound scheduler.
    pub scheduler: Box<dyn Scheduler>,
    /// Counters.
    pub stats: Stats,
    /// Creation sequence number (for newest-first unsorted listing).
    pub seq: u64,
}

impl Service {
    /// Position in `dests` of the real server `addr:port`.
    pub fn dest_index(&self, addr: IpAddr, port: u16) -> Option<usize> {
        self.dests
            .iter()
            .position(|d| d.addr == addr && d.port == port)
    }

    /// Position of the real server with identity `id`.
    pub fn dest_index_by_id(&self, id: DestId) -> Option<usize> {
        self.dests.iter().position(|d| d.id == id)
    }

    /// A real server by identity, live or in the trash.
    pub fn dest_by_id_mut(&mut self, id: DestId) -> Option<&mut Dest> {
        if let Some(i) = self.dests.iter().position(|d| d.id == id) {
            return Some(&mut self.dests[i]);
        }
        self.trash.iter_mut().map(|(d, _)| d).find(|d| d.id == id)
    }

    /// Whether `flags` has persistence.
    pub fn persistent(&self) -> bool {
        self.config.persistent()
    }
}

/// Check a service configuration the way the kernel does.
pub(crate) fn validate_config(
    key: &ServiceKey,
    cfg: &ServiceConfig,
) -> Result<Box<dyn Scheduler>, CtlError> {
    if let ServiceKey::Fwmark { mark: 0, .. } = key {
        return Err(CtlError::Invalid("fwmark 0"));
    }
    if key.af() == Af::Inet6 && !(1..=128).contains(&cfg.netmask) {
        return Err(CtlError::Invalid("ipv6 netmask"));
    }
    if let Some(pe) = &cfg.pe
        && pe != "sip"
    {
        return Err(CtlError::NotFound("persistence engine"));
    }
    sched::by_name(&cfg.scheduler).ok_or(CtlError::NotFound("scheduler"))
}

/// Check a real server's configuration for a service of family `af`.
pub(crate) fn validate_dest(af: Af, cfg: &DestConfig) -> Result<(), CtlError> {
    if cfg.weight > i32::MAX as u32 {
        return Err(CtlError::Range);
    }
    if cfg.l_threshold > cfg.u_threshold {
        return Err(CtlError::Range);
    }
    if Af::of(&cfg.addr) != af && cfg.fwd != FwdMethod::Tunnel {
        return Err(CtlError::Invalid("mixed address family needs tunnelling"));
    }
    if cfg.fwd == FwdMethod::Tunnel && cfg.tunnel.kind == TunType::Gue && cfg.tunnel.port == 0 {
        return Err(CtlError::Invalid("gue needs a tunnel port"));
    }
    let unicast = match cfg.addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_broadcast() || a.is_multicast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    };
    if !unicast {
        return Err(CtlError::Invalid("real server address is not unicast"));
    }
    Ok(())
}

/// Reference to a service in the table: a slot and a generation, so stale
/// references (from connections of a deleted service) are detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceRef {
    /// Slot index.
    pub slot: u32,
    /// Generation of the slot.
    pub generation: u32,
}

impl ServiceRef {
    /// Pack into the connection table's opaque owner word.
    pub fn to_owner(self) -> u64 {
        ((self.generation as u64) << 32) | self.slot as u64
    }

    /// Unpack from [`ServiceRef::to_owner`].
    pub fn from_owner(v: u64) -> Self {
        ServiceRef {
            slot: v as u32,
            generation: (v >> 32) as u32,
        }
    }
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    svc: Option<Service>,
}

/// All virtual services, with the lookups the packet path needs.
#[derive(Debug, Default)]
pub struct Services {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_key: HashMap<ServiceKey, ServiceRef>,
    /// Number of address services with port 0, per protocol (lookup step 4).
    port_zero: usize,
    /// Number of TCP services on port 21 (FTP lookup step 3).
    ftp: usize,
    next_seq: u64,
    next_dest_id: u32,
    /// Addresses of NAT (`-m`) real servers, live or in the trash, with their
    /// number of occurrences: only packets from these can be NAT replies.
    nat_sources: HashMap<u128, u32>,
    /// Addresses of address services, with their number of services: the
    /// fragments without ports that may be a service's.
    vaddrs: HashMap<u128, u32>,
    /// The AND of the persistence netmasks of the persistent IPv4
    /// services (`None`: none), and the shortest prefix of the IPv6 ones:
    /// clients the same masks cover are steered to one engine replica, so
    /// a persistence template and its connections live together
    /// ([`crate::engine::steer`]).
    persist_mask_v4: Option<u32>,
    persist_prefix_v6: Option<u8>,
}

/// An address as one 128-bit word (IPv4 as its IPv4-mapped IPv6 form).
#[inline]
pub fn addr_key(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => 0xffff_0000_0000 | u128::from(v4.to_bits()),
        IpAddr::V6(v6) => v6.to_bits(),
    }
}

impl Services {
    /// An empty table.
    pub fn new() -> Self {
        Services::default()
    }

    /// Number of services.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether there is no service.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Whether `addr` is the address of a NAT real server (so a packet from
    /// it may be a reply to translate).
    #[inline]
    pub fn is_nat_source(&self, addr: &IpAddr) -> bool {
        !self.nat_sources.is_empty() && self.nat_sources.contains_key(&addr_key(*addr))
    }

    /// Whether `addr` is the address of an address service (of any
    /// protocol and port).
    #[inline]
    pub fn is_virtual_addr(&self, addr: IpAddr) -> bool {
        !self.vaddrs.is_empty() && self.vaddrs.contains_key(&addr_key(addr))
    }

    fn count_nat(&mut self, addr: IpAddr, fwd: FwdMethod, delta: i32) {
        if fwd != FwdMethod::Masq {
            return;
        }
        let k = addr_key(addr);
        let n = self.nat_sources.entry(k).or_insert(0);
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            self.nat_sources.remove(&k);
        }
    }

    /// The reference of the service with `key`.
    pub fn find(&self, key: &ServiceKey) -> Option<ServiceRef> {
        self.by_key.get(key).copied()
    }

    /// A service by reference (None if it was deleted).
    #[inline]
    pub fn get(&self, r: ServiceRef) -> Option<&Service> {
        let slot = self.slots.get(r.slot as usize)?;
        if slot.generation != r.generation {
            return None;
        }
        slot.svc.as_ref()
    }

    /// A service by reference, mutably.
    #[inline]
    pub fn get_mut(&mut self, r: ServiceRef) -> Option<&mut Service> {
        let slot = self.slots.get_mut(r.slot as usize)?;
        if slot.generation != r.generation {
            return None;
        }
        slot.svc.as_mut()
    }

    /// Every service with its reference, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (ServiceRef, &Service)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.svc.as_ref().map(|svc| {
                (
                    ServiceRef {
                        slot: i as u32,
                        generation: s.generation,
                    },
                    svc,
                )
            })
        })
    }

    /// Every service, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Service> {
        self.slots.iter_mut().filter_map(|s| s.svc.as_mut())
    }

    /// `ip_vs_service_find` for a packet (reference §5.5).
    pub fn lookup(
        &self,
        fwmark: u32,
        af: Af,
        proto: Protocol,
        vaddr: IpAddr,
        vport: u16,
    ) -> Option<ServiceRef> {
        if fwmark != 0
            && let Some(r) = self.by_key.get(&ServiceKey::Fwmark { af, mark: fwmark })
        {
            return Some(*r);
        }
        let exact = ServiceKey::Addr {
            proto,
            addr: vaddr,
            port: vport,
        };
        if let Some(r) = self.by_key.get(&exact) {
            return Some(*r);
        }
        if self.ftp > 0 && proto == Protocol::Tcp && (vport == 20 || vport >= 1024) {
            let ftp = ServiceKey::Addr {
                proto,
                addr: vaddr,
                port: 21,
            };
            if let Some(r) = self.by_key.get(&ftp) {
                return Some(*r);
            }
        }
        if self.port_zero > 0 {
            let any = ServiceKey::Addr {
                proto,
                addr: vaddr,
                port: 0,
            };
            return self.by_key.get(&any).copied();
        }
        None
    }

    /// `-A`.
    pub fn add(&mut self, key: ServiceKey, cfg: ServiceConfig) -> Result<ServiceRef, CtlError> {
        if self.by_key.contains_key(&key) {
            return Err(CtlError::Exists);
        }
        let mut scheduler = validate_config(&key, &cfg)?;
        scheduler
            .update(&[], DestChange::Init)
            .map_err(|_| CtlError::Invalid("scheduler"))?;
        let svc = Service {
            key,
            config: cfg,
            dests: Vec::new(),
            trash: Vec::new(),
            scheduler,
            stats: Stats::default(),
            seq: self.next_seq,
        };
        self.next_seq += 1;
        let r = match self.free.pop() {
            Some(slot) => {
                let s = &mut self.slots[slot as usize];
                s.svc = Some(svc);
                ServiceRef {
                    slot,
                    generation: s.generation,
                }
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    svc: Some(svc),
                });
                ServiceRef {
                    slot: (self.slots.len() - 1) as u32,
                    generation: 0,
                }
            }
        };
        self.count_key(&key, 1);
        self.by_key.insert(key, r);
        if let Some(svc) = self.get(r)
            && svc.config.persistent()
        {
            // Adding only narrows: no need to look at every service.
            let (af, netmask) = (svc.key.af(), svc.config.netmask);
            self.narrow_persist_masks(af, netmask);
        }
        Ok(r)
    }

    /// Recompute [`Services::persist_masks`] after an edit or a deletion.
    fn recompute_persist_masks(&mut self) {
        self.persist_mask_v4 = None;
        self.persist_prefix_v6 = None;
        let persistent: Vec<(Af, u32)> = self
            .slots
            .iter()
            .filter_map(|s| s.svc.as_ref())
            .filter(|svc| svc.config.persistent())
            .map(|svc| (svc.key.af(), svc.config.netmask))
            .collect();
        for (af, netmask) in persistent {
            self.narrow_persist_masks(af, netmask);
        }
    }

    fn narrow_persist_masks(&mut self, af: Af, netmask: u32) {
        match af {
            Af::Inet => {
                self.persist_mask_v4 = Some(self.persist_mask_v4.unwrap_or(u32::MAX) & netmask)
            }
            Af::Inet6 => {
                let p = netmask.min(128) as u8;
                self.persist_prefix_v6 = Some(self.persist_prefix_v6.map_or(p, |q| q.min(p)));
            }
        }
    }

    /// The persistence netmasks every client address is masked with
    /// before it is steered: the AND of the persistent IPv4 services'
    /// masks (`u32::MAX` without one) and the shortest prefix of the
    /// persistent IPv6 services (128 without one).
    #[inline]
    pub fn persist_masks(&self) -> (u32, u8) {
        (
            self.persist_mask_v4.unwrap_or(u32::MAX),
            self.persist_prefix_v6.unwrap_or(128),
        )
    }

    fn count_key(&mut self, key: &ServiceKey, delta: isize) {
        if let ServiceKey::Addr { proto, port, addr } = key {
            let k = addr_key(*addr);
            let n = self.vaddrs.entry(k).or_insert(0);
            *n = n.saturating_add_signed(delta as i32);
            if *n == 0 {
                self.vaddrs.remove(&k);
            }
            if *port == 0 {
                self.port_zero = self.port_zero.saturating_add_signed(delta);
            }
            if *port == 21 && *proto == Protocol::Tcp {
                self.ftp = self.ftp.saturating_add_signed(delta);
            }
        }
    }

    /// `-E`: replace the whole configuration. A new scheduler is bound only
    /// when the name changes (as the kernel does).
    pub fn edit(&mut self, key: &ServiceKey, cfg: ServiceConfig) -> Result<(), CtlError> {
        let r = self.find(key).ok_or(CtlError::NoSuchService)?;
        let mut new_sched = validate_config(key, &cfg)?;
        let svc = self.get_mut(r).ok_or(CtlError::NoSuchService)?;
        if new_sched.name() != svc.scheduler.name() {
            new_sched
                .update(&svc.dests, DestChange::Init)
                .map_err(|_| CtlError::Invalid("too many destinations for the scheduler"))?;
            svc.scheduler = new_sched;
        }
        let persistence = svc.config.persistent() || cfg.persistent();
        svc.config = cfg;
        if persistence {
            self.recompute_persist_masks();
        }
        Ok(())
    }

    /// `-D`: remove the service; returns it so the caller can settle its connections.
    pub fn delete(&mut self, key: &ServiceKey) -> Result<Service, CtlError> {
        let svc = self.delete_one(key)?;
        if svc.config.persistent() {
            self.recompute_persist_masks();
        }
        Ok(svc)
    }

    fn delete_one(&mut self, key: &ServiceKey) -> Result<Service, CtlError> {
        let r = self.by_key.remove(key).ok_or(CtlError::NoSuchService)?;
        self.count_key(key, -1);
        let slot = &mut self.slots[r.slot as usize];
        let svc = slot.svc.take().ok_or(CtlError::NoSuchService)?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(r.slot);
        for d in svc.dests.iter().chain(svc.trash.iter().map(|(d, _)| d)) {
            self.count_nat(d.addr, d.fwd, -1);
        }
        Ok(svc)
    }

    /// `-C`: remove every service.
    pub fn clear(&mut self) {
        let keys: Vec<ServiceKey> = self.by_key.keys().copied().collect();
        for k in keys {
            let _ = self.delete_one(&k);
        }
        self.persist_mask_v4 = None;
        self.persist_prefix_v6 = None;
    }

    /// `-a`. A real server found in the trash is revived with its counters.
    pub fn add_dest(
        &mut self,
        key: &ServiceKey,
        cfg: &DestConfig,
        now: Instant,
    ) -> Result<DestId, CtlError> {
        let r = self.find(key).ok_or(CtlError::NoSuchService)?;
        let next_id = self.next_dest_id;
        let svc = self.get_mut(r).ok_or(CtlError::NoSuchService)?;
        validate_dest(svc.key.af(), cfg)?;
        if svc.dest_index(cfg.addr, cfg.port).is_some() {
            return Err(CtlError::Exists);
        }
        let revived = svc
            .trash
            .iter()
            .position(|(d, _)| d.addr == cfg.addr && d.port == cfg.port);
        let (dest, fresh, old_fwd) = match revived {
            Some(i) => {
                let (mut d, _) = svc.trash.remove(i);
                let old = d.fwd;
                d.apply_config(cfg);
                d.available = true;
                (d, false, Some(old))
            }
            None => (Dest::new(DestId(next_id), cfg), true, None),
        };
        let id = dest.id;
        svc.dests.insert(0, dest);
        if let Err(e) = svc.scheduler.update(&svc.dests, DestChange::Added(id)) {
            // Undo: put things back exactly as they were.
            let mut d = svc.dests.remove(0);
            let key = sched::shared::dest_key(&d.addr, d.port);
            let _ = svc
                .scheduler
                .update(&svc.dests, DestChange::Removed { id, key, index: 0 });
            if !fresh {
                d.available = false;
                svc.trash.push((d, now));
            }
            return Err(match e {
                sched::SchedError::TooManyDests => CtlError::Invalid("too many destinations"),
            });
        }
        if fresh {
            self.next_dest_id = self.next_dest_id.wrapping_add(1);
        }
        if let Some(old) = old_fwd {
            self.count_nat(cfg.addr, old, -1);
        }
        self.count_nat(cfg.addr, cfg.fwd, 1);
        Ok(id)
    }

    /// `-e`: replace the real server's settings (weight, method, thresholds, tunnel).
    pub fn edit_dest(&mut self, key: &ServiceKey, cfg: &DestConfig) -> Result<(), CtlError> {
        let r = self.find(key).ok_or(CtlError::NoSuchService)?;
        let svc = self.get_mut(r).ok_or(CtlError::NoSuchService)?;
        validate_dest(svc.key.af(), cfg)?;
        let i = svc
            .dest_index(cfg.addr, cfg.port)
            .ok_or(CtlError::NotFound("destination"))?;
        let old_fwd = svc.dests[i].fwd;
        svc.dests[i].apply_config(cfg);
        let id = svc.dests[i].id;
        let res = svc
            .scheduler
            .update(&svc.dests, DestChange::Edited(id))
            .map_err(|_| CtlError::Invalid("scheduler"));
        self.count_nat(cfg.addr, old_fwd, -1);
        self.count_nat(cfg.addr, cfg.fwd, 1);
        res
    }

    /// `-d`: unlink the real server and move it to the trash (its connections
    /// still refer to it). Returns its identity.
    pub fn delete_dest(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
        now: Instant,
    ) -> Result<DestId, CtlError> {
        let r = self.find(key).ok_or(CtlError::NoSuchService)?;
        let svc = self.get_mut(r).ok_or(CtlError::NoSuchService)?;
        let i = svc
            .dest_index(addr, port)
            .ok_or(CtlError::NotFound("destination"))?;
        let mut d = svc.dests.remove(i);
        let (id, key) = (d.id, sched::shared::dest_key(&d.addr, d.port));
        let _ = svc
            .scheduler
            .update(&svc.dests, DestChange::Removed { id, key, index: i });
        d.available = false;
        svc.trash.push((d, now));
        Ok(id)
    }

    /// Free trash entries older than the trash period that no connection uses.
    /// `in_use(id)` tells whether a connection still refers to a real server.
    pub fn purge_trash(&mut self, now: Instant, mut in_use: impl FnMut(DestId) -> bool) {
        let mut gone = Vec::new();
        for svc in self.slots.iter_mut().filter_map(|s| s.svc.as_mut()) {
            svc.trash.retain(|(d, at)| {
                let keep = now.saturating_since(*at).as_millis() < DEST_TRASH_PERIOD_MS as u128
                    || in_use(d.id)
                    || d.activeconns + d.inactconns + d.persistconns > 0;
                if !keep {
                    gone.push((d.addr, d.fwd));
                }
                keep
            });
        }
        for (addr, fwd) in gone {
            self.count_nat(addr, fwd, -1);
        }
    }
}

#[cfg(test)]
mod tests;
