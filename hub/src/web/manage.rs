//! Managing packages: the owner's dashboard (every package with its versions: yank and
//! unyank, deprecate with a message, edit the description and keywords) and the admin page
//! (feature and unfeature, hide and unhide a package, disable and enable a user).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde_json::json;

use super::forms::field;
use super::people::logged_in;
use super::{date, error_page, render, visitor};
use crate::error::HubError;
use crate::AppState;

const MAX_DESCRIPTION: usize = 500;
const MAX_KEYWORDS: usize = 10;

/// `GET /dashboard`.
pub async fn dashboard(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let v = visitor(&app, &headers).await;
    let Some(me) = v.user.clone() else {
        return Redirect::to("/login").into_response();
    };
    let Ok(packages) = app.db.packages_of(&me).await else {
        return HubError::internal("database error").text_response();
    };
    let mut rows = Vec::new();
    for p in &packages {
        let versions = app.db.versions(&p.repo).await.unwrap_or_default();
        let flags = app.db.package_flags(&p.repo).await.unwrap_or_default();
        rows.push(json!({
            "repo": p.repo, "description": p.description, "keywords": p.keywords.join(", "),
            "latest": p.latest_version, "deprecated": flags.deprecated, "hidden": flags.hidden,
            "downloads": p.downloads,
            "versions": versions.iter().map(|x| json!({
                "version": x.version, "yanked": x.yanked, "date": date(x.pushed_at),
            })).collect::<Vec<_>>(),
        }));
    }
    let feed = app.db.feed(&me, 20).await.unwrap_or_default();
    let data = json!({
        "packages": rows,
        "feed": feed.iter().map(|f| json!({"repo": f.repo, "version": f.version, "date": date(f.pushed_at)})).collect::<Vec<_>>(),
    });
    render(&app, &v, "Dashboard", "dashboard", data)
}

/// `POST /dashboard/p/OWNER/NAME/{edit,deprecate}` (the owner only).
pub async fn package_edit(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(path): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let (v, me) = match logged_in(&app, &headers, &f).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some((repo, action)) = path.rsplit_once('/') else {
        return error_page(
            &app,
            &v,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such action.",
        );
    };
    if repo.split('/').next() != Some(me.as_str())
        || !matches!(app.db.package(repo).await, Ok(Some(_)))
    {
        let why = format!("You can only manage your own packages; {repo} is not one of them.");
        return error_page(&app, &v, StatusCode::FORBIDDEN, "Not yours", &why);
    }
    let done = match action {
        "deprecate" => {
            let message: String = field(&f, "message").trim().chars().take(300).collect();
            app.db.set_deprecated(repo, &message).await
        }
        "edit" => {
            let description = field(&f, "description").trim();
            let keywords: Vec<String> = field(&f, "keywords")
                .split(',')
                .map(|k| k.trim().to_lowercase())
                .filter(|k| !k.is_empty())
                .collect();
            let bad = keywords.iter().find(|k| {
                k.len() > 30 || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
            if description.chars().count() > MAX_DESCRIPTION
                || keywords.len() > MAX_KEYWORDS
                || bad.is_some()
            {
                let why = format!(
                    "A description has at most {MAX_DESCRIPTION} characters; at most \
                     {MAX_KEYWORDS} keywords of letters, digits and dashes (up to 30 each)."
                );
                return error_page(&app, &v, StatusCode::BAD_REQUEST, "Not saved", &why);
            }
            app.db.edit_package(repo, description, &keywords).await
        }
        _ => {
            return error_page(
                &app,
                &v,
                StatusCode::NOT_FOUND,
                "Not found",
                "No such action.",
            )
        }
    };
    match done {
        Ok(()) => Redirect::to("/dashboard").into_response(),
        Err(e) => e.text_response(),
    }
}

/// `GET /admin` (admins only): every package with its flags, and the users.
pub async fn admin_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let v = visitor(&app, &headers).await;
    if !is_admin(&app, v.user.as_deref()).await {
        let why = "This page is for the hub's admins.";
        return error_page(&app, &v, StatusCode::FORBIDDEN, "Admins only", why);
    }
    let packages = app.db.all_packages_for_admin().await.unwrap_or_default();
    let users = app.db.all_users_for_admin().await.unwrap_or_default();
    let data = json!({
        "packages": packages.iter().map(|(repo, featured, hidden)| json!({
            "repo": repo, "featured": featured, "hidden": hidden,
        })).collect::<Vec<_>>(),
        "users": users.iter().map(|(name, admin, disabled)| json!({
            "name": name, "admin": admin, "disabled": disabled,
        })).collect::<Vec<_>>(),
    });
    render(&app, &v, "Admin", "admin", data)
}

async fn is_admin(app: &AppState, user: Option<&str>) -> bool {
    match user {
        Some(u) => matches!(app.db.profile(u).await, Ok(Some(p)) if p.is_admin && !p.disabled),
        None => false,
    }
}

/// `POST /admin/action` with `target`, `action` (feature, unfeature, hide, unhide,
/// disable, enable).
pub async fn admin_action(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let (v, me) = match logged_in(&app, &headers, &f).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !is_admin(&app, Some(&me)).await {
        let why = "Only the hub's admins can do this.";
        return error_page(&app, &v, StatusCode::FORBIDDEN, "Admins only", why);
    }
    let target = field(&f, "target");
    let done = match field(&f, "action") {
        "feature" => app.db.set_package_flag(target, "featured", true).await,
        "unfeature" => app.db.set_package_flag(target, "featured", false).await,
        "hide" => app.db.set_package_flag(target, "hidden", true).await,
        "unhide" => app.db.set_package_flag(target, "hidden", false).await,
        "disable" if target != me => app.db.set_user_flag(target, "disabled", true).await,
        "enable" => app.db.set_user_flag(target, "disabled", false).await,
        _ => {
            let why = "Unknown action (admins cannot disable themselves).";
            return error_page(&app, &v, StatusCode::BAD_REQUEST, "Not done", why);
        }
    };
    match done {
        Ok(true) => Redirect::to("/admin").into_response(),
        Ok(false) => error_page(&app, &v, StatusCode::NOT_FOUND, "Not found", target),
        Err(e) => e.text_response(),
    }
}
