//! Provenance: where a package came from, as a signed SLSA provenance statement stored the
//! way cosign stores attestations (see docs/signing.md).
//!
//! An in-toto statement (`_type` [`spec::IN_TOTO_STATEMENT_V1`]) names the package manifest
//! by digest as its subject and carries a SLSA v1 predicate: the source repository, commit
//! and whether the tree was dirty, the `ebpf.toml` digest, the builder (this host, or the
//! container image by digest) and the tool versions and command of the build. It travels in
//! a DSSE envelope whose signature covers the PAE of the statement. No network here: the
//! runner stores and fetches envelopes.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use oci_client::manifest::{OciDescriptor, OciImageManifest};

use crate::blob::Blob;
use crate::signature::{self, PrivateKey, PublicKey};
use crate::spec;
use crate::{Error, Result};

/// What the developer side knows about a build, turned into a predicate by
/// [`Statement::provenance`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildFacts {
    /// The repository's `origin` URL (or its path when it has none).
    pub repository: Option<String>,
    pub commit: Option<String>,
    /// Uncommitted changes in the tree at build time.
    pub dirty: bool,
    /// `sha256:…` of `ebpf.toml`.
    pub manifest_digest: String,
    /// `host:<hostname>`, or the container image by digest for `--container` builds.
    pub builder: String,
    /// Tool name → version (`clang`, `bpftool`, `libbpf`).
    pub tools: BTreeMap<String, String>,
    /// The command that built it, as typed.
    pub command: Vec<String>,
}

/// An in-toto v1 statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Statement {
    /// A SLSA v1 provenance statement about `subjects` (`(name, sha256:…)`: the pushed
    /// manifest or index, and each platform manifest of an index).
    pub fn provenance(subjects: &[(String, String)], facts: &BuildFacts) -> Result<Statement> {
        let predicate = serde_json::json!({
            "buildDefinition": {
                "buildType": spec::SLSA_BUILD_TYPE,
                "externalParameters": {
                    "source": {
                        "repository": facts.repository,
                        "commit": facts.commit,
                        "dirty": facts.dirty,
                    },
                    "manifest": {"path": "ebpf.toml", "digest": facts.manifest_digest},
                    "command": facts.command,
                },
                "internalParameters": {"tools": facts.tools},
            },
            "runDetails": {"builder": {"id": facts.builder}},
        });
        Statement::new(subjects, spec::SLSA_PROVENANCE_V1, predicate)
    }

    /// An in-toto v1 statement with any predicate (provenance, a kernel matrix, …).
    pub fn new(
        subjects: &[(String, String)],
        predicate_type: &str,
        predicate: serde_json::Value,
    ) -> Result<Statement> {
        let subject = subjects
            .iter()
            .map(|(name, digest)| {
                Ok(Subject {
                    name: name.clone(),
                    digest: BTreeMap::from([("sha256".to_string(), sha256_hex(digest)?.into())]),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Statement {
            statement_type: spec::IN_TOTO_STATEMENT_V1.into(),
            subject,
            predicate_type: predicate_type.into(),
            predicate,
        })
    }

    /// Whether the statement's subject is the manifest `digest`.
    pub fn covers(&self, digest: &str) -> bool {
        let Ok(hex) = sha256_hex(digest) else {
            return false;
        };
        self.subject
            .iter()
            .any(|s| s.digest.get("sha256").is_some_and(|d| d == hex))
    }

    /// The build facts back out of a provenance predicate (for `inspect`).
    pub fn facts(&self) -> BuildFacts {
        let p = &self.predicate;
        let params = &p["buildDefinition"]["externalParameters"];
        let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
        BuildFacts {
            repository: text(&params["source"]["repository"]),
            commit: text(&params["source"]["commit"]),
            dirty: params["source"]["dirty"].as_bool().unwrap_or(false),
            manifest_digest: text(&params["manifest"]["digest"]).unwrap_or_default(),
            builder: text(&p["runDetails"]["builder"]["id"]).unwrap_or_default(),
            tools: serde_json::from_value(
                p["buildDefinition"]["internalParameters"]["tools"].clone(),
            )
            .unwrap_or_default(),
            command: serde_json::from_value(params["command"].clone()).unwrap_or_default(),
        }
    }
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 of the statement JSON.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    /// Base64 of the DER ECDSA signature over the PAE.
    pub sig: String,
}

/// DSSE's pre-authentication encoding: what is actually signed.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

impl Envelope {
    /// `statement` signed with `key`.
    pub fn sign(statement: &Statement, key: &PrivateKey) -> Result<Envelope> {
        let body = serde_json::to_vec(statement)
            .map_err(|e| Error::input("cannot serialize the statement").with_source(e))?;
        let sig = key.sign(&pae(spec::DSSE_PAYLOAD_TYPE_IN_TOTO, &body));
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(Envelope {
            payload_type: spec::DSSE_PAYLOAD_TYPE_IN_TOTO.into(),
            payload: b64.encode(body),
            signatures: vec![EnvelopeSignature {
                keyid: String::new(),
                sig: b64.encode(sig),
            }],
        })
    }

    pub fn parse(bytes: &[u8]) -> Result<Envelope> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::integrity("the attestation is not a DSSE envelope")
                .with_source(e)
                .with_help("re-publish the package with `cargo ebpf publish --sign KEY`")
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }

    /// The statement inside, unverified (for display).
    pub fn statement(&self) -> Result<Statement> {
        let body = base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .map_err(|e| tampered("its payload is not base64").with_source(e))?;
        serde_json::from_slice(&body)
            .map_err(|e| tampered("its payload is not an in-toto statement").with_source(e))
    }

    /// The statement, once a signature by `key` over its PAE checks out and its subject is
    /// the manifest `digest`; an Integrity error saying which check failed otherwise.
    pub fn verify(&self, key: &PublicKey, digest: &str) -> Result<Statement> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = b64
            .decode(&self.payload)
            .map_err(|e| tampered("its payload is not base64").with_source(e))?;
        let signed = pae(&self.payload_type, &body);
        let good = self.signatures.iter().any(|s| {
            b64.decode(&s.sig)
                .is_ok_and(|sig| key.accepts(&signed, &sig))
        });
        if !good {
            return Err(tampered(
                "no signature on the provenance attestation is by this key over its content",
            ));
        }
        let statement = self.statement()?;
        if statement.statement_type != spec::IN_TOTO_STATEMENT_V1
            && statement.statement_type != IN_TOTO_STATEMENT_V01
        {
            return Err(tampered(&format!(
                "the attestation is not an in-toto statement (_type {:?})",
                statement.statement_type
            )));
        }
        if !statement.covers(digest) {
            return Err(tampered(&format!(
                "the provenance attestation is about another package, not {digest}"
            )));
        }
        Ok(statement)
    }
}

/// cosign has also written in-toto v0.1 statements; they verify the same way.
const IN_TOTO_STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";

fn tampered(message: &str) -> Error {
    Error::integrity(message.to_string()).with_help(
        "do not trust this package's provenance: re-publish it with `cargo ebpf publish --sign \
         KEY`, or check that you passed the publisher's public key",
    )
}

fn sha256_hex(digest: &str) -> Result<&str> {
    digest.strip_prefix("sha256:").ok_or_else(|| {
        Error::input(format!("not a sha256 digest: {digest}"))
            .with_help("pass a manifest digest such as sha256:0123…")
    })
}

/// The tag cosign stores attestations of the manifest `digest` under: `sha256-<hex>.att`.
pub fn attestation_tag(digest: &str) -> Result<String> {
    Ok(format!(
        "sha256-{}{}",
        sha256_hex(digest)?,
        spec::COSIGN_ATTESTATION_TAG_SUFFIX
    ))
}

/// Bounds on what a `.att` manifest may make us fetch: a hostile registry could list
/// thousands of layers or claim huge ones.
pub const MAX_ATTESTATIONS: usize = 32;
pub const MAX_ENVELOPE_SIZE: i64 = 1 << 20;

/// The layer holding `envelope` in a `.att` manifest, annotated with its predicate type
/// (and the empty cosign signature annotation cosign writes: the signature is inside).
pub fn attestation_layer(envelope: &Envelope, predicate_type: &str) -> Blob {
    let mut blob = Blob::new(spec::MEDIA_TYPE_DSSE_ENVELOPE, envelope.to_bytes());
    blob.descriptor.annotations = Some(
        [
            (
                spec::ANNOTATION_PREDICATE_TYPE.to_string(),
                predicate_type.to_string(),
            ),
            (spec::ANNOTATION_COSIGN_SIGNATURE.to_string(), String::new()),
        ]
        .into(),
    );
    blob
}

/// The envelope layers of a `.att` manifest whose predicate type is `predicate_type`,
/// refused when there are too many or one claims to be too large.
pub fn attestation_layers(
    manifest: &OciImageManifest,
    predicate_type: &str,
) -> Result<Vec<OciDescriptor>> {
    let layers: Vec<OciDescriptor> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == spec::MEDIA_TYPE_DSSE_ENVELOPE)
        .filter(|l| {
            l.annotations
                .as_ref()
                .and_then(|a| a.get(spec::ANNOTATION_PREDICATE_TYPE))
                .is_some_and(|t| t == predicate_type)
        })
        .cloned()
        .collect();
    if layers.len() > MAX_ATTESTATIONS {
        return Err(Error::integrity(format!(
            "the attestation manifest lists {} {predicate_type} attestations (at most {MAX_ATTESTATIONS} are read)",
            layers.len()
        ))
        .with_help("the registry holds a hostile or broken .att manifest; ask the publisher to re-attest"));
    }
    if let Some(big) = layers
        .iter()
        .find(|l| l.size > MAX_ENVELOPE_SIZE || l.size < 0)
    {
        return Err(Error::integrity(format!(
            "an attestation claims {} bytes (at most {MAX_ENVELOPE_SIZE})",
            big.size
        ))
        .with_help(
            "the registry holds a hostile or broken .att manifest; ask the publisher to re-attest",
        ));
    }
    Ok(layers)
}

/// The `.att` manifest and its config after adding `layer` to `existing` (if any).
pub fn attestation_manifest(
    existing: Option<&OciImageManifest>,
    layer: &Blob,
) -> (OciImageManifest, Blob) {
    signature::append_layer(existing, &layer.descriptor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn facts() -> BuildFacts {
        BuildFacts {
            repository: Some("https://example.com/demo.git".into()),
            commit: Some("4b825dc642cb6eb9a060e54bf8d69288fbee4904".into()),
            dirty: true,
            manifest_digest: "sha256:ab".into(),
            builder: "host:buildbox".into(),
            tools: BTreeMap::from([("clang".into(), "16.0.6".into())]),
            command: vec!["cargo".into(), "ebpf".into(), "publish".into()],
        }
    }

    #[test]
    fn pae_is_the_dsse_encoding() {
        assert_eq!(pae("t", b"body"), b"DSSEv1 1 t 4 body");
    }

    #[test]
    fn a_signed_statement_verifies_and_round_trips_its_facts() {
        let key = PrivateKey::generate();
        let statement = Statement::provenance(&[("demo".into(), DIGEST.into())], &facts()).unwrap();
        let envelope = Envelope::sign(&statement, &key).unwrap();
        let back = Envelope::parse(&envelope.to_bytes()).unwrap();
        let verified = back.verify(&key.public_key(), DIGEST).unwrap();
        assert_eq!(verified.facts(), facts());
        assert_eq!(verified.statement_type, spec::IN_TOTO_STATEMENT_V1);
        assert_eq!(verified.subject[0].digest["sha256"], &DIGEST[7..]);
        assert_eq!(
            attestation_tag(DIGEST).unwrap(),
            format!("sha256-{}.att", &DIGEST[7..])
        );
    }

    #[test]
    fn tampering_wrong_keys_and_other_subjects_are_integrity_errors() {
        let key = PrivateKey::generate();
        let statement = Statement::provenance(&[("demo".into(), DIGEST.into())], &facts()).unwrap();
        let mut envelope = Envelope::sign(&statement, &key).unwrap();
        let other = DIGEST.replace("0123", "ffff");
        let err = envelope.verify(&key.public_key(), &other).unwrap_err();
        assert!(err.message.contains("another package"), "{}", err.message);
        let err = envelope
            .verify(&PrivateKey::generate().public_key(), DIGEST)
            .unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity);
        let mut forged = statement.clone();
        forged.predicate["runDetails"]["builder"]["id"] = "host:evil".into();
        envelope.payload =
            base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&forged).unwrap());
        let err = envelope.verify(&key.public_key(), DIGEST).unwrap_err();
        assert!(err.message.contains("no signature"), "{}", err.message);
    }

    #[test]
    fn a_statement_covers_each_subject_and_names_its_predicate() {
        let other = DIGEST.replace("0123", "abcd");
        let subjects = [
            ("r".to_string(), DIGEST.to_string()),
            ("r".into(), other.clone()),
        ];
        let statement = Statement::provenance(&subjects, &facts()).unwrap();
        assert!(statement.covers(DIGEST) && statement.covers(&other));
        assert!(!statement.covers(&DIGEST.replace("0123", "9999")));
        assert_eq!(statement.predicate_type, spec::SLSA_PROVENANCE_V1);
        assert!(Statement::provenance(&[("r".into(), "md5:00".into())], &facts()).is_err());
    }

    #[test]
    fn attestation_layers_are_filtered_by_type_and_bounded() {
        let key = PrivateKey::generate();
        let statement = Statement::provenance(&[("r".into(), DIGEST.into())], &facts()).unwrap();
        let envelope = Envelope::sign(&statement, &key).unwrap();
        let layer = attestation_layer(&envelope, spec::SLSA_PROVENANCE_V1);
        let (manifest, _) = attestation_manifest(None, &layer);
        let (manifest, _) = attestation_manifest(Some(&manifest), &layer);
        assert_eq!(
            manifest.layers.len(),
            1,
            "the same layer is not added twice"
        );
        let found = attestation_layers(&manifest, spec::SLSA_PROVENANCE_V1).unwrap();
        assert_eq!(found.len(), 1);
        assert!(attestation_layers(&manifest, "https://example.com/other")
            .unwrap()
            .is_empty());

        let mut huge = manifest.clone();
        huge.layers[0].size = MAX_ENVELOPE_SIZE + 1;
        let err = attestation_layers(&huge, spec::SLSA_PROVENANCE_V1).unwrap_err();
        assert!(err.message.contains("claims"), "{}", err.message);
        let mut many = manifest.clone();
        many.layers = vec![manifest.layers[0].clone(); MAX_ATTESTATIONS + 1];
        let err = attestation_layers(&many, spec::SLSA_PROVENANCE_V1).unwrap_err();
        assert!(err.message.contains("at most"), "{}", err.message);
    }

    #[test]
    fn a_statement_of_another_type_is_refused() {
        let key = PrivateKey::generate();
        let mut statement =
            Statement::provenance(&[("r".into(), DIGEST.into())], &facts()).unwrap();
        statement.statement_type = "https://example.com/not-in-toto".into();
        let envelope = Envelope::sign(&statement, &key).unwrap();
        let err = envelope.verify(&key.public_key(), DIGEST).unwrap_err();
        assert!(
            err.message.contains("not an in-toto statement"),
            "{}",
            err.message
        );
    }
}
