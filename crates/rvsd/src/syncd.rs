//! The connection-sync daemons' I/O: the multicast sockets
//! (`ip_vs_sync.c`'s `make_send_sock`/`make_receive_sock`) and the thread
//! that moves entries between them and the engine.
//!
//! A master's socket: bound to the interface (`SO_BINDTODEVICE`, so the
//! source is its address), multicast loop off, the TTL, connected to
//! group:port. A backup's: `SO_REUSEADDR`, bound to the interface and to
//! group:port, member of the group on that interface. Sockets are opened
//! when the daemon is started (`--start-daemon` fails with the socket's
//! error, as the kernel's does) and closed when it is stopped.
//!
//! The thread wakes every [`TICK`]: it takes the master's queued entries
//! from the engine (under the state lock, briefly), packs them into
//! messages of `sync_maxlen` bytes in the version `sync_version` gives,
//! and sends each message when full, a partial one after
//! [`FLUSH_TIME`] (the kernel's `IPVS_SYNC_FLUSH_TIME`); as a backup it
//! reads what arrived (at most [`MAX_DATAGRAMS_PER_TICK`]) and applies it
//! under one lock. Received messages are data from the network: checked
//! by [`rvs_wire::ipvs_sync::Message::parse`], counted and dropped when
//! malformed, never trusted beyond their bounds; a datagram longer than
//! the backup's `sync_maxlen` is dropped as the kernel's truncated read is.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as StdInstant};

use rvs_proto::{DaemonRole, DaemonSpec};
use rvs_wire::ipvs_sync::{Message, SyncBuffer, SyncConn, Version};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};

use crate::server::Shared;

/// How often the thread wakes (the kernel's master wakes after 20 ms or 8
/// queued messages).
pub const TICK: Duration = Duration::from_millis(20);

/// A partial message is sent after this long (`IPVS_SYNC_FLUSH_TIME`).
pub const FLUSH_TIME: Duration = Duration::from_secs(2);

/// Datagrams a backup reads per tick (then applies them under one lock).
pub const MAX_DATAGRAMS_PER_TICK: usize = 256;

/// Entries a master takes from the engine per tick.
const MAX_ENTRIES_PER_TICK: usize = 64 * 1024;

/// An open sync socket, shared between the state (which owns the
/// daemon) and the thread (which uses it).
pub type SyncSocket = Arc<UdpSocket>;

/// A backup's receive buffer when `sync_sock_size` is 0: room for a burst
/// of some 2800 full messages (a master that queues a whole table at once
/// sends them back to back; the thread reads at most
/// [`MAX_DATAGRAMS_PER_TICK`] per tick).
pub const BACKUP_RCVBUF: i32 = 4 << 20;

/// What the sync daemons did, for the metrics and `rvs dataplane`.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Messages sent by the master.
    pub sent_msgs: AtomicU64,
    /// Entries sent by the master.
    pub sent_conns: AtomicU64,
    /// Messages the master could not send (the socket's error).
    pub send_errors: AtomicU64,
    /// Messages received by the backup.
    pub recv_msgs: AtomicU64,
    /// Messages dropped: malformed, too long, another syncid.
    pub recv_dropped: AtomicU64,
    /// Entries received that the backup could not decode.
    pub recv_bad_entries: AtomicU64,
}

/// The process's sync statistics.
pub static STATS: SyncStats = SyncStats {
    sent_msgs: AtomicU64::new(0),
    sent_conns: AtomicU64::new(0),
    send_errors: AtomicU64::new(0),
    recv_msgs: AtomicU64::new(0),
    recv_dropped: AtomicU64::new(0),
    recv_bad_entries: AtomicU64::new(0),
};

/// Open the socket of the daemon `spec` (defaults already filled in by
/// [`crate::sync::SyncDaemons::start`]).
///
/// `sock_size` is sysctl `sync_sock_size`: the master's send buffer or the
/// backup's receive buffer, in bytes, when not 0 (forced past the system's
/// maximum, as the kernel sets it); 0 keeps the master's default and gives
/// the backup [`BACKUP_RCVBUF`].
pub fn open_socket(spec: &DaemonSpec, sock_size: u32) -> io::Result<SyncSocket> {
    let group = spec
        .group
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no sync group"))?;
    let ifindex = crate::handler::system_ifindex(&spec.mcast_ifn)
        .ok_or_else(|| io::Error::from_raw_os_error(19))?;
    let domain = if group.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_cloexec(true)?;
    match spec.role {
        DaemonRole::Master => {
            s.bind_device(Some(spec.mcast_ifn.as_bytes()))?;
            match group {
                IpAddr::V4(_) => {
                    s.set_multicast_loop_v4(false)?;
                    s.set_multicast_ttl_v4(u32::from(spec.ttl))?;
                }
                IpAddr::V6(_) => {
                    s.set_multicast_if_v6(ifindex)?;
                    s.set_multicast_loop_v6(false)?;
                    s.set_multicast_hops_v6(u32::from(spec.ttl))?;
                }
            }
            s.connect(&SocketAddr::new(group, spec.port).into())?;
            if sock_size > 0 {
                let n = i32::try_from(sock_size).unwrap_or(i32::MAX);
                rvs_io::packet::set_socket_buffer(&s, false, n)?;
            }
        }
        DaemonRole::Backup => {
            s.set_reuse_address(true)?;
            s.bind_device(Some(spec.mcast_ifn.as_bytes()))?;
            match group {
                IpAddr::V4(g) => {
                    s.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(ifindex))?;
                }
                IpAddr::V6(g) => s.join_multicast_v6(&g, ifindex)?,
            }
            s.bind(&SocketAddr::new(group, spec.port).into())?;
            s.set_read_timeout(Some(TICK))?;
            let n = match sock_size {
                0 => BACKUP_RCVBUF,
                n => i32::try_from(n).unwrap_or(i32::MAX),
            };
            rvs_io::packet::set_socket_buffer(&s, true, n)?;
        }
    }
    Ok(Arc::new(s.into()))
}

/// A master's message being filled.
struct Outgoing {
    buf: SyncBuffer<Vec<u8>>,
    since: Option<StdInstant>,
    /// (syncid, maxlen, version) the buffer was made for.
    made_for: (u8, usize, Version),
}

impl Outgoing {
    fn new(syncid: u8, maxlen: usize, version: Version) -> Outgoing {
        let buf = SyncBuffer::new(vec![0u8; maxlen.max(128) + 128], version, syncid, maxlen)
            .expect("a buffer larger than the header and maxlen <= 65535");
        Outgoing {
            buf,
            since: None,
            made_for: (syncid, maxlen, version),
        }
    }

    fn send(&mut self, sock: &UdpSocket) {
        if self.buf.is_empty() {
            return;
        }
        match sock.send(self.buf.as_bytes()) {
            Ok(_) => {
                STATS.sent_msgs.fetch_add(1, Ordering::Relaxed);
                STATS
                    .sent_conns
                    .fetch_add(u64::from(self.buf.nr_conns()), Ordering::Relaxed);
            }
            Err(e) => {
                let n = STATS.send_errors.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() || n == 0 {
                    tracing::warn!(
                        entries = self.buf.nr_conns(),
                        errors = n + 1,
                        "sync master: cannot send a message: {e}"
                    );
                }
            }
        }
        self.buf.reset();
        self.since = None;
    }

    /// Add `e`, sending the message first when it is full.
    fn push(&mut self, e: &SyncConn<'_>, sock: &UdpSocket) {
        match self.buf.try_push(e) {
            Ok(true) => {}
            Ok(false) => {
                self.send(sock);
                if !matches!(self.buf.try_push(e), Ok(true)) {
                    return;
                }
            }
            // An IPv6 connection in a version 0 message: the format
            // cannot carry it (the kernel's v0 master skips them too).
            Err(_) => return,
        }
        self.since.get_or_insert_with(StdInstant::now);
    }
}

/// The daemon's syncid (0..=255: checked when the daemon was started).
fn syncid(spec: &DaemonSpec) -> u8 {
    u8::try_from(spec.syncid).unwrap_or(0)
}

/// Start the sync thread.
pub fn spawn(shared: Arc<Shared>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("rvsd-sync".into())
        .spawn(move || run(&shared))
        .map(|_| ())
}

fn run(shared: &Shared) {
    let mut out: Option<Outgoing> = None;
    let mut entries: Vec<rvs_core::engine::SyncEntry> = Vec::new();
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    while !shared.stopping() {
        let (master, backup, version) = {
            let st = shared.lock();
            let (master, backup) = st.sync_sockets();
            if master.is_some() {
                // Each replica's queue (one with --engines shared).
                let engines = st.engines();
                let per = MAX_ENTRIES_PER_TICK / engines.len();
                engines.each_unchanged(|e| e.take_sync(&mut entries, per.max(1)));
            }
            let v = if st.engine().sysctls().sync_version == 0 {
                Version::V0
            } else {
                Version::V1
            };
            (master, backup, v)
        };
        match &master {
            Some((spec, sock)) => {
                let want = (syncid(spec), usize::from(spec.maxlen), version);
                if out.as_ref().is_none_or(|o| o.made_for != want) {
                    if let Some(o) = out.as_mut() {
                        o.send(sock);
                    }
                    out = Some(Outgoing::new(want.0, want.1, want.2));
                }
                let o = out.as_mut().expect("just set");
                for e in entries.drain(..) {
                    o.push(&e.entry(), sock);
                }
                if o.since.is_some_and(|t| t.elapsed() >= FLUSH_TIME) {
                    o.send(sock);
                }
            }
            None => {
                out = None;
                entries.clear();
            }
        }
        match &backup {
            Some((spec, sock)) => {
                receive(shared, spec, sock, &mut datagrams, &mut spare);
            }
            None => std::thread::sleep(TICK),
        }
    }
}

/// Read what arrived (waiting up to one tick for the first datagram) and
/// apply it.
fn receive(
    shared: &Shared,
    spec: &DaemonSpec,
    sock: &UdpSocket,
    datagrams: &mut Vec<Vec<u8>>,
    spare: &mut Vec<Vec<u8>>,
) {
    let maxlen = usize::from(spec.maxlen);
    for i in 0..MAX_DATAGRAMS_PER_TICK {
        if i == 1 && sock.set_nonblocking(true).is_err() {
            break;
        }
        let mut buf = spare.pop().unwrap_or_default();
        buf.resize(maxlen + 1, 0);
        match sock.recv(&mut buf) {
            Ok(n) if n > maxlen => {
                // The kernel reads at most sync_maxlen: a longer message
                // fails its size check.
                STATS.recv_dropped.fetch_add(1, Ordering::Relaxed);
                spare.push(buf);
            }
            Ok(n) => {
                buf.truncate(n);
                datagrams.push(buf);
            }
            Err(_) => {
                spare.push(buf);
                break;
            }
        }
    }
    let _ = sock.set_nonblocking(false);
    if datagrams.is_empty() {
        return;
    }
    let now = shared.clock().now();
    let engines = Arc::clone(shared.lock().engines());
    for d in datagrams.drain(..) {
        STATS.recv_msgs.fetch_add(1, Ordering::Relaxed);
        apply_message(&engines, &d, syncid(spec), now);
        spare.push(d);
    }
}

/// Apply one received datagram (`ip_vs_process_message`); returns the
/// number of entries applied.
pub fn apply_message(
    engines: &crate::engines::Engines,
    datagram: &[u8],
    syncid: u8,
    now: rvs_core::Instant,
) -> usize {
    let msg = match Message::parse(datagram) {
        Ok(m) => m,
        Err(_) => {
            STATS.recv_dropped.fetch_add(1, Ordering::Relaxed);
            return 0;
        }
    };
    if !msg.accepted_by(syncid) {
        STATS.recv_dropped.fetch_add(1, Ordering::Relaxed);
        return 0;
    }
    let mut n = 0;
    for c in msg.conns() {
        match c {
            Ok(c) => {
                // To the replica that owns the client's connections.
                engines
                    .lock(engines.owner_of(c.caddr()))
                    .apply_sync(&c, msg.version(), now);
                n += 1;
            }
            Err(_) => {
                STATS.recv_bad_entries.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    n
}
