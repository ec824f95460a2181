//! Yanking: the owner's way to take back a bad version without breaking anyone pinned to
//! it. A yanked version is no longer offered (latest, search, the installable versions)
//! but stays pullable by exact version, with a warning header ([`HEADER_YANKED`]). Called
//! by the JSON API and the package page's button alike.
//!
//! [`HEADER_YANKED`]: ebpf_package::spec::HEADER_YANKED

use axum::http::StatusCode;

use crate::db::Db;
use crate::error::{Code, HubError, HubResult};

/// Yanks (`yanked`) or unyanks `repo` `version` on behalf of `user`, who must own it.
pub async fn set(db: &Db, user: &str, repo: &str, version: &str, yanked: bool) -> HubResult<()> {
    let owner = repo.split('/').next().unwrap_or("");
    if owner != user || !repo.contains('/') {
        return Err(HubError::new(
            StatusCode::FORBIDDEN,
            Code::Denied,
            format!("only {owner} can yank versions of {repo}; you are logged in as {user}"),
        ));
    }
    if !db.set_yanked(repo, version, yanked).await? {
        return Err(HubError::new(
            StatusCode::NOT_FOUND,
            Code::ManifestUnknown,
            format!("{repo} has no published version {version}; see /api/v1/packages/{repo}"),
        ));
    }
    Ok(())
}
