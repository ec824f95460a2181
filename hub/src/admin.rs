//! Admin commands that work on the hub's database directly, without a running server or a
//! browser: `cargo ebpf hub user add`, `cargo ebpf hub user admin` and `cargo ebpf hub token
//! create`. Scripts (the demo, provisioning) and a first operator need an account before
//! anyone can click through `/register`; they run the same checks as the web forms (`accounts::register`,
//! `accounts::create_token`), so nothing here bypasses a rule.
//!
//! This is CLI code: it answers with the CLI's [`ebpf_package::Error`] (exit codes), and
//! turns the hub's errors into it at the `?`s (see [`crate::error`]).

use std::path::Path;

use crate::accounts::{self, TokenRequest};
use crate::db::Db;
use ebpf_package::{Error, Result};

/// Creates user `name` with `password` in the hub at `data` (or `database`).
pub fn add_user(data: &Path, database: Option<&str>, name: &str, password: &str) -> Result<()> {
    block_on(async {
        let db = open_db(data, database).await?;
        accounts::register(&db, name, "", password)
            .await
            .map_err(|why| Error::input(format!("cannot add user {name}: {why}")))
    })
}

/// Gives `name` the admin role of the web store (or takes it back).
pub fn set_admin(data: &Path, database: Option<&str>, name: &str, admin: bool) -> Result<()> {
    block_on(async {
        let db = open_db(data, database).await?;
        if !db.set_user_flag(name, "is_admin", admin).await? {
            return Err(Error::input(format!("the hub has no user {name}"))
                .with_help(format!("create it first: cargo ebpf hub user add {name}")));
        }
        Ok(())
    })
}

/// Mints an API token for `user`; returns the secret (shown once, stored hashed).
pub fn create_token(
    data: &Path,
    database: Option<&str>,
    user: &str,
    request: TokenRequest,
) -> Result<String> {
    block_on(async {
        let db = open_db(data, database).await?;
        if db.user(user).await?.is_none() {
            return Err(Error::input(format!("the hub has no user {user}"))
                .with_help(format!("create it first: cargo ebpf hub user add {user}")));
        }
        accounts::create_token(&db, user, request)
            .await
            .map(|(_, secret)| secret)
            .map_err(|why| Error::input(format!("cannot create a token for {user}: {why}")))
    })
}

/// Collects blobs unreferenced for longer than `grace_secs` (`cargo ebpf hub gc`).
pub fn gc(
    data: &Path,
    database: Option<&str>,
    blob_store: Option<&str>,
    grace_secs: i64,
) -> Result<crate::gc::Collected> {
    block_on(async {
        let db = open_db(data, database).await?;
        let location = crate::blobs::Location::parse(blob_store)?;
        let blobs = crate::blobs::BlobStore::new(data, crate::DEFAULT_MAX_BLOB, &location)
            .map_err(|e| Error::io("open blob storage in", data, e))?;
        crate::gc::backfill_references(&db).await?;
        Ok(crate::gc::collect(&db, &blobs, grace_secs).await?)
    })
}

async fn open_db(data: &Path, database: Option<&str>) -> Result<Db> {
    if database.is_none() {
        std::fs::create_dir_all(data).map_err(|e| Error::io("create the hub data dir", data, e))?;
    }
    Db::open(data, database).await
}

fn block_on<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::environment("cannot start the async runtime").with_source(e))?
        .block_on(work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_added_here_can_log_in_and_use_the_token() {
        let dir = tempfile::tempdir().unwrap();
        add_user(dir.path(), None, "operator", "long-enough").unwrap();
        let err = add_user(dir.path(), None, "operator", "long-enough").unwrap_err();
        assert!(err.to_string().contains("taken"), "{err}");
        assert!(add_user(dir.path(), None, "Bad Name", "long-enough").is_err());
        let request = || TokenRequest {
            label: "ci".into(),
            can_pull: true,
            can_push: true,
            namespaces: vec![],
            expires_in_days: Some(7),
        };
        let secret = create_token(dir.path(), None, "operator", request()).unwrap();
        assert!(secret.starts_with(accounts::TOKEN_PREFIX));
        assert!(create_token(dir.path(), None, "nobody", request()).is_err());
        block_on(async {
            let db = Db::open(dir.path(), None).await.unwrap();
            assert_eq!(
                accounts::login(&db, "operator", "long-enough")
                    .await
                    .unwrap(),
                Some("operator".to_string())
            );
            let hash = accounts::token_hash(&secret);
            let n = db
                .strings(
                    "SELECT user_name FROM api_tokens WHERE token_hash = $1",
                    &[&hash],
                )
                .await
                .unwrap();
            assert_eq!(n, ["operator"]);
            Ok(())
        })
        .unwrap();
    }
}
