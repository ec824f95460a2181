//! The hub's metadata store: one `sqlx::AnyPool` over SQLite (the embedded default, a file
//! in the data dir) or Postgres (scale-out, several hub processes on one database). On
//! Postgres, searches have a pool of their own, set to plan each search with its values.
//!
//! Every query is written once with `$N` placeholders, which both drivers accept, so the two
//! backends share one code path; only the migrations differ (column types).
//!
//! Queries answer [`HubResult`] (a database failure is a 500 with the sqlx error as its
//! cause); only [`Db::open`] returns the CLI's error, since it runs at `hub serve` startup
//! and in the admin commands, where an operator reads its help.

use std::path::Path;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

use crate::error::HubResult;
use ebpf_package::{Error, Result};

mod accounts;
mod matrices;
mod packages;
mod people;
mod registry;
mod search;
mod security;
mod store;

/// Connections to Postgres per pool (searches, the rest) of a hub process: twice the CPUs.
/// More only queue in the scheduler instead of the pool: with 16 on two cores, 10
/// concurrent searches made 10 backends fight for the CPUs and p99 went from 16 to 30 ms
/// at a lower rate.
fn postgres_connections() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    (2 * cpus).clamp(4, 32) as u32
}

/// A pool on `url`, set up for `backend`. With `search`, Postgres plans every execution of
/// a kept (prepared) statement with its values: a search's plan depends on them (a rare
/// word takes the trigram index, a common one the sort's index), so a cached generic plan
/// would be wrong, while a statement prepared anew each time costs an extra round trip.
/// Other statements keep their generic plans, cheaper than planning each manifest GET.
async fn connect(url: &str, backend: Backend, search: bool) -> Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => postgres_connections(),
        })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                let settings: &[&str] = match backend {
                    // WAL lets readers proceed during a write; the timeout rides out short
                    // write locks instead of failing the request. Reads go through a
                    // shared memory map instead of a read() per page into each
                    // connection's small cache: searches read many pages.
                    Backend::Sqlite => &[
                        "PRAGMA journal_mode=WAL",
                        "PRAGMA busy_timeout=10000",
                        "PRAGMA mmap_size=268435456",
                    ],
                    // The hub's tables fit in memory: an index page costs about what a
                    // sequential one does, so the planner picks the trigram indexes of
                    // search for rare words instead of reading every package.
                    Backend::Postgres if search => &[
                        "SET random_page_cost = 1.1",
                        "SET plan_cache_mode = force_custom_plan",
                    ],
                    Backend::Postgres => &["SET random_page_cost = 1.1"],
                };
                for setting in settings {
                    sqlx::query(setting).execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|e| {
            Error::environment("cannot open the hub database")
                .with_source(e)
                .with_help("check --database, or that the data dir is writable")
        })
}

#[cfg(test)]
pub(crate) mod test_postgres;
mod trust;
mod web;

pub use accounts::{TokenRow, UserRow};
pub use matrices::MatrixRow;
pub use packages::{PackageRow, VersionRow};
pub use people::{FeedItem, Profile};
pub use registry::{ManifestRow, NewManifest};
pub use search::{search_words, Found, Hit, SearchQuery, Sort, FORMATS, MAX_PER_PAGE};
pub use store::{Counts, PackageFlags};
pub use trust::{KeyRow, VerifiedSignature};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pub(crate) pool: AnyPool,
    /// What searches run on ([`connect`]).
    search_pool: AnyPool,
    pub backend: Backend,
    /// What search's recent samples of the table found.
    samples: std::sync::Arc<search::Samples>,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Db {
    /// Opens `url` (`postgres://…`), or `DIR/hub.db` when `url` is None, and migrates it.
    pub async fn open(data: &Path, url: Option<&str>) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let (url, backend) = match url {
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                (u.to_string(), Backend::Postgres)
            }
            Some(u) => {
                return Err(Error::usage(format!("unsupported database URL {u:?}"))
                    .with_help("pass a postgres://USER@HOST:PORT/DB URL, or omit --database for SQLite in the data dir"))
            }
            None => {
                owner_only(data)?;
                (
                    format!("sqlite://{}?mode=rwc", data.join("hub.db").display()),
                    Backend::Sqlite,
                )
            }
        };
        let pool = connect(&url, backend, false).await?;
        // Postgres: search's own connections (see `connect`); SQLite shares one pool.
        let search_pool = match backend {
            Backend::Sqlite => pool.clone(),
            Backend::Postgres => connect(&url, backend, true).await?,
        };
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| Error::environment("hub database migration failed").with_source(e))?;
        let db = Db {
            pool,
            search_pool,
            backend,
            samples: Default::default(),
        };
        db.refresh_stale_search().await.map_err(Error::from)?;
        Ok(db)
    }

    pub(crate) async fn exec(&self, sql: &str, args: &[&str]) -> HubResult<u64> {
        let mut q = sqlx::query(sql);
        for a in args {
            q = q.bind(a.to_string());
        }
        Ok(q.execute(&self.pool).await?.rows_affected())
    }

    pub(crate) async fn strings(&self, sql: &str, args: &[&str]) -> HubResult<Vec<String>> {
        let mut q = sqlx::query(sql);
        for a in args {
            q = q.bind(a.to_string());
        }
        let rows = q.fetch_all(&self.pool).await?;
        first_column(&rows)
    }
}

/// Creates `DIR/hub.db` readable by its owner only (it holds e-mail addresses and password
/// hashes), and tightens an existing one and its WAL files; SQLite gives the WAL and shared
/// memory files the database file's mode.
fn owner_only(data: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let db = data.join("hub.db");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&db)
        .map_err(|e| Error::io("create the hub database", &db, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let path = data.join(format!("hub.db{suffix}"));
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io("restrict the permissions of", &path, e))?;
        }
    }
    Ok(())
}

/// The first column of every row, as text (the name lists: tags, repositories, uploads).
pub(crate) fn first_column(rows: &[sqlx::any::AnyRow]) -> HubResult<Vec<String>> {
    let column: Result<Vec<String>, sqlx::Error> = rows.iter().map(|r| r.try_get(0)).collect();
    Ok(column?)
}
