//! The JSON API's store side, versioned under `/api/v1/` and described by the OpenAPI
//! document served at `/api/v1/openapi.json` (`hub/assets/openapi.json`): package lists,
//! versions, users, stars and follows, all paginated with `page` and `per_page`; reads
//! answer any origin (CORS), so other sites can show what the hub holds. Writes
//! (follow/unfollow) authenticate like the rest of the API ([`crate::api::api_user`]).

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::api::{api_user, ApiError};
use crate::error::{Code, HubError};
use crate::AppState;

type ApiResult = Result<Response, ApiError>;

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("../assets/openapi.json");

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Lets any origin read (GET, HEAD) the API; writes stay same-origin.
pub async fn cors(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/v1/") {
        return next.run(request).await;
    }
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    let preflight = *request.method() == Method::OPTIONS;
    if preflight {
        return (
            StatusCode::NO_CONTENT,
            [
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD"),
                (header::ACCESS_CONTROL_MAX_AGE, "86400"),
            ],
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    if read {
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    response
}

/// `page` (from 1) and `per_page` (1-100, default 20).
fn paging(q: &HashMap<String, String>) -> Result<(i64, i64), HubError> {
    let number = |k: &str, default: i64, max: i64| match q.get(k) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                HubError::new(
                    StatusCode::BAD_REQUEST,
                    Code::PaginationNumberInvalid,
                    format!("{k}={v:?}: use a number from 1 to {max}"),
                )
            }),
    };
    Ok((number("page", 1, 1_000_000)?, number("per_page", 20, 100)?))
}

/// One page of `items`, with the paging fields every list answer has.
fn page_of(items: Vec<Value>, page: i64, per_page: i64, key: &str) -> Value {
    let total = items.len() as i64;
    let start = ((page - 1) * per_page).min(total) as usize;
    let end = (start + per_page as usize).min(items.len());
    json!({ "total": total, "page": page, "per_page": per_page, key: items[start..end] })
}

fn no_user(name: &str) -> HubError {
    HubError::new(
        StatusCode::NOT_FOUND,
        Code::NameUnknown,
        format!("no user {name}"),
    )
}

/// `GET /api/v1/packages`: every listed package, newest first (search without words).
pub async fn packages(state: State<AppState>, q: Query<HashMap<String, String>>) -> ApiResult {
    let mut params = q.0;
    params
        .entry("sort".into())
        .or_insert_with(|| "newest".into());
    crate::api::search(state, Query(params)).await
}

/// `GET /api/v1/packages/OWNER/NAME` ([`crate::api::package`]) or
/// `GET /api/v1/packages/OWNER/NAME/versions[/VERSION]`.
pub async fn package(
    State(app): State<AppState>,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    match path.split_once("/versions") {
        Some((repo, rest)) if rest.is_empty() || rest.starts_with('/') => {
            versions(&app, repo, rest, &q).await
        }
        _ => crate::api::package(State(app), Path(path)).await,
    }
}

async fn versions(
    app: &AppState,
    repo: &str,
    rest: &str,
    q: &HashMap<String, String>,
) -> ApiResult {
    let not_found = |what: String| HubError::new(StatusCode::NOT_FOUND, Code::NotFound, what);
    if app.db.package(repo).await?.is_none() {
        return Err(not_found(format!("no package {repo}")).into());
    }
    let signatures = app.db.verified_signatures(repo).await?;
    let all = app.db.versions(repo).await?;
    let one = |v: &crate::db::VersionRow| {
        let meta: Value = serde_json::from_str(&v.meta).unwrap_or(Value::Null);
        let plan = serde_json::from_str::<ebpf_package::spec::PackageMeta>(&v.meta)
            .ok()
            .map(|m| json!(ebpf_package::plan::Plan::of(&m)));
        json!({
            "version": v.version, "digest": v.digest, "size": v.size, "created": v.created,
            "arch": v.arch, "format": v.format, "runtime": v.runtime, "object": v.object,
            "programs": serde_json::from_str::<Value>(&v.programs).unwrap_or_default(),
            "downloads": v.downloads, "yanked": v.yanked,
            "signatures": crate::signatures::badges(&signatures, &v.digest),
            "params": meta["params"], "events": meta["events"], "maps": meta["maps"],
            "plan": plan,
        })
    };
    match rest.strip_prefix('/').filter(|v| !v.is_empty()) {
        Some(version) => {
            let v = all
                .iter()
                .find(|v| v.version == version)
                .ok_or_else(|| not_found(format!("{repo} has no version {version}")))?;
            Ok(Json(one(v)).into_response())
        }
        None => {
            let (page, per_page) = paging(q)?;
            let items = all.iter().map(one).collect();
            Ok(Json(page_of(items, page, per_page, "versions")).into_response())
        }
    }
}

/// `GET /api/v1/users/USER`: the public profile.
pub async fn user(State(app): State<AppState>, Path(name): Path<String>) -> ApiResult {
    let p = app.db.profile(&name).await?.ok_or_else(|| no_user(&name))?;
    let packages = app
        .db
        .packages_where("WHERE owner = $1", Some(&name), "repo", 1000)
        .await?;
    let followers = app.db.followers(&name).await?.len();
    let following = app.db.following(&name).await?.len();
    Ok(Json(json!({
        "name": p.name, "display_name": p.display_name, "bio": p.bio, "links": p.links,
        "avatar": format!("/u/{}/avatar.svg", p.name), "admin": p.is_admin,
        "created_at": p.created_at, "followers": followers, "following": following,
        "packages": packages.iter().map(|x| x.repo.clone()).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /api/v1/users/USER/{stars,followers,following}`.
pub async fn user_list(
    State(app): State<AppState>,
    Path((name, which)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    if app.db.user(&name).await?.is_none() {
        return Err(no_user(&name).into());
    }
    let (page, per_page) = paging(&q)?;
    let items: Vec<Value> = match which.as_str() {
        "stars" => app
            .db
            .starred_by(&name)
            .await?
            .iter()
            .map(|p| json!({"repository": p.repo, "latest": p.latest_version, "description": p.description}))
            .collect(),
        "followers" => app.db.followers(&name).await?.into_iter().map(Value::from).collect(),
        "following" => app.db.following(&name).await?.into_iter().map(Value::from).collect(),
        _ => {
            let why = format!("no API at /api/v1/users/{name}/{which}; see /api/v1/openapi.json");
            return Err(HubError::new(StatusCode::NOT_FOUND, Code::NotFound, why).into());
        }
    };
    let key = if which == "stars" {
        "packages"
    } else {
        "users"
    };
    Ok(Json(page_of(items, page, per_page, key)).into_response())
}

/// `PUT /api/v1/users/USER/follow` follows USER; `DELETE` unfollows.
pub async fn follow(
    State(app): State<AppState>,
    peer: crate::auth::ClientAddr,
    method: Method,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    let me = api_user(&app, peer, &headers, false).await?;
    if app.db.user(&name).await?.is_none() {
        return Err(no_user(&name).into());
    }
    if me == name {
        return Err(HubError::refused("you cannot follow yourself").into());
    }
    let on = method == Method::PUT;
    app.db.set_follow(&me, &name, on).await?;
    Ok(Json(json!({"user": name, "following": on})).into_response())
}

/// `PUT /api/v1/packages/OWNER/NAME/star` stars the package (as the caller); `DELETE`
/// unstars it.
pub async fn star(
    State(app): State<AppState>,
    peer: crate::auth::ClientAddr,
    method: Method,
    headers: axum::http::HeaderMap,
    Path(path): Path<String>,
) -> ApiResult {
    let Some(repo) = path.strip_suffix("/star") else {
        let why = format!("no API at /api/v1/packages/{path}; see /api/v1/openapi.json");
        return Err(HubError::new(StatusCode::NOT_FOUND, Code::NotFound, why).into());
    };
    let me = api_user(&app, peer, &headers, false).await?;
    if app.db.package(repo).await?.is_none() {
        let why = format!("no package {repo}");
        return Err(HubError::new(StatusCode::NOT_FOUND, Code::NameUnknown, why).into());
    }
    let want = method == Method::PUT;
    if app.db.is_starred(&me, repo).await? != want {
        app.db.toggle_star(&me, repo).await?;
    }
    let stars = app.db.star_count(repo).await?;
    Ok(Json(json!({"repository": repo, "starred": want, "stars": stars})).into_response())
}
