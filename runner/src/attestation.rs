//! Attestations on a registry, stored as cosign stores them: DSSE envelopes as layers of the
//! manifest tagged `sha256-<hex>.att` next to what they are about. `attach` adds one signed
//! statement; `verified` finds the statements of one predicate type that a trusted key signed.
//!
//! Like signatures, only the registry being pulled from is consulted, so this works
//! offline. Every envelope is fetched through its descriptor (digest-checked, size-capped).

use ebpf_package::blob::parse_manifest;
use ebpf_package::kernel_matrix::{self, KernelMatrix};
use ebpf_package::provenance::{self, Envelope, Statement};
use ebpf_package::signature::{PrivateKey, PublicKey};
use ebpf_package::spec::KERNEL_MATRIX_PREDICATE_TYPE;
use ebpf_package::{Error, Reference, Result};

use crate::registry::Registry;
use crate::trust::Policy;

/// Signs `statement` with `key` and adds it to the `.att` manifest of `digest` in
/// `reference`'s repository.
pub fn attach(
    registry: &Registry,
    reference: &Reference,
    digest: &str,
    statement: &Statement,
    key: &PrivateKey,
) -> Result<()> {
    let envelope = Envelope::sign(statement, key)?;
    let layer = provenance::attestation_layer(&envelope, &statement.predicate_type);
    let att_ref = reference.with_tag(&provenance::attestation_tag(digest)?);
    let existing = match registry.fetch_manifest(&att_ref)? {
        Some((bytes, _)) => Some(parse_manifest(&bytes)?),
        None => None,
    };
    let (manifest, config) = provenance::attestation_manifest(existing.as_ref(), &layer);
    let bytes = serde_json::to_vec(&manifest).expect("a manifest serializes");
    registry.push_manifest_with_blobs(&att_ref, &[&config, &layer], &bytes)?;
    Ok(())
}

/// The `predicate_type` envelopes stored for `digest`, unverified (none when there is no
/// `.att` tag).
pub fn envelopes(
    registry: &Registry,
    reference: &Reference,
    digest: &str,
    predicate_type: &str,
) -> Result<Vec<Envelope>> {
    let att_ref = reference.with_tag(&provenance::attestation_tag(digest)?);
    let Some((bytes, _)) = registry.fetch_manifest(&att_ref)? else {
        return Ok(vec![]);
    };
    let manifest = parse_manifest(&bytes)?;
    provenance::attestation_layers(&manifest, predicate_type)?
        .iter()
        .map(|layer| Envelope::parse(&registry.fetch_blob(&att_ref, layer)?.bytes()?))
        .collect()
}

/// What the attestations of one predicate type say, and who vouches for it.
pub enum Found {
    /// No attestation of that type is stored.
    None,
    /// Statements whose signature one of the keys checked, with the key's fingerprint.
    Verified(Statement, String),
    /// Statements nobody we trust signed (no key given): shown as unverified.
    Unverified(Statement),
}

/// The `predicate_type` attestation of `digest`: with `keys`, one must verify (else an
/// integrity error naming the failure: tampered payload, other key, other subject); without
/// keys, the newest statement is returned unverified, for display.
pub fn find(
    registry: &Registry,
    reference: &Reference,
    digest: &str,
    predicate_type: &str,
    keys: &[PublicKey],
) -> Result<Found> {
    let envelopes = envelopes(registry, reference, digest, predicate_type)?;
    if envelopes.is_empty() {
        return Ok(Found::None);
    }
    if keys.is_empty() {
        let newest = envelopes.last().expect("not empty");
        return Ok(Found::Unverified(newest.statement()?));
    }
    let mut last = None;
    // Newest first: a re-attested digest shows its latest statement.
    for envelope in envelopes.iter().rev() {
        for key in keys {
            match envelope.verify(key, digest) {
                Ok(s) if s.predicate_type == predicate_type => {
                    return Ok(Found::Verified(s, key.fingerprint()))
                }
                // The layer's annotation is not signed; the statement's own type is.
                Ok(s) => {
                    last = Some(Error::integrity(format!(
                        "an attestation filed as {predicate_type} is a signed {} statement",
                        s.predicate_type
                    )))
                }
                Err(e) => last = Some(e),
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::integrity("no attestation verified")))
}

/// What attestations are read about: a manifest of `reference`'s repository by digest, and
/// the trusted keys of its scope, resolved once for every statement read about it.
pub struct Attested<'r> {
    registry: &'r Registry,
    reference: Reference,
    digest: String,
    keys: Vec<PublicKey>,
}

impl<'r> Attested<'r> {
    /// About the manifest `digest` (already known, e.g. just pulled).
    pub fn of_digest(
        registry: &'r Registry,
        reference: &Reference,
        digest: &str,
    ) -> Result<Attested<'r>> {
        let keys = Policy::load()?
            .keys_for(reference)?
            .map(|(_, keys)| keys)
            .unwrap_or_default();
        Ok(Attested {
            registry,
            reference: reference.clone(),
            digest: digest.to_string(),
            keys,
        })
    }

    /// About what `reference` points at now. An unreachable registry (a stored package,
    /// offline) gives `None` with a note: attestations are then not checked.
    pub fn of_reference(
        registry: &'r Registry,
        reference: &Reference,
    ) -> Result<Option<Attested<'r>>> {
        match registry.fetch_manifest(reference) {
            Ok(Some((_, digest))) => Attested::of_digest(registry, reference, &digest).map(Some),
            Ok(None) => Ok(None),
            Err(e) => {
                eprintln!("note: attestations not checked: {}", e.message);
                Ok(None)
            }
        }
    }

    /// The `predicate_type` statement, checked with the scope's trusted keys when it has any
    /// (a failing one is an integrity error), with the fingerprint of the key that verified
    /// it (`None`: no trusted key for the scope, the publisher's unverified claim).
    pub fn statement(&self, predicate_type: &str) -> Result<Option<(Statement, Option<String>)>> {
        let found = find(
            self.registry,
            &self.reference,
            &self.digest,
            predicate_type,
            &self.keys,
        )?;
        Ok(match found {
            Found::None => None,
            Found::Verified(statement, key) => Some((statement, Some(key))),
            Found::Unverified(statement) => Some((statement, None)),
        })
    }

    /// The kernel matrix (`test-kernels`), read as [`Attested::statement`] reads any.
    pub fn kernel_matrix(&self) -> Result<Option<(KernelMatrix, Option<String>)>> {
        self.statement(KERNEL_MATRIX_PREDICATE_TYPE)?
            .map(|(statement, key)| Ok((KernelMatrix::from_predicate(&statement.predicate)?, key)))
            .transpose()
    }
}

/// At pull, before anything loads: a warning when the package's kernel matrix says the
/// running kernel fails. Advisory (the kernel has the last word), so it never fails a pull.
pub fn warn_if_kernel_fails(registry: &Registry, reference: &Reference, digest: &str) {
    let Some((release, arch)) = kernel_matrix::running_kernel() else {
        return;
    };
    let found = Attested::of_digest(registry, reference, digest).and_then(|a| a.kernel_matrix());
    match found {
        Ok(Some((matrix, verified_by))) => {
            if let Some(warning) = matrix.failing_for(&release, &arch) {
                let unverified = match verified_by {
                    Some(_) => "",
                    None => " (unverified: no trusted key for this scope)",
                };
                eprintln!("warning: {}{unverified}; loading anyway", warning.message());
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!(
            "warning: the package's kernel matrix does not verify, so it is ignored: {}",
            e.message
        ),
    }
}
