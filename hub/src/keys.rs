//! Users' signing keys: ECDSA P-256 public keys in PEM (`-----BEGIN PUBLIC KEY-----`,
//! a SubjectPublicKeyInfo), as `cosign generate-key-pair` and `cargo ebpf` write them. The
//! hub checks their shape and names each by its fingerprint; signatures are checked against
//! them on push ([`crate::signatures`]).

use ebpf_package::signature::PublicKey;

use crate::db::{Db, KeyRow};
use crate::error::HubError;

/// Largest PEM accepted (a P-256 key is ~180 bytes).
const MAX_PEM: usize = 4096;

/// Parses one PEM public key (ECDSA P-256, checked by [`ebpf_package::signature`], the
/// same code that verifies signatures), refusing private keys outright.
pub fn parse(pem: &str) -> Result<PublicKey, HubError> {
    let bad = |why: &str| {
        HubError::refused(format!(
            "not an ECDSA P-256 public key in PEM ({why}); send the `-----BEGIN PUBLIC KEY-----` \
             file of your key pair (cosign.pub, or `cargo ebpf key generate`'s .pub), never the \
             private key"
        ))
    };
    if pem.len() > MAX_PEM {
        return Err(bad("too long"));
    }
    if pem.contains("PRIVATE KEY") {
        return Err(bad("this is a private key: keep it secret"));
    }
    PublicKey::from_pem(pem).map_err(|e| bad("another algorithm, curve or encoding").with_source(e))
}

/// Registers `pem` for `user`; refused when malformed or already registered.
pub async fn register(db: &Db, user: &str, pem: &str, label: &str) -> Result<KeyRow, HubError> {
    let key = parse(pem)?;
    let row = KeyRow {
        user: user.to_string(),
        fingerprint: key.fingerprint(),
        label: label.trim().chars().take(100).collect(),
        pem: key.to_pem(),
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

    #[test]
    fn only_p256_public_keys() {
        let key = ebpf_package::signature::PrivateKey::generate();
        let parsed = parse(&key.public_key().to_pem()).unwrap();
        assert_eq!(parsed.fingerprint(), key.public_key().fingerprint());
        let private = key.to_pem(None).unwrap();
        assert!(parse(&private).unwrap_err().message.contains("private key"));
        assert!(parse("hello").is_err());
    }
}
