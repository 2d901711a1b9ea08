//! The control endpoint: accept connections, one thread each, one JSON line
//! per request and per reply; and the housekeeping thread.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rvs_proto::{Reply, Request, encode};

use crate::auth::{Peer, Policy};
use crate::dataplane::DpShared;
use crate::handler::{EIO, EPERM, Failure, REFUSAL, State, decode_request};
use crate::system::Clock;

/// How often the engine's housekeeping runs.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Largest request line accepted from an unprivileged peer (it only ever
/// gets EPERM; this bounds what it can make rvsd buffer). Longer lines are
/// discarded as they arrive, never buffered.
pub const MAX_UNPRIVILEGED_LINE: usize = 4 << 10;

/// Largest request line accepted from a privileged peer. A restore of
/// 100 000 lines (`ipvsadm -R`, 1000 services of 99 real servers) is a
/// request of 24 MB (measured by `tests::restore_of_100k_lines_fits`); this
/// leaves more than 5× that (IPv6 addresses, longer options).
pub const MAX_REQUEST: usize = 128 << 20;

/// Most control connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// Connections kept for root (and rvsd's own uid): other users together
/// hold at most `MAX_CONNECTIONS - ROOT_RESERVE`, so root is never locked out.
pub const ROOT_RESERVE: usize = 64;

/// Most connections one uid other than root (and rvsd's own) holds at once.
pub const PER_UID_CONNECTIONS: usize = 8;

/// A privileged connection idle this long between requests (or stalled
/// this long within one) is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an unprivileged connection lives at most, whatever it sends:
/// long enough to read its request and return EPERM.
pub const UNPRIVILEGED_LIFETIME: Duration = Duration::from_secs(5);

/// A reply the peer does not read for this long closes the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many connections are open, in all and per uid.
#[derive(Debug, Default)]
struct Connections {
    total: usize,
    /// Those of uids that are neither root nor rvsd's own.
    others: usize,
    per_uid: HashMap<u32, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// [`MAX_CONNECTIONS`] are open.
    All,
    /// Users other than root hold all theirs (`MAX_CONNECTIONS - ROOT_RESERVE`).
    Others,
    /// This uid holds [`PER_UID_CONNECTIONS`].
    Uid,
}

/// What the threads share.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    clock: Clock,
    stop: Arc<AtomicBool>,
    connections: Mutex<Connections>,
    policy: Policy,
    /// When (seconds on the clock) a refusal was last logged: at most one a
    /// second, so that a user cannot flood the log.
    refusal_logged: AtomicU64,
    /// A data plane runs and mirrors the table into the classifier.
    dataplane: AtomicBool,
    /// The table generation the data plane has put into its filters.
    synced: AtomicU64,
    /// The generation the data plane last failed to put into its filters,
    /// and why (cleared once a later one is in).
    sync_failed: Mutex<Option<(u64, String)>>,
    /// Control requests handled, by kind: (count, seconds).
    requests: Mutex<std::collections::BTreeMap<&'static str, (u64, f64)>>,
    /// The running data plane's counters and filters.
    dp: OnceLock<Arc<DpShared>>,
    /// `--save FILE`.
    saver: OnceLock<crate::persist::Saver>,
}

/// How long a change waits for the data plane to put it into its filters
/// before rvsadm hears that it did not (a 16k-service restore takes well
/// under a second).
const SYNC_WAIT: Duration = Duration::from_secs(10);

/// How long a listing waits for a change on its way into the filters.
const LISTING_SYNC_WAIT: Duration = Duration::from_secs(1);

impl Shared {
    /// Share `state`; `stop` ends the accept loop and the housekeeping;
    /// `policy` says who may use the control API.
    pub fn new(state: State, clock: Clock, stop: Arc<AtomicBool>, policy: Policy) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(state),
            clock,
            stop,
            connections: Mutex::new(Connections::default()),
            policy,
            refusal_logged: AtomicU64::new(u64::MAX),
            dataplane: AtomicBool::new(false),
            synced: AtomicU64::new(0),
            sync_failed: Mutex::new(None),
            requests: Mutex::new(std::collections::BTreeMap::new()),
            dp: OnceLock::new(),
            saver: OnceLock::new(),
        })
    }

    /// Save the rules after every change (`--save`).
    pub fn set_saver(&self, saver: crate::persist::Saver) {
        let _ = self.saver.set(saver);
    }

    /// Write the rules now if saving (`--save`); whether it is.
    pub fn save_now(&self) -> bool {
        let Some(saver) = self.saver.get() else {
            return false;
        };
        saver.save_from(|| {
            let (fwmark, services) = {
                let state = self.lock();
                (state.fwmark_rules(), state.services())
            };
            crate::persist::rules_text(&fwmark, &services)
        });
        true
    }

    /// A data plane now mirrors the table: changes are acknowledged only
    /// once it has put them into its filters (classifier maps or nftables).
    pub fn set_dataplane_active(&self) {
        self.dataplane.store(true, Ordering::Release);
    }

    /// Register the running data plane (its counters answer
    /// `Request::DataPlaneStats`) and make it mirror the table.
    pub fn set_dataplane(&self, dp: Arc<DpShared>) {
        let _ = self.dp.set(dp);
        self.set_dataplane_active();
    }

    /// Each data-plane worker's loop turns so far (none without a data
    /// plane).
    pub fn worker_heartbeats(&self) -> Vec<u64> {
        self.dp.get().map(|dp| dp.heartbeats()).unwrap_or_default()
    }

    /// The packet I/O in use, with its workers, for logs and systemd's
    /// STATUS (`none` without a data plane).
    pub fn dataplane_mode(&self) -> String {
        match self.dataplane_stats() {
            Reply::DataPlaneStats { mode, workers, .. } if !workers.is_empty() => {
                format!("{mode}, {} worker(s)", workers.len())
            }
            Reply::DataPlaneStats { mode, .. } => mode,
            _ => "none".into(),
        }
    }

    /// The reply to `Request::DataPlaneStats`.
    pub fn dataplane_stats(&self) -> Reply {
        match self.dp.get() {
            Some(dp) => dp.report(),
            None => Reply::DataPlaneStats {
                mode: "none".into(),
                workers: Vec::new(),
                classifier: None,
                fast_path: None,
                engine: None,
                filter_out_of_step: None,
            },
        }
    }

    /// Credit to the engine of `state` (locked by the caller) what the XDP
    /// fast path forwarded so far, if a data plane with the fast path runs
    /// ([`DpShared::credit_fast_path`]).
    pub fn credit_fast_path(&self, state: &mut State) {
        if let Some(dp) = self.dp.get() {
            dp.credit_fast_path(state.engines(), self.clock.now());
        }
    }

    /// The data plane has put table generation `generation` into its filters.
    pub fn mark_synced(&self, generation: u64) {
        self.synced.fetch_max(generation, Ordering::AcqRel);
        let mut failed = self.sync_failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.as_ref().is_some_and(|(g, _)| *g <= generation) {
            *failed = None;
        }
    }

    /// The data plane could not put table generation `generation` into its
    /// filters (it keeps retrying): the changes waiting for it fail with
    /// `why`.
    pub fn sync_failed(&self, generation: u64, why: String) {
        *self.sync_failed.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, why));
    }

    /// Why the data plane does not hold the table, if it does not.
    pub fn sync_failure(&self) -> Option<String> {
        let failed = self.sync_failed.lock().unwrap_or_else(|e| e.into_inner());
        failed
            .as_ref()
            .map(|(g, why)| format!("table generation {g}: {why}"))
    }

    /// Wait (bounded by [`SYNC_WAIT`]) until the data plane has caught up
    /// with `generation`, so that when `ipvsadm -A`/`-a` returns, packets
    /// for the service are already claimed and not answered by the kernel.
    /// `Err` with the reason when the data plane failed to take it or did
    /// not confirm it in time: the change is in the table, but not (yet)
    /// in the filter, and the caller must hear so.
    fn wait_synced(&self, generation: u64) -> Result<(), NotSynced> {
        if !self.dataplane.load(Ordering::Acquire) {
            return Ok(());
        }
        let start = std::time::Instant::now();
        loop {
            let synced = self.synced.load(Ordering::Acquire);
            if synced >= generation || self.stopping() {
                return Ok(());
            }
            if let Some((g, why)) = &*self.sync_failed.lock().unwrap_or_else(|e| e.into_inner())
                && *g >= generation
            {
                return Err(NotSynced::Refused(why.clone()));
            }
            if start.elapsed() >= SYNC_WAIT {
                return Err(NotSynced::Timeout { generation, synced });
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Count a control request of `kind` that took `secs`.
    fn note_request(&self, kind: &'static str, secs: f64) {
        let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let e = r.entry(kind).or_default();
        e.0 += 1;
        e.1 += secs;
    }

    /// What a metrics scrape shows ([`crate::metrics`]): the table and the
    /// engine's counters under the lock (after crediting the fast path, as
    /// `rvsadm -L --stats` does), the data plane's and the requests' after.
    pub fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        let (total, services, engine) = {
            let mut state = self.lock();
            self.credit_fast_path(&mut state);
            (
                state.engines().stats().0,
                state.services(),
                state.engines().counters(),
            )
        };
        let mut snap = crate::metrics::Snapshot {
            total,
            services,
            engine: Some(engine),
            requests: self
                .requests
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            ..crate::metrics::Snapshot::default()
        };
        if let Reply::DataPlaneStats {
            mode,
            workers,
            classifier,
            fast_path,
            ..
        } = self.dataplane_stats()
        {
            snap.mode = mode;
            snap.workers = workers;
            snap.classifier = classifier;
            snap.fast_path = fast_path;
        }
        snap.filter_out_of_step = self.sync_failure();
        snap
    }

    /// Before a listing: wait, at most [`LISTING_SYNC_WAIT`], until the data
    /// plane holds the table as it is now (nothing to wait for when it is in
    /// step; a data plane that failed to take a change is not waited for:
    /// `rvs dataplane` says so).
    fn wait_listing_synced(&self) {
        if !self.dataplane.load(Ordering::Acquire) {
            return;
        }
        let generation = self.lock().generation();
        let start = std::time::Instant::now();
        while self.synced.load(Ordering::Acquire) < generation
            && start.elapsed() < LISTING_SYNC_WAIT
            && self.sync_failure().is_none()
            && !self.stopping()
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The clock the handler uses.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Whether shutdown was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Count a new connection of `uid` unless a limit is reached.
    fn admit(&self, uid: u32) -> Result<(), Full> {
        let trusted = uid == 0 || uid == self.policy.daemon_uid;
        let mut c = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= MAX_CONNECTIONS {
            return Err(Full::All);
        }
        if !trusted {
            if c.others >= MAX_CONNECTIONS - ROOT_RESERVE {
                return Err(Full::Others);
            }
            let n = c.per_uid.entry(uid).or_insert(0);
            if *n >= PER_UID_CONNECTIONS {
                return Err(Full::Uid);
            }
            *n += 1;
            c.others += 1;
        }
        c.total += 1;
        Ok(())
    }

    /// A connection [`admit`](Self::admit)ted for `uid` closed.
    fn release(&self, uid: u32) {
        let trusted = uid == 0 || uid == self.policy.daemon_uid;
        let mut c = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if !trusted {
            c.others -= 1;
            if let Some(n) = c.per_uid.get_mut(&uid) {
                *n -= 1;
                if *n == 0 {
                    c.per_uid.remove(&uid);
                }
            }
        }
    }

    /// The state, locked. A thread that panicked while holding the lock does
    /// not take the daemon down with it.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Run housekeeping every [`POLL_INTERVAL`] until `stop`: credit the fast
/// path's traffic (so that connections it carries expire from their last
/// packet, and the rates see it), then `Engine::poll`.
pub fn spawn_housekeeping(shared: Arc<Shared>) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("housekeeping".into())
        .spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                std::thread::sleep(POLL_INTERVAL);
                let engines = {
                    let mut state = shared.lock();
                    shared.credit_fast_path(&mut state);
                    Arc::clone(state.engines())
                };
                // Each replica in turn, without the state lock.
                let now = shared.clock.now();
                engines.each(|e| e.poll(now));
            }
        })
}

/// Whether `req` reads or changes counters, rates or connections, so that
/// the fast path's traffic must be credited first for the answer to be
/// exact (`-L --stats/--rate`, `-L -c`, `-Z`, and changes that drop
/// counters with a service or real server).
pub fn needs_fast_path_credit(req: &Request) -> bool {
    match req {
        Request::Apply(_)
        | Request::Batch(_)
        | Request::ListServices
        | Request::GetService(_)
        | Request::GlobalStats
        | Request::ListConns
        | Request::SetSysctls(_) => true,
        Request::Info
        | Request::GetTimeouts
        | Request::ListDaemons
        | Request::DataPlaneStats
        | Request::FwmarkAdd(_)
        | Request::FwmarkDel(_)
        | Request::FwmarkFlush
        | Request::FwmarkList
        | Request::FwmarkHost
        | Request::GetSysctls => false,
    }
}

/// Connections listed per turn of the state lock (`-L -c`): about 3 ms of
/// work, after which the workers get the lock back.
pub const CONNS_PER_CHUNK: usize = 16384;

/// `-L -c`: the table in chunks of [`CONNS_PER_CHUNK`], the state lock
/// taken for each, so that a listing of a million connections does not
/// stop forwarding while it is built. Like the kernel's
/// `/proc/net/ip_vs_conn`, which walks the table a bucket at a time, the
/// result is not one instant's: a connection made or gone meanwhile may be
/// missing or listed, each entry is as it was when its chunk was read.
fn list_conns(shared: &Shared) -> Reply {
    // Debug builds (the tests'): RVSD_LIST_CHUNK=N lists N per turn of the
    // lock, to measure what chunking changes against one turn for all.
    static CHUNK: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let chunk = *CHUNK.get_or_init(|| {
        if !cfg!(debug_assertions) {
            return CONNS_PER_CHUNK;
        }
        std::env::var("RVSD_LIST_CHUNK")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(CONNS_PER_CHUNK)
    });
    let mut out = Vec::new();
    let mut from = 0;
    {
        let mut state = shared.lock();
        shared.credit_fast_path(&mut state);
    }
    loop {
        let next = {
            let state = shared.lock();
            state.conns_chunk(from, chunk, shared.clock.now(), &mut out)
        };
        match next {
            Some(n) => from = n,
            None => break,
        }
    }
    Reply::Conns(out)
}

/// Accept and serve connections until the stop flag is set (whoever sets it
/// then connects once to wake the accept).
pub fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    let mut full_logged: Option<Full> = None;
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: don't spin.
                crate::limited!(error, "accept", "accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        // The uid the kernel recorded at connect: limits apply per uid.
        let uid = rustix::net::sockopt::socket_peercred(&stream)
            .map(|c| c.uid.as_raw())
            .unwrap_or(u32::MAX);
        if let Err(full) = shared.admit(uid) {
            if full_logged != Some(full) {
                match full {
                    Full::All => tracing::warn!(
                        "{MAX_CONNECTIONS} control connections open; closing new ones"
                    ),
                    Full::Others => tracing::warn!(
                        "users other than root hold {} control connections; \
                         closing their new ones",
                        MAX_CONNECTIONS - ROOT_RESERVE
                    ),
                    Full::Uid => tracing::warn!(
                        "uid {uid} holds {PER_UID_CONNECTIONS} control connections; \
                         closing its new ones"
                    ),
                }
                full_logged = Some(full);
            }
            continue;
        }
        full_logged = None;
        let sh = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                serve_connection(stream, &sh);
                sh.release(uid);
            });
        if let Err(e) = spawned {
            shared.release(uid);
            tracing::error!("cannot start a connection thread: {e}");
        }
    }
}

/// Reads from a stream, each read bounded by the idle timeout and by a
/// deadline for the whole connection.
struct Timed {
    stream: UnixStream,
    idle: Duration,
    deadline: Option<std::time::Instant>,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut t = self.idle;
        if let Some(d) = self.deadline {
            t = t.min(d.saturating_duration_since(std::time::Instant::now()));
            if t.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
        }
        self.stream.set_read_timeout(Some(t))?;
        self.stream.read(buf)
    }
}

/// Serve one connection: requests until end of stream, idle timeout or
/// error.
pub fn serve_connection(stream: UnixStream, shared: &Shared) {
    let (peer, pin) = Peer::authenticate(&stream, &shared.policy);
    if stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err() {
        return;
    }
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    if !peer.privileged {
        // Its replies too are bounded by its lifetime.
        if stream
            .set_write_timeout(Some(UNPRIVILEGED_LIFETIME))
            .is_err()
        {
            return;
        }
        let reader = Timed {
            stream: read_half,
            idle: UNPRIVILEGED_LIFETIME,
            deadline: Some(std::time::Instant::now() + UNPRIVILEGED_LIFETIME),
        };
        let second = shared.clock.now().as_millis() / 1000;
        if shared.refusal_logged.swap(second, Ordering::Relaxed) != second {
            tracing::warn!(
                uid = peer.uid,
                pid = peer.pid,
                "refusing control connections of uid {} (pid {}): not root, \
                 no CAP_NET_ADMIN in rvsd's user namespace, not in the --group \
                 (logged at most once a second)",
                peer.uid,
                peer.pid
            );
        }
        refuse(BufReader::new(reader), stream);
        return;
    }
    let reader = Timed {
        stream: read_half,
        idle: IDLE_TIMEOUT,
        deadline: None,
    };
    // Large reads: a restore is megabytes.
    let mut reader = BufReader::with_capacity(64 << 10, reader);
    let mut writer = stream;
    let limit = MAX_REQUEST;
    loop {
        let line = match read_line(&mut reader, limit) {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let reply = Failure::invalid(format!("request longer than {limit} bytes"))
                    .reply(None, None);
                let _ = writer.write_all(&encode(&reply));
                return;
            }
            Err(_) => return,
        };
        // The process that connected must still be privileged (it may have
        // exec'd an unprivileged program with the connection).
        if let Some(p) = &pin
            && !p.still_privileged(&shared.policy)
        {
            tracing::warn!(
                "uid {} (pid {}) is no longer privileged (or gone): \
                 refusing its control connection from now on",
                peer.uid,
                peer.pid
            );
            let reply = Failure::new(EPERM, REFUSAL).reply(None, None);
            let _ = writer.write_all(&encode(&reply));
            let _ = writer.shutdown(std::net::Shutdown::Write);
            return;
        }
        // Decode and encode outside the lock; only the handling holds it.
        let started = std::time::Instant::now();
        let mut kind = "undecodable";
        let reply = match decode_request(&line) {
            Ok(req) => {
                kind = request_kind(&req);
                if matches!(req, Request::DataPlaneStats) {
                    // Credited first, so that the fast path's packets and
                    // bytes are as current as its own hit counter.
                    let counters = {
                        let mut state = shared.lock();
                        shared.credit_fast_path(&mut state);
                        state.engines().counters()
                    };
                    let mut reply = shared.dataplane_stats();
                    if let Reply::DataPlaneStats {
                        engine,
                        filter_out_of_step,
                        ..
                    } = &mut reply
                    {
                        *engine = Some(Box::new(counters));
                        *filter_out_of_step = shared.sync_failure();
                    }
                    reply
                } else if matches!(req, Request::ListConns) && peer.privileged {
                    list_conns(shared)
                } else {
                    // A listing waits (briefly) for a change still on its
                    // way into the data plane's filters, so that a service
                    // `-L` shows is one that is forwarded: another client's
                    // `-A` is visible in the table a moment before its
                    // filter holds it.
                    if matches!(req, Request::ListServices | Request::GetService(_)) {
                        shared.wait_listing_synced();
                    }
                    let (reply, before, generation) = {
                        let mut state = shared.lock();
                        if needs_fast_path_credit(&req) {
                            shared.credit_fast_path(&mut state);
                        }
                        let before = state.generation();
                        let reply = state.handle(&peer, req, shared.clock.now());
                        (reply, before, state.generation())
                    };
                    // Every change (Apply, Batch, fwmark rules) bumps the
                    // generation: acknowledge it once it is saved
                    // (`--save`) and the data plane's filters hold it.
                    if generation != before && matches!(reply, Reply::Ok) {
                        shared.save_now();
                        if let Err(why) = shared.wait_synced(generation) {
                            tracing::error!(
                                uid = peer.uid,
                                pid = peer.pid,
                                reason = %why,
                                "change by uid {} (pid {}) not acknowledged: {why}",
                                peer.uid, peer.pid
                            );
                            Failure::explained(EIO, why.to_string()).reply(None, None)
                        } else {
                            reply
                        }
                    } else {
                        reply
                    }
                }
            }
            Err(f) => f.reply(None, None),
        };
        drop(line);
        shared.note_request(kind, started.elapsed().as_secs_f64());
        tracing::debug!(
            request = kind,
            uid = peer.uid,
            pid = peer.pid,
            failed = matches!(reply, Reply::Error(_)),
            "control request handled in {} µs",
            started.elapsed().as_micros()
        );
        if writer.write_all(&encode(&reply)).is_err() {
            return;
        }
    }
}

/// Answer every request of an unprivileged peer with EPERM, without
/// decoding it or touching the state, until it closes or its time is up.
/// A line longer than [`MAX_UNPRIVILEGED_LINE`] is answered too, then
/// discarded as it arrives (so that the peer reads the refusal rather than
/// a broken pipe).
fn refuse<R: BufRead>(mut reader: R, mut writer: UnixStream) {
    let reply = encode(&Failure::new(EPERM, REFUSAL).reply(None, None));
    loop {
        match read_line(&mut reader, MAX_UNPRIVILEGED_LINE) {
            Ok(Some(_)) => {
                if writer.write_all(&reply).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                if writer.write_all(&reply).is_err() {
                    return;
                }
                let _ = writer.shutdown(std::net::Shutdown::Write);
                // Discard the rest until end of stream or the deadline.
                loop {
                    let n = match reader.fill_buf() {
                        Ok(b) if !b.is_empty() => b.len(),
                        _ => return,
                    };
                    reader.consume(n);
                }
            }
            _ => return,
        }
    }
}

/// One newline-terminated line (without the newline) of at most `limit`
/// bytes; `None` at end of stream; `InvalidData` if longer.
pub fn read_line<R: BufRead>(r: &mut R, limit: usize) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(limit as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message too long",
        ));
    }
    Ok(Some(line))
}

/// The name of a request's kind in the metrics (`rvs_control_request_seconds`).
fn request_kind(r: &Request) -> &'static str {
    match r {
        Request::Info => "info",
        Request::Apply(_) => "apply",
        Request::Batch(_) => "batch",
        Request::ListServices => "list_services",
        Request::GetService(_) => "get_service",
        Request::GetTimeouts => "get_timeouts",
        Request::ListDaemons => "list_daemons",
        Request::ListConns => "list_conns",
        Request::GlobalStats => "global_stats",
        Request::DataPlaneStats => "dataplane_stats",
        Request::FwmarkAdd(_) => "fwmark_add",
        Request::FwmarkDel(_) => "fwmark_del",
        Request::FwmarkList => "fwmark_list",
        Request::FwmarkHost => "fwmark_host",
        Request::FwmarkFlush => "fwmark_flush",
        Request::GetSysctls => "get_sysctls",
        Request::SetSysctls(_) => "set_sysctls",
    }
}

/// Serve `GET /metrics` on `addr` until rvsd stops: one thread, one
/// request at a time ([`crate::metrics`]). The listener is bound before
/// this returns, so a bad address stops rvsd at start.
pub fn spawn_metrics(
    shared: Arc<Shared>,
    addr: std::net::SocketAddr,
    labels: crate::metrics::BackendLabels,
) -> Result<(), MetricsError> {
    let server =
        tiny_http::Server::http(addr).map_err(|source| MetricsError::Listen { addr, source })?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let ctype = tiny_http::Header::from_bytes(
                &b"Content-Type"[..],
                crate::metrics::CONTENT_TYPE.as_bytes(),
            )
            .ok();
            while !shared.stopping() {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(200)) else {
                    continue;
                };
                let path = req.url().split('?').next().unwrap_or_default().to_string();
                let response = match (req.method(), path.as_str()) {
                    (tiny_http::Method::Get, "/metrics") => {
                        let text = crate::metrics::render(&shared.metrics_snapshot(), &labels);
                        let mut r = tiny_http::Response::from_string(text);
                        if let Some(h) = ctype.clone() {
                            r.add_header(h);
                        }
                        r
                    }
                    (tiny_http::Method::Get, "/") => {
                        tiny_http::Response::from_string("rvsd: metrics at /metrics\n")
                    }
                    _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
                };
                let _ = req.respond(response);
            }
        })
        .map_err(MetricsError::Thread)?;
    Ok(())
}

/// Why a change was not acknowledged: it is in the table, but not (yet)
/// in the data plane's filter ([`Shared::wait_synced`]).
#[derive(Debug, thiserror::Error)]
pub enum NotSynced {
    /// The data plane failed to take it (why), and keeps retrying.
    #[error(
        "rvsd's table has the change, but its data plane could not take it: {0}; \
         it keeps retrying (see rvs dataplane); undo the change or fix the cause"
    )]
    Refused(String),
    /// Not confirmed within [`SYNC_WAIT`].
    #[error(
        "rvsd's table has the change, but its data plane has not confirmed it \
         after {wait} s (table generation {generation}, data plane at {synced})",
        wait = SYNC_WAIT.as_secs()
    )]
    Timeout {
        /// The table's generation with the change.
        generation: u64,
        /// The generation the data plane holds.
        synced: u64,
    },
}

/// Why [`spawn_metrics`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("--metrics {addr}: cannot listen: {source}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_synced_texts() {
        assert_eq!(
            NotSynced::Refused("map full".into()).to_string(),
            "rvsd's table has the change, but its data plane could not take it: map full; \
             it keeps retrying (see rvs dataplane); undo the change or fix the cause"
        );
        assert_eq!(
            NotSynced::Timeout {
                generation: 7,
                synced: 5
            }
            .to_string(),
            format!(
                "rvsd's table has the change, but its data plane has not confirmed it \
                 after {} s (table generation 7, data plane at 5)",
                SYNC_WAIT.as_secs()
            )
        );
    }

    #[test]
    fn which_requests_credit_the_fast_path() {
        use rvs_proto::{Op, ServiceId};
        let svc = ServiceId::Fwmark { v6: false, mark: 1 };
        for r in [
            Request::ListServices,
            Request::GetService(svc),
            Request::GlobalStats,
            Request::ListConns,
            Request::Apply(Op::Zero(None)),
            Request::Apply(Op::DeleteService(svc)),
            Request::Batch(Vec::new()),
        ] {
            assert!(needs_fast_path_credit(&r), "{r:?}");
        }
        for r in [
            Request::Info,
            Request::GetTimeouts,
            Request::ListDaemons,
            Request::DataPlaneStats,
            Request::FwmarkList,
            Request::FwmarkHost,
            Request::FwmarkFlush,
        ] {
            assert!(!needs_fast_path_credit(&r), "{r:?}");
        }
    }

    /// A 100 000-line restore (1000 services of 99 real servers, as
    /// `ipvsadm -S -n` writes them) is a request well below [`MAX_REQUEST`].
    #[test]
    fn restore_of_100k_lines_fits() {
        let mut text = String::new();
        for s in 0..1000u32 {
            let vip = format!("10.{}.{}.1:80", s / 250, s % 250);
            text += &format!("-A -t {vip} -s wlc\n");
            for d in 0..99u32 {
                text += &format!(
                    "-a -t {vip} -r 192.168.{}.{}:8080 -m -w 1\n",
                    d / 250,
                    d % 250 + 1
                );
            }
        }
        let lines = rvsadm::cli::parse_restore("ipvsadm", &text).unwrap();
        assert_eq!(lines.len(), 100_000);
        let req = encode(&rvs_proto::Envelope {
            version: rvs_proto::PROTOCOL_VERSION,
            request: Request::Batch(lines),
        });
        eprintln!("100k-line restore: {} bytes", req.len());
        assert!(req.len() * 5 < MAX_REQUEST, "{} bytes", req.len());
    }

    #[test]
    fn connection_limits() {
        let policy = Policy {
            daemon_uid: 0,
            group: None,
            userns: None,
        };
        let sh = Shared::new(
            State::new(rvs_core::Engine::new(Default::default()), |_| None),
            Clock::new(),
            Arc::new(AtomicBool::new(false)),
            policy,
        );
        for _ in 0..PER_UID_CONNECTIONS {
            sh.admit(1000).unwrap();
        }
        assert_eq!(sh.admit(1000), Err(Full::Uid));
        sh.release(1000);
        sh.admit(1000).unwrap();
        // Others together stop short of the reserve; root goes on.
        let mut uid = 2000;
        while sh.admit(uid).is_ok() {
            uid += 1;
        }
        assert_eq!(sh.admit(uid + 1), Err(Full::Others));
        for _ in 0..ROOT_RESERVE {
            sh.admit(0).unwrap();
        }
        assert_eq!(sh.admit(0), Err(Full::All));
        sh.release(0);
        sh.admit(0).unwrap();
    }

    #[test]
    fn lines_and_limits() {
        let mut r = BufReader::new(&b"abc\n\nxyz"[..]);
        assert_eq!(read_line(&mut r, 10).unwrap(), Some(b"abc".to_vec()));
        assert_eq!(read_line(&mut r, 10).unwrap(), Some(vec![]));
        assert_eq!(read_line(&mut r, 10).unwrap(), Some(b"xyz".to_vec()));
        assert_eq!(read_line(&mut r, 10).unwrap(), None);
        let mut r = BufReader::new(&b"0123456789abc\n"[..]);
        assert_eq!(
            read_line(&mut r, 10).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let mut r = BufReader::new(&b"0123456789\n"[..]);
        assert_eq!(read_line(&mut r, 10).unwrap(), Some(b"0123456789".to_vec()));
    }
}
