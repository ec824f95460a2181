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

use crate::signature::{PrivateKey, PublicKey};
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
    /// A SLSA v1 provenance statement for the manifest `digest` (`sha256:…`) named `name`.
    pub fn provenance(name: &str, digest: &str, facts: &BuildFacts) -> Result<Statement> {
        let hex = sha256_hex(digest)?;
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
        Ok(Statement {
            statement_type: spec::IN_TOTO_STATEMENT_V1.into(),
            subject: vec![Subject {
                name: name.into(),
                digest: BTreeMap::from([("sha256".to_string(), hex.to_string())]),
            }],
            predicate_type: spec::SLSA_PROVENANCE_V1.into(),
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
        if !statement.covers(digest) {
            return Err(tampered(&format!(
                "the provenance attestation is about another package, not {digest}"
            )));
        }
        Ok(statement)
    }
}

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
        let statement = Statement::provenance("demo", DIGEST, &facts()).unwrap();
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
        let statement = Statement::provenance("demo", DIGEST, &facts()).unwrap();
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
}
