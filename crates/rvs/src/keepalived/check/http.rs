// SPDX-License-Identifier: GPL-2.0-or-later
//! HTTP_GET and SSL_GET: the request, chunked bodies, TLS without
//! certificate checks (as keepalived's), status and digest.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::*;
use crate::keepalived::conf::{Checker, Url};

/// The body of a chunked HTTP/1.1 response.
pub(super) fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
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
pub(super) trait Conn: Read + Write {
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
pub(super) struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

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
pub(super) fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
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
pub(super) fn tls(
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
pub(super) fn http_get(
    ck: &Checker,
    u: &Url,
    vhost: Option<&str>,
    proto: &str,
    tls_sni: Option<bool>,
) -> Result<(), Attempt> {
    let target = fmt_target(ck.connect_ip, ck.connect_port);
    let deadline = Instant::now() + ck.timing.connect_timeout;
    let tcp = match connect(ck) {
        Ok(s) => s,
        Err(Start::Failed(e)) => {
            return Err(format!("HTTP connection to {target} failed ({e}).").into());
        }
        Err(not_run) => return Err(Attempt::NotRun(not_run.reschedule("WEB", ck))),
    };
    exchange(ck, u, vhost, proto, tls_sni, tcp, deadline).map_err(Attempt::Failed)
}

/// The GET of [`http_get`] on its connection.
fn exchange(
    ck: &Checker,
    u: &Url,
    vhost: Option<&str>,
    proto: &str,
    tls_sni: Option<bool>,
    tcp: TcpStream,
    deadline: Instant,
) -> Result<(), String> {
    let target = fmt_target(ck.connect_ip, ck.connect_port);
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
