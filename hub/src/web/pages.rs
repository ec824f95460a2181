//! The read-only pages: home, search, about, user, package (and the object download).
//! Missing things get the templated error page; our own failures a plain-text 500.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{date, error_page, render, visitor};
use crate::db::PackageRow;
use crate::error::HubError;
use crate::AppState;

const PAGE_SIZE: i64 = 20;

fn listing(packages: &[PackageRow]) -> serde_json::Value {
    json!(packages
        .iter()
        .map(|p| json!({
            "repo": p.repo, "latest_version": p.latest_version,
            "description": p.description, "downloads": p.downloads,
        }))
        .collect::<Vec<_>>())
}

fn internal(e: impl Into<HubError>) -> Response {
    e.into().text_response()
}

pub async fn home(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let v = visitor(&app, &headers).await;
    let db = &app.db;
    let (featured, newest, popular) = match (
        db.packages_where("WHERE featured = 1", None, "updated_at DESC", 6)
            .await,
        db.packages_where("", None, "updated_at DESC, repo", 10)
            .await,
        db.packages_where("WHERE downloads > 0", None, "downloads DESC, repo", 10)
            .await,
    ) {
        (Ok(f), Ok(n), Ok(p)) => (f, n, p),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return internal(e),
    };
    let data = json!({
        "featured": listing(&featured), "newest": listing(&newest), "popular": listing(&popular),
    });
    render(&app, &v, "Home", "home", data)
}

pub async fn search(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let v = visitor(&app, &headers).await;
    let query = q.get("q").cloned().unwrap_or_default();
    let page: i64 = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    // One more than a page tells whether a next page exists.
    let mut found = match app
        .db
        .search(&query, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
        .await
    {
        Ok(f) => f,
        Err(e) => return internal(e),
    };
    let more = found.len() as i64 > PAGE_SIZE;
    found.truncate(PAGE_SIZE as usize);
    let data = json!({
        "query": query, "packages": listing(&found),
        "prev": (page > 1).then_some(page - 1), "next": more.then_some(page + 1),
    });
    render(&app, &v, "Search", "search", data)
}

pub async fn about(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let v = visitor(&app, &headers).await;
    render(&app, &v, "About", "about", json!({}))
}

pub async fn user(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let v = visitor(&app, &headers).await;
    let Ok(Some(u)) = app.db.user(&name).await else {
        return error_page(
            &app,
            &v,
            StatusCode::NOT_FOUND,
            "No such user",
            &format!("There is no user {name}."),
        );
    };
    let packages = app
        .db
        .packages_where("WHERE owner = $1", Some(&name), "repo", 200)
        .await;
    let starred = app.db.starred_by(&name).await;
    let (Ok(packages), Ok(starred)) = (packages, starred) else {
        return internal(HubError::internal("database error"));
    };
    let keys = app.db.keys(&name).await.unwrap_or_default();
    let data = json!({
        "name": u.name, "since": date(u.created_at),
        "keys": keys.iter().map(crate::keys::json).collect::<Vec<_>>(),
        "own": v.user.as_deref() == Some(name.as_str()),
        "packages": listing(&packages), "starred": listing(&starred),
    });
    render(&app, &v, &name, "user", data)
}

/// `GET /p/OWNER/NAME` (the package page) or `GET /p/OWNER/NAME/download/VERSION`.
pub async fn package(
    State(app): State<AppState>,
    peer: crate::auth::ClientAddr,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    let v = visitor(&app, &headers).await;
    if let Some((repo, version)) = path.split_once("/download/") {
        return download(&app, &v, peer, repo, version).await;
    }
    let repo = path.trim_end_matches('/');
    let Ok(Some(p)) = app.db.package(repo).await else {
        return error_page(
            &app,
            &v,
            StatusCode::NOT_FOUND,
            "No such package",
            &format!("There is no package {repo}."),
        );
    };
    let Ok(versions) = app.db.versions(repo).await else {
        return internal(HubError::internal("database error"));
    };
    // With every version yanked there is nothing to offer: no run command, no download.
    let latest = versions.iter().find(|x| x.version == p.latest_version);
    let signatures = app.db.verified_signatures(repo).await.unwrap_or_default();
    let programs: serde_json::Value = latest
        .and_then(|l| serde_json::from_str(&l.programs).ok())
        .unwrap_or(json!([]));
    // The README when the package carries one; the template shows the description else.
    let readme = app.db.readme(repo).await.unwrap_or_default();
    let readme_html = (!readme.trim().is_empty()).then(|| super::markdown::render(&readme));
    let starred = match &v.user {
        Some(u) => app.db.is_starred(u, repo).await.unwrap_or(false),
        None => false,
    };
    let data = json!({
        "p": {
            "repo": p.repo, "owner": p.owner, "description": p.description, "license": p.license,
            "authors": p.authors, "keywords": p.keywords, "downloads": p.downloads,
            // Only web links become anchors: a `javascript:` source must not be clickable.
            "source": if p.source.starts_with("https://") || p.source.starts_with("http://") { p.source.clone() } else { String::new() },
        },
        "latest": latest.map(|l| json!({"version": l.version, "object": l.object, "arch": l.arch})),
        "programs": programs,
        "readme_html": readme_html,
        "versions": versions.iter().map(|x| json!({
            "version": x.version, "digest": x.digest, "size": x.size, "date": date(x.pushed_at),
            "yanked": x.yanked,
            "badges": crate::signatures::badges(&signatures, &x.digest),
        })).collect::<Vec<_>>(),
        "owner": v.user.as_deref() == Some(p.owner.as_str()),
        "stars": app.db.star_count(repo).await.unwrap_or(0),
        "starred": starred,
    });
    render(&app, &v, repo, "package", data)
}

/// The BPF object of a version (taken out of its layer once, see [`crate::objects`]), as
/// an attachment.
async fn download(
    app: &AppState,
    v: &super::Visitor,
    peer: crate::auth::ClientAddr,
    repo: &str,
    version: &str,
) -> Response {
    let Ok(Some(ver)) = app.db.version(repo, version).await else {
        return error_page(
            app,
            v,
            StatusCode::NOT_FOUND,
            "No such version",
            &format!("{repo} has no version {version}."),
        );
    };
    if ver.object.is_empty() || !crate::oci::is_digest(&ver.layer_digest) {
        return error_page(
            app,
            v,
            StatusCode::NOT_FOUND,
            "No object",
            "This package has no single object to download.",
        );
    }
    let bytes = match crate::objects::ensure(app, &ver.layer_digest, &ver.object).await {
        Ok(digest) => match app.blobs.read(&digest).await {
            Ok(b) => b,
            Err(e) => return internal(e),
        },
        Err(e) => return internal(e),
    };
    let (app2, repo2, version2) = (app.clone(), repo.to_string(), version.to_string());
    let who = crate::rate::address(peer.0);
    tokio::spawn(async move {
        let _ = crate::oci::count_download(&app2, &who, &repo2, &version2).await;
    });
    let file_name: String = ver
        .object
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect();
    (
        [
            (header::CONTENT_TYPE, "application/x-elf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}
