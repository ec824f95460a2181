//! A small JSON API for what registry clients cannot do: register, mint API tokens, read
//! the package index, search it, yank versions, register signing keys. The web pages call the same
//! functions in `accounts`, `yank` and `db`.
//!
//! Who is calling: a token or password (HTTP Basic, as registry clients send them) or
//! Bearer token; or a browser's session cookie, then with the page's CSRF value in the
//! `X-Hub-Csrf` header (double submit, as the forms do).
//! Failures are [`HubError`]s answered as `{"error": message}`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::accounts::{self, TokenRequest};
use crate::auth::{self, Caller, ClientAddr};
use crate::db::SearchQuery;
use crate::error::HubError;
use crate::AppState;

/// A [`HubError`] in this API's JSON shape, so handlers can use `?`.
pub struct ApiError(HubError);

impl<E: Into<HubError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.json_response()
    }
}

type ApiResult = Result<Response, ApiError>;

#[derive(Deserialize)]
pub struct Register {
    name: String,
    password: String,
    #[serde(default)]
    email: String,
}

pub async fn register(
    State(app): State<AppState>,
    peer: ClientAddr,
    Json(r): Json<Register>,
) -> ApiResult {
    let address = crate::rate::address(peer.0);
    if !app.limits.register.allow(&app.db, &address).await? {
        return Err(HubError::too_many_requests(
            "too many registrations from this address; wait an hour",
        )
        .into());
    }
    accounts::register(&app.db, &r.name, &r.email, &r.password).await?;
    Ok((StatusCode::CREATED, Json(json!({ "name": r.name }))).into_response())
}

#[derive(Deserialize)]
pub struct NewToken {
    #[serde(default)]
    label: String,
    /// `pull`, `push`.
    scopes: Vec<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    expires_in_days: Option<i64>,
}

/// Minting a token needs the password itself: a token cannot mint further tokens.
pub async fn create_token(
    State(app): State<AppState>,
    peer: ClientAddr,
    headers: HeaderMap,
    Json(t): Json<NewToken>,
) -> ApiResult {
    let user = password_user(&app, peer, &headers).await?;
    let request = TokenRequest {
        label: t.label,
        can_pull: t.scopes.iter().any(|s| s == "pull"),
        can_push: t.scopes.iter().any(|s| s == "push"),
        namespaces: t.namespaces,
        expires_in_days: t.expires_in_days,
    };
    let (row, secret) = accounts::create_token(&app.db, &user, request).await?;
    let body = json!({ "id": row.id, "token": secret, "expires_at": row.expires_at });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn password_user(
    app: &AppState,
    peer: ClientAddr,
    headers: &HeaderMap,
) -> Result<String, HubError> {
    let bad = || HubError::unauthorized("send your user name and password with HTTP Basic auth");
    let secret_is_token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).ok())
        .is_some_and(|d| String::from_utf8_lossy(&d).contains(accounts::TOKEN_PREFIX));
    if secret_is_token {
        return Err(bad());
    }
    match auth::caller(app, peer.0, headers).await? {
        Caller::User(p) => Ok(p.user),
        _ => Err(bad()),
    }
}

/// The index entry of one package with its versions.
pub async fn package(State(app): State<AppState>, Path(repo): Path<String>) -> ApiResult {
    let p = app.db.package(&repo).await?.ok_or_else(|| {
        HubError::new(
            StatusCode::NOT_FOUND,
            crate::error::Code::NameUnknown,
            format!("no package {repo}"),
        )
    })?;
    let versions = app.db.versions(&repo).await?;
    let signatures = app.db.verified_signatures(&repo).await?;
    let versions: Vec<_> = versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version, "digest": v.digest, "size": v.size, "created": v.created,
                "arch": v.arch, "runtime": v.runtime, "object": v.object,
                "programs": serde_json::from_str::<serde_json::Value>(&v.programs).unwrap_or_default(),
                "downloads": v.downloads, "yanked": v.yanked,
                "signatures": crate::signatures::badges(&signatures, &v.digest),
            })
        })
        .collect();
    Ok(Json(json!({
        "repo": p.repo, "owner": p.owner, "name": p.name, "description": p.description,
        "keywords": p.keywords, "license": p.license, "authors": p.authors, "source": p.source,
        "latest_version": p.latest_version, "downloads": p.downloads, "versions": versions,
    }))
    .into_response())
}

/// `GET /api/v1/search`: a page of packages matching the query and filters
/// ([`SearchQuery::from_params`]), with how many match in all.
pub async fn search(
    State(app): State<AppState>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> ApiResult {
    let s = SearchQuery::from_params(&params, 20).map_err(|why| {
        HubError::new(
            StatusCode::BAD_REQUEST,
            crate::error::Code::Unsupported,
            why,
        )
    })?;
    let found = app.db.search(&s).await?;
    let packages: Vec<_> = found
        .hits
        .iter()
        .map(|h| {
            let p = &h.package;
            json!({
                "repository": p.repo, "owner": p.owner, "name": p.name,
                "latest": p.latest_version, "description": p.description,
                "stars": h.stars, "downloads": p.downloads, "signed": h.signed,
            })
        })
        .collect();
    Ok(Json(json!({
        "total": found.total, "total_is_more": found.more, "page": s.page,
        "per_page": s.per_page, "packages": packages,
    }))
    .into_response())
}

/// The authenticated user of an API call that changes something; `push` asks a token for
/// its push scope (yanking is publishing).
pub(crate) async fn api_user(
    app: &AppState,
    peer: ClientAddr,
    headers: &HeaderMap,
    push: bool,
) -> Result<String, HubError> {
    match auth::caller(app, peer.0, headers).await? {
        Caller::User(p) if push && !p.can_push => Err(HubError::denied(
            "this token has no push scope; mint one with scope push",
        )),
        Caller::User(p) => Ok(p.user),
        Caller::Invalid => Err(HubError::unauthorized(
            "the credentials are wrong or expired; log in again (cargo ebpf login HUB)",
        )),
        Caller::Anonymous => session_user(app, headers).await,
    }
}

/// A browser's session, accepted only with the CSRF value in `X-Hub-Csrf`.
async fn session_user(app: &AppState, headers: &HeaderMap) -> Result<String, HubError> {
    let none = || {
        HubError::unauthorized(
            "log in first: send a token with HTTP Basic auth (user:token), or use the web page",
        )
    };
    let secret = crate::web::cookie(headers, crate::web::SESSION_COOKIE).ok_or_else(none)?;
    let csrf_header = headers.get("x-hub-csrf").and_then(|v| v.to_str().ok());
    if !csrf_header.is_some_and(|h| crate::web::csrf_matches(app, headers, h)) {
        return Err(HubError::denied(
            "a session needs the page's CSRF value in X-Hub-Csrf; reload the page and retry",
        ));
    }
    let hash = ebpf_package::digest::sha256(secret.as_bytes());
    app.db.session_user(&hash).await?.ok_or_else(none)
}

/// `POST /api/v1/packages/USER/NAME/versions/VERSION/{yank,unyank}` (owner only).
pub async fn package_action(
    State(app): State<AppState>,
    peer: ClientAddr,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> ApiResult {
    let (rest, action) = path.rsplit_once('/').unwrap_or(("", &path));
    let yanked = match action {
        "yank" => true,
        "unyank" => false,
        _ => return Err(not_found(&path).into()),
    };
    let (repo, version) = rest
        .split_once("/versions/")
        .ok_or_else(|| not_found(&path))?;
    let user = api_user(&app, peer, &headers, true).await?;
    crate::yank::set(&app.db, &user, repo, version, yanked).await?;
    let latest = app.db.latest_version(repo).await?;
    let body =
        json!({ "repo": repo, "version": version, "yanked": yanked, "latest_version": latest });
    Ok(Json(body).into_response())
}

fn not_found(path: &str) -> HubError {
    HubError::new(
        StatusCode::NOT_FOUND,
        crate::error::Code::NotFound,
        format!(
            "no API at /api/v1/packages/{path}; use POST /api/v1/packages/USER/NAME/versions/VERSION/yank (or /unyank)"
        ),
    )
}

/// `GET /api/v1/users/USER/keys`: public, so anyone can check who signed what.
pub async fn keys(State(app): State<AppState>, Path(user): Path<String>) -> ApiResult {
    let keys = app.db.keys(&user).await?;
    let keys: Vec<_> = keys.iter().map(crate::keys::json).collect();
    Ok(Json(json!({ "user": user, "keys": keys })).into_response())
}

#[derive(Deserialize)]
pub struct NewKey {
    pem: String,
    #[serde(default)]
    label: String,
}

/// `POST /api/v1/users/USER/keys` `{"pem": "...", "label": "..."}` (that user only).
pub async fn add_key(
    State(app): State<AppState>,
    peer: ClientAddr,
    headers: HeaderMap,
    Path(user): Path<String>,
    Json(k): Json<NewKey>,
) -> ApiResult {
    own_profile(&app, peer, &headers, &user).await?;
    let row = crate::keys::register(&app.db, &user, &k.pem, &k.label).await?;
    Ok((StatusCode::CREATED, Json(crate::keys::json(&row))).into_response())
}

/// `DELETE /api/v1/users/USER/keys/SHA256:…` (that user only).
pub async fn delete_key(
    State(app): State<AppState>,
    peer: ClientAddr,
    headers: HeaderMap,
    Path((user, fingerprint)): Path<(String, String)>,
) -> ApiResult {
    own_profile(&app, peer, &headers, &user).await?;
    if !app.db.delete_key(&user, &fingerprint).await? {
        return Err(HubError::new(
            StatusCode::NOT_FOUND,
            crate::error::Code::NotFound,
            format!("{user} has no key {fingerprint}; GET /api/v1/users/{user}/keys lists them"),
        )
        .into());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn own_profile(
    app: &AppState,
    peer: ClientAddr,
    headers: &HeaderMap,
    user: &str,
) -> Result<(), HubError> {
    let caller = api_user(app, peer, headers, true).await?;
    if caller != user {
        return Err(HubError::denied(format!(
            "you are {caller}: only {user} can change {user}'s keys"
        )));
    }
    Ok(())
}
