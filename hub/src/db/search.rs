//! Search: words matched anywhere (substrings, not only prefixes) in what a package says —
//! owner, name, description, keywords, program names and sections — plus `owner/name`
//! exactly; filters on facets of the latest version; sorts; pagination.
//!
//! One SQL text for SQLite and Postgres: the searchable text and facet lists are columns
//! written by [`Db::refresh_search`] in lowercase, so a plain `LIKE` (case-sensitive on
//! Postgres, but both sides are lowercase) matches the same way on both and, unlike a
//! word index, finds `snoop` inside `opensnoop`. On Postgres, pg_trgm's trigram indexes
//! answer those `LIKE`s for rare words.
//!
//! Searches stay fast at thousands of packages (issue 15: p99 under 20 ms at 10 000 with
//! 10 clients): what they sort and filter on (stars, signed, the kernel series) is a column
//! of the package row ([`Db::refresh_package_flags`]), sorts walk an index and stop at the
//! page unless a sample of the table says few packages match ([`Db::sample`]), relevance
//! ranks a bounded window of matches ([`Db::search`]), all of them in one plain statement
//! when the sample says they fit, and the count stops at
//! [`COUNT_CAP`]. On SQLite, words few packages hold together go through a trigram index
//! (FTS5), intersected there.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::any::AnyRow;
use sqlx::Row;

use super::packages::{package_row, PACKAGE_COLUMNS};
use super::{Backend, Db, PackageRow};
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

/// Counting stops past this many matches: a search matching more says "200+" instead of
/// reading every match to count them. It also bounds the relevance window ([`RANKED`]),
/// which is most of a search's cost: with 10 clients on two cores, a thousand-row window
/// kept p99 over 20 ms; ten pages of results is more than anyone reads before refining.
pub const COUNT_CAP: i64 = 200;

/// Relevance ranks at most this many of the most downloaded matches (plus the exact
/// ones): one more than [`COUNT_CAP`], so the same rows also say whether there are more.
const RANKED: i64 = COUNT_CAP + 1;

/// SQLite looks words up in the trigram index when at most one package in this many of a
/// sample holds them all: reading a match from that index (and its repository) costs about
/// what checking this many packages' text does.
const RARE_SHARE: i64 = 10;

/// A word held by more than one package in this many is left out of the trigram lookup and
/// checked on the rows it returns: its trigrams' lists are long, so intersecting them costs
/// more than the rows it would remove (`tcp trace`: 0.56 ms with `trace`, 0.08 without).
const COMMON_SHARE: i64 = 4;

/// The ranked window is read along the downloads index when at least one package in this
/// many passes the filter: each step there fetches a row, several times the cost of
/// reading the table in order, and the window needs up to [`RANKED`] matches.
const WALK_SHARE: i64 = 4;

/// The same for a page (at most [`PAGE_ROWS`] rows deep), which stops much sooner: on
/// SQLite at one package in this many. Also the least a sample of [`SAMPLE`] can tell
/// (2 packages), so a rarer filter may still be walked, at a cost SQLite bears (a step
/// is 0.5 µs).
const PAGE_SHARE: i64 = 100;
const PAGE_ROWS: i64 = 200;

/// [`PAGE_SHARE`] on Postgres: its steps cost more (1.7 µs), and its trigram indexes read
/// a rare word's matches directly. At one in 100, a sample that caught 2 packages of a
/// search matching 72 in 10 000 walked 3 800 rows (6.4 ms; its trigram indexes take 0.4).
const PAGE_SHARE_POSTGRES: i64 = 20;

/// Packages sampled to tell a rare word or filter from a common one.
const SAMPLE: i64 = 200;

/// How long what a sample found is used again: like Postgres's statistics it describes the
/// table, not the moment, and a search repeated (or paged through) skips the statement.
/// Only speed depends on it: a stale choice still finds every match.
const SAMPLE_KEPT: Duration = Duration::from_secs(60);

/// Samples kept at most; all are dropped when full.
const SAMPLES_KEPT: usize = 1024;

/// What recent samples found ([`Db::sample`]), by the sample statement and its values,
/// and how many packages there are (which turns a sampled share into a number of matches).
#[derive(Default)]
pub(crate) struct Samples {
    found: Mutex<HashMap<String, (Instant, Sampled)>>,
    packages: Mutex<Option<(Instant, i64)>>,
}

/// A sample's outcome: the words to look up in the trigram index and the trigram looked
/// up for each, and how many of how many sampled packages pass the whole filter.
#[derive(Clone)]
struct Sampled {
    indexed: Vec<String>,
    trigrams: Vec<String>,
    share: (i64, i64),
}

impl Samples {
    fn get(&self, key: &str) -> Option<Sampled> {
        let kept = self.found.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(key)
            .filter(|(at, _)| at.elapsed() < SAMPLE_KEPT)
            .map(|(_, sampled)| sampled.clone())
    }

    fn put(&self, key: String, sampled: Sampled) {
        let mut kept = self.found.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= SAMPLES_KEPT {
            kept.clear();
        }
        kept.insert(key, (Instant::now(), sampled));
    }

    /// Replaces the share a kept sample found with `share`, counted on the whole table.
    fn correct(&self, key: &str, share: (i64, i64)) {
        let mut kept = self.found.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, sampled)) = kept.get_mut(key) {
            sampled.share = share;
        }
    }

    /// The package count, if counted less than [`SAMPLE_KEPT`] ago.
    fn packages(&self) -> Option<i64> {
        let kept = self.packages.lock().unwrap_or_else(|e| e.into_inner());
        kept.filter(|(at, _)| at.elapsed() < SAMPLE_KEPT)
            .map(|(_, n)| n)
    }

    fn put_packages(&self, n: i64) {
        *self.packages.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), n));
    }
}

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
    /// Matches in all, or [`COUNT_CAP`] when `more` says there are more.
    pub total: i64,
    /// More than `total` packages match (the count stopped at [`COUNT_CAP`]).
    pub more: bool,
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

/// The distinct trigrams of a word (by characters; none under 3).
fn trigrams(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    let mut all: Vec<String> = Vec::new();
    for gram in chars.windows(3) {
        let gram: String = gram.iter().collect();
        if !all.contains(&gram) {
            all.push(gram);
        }
    }
    all
}

/// For each word, its trigram held by the fewest packages (`doc`: packages per trigram,
/// from the index; one it does not know is held by none). Any trigram of a word is in
/// every package holding the word, so the index lookup misses no match, and the rarest
/// keeps it short: an FTS5 query costs the lengths of its trigrams' lists (`snoop
/// container` with every tile: 0.44 ms; the rows the `LIKE`s then drop cost less).
fn rarest_trigrams(words: &[String], doc: &HashMap<String, i64>) -> Vec<String> {
    let mut rarest: Vec<String> = Vec::new();
    for w in words {
        let Some(gram) = trigrams(w)
            .into_iter()
            .min_by_key(|g| doc.get(g).copied().unwrap_or(0))
        else {
            continue;
        };
        if !rarest.contains(&gram) {
            rarest.push(gram);
        }
    }
    rarest
}

/// An FTS5 query for packages holding every one of `trigrams` (joined by `AND`; each
/// quoted). Words have no quote ([`search_words`]), so neither do their trigrams.
fn trigram_query(trigrams: &[String]) -> String {
    trigrams
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// How many sampled packages fell in each combination of bits ([`Db::sample`]).
struct Sample(Vec<(i64, i64)>);

impl Sample {
    /// Sampled packages with every bit of `bits` set (all of them for 0).
    fn holding(&self, bits: i64) -> i64 {
        self.0
            .iter()
            .filter(|(b, _)| b & bits == bits)
            .map(|(_, n)| n)
            .sum()
    }

    /// The choices of [`Db::sample`] for `words` (bit 2 << i is `words[i]`); words go to
    /// the trigram index only with `trigrams` (SQLite's FTS5 table).
    fn decide(&self, words: &[String], trigrams: bool) -> Sampled {
        let sampled = self.holding(0);
        let every = (1 << (words.len() + 1)) - 1;
        let mut indexed = Vec::new();
        let mut bits = 0;
        for (i, w) in words.iter().enumerate() {
            if w.chars().count() >= 3 && self.holding(2 << i) * COMMON_SHARE <= sampled {
                bits |= 2 << i;
                indexed.push(w.clone());
            }
        }
        if !trigrams || indexed.is_empty() || self.holding(bits) * RARE_SHARE > sampled {
            indexed.clear();
        }
        Sampled {
            indexed,
            trigrams: vec![],
            share: (self.holding(every), sampled),
        }
    }
}

/// One statement being written: its text with `$N` placeholders and the values they bind,
/// so each statement binds exactly the values it uses.
struct Sql {
    text: String,
    args: Vec<String>,
}

impl Sql {
    fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            args: vec![],
        }
    }

    fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    fn bind(&mut self, value: impl Into<String>) -> &mut Sql {
        self.args.push(value.into());
        let n = self.args.len();
        self.push(&format!("${n}"))
    }
}

/// Columns of a result row: the package, its stars, its signed flag and a score.
fn select_hits() -> String {
    format!("SELECT {}, p.star_count, p.signed, ", prefixed_columns())
}

/// A search turned into SQL pieces: the filter every match passes, the relevance score,
/// and what makes a match exact.
struct Plan<'a> {
    s: &'a SearchQuery,
    words: Vec<String>,
    backend: Backend,
    /// SQLite: the words looked up together in the trigram index ([`Db::sample`]), and
    /// the trigram looked up for each.
    indexed: Vec<String>,
    trigrams: Vec<String>,
    /// How many of how many sampled packages pass the filter.
    share: Option<(i64, i64)>,
    /// How many packages there are (counted at most [`SAMPLE_KEPT`] ago).
    packages: i64,
    /// The sample's key among those kept ([`Samples`]).
    sample_key: String,
}

impl<'a> Plan<'a> {
    /// The plan of `s` before [`Db::sample`] has looked at the table.
    fn new(s: &'a SearchQuery, backend: Backend) -> Plan<'a> {
        Plan {
            s,
            words: search_words(&s.q),
            backend,
            indexed: vec![],
            trigrams: vec![],
            share: None,
            packages: 0,
            sample_key: String::new(),
        }
    }

    /// The keywords in lowercase: SQLite's `LIKE` ignores ASCII case already (and its
    /// `LOWER` folds only ASCII), so only Postgres needs `LOWER`, which its trigram index
    /// of keywords holds.
    fn keywords(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "p.keywords",
            Backend::Postgres => "LOWER(p.keywords)",
        }
    }

    /// Whether to read `rows` matches along the sort's index: not when many rows there
    /// would fail the filter before `rows` pass it (each step fetches a row); the matches
    /// are then read another way (a trigram index, another index, the table in order) and
    /// sorted. Postgres makes this choice itself, but it guesses the share of several
    /// words together from each word's (as independent), and a wrong guess walked 2 700
    /// rows for 20 matches: 2.3 ms where its trigram indexes take 0.4.
    fn walks(&self, rows: i64) -> bool {
        match self.share {
            _ if !self.indexed.is_empty() => false,
            Some((passed, sampled)) => {
                let share = match self.backend {
                    _ if rows > PAGE_ROWS => WALK_SHARE,
                    Backend::Sqlite => PAGE_SHARE,
                    Backend::Postgres => PAGE_SHARE_POSTGRES,
                };
                passed * share >= sampled
            }
            None => true,
        }
    }

    /// Whether the sample says every match fits in the relevance window: they are then all
    /// read and ranked by one plain statement ([`Plan::every`]), whose count
    /// [`Db::ranked`] checks (a sample of [`SAMPLE`] misjudges a few hundred matches by
    /// half or more: a wrong guess costs the window once more, then the count replaces it).
    fn fits(&self) -> bool {
        match self.share {
            Some((passed, sampled)) if sampled > 0 => passed * self.packages <= sampled * RANKED,
            _ => false,
        }
    }

    /// `order` as written, or marked so that no index serves it when reading along it does
    /// not pay ([`Plan::walks`]): SQLite's unary `+` on each term; on Postgres `+ 0` on the
    /// first (a number: downloads, stars or date), which no index holds.
    fn order(&self, order: &str, rows: i64) -> String {
        if self.walks(rows) {
            return order.to_string();
        }
        match self.backend {
            Backend::Sqlite => order
                .split(", ")
                .map(|term| format!("+{term}"))
                .collect::<Vec<_>>()
                .join(", "),
            Backend::Postgres => match order.split_once(' ') {
                Some((column, rest)) => format!("{column} + 0 {rest}"),
                None => format!("{order} + 0"),
            },
        }
    }

    /// `p.repo` compared byte by byte (Postgres compares text by locale otherwise).
    fn repo_bytes(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "p.repo",
            Backend::Postgres => "p.repo COLLATE \"C\"",
        }
    }

    /// Every condition of a match: the facets, then the words.
    fn filter(&self, sql: &mut Sql) {
        self.facets(sql, false);
        self.texts(sql);
    }

    /// [`Plan::filter`] for a statement reading `rows` matches in the sort's order: when
    /// [`Plan::walks`] says to read them along the sort's index, SQLite's kernel condition
    /// is marked so that the kernel filter's index does not take its place (it holds every
    /// filter column, which makes it look cheap, but it is not in the sort's order:
    /// `kernel=6.1&sort=newest` then read and sorted 2 400 rows for 20).
    fn filter_along(&self, sql: &mut Sql, rows: i64) {
        self.facets(sql, self.backend == Backend::Sqlite && self.walks(rows));
        self.texts(sql);
    }

    /// The words in the search text: looked up in the trigram index when [`Db::sample`]
    /// chose that, and checked on each row in any case (the index only narrows).
    fn texts(&self, sql: &mut Sql) {
        if !self.indexed.is_empty() {
            sql.push(
                " AND p.rowid IN (SELECT rowid FROM packages_trigrams WHERE search_text MATCH ",
            )
            .bind(trigram_query(&self.trigrams))
            .push(")");
        }
        for w in self.words.iter().filter(|w| !w.contains('/')) {
            sql.push(" AND p.search_text LIKE ")
                .bind(format!("%{}%", like_escape(w)))
                .push(" ESCAPE '\\'");
        }
    }

    /// Everything but the words in the search text: visible, the repository words, the
    /// facet columns and the flags (the kernel condition `marked` for no index to serve it).
    /// Short columns, so rows failing them skip the text.
    fn facets(&self, sql: &mut Sql, marked: bool) {
        sql.push("p.latest_version <> '' AND p.hidden = 0");
        for w in self.words.iter().filter(|w| w.contains('/')) {
            // A prefix as a range, so the primary key index finds it.
            let repo = self.repo_bytes();
            sql.push(&format!(" AND {repo} >= ")).bind(w.clone());
            sql.push(&format!(" AND {repo} < "))
                .bind(format!("{w}\u{10FFFF}"));
        }
        let format = match self.s.format.as_str() {
            "ours" => "cargo-ebpf",
            f => f,
        };
        for (column, value) in [
            ("attach_types", self.s.attach.as_str()),
            ("prog_types", &self.s.program_type),
            ("arches", &self.s.arch),
            ("format", format),
        ] {
            if !value.is_empty() {
                let pattern = format!("% {} %", like_escape(&value.to_lowercase()));
                sql.push(&format!(" AND p.{column} LIKE "))
                    .bind(pattern)
                    .push(" ESCAPE '\\'");
            }
        }
        self.flags(sql, marked);
    }

    /// License, keyword, signature and kernel filters (the kernel's `marked` with SQLite's
    /// unary `+`, which no index serves).
    fn flags(&self, sql: &mut Sql, marked: bool) {
        let s = self.s;
        if !s.license.is_empty() {
            sql.push(" AND LOWER(p.license) = ")
                .bind(s.license.to_lowercase());
        }
        if !s.keyword.is_empty() {
            let pattern = format!("%\"{}\"%", like_escape(&s.keyword.to_lowercase()));
            sql.push(&format!(" AND {} LIKE ", self.keywords()))
                .bind(pattern)
                .push(" ESCAPE '\\'");
        }
        if s.signed {
            sql.push(" AND p.signed = 1");
        }
        if let Some(series) = ebpf_package::kernel_matrix::series_number(&s.kernel) {
            let column = if marked {
                "+p.kernel_from"
            } else {
                "p.kernel_from"
            };
            sql.push(&format!(" AND {column} <= CAST("))
                .bind(series.to_string())
                .push(" AS BIGINT)");
        }
    }

    /// Best match first: name over owner over keywords over the rest, per word.
    fn score(&self, sql: &mut Sql) {
        for (i, w) in self.words.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { " + (" });
            if w.contains('/') {
                sql.push("CASE WHEN p.repo = ")
                    .bind(w.clone())
                    .push(" THEN 100 ELSE 50 END)");
                continue;
            }
            let like = format!("%{}%", like_escape(w));
            sql.push("CASE WHEN p.name = ").bind(w.clone());
            sql.push(" THEN 100 WHEN p.name LIKE ").bind(like.clone());
            sql.push(" ESCAPE '\\' THEN 60 WHEN p.owner = ")
                .bind(w.clone());
            sql.push(&format!(" THEN 40 WHEN {} LIKE ", self.keywords()))
                .bind(like);
            sql.push(" ESCAPE '\\' THEN 20 ELSE 5 END)");
        }
        if self.words.is_empty() {
            sql.push("0");
        }
    }

    /// A word names the package exactly: its name or owner, or its repository. Such
    /// matches are always ranked, however few downloads they have.
    fn exact(&self, alias: &str, sql: &mut Sql) {
        for (i, w) in self.words.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { " OR " });
            if w.contains('/') {
                sql.push(&format!("{alias}.repo = ")).bind(w.clone());
            } else {
                sql.push(&format!("{alias}.name = ")).bind(w.clone());
                sql.push(&format!(" OR {alias}.owner = ")).bind(w.clone());
            }
        }
        sql.push(if self.words.is_empty() {
            "(1 = 0)"
        } else {
            ")"
        });
    }

    /// Relevance ranks the [`RANKED`] most downloaded matches and the exact ones
    /// ([`Plan::exact`]); the counts say where the rest continues. Columns: a hit, its
    /// score, then how many matches the download window holds (up to [`RANKED`]), how many
    /// rows are ranked, and how many of the window are not exact.
    fn ranked(&self, offset: i64, limit: i64) -> Sql {
        // Scored while the window is read; only the page's rows are fetched again.
        let mut sql = Sql::new("WITH top AS MATERIALIZED (SELECT p.repo, p.downloads, ");
        self.score(&mut sql);
        sql.push(" AS score, CASE WHEN ");
        self.exact("p", &mut sql);
        sql.push(" THEN 1 ELSE 0 END AS exact FROM packages p WHERE ");
        self.filter_along(&mut sql, RANKED);
        let order = self.order("p.downloads DESC, p.repo", RANKED);
        sql.push(&format!(
            " ORDER BY {order} LIMIT {RANKED}), \
             ranked AS MATERIALIZED (SELECT repo, downloads, score FROM top UNION ALL \
             SELECT p.repo, p.downloads, "
        ));
        self.score(&mut sql);
        sql.push(" FROM packages p WHERE ");
        self.exact("p", &mut sql);
        sql.push(" AND ");
        self.filter(&mut sql);
        sql.push(" AND NOT EXISTS (SELECT 1 FROM top t WHERE t.repo = p.repo)");
        sql.push(&format!(
            "), page AS MATERIALIZED (SELECT repo, score FROM ranked \
             ORDER BY score DESC, downloads DESC, repo LIMIT {limit} OFFSET {offset}) "
        ));
        sql.push(&select_hits());
        sql.push(
            "page.score, (SELECT COUNT(*) FROM top), (SELECT COUNT(*) FROM ranked), \
             (SELECT CAST(COALESCE(SUM(1 - exact), 0) AS BIGINT) FROM top) \
             FROM page JOIN packages p ON p.repo = page.repo \
             ORDER BY page.score DESC, p.downloads DESC, p.repo",
        );
        sql
    }

    /// Every match, best first (what [`Plan::ranked`] orders when the window holds them
    /// all), and how many there are: one read of the filter, no window to build.
    fn every(&self, offset: i64, limit: i64) -> Sql {
        let mut sql = Sql::new(&select_hits());
        self.score(&mut sql);
        sql.push(" AS score, COUNT(*) OVER () FROM packages p WHERE ");
        self.filter(&mut sql);
        sql.push(&format!(
            " ORDER BY score DESC, p.downloads DESC, p.repo LIMIT {limit} OFFSET {offset}"
        ));
        sql
    }

    /// A page of matches in `order`, those with `extra` (a condition writer) only; with
    /// `counted`, each row also says how many match (up to one more than [`COUNT_CAP`]).
    fn page(
        &self,
        extra: Option<fn(&Plan, &mut Sql)>,
        order: &str,
        (offset, limit): (i64, i64),
        counted: bool,
    ) -> Sql {
        let mut sql = Sql::new(&select_hits());
        self.score(&mut sql);
        sql.push(" AS score");
        if counted && self.walks(offset + limit) {
            // In the same statement: one trip to the database, one plan.
            sql.push(", (");
            self.count(&mut sql);
            sql.push(")");
        } else if counted {
            // Every match is read and sorted anyway: counted on the way.
            sql.push(", COUNT(*) OVER ()");
        }
        sql.push(" FROM packages p WHERE ");
        // The short columns first: rows failing them skip the search text.
        if let Some(extra) = extra {
            extra(self, &mut sql);
            sql.push(" AND ");
        }
        self.filter_along(&mut sql, offset + limit);
        let order = self.order(order, offset + limit);
        sql.push(&format!(" ORDER BY {order} LIMIT {limit} OFFSET {offset}"));
        sql
    }

    /// How many rows match, reading at most one more than [`COUNT_CAP`].
    fn count(&self, sql: &mut Sql) {
        sql.push("SELECT COUNT(*) FROM (SELECT 1 FROM packages p WHERE ");
        self.filter(sql);
        sql.push(&format!(" LIMIT {}) c", COUNT_CAP + 1));
    }
}

/// Matches past the ranked ones: not exact, in download order.
fn not_exact(plan: &Plan, sql: &mut Sql) {
    sql.push("NOT ");
    plan.exact("p", sql);
}

impl Db {
    /// A page of packages matching `s`, and the number of matches (counted up to
    /// [`COUNT_CAP`]).
    ///
    /// Every statement reads a bounded part of an index: sorts by downloads, stars or date
    /// walk their index and stop at the page; relevance ranks the [`RANKED`] most
    /// downloaded matches plus the exact ones (name, owner, repository), so a search
    /// matching fewer packages than that (nearly all) gets the full ranking, and a word
    /// matching thousands ranks the popular ones, the rest following by downloads.
    pub async fn search(&self, s: &SearchQuery) -> HubResult<Found> {
        let mut plan = Plan::new(s, self.backend);
        self.sample(&mut plan).await?;
        let per_page = s.per_page.clamp(1, MAX_PER_PAGE);
        let offset = (s.page.max(1) - 1).saturating_mul(per_page);
        let (hits, counted) = match s.sort {
            Sort::Relevance if !plan.words.is_empty() => {
                self.ranked(&plan, offset, per_page).await?
            }
            sort => self.sorted(&plan, sort, offset, per_page).await?,
        };
        // A page that is not full (and not past the end) says how many there are.
        let shown = hits.len() as i64;
        if shown < per_page && (shown > 0 || offset == 0) {
            return Ok(Found {
                total: offset + shown,
                more: false,
                hits,
            });
        }
        let counted = match counted {
            Some(n) => n,
            None => {
                let mut sql = Sql::new("");
                plan.count(&mut sql);
                self.fetch_i64(&sql).await?
            }
        };
        Ok(Found {
            total: counted.min(COUNT_CAP),
            more: counted > COUNT_CAP,
            hits,
        })
    }

    /// A page in another order than relevance, and how many match (unless the page is past
    /// the last match).
    async fn sorted(
        &self,
        plan: &Plan<'_>,
        sort: Sort,
        offset: i64,
        limit: i64,
    ) -> HubResult<(Vec<Hit>, Option<i64>)> {
        let order = match sort {
            Sort::Downloads => "p.downloads DESC, p.repo",
            Sort::Stars => "p.star_count DESC, p.downloads DESC, p.repo",
            Sort::Relevance | Sort::Newest => "p.updated_at DESC, p.repo",
        };
        self.counted(&plan.page(None, order, (offset, limit), true))
            .await
    }

    /// The hits of a statement whose rows also say how many match (the column after the
    /// score), and that number (unless no row came back).
    async fn counted(&self, sql: &Sql) -> HubResult<(Vec<Hit>, Option<i64>)> {
        let rows = self.statement(sql).fetch_all(&self.search_pool).await?;
        let column = PACKAGE_COLUMNS.split(',').count() + 3;
        let counted = rows.first().map(|r| r.try_get(column)).transpose()?;
        let hits = rows.iter().map(hit).collect::<HubResult<Vec<_>>>()?;
        Ok((hits, counted))
    }

    /// Checks the facets and each word on a sample of packages, then decides. A filter few
    /// packages pass is not read along a sort's index (every step of which fetches a row)
    /// but another way, sorted after ([`Plan::walks`]). On SQLite, which has no statistics,
    /// words (3 characters or more, none held by over a [`COMMON_SHARE`] share) that few
    /// packages hold together are looked up together in the trigram index, whose cost
    /// grows with their matches, instead of checked package by package; Postgres's
    /// planner picks its trigram indexes itself.
    async fn sample(&self, plan: &mut Plan<'_>) -> HubResult<()> {
        let plain: Vec<String> = plan
            .words
            .iter()
            .filter(|w| !w.contains('/'))
            .cloned()
            .collect();
        // One bit per sampled package for the facets (1) and for each word (2, 4, …),
        // counted per combination: a few rows that answer every question below.
        let mut sql = Sql::new("SELECT bits, COUNT(*) FROM (SELECT CAST(CASE WHEN ");
        plan.facets(&mut sql, false);
        sql.push(" THEN 1 ELSE 0 END");
        for (i, w) in plain.iter().enumerate() {
            sql.push(" + CASE WHEN p.search_text LIKE ")
                .bind(format!("%{}%", like_escape(w)))
                .push(&format!(" ESCAPE '\\' THEN {} ELSE 0 END", 2 << i));
        }
        sql.push(&format!(
            " AS BIGINT) AS bits FROM (SELECT * FROM packages LIMIT {SAMPLE}) p) s GROUP BY bits"
        ));
        let key = format!("{}\0{}", sql.text, sql.args.join("\0"));
        plan.sample_key = key.clone();
        let sampled = match self.samples.get(&key) {
            Some(sampled) => sampled,
            None => {
                let rows = self.statement(&sql).fetch_all(&self.search_pool).await?;
                let counts = rows
                    .iter()
                    .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?)))
                    .collect::<HubResult<Vec<_>>>()?;
                let trigrams = self.backend == Backend::Sqlite;
                let mut sampled = Sample(counts).decide(&plain, trigrams);
                if !sampled.indexed.is_empty() {
                    sampled.trigrams = self.rarest_trigrams(&sampled.indexed).await?;
                }
                self.samples.put(key, sampled.clone());
                sampled
            }
        };
        plan.indexed = sampled.indexed;
        plan.trigrams = sampled.trigrams;
        plan.share = Some(sampled.share);
        plan.packages = match self.samples.packages() {
            Some(n) => n,
            None => {
                let n = self
                    .fetch_i64(&Sql::new("SELECT COUNT(*) FROM packages"))
                    .await?;
                self.samples.put_packages(n);
                n
            }
        };
        Ok(())
    }

    /// [`rarest_trigrams`] of `words`, counted by the trigram index itself (SQLite).
    async fn rarest_trigrams(&self, words: &[String]) -> HubResult<Vec<String>> {
        let grams: Vec<String> = words.iter().flat_map(|w| trigrams(w)).collect();
        let mut sql = Sql::new("SELECT term, doc FROM packages_trigram_counts WHERE term IN (");
        for (i, gram) in grams.iter().enumerate() {
            sql.push(if i == 0 { "" } else { ", " }).bind(gram.clone());
        }
        sql.push(")");
        let rows = self.statement(&sql).fetch_all(&self.search_pool).await?;
        let doc = rows
            .iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect::<HubResult<HashMap<_, _>>>()?;
        Ok(rarest_trigrams(words, &doc))
    }

    /// Relevance order: the ranked rows ([`Plan::ranked`]), then the rest of the matches
    /// in download order. Also says how many match (up to [`RANKED`]) when it knows. When
    /// the sample says the window holds every match, they are ranked by a plainer statement
    /// ([`Plan::every`]) whose count proves it (or the window is built after all).
    async fn ranked(
        &self,
        plan: &Plan<'_>,
        offset: i64,
        limit: i64,
    ) -> HubResult<(Vec<Hit>, Option<i64>)> {
        if plan.fits() {
            let (hits, counted) = self.counted(&plan.every(offset, limit)).await?;
            // No row: the page is past the last match, in any order.
            match counted {
                Some(n) if n > RANKED => {
                    // The sample missed: what was counted replaces it for its minute.
                    self.samples
                        .correct(&plan.sample_key, (n, plan.packages.max(n)));
                }
                _ => return Ok((hits, counted)),
            }
        }
        let rows = self
            .statement(&plan.ranked(offset, limit))
            .fetch_all(&self.search_pool)
            .await?;
        let Some(first) = rows.first() else {
            return Ok((vec![], None));
        };
        let n = PACKAGE_COLUMNS.split(',').count() + 3;
        let (top, ranked, plain): (i64, i64, i64) = (
            first.try_get(n)?,
            first.try_get(n + 1)?,
            first.try_get(n + 2)?,
        );
        let mut page = rows.iter().map(hit).collect::<HubResult<Vec<_>>>()?;
        let need = offset.saturating_add(limit);
        if top == RANKED && need > ranked {
            let rest = plan.page(
                Some(not_exact),
                "p.downloads DESC, p.repo",
                (plain + (offset - ranked).max(0), need - offset.max(ranked)),
                false,
            );
            page.extend(self.hits(&rest).await?);
        }
        Ok((page, Some(top)))
    }

    /// A search statement, kept prepared on its connection. On Postgres those are search's
    /// own connections, which plan each execution with its values (a generic plan would
    /// not know whether a word is rare, which decides between its trigram index and a
    /// sorted walk).
    fn statement<'q>(
        &self,
        sql: &'q Sql,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        let mut q = sqlx::query(&sql.text);
        for a in &sql.args {
            q = q.bind(a.clone());
        }
        q
    }

    async fn hits(&self, sql: &Sql) -> HubResult<Vec<Hit>> {
        let rows = self.statement(sql).fetch_all(&self.search_pool).await?;
        rows.iter().map(hit).collect()
    }

    async fn fetch_i64(&self, sql: &Sql) -> HubResult<i64> {
        Ok(self
            .statement(sql)
            .fetch_one(&self.search_pool)
            .await?
            .try_get(0)?)
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
        let search_text = text.join("\n").to_lowercase();
        self.exec(
            "UPDATE packages SET search_text = $2, prog_types = $3, attach_types = $4, \
             arches = $5, format = $6 WHERE repo = $1",
            &[
                repo,
                &search_text,
                &padded(&prog_types),
                &padded(&attach_types),
                &padded(&arches),
                &padded(&[format]),
            ],
        )
        .await?;
        if self.backend == Backend::Sqlite {
            self.refresh_trigrams(repo, &search_text).await?;
        }
        self.refresh_package_flags(repo).await
    }

    /// Replaces `repo`'s row of the trigram index (SQLite), which takes the rowid of the
    /// package row.
    async fn refresh_trigrams(&self, repo: &str, text: &str) -> HubResult<()> {
        self.exec(
            "DELETE FROM packages_trigrams \
             WHERE rowid = (SELECT rowid FROM packages WHERE repo = $1)",
            &[repo],
        )
        .await?;
        self.exec(
            "INSERT INTO packages_trigrams (rowid, repo, search_text) \
             SELECT rowid, repo, $2 FROM packages WHERE repo = $1",
            &[repo, text],
        )
        .await?;
        Ok(())
    }

    /// Rebuilds the trigram index (SQLite) unless each of its rows still has the rowid of
    /// its package: VACUUM may renumber the rowids of a table with no INTEGER PRIMARY KEY.
    async fn check_trigrams(&self) -> HubResult<()> {
        let astray = self
            .strings(
                "SELECT CAST(COUNT(*) AS TEXT) FROM packages_trigrams t \
                 LEFT JOIN packages p ON p.rowid = t.rowid WHERE p.repo IS NOT t.repo \
                 UNION ALL SELECT CAST(COUNT(*) AS TEXT) FROM packages p \
                 WHERE NOT EXISTS (SELECT 1 FROM packages_trigrams t WHERE t.rowid = p.rowid)",
                &[],
            )
            .await?;
        if astray.iter().all(|n| n == "0") {
            return Ok(());
        }
        eprintln!("note: the search trigram index was out of step with packages; rebuilt it");
        self.exec("DELETE FROM packages_trigrams", &[]).await?;
        self.exec(
            "INSERT INTO packages_trigrams (rowid, repo, search_text) \
             SELECT rowid, repo, search_text FROM packages",
            &[],
        )
        .await?;
        Ok(())
    }

    /// Rewrites what search sorts and filters on besides the text: the star count, and
    /// whether the latest version is signed and from which kernel series it loads. Called
    /// whenever one of them may change (a star, a verified signature or kernel matrix, a
    /// new latest version).
    pub async fn refresh_package_flags(&self, repo: &str) -> HubResult<()> {
        self.exec(
            "UPDATE packages SET \
             star_count = (SELECT COUNT(*) FROM stars s WHERE s.repo = packages.repo), \
             signed = CASE WHEN EXISTS (SELECT 1 FROM versions v JOIN verified_signatures s \
               ON s.repo = v.repo AND s.subject_digest = v.digest \
               WHERE v.repo = packages.repo AND v.version = packages.latest_version) \
               THEN 1 ELSE 0 END, \
             kernel_from = (SELECT MIN(k.loads_from) FROM versions v JOIN kernel_matrices k \
               ON k.repo = v.repo AND k.subject_digest = v.digest \
               WHERE v.repo = packages.repo AND v.version = packages.latest_version) \
             WHERE repo = $1",
            &[repo],
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
        if self.backend == Backend::Sqlite {
            self.check_trigrams().await?;
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
    fn each_word_is_looked_up_by_its_rarest_trigram() {
        let words = |ws: &[&str]| ws.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(trigrams("snoop"), ["sno", "noo", "oop"]);
        assert_eq!(trigrams("läuft"), ["läu", "äuf", "uft"]);
        assert_eq!(trigrams("aaaa"), ["aaa"]);
        let doc: HashMap<String, i64> = [("con", 900), ("ont", 400), ("tai", 90), ("ner", 300)]
            .into_iter()
            .chain([
                ("sno", 60),
                ("noo", 70),
                ("oop", 65),
                ("ain", 500),
                ("ine", 800),
            ])
            .chain([("nta", 120)])
            .map(|(g, n)| (g.to_string(), n))
            .collect();
        let rarest = rarest_trigrams(&words(&["snoop", "container"]), &doc);
        assert_eq!(rarest, ["sno", "tai"]);
        assert_eq!(trigram_query(&rarest), r#""sno" AND "tai""#);
        // A trigram the index does not know: no package holds the word.
        assert_eq!(rarest_trigrams(&words(&["snoopz"]), &doc), ["opz"]);
        // The same trigram for two words is looked up once.
        assert_eq!(rarest_trigrams(&words(&["snoop", "snoo"]), &doc), ["sno"]);
    }

    #[test]
    fn a_sort_few_packages_match_is_kept_from_its_index() {
        let s = SearchQuery::default();
        let order = "p.star_count DESC, p.downloads DESC, p.repo";
        let plan = |backend, share| Plan {
            share: Some(share),
            packages: 10_000,
            ..Plan::new(&s, backend)
        };
        let marked = "p.star_count + 0 DESC, p.downloads DESC, p.repo";
        // One package in 50 matches: SQLite walks for a page of 20, not for a window of
        // 201; Postgres for neither.
        let sqlite = plan(Backend::Sqlite, (4, 200));
        assert_eq!(sqlite.order(order, 20), order);
        assert_eq!(
            sqlite.order(order, RANKED),
            "+p.star_count DESC, +p.downloads DESC, +p.repo"
        );
        let postgres = plan(Backend::Postgres, (4, 200));
        assert_eq!(postgres.order(order, 20), marked);
        assert_eq!(postgres.order(order, RANKED), marked);
        // One in 10: Postgres walks for a page.
        let postgres = plan(Backend::Postgres, (20, 200));
        assert_eq!(postgres.order(order, 20), order);
        assert_eq!(postgres.order(order, RANKED), marked);
        assert_eq!(
            plan(Backend::Postgres, (100, 200)).order(order, RANKED),
            order
        );
    }

    #[test]
    fn a_walk_along_the_sort_keeps_the_kernel_index_out() {
        let s = SearchQuery {
            kernel: "6.1".into(),
            ..Default::default()
        };
        let filter = |backend, share, rows| {
            let plan = Plan {
                share: Some(share),
                packages: 10_000,
                ..Plan::new(&s, backend)
            };
            let mut sql = Sql::new("");
            plan.filter_along(&mut sql, rows);
            sql.text
        };
        // Most packages pass: SQLite walks the sort's index, the kernel condition marked.
        assert!(filter(Backend::Sqlite, (48, 200), 20).contains(" +p.kernel_from <= "));
        // Few pass: they are read through the kernel index, then sorted.
        assert!(filter(Backend::Sqlite, (1, 200), 20).contains(" p.kernel_from <= "));
        assert!(filter(Backend::Sqlite, (48, 200), RANKED).contains(" p.kernel_from <= "));
        // Postgres's planner weighs its indexes itself.
        assert!(filter(Backend::Postgres, (48, 200), 20).contains(" p.kernel_from <= "));
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_escape("sys_enter%"), "sys\\_enter\\%");
    }

    /// A package row as the indexer writes it (search text and facets included), inserted
    /// in one transaction so a test can hold a thousand of them.
    struct Row {
        owner: String,
        name: String,
        keywords: Vec<String>,
        description: String,
        downloads: i64,
    }

    async fn insert(db: &Db, rows: &[Row]) {
        let mut tx = db.pool.begin().await.unwrap();
        for r in rows {
            let repo = format!("{}/{}", r.owner, r.name);
            let mut text = vec![r.owner.clone(), r.name.clone(), repo.clone()];
            text.push(r.description.clone());
            text.extend(r.keywords.iter().cloned());
            sqlx::query(
                "INSERT INTO packages (repo, owner, name, description, keywords, latest_version, \
                 created_at, updated_at, downloads, search_text, format) \
                 VALUES ($1, $2, $3, $4, $5, '0.1.0', 0, 0, $6, $7, ' cargo-ebpf ')",
            )
            .bind(&repo)
            .bind(&r.owner)
            .bind(&r.name)
            .bind(&r.description)
            .bind(serde_json::to_string(&r.keywords).unwrap())
            .bind(r.downloads)
            .bind(text.join("\n").to_lowercase())
            .execute(&mut *tx)
            .await
            .unwrap();
            if db.backend == Backend::Sqlite {
                sqlx::query(
                    "INSERT INTO packages_trigrams (rowid, repo, search_text) \
                     SELECT rowid, repo, $2 FROM packages WHERE repo = $1",
                )
                .bind(&repo)
                .bind(text.join("\n").to_lowercase())
                .execute(&mut *tx)
                .await
                .unwrap();
            }
        }
        tx.commit().await.unwrap();
    }

    fn query(q: &str, page: i64, per_page: i64) -> SearchQuery {
        SearchQuery {
            q: q.into(),
            page,
            per_page,
            ..Default::default()
        }
    }

    fn repos(found: &Found) -> Vec<String> {
        found.hits.iter().map(|h| h.package.repo.clone()).collect()
    }

    #[tokio::test]
    async fn counts_stop_at_the_cap_and_say_there_are_more() {
        let dir = tempfile::tempdir().unwrap();
        counts_stop_at_the_cap_and_say_there_are_more_on(
            &Db::open(dir.path(), None).await.unwrap(),
        )
        .await;
    }

    async fn counts_stop_at_the_cap_and_say_there_are_more_on(db: &Db) {
        let rows: Vec<Row> = (0..COUNT_CAP + 3)
            .map(|i| Row {
                owner: format!("o{}", i % 7),
                name: format!("snoop{i}"),
                keywords: vec![],
                description: if i < 5 { "rare".into() } else { String::new() },
                downloads: i,
            })
            .collect();
        insert(db, &rows).await;
        let first = db.search(&query("snoop", 1, 20)).await.unwrap();
        assert_eq!(
            (first.total, first.more, first.hits.len()),
            (COUNT_CAP, true, 20)
        );
        // The last page is not full: it tells the exact count.
        let last_page = COUNT_CAP / 20 + 1;
        let last = db.search(&query("snoop", last_page, 20)).await.unwrap();
        assert_eq!(
            (last.total, last.more, last.hits.len()),
            (COUNT_CAP + 3, false, 3)
        );
        let past = db.search(&query("snoop", last_page + 9, 20)).await.unwrap();
        assert_eq!(
            (past.total, past.more, past.hits.len()),
            (COUNT_CAP, true, 0)
        );
        let few = db.search(&query("rare", 1, 2)).await.unwrap();
        assert_eq!((few.total, few.more, few.hits.len()), (5, false, 2));
    }

    #[tokio::test]
    async fn a_word_matching_thousands_ranks_the_popular_and_the_exact_ones() {
        let dir = tempfile::tempdir().unwrap();
        a_word_matching_thousands_ranks_the_popular_and_the_exact_ones_on(
            &Db::open(dir.path(), None).await.unwrap(),
        )
        .await;
    }

    async fn a_word_matching_thousands_ranks_the_popular_and_the_exact_ones_on(db: &Db) {
        let row = |owner: &str, name: String, downloads: i64| Row {
            owner: owner.into(),
            name,
            keywords: vec![],
            description: "Trace things".into(),
            downloads,
        };
        let tools = RANKED + 9;
        let mut rows: Vec<Row> = (0..tools)
            .map(|i| row("ann", format!("tool{i:04}"), i + 10))
            .collect();
        // Exact name, least downloaded: ranked first all the same.
        rows.push(row("zed", "trace".into(), 0));
        // In the name, but past the download window: it follows in download order.
        rows.push(row("bob", "mytracer".into(), 1));
        insert(db, &rows).await;
        let mut expected = vec!["zed/trace".to_string()];
        expected.extend((0..tools).rev().map(|i| format!("ann/tool{i:04}")));
        expected.push("bob/mytracer".into());
        let mut got = Vec::new();
        for page in 1.. {
            let found = db.search(&query("trace", page, 100)).await.unwrap();
            if found.hits.len() == 100 {
                assert_eq!((found.total, found.more), (COUNT_CAP, true), "page {page}");
            }
            if found.hits.is_empty() {
                break;
            }
            got.extend(repos(&found));
        }
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn a_word_the_sample_misses_is_ranked_in_the_window_all_the_same() {
        let dir = tempfile::tempdir().unwrap();
        a_word_the_sample_misses_is_ranked_in_the_window_all_the_same_on(
            &Db::open(dir.path(), None).await.unwrap(),
        )
        .await;
    }

    /// The sample reads the first packages, none of which holds the word: it says every
    /// match fits in the window, the plain statement counts more, and the window is built.
    async fn a_word_the_sample_misses_is_ranked_in_the_window_all_the_same_on(db: &Db) {
        let others: Vec<Row> = (0..SAMPLE)
            .map(|i| Row {
                owner: "cy".into(),
                name: format!("files{i:04}"),
                keywords: vec![],
                description: "Watch files".into(),
                downloads: 1000,
            })
            .collect();
        insert(db, &others).await;
        a_word_matching_thousands_ranks_the_popular_and_the_exact_ones_on(db).await;
        let s = query("trace", 1, 20);
        let mut plan = Plan::new(&s, db.backend);
        let (_, counted) = db.counted(&plan.every(0, 20)).await.unwrap();
        assert_eq!(counted, Some(RANKED + 11));
        // What the plain statement counted replaced the sample's guess.
        db.sample(&mut plan).await.unwrap();
        let packages = SAMPLE + RANKED + 11;
        assert_eq!(plan.share, Some((RANKED + 11, packages)));
        assert!(!plan.fits());
    }

    #[tokio::test]
    async fn a_trigram_index_out_of_step_is_rebuilt_at_startup() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), None).await.unwrap();
        let rows: Vec<Row> = (0..40)
            .map(|i| Row {
                owner: "di".into(),
                name: if i % 20 == 0 {
                    format!("runqsnoop{i}")
                } else {
                    format!("files{i}")
                },
                keywords: vec![],
                description: "Watch things".into(),
                downloads: i,
            })
            .collect();
        insert(&db, &rows).await;
        let found = || async { repos(&db.search(&query("runqsnoop", 1, 20)).await.unwrap()) };
        assert_eq!(found().await, ["di/runqsnoop20", "di/runqsnoop0"]);
        // As if VACUUM had renumbered the packages' rowids.
        for sql in [
            "DELETE FROM packages_trigrams",
            "INSERT INTO packages_trigrams (rowid, repo, search_text) \
             SELECT rowid + 1, repo, search_text FROM packages",
        ] {
            sqlx::query(sql).execute(&db.pool).await.unwrap();
        }
        assert_ne!(found().await, ["di/runqsnoop20", "di/runqsnoop0"]);
        db.refresh_stale_search().await.unwrap();
        assert_eq!(found().await, ["di/runqsnoop20", "di/runqsnoop0"]);
        let s = query("runqsnoop", 1, 20);
        let mut plan = Plan::new(&s, db.backend);
        db.sample(&mut plan).await.unwrap();
        assert_eq!(
            plan.indexed,
            ["runqsnoop"],
            "the search went through the index"
        );
    }

    /// Deterministic numbers below `n` from `seed` (a linear congruential generator).
    fn numbers(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        }
    }

    /// Score of the documented ranking: per word, name 100, in the name 60, owner 40, in a
    /// keyword 20, elsewhere 5; a repository word 100 exactly, 50 as a prefix.
    fn reference_score(r: &Row, words: &[&str]) -> Option<i64> {
        let repo = format!("{}/{}", r.owner, r.name);
        let text = format!(
            "{}\n{}\n{repo}\n{}\n{}",
            r.owner,
            r.name,
            r.description,
            r.keywords.join("\n")
        )
        .to_lowercase();
        let mut score = 0;
        for w in words {
            score += match w {
                w if w.contains('/') && repo == *w => 100,
                w if w.contains('/') && repo.starts_with(w) => 50,
                w if w.contains('/') || !text.contains(w) => return None,
                w if r.name == *w => 100,
                w if r.name.contains(w) => 60,
                w if r.owner == *w => 40,
                w if r.keywords.iter().any(|k| k.contains(w)) => 20,
                _ => 5,
            };
        }
        Some(score)
    }

    #[tokio::test]
    async fn relevance_pages_follow_the_full_ranking() {
        let dir = tempfile::tempdir().unwrap();
        relevance_pages_follow_the_full_ranking_on(&Db::open(dir.path(), None).await.unwrap())
            .await;
    }

    async fn relevance_pages_follow_the_full_ranking_on(db: &Db) {
        let names = [
            "trace",
            "opentrace",
            "tracer",
            "snoop",
            "execsnoop",
            "top",
            "tracesnoop",
        ];
        let owners = ["trace", "ann", "bob", "annie"];
        let mut next = numbers(7);
        let mut rows = Vec::new();
        for owner in owners {
            for name in names {
                for copy in 0..6 {
                    let keywords = match next(3) {
                        0 => vec!["tracing".to_string()],
                        1 => vec!["snoopy".to_string(), "net".to_string()],
                        _ => vec![],
                    };
                    let description = ["Trace calls", "Watch files", "snoop on trace events"];
                    rows.push(Row {
                        owner: owner.to_string(),
                        name: format!("{name}{}", ["", "-2", "-x", "z", "-ng", "1"][copy]),
                        keywords,
                        description: description[next(3) as usize].to_string(),
                        // Ties on purpose: the repository name breaks them.
                        downloads: next(4) as i64 * 10,
                    });
                }
            }
        }
        insert(db, &rows).await;
        for q in [
            "trace",
            "snoop trace",
            "ann/",
            "ann/trace",
            "annie/ trace",
            "top",
        ] {
            let words: Vec<&str> = q.split(' ').collect();
            let mut expected: Vec<(i64, i64, String)> = rows
                .iter()
                .filter_map(|r| {
                    let s = reference_score(r, &words)?;
                    Some((-s, -r.downloads, format!("{}/{}", r.owner, r.name)))
                })
                .collect();
            expected.sort();
            let expected: Vec<String> = expected.into_iter().map(|e| e.2).collect();
            assert!(!expected.is_empty(), "{q}");
            let mut got = Vec::new();
            for page in 1.. {
                let found = db.search(&query(q, page, 7)).await.unwrap();
                assert_eq!(found.total, expected.len() as i64, "{q} page {page}");
                if found.hits.is_empty() {
                    break;
                }
                got.extend(repos(&found));
            }
            assert_eq!(got, expected, "{q}");
        }
    }

    #[tokio::test]
    async fn words_rare_together_are_intersected_in_the_trigram_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), None).await.unwrap();
        // Each word is held by a fifth to a third of the packages; both together by few.
        let mut next = numbers(11);
        let subjects = ["tcp", "container", "bio", "dns", "runq", "xfs"];
        let kinds = ["snoop", "top", "lat", "watch", "stat"];
        let rows: Vec<Row> = (0..600)
            .map(|i| Row {
                owner: format!("o{}", i % 37),
                name: format!(
                    "{}{}{i}",
                    subjects[next(6) as usize],
                    kinds[next(5) as usize]
                ),
                keywords: match next(20) {
                    0 => vec!["containers".into()],
                    _ => vec![],
                },
                description: "Watch things".into(),
                downloads: next(50) as i64,
            })
            .collect();
        insert(&db, &rows).await;
        for (q, indexed) in [
            ("snoop container", vec!["snoop", "container"]),
            ("tcp lat", vec!["tcp", "lat"]),
            // `watch` is in every description: checked on the rows, not intersected.
            ("watch runqsnoop", vec!["runqsnoop"]),
            // Common alone: read along the sort's index, no trigram lookup.
            ("container", vec![]),
            // Too short for a trigram.
            ("ta bio", vec![]),
        ] {
            let s = query(q, 1, 100);
            let mut plan = Plan::new(&s, db.backend);
            db.sample(&mut plan).await.unwrap();
            assert_eq!(plan.indexed, indexed, "{q}");
            let words: Vec<&str> = q.split(' ').collect();
            let mut expected: Vec<String> = rows
                .iter()
                .filter(|r| reference_score(r, &words).is_some())
                .map(|r| format!("{}/{}", r.owner, r.name))
                .collect();
            expected.sort();
            for sort in [Sort::Relevance, Sort::Stars] {
                let mut got = Vec::new();
                for page in 1.. {
                    let s = SearchQuery {
                        sort,
                        page,
                        ..s.clone()
                    };
                    let found = db.search(&s).await.unwrap();
                    if found.hits.is_empty() {
                        break;
                    }
                    got.extend(repos(&found));
                }
                got.sort();
                assert_eq!(got, expected, "{q} by {}", sort.name());
            }
        }
    }

    #[tokio::test]
    async fn stars_signatures_and_kernel_matrices_reach_the_package_row() {
        let dir = tempfile::tempdir().unwrap();
        stars_signatures_and_kernel_matrices_reach_the_package_row_on(
            &Db::open(dir.path(), None).await.unwrap(),
        )
        .await;
    }

    async fn stars_signatures_and_kernel_matrices_reach_the_package_row_on(db: &Db) {
        let row = |name: &str| Row {
            owner: "ann".into(),
            name: name.into(),
            keywords: vec![],
            description: String::new(),
            downloads: 0,
        };
        insert(db, &[row("one"), row("two")]).await;
        for repo in ["ann/one", "ann/two"] {
            let digest = format!("sha256:{}", ebpf_package::digest::sha256(repo.as_bytes()));
            db.exec(
                "INSERT INTO versions (repo, version, digest, size, pushed_at) \
                 VALUES ($1, '0.1.0', $2, 1, 0)",
                &[repo, &digest],
            )
            .await
            .unwrap();
        }
        let digest = format!("sha256:{}", ebpf_package::digest::sha256(b"ann/two"));
        db.toggle_star("bob", "ann/two").await.unwrap();
        let signature = crate::db::VerifiedSignature {
            subject_digest: digest.clone(),
            fingerprint: "f".into(),
            key_owner: "ann".into(),
            key_label: String::new(),
        };
        db.add_verified_signature("ann/two", &signature)
            .await
            .unwrap();
        let matrix = crate::db::MatrixRow {
            subject_digest: digest,
            fingerprint: "f".into(),
            key_owner: "ann".into(),
            matrix: "{}".into(),
            loads_from: Some(5010),
        };
        db.record_kernel_matrix("ann/two", &matrix).await.unwrap();
        let with = |set: fn(&mut SearchQuery)| {
            let mut s = query("", 1, 10);
            set(&mut s);
            s
        };
        let stars = db.search(&with(|s| s.sort = Sort::Stars)).await.unwrap();
        assert_eq!(repos(&stars), ["ann/two", "ann/one"]);
        assert_eq!((stars.hits[0].stars, stars.hits[0].signed), (1, true));
        let signed = db.search(&with(|s| s.signed = true)).await.unwrap();
        assert_eq!(repos(&signed), ["ann/two"]);
        for (kernel, found) in [("6.1", 1), ("5.10", 1), ("5.4", 0)] {
            let k = kernel.to_string();
            let mut s = query("", 1, 10);
            s.kernel = k;
            assert_eq!(db.search(&s).await.unwrap().total, found, "kernel {kernel}");
        }
        db.toggle_star("bob", "ann/two").await.unwrap();
        let unstarred = db.search(&with(|s| s.sort = Sort::Stars)).await.unwrap();
        assert_eq!(unstarred.hits[0].stars + unstarred.hits[1].stars, 0);
    }

    /// The scenarios above on a real Postgres (one cluster for all of them).
    #[tokio::test]
    async fn the_same_searches_on_postgres() {
        let Some(pg) = crate::db::test_postgres::Cluster::start() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Some(&pg.url())).await.unwrap();
        assert_eq!(db.backend, Backend::Postgres);
        // Searches are planned with their values; other statements keep generic plans.
        let mode = |pool: &sqlx::AnyPool| {
            let pool = pool.clone();
            async move {
                let row = sqlx::query("SHOW plan_cache_mode")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                sqlx::Row::try_get::<String, _>(&row, 0).unwrap()
            }
        };
        assert_eq!(mode(&db.search_pool).await, "force_custom_plan");
        assert_eq!(mode(&db.pool).await, "auto");
        counts_stop_at_the_cap_and_say_there_are_more_on(&db).await;
        sqlx::query("DELETE FROM packages")
            .execute(&db.pool)
            .await
            .unwrap();
        a_word_matching_thousands_ranks_the_popular_and_the_exact_ones_on(&db).await;
        sqlx::query("DELETE FROM packages")
            .execute(&db.pool)
            .await
            .unwrap();
        relevance_pages_follow_the_full_ranking_on(&db).await;
        sqlx::query("DELETE FROM packages")
            .execute(&db.pool)
            .await
            .unwrap();
        stars_signatures_and_kernel_matrices_reach_the_package_row_on(&db).await;
        sqlx::query("DELETE FROM packages")
            .execute(&db.pool)
            .await
            .unwrap();
        // A hub process of its own: this one remembers what the searches above sampled.
        let fresh = Db::open(dir.path(), Some(&pg.url())).await.unwrap();
        a_word_the_sample_misses_is_ranked_in_the_window_all_the_same_on(&fresh).await;
    }
}
