//! Search: words matched anywhere (substrings, not only prefixes) in what a package says —
//! owner, name, description, keywords, program names and sections — plus `owner/name`
//! exactly; filters on facets of the latest version; sorts; pagination.
//!
//! One SQL text for SQLite and Postgres: the searchable text and facet lists are columns
//! written by [`Db::refresh_search`] in lowercase, so a plain `LIKE` (case-sensitive on
//! Postgres, but both sides are lowercase) matches the same way on both. A hub holds
//! thousands of packages, not millions: a scan with `LIKE` is fast enough and, unlike a
//! full-text index, finds `snoop` inside `opensnoop`.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::packages::{package_row, PACKAGE_COLUMNS};
use super::{Db, PackageRow};
use crate::error::HubResult;

/// How results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Best match first (name over owner over keywords over the rest); newest without words.
    #[default]
    Relevance,
    Downloads,
    Stars,
    Newest,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        Some(match s {
            "" | "relevance" => Sort::Relevance,
            "downloads" => Sort::Downloads,
            "stars" => Sort::Stars,
            "newest" => Sort::Newest,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Sort::Relevance => "relevance",
            Sort::Downloads => "downloads",
            Sort::Stars => "stars",
            Sort::Newest => "newest",
        }
    }
}

/// What a search asks for. Empty strings are "any".
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub q: String,
    /// Section kind of a program (`tracepoint`, `kretprobe`, `xdp`, `uprobe`, …).
    pub attach: String,
    /// Program type (`tracepoint`, `kprobe`, `xdp`, …).
    pub program_type: String,
    pub arch: String,
    /// `cargo-ebpf` (also `ours`), `gadget`, `bumblebee`, `bpfman`, `eunomia`.
    pub format: String,
    pub license: String,
    pub keyword: String,
    /// Only packages whose latest version carries a signature the hub verified.
    pub signed: bool,
    /// `6.1`: only packages whose latest version has a verified kernel matrix saying it
    /// loads on this series and every newer one tested ("loads on kernel ≥ X").
    pub kernel: String,
    pub sort: Sort,
    /// 1-based.
    pub page: i64,
    pub per_page: i64,
}

impl SearchQuery {
    /// From URL query parameters (`q`, `attach`, `program_type`, `arch`, `format`,
    /// `license`, `keyword`, `signed`, `kernel`, `sort`, `page`, `per_page`); Err says which is wrong.
    pub fn from_params(
        params: &std::collections::HashMap<String, String>,
        default_per_page: i64,
    ) -> Result<SearchQuery, String> {
        let text = |k: &str| -> String {
            params
                .get(k)
                .map(|v| v.trim().chars().take(100).collect())
                .unwrap_or_default()
        };
        let number = |k: &str, default: i64| -> Result<i64, String> {
            match params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| format!("{k}={v:?} is not a positive number")),
            }
        };
        let sort = Sort::parse(&text("sort")).ok_or_else(|| {
            format!(
                "sort={:?}: use relevance, downloads, stars or newest",
                text("sort")
            )
        })?;
        let format = text("format").to_lowercase();
        if !format.is_empty() && format != "ours" && !FORMATS.contains(&format.as_str()) {
            return Err(format!(
                "format={format:?}: use ours (cargo-ebpf), eunomia, gadget, bumblebee or bpfman"
            ));
        }
        let kernel = text("kernel");
        if !kernel.is_empty() && ebpf_package::kernel_matrix::series_number(&kernel).is_none() {
            return Err(format!(
                "kernel={kernel:?}: give a kernel series such as 6.1 or 5.10"
            ));
        }
        let per_page = number("per_page", default_per_page)?;
        if per_page > MAX_PER_PAGE {
            return Err(format!("per_page is at most {MAX_PER_PAGE}"));
        }
        Ok(SearchQuery {
            q: text("q"),
            attach: text("attach"),
            program_type: text("program_type"),
            arch: text("arch"),
            format,
            license: text("license"),
            keyword: text("keyword"),
            signed: matches!(text("signed").as_str(), "1" | "true" | "on" | "yes"),
            kernel,
            sort,
            page: number("page", 1)?,
            per_page,
        })
    }

    /// The query as URL parameters, without `page` (links to other pages add it).
    pub fn to_params(&self) -> String {
        let mut out = Vec::new();
        for (k, v) in [
            ("q", self.q.as_str()),
            ("attach", &self.attach),
            ("program_type", &self.program_type),
            ("arch", &self.arch),
            ("format", &self.format),
            ("license", &self.license),
            ("keyword", &self.keyword),
            ("kernel", &self.kernel),
        ] {
            if !v.is_empty() {
                out.push(format!("{k}={}", url_encode(v)));
            }
        }
        if self.signed {
            out.push("signed=1".into());
        }
        if self.sort != Sort::Relevance {
            out.push(format!("sort={}", self.sort.name()));
        }
        out.join("&")
    }
}

/// Percent-encodes everything but unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Formats a search can filter on, with the names people use.
pub const FORMATS: [&str; 5] = ["cargo-ebpf", "eunomia", "gadget", "bumblebee", "bpfman"];

/// Largest page.
pub const MAX_PER_PAGE: i64 = 100;

/// One result: the package, its stars and whether its latest version is signed.
#[derive(Debug, Clone)]
pub struct Hit {
    pub package: PackageRow,
    pub stars: i64,
    pub signed: bool,
}

/// A page of results and how many there are in all.
#[derive(Debug, Clone)]
pub struct Found {
    pub total: i64,
    pub hits: Vec<Hit>,
}

/// Search terms: lowercase, at most 8, at most 64 characters each. A term with a `/` is a
/// repository (`alice/opensnoop`), matched exactly or as a prefix.
pub fn search_words(query: &str) -> Vec<String> {
    query
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || "-_./:@+".contains(*c))
                .take(64)
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .take(8)
        .collect()
}

/// `%` and `_` are LIKE wildcards; escaped with `\` (every LIKE here says `ESCAPE '\'`).
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Builds `WHERE` and the arguments it binds, in `$N` order.
struct Sql {
    conds: Vec<String>,
    args: Vec<String>,
}

impl Sql {
    fn arg(&mut self, v: String) -> String {
        self.args.push(v);
        format!("${}", self.args.len())
    }

    fn facet(&mut self, column: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        let a = self.arg(format!("% {} %", like_escape(&value.to_lowercase())));
        self.conds.push(format!("p.{column} LIKE {a} ESCAPE '\\'"));
    }
}

const SIGNED: &str = "EXISTS (SELECT 1 FROM versions v JOIN verified_signatures s \
     ON s.repo = v.repo AND s.subject_digest = v.digest \
     WHERE v.repo = p.repo AND v.version = p.latest_version)";

impl Db {
    /// A page of packages matching `s`, and the number of matches.
    pub async fn search(&self, s: &SearchQuery) -> HubResult<Found> {
        let words = search_words(&s.q);
        let mut sql = Sql {
            conds: vec!["p.latest_version <> ''".into(), "p.hidden = 0".into()],
            args: vec![],
        };
        let mut score = Vec::new();
        for w in &words {
            let exact = sql.arg(w.clone());
            let like = sql.arg(format!("%{}%", like_escape(w)));
            if w.contains('/') {
                let prefix = sql.arg(format!("{}%", like_escape(w)));
                sql.conds.push(format!(
                    "(LOWER(p.repo) = {exact} OR LOWER(p.repo) LIKE {prefix} ESCAPE '\\')"
                ));
                score.push(format!(
                    "(CASE WHEN LOWER(p.repo) = {exact} THEN 100 ELSE 50 END)"
                ));
                continue;
            }
            sql.conds
                .push(format!("p.search_text LIKE {like} ESCAPE '\\'"));
            score.push(format!(
                "(CASE WHEN LOWER(p.name) = {exact} THEN 100 \
                 WHEN LOWER(p.name) LIKE {like} ESCAPE '\\' THEN 60 \
                 WHEN LOWER(p.owner) = {exact} THEN 40 \
                 WHEN LOWER(p.keywords) LIKE {like} ESCAPE '\\' THEN 20 ELSE 5 END)"
            ));
        }
        sql.facet("attach_types", &s.attach);
        sql.facet("prog_types", &s.program_type);
        sql.facet("arches", &s.arch);
        let format = match s.format.as_str() {
            "ours" => "cargo-ebpf",
            f => f,
        };
        sql.facet("format", format);
        if !s.license.is_empty() {
            let a = sql.arg(s.license.to_lowercase());
            sql.conds.push(format!("LOWER(p.license) = {a}"));
        }
        if !s.keyword.is_empty() {
            let a = sql.arg(format!("%\"{}\"%", like_escape(&s.keyword.to_lowercase())));
            sql.conds
                .push(format!("LOWER(p.keywords) LIKE {a} ESCAPE '\\'"));
        }
        if s.signed {
            sql.conds.push(SIGNED.into());
        }
        if let Some(series) = ebpf_package::kernel_matrix::series_number(&s.kernel) {
            let a = sql.arg(series.to_string());
            sql.conds.push(format!(
                "EXISTS (SELECT 1 FROM versions v JOIN kernel_matrices k \
                 ON k.repo = v.repo AND k.subject_digest = v.digest \
                 WHERE v.repo = p.repo AND v.version = p.latest_version \
                 AND k.loads_from IS NOT NULL AND k.loads_from <= CAST({a} AS BIGINT))"
            ));
        }
        let filter = sql.conds.join(" AND ");
        let score = match score.is_empty() {
            true => "0".to_string(),
            false => score.join(" + "),
        };
        let order = match s.sort {
            Sort::Relevance if !words.is_empty() => "score DESC, p.downloads DESC, p.repo",
            Sort::Relevance | Sort::Newest => "p.updated_at DESC, p.repo",
            Sort::Downloads => "p.downloads DESC, p.repo",
            Sort::Stars => "stars DESC, p.downloads DESC, p.repo",
        };
        let per_page = s.per_page.clamp(1, MAX_PER_PAGE);
        let offset = (s.page.max(1) - 1).saturating_mul(per_page);
        let cols = prefixed_columns();
        let text = format!(
            "SELECT {cols}, (SELECT COUNT(*) FROM stars st WHERE st.repo = p.repo) AS stars, \
             CASE WHEN {SIGNED} THEN 1 ELSE 0 END AS signed, {score} AS score \
             FROM packages p WHERE {filter} ORDER BY {order} LIMIT {per_page} OFFSET {offset}"
        );
        let count = format!("SELECT COUNT(*) FROM packages p WHERE {filter}");
        let mut q = sqlx::query(&text);
        let mut c = sqlx::query(&count);
        for a in &sql.args {
            q = q.bind(a.clone());
            c = c.bind(a.clone());
        }
        let total: i64 = c.fetch_one(&self.pool).await?.try_get(0)?;
        let rows = q.fetch_all(&self.pool).await?;
        let hits = rows.iter().map(hit).collect::<HubResult<Vec<_>>>()?;
        Ok(Found { total, hits })
    }

    /// Rewrites the search text and facets of `repo` from its package row and latest
    /// version (after a push, a yank, or an edit of the description).
    pub async fn refresh_search(&self, repo: &str) -> HubResult<()> {
        let Some(p) = self.package(repo).await? else {
            return Ok(());
        };
        let latest = match p.latest_version.as_str() {
            "" => None,
            v => self.version(repo, v).await?,
        };
        let programs: Vec<ebpf_package::spec::ProgramInfo> = latest
            .as_ref()
            .and_then(|v| serde_json::from_str(&v.programs).ok())
            .unwrap_or_default();
        let mut text = vec![
            p.owner.clone(),
            p.name.clone(),
            p.repo.clone(),
            p.description,
        ];
        text.extend(p.keywords.iter().cloned());
        let mut prog_types = Vec::new();
        let mut attach_types = Vec::new();
        for prog in &programs {
            text.extend([
                prog.name.clone(),
                prog.section.clone(),
                prog.prog_type.clone(),
            ]);
            prog_types.push(prog.prog_type.to_lowercase());
            let kind = prog.section.split('/').next().unwrap_or("").to_lowercase();
            attach_types.push(if kind.is_empty() {
                prog.prog_type.to_lowercase()
            } else {
                kind
            });
        }
        let arches: Vec<String> = latest
            .as_ref()
            .map(|v| v.arch.split(',').map(|a| a.trim().to_lowercase()).collect())
            .unwrap_or_default();
        let format = latest
            .as_ref()
            .map(|v| v.format.clone())
            .unwrap_or_default();
        let padded = |v: &[String]| format!(" {} ", v.join(" "));
        self.exec(
            "UPDATE packages SET search_text = $2, prog_types = $3, attach_types = $4, \
             arches = $5, format = $6 WHERE repo = $1",
            &[
                repo,
                &text.join("\n").to_lowercase(),
                &padded(&prog_types),
                &padded(&attach_types),
                &padded(&arches),
                &padded(&[format]),
            ],
        )
        .await?;
        Ok(())
    }

    /// Fills the search columns of packages indexed before they existed (at startup).
    pub async fn refresh_stale_search(&self) -> HubResult<()> {
        let stale = self
            .strings("SELECT repo FROM packages WHERE search_text = ''", &[])
            .await?;
        for repo in stale {
            self.refresh_search(&repo).await?;
        }
        Ok(())
    }
}

/// `PACKAGE_COLUMNS` with the `p.` alias.
pub(crate) fn prefixed_columns() -> String {
    PACKAGE_COLUMNS
        .split(", ")
        .map(|c| format!("p.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn hit(r: &AnyRow) -> HubResult<Hit> {
    let n = PACKAGE_COLUMNS.split(',').count();
    Ok(Hit {
        package: package_row(r)?,
        stars: r.try_get(n)?,
        signed: r.try_get::<i64, _>(n + 1)? != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_repositories_and_drop_syntax() {
        assert_eq!(
            search_words("Snoop  alice/OpenSnoop"),
            ["snoop", "alice/opensnoop"]
        );
        assert_eq!(search_words("a%b 'x'"), ["ab", "x"]);
        assert!(search_words("  ").is_empty());
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_escape("sys_enter%"), "sys\\_enter\\%");
    }
}
