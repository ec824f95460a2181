//! Users' signing keys: ECDSA P-256 public keys in PEM (`-----BEGIN PUBLIC KEY-----`,
//! a SubjectPublicKeyInfo), as `cosign generate-key-pair` and `cargo ebpf` write them. The
//! hub checks their shape and names each by its fingerprint; signatures are checked against
//! them on push ([`crate::signatures`]).

use base64::Engine;

use crate::db::{Db, KeyRow};
use crate::error::HubError;

/// The DER a P-256 SubjectPublicKeyInfo starts with: SEQUENCE { SEQUENCE { id-ecPublicKey,
/// prime256v1 }, BIT STRING (66 bytes) { uncompressed point 0x04 … } }.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];
const P256_SPKI_LEN: usize = 91;
/// Largest PEM accepted (a P-256 key is ~180 bytes).
const MAX_PEM: usize = 4096;

/// A key as registered: its DER and fingerprint.
pub struct PublicKey {
    pub pem: String,
    pub der: Vec<u8>,
    pub fingerprint: String,
}

/// `SHA256:<hex>` of a key's DER: the name shown on badges and by `cargo ebpf trust`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ebpf_package::digest::sha256(der);
    format!("SHA256:{}", digest.trim_start_matches("sha256:"))
}

/// Parses one PEM public key, refusing anything but ECDSA P-256.
pub fn parse(pem: &str) -> Result<PublicKey, HubError> {
    let bad = |why: &str| {
        HubError::refused(format!(
            "not an ECDSA P-256 public key in PEM ({why}); send the `-----BEGIN PUBLIC KEY-----` \
             file of your key pair (cosign.pub), never the private key"
        ))
    };
    if pem.len() > MAX_PEM {
        return Err(bad("too long"));
    }
    let pem = pem.trim();
    if pem.contains("PRIVATE KEY") {
        return Err(bad("this is a private key: keep it secret"));
    }
    let body = pem
        .strip_prefix("-----BEGIN PUBLIC KEY-----")
        .and_then(|b| b.strip_suffix("-----END PUBLIC KEY-----"))
        .ok_or_else(|| bad("no BEGIN/END PUBLIC KEY lines"))?;
    let b64: String = body.split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad("the body is not base64"))?;
    if der.len() != P256_SPKI_LEN || !der.starts_with(P256_SPKI_PREFIX) {
        return Err(bad("another algorithm or curve"));
    }
    Ok(PublicKey {
        pem: format!("{pem}\n"),
        fingerprint: fingerprint(&der),
        der,
    })
}

/// Registers `pem` for `user`; refused when malformed or already registered.
pub async fn register(db: &Db, user: &str, pem: &str, label: &str) -> Result<KeyRow, HubError> {
    let key = parse(pem)?;
    let row = KeyRow {
        user: user.to_string(),
        fingerprint: key.fingerprint,
        label: label.trim().chars().take(100).collect(),
        pem: key.pem,
        created_at: crate::db::now(),
    };
    if !db.add_key(&row).await? {
        return Err(HubError::refused(format!(
            "{user} already has key {}; nothing to do",
            row.fingerprint
        )));
    }
    Ok(row)
}

/// The public JSON view of a registered key.
pub fn json(k: &KeyRow) -> serde_json::Value {
    serde_json::json!({
        "fingerprint": k.fingerprint, "label": k.label, "pem": k.pem, "created_at": k.created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_of(der: &[u8]) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b}\n-----END PUBLIC KEY-----\n")
    }

    #[test]
    fn only_p256_public_keys() {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend([7u8; 64]);
        let k = parse(&pem_of(&der)).unwrap();
        assert!(k.fingerprint.starts_with("SHA256:") && k.fingerprint.len() == 71);
        assert!(parse(&pem_of(&der[..60])).is_err());
        let mut other_curve = der.clone();
        other_curve[21] = 0x22;
        assert!(parse(&pem_of(&other_curve)).is_err());
        assert!(
            parse("-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----").is_err()
        );
        assert!(parse("hello").is_err());
    }
}
