// SPDX-License-Identifier: GPL-2.0-or-later
//! One attempt of each checker, bounded in time: TCP_CHECK (a connect
//! within `connect_timeout`), HTTP_GET and SSL_GET (a GET of every `url`,
//! status and MD5 digest checked, the whole exchange within
//! `connect_timeout` per url), MISC_CHECK (the script, killed with its
//! process group after `misc_timeout`), DNS_CHECK, SMTP_CHECK, UDP_CHECK
//! and PING_CHECK (each within `connect_timeout`); FILE_CHECK reads its
//! file.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::conf::{CheckKind, Checker, Url};

/// Largest HTTP response read (the rest is not part of the digest).
const MAX_RESPONSE: usize = 4 << 20;

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success; `Some(w)`: MISC_CHECK with misc_dynamic set the weight.
    Up(Option<u32>),
    /// Failure, and keepalived's log line for it.
    Down(String),
    /// FILE_CHECK: the number read (a missing or empty file is 0), or why
    /// the text is not one (keepalived ignores it: the last value stays).
    Value(Result<i64, String>),
}

/// `[ip]:tcp:port`, as keepalived's `FMT_CHK`.
pub fn fmt_target(ip: IpAddr, port: u16) -> String {
    fmt_target_proto(ip, "tcp", port)
}

/// `[ip]:proto:port`.
pub fn fmt_target_proto(ip: IpAddr, proto: &str, port: u16) -> String {
    format!("[{ip}]:{proto}:{port}")
}

/// Run one attempt of `ck`.
pub fn run(ck: &Checker) -> Outcome {
    match &ck.kind {
        CheckKind::Tcp => match connect(ck) {
            Ok(_) => Outcome::Up(None),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Outcome::Down(format!(
                "TCP connection to {} timeout.",
                fmt_target(ck.connect_ip, ck.connect_port)
            )),
            Err(e) => Outcome::Down(format!(
                "TCP connection to {} failed ({e}).",
                fmt_target(ck.connect_ip, ck.connect_port)
            )),
        },
        CheckKind::Http {
            tls,
            sni,
            urls,
            virtualhost,
            http_protocol,
        } => {
            for u in urls {
                let vhost = u.virtualhost.as_deref().or(virtualhost.as_deref());
                let sni = if *tls { Some(*sni) } else { None };
                if let Err(e) = http_get(ck, u, vhost, http_protocol, sni) {
                    return Outcome::Down(e);
                }
            }
            Outcome::Up(None)
        }
        CheckKind::Dns { qtype, name } => match dns(ck, *qtype, name) {
            Ok(()) => Outcome::Up(None),
            Err(e) => Outcome::Down(format!(
                "DNS_CHECK ({}) {e}",
                fmt_target_proto(ck.connect_ip, "udp", ck.connect_port)
            )),
        },
        CheckKind::Smtp { helo } => match smtp(ck, helo) {
            Ok(()) => Outcome::Up(None),
            Err(e) => Outcome::Down(format!("SMTP_CHECK {e}")),
        },
        CheckKind::Udp {
            payload,
            require_reply,
            reply_mask,
            min_len,
            max_len,
        } => match udp(
            ck,
            payload,
            require_reply.as_deref().map(|d| (d, reply_mask.as_slice())),
            (*min_len, *max_len),
        ) {
            Ok(()) => Outcome::Up(None),
            Err(e) => Outcome::Down(format!(
                "UDP_CHECK on service {} failed ({e}).",
                fmt_target_proto(ck.connect_ip, "udp", ck.connect_port)
            )),
        },
        CheckKind::Ping => match ping(ck) {
            Ok(()) => Outcome::Up(None),
            Err(e) => Outcome::Down(format!(
                "ICMP connection to address {} failed ({e}).",
                ck.connect_ip
            )),
        },
        CheckKind::Misc {
            path,
            timeout,
            dynamic,
        } => misc(path, *timeout, *dynamic),
        CheckKind::File(f) => Outcome::Value(read_track_file(&f.path)),
    }
}

/// The number in a tracked file, as keepalived reads it: a file that
/// cannot be opened (missing, removed) or is empty is 0.
pub fn read_track_file(path: &str) -> Result<i64, String> {
    let mut buf = Vec::with_capacity(128);
    match std::fs::File::open(path) {
        Ok(f) => {
            if let Err(e) = f.take(127).read_to_end(&mut buf) {
                return Err(format!("cannot read {path}: {e}"));
            }
        }
        Err(_) => return Ok(0),
    }
    super::conf::track_value(&buf)
        .ok_or_else(|| format!("Invalid number read from {path} - ignoring"))
}

/// A socket for the checker's target, bound to `bindto`/`bind_port`, with
/// the checker's `fwmark`.
fn socket(ck: &Checker, ty: Type, proto: Option<Protocol>) -> std::io::Result<Socket> {
    let dst = SocketAddr::new(ck.connect_ip, ck.connect_port);
    let sock = Socket::new(Domain::for_address(dst), ty, proto)?;
    bind(ck, &sock)?;
    Ok(sock)
}

/// `bindto`/`bind_port` and `fwmark` on `sock`.
fn bind(ck: &Checker, sock: &Socket) -> std::io::Result<()> {
    let dst = SocketAddr::new(ck.connect_ip, ck.connect_port);
    if let Some(mark) = ck.fwmark {
        sock.set_mark(mark)?;
    }
    if ck.bindto.is_some() || ck.bind_port.is_some() {
        let ip = ck.bindto.unwrap_or(match dst {
            SocketAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
            SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
        });
        sock.bind(&SockAddr::from(SocketAddr::new(
            ip,
            ck.bind_port.unwrap_or(0),
        )))?;
    }
    Ok(())
}

/// A TCP connection to the checker's target, from `bindto`/`bind_port`.
fn connect(ck: &Checker) -> std::io::Result<TcpStream> {
    let dst = SocketAddr::new(ck.connect_ip, ck.connect_port);
    let sock = socket(ck, Type::STREAM, None)?;
    let t = ck.timing.connect_timeout.max(Duration::from_millis(1));
    sock.connect_timeout(&SockAddr::from(dst), t)?;
    Ok(sock.into())
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// The stream of an HTTP_GET (TCP) or an SSL_GET (TLS over TCP).
trait Conn: Read + Write {
    fn tcp(&self) -> &TcpStream;
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Conn for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// A certificate verifier that accepts any certificate, as keepalived's
/// SSL_GET (it never asks OpenSSL to verify): the check is whether the
/// service answers, and real servers often carry self-signed certificates
/// or ones named for the virtual address, not for the address checked. The
/// handshake's signatures are still verified (the peer holds the key of
/// the certificate it shows).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS client configuration of every SSL_GET (built once).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            // ring's provider is deprecated only for lacking post-quantum
            // key exchange; aws-lc-rs, which has it, needs cmake to build.
            // A health check carries no secret worth that.
            #[allow(deprecated)]
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                .with_no_client_auth();
            Ok(Arc::new(cfg))
        })
        .clone()
}

/// TLS over `tcp`: SNI is `vhost` when `sni` is set and it is a DNS name
/// (keepalived's `enable_sni`); otherwise none (the address).
fn tls(
    ck: &Checker,
    tcp: TcpStream,
    vhost: Option<&str>,
    sni: bool,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
    use rustls::pki_types::ServerName;
    let name = vhost
        .filter(|_| sni)
        .and_then(|h| ServerName::try_from(h.to_string()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(ck.connect_ip.into()));
    let conn = rustls::ClientConnection::new(tls_config()?, name)
        .map_err(|e| format!("SSL_GET: TLS setup failed ({e})."))?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// One GET of `u`; `Err` is keepalived's log line. `tls`: SSL_GET, with
/// `enable_sni`.
fn http_get(
    ck: &Checker,
    u: &Url,
    vhost: Option<&str>,
    proto: &str,
    tls_sni: Option<bool>,
) -> Result<(), String> {
    let target = fmt_target(ck.connect_ip, ck.connect_port);
    let deadline = Instant::now() + ck.timing.connect_timeout;
    let tcp = connect(ck).map_err(|e| format!("HTTP connection to {target} failed ({e})."))?;
    let mut s: Box<dyn Conn> = match tls_sni {
        None => Box::new(tcp),
        Some(sni) => Box::new(tls(ck, tcp, vhost, sni)?),
    };
    let host = match vhost {
        Some(h) => h.to_string(),
        None => match ck.connect_ip {
            IpAddr::V6(a) => format!("[{a}]:{}", ck.connect_port),
            IpAddr::V4(a) => format!("{a}:{}", ck.connect_port),
        },
    };
    let version = if proto == "1.1" { "1.1" } else { "1.0" };
    let close = if proto == "1.0" {
        ""
    } else {
        "Connection: close\r\n"
    };
    let req = format!(
        "GET {} HTTP/{version}\r\nUser-Agent: KeepAliveClient\r\nHost: {host}\r\n{close}\r\n",
        u.path
    );
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    };
    let timeout_msg = || format!("Timeout reading data to {target} url {}.", u.path);
    s.tcp()
        .set_write_timeout(Some(left().ok_or_else(timeout_msg)?))
        .map_err(|e| e.to_string())?;
    // The TLS handshake reads too.
    s.tcp()
        .set_read_timeout(Some(left().ok_or_else(timeout_msg)?))
        .map_err(|e| e.to_string())?;
    s.write_all(req.as_bytes())
        .map_err(|e| format!("Cannot send the request to {target} url {} ({e}).", u.path))?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        s.tcp()
            .set_read_timeout(Some(left().ok_or_else(timeout_msg)?))
            .map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => break,
            // A TLS server that closes without close_notify: the end of
            // the response, as for keepalived.
            Err(e) if tls_sni.is_some() && e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Ok(n) => {
                resp.extend_from_slice(&buf[..n]);
                if resp.len() >= MAX_RESPONSE {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timeout_msg());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!(
                    "Error reading data from {target} url {} ({e}).",
                    u.path
                ));
            }
        }
    }
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("Malformed HTTP response from {target} url {}.", u.path))?;
    let head = String::from_utf8_lossy(&resp[..split]);
    let mut body = resp[split + 4..].to_vec();
    let status: u16 = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Malformed HTTP status line from {target} url {}.", u.path))?;
    if !u.status_ok(status) {
        return Err(format!(
            "HTTP status code error to {target} url({}), status_code [{status}].",
            u.path
        ));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body)
            .ok_or_else(|| format!("Malformed chunked body from {target} url {}.", u.path))?;
    }
    if let Some(r) = &u.regex {
        let re = regex::bytes::Regex::new(r).map_err(|e| format!("regex {r}: {e}"))?;
        if re.is_match(&body) == u.regex_no_match {
            return Err(format!(
                "Regex {} failed on {target} url {}.",
                if u.regex_no_match {
                    "no-match"
                } else {
                    "match"
                },
                u.path
            ));
        }
    }
    if let Some(want) = &u.digest {
        let got = md5_hex(&body);
        if &got != want {
            return Err(format!(
                "MD5 digest error to {target} url[{}], MD5SUM [{got}].",
                u.path
            ));
        }
    }
    Ok(())
}

/// Time left before `deadline`, or a timeout error.
fn left(deadline: Instant) -> std::io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// Whether `e` is a receive timeout.
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A connected UDP socket to the checker's target (ICMP errors then come
/// back as errors of `recv`).
fn udp_socket(ck: &Checker) -> std::io::Result<UdpSocket> {
    let dst = SocketAddr::new(ck.connect_ip, ck.connect_port);
    let sock = socket(ck, Type::DGRAM, Some(Protocol::UDP))?;
    sock.connect(&SockAddr::from(dst))?;
    Ok(sock.into())
}

/// A query id: 16 bits that differ from one query to the next.
fn query_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u16
}

/// A DNS query for `name`/`qtype`, class IN, recursion desired. Built by
/// hand: one question in a fixed 12-byte header is all DNS_CHECK sends,
/// and its answer is judged on the header alone, so a DNS library would
/// add nothing but weight. `name`'s labels were checked at parse time
/// (1 to 63 bytes); a longer one is cut here rather than overflow.
pub fn dns_query(id: u16, qtype: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    q
}

/// keepalived's judgement of a datagram answering query `id`
/// (check_dns.c `dns_recv_thread`): `None` to ignore it and wait for
/// another (shorter than a header, another id, not a response);
/// `Some(Ok)` for rcode 0, `Some(Err(rcode))` otherwise.
pub fn dns_judge(id: u16, reply: &[u8]) -> Option<Result<(), u8>> {
    let h = reply.get(..12)?;
    if u16::from_be_bytes([h[0], h[1]]) != id {
        return None;
    }
    let flags = u16::from_be_bytes([h[2], h[3]]);
    if flags & 0x8000 == 0 {
        return None;
    }
    match (flags & 0x000f) as u8 {
        0 => Some(Ok(())),
        rcode => Some(Err(rcode)),
    }
}

/// One DNS_CHECK: the query, and a reply within `connect_timeout`.
fn dns(ck: &Checker, qtype: u16, name: &str) -> Result<(), String> {
    let deadline = Instant::now() + ck.timing.connect_timeout;
    let s = udp_socket(ck).map_err(|e| format!("connection failure ({e})."))?;
    let id = query_id();
    let q = dns_query(id, qtype, name);
    s.send(&q)
        .map_err(|e| format!("failed to write socket ({e})."))?;
    let mut buf = [0u8; 4096];
    loop {
        let t = left(deadline).map_err(|_| "read timeout from socket".to_string())?;
        s.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
        match s.recv(&mut buf) {
            Ok(n) => match dns_judge(id, &buf[..n]) {
                None => continue,
                Some(Ok(())) => return Ok(()),
                Some(Err(rcode)) => {
                    return Err(format!("read error occurred. (rcode = {rcode})"));
                }
            },
            Err(e) if is_timeout(&e) => return Err("read timeout from socket".into()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("failed to read socket; {e}")),
        }
    }
}

/// One SMTP reply (the lines up to one whose code is followed by a blank,
/// not `-`); its code, or `None` when it does not start with 3 digits.
fn smtp_reply(
    s: &mut TcpStream,
    deadline: Instant,
    pending: &mut Vec<u8>,
) -> std::io::Result<Option<u16>> {
    let mut buf = [0u8; 1024];
    loop {
        while let Some(eol) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=eol).collect();
            let code = line
                .get(..3)
                .filter(|c| c.iter().all(u8::is_ascii_digit))
                .map(|c| c.iter().fold(0u16, |a, d| a * 10 + u16::from(d - b'0')));
            match (code, line.get(3)) {
                (Some(_), Some(b'-')) => continue,
                (code, _) => return Ok(code),
            }
        }
        if pending.len() > 64 << 10 {
            return Ok(None);
        }
        s.set_read_timeout(Some(left(deadline)?))?;
        match s.read(&mut buf) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One SMTP_CHECK: banner 220, `HELO` answered by 250, `QUIT`; within
/// `connect_timeout`.
fn smtp(ck: &Checker, helo: &str) -> Result<(), String> {
    let t = fmt_target(ck.connect_ip, ck.connect_port);
    let deadline = Instant::now() + ck.timing.connect_timeout;
    let mut s = connect(ck).map_err(|e| format!("Error connecting to server {t} ({e})."))?;
    let mut pending = Vec::new();
    let mut expect =
        |s: &mut TcpStream, want: u16, what: &str| match smtp_reply(s, deadline, &mut pending) {
            Ok(Some(c)) if c == want => Ok(()),
            Ok(Some(c)) => Err(format!("Bad {what} response code {c} from server {t}.")),
            Ok(None) => Err(format!("Bad {what} response from server {t}.")),
            Err(e) if is_timeout(&e) => Err(format!("Read timeout from server {t}.")),
            Err(e) => Err(format!("Read failure from server {t} ({e}).")),
        };
    expect(&mut s, 220, "greeting")?;
    let write = |s: &mut TcpStream, line: &str| -> Result<(), String> {
        s.set_write_timeout(Some(
            left(deadline).map_err(|_| format!("Write timeout to server {t}."))?,
        ))
        .map_err(|e| e.to_string())?;
        s.write_all(line.as_bytes())
            .map_err(|e| format!("Write failure to server {t} ({e})."))
    };
    write(&mut s, &format!("HELO {helo}\r\n"))?;
    expect(&mut s, 250, "HELO")?;
    // keepalived sends QUIT and does not wait for its answer.
    let _ = write(&mut s, "QUIT\r\n");
    Ok(())
}

/// Whether a UDP_CHECK reply passes (keepalived's `check_udp_reply`): its
/// length within the bounds, and its first bytes those of `want` (as
/// many as both have) but for the bits set in `mask` (wildcard nibbles).
pub fn udp_reply_ok(reply: &[u8], want: &[u8], mask: &[u8], (min, max): (u16, u16)) -> bool {
    let len = reply.len();
    if len < usize::from(min) || len > usize::from(max) {
        return false;
    }
    reply
        .iter()
        .zip(want)
        .enumerate()
        .all(|(i, (a, b))| (a ^ b) & !mask.get(i).copied().unwrap_or(0) == 0)
}

/// One UDP_CHECK: `payload` sent to a connected socket, then within
/// `connect_timeout` keepalived's rule: an ICMP error (the kernel's
/// ECONNREFUSED for a port unreachable) fails; a reply passes (matched
/// against `require_reply`'s data when there is some); no reply passes
/// unless `require_reply` is set.
fn udp(
    ck: &Checker,
    payload: &[u8],
    require_reply: Option<(&[u8], &[u8])>,
    lens: (u16, u16),
) -> Result<(), String> {
    let deadline = Instant::now() + ck.timing.connect_timeout;
    let s = udp_socket(ck).map_err(|e| format!("connect: {e}"))?;
    s.send(payload).map_err(|e| format!("send: {e}"))?;
    let mut buf = vec![0u8; usize::from(lens.1) + 1];
    loop {
        let Ok(t) = left(deadline) else {
            return match require_reply {
                Some(_) => Err("no reply".into()),
                None => Ok(()),
            };
        };
        s.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
        match s.recv(&mut buf) {
            Ok(n) => {
                return match require_reply {
                    Some((want, mask))
                        if !want.is_empty() && !udp_reply_ok(&buf[..n], want, mask, lens) =>
                    {
                        Err("reply data mismatch".into())
                    }
                    _ => Ok(()),
                };
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Internet checksum (RFC 1071) of `data`.
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP socket to the checker's address: first an unprivileged ping
/// socket (SOCK_DGRAM, IPPROTO_ICMP: the kernel sets the echo id, the
/// checksum and filters the replies; it needs the process's group in
/// `net.ipv4.ping_group_range`), else a raw socket (root or CAP_NET_RAW).
/// `true` when raw: the id and, for IPv4, the checksum are ours, and the
/// IPv4 replies come with their IP header.
fn icmp_socket(ck: &Checker) -> std::io::Result<(Socket, bool)> {
    let (domain, proto) = match ck.connect_ip {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let (sock, raw) = match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => (s, false),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::Unsupported
            ) || e.raw_os_error() == Some(rustix::io::Errno::PROTONOSUPPORT.raw_os_error()) =>
        {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "PING_CHECK: ping sockets are not permitted ({e}: this group is not in \
                     net.ipv4.ping_group_range); using raw ICMP sockets"
                )
            });
            (Socket::new(domain, Type::RAW, Some(proto))?, true)
        }
        Err(e) => return Err(e),
    };
    if let Some(mark) = ck.fwmark {
        sock.set_mark(mark)?;
    }
    if let Some(ip) = ck.bindto {
        sock.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    sock.connect(&SockAddr::from(SocketAddr::new(ck.connect_ip, 0)))?;
    Ok((sock, raw))
}

/// One PING_CHECK: an echo request, and its reply within `connect_timeout`.
fn ping(ck: &Checker) -> Result<(), String> {
    let deadline = Instant::now() + ck.timing.connect_timeout;
    let (sock, raw) = icmp_socket(ck).map_err(|e| format!("socket: {e}"))?;
    let v6 = ck.connect_ip.is_ipv6();
    let (req_type, reply_type) = if v6 { (128u8, 129u8) } else { (8u8, 0u8) };
    let id = (std::process::id() as u16) ^ query_id();
    let seq = query_id();
    let mut pkt = vec![req_type, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(b"rvs health PING_CHECK");
    if !v6 {
        // ICMPv6's checksum covers a pseudo-header: the kernel computes it.
        let c = inet_checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
    let s: UdpSocket = sock.into();
    s.send(&pkt).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 2048];
    loop {
        let t = left(deadline).map_err(|_| "timeout".to_string())?;
        s.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
        let n = match s.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if is_timeout(&e) => return Err("timeout".into()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        };
        let mut icmp = &buf[..n];
        if raw && !v6 {
            // The IPv4 header, of IHL words.
            let ihl = usize::from(icmp.first().map_or(0, |b| b & 0x0f)) * 4;
            icmp = icmp.get(ihl..).unwrap_or_default();
        }
        let Some(h) = icmp.get(..8) else { continue };
        let got_id = u16::from_be_bytes([h[4], h[5]]);
        let got_seq = u16::from_be_bytes([h[6], h[7]]);
        // A ping socket rewrites the id to its own and filters on it.
        if h[0] == reply_type && got_seq == seq && (!raw || got_id == id) {
            return Ok(());
        }
    }
}

/// MD5 of `data`, lower-case hex (genhash's output).
pub fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Run the MISC_CHECK command `path` for at most `timeout`.
fn misc(path: &str, timeout: Duration, dynamic: bool) -> Outcome {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut words = path.split_whitespace();
    let Some(prog) = words.next() else {
        return Outcome::Down("Misc check: empty misc_path.".into());
    };
    let mut child = match Command::new(prog)
        .args(words)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Outcome::Down(format!("Misc check to {path} cannot run ({e}).")),
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                // The script and everything it started.
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::Down(format!("Misc check for [{path}] timed out."));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Outcome::Down(format!("Misc check to {path}: {e}.")),
        }
    };
    let Some(code) = status.code() else {
        return Outcome::Down(format!(
            "Misc check for [{path}] was killed by signal {}.",
            status.signal().unwrap_or(0)
        ));
    };
    match (code, dynamic) {
        (0, _) => Outcome::Up(None),
        (2..=255, true) => Outcome::Up(Some(code as u32 - 2)),
        (c, _) => Outcome::Down(format!("Misc check for [{path}] failed (exit {c}).")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::conf::Timing;
    use std::net::TcpListener;

    fn checker(kind: CheckKind, ip: IpAddr, port: u16) -> Checker {
        Checker {
            kind,
            connect_ip: ip,
            connect_port: port,
            bindto: None,
            bind_port: None,
            fwmark: None,
            timing: Timing {
                delay_loop: Duration::from_secs(1),
                connect_timeout: Duration::from_secs(1),
                retry: 1,
                delay_before_retry: Duration::from_secs(1),
                warmup: None,
            },
            alpha: false,
            pos: crate::keepalived::lex::Pos {
                file: "t".into(),
                line: 1,
            },
        }
    }

    #[test]
    fn md5_of_rfc1321_vectors() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn dechunks() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n").unwrap(),
            b"Wikipedia"
        );
        assert!(dechunk(b"4\r\nWi").is_none());
    }

    /// A one-shot HTTP server answering `resp`; the request it got.
    fn serve(resp: &'static str) -> (u16, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut b).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&b[..n]);
            }
            s.write_all(resp.as_bytes()).unwrap();
            String::from_utf8(req).unwrap()
        });
        (port, h)
    }

    fn http(status: Vec<(u16, u16)>, digest: Option<&str>) -> CheckKind {
        CheckKind::Http {
            tls: false,
            sni: false,
            urls: vec![Url {
                path: "/index.html".into(),
                digest: digest.map(str::to_string),
                status,
                virtualhost: None,
                regex: None,
                regex_no_match: false,
            }],
            virtualhost: Some("www.example.com".into()),
            http_protocol: "1.0".into(),
        }
    }

    #[test]
    fn http_get_status_digest_and_host() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        let (port, h) = serve("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc");
        let ck = checker(
            http(vec![], Some("900150983cd24fb0d6963f7d28e17f72")),
            lo,
            port,
        );
        assert_eq!(run(&ck), Outcome::Up(None));
        let req = h.join().unwrap();
        assert!(req.starts_with("GET /index.html HTTP/1.0\r\n"), "{req}");
        assert!(req.contains("\r\nHost: www.example.com\r\n"), "{req}");

        let (port, _h) = serve("HTTP/1.0 200 OK\r\n\r\nabd");
        let ck = checker(
            http(vec![], Some("900150983cd24fb0d6963f7d28e17f72")),
            lo,
            port,
        );
        let Outcome::Down(e) = run(&ck) else {
            panic!("a wrong digest must fail")
        };
        assert!(e.starts_with("MD5 digest error to [127.0.0.1]:tcp:"), "{e}");

        let (port, _h) = serve("HTTP/1.0 500 Oops\r\n\r\n");
        let Outcome::Down(e) = run(&checker(http(vec![], None), lo, port)) else {
            panic!("500 must fail")
        };
        assert!(e.contains("status_code [500]"), "{e}");

        // regex: a miss fails; regex_no_match inverts it.
        let with_regex = |r: &str, no: bool| {
            let mut k = http(vec![], None);
            if let CheckKind::Http { urls, .. } = &mut k {
                urls[0].regex = Some(r.to_string());
                urls[0].regex_no_match = no;
            }
            k
        };
        let (port, _h) = serve("HTTP/1.0 200 OK\r\n\r\nstatus: ok 42\n");
        assert_eq!(
            run(&checker(with_regex("ok [0-9]+", false), lo, port)),
            Outcome::Up(None)
        );
        let (port, _h) = serve("HTTP/1.0 200 OK\r\n\r\nstatus: degraded\n");
        let Outcome::Down(e) = run(&checker(with_regex("ok [0-9]+", false), lo, port)) else {
            panic!("a regex miss must fail")
        };
        assert!(
            e.starts_with("Regex match failed on [127.0.0.1]:tcp:"),
            "{e}"
        );
        let (port, _h) = serve("HTTP/1.0 200 OK\r\n\r\nstatus: degraded\n");
        assert_eq!(
            run(&checker(with_regex("degraded", false), lo, port)),
            Outcome::Up(None)
        );
        let (port, _h) = serve("HTTP/1.0 200 OK\r\n\r\nstatus: degraded\n");
        assert!(matches!(
            run(&checker(with_regex("degraded", true), lo, port)),
            Outcome::Down(_)
        ));

        let (port, _h) = serve("HTTP/1.0 302 Found\r\n\r\n");
        let ck = checker(http(vec![(200, 200), (301, 302)], None), lo, port);
        assert_eq!(run(&ck), Outcome::Up(None));
    }

    #[test]
    fn tcp_check_and_refusal() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let lo = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(run(&checker(CheckKind::Tcp, lo, port)), Outcome::Up(None));
        drop(l);
        let Outcome::Down(e) = run(&checker(CheckKind::Tcp, lo, port)) else {
            panic!("a closed port must fail")
        };
        assert!(
            e.starts_with(&format!("TCP connection to [127.0.0.1]:tcp:{port} failed")),
            "{e}"
        );
    }

    #[test]
    fn misc_exit_codes_dynamic_weight_and_timeout() {
        let m = |cmd: &str, dynamic| misc(cmd, Duration::from_millis(500), dynamic);
        assert_eq!(m("/bin/true", false), Outcome::Up(None));
        assert!(matches!(m("/bin/false", false), Outcome::Down(_)));
        assert!(matches!(m("/bin/sh -c exit\\ 7", false), Outcome::Down(_)));
        assert_eq!(m("/bin/true", true), Outcome::Up(None));
        assert!(matches!(m("/bin/false", true), Outcome::Down(_)));
        // A script path with arguments: exit 7 is weight 5.
        let dir = std::env::temp_dir().join(format!("rvs-ka-misc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("w.sh");
        std::fs::write(&script, "#!/bin/sh\nexit $1\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let s = script.display();
        assert_eq!(m(&format!("{s} 7"), true), Outcome::Up(Some(5)));
        assert_eq!(m(&format!("{s} 2"), true), Outcome::Up(Some(0)));
        assert!(matches!(m(&format!("{s} 7"), false), Outcome::Down(_)));
        // A hung script is killed at misc_timeout.
        let t = Instant::now();
        let Outcome::Down(e) = m("/bin/sleep 30", false) else {
            panic!("a hung script must fail")
        };
        assert!(e.contains("timed out"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(matches!(m("/nonexistent/x", false), Outcome::Down(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn with_timeout(mut ck: Checker, ms: u64) -> Checker {
        ck.timing.connect_timeout = Duration::from_millis(ms);
        ck
    }

    /// A one-shot TLS server with a self-signed certificate for
    /// `www.example.com`, answering `resp`; the SNI it got.
    fn serve_tls(resp: &'static str) -> (u16, std::thread::JoinHandle<Option<String>>) {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let cert = rcgen::generate_simple_self_signed(vec!["www.example.com".into()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let conn = rustls::ServerConnection::new(Arc::new(cfg)).unwrap();
            let mut t = rustls::StreamOwned::new(conn, s);
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = t.read(&mut b).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&b[..n]);
            }
            let sni = t.conn.server_name().map(str::to_string);
            t.write_all(resp.as_bytes()).unwrap();
            t.conn.send_close_notify();
            let _ = t.flush();
            sni
        });
        (port, h)
    }

    #[test]
    fn ssl_get_any_certificate_sni_status_and_digest() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        let ssl = |sni: bool, digest: Option<&str>| {
            let mut k = http(vec![], digest);
            if let CheckKind::Http { tls, sni: s, .. } = &mut k {
                *tls = true;
                *s = sni;
            }
            k
        };
        // A self-signed certificate is accepted; with enable_sni the
        // virtualhost is the SNI.
        let (port, h) = serve_tls("HTTP/1.0 200 OK\r\n\r\nabc");
        let ck = checker(
            ssl(true, Some("900150983cd24fb0d6963f7d28e17f72")),
            lo,
            port,
        );
        assert_eq!(run(&ck), Outcome::Up(None));
        assert_eq!(h.join().unwrap().as_deref(), Some("www.example.com"));
        // Without enable_sni: no SNI.
        let (port, h) = serve_tls("HTTP/1.0 200 OK\r\n\r\nabc");
        assert_eq!(run(&checker(ssl(false, None), lo, port)), Outcome::Up(None));
        assert_eq!(h.join().unwrap(), None);
        // Status and digest as HTTP_GET.
        let (port, _h) = serve_tls("HTTP/1.0 503 Busy\r\n\r\n");
        let Outcome::Down(e) = run(&checker(ssl(true, None), lo, port)) else {
            panic!("503 must fail")
        };
        assert!(e.contains("status_code [503]"), "{e}");
        let (port, _h) = serve_tls("HTTP/1.0 200 OK\r\n\r\nabd");
        let ck = checker(
            ssl(true, Some("900150983cd24fb0d6963f7d28e17f72")),
            lo,
            port,
        );
        assert!(matches!(run(&ck), Outcome::Down(e) if e.starts_with("MD5 digest error")));
        // A plain HTTP server is not a TLS one.
        let (port, _h) = serve("HTTP/1.0 200 OK\r\n\r\nabc");
        assert!(matches!(
            run(&with_timeout(checker(ssl(true, None), lo, port), 500)),
            Outcome::Down(_)
        ));
    }

    #[test]
    fn dns_query_bytes_and_judgement() {
        let q = dns_query(0x1234, 28, "example.com.");
        assert_eq!(
            q,
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x1c\x00\x01"
        );
        assert_eq!(
            dns_query(1, 6, "."),
            b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x06\x00\x01"
        );
        assert_eq!(
            dns_judge(1, b"\x00\x01\x81\x80"),
            None,
            "shorter than a header"
        );
        let reply = |id: u16, flags: u16| {
            let mut r = q.clone();
            r[..2].copy_from_slice(&id.to_be_bytes());
            r[2..4].copy_from_slice(&flags.to_be_bytes());
            r
        };
        assert_eq!(
            dns_judge(0x1234, &reply(0x1235, 0x8180)),
            None,
            "another id"
        );
        assert_eq!(dns_judge(0x1234, &reply(0x1234, 0x0100)), None, "a query");
        assert_eq!(dns_judge(0x1234, &reply(0x1234, 0x8180)), Some(Ok(())));
        assert_eq!(dns_judge(0x1234, &reply(0x1234, 0x8183)), Some(Err(3)));
    }

    /// A UDP responder: for each datagram, `answer` gives the replies.
    fn udp_server(
        answer: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
    ) -> (u16, std::thread::JoinHandle<()>) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let h = std::thread::spawn(move || {
            let mut b = [0u8; 2048];
            while let Ok((n, from)) = s.recv_from(&mut b) {
                for r in answer(&b[..n]) {
                    s.send_to(&r, from).unwrap();
                }
            }
        });
        (port, h)
    }

    #[test]
    fn dns_check_against_a_responder() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        let kind = CheckKind::Dns {
            qtype: 6,
            name: ".".into(),
        };
        // A stray reply with another id first, then the answer: up.
        let (port, _h) = udp_server(|q| {
            let mut stray = q.to_vec();
            stray[0] ^= 0xff;
            stray[2] |= 0x80;
            let mut ok = q.to_vec();
            ok[2] |= 0x80;
            vec![stray, ok]
        });
        assert_eq!(run(&checker(kind.clone(), lo, port)), Outcome::Up(None));
        // REFUSED (rcode 5): down.
        let (port, _h) = udp_server(|q| {
            let mut r = q.to_vec();
            r[2] |= 0x80;
            r[3] = 0x85;
            vec![r]
        });
        let Outcome::Down(e) = run(&checker(kind.clone(), lo, port)) else {
            panic!("rcode 5 must fail")
        };
        assert_eq!(
            e,
            format!("DNS_CHECK ([127.0.0.1]:udp:{port}) read error occurred. (rcode = 5)")
        );
        // Silence: down at connect_timeout.
        let (port, _h) = udp_server(|_| vec![]);
        let t = Instant::now();
        let Outcome::Down(e) = run(&with_timeout(checker(kind.clone(), lo, port), 300)) else {
            panic!("no reply must fail")
        };
        assert!(e.ends_with("read timeout from socket"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
        // Nobody on the port: the port unreachable fails it at once.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(matches!(run(&checker(kind, lo, port)), Outcome::Down(_)));
    }

    /// A one-shot SMTP server: `banner`, then `helo_reply` to the HELO;
    /// the lines it got.
    fn smtp_server(
        banner: &'static str,
        helo_reply: &'static str,
    ) -> (u16, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            s.write_all(banner.as_bytes()).unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 256];
            let mut answered = false;
            while let Ok(n) = s.read(&mut b) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&b[..n]);
                if !answered && got.ends_with(b"\r\n") {
                    answered = true;
                    s.write_all(helo_reply.as_bytes()).unwrap();
                }
            }
            String::from_utf8(got).unwrap()
        });
        (port, h)
    }

    #[test]
    fn smtp_check_banner_helo_quit() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        let kind = CheckKind::Smtp {
            helo: "me.example".into(),
        };
        let (port, h) = smtp_server(
            "220-mx.example ESMTP\r\n220 ready\r\n",
            "250 mx.example\r\n",
        );
        assert_eq!(run(&checker(kind.clone(), lo, port)), Outcome::Up(None));
        assert_eq!(h.join().unwrap(), "HELO me.example\r\nQUIT\r\n");
        let (port, _h) = smtp_server("554 go away\r\n", "");
        let Outcome::Down(e) = run(&checker(kind.clone(), lo, port)) else {
            panic!("554 must fail")
        };
        assert!(
            e.starts_with("SMTP_CHECK Bad greeting response code 554"),
            "{e}"
        );
        let (port, _h) = smtp_server("220 ready\r\n", "502 no\r\n");
        let Outcome::Down(e) = run(&checker(kind.clone(), lo, port)) else {
            panic!("502 to HELO must fail")
        };
        assert!(
            e.starts_with("SMTP_CHECK Bad HELO response code 502"),
            "{e}"
        );
        // A server that never greets: down at connect_timeout.
        let (port, _h) = smtp_server("", "");
        let Outcome::Down(e) = run(&with_timeout(checker(kind, lo, port), 300)) else {
            panic!("silence must fail")
        };
        assert!(e.contains("Read timeout"), "{e}");
    }

    #[test]
    fn udp_check_replies_silence_and_port_unreachable() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        let udp = |req: Option<&[u8]>| CheckKind::Udp {
            payload: vec![0xde, 0xad],
            require_reply: req.map(<[u8]>::to_vec),
            reply_mask: vec![],
            min_len: 0,
            max_len: 255,
        };
        let echo = || udp_server(|q| vec![q.to_vec()]);
        let (port, _h) = echo();
        assert_eq!(
            run(&checker(udp(Some(&[0xde])), lo, port)),
            Outcome::Up(None)
        );
        let (port, _h) = echo();
        assert_eq!(run(&checker(udp(Some(&[])), lo, port)), Outcome::Up(None));
        let (port, _h) = echo();
        let Outcome::Down(e) = run(&checker(udp(Some(&[0xbe, 0xef])), lo, port)) else {
            panic!("a mismatch must fail")
        };
        assert_eq!(
            e,
            format!("UDP_CHECK on service [127.0.0.1]:udp:{port} failed (reply data mismatch).")
        );
        // Lengths count when there is data to match.
        let (port, _h) = echo();
        let mut k = udp(Some(&[0xde]));
        if let CheckKind::Udp { min_len, .. } = &mut k {
            *min_len = 3;
        }
        assert!(matches!(run(&checker(k, lo, port)), Outcome::Down(_)));
        // Silence: up without require_reply, down with it.
        let (port, _h) = udp_server(|_| vec![]);
        assert_eq!(
            run(&with_timeout(checker(udp(None), lo, port), 300)),
            Outcome::Up(None)
        );
        assert!(matches!(
            run(&with_timeout(checker(udp(Some(&[])), lo, port), 300)),
            Outcome::Down(e) if e.contains("no reply")
        ));
        // A closed port: the ICMP port unreachable fails it.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let Outcome::Down(e) = run(&checker(udp(None), lo, port)) else {
            panic!("a closed port must fail")
        };
        assert!(e.contains("refused"), "{e}");
    }

    #[test]
    fn udp_reply_bounds() {
        let any = (0, 255);
        assert!(udp_reply_ok(b"abc", b"ab", &[], any));
        assert!(
            udp_reply_ok(b"a", b"ab", &[], any),
            "only as many bytes as both have"
        );
        assert!(!udp_reply_ok(b"xbc", b"ab", &[], any));
        assert!(!udp_reply_ok(b"abc", b"ab", &[], (4, 255)));
        assert!(!udp_reply_ok(b"abc", b"ab", &[], (0, 2)));
        // Wildcard nibbles: 0x5x matches 0x50..0x5f only.
        assert!(udp_reply_ok(&[1, 0x57], &[1, 0x50], &[0, 0x0f], any));
        assert!(!udp_reply_ok(&[1, 0x67], &[1, 0x50], &[0, 0x0f], any));
    }

    #[test]
    fn ping_check_loopback() {
        assert_eq!(inet_checksum(&[0x08, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
        let ck = checker(CheckKind::Ping, IpAddr::from([127, 0, 0, 1]), 0);
        assert_eq!(run(&ck), Outcome::Up(None));
        let ck = checker(CheckKind::Ping, "::1".parse().unwrap(), 0);
        assert_eq!(run(&ck), Outcome::Up(None));
    }
}
