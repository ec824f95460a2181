//! The pages that change things: register, login/logout, API tokens, stars. Every POST
//! checks the CSRF field against the browser's CSRF cookie first.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde_json::json;

use super::{
    date, error_page, render, set_cookie, visitor, Visitor, CSRF_COOKIE, SESSION_COOKIE,
    SESSION_SECS,
};
use crate::accounts::{self, TokenRequest};
use crate::auth::ClientAddr;
use crate::blobs::random_id;
use crate::db::now;
use crate::AppState;
use ebpf_package::digest;

type Fields = Form<HashMap<String, String>>;

pub(super) fn field<'a>(f: &'a HashMap<String, String>, k: &str) -> &'a str {
    f.get(k).map(String::as_str).unwrap_or("")
}

fn forbidden(app: &AppState, v: &Visitor) -> Response {
    error_page(
        app,
        v,
        StatusCode::FORBIDDEN,
        "Form expired",
        "The form was stale or came from another site; go back, reload and try again.",
    )
}

fn too_many(app: &AppState, v: &Visitor) -> Response {
    error_page(
        app,
        v,
        StatusCode::TOO_MANY_REQUESTS,
        "Slow down",
        "Too many attempts from your address; wait a minute.",
    )
}

/// The checks every form post passes first: its CSRF value, then (for register) the
/// per-address rate limit (login is limited where the password is checked). `Some` is the
/// refusal page to answer with.
pub(super) async fn refused(
    app: &AppState,
    v: &Visitor,
    f: &HashMap<String, String>,
    limit: Option<(&crate::rate::Limit, ClientAddr)>,
) -> Option<Response> {
    if !v.csrf_ok(field(f, "csrf")) {
        return Some(forbidden(app, v));
    }
    let (limit, peer) = limit?;
    match limit.allow(&app.db, &crate::rate::address(peer.0)).await {
        Ok(true) => None,
        Ok(false) => Some(too_many(app, v)),
        Err(e) => Some(error_page(app, v, e.status, "Error", &e.message)),
    }
}

fn account_form(
    app: &AppState,
    v: &Visitor,
    register: bool,
    name: &str,
    error: Option<&str>,
) -> Response {
    let (heading, action) = if register {
        ("Register", "/register")
    } else {
        ("Log in", "/login")
    };
    let data = json!({ "heading": heading, "action": action, "register": register, "name": name, "error": error });
    let mut r = render(app, v, heading, "register", data);
    if error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

pub async fn register_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let v = visitor(&app, &headers).await;
    account_form(&app, &v, true, "", None)
}

pub async fn login_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let v = visitor(&app, &headers).await;
    account_form(&app, &v, false, "", None)
}

pub async fn register(
    State(app): State<AppState>,
    peer: ClientAddr,
    headers: HeaderMap,
    Form(f): Fields,
) -> Response {
    let v = visitor(&app, &headers).await;
    if let Some(refusal) = refused(&app, &v, &f, Some((&app.limits.register, peer))).await {
        return refusal;
    }
    let name = field(&f, "name");
    match accounts::register(&app.db, name, field(&f, "email"), field(&f, "password")).await {
        Ok(()) => start_session(&app, name).await,
        Err(e) => account_form(&app, &v, true, name, Some(&e.message)),
    }
}

pub async fn login(
    State(app): State<AppState>,
    peer: ClientAddr,
    headers: HeaderMap,
    Form(f): Fields,
) -> Response {
    let v = visitor(&app, &headers).await;
    if let Some(refusal) = refused(&app, &v, &f, None).await {
        return refusal;
    }
    let name = field(&f, "name");
    match crate::auth::check_password(&app, peer.0, name, field(&f, "password")).await {
        Ok(Some(user)) => start_session(&app, &user).await,
        Ok(None) => account_form(&app, &v, false, name, Some("Wrong user name or password.")),
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => too_many(&app, &v),
        Err(e) => error_page(&app, &v, e.status, "Error", &e.message),
    }
}

/// Creates a session and sends the browser to the user's page with its cookie, and a new
/// CSRF nonce: values a page showed before the login are void after it.
async fn start_session(app: &AppState, user: &str) -> Response {
    let secret = format!("{}{}", random_id(), random_id());
    if let Err(e) = app
        .db
        .add_session(
            &digest::sha256(secret.as_bytes()),
            user,
            now() + SESSION_SECS,
        )
        .await
    {
        return e.text_response();
    }
    let secure = app.secure_cookies;
    let mut r = Redirect::to(&format!("/u/{user}")).into_response();
    let cookies = r.headers_mut();
    let session = set_cookie(secure, SESSION_COOKIE, &secret, Some(SESSION_SECS));
    cookies.append(header::SET_COOKIE, session);
    let nonce = set_cookie(secure, CSRF_COOKIE, &random_id(), None);
    cookies.append(header::SET_COOKIE, nonce);
    r
}

pub async fn logout(State(app): State<AppState>, headers: HeaderMap, Form(f): Fields) -> Response {
    let v = visitor(&app, &headers).await;
    if let Some(refusal) = refused(&app, &v, &f, None).await {
        return refusal;
    }
    if let Some(secret) = super::cookie(&headers, SESSION_COOKIE) {
        let _ = app
            .db
            .delete_session(&digest::sha256(secret.as_bytes()))
            .await;
    }
    let mut r = Redirect::to("/").into_response();
    let gone = set_cookie(app.secure_cookies, SESSION_COOKIE, "", Some(0));
    r.headers_mut().append(header::SET_COOKIE, gone);
    r
}

async fn tokens_view(
    app: &AppState,
    v: &Visitor,
    user: &str,
    created: Option<&str>,
    error: Option<&str>,
) -> Response {
    let tokens = app.db.tokens_of(user).await.unwrap_or_default();
    let tokens: Vec<_> = tokens
        .iter()
        .map(|t| {
            let scopes: Vec<&str> = [(t.can_pull, "pull"), (t.can_push, "push")].iter().filter(|(on, _)| *on).map(|(_, s)| *s).collect();
            json!({
                "id": t.id, "label": t.label, "scopes": scopes.join(", "),
                "namespaces": if t.namespaces.is_empty() { format!("{user}/*") } else { t.namespaces.join(", ") },
                "expires": t.expires_at.map(date).unwrap_or_else(|| "never".into()),
            })
        })
        .collect();
    let mut r = render(
        app,
        v,
        "API tokens",
        "tokens",
        json!({ "tokens": tokens, "created": created, "error": error }),
    );
    if error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

pub async fn tokens_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let v = visitor(&app, &headers).await;
    let Some(user) = v.user.clone() else {
        return Redirect::to("/login").into_response();
    };
    tokens_view(&app, &v, &user, None, None).await
}

pub async fn create_token(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Fields,
) -> Response {
    let v = visitor(&app, &headers).await;
    if let Some(refusal) = refused(&app, &v, &f, None).await {
        return refusal;
    }
    let Some(user) = v.user.clone() else {
        return Redirect::to("/login").into_response();
    };
    let request = TokenRequest {
        label: field(&f, "label").chars().take(100).collect(),
        can_pull: field(&f, "pull") == "on",
        can_push: field(&f, "push") == "on",
        namespaces: field(&f, "namespaces")
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        expires_in_days: field(&f, "days").parse().ok(),
    };
    match accounts::create_token(&app.db, &user, request).await {
        Ok((_, secret)) => tokens_view(&app, &v, &user, Some(&secret), None).await,
        Err(e) => tokens_view(&app, &v, &user, None, Some(&e.message)).await,
    }
}

pub async fn delete_token(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Fields,
) -> Response {
    let v = visitor(&app, &headers).await;
    if let Some(refusal) = refused(&app, &v, &f, None).await {
        return refusal;
    }
    let Some(user) = v.user.clone() else {
        return Redirect::to("/login").into_response();
    };
    let _ = app.db.delete_token(&user, &id).await;
    Redirect::to("/tokens").into_response()
}

/// `POST /p/OWNER/NAME/star`: toggles the visitor's star.
pub async fn package_action(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(path): Path<String>,
    Form(f): Fields,
) -> Response {
    let v = visitor(&app, &headers).await;
    if let Some(refusal) = refused(&app, &v, &f, None).await {
        return refusal;
    }
    let Some(user) = v.user.clone() else {
        return Redirect::to("/login").into_response();
    };
    if let Some((repo, version, yanked)) = yank_action(&path) {
        return match crate::yank::set(&app.db, &user, repo, version, yanked).await {
            Ok(()) => Redirect::to(&format!("/p/{repo}")).into_response(),
            Err(e) => error_page(&app, &v, e.status, "Cannot yank", &e.message),
        };
    }
    let Some(repo) = path.strip_suffix("/star") else {
        return error_page(
            &app,
            &v,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such action.",
        );
    };
    if !matches!(app.db.package(repo).await, Ok(Some(_))) {
        return error_page(&app, &v, StatusCode::NOT_FOUND, "No such package", repo);
    }
    let _ = app.db.toggle_star(&user, repo).await;
    Redirect::to(&format!("/p/{repo}")).into_response()
}

/// `OWNER/NAME/versions/VERSION/yank` (or `unyank`): the repository, version and new state.
fn yank_action(path: &str) -> Option<(&str, &str, bool)> {
    let (rest, action) = path.rsplit_once('/')?;
    let yanked = match action {
        "yank" => true,
        "unyank" => false,
        _ => return None,
    };
    let (repo, version) = rest.split_once("/versions/")?;
    Some((repo, version, yanked))
}

/// `POST /u/USER/keys`: adds a key to your own profile.
pub async fn add_key(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Fields,
) -> Response {
    key_action(app, headers, name, true, f).await
}

/// `POST /u/USER/keys/delete`: removes one of your keys.
pub async fn delete_key(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Fields,
) -> Response {
    key_action(app, headers, name, false, f).await
}

async fn key_action(
    app: AppState,
    headers: HeaderMap,
    name: String,
    add: bool,
    f: HashMap<String, String>,
) -> Response {
    let v = visitor(&app, &headers).await;
    if let Some(refusal) = refused(&app, &v, &f, None).await {
        return refusal;
    }
    if v.user.as_deref() != Some(name.as_str()) {
        let why = "Log in as this user to change their keys.";
        return error_page(&app, &v, StatusCode::FORBIDDEN, "Not your profile", why);
    }
    let done = match add {
        true => crate::keys::register(&app.db, &name, field(&f, "pem"), field(&f, "label"))
            .await
            .map(|_| ()),
        _ => app
            .db
            .delete_key(&name, field(&f, "fingerprint"))
            .await
            .map(|_| ()),
    };
    match done {
        Ok(()) => Redirect::to(&format!("/u/{name}")).into_response(),
        Err(e) => error_page(&app, &v, e.status, "Key not changed", &e.message),
    }
}
