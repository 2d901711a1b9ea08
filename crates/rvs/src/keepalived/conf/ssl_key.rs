// SPDX-License-Identifier: GPL-2.0-or-later
//! An encrypted private key of keepalived's `SSL { key FILE; password PW }`
//! decrypted, as OpenSSL's PEM reader does with the password keepalived
//! hands it (`SSL_CTX_set_default_passwd_cb_userdata`):
//!
//! * PKCS#8 `ENCRYPTED PRIVATE KEY` (what OpenSSL 3 writes: `openssl
//!   genpkey -aes256`, `openssl pkey -aes256`): PBES2 (PBKDF2 or scrypt,
//!   AES-CBC or 3DES), through RustCrypto's `pkcs8` (not the PKCS#12 PBE
//!   algorithms `openssl pkcs8 -v1` offers);
//! * the older "traditional" PEM (`openssl rsa -aes256 -traditional`, and
//!   OpenSSL 1.x's `genrsa -aes256`): `Proc-Type: 4,ENCRYPTED` and
//!   `DEK-Info: CIPHER,IV` headers over a PKCS#1 (`RSA PRIVATE KEY`) or
//!   SEC1 (`EC PRIVATE KEY`) body, the key derived by `EVP_BytesToKey`
//!   (MD5, one round, the IV's first 8 bytes as salt), AES-128/192/256-CBC,
//!   DES-EDE3-CBC or DES-CBC.
//!
//! The result is the plain key as PEM, which rustls reads.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use md5::{Digest, Md5};
use pkcs8::der::pem::LineEnding;

const ENCRYPTED_PKCS8: &str = "ENCRYPTED PRIVATE KEY";

/// Whether `pem` holds an encrypted key (either format).
pub(super) fn is_encrypted(pem: &[u8]) -> bool {
    let text = String::from_utf8_lossy(pem);
    text.contains(&format!("-----BEGIN {ENCRYPTED_PKCS8}-----"))
        || text.contains("Proc-Type: 4,ENCRYPTED")
}

/// The first encrypted key of `pem` decrypted with `password`, as a plain
/// PEM key. The error says what failed (a wrong password shows as bad
/// padding or a key that does not parse).
pub(super) fn decrypt(pem: &[u8], password: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "the key file is not PEM text".to_string())?;
    for (label, block) in pem_blocks(text) {
        if label == ENCRYPTED_PKCS8 {
            return pkcs8_key(block, password);
        }
        if block.contains("Proc-Type: 4,ENCRYPTED") {
            return traditional_key(label, block, password);
        }
    }
    Err("no encrypted private key in the file".into())
}

/// `(label, whole block)` of each PEM block of `text`.
fn pem_blocks(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find("-----BEGIN ")?;
        let after = &rest[start + 11..];
        let label_end = after.find("-----")?;
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let end = rest[start..].find(&end_marker)? + start + end_marker.len();
        let block = &rest[start..end];
        rest = &rest[end..];
        Some((label, block))
    })
}

fn pkcs8_key(block: &str, password: &[u8]) -> Result<Vec<u8>, String> {
    let (_, der) =
        pkcs8::der::pem::decode_vec(block.as_bytes()).map_err(|e| format!("PEM: {e}"))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| format!("encrypted PKCS#8: {e}"))?;
    let plain = info
        .decrypt(password)
        .map_err(|e| format!("cannot decrypt (wrong password?): {e}"))?;
    pem_of("PRIVATE KEY", plain.as_bytes())
}

fn traditional_key(label: &str, block: &str, password: &[u8]) -> Result<Vec<u8>, String> {
    let mut lines = block.lines().skip(1);
    let mut dek = None;
    let mut body = String::new();
    for line in lines.by_ref() {
        let line = line.trim();
        if line.starts_with("-----END") {
            break;
        }
        if let Some(v) = line.strip_prefix("DEK-Info:") {
            dek = Some(v.trim().to_string());
        } else if line.contains(':') || line.is_empty() {
            // Proc-Type and other headers, the blank line after them.
        } else {
            body.push_str(line);
        }
    }
    let dek = dek.ok_or("encrypted PEM without DEK-Info")?;
    let (cipher, iv_hex) = dek.split_once(',').ok_or("DEK-Info without an IV")?;
    let iv = hex(iv_hex.trim()).ok_or("DEK-Info: the IV is not hex")?;
    use base64ct::Encoding as _;
    let mut data = base64ct::Base64::decode_vec(&body).map_err(|e| format!("base64: {e}"))?;
    let (key_len, iv_len) = match cipher {
        "AES-128-CBC" => (16, 16),
        "AES-192-CBC" => (24, 16),
        "AES-256-CBC" => (32, 16),
        "DES-EDE3-CBC" => (24, 8),
        "DES-CBC" => (8, 8),
        other => {
            return Err(format!(
                "cipher {other} is not supported (AES-CBC and 3DES are)"
            ));
        }
    };
    if iv.len() != iv_len {
        return Err(format!("DEK-Info: a {cipher} IV is {iv_len} bytes"));
    }
    let key = bytes_to_key(password, &iv[..8], key_len);
    let plain = match cipher {
        "AES-128-CBC" => cbc_decrypt::<aes::Aes128>(&key, &iv, &mut data)?,
        "AES-192-CBC" => cbc_decrypt::<aes::Aes192>(&key, &iv, &mut data)?,
        "AES-256-CBC" => cbc_decrypt::<aes::Aes256>(&key, &iv, &mut data)?,
        "DES-EDE3-CBC" => cbc_decrypt::<des::TdesEde3>(&key, &iv, &mut data)?,
        _ => cbc_decrypt::<des::Des>(&key, &iv, &mut data)?,
    };
    pem_of(label, plain)
}

/// `data` decrypted in place with block cipher `C` in CBC mode, its
/// PKCS#7 padding removed: the plain text.
fn cbc_decrypt<'d, C>(key: &[u8], iv: &[u8], data: &'d mut [u8]) -> Result<&'d [u8], String>
where
    C: aes::cipher::BlockCipher + aes::cipher::BlockDecrypt,
    cbc::Decryptor<C>: KeyIvInit + BlockDecryptMut,
{
    cbc::Decryptor::<C>::new_from_slices(key, iv)
        .map_err(|e| e.to_string())?
        .decrypt_padded_mut::<Pkcs7>(data)
        .map_err(|_| "cannot decrypt (wrong password?)".to_string())
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one round: `D_i = MD5(D_{i-1}
/// || password || salt)`, concatenated until `len` bytes.
fn bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    let mut prev: Vec<u8> = Vec::new();
    while out.len() < len {
        let mut h = Md5::new();
        h.update(&prev);
        h.update(password);
        h.update(salt);
        prev = h.finalize().to_vec();
        out.extend_from_slice(&prev);
    }
    out.truncate(len);
    out
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn pem_of(label: &str, der: &[u8]) -> Result<Vec<u8>, String> {
    pkcs8::der::pem::encode_string(label, LineEnding::LF, der)
        .map(String::into_bytes)
        .map_err(|e| format!("PEM: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    use std::process::Command;

    /// A key written by the openssl CLI (`args`, with `-out` appended),
    /// or `None` where there is no openssl.
    fn openssl(args: &[&str], dir: &std::path::Path, name: &str) -> Option<Vec<u8>> {
        let out = dir.join(name);
        let o = Command::new("openssl")
            .args(args)
            .arg("-out")
            .arg(&out)
            .output()
            .ok()?;
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Some(std::fs::read(out).unwrap())
    }

    /// Every encrypted form OpenSSL writes is decrypted to the key it
    /// encrypted; a wrong password is an error that says so.
    #[test]
    fn openssls_encrypted_keys() {
        let dir = std::env::temp_dir().join(format!("rvs-sslkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir_s = dir.to_str().unwrap();
        let Some(_) = openssl(
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ],
            &dir,
            "ec.pem",
        ) else {
            eprintln!("skipped: no openssl command");
            return;
        };
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            &dir,
            "rsa.pem",
        )
        .unwrap();
        let plain = |name: &str| -> Vec<u8> {
            let pem = std::fs::read(dir.join(name)).unwrap();
            PrivateKeyDer::from_pem_slice(&pem)
                .unwrap()
                .secret_der()
                .to_vec()
        };
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("ec.pem", vec!["pkey", "-aes256"]),
            ("rsa.pem", vec!["pkey", "-aes128"]),
            (
                "rsa.pem",
                vec!["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-scrypt"],
            ),
            ("rsa.pem", vec!["pkcs8", "-topk8", "-v2", "des3"]),
            ("rsa.pem", vec!["rsa", "-aes256", "-traditional"]),
            ("rsa.pem", vec!["rsa", "-aes192", "-traditional"]),
            ("rsa.pem", vec!["rsa", "-des3", "-traditional"]),
            ("ec.pem", vec!["ec", "-aes128"]),
        ];
        for (i, (src, how)) in cases.iter().enumerate() {
            let mut args = how.clone();
            let input = format!("{dir_s}/{src}");
            args.extend(["-in", &input, "-passout", "pass:s3cret"]);
            let name = format!("enc{i}.pem");
            let enc = openssl(&args, &dir, &name).unwrap();
            assert!(is_encrypted(&enc), "{how:?}");
            let pem = decrypt(&enc, b"s3cret").unwrap_or_else(|e| panic!("{how:?}: {e}"));
            let got =
                PrivateKeyDer::from_pem_slice(&pem).unwrap_or_else(|e| panic!("{how:?}: {e}"));
            // The same key: a PKCS#8 result wraps what a traditional one
            // holds, so compare through the plain PKCS#8 `openssl pkey`
            // writes of each.
            let back = dir.join(format!("back{i}.pem"));
            std::fs::write(&back, &pem).unwrap();
            let norm = openssl(
                &["pkey", "-in", back.to_str().unwrap()],
                &dir,
                &format!("norm{i}.pem"),
            )
            .unwrap();
            let norm = PrivateKeyDer::from_pem_slice(&norm).unwrap();
            assert_eq!(norm.secret_der(), plain(src), "{how:?}");
            drop(got);
            let wrong = decrypt(&enc, b"wrong").map(|p| PrivateKeyDer::from_pem_slice(&p).is_ok());
            assert!(
                !matches!(wrong, Ok(true)),
                "{how:?}: a wrong password gave a key"
            );
        }
        let plain_pem = std::fs::read(dir.join("rsa.pem")).unwrap();
        assert!(!is_encrypted(&plain_pem));
        assert!(decrypt(&plain_pem, b"x").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bytes_to_key_chains_md5() {
        let salt = [0, 1, 2, 3, 4, 5, 6, 7];
        let k = bytes_to_key(b"password", &salt, 32);
        let md5 = |parts: &[&[u8]]| {
            let mut h = Md5::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().to_vec()
        };
        let d1 = md5(&[b"password", &salt]);
        let d2 = md5(&[&d1, b"password", &salt]);
        assert_eq!(k, [d1, d2].concat());
        assert_eq!(bytes_to_key(b"password", &salt, 24), k[..24]);
    }
}
