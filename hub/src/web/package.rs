//! The package page (`/p/OWNER/NAME`, `?version=V`) and each version's own page
//! (`/p/OWNER/NAME/v/VERSION`): header with badges, a side panel (run command with a copy
//! button, download, size, platforms, license, source), sections for the README, the
//! versions, programs and maps, params and event fields, what running it does on the host
//! ([`Plan::of`], as `ebpf-runner inspect` prints it), and a downloads chart drawn as
//! inline SVG on the server (no script needed).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{date, error_page, render, Visitor};
use crate::db::{PackageRow, VersionRow};
use crate::error::HubError;
use crate::AppState;
use ebpf_package::decode::kind_name;
use ebpf_package::plan::Plan;
use ebpf_package::spec::PackageMeta;

/// Days the downloads chart covers.
const CHART_DAYS: i64 = 30;

/// The page of `repo` showing `version` (None: the latest offered one).
pub async fn page(app: &AppState, v: &Visitor, repo: &str, version: Option<&str>) -> Response {
    let not_found = |what: &str, msg: String| error_page(app, v, StatusCode::NOT_FOUND, what, &msg);
    let Ok(Some(p)) = app.db.package(repo).await else {
        return not_found("No such package", format!("There is no package {repo}."));
    };
    let (versions, signatures, flags) = match (
        app.db.versions(repo).await,
        app.db.verified_signatures(repo).await,
        app.db.package_flags(repo).await,
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => return HubError::internal("database error").text_response(),
    };
    // A hidden package is shown only to its owner and the admins.
    if flags.hidden && v.user.as_deref() != Some(p.owner.as_str()) && !is_admin(app, v).await {
        return not_found("No such package", format!("There is no package {repo}."));
    }
    let wanted = version.unwrap_or(&p.latest_version);
    let shown = versions.iter().find(|x| x.version == wanted);
    if version.is_some() && shown.is_none() {
        return not_found(
            "No such version",
            format!("{repo} has no version {wanted}."),
        );
    }
    let readme = app.db.readme(repo).await.unwrap_or_default();
    let readme_html = (!readme.trim().is_empty()).then(|| super::markdown::render(&readme));
    let starred = match &v.user {
        Some(u) => app.db.is_starred(u, repo).await.unwrap_or(false),
        None => false,
    };
    let days = app
        .db
        .downloads_by_day(repo, CHART_DAYS)
        .await
        .unwrap_or_default();
    let mut shown_json = shown.map(|s| version_details(v, &p, s, &signatures));
    if let (Some(s), Some(json)) = (shown, shown_json.as_mut()) {
        if let Ok(Some(m)) = app.db.kernel_matrix(repo, &s.digest).await {
            json["kernel_matrix"] = kernel_matrix_json(&m);
        }
    }
    let publisher_verified = shown
        .map(|s| crate::signatures::badges(&signatures, &s.digest))
        .unwrap_or_default()
        .iter()
        .any(|b| b["key_owner"] == json!(p.owner));
    let data = json!({
        "p": package_json(&p),
        "deprecated": flags.deprecated,
        "hidden": flags.hidden,
        "shown": shown_json,
        "version_page": version.is_some(),
        "is_latest": shown.is_some_and(|s| s.version == p.latest_version),
        "publisher_verified": publisher_verified,
        "readme_html": readme_html,
        "versions": versions.iter().map(|x| json!({
            "version": x.version, "date": date(x.pushed_at), "yanked": x.yanked,
            "size": human_size(x.size), "downloads": x.downloads,
            "badges": crate::signatures::badges(&signatures, &x.digest),
            "current": shown.is_some_and(|s| s.version == x.version),
        })).collect::<Vec<_>>(),
        "owner": v.user.as_deref() == Some(p.owner.as_str()),
        "stars": app.db.star_count(repo).await.unwrap_or(0),
        "starred": starred,
        "chart_svg": chart(&days),
        "downloads_30d": days.iter().sum::<i64>(),
    });
    let title = match (version, shown) {
        (Some(_), Some(s)) => format!("{repo} {}", s.version),
        _ => repo.to_string(),
    };
    render(app, v, &title, "package", data)
}

async fn is_admin(app: &AppState, v: &Visitor) -> bool {
    match &v.user {
        Some(u) => matches!(app.db.profile(u).await, Ok(Some(p)) if p.is_admin),
        None => false,
    }
}

fn package_json(p: &PackageRow) -> Value {
    // Only web links become anchors: a `javascript:` source must not be clickable.
    let web = |s: &str| match s.starts_with("https://") || s.starts_with("http://") {
        true => s.to_string(),
        false => String::new(),
    };
    json!({
        "repo": p.repo, "owner": p.owner, "name": p.name, "description": p.description,
        "license": p.license, "authors": p.authors, "keywords": p.keywords,
        "downloads": p.downloads, "latest": p.latest_version, "source": web(&p.source),
    })
}

/// A verified kernel matrix for the page: its rows, who signed it, the series it loads from.
fn kernel_matrix_json(m: &crate::db::MatrixRow) -> Value {
    let matrix: Value = serde_json::from_str(&m.matrix).unwrap_or(json!({}));
    let rows = matrix["kernels"].as_array().cloned().unwrap_or_default();
    json!({
        "count": rows.len(),
        "rows": rows,
        "fingerprint": m.fingerprint, "key_owner": m.key_owner,
        "loads_from": m.loads_from.map(ebpf_package::kernel_matrix::series_text),
    })
}

/// Everything the page says about one version.
fn version_details(
    v: &Visitor,
    p: &PackageRow,
    s: &VersionRow,
    signatures: &[crate::db::VerifiedSignature],
) -> Value {
    let meta: Option<PackageMeta> = serde_json::from_str(&s.meta).ok();
    let programs: Value = match &meta {
        Some(m) => json!(m.programs),
        None => serde_json::from_str(&s.programs).unwrap_or(json!([])),
    };
    let (maps, params, events, plan) = match &meta {
        Some(m) => (
            json!(m.maps),
            json!(m
                .params
                .iter()
                .map(|x| json!({
                    "flag": x.flag, "type": kind_name(&x.ty), "default": x.default.to_string(),
                    "description": x.description,
                }))
                .collect::<Vec<_>>()),
            events_json(m),
            Some(plan_json(&Plan::of(m))),
        ),
        None => (json!([]), json!([]), json!([]), None),
    };
    json!({
        "version": s.version, "digest": s.digest, "size": human_size(s.size),
        "bytes": s.size, "date": date(s.pushed_at), "created": s.created,
        "platforms": s.arch, "runtime": s.runtime, "format": s.format, "object": s.object,
        "yanked": s.yanked, "downloads": s.downloads,
        "badges": crate::signatures::badges(signatures, &s.digest),
        "run": format!("sudo cargo ebpf run {}/{}:{}", v.host, p.repo, s.version),
        "download": (!s.object.is_empty()).then(|| format!("/p/{}/download/{}", p.repo, s.version)),
        "programs": programs, "maps": maps, "params": params, "events": events, "plan": plan,
    })
}

/// Each event map with its type's fields.
fn events_json(m: &PackageMeta) -> Value {
    json!(m
        .events
        .iter()
        .map(|e| {
            let fields = match m.types.get(&e.type_name) {
                Some(ebpf_package::spec::TypeLayout::Struct { fields, .. }) => fields
                    .iter()
                    .map(|f| json!({"name": f.name, "type": kind_name(&f.ty)}))
                    .collect(),
                _ => vec![],
            };
            json!({"map": e.map, "type": e.type_name, "fields": fields})
        })
        .collect::<Vec<_>>())
}

/// The plan with the process flattened for the template.
fn plan_json(plan: &Plan) -> Value {
    let mut value = json!(plan);
    if let Some(start) = value.get_mut("starts") {
        let kind = start["kind"].as_str().unwrap_or("").to_string();
        start[kind.replace('-', "_")] = json!(true);
    }
    value
}

/// `1.2 KiB`, for people; the exact byte count is in the title attribute.
pub fn human_size(bytes: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < units.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{size:.1} {}", units[unit]),
    }
}

/// A bar chart of `days` (oldest first) as inline SVG: numbers only, no user text, so it
/// is safe to embed unescaped.
pub fn chart(days: &[i64]) -> String {
    let (w, h, bar) = (300i64, 60i64, 10i64);
    let max = days.iter().copied().max().unwrap_or(0).max(1);
    let total: i64 = days.iter().sum();
    let mut svg = format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" \
         width=\"{w}\" height=\"{h}\" role=\"img\" aria-labelledby=\"chart-title\">\
         <title id=\"chart-title\">{total} downloads in the last {} days</title>\
         <line x1=\"0\" y1=\"{y}\" x2=\"{w}\" y2=\"{y}\" class=\"axis\"/>",
        days.len(),
        y = h - 1
    );
    for (i, n) in days.iter().enumerate() {
        let height = if *n == 0 {
            0
        } else {
            (n * (h - 4) / max).max(2)
        };
        svg.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{height}\" class=\"bar\"><title>{n}</title></rect>",
            i as i64 * bar,
            h - 1 - height,
            bar - 2,
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_charts() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(2048), "2.0 KiB");
        let svg = chart(&[0, 3, 6]);
        assert!(svg.contains("9 downloads in the last 3 days"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(svg.contains("height=\"56\""), "{svg}");
    }
}
