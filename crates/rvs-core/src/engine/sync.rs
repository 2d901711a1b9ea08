//! Connection synchronisation, the engine's part (`ip_vs_sync.c`'s
//! decisions; reference §11): which connections a master sends and when,
//! and how a backup applies what it receives. No I/O: rvsd's sync daemons
//! take the queued entries ([`Engine::take_sync`]), encode and send them,
//! and hand received entries to [`Engine::apply_sync`].
//!
//! Master: after every client → server packet of a connection the
//! kernel's `ip_vs_sync_conn` runs (here [`Engine::sync_conn`]): a TCP
//! connection is sent in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT and
//! TIME_WAIT (at once on a change into one of the latter), on its
//! `threshold`th packet and every `period` packets after (sysctl
//! `sync_threshold`, default "3 50"), subject to `sync_refresh_period` and
//! `sync_retries`; then its controlling template, counting the template's
//! own packets. Packets the XDP fast path forwarded are credited in bulk
//! ([`Engine::credit_fast_path`]): a connection is sent when the credited
//! range crosses a send point, so an established flow is refreshed on the
//! backup as often as the kernel would refresh it (once per crossing, not
//! once per packet).
//!
//! Backup: `ip_vs_proc_conn`: an entry updates the connection it names
//! (only its INACTIVE and sequence bits; a different real server expires
//! it, unless the entry says INACTIVE: a stale expiry) or creates it,
//! bound to the backup's own service and real server when they exist
//! (taking that server's forwarding method), unbound otherwise (kept, and
//! bound when a later entry or a packet finds them). State, `in_pkts`
//! (= threshold) and the timeout come from the entry; a timeout of 0
//! (version 0) is the protocol's for the state, 3 minutes for templates.

use core::net::IpAddr;

use std::collections::VecDeque;

use hashbrown::HashMap;

use rvs_wire::ipvs_sync::{SyncAddrs, SyncConn, Version};

use super::Engine;
use crate::conn::state::{PROTO_SCTP, PROTO_TCP, PROTO_UDP, SCTP_STATE_COUNT, TCP_STATE_COUNT};
use crate::conn::{Conn, ConnId, flags};
use crate::dest::DestId;
use crate::service::{ServiceKey, ServiceRef};
use crate::time::Instant;
use crate::types::{Af, FwdMethod, Protocol};

/// The owner word of a connection a backup could not bind to a service.
pub const UNBOUND_OWNER: u64 = u64::MAX;

/// Entries one queued message holds (1472-byte messages of 36-byte
/// entries), for the `sync_qlen_max` bound.
const ENTRIES_PER_MESSAGE: usize = 40;

/// Templates whose timeout a version 0 entry does not carry: 3 minutes.
const TEMPLATE_DEFAULT_TIMEOUT_MS: u32 = 3 * 60 * 1000;

/// The largest timeout accepted from an entry, in seconds (fits the
/// millisecond field).
const MAX_TIMEOUT_SECS: u32 = u32::MAX / 1000;

/// TCP states a master sends (`ip_vs_sync_conn_needed`).
const TCP_SYNCED: u32 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7);
/// SCTP states a master sends: ESTABLISHED, SHUTDOWN_SENT,
/// SHUTDOWN_RECEIVED, SHUTDOWN_ACK_SENT, CLOSED.
const SCTP_SYNCED: u32 = (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 13);
const TCP_ESTABLISHED: u8 = 1;
const SCTP_ESTABLISHED: u8 = 8;

/// What the sync daemons did, for `rvs dataplane` and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounters {
    /// Entries a master queued.
    pub queued: u64,
    /// Entries a master dropped because its queue was full.
    pub queue_full: u64,
    /// Entries a backup created a connection from.
    pub created: u64,
    /// Entries a backup updated a connection with.
    pub updated: u64,
    /// Connections a backup created without a service or real server of
    /// its own to bind them to.
    pub unbound: u64,
    /// Stale entries ignored (INACTIVE for a connection that moved).
    pub stale: u64,
    /// Entries refused: unknown protocol, state out of range, table full.
    pub refused: u64,
}

/// What [`Engine::apply_sync`] did with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncApplied {
    /// A connection was created, bound to a real server of this director.
    Created,
    /// A connection was created unbound (no such service or real server here).
    CreatedUnbound,
    /// An existing connection was updated.
    Updated,
    /// A stale expiry, ignored.
    Stale,
    /// Refused (the reason).
    Refused(&'static str),
}

/// A sync entry taken from the engine ([`Engine::take_sync`],
/// [`Engine::sync_snapshot`]): the message's fields, with the
/// persistence-engine data of a template that has some (a SIP Call-ID)
/// owned here, since the entry outlives the table's lock. Send
/// [`Self::entry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEntry {
    /// The fields (its `pe_data` and `pe_name` are `None`).
    pub conn: SyncConn<'static>,
    /// The template's persistence-engine data, with the engine `sip`.
    pub pe_data: Option<Box<[u8]>>,
}

impl SyncEntry {
    /// The entry as the message carries it.
    pub fn entry(&self) -> SyncConn<'_> {
        let mut c: SyncConn<'_> = self.conn;
        if let Some(d) = &self.pe_data {
            c.pe_data = Some(d);
            c.pe_name = Some(PE_SIP);
        }
        c
    }
}

impl From<SyncConn<'static>> for SyncEntry {
    fn from(conn: SyncConn<'static>) -> Self {
        SyncEntry {
            conn,
            pe_data: None,
        }
    }
}

/// The one persistence engine IPVS has.
const PE_SIP: &[u8] = b"sip";

/// The engine's sync state.
#[derive(Debug, Default)]
pub(super) struct SyncState {
    /// A master daemon runs: connections are queued.
    pub(super) master: bool,
    /// A backup daemon runs (`backup_only` applies).
    pub(super) backup: bool,
    queue: VecDeque<SyncEntry>,
    pub(super) counters: SyncCounters,
    /// `cp->sync_endtime` of the entries sent while `sync_refresh_period`
    /// is set (only then is it read), with the entry's ports to tell a
    /// reused handle: kept beside the table so that entries stay small.
    pub(super) endtimes: HashMap<ConnId, (u32, u16, u16)>,
}

impl Engine {
    /// Start or stop queueing connections for a master daemon (stopping
    /// drops what is queued).
    pub fn set_sync_master(&mut self, on: bool) {
        self.sync.master = on;
        if !on {
            self.sync.queue.clear();
            self.sync.endtimes.clear();
        }
    }

    /// Housekeeping: forget the refresh bookkeeping of entries gone (or
    /// all of it once `sync_refresh_period` is 0).
    pub(super) fn sync_prune(&mut self) {
        if self.sysctls.sync_refresh_period == 0 {
            self.sync.endtimes.clear();
        } else if self.sync.endtimes.len() > 1024 && self.sync.endtimes.len() > self.conns.len() {
            let conns = &self.conns;
            self.sync.endtimes.retain(|id, _| conns.get(*id).is_some());
        }
    }

    /// Tell the engine whether a backup daemon runs (for `backup_only`).
    pub fn set_sync_backup(&mut self, on: bool) {
        self.sync.backup = on;
    }

    /// Whether a master daemon is queueing connections.
    pub fn sync_master(&self) -> bool {
        self.sync.master
    }

    /// The sync counters.
    pub fn sync_counters(&self) -> SyncCounters {
        self.sync.counters
    }

    /// Entries waiting to be sent.
    pub fn sync_queued(&self) -> usize {
        self.sync.queue.len()
    }

    /// Move up to `max` queued entries, oldest first, to `out`.
    pub fn take_sync(&mut self, out: &mut Vec<SyncEntry>, max: usize) {
        let n = max.min(self.sync.queue.len());
        out.extend(self.sync.queue.drain(..n));
    }

    /// Whether forwarding is off because a backup daemon runs with
    /// `backup_only`.
    pub(super) fn backup_only_active(&self) -> bool {
        self.sync.backup && self.sysctls.backup_only
    }

    /// `ip_vs_sync_conn` after a client → server packet of `id` (its
    /// `in_pkts` already counted): queue it and its controller chain as the
    /// kernel's master would send them.
    pub(super) fn sync_conn(&mut self, id: ConnId, now: Instant) {
        let Some(c) = self.conns.get(id) else {
            return;
        };
        let pkts = if c.flags & flags::ONE_PACKET != 0 {
            self.sysctls.sync_threshold
        } else {
            c.in_pkts
        };
        self.sync_conn_pkts(id, pkts, now);
    }

    /// `ip_vs_sync_conn` for a one-packet connection (`-o`; never in the
    /// table): the kernel skips it and goes on to its controlling template,
    /// counting the packet there, so a persistent one-packet service's
    /// templates (SIP's among them) reach the backup.
    pub(super) fn sync_one_packet(&mut self, template: ConnId, now: Instant) {
        if !self.sync.master {
            return;
        }
        let pkts = match self.conns.get_mut(template) {
            Some(mut t) if t.is_template() => {
                t.in_pkts = t.in_pkts.wrapping_add(1);
                t.in_pkts
            }
            _ => return,
        };
        self.sync_conn_pkts(template, pkts, now);
    }

    /// [`Self::sync_conn`] with the packet count to judge by.
    pub(super) fn sync_conn_pkts(&mut self, id: ConnId, mut pkts: u32, now: Instant) {
        let s = self.sysctls;
        let mut cur = Some(id);
        let mut first = true;
        // A controller chain is short (connection → template); bound it anyway.
        for _ in 0..4 {
            let Some(cid) = cur else {
                return;
            };
            let in_persistence = self
                .conns
                .get(cid)
                .and_then(|c| c.control)
                .and_then(|t| self.conns.get(t))
                .is_some_and(Conn::is_template);
            let pe: Option<Box<[u8]>> = self.conns.pe_data(cid).map(Box::from);
            let Some(mut c) = self.conns.get_mut(cid) else {
                return;
            };
            if !first {
                if c.is_template() {
                    c.in_pkts = c.in_pkts.wrapping_add(1);
                    pkts = c.in_pkts;
                } else {
                    pkts = s.sync_threshold;
                }
            }
            let skip = first && c.flags & flags::ONE_PACKET != 0;
            let ports = (c.cport, c.vport);
            let mut endtime = match self.sync.endtimes.get(&cid) {
                Some(&(t, cp, vp)) if (cp, vp) == ports => t,
                _ => 0,
            };
            let needed = !skip && sync_needed(&mut c, &mut endtime, pkts, &s, in_persistence, now);
            if needed && s.sync_refresh_period > 0 {
                self.sync.endtimes.insert(cid, (endtime, ports.0, ports.1));
            }
            if needed {
                let entry = entry_of(&c, pe);
                cur = c.control;
                drop(c);
                if let Some(e) = entry {
                    self.queue_sync(e);
                }
            } else {
                cur = c.control;
            }
            first = false;
        }
    }

    fn queue_sync(&mut self, e: SyncEntry) {
        let cap = (self.sysctls.sync_qlen_max as usize).saturating_mul(ENTRIES_PER_MESSAGE);
        if self.sync.queue.len() >= cap {
            self.sync.counters.queue_full += 1;
            return;
        }
        self.sync.queue.push_back(e);
        self.sync.counters.queued += 1;
    }

    /// After the fast path credited `packets` client → server packets to
    /// `id` (whose `in_pkts` went from `old` to `old + packets`): send it
    /// once if that range crossed a send point.
    pub(super) fn sync_credited(&mut self, id: ConnId, old: u32, packets: u32, now: Instant) {
        if !self.sync.master || packets == 0 {
            return;
        }
        let (t, p) = (self.sysctls.sync_threshold, self.sysctls.sync_period);
        if p == 0 && self.sysctls.sync_refresh_period > 0 {
            // Sent by time ("3 0" with a refresh period): every credit is
            // a chance, the refresh test decides.
            self.sync_conn_pkts(id, old.wrapping_add(packets), now);
        } else if let Some(pkts) = crossing(old, packets, t, p) {
            self.sync_conn_pkts(id, pkts, now);
        }
    }

    // ----- backup ----------------------------------------------------------------

    /// `ip_vs_proc_conn`: apply one received entry of a message of
    /// `version`.
    pub fn apply_sync(&mut self, e: &SyncConn<'_>, version: Version, now: Instant) -> SyncApplied {
        let (r, _) = self.apply_sync_inner(e, version, now);
        self.count_applied(r);
        r
    }

    /// Restore one connection saved by [`Self::sync_snapshot`] (rvsd's
    /// restart hand-over): applied as a backup applies an entry, but the
    /// connection stays this director's own (no SYNC origin).
    pub fn restore_conn(&mut self, e: &SyncConn<'_>, now: Instant) -> SyncApplied {
        let (r, id) = self.apply_sync_inner(e, Version::V1, now);
        if let Some(id) = id
            && let Some(mut c) = self.conns.get_mut(id)
        {
            c.flags = (c.flags & !flags::SYNC) | (e.flags & flags::SYNC);
        }
        r
    }

    /// Every connection and template as a sync entry (one-packet entries
    /// and tunnels between families excepted), for a restart hand-over.
    pub fn sync_snapshot(&self, out: &mut Vec<SyncEntry>) {
        out.extend(
            self.conns
                .iter()
                .filter(|(_, c)| c.flags & flags::ONE_PACKET == 0)
                .filter_map(|(id, c)| entry_of(c, self.conns.pe_data(id).map(Box::from))),
        );
    }

    fn count_applied(&mut self, r: SyncApplied) {
        let c = &mut self.sync.counters;
        match r {
            SyncApplied::Created => c.created += 1,
            SyncApplied::CreatedUnbound => {
                c.created += 1;
                c.unbound += 1;
            }
            SyncApplied::Updated => c.updated += 1,
            SyncApplied::Stale => c.stale += 1,
            SyncApplied::Refused(_) => c.refused += 1,
        }
    }

    fn apply_sync_inner(
        &mut self,
        e: &SyncConn<'_>,
        version: Version,
        now: Instant,
    ) -> (SyncApplied, Option<ConnId>) {
        let mut fl = e.backup_flags(version);
        let template = fl & flags::TEMPLATE != 0;
        let state_count = match e.protocol {
            _ if template => 2,
            PROTO_TCP => TCP_STATE_COUNT,
            PROTO_UDP => 1,
            PROTO_SCTP => SCTP_STATE_COUNT,
            _ => return (SyncApplied::Refused("unsupported protocol"), None),
        };
        if usize::from(e.state) >= state_count {
            return (SyncApplied::Refused("state out of range"), None);
        }
        // A template's persistence-engine data (`ip_vs_conn_fill_param_sync`:
        // an engine this director does not have refuses the entry).
        let pe = match (e.pe_name, e.pe_data) {
            (Some(name), _) if name != PE_SIP => {
                return (SyncApplied::Refused("unknown persistence engine"), None);
            }
            (Some(_), Some(d)) if template => Some(d),
            _ => None,
        };
        let (caddr, vaddr, daddr) = (e.caddr(), e.vaddr(), e.daddr());
        let existing = if let Some(pe) = pe {
            self.conns
                .lookup_template_pe(e.protocol, caddr, vaddr, e.vport, pe)
        } else if template {
            self.conns
                .lookup_template(e.protocol, caddr, vaddr, e.vport)
                .filter(|&id| self.conns.get(id).is_some_and(|c| c.cport == e.cport))
        } else {
            match self
                .conns
                .lookup_in(e.protocol, &caddr, e.cport, &vaddr, e.vport)
            {
                Some(id) => {
                    let moved = self
                        .conns
                        .get(id)
                        .is_some_and(|c| c.dport != e.dport || c.daddr != daddr);
                    if moved {
                        if fl & flags::INACTIVE != 0 {
                            return (SyncApplied::Stale, None);
                        }
                        self.expire_now(id);
                        None
                    } else {
                        Some(id)
                    }
                }
                None => None,
            }
        };
        let (id, applied) = match existing {
            Some(id) => {
                let Some(c) = self.conns.get(id) else {
                    return (SyncApplied::Refused("connection gone"), None);
                };
                let (old_flags, owner, dest) = (c.flags, c.owner, c.dest);
                if (old_flags ^ fl) & flags::INACTIVE != 0 && !template {
                    self.move_activity(owner, dest, fl & flags::INACTIVE != 0);
                }
                const UPD: u32 = rvs_wire::ipvs_sync::conn_flags::BACKUP_UPD_MASK;
                fl = (fl & UPD) | (old_flags & !UPD);
                if let Some(mut m) = self.conns.get_mut(id) {
                    m.flags = fl;
                }
                if owner == UNBOUND_OWNER {
                    self.try_bind(id);
                }
                (id, SyncApplied::Updated)
            }
            None => {
                let bound = self.find_dest_for_sync(e, fl);
                let (owner, dest, applied) = match bound {
                    Some((sref, did, fwd)) => {
                        // ip_vs_bind_dest: the real server's forwarding method.
                        fl &= !(flags::FWD_MASK | flags::NOOUTPUT);
                        fl |= fwd.conn_flag();
                        if fwd != FwdMethod::Masq {
                            fl |= flags::NOOUTPUT;
                        }
                        if template {
                            fl |= flags::INACTIVE;
                        }
                        (sref.to_owner(), did, SyncApplied::Created)
                    }
                    None => (UNBOUND_OWNER, DestId(u32::MAX), SyncApplied::CreatedUnbound),
                };
                let conn = Conn {
                    proto: e.protocol,
                    caddr,
                    cport: e.cport,
                    vaddr,
                    vport: e.vport,
                    daddr,
                    dport: e.dport,
                    fwmark: e.fwmark,
                    flags: fl,
                    state: e.state as u8,
                    timeout_ms: 0,
                    expires: now,
                    owner,
                    dest,
                    control: None,
                    n_control: 0,
                    in_pkts: 0,
                    old_state: 0,
                };
                let nat = fl & flags::FWD_MASK == flags::MASQ && !template;
                let inserted = match pe {
                    Some(pe) => self.conns.insert_template_pe(conn, pe.into(), now),
                    None => self.conns.insert(conn, nat, now),
                };
                let Ok(id) = inserted else {
                    return (SyncApplied::Refused("connection table full"), None);
                };
                if let Some((sref, did, _)) = bound {
                    self.count_bound(sref, did, fl);
                }
                (id, applied)
            }
        };
        let timeout_ms = if e.timeout != 0 {
            e.timeout.min(MAX_TIMEOUT_SECS) * 1000
        } else if template {
            TEMPLATE_DEFAULT_TIMEOUT_MS
        } else {
            match e.protocol {
                PROTO_TCP => self.timeouts.tcp_ms(e.state as u8),
                PROTO_SCTP => self.timeouts.sctp_ms(e.state as u8),
                _ => self.timeouts.udp_secs().saturating_mul(1000),
            }
        };
        let threshold = self.sysctls.sync_threshold;
        if let Some(mut c) = self.conns.get_mut(id) {
            c.in_pkts = threshold;
            c.state = e.state as u8;
            c.old_state = c.state;
            c.timeout_ms = timeout_ms;
            c.rearm(now);
        }
        if applied == SyncApplied::Updated {
            // A cached fast-path flow must learn the new flags and timeout.
            if !template && let Some(c) = self.conns.get(id) {
                let key = crate::fastpath::flow_in(c);
                self.fast_path_forget(key);
            }
        }
        (applied, Some(id))
    }

    /// `ip_vs_find_dest` for an entry: the service (by mark, then by
    /// address) and the real server (`daddr`, and the port unless a
    /// non-NAT fwmark service).
    fn find_dest_for_sync(
        &self,
        e: &SyncConn<'_>,
        fl: u32,
    ) -> Option<(ServiceRef, DestId, FwdMethod)> {
        let af = if e.is_ipv6() { Af::Inet6 } else { Af::Inet };
        let sref = match Protocol::from_number(e.protocol) {
            Some(p) => self.services.lookup(e.fwmark, af, p, e.vaddr(), e.vport)?,
            None if e.fwmark != 0 => self
                .services
                .find(&ServiceKey::Fwmark { af, mark: e.fwmark })?,
            None => return None,
        };
        let svc = self.services.get(sref)?;
        let port = if e.fwmark != 0 && fl & flags::FWD_MASK != flags::MASQ {
            0
        } else {
            e.dport
        };
        let daddr = e.daddr();
        let i = svc
            .dest_index(daddr, port)
            .or_else(|| svc.dest_index(daddr, port ^ e.dport))?;
        let d = &svc.dests[i];
        Some((sref, d.id, d.fwd))
    }

    /// Count a connection just bound to `dest` (`ip_vs_bind_dest`).
    fn count_bound(&mut self, sref: ServiceRef, dest: DestId, fl: u32) {
        if let Some(d) = self
            .services
            .get_mut(sref)
            .and_then(|s| s.dest_by_id_mut(dest))
        {
            if fl & flags::TEMPLATE != 0 {
                d.count_persist(1);
            } else if fl & flags::INACTIVE != 0 {
                d.count(0, 1);
            } else {
                d.count(1, 0);
            }
            d.after_bind();
        }
    }

    /// Move a connection between its server's active and inactive counts.
    fn move_activity(&mut self, owner: u64, dest: DestId, to_inactive: bool) {
        if let Some(d) = self
            .services
            .get_mut(ServiceRef::from_owner(owner))
            .and_then(|s| s.dest_by_id_mut(dest))
        {
            if to_inactive {
                d.count(-1, 1);
            } else {
                d.count(1, -1);
            }
        }
    }

    /// `ip_vs_try_bind_dest`: bind an unbound synced connection to this
    /// director's service and real server once they exist. Returns whether
    /// it is bound now.
    pub(super) fn try_bind(&mut self, id: ConnId) -> bool {
        let Some(c) = self.conns.get(id) else {
            return false;
        };
        if c.owner != UNBOUND_OWNER {
            return true;
        }
        let e = SyncConn {
            protocol: c.proto,
            flags: c.flags,
            state: u16::from(c.state),
            cport: c.cport,
            vport: c.vport,
            dport: c.dport,
            addrs: match addrs_of(c) {
                Some(a) => a,
                None => return false,
            },
            fwmark: c.fwmark,
            timeout: 0,
            seq: None,
            pe_data: None,
            pe_name: None,
        };
        let fl = c.flags;
        let Some((sref, did, fwd)) = self.find_dest_for_sync(&e, fl) else {
            return false;
        };
        // The forwarding method stays the master's when it would change
        // which index the entry is in (NAT entries are indexed for replies).
        let same_index = (fwd == FwdMethod::Masq) == (fl & flags::FWD_MASK == flags::MASQ);
        let mut nfl = fl;
        if same_index {
            nfl &= !(flags::FWD_MASK | flags::NOOUTPUT);
            nfl |= fwd.conn_flag();
            if fwd != FwdMethod::Masq {
                nfl |= flags::NOOUTPUT;
            }
        }
        if let Some(mut m) = self.conns.get_mut(id) {
            m.owner = sref.to_owner();
            m.dest = did;
            m.flags = nfl;
        }
        self.count_bound(sref, did, nfl);
        true
    }
}

/// `ip_vs_sync_conn_needed`: whether to send `c` now, judging by `pkts`;
/// updates the entry's sync bookkeeping when it says yes.
pub(super) fn sync_needed(
    c: &mut Conn,
    endtime: &mut u32,
    pkts: u32,
    s: &super::Sysctls,
    in_persistence: bool,
    now: Instant,
) -> bool {
    // Milliseconds modulo 2^32, compared as the kernel compares jiffies.
    let now_ms = now.as_millis() as u32;
    let orig = *endtime;
    let timeout = c.timeout_ms;
    let mut n = now_ms.wrapping_add(timeout) & !3;
    if c.is_template() {
        // Templates are judged by their own packet count only.
    } else if s.sync_persist_mode && in_persistence {
        return false;
    } else if c.proto == PROTO_TCP || c.proto == PROTO_SCTP {
        let (set, established) = if c.proto == PROTO_TCP {
            (TCP_SYNCED, TCP_ESTABLISHED)
        } else {
            (SCTP_SYNCED, SCTP_ESTABLISHED)
        };
        if c.state >= 32 || set & (1 << c.state) == 0 {
            return false;
        }
        // A change of state is sent at once, unless into ESTABLISHED
        // (which waits for the packet count like any other).
        if c.state != c.old_state && c.state != established {
            c.old_state = c.state;
            *endtime = n;
            return true;
        }
    }
    let refresh_ms = s.sync_refresh_period.saturating_mul(1000);
    if refresh_ms > 0 {
        let diff = (n.wrapping_sub(orig) as i32).unsigned_abs();
        let min_diff = (timeout / 2).max(10_000);
        if diff < refresh_ms.min(min_diff) {
            let retries = orig & 3;
            if retries >= u32::from(s.sync_retries) {
                return false;
            }
            // time_before(now, orig - timeout + refresh / 8)
            let resend_at = orig.wrapping_sub(timeout).wrapping_add(refresh_ms / 8);
            if (now_ms.wrapping_sub(resend_at) as i32) < 0 {
                return false;
            }
            n |= retries + 1;
        }
    }
    if s.sync_period > 0 {
        if !c.is_template() && pkts % s.sync_period != s.sync_threshold {
            return false;
        }
    } else if refresh_ms == 0 && pkts != s.sync_threshold {
        return false;
    }
    c.old_state = c.state;
    *endtime = n;
    true
}

/// The first packet count in `old+1 ..= old+packets` at which a master
/// sends (`count % period == threshold`; with period 0, `threshold`).
pub(super) fn crossing(old: u32, packets: u32, threshold: u32, period: u32) -> Option<u32> {
    let lo = u64::from(old) + 1;
    let hi = u64::from(old) + u64::from(packets);
    let (t, p) = (u64::from(threshold), u64::from(period));
    let first = if p == 0 { t } else { lo + (t + p - lo % p) % p };
    u32::try_from(first)
        .ok()
        .filter(|_| first >= lo && first <= hi)
}

fn addrs_of(c: &Conn) -> Option<SyncAddrs> {
    match (c.caddr, c.vaddr, c.daddr) {
        (IpAddr::V4(caddr), IpAddr::V4(vaddr), IpAddr::V4(daddr)) => Some(SyncAddrs::V4 {
            caddr,
            vaddr,
            daddr,
        }),
        (IpAddr::V6(caddr), IpAddr::V6(vaddr), IpAddr::V6(daddr)) => Some(SyncAddrs::V6 {
            caddr,
            vaddr,
            daddr,
        }),
        // A tunnel to a server of the other family: the message format
        // holds one family (the kernel does not sync these either).
        _ => None,
    }
}

/// The entry a master sends for `c` (`flags & ~HASHED`, the state's
/// timeout in seconds), with `pe`, its persistence-engine data (a
/// template's; its cport, the data's tag, is sent as 0).
pub(super) fn entry_of(c: &Conn, pe: Option<Box<[u8]>>) -> Option<SyncEntry> {
    let cport = c.shown_cport(pe.is_some());
    let conn = SyncConn {
        protocol: c.proto,
        flags: c.flags & !flags::HASHED,
        state: u16::from(c.state),
        cport,
        vport: c.vport,
        dport: c.dport,
        addrs: addrs_of(c)?,
        fwmark: c.fwmark,
        timeout: c.timeout_ms / 1000,
        seq: None,
        pe_data: None,
        pe_name: None,
    };
    Some(SyncEntry { conn, pe_data: pe })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossing_points() {
        // Kernel default "3 50": packets 3, 53, 103…
        assert_eq!(crossing(0, 2, 3, 50), None);
        assert_eq!(crossing(0, 3, 3, 50), Some(3));
        assert_eq!(crossing(2, 1, 3, 50), Some(3));
        assert_eq!(crossing(3, 49, 3, 50), None);
        assert_eq!(crossing(3, 50, 3, 50), Some(53));
        assert_eq!(crossing(10, 1000, 3, 50), Some(53));
        // Period 0: once, at the threshold.
        assert_eq!(crossing(0, 100, 3, 0), Some(3));
        assert_eq!(crossing(3, 100, 3, 0), None);
    }

    #[test]
    fn unbound_owner_is_no_service() {
        let r = ServiceRef::from_owner(UNBOUND_OWNER);
        assert_eq!((r.slot, r.generation), (u32::MAX, u32::MAX));
    }
}
