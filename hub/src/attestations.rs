//! Kernel-matrix badges, checked by the hub itself: when a cosign-style attestation tag
//! (`sha256-<hex>.att`) is pushed, each kernel-matrix statement in it is verified against
//! the repository owner's registered keys (DSSE signature over the statement, subject = the
//! tagged digest) and, when one verifies, stored for the version page ("tested on N
//! kernels") and the search filter "loads on kernel ≥ X". Statements that do not verify
//! are ignored: the push stands, the hub just repeats nothing it did not check.

use ebpf_package::kernel_matrix::{loads_from, KernelMatrix};
use ebpf_package::provenance::{self, Envelope};
use ebpf_package::signature::PublicKey;
use ebpf_package::spec::{COSIGN_ATTESTATION_TAG_SUFFIX, KERNEL_MATRIX_PREDICATE_TYPE};
use oci_client::manifest::OciImageManifest;

use crate::db::MatrixRow;
use crate::error::{HubError, HubResult};
use crate::AppState;

/// The digest a `sha256-<hex>.att` tag holds attestations of; None for other tags.
pub fn attested_digest(tag: &str) -> Option<String> {
    crate::signatures::digest_of_tag(tag, COSIGN_ATTESTATION_TAG_SUFFIX)
}

/// Verifies the kernel-matrix statements of the `.att` manifest `manifest` (pushed to
/// `repo`, about `subject`) and records the newest one that verifies. Returns 1 when one did.
pub async fn check_pushed(
    app: &AppState,
    repo: &str,
    subject: &str,
    manifest: &[u8],
) -> HubResult<usize> {
    let Ok(manifest) = serde_json::from_slice::<OciImageManifest>(manifest) else {
        return Ok(0);
    };
    let Ok(layers) = provenance::attestation_layers(&manifest, KERNEL_MATRIX_PREDICATE_TYPE) else {
        return Ok(0);
    };
    let owner = repo.split('/').next().unwrap_or("");
    let keys: Vec<(String, PublicKey)> = app
        .db
        .keys(owner)
        .await?
        .into_iter()
        .filter_map(|k| Some((k.fingerprint, PublicKey::from_pem(&k.pem).ok()?)))
        .collect();
    // Newest first: the last statement appended is the one that counts.
    for layer in layers.iter().rev() {
        // The envelope blob is in the repository: the manifest's references were checked.
        let bytes = app
            .blobs
            .read(&layer.digest)
            .await
            .map_err(HubError::internal)?;
        let Ok(envelope) = Envelope::parse(&bytes) else {
            continue;
        };
        for (fingerprint, key) in &keys {
            let Ok(statement) = envelope.verify(key, subject) else {
                continue;
            };
            if statement.predicate_type != KERNEL_MATRIX_PREDICATE_TYPE {
                continue;
            }
            let Ok(matrix) = KernelMatrix::from_predicate(&statement.predicate) else {
                continue;
            };
            let row = MatrixRow {
                subject_digest: subject.to_string(),
                fingerprint: fingerprint.clone(),
                key_owner: owner.to_string(),
                matrix: statement.predicate.to_string(),
                loads_from: loads_from(&matrix),
            };
            app.db.record_kernel_matrix(repo, &row).await?;
            return Ok(1);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebpf_package::kernel_matrix::{series_text, KernelResult, Outcome};

    fn matrix(rows: &[(&str, Outcome)]) -> KernelMatrix {
        KernelMatrix {
            package: "p".into(),
            digest: None,
            tool: "t".into(),
            kernels: rows
                .iter()
                .map(|(series, result)| KernelResult {
                    kernel: format!("{series}.0-1-amd64"),
                    series: series.to_string(),
                    arch: "x86_64".into(),
                    result: *result,
                    reason: None,
                    duration_ms: None,
                })
                .collect(),
        }
    }

    #[test]
    fn loads_from_the_oldest_series_of_the_passing_run() {
        use Outcome::*;
        let m = matrix(&[("5.10", Fail), ("6.1", Pass), ("6.12", Pass)]);
        assert_eq!(loads_from(&m).map(series_text).as_deref(), Some("6.1"));
        let m = matrix(&[("5.10", Pass), ("6.1", Pass), ("6.12", Pass)]);
        assert_eq!(loads_from(&m), Some(5010));
        let m = matrix(&[("5.10", Pass), ("6.12", Fail)]);
        assert_eq!(loads_from(&m), None);
        assert_eq!(
            attested_digest(&format!("sha256-{}.att", "a".repeat(64))).map(|d| d.len()),
            Some(71)
        );
        assert_eq!(attested_digest("sha256-abc.sig"), None);
    }
}
