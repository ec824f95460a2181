//! cosign's own encrypted private key format, so a key made by `cosign generate-key-pair`
//! signs with `cargo ebpf sign --key cosign.key` unchanged.
//!
//! The PEM block (`ENCRYPTED SIGSTORE PRIVATE KEY`, older `ENCRYPTED COSIGN PRIVATE KEY`)
//! holds JSON: a scrypt KDF with its parameters and salt, a NaCl secretbox nonce, and the
//! ciphertext of the PKCS#8 DER key. Parameters come from the file, so they are bounded
//! before use: a hostile file must not make scrypt allocate gigabytes.

use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// PEM labels cosign writes (newest first).
pub const PEM_LABELS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

/// scrypt's `N` cosign uses; the largest we accept is 2^20 (1 GiB of memory at r=8 would be
/// 2^20 * 128 * 8): anything above is refused as hostile.
const COSIGN_N: u64 = 32768;
const MAX_LOG_N: u8 = 20;
const MAX_R: u32 = 16;
const MAX_P: u32 = 4;

#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
#[allow(non_snake_case)]
struct KdfParams {
    N: u64,
    r: u32,
    p: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// Whether `pem` is one of cosign's encrypted keys.
pub fn is_cosign_key(pem: &str) -> bool {
    PEM_LABELS
        .iter()
        .any(|l| pem.contains(&format!("-----BEGIN {l}-----")))
}

/// The PKCS#8 DER private key inside a cosign key file.
pub fn open(pem: &str, password: &str) -> Result<Vec<u8>> {
    let sealed = parse(pem)?;
    let key = derive(password, &sealed.kdf)?;
    let nonce = <[u8; 24]>::try_from(sealed.cipher.nonce.as_slice())
        .map_err(|_| damaged("its nonce is not 24 bytes"))?;
    XSalsa20Poly1305::new(&key.into())
        .decrypt(&nonce.into(), sealed.ciphertext.as_slice())
        .map_err(|_| {
            Error::auth("could not decrypt the cosign private key: wrong password or damaged key")
                .with_help(
                "check the password (COSIGN_PASSWORD, CARGO_EBPF_KEY_PASSWORD or --password-stdin)",
            )
        })
}

/// `der` sealed the way cosign does (scrypt N=32768, r=8, p=1; fresh salt and nonce).
pub fn seal(der: &[u8], password: &str) -> Result<String> {
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let kdf = Kdf {
        name: "scrypt".into(),
        params: KdfParams {
            N: COSIGN_N,
            r: 8,
            p: 1,
        },
        salt: salt.to_vec(),
    };
    let key = derive(password, &kdf)?;
    let ciphertext = XSalsa20Poly1305::new(&key.into())
        .encrypt(&nonce.into(), der)
        .map_err(|_| Error::environment("could not encrypt the key"))?;
    let sealed = Sealed {
        kdf,
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: nonce.to_vec(),
        },
        ciphertext,
    };
    let json = serde_json::to_vec(&sealed).expect("a sealed key serializes");
    let body = base64::engine::general_purpose::STANDARD.encode(json);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    let label = PEM_LABELS[0];
    Ok(format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    ))
}

fn parse(pem: &str) -> Result<Sealed> {
    let label = PEM_LABELS
        .iter()
        .find(|l| pem.contains(&format!("-----BEGIN {l}-----")))
        .ok_or_else(|| damaged("it has no cosign key PEM block"))?;
    let body = pem
        .split(&format!("-----BEGIN {label}-----"))
        .nth(1)
        .and_then(|rest| rest.split(&format!("-----END {label}-----")).next())
        .ok_or_else(|| damaged("its PEM block is not closed"))?;
    let text: String = body.split_whitespace().collect();
    let json = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| damaged("its PEM body is not base64").with_source(e))?;
    let sealed: Sealed = serde_json::from_slice(&json)
        .map_err(|e| damaged("its content is not cosign's key JSON").with_source(e))?;
    if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" {
        return Err(damaged(&format!(
            "it uses {} with {} (only scrypt with nacl/secretbox is read)",
            sealed.kdf.name, sealed.cipher.name
        )));
    }
    Ok(sealed)
}

/// scrypt with the file's parameters, refused when they are not sane.
fn derive(password: &str, kdf: &Kdf) -> Result<[u8; 32]> {
    let p = &kdf.params;
    let log_n = (p.N.is_power_of_two() && p.N > 1).then(|| p.N.trailing_zeros() as u8);
    let params = match log_n {
        Some(log_n) if log_n <= MAX_LOG_N && p.r <= MAX_R && p.p <= MAX_P => {
            scrypt::Params::new(log_n, p.r, p.p, 32).ok()
        }
        _ => None,
    }
    .ok_or_else(|| {
        damaged(&format!(
            "its scrypt parameters (N={}, r={}, p={}) are out of range",
            p.N, p.r, p.p
        ))
    })?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), &kdf.salt, &params, &mut key)
        .map_err(|_| damaged("scrypt refused its parameters"))?;
    Ok(key)
}

fn damaged(why: &str) -> Error {
    Error::input(format!("cannot read the cosign private key: {why}")).with_help(
        "pass the .key file `cosign generate-key-pair` wrote, unchanged, or make a key with \
         `cargo ebpf key generate PREFIX`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_the_password_matters() {
        let pem = seal(b"pkcs8 der bytes", "pw").unwrap();
        assert!(is_cosign_key(&pem));
        assert_eq!(open(&pem, "pw").unwrap(), b"pkcs8 der bytes");
        let err = open(&pem, "other").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Auth);
    }

    #[test]
    fn hostile_parameters_are_refused_before_scrypt_runs() {
        let pem = seal(b"x", "pw").unwrap();
        let mut sealed = parse(&pem).unwrap();
        sealed.kdf.params.N = 1 << 30;
        let json = serde_json::to_vec(&sealed).unwrap();
        let body = base64::engine::general_purpose::STANDARD.encode(json);
        let hostile = format!(
            "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n{body}\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n"
        );
        let err = open(&hostile, "pw").unwrap_err();
        assert!(err.message.contains("out of range"), "{}", err.message);
        let err = open("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n!!\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----", "pw").unwrap_err();
        assert!(err.message.contains("not base64"), "{}", err.message);
    }
}
