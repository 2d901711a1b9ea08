// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived's top-level `SSL { certificate FILE; key FILE; password PW;
//! ca FILE }` block (check_ssl.c): the client certificate every SSL_GET
//! presents to a real server that asks for one (mutual TLS).
//!
//! The files are read when the configuration is loaded: a certificate or
//! key that cannot be read or parsed refuses the file at its line
//! (keepalived fails its SSL set-up then). The key is PEM: plain PKCS#8,
//! PKCS#1 or SEC1, or encrypted as OpenSSL writes it and decrypted with
//! `password` (`ssl_key.rs`); an encrypted key without a password, or one
//! the password does not open, refuses the file. `ca` is read and
//! changes nothing, as in keepalived, which loads it but never verifies
//! the server (SSL_GET checks that a service answers, not who it is).

use std::path::PathBuf;

use super::*;
use crate::keepalived::lex::{ConfError, Node, err_at};

/// The client identity of SSL_GET: a certificate chain and its key, as
/// PEM text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsClient {
    /// `certificate`: where the chain was read.
    pub certificate: PathBuf,
    /// Its PEM text (one or more certificates, the leaf first).
    pub chain_pem: Vec<u8>,
    /// `key`'s PEM text.
    pub key_pem: Vec<u8>,
}

impl TlsClient {
    /// The chain and key in rustls's types.
    pub fn parts(
        &self,
    ) -> Result<
        (
            Vec<rustls::pki_types::CertificateDer<'static>>,
            rustls::pki_types::PrivateKeyDer<'static>,
        ),
        String,
    > {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&self.chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("certificate: {e}"))?;
        if chain.is_empty() {
            return Err("certificate: no CERTIFICATE in the file".into());
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| format!("key: {e}"))?;
        Ok((chain, key))
    }
}

/// Read the `SSL` blocks (the last one of each setting counts, as in
/// keepalived): `None` without a certificate.
pub(super) fn global(
    tree: &[Node],
    warnings: &mut Vec<String>,
) -> Result<Option<TlsClient>, ConfError> {
    let (mut cert, mut key, mut password) = (None, None, None);
    let mut at = None;
    for n in tree.iter().filter(|n| n.key == "SSL") {
        at.get_or_insert_with(|| n.pos.clone());
        for c in block(n)? {
            match c.key.as_str() {
                "certificate" => cert = Some((c.pos.clone(), PathBuf::from(value(c)?))),
                "key" => key = Some((c.pos.clone(), PathBuf::from(value(c)?))),
                "password" => password = Some((c.pos.clone(), value(c)?.to_string())),
                // Loaded by keepalived, never used to verify: nothing to
                // do (the name is kept out of the warnings).
                "ca" => {
                    value(c)?;
                }
                _ => unknown(c, warnings),
            }
        }
    }
    let read = |pos: &Pos, what: &str, p: &PathBuf| {
        std::fs::read(p).map_err(|e| err_at(pos, format!("SSL {what} {}: {e}", p.display())))
    };
    let (cpos, cert) = match (cert, &key) {
        (Some(c), _) => c,
        (None, Some((kpos, _))) => {
            return Err(err_at(kpos, "SSL: a key without a certificate"));
        }
        (None, None) => return Ok(None),
    };
    // keepalived uses the certificate file for the key when there is no
    // `key` (OpenSSL finds the key in a combined PEM).
    let chain_pem = read(&cpos, "certificate", &cert)?;
    let (kpos, kpath) = key.unwrap_or_else(|| (cpos.clone(), cert.clone()));
    let mut key_pem = read(&kpos, "key", &kpath)?;
    if super::ssl_key::is_encrypted(&key_pem) {
        let Some((ppos, pw)) = &password else {
            return Err(err_at(
                &kpos,
                format!(
                    "SSL key {}: the key is encrypted and the SSL block has no 'password'",
                    kpath.display()
                ),
            ));
        };
        key_pem = super::ssl_key::decrypt(&key_pem, pw.as_bytes())
            .map_err(|e| err_at(ppos, format!("SSL key {}: {e}", kpath.display())))?;
    }
    let client = TlsClient {
        chain_pem,
        certificate: cert,
        key_pem,
    };
    client
        .parts()
        .map_err(|e| err_at(&cpos, format!("SSL {e}")))?;
    Ok(Some(client))
}
