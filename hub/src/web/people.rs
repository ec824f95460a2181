//! People's pages: a profile (display name, bio, links, a generated avatar, packages,
//! stars, keys, followers), follow/unfollow, the follower and following lists, and the
//! settings page (profile and password). Every POST passes the CSRF check first.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde_json::json;

use super::forms::{field, refused};
use super::pages::cards;
use super::{date, error_page, render, visitor, Visitor};
use crate::AppState;

/// Longest display name, bio, and number of links a profile keeps.
const MAX_DISPLAY_NAME: usize = 80;
const MAX_BIO: usize = 1000;
const MAX_LINKS: usize = 5;

/// `GET /u/USER`.
pub async fn user(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let v = visitor(&app, &headers).await;
    let Ok(Some(u)) = app.db.profile(&name).await else {
        let why = format!("There is no user {name}.");
        return error_page(&app, &v, StatusCode::NOT_FOUND, "No such user", &why);
    };
    let db = &app.db;
    let (packages, starred, followers, following) = match (
        db.packages_where("WHERE owner = $1", Some(&name), "repo", 200)
            .await,
        db.starred_by(&name).await,
        db.followers(&name).await,
        db.following(&name).await,
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        _ => return crate::error::HubError::internal("database error").text_response(),
    };
    let keys = db.keys(&name).await.unwrap_or_default();
    let i_follow = match &v.user {
        Some(me) => db.follows(me, &name).await.unwrap_or(false),
        None => false,
    };
    let data = json!({
        "name": u.name, "display_name": u.display_name, "bio": u.bio, "links": u.links,
        "admin": u.is_admin, "disabled": u.disabled, "since": date(u.created_at),
        "keys": keys.iter().map(crate::keys::json).collect::<Vec<_>>(),
        "own": v.user.as_deref() == Some(name.as_str()),
        "packages": cards(db, &packages).await, "starred": cards(db, &starred).await,
        "followers": followers.len(), "following": following.len(), "i_follow": i_follow,
    });
    render(&app, &v, &name, "user", data)
}

/// `GET /u/USER/followers` and `/u/USER/following`.
pub async fn people_list(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((name, which)): Path<(String, String)>,
) -> Response {
    let v = visitor(&app, &headers).await;
    let people = match which.as_str() {
        "followers" => app.db.followers(&name).await,
        "following" => app.db.following(&name).await,
        "avatar.svg" => return avatar(&name),
        _ => {
            return error_page(
                &app,
                &v,
                StatusCode::NOT_FOUND,
                "Not found",
                "No such page.",
            )
        }
    };
    let Ok(people) = people else {
        return crate::error::HubError::internal("database error").text_response();
    };
    let heading = match which.as_str() {
        "followers" => format!("Followers of {name}"),
        _ => format!("Followed by {name}"),
    };
    let data = json!({ "heading": heading, "name": name, "people": people, "which": which });
    render(&app, &v, &heading, "people", data)
}

/// `POST /u/USER/follow` with `follow=1` or `follow=0`.
pub async fn follow(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let (v, me) = match logged_in(&app, &headers, &f).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !matches!(app.db.user(&name).await, Ok(Some(_))) || me == name {
        let why = "You can follow other users who exist.";
        return error_page(&app, &v, StatusCode::BAD_REQUEST, "Cannot follow", why);
    }
    let on = field(&f, "follow") != "0";
    match app.db.set_follow(&me, &name, on).await {
        Ok(()) => Redirect::to(&format!("/u/{name}")).into_response(),
        Err(e) => e.text_response(),
    }
}

/// The visitor of a POST that needs a login: CSRF checked, then the user.
pub async fn logged_in(
    app: &AppState,
    headers: &HeaderMap,
    f: &HashMap<String, String>,
) -> Result<(Visitor, String), Response> {
    let v = visitor(app, headers).await;
    if let Some(refusal) = refused(app, &v, f, None).await {
        return Err(refusal);
    }
    match v.user.clone() {
        Some(u) => Ok((v, u)),
        None => Err(Redirect::to("/login").into_response()),
    }
}

/// `GET /settings`: edit the profile, change the password.
pub async fn settings_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let v = visitor(&app, &headers).await;
    settings(&app, &v, None, None).await
}

async fn settings(
    app: &AppState,
    v: &Visitor,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let Some(me) = &v.user else {
        return Redirect::to("/login").into_response();
    };
    let Ok(Some(p)) = app.db.profile(me).await else {
        return Redirect::to("/login").into_response();
    };
    let data = json!({
        "name": p.name, "display_name": p.display_name, "bio": p.bio,
        "links": p.links.join("\n"), "notice": notice, "error": error,
    });
    render(app, v, "Settings", "settings", data)
}

/// `POST /settings/profile`.
pub async fn save_profile(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let (v, me) = match logged_in(&app, &headers, &f).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let display = field(&f, "display_name").trim();
    let bio = field(&f, "bio").trim();
    let links: Vec<String> = field(&f, "links")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let bad_link = links
        .iter()
        .find(|l| !(l.starts_with("https://") || l.starts_with("http://")) || l.len() > 200);
    let error = if display.chars().count() > MAX_DISPLAY_NAME {
        Some(format!(
            "A display name has at most {MAX_DISPLAY_NAME} characters."
        ))
    } else if bio.chars().count() > MAX_BIO {
        Some(format!("A bio has at most {MAX_BIO} characters."))
    } else if links.len() > MAX_LINKS {
        Some(format!("At most {MAX_LINKS} links."))
    } else {
        bad_link.map(|l| format!("{l:?} is not an http(s) link of at most 200 characters."))
    };
    if let Some(e) = error {
        return settings(&app, &v, None, Some(&e)).await;
    }
    match app.db.save_profile(&me, display, bio, &links).await {
        Ok(()) => settings(&app, &v, Some("Profile saved."), None).await,
        Err(e) => e.text_response(),
    }
}

/// `POST /settings/password`: the current password, then the new one twice.
pub async fn change_password(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let (v, me) = match logged_in(&app, &headers, &f).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (new, again) = (field(&f, "new_password"), field(&f, "new_password_again"));
    if new != again {
        return settings(&app, &v, None, Some("The new passwords differ.")).await;
    }
    match crate::accounts::change_password(&app.db, &me, field(&f, "current_password"), new).await {
        Ok(()) => settings(&app, &v, Some("Password changed."), None).await,
        Err(e) => settings(&app, &v, None, Some(&e.message)).await,
    }
}

/// A symmetric 5×5 identicon from the SHA-256 of the user name, as SVG.
pub fn avatar(name: &str) -> Response {
    let hash = ebpf_package::digest::sha256(name.as_bytes());
    let bytes = hex::decode(&hash["sha256:".len()..]).unwrap_or_default();
    let hue = u16::from(bytes[0]) * 360 / 256;
    let mut cells = String::new();
    for row in 0..5 {
        for col in 0..3 {
            if bytes[1 + row * 3 + col].is_multiple_of(2) {
                for x in [col, 4 - col] {
                    cells.push_str(&format!(
                        "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\"/>",
                        5 + x * 10,
                        5 + row * 10
                    ));
                }
            }
        }
    }
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 60 60\" width=\"60\" height=\"60\">\
         <rect width=\"60\" height=\"60\" fill=\"#f1f3f7\"/>\
         <g fill=\"hsl({hue},55%,38%)\">{cells}</g></svg>"
    );
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        svg,
    )
        .into_response()
}
