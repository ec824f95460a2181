//! What a cargo-ebpf hub offers beyond the OCI API: yanking a version
//! (`POST /api/v1/packages/REPO/versions/V/yank`), its users' public keys
//! (`GET /api/v1/users/USER/keys`), search (`GET /api/v1/search`), a package's versions
//! and which are yanked (`GET /api/v1/packages/REPO`), and the header marking a yanked
//! version on pull. The
//! same credentials as pushes (the hub takes a token or password with HTTP Basic), looked up
//! for the reference's host in the registry's auth files.

use ebpf_package::spec::HEADER_YANKED;
use ebpf_package::{Error, Reference, Result};
use serde_json::Value;

use crate::credentials;
use crate::registry::{is_loopback, Registry};

/// What the hub said after a yank or unyank.
#[derive(Debug, Clone)]
pub struct YankOutcome {
    /// The package's latest version now; None when every version is yanked.
    pub latest: Option<String>,
}

/// Yanks (`yanked`) or unyanks the version `reference` names on its hub.
pub fn yank(registry: &Registry, reference: &Reference, yanked: bool) -> Result<YankOutcome> {
    let version = reference
        .tag()
        .filter(|_| reference.digest().is_none())
        .ok_or_else(|| {
            Error::usage(format!("{reference} names no version"))
                .with_help("give the version as the tag: HUB/USER/NAME:1.2.3")
        })?;
    let host = reference.resolve_registry();
    let action = if yanked { "yank" } else { "unyank" };
    let path = format!(
        "/api/v1/packages/{}/versions/{version}/{action}",
        reference.repository()
    );
    let creds = credentials::lookup_in(registry.auth_paths(), host)?.ok_or_else(|| {
        Error::auth(format!("no credentials for {host}")).with_help(format!(
            "run `cargo ebpf login {host}` first (a push token will do)"
        ))
    })?;
    let request = client(registry, host)?
        .post(url(registry, host, &path))
        .basic_auth(&creds.username, Some(&creds.password));
    let (status, body) = block_on(async {
        let res = request.send().await.map_err(|e| unreachable(host, e))?;
        let status = res.status().as_u16();
        Ok((status, res.text().await.unwrap_or_default()))
    })?;
    let json: Value = serde_json::from_str(&body).unwrap_or_default();
    let said = json["error"].as_str().unwrap_or("").to_string();
    match status {
        200 => Ok(YankOutcome {
            latest: json["latest_version"].as_str().map(str::to_string),
        }),
        401 => Err(
            Error::auth(format!("{host} rejected the credentials: {said}")).with_help(format!(
                "run `cargo ebpf login {host}` with a token that can push"
            )),
        ),
        403 => Err(
            Error::auth(format!("{host} refused to {action} {reference}: {said}")).with_help(
                "only the package's owner can yank it, with a token that has push scope",
            ),
        ),
        404 if said.is_empty() => Err(not_a_hub(host)),
        404 => Err(Error::input(said).with_help(format!(
            "check the version: {host}/p/{} lists what is published",
            reference.repository()
        ))),
        code => Err(
            Error::registry(format!("{host} answered HTTP {code} to {action}: {said}"))
                .with_help("retry later; if it persists, the hub's log says why"),
        ),
    }
}

/// The registered public keys (PEM) of `user` on hub `host`. The caller parses and
/// fingerprints them itself: the hub's fingerprints are not taken on faith.
pub fn user_keys(registry: &Registry, host: &str, user: &str) -> Result<Vec<String>> {
    let request =
        client(registry, host)?.get(url(registry, host, &format!("/api/v1/users/{user}/keys")));
    let (status, body) = block_on(async {
        let res = request.send().await.map_err(|e| unreachable(host, e))?;
        let status = res.status().as_u16();
        Ok((status, res.text().await.unwrap_or_default()))
    })?;
    if status != 200 {
        return Err(not_a_hub(host));
    }
    let json: Value = serde_json::from_str(&body).map_err(|_| not_a_hub(host))?;
    let keys = json["keys"].as_array().cloned().unwrap_or_default();
    Ok(keys
        .iter()
        .filter_map(|k| k["pem"].as_str().map(str::to_string))
        .collect())
}

/// Whether the hub marks `reference` (a tag) as yanked. Best effort: any failure (a plain
/// registry, no network) means "not marked", since the pull itself already succeeded.
pub fn is_yanked(registry: &Registry, reference: &Reference) -> bool {
    let Some(tag) = reference.tag().filter(|_| reference.digest().is_none()) else {
        return false;
    };
    let host = reference.resolve_registry();
    let path = format!("/v2/{}/manifests/{tag}", reference.repository());
    let Ok(http) = client(registry, host) else {
        return false;
    };
    let mut request = http.head(url(registry, host, &path)).header(
        reqwest::header::ACCEPT,
        "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
    );
    if let Ok(Some(c)) = credentials::lookup_in(registry.auth_paths(), host) {
        request = request.basic_auth(c.username, Some(c.password));
    }
    block_on(async {
        let res = request.send().await.map_err(|e| unreachable(host, e))?;
        Ok(res
            .headers()
            .get(HEADER_YANKED)
            .is_some_and(|v| v == "true"))
    })
    .unwrap_or(false)
}

/// One package found by [`search`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Found {
    pub repository: String,
    pub owner: String,
    pub name: String,
    pub latest: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub stars: i64,
    #[serde(default)]
    pub downloads: i64,
    #[serde(default)]
    pub signed: bool,
}

/// One page of search results.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SearchPage {
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
    pub packages: Vec<Found>,
}

/// Largest search answer read: a page is a few KiB.
const MAX_SEARCH_BODY: usize = 4 << 20;

/// `GET /api/v1/search?q=…` on hub `host`; `None` when `host` is no hub (a plain OCI
/// registry answers 404, or something that is not the API's JSON).
pub fn search(
    registry: &Registry,
    host: &str,
    query: &str,
    page: u64,
    per_page: u64,
) -> Result<Option<SearchPage>> {
    let request = client(registry, host)?
        .get(url(registry, host, "/api/v1/search"))
        .query(&[
            ("q", query.to_string()),
            ("page", page.to_string()),
            ("per_page", per_page.to_string()),
        ]);
    let (status, body) = get_bounded(request, host)?;
    if status != 200 {
        return Ok(None);
    }
    Ok(serde_json::from_slice(&body).ok())
}

/// Repositories of a plain OCI registry whose names contain one of `words`, from its
/// catalog (`GET /v2/_catalog`), for registries that allow listing it; the caller adds
/// versions. An error saying the registry has no search when it refuses.
pub fn catalog_matches(registry: &Registry, host: &str, words: &str) -> Result<Vec<String>> {
    let request = client(registry, host)?.get(url(registry, host, "/v2/_catalog?n=1000"));
    let request = match credentials::lookup_in(registry.auth_paths(), host)? {
        Some(c) => request.basic_auth(c.username, Some(c.password)),
        None => request,
    };
    let (status, body) = get_bounded(request, host)?;
    let json: Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some(repos) = json["repositories"].as_array().filter(|_| status == 200) else {
        return Err(no_search(host));
    };
    let words: Vec<String> = words.split_whitespace().map(str::to_lowercase).collect();
    Ok(repos
        .iter()
        .filter_map(Value::as_str)
        .filter(|r| words.iter().any(|w| r.to_lowercase().contains(w.as_str())))
        .map(str::to_string)
        .collect())
}

/// The error for a registry that has neither the hub's search nor a readable catalog.
pub fn no_search(host: &str) -> Error {
    Error::registry(format!(
        "{host} has no package search: it is a plain OCI registry, not a cargo-ebpf hub, and does not list its catalog"
    ))
    .with_help(format!(
        "plain registries cannot be searched; name the package fully ({host}/NAMESPACE/NAME:VERSION), or search a hub with --registry HUB"
    ))
}

/// A package's versions as its hub lists them, with whether each is yanked; None when
/// `host` is not a hub (or does not know the package).
pub fn versions(registry: &Registry, reference: &Reference) -> Option<Vec<(String, bool)>> {
    let host = reference.resolve_registry();
    let path = format!("/api/v1/packages/{}", reference.repository());
    let request = client(registry, host).ok()?.get(url(registry, host, &path));
    let (status, body) = get_bounded(request, host).ok()?;
    if status != 200 {
        return None;
    }
    let json: Value = serde_json::from_slice(&body).ok()?;
    let versions = json["versions"].as_array()?;
    Some(
        versions
            .iter()
            .filter_map(|v| {
                let version = v["version"].as_str()?.to_string();
                Some((version, v["yanked"].as_bool().unwrap_or(false)))
            })
            .collect(),
    )
}

/// Sends `request`; the status and at most [`MAX_SEARCH_BODY`] bytes of body.
fn get_bounded(request: reqwest::RequestBuilder, host: &str) -> Result<(u16, Vec<u8>)> {
    block_on(async {
        let mut res = request.send().await.map_err(|e| unreachable(host, e))?;
        let status = res.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| unreachable(host, e))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_SEARCH_BODY {
                return Err(Error::registry(format!("{host} sent an oversized answer")));
            }
        }
        Ok((status, body))
    })
}

/// The shared client ([`crate::registry::http_client`]) for `host`.
fn client(registry: &Registry, host: &str) -> Result<reqwest::Client> {
    crate::registry::http_client(!plain(registry, host))
}

/// `http` for loopback hubs (or with --insecure), as for pushes and pulls.
fn url(registry: &Registry, host: &str, path: &str) -> String {
    let scheme = if plain(registry, host) {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{host}{path}")
}

fn plain(registry: &Registry, host: &str) -> bool {
    registry.options().insecure || is_loopback(host)
}

fn unreachable(host: &str, e: reqwest::Error) -> Error {
    Error::registry(format!("cannot reach {host}"))
        .with_source(e)
        .with_help("check the address and that the hub is running")
}

fn not_a_hub(host: &str) -> Error {
    Error::registry(format!("{host} does not offer the cargo-ebpf hub API"))
        .with_help("yanking and published keys are features of a cargo-ebpf hub (`cargo ebpf hub serve`), not of plain OCI registries")
}

/// How long one hub API call may take.
const HUB_API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// [`crate::registry::block_on_deadline`] with [`HUB_API_TIMEOUT`].
fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    crate::registry::block_on_deadline(fut, HUB_API_TIMEOUT, "the hub API call")
}
