//! The read-only pages: home, search, about, user, package (and the object download).
//! Missing things get the templated error page; our own failures a plain-text 500.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{date, error_page, render, visitor};
use crate::db::{Hit, PackageRow, SearchQuery, FORMATS};
use crate::error::HubError;
use crate::AppState;

const PAGE_SIZE: i64 = 20;

/// Package cards: the listing with each package's stars.
pub async fn cards(db: &crate::db::Db, packages: &[PackageRow]) -> serde_json::Value {
    let mut out = Vec::new();
    for p in packages {
        out.push(json!({
            "repo": p.repo, "latest_version": p.latest_version,
            "description": p.description, "downloads": p.downloads,
            "stars": db.star_count(&p.repo).await.unwrap_or(0),
        }));
    }
    json!(out)
}

fn internal(e: impl Into<HubError>) -> Response {
    e.into().text_response()
}

pub async fn home(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let v = visitor(&app, &headers).await;
    let db = &app.db;
    let (featured, newest, popular, starred, counts) = match (
        db.packages_where("WHERE featured = 1", None, "updated_at DESC, repo", 6)
            .await,
        db.packages_where("", None, "updated_at DESC, repo", 6)
            .await,
        db.packages_where("WHERE downloads > 0", None, "downloads DESC, repo", 6)
            .await,
        db.most_starred(6).await,
        db.counts().await,
    ) {
        (Ok(f), Ok(n), Ok(p), Ok(s), Ok(c)) => (f, n, p, s, c),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), ..) | (.., Err(e), _) | (.., Err(e)) => {
            return internal(e)
        }
    };
    let feed = match &v.user {
        Some(me) => db.feed(me, 10).await.unwrap_or_default(),
        None => vec![],
    };
    let starred: Vec<_> = starred
        .iter()
        .map(|(p, stars)| {
            json!({
                "repo": p.repo, "latest_version": p.latest_version,
                "description": p.description, "downloads": p.downloads, "stars": stars,
            })
        })
        .collect();
    let data = json!({
        "featured": cards(db, &featured).await, "newest": cards(db, &newest).await,
        "popular": cards(db, &popular).await,
        "starred": starred,
        "counts": {"packages": counts.packages, "publishers": counts.publishers, "pulls": counts.pulls},
        "feed": feed.iter().map(|f| json!({"repo": f.repo, "version": f.version, "date": date(f.pushed_at)})).collect::<Vec<_>>(),
    });
    render(&app, &v, "Home", "home", data)
}

pub async fn search(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let v = visitor(&app, &headers).await;
    let s = match SearchQuery::from_params(&q, PAGE_SIZE) {
        Ok(s) => s,
        Err(why) => {
            return error_page(&app, &v, StatusCode::BAD_REQUEST, "Bad search", &why);
        }
    };
    let found = match app.db.search(&s).await {
        Ok(f) => f,
        Err(e) => return internal(e),
    };
    let pages = (found.total + s.per_page - 1) / s.per_page;
    // Past a capped count ("200+") a full page may have a next one the count cannot show.
    let more_pages = found.more && found.hits.len() as i64 == s.per_page;
    let params = s.to_params();
    let link = |page: i64| format!("/search?{params}&page={page}");
    let option = |name: &str, selected: bool| json!({"name": name, "selected": selected});
    let sorts =
        ["relevance", "downloads", "stars", "newest"].map(|n| option(n, s.sort.name() == n));
    let formats: Vec<_> = std::iter::once("")
        .chain(FORMATS)
        .map(|f| {
            option(
                f,
                s.format == f || (f == "cargo-ebpf" && s.format == "ours"),
            )
        })
        .collect();
    let data = json!({
        "query": s.q, "s": {
            "attach": s.attach, "program_type": s.program_type, "arch": s.arch,
            "license": s.license, "keyword": s.keyword, "signed": s.signed, "kernel": s.kernel,
        },
        "formats": formats,
        "sorts": sorts,
        "total": found.total, "more": found.more, "page": s.page,
        "pages": pages.max(s.page).max(1),
        "packages": hits(&found.hits),
        "prev": (s.page > 1).then(|| link(s.page - 1)),
        "next": (s.page < pages || more_pages).then(|| link(s.page + 1)),
    });
    render(&app, &v, "Search", "search", data)
}

/// Search results as cards: the listing plus stars and the signed badge.
fn hits(hits: &[Hit]) -> serde_json::Value {
    json!(hits
        .iter()
        .map(|h| json!({
            "repo": h.package.repo, "latest_version": h.package.latest_version,
            "description": h.package.description, "downloads": h.package.downloads,
            "stars": h.stars, "signed": h.signed,
        }))
        .collect::<Vec<_>>())
}

pub async fn about(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let v = visitor(&app, &headers).await;
    // An address becomes a mailto link, a web URL a link; anything else is shown as text.
    let contact = app.contact.as_deref().unwrap_or("");
    let link = if contact.starts_with("https://") || contact.starts_with("http://") {
        contact.to_string()
    } else if contact.contains('@') && !contact.contains(['<', '>', '"', ' ']) {
        format!("mailto:{contact}")
    } else {
        String::new()
    };
    render(
        &app,
        &v,
        "About",
        "about",
        json!({"contact": contact, "contact_link": link}),
    )
}

/// `GET /p/OWNER/NAME` (the package page, `?version=V` for another version),
/// `GET /p/OWNER/NAME/v/VERSION` (a version's page) or `GET /p/OWNER/NAME/download/VERSION`.
pub async fn package(
    State(app): State<AppState>,
    peer: crate::auth::ClientAddr,
    headers: HeaderMap,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let v = visitor(&app, &headers).await;
    if let Some((repo, version)) = path.split_once("/download/") {
        return download(&app, &v, peer, repo, version).await;
    }
    if let Some((repo, version)) = path.split_once("/v/") {
        let version = version.trim_end_matches('/');
        return super::package::page(&app, &v, repo, Some(version)).await;
    }
    let repo = path.trim_end_matches('/');
    let version = q
        .get("version")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    super::package::page(&app, &v, repo, version).await
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_capped_count_reads_as_a_lower_bound() {
        let page = |total: i64, more: bool| {
            let data = json!({
                "query": "trace", "total": total, "more": more, "page": 1, "pages": 50,
                "packages": [], "formats": [], "sorts": [], "s": {},
            });
            crate::web::templates().render("search", &data).unwrap()
        };
        let capped = page(1000, true);
        assert!(
            capped.contains("1000+ packages for “trace” · page 1 of 50+"),
            "{capped}"
        );
        let exact = page(999, false);
        assert!(
            exact.contains("999 packages for “trace” · page 1 of 50<"),
            "{exact}"
        );
    }
}
