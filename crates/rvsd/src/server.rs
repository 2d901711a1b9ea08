//! The control endpoint: accept connections, one thread each, one JSON line
//! per request and per reply; and the housekeeping thread.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rvs_proto::client::MAX_LINE;
use rvs_proto::{Reply, Request, encode};

use crate::auth::Peer;
use crate::dataplane::DpShared;
use crate::handler::{Failure, State, decode_request};
use crate::system::Clock;

/// How often the engine's housekeeping runs.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Largest request line accepted from an unprivileged peer (it only ever
/// gets EPERM; this bounds what it can make rvsd buffer).
pub const MAX_UNPRIVILEGED_LINE: usize = 64 << 10;

/// Most control connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// What the threads share.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    clock: Clock,
    stop: Arc<AtomicBool>,
    connections: AtomicUsize,
    /// A data plane runs and mirrors the table into the classifier.
    dataplane: AtomicBool,
    /// The table generation the data plane has put into its filters.
    synced: AtomicU64,
    /// The running data plane's counters and filters.
    dp: OnceLock<Arc<DpShared>>,
    /// `--save FILE`.
    saver: OnceLock<crate::persist::Saver>,
}

impl Shared {
    /// Share `state`; `stop` ends the accept loop and the housekeeping.
    pub fn new(state: State, clock: Clock, stop: Arc<AtomicBool>) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(state),
            clock,
            stop,
            connections: AtomicUsize::new(0),
            dataplane: AtomicBool::new(false),
            synced: AtomicU64::new(0),
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
            },
        }
    }

    /// Credit to the engine of `state` (locked by the caller) what the XDP
    /// fast path forwarded so far, if a data plane with the fast path runs
    /// ([`DpShared::credit_fast_path`]).
    pub fn credit_fast_path(&self, state: &mut State) {
        if let Some(dp) = self.dp.get() {
            dp.credit_fast_path(state.engine_mut(), self.clock.now());
        }
    }

    /// The data plane has put table generation `generation` into its filters.
    pub fn mark_synced(&self, generation: u64) {
        self.synced.fetch_max(generation, Ordering::AcqRel);
    }

    /// Wait (bounded) until the data plane has caught up with `generation`,
    /// so that when `ipvsadm -A`/`-a` returns, packets for the service are
    /// already claimed and not answered by the kernel.
    fn wait_synced(&self, generation: u64) {
        if !self.dataplane.load(Ordering::Acquire) {
            return;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while self.synced.load(Ordering::Acquire) < generation
            && std::time::Instant::now() < deadline
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
                let mut state = shared.lock();
                shared.credit_fast_path(&mut state);
                let now = shared.clock.now();
                state.engine_mut().poll(now);
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
        | Request::GetSysctls => false,
    }
}

/// Accept and serve connections until the stop flag is set (whoever sets it
/// then connects once to wake the accept).
pub fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    let mut full_logged = false;
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: don't spin.
                eprintln!("rvsd: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if shared.connections.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            if !full_logged {
                eprintln!("rvsd: {MAX_CONNECTIONS} control connections open; closing new ones");
                full_logged = true;
            }
            continue;
        }
        full_logged = false;
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let sh = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                serve_connection(stream, &sh);
                sh.connections.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            shared.connections.fetch_sub(1, Ordering::Relaxed);
            eprintln!("rvsd: cannot start a connection thread: {e}");
        }
    }
}

/// Serve one connection: requests until end of stream.
pub fn serve_connection(stream: UnixStream, shared: &Shared) {
    let peer = Peer::of(&stream);
    let limit = if peer.privileged {
        MAX_LINE
    } else {
        MAX_UNPRIVILEGED_LINE
    };
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    let mut refusal_logged = false;
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
        // Decode and encode outside the lock; only the handling holds it.
        let reply = match decode_request(&line) {
            Ok(req) => {
                if peer.privileged && matches!(req, Request::DataPlaneStats) {
                    // Credited first, so that the fast path's packets and
                    // bytes are as current as its own hit counter.
                    let counters = {
                        let mut state = shared.lock();
                        shared.credit_fast_path(&mut state);
                        crate::convert::engine_counters(state.engine_mut())
                    };
                    let mut reply = shared.dataplane_stats();
                    if let Reply::DataPlaneStats { engine, .. } = &mut reply {
                        *engine = Some(Box::new(counters));
                    }
                    reply
                } else {
                    let (reply, before, generation) = {
                        let mut state = shared.lock();
                        if peer.privileged && needs_fast_path_credit(&req) {
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
                        shared.wait_synced(generation);
                    }
                    reply
                }
            }
            Err(f) => f.reply(None, None),
        };
        if !peer.privileged
            && !refusal_logged
            && matches!(&reply, Reply::Error(e) if e.errno == crate::handler::EPERM)
        {
            eprintln!(
                "rvsd: refused requests from uid {} (pid {}): not root and no CAP_NET_ADMIN",
                peer.uid, peer.pid
            );
            refusal_logged = true;
        }
        drop(line);
        if writer.write_all(&encode(&reply)).is_err() {
            return;
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

#[cfg(test)]
mod tests {
    use super::*;

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
            Request::FwmarkFlush,
        ] {
            assert!(!needs_fast_path_credit(&r), "{r:?}");
        }
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
