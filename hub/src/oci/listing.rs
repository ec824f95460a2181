//! Lists: tags (paged with `n`/`last` and a `Link` header), the catalog, and referrers.

use std::collections::HashMap;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::next_link;
use crate::error::{Code, HubError, HubResult};
use crate::oci::is_digest;
use crate::AppState;

/// Page size when the client gives no `n`, and the most it may ask for.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

fn page(q: &HashMap<String, String>) -> HubResult<(i64, Option<i64>, String)> {
    let asked = match q.get("n") {
        Some(n) => Some(n.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            HubError::new(
                StatusCode::BAD_REQUEST,
                Code::PaginationNumberInvalid,
                format!("n={n} is not a count"),
            )
        })?),
        None => None,
    };
    let n = asked.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
    Ok((n, asked, q.get("last").cloned().unwrap_or_default()))
}

/// Fetches one more than `n` to learn whether a next page exists.
fn paged(mut items: Vec<String>, n: i64, path: &str) -> (Vec<String>, Option<header::HeaderValue>) {
    if items.len() as i64 > n {
        items.truncate(n as usize);
        let link = items.last().map(|last| next_link(path, n, last));
        (items, link)
    } else {
        (items, None)
    }
}

fn json_response(body: serde_json::Value, link: Option<header::HeaderValue>) -> Response {
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(link) = link {
        r.headers_mut().insert(header::LINK, link);
    }
    r
}

pub async fn tags(app: &AppState, name: &str, q: &HashMap<String, String>) -> HubResult<Response> {
    if !app.db.repo_exists(name).await? {
        return Err(HubError::name_unknown(name));
    }
    let (n, _, last) = page(q)?;
    let tags = app.db.tags(name, &last, n + 1).await?;
    let (tags, link) = paged(tags, n, &format!("/v2/{name}/tags/list"));
    Ok(json_response(json!({ "name": name, "tags": tags }), link))
}

pub async fn catalog(app: &AppState, q: &HashMap<String, String>) -> HubResult<Response> {
    let (n, _, last) = page(q)?;
    let repos = app.db.repositories(&last, n + 1).await?;
    let (repos, link) = paged(repos, n, "/v2/_catalog");
    Ok(json_response(json!({ "repositories": repos }), link))
}

/// An image index of the manifests whose `subject` is `digest`, optionally filtered.
pub async fn referrers(
    app: &AppState,
    name: &str,
    digest: &str,
    q: &HashMap<String, String>,
) -> HubResult<Response> {
    if !is_digest(digest) {
        return Err(HubError::digest_invalid(format!(
            "{digest:?} is not a sha256 digest"
        )));
    }
    let filter = q.get("artifactType");
    let mut descriptors = Vec::new();
    for m in app.db.referrers(name, digest).await? {
        if filter.is_some_and(|f| m.artifact_type.as_deref() != Some(f.as_str())) {
            continue;
        }
        let annotations = serde_json::from_slice::<serde_json::Value>(&m.content)
            .ok()
            .and_then(|v| v.get("annotations").cloned());
        let mut d = json!({
            "mediaType": m.media_type,
            "digest": m.digest,
            "size": m.content.len(),
        });
        if let Some(t) = &m.artifact_type {
            d["artifactType"] = json!(t);
        }
        if let Some(a) = annotations {
            d["annotations"] = a;
        }
        descriptors.push(d);
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": ebpf_package::spec::MEDIA_TYPE_INDEX,
        "manifests": descriptors,
    });
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, ebpf_package::spec::MEDIA_TYPE_INDEX)],
        index.to_string(),
    )
        .into_response();
    if filter.is_some() {
        r.headers_mut().insert(
            "OCI-Filters-Applied",
            header::HeaderValue::from_static("artifactType"),
        );
    }
    Ok(r)
}
