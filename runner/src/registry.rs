//! Push, pull and login against OCI registries (oci-client underneath).
//!
//! The public API is synchronous: each call builds a current-thread tokio runtime, since the
//! CLI does one registry operation at a time. Loopback registries (127.0.0.0/8, localhost,
//! [::1]) are spoken to over plain HTTP, like docker and skopeo do; others only with
//! `insecure`.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciImageIndex, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

use ebpf_package::blob::Blob;
use ebpf_package::image_index::{PackageIndex, Release};
use ebpf_package::platform::{self, pick_platform, Platform};
use ebpf_package::spec::{Format, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use ebpf_package::{digest, Error, ErrorKind, Package, Reference, Result};

use crate::credentials::{self, AuthPaths, Credentials};

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

    /// Pushes `pkg` to `reference`; returns the manifest digest.
    pub fn push(&self, pkg: &Package, reference: &Reference) -> Result<String> {
        let session = Session::new(reference, &self.options, &self.auth)?;
        block_on(session.push(pkg, &self.options))
    }

    /// Pushes a release: a single package as [`Registry::push`] does, or every platform
    /// package by digest and then the image index under the reference's tag. Returns the
    /// tag's digest.
    pub fn push_release(&self, release: &Release, reference: &Reference) -> Result<String> {
        let session = Session::new(reference, &self.options, &self.auth)?;
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
        block_on(async {
            session.authenticate(RegistryOperation::Pull).await?;
            session.fetch_manifest().await
        })
    }

    /// The blob `descriptor` names in `reference`'s repository, checked against its digest.
    pub fn fetch_blob(&self, reference: &Reference, descriptor: &OciDescriptor) -> Result<Vec<u8>> {
        let session = Session::new(reference, &self.options, &self.auth)?;
        block_on(async {
            session.authenticate(RegistryOperation::Pull).await?;
            let data = session.pull_blob(descriptor, &self.options).await?;
            digest::verify(&descriptor.digest, &data, "blob")?;
            Ok(data)
        })
    }

    /// Uploads `blobs`, then the image manifest `manifest` under `reference`; returns its
    /// digest.
    pub fn push_manifest_with_blobs(
        &self,
        reference: &Reference,
        blobs: &[&Blob],
        manifest: &[u8],
    ) -> Result<String> {
        let session = Session::new(reference, &self.options, &self.auth)?;
        block_on(async {
            session.authenticate(RegistryOperation::Push).await?;
            for blob in blobs {
                session
                    .push_blob(&blob.descriptor, &blob.data, &self.options)
                    .await?;
            }
            session
                .push_manifest(&session.reference, manifest, MEDIA_TYPE_MANIFEST)
                .await
        })
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
        let session = Session::new(reference, &self.options, &self.auth)?;
        block_on(async {
            session.authenticate(RegistryOperation::Push).await?;
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
    client: Client,
    auth: RegistryAuth,
    /// For manifests, which are read with a size cap (see `pull_manifest_raw`).
    http: reqwest::Client,
    scheme: &'static str,
}

impl Session {
    fn new(reference: &Reference, opts: &ClientOptions, paths: &AuthPaths) -> Result<Session> {
        let reference = reference.as_oci().clone();
        let registry = reference.resolve_registry().to_string();
        let protocol = if opts.insecure {
            ClientProtocol::Http
        } else if is_loopback(&registry) {
            ClientProtocol::HttpsExcept(vec![registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(std::time::Duration::from_secs(15)),
            read_timeout: Some(std::time::Duration::from_secs(120)),
            ..Default::default()
        };
        let scheme = if opts.insecure || is_loopback(&registry) {
            "http"
        } else {
            "https"
        };
        let client = Client::try_from(config).map_err(|e| {
            Error::environment("cannot set up the HTTP client")
                .with_source(e)
                .with_help("check the system's TLS setup (OpenSSL)")
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| {
                Error::environment("cannot set up the HTTP client")
                    .with_source(e)
                    .with_help("check the system's TLS setup")
            })?;
        let auth = match credentials::lookup_in(paths, reference.registry())? {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        };
        Ok(Session {
            reference,
            client,
            auth,
            http,
            scheme,
        })
    }

    fn host(&self) -> &str {
        self.reference.registry()
    }

    fn err(&self, e: OciDistributionError) -> Error {
        map_error(e, self.host(), &self.reference.whole())
    }

    async fn authenticate(&self, op: RegistryOperation) -> Result<()> {
        self.client
            .store_auth_if_needed(self.reference.resolve_registry(), &self.auth)
            .await;
        // Anonymous access needs no token round trip; failures surface on the first request.
        if matches!(self.auth, RegistryAuth::Anonymous) {
            return Ok(());
        }
        self.client
            .auth(&self.reference, &self.auth, op)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    // ---- push -------------------------------------------------------------------------------

    async fn push(&self, pkg: &Package, opts: &ClientOptions) -> Result<String> {
        self.authenticate(RegistryOperation::Push).await?;
        self.push_package(pkg, &self.reference, opts).await
    }

    /// Pushes every platform package by digest, then the index under the tag, so the tag
    /// never names an index whose manifests the registry lacks.
    async fn push_index(&self, index: &PackageIndex, opts: &ClientOptions) -> Result<String> {
        self.authenticate(RegistryOperation::Push).await?;
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
        let content_type = reqwest::header::HeaderValue::from_static(media_type);
        let location = self
            .client
            .push_manifest_raw(reference, bytes.to_vec(), content_type)
            .await
            .map_err(|e| self.err(e))?;
        let expected = digest::sha256(bytes);
        let actual = match location.rsplit_once('/').map(|(_, d)| d) {
            Some(d) if d.starts_with("sha256:") => d.to_string(),
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

    async fn remote_digest(&self, reference: &oci_client::Reference) -> Result<String> {
        self.client
            .fetch_manifest_digest(reference, &self.auth)
            .await
            .map_err(|e| self.err(e))
    }

    async fn push_blob(&self, d: &OciDescriptor, data: &[u8], opts: &ClientOptions) -> Result<()> {
        let bar = progress_bar(opts, "push", &d.digest, data.len() as u64);
        let exists = self
            .client
            .blob_exists(&self.reference, &d.digest)
            .await
            .map_err(|e| self.err(e))?;
        if !exists {
            self.client
                .push_blob(&self.reference, data.to_vec(), &d.digest)
                .await
                .map_err(|e| self.err(e))?;
        }
        if let Some(bar) = bar {
            bar.set_position(data.len() as u64);
            bar.finish_with_message(if exists { "exists" } else { "pushed" });
        }
        Ok(())
    }

    // ---- pull -------------------------------------------------------------------------------

    async fn pull(&self, opts: &ClientOptions) -> Result<Package> {
        self.authenticate(RegistryOperation::Pull).await?;
        let (manifest_bytes, manifest_digest) = self.pull_manifest().await?;
        let manifest = ebpf_package::blob::parse_manifest(&manifest_bytes)?;
        let format = check_package_shape(&manifest, &self.reference.whole())?;
        check_total_size(&manifest, &self.reference.whole())?;
        if format != Format::CargoEbpf {
            eprintln!("note: {} is a {format} image", self.reference.whole());
        }
        let config = self.pull_blob(&manifest.config, opts).await?;
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
            .ok_or_else(|| not_found(&reference.whole(), self.host()))
    }

    /// One manifest, fetched directly rather than through oci-client (which reads a
    /// whole body before any size check): a declared length over [`MAX_MANIFEST_SIZE`] is
    /// refused before the body, and the body is cut off as soon as it passes the limit.
    /// `None` when the registry has no manifest there (404).
    async fn get_manifest(
        &self,
        reference: &oci_client::Reference,
        accepted: &[&str],
    ) -> Result<Option<(Vec<u8>, String)>> {
        let url = format!(
            "{}://{}/v2/{}/manifests/{}",
            self.scheme,
            reference.resolve_registry(),
            reference.repository(),
            reference
                .digest()
                .unwrap_or_else(|| reference.tag().unwrap_or("latest"))
        );
        let request = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, accepted.join(", "));
        let request = self.authorize(reference, request).await;
        let whole = reference.whole();
        let mut response = request
            .send()
            .await
            .map_err(|e| map_request_error(&e, self.host(), &whole))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        check_manifest_status(&mut response, self.host(), &whole).await?;
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

    /// Adds the credentials the registry wants: a bearer token when it hands them out
    /// (anonymous ones too), else basic auth when we have credentials.
    /// The tags of this repository, read with the manifest size cap (a hostile registry
    /// cannot answer with an endless list).
    async fn list_tags(&self) -> Result<Vec<String>> {
        let url = format!(
            "{}://{}/v2/{}/tags/list",
            self.scheme,
            self.reference.resolve_registry(),
            self.reference.repository()
        );
        let request = self.authorize(&self.reference, self.http.get(&url)).await;
        let whole = self.reference.whole();
        let mut response = request
            .send()
            .await
            .map_err(|e| map_request_error(&e, self.host(), &whole))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(vec![]);
        }
        check_manifest_status(&mut response, self.host(), &whole).await?;
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

    async fn authorize(
        &self,
        reference: &oci_client::Reference,
        request: reqwest::RequestBuilder,
    ) -> reqwest::RequestBuilder {
        let token = self
            .client
            .auth(reference, &self.auth, RegistryOperation::Pull)
            .await;
        match (token, &self.auth) {
            (Ok(Some(token)), _) => request.bearer_auth(token),
            (_, RegistryAuth::Basic(user, pass)) => request.basic_auth(user, Some(pass)),
            // An anonymous request: a registry wanting more says so with its answer.
            _ => request,
        }
    }

    async fn pull_blob(&self, d: &OciDescriptor, opts: &ClientOptions) -> Result<Vec<u8>> {
        let size = u64::try_from(d.size).unwrap_or(u64::MAX);
        if size > MAX_BLOB_SIZE {
            return Err(Error::input(format!(
                "blob {} of {} is {} bytes, over the {MAX_BLOB_SIZE}-byte limit",
                d.digest, self.reference, d.size
            ))
            .with_help("this is not a cargo-ebpf package, or it is damaged"));
        }
        let mut sink = Sink {
            // The size is only a claim until the digest checks out: grow as data arrives.
            data: Vec::with_capacity(size.min(PREALLOC_LIMIT) as usize),
            limit: size,
            overflow: false,
            bar: progress_bar(opts, "pull", &d.digest, size),
        };
        let result = self.client.pull_blob(&self.reference, d, &mut sink).await;
        if sink.overflow {
            return Err(Error::integrity(format!(
                "registry {} sent more than the {size} bytes declared for blob {}",
                self.host(),
                d.digest
            ))
            .with_help("the content was tampered with; nothing was stored"));
        }
        result.map_err(|e| self.err(e))?;
        if let Some(bar) = &sink.bar {
            bar.finish();
        }
        Ok(sink.data)
    }
}

/// Maps a manifest answer's status to our errors (reading at most a small error body).
async fn check_manifest_status(
    response: &mut reqwest::Response,
    host: &str,
    reference: &str,
) -> Result<()> {
    let code = response.status().as_u16();
    match code {
        200..=299 => Ok(()),
        403 => {
            let body = read_capped(response, 64 << 10, reference, host)
                .await
                .unwrap_or_default();
            Err(denied_error(
                host,
                denied_messages(&String::from_utf8_lossy(&body)),
            ))
        }
        _ => Err(status_error(
            host,
            code,
            &format!("the manifest request for {reference}"),
        )),
    }
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
        .map_err(|e| map_request_error(&e, host, reference))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Most memory reserved for a blob before any of it has arrived.
const PREALLOC_LIMIT: u64 = 1 << 20;

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
struct Sink {
    data: Vec<u8>,
    limit: u64,
    overflow: bool,
    bar: Option<ProgressBar>,
}

impl tokio::io::AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.data.len() as u64 + buf.len() as u64 > this.limit {
            this.overflow = true;
            return Poll::Ready(Err(io::Error::other("blob larger than declared")));
        }
        this.data.extend_from_slice(buf);
        if let Some(bar) = &this.bar {
            bar.inc(buf.len() as u64);
        }
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

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

fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::environment("cannot start the async runtime").with_source(e))?
        .block_on(fut)
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
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| Error::environment("cannot set up the HTTP client").with_source(e))?;
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

/// The realm and service of a `Bearer realm="…",service="…"` challenge.
fn bearer_realm(challenge: &str) -> Option<(String, Option<String>)> {
    let params = challenge.trim().strip_prefix("Bearer ")?;
    let get = |key: &str| {
        params.split(',').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            k.eq_ignore_ascii_case(key)
                .then(|| v.trim_matches('"').to_string())
        })
    };
    Some((get("realm")?, get("service")))
}

// ---- errors ---------------------------------------------------------------------------------

fn unreachable_error(host: &str, why: &str) -> Error {
    Error::registry(format!("cannot reach registry {host}: {why}"))
        .with_help("check the address and that the registry is running")
}

fn auth_error(host: &str) -> Error {
    Error::auth(format!(
        "registry {host} rejected the credentials (or has none for you)"
    ))
    .with_help(format!("run `cargo ebpf login {host}`"))
}

/// A 403 `DENIED`: the credentials were fine, this operation is not allowed. The
/// registry's own words say why ("alice/x is not in your namespace; push to bob/x"), so
/// they are passed on; without any, it reads like rejected credentials.
fn denied_error(host: &str, messages: Vec<String>) -> Error {
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

/// The `message`s of an OCI error body (`{"errors":[{"code","message"}]}`).
fn denied_messages(body: &str) -> Vec<String> {
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

fn not_found(reference: &str, host: &str) -> Error {
    Error::registry(format!("{reference} not found on {host}"))
        .with_help("check the repository name and tag (and that it was pushed)")
}

fn status_error(host: &str, code: u16, what: &str) -> Error {
    match code {
        401 | 403 => auth_error(host),
        _ => Error::registry(format!("registry {host} answered HTTP {code} to {what}"))
            .with_help("check the registry address; retry later if the registry is failing"),
    }
}

/// Maps oci-client's errors to our kinds, with help saying what to do.
fn map_error(e: OciDistributionError, host: &str, reference: &str) -> Error {
    use OciDistributionError as E;
    match e {
        E::RequestError(re) => map_request_error(&re, host, reference),
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => auth_error(host),
        E::ServerError { code: 404, .. } | E::ImageManifestNotFoundError(_) => {
            not_found(reference, host)
        }
        E::ServerError {
            code: 403, message, ..
        } => denied_error(host, denied_messages(&message)),
        E::ServerError { code, message, .. } => {
            status_error(host, code, reference).with_details(message)
        }
        E::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let any = |want: &[OciErrorCode]| codes.iter().any(|c| want.contains(c));
            if any(&[OciErrorCode::Denied]) {
                let messages = envelope.errors.iter().map(|e| e.message.clone());
                denied_error(host, messages.filter(|m| !m.is_empty()).collect())
            } else if any(&[OciErrorCode::Unauthorized]) {
                auth_error(host)
            } else if any(&[
                OciErrorCode::ManifestUnknown,
                OciErrorCode::NameUnknown,
                OciErrorCode::BlobUnknown,
                OciErrorCode::NotFound,
            ]) {
                not_found(reference, host)
            } else if any(&[OciErrorCode::DigestInvalid, OciErrorCode::SizeInvalid]) {
                Error::integrity(format!(
                    "registry {host} reported a digest error: {envelope}"
                ))
            } else {
                Error::registry(format!("registry {host} refused: {envelope}"))
            }
        }
        E::DigestError(d) => Error::integrity(format!(
            "content from {host} does not match its digest: {d}"
        ))
        .with_help(
            "the content was corrupted or tampered with; nothing was stored. \
             Retry, or ask the publisher to push again",
        ),
        other => Error::registry(format!("registry {host}: {other}")),
    }
}

fn map_request_error(re: &reqwest::Error, host: &str, reference: &str) -> Error {
    match re.status().map(|s| s.as_u16()) {
        Some(401 | 403) => return auth_error(host),
        Some(404) => return not_found(reference, host),
        Some(code) => return status_error(host, code, reference),
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
fn error_chain(e: &dyn std::error::Error) -> String {
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
        let body = r#"{"errors":[{"code":"DENIED","message":"alice/x is not in your namespace; push to bob/x"}]}"#;
        let server = |code: u16, message: &str| OciDistributionError::ServerError {
            url: "http://h/v2/alice/x/blobs/uploads/".into(),
            code,
            message: message.into(),
        };
        let e = map_error(server(403, body), "h", "h/alice/x:1.0.0");
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(
            e.message
                .contains("denied it: alice/x is not in your namespace; push to bob/x"),
            "{}",
            e.message
        );
        // Without a message, and for a 401, it still reads as rejected credentials.
        let e = map_error(server(403, "forbidden"), "h", "h/alice/x:1.0.0");
        assert!(
            e.message.contains("rejected the credentials"),
            "{}",
            e.message
        );
        let e = map_error(server(401, body), "h", "h/alice/x:1.0.0");
        assert!(
            e.message.contains("rejected the credentials"),
            "{}",
            e.message
        );
        assert_eq!(e.kind, ErrorKind::Auth);
    }

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
    fn bearer_challenge_parsing() {
        assert_eq!(
            bearer_realm(r#"Bearer realm="https://auth.example/token",service="reg.example""#),
            Some((
                "https://auth.example/token".into(),
                Some("reg.example".into())
            ))
        );
        assert_eq!(bearer_realm(r#"Basic realm="x""#), None);
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
