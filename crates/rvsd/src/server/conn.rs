//! One control connection: the accept loop (limits per user and in
//! total), a thread per connection reading JSON lines with a size bound
//! and timeouts, each request handled under the state lock, the
//! connection listing built in chunks.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rvs_proto::{Reply, Request, encode};

use super::*;
use crate::auth::Peer;
use crate::handler::{EIO, EPERM, Failure, REFUSAL, decode_request};

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
        | Request::ListConnsParts
        | Request::ListConnsPacked
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
pub(super) fn list_conns(shared: &Shared) -> Reply {
    let mut all = Vec::new();
    let _ = list_conns_parts(shared, |part, _| {
        all.append(part);
        Ok(())
    });
    Reply::Conns(all)
}

/// [`list_conns`] part by part: `part` gets each chunk (and whether it is
/// the last), outside the lock, and may stop the listing with an error
/// (the client went away). Nothing but one chunk is held at a time.
pub(super) fn list_conns_parts(
    shared: &Shared,
    mut part: impl FnMut(&mut Vec<rvs_proto::ConnInfo>, bool) -> io::Result<()>,
) -> io::Result<()> {
    let chunk = conns_per_chunk(CONNS_PER_CHUNK);
    let mut out = Vec::with_capacity(chunk);
    let mut from = 0;
    credit_for_listing(shared);
    loop {
        let next = {
            let state = shared.lock();
            state.conns_chunk(from, chunk, shared.clock.now(), &mut out)
        };
        part(&mut out, next.is_none())?;
        out.clear();
        match next {
            Some(n) => from = n,
            None => return Ok(()),
        }
    }
}

/// `default`; in debug builds (the tests'), `RVSD_LIST_CHUNK=N` lists N
/// per turn of the lock, to measure what chunking changes against one turn
/// for all.
fn conns_per_chunk(default: usize) -> usize {
    static CHUNK: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    let set = CHUNK.get_or_init(|| {
        if !cfg!(debug_assertions) {
            return None;
        }
        std::env::var("RVSD_LIST_CHUNK")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
    });
    set.unwrap_or(default)
}

/// The fast path's traffic credited, so that the listing's entries are
/// current.
fn credit_for_listing(shared: &Shared) {
    let mut state = shared.lock();
    shared.credit_fast_path(&mut state);
}

/// Connections taken per turn of a replica's lock in the compact listing:
/// a copy of their fields, well under a millisecond in a release build.
pub const PACKED_CONNS_PER_CHUNK: usize = 4096;

/// `-L -c` in the compact encoding (`Request::ListConnsPacked`): each
/// chunk's fields copied under the lock ([`ConnRecord`]s straight from the
/// engine's entries, nothing allocated per entry), then encoded and sent,
/// with its reply line, by a writer thread at the lowest priority
/// ([`crate::system::lower_thread_priority`]). The writer paces the
/// listing (one chunk queued, one written, one being copied), so that the
/// listing proceeds as fast as the CPU left over by forwarding allows —
/// as the kernel's softirq forwarding preempts ipvsadm's dump — while the
/// lock is only ever held at the lister's normal priority (a holder at the
/// lowest priority could keep a worker waiting behind a busy CPU).
///
/// [`ConnRecord`]: rvs_proto::packed::ConnRecord
pub(super) fn list_conns_packed(shared: &Shared, writer: &UnixStream) -> io::Result<()> {
    /// A chunk's records, and the persistence-engine data of those that
    /// have some (by index).
    type Chunk = (
        Vec<rvs_proto::packed::ConnRecord<'static>>,
        Vec<(usize, Box<[u8]>)>,
    );
    let chunk = conns_per_chunk(PACKED_CONNS_PER_CHUNK);
    credit_for_listing(shared);
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Chunk, bool)>(1);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Chunk>();
    std::thread::scope(|s| {
        let written = std::thread::Builder::new()
            .name("list-writer".into())
            .spawn_scoped(s, move || -> io::Result<()> {
                background_priority();
                let mut w = writer;
                let mut block = Vec::new();
                for ((records, pes), last) in full_rx {
                    block.clear();
                    let mut pes_at = pes.iter().peekable();
                    for (i, r) in records.iter().enumerate() {
                        match pes_at.next_if(|(at, _)| *at == i) {
                            Some((_, d)) => {
                                let text = String::from_utf8_lossy(d);
                                let mut r = *r;
                                r.pe = Some((crate::convert::PE_SIP, &text));
                                r.encode(&mut block);
                            }
                            None => r.encode(&mut block),
                        }
                    }
                    let len = block.len() as u32;
                    w.write_all(&encode(&Reply::ConnsPacked { len, last }))?;
                    w.write_all(&block)?;
                    let _ = empty_tx.send((records, pes));
                }
                Ok(())
            })?;
        let mut from = 0;
        loop {
            let (mut records, mut pes) = empty_rx
                .try_recv()
                .unwrap_or_else(|_| (Vec::with_capacity(chunk), Vec::new()));
            records.clear();
            pes.clear();
            let next = {
                let state = shared.lock();
                state.conns_chunk_records(from, chunk, shared.clock.now(), &mut records, &mut pes)
            };
            // A send fails once the writer has stopped (the client went
            // away): its error is the result.
            if full_tx.send(((records, pes), next.is_none())).is_err() {
                break;
            }
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
        drop(full_tx);
        written
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("listing writer panicked")))
    })
}

/// [`crate::system::lower_thread_priority`] for this thread; a refusal (a
/// seccomp filter) is logged once, and the work done at the priority the
/// thread has.
fn background_priority() {
    static REFUSAL_LOGGED: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);
    let said = || REFUSAL_LOGGED.swap(true, Ordering::Relaxed);
    match crate::system::lower_thread_priority() {
        Ok(crate::system::Background::Idle) => {}
        Ok(crate::system::Background::Nice(e)) if !said() => tracing::warn!(
            "SCHED_IDLE refused for the connection listing's writer ({e}); it runs at \
             nice {} (logged once)",
            crate::system::BACKGROUND_NICE
        ),
        Err(e) if !said() => tracing::warn!(
            "cannot lower the priority of the connection listing's writer \
             (sched_setscheduler and setpriority: {e}); listings compete with forwarding \
             for the CPU (logged once)"
        ),
        _ => {}
    }
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
pub(super) struct Timed {
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
                } else if matches!(req, Request::ListConnsPacked) && peer.privileged {
                    // The blocks and their reply lines are the answer.
                    if list_conns_packed(shared, &writer).is_err() {
                        return;
                    }
                    shared.note_request(kind, started.elapsed().as_secs_f64());
                    continue;
                } else if matches!(req, Request::ListConnsParts) && peer.privileged {
                    // Each part is written as it is listed; the last one is
                    // the reply written below.
                    let mut last = Vec::new();
                    let sent = list_conns_parts(shared, |part, is_last| {
                        if is_last {
                            last = std::mem::take(part);
                            return Ok(());
                        }
                        writer.write_all(&encode(&Reply::ConnsPart(std::mem::take(part))))
                    });
                    if sent.is_err() {
                        return;
                    }
                    Reply::Conns(last)
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
pub(super) fn refuse<R: BufRead>(mut reader: R, mut writer: UnixStream) {
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
pub(super) fn request_kind(r: &Request) -> &'static str {
    match r {
        Request::Info => "info",
        Request::Apply(_) => "apply",
        Request::Batch(_) => "batch",
        Request::ListServices => "list_services",
        Request::GetService(_) => "get_service",
        Request::GetTimeouts => "get_timeouts",
        Request::ListDaemons => "list_daemons",
        Request::ListConns => "list_conns",
        Request::ListConnsParts => "list_conns_parts",
        Request::ListConnsPacked => "list_conns_packed",
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
