//! Blobs kept in an upstream OCI registry (`--blob-store registry+http://HOST:PORT/REPO`):
//! docker-registry and the like already store blobs in S3, GCS, Azure or Swift and scale
//! on their own, so the hub stays a metadata and policy layer in front of them.
//!
//! Every blob goes into the one repository `REPO`, content-addressed, after the hub has
//! checked its digest itself; the upstream registry checks it again on its side. Uploads in
//! progress are in the hub's database until then ([`crate::uploads`]).

use std::path::Path;

use axum::body::Body;
use futures_util::TryStreamExt;
use reqwest::{header, StatusCode, Url};

use ebpf_package::{Error, Result};

/// The parsed `registry+http(s)://[USER:PASS@]HOST[:PORT]/REPO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRepo {
    /// `http(s)://HOST[:PORT]`.
    pub base: String,
    pub repo: String,
    pub credentials: Option<(String, String)>,
}

impl UpstreamRepo {
    pub fn parse(spec: &str) -> Result<UpstreamRepo> {
        let help = "use registry+http://HOST:PORT/REPO (or registry+https://…, with \
                    USER:PASSWORD@ before the host when the registry wants a login), or \
                    `file` for blob files in the data dir";
        let bad = |why: &str| Error::usage(format!("--blob-store {spec:?}: {why}")).with_help(help);
        let rest = spec
            .strip_prefix("registry+")
            .ok_or_else(|| bad("unknown kind of blob store"))?;
        let url = Url::parse(rest).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("the registry URL needs http:// or https:// and a host"));
        }
        let repo = url.path().trim_matches('/').to_string();
        if repo.is_empty() || url.query().is_some() {
            return Err(bad(
                "name the repository that holds the blobs after the host",
            ));
        }
        let credentials = (!url.username().is_empty()).then(|| {
            let decode = |s: &str| String::from_utf8_lossy(&percent_decode(s)).into_owned();
            (decode(url.username()), decode(url.password().unwrap_or("")))
        });
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(UpstreamRepo {
            base: format!("{}://{}{port}", url.scheme(), url.host_str().unwrap_or("")),
            repo,
            credentials,
        })
    }
}

/// `%XX` escapes in a URL's user info (a password may hold `@` or `:`).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[derive(Clone)]
pub struct Upstream {
    target: UpstreamRepo,
    http: reqwest::Client,
}

fn io_error(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("blob store registry: {what}"))
}

impl Upstream {
    pub fn new(target: UpstreamRepo) -> std::io::Result<Upstream> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(io_error)?;
        Ok(Upstream { target, http })
    }

    /// `registry HOST/REPO` (never the credentials).
    pub fn label(&self) -> String {
        format!("registry {}/{}", self.target.base, self.target.repo)
    }

    fn blob_url(&self, digest: &str) -> String {
        format!(
            "{}/v2/{}/blobs/{digest}",
            self.target.base, self.target.repo
        )
    }

    fn with_auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.target.credentials {
            Some((user, pass)) => r.basic_auth(user, Some(pass)),
            None => r,
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> std::io::Result<reqwest::Response> {
        self.with_auth(r).send().await.map_err(io_error)
    }

    /// `GET /v2/` answers 200: reachable, and our credentials (if any) are accepted.
    pub async fn check(&self) -> std::io::Result<()> {
        let url = format!("{}/v2/", self.target.base);
        let status = self.send(self.http.get(&url)).await?.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(io_error(format!("{url} answered {status}")))
        }
    }

    /// Stores the verified upload at `path` (`size` bytes) as `digest`, unless the registry
    /// already has it: a monolithic upload, POST then PUT `?digest=`.
    pub async fn put(&self, digest: &str, path: &Path, size: u64) -> std::io::Result<()> {
        let head = self.send(self.http.head(self.blob_url(digest))).await?;
        if head.status().is_success() {
            return Ok(());
        }
        let start = format!(
            "{}/v2/{}/blobs/uploads/",
            self.target.base, self.target.repo
        );
        let started = self.send(self.http.post(&start)).await?;
        if started.status() != StatusCode::ACCEPTED {
            return Err(io_error(format!(
                "starting an upload: {}",
                started.status()
            )));
        }
        let location = started
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| io_error("the upload has no Location"))?;
        let mut url = Url::parse(&start)
            .and_then(|u| u.join(location))
            .map_err(io_error)?;
        url.query_pairs_mut().append_pair("digest", digest);
        let file = tokio::fs::File::open(path).await?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, super::STREAM_BLOCK);
        let body = reqwest::Body::wrap_stream(stream);
        let put = self.http.put(url).body(body);
        let put = put
            .header(header::CONTENT_LENGTH, size)
            .header(header::CONTENT_TYPE, "application/octet-stream");
        let done = self.send(put).await?;
        if done.status() != StatusCode::CREATED {
            let status = done.status();
            let text = done.text().await.unwrap_or_default();
            return Err(io_error(format!("storing {digest}: {status} {text}")));
        }
        Ok(())
    }

    async fn fetch(
        &self,
        digest: &str,
        range: Option<(u64, u64)>,
    ) -> std::io::Result<reqwest::Response> {
        let mut get = self.http.get(self.blob_url(digest));
        if let Some((start, end)) = range {
            get = get.header(header::RANGE, format!("bytes={start}-{end}"));
        }
        let res = self.send(get).await?;
        match res.status() {
            s if s.is_success() => Ok(res),
            StatusCode::NOT_FOUND => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("blob store registry has no {digest}"),
            )),
            s => Err(io_error(format!("reading {digest}: {s}"))),
        }
    }

    pub async fn get(&self, digest: &str) -> std::io::Result<Vec<u8>> {
        let res = self.fetch(digest, None).await?;
        Ok(res.bytes().await.map_err(io_error)?.to_vec())
    }

    /// `len` bytes from `start`, streamed through without buffering the blob.
    pub async fn get_range(&self, digest: &str, start: u64, len: u64) -> std::io::Result<Body> {
        if len == 0 {
            return Ok(Body::empty());
        }
        let res = self.fetch(digest, Some((start, start + len - 1))).await?;
        let whole = res.status() == StatusCode::OK && res.content_length() == Some(len);
        if res.status() != StatusCode::PARTIAL_CONTENT && !whole {
            return Err(io_error(format!(
                "{digest}: the registry ignored the Range"
            )));
        }
        let stream = res.bytes_stream().map_err(std::io::Error::other);
        Ok(Body::from_stream(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = UpstreamRepo::parse("registry+http://127.0.0.1:5000/hub/blobs").unwrap();
        assert_eq!(t.base, "http://127.0.0.1:5000");
        assert_eq!(t.repo, "hub/blobs");
        assert_eq!(t.credentials, None);
        let t = UpstreamRepo::parse("registry+https://u:p%40ss@reg.example/b").unwrap();
        assert_eq!(t.base, "https://reg.example");
        assert_eq!(t.credentials, Some(("u".into(), "p@ss".into())));
        for bad in [
            "s3://bucket",
            "registry+http://127.0.0.1:5000",
            "registry+http://127.0.0.1:5000/",
            "registry+ftp://h/r",
        ] {
            assert!(UpstreamRepo::parse(bad).is_err(), "{bad}");
        }
    }
}
