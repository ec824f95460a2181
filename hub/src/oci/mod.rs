//! The OCI Distribution API under `/v2/`.
//!
//! Repository names contain slashes (`user/name`), which a router's path patterns cannot
//! split, so every `/v2/…` request lands in [`dispatch`], which finds the operation by the
//! last `/blobs/`, `/manifests/`, `/tags/list` or `/referrers/` segment.

mod blobs;
mod listing;
mod manifests;

pub use manifests::{count_download, referenced_blobs, Descriptor, ManifestDoc};

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::auth::{self, Caller, ClientAddr};
use crate::error::{Code, HubError, HubResult};
use crate::AppState;

pub const API_VERSION_HEADER: &str = "Docker-Distribution-API-Version";
pub const DIGEST_HEADER: &str = "Docker-Content-Digest";

/// Which operation a `/v2/` path names.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Base,
    Catalog,
    Tags { name: String },
    Manifest { name: String, reference: String },
    Blob { name: String, digest: String },
    UploadStart { name: String },
    Upload { name: String, id: String },
    Referrers { name: String, digest: String },
}

fn parse_route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags { name: name.into() });
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or(rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::UploadStart { name: name.into() });
    }
    let (name, kind, last) = split_last(
        rest,
        &["/blobs/uploads/", "/manifests/", "/blobs/", "/referrers/"],
    )?;
    let (name, last) = (name.to_string(), last.to_string());
    Some(match kind {
        "/blobs/uploads/" => Route::Upload { name, id: last },
        "/manifests/" => Route::Manifest {
            name,
            reference: last,
        },
        "/blobs/" => Route::Blob { name, digest: last },
        _ => Route::Referrers { name, digest: last },
    })
}

/// Splits `path` at the right-most of `markers` followed by one final segment.
fn split_last<'a>(
    path: &'a str,
    markers: &[&'static str],
) -> Option<(&'a str, &'static str, &'a str)> {
    markers
        .iter()
        .filter_map(|m| path.rfind(m).map(|i| (i, *m)))
        .filter(|(i, m)| {
            let last = &path[i + m.len()..];
            !last.is_empty() && !last.contains('/')
        })
        // The longest marker wins at the same place (`/blobs/uploads/` over `/blobs/`).
        .max_by_key(|(i, m)| (*i + m.len(), m.len()))
        .map(|(i, m)| (&path[..i], m, &path[i + m.len()..]))
}

/// The OCI repository name grammar: lowercase components separated by `/`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(|component| {
            let bytes = component.as_bytes();
            !bytes.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes.iter().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
        })
}

/// `sha256:<64 lowercase hex>`: the only digest algorithm this hub stores.
pub fn is_digest(digest: &str) -> bool {
    ebpf_package::digest::hex_part(digest).is_ok()
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

pub fn query(uri: &Uri) -> HashMap<String, String> {
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

pub async fn dispatch(
    State(app): State<AppState>,
    peer: ClientAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut response = match route(&app, peer, &method, &uri, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response
        .headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    response
}

/// Who is asking, as far as the handlers care.
pub struct Asker {
    pub peer: ClientAddr,
    /// The user, if the credentials are good.
    pub user: Option<String>,
    /// The caller may push to the repository (so may see blobs no manifest references yet).
    pub writer: bool,
}

async fn route(
    app: &AppState,
    peer: ClientAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> HubResult<Response> {
    let route = parse_route(uri.path()).ok_or_else(|| {
        HubError::new(
            StatusCode::NOT_FOUND,
            Code::NotFound,
            "no such API endpoint",
        )
    })?;
    if let Some(name) = route_name(&route) {
        if !valid_name(name) {
            return Err(HubError::name_invalid(name));
        }
    }
    let asker = authorize(app, peer, method, &route, headers).await?;
    let q = query(uri);
    let m = method.clone();
    match (route, m) {
        (Route::Base, Method::GET | Method::HEAD) => Ok(StatusCode::OK.into_response()),
        (Route::Catalog, Method::GET) => listing::catalog(app, &q).await,
        (Route::Tags { name }, Method::GET) => listing::tags(app, &name, &q).await,
        (Route::Referrers { name, digest }, Method::GET) => {
            listing::referrers(app, &name, &digest, &q).await
        }
        (Route::Manifest { name, reference }, m) => {
            manifests::handle(app, &asker, &m, &name, &reference, headers, body).await
        }
        (Route::Blob { name, digest }, m) => {
            blobs::blob(app, &asker, &m, &name, &digest, headers).await
        }
        (Route::UploadStart { name }, Method::POST) => blobs::start(app, &name, &q, body).await,
        (Route::Upload { name, id }, m) => {
            blobs::upload(app, &m, &name, &id, &q, headers, body).await
        }
        (_, m) => Err(HubError::unsupported(format!("{m} is not supported here"))),
    }
}

/// Pulls are open to everyone (every package on the hub is public); pushes and deletes need
/// a user whose namespace holds the repository. `/v2/` itself asks anonymous callers for
/// credentials, which is how clients learn to send them (and how `login` checks them).
async fn authorize(
    app: &AppState,
    peer: ClientAddr,
    method: &Method,
    route: &Route,
    headers: &HeaderMap,
) -> HubResult<Asker> {
    let caller = auth::caller(app, peer.0, headers).await?;
    let principal = match caller {
        Caller::Invalid => {
            return Err(HubError::unauthorized(
                "wrong user name, password or token (or the token expired)",
            ))
        }
        Caller::Anonymous => None,
        Caller::User(p) => Some(p),
    };
    let writes = !matches!(*method, Method::GET | Method::HEAD);
    let writer = match (route_name(route), &principal) {
        (Some(name), Some(p)) => p.may_push(name).is_ok(),
        _ => false,
    };
    let asker = Asker {
        peer,
        user: principal.as_ref().map(|p| p.user.clone()),
        writer,
    };
    match (route_name(route), principal) {
        (None, None) if *route == Route::Base => Err(HubError::unauthorized(
            "log in to push; pulls need no login",
        )),
        (None, _) => Ok(asker),
        (Some(_), None) if writes => {
            Err(HubError::unauthorized("log in with an API token to push"))
        }
        (Some(_), None) => Ok(asker),
        (Some(name), Some(p)) if writes => {
            p.may_push(name).map_err(HubError::denied)?;
            let publishes = matches!(route, Route::Manifest { .. }) && *method == Method::PUT;
            if publishes && !app.limits.publish.allow(&app.db, &p.user).await? {
                return Err(HubError::too_many_requests(
                    "too many publishes from this account; wait a minute",
                ));
            }
            Ok(asker)
        }
        (Some(_), Some(p)) if !p.can_pull => Err(HubError::denied("this token has no pull scope")),
        (Some(_), Some(_)) => Ok(asker),
    }
}

fn route_name(route: &Route) -> Option<&str> {
    match route {
        Route::Base | Route::Catalog => None,
        Route::Tags { name }
        | Route::Manifest { name, .. }
        | Route::Blob { name, .. }
        | Route::UploadStart { name }
        | Route::Upload { name, .. }
        | Route::Referrers { name, .. } => Some(name),
    }
}

/// `Link: </v2/…?n=N&last=LAST>; rel="next"` for paged lists.
fn next_link(path: &str, n: i64, last: &str) -> HeaderValue {
    let last: String = last
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    HeaderValue::from_str(&format!("<{path}?n={n}&last={last}>; rel=\"next\""))
        .expect("an ASCII link")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn routes_split_names_with_slashes() {
        assert_eq!(parse_route("/v2/"), Some(Route::Base));
        assert_eq!(parse_route("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(
            parse_route("/v2/alice/snoop/tags/list"),
            Some(Route::Tags {
                name: s("alice/snoop")
            })
        );
        assert_eq!(
            parse_route("/v2/alice/snoop/manifests/0.1.0"),
            Some(Route::Manifest {
                name: s("alice/snoop"),
                reference: s("0.1.0")
            })
        );
        assert_eq!(
            parse_route("/v2/a/blobs/b/blobs/sha256:ab"),
            Some(Route::Blob {
                name: s("a/blobs/b"),
                digest: s("sha256:ab")
            })
        );
        assert_eq!(
            parse_route("/v2/a/b/blobs/uploads/"),
            Some(Route::UploadStart { name: s("a/b") })
        );
        assert_eq!(
            parse_route("/v2/a/b/blobs/uploads/123"),
            Some(Route::Upload {
                name: s("a/b"),
                id: s("123")
            })
        );
        assert_eq!(
            parse_route("/v2/a/referrers/sha256:00"),
            Some(Route::Referrers {
                name: s("a"),
                digest: s("sha256:00")
            })
        );
        assert_eq!(parse_route("/v2/a/b"), None);
    }

    #[test]
    fn names_follow_the_oci_grammar() {
        assert!(valid_name("alice/opensnoop"));
        assert!(valid_name("a.b_c-d/e"));
        assert!(!valid_name("Alice/x"));
        assert!(!valid_name("a//b"));
        assert!(!valid_name("-a"));
        assert!(!valid_name("../etc"));
        assert!(valid_tag("0.1.0"));
        assert!(!valid_tag(".x"));
    }
}
