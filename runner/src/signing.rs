//! Signatures on a registry, stored as cosign does: `sign` adds a signature layer under
//! the tag `sha256-<hex>.sig`, `verify` checks the digest chain (tag → digest D → signed
//! payload naming D), and [`gate`] applies the trust policy before a pull stores anything.
//!
//! Only the registry being pulled from is consulted (no transparency log), so verification
//! works offline and air-gapped.

use oci_client::manifest::OciImageIndex;

use ebpf_package::blob::parse_manifest;
use ebpf_package::signature::{
    self, Payload, PrivateKey, PublicKey, Signature, StoredSignature, Verified,
};
use ebpf_package::{Error, Reference, Result};

use crate::registry::Registry;
use crate::trust::Policy;

/// Signs what `reference` points at: the manifest, or an index and each of its platform
/// manifests. Returns the signed digests, the tag's first.
pub fn sign(registry: &Registry, reference: &Reference, key: &PrivateKey) -> Result<Vec<String>> {
    let (bytes, digest) = resolve(registry, reference)?;
    let mut digests = vec![digest];
    digests.extend(platform_digests(&bytes)?);
    for d in &digests {
        sign_digest(registry, reference, d, key)?;
    }
    Ok(digests)
}

/// Adds a signature for `digest` to the `.sig` manifest of `reference`'s repository.
fn sign_digest(
    registry: &Registry,
    reference: &Reference,
    digest: &str,
    key: &PrivateKey,
) -> Result<()> {
    let payload = Payload::new(&repository_name(reference), digest);
    let sig = Signature::create(key, payload);
    let sig_ref = reference.with_tag(&signature::signature_tag(digest)?);
    let existing = match registry.fetch_manifest(&sig_ref)? {
        Some((bytes, _)) => Some(parse_manifest(&bytes)?),
        None => None,
    };
    let (manifest, config) = signature::signature_manifest(existing.as_ref(), &sig);
    let layer = sig.layer();
    let bytes = serde_json::to_vec(&manifest).expect("a manifest serializes");
    registry.push_manifest_with_blobs(&sig_ref, &[&config, &layer], &bytes)?;
    Ok(())
}

/// Verifies that one of `keys` signed what `reference` points at now. Returns the digest
/// the signature covers, so the caller can pull exactly that.
pub fn verify(
    registry: &Registry,
    reference: &Reference,
    keys: &[PublicKey],
) -> Result<(String, Verified)> {
    let (_, digest) = resolve(registry, reference)?;
    let signatures = signatures_of(registry, reference, &digest)?;
    let verified = signature::verify_any(&reference.to_string(), &digest, &signatures, keys)?;
    Ok((digest, verified))
}

/// The signatures stored for `digest`; blobs are checked against their digests, so a
/// changed payload layer is an integrity error here.
fn signatures_of(
    registry: &Registry,
    reference: &Reference,
    digest: &str,
) -> Result<Vec<StoredSignature>> {
    let sig_ref = reference.with_tag(&signature::signature_tag(digest)?);
    let Some((bytes, _)) = registry.fetch_manifest(&sig_ref)? else {
        return Ok(vec![]);
    };
    let manifest = parse_manifest(&bytes)?;
    signature::signature_layers(&manifest)
        .into_iter()
        .map(|layer| {
            Ok(StoredSignature {
                payload: registry
                    .fetch_blob(&sig_ref, &layer.descriptor)?
                    .bytes()?
                    .into_owned(),
                signature_base64: layer.signature_base64,
            })
        })
        .collect()
}

/// What a pull should fetch after the trust policy has been applied.
pub struct Gate {
    /// `reference` pinned to the verified digest, or `reference` itself when unverified.
    pub pull: Reference,
    /// Fingerprint of the key that verified, if any.
    pub verified_by: Option<String>,
}

/// Applies the trust policy to `reference` before anything is downloaded or stored:
/// inside a trusted scope a valid signature by one of its keys is required; outside,
/// unsigned packages pass with a warning unless signatures are required.
pub fn gate(registry: &Registry, reference: &Reference) -> Result<Gate> {
    gate_via(registry, reference, reference)
}

/// [`gate`] for `reference` served by `source` (a mirror holding the same repository): the
/// policy and its keys are `reference`'s, the manifest and signatures are read from
/// `source`, and the pull is pinned to the digest they verify, so a mirror cannot
/// substitute anything that a trusted key did not sign.
pub fn gate_via(registry: &Registry, reference: &Reference, source: &Reference) -> Result<Gate> {
    let policy = Policy::load()?;
    match policy.keys_for(reference)? {
        Some((scope, keys)) => {
            let (digest, verified) = verify(registry, source, &keys).map_err(|e| {
                let help = format!(
                    "{reference} is in the trusted scope {scope}; nothing was stored. {}",
                    e.help.clone().unwrap_or_default()
                );
                e.with_help(help)
            })?;
            eprintln!(
                "    Verified {reference} ({digest}) signed by {}",
                verified.fingerprint
            );
            Ok(Gate {
                pull: source.with_digest(&digest),
                verified_by: Some(verified.fingerprint),
            })
        }
        None if policy.require_signed || registry.options().require_signed => {
            Err(Error::integrity(format!(
                "{reference} is not signed by a trusted key (unverified), and signed packages are required"
            ))
            .with_help(format!(
                "trust its publisher's key for it: `trust add {}/* --key PUB`; nothing was stored",
                reference.registry()
            )))
        }
        None => {
            eprintln!("warning: {reference} is not signed by a trusted key (unverified)");
            Ok(Gate {
                pull: source.clone(),
                verified_by: None,
            })
        }
    }
}

/// The manifest (or index) `reference` points at, with its digest.
fn resolve(registry: &Registry, reference: &Reference) -> Result<(Vec<u8>, String)> {
    registry.fetch_manifest(reference)?.ok_or_else(|| {
        Error::registry(format!("{reference} not found on {}", reference.registry()))
            .with_help("check the repository name and tag (and that it was pushed)")
    })
}

/// The platform manifests of an index; none for a single manifest.
fn platform_digests(bytes: &[u8]) -> Result<Vec<String>> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::input("the manifest is not valid JSON").with_source(e))?;
    if value.get("manifests").is_none() {
        return Ok(vec![]);
    }
    let index: OciImageIndex = serde_json::from_value(value)
        .map_err(|e| Error::input("the image index is not valid").with_source(e))?;
    Ok(index.manifests.into_iter().map(|m| m.digest).collect())
}

/// `REGISTRY/REPO`, the payload's `docker-reference`.
fn repository_name(reference: &Reference) -> String {
    format!("{}/{}", reference.registry(), reference.repository())
}
