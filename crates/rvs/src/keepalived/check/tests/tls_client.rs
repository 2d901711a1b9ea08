// SPDX-License-Identifier: GPL-2.0-or-later
//! SSL_GET with the `SSL` block's client certificate against a server that
//! requires one signed by its CA (mutual TLS): up with it, down without
//! it; and the block as the parser reads it (files, errors at their line).

use super::*;
use crate::keepalived::conf::TlsClient;
use crate::keepalived::lex;

/// A CA, and a client certificate it signed: (CA's DER, the client's
/// chain and key as PEM).
fn ca_and_client() -> (rustls::pki_types::CertificateDer<'static>, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let client = rcgen::CertificateParams::new(vec!["checker.example.com".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.der().clone(), client.pem(), key.serialize_pem())
}

/// A one-shot TLS server that requires a client certificate signed by
/// `ca`; whether the handshake was completed.
fn serve_mtls(
    ca: rustls::pki_types::CertificateDer<'static>,
) -> (u16, std::thread::JoinHandle<bool>) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["www.example.com".into()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let conn = rustls::ServerConnection::new(cfg).unwrap();
        let mut t = rustls::StreamOwned::new(conn, s);
        let mut req = Vec::new();
        let mut b = [0u8; 1024];
        while !req.ends_with(b"\r\n\r\n") {
            match t.read(&mut b) {
                Ok(0) | Err(_) => return false,
                Ok(n) => req.extend_from_slice(&b[..n]),
            }
        }
        let _ = t.write_all(b"HTTP/1.0 200 OK\r\n\r\nok");
        t.conn.send_close_notify();
        let _ = t.flush();
        true
    });
    (port, h)
}

fn ssl_get(client: Option<TlsClient>, port: u16) -> Checker {
    let mut k = http(vec![], None);
    if let CheckKind::Http { tls, client: c, .. } = &mut k {
        *tls = true;
        *c = client;
    }
    checker(k, IpAddr::from([127, 0, 0, 1]), port)
}

#[test]
fn ssl_get_presents_the_ssl_blocks_certificate() {
    let (ca, chain, key) = ca_and_client();
    let client = TlsClient {
        certificate: "client.pem".into(),
        chain_pem: chain.into_bytes(),
        key_pem: key.into_bytes(),
    };
    let (port, h) = serve_mtls(ca.clone());
    assert_eq!(run(&ssl_get(Some(client), port)), Outcome::Up(None));
    assert!(h.join().unwrap(), "the server saw the client's certificate");
    // Without one, the server refuses the handshake: down.
    let (port, h) = serve_mtls(ca);
    assert!(matches!(run(&ssl_get(None, port)), Outcome::Down(_)));
    assert!(!h.join().unwrap());
}

fn parse(text: &str) -> Result<(crate::keepalived::conf::Config, Vec<String>), String> {
    let mut w = Vec::new();
    let t = lex::parse_text(text, "k.conf", std::path::Path::new("/x"), &mut w)
        .map_err(|e| e.to_string())?;
    let c = crate::keepalived::conf::build(&t, &mut w).map_err(|e| e.to_string())?;
    Ok((c, w))
}

/// The block as keepalived reads it: SSL_GETs (not HTTP_GETs) carry the
/// certificate; `ca` is taken; a key in the certificate's file serves;
/// what cannot be read or used refuses the file at its line.
#[test]
fn the_ssl_block() {
    let dir = std::env::temp_dir().join(format!("rvs-ssl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_, chain, key) = ca_and_client();
    let (c, k, both) = (dir.join("c.pem"), dir.join("k.pem"), dir.join("both.pem"));
    std::fs::write(&c, &chain).unwrap();
    std::fs::write(&k, &key).unwrap();
    std::fs::write(&both, format!("{chain}{key}")).unwrap();
    let file = |ssl: &str| {
        format!(
            "SSL {{\n{ssl}}}\nvirtual_server 10.0.0.1 443 {{\n real_server 10.0.0.2 443 {{\n  \
             SSL_GET {{ url {{ path / }} }}\n  HTTP_GET {{ url {{ path / }} }}\n }}\n}}\n"
        )
    };
    let clients = |c: &crate::keepalived::conf::Config| -> Vec<bool> {
        c.services[0].reals[0]
            .checkers
            .iter()
            .map(|ck| {
                matches!(
                    &ck.kind,
                    CheckKind::Http {
                        client: Some(_),
                        ..
                    }
                )
            })
            .collect()
    };
    let (conf, w) = parse(&file(&format!(
        " certificate {}\n key {}\n ca /etc/ssl/certs/ca.pem\n password unused\n",
        c.display(),
        k.display()
    )))
    .unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(clients(&conf), [true, false]);
    let (conf, _) = parse(&file(&format!(" certificate {}\n", both.display()))).unwrap();
    assert_eq!(
        clients(&conf),
        [true, false],
        "the key in the certificate's file"
    );
    assert_eq!(clients(&parse(&file("")).unwrap().0), [false, false]);
    // Refused at their line.
    let e = parse(&file(" certificate /nonexistent/c.pem\n")).unwrap_err();
    assert!(
        e.starts_with("k.conf:2: SSL certificate /nonexistent/c.pem:"),
        "{e}"
    );
    let e = parse(&file(&format!(" key {}\n", k.display()))).unwrap_err();
    assert_eq!(e, "k.conf:2: SSL: a key without a certificate");
    let e = parse(&file(&format!(" certificate {}\n", c.display()))).unwrap_err();
    assert!(e.starts_with("k.conf:2: SSL key:"), "no key in it: {e}");
    let enc = dir.join("enc.pem");
    std::fs::write(
        &enc,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = parse(&file(&format!(
        " certificate {}\n key {}\n password secret\n",
        c.display(),
        enc.display()
    )))
    .unwrap_err();
    assert!(
        e.starts_with("k.conf:4: SSL key ") && e.contains("encrypted PKCS#8"),
        "a broken encrypted key, refused at the password's line: {e}"
    );
    let e = parse(&file(&format!(
        " certificate {}\n key {}\n",
        c.display(),
        enc.display()
    )))
    .unwrap_err();
    assert!(
        e.starts_with("k.conf:3: SSL key ") && e.contains("no 'password'"),
        "{e}"
    );
    let (_, w) = parse(&file(&format!(
        " certificate {}\n key {}\n cipher x\n",
        c.display(),
        k.display()
    )))
    .unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("k.conf:4:"), "{w:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
