//! eunomia-bpf `package.json` from an http(s) URL (`run https://…/package.json`): the one
//! place the runner fetches something that is not a registry, bounded in size and time.

use std::time::Duration;

use ebpf_package::{Error, ErrorKind, Result};

/// Largest package.json we accept.
const MAX_SIZE: u64 = 64 << 20;

/// Whether `target` is an http(s) URL (which `run` fetches as a package.json).
pub fn is_url(target: &str) -> bool {
    target.starts_with("https://") || target.starts_with("http://")
}

/// Reads the package.json at `url`.
pub fn fetch(url: &str) -> Result<Vec<u8>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::environment("cannot start the async runtime").with_source(e))?;
    runtime.block_on(fetch_async(url))
}

async fn fetch_async(url: &str) -> Result<Vec<u8>> {
    let failed = |e: reqwest::Error| {
        Error::new(ErrorKind::Registry, format!("cannot fetch {url}"))
            .with_help("check the URL and that the server is reachable")
            .with_source(e)
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| Error::environment("cannot set up the HTTP client").with_source(e))?;
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
