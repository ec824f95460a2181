//! `cargo ebpf new`: render a template pack into a new project directory.
//!
//! Packs live in `templates/packs/<pack>/` of this crate (so the published crate holds them;
//! `template-packs/` at the repository root links there) and are embedded in the binary; a
//! third-party pack in the same format can come from a directory or a git URL (`--template`).
//! Each has a `pack.toml`; every other file is part of the project. Files ending in `.hbs` are rendered
//! with handlebars (strict: an unknown variable is an error) and lose the suffix; the rest
//! are copied as they are. Path components may use variables too (`src/{{name}}.bpf.c.hbs`).
//!
//! Every project also gets the CI files shared by all packs: `github-actions/` becomes
//! `.github/workflows/`, `gitee-ci/` becomes `.workflow/`, rendered with the pack's `[ci]`
//! section. A pack file at the same path wins. docs/templates.md describes the format.

mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use include_dir::{include_dir, Dir};
use serde::{Deserialize, Serialize};

use ebpf_package::{Error, ErrorKind, Result};

use crate::manifest::validate_name;
use source::Files;
pub use source::PackSource;

static PACKS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates/packs");
static GITHUB_ACTIONS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates/github-actions");
static GITEE_CI: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates/gitee-ci");

/// The shared CI templates and where their files land in a project. Their READMEs describe
/// the directories themselves and are not copied.
const SHARED_CI: [(&Dir<'static>, &str); 2] = [
    (&GITHUB_ACTIONS, ".github/workflows"),
    (&GITEE_CI, ".workflow"),
];
const SHARED_CI_SKIP: &str = "README.md";

/// The file in each pack that describes it (not copied into projects).
const PACK_FILE: &str = "pack.toml";
const TEMPLATE_SUFFIX: &str = ".hbs";
const DEFAULT_AUTHOR: &str = "Your Name <you@example.com>";
/// What the CI test step runs when a pack's `[ci] test` does not say: load, attach and run
/// the program for a few seconds (the CI job is root in a privileged container).
const DEFAULT_CI_TEST: &str = "cargo ebpf run . --duration 5";
/// Debian packages every CI job and Dockerfile installs before the pack's own: what
/// rustup and `cargo install cargo-ebpf` need (libbpf-sys links libelf and zlib, git2
/// links OpenSSL), and git for checkouts.
const CI_BASE_APT: &[&str] = &[
    "ca-certificates",
    "curl",
    "git",
    "gcc",
    "libc6-dev",
    "make",
    "pkg-config",
    "libelf-dev",
    "zlib1g-dev",
    "libssl-dev",
];

pub struct NewOptions<'a> {
    pub name: &'a str,
    /// A built-in template pack: `eunomia`, `c`, `go`, `rust`.
    pub lang: &'a str,
    /// Where to create the project; default `./NAME`.
    pub path: Option<&'a Path>,
}

/// A template pack, as listed by `cargo ebpf new --list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackInfo {
    pub name: String,
    pub description: String,
    /// The language of the code it creates (`c`, `rust`, …).
    pub language: String,
}

/// `pack.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    name: String,
    description: String,
    language: String,
    /// The `description` new projects start with.
    project_description: Option<String>,
    /// What CI jobs and Dockerfiles install to build projects of this pack.
    #[serde(default)]
    ci: CiSection,
}

/// `[ci]` in pack.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CiSection {
    /// Debian packages to apt-install (clang, libbpf-dev, golang-go, …).
    #[serde(default)]
    apt: Vec<String>,
    /// Extra shell lines run after apt and rustup (e.g. installing bpf-linker).
    #[serde(default)]
    setup: Vec<String>,
    /// Shell lines for the CI test step; default [`DEFAULT_CI_TEST`], `[]` for none.
    test: Option<Vec<String>>,
}

/// A pack read into memory: its `pack.toml` and its other files.
struct Pack {
    source: PackSource,
    meta: PackFile,
    files: Files,
}

impl Pack {
    fn load(source: &PackSource) -> Result<Pack> {
        let broken = |why: &str| broken_pack(source, why);
        let mut files = match source {
            PackSource::Builtin(name) => source::embedded_files(builtin_dir(name)?),
            PackSource::Dir(dir) => source::dir_files(dir, &broken)?,
            PackSource::Git { url, rev } => source::git_files(url, rev.as_deref(), &broken)?,
        };
        let at = files
            .iter()
            .position(|(p, _)| p == Path::new(PACK_FILE))
            .ok_or_else(|| broken("it has no pack.toml at its top level"))?;
        let (_, text) = files.remove(at);
        let text = String::from_utf8(text).map_err(|_| broken("pack.toml is not UTF-8"))?;
        let meta = toml::from_str(&text).map_err(|e| broken(&format!("bad pack.toml: {e}")))?;
        Ok(Pack {
            source: source.clone(),
            meta,
            files,
        })
    }

    fn broken(&self, why: &str) -> Error {
        broken_pack(&self.source, why)
    }
}

/// Who the new project is by, and when: the parts of the template variables that come from
/// the machine rather than from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `Name <email>`.
    pub author: String,
    pub year: u32,
}

impl Identity {
    /// Author from `$CARGO_EBPF_AUTHOR`, else git's user.name/user.email, else a
    /// placeholder; year from `$SOURCE_DATE_EPOCH` (reproducible builds), else the clock.
    pub fn detect() -> Identity {
        let author = std::env::var("CARGO_EBPF_AUTHOR")
            .ok()
            .filter(|a| !a.trim().is_empty())
            .or_else(git_author)
            .unwrap_or_else(|| DEFAULT_AUTHOR.to_string());
        let secs = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            });
        Identity {
            author,
            year: year_of(secs),
        }
    }
}

/// Every variable a template can use.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateVars {
    /// The package name (`my-probe`).
    pub name: String,
    /// The name as a C identifier: `-` → `_` (`my_probe`).
    pub name_ident: String,
    /// The C identifier upper-cased, for macros and header guards (`MY_PROBE`).
    pub name_upper: String,
    pub description: String,
    pub author: String,
    pub year: u32,
    pub version: String,
    pub license: String,
    /// The pack's name (`eunomia`, `rust`, …).
    pub pack: String,
    /// The pack's language (`c`, `go`, `rust`).
    pub language: String,
    /// The version of cargo-ebpf that created the project; CI installs the same one.
    pub cargo_ebpf_version: String,
    pub ci: CiVars,
}

/// `[ci]` as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct CiVars {
    /// The pack's Debian packages, as a list.
    pub apt: Vec<String>,
    /// [`CI_BASE_APT`] and then the pack's packages, each once, space-separated: what an
    /// `apt-get install` line in a CI template or Dockerfile takes.
    pub apt_packages: String,
    pub setup: Vec<String>,
    pub test: Vec<String>,
}

impl TemplateVars {
    /// The variables the templates of the built-in pack `lang` see for a project `name`.
    pub fn for_pack(lang: &str, name: &str, who: &Identity) -> Result<TemplateVars> {
        let pack = Pack::load(&PackSource::Builtin(lang.to_string()))?;
        Ok(TemplateVars::new(name, &pack.meta, who))
    }

    fn new(name: &str, pack: &PackFile, who: &Identity) -> TemplateVars {
        let name_ident = name.replace('-', "_");
        TemplateVars {
            name: name.to_string(),
            name_upper: name_ident.to_ascii_uppercase(),
            name_ident,
            description: pack
                .project_description
                .clone()
                .unwrap_or_else(|| format!("{name}: an eBPF program")),
            author: who.author.clone(),
            year: who.year,
            version: "0.1.0".to_string(),
            license: "GPL-2.0".to_string(),
            pack: pack.name.clone(),
            language: pack.language.clone(),
            cargo_ebpf_version: env!("CARGO_PKG_VERSION").to_string(),
            ci: CiVars {
                apt: pack.ci.apt.clone(),
                apt_packages: apt_packages(&pack.ci.apt),
                setup: pack.ci.setup.clone(),
                test: pack
                    .ci
                    .test
                    .clone()
                    .unwrap_or_else(|| vec![DEFAULT_CI_TEST.to_string()]),
            },
        }
    }
}

fn apt_packages(pack_apt: &[String]) -> String {
    let mut all: Vec<&str> = CI_BASE_APT.to_vec();
    for p in pack_apt {
        if !all.contains(&p.as_str()) {
            all.push(p);
        }
    }
    all.join(" ")
}

/// Renders the pack; refuses an invalid name or an existing directory, writing nothing.
/// Returns the project directory.
pub fn new_project(opts: &NewOptions) -> Result<PathBuf> {
    new_project_with(opts, &Identity::detect())
}

/// [`new_project`] with the author and year given (tests and reproducible output).
pub fn new_project_with(opts: &NewOptions, who: &Identity) -> Result<PathBuf> {
    let source = PackSource::Builtin(opts.lang.to_string());
    new_project_from(opts.name, opts.path, &source, who)
}

/// Renders the pack from `source` into `path` (default `./NAME`). A broken pack, like an
/// invalid name or an existing directory, is an error and nothing is written.
pub fn new_project_from(
    name: &str,
    path: Option<&Path>,
    source: &PackSource,
    who: &Identity,
) -> Result<PathBuf> {
    validate_project_name(name)?;
    let target = path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(name));
    refuse_existing(&target)?;
    let files = render_from(source, name, who)?;
    write_atomically(&target, &files)?;
    Ok(target)
}

/// The built-in template packs, sorted by name.
pub fn packs() -> Vec<PackInfo> {
    let mut list: Vec<PackInfo> = PACKS
        .dirs()
        .filter_map(|d| {
            let name = d.path().file_name()?.to_str()?;
            Pack::load(&PackSource::Builtin(name.to_string())).ok()
        })
        .map(|p| PackInfo {
            name: p.meta.name,
            description: p.meta.description,
            language: p.meta.language,
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

/// `cargo ebpf new --list`: one line per pack, columns aligned.
pub fn format_pack_list(packs: &[PackInfo]) -> String {
    let name_width = packs.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let lang_width = packs.iter().map(|p| p.language.len()).max().unwrap_or(0);
    packs
        .iter()
        .map(|p| {
            format!(
                "{:<name_width$}  {:<lang_width$}  {}\n",
                p.name, p.language, p.description
            )
        })
        .collect()
}

/// Renders a built-in pack in memory: (relative path, content) for every project file.
pub fn render(lang: &str, name: &str, who: &Identity) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    render_from(&PackSource::Builtin(lang.to_string()), name, who)
}

/// Renders the pack from `source` in memory, the shared CI files included.
pub fn render_from(
    source: &PackSource,
    name: &str,
    who: &Identity,
) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    validate_project_name(name)?;
    let pack = Pack::load(source)?;
    render_pack(&pack, &TemplateVars::new(name, &pack.meta, who))
}

/// A valid package name that also works as the packs' file names: `src/NAME.h` must not
/// shadow a header the sources include by the same name (`#include "vmlinux.h"` finds
/// `src/vmlinux.h` first, and the build then fails with pages of unknown types).
fn validate_project_name(name: &str) -> Result<()> {
    validate_name(name)?;
    const SHADOWED: &[&str] = &["vmlinux"];
    if SHADOWED.contains(&name) {
        return Err(Error::input(format!(
            "the name `{name}` cannot be used for a new project: src/{name}.h would hide \
             the generated {name}.h that the sources include"
        ))
        .with_help(format!("choose another name, e.g. `{name}-probe`")));
    }
    Ok(())
}

fn builtin_dir(lang: &str) -> Result<&'static Dir<'static>> {
    PACKS
        .dirs()
        .find(|d| d.path().file_name().is_some_and(|n| n == lang))
        .ok_or_else(|| {
            let list: Vec<String> = packs()
                .iter()
                .map(|p| format!("{} ({})", p.name, p.description))
                .collect();
            Error::input(format!("unknown template pack `{lang}`")).with_help(format!(
                "choose one of: {}; `cargo ebpf new --list` shows them, and \
                 `--template DIR|GIT-URL` uses a pack of your own",
                list.join(", ")
            ))
        })
}

/// A built-in pack that fails is a bug in cargo-ebpf; a third-party one is the user's to fix.
fn broken_pack(source: &PackSource, why: &str) -> Error {
    let help = match source {
        PackSource::Builtin(_) => "this is a bug in cargo-ebpf; please report it".to_string(),
        _ => "fix the pack: docs/templates.md describes the format (pack.toml, .hbs \
              templates, the variables they may use); nothing was written"
            .to_string(),
    };
    Error::new(
        ErrorKind::Input,
        format!("{} is broken: {why}", source.label()),
    )
    .with_help(help)
}

fn refuse_existing(target: &Path) -> Result<()> {
    if target.symlink_metadata().is_ok() {
        return Err(
            Error::input(format!("destination `{}` already exists", target.display())).with_help(
                format!(
                    "choose another name (or --path); to make the existing folder a project, \
                     run `cargo ebpf init --path {}` (it writes only ebpf.toml)",
                    target.display()
                ),
            ),
        );
    }
    Ok(())
}

fn renderer() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    // Output is C, TOML, YAML and Markdown, never HTML.
    hb.register_escape_fn(handlebars::no_escape);
    // `{{toml x}}`: `x` as a quoted TOML string, so quotes in e.g. an author's name are safe.
    hb.register_helper(
        "toml",
        quoting_helper("toml", |v| toml::Value::String(v.into()).to_string()),
    );
    // `{{yaml x}}`: `x` as a double-quoted YAML string (JSON's quoting is valid YAML), so a
    // `[ci] setup` line with `: ` or `#` in it stays one list item.
    hb.register_helper(
        "yaml",
        quoting_helper("yaml", |v| serde_json::Value::String(v.into()).to_string()),
    );
    hb
}

/// A helper writing its one string parameter through `quote`.
fn quoting_helper(
    name: &'static str,
    quote: fn(&str) -> String,
) -> Box<dyn handlebars::HelperDef + Send + Sync> {
    Box::new(
        move |h: &handlebars::Helper,
              _: &Handlebars,
              _: &handlebars::Context,
              _: &mut handlebars::RenderContext,
              out: &mut dyn handlebars::Output|
              -> handlebars::HelperResult {
            out.write(&quote(string_param(h, name)?))?;
            Ok(())
        },
    )
}

fn string_param<'a>(
    h: &'a handlebars::Helper,
    helper: &'static str,
) -> std::result::Result<&'a str, handlebars::RenderErrorReason> {
    h.param(0).and_then(|p| p.value().as_str()).ok_or(
        handlebars::RenderErrorReason::ParamNotFoundForIndex(helper, 0),
    )
}

/// The shared CI files first, then the pack's own, which replace a shared file at the same
/// path; sorted by path.
fn render_pack(pack: &Pack, vars: &TemplateVars) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let hb = renderer();
    let mut out = BTreeMap::new();
    for (dir, dest) in SHARED_CI {
        for (rel, contents) in source::embedded_files(dir) {
            if rel == Path::new(SHARED_CI_SKIP) {
                continue;
            }
            let (path, text) = render_file(&hb, &rel, &contents, vars).map_err(|why| {
                Error::new(
                    ErrorKind::Input,
                    format!("shared CI template broken: {why}"),
                )
                .with_help("this is a bug in cargo-ebpf; please report it")
            })?;
            out.insert(Path::new(dest).join(path), text);
        }
    }
    for (rel, contents) in &pack.files {
        let (path, text) =
            render_file(&hb, rel, contents, vars).map_err(|why| pack.broken(&why))?;
        out.insert(path, text);
    }
    Ok(out.into_iter().collect())
}

/// Renders one file's path and, for `.hbs` files, its content. The error says which file
/// and why.
fn render_file(
    hb: &Handlebars,
    rel: &Path,
    contents: &[u8],
    vars: &TemplateVars,
) -> std::result::Result<(PathBuf, Vec<u8>), String> {
    let shown = rel.display();
    let rel_str = rel
        .to_str()
        .ok_or_else(|| format!("the file name {shown} is not UTF-8"))?;
    let rendered = hb
        .render_template(rel_str, vars)
        .map_err(|e| format!("cannot render the file name {shown}: {e}"))?;
    let (name, template) = match rendered.strip_suffix(TEMPLATE_SUFFIX) {
        Some(stripped) => (stripped, true),
        None => (rendered.as_str(), false),
    };
    // Checked after the suffix is gone: `..hbs` would otherwise become `..`.
    let path = safe_relative(name).ok_or_else(|| {
        format!("{shown} renders to `{name}`, which is not a path inside the project")
    })?;
    if !template {
        return Ok((path, contents.to_vec()));
    }
    let text = std::str::from_utf8(contents).map_err(|_| format!("{shown} is not UTF-8"))?;
    let text = hb
        .render_template(text, vars)
        .map_err(|e| format!("cannot render {shown}: {e}"))?;
    Ok((path, text.into_bytes()))
}

/// `path` when it stays inside the project: relative, every name a real one (not empty, not
/// `.` or `..`). Checked on the string, since `Path::components` quietly drops a `.`.
fn safe_relative(path: &str) -> Option<PathBuf> {
    path.split('/')
        .all(|part| !matches!(part, "" | "." | ".."))
        .then(|| PathBuf::from(path))
}

/// Writes `files` into a staging directory beside `target`, then renames it into place, so
/// a failure part way leaves nothing behind.
fn write_atomically(target: &Path, files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::io("create directory", &parent, e))?;
    let leaf = target
        .file_name()
        .map_or_else(|| "project".into(), |n| n.to_string_lossy().into_owned());
    let staging = Staging::create(parent.join(format!(".{leaf}.new-{}", std::process::id())))?;
    for (rel, content) in files {
        let path = staging.0.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        }
        std::fs::write(&path, content).map_err(|e| Error::io("write", &path, e))?;
    }
    refuse_existing(target)?;
    std::fs::rename(&staging.0, target).map_err(|e| Error::io("create", target, e))?;
    staging.disarm();
    Ok(())
}

/// A directory removed on drop unless disarmed. Created with `create_dir` (not a temp-dir
/// crate) so the project gets the user's umask rather than mode 0700.
struct Staging(PathBuf);

impl Staging {
    fn create(path: PathBuf) -> Result<Staging> {
        if path.exists() {
            // Left over from a crashed run with the same pid: it is ours to clear.
            let _ = std::fs::remove_dir_all(&path);
        }
        std::fs::create_dir(&path).map_err(|e| Error::io("create directory", &path, e))?;
        Ok(Staging(path))
    }
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `git config user.name` / `user.email` as `Name <email>`, when git knows them.
fn git_author() -> Option<String> {
    let get = |key: &str| {
        let out = std::process::Command::new("git")
            .args(["config", "--get", key])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let value = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !value.is_empty()).then_some(value)
    };
    match (get("user.name"), get("user.email")) {
        (Some(name), Some(email)) => Some(format!("{name} <{email}>")),
        (Some(name), None) => Some(name),
        (None, Some(email)) => Some(format!("<{email}>")),
        (None, None) => None,
    }
}

/// The calendar year (UTC) of a Unix time.
fn year_of(secs: u64) -> u32 {
    // Howard Hinnant's days-to-civil algorithm, reduced to the year.
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    year as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years() {
        assert_eq!(year_of(0), 1970);
        assert_eq!(year_of(1_704_067_199), 2023); // 2023-12-31T23:59:59Z
        assert_eq!(year_of(1_704_067_200), 2024); // 2024-01-01T00:00:00Z
        assert_eq!(year_of(951_782_400), 2000); // 2000-02-29
    }

    #[test]
    fn only_paths_inside_the_project_are_safe() {
        for good in ["a", "src/x.c", ".github/workflows/ebpf.yml", "..x", "x.."] {
            assert_eq!(safe_relative(good), Some(PathBuf::from(good)), "{good}");
        }
        for bad in ["", "/etc/x", "..", "a/../../b", "src/.", "a//b", "a/"] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
    }

    #[test]
    fn ci_apt_packages_start_with_the_base_and_list_each_once() {
        let pack = vec!["clang".to_string(), "make".to_string(), "clang".to_string()];
        let line = apt_packages(&pack);
        assert!(line.starts_with("ca-certificates curl "), "{line}");
        assert!(line.ends_with(" libssl-dev clang"), "{line}");
        assert_eq!(line.matches("make").count(), 1);
    }

    #[test]
    fn every_pack_renders_in_strict_mode() {
        let who = Identity {
            author: "A \"Quoted\" Name <a@b.c>".into(),
            year: 2024,
        };
        assert!(!packs().is_empty());
        for pack in packs() {
            let files = render(&pack.name, "my-probe", &who).unwrap();
            let manifest = files
                .iter()
                .find(|(p, _)| p == Path::new(crate::manifest::FILE_NAME))
                .expect("every pack has an ebpf.toml");
            let text = std::str::from_utf8(&manifest.1).unwrap();
            let m = crate::manifest::Manifest::parse(text, Path::new("ebpf.toml")).unwrap();
            assert_eq!(m.package.authors, std::slice::from_ref(&who.author));
        }
    }
}
