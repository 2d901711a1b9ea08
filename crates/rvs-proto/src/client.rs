//! Where the control endpoint lives and how to talk to it.
//!
//! By default the endpoint is the abstract Unix socket `@rvsd.ctl`. Abstract
//! sockets belong to a network namespace, so `ip netns exec X rvsadm …`
//! reaches the rvsd of namespace X with no flag, as ipvsadm reaches the IPVS
//! table of its namespace. `RVS_SOCKET=PATH` (a filesystem path, or `@name`
//! for another abstract name) overrides it for both programs.
//!
//! Any local user may bind the abstract name while rvsd is down, so a
//! client checks who answers before it sends anything ([`Client::connect`]):
//! the listening socket's owner, as the kernel recorded it when the server
//! called listen(2) (`SO_PEERCRED`), must be root, the client's own user, or
//! the uid in `RVS_DAEMON_UID` (for an rvsd run as a dedicated user).
//! Anything else is an [`UntrustedPeer`] error.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use crate::packed::{self, ConnRecord};
use crate::{ConnInfo, Envelope, ErrorReply, PROTOCOL_VERSION, Reply, Request, decode, encode};

/// Abstract socket name of the control endpoint (per network namespace).
pub const DEFAULT_ABSTRACT_NAME: &str = "rvsd.ctl";

/// Environment variable that overrides the endpoint.
pub const SOCKET_ENV: &str = "RVS_SOCKET";

/// Environment variable naming the uid (a number) rvsd runs as, when it is
/// not root: clients also trust a control socket owned by that uid.
pub const DAEMON_UID_ENV: &str = "RVS_DAEMON_UID";

/// Largest reply line a client accepts (a listing of 100 000 real servers is
/// about 40 MB).
pub const MAX_LINE: usize = 512 << 20;

/// A control endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// An abstract Unix socket name (no leading `@`).
    Abstract(String),
    /// A filesystem path.
    Path(PathBuf),
}

impl Endpoint {
    /// From a `RVS_SOCKET`/`--socket` value: `@name` is abstract, anything
    /// else a path.
    pub fn parse(s: &str) -> Endpoint {
        match s.strip_prefix('@') {
            Some(name) => Endpoint::Abstract(name.to_string()),
            None => Endpoint::Path(PathBuf::from(s)),
        }
    }

    /// `RVS_SOCKET` if set and not empty, else the default abstract name.
    pub fn from_env() -> Endpoint {
        match std::env::var(SOCKET_ENV) {
            Ok(v) if !v.is_empty() => Endpoint::parse(&v),
            _ => Endpoint::Abstract(DEFAULT_ABSTRACT_NAME.to_string()),
        }
    }

    fn addr(&self) -> io::Result<SocketAddr> {
        match self {
            Endpoint::Abstract(n) => SocketAddr::from_abstract_name(n.as_bytes()),
            Endpoint::Path(p) => SocketAddr::from_pathname(p),
        }
    }

    /// Bind a listener here (the daemon's side). A stale socket file left by
    /// a crashed daemon is replaced only if nothing answers on it.
    pub fn bind(&self) -> io::Result<UnixListener> {
        if let Endpoint::Path(p) = self
            && p.exists()
        {
            if UnixStream::connect(p).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another rvsd is listening on {}", p.display()),
                ));
            }
            std::fs::remove_file(p)?;
        }
        UnixListener::bind_addr(&self.addr()?)
    }

    /// Connect to the daemon.
    pub fn connect(&self) -> io::Result<UnixStream> {
        UnixStream::connect_addr(&self.addr()?)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Abstract(n) => write!(f, "@{n}"),
            Endpoint::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The process answering on the control endpoint is not one the client
/// trusts to be rvsd (see the module documentation). Carried inside the
/// `io::Error` (kind `PermissionDenied`) that [`Client::connect`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntrustedPeer {
    /// The endpoint.
    pub endpoint: String,
    /// The uid owning the listening socket (as seen from the client's user
    /// namespace; 65534 if it has no mapping there).
    pub uid: u32,
    /// Its pid (0 if not visible from the client's pid namespace).
    pub pid: i32,
}

impl std::fmt::Display for UntrustedPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the socket {} is held by uid {}",
            self.endpoint, self.uid
        )?;
        if self.pid > 0 {
            write!(f, " (pid {})", self.pid)?;
        }
        write!(
            f,
            ", which is neither root nor you nor {DAEMON_UID_ENV}: it is not a trusted rvsd, \
             nothing was sent to it"
        )
    }
}

impl std::error::Error for UntrustedPeer {}

/// The uids whose control socket a client trusts: root, the client's own
/// effective uid, and `RVS_DAEMON_UID` if set to a number.
pub fn trusted_daemon_uids() -> Vec<u32> {
    let mut uids = vec![0, rustix::process::geteuid().as_raw()];
    if let Some(u) = std::env::var(DAEMON_UID_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
    {
        uids.push(u);
    }
    uids
}

/// The uid and pid (0 if not visible) of the process at the other end of
/// `s`, as the kernel recorded them (`SO_PEERCRED`).
pub fn peer_of(s: &UnixStream) -> io::Result<(u32, i32)> {
    let cred = rustix::net::sockopt::socket_peercred(s)?;
    Ok((
        cred.uid.as_raw(),
        rustix::process::Pid::as_raw(Some(cred.pid)),
    ))
}

/// Check that the server end of `s` is owned by one of `trusted` uids.
pub fn verify_server(s: &UnixStream, ep: &Endpoint, trusted: &[u32]) -> io::Result<()> {
    let (uid, pid) = peer_of(s)?;
    if trusted.contains(&uid) {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        UntrustedPeer {
            endpoint: ep.to_string(),
            uid,
            pid,
        },
    ))
}

/// The [`UntrustedPeer`] inside an error of [`Client::connect`], if that is
/// why it failed.
pub fn untrusted_peer(e: &io::Error) -> Option<&UntrustedPeer> {
    e.get_ref().and_then(|i| i.downcast_ref::<UntrustedPeer>())
}

/// A connection to rvsd.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connect to `ep`, if the socket there belongs to a trusted uid
    /// ([`trusted_daemon_uids`]); else an [`UntrustedPeer`] error and
    /// nothing is sent.
    pub fn connect(ep: &Endpoint) -> io::Result<Client> {
        let s = ep.connect()?;
        verify_server(&s, ep, &trusted_daemon_uids())?;
        s.set_write_timeout(Some(Duration::from_secs(120)))?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        let writer = s.try_clone()?;
        Ok(Client {
            reader: BufReader::new(s),
            writer,
        })
    }

    /// Send one request and wait for its reply.
    pub fn call(&mut self, request: Request) -> Result<Reply, String> {
        let env = Envelope {
            version: PROTOCOL_VERSION,
            request,
        };
        self.writer
            .write_all(&encode(&env))
            .map_err(|e| format!("cannot send to rvsd: {e}"))?;
        let line = read_line(&mut self.reader)
            .map_err(|e| format!("cannot read from rvsd: {e}"))?
            .ok_or_else(|| "rvsd closed the connection".to_string())?;
        decode(&line)
    }

    /// The whole connection table, gathered from its records
    /// ([`Client::list_conn_records`]); `Err` with rvsd's message when it
    /// answered with an error.
    pub fn list_conns_all(&mut self) -> Result<Vec<ConnInfo>, String> {
        let mut all = Vec::new();
        match self.list_conn_records(|r| {
            all.push(r.to_info());
            Ok(())
        })? {
            None => Ok(all),
            Some(e) => Err(format!("rvsd: {} (errno {})", e.message, e.errno)),
        }
    }

    /// The next reply of a listing in several (after the first).
    fn next_reply(&mut self) -> Result<Reply, String> {
        let line = read_line(&mut self.reader)
            .map_err(|e| format!("cannot read from rvsd: {e}"))?
            .ok_or_else(|| "rvsd closed the connection".to_string())?;
        decode(&line)
    }

    /// The connection entries one by one, as borrowed records, in the
    /// compact encoding ([`Request::ListConnsPacked`]): nothing is
    /// allocated per entry. A daemon that does not know that request is
    /// asked as [`Client::list_conns`] asks. `Ok(Some(e))` when rvsd
    /// answered with an error.
    pub fn list_conn_records(
        &mut self,
        mut each: impl FnMut(ConnRecord<'_>) -> Result<(), String>,
    ) -> Result<Option<ErrorReply>, String> {
        let mut reply = self.call(Request::ListConnsPacked)?;
        if matches!(reply, Reply::Error(_)) {
            // An older daemon (or a real error, which the others repeat).
            return self.list_conns(|part| part.iter().try_for_each(|c| each(c.record())));
        }
        let mut block = Vec::new();
        loop {
            match reply {
                Reply::ConnsPacked { len, last } => {
                    let len = len as usize;
                    if len > packed::MAX_BLOCK {
                        return Err(format!("rvsd sent a block of {len} bytes"));
                    }
                    block.resize(len, 0);
                    self.reader
                        .read_exact(&mut block)
                        .map_err(|e| format!("cannot read from rvsd: {e}"))?;
                    for r in packed::records(&block) {
                        each(r?)?;
                    }
                    if last {
                        return Ok(None);
                    }
                }
                Reply::Error(e) => return Ok(Some(e)),
                _ => return Err("unexpected reply from rvsd to a connection listing".into()),
            }
            reply = self.next_reply()?;
        }
    }

    /// The connection entries, part by part: `each` gets every part in
    /// order (a daemon that does not know [`Request::ListConnsParts`] is
    /// asked with [`Request::ListConns`], one part). `Ok(Some(e))` when
    /// rvsd answered with an error.
    pub fn list_conns(
        &mut self,
        mut each: impl FnMut(Vec<ConnInfo>) -> Result<(), String>,
    ) -> Result<Option<ErrorReply>, String> {
        let mut reply = self.call(Request::ListConnsParts)?;
        if matches!(reply, Reply::Error(_)) {
            // An older daemon (or a real error, which ListConns repeats).
            reply = self.call(Request::ListConns)?;
        }
        loop {
            match reply {
                Reply::ConnsPart(part) => each(part)?,
                Reply::Conns(last) => return each(last).map(|()| None),
                Reply::Error(e) => return Ok(Some(e)),
                _ => return Err("unexpected reply from rvsd to a connection listing".into()),
            }
            reply = self.next_reply()?;
        }
    }
}

/// Read one newline-terminated line (without the newline), at most
/// [`MAX_LINE`] bytes; `None` at end of stream.
pub fn read_line<R: BufRead>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > MAX_LINE {
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
    fn untrusted_server_is_refused() {
        let name = format!("rvs-proto-test-{}", std::process::id());
        let ep = Endpoint::Abstract(name);
        let l = ep.bind().unwrap();
        let s = ep.connect().unwrap();
        let me = rustix::process::geteuid().as_raw();
        verify_server(&s, &ep, &[me]).unwrap();
        let e = verify_server(&s, &ep, &[me.wrapping_add(1)]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let u = untrusted_peer(&e).unwrap();
        assert_eq!(u.uid, me);
        assert_eq!(u.pid, std::process::id() as i32);
        let text = e.to_string();
        assert!(text.contains(&format!("held by uid {me} (pid ")), "{text}");
        assert!(text.contains("not a trusted rvsd"), "{text}");
        assert!(trusted_daemon_uids().contains(&0));
        drop(l);
    }
}
