//! Manifests: GET/HEAD/PUT/DELETE by tag or digest. The bytes are stored exactly as pushed,
//! served with the manifest's own media type, and refused unless every blob they reference
//! is already in the repository.
//!
//! Only what the runner can run is accepted (see [`accepted`]): a package of a format
//! `ebpf_package::formats` recognises, a cosign signature or attestation, or an index of
//! manifests accepted here before. Anything else (a Docker image of `/bin/ls`) is refused.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{is_digest, Asker};
use super::{valid_tag, DIGEST_HEADER};
use crate::catalog;
use crate::db::NewManifest;
use crate::error::{Code, HubError, HubResult};
use crate::versions::is_version_tag;
use crate::AppState;

/// The manifest media types this hub stores; anything else is refused.
pub const ALLOWED_MEDIA_TYPES: &[&str] = &[
    ebpf_package::spec::MEDIA_TYPE_MANIFEST,
    ebpf_package::spec::MEDIA_TYPE_INDEX,
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
    #[serde(default)]
    pub size: i64,
    /// An index entry's platform.
    pub platform: Option<Platform>,
}

#[derive(Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
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
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

pub async fn handle(
    app: &AppState,
    asker: &Asker,
    method: &Method,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    body: Body,
) -> HubResult<Response> {
    if !is_digest(reference) && !valid_tag(reference) {
        return Err(HubError::manifest_invalid(format!(
            "{reference:?} is neither a tag nor a sha256 digest"
        )));
    }
    match *method {
        Method::GET | Method::HEAD => get(app, asker, method, name, reference).await,
        Method::PUT => put(app, name, reference, headers, body).await,
        Method::DELETE => delete(app, name, reference).await,
        _ => Err(HubError::unsupported(
            "manifests take GET, HEAD, PUT and DELETE",
        )),
    }
}

/// One database statement per GET ([`crate::db::Db::manifest_for_pull`]); the download is
/// counted after the response, and not at all once this process counted the same client's
/// pull of this version today.
async fn get(
    app: &AppState,
    asker: &Asker,
    method: &Method,
    name: &str,
    reference: &str,
) -> HubResult<Response> {
    let by_digest = is_digest(reference);
    let (m, yanked) = app
        .db
        .manifest_for_pull(name, reference, by_digest)
        .await?
        .ok_or_else(|| HubError::manifest_unknown(reference))?;
    let len = m.content.len();
    if *method == Method::GET && !by_digest {
        let who = crate::rate::address(asker.peer.0);
        let subject = download_subject(&who, name, reference);
        if !app.limits.already_counted(&app.limits.download, &subject) {
            // Counted after the response is on its way: a slow counter never delays a pull.
            let (app, name, tag) = (app.clone(), name.to_string(), reference.to_string());
            tokio::spawn(async move {
                let _ = count_download(&app, &who, &name, &tag).await;
            });
        }
    }
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(m.content)
    };
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, m.media_type)
        .header(header::CONTENT_LENGTH, len)
        .header(DIGEST_HEADER, m.digest);
    // Still served (pinned installs keep working), but the client is told.
    if yanked {
        response = response.header(ebpf_package::spec::HEADER_YANKED, "true");
    }
    response.body(body).map_err(HubError::internal)
}

/// Who pulled what, as the download limit counts it: once per client address, repository
/// and version.
fn download_subject(who: &str, repo: &str, version: &str) -> String {
    format!("{who}:{repo}:{version}")
}

async fn put(
    app: &AppState,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    body: Body,
) -> HubResult<Response> {
    let bytes = axum::body::to_bytes(body, MAX_MANIFEST_BYTES)
        .await
        .map_err(|_| {
            HubError::size_invalid(format!(
                "manifests are limited to {MAX_MANIFEST_BYTES} bytes"
            ))
        })?;
    let digest = ebpf_package::digest::sha256(&bytes);
    if is_digest(reference) && reference != digest {
        return Err(HubError::digest_invalid(format!(
            "the manifest hashes to {digest}, not {reference}"
        )));
    }
    let doc: ManifestDoc = serde_json::from_slice(&bytes)
        .map_err(|e| HubError::manifest_invalid(format!("not a manifest: {e}")))?;
    let media_type = media_type(&doc, headers)?;
    check_references(app, name, &doc).await?;
    let tag = (!is_digest(reference)).then_some(reference);
    if let Some(tag) = tag {
        check_immutable(app, name, tag, &digest).await?;
    }
    let inspected = match doc.manifests.is_empty() {
        true => catalog_manifest(app, &bytes, &doc).await?,
        false => catalog_index(app, name, &doc).await?,
    };
    accepted(&doc, &inspected)?;
    if let Some(i) = inspected.as_ref().filter(|i| !i.meta.object.is_empty()) {
        // Taken out of the layer now, once and bounded, for the download page.
        crate::objects::ensure(app, &i.layer_digest, &i.meta.object).await?;
    }
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
    let referenced = referenced_blobs(&doc);
    app.db
        .add_manifest_blobs(name, &digest, &referenced)
        .await?;
    if let Some(tag) = tag {
        app.db.set_tag(name, tag, &digest).await?;
        if let Some(subject) = crate::signatures::signed_digest(tag) {
            crate::signatures::check_pushed(app, name, &subject, &bytes).await?;
        }
        if let Some(subject) = crate::attestations::attested_digest(tag) {
            crate::attestations::check_pushed(app, name, &subject, &bytes).await?;
        }
    }
    // Only a version describes the package: `latest` or `zzz-hack` never change its page.
    if let Some(tag) = tag.filter(|t| is_version_tag(t)) {
        if let Some(i) = &inspected {
            let size = bytes.len() as i64
                + doc
                    .config
                    .iter()
                    .chain(&doc.layers)
                    .chain(&doc.manifests)
                    .map(|d| d.size)
                    .sum::<i64>();
            let (package, version) = catalog::rows(name, tag, &digest, size, &doc.annotations, i);
            app.db.index_version(&package, &version).await?;
        }
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

/// The blobs (config and layers) a manifest references; an index references manifests,
/// which are not blobs. Only these are served, and the collector keeps them.
pub fn referenced_blobs(doc: &ManifestDoc) -> Vec<String> {
    doc.config
        .iter()
        .chain(&doc.layers)
        .map(|d| d.digest.clone())
        .collect()
}

/// Counts a download of `repo:version` once per client address and day, so one client
/// pulling in a loop cannot inflate the count.
pub async fn count_download(app: &AppState, who: &str, repo: &str, version: &str) -> HubResult<()> {
    let subject = download_subject(who, repo, version);
    let limits = &app.limits;
    if limits
        .allow_once(&limits.download, &app.db, &subject)
        .await?
    {
        app.db.count_download(repo, version).await?;
    }
    Ok(())
}

/// Whether an image manifest that is no package of a known format is still accepted: a
/// cosign signature or attestation (every layer a signature, DSSE envelope or in-toto
/// statement).
fn is_signature(doc: &ManifestDoc) -> bool {
    use ebpf_package::spec::{
        DSSE_PAYLOAD_TYPE_IN_TOTO, MEDIA_TYPE_COSIGN_SIMPLESIGNING, MEDIA_TYPE_DSSE_ENVELOPE,
    };
    let config_small = doc
        .config
        .as_ref()
        .is_none_or(|c| (0..=64 * 1024).contains(&c.size));
    config_small
        && !doc.layers.is_empty()
        && doc.layers.iter().all(|l| {
            // In-toto statements: the attestation manifests of a buildx-built index.
            let signatures = [
                MEDIA_TYPE_COSIGN_SIMPLESIGNING,
                MEDIA_TYPE_DSSE_ENVELOPE,
                DSSE_PAYLOAD_TYPE_IN_TOTO,
            ];
            signatures.contains(&l.media_type.as_str())
        })
}

/// Refuses an image manifest that is neither a package the runner reads nor a signature.
fn accepted(doc: &ManifestDoc, inspected: &Option<catalog::Inspected>) -> HubResult<()> {
    if !doc.manifests.is_empty() || inspected.is_some() || is_signature(doc) {
        return Ok(());
    }
    Err(HubError::manifest_invalid(
        "this hub stores eBPF packages only: cargo-ebpf, eunomia, Inspektor Gadget, \
         bumblebee or bpfman images, their cosign signatures and attestations, and indexes \
         of those; this manifest is none of them",
    ))
}

/// The manifest's `mediaType` (or the request's Content-Type), which must be allowed.
fn media_type(doc: &ManifestDoc, headers: &HeaderMap) -> HubResult<String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string());
    let media_type = doc
        .media_type
        .clone()
        .or(content_type)
        .ok_or_else(|| HubError::manifest_invalid("the manifest has no mediaType"))?;
    if !ALLOWED_MEDIA_TYPES.contains(&media_type.as_str()) {
        return Err(HubError::manifest_invalid(format!(
            "media type {media_type} is not accepted; this hub stores {}",
            ALLOWED_MEDIA_TYPES.join(", ")
        )));
    }
    Ok(media_type)
}

/// Every config and layer blob must be in the repository, every index entry a manifest there.
async fn check_references(app: &AppState, name: &str, doc: &ManifestDoc) -> HubResult<()> {
    for d in doc.config.iter().chain(&doc.layers) {
        let known = is_digest(&d.digest) && app.db.blob_in_repo(name, &d.digest).await?.is_some();
        if !known {
            return Err(HubError::new(
                StatusCode::BAD_REQUEST,
                Code::ManifestBlobUnknown,
                format!(
                    "blob {} is not in {name}; push it before the manifest",
                    d.digest
                ),
            ));
        }
    }
    for d in &doc.manifests {
        if !app.db.manifest_exists(name, &d.digest).await? {
            return Err(HubError::new(
                StatusCode::BAD_REQUEST,
                Code::ManifestUnknown,
                format!(
                    "manifest {} is not in {name}; push it before the index",
                    d.digest
                ),
            ));
        }
    }
    Ok(())
}

/// A version tag names one manifest forever: pushing other content under it is refused
/// (409), and so is pushing to a yanked version (the owner unyanks it instead). Re-pushing
/// the same manifest is fine. Other tags (`latest`, `dev`) may move.
async fn check_immutable(app: &AppState, name: &str, tag: &str, digest: &str) -> HubResult<()> {
    if !is_version_tag(tag) {
        return Ok(());
    }
    let indexed = app.db.version(name, tag).await?;
    if indexed.as_ref().is_some_and(|v| v.yanked) {
        return Err(HubError::new(
            StatusCode::CONFLICT,
            Code::Denied,
            format!(
                "{name}:{tag} was yanked and a yanked version cannot be pushed again; bump the \
                 version (in ebpf.toml), or unyank it (cargo ebpf yank --undo)"
            ),
        ));
    }
    let old = match app.db.tag_digest(name, tag).await? {
        Some(old) => Some(old),
        None => indexed.map(|v| v.digest),
    };
    match old {
        Some(old) if old != digest => Err(HubError::new(
            StatusCode::CONFLICT,
            Code::Denied,
            format!(
                "{name}:{tag} is already published as {old} and published versions are \
                 immutable; bump the version (in ebpf.toml) and publish again"
            ),
        )),
        _ => Ok(()),
    }
}

/// Runs the package checks (blocking gunzip, tar listing, BTF parsing) off the async
/// workers. Ok(None) for images that are not eBPF packages. The runner's verdict becomes
/// HTTP at the `?` (a malformed package: 400 MANIFEST_INVALID).
async fn catalog_manifest(
    app: &AppState,
    manifest: &[u8],
    doc: &ManifestDoc,
) -> HubResult<Option<catalog::Inspected>> {
    let Some(config) = &doc.config else {
        return Ok(None);
    };
    if config.size > MAX_MANIFEST_BYTES as i64 {
        return Ok(None);
    }
    let config_bytes = app.blobs.read(&config.digest).await?;
    let blobs = app.blobs.clone();
    let manifest = manifest.to_vec();
    let inspected = tokio::task::spawn_blocking(move || {
        // A blocking thread may wait on async reads (the blob store may be a registry).
        let runtime = tokio::runtime::Handle::current();
        catalog::read_package(&manifest, &config_bytes, |d| {
            runtime.block_on(blobs.read(d))
        })
    })
    .await
    .map_err(HubError::internal)??;
    Ok(inspected)
}

/// A multi-arch index is indexed from its first platform's manifest (programs, metadata:
/// the same source for every arch), with every platform's architecture listed. Attestation
/// entries (`unknown/unknown`) are skipped.
async fn catalog_index(
    app: &AppState,
    name: &str,
    doc: &ManifestDoc,
) -> HubResult<Option<catalog::Inspected>> {
    let platform = |d: &&Descriptor| {
        d.platform
            .as_ref()
            .filter(|p| p.os != "unknown" && p.architecture != "unknown")
            .map(|p| p.architecture.clone())
    };
    let Some(first) = doc.manifests.iter().find(|d| platform(d).is_some()) else {
        return Ok(None);
    };
    let Some(child) = app.db.manifest(name, &first.digest).await? else {
        return Ok(None);
    };
    let Ok(child_doc) = serde_json::from_slice::<ManifestDoc>(&child.content) else {
        return Ok(None);
    };
    let mut inspected = catalog_manifest(app, &child.content, &child_doc).await?;
    if let Some(i) = &mut inspected {
        i.arches = doc
            .manifests
            .iter()
            .filter_map(|d| platform(&d))
            .map(|a| {
                ebpf_package::spec::normalize_arch(&a)
                    .unwrap_or(&a)
                    .to_string()
            })
            .collect();
        i.arches.dedup();
    }
    Ok(inspected)
}

/// Deletes a tag or a manifest, unless that would take back a published version: a
/// version tag, the manifest it names, or a platform manifest of its index. Those stay;
/// the owner yanks a bad version instead (see `crate::api::yank`).
async fn delete(app: &AppState, name: &str, reference: &str) -> HubResult<Response> {
    if let Some(version) = protecting_version(app, name, reference).await? {
        return Err(HubError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::Unsupported,
            format!(
                "{name}:{version} is a published version and published versions are never \
                 deleted or replaced; yank it instead (cargo ebpf yank HUB/{name}:{version}, \
                 or POST /api/v1/packages/{name}/versions/{version}/yank)"
            ),
        ));
    }
    let deleted = if is_digest(reference) {
        app.db.remove_manifest_blobs(name, reference).await?;
        app.db.delete_manifest(name, reference).await?
    } else {
        app.db.delete_tag(name, reference).await?
    };
    if deleted {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(HubError::manifest_unknown(reference))
    }
}

/// The version tag `reference` is, or that points at (directly or through its index) the
/// manifest `reference` names.
async fn protecting_version(
    app: &AppState,
    name: &str,
    reference: &str,
) -> HubResult<Option<String>> {
    if !is_digest(reference) {
        let published =
            is_version_tag(reference) && app.db.tag_digest(name, reference).await?.is_some();
        return Ok(published.then(|| reference.to_string()));
    }
    for (tag, digest) in app.db.version_tags(name).await? {
        if digest == reference || index_lists(app, name, &digest, reference).await? {
            return Ok(Some(tag));
        }
    }
    Ok(None)
}

/// Whether manifest `index` of `name` is an index with `child` among its entries.
async fn index_lists(app: &AppState, name: &str, index: &str, child: &str) -> HubResult<bool> {
    let Some(m) = app.db.manifest(name, index).await? else {
        return Ok(false);
    };
    Ok(serde_json::from_slice::<ManifestDoc>(&m.content)
        .is_ok_and(|doc| doc.manifests.iter().any(|d| d.digest == child)))
}
