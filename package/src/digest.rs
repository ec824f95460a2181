//! Content digests (`sha256:<hex>`), the identity of every blob and manifest.

use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// The OCI digest string of `data`.
pub fn sha256(data: &[u8]) -> String {
    of(Sha256::new_with_prefix(data))
}

/// The OCI digest string of what `hasher` was given (for bytes hashed as they stream).
pub fn of(hasher: Sha256) -> String {
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Checks that `data` has digest `expected`; `what` names the content in the error.
pub fn verify(expected: &str, data: &[u8], what: &str) -> Result<()> {
    verify_digest(expected, &sha256(data), what)
}

/// Checks an already computed digest against `expected` (same error as [`verify`]).
pub fn verify_digest(expected: &str, actual: &str, what: &str) -> Result<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(Error::integrity(format!(
            "digest mismatch for {what}: expected {expected}, got {actual}"
        ))
        .with_help("the content was corrupted or tampered with; nothing was stored. Retry, or ask the publisher to push again"))
    }
}

/// The hex part of a `sha256:<hex>` digest, validated (so it is safe as a file name).
pub fn hex_part(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) =>
        {
            Ok(hex)
        }
        _ => Err(Error::input(format!(
            "invalid digest {digest:?}: expected sha256:<64 lowercase hex digits>"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty() {
        assert_eq!(
            sha256(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn verify_detects_mismatch() {
        let d = sha256(b"abc");
        assert!(verify(&d, b"abc", "blob").is_ok());
        let err = verify(&d, b"abd", "blob").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity);
    }

    #[test]
    fn hex_part_rejects_path_tricks() {
        assert!(hex_part("sha256:../../etc/passwd").is_err());
        assert!(hex_part("md5:abc").is_err());
        assert!(hex_part(&sha256(b"x")).is_ok());
    }
}
