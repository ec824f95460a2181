//! eunomia-bpf `package.json` from an http(s) URL (`run https://…/package.json`): the one
//! place the runner fetches something that is not a registry, bounded in size and time.
//! Plain `http://` is refused unless the host is loopback or `--insecure` was given: an
//! unauthenticated download can be swapped by anyone on the path, and what it carries is
//! loaded into the kernel as root.

use ebpf_package::{Error, ErrorKind, Result};

use crate::registry::{is_loopback, ClientOptions};

/// Largest package.json we accept.
const MAX_SIZE: u64 = 64 << 20;

/// Whether `target` is an http(s) URL (which `run` fetches as a package.json).
pub fn is_url(target: &str) -> bool {
    target.starts_with("https://") || target.starts_with("http://")
}

/// Reads the package.json at `url`, within the options' overall deadline.
pub fn fetch(url: &str, opts: &ClientOptions) -> Result<Vec<u8>> {
    check_scheme(url, opts.insecure)?;
    let what = format!("fetching {url}");
    crate::registry::block_on_deadline(fetch_async(url), opts.deadline(), &what)
}

/// Plain HTTP only to loopback, or anywhere with `--insecure`.
fn check_scheme(url: &str, insecure: bool) -> Result<()> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Ok(());
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    if insecure || is_loopback(host) {
        return Ok(());
    }
    Err(Error::usage(format!(
        "refusing to fetch {url} over plain HTTP: anyone on the network path could replace \
         the program it carries"
    ))
    .with_help("use an https:// URL, or pass --insecure if you trust the network to this host"))
}

async fn fetch_async(url: &str) -> Result<Vec<u8>> {
    let failed = |e: reqwest::Error| {
        Error::new(ErrorKind::Registry, format!("cannot fetch {url}"))
            .with_help("check the URL and that the server is reachable")
            .with_source(e)
    };
    let client = crate::registry::http_client(url.starts_with("https://"))?;
    let mut response = client.get(url).send().await.map_err(failed)?;
    if !response.status().is_success() {
        return Err(Error::new(
            ErrorKind::Registry,
            format!("{url} answered HTTP {}", response.status().as_u16()),
        )
        .with_help("check the URL"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > MAX_SIZE {
            return Err(
                Error::input(format!("{url} is larger than {MAX_SIZE} bytes"))
                    .with_help("a package.json is at most a few MiB"),
            );
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_or_with_insecure() {
        for url in [
            "http://example.com/package.json",
            "http://10.0.0.1:8080/p.json",
            "http://127.0.0.1.evil.example/p.json",
            "http://127.0.0.1@evil.example/p.json",
        ] {
            let err = check_scheme(url, false).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Usage, "{url}");
            assert!(
                err.help.as_deref().unwrap_or("").contains("--insecure"),
                "{url}"
            );
            check_scheme(url, true).unwrap();
        }
        for url in [
            "https://example.com/package.json",
            "http://127.0.0.1:8000/package.json",
            "http://localhost/p.json",
            "http://[::1]:80/p.json",
        ] {
            check_scheme(url, false).unwrap();
        }
    }
}
