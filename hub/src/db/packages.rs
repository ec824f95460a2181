//! The package index: one `packages` row per repository, one `versions` row per published
//! version tag, written when a package manifest is pushed. The package row describes its
//! latest version: the highest version that is not yanked ([`crate::versions::latest`]).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now, Db};
use crate::error::HubResult;

/// A package as the web pages show it. `keywords` and `authors` are JSON arrays.
#[derive(Debug, Clone, Default)]
pub struct PackageRow {
    pub repo: String,
    pub owner: String,
    pub name: String,
    pub description: String,
    pub keywords: Vec<String>,
    pub license: String,
    pub authors: Vec<String>,
    pub source: String,
    pub latest_version: String,
    pub updated_at: i64,
    pub downloads: i64,
    /// README.md of the latest push; read with [`Db::readme`] (not in listings).
    pub readme: String,
}

#[derive(Debug, Clone, Default)]
pub struct VersionRow {
    pub repo: String,
    pub version: String,
    pub digest: String,
    pub size: i64,
    pub created: String,
    pub pushed_at: i64,
    pub arch: String,
    pub runtime: String,
    pub object: String,
    pub layer_digest: String,
    /// JSON array of `{name, section, type}`.
    pub programs: String,
    pub downloads: i64,
    /// Hidden from latest, search and the installable versions; still pullable exactly.
    pub yanked: bool,
    /// `cargo-ebpf`, `eunomia`, `gadget`, `bumblebee` or `bpfman`.
    pub format: String,
    /// The version's `PackageMeta` as JSON; empty for versions indexed before it was kept.
    pub meta: String,
}

pub(crate) const PACKAGE_COLUMNS: &str = "repo, owner, name, description, keywords, license, \
     authors, source, latest_version, updated_at, downloads";
const VERSION_COLUMNS: &str = "repo, version, digest, size, created, pushed_at, arch, runtime, \
     object, layer_digest, programs, downloads, yanked, format, meta";

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("strings serialize")
}

impl Db {
    /// Records version `v` of package `p`. The package row (description, README, …) is
    /// written when the package is new or `v` is its latest version: publishing a fix of an
    /// old series never rewrites the page.
    pub async fn index_version(&self, p: &PackageRow, v: &VersionRow) -> HubResult<()> {
        let t = now();
        sqlx::query(
            "INSERT INTO versions (repo, version, digest, size, created, pushed_at, arch, \
             runtime, object, layer_digest, programs, format, meta) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&v.repo)
        .bind(&v.version)
        .bind(&v.digest)
        .bind(v.size)
        .bind(&v.created)
        .bind(t)
        .bind(&v.arch)
        .bind(&v.runtime)
        .bind(&v.object)
        .bind(&v.layer_digest)
        .bind(&v.programs)
        .bind(&v.format)
        .bind(&v.meta)
        .execute(&self.pool)
        .await?;
        let latest = self.latest_version(&p.repo).await?;
        if latest.as_deref() == Some(v.version.as_str()) || self.package(&p.repo).await?.is_none() {
            self.upsert_package(p, t).await?;
        }
        self.refresh_search(&p.repo).await
    }

    async fn upsert_package(&self, p: &PackageRow, t: i64) -> HubResult<()> {
        sqlx::query(
            "INSERT INTO packages (repo, owner, name, description, keywords, license, authors, \
             source, latest_version, created_at, updated_at, readme) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11) \
             ON CONFLICT (repo) DO UPDATE SET description = excluded.description, \
             keywords = excluded.keywords, license = excluded.license, \
             authors = excluded.authors, source = excluded.source, \
             latest_version = excluded.latest_version, updated_at = excluded.updated_at, \
             readme = excluded.readme",
        )
        .bind(&p.repo)
        .bind(&p.owner)
        .bind(&p.name)
        .bind(&p.description)
        .bind(json_list(&p.keywords))
        .bind(&p.license)
        .bind(json_list(&p.authors))
        .bind(&p.source)
        .bind(&p.latest_version)
        .bind(t)
        .bind(&p.readme)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The highest version of `repo` that is not yanked.
    pub async fn latest_version(&self, repo: &str) -> HubResult<Option<String>> {
        let offered = self
            .strings(
                "SELECT version FROM versions WHERE repo = $1 AND yanked = 0",
                &[repo],
            )
            .await?;
        Ok(crate::versions::latest(offered.iter().map(String::as_str)).map(str::to_string))
    }

    /// Yanks (or unyanks) `repo` `version`; false when there is no such version. The
    /// package's latest version follows; with every version yanked it is empty, which hides
    /// the package from search and the listings.
    pub async fn set_yanked(&self, repo: &str, version: &str, yanked: bool) -> HubResult<bool> {
        let flag = if yanked { "1" } else { "0" };
        let changed = self
            .exec(
                &format!("UPDATE versions SET yanked = {flag} WHERE repo = $1 AND version = $2"),
                &[repo, version],
            )
            .await?;
        if changed == 0 {
            return Ok(false);
        }
        let latest = self.latest_version(repo).await?.unwrap_or_default();
        self.exec(
            "UPDATE packages SET latest_version = $2 WHERE repo = $1",
            &[repo, &latest],
        )
        .await?;
        self.refresh_search(repo).await?;
        Ok(true)
    }

    /// Whether `reference` (a version, or the digest of versions) of `repo` is yanked.
    pub async fn is_yanked(&self, repo: &str, reference: &str) -> HubResult<bool> {
        let flags = self
            .strings(
                "SELECT CAST(yanked AS TEXT) FROM versions \
                 WHERE repo = $1 AND (version = $2 OR digest = $2)",
                &[repo, reference],
            )
            .await?;
        Ok(!flags.is_empty() && flags.iter().all(|f| f == "1"))
    }

    pub async fn package(&self, repo: &str) -> HubResult<Option<PackageRow>> {
        let row = sqlx::query(&format!(
            "SELECT {PACKAGE_COLUMNS} FROM packages WHERE repo = $1"
        ))
        .bind(repo)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| package_row(&r)).transpose()
    }

    /// Packages in the order `order_by` (a fixed SQL fragment, never user input).
    pub async fn packages_where(
        &self,
        filter: &str,
        arg: Option<&str>,
        order_by: &str,
        limit: i64,
    ) -> HubResult<Vec<PackageRow>> {
        // A package whose every version is yanked has no latest version: it is not offered.
        let offered = match filter {
            "" => "WHERE latest_version <> '' AND hidden = 0".to_string(),
            f => format!("{f} AND latest_version <> '' AND hidden = 0"),
        };
        let sql = format!(
            "SELECT {PACKAGE_COLUMNS} FROM packages {offered} ORDER BY {order_by} LIMIT {limit}"
        );
        let mut q = sqlx::query(&sql);
        if let Some(a) = arg {
            q = q.bind(a.to_string());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(package_row).collect()
    }

    /// The package's README.md, empty when it has none.
    pub async fn readme(&self, repo: &str) -> HubResult<String> {
        let found = self
            .strings("SELECT readme FROM packages WHERE repo = $1", &[repo])
            .await?;
        Ok(found.into_iter().next().unwrap_or_default())
    }

    pub async fn versions(&self, repo: &str) -> HubResult<Vec<VersionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE repo = $1 ORDER BY pushed_at DESC, version DESC"
        ))
        .bind(repo)
        .fetch_all(&self.pool)
        .await
        ?;
        rows.iter().map(version_row).collect()
    }

    pub async fn version(&self, repo: &str, version: &str) -> HubResult<Option<VersionRow>> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE repo = $1 AND version = $2"
        ))
        .bind(repo)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| version_row(&r)).transpose()
    }

    /// Counts one download of `repo` `version` (the package and the version).
    pub async fn count_download(&self, repo: &str, version: &str) -> HubResult<()> {
        self.exec(
            "UPDATE versions SET downloads = downloads + 1 WHERE repo = $1 AND version = $2",
            &[repo, version],
        )
        .await?;
        self.exec(
            "UPDATE packages SET downloads = downloads + 1 WHERE repo = $1",
            &[repo],
        )
        .await?;
        self.count_download_day(repo).await
    }
}

pub(crate) fn package_row(r: &AnyRow) -> HubResult<PackageRow> {
    let list = |i: usize| -> HubResult<Vec<String>> {
        let s: String = r.try_get(i)?;
        Ok(serde_json::from_str(&s).unwrap_or_default())
    };
    Ok(PackageRow {
        repo: r.try_get(0)?,
        owner: r.try_get(1)?,
        name: r.try_get(2)?,
        description: r.try_get(3)?,
        keywords: list(4)?,
        license: r.try_get(5)?,
        authors: list(6)?,
        source: r.try_get(7)?,
        latest_version: r.try_get(8)?,
        updated_at: r.try_get(9)?,
        downloads: r.try_get(10)?,
        readme: String::new(),
    })
}

fn version_row(r: &AnyRow) -> HubResult<VersionRow> {
    Ok(VersionRow {
        repo: r.try_get(0)?,
        version: r.try_get(1)?,
        digest: r.try_get(2)?,
        size: r.try_get(3)?,
        created: r.try_get(4)?,
        pushed_at: r.try_get(5)?,
        arch: r.try_get(6)?,
        runtime: r.try_get(7)?,
        object: r.try_get(8)?,
        layer_digest: r.try_get(9)?,
        programs: r.try_get(10)?,
        downloads: r.try_get(11)?,
        yanked: r.try_get::<i64, _>(12)? != 0,
        format: r.try_get(13)?,
        meta: r.try_get(14)?,
    })
}
