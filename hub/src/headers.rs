//! Security headers on every response, as one middleware layer: a Content-Security-Policy
//! (styles and scripts only from the hub's own files, no framing, forms post only here), `X-Frame-Options`, `nosniff`, a
//! Referrer-Policy, `Cache-Control: no-store` on pages (they show the visitor's name, CSRF
//! values and, once, a new token), and HSTS when the hub is served over HTTPS.

use std::sync::LazyLock;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The policy: the hub's own stylesheet and script (`/assets/`), and any inline `<style>` of
/// the layout by its hash, so an injected `<style>` or `<script>` is not run.
static CSP: LazyLock<String> = LazyLock::new(|| {
    let styles: String = inline_styles(include_str!("../templates/layout.hbs"))
        .map(|s| {
            let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s));
            format!(" 'sha256-{hash}'")
        })
        .collect();
    format!(
        "default-src 'none'; style-src 'self'{styles}; script-src 'self'; \
         img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
});

/// [`CSP`] as a header value, checked once (cloning it shares the bytes).
static CSP_HEADER: LazyLock<HeaderValue> =
    LazyLock::new(|| HeaderValue::from_str(&CSP).expect("an ASCII policy"));

/// The text of every `<style>…</style>` block in `html`.
fn inline_styles(html: &str) -> impl Iterator<Item = &str> {
    html.split("<style>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</style>").map(|(style, _)| style))
}

pub async fn security_headers(State(https): State<bool>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    h.insert(header::CONTENT_SECURITY_POLICY, CSP_HEADER.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if html && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_layout_style_is_hashed_into_the_policy() {
        assert_eq!(
            super::inline_styles("a<style>x{}</style>b<style>y</style>").collect::<Vec<_>>(),
            ["x{}", "y"]
        );
        let csp = &*super::CSP;
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
}
