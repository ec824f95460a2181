//! The distribution API's HTTP underneath [`super::Registry`]: clients, credentials and
//! bearer tokens, and what a registry's answer means as one of our errors.
//!
//! One tokio runtime and one HTTP client per thread serve every registry call of a command,
//! so a pull's manifest, blobs, signature and attestation lookups share connections, and
//! the system's TLS roots are loaded once, and only for a registry spoken to over HTTPS
//! (loading them took longer than a whole loopback pull).

use std::cell::OnceCell;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use ebpf_package::{Error, ErrorKind, Result};

use crate::credentials::Credentials;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest token-service answer or error body read.
const MAX_SMALL_BODY: usize = 64 << 10;

thread_local! {
    static RUNTIME: OnceCell<tokio::runtime::Runtime> = const { OnceCell::new() };
    static PLAIN: OnceCell<reqwest::Client> = const { OnceCell::new() };
    static TLS: OnceCell<reqwest::Client> = const { OnceCell::new() };
}

/// Runs `fut` on this thread's runtime (made on first use). Clients made by [`client`] on
/// this thread belong to it: their pooled connections live on its tasks.
pub(crate) fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    RUNTIME.with(|cell| {
        if cell.get().is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::environment("cannot start the async runtime").with_source(e))?;
            let _ = cell.set(rt);
        }
        cell.get().expect("set above").block_on(fut)
    })
}

/// This thread's HTTP client: a plain-HTTP one carries no TLS roots at all.
pub(crate) fn client(tls: bool) -> Result<reqwest::Client> {
    let cell = if tls { &TLS } else { &PLAIN };
    cell.with(|cell| {
        if let Some(c) = cell.get() {
            return Ok(c.clone());
        }
        let builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("cargo-ebpf/", env!("CARGO_PKG_VERSION")));
        let builder = if tls {
            builder
        } else {
            builder.tls_certs_only(Vec::new())
        };
        let c = builder.build().map_err(|e| {
            Error::environment("cannot set up the HTTP client")
                .with_source(e)
                .with_help("check the system's TLS setup (its CA certificates)")
        })?;
        let _ = cell.set(c.clone());
        Ok(c)
    })
}

/// The access a session asks a token service for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Pull,
    Push,
}

/// One repository on one registry, with the user's credentials: sends requests, answering
/// a `401` challenge once (basic credentials, or a bearer token fetched for the
/// repository), as docker and skopeo do.
pub(crate) struct Transport {
    http: reqwest::Client,
    /// `http://host` or `https://host`.
    base: String,
    /// The registry as written, for messages.
    host: String,
    repository: String,
    credentials: Option<Credentials>,
    access: Access,
    token: Mutex<Option<String>>,
}

impl Transport {
    pub(crate) fn new(
        tls: bool,
        connect_to: &str,
        host: &str,
        repository: &str,
        credentials: Option<Credentials>,
    ) -> Result<Transport> {
        let scheme = if tls { "https" } else { "http" };
        Ok(Transport {
            http: client(tls)?,
            base: format!("{scheme}://{connect_to}"),
            host: host.to_string(),
            repository: repository.to_string(),
            credentials,
            access: Access::Pull,
            token: Mutex::new(None),
        })
    }

    /// Asks for push access too when a token is fetched.
    pub(crate) fn for_push(mut self) -> Transport {
        self.access = Access::Push;
        self
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// `/v2/REPO/{path}` on this registry.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }

    /// An upload location as the registry gave it: absolute, or relative to the registry.
    pub(crate) fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// Sends the request `make` builds, with credentials; on a `401` it answers the
    /// challenge once and sends it again (so `make` must be repeatable: a streamed body
    /// goes only on requests the session already holds a token for).
    pub(crate) async fn send(
        &self,
        what: &str,
        make: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response> {
        let first = self.authorized(make(&self.http)).send().await;
        let first = first.map_err(|e| request_error(&e, &self.host, what))?;
        if first.status() != StatusCode::UNAUTHORIZED || !self.answer(first.headers()).await? {
            return Ok(first);
        }
        let again = self.authorized(make(&self.http)).send().await;
        again.map_err(|e| request_error(&e, &self.host, what))
    }

    /// Plain `method url`, sent with [`Transport::send`].
    pub(crate) async fn request(&self, method: Method, url: &str, what: &str) -> Result<Response> {
        self.send(what, |c| c.request(method.clone(), url)).await
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        let token = self.token.lock().expect("token lock").clone();
        match (token, &self.credentials) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some(c)) => request.basic_auth(&c.username, Some(&c.password)),
            (None, None) => request,
        }
    }

    /// Answers a `401`'s challenge: true when the request is worth sending again. A token
    /// the registry no longer takes (expired during a long push) is replaced; [`send`] tries
    /// only once more, so a refused fresh token ends there.
    ///
    /// [`send`]: Transport::send
    async fn answer(&self, headers: &HeaderMap) -> Result<bool> {
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let Some(params) = bearer_params(challenge) else {
            return Ok(false); // Basic: the credentials (if any) already went with it.
        };
        let Some(realm) = param(&params, "realm") else {
            return Ok(false);
        };
        let actions = match self.access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        let mut query = vec![("scope", format!("repository:{}:{actions}", self.repository))];
        query.extend(param(&params, "service").map(|s| ("service", s)));
        let token = self.fetch_token(&realm, &query).await?;
        *self.token.lock().expect("token lock") = Some(token);
        Ok(true)
    }

    async fn fetch_token(&self, realm: &str, query: &[(&str, String)]) -> Result<String> {
        let mut request = self.http.get(realm).query(query);
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| request_error(&e, &self.host, "the token request"))?;
        if !response.status().is_success() {
            let body = read_small(&mut response).await;
            return Err(answer_error(
                &self.host,
                "the token request",
                response.status(),
                &body,
            ));
        }
        let body = read_small(&mut response).await;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        json["token"]
            .as_str()
            .or_else(|| json["access_token"].as_str())
            .map(String::from)
            .ok_or_else(|| {
                Error::registry(format!(
                    "registry {}'s token service sent no token",
                    self.host
                ))
                .with_help("check the registry's token service, or log in again")
            })
    }
}

/// The parameters of a `Bearer k="v",…` challenge (values may hold commas in quotes).
fn bearer_params(challenge: &str) -> Option<Vec<(String, String)>> {
    let rest = challenge.trim();
    let (scheme, rest) = rest.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = Vec::new();
    let mut chars = rest.trim().chars().peekable();
    loop {
        let key: String = chars
            .by_ref()
            .skip_while(|c| *c == ',' || c.is_whitespace())
            .take_while(|c| *c != '=')
            .collect();
        if key.is_empty() {
            return Some(params);
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            chars.by_ref().take_while(|c| *c != '"').collect()
        } else {
            chars.by_ref().take_while(|c| *c != ',').collect()
        };
        params.push((key.trim().to_ascii_lowercase(), value));
    }
}

fn param(params: &[(String, String)], key: &str) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

/// The realm and service of a bearer challenge (for `login`).
pub(crate) fn bearer_realm(challenge: &str) -> Option<(String, Option<String>)> {
    let params = bearer_params(challenge)?;
    Some((param(&params, "realm")?, param(&params, "service")))
}

/// At most [`MAX_SMALL_BODY`] bytes of a body (error texts, tokens); the rest is dropped.
pub(crate) async fn read_small(response: &mut Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_SMALL_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    body
}

/// Fails unless `response` is a success; the error says what the registry answered.
pub(crate) async fn expect_success(
    mut response: Response,
    host: &str,
    what: &str,
) -> Result<Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let body = read_small(&mut response).await;
    Err(answer_error(host, what, response.status(), &body))
}

// ---- what an answer means -------------------------------------------------------------------

/// Our error for a registry's non-success answer to `what` (a reference, or a request).
pub(crate) fn answer_error(host: &str, what: &str, status: StatusCode, body: &[u8]) -> Error {
    let body = String::from_utf8_lossy(body);
    let codes = error_codes(&body);
    let has = |code: &str| codes.iter().any(|c| c == code);
    match status.as_u16() {
        401 => auth_error(host),
        403 => denied_error(host, denied_messages(&body)),
        404 => not_found(what, host),
        _ if has("DENIED") => denied_error(host, denied_messages(&body)),
        _ if has("UNAUTHORIZED") => auth_error(host),
        _ if has("DIGEST_INVALID") || has("SIZE_INVALID") => Error::integrity(format!(
            "registry {host} reported a digest error for {what}: {body}"
        ))
        .with_help("the content changed on the way; retry, and check what sits between you and the registry"),
        code => status_error(host, code, what).with_details(body.into_owned()),
    }
}

/// The `code`s of an OCI error body (`{"errors":[{"code","message"}]}`).
fn error_codes(body: &str) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let errors = value["errors"].as_array().cloned().unwrap_or_default();
    errors
        .iter()
        .filter_map(|e| e["code"].as_str().map(String::from))
        .collect()
}

/// The `message`s of an OCI error body.
pub(crate) fn denied_messages(body: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return vec![];
    };
    let errors = value["errors"].as_array().cloned().unwrap_or_default();
    errors
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| !m.is_empty())
        .map(String::from)
        .collect()
}

pub(crate) fn unreachable_error(host: &str, why: &str) -> Error {
    Error::registry(format!("cannot reach registry {host}: {why}"))
        .with_help("check the address and that the registry is running")
}

pub(crate) fn auth_error(host: &str) -> Error {
    Error::auth(format!(
        "registry {host} rejected the credentials (or has none for you)"
    ))
    .with_help(format!("run `cargo ebpf login {host}`"))
}

/// A 403 `DENIED`: the credentials were fine, this operation is not allowed. The
/// registry's own words say why ("alice/x is not in your namespace; push to bob/x"), so
/// they are passed on; without any, it reads like rejected credentials.
pub(crate) fn denied_error(host: &str, messages: Vec<String>) -> Error {
    if messages.is_empty() {
        return auth_error(host);
    }
    Error::auth(format!(
        "registry {host} denied it: {}",
        messages.join("; ")
    ))
    .with_help(format!(
        "push where these credentials may write, or `cargo ebpf login {host}` as the owner"
    ))
}

pub(crate) fn not_found(reference: &str, host: &str) -> Error {
    Error::registry(format!("{reference} not found on {host}"))
        .with_help("check the repository name and tag (and that it was pushed)")
}

pub(crate) fn status_error(host: &str, code: u16, what: &str) -> Error {
    match code {
        401 | 403 => auth_error(host),
        _ => Error::registry(format!("registry {host} answered HTTP {code} to {what}"))
            .with_help("check the registry address; retry later if the registry is failing"),
    }
}

/// Our error for a request that got no answer (or broke off).
pub(crate) fn request_error(re: &reqwest::Error, host: &str, what: &str) -> Error {
    match re.status().map(|s| s.as_u16()) {
        Some(401 | 403) => return auth_error(host),
        Some(404) => return not_found(what, host),
        Some(code) => return status_error(host, code, what),
        None => {}
    }
    let why = error_chain(re);
    if re.is_connect() || re.is_timeout() {
        return unreachable_error(host, &why);
    }
    let e = Error::new(
        ErrorKind::Registry,
        format!("talking to registry {host} failed: {why}"),
    );
    if why.contains("ssl") || why.contains("tls") || why.contains("certificate") {
        e.with_help("if the registry speaks plain HTTP, pass --insecure")
    } else {
        e.with_help("check the address and that the registry is running")
    }
}

/// The causes under an HTTP error ("tcp connect error: Connection refused"): reqwest's own
/// message only says "error sending request", and hyper's "client error (Connect)" adds nothing.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !text.starts_with("client error") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_403_passes_the_registry_message_on_and_stays_an_auth_error() {
        let body = br#"{"errors":[{"code":"DENIED","message":"alice/x is not in your namespace; push to bob/x"}]}"#;
        let e = answer_error("h", "h/alice/x:1.0.0", StatusCode::FORBIDDEN, body);
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(
            e.message
                .contains("denied it: alice/x is not in your namespace; push to bob/x"),
            "{}",
            e.message
        );
        // Without a message, and for a 401, it still reads as rejected credentials.
        let e = answer_error("h", "r", StatusCode::FORBIDDEN, b"forbidden");
        assert!(
            e.message.contains("rejected the credentials"),
            "{}",
            e.message
        );
        let e = answer_error("h", "r", StatusCode::UNAUTHORIZED, body);
        assert!(
            e.message.contains("rejected the credentials"),
            "{}",
            e.message
        );
        assert_eq!(e.kind, ErrorKind::Auth);
        let e = answer_error("h", "h/x:1", StatusCode::NOT_FOUND, b"");
        assert!(e.message.contains("h/x:1 not found on h"), "{}", e.message);
    }

    #[test]
    fn bearer_challenge_parsing() {
        assert_eq!(
            bearer_realm(r#"Bearer realm="https://auth.example/token",service="reg.example""#),
            Some((
                "https://auth.example/token".into(),
                Some("reg.example".into())
            ))
        );
        assert_eq!(bearer_realm(r#"Basic realm="x""#), None);
        // A scope with a comma inside its quotes stays one value.
        let params = bearer_params(
            r#"Bearer realm="http://h/token",scope="repository:a/b:pull,push",service=h"#,
        )
        .unwrap();
        assert_eq!(param(&params, "scope").unwrap(), "repository:a/b:pull,push");
        assert_eq!(param(&params, "service").unwrap(), "h");
    }
}
