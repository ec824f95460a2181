//! Mirrors: other registries holding the same repositories, tried in order when a
//! registry fails (`[[registry]] prefix = "HOST"`, `mirrors = [...]` in config.toml, or
//! `--mirror HOST` for one command), and `mirror SRC DEST`, which fills one: every
//! platform, signature and attestation of a package copied byte for byte, so digests and
//! signatures still hold on the copy (the way to feed an air-gapped registry).
//!
//! A mirror is not trusted: what it serves must be pinned, either by the digest in the
//! reference or by a signature that the trust policy's keys for the *original* reference
//! verify. Anything else is refused, so a mirror cannot substitute a package.

use oci_client::manifest::{OciDescriptor, OciImageIndex};

use ebpf_package::blob::{parse_manifest, Blob};
use ebpf_package::{Error, ErrorKind, Reference, Result};

use crate::config::Config;
use crate::registry::Registry;
use crate::signing::{self, Gate};
use crate::trust::Policy;

/// The mirrors to try for `host`: the command's `--mirror`s, else the configured ones.
pub fn for_host(registry: &Registry, host: &str) -> Result<Vec<String>> {
    match &registry.options().mirrors {
        Some(list) => Ok(list.clone()),
        None => Ok(Config::load()?.mirrors_of(host)),
    }
}

/// `reference` as held by `mirror` (`HOST[:PORT][/PREFIX]`): the same repository path,
/// tag and digest under the mirror.
pub fn on_mirror(reference: &Reference, mirror: &str) -> Result<Reference> {
    let base = format!(
        "{}/{}",
        mirror.trim_end_matches('/'),
        reference.repository()
    );
    let base = Reference::parse(&base).map_err(|e| {
        e.with_help(format!(
            "mirrors are HOST[:PORT] or HOST[:PORT]/PREFIX; check {mirror:?} in config.toml or --mirror"
        ))
    })?;
    Ok(match (reference.digest(), reference.tag()) {
        (Some(digest), _) => base.with_digest(digest),
        (None, Some(tag)) => base.with_tag(tag),
        (None, None) => base,
    })
}

/// The trust gate for `reference` served by `source` on a mirror: pinned by the
/// reference's digest or by a trusted signature, else refused.
pub fn gate(registry: &Registry, reference: &Reference, source: &Reference) -> Result<Gate> {
    let trusted = Policy::load()?.keys_for(reference)?.is_some();
    if !trusted && reference.digest().is_none() {
        return Err(Error::integrity(format!(
            "cannot check what the mirror {} serves for {reference}: no trusted key covers it and it names no digest",
            source.registry()
        ))
        .with_help(format!(
            "pin it by digest ({}@sha256:…), or trust its publisher's key (`trust add {}/… --key PUB`); a mirror's content must be verifiable as the primary's would be",
            reference,
            reference.registry()
        )));
    }
    signing::gate_via(registry, reference, source)
}

/// Whether a failure of the primary registry should send the pull to its mirrors: it
/// could not be reached or answered with an error, not a refusal of the content.
pub fn worth_a_mirror(e: &Error) -> bool {
    e.kind == ErrorKind::Registry
}

/// What `mirror` copied.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Copied {
    /// Destination references, one per copied tag.
    pub references: Vec<String>,
    /// Manifests copied (packages, platforms, signatures, attestations).
    pub manifests: usize,
    /// `.sig` and `.att` tags among them.
    pub signature_tags: Vec<String>,
}

/// Copies `source` (one tag or digest) to `dest` (`HOST[:PORT][/PREFIX]`): its platform
/// manifests, the index, and every `sha256-<hex>.sig`/`.att` tag of each copied digest.
pub fn copy(registry: &Registry, source: &Reference, dest: &str, out: &mut Copied) -> Result<()> {
    let target = on_mirror(source, dest)?;
    let (bytes, digest) = registry.fetch_manifest(source)?.ok_or_else(|| {
        Error::registry(format!("{source} not found on {}", source.registry()))
            .with_help("check the repository name and tag")
    })?;
    let mut digests = vec![digest.clone()];
    if let Some(index) = as_index(&bytes)? {
        for entry in &index.manifests {
            copy_manifest(
                registry,
                &source.with_digest(&entry.digest),
                &target.with_digest(&entry.digest),
            )?;
            out.manifests += 1;
            digests.push(entry.digest.clone());
        }
        registry.push_raw(&target, &[], &bytes, true)?;
    } else {
        copy_manifest(registry, source, &target)?;
    }
    out.manifests += 1;
    out.references.push(target.to_string());
    copy_signature_tags(registry, source, &target, &digests, out)
}

/// The `.sig`/`.att` tags of `digests` in `source`'s repository, copied to `target`'s.
fn copy_signature_tags(
    registry: &Registry,
    source: &Reference,
    target: &Reference,
    digests: &[String],
    out: &mut Copied,
) -> Result<()> {
    let tags = registry.list_tags(source)?;
    for tag in tags.iter().filter(|t| is_signature_tag_of(t, digests)) {
        copy_manifest(registry, &source.with_tag(tag), &target.with_tag(tag))?;
        out.manifests += 1;
        out.signature_tags.push(tag.clone());
    }
    Ok(())
}

/// `sha256-<hex>.sig` or `sha256-<hex>.att` for one of `digests`.
pub fn is_signature_tag_of(tag: &str, digests: &[String]) -> bool {
    let Some((hex, kind)) = tag.strip_prefix("sha256-").and_then(|t| t.split_once('.')) else {
        return false;
    };
    matches!(kind, "sig" | "att")
        && digests
            .iter()
            .any(|d| d.strip_prefix("sha256:") == Some(hex))
}

/// One image manifest with its config and layers, byte for byte.
fn copy_manifest(registry: &Registry, from: &Reference, to: &Reference) -> Result<()> {
    let (bytes, _) = registry
        .fetch_manifest(from)?
        .ok_or_else(|| Error::registry(format!("{from} not found on {}", from.registry())))?;
    let manifest = parse_manifest(&bytes)?;
    let mut blobs = vec![];
    for descriptor in std::iter::once(&manifest.config).chain(&manifest.layers) {
        blobs.push(fetch(registry, from, descriptor)?);
    }
    let refs: Vec<&Blob> = blobs.iter().collect();
    registry.push_raw(to, &refs, &bytes, false)?;
    Ok(())
}

fn fetch(registry: &Registry, from: &Reference, descriptor: &OciDescriptor) -> Result<Blob> {
    Ok(Blob {
        descriptor: descriptor.clone(),
        data: registry.fetch_blob(from, descriptor)?,
    })
}

fn as_index(bytes: &[u8]) -> Result<Option<OciImageIndex>> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::input("the manifest is not valid JSON").with_source(e))?;
    if value.get("manifests").is_none() {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| Error::input("the image index is not valid").with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_references_keep_the_repository_and_pin() {
        let r = Reference::parse("ghcr.io/alice/snoop:0.1.0").unwrap();
        assert_eq!(
            on_mirror(&r, "127.0.0.1:5001").unwrap().to_string(),
            "127.0.0.1:5001/alice/snoop:0.1.0"
        );
        assert_eq!(
            on_mirror(&r, "mirror.example/cache/").unwrap().to_string(),
            "mirror.example/cache/alice/snoop:0.1.0"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let pinned = on_mirror(&r.with_digest(&d), "127.0.0.1:5001").unwrap();
        assert_eq!(pinned.digest(), Some(d.as_str()));
        assert!(on_mirror(&r, "Bad Host").is_err());
    }

    #[test]
    fn only_signature_and_attestation_tags_of_copied_digests_come_along() {
        let d = format!("sha256:{}", "b".repeat(64));
        let digests = [d.clone()];
        let hex = "b".repeat(64);
        assert!(is_signature_tag_of(&format!("sha256-{hex}.sig"), &digests));
        assert!(is_signature_tag_of(&format!("sha256-{hex}.att"), &digests));
        assert!(!is_signature_tag_of(
            &format!("sha256-{hex}.sbom"),
            &digests
        ));
        assert!(!is_signature_tag_of(
            &format!("sha256-{}.sig", "c".repeat(64)),
            &digests
        ));
        assert!(!is_signature_tag_of("0.1.0", &digests));
    }
}
