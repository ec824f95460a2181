//! The cargo-ebpf hub: an OCI registry (`/v2/`) for eBPF packages, with a web store on top.
//!
//! Pipeline of a request: axum router → [`oci::dispatch`] (registry API) → metadata in
//! [`db::Db`] (SQLite in the data dir, or Postgres) and bytes in [`blobs::BlobStore`]
//! (files under the data dir, made visible only after their digest is checked).
//!
//! Errors: request handlers answer with [`error::HubError`] (HTTP status, OCI code,
//! message). Startup ([`open`], [`serve`]) and the [`admin`] commands are CLI code and
//! return the CLI's `ebpf_package::Error`, whose kinds are exit codes; [`error`] holds the
//! one conversion each way.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod api_read;
pub mod attestations;
pub mod auth;
pub mod blobs;
pub mod catalog;
pub mod db;
pub mod error;
pub mod gc;
pub mod headers;
pub mod keys;
pub mod objects;
pub mod oci;
pub mod rate;
pub mod signatures;
pub mod uploads;
pub mod versions;
pub mod web;
pub mod yank;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use axum::serve::ListenerExt;
use axum::Router;

use ebpf_package::{Error, Result};

use error::HubResult;

/// Largest blob the hub accepts by default (a package layer is a few hundred KiB).
pub const DEFAULT_MAX_BLOB: u64 = 512 * 1024 * 1024;

/// How `cargo ebpf hub serve` was asked to run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: String,
    /// Blobs, uploads, and (by default) the SQLite database live here.
    pub data: PathBuf,
    /// `postgres://…` to share metadata between several hub processes.
    pub database: Option<String>,
    /// Where verified blobs go: None or `file` for `DATA/blobs`, or
    /// `registry+http(s)://HOST[:PORT]/REPO` for an upstream OCI registry.
    pub blob_store: Option<String>,
    /// How to reach the hub's operators, shown on the about page (an email address or a
    /// URL).
    pub contact: Option<String>,
    /// The hub is reached over HTTPS (directly or through a TLS-terminating proxy): cookies
    /// get `Secure` and pages ask browsers to stay on HTTPS.
    pub secure_cookies: bool,
    /// Most bytes of blobs one user's repositories may hold.
    pub user_quota: u64,
}

/// Storage one user may fill by default.
pub const DEFAULT_USER_QUOTA: u64 = 2 * 1024 * 1024 * 1024;

impl ServeOptions {
    /// Options with every default: a file blob store and SQLite in `data`.
    pub fn new(addr: impl Into<String>, data: impl Into<PathBuf>) -> ServeOptions {
        ServeOptions {
            addr: addr.into(),
            data: data.into(),
            database: None,
            blob_store: None,
            contact: None,
            secure_cookies: false,
            user_quota: DEFAULT_USER_QUOTA,
        }
    }
}

/// Shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub db: db::Db,
    pub blobs: blobs::BlobStore,
    pub templates: std::sync::Arc<handlebars::Handlebars<'static>>,
    pub limits: std::sync::Arc<rate::Limits>,
    /// [`ServeOptions::contact`].
    pub contact: Option<String>,
    /// Passwords verified in the last minutes (skips argon2 on repeated requests).
    pub verified: std::sync::Arc<auth::VerifiedCache>,
    /// The key CSRF values are derived with, shared by every process on the database.
    pub csrf_key: std::sync::Arc<[u8; 32]>,
    pub secure_cookies: bool,
    pub user_quota: u64,
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    web::routes()
        .route("/v2", any(oci::dispatch))
        .route("/v2/", any(oci::dispatch))
        .route("/v2/{*rest}", any(oci::dispatch))
        .route("/api/v1/register", post(api::register))
        .route("/api/v1/tokens", post(api::create_token))
        .route("/api/v1/search", get(api::search))
        .route("/api/v1/openapi.json", get(api_read::openapi))
        .route("/api/v1/packages", get(api_read::packages))
        .route("/api/v1/users/{user}", get(api_read::user))
        .route("/api/v1/users/{user}/{which}", get(api_read::user_list))
        .route(
            "/api/v1/users/{user}/follow",
            axum::routing::put(api_read::follow).delete(api_read::follow),
        )
        .route(
            "/api/v1/packages/{*repo}",
            get(api_read::package)
                .post(api::package_action)
                .put(api_read::star)
                .delete(api_read::star),
        )
        .route(
            "/api/v1/users/{user}/keys",
            get(api::keys).post(api::add_key),
        )
        .route(
            "/api/v1/users/{user}/keys/{fingerprint}",
            axum::routing::delete(api::delete_key),
        )
        // Forms and JSON are small; blob uploads stream and enforce their own limit.
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn(api_read::cors))
        .layer(axum::middleware::from_fn_with_state(
            state.secure_cookies,
            headers::security_headers,
        ))
        .with_state(state)
}

/// Opens the data dir and the database, ready to serve (startup: CLI errors, with help).
pub async fn open(opts: &ServeOptions) -> Result<AppState> {
    std::fs::create_dir_all(&opts.data)
        .map_err(|e| Error::io("create the hub data dir", &opts.data, e))?;
    // The database holds e-mail addresses and password hashes: owner only.
    restrict(&opts.data, 0o700)?;
    let location = blobs::Location::parse(opts.blob_store.as_deref())?;
    let blobs = blobs::BlobStore::new(&opts.data, DEFAULT_MAX_BLOB, &location)
        .map_err(|e| Error::io("prepare blob storage in", &opts.data, e))?;
    blobs.check().await.map_err(|e| {
        Error::environment("the blob store does not answer")
            .with_source(e)
            .with_help(
                "check --blob-store: the registry must be running and accept the credentials",
            )
    })?;
    let db = db::Db::open(&opts.data, opts.database.as_deref()).await?;
    let csrf_key = web::csrf_key(&db)
        .await
        .map_err(|e| Error::environment("cannot read the hub's shared secret").with_source(e))?;
    gc::backfill_references(&db)
        .await
        .map_err(|e| Error::environment("cannot index manifest references").with_source(e))?;
    Ok(AppState {
        db,
        blobs,
        templates: std::sync::Arc::new(web::templates()),
        limits: std::sync::Arc::new(rate::Limits::default()),
        contact: opts.contact.clone(),
        verified: std::sync::Arc::new(auth::VerifiedCache::default()),
        csrf_key: std::sync::Arc::new(csrf_key),
        secure_cookies: opts.secure_cookies,
        user_quota: opts.user_quota,
    })
}

/// Sets `path`'s permission bits (the data dir, the SQLite files).
pub fn restrict(path: &std::path::Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("restrict the permissions of", path, e))
}

/// Runs the hub until SIGINT or SIGTERM. Blocks; builds its own Tokio runtime.
pub fn serve(opts: ServeOptions) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::environment("cannot start the async runtime").with_source(e))?;
    runtime.block_on(serve_async(opts))
}

async fn serve_async(opts: ServeOptions) -> Result<()> {
    let state = open(&opts).await?;
    let addr: SocketAddr = opts.addr.parse().map_err(|_| {
        Error::usage(format!("--addr {:?} is not HOST:PORT", opts.addr))
            .with_help("give an IP address and port, e.g. 127.0.0.1:8080")
    })?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::environment(format!("cannot listen on {addr}"))
            .with_source(e)
            .with_help("pick a free port, or stop what is using this one")
    })?;
    let local = listener.local_addr().unwrap_or(addr);
    eprintln!(
        "Hub listening on http://{local} (data in {}, {:?} database, blobs in {})",
        opts.data.display(),
        state.db.backend,
        state.blobs.label()
    );
    tokio::spawn(sweep_forever(state.clone()));
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // Without TCP_NODELAY, a response's last small segment waits for the client's delayed
    // ACK (~40 ms) on every request after the first on a kept-alive connection.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            eprintln!("warning: cannot set TCP_NODELAY on a connection: {e}");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| Error::environment("the hub stopped").with_source(e))
}

/// How old an unfinished upload may get before the sweeper deletes it.
pub const UPLOAD_MAX_AGE_SECS: i64 = 24 * 3600;

/// Deletes uploads started more than `max_age_secs` ago (clients that died mid-push);
/// returns how many. Safe with several hubs: each deletion is idempotent.
pub async fn sweep_uploads(state: &AppState, max_age_secs: i64) -> HubResult<usize> {
    let stale = state.db.stale_uploads(db::now() - max_age_secs).await?;
    for id in &stale {
        uploads::discard(&state.db, id).await?;
    }
    Ok(stale.len())
}

async fn sweep_forever(state: AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        if let Err(e) = sweep_uploads(&state, UPLOAD_MAX_AGE_SECS).await {
            eprintln!("warning: sweeping abandoned uploads failed: {e}");
        }
        if let Err(e) = state.db.expire_rate_hits().await {
            eprintln!("warning: expiring rate-limit counters failed: {e}");
        }
        match gc::collect(&state.db, &state.blobs, gc::GRACE_SECS).await {
            Ok(r) if r.blobs > 0 => eprintln!(
                "Collected {} unreferenced blobs ({} bytes)",
                r.blobs, r.bytes
            ),
            Ok(_) => {}
            Err(e) => eprintln!("warning: collecting unreferenced blobs failed: {e}"),
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sweeping_removes_only_old_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ServeOptions::new("127.0.0.1:0", dir.path().join("data"));
        let state = open(&opts).await.unwrap();
        for id in ["0ld", "new"] {
            uploads::start(&state.db, id, "a/b").await.unwrap();
            let body = axum::body::Body::from(format!("bytes of {id}"));
            uploads::append(&state.db, 1024, id, body).await.unwrap();
        }
        sqlx::query("UPDATE uploads SET created_at = 0 WHERE id = '0ld'")
            .execute(&state.db.pool)
            .await
            .unwrap();
        assert_eq!(sweep_uploads(&state, 3600).await.unwrap(), 1);
        assert!(!state.db.upload_exists("0ld", "a/b").await.unwrap());
        assert!(state.db.upload_exists("new", "a/b").await.unwrap());
        assert!(state.db.upload_piece("0ld", 0).await.unwrap().is_none());
        assert_eq!(
            state.db.upload_piece("new", 0).await.unwrap().unwrap(),
            b"bytes of new"
        );
    }
}
