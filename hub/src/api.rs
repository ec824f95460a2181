//! A small JSON API for what registry clients cannot do: register, mint API tokens, read
//! the package index. The web pages call the same functions in `accounts` and `db`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::accounts::{self, TokenRequest};
use crate::auth::{self, Caller};
use crate::AppState;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

#[derive(Deserialize)]
pub struct Register {
    name: String,
    password: String,
    #[serde(default)]
    email: String,
}

pub async fn register(State(app): State<AppState>, Json(r): Json<Register>) -> Response {
    match accounts::register(&app.db, &r.name, &r.email, &r.password).await {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "name": r.name }))).into_response(),
        Err(m) => error(StatusCode::BAD_REQUEST, m),
    }
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
) -> Response {
    let user = match password_user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let request = TokenRequest {
        label: t.label,
        can_pull: t.scopes.iter().any(|s| s == "pull"),
        can_push: t.scopes.iter().any(|s| s == "push"),
        namespaces: t.namespaces,
        expires_in_days: t.expires_in_days,
    };
    match accounts::create_token(&app.db, &user, request).await {
        Ok((row, secret)) => (
            StatusCode::CREATED,
            Json(json!({ "id": row.id, "token": secret, "expires_at": row.expires_at })),
        )
            .into_response(),
        Err(m) => error(StatusCode::BAD_REQUEST, m),
    }
}

async fn password_user(app: &AppState, headers: &HeaderMap) -> Result<String, Response> {
    let bad = || {
        error(
            StatusCode::UNAUTHORIZED,
            "send your user name and password with HTTP Basic auth",
        )
    };
    let secret_is_token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).ok())
        .is_some_and(|d| String::from_utf8_lossy(&d).contains(accounts::TOKEN_PREFIX));
    if secret_is_token {
        return Err(bad());
    }
    match auth::caller(&app.db, headers).await {
        Ok(Caller::User(p)) => Ok(p.user),
        Ok(_) => Err(bad()),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// The index entry of one package with its versions.
pub async fn package(State(app): State<AppState>, Path(repo): Path<String>) -> Response {
    let p = match app.db.package(&repo).await {
        Ok(Some(p)) => p,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no package {repo}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
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
    Json(json!({
        "repo": p.repo, "owner": p.owner, "name": p.name, "description": p.description,
        "keywords": p.keywords, "license": p.license, "authors": p.authors, "source": p.source,
        "latest_version": p.latest_version, "downloads": p.downloads, "versions": versions,
    }))
    .into_response()
}
