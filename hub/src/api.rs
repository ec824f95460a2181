//! A small JSON API for what registry clients cannot do: register, mint API tokens, read
//! the package index. The web pages call the same functions in `accounts` and `db`.
//! Failures are [`HubError`]s answered as `{"error": message}`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::accounts::{self, TokenRequest};
use crate::auth::{self, Caller};
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

pub async fn register(State(app): State<AppState>, Json(r): Json<Register>) -> ApiResult {
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
    headers: HeaderMap,
    Json(t): Json<NewToken>,
) -> ApiResult {
    let user = password_user(&app, &headers).await?;
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

async fn password_user(app: &AppState, headers: &HeaderMap) -> Result<String, HubError> {
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
    match auth::caller(&app.db, headers).await? {
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
    let versions = app.db.versions(&repo).await.unwrap_or_default();
    let versions: Vec<_> = versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version, "digest": v.digest, "size": v.size, "created": v.created,
                "arch": v.arch, "runtime": v.runtime, "object": v.object,
                "programs": serde_json::from_str::<serde_json::Value>(&v.programs).unwrap_or_default(),
                "downloads": v.downloads,
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
