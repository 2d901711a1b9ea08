// SPDX-License-Identifier: GPL-2.0-or-later
//! HTTP_GET and SSL_GET on the event loop (`evented.rs`): for each `url`
//! in turn a connection, the request, the response, then the same
//! decisions as keepalived's (status, MD5 digest, regex); TLS without
//! certificate checks (as keepalived's), rustls driven without I/O of
//! its own (`read_tls`, `process_new_packets`, `write_tls` on the
//! nonblocking socket), SNI with `enable_sni`.
//!
//! The decisions and the texts are pure functions of the request and
//! the response ([`request`], the error lines, and the response judged as
//! it is read by the state machine of `response.rs`, [`Response`]), apart
//! from the I/O of [`Get`]; [`super::run`] runs HTTP_GET through
//! the same [`Get`] on an epoll set of its own (`evented::run_one`), so
//! there is no blocking implementation to diverge from this one.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rustix::event::epoll::EventFlags;
use socket2::Socket;

use super::evented::{Ready, Step};
use super::response::{Fed, Response};
use super::*;
use crate::keepalived::conf::{Checker, TlsClient, Url};

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

/// The TLS client configuration of an SSL_GET: built once without a
/// client certificate, and once per certificate (the `SSL` block's; on
/// each thread, kept until another one is asked for: a reload).
pub(super) fn tls_config(client: Option<&TlsClient>) -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    thread_local! {
        static WITH_CLIENT: std::cell::RefCell<Option<(TlsClient, Arc<rustls::ClientConfig>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let Some(c) = client else {
        return CONFIG.get_or_init(|| build_tls_config(None)).clone();
    };
    WITH_CLIENT.with(|w| {
        let mut w = w.borrow_mut();
        if let Some((k, cfg)) = w.as_ref()
            && k == c
        {
            return Ok(Arc::clone(cfg));
        }
        let cfg = build_tls_config(Some(c))?;
        *w = Some((c.clone(), Arc::clone(&cfg)));
        Ok(cfg)
    })
}

fn build_tls_config(client: Option<&TlsClient>) -> Result<Arc<rustls::ClientConfig>, String> {
    // ring's provider is deprecated only for lacking post-quantum key
    // exchange; aws-lc-rs, which has it, needs cmake to build. A health
    // check carries no secret worth that.
    #[allow(deprecated)]
    let provider = Arc::new(key_share_x25519_first(
        rustls::crypto::ring::default_provider(),
    ));
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)));
    let cfg = match client {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let (chain, key) = c.parts()?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!(
                    "SSL certificate {} and its key: {e}",
                    c.certificate.display()
                )
            })?
        }
    };
    Ok(Arc::new(cfg))
}

/// `provider` with X25519 first among its key exchange groups, as OpenSSL
/// (keepalived's TLS) orders them: the first is the one the ClientHello
/// carries a key share for. rustls's ring provider puts P-384 first, whose
/// arithmetic in ring has no fast path: two P-384 operations cost about
/// 1 ms of CPU per SSL_GET on this project's machine, ten times X25519's.
/// A server without X25519 still gets its group (a HelloRetryRequest).
fn key_share_x25519_first(
    mut provider: rustls::crypto::CryptoProvider,
) -> rustls::crypto::CryptoProvider {
    use rustls::NamedGroup;
    provider.kx_groups.sort_by_key(|g| match g.name() {
        NamedGroup::X25519 => 0,
        NamedGroup::secp256r1 => 1,
        _ => 2,
    });
    provider
}

/// The server name of an SSL_GET: with `enable_sni`, its `sni_name` or
/// else `vhost` (the url's virtualhost, else the checker's), if it is a
/// DNS name; otherwise none (the address).
pub(super) fn server_name(
    ip: IpAddr,
    vhost: Option<&str>,
    sni: &Sni,
) -> rustls::pki_types::ServerName<'static> {
    use rustls::pki_types::ServerName;
    sni.name
        .or(vhost)
        .filter(|_| sni.enable)
        .and_then(|h| ServerName::try_from(h.to_string()).ok())
        .unwrap_or_else(|| ServerName::IpAddress(ip.into()))
}

/// The request of `u`: `GET path HTTP/1.0` (`http_protocol 1.1`: 1.1
/// with `Connection: close`), `vhost` (else the address) as Host.
pub(super) fn request(ip: IpAddr, port: u16, u: &Url, vhost: Option<&str>, proto: &str) -> String {
    let host = match vhost {
        Some(h) => h.to_string(),
        None => match ip {
            IpAddr::V6(a) => format!("[{a}]:{port}"),
            IpAddr::V4(a) => format!("{a}:{port}"),
        },
    };
    let version = if proto == "1.1" { "1.1" } else { "1.0" };
    let close = if proto == "1.0" {
        ""
    } else {
        "Connection: close\r\n"
    };
    format!(
        "GET {} HTTP/{version}\r\nUser-Agent: KeepAliveClient\r\nHost: {host}\r\n{close}\r\n",
        u.path
    )
}

/// The line of a connect that failed.
pub(super) fn connect_error(target: &str, e: &std::io::Error) -> String {
    format!("HTTP connection to {target} failed ({e}).")
}

/// The line of a request that could not be sent (SSL_GET: the TLS
/// handshake too).
pub(super) fn send_error(target: &str, u: &Url, e: &std::io::Error) -> String {
    format!("Cannot send the request to {target} url {} ({e}).", u.path)
}

/// The line of a response that did not come in time.
pub(super) fn read_timeout(target: &str, u: &Url) -> String {
    format!("Timeout reading data to {target} url {}.", u.path)
}

/// The line of a response that could not be read.
pub(super) fn read_error(target: &str, u: &Url, e: &std::io::Error) -> String {
    format!("Error reading data from {target} url {} ({e}).", u.path)
}

/// SSL_GET's server name options.
pub(super) struct Sni<'a> {
    /// `enable_sni`.
    pub(super) enable: bool,
    /// `sni_name`.
    pub(super) name: Option<&'a str>,
}

/// Url `i` of HTTP_GET `ck`, its virtualhost, the protocol and
/// (SSL_GET) its server name options.
fn parts(ck: &Checker, i: usize) -> (&Url, Option<&str>, &str, Option<Sni<'_>>) {
    let CheckKind::Http {
        tls,
        sni,
        sni_name,
        urls,
        virtualhost,
        http_protocol,
        ..
    } = &ck.kind
    else {
        unreachable!("a Get is an HTTP_GET's")
    };
    let u = &urls[i];
    let vhost = u.virtualhost.as_deref().or(virtualhost.as_deref());
    let sni = tls.then(|| Sni {
        enable: *sni,
        name: sni_name.as_deref(),
    });
    (u, vhost, http_protocol, sni)
}

/// Whether url `i` of SSL_GET `ck` ends with a close_notify
/// (`tls_compliant`, the checker's or the url's).
fn tls_compliant(ck: &Checker, i: usize) -> bool {
    match &ck.kind {
        CheckKind::Http {
            tls: true,
            tls_compliant,
            urls,
            ..
        } => *tls_compliant || urls[i].tls_compliant,
        _ => false,
    }
}

/// One HTTP_GET or SSL_GET in progress: the url at hand and, once
/// connected, its exchange.
pub(super) struct Get {
    pub(super) ck: Checker,
    /// The url at hand.
    url: usize,
    target: String,
    /// Connected: the exchange.
    x: Option<Exchange>,
}

/// The exchange on one connection.
struct Exchange {
    /// SSL_GET's TLS; the request is written to it at once.
    tls: Option<rustls::ClientConnection>,
    /// HTTP_GET's request, and how much of it was sent.
    req: Vec<u8>,
    sent: usize,
    /// The request is sent (SSL_GET: the handshake done and the request
    /// flushed): a failure after is one of reading.
    request_sent: bool,
    /// The response as far as it is read: its head, then what is needed
    /// of its body.
    resp: Response,
}

/// How an exchange went as far as it could.
enum Progress {
    Wait(EventFlags),
    /// Over: the response is read (into `resp`), or the line of a failure.
    Over(Result<(), String>),
}

impl Get {
    /// The check of `ck`, an HTTP_GET or SSL_GET; `None` without a url
    /// (keepalived: up without a check).
    pub(super) fn new(ck: &Checker) -> Option<Get> {
        let CheckKind::Http { urls, .. } = &ck.kind else {
            return None;
        };
        if urls.is_empty() {
            return None;
        }
        Some(Get {
            ck: ck.clone(),
            url: 0,
            target: fmt_target(ck.connect_ip, ck.connect_port),
            x: None,
        })
    }

    /// SSL_GET's client certificate, if the file has an `SSL` block.
    fn client(&self) -> Option<&TlsClient> {
        match &self.ck.kind {
            CheckKind::Http { client, .. } => client.as_ref(),
            _ => None,
        }
    }

    fn parts(&self) -> (&Url, Option<&str>, &str, Option<Sni<'_>>) {
        parts(&self.ck, self.url)
    }

    /// Connected: the request, and TLS for SSL_GET.
    fn begin(&self) -> Result<Exchange, String> {
        let (u, vhost, proto, tls_sni) = self.parts();
        let req = request(self.ck.connect_ip, self.ck.connect_port, u, vhost, proto);
        let tls = match tls_sni {
            None => None,
            Some(sni) => {
                let name = server_name(self.ck.connect_ip, vhost, &sni);
                let mut c = rustls::ClientConnection::new(tls_config(self.client())?, name)
                    .map_err(|e| format!("SSL_GET: TLS setup failed ({e})."))?;
                // Buffered by rustls until the handshake is done.
                c.writer()
                    .write_all(req.as_bytes())
                    .map_err(|e| send_error(&self.target, u, &e))?;
                Some(c)
            }
        };
        Ok(Exchange {
            req: if tls.is_some() {
                Vec::new()
            } else {
                req.into_bytes()
            },
            tls,
            sent: 0,
            request_sent: false,
            resp: Response::new(u),
        })
    }

    /// Drive the check, its socket `r`.
    pub(super) fn ready(&mut self, sock: &Socket, r: Ready) -> Step {
        if self.x.is_none() {
            if let Err(e) = connected(sock, r.hup) {
                return Step::Done(Outcome::Down(connect_error(&self.target, &e)));
            }
            match self.begin() {
                Ok(x) => self.x = Some(x),
                Err(e) => return Step::Done(Outcome::Down(e)),
            }
        }
        let (u, ..) = parts(&self.ck, self.url);
        let x = self.x.as_mut().expect("connected");
        let p = if x.tls.is_none() {
            plain(sock, x, &self.target, u)
        } else {
            tls(sock, x, &self.target, u)
        };
        if let (Progress::Over(_), Some(c)) = (&p, x.tls.as_mut())
            && !c.is_handshaking()
            && tls_compliant(&self.ck, self.url)
        {
            // keepalived's SSL_shutdown without quiet shutdown: the
            // close_notify alert, sent as far as the socket takes it.
            c.send_close_notify();
            let mut s = sock;
            while c.wants_write() && c.write_tls(&mut s).is_ok_and(|n| n > 0) {}
        }
        match p {
            Progress::Wait(w) => Step::Wait(w),
            Progress::Over(Err(e)) => Step::Done(Outcome::Down(e)),
            Progress::Over(Ok(())) => {
                let resp = std::mem::replace(&mut x.resp, Response::new(u));
                if let Err(e) = resp.finish(&self.target, u) {
                    return Step::Done(Outcome::Down(e));
                }
                let CheckKind::Http { urls, .. } = &self.ck.kind else {
                    unreachable!("a Get is an HTTP_GET's")
                };
                if self.url + 1 < urls.len() {
                    self.url += 1;
                    self.x = None;
                    Step::Again
                } else {
                    Step::Done(Outcome::Up(None))
                }
            }
        }
    }

    /// The line of a check past its deadline: connecting, sending (TLS:
    /// the handshake) or reading.
    pub(super) fn timeout(&self) -> Outcome {
        let (u, ..) = self.parts();
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        Outcome::Down(match &self.x {
            None => connect_error(&self.target, &timed_out),
            Some(x) if !x.request_sent => send_error(&self.target, u, &timed_out),
            Some(_) => read_timeout(&self.target, u),
        })
    }

    /// The outcome of a connection that could not be opened.
    pub(super) fn not_started(&self, e: Start) -> Outcome {
        match e {
            Start::Failed(e) => Outcome::Down(connect_error(&self.target, &e)),
            e => e.reschedule("WEB", &self.target),
        }
    }
}

/// HTTP_GET: the request out, then the response in until the server
/// closes (or [`MAX_RESPONSE`], or the verdict is known: [`Fed`]).
fn plain(sock: &Socket, x: &mut Exchange, target: &str, u: &Url) -> Progress {
    use std::io::ErrorKind::{Interrupted, WouldBlock};
    let mut s = sock;
    while x.sent < x.req.len() {
        match s.write(&x.req[x.sent..]) {
            Ok(n) => x.sent += n,
            Err(e) if e.kind() == WouldBlock => return Progress::Wait(EventFlags::OUT),
            Err(e) if e.kind() == Interrupted => {}
            Err(e) => return Progress::Over(Err(send_error(target, u, &e))),
        }
    }
    x.request_sent = true;
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Progress::Over(Ok(())),
            Ok(n) => {
                if x.resp.feed(u, &buf[..n]) == Fed::Enough {
                    return Progress::Over(Ok(()));
                }
            }
            Err(e) if e.kind() == WouldBlock => return Progress::Wait(EventFlags::IN),
            Err(e) if e.kind() == Interrupted => {}
            Err(e) => return Progress::Over(Err(read_error(target, u, &e))),
        }
    }
}

/// SSL_GET: TLS records out and in until the server closes (with or
/// without close_notify, as keepalived takes either) or
/// [`MAX_RESPONSE`] (or the verdict is known: [`Fed`]).
fn tls(sock: &Socket, x: &mut Exchange, target: &str, u: &Url) -> Progress {
    use std::io::ErrorKind::{Interrupted, UnexpectedEof, WouldBlock};
    let mut s = sock;
    let mut buf = [0u8; 16384];
    loop {
        let c = x.tls.as_mut().expect("SSL_GET");
        // A failure before the request is out is one of sending it.
        let fail = |x: &Exchange, e: &std::io::Error| {
            Progress::Over(Err(if x.request_sent {
                read_error(target, u, e)
            } else {
                send_error(target, u, e)
            }))
        };
        let mut moved = false;
        while c.wants_write() {
            match c.write_tls(&mut s) {
                Ok(_) => moved = true,
                Err(e) if e.kind() == WouldBlock => break,
                Err(e) if e.kind() == Interrupted => {}
                Err(e) => return fail(x, &e),
            }
        }
        let c = x.tls.as_mut().expect("SSL_GET");
        if !c.is_handshaking() && !c.wants_write() {
            x.request_sent = true;
        }
        let c = x.tls.as_mut().expect("SSL_GET");
        let mut eof = false;
        match c.read_tls(&mut s) {
            Ok(0) => eof = true,
            Ok(_) => {
                moved = true;
                if let Err(e) = c.process_new_packets() {
                    // Its alert, if it can go.
                    let _ = c.write_tls(&mut s);
                    let e = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
                    return fail(x, &e);
                }
            }
            Err(e) if e.kind() == WouldBlock => {}
            Err(e) if e.kind() == Interrupted => moved = true,
            Err(e) => return fail(x, &e),
        }
        let c = x.tls.as_mut().expect("SSL_GET");
        if eof && c.is_handshaking() {
            let e = std::io::Error::new(UnexpectedEof, "tls handshake eof");
            return fail(x, &e);
        }
        loop {
            let c = x.tls.as_mut().expect("SSL_GET");
            match c.reader().read(&mut buf) {
                // close_notify.
                Ok(0) => return Progress::Over(Ok(())),
                Ok(n) => {
                    if x.resp.feed(u, &buf[..n]) == Fed::Enough {
                        return Progress::Over(Ok(()));
                    }
                }
                Err(e) if e.kind() == WouldBlock => break,
                // Closed without close_notify: the end of the response,
                // as for keepalived.
                Err(e) if e.kind() == UnexpectedEof => return Progress::Over(Ok(())),
                Err(e) => return Progress::Over(Err(read_error(target, u, &e))),
            }
        }
        if eof {
            // Closed, and nothing more to read: the end.
            return Progress::Over(Ok(()));
        }
        if !moved {
            let c = x.tls.as_ref().expect("SSL_GET");
            let mut want = EventFlags::IN;
            if c.wants_write() {
                want |= EventFlags::OUT;
            }
            return Progress::Wait(want);
        }
    }
}

#[cfg(test)]
mod tls_tests {
    use super::*;

    #[test]
    fn the_client_hello_offers_x25519_first() {
        #[allow(deprecated)]
        let p = key_share_x25519_first(rustls::crypto::ring::default_provider());
        let names: Vec<_> = p.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            names,
            [
                rustls::NamedGroup::X25519,
                rustls::NamedGroup::secp256r1,
                rustls::NamedGroup::secp384r1
            ]
        );
    }
}
