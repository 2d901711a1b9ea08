// SPDX-License-Identifier: GPL-2.0-or-later
//! An encrypted private key of keepalived's `SSL { key FILE; password PW }`
//! decrypted, as OpenSSL's PEM reader does with the password keepalived
//! hands it (`SSL_CTX_set_default_passwd_cb_userdata`):
//!
//! * PKCS#8 `ENCRYPTED PRIVATE KEY` (what OpenSSL 3 writes: `openssl
//!   genpkey -aes256`, `openssl pkey -aes256`): PBES2 (PBKDF2 or scrypt,
//!   AES-CBC or 3DES), through RustCrypto's `pkcs8`; or the PKCS#12 PBE
//!   algorithms of `openssl pkcs8 -topk8 -v1` that OpenSSL 3 reads without
//!   its legacy provider, `PBE-SHA1-3DES` and `PBE-SHA1-2DES` (RFC 7292
//!   appendix C: the key and IV from appendix B's KDF with SHA-1, 3DES-CBC
//!   with three or two keys). The other `-v1` algorithms (RC2, RC4, DES,
//!   MD5; PKCS#5's PBES1) are refused with their name: OpenSSL 3, under
//!   keepalived, refuses them too unless its legacy provider is loaded;
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
use pkcs8::der::asn1::{AnyRef, ObjectIdentifier};
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
    let (oid, params, data) = encrypted_info(&der).map_err(|e| format!("encrypted PKCS#8: {e}"))?;
    if let Some(&(_, name, ref cipher)) = PKCS12_PBE.iter().find(|(o, ..)| *o == oid) {
        let Some(cipher) = cipher else {
            return Err(legacy_only(&format!("{name} ({oid})")));
        };
        let plain = pkcs12_pbe_decrypt(*cipher, params, data, password)?;
        return pem_of("PRIVATE KEY", &plain);
    }
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| format!("encrypted PKCS#8: {e}"))?;
    if let pkcs8::pkcs5::EncryptionScheme::Pbes1(alg) = info.encryption_algorithm {
        return Err(legacy_only(&format!("PKCS#5 PBES1 ({})", alg.oid())));
    }
    let plain = info
        .decrypt(password)
        .map_err(|e| format!("cannot decrypt (wrong password?): {e}"))?;
    pem_of("PRIVATE KEY", plain.as_bytes())
}

/// The refusal of a key encrypted with `what`, an algorithm OpenSSL 3
/// reads only with its legacy provider.
fn legacy_only(what: &str) -> String {
    format!(
        "the key's encryption {what} is not supported: OpenSSL 3 reads it only with its legacy \
         provider; PBE-SHA1-3DES, PBE-SHA1-2DES and PBES2 (openssl pkcs8 -topk8 -v2 \
         aes-256-cbc) are"
    )
}

/// The cipher of a PKCS#12 PBE algorithm rvs decrypts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pkcs12Cipher {
    /// 3DES-CBC with three keys (24 bytes).
    TdesEde3,
    /// 3DES-CBC with two keys (16 bytes; the third is the first).
    TdesEde2,
}

/// RFC 7292 appendix C's PBE algorithms: OID, OpenSSL's `-v1` name, and
/// the cipher where rvs decrypts it (OpenSSL 3 without its legacy
/// provider reads exactly these two).
const PKCS12_PBE: [(ObjectIdentifier, &str, Option<Pkcs12Cipher>); 6] = [
    (
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.1"),
        "PBE-SHA1-RC4-128",
        None,
    ),
    (
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.2"),
        "PBE-SHA1-RC4-40",
        None,
    ),
    (
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3"),
        "PBE-SHA1-3DES",
        Some(Pkcs12Cipher::TdesEde3),
    ),
    (
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.4"),
        "PBE-SHA1-2DES",
        Some(Pkcs12Cipher::TdesEde2),
    ),
    (
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.5"),
        "PBE-SHA1-RC2-128",
        None,
    ),
    (
        ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6"),
        "PBE-SHA1-RC2-40",
        None,
    ),
];

/// `EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm
/// AlgorithmIdentifier, encryptedData OCTET STRING }`: the algorithm's
/// OID, its parameters (if any) and the encrypted data.
fn encrypted_info(der: &[u8]) -> pkcs8::der::Result<(ObjectIdentifier, Option<AnyRef<'_>>, &[u8])> {
    use pkcs8::der::{Decode, Reader, SliceReader, asn1::OctetStringRef};
    let mut r = SliceReader::new(der)?;
    let info = r.sequence(|r| {
        let alg = pkcs8::spki::AlgorithmIdentifierRef::decode(r)?;
        let data = OctetStringRef::decode(r)?;
        Ok((alg.oid, alg.parameters, data.as_bytes()))
    })?;
    r.finish(info)
}

/// `pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations
/// INTEGER }`.
fn pkcs12_params(params: Option<AnyRef<'_>>) -> pkcs8::der::Result<(&[u8], u32)> {
    use pkcs8::der::{Decode, Tag};
    let params = params.ok_or(Tag::Sequence.value_error())?;
    params.sequence(|r| {
        let salt = pkcs8::der::asn1::OctetStringRef::decode(r)?;
        let iterations = u32::decode(r)?;
        Ok((salt.as_bytes(), iterations))
    })
}

/// `data` decrypted as RFC 7292 appendix C's PBE does: key and IV from
/// [`pkcs12_kdf`] (IDs 1 and 2) over the password as a BMPString.
fn pkcs12_pbe_decrypt(
    cipher: Pkcs12Cipher,
    params: Option<AnyRef<'_>>,
    data: &[u8],
    password: &[u8],
) -> Result<Vec<u8>, String> {
    let (salt, iterations) =
        pkcs12_params(params).map_err(|e| format!("encrypted PKCS#8: PBE parameters: {e}"))?;
    if iterations == 0 || iterations > 10_000_000 {
        return Err(format!(
            "encrypted PKCS#8: PBE iteration count {iterations} is out of range"
        ));
    }
    let password = std::str::from_utf8(password)
        .map_err(|_| "a PKCS#12 PBE password must be UTF-8 (OpenSSL's rule too)".to_string())?;
    // UTF-16BE with a terminating NUL, as OpenSSL's PKCS12_key_gen_utf8.
    let mut bmp: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
    bmp.extend_from_slice(&[0, 0]);
    let key_len = match cipher {
        Pkcs12Cipher::TdesEde3 => 24,
        Pkcs12Cipher::TdesEde2 => 16,
    };
    let key = pkcs12_kdf(&bmp, salt, 1, iterations, key_len);
    let iv = pkcs12_kdf(&bmp, salt, 2, iterations, 8);
    let mut buf = data.to_vec();
    let plain = match cipher {
        Pkcs12Cipher::TdesEde3 => cbc_decrypt::<des::TdesEde3>(&key, &iv, &mut buf)?,
        Pkcs12Cipher::TdesEde2 => cbc_decrypt::<des::TdesEde2>(&key, &iv, &mut buf)?,
    };
    // Good padding by chance under a wrong password leaves garbage.
    pkcs8::PrivateKeyInfo::try_from(plain)
        .map_err(|_| "cannot decrypt (wrong password?)".to_string())?;
    Ok(plain.to_vec())
}

/// RFC 7292 appendix B.2's key derivation with SHA-1 (u = 20, v = 64):
/// `len` bytes of purpose `id` (1 key, 2 IV, 3 MAC) from the BMPString
/// password `bmp` and `salt` in `iterations` rounds. By hand: the
/// `pkcs12` crate's KDF brings that crate's CMS and X.509 dependencies.
fn pkcs12_kdf(bmp: &[u8], salt: &[u8], id: u8, iterations: u32, len: usize) -> Vec<u8> {
    use sha1::{Digest, Sha1};
    const V: usize = 64;
    let fill = |src: &[u8]| -> Vec<u8> {
        let n = src.len().div_ceil(V) * V;
        src.iter().copied().cycle().take(n).collect()
    };
    let mut i = fill(salt);
    i.extend(fill(bmp));
    let d = [id; V];
    let mut out = Vec::with_capacity(len + 20);
    loop {
        let mut a = Sha1::new().chain_update(d).chain_update(&i).finalize();
        for _ in 1..iterations {
            a = Sha1::digest(a);
        }
        out.extend_from_slice(&a);
        if out.len() >= len {
            out.truncate(len);
            return out;
        }
        // I_j = (I_j + B + 1) mod 2^(8v), B the digest repeated to v bytes.
        let b: Vec<u8> = a.iter().copied().cycle().take(V).collect();
        for block in i.chunks_mut(V) {
            let mut carry = 1u16;
            for (x, y) in block.iter_mut().zip(&b).rev() {
                let sum = u16::from(*x) + u16::from(*y) + carry;
                *x = sum as u8;
                carry = sum >> 8;
            }
        }
    }
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

    /// A P-256 key as `dir/ec.pem`, or `None` where there is no openssl.
    fn ec_key(dir: &std::path::Path) -> Option<Vec<u8>> {
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ],
            dir,
            "ec.pem",
        )
    }

    /// Every encrypted form OpenSSL writes is decrypted to the key it
    /// encrypted; a wrong password is an error that says so.
    #[test]
    fn openssls_encrypted_keys() {
        let dir = std::env::temp_dir().join(format!("rvs-sslkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir_s = dir.to_str().unwrap();
        let Some(_) = ec_key(&dir) else {
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
            ("rsa.pem", vec!["pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES"]),
            ("ec.pem", vec!["pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES"]),
            ("ec.pem", vec!["pkcs8", "-topk8", "-v1", "PBE-SHA1-2DES"]),
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

    /// The PBE algorithms OpenSSL 3 reads only with its legacy provider
    /// are refused with their name, as keepalived's OpenSSL refuses them.
    #[test]
    fn legacy_pbe_keys_are_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("rvs-sslkey-legacy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let Some(_) = ec_key(&dir) else {
            eprintln!("skipped: no openssl command");
            return;
        };
        let input = dir.join("ec.pem");
        for (alg, says) in [
            ("PBE-SHA1-RC4-128", "PBE-SHA1-RC4-128"),
            ("PBE-SHA1-RC2-40", "PBE-SHA1-RC2-40"),
            ("PBE-MD5-DES", "PBES1"),
        ] {
            let out = dir.join(format!("{alg}.pem"));
            let o = Command::new("openssl")
                .args(["pkcs8", "-topk8", "-v1", alg])
                .args(["-provider", "legacy", "-provider", "default"])
                .arg("-in")
                .arg(&input)
                .args(["-passout", "pass:s3cret", "-out"])
                .arg(&out)
                .output()
                .unwrap();
            if !o.status.success() {
                eprintln!("{alg}: skipped, this openssl has no legacy provider");
                continue;
            }
            let enc = std::fs::read(&out).unwrap();
            assert!(is_encrypted(&enc));
            let e = decrypt(&enc, b"s3cret").unwrap_err();
            assert!(
                e.contains(says) && e.contains("legacy provider"),
                "{alg}: {e}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// RFC 7292's KDF: the salt and the password each fill whole 64-byte
    /// blocks, and a second digest block follows the carry-adding update
    /// of I (a 24-byte key needs two SHA-1 outputs). Checked against
    /// OpenSSL end to end above; here the structure on a known input.
    #[test]
    fn pkcs12_kdf_chains_blocks() {
        use sha1::{Digest, Sha1};
        let bmp = [0u8, b'a', 0, 0];
        let salt = [1u8, 2, 3];
        let k = pkcs12_kdf(&bmp, &salt, 1, 1, 24);
        let i: Vec<u8> = salt
            .iter()
            .copied()
            .cycle()
            .take(64)
            .chain(bmp.iter().copied().cycle().take(64))
            .collect();
        let a1 = Sha1::new()
            .chain_update([1u8; 64])
            .chain_update(&i)
            .finalize();
        assert_eq!(k[..20], a1[..]);
        assert_eq!(pkcs12_kdf(&bmp, &salt, 1, 1, 8), k[..8]);
        // Two rounds hash the first digest again.
        assert_eq!(pkcs12_kdf(&bmp, &salt, 1, 2, 20), Sha1::digest(a1)[..]);
        // The IV's purpose byte gives another stream.
        assert_ne!(pkcs12_kdf(&bmp, &salt, 2, 1, 8), k[..8]);
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
