//! The request handler: one [`Request`] in, one [`Reply`] out, no I/O.
//!
//! [`State`] owns the engine and the sync-daemon bookkeeping; the server
//! keeps it behind a mutex and calls [`State::handle`] for each request line.
//! Every request is checked whole before anything changes: a single change
//! goes through the engine's own checks, a [`Request::Batch`] through a dry
//! run of the entire batch first (see `rvs_core::batch`), so a failed request
//! never leaves a partial change behind.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rvs_core::batch::ConfigOp;
use rvs_core::service::CtlError;
use rvs_core::{Engine, Instant};
use rvs_proto::fwmark::FwmarkSpec;
use rvs_proto::{
    BatchLine, Envelope, ErrorReply, IPVS_VERSION_CODE, Op, PROTOCOL_VERSION, Reply, Request,
    ServiceId, ServiceInfo,
};

use crate::auth::Peer;
use crate::convert::{self, Action};
use crate::sync::SyncDaemons;

/// EPERM.
pub const EPERM: i32 = 1;
/// The detail of the EPERM reply to an unprivileged peer.
pub const REFUSAL: &str = "permission denied: root, CAP_NET_ADMIN in rvsd's user namespace \
     or membership of rvsd's --group is needed to use rvsd";

/// ESRCH.
pub const ESRCH: i32 = 3;
/// EIO: the data plane did not take a change.
pub const EIO: i32 = 5;
/// EINVAL.
pub const EINVAL: i32 = 22;

/// Connection-table size reported by `Request::Info` (`(size=4096)` in
/// ipvsadm's header). rvs has no fixed bucket array — its table grows — so
/// this is the kernel's default `CONN_TAB_SIZE`, which keeps the header
/// identical to IPVS's.
pub const CONN_TAB_SIZE: u32 = 4096;

/// A failed request: the errno the kernel would return, and a detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Positive errno.
    pub errno: i32,
    /// Human-readable detail.
    pub message: Cow<'static, str>,
    /// Whether rvsadm shows `message` ([`ErrorReply::explain`]).
    pub explain: bool,
}

impl Failure {
    /// A failure with `errno`.
    pub fn new(errno: i32, message: impl Into<Cow<'static, str>>) -> Failure {
        Failure {
            errno,
            message: message.into(),
            explain: false,
        }
    }

    /// A failure whose `message` rvsadm shows after ipvsadm's text for
    /// `errno` ([`ErrorReply::explain`]).
    pub fn explained(errno: i32, message: impl Into<Cow<'static, str>>) -> Failure {
        Failure {
            explain: true,
            ..Failure::new(errno, message)
        }
    }

    /// EINVAL.
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Failure {
        Failure::new(EINVAL, message)
    }

    /// As an error reply.
    pub fn reply(self, line: Option<usize>, op: Option<Op>) -> Reply {
        Reply::Error(ErrorReply {
            errno: self.errno,
            message: self.message.into_owned(),
            line,
            op,
            explain: self.explain,
        })
    }
}

impl From<CtlError> for Failure {
    fn from(e: CtlError) -> Failure {
        let errno = e.errno();
        match e {
            CtlError::NoRoom(why) => Failure::explained(errno, why),
            e => Failure::new(e.errno(), e.to_string()),
        }
    }
}

/// How the handler learns an interface's MTU (`None`: no such interface).
pub type MtuOf = fn(&str) -> Option<u32>;

/// How the handler opens a sync daemon's socket: `Ok(None)` keeps the
/// daemon as bookkeeping only (unit tests), an error refuses the start.
pub type OpenSync =
    fn(&rvs_proto::DaemonSpec, u32) -> std::io::Result<Option<crate::syncd::SyncSocket>>;

/// The real sockets ([`crate::syncd::open_socket`]).
pub fn system_open_sync(
    spec: &rvs_proto::DaemonSpec,
    sock_size: u32,
) -> std::io::Result<Option<crate::syncd::SyncSocket>> {
    crate::syncd::open_socket(spec, sock_size).map(Some)
}

/// How the handler learns an interface's index (`None`: no such interface).
pub type IfindexOf = fn(&str) -> Option<u32>;

/// The index of interface `name` in rvsd's network namespace.
pub fn system_ifindex(name: &str) -> Option<u32> {
    rvs_io::xdp::ifindex(name).ok()
}

/// Everything a request can read or change.
#[derive(Debug)]
pub struct State {
    engines: std::sync::Arc<crate::engines::Engines>,
    sync: SyncDaemons,
    /// Opens a sync daemon's socket (`None`: bookkeeping only, in tests).
    open_sync: OpenSync,
    mtu_of: MtuOf,
    ifindex_of: IfindexOf,
    /// The name each interface index of a fwmark rule was given by (rules
    /// are listed by name even after the interface is renamed or gone).
    ifnames: BTreeMap<u32, String>,
    generation: u64,
}

/// Where a batch operation came from: a fwmark rule of a rules file (its
/// index in the rule list) or a batch line (its index).
#[derive(Debug, Clone, Copy)]
enum Origin {
    Fwmark(usize),
    Line(usize),
}

/// Decode one request line: its [`Request`], or the failure (EINVAL) for a
/// malformed line or another protocol version.
pub fn decode_request(line: &[u8]) -> Result<Request, Failure> {
    #[derive(serde::Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let mismatch = |v: u32| {
        Failure::invalid(format!(
            "unsupported protocol version {v}: this rvsd ({}) speaks version {PROTOCOL_VERSION}",
            env!("CARGO_PKG_VERSION")
        ))
    };
    match serde_json::from_slice::<Envelope>(line) {
        Ok(env) if env.version == PROTOCOL_VERSION => Ok(env.request),
        Ok(env) => Err(mismatch(env.version)),
        Err(e) => match serde_json::from_slice::<VersionOnly>(line) {
            // A request this version does not know, from another version.
            Ok(v) if v.version != PROTOCOL_VERSION => Err(mismatch(v.version)),
            _ => Err(Failure::invalid(format!("malformed request: {e}"))),
        },
    }
}

impl State {
    /// A handler owning `engine`, finding interfaces with `mtu_of`.
    pub fn new(engine: Engine, mtu_of: MtuOf) -> State {
        State {
            engines: std::sync::Arc::new(crate::engines::Engines::new(engine)),
            sync: SyncDaemons::default(),
            open_sync: |_, _| Ok(None),
            mtu_of,
            ifindex_of: system_ifindex,
            ifnames: BTreeMap::new(),
            generation: 0,
        }
    }

    /// Up to `max` connections from slab index `from` on, appended to `out`
    /// as `-L -c` shows them; where the next chunk starts, `None` at the
    /// end. The server lists the table in such chunks, taking the state
    /// lock for each, so that forwarding goes on while a large table is
    /// listed.
    pub fn conns_chunk(
        &self,
        from: u64,
        max: usize,
        now: Instant,
        out: &mut Vec<rvs_proto::ConnInfo>,
    ) -> Option<u64> {
        self.conns_chunk_each(from, max, |c, pe| out.push(convert::conn_info(c, pe, now)))
    }

    /// [`Self::conns_chunk`] as borrowed records of the compact encoding
    /// ([`rvs_proto::packed`]), appended to `out`: a copy of the fields,
    /// nothing allocated per entry while the replica's lock is held but
    /// for templates with persistence-engine data (SIP Call-IDs), whose
    /// data goes to `pes` with the record's index in `out`.
    pub fn conns_chunk_records(
        &self,
        from: u64,
        max: usize,
        now: Instant,
        out: &mut Vec<rvs_proto::packed::ConnRecord<'static>>,
        pes: &mut Vec<(usize, Box<[u8]>)>,
    ) -> Option<u64> {
        self.conns_chunk_each(from, max, |c, pe| {
            if let Some(d) = pe {
                pes.push((out.len(), d.into()));
            }
            out.push(convert::conn_record(c, pe.is_some(), now))
        })
    }

    /// Up to `max` connections from the cursor `from` on, each to `f`,
    /// under its replica's lock; the next cursor, `None` at the end.
    fn conns_chunk_each(
        &self,
        from: u64,
        max: usize,
        mut f: impl FnMut(&rvs_core::conn::Conn, Option<&[u8]>),
    ) -> Option<u64> {
        // The cursor: replica in the high half, slab index in the low.
        let (mut replica, mut index) = ((from >> 32) as usize, from as u32);
        while replica < self.engines.len() {
            let engine = self.engines.lock(replica);
            let (mut last, mut taken) = (None, 0);
            for (id, c) in engine.conns().iter_from(index).take(max) {
                f(c, engine.conns().pe_data(id));
                last = Some(id.index());
                taken += 1;
            }
            match last {
                Some(i) if taken == max => {
                    return Some(((replica as u64) << 32) | u64::from(i + 1));
                }
                _ => {
                    replica += 1;
                    index = 0;
                    if taken > 0 {
                        // This chunk ends with the replica.
                        return (replica < self.engines.len()).then_some((replica as u64) << 32);
                    }
                }
            }
        }
        None
    }

    /// Open sync daemons' sockets with `f` (rvsd: [`system_open_sync`]).
    pub fn set_open_sync(&mut self, f: OpenSync) {
        self.open_sync = f;
    }

    /// The running sync daemons' sockets, for the sync thread.
    pub fn sync_sockets(
        &self,
    ) -> (
        Option<crate::sync::RunningDaemon>,
        Option<crate::sync::RunningDaemon>,
    ) {
        self.sync.sockets()
    }

    /// Start daemon `spec` in `sync`: its settings, then its socket
    /// (nothing started if that fails).
    fn start_daemon(
        &self,
        sync: &mut SyncDaemons,
        spec: &rvs_proto::DaemonSpec,
    ) -> Result<rvs_proto::DaemonSpec, Failure> {
        let s = sync.start(spec, self.mtu_of)?;
        let sock_size = self.engines.first().sysctls().sync_sock_size;
        match (self.open_sync)(&s, sock_size) {
            Ok(sock) => {
                sync.attach(s.role, sock);
                Ok(s)
            }
            Err(e) => {
                let _ = sync.stop(s.role);
                Err(Failure::explained(
                    e.raw_os_error().unwrap_or(EINVAL),
                    format!(
                        "{} sync daemon on {}: cannot open its socket: {e}",
                        role_name(s.role),
                        s.mcast_ifn
                    ),
                ))
            }
        }
    }

    /// Tell the engine which daemons run.
    fn sync_engine_flags(&mut self) {
        let master = self.sync.running(rvs_proto::DaemonRole::Master);
        let backup = self.sync.running(rvs_proto::DaemonRole::Backup);
        self.engines.each(|e| {
            e.set_sync_master(master);
            e.set_sync_backup(backup);
        });
    }

    /// Resolve interface names of fwmark rules with `f` instead of the
    /// system's (tests).
    pub fn set_ifindex_of(&mut self, f: IfindexOf) {
        self.ifindex_of = f;
    }

    /// The engine replicas.
    pub fn engines(&self) -> &std::sync::Arc<crate::engines::Engines> {
        &self.engines
    }

    /// Grow to `n` engine replicas (`--engines per-worker`, before the
    /// workers start).
    pub fn replicate_engines(&mut self, n: usize) {
        match std::sync::Arc::get_mut(&mut self.engines) {
            Some(e) => e.replicate(n),
            // Only before the workers and the server share them.
            None => tracing::error!("BUG: engine replicas asked for once they are shared"),
        }
        self.sync_engine_flags();
    }

    /// The first engine replica, locked: the whole engine with
    /// `--engines shared`; with `per-worker`, the one whose configuration
    /// is read (statistics and connections are over all: [`State::engines`]).
    pub fn engine(&self) -> crate::engines::Replica<'_> {
        self.engines.changed();
        self.engines.first()
    }

    /// Bumped by every successful `Apply` and `Batch`: the data plane
    /// recomputes its classifier maps when it changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Decode and handle one request line.
    pub fn handle_line(&mut self, peer: &Peer, line: &[u8], now: Instant) -> Reply {
        match decode_request(line) {
            Ok(req) => self.handle(peer, req, now),
            Err(f) => f.reply(None, None),
        }
    }

    /// Handle one request from `peer`.
    pub fn handle(&mut self, peer: &Peer, req: Request, now: Instant) -> Reply {
        if !peer.privileged {
            return Failure::new(EPERM, REFUSAL).reply(None, None);
        }
        match req {
            Request::Info => Reply::Info {
                version: IPVS_VERSION_CODE,
                conn_tab_size: CONN_TAB_SIZE,
            },
            Request::Apply(op) => match self.apply(&op, now) {
                Ok(()) => {
                    self.generation += 1;
                    Reply::Ok
                }
                Err(f) => f.reply(None, Some(op)),
            },
            Request::Batch(lines) => match self.batch(&[], &lines, now) {
                Ok(()) => {
                    self.generation += 1;
                    if !lines.is_empty() {
                        tracing::info!(
                            "applied a batch of {} changes (uid {}, pid {})",
                            lines.len(),
                            peer.uid,
                            peer.pid
                        );
                    }
                    Reply::Ok
                }
                Err((Origin::Line(i), f)) => {
                    f.reply(Some(lines[i].line), Some(lines[i].op.clone()))
                }
                Err((Origin::Fwmark(_), f)) => f.reply(None, None),
            },
            Request::ListServices => Reply::Services(self.services()),
            Request::GetService(id) => match self.service(&id) {
                Some(s) => Reply::Service(s),
                None => Failure::new(ESRCH, "no such service").reply(None, None),
            },
            Request::GetTimeouts => {
                let t = *self.engines.first().timeouts();
                Reply::Timeouts {
                    tcp: t.tcp_established_secs(),
                    tcpfin: t.tcp_fin_secs(),
                    udp: t.udp_secs(),
                }
            }
            Request::ListDaemons => Reply::Daemons(self.sync.list()),
            Request::GlobalStats => {
                let (stats, rates) = self.engines.stats();
                Reply::GlobalStats { stats, rates }
            }
            // Whole, in one reply: the server answers a privileged peer's
            // listing in chunks instead (`server::conn`).
            // Blocks of raw records follow the reply lines: only the
            // server can answer that (`server::conn`); a client asked
            // here falls back to the parts.
            Request::ListConnsPacked => {
                Failure::invalid("a packed listing is answered by the server").reply(None, None)
            }
            Request::ListConns | Request::ListConnsParts => Reply::Conns(
                self.engines
                    .each_unchanged(|e| {
                        e.conns()
                            .iter()
                            .map(|(id, c)| convert::conn_info(c, e.conns().pe_data(id), now))
                            .collect::<Vec<_>>()
                    })
                    .concat(),
            ),
            // Answered by the server from the data plane's counters; a
            // state without a data plane has none.
            Request::DataPlaneStats => Reply::no_data_plane(),
            Request::FwmarkAdd(spec) => {
                let res = self.fwmark_add(&spec, now);
                self.changed(res)
            }
            Request::FwmarkDel(spec) => {
                let res = self.fwmark_del(&spec, now);
                self.changed(res)
            }
            Request::FwmarkFlush => {
                self.engines.each(|e| e.flush_fwmark_rules());
                self.ifnames.clear();
                self.changed(Ok(()))
            }
            Request::FwmarkList => Reply::FwmarkRules(self.fwmark_rules()),
            Request::FwmarkHost => crate::hostwatch::listing(),
            Request::GetSysctls => Reply::Sysctls(self.sysctls()),
            Request::SetSysctls(pairs) => {
                let before = *self.engines.first().sysctls();
                let mut s = before;
                match s.set_all(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
                    Ok(()) => {
                        if s != before {
                            tracing::info!(
                                "sysctls set (uid {}, pid {}): {}",
                                peer.uid,
                                peer.pid,
                                pairs
                                    .iter()
                                    .map(|(n, v)| format!("{n}={v}"))
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            );
                        }
                        self.engines.each(|e| e.set_sysctls(s));
                        Reply::Ok
                    }
                    Err(e) => Failure::new(EINVAL, e.to_string()).reply(None, None),
                }
            }
        }
    }

    /// Every IPVS sysctl with its value in force.
    fn sysctls(&self) -> Vec<rvs_proto::SysctlValue> {
        let s = *self.engines.first().sysctls();
        rvs_core::sysctl::SYSCTLS
            .iter()
            .map(|i| rvs_proto::SysctlValue {
                name: format!("{}{}", rvs_core::sysctl::PREFIX, i.name),
                value: s.get(i.name).unwrap_or_default(),
                applies: i.applies,
                note: i.note.to_string(),
            })
            .collect()
    }

    /// `Ok` with a new generation (the data plane resyncs), or the error.
    fn changed(&mut self, res: Result<(), Failure>) -> Reply {
        match res {
            Ok(()) => {
                self.generation += 1;
                Reply::Ok
            }
            Err(f) => f.reply(None, None),
        }
    }

    /// The engine rule of `spec`, its interface resolved.
    fn resolve_fwmark(&self, spec: &FwmarkSpec) -> Result<rvs_core::fwmark::FwmarkRule, Failure> {
        let ifindex_of = self.ifindex_of;
        convert::fwmark_rule(spec, |name| {
            ifindex_of(name).or_else(|| {
                // A rule's interface may be gone since: its recorded name.
                self.ifnames
                    .iter()
                    .find(|(_, n)| n.as_str() == name)
                    .map(|(i, _)| *i)
            })
        })
    }

    fn fwmark_add(&mut self, spec: &FwmarkSpec, now: Instant) -> Result<(), Failure> {
        let rule = convert::fwmark_rule(spec, self.ifindex_of)?;
        // Through `apply`: the rule must fit the data plane's filter.
        let op = ConfigOp::AddFwmarkRule(rule.clone());
        self.engines.change(|e| e.apply(&op, now))?;
        self.note_ifname(&rule, spec);
        Ok(())
    }

    fn fwmark_del(&mut self, spec: &FwmarkSpec, now: Instant) -> Result<(), Failure> {
        let rule = self.resolve_fwmark(spec)?;
        // A deleted rule can uncover an earlier one: through `apply` too.
        let op = ConfigOp::DeleteFwmarkRule(rule);
        self.engines.change(|e| e.apply(&op, now))?;
        Ok(())
    }

    fn note_ifname(&mut self, rule: &rvs_core::fwmark::FwmarkRule, spec: &FwmarkSpec) {
        if let (Some(i), Some(name)) = (rule.iif, &spec.iif) {
            self.ifnames.insert(i, name.clone());
        }
    }

    /// Replace the fwmark rules mirrored from the host's firewall
    /// ([`crate::hostwatch`]); the data plane resyncs when they change.
    ///
    /// # Errors
    ///
    /// The claim check's reason (nothing changes).
    pub fn set_host_fwmark_rules(
        &mut self,
        rules: &[rvs_core::fwmark::FwmarkRule],
    ) -> Result<(), String> {
        let before = self.engines.first().fwmark_rules().host().to_vec();
        self.engines.change(|e| e.set_host_fwmark_rules(rules))?;
        if self.engines.first().fwmark_rules().host() != before.as_slice() {
            self.generation += 1;
        }
        Ok(())
    }

    /// The firewall-mark rules, in order, interfaces by name.
    pub fn fwmark_rules(&self) -> Vec<FwmarkSpec> {
        let name_of = |i: u32| {
            self.ifnames
                .get(&i)
                .cloned()
                .unwrap_or_else(|| format!("if{i}"))
        };
        self.engines
            .first()
            .fwmark_rules()
            .rules()
            .iter()
            .map(|r| convert::fwmark_spec(r, name_of))
            .collect()
    }

    /// `rvsd --rules`: fwmark rules (with their line numbers) then `lines`,
    /// all or nothing, as one change.
    pub fn load_rules(
        &mut self,
        fwmark: &[(usize, FwmarkSpec)],
        lines: &[BatchLine],
        now: Instant,
    ) -> Reply {
        match self.batch(fwmark, lines, now) {
            Ok(()) => {
                self.generation += 1;
                Reply::Ok
            }
            Err((Origin::Line(i), f)) => f.reply(Some(lines[i].line), Some(lines[i].op.clone())),
            Err((Origin::Fwmark(i), f)) => f.reply(Some(fwmark[i].0), None),
        }
    }

    /// Every service: address services first, then fwmark ones, each newest
    /// first (the kernel's unsorted order); read without the engine's locks
    /// ([`crate::engines`]).
    pub fn services(&self) -> Vec<ServiceInfo> {
        self.engines.services()
    }

    /// One service.
    pub fn service(&self, id: &ServiceId) -> Option<ServiceInfo> {
        self.engines.service(id)
    }

    fn apply(&mut self, op: &Op, now: Instant) -> Result<(), Failure> {
        match convert::action(op)? {
            Action::Config(c) => {
                let r = self.engines.change(|e| e.apply(&c, now));
                self.engines.share_totals();
                r.map_err(Failure::from)
            }
            Action::StartDaemon(spec) => {
                let mut sync = std::mem::take(&mut self.sync);
                let r = self.start_daemon(&mut sync, &spec);
                self.sync = sync;
                let s = r?;
                self.sync_engine_flags();
                log_started(&s);
                Ok(())
            }
            Action::StopDaemon(role) => {
                self.sync.stop(role)?;
                self.sync_engine_flags();
                tracing::info!("{} sync daemon stopped", role_name(role));
                Ok(())
            }
        }
    }

    /// The fwmark rules of a rules file, then all of `lines`, or nothing:
    /// where the first failure is.
    fn batch(
        &mut self,
        fwmark: &[(usize, FwmarkSpec)],
        lines: &[BatchLine],
        now: Instant,
    ) -> Result<(), (Origin, Failure)> {
        // Dry run: the engine's part through its model, the sync daemons on a
        // copy. The first failing line wins.
        let mut config: Vec<ConfigOp> = Vec::with_capacity(fwmark.len() + lines.len());
        let mut config_line: Vec<Origin> = Vec::with_capacity(fwmark.len() + lines.len());
        for (i, (_, spec)) in fwmark.iter().enumerate() {
            let rule =
                convert::fwmark_rule(spec, self.ifindex_of).map_err(|f| (Origin::Fwmark(i), f))?;
            config.push(ConfigOp::AddFwmarkRule(rule));
            config_line.push(Origin::Fwmark(i));
        }
        let mut sync = self.sync.clone();
        let mut started = Vec::new();
        let mut first_err: Option<(Origin, Failure)> = None;
        for (i, l) in lines.iter().enumerate() {
            let res = convert::action(&l.op).and_then(|a| match a {
                Action::Config(c) => {
                    config.push(c);
                    config_line.push(Origin::Line(i));
                    Ok(())
                }
                Action::StartDaemon(spec) => {
                    self.start_daemon(&mut sync, &spec).map(|s| started.push(s))
                }
                Action::StopDaemon(role) => sync.stop(role),
            });
            if let Err(f) = res {
                first_err = Some((Origin::Line(i), f));
                break;
            }
        }
        // Every engine op collected precedes `first_err`, so an engine error wins.
        if let Err((j, e)) = self.engines.first().check_batch(&config) {
            return Err((config_line[j], e.into()));
        }
        if let Some(err) = first_err {
            return Err(err);
        }
        for (j, op) in config.iter().enumerate() {
            // Cannot fail after the dry run; if it does, the model in
            // rvs_core::batch is out of step with the engine.
            if let Err(e) = self.engines.change(|e| e.apply_after_check(op, now)) {
                tracing::error!(
                    "BUG: batch operation {} failed after a clean dry run ({e}); \
                     the operations before it were applied",
                    j + 1
                );
                return Err((config_line[j], e.into()));
            }
        }
        self.engines.share_totals();
        for (_, spec) in fwmark {
            if let Ok(rule) = convert::fwmark_rule(spec, self.ifindex_of) {
                self.note_ifname(&rule, spec);
            }
        }
        self.sync = sync;
        self.sync_engine_flags();
        for s in &started {
            log_started(s);
        }
        Ok(())
    }
}

fn role_name(role: rvs_proto::DaemonRole) -> &'static str {
    match role {
        rvs_proto::DaemonRole::Master => "master",
        rvs_proto::DaemonRole::Backup => "backup",
    }
}

fn log_started(s: &rvs_proto::DaemonSpec) {
    let group = s
        .group
        .map(|g| g.to_string())
        .unwrap_or_else(|| "224.0.0.81".into());
    tracing::info!(
        "{} sync daemon started (mcast_ifn={}, syncid={}, group={group}, port={}, \
         maxlen={})",
        role_name(s.role),
        s.mcast_ifn,
        s.syncid,
        s.port,
        s.maxlen
    );
}
