//! Blob reads (GET/HEAD with Range), deletes, and uploads: monolithic (`POST ?digest=`,
//! or POST then one PUT), chunked (POST, PATCH…, PUT `?digest=`), and cross-repo mounts
//! (`POST ?mount=&from=`). Sessions and their bytes live in the database
//! ([`crate::uploads`]), so any hub process can take any request of an upload.
//!
//! Only blobs that an accepted manifest of the repository references are served to
//! readers; the pusher (who may write the repository) also sees the ones it uploaded for a
//! manifest still to come. Uploads count against the owner's storage quota.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{is_digest, Asker, DIGEST_HEADER};
use crate::blobs::{random_id, UploadError};
use crate::error::{Code, HubError, HubResult};
use crate::{uploads, AppState};

fn check_digest(digest: &str) -> HubResult<()> {
    if is_digest(digest) {
        Ok(())
    } else {
        Err(HubError::digest_invalid(format!(
            "{digest:?} is not a sha256 digest (sha256:<64 hex>)"
        )))
    }
}

pub async fn blob(
    app: &AppState,
    asker: &Asker,
    method: &Method,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
) -> HubResult<Response> {
    check_digest(digest)?;
    match *method {
        Method::GET | Method::HEAD => {
            if !asker.writer && !app.db.blob_referenced(name, digest).await? {
                return Err(HubError::blob_unknown(digest));
            }
            read(app, method, name, digest, headers).await
        }
        Method::DELETE => {
            if app.db.unlink_blob(name, digest).await? {
                Ok(StatusCode::ACCEPTED.into_response())
            } else {
                Err(HubError::blob_unknown(digest))
            }
        }
        _ => Err(HubError::unsupported("blobs take GET, HEAD and DELETE")),
    }
}

async fn read(
    app: &AppState,
    method: &Method,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
) -> HubResult<Response> {
    let size = app
        .db
        .blob_in_repo(name, digest)
        .await?
        .ok_or_else(|| HubError::blob_unknown(digest))? as u64;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => Some(parse_range(r, size).ok_or_else(|| {
            HubError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                Code::RangeInvalid,
                format!("cannot serve {r} of a {size}-byte blob"),
            )
        })?),
        None => None,
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let len = if size == 0 { 0 } else { end - start + 1 };
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(DIGEST_HEADER, digest);
    builder = match range {
        Some(_) => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")),
        None => builder.status(StatusCode::OK),
    };
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        app.blobs.read_range(digest, start, len).await?
    };
    builder.body(body).map_err(HubError::internal)
}

/// `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX` → inclusive (start, end).
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (size.saturating_sub(n), size - 1)
        }
        (s, "") => (s.parse().ok()?, size - 1),
        (s, e) => (s.parse().ok()?, e.parse::<u64>().ok()?.min(size - 1)),
    };
    (start <= end && start < size).then_some((start, end))
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// 202 for an upload in progress, `Range` saying how much the hub holds.
fn in_progress(name: &str, id: &str, size: u64) -> Response {
    let range = format!("0-{}", size.saturating_sub(1));
    (
        StatusCode::ACCEPTED,
        [
            (header::LOCATION.as_str(), upload_location(name, id)),
            ("Range", range),
            ("Docker-Upload-UUID", id.to_string()),
            (header::CONTENT_LENGTH.as_str(), "0".to_string()),
        ],
    )
        .into_response()
}

fn created(name: &str, digest: &str) -> Response {
    (
        StatusCode::CREATED,
        [
            (
                header::LOCATION.as_str(),
                format!("/v2/{name}/blobs/{digest}"),
            ),
            (DIGEST_HEADER, digest.to_string()),
            (header::CONTENT_LENGTH.as_str(), "0".to_string()),
        ],
    )
        .into_response()
}

/// The owner of repository `name` (its first component: pushes stay in one's namespace).
fn owner(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

/// Refuses when `name`'s owner would hold more than the quota with `adding` more bytes.
async fn check_quota(app: &AppState, name: &str, adding: u64) -> HubResult<()> {
    let user = owner(name);
    let used = app.db.storage_used(user).await?.max(0) as u64;
    if used.saturating_add(adding) > app.user_quota {
        return Err(HubError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            Code::Denied,
            format!(
                "{user} would hold more than the {} bytes of storage each user may fill \
                 ({used} bytes now); delete unused tags or ask the hub's operator",
                app.user_quota
            ),
        ));
    }
    Ok(())
}

/// `POST /v2/<name>/blobs/uploads/`.
pub async fn start(
    app: &AppState,
    name: &str,
    q: &HashMap<String, String>,
    body: Body,
) -> HubResult<Response> {
    if let (Some(digest), Some(from)) = (q.get("mount"), q.get("from")) {
        check_digest(digest)?;
        // Only what `from` serves to anyone (or to this pusher) can be mounted from it.
        let visible = super::valid_name(from)
            && (app.db.blob_referenced(from, digest).await? || owner(from) == owner(name));
        if let Some(size) = app.db.blob_in_repo(from, digest).await?.filter(|_| visible) {
            if app.db.blob_in_repo(name, digest).await?.is_none() {
                check_quota(app, name, size.max(0) as u64).await?;
            }
            app.db.link_blob(name, digest).await?;
            return Ok(created(name, digest));
        }
        // Not mountable: the spec says to fall back to a regular upload session.
    }
    check_quota(app, name, 0).await?;
    let id = random_id();
    uploads::start(&app.db, &id, name).await?;
    if let Some(digest) = q.get("digest") {
        return finish(app, name, &id, digest, body).await;
    }
    Ok(in_progress(name, &id, 0))
}

/// GET (status), PATCH (chunk), PUT (final), DELETE (cancel) on an upload session.
pub async fn upload(
    app: &AppState,
    method: &Method,
    name: &str,
    id: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> HubResult<Response> {
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) || !app.db.upload_exists(id, name).await? {
        return Err(HubError::upload_unknown(id));
    }
    match *method {
        Method::GET => Ok(in_progress(name, id, uploads::size(&app.db, id).await?)),
        Method::PATCH => {
            check_content_range(app, id, headers).await?;
            let size = append(app, id, body).await?;
            Ok(in_progress(name, id, size))
        }
        Method::PUT => {
            let digest = q
                .get("digest")
                .ok_or_else(|| HubError::digest_invalid("the final PUT needs ?digest="))?;
            finish(app, name, id, digest, body).await
        }
        Method::DELETE => {
            abandon(app, id).await;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(HubError::unsupported(
            "uploads take GET, PATCH, PUT and DELETE",
        )),
    }
}

/// A chunk's `Content-Range: START-END` must continue where the upload stands.
async fn check_content_range(app: &AppState, id: &str, headers: &HeaderMap) -> HubResult<()> {
    let Some(range) = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let start = range
        .trim()
        .trim_start_matches("bytes ")
        .split('-')
        .next()
        .and_then(|s| s.parse::<u64>().ok());
    let size = uploads::size(&app.db, id).await?;
    if start != Some(size) {
        return Err(HubError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            Code::BlobUploadInvalid,
            format!("chunk {range} does not start at the upload's size {size}"),
        ));
    }
    Ok(())
}

/// Appends `body`; a broken body abandons the whole upload so nothing half-written lingers.
async fn append(app: &AppState, id: &str, body: Body) -> HubResult<u64> {
    match uploads::append(&app.db, app.blobs.max_blob, id, body).await {
        Ok(size) => Ok(size),
        Err(e) => {
            abandon(app, id).await;
            Err(upload_error(e))
        }
    }
}

async fn finish(
    app: &AppState,
    name: &str,
    id: &str,
    digest: &str,
    body: Body,
) -> HubResult<Response> {
    if let Err(e) = check_digest(digest) {
        abandon(app, id).await;
        return Err(e);
    }
    let uploaded = append(app, id, body).await?;
    if app.db.blob_in_repo(name, digest).await?.is_none() {
        if let Err(e) = check_quota(app, name, uploaded).await {
            abandon(app, id).await;
            return Err(e);
        }
    }
    let size = match uploads::finish(&app.db, &app.blobs, id, digest).await {
        Ok(size) => size,
        Err(e) => {
            abandon(app, id).await;
            return Err(upload_error(e));
        }
    };
    uploads::discard(&app.db, id).await?;
    app.db.add_blob(name, digest, size as i64).await?;
    Ok(created(name, digest))
}

async fn abandon(app: &AppState, id: &str) {
    let _ = uploads::discard(&app.db, id).await;
}

fn upload_error(e: UploadError) -> HubError {
    match e {
        UploadError::Body(m) => HubError::new(
            StatusCode::BAD_REQUEST,
            Code::BlobUploadInvalid,
            format!("the upload broke off: {m}; start it again"),
        ),
        UploadError::DigestMismatch { expected, actual } => HubError::digest_invalid(format!(
            "the uploaded content hashes to {actual}, not {expected}; nothing was stored"
        )),
        UploadError::TooLarge(max) => {
            HubError::size_invalid(format!("blobs on this hub are limited to {max} bytes"))
        }
        UploadError::Io(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
