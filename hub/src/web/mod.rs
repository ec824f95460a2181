//! The web face: server-rendered pages (no JavaScript needed) over the same database.
//!
//! Templates are handlebars, already the workspace's template engine (template packs): HTML
//! escaping by default, templates readable as plain HTML, no new compile-time machinery.
//!
//! Sessions: a random cookie secret whose SHA-256 is the key of a `sessions` row (shared by
//! several hub processes). CSRF: every browser gets a random `hub_csrf` nonce cookie
//! (SameSite=Lax); its forms carry HMAC(hub key, nonce, session secret), which only the
//! hub can compute. A cross-site form can send the cookies but cannot read the page to fill
//! the field, and an attacker who plants a cookie of their choosing still cannot make a
//! matching field; the value is bound to the session, and login rotates the nonce.
//! Cookies are `Secure` when the hub runs behind TLS (`--secure-cookies`).

mod forms;
mod manage;
pub mod markdown;
mod package;
mod pages;
mod people;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use handlebars::Handlebars;
use serde_json::{json, Value};

use crate::blobs::random_id;
use crate::AppState;
use ebpf_package::digest;

pub const SESSION_COOKIE: &str = "hub_session";
pub const CSRF_COOKIE: &str = "hub_csrf";
/// How long a login lasts.
pub const SESSION_SECS: i64 = 14 * 86_400;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/search", get(pages::search))
        .route("/about", get(pages::about))
        .route("/u/{user}", get(people::user))
        .route("/u/{user}/{which}", get(people::people_list))
        .route("/u/{user}/follow", post(people::follow))
        .route("/settings", get(people::settings_page))
        .route("/settings/profile", post(people::save_profile))
        .route("/settings/password", post(people::change_password))
        .route("/dashboard", get(manage::dashboard))
        .route("/dashboard/p/{*path}", post(manage::package_edit))
        .route("/admin", get(manage::admin_page))
        .route("/admin/action", post(manage::admin_action))
        .route("/u/{user}/keys", post(forms::add_key))
        .route("/u/{user}/keys/delete", post(forms::delete_key))
        .route(
            "/p/{*path}",
            get(pages::package).post(forms::package_action),
        )
        .route("/register", get(forms::register_page).post(forms::register))
        .route("/login", get(forms::login_page).post(forms::login))
        .route("/logout", post(forms::logout))
        .route("/tokens", get(forms::tokens_page).post(forms::create_token))
        .route("/tokens/{id}/delete", post(forms::delete_token))
        .route("/favicon.ico", get(|| asset("logo.svg")))
        .route(
            "/assets/{name}",
            get(|Path(name): Path<String>| asset_named(name)),
        )
}

/// The stylesheet, script and logo, built into the binary: the hub needs no CDN and works
/// offline.
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "hub.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/hub.css"),
    ),
    (
        "hub.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/hub.js"),
    ),
    (
        "logo.svg",
        "image/svg+xml",
        include_str!("../../assets/logo.svg"),
    ),
];

async fn asset_named(name: String) -> Response {
    asset(&name).await
}

async fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, ..)| *n == name) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

pub fn templates() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    for (name, text) in [
        ("layout", include_str!("../../templates/layout.hbs")),
        ("list", include_str!("../../templates/list.hbs")),
        ("home", include_str!("../../templates/home.hbs")),
        ("search", include_str!("../../templates/search.hbs")),
        ("package", include_str!("../../templates/package.hbs")),
        ("user", include_str!("../../templates/user.hbs")),
        ("about", include_str!("../../templates/about.hbs")),
        ("register", include_str!("../../templates/register.hbs")),
        ("tokens", include_str!("../../templates/tokens.hbs")),
        ("error", include_str!("../../templates/error.hbs")),
        ("people", include_str!("../../templates/people.hbs")),
        ("settings", include_str!("../../templates/settings.hbs")),
        ("dashboard", include_str!("../../templates/dashboard.hbs")),
        ("admin", include_str!("../../templates/admin.hbs")),
    ] {
        hb.register_template_string(name, text)
            .unwrap_or_else(|e| panic!("template {name}: {e}"));
    }
    hb
}

/// Who is looking at a page: their user (if logged in) and the CSRF value for forms.
pub struct Visitor {
    pub user: Option<String>,
    /// The value forms must carry: derived from the nonce and the session.
    pub csrf: String,
    /// The browser's CSRF nonce (its `hub_csrf` cookie), or a fresh one.
    nonce: String,
    /// A fresh CSRF cookie to set when the browser had none.
    new_csrf: bool,
    pub host: String,
    secure: bool,
}

/// The key CSRF values are derived with: one per hub database, so every process agrees.
pub async fn csrf_key(db: &crate::db::Db) -> crate::error::HubResult<[u8; 32]> {
    let fresh = format!("{}{}", random_id(), random_id());
    let hex_key = db.secret("csrf", &fresh).await?;
    Ok(digest::sha256(hex_key.as_bytes())
        .strip_prefix("sha256:")
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok())
        .expect("a sha256 digest"))
}

/// The CSRF value for `nonce` in the session `session` (empty when logged out).
pub fn csrf_value(key: &[u8; 32], nonce: &str, session: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(nonce.as_bytes());
    mac.update(b"\n");
    mac.update(session.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// Whether `field` is the CSRF value of the browser's nonce cookie and session.
pub fn csrf_matches(app: &AppState, headers: &HeaderMap, field: &str) -> bool {
    let Some(nonce) = cookie(headers, CSRF_COOKIE).filter(|c| valid_nonce(c)) else {
        return false;
    };
    let session = cookie(headers, SESSION_COOKIE).unwrap_or("");
    let expected = csrf_value(&app.csrf_key, nonce, session);
    constant_time_eq(expected.as_bytes(), field.as_bytes())
}

fn valid_nonce(c: &str) -> bool {
    c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A `Set-Cookie` value with the hub's attributes (`Secure` behind TLS).
pub fn set_cookie(secure: bool, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("ASCII cookie")
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub async fn visitor(app: &AppState, headers: &HeaderMap) -> Visitor {
    let user = match cookie(headers, SESSION_COOKIE) {
        Some(secret) => app
            .db
            .session_user(&digest::sha256(secret.as_bytes()))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let existing = cookie(headers, CSRF_COOKIE).filter(|c| valid_nonce(c));
    let nonce = existing.map(str::to_string).unwrap_or_else(random_id);
    // Bound to the session only while it is a live one (an expired cookie counts as none).
    let session = match &user {
        Some(_) => cookie(headers, SESSION_COOKIE).unwrap_or(""),
        None => "",
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b))
        })
        .unwrap_or("localhost")
        .to_string();
    Visitor {
        user,
        csrf: csrf_value(&app.csrf_key, &nonce, session),
        nonce,
        new_csrf: existing.is_none(),
        host,
        secure: app.secure_cookies,
    }
}

impl Visitor {
    /// Whether a form's `csrf` field is this browser's CSRF value.
    pub fn csrf_ok(&self, field: &str) -> bool {
        !self.new_csrf && constant_time_eq(self.csrf.as_bytes(), field.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Renders `page` with `data` inside the layout.
pub fn render(app: &AppState, v: &Visitor, title: &str, page: &str, mut data: Value) -> Response {
    data["csrf"] = json!(v.csrf);
    data["user"] = json!(v.user);
    data["host"] = json!(v.host);
    let body = match app.templates.render(page, &data) {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("template {page}: {e}"),
            )
                .into_response()
        }
    };
    let query = data.get("query").cloned().unwrap_or(json!(""));
    let layout =
        json!({ "title": title, "body": body, "user": v.user, "csrf": v.csrf, "query": query });
    let html = match app.templates.render("layout", &layout) {
        Ok(h) => h,
        Err(e) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("layout: {e}")).into_response()
        }
    };
    let mut response = Html(html).into_response();
    if v.new_csrf {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(v.secure, CSRF_COOKIE, &v.nonce, None),
        );
    }
    response
}

pub fn error_page(
    app: &AppState,
    v: &Visitor,
    status: StatusCode,
    heading: &str,
    message: &str,
) -> Response {
    let mut r = render(
        app,
        v,
        heading,
        "error",
        json!({ "heading": heading, "message": message }),
    );
    *r.status_mut() = status;
    r
}

/// `YYYY-MM-DD` of a Unix time (UTC), for tables.
pub fn date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant's public-domain algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(1_767_225_600), "2026-01-01");
        assert_eq!(super::date(951_782_400), "2000-02-29");
    }

    #[test]
    fn templates_parse() {
        super::templates();
    }
}
