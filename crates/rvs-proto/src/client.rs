//! Where the control endpoint lives and how to talk to it.
//!
//! By default the endpoint is the abstract Unix socket `@rvsd.ctl`. Abstract
//! sockets belong to a network namespace, so `ip netns exec X rvsadm …`
//! reaches the rvsd of namespace X with no flag, as ipvsadm reaches the IPVS
//! table of its namespace. `RVS_SOCKET=PATH` (a filesystem path, or `@name`
//! for another abstract name) overrides it for both programs.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use crate::{Envelope, PROTOCOL_VERSION, Reply, Request, decode, encode};

/// Abstract socket name of the control endpoint (per network namespace).
pub const DEFAULT_ABSTRACT_NAME: &str = "rvsd.ctl";

/// Environment variable that overrides the endpoint.
pub const SOCKET_ENV: &str = "RVS_SOCKET";

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

/// A connection to rvsd.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connect to `ep`.
    pub fn connect(ep: &Endpoint) -> io::Result<Client> {
        let s = ep.connect()?;
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
