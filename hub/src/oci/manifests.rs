//! Manifests: GET/HEAD/PUT/DELETE by tag or digest. The bytes are stored exactly as pushed,
//! served with the manifest's own media type, and refused unless every blob they reference
//! is already in the repository.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{OciError, OciResult};
use super::{valid_tag, DIGEST_HEADER};
use crate::blobs::{is_sha256_digest, sha256_digest};
use crate::db::NewManifest;
use crate::AppState;

/// The manifest media types this hub stores; anything else is refused.
pub const ALLOWED_MEDIA_TYPES: &[&str] = &[
    ebpf_runner::format::MEDIA_TYPE_MANIFEST,
    ebpf_runner::format::MEDIA_TYPE_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Largest manifest accepted: manifests are small JSON; anything bigger is abuse.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
}

/// The fields of an image manifest or index the hub looks at.
#[derive(Deserialize)]
pub struct ManifestDoc {
    #[serde(rename = "mediaType")]
    pub media_type: Option<String>,
    #[serde(rename = "artifactType")]
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
}

pub async fn handle(
    app: &AppState,
    method: &Method,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    body: Body,
) -> OciResult<Response> {
    if !is_sha256_digest(reference) && !valid_tag(reference) {
        return Err(OciError::manifest_invalid(format!(
            "{reference:?} is neither a tag nor a sha256 digest"
        )));
    }
    match *method {
        Method::GET | Method::HEAD => get(app, method, name, reference).await,
        Method::PUT => put(app, name, reference, headers, body).await,
        Method::DELETE => delete(app, name, reference).await,
        _ => Err(OciError::unsupported(
            "manifests take GET, HEAD, PUT and DELETE",
        )),
    }
}

/// The digest a tag or digest reference names in `name`, if the manifest exists.
async fn resolve(app: &AppState, name: &str, reference: &str) -> OciResult<String> {
    if is_sha256_digest(reference) {
        return Ok(reference.to_string());
    }
    app.db
        .tag_digest(name, reference)
        .await?
        .ok_or_else(|| OciError::manifest_unknown(reference))
}

async fn get(app: &AppState, method: &Method, name: &str, reference: &str) -> OciResult<Response> {
    let digest = resolve(app, name, reference).await?;
    let m = app
        .db
        .manifest(name, &digest)
        .await?
        .ok_or_else(|| OciError::manifest_unknown(reference))?;
    let len = m.content.len();
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(m.content)
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, m.media_type)
        .header(header::CONTENT_LENGTH, len)
        .header(DIGEST_HEADER, m.digest)
        .body(body)
        .map_err(OciError::internal)
}

async fn put(
    app: &AppState,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    body: Body,
) -> OciResult<Response> {
    let bytes = axum::body::to_bytes(body, MAX_MANIFEST_BYTES)
        .await
        .map_err(|_| {
            OciError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "SIZE_INVALID",
                format!("manifests are limited to {MAX_MANIFEST_BYTES} bytes"),
            )
        })?;
    let digest = sha256_digest(&bytes);
    if is_sha256_digest(reference) && reference != digest {
        return Err(OciError::digest_invalid(format!(
            "the manifest hashes to {digest}, not {reference}"
        )));
    }
    let doc: ManifestDoc = serde_json::from_slice(&bytes)
        .map_err(|e| OciError::manifest_invalid(format!("not a manifest: {e}")))?;
    let media_type = media_type(&doc, headers)?;
    check_references(app, name, &doc).await?;
    let artifact_type = doc
        .artifact_type
        .clone()
        .or_else(|| doc.config.as_ref().map(|c| c.media_type.clone()));
    app.db
        .put_manifest(&NewManifest {
            repo: name,
            digest: &digest,
            media_type: &media_type,
            artifact_type: artifact_type.as_deref(),
            subject: doc.subject.as_ref().map(|s| s.digest.as_str()),
            content: &bytes,
        })
        .await?;
    if !is_sha256_digest(reference) {
        app.db.set_tag(name, reference, &digest).await?;
    }
    let mut response = (
        StatusCode::CREATED,
        [
            (
                header::LOCATION.as_str(),
                format!("/v2/{name}/manifests/{digest}"),
            ),
            (DIGEST_HEADER, digest.clone()),
        ],
    )
        .into_response();
    if let Some(subject) = &doc.subject {
        if let Ok(v) = subject.digest.parse() {
            response.headers_mut().insert("OCI-Subject", v);
        }
    }
    Ok(response)
}

/// The manifest's `mediaType` (or the request's Content-Type), which must be allowed.
fn media_type(doc: &ManifestDoc, headers: &HeaderMap) -> OciResult<String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string());
    let media_type = doc
        .media_type
        .clone()
        .or(content_type)
        .ok_or_else(|| OciError::manifest_invalid("the manifest has no mediaType"))?;
    if !ALLOWED_MEDIA_TYPES.contains(&media_type.as_str()) {
        return Err(OciError::manifest_invalid(format!(
            "media type {media_type} is not accepted; this hub stores {}",
            ALLOWED_MEDIA_TYPES.join(", ")
        )));
    }
    Ok(media_type)
}

/// Every config and layer blob must be in the repository, every index entry a manifest there.
async fn check_references(app: &AppState, name: &str, doc: &ManifestDoc) -> OciResult<()> {
    for d in doc.config.iter().chain(&doc.layers) {
        let known =
            is_sha256_digest(&d.digest) && app.db.blob_in_repo(name, &d.digest).await?.is_some();
        if !known {
            return Err(OciError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!(
                    "blob {} is not in {name}; push it before the manifest",
                    d.digest
                ),
            ));
        }
    }
    for d in &doc.manifests {
        if !app.db.manifest_exists(name, &d.digest).await? {
            return Err(OciError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_UNKNOWN",
                format!(
                    "manifest {} is not in {name}; push it before the index",
                    d.digest
                ),
            ));
        }
    }
    Ok(())
}

async fn delete(app: &AppState, name: &str, reference: &str) -> OciResult<Response> {
    let deleted = if is_sha256_digest(reference) {
        app.db.delete_manifest(name, reference).await?
    } else {
        app.db.delete_tag(name, reference).await?
    };
    if deleted {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(OciError::manifest_unknown(reference))
    }
}
