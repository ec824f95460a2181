//! Signature badges, checked by the hub itself: when a cosign-style signature tag
//! (`sha256-<hex>.sig`) is pushed to a repository, each of its signature layers is verified
//! against the repository owner's registered keys ([`crate::keys`]); what verified is stored
//! and shown per version as "signed by key SHA256:… (alice's key)". A version without a
//! verified signature is "unsigned": the hub never repeats a claim it did not check.

use serde_json::{json, Value};

use crate::db::VerifiedSignature;

/// What a badge says, e.g. `signed by key SHA256:ab… (alice's key)`.
pub fn badge_text(s: &VerifiedSignature) -> String {
    let whose = match s.key_label.as_str() {
        "" => format!("{}'s key", s.key_owner),
        label => format!("{}'s key \"{label}\"", s.key_owner),
    };
    format!("signed by key {} ({whose})", s.fingerprint)
}

/// The badges of the manifest `digest`, from `all` of its repository's verified signatures.
pub fn badges(all: &[VerifiedSignature], digest: &str) -> Vec<Value> {
    all.iter()
        .filter(|s| s.subject_digest == digest)
        .map(|s| {
            json!({
                "fingerprint": s.fingerprint, "key_owner": s.key_owner,
                "key_label": s.key_label, "text": badge_text(s),
            })
        })
        .collect()
}
