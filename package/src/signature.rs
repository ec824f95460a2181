//! cosign-compatible signatures: keys, the "simple signing" payload, signing and verifying,
//! and the `sha256-<hex>.sig` manifest that stores signatures next to what they sign.
//!
//! Everything here is offline bytes-in/bytes-out so the runner (push/verify), the developer
//! side (`cargo ebpf sign`) and the hub (badges) share one definition. Keys are ECDSA P-256;
//! a signature is ASN.1 DER ECDSA over SHA-256 of the exact payload bytes, which is what
//! cosign writes and checks (see /work/shared/REFERENCE.md, "Signatures and attestations").

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature as EcdsaSignature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::blob::Blob;
use crate::spec::{
    ANNOTATION_COSIGN_SIGNATURE, COSIGN_SIGNATURE_TAG_SUFFIX, COSIGN_SIGNATURE_TYPE,
    MEDIA_TYPE_CONFIG, MEDIA_TYPE_COSIGN_SIMPLESIGNING, MEDIA_TYPE_MANIFEST, SIGNATURE_KEY_HINT,
};
use crate::{cosign_key, digest, Error, Result};

const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;

// ---- keys ----------------------------------------------------------------------------------

/// A private signing key (ECDSA P-256).
#[derive(Clone)]
pub struct PrivateKey(SigningKey);

/// A public verification key (ECDSA P-256), as in a `.pub` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PrivateKey {
    /// A fresh random key from the operating system's RNG.
    pub fn generate() -> PrivateKey {
        PrivateKey(SigningKey::random(&mut rand_core::OsRng))
    }

    /// PKCS#8 PEM: encrypted (PBES2: scrypt + AES-256-CBC) when a password is given.
    pub fn to_pem(&self, password: Option<&str>) -> Result<String> {
        let pem = match password {
            Some(pw) => self
                .0
                .to_pkcs8_encrypted_pem(&mut rand_core::OsRng, pw, LineEnding::LF),
            None => self.0.to_pkcs8_pem(LineEnding::LF),
        }
        .map_err(|e| {
            Error::environment("could not encode the private key")
                .with_source(e.to_string())
                .with_help("this is a bug; please report it")
        })?;
        Ok(pem.to_string())
    }

    /// Reads a PKCS#8 PEM key (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with `password`).
    pub fn from_pem(pem: &str, password: Option<&str>) -> Result<PrivateKey> {
        if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            let Some(pw) = password else {
                return Err(Error::usage("the private key is encrypted and no password was given")
                    .with_help("pass the password on stdin with --password-stdin, or set CARGO_EBPF_KEY_PASSWORD (or COSIGN_PASSWORD)"));
            };
            return SigningKey::from_pkcs8_encrypted_pem(pem, pw)
                .map(PrivateKey)
                .map_err(|e| {
                    Error::auth("could not decrypt the private key: wrong password or damaged key")
                        .with_source(e.to_string())
                        .with_help("check the password (CARGO_EBPF_KEY_PASSWORD, COSIGN_PASSWORD or --password-stdin)")
                });
        }
        if cosign_key::is_cosign_key(pem) {
            let Some(pw) = password else {
                return Err(Error::usage("the cosign private key is encrypted and no password was given")
                    .with_help("set COSIGN_PASSWORD (or CARGO_EBPF_KEY_PASSWORD), or pass it on stdin with --password-stdin"));
            };
            let der = cosign_key::open(pem, pw)?;
            return SigningKey::from_pkcs8_der(&der).map(PrivateKey).map_err(|e| {
                Error::input("the cosign key does not hold an ECDSA P-256 private key")
                    .with_source(e.to_string())
                    .with_help("cosign keys made by `cosign generate-key-pair` are P-256; use one of those")
            });
        }
        SigningKey::from_pkcs8_pem(pem)
            .map(PrivateKey)
            .map_err(|e| {
                Error::input("not an ECDSA P-256 private key in PKCS#8 PEM")
                    .with_source(e.to_string())
                    .with_help(
                        "use a key made by `cargo ebpf key generate PREFIX` (the PREFIX.key file)",
                    )
            })
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.0.verifying_key())
    }

    /// ASN.1 DER ECDSA signature over SHA-256 of `payload`.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let sig: DerSignature = self.0.sign(payload);
        sig.as_bytes().to_vec()
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material, even in debug output.
        write!(f, "PrivateKey({})", self.public_key().fingerprint())
    }
}

impl PublicKey {
    /// Reads a `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo) PEM.
    pub fn from_pem(pem: &str) -> Result<PublicKey> {
        VerifyingKey::from_public_key_pem(pem.trim())
            .map(PublicKey)
            .map_err(|e| {
                Error::input("not an ECDSA P-256 public key (-----BEGIN PUBLIC KEY----- PEM)")
                    .with_source(e.to_string())
                    .with_help("pass the .pub file written by `cargo ebpf key generate` or `cosign generate-key-pair`")
            })
    }

    pub fn to_pem(&self) -> String {
        // Encoding a valid curve point cannot fail.
        self.0
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 public key encodes as PEM")
    }

    fn der(&self) -> Vec<u8> {
        self.0
            .to_public_key_der()
            .expect("a P-256 public key encodes as DER")
            .into_vec()
    }

    /// `SHA256:<base64>` of the DER key, for display and for the trust store.
    pub fn fingerprint(&self) -> String {
        let hash = Sha256::digest(self.der());
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(hash)
        )
    }

    /// Whether `signature` (DER) is this key's signature over `payload`.
    pub fn accepts(&self, payload: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = EcdsaSignature::from_der(signature) else {
            return false;
        };
        // Signers such as OpenSSL may emit high-S; ECDSA accepts both, so normalize.
        let sig = sig.normalize_s().unwrap_or(sig);
        self.0.verify(payload, &sig).is_ok()
    }
}

// ---- payload -------------------------------------------------------------------------------

/// A cosign "simple signing" payload: which image (by digest) the signature vouches for.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// `critical.identity.docker-reference`: `REGISTRY/REPO`.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`: `sha256:<hex>`.
    pub manifest_digest: String,
    /// `optional`: free annotations.
    pub optional: BTreeMap<String, String>,
}

impl Payload {
    pub fn new(docker_reference: &str, manifest_digest: &str) -> Payload {
        Payload {
            docker_reference: docker_reference.to_string(),
            manifest_digest: manifest_digest.to_string(),
            optional: BTreeMap::new(),
        }
    }

    /// The JSON bytes that get signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut critical = serde_json::Map::new();
        critical.insert(
            "identity".into(),
            json!({ "docker-reference": self.docker_reference }),
        );
        critical.insert(
            "image".into(),
            json!({ "docker-manifest-digest": self.manifest_digest }),
        );
        critical.insert("type".into(), json!(COSIGN_SIGNATURE_TYPE));
        let optional = if self.optional.is_empty() {
            Value::Null
        } else {
            json!(self.optional)
        };
        serde_json::to_vec(&json!({ "critical": critical, "optional": optional }))
            .expect("a JSON value serializes")
    }

    /// Parses payload bytes; errors say which field is wrong.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Payload, String> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON ({e})"))?;
        let field = |path: &[&str]| -> std::result::Result<String, String> {
            let mut cur = &v;
            for p in path {
                cur = cur
                    .get(p)
                    .ok_or_else(|| format!("missing {}", path.join(".")))?;
            }
            cur.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{} is not a string", path.join(".")))
        };
        let kind = field(&["critical", "type"])?;
        if kind != COSIGN_SIGNATURE_TYPE {
            return Err(format!(
                "critical.type is {kind:?}, expected {COSIGN_SIGNATURE_TYPE:?}"
            ));
        }
        let optional = match v.get("optional") {
            Some(Value::Object(map)) => map
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect(),
            _ => BTreeMap::new(),
        };
        Ok(Payload {
            docker_reference: field(&["critical", "identity", "docker-reference"])?,
            manifest_digest: field(&["critical", "image", "docker-manifest-digest"])?,
            optional,
        })
    }
}

// ---- one signature -------------------------------------------------------------------------

/// One stored signature: the exact payload bytes and the DER signature over them.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

impl Signature {
    /// Signs `payload` with `key`; records the key's fingerprint in `optional` as a hint.
    pub fn create(key: &PrivateKey, mut payload: Payload) -> Signature {
        payload
            .optional
            .insert(SIGNATURE_KEY_HINT.into(), key.public_key().fingerprint());
        let payload = payload.to_bytes();
        Signature {
            signature: key.sign(&payload),
            payload,
        }
    }

    /// The signature as the layer annotation stores it.
    pub fn signature_base64(&self) -> String {
        B64.encode(&self.signature)
    }

    /// The layer blob (the payload) and its descriptor, annotated with the signature.
    pub fn layer(&self) -> Blob {
        let mut blob = Blob::new(MEDIA_TYPE_COSIGN_SIMPLESIGNING, self.payload.clone());
        blob.descriptor.annotations = Some(BTreeMap::from([(
            ANNOTATION_COSIGN_SIGNATURE.to_string(),
            self.signature_base64(),
        )]));
        blob
    }
}

/// Why a signature did not verify. Ordered from least to most specific so that, over
/// several signatures, the most telling reason is reported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// The signature does not verify and the payload names no key: another key signed it,
    /// or the payload was changed.
    NotThisKey,
    /// The signature is not valid DER / not base64.
    BadSignature(String),
    /// The payload says another key signed it, and the signature does not verify with ours.
    OtherKey { fingerprint: String },
    /// The payload names our key but the signature does not verify: the payload was edited.
    TamperedPayload,
    /// Correctly signed, but the payload is not a cosign payload.
    MalformedPayload(String),
    /// Correctly signed, but for another image.
    OtherDigest { signed: String },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotThisKey => write!(
                f,
                "the signature was made by another key (or its payload was changed)"
            ),
            Failure::BadSignature(why) => write!(f, "the signature is malformed ({why})"),
            Failure::OtherKey { fingerprint } => {
                write!(f, "signed by another key ({fingerprint})")
            }
            Failure::TamperedPayload => write!(
                f,
                "the signed payload was modified after signing (the signature no longer matches it)"
            ),
            Failure::MalformedPayload(why) => {
                write!(f, "the signed payload is not a cosign payload: {why}")
            }
            Failure::OtherDigest { signed } => {
                write!(f, "the signature is for another image ({signed})")
            }
        }
    }
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub payload: Payload,
    /// Fingerprint of the key that verified.
    pub fingerprint: String,
}

/// Verifies one signature (`signature` = DER bytes) over `payload` with `key`, for the image
/// with digest `expected_digest`. Checks the signature first: nothing in an unverified
/// payload is believed, except as a hint for the error.
pub fn verify(
    payload: &[u8],
    signature: &[u8],
    key: &PublicKey,
    expected_digest: &str,
) -> std::result::Result<Verified, Failure> {
    if EcdsaSignature::from_der(signature).is_err() {
        return Err(Failure::BadSignature(
            "not an ASN.1 DER ECDSA signature".into(),
        ));
    }
    if !key.accepts(payload, signature) {
        return Err(unverified_reason(payload, key));
    }
    let parsed = Payload::parse(payload).map_err(Failure::MalformedPayload)?;
    if parsed.manifest_digest != expected_digest {
        return Err(Failure::OtherDigest {
            signed: parsed.manifest_digest,
        });
    }
    Ok(Verified {
        payload: parsed,
        fingerprint: key.fingerprint(),
    })
}

/// Why a signature that does not verify failed, using the payload's key hint.
fn unverified_reason(payload: &[u8], key: &PublicKey) -> Failure {
    let hint = Payload::parse(payload)
        .ok()
        .and_then(|p| p.optional.get(SIGNATURE_KEY_HINT).cloned());
    match hint {
        Some(fp) if fp == key.fingerprint() => Failure::TamperedPayload,
        Some(fp) => Failure::OtherKey { fingerprint: fp },
        None => Failure::NotThisKey,
    }
}

/// Verifies stored signatures against any of `keys`: the first that verifies wins. On
/// failure, an integrity error naming the most specific reason.
pub fn verify_any(
    image: &str,
    expected_digest: &str,
    signatures: &[StoredSignature],
    keys: &[PublicKey],
) -> Result<Verified> {
    if signatures.is_empty() {
        return Err(Error::integrity(format!("{image} has no signature"))
            .with_help("ask the publisher to sign it (`cargo ebpf sign REF --key KEY`), or remove its scope from your trust policy (`cargo ebpf trust rm SCOPE`)"));
    }
    let mut worst: Option<Failure> = None;
    for stored in signatures {
        for key in keys {
            let result = stored
                .signature()
                .and_then(|sig| verify(&stored.payload, &sig, key, expected_digest));
            match result {
                Ok(verified) => return Ok(verified),
                Err(f) => worst = Some(worst.map_or(f.clone(), |w| w.max(f))),
            }
        }
    }
    let reason = worst.map_or_else(|| "no trusted key was given".to_string(), |f| f.to_string());
    Err(Error::integrity(format!(
        "{image} ({expected_digest}) failed signature verification: {reason}"
    ))
    .with_help("do not run it; check with the publisher which key signs it, and that the reference points where it should"))
}

/// A signature as read from a `.sig` manifest: payload bytes and the base64 annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSignature {
    pub payload: Vec<u8>,
    pub signature_base64: String,
}

impl StoredSignature {
    fn signature(&self) -> std::result::Result<Vec<u8>, Failure> {
        B64.decode(self.signature_base64.trim())
            .map_err(|_| Failure::BadSignature("the annotation is not base64".into()))
    }
}

impl From<&Signature> for StoredSignature {
    fn from(sig: &Signature) -> StoredSignature {
        StoredSignature {
            payload: sig.payload.clone(),
            signature_base64: sig.signature_base64(),
        }
    }
}

// ---- the .sig manifest ---------------------------------------------------------------------

/// The tag holding the signatures of `digest`: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> Result<String> {
    let hex = digest::hex_part(digest)?;
    Ok(format!("sha256-{hex}{COSIGN_SIGNATURE_TAG_SUFFIX}"))
}

/// One signature layer of a `.sig` manifest: its descriptor says which blob holds the
/// payload and carries the signature annotation.
#[derive(Debug, Clone)]
pub struct SignatureLayer {
    pub descriptor: OciDescriptor,
    pub signature_base64: String,
}

/// The signature layers of a `.sig` manifest (other layers are skipped).
pub fn signature_layers(manifest: &OciImageManifest) -> Vec<SignatureLayer> {
    manifest
        .layers
        .iter()
        .filter(|l| l.media_type == MEDIA_TYPE_COSIGN_SIMPLESIGNING)
        .filter_map(|l| {
            let sig = l.annotations.as_ref()?.get(ANNOTATION_COSIGN_SIGNATURE)?;
            Some(SignatureLayer {
                descriptor: l.clone(),
                signature_base64: sig.clone(),
            })
        })
        .collect()
}

/// The `.sig` manifest and its config blob after adding `new` to `existing` (if any).
/// A signature already present (same payload and signature) is not added twice.
pub fn signature_manifest(
    existing: Option<&OciImageManifest>,
    new: &Signature,
) -> (OciImageManifest, Blob) {
    append_layer(existing, &new.layer().descriptor)
}

/// A cosign-style `.sig`/`.att` manifest: `existing`'s layers plus `layer` (not added twice),
/// with a config listing them.
pub fn append_layer(
    existing: Option<&OciImageManifest>,
    layer: &OciDescriptor,
) -> (OciImageManifest, Blob) {
    let mut layers = existing.map(|m| m.layers.clone()).unwrap_or_default();
    let duplicate = layers
        .iter()
        .any(|l| l.digest == layer.digest && l.annotations == layer.annotations);
    if !duplicate {
        layers.push(layer.clone());
    }
    let config = config_blob(&layers);
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.to_string()),
        config: config.descriptor.clone(),
        layers,
        ..Default::default()
    };
    (manifest, config)
}

/// A nearly empty image config listing the layers, as cosign writes for `.sig` images.
fn config_blob(layers: &[OciDescriptor]) -> Blob {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let config = json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    Blob::new(
        MEDIA_TYPE_CONFIG,
        serde_json::to_vec(&config).expect("a JSON value serializes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn signed(key: &PrivateKey, digest: &str) -> Signature {
        Signature::create(key, Payload::new("127.0.0.1:5000/alice/hello", digest))
    }

    #[test]
    fn sign_then_verify() {
        let key = PrivateKey::generate();
        let sig = signed(&key, DIGEST);
        let ok = verify(&sig.payload, &sig.signature, &key.public_key(), DIGEST).unwrap();
        assert_eq!(ok.payload.manifest_digest, DIGEST);
        assert_eq!(ok.fingerprint, key.public_key().fingerprint());
    }

    #[test]
    fn other_key_is_named() {
        let (a, b) = (PrivateKey::generate(), PrivateKey::generate());
        let sig = signed(&a, DIGEST);
        let err = verify(&sig.payload, &sig.signature, &b.public_key(), DIGEST).unwrap_err();
        assert_eq!(
            err,
            Failure::OtherKey {
                fingerprint: a.public_key().fingerprint()
            }
        );
    }

    #[test]
    fn other_digest_and_tampered_payload() {
        let key = PrivateKey::generate();
        let sig = signed(&key, OTHER);
        let err = verify(&sig.payload, &sig.signature, &key.public_key(), DIGEST).unwrap_err();
        assert_eq!(
            err,
            Failure::OtherDigest {
                signed: OTHER.into()
            }
        );
        let edited = String::from_utf8(sig.payload.clone())
            .unwrap()
            .replace(OTHER, DIGEST);
        let err = verify(edited.as_bytes(), &sig.signature, &key.public_key(), DIGEST).unwrap_err();
        assert_eq!(err, Failure::TamperedPayload);
    }

    #[test]
    fn malformed_payload_and_signature() {
        let key = PrivateKey::generate();
        let payload = br#"{"critical":{"type":"something else"}}"#;
        let err = verify(payload, &key.sign(payload), &key.public_key(), DIGEST).unwrap_err();
        assert!(matches!(err, Failure::MalformedPayload(_)), "{err:?}");
        let err = verify(payload, b"junk", &key.public_key(), DIGEST).unwrap_err();
        assert!(matches!(err, Failure::BadSignature(_)), "{err:?}");
    }

    #[test]
    fn payload_round_trips() {
        let mut p = Payload::new("r/x", DIGEST);
        p.optional.insert("a".into(), "b".into());
        assert_eq!(Payload::parse(&p.to_bytes()).unwrap(), p);
        let v: Value = serde_json::from_slice(&p.to_bytes()).unwrap();
        assert_eq!(v["critical"]["type"], COSIGN_SIGNATURE_TYPE);
        assert_eq!(v["critical"]["image"]["docker-manifest-digest"], DIGEST);
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let key = PrivateKey::generate();
        let plain = PrivateKey::from_pem(&key.to_pem(None).unwrap(), None).unwrap();
        assert_eq!(plain.public_key(), key.public_key());
        let enc = key.to_pem(Some("pw")).unwrap();
        assert!(enc.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        assert_eq!(
            PrivateKey::from_pem(&enc, Some("pw")).unwrap().public_key(),
            key.public_key()
        );
        assert_eq!(
            PrivateKey::from_pem(&enc, Some("no")).unwrap_err().kind,
            crate::ErrorKind::Auth
        );
        assert_eq!(
            PrivateKey::from_pem(&enc, None).unwrap_err().kind,
            crate::ErrorKind::Usage
        );
        let public = key.public_key().to_pem();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&public).unwrap(), key.public_key());
        assert!(key.public_key().fingerprint().starts_with("SHA256:"));
    }

    #[test]
    fn manifest_appends_and_reads_back() {
        let (a, b) = (PrivateKey::generate(), PrivateKey::generate());
        let (first, _) = signature_manifest(None, &signed(&a, DIGEST));
        let (again, _) = signature_manifest(Some(&first), &signed(&a, DIGEST));
        assert_eq!(again.layers.len(), 1, "same signature is not added twice");
        let (both, config) = signature_manifest(Some(&first), &signed(&b, DIGEST));
        assert_eq!(both.layers.len(), 2);
        assert_eq!(both.config.digest, config.descriptor.digest);
        let layers = signature_layers(&both);
        assert_eq!(layers.len(), 2);
        assert_eq!(
            layers[0].descriptor.media_type,
            MEDIA_TYPE_COSIGN_SIMPLESIGNING
        );
        assert_eq!(
            signature_tag(DIGEST).unwrap(),
            format!("sha256-{}.sig", &DIGEST[7..])
        );
    }

    #[test]
    fn verify_any_reports_the_most_specific_reason() {
        let (a, b) = (PrivateKey::generate(), PrivateKey::generate());
        let stored = [
            StoredSignature::from(&signed(&a, OTHER)),
            StoredSignature::from(&signed(&b, DIGEST)),
        ];
        let err = verify_any("img", DIGEST, &stored, &[a.public_key()]).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity);
        assert!(err.message.contains("another image"), "{}", err.message);
        assert!(verify_any("img", DIGEST, &stored, &[a.public_key(), b.public_key()]).is_ok());
        let none = verify_any("img", DIGEST, &[], &[a.public_key()]).unwrap_err();
        assert!(none.message.contains("no signature"));
    }
}
