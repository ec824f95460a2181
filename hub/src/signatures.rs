//! Signature badges, checked by the hub itself: when a cosign-style signature tag
//! (`sha256-<hex>.sig`) is pushed to a repository, each of its signature layers is verified
//! against the repository owner's registered keys ([`crate::keys`]); what verified is stored
//! and shown per version as "signed by key SHA256:… (alice's key)". A version without a
//! verified signature is "unsigned": the hub never repeats a claim it did not check.

use base64::Engine as _;
use ebpf_package::signature::{self, PublicKey};
use ebpf_package::spec::COSIGN_SIGNATURE_TAG_SUFFIX;
use oci_client::manifest::OciImageManifest;
use serde_json::{json, Value};

use crate::db::VerifiedSignature;
use crate::error::HubResult;
use crate::AppState;

/// The digest a `sha256-<hex>.sig` tag holds signatures of; None for other tags.
pub fn signed_digest(tag: &str) -> Option<String> {
    digest_of_tag(tag, COSIGN_SIGNATURE_TAG_SUFFIX)
}

/// `sha256-<hex>SUFFIX` → `sha256:<hex>` (cosign's tag schema for signatures and
/// attestations); None for other tags.
pub fn digest_of_tag(tag: &str, suffix: &str) -> Option<String> {
    let hex = tag.strip_prefix("sha256-")?.strip_suffix(suffix)?;
    let digest = format!("sha256:{hex}");
    ebpf_package::digest::hex_part(&digest)
        .is_ok()
        .then_some(digest)
}

/// Verifies every signature layer of the `.sig` manifest `manifest` (pushed to `repo`,
/// signing `subject`) against the repository owner's keys, and records what verified.
/// Signatures that do not verify are no error: the push stands, the version just gets no
/// badge from them (clients verify for themselves with `cargo ebpf trust`).
pub async fn check_pushed(
    app: &AppState,
    repo: &str,
    subject: &str,
    manifest: &[u8],
) -> HubResult<usize> {
    let Ok(manifest) = serde_json::from_slice::<OciImageManifest>(manifest) else {
        return Ok(0);
    };
    let owner = repo.split('/').next().unwrap_or("");
    let keys = app.db.keys(owner).await?;
    let mut verified = 0;
    for layer in signature::signature_layers(&manifest) {
        let Ok(sig) =
            base64::engine::general_purpose::STANDARD.decode(layer.signature_base64.trim())
        else {
            continue;
        };
        // The payload blob is in the repository: the manifest's references were checked.
        let payload = app
            .blobs
            .read(&layer.descriptor.digest)
            .await
            .map_err(crate::error::HubError::internal)?;
        for key in &keys {
            let Ok(public) = PublicKey::from_pem(&key.pem) else {
                continue;
            };
            if signature::verify(&payload, &sig, &public, subject).is_ok() {
                let found = VerifiedSignature {
                    subject_digest: subject.to_string(),
                    fingerprint: key.fingerprint.clone(),
                    key_owner: owner.to_string(),
                    key_label: key.label.clone(),
                };
                app.db.add_verified_signature(repo, &found).await?;
                verified += 1;
            }
        }
    }
    Ok(verified)
}

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
