//! Push, pull and login against OCI registries (the distribution API, over [`transport`]).
//!
//! The public API is synchronous: each call runs on the thread's current-thread tokio
//! runtime, since the CLI does one registry operation at a time. Loopback registries (127.0.0.0/8, localhost,
//! [::1]) are spoken to over plain HTTP, like docker and skopeo do; others only with
//! `insecure`.

mod transport;

pub(crate) use transport::client as http_client;

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use oci_client::manifest::{OciDescriptor, OciImageIndex, OciImageManifest};
use reqwest::Method;

use ebpf_package::blob::{Blob, BlobData, Spool, StreamCheck};
use ebpf_package::image_index::{PackageIndex, Release};
use ebpf_package::platform::{self, pick_platform, Platform};
use ebpf_package::spec::{Format, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use ebpf_package::{digest, Error, Package, Reference, Result};

use crate::credentials::{self, AuthPaths, Credentials};
use transport::Transport;
use transport::{auth_error, bearer_realm, block_on, error_chain, status_error, unreachable_error};

/// Largest blob or manifest we accept from a registry. Packages are a few hundred KiB;
/// this bounds memory against a hostile or broken registry.
pub const MAX_BLOB_SIZE: u64 = 512 << 20;
/// Largest manifest we accept; enforced while the body streams in, so a registry that
/// answers with an endless body costs at most this much memory.
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;
/// How long a whole pull, login or package.json fetch may take unless `--timeout` or
/// `CARGO_EBPF_TIMEOUT` say otherwise: a registry that accepts and never answers must not
/// hold a command for minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The environment variable overriding [`DEFAULT_TIMEOUT`] (seconds).
pub const ENV_TIMEOUT: &str = "CARGO_EBPF_TIMEOUT";

/// How to talk to a registry.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Allow plain HTTP for non-loopback registries (loopback always may use HTTP).
    pub insecure: bool,
    /// Show progress bars (the CLI sets this when stdout is a terminal).
    pub progress: bool,
    /// Refuse to pull packages no trusted key signed, even outside every trust scope.
    pub require_signed: bool,
    /// Deadline for a whole pull or login; `None` means [`DEFAULT_TIMEOUT`]. Pushes have
    /// none: uploads are the user's own and may be slow.
    pub timeout: Option<Duration>,
    /// Mirrors to try when a registry fails (`--mirror`), instead of those configured for
    /// it in config.toml; `None` means the configured ones.
    pub mirrors: Option<Vec<String>>,
}

impl ClientOptions {
    /// The overall deadline of one pull or login.
    pub fn deadline(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }
}

/// The deadline `CARGO_EBPF_TIMEOUT` sets, if any; a value that is not a positive number of
/// seconds is a usage error rather than silently ignored.
pub fn timeout_from_env() -> Result<Option<Duration>> {
    let Ok(text) = std::env::var(ENV_TIMEOUT) else {
        return Ok(None);
    };
    match text.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Some(Duration::from_secs(secs))),
        _ => Err(
            Error::usage(format!("{ENV_TIMEOUT}={text:?} is not a number of seconds")).with_help(
                format!("set {ENV_TIMEOUT} to a whole number of seconds, e.g. 120, or unset it"),
            ),
        ),
    }
}

/// A registry client: how to connect, and where credentials are looked up. A value, so
/// a command builds it once and every push, pull and login shares its settings.
#[derive(Debug, Clone)]
pub struct Registry {
    options: ClientOptions,
    auth: AuthPaths,
}

impl Registry {
    pub fn new(options: ClientOptions, auth: AuthPaths) -> Registry {
        Registry { options, auth }
    }

    /// Credentials from the environment's files (see [`crate::credentials`]).
    pub fn from_env(options: ClientOptions) -> Registry {
        Registry::new(options, AuthPaths::from_env())
    }

    /// Where this client looks credentials up.
    pub fn auth_paths(&self) -> &AuthPaths {
        &self.auth
    }

    /// A session on `reference`'s repository that may write to it.
    fn push_session(&self, reference: &Reference) -> Result<Session> {
        Session::new(reference, &self.options, &self.auth).map(Session::for_push)
    }

    /// Pushes `pkg` to `reference`; returns the manifest digest.
    pub fn push(&self, pkg: &Package, reference: &Reference) -> Result<String> {
        let session = self.push_session(reference)?;
        block_on(session.push(pkg, &self.options))
    }

    /// Pushes a release: a single package as [`Registry::push`] does, or every platform
    /// package by digest and then the image index under the reference's tag. Returns the
    /// tag's digest.
    pub fn push_release(&self, release: &Release, reference: &Reference) -> Result<String> {
        let session = self.push_session(reference)?;
        match release {
            Release::Single(pkg) => block_on(session.push(pkg, &self.options)),
            Release::Multi(index) => block_on(session.push_index(index, &self.options)),
        }
    }

    /// Pulls `reference`, verifying every digest; nothing is written anywhere.
    pub fn pull(&self, reference: &Reference) -> Result<Package> {
        let session = Session::new(reference, &self.options, &self.auth)?;
        let what = format!("pulling {reference}");
        block_on_deadline(session.pull(&self.options), self.options.deadline(), &what)
    }

    /// Every tag of `reference`'s repository (`GET /v2/REPO/tags/list`), bounded in time by
    /// the pull deadline and in size like a manifest; a repository the registry does not
    /// know has none.
    pub fn list_tags(&self, reference: &Reference) -> Result<Vec<String>> {
        let session = Session::new(reference, &self.options, &self.auth)?;
        let what = format!("listing the tags of {}", reference.repository());
        block_on_deadline(session.list_tags(), self.options.deadline(), &what)
    }

    /// How this client connects (the URL fetcher shares `insecure` and the deadline).
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    // ---- low level, for signatures (tags such as `sha256-<hex>.sig`) ----------------------

    /// The raw manifest or index at `reference` (tag or digest) and its digest, checked
    /// against the bytes; `None` when the registry has none there.
    pub fn fetch_manifest(&self, reference: &Reference) -> Result<Option<(Vec<u8>, String)>> {
        let session = Session::new(reference, &self.options, &self.auth)?;
        block_on(session.fetch_manifest())
    }

    /// The blob `descriptor` names in `reference`'s repository, checked against its digest.
    pub fn fetch_blob(
        &self,
        reference: &Reference,
        descriptor: &OciDescriptor,
    ) -> Result<BlobData> {
        let session = Session::new(reference, &self.options, &self.auth)?;
        block_on(session.pull_blob(descriptor, &self.options))
    }

    /// Uploads `blobs`, then the image manifest `manifest` under `reference`; returns its
    /// digest.
    pub fn push_manifest_with_blobs(
        &self,
        reference: &Reference,
        blobs: &[&Blob],
        manifest: &[u8],
    ) -> Result<String> {
        self.push_raw(reference, blobs, manifest, false)
    }

    /// Uploads `blobs`, then `manifest` (an image manifest, or an index when `index`) under
    /// `reference` exactly as given, so its digest is kept; for copying between registries.
    pub fn push_raw(
        &self,
        reference: &Reference,
        blobs: &[&Blob],
        manifest: &[u8],
        index: bool,
    ) -> Result<String> {
        let media_type = if index {
            MEDIA_TYPE_INDEX
        } else {
            MEDIA_TYPE_MANIFEST
        };
        let session = self.push_session(reference)?;
        block_on(async {
            for blob in blobs {
                session
                    .push_blob(&blob.descriptor, &blob.data, &self.options)
                    .await?;
            }
            session
                .push_manifest(&session.reference, manifest, media_type)
                .await
        })
    }

    /// Checks the credentials against `registry` and stores them in the docker config.
    /// Returns the path of the config file written.
    pub fn login(&self, registry: &str, username: &str, password: &str) -> Result<PathBuf> {
        let host = registry_host(registry)?;
        let scheme = if use_http(&host, &self.options) {
            "http"
        } else {
            "https"
        };
        let what = format!("logging in to {host}");
        block_on_deadline(
            check_login(scheme, &host, username, password),
            self.options.deadline(),
            &what,
        )?;
        let creds = Credentials {
            username: username.to_string(),
            password: password.to_string(),
        };
        credentials::store_in(&self.auth, &host, &creds)
    }
}

// ---- connection setup -----------------------------------------------------------------------

/// One repository with a client and credentials ready: what one push or pull talks to.
struct Session {
    reference: oci_client::Reference,
    http: Transport,
}

impl Session {
    fn new(reference: &Reference, opts: &ClientOptions, paths: &AuthPaths) -> Result<Session> {
        let reference = reference.as_oci().clone();
        let connect_to = reference.resolve_registry();
        let credentials = credentials::lookup_in(paths, reference.registry())?;
        let http = Transport::new(
            !use_http(connect_to, opts),
            connect_to,
            reference.registry(),
            reference.repository(),
            credentials,
        )?;
        Ok(Session { reference, http })
    }

    /// This session, asking for push access when the registry hands out tokens.
    fn for_push(self) -> Session {
        Session {
            http: self.http.for_push(),
            ..self
        }
    }

    fn host(&self) -> &str {
        self.http.host()
    }

    // ---- push -------------------------------------------------------------------------------

    async fn push(&self, pkg: &Package, opts: &ClientOptions) -> Result<String> {
        self.push_package(pkg, &self.reference, opts).await
    }

    /// Pushes every platform package by digest, then the index under the tag, so the tag
    /// never names an index whose manifests the registry lacks.
    async fn push_index(&self, index: &PackageIndex, opts: &ClientOptions) -> Result<String> {
        for pkg in &index.packages {
            self.push_package(pkg, &self.by_digest(&pkg.digest()), opts)
                .await?;
        }
        let bytes = &index.index_bytes;
        self.push_manifest(&self.reference, bytes, MEDIA_TYPE_INDEX)
            .await
    }

    /// Config and layer blobs, then the manifest under `reference`.
    async fn push_package(
        &self,
        pkg: &Package,
        reference: &oci_client::Reference,
        opts: &ClientOptions,
    ) -> Result<String> {
        for blob in std::iter::once(&pkg.config_blob).chain(&pkg.layers) {
            self.push_blob(&blob.descriptor, &blob.data, opts).await?;
        }
        self.push_manifest(reference, &pkg.manifest_bytes, MEDIA_TYPE_MANIFEST)
            .await
    }

    /// Uploads manifest (or index) bytes exactly as given, with their media type as the
    /// Content-Type, and checks that the registry stored them under their digest.
    async fn push_manifest(
        &self,
        reference: &oci_client::Reference,
        bytes: &[u8],
        media_type: &'static str,
    ) -> Result<String> {
        let url = self
            .http
            .url(&format!("manifests/{}", tag_or_digest(reference)));
        let what = reference.whole();
        let body = bytes::Bytes::copy_from_slice(bytes);
        let response = self
            .http
            .send(&what, |c| {
                c.put(&url)
                    .header(reqwest::header::CONTENT_TYPE, media_type)
                    .body(body.clone())
            })
            .await?;
        let response = transport::expect_success(response, self.host(), &what).await?;
        let expected = digest::sha256(bytes);
        let header = |name: &str| {
            let value = response.headers().get(name)?.to_str().ok()?;
            Some(value.rsplit('/').next()?.to_string())
        };
        let actual = match header("docker-content-digest").or_else(|| header("location")) {
            Some(d) if d.starts_with("sha256:") => d,
            _ => self.remote_digest(reference).await?,
        };
        if actual != expected {
            return Err(Error::integrity(format!(
                "registry {} stored the manifest as {actual}, but it is {expected}",
                self.host()
            ))
            .with_help("the registry altered the manifest; push to a different registry"));
        }
        Ok(expected)
    }

    /// This repository at `digest`.
    fn by_digest(&self, digest: &str) -> oci_client::Reference {
        oci_client::Reference::with_digest(
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
            digest.to_string(),
        )
    }

    /// The digest of what the registry holds at `reference`.
    async fn remote_digest(&self, reference: &oci_client::Reference) -> Result<String> {
        let accepted = [MEDIA_TYPE_MANIFEST, MEDIA_TYPE_INDEX];
        let (_, digest) = self.pull_manifest_raw(reference, &accepted).await?;
        Ok(digest)
    }

    /// Uploads a blob unless the repository has it: one POST, then one PUT with the whole
    /// body (streamed from its file when it is in one).
    async fn push_blob(
        &self,
        d: &OciDescriptor,
        data: &BlobData,
        opts: &ClientOptions,
    ) -> Result<()> {
        let bar = progress_bar(opts, "push", &d.digest, data.len());
        let exists = self.blob_exists(&d.digest).await?;
        if !exists {
            self.upload(d, data).await?;
        }
        if let Some(bar) = bar {
            bar.set_position(data.len());
            bar.finish_with_message(if exists { "exists" } else { "pushed" });
        }
        Ok(())
    }

    async fn blob_exists(&self, digest: &str) -> Result<bool> {
        let url = self.http.url(&format!("blobs/{digest}"));
        let what = format!("blob {digest}");
        let response = self.http.request(Method::HEAD, &url, &what).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            reqwest::StatusCode::NOT_FOUND => Ok(false),
            _ => transport::expect_success(response, self.host(), &what)
                .await
                .map(|_| false),
        }
    }

    async fn upload(&self, d: &OciDescriptor, data: &BlobData) -> Result<()> {
        let what = format!("the upload of blob {}", d.digest);
        let start = self.http.url("blobs/uploads/");
        let response = self.http.request(Method::POST, &start, &what).await?;
        let response = transport::expect_success(response, self.host(), &what).await?;
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::registry(format!(
                    "registry {} started an upload without saying where to send it",
                    self.host()
                ))
                .with_help("the registry does not follow the distribution API; use another")
            })?;
        let location = self.http.absolute(location);
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", d.digest);
        let len = data.len();
        let memory = match data {
            BlobData::Memory(bytes) => Some(bytes::Bytes::copy_from_slice(bytes)),
            BlobData::File(_) => None,
        };
        // A file is checked as it goes (its size always, its digest when nobody hashed it
        // yet): a bad last block is never sent, so the registry never completes the upload.
        let check = StreamCheck::new(&d.digest, len, data.unchecked_digest().is_some());
        let failed = Arc::new(OnceLock::new());
        let body = || match (&memory, data.path()) {
            (Some(bytes), _) => reqwest::Body::from(bytes.clone()),
            (None, Some(path)) => {
                reqwest::Body::wrap_stream(file_stream(path, check.clone(), failed.clone()))
            }
            (None, None) => reqwest::Body::from(Vec::new()),
        };
        let sent = self
            .http
            .send(&what, |c| {
                c.put(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .header(reqwest::header::CONTENT_LENGTH, len)
                    .body(body())
            })
            .await;
        let response = match (sent, failed.get()) {
            (Err(_), Some(why)) => return Err(damaged_upload(data, why)),
            (sent, _) => sent?,
        };
        transport::expect_success(response, self.host(), &what)
            .await
            .map(drop)
    }

    // ---- pull -------------------------------------------------------------------------------

    async fn pull(&self, opts: &ClientOptions) -> Result<Package> {
        let (manifest_bytes, manifest_digest) = self.pull_manifest().await?;
        let manifest = ebpf_package::blob::parse_manifest(&manifest_bytes)?;
        let format = check_package_shape(&manifest, &self.reference.whole())?;
        check_total_size(&manifest, &self.reference.whole())?;
        if format != Format::CargoEbpf {
            eprintln!("note: {} is a {format} image", self.reference.whole());
        }
        let config = self.pull_blob(&manifest.config, opts).await?;
        let config = config.bytes()?.into_owned();
        // Only OCI image configs carry a platform; gadget and bumblebee configs do not.
        if matches!(format, Format::CargoEbpf | Format::Bpfman) {
            check_config_platform(&config, &self.reference.whole())?;
        }
        let needed = ebpf_package::formats::needed_layers(&manifest);
        let skipped = manifest.layers.len() - needed.len();
        if skipped > 0 {
            eprintln!(
                "note: not fetching the gadget's {skipped} wasm module layer(s): the built-in loader does not need them"
            );
        }
        let mut layers = Vec::with_capacity(needed.len());
        for layer in needed {
            layers.push(self.pull_blob(layer, opts).await?);
        }
        Package::from_parts(manifest_bytes, Some(&manifest_digest), config, layers)
    }

    /// The image manifest's bytes and digest, resolving an index to this host's platform.
    async fn pull_manifest(&self) -> Result<(Vec<u8>, String)> {
        let accepted = [MEDIA_TYPE_MANIFEST, MEDIA_TYPE_INDEX];
        let (bytes, digest) = self.pull_manifest_raw(&self.reference, &accepted).await?;
        if !is_index(&bytes)? {
            return Ok((bytes, digest));
        }
        let index: OciImageIndex = serde_json::from_slice(&bytes).map_err(|e| {
            Error::input(format!(
                "the image index of {} is not valid: {e}",
                self.reference
            ))
        })?;
        let entry = pick_platform(&index.manifests, &self.reference.whole())?;
        let by_digest = self.by_digest(&entry.digest);
        let (bytes, actual) = self
            .pull_manifest_raw(&by_digest, &[MEDIA_TYPE_MANIFEST])
            .await?;
        digest::verify(&entry.digest, &bytes, "manifest")?;
        Ok((bytes, actual))
    }

    /// The manifest or index at this session's reference; `None` when absent.
    async fn fetch_manifest(&self) -> Result<Option<(Vec<u8>, String)>> {
        let accepted = [MEDIA_TYPE_MANIFEST, MEDIA_TYPE_INDEX];
        self.get_manifest(&self.reference, &accepted).await
    }

    /// [`Session::get_manifest`], where a missing manifest is an error.
    async fn pull_manifest_raw(
        &self,
        reference: &oci_client::Reference,
        accepted: &[&str],
    ) -> Result<(Vec<u8>, String)> {
        self.get_manifest(reference, accepted)
            .await?
            .ok_or_else(|| transport::not_found(&reference.whole(), self.host()))
    }

    /// One manifest: a declared length over [`MAX_MANIFEST_SIZE`] is refused before the
    /// body, and the body is cut off as soon as it passes the limit. `None` when the
    /// registry has no manifest there (404).
    async fn get_manifest(
        &self,
        reference: &oci_client::Reference,
        accepted: &[&str],
    ) -> Result<Option<(Vec<u8>, String)>> {
        let url = self
            .http
            .url(&format!("manifests/{}", tag_or_digest(reference)));
        let whole = reference.whole();
        let accept = accepted.join(", ");
        let response = self
            .http
            .send(&whole, |c| {
                c.get(&url).header(reqwest::header::ACCEPT, accept.as_str())
            })
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let mut response = transport::expect_success(response, self.host(), &whole).await?;
        let bytes = read_capped(&mut response, MAX_MANIFEST_SIZE, &whole, self.host()).await?;
        let digest = digest::sha256(&bytes);
        if let Some(expected) = reference.digest() {
            digest::verify(expected, &bytes, "manifest")?;
        }
        let claimed = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok());
        if let Some(claimed) = claimed.filter(|c| *c != digest) {
            return Err(Error::integrity(format!(
                "registry {} says the manifest of {whole} is {claimed}, but its content is {digest}",
                self.host()
            ))
            .with_help("the registry or something between is altering content; nothing was stored"));
        }
        Ok(Some((bytes, digest)))
    }

    /// The tags of this repository, read with the manifest size cap (a hostile registry
    /// cannot answer with an endless list).
    async fn list_tags(&self) -> Result<Vec<String>> {
        let url = self.http.url("tags/list");
        let whole = self.reference.whole();
        let response = self.http.request(Method::GET, &url, &whole).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(vec![]);
        }
        let mut response = transport::expect_success(response, self.host(), &whole).await?;
        let bytes = read_capped(&mut response, MAX_MANIFEST_SIZE, &whole, self.host()).await?;
        let list: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::registry(format!(
                "registry {} sent a tag list that is not JSON",
                self.host()
            ))
            .with_source(e)
        })?;
        Ok(list["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A blob, verified against its digest; a large one lands in a temp file as it streams
    /// in ([`Spool`]), never whole in memory, and never past its declared size.
    async fn pull_blob(&self, d: &OciDescriptor, opts: &ClientOptions) -> Result<BlobData> {
        let size = u64::try_from(d.size).unwrap_or(u64::MAX);
        if size > MAX_BLOB_SIZE {
            return Err(Error::input(format!(
                "blob {} of {} is {} bytes, over the {MAX_BLOB_SIZE}-byte limit",
                d.digest, self.reference, d.size
            ))
            .with_help("this is not a cargo-ebpf package, or it is damaged"));
        }
        let url = self.http.url(&format!("blobs/{}", d.digest));
        let what = format!("blob {} of {}", d.digest, self.reference.whole());
        let response = self.http.request(Method::GET, &url, &what).await?;
        let mut response = transport::expect_success(response, self.host(), &what).await?;
        let overflow = || {
            Error::integrity(format!(
                "registry {} sent more than the {size} bytes declared for blob {}",
                self.host(),
                d.digest
            ))
            .with_help("the content was tampered with; nothing was stored")
        };
        if response.content_length().is_some_and(|n| n > size) {
            return Err(overflow());
        }
        let bar = progress_bar(opts, "pull", &d.digest, size);
        // The size is only a claim until the digest checks out: spool as data arrives.
        let mut spool = Spool::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport::request_error(&e, self.host(), &what))?
        {
            if spool.len() + chunk.len() as u64 > size {
                return Err(overflow());
            }
            spool
                .write_all(&chunk)
                .map_err(|e| Error::io("write", &std::env::temp_dir(), e))?;
            if let Some(bar) = &bar {
                bar.inc(chunk.len() as u64);
            }
        }
        if let Some(bar) = &bar {
            bar.finish();
        }
        let (data, actual) = spool.finish()?;
        if actual != d.digest {
            return Err(Error::integrity(format!(
                "blob {} from {} does not match its digest: its content is {actual}",
                d.digest,
                self.host()
            ))
            .with_help(
                "the content was corrupted or tampered with; nothing was stored. \
                 Retry, or ask the publisher to push again",
            ));
        }
        Ok(data)
    }
}

/// The tag or digest part of a manifest URL.
fn tag_or_digest(reference: &oci_client::Reference) -> &str {
    reference
        .digest()
        .unwrap_or_else(|| reference.tag().unwrap_or("latest"))
}

/// Reads a response body of at most `limit` bytes: a larger declared length is refused
/// before reading, and the stream is abandoned as soon as it passes the limit.
async fn read_capped(
    response: &mut reqwest::Response,
    limit: usize,
    reference: &str,
    host: &str,
) -> Result<Vec<u8>> {
    let too_big = || {
        Error::input(format!(
            "registry {host} sent a manifest for {reference} larger than the {limit}-byte limit"
        ))
        .with_help("this is not a package (manifests are a few KiB), or the registry is hostile; nothing was stored")
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport::request_error(&e, host, reference))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A file's bytes as an upload body, read in blocks as the request goes out (opened when
/// the body starts, so a request sent again reads it again) and passed through `check`
/// first: a block that fails it ends the body with an error, saved in `failed`.
fn file_stream(
    path: &std::path::Path,
    check: StreamCheck,
    failed: Arc<OnceLock<String>>,
) -> impl futures_util::Stream<Item = io::Result<bytes::Bytes>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    let path = path.to_path_buf();
    let start = (None::<tokio::fs::File>, check);
    futures_util::stream::try_unfold(start, move |(file, mut check)| {
        let path = path.clone();
        let failed = failed.clone();
        async move {
            let mut file = match file {
                Some(file) => file,
                None => tokio::fs::File::open(&path).await?,
            };
            let mut block = vec![0; UPLOAD_BLOCK];
            let n = file.read(&mut block).await?;
            block.truncate(n);
            if let Err(e) = check.pass(&block) {
                let _ = failed.set(e.to_string());
                return Err(e);
            }
            Ok((n > 0).then(|| (bytes::Bytes::from(block), (Some(file), check))))
        }
    })
}

/// The error for an upload stopped because the file's bytes failed their check.
fn damaged_upload(data: &BlobData, why: &str) -> Error {
    let file = data
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    Error::integrity(format!("{file}: {why}; the upload was stopped before its end"))
        .with_help("the file was changed or damaged after it was packaged: run `cargo ebpf package` to package it again, then push")
}

/// Bytes read per step of an upload.
const UPLOAD_BLOCK: usize = 256 << 10;

/// Only formats we can run are pulled (see [`ebpf_package::formats::detect`]); anything else is
/// refused before its blobs are downloaded, so a foreign or hostile image cannot make us
/// fetch many (or huge) blobs into memory.
fn check_package_shape(manifest: &OciImageManifest, reference: &str) -> Result<Format> {
    ebpf_package::formats::detect(manifest, None).map_err(|mut e| {
        e.message = format!("{reference}: {}", e.message);
        e
    })
}

/// Refuses a package whose blobs together claim more than [`MAX_BLOB_SIZE`] before any is
/// fetched: each is held in memory until verified, so many large layers would add up.
fn check_total_size(manifest: &OciImageManifest, reference: &str) -> Result<()> {
    let total = std::iter::once(&manifest.config)
        .chain(ebpf_package::formats::needed_layers(manifest))
        .map(|d| u64::try_from(d.size).unwrap_or(u64::MAX))
        .fold(0u64, u64::saturating_add);
    if total > MAX_BLOB_SIZE {
        return Err(Error::input(format!(
            "{reference} is {total} bytes in all, over the {MAX_BLOB_SIZE}-byte limit for a package"
        ))
        .with_help("eBPF packages are far smaller; this image is not one, or it is hostile. Nothing was fetched"));
    }
    Ok(())
}

/// A single-platform package for another platform is refused before its layer is fetched
/// (an index was already resolved to this host's entry, which passes).
fn check_config_platform(config: &[u8], reference: &str) -> Result<()> {
    let platform: Platform = serde_json::from_slice(config).map_err(|e| {
        Error::input(format!(
            "{reference} is not a cargo-ebpf package: its image config has no platform: {e}"
        ))
    })?;
    platform::check_host_platform(&platform, reference)
}

fn is_index(bytes: &[u8]) -> Result<bool> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::input("the manifest is not valid JSON").with_source(e))?;
    Ok(value["mediaType"] == MEDIA_TYPE_INDEX || value.get("manifests").is_some())
}

/// Collects a blob in memory, refusing more than `limit` bytes, and ticks a progress bar.
fn progress_bar(opts: &ClientOptions, verb: &str, digest: &str, len: u64) -> Option<ProgressBar> {
    if !opts.progress {
        return None;
    }
    let bar = ProgressBar::new(len);
    let style =
        ProgressStyle::with_template("{prefix:>5} {msg:19} [{bar:30}] {bytes}/{total_bytes}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(verb.to_string());
    bar.set_message(digest.chars().take(19).collect::<String>());
    Some(bar)
}

/// [`block_on`] with an overall deadline: `what` did not finish within `limit` is a
/// registry error saying how to allow more time.
pub(crate) fn block_on_deadline<T>(
    fut: impl std::future::Future<Output = Result<T>>,
    limit: Duration,
    what: &str,
) -> Result<T> {
    block_on(async {
        match tokio::time::timeout(limit, fut).await {
            Ok(result) => result,
            Err(_) => Err(Error::registry(format!(
                "{what} did not finish within {} s",
                limit.as_secs_f64()
            ))
            .with_help(format!(
                "the server is not answering or is very slow; check it, or allow more time \
                 with --timeout SECS (or {ENV_TIMEOUT}=SECS)"
            ))),
        }
    })
}

// ---- hosts ----------------------------------------------------------------------------------

/// `host[:port]` from a registry given as a host, a URL or a reference-like string.
fn registry_host(registry: &str) -> Result<String> {
    let rest = registry
        .strip_prefix("https://")
        .or_else(|| registry.strip_prefix("http://"))
        .unwrap_or(registry);
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '@') {
        return Err(Error::input(format!("invalid registry {registry:?}"))
            .with_help("give the registry as HOST[:PORT], e.g. localhost:5000 or ghcr.io"));
    }
    Ok(host.to_string())
}

/// Whether `host[:port]` is on this machine: 127.0.0.0/8, ::1 or localhost.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn use_http(host: &str, opts: &ClientOptions) -> bool {
    opts.insecure || is_loopback(host)
}

// ---- login ----------------------------------------------------------------------------------

/// Verifies credentials the way `docker login` does: ask /v2/ who we must be, then prove it
/// with HTTP Basic (directly, or against the token service a Bearer challenge names).
async fn check_login(scheme: &str, host: &str, user: &str, pass: &str) -> Result<()> {
    let http = transport::client(scheme == "https")?;
    let url = format!("{scheme}://{host}/v2/");
    let unreachable = |e: reqwest::Error| unreachable_error(host, &error_chain(&e));
    let first = http.get(&url).send().await.map_err(unreachable)?;
    if first.status().is_success() {
        return Ok(()); // The registry needs no credentials; storing them does no harm.
    }
    if first.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(status_error(host, first.status().as_u16(), "/v2/"));
    }
    let challenge = first
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let check = match bearer_realm(&challenge) {
        Some((realm, service)) => {
            let mut query = vec![("account", user.to_string())];
            query.extend(service.map(|s| ("service", s)));
            http.get(realm).query(&query)
        }
        None => http.get(&url),
    };
    let res = check
        .basic_auth(user, Some(pass))
        .send()
        .await
        .map_err(unreachable)?;
    match res.status().as_u16() {
        200..=299 => Ok(()),
        401 | 403 => Err(auth_error(host)),
        code => Err(status_error(host, code, "login")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebpf_package::ErrorKind;

    #[test]
    fn many_large_layers_are_refused_before_fetching() {
        let layer = |size: i64| OciDescriptor {
            media_type: "application/octet-stream".into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size,
            ..Default::default()
        };
        let mut manifest = OciImageManifest {
            config: layer(100),
            layers: vec![layer(1000)],
            ..Default::default()
        };
        check_total_size(&manifest, "r").unwrap();
        manifest.layers.extend((0..20).map(|_| layer(60 << 20)));
        let err = check_total_size(&manifest, "r").unwrap_err();
        assert!(err.message.contains("limit"), "{}", err.message);
        manifest.layers = vec![layer(i64::MAX), layer(i64::MAX)];
        assert!(check_total_size(&manifest, "r").is_err());
    }

    #[test]
    fn loopback_detection() {
        for h in [
            "127.0.0.1:5000",
            "127.8.9.1",
            "localhost:80",
            "LOCALHOST",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "ghcr.io",
            "10.0.0.1:5000",
            "example.com:5000",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn registry_host_strips_scheme_and_path() {
        assert_eq!(registry_host("https://ghcr.io/v2/").unwrap(), "ghcr.io");
        assert_eq!(registry_host("localhost:5000").unwrap(), "localhost:5000");
        assert!(registry_host("").is_err());
    }

    #[test]
    fn unknown_shapes_are_refused_before_blobs() {
        let pkg = Package::build(
            ebpf_package::spec::PackageMeta::new("shape", "0.1.0", "shape.bpf.o"),
            b"obj",
            None,
        )
        .unwrap();
        let ok = pkg.manifest.clone();
        assert_eq!(check_package_shape(&ok, "r").unwrap(), Format::CargoEbpf);
        let mut none = ok.clone();
        none.layers.clear();
        let mut two = ok.clone();
        two.layers.push(ok.layers[0].clone());
        let mut docker_layer = ok.clone();
        docker_layer.layers[0].media_type =
            "application/vnd.docker.image.rootfs.diff.tar.gzip".into();
        let mut wasm_config = ok.clone();
        wasm_config.config.media_type = "application/vnd.wasm.config.v0+json".into();
        for (bad, why) in [
            (none, "0 layers"),
            (two, "2 layers"),
            (docker_layer, "its layer has media type"),
            (wasm_config, "its config has media type"),
        ] {
            let err = check_package_shape(&bad, "r").unwrap_err();
            assert_eq!(err.kind, ErrorKind::Input);
            assert!(err.message.starts_with("r: "), "{}", err.message);
            assert!(err.message.contains(why), "{}", err.message);
        }
    }
}
