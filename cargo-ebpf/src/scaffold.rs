//! `cargo ebpf new`: render a template pack into a new project directory.
//!
//! Packs live in `template-packs/<pack>/` and are embedded in the binary. Each has a
//! `pack.toml`; every other file is part of the project. Files ending in `.hbs` are rendered
//! with handlebars (strict: an unknown variable is an error) and lose the suffix; the rest
//! are copied as they are. Path components may use variables too (`src/{{name}}.bpf.c.hbs`).

use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use include_dir::{include_dir, Dir, File};
use serde::{Deserialize, Serialize};

use ebpf_runner::{Error, ErrorKind, Result};

use crate::manifest::validate_name;

static PACKS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../template-packs");

/// The file in each pack that describes it (not copied into projects).
const PACK_FILE: &str = "pack.toml";
const TEMPLATE_SUFFIX: &str = ".hbs";
const DEFAULT_AUTHOR: &str = "Your Name <you@example.com>";

pub struct NewOptions<'a> {
    pub name: &'a str,
    /// Template pack: `eunomia` (later: c, go, rust).
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
    #[allow(dead_code)] // rendered into the shared CI templates (github-actions/, gitee-ci/)
    ci: CiSection,
}

/// `[ci]` in pack.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct CiSection {
    /// Debian packages to apt-install (clang, libbpf-dev, golang-go, …).
    #[serde(default)]
    apt: Vec<String>,
    /// Extra shell lines run after apt (e.g. installing rustup).
    #[serde(default)]
    setup: Vec<String>,
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
}

impl TemplateVars {
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
        }
    }
}

/// Renders the pack; refuses an invalid name or an existing directory, writing nothing.
/// Returns the project directory.
pub fn new_project(opts: &NewOptions) -> Result<PathBuf> {
    new_project_with(opts, &Identity::detect())
}

/// [`new_project`] with the author and year given (tests and reproducible output).
pub fn new_project_with(opts: &NewOptions, who: &Identity) -> Result<PathBuf> {
    validate_project_name(opts.name)?;
    let (pack_dir, pack) = find_pack(opts.lang)?;
    let target = opts
        .path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(opts.name));
    refuse_existing(&target)?;
    let vars = TemplateVars::new(opts.name, &pack, who);
    let files = render_pack(pack_dir, &vars)?;
    write_atomically(&target, &files)?;
    Ok(target)
}

/// The available template packs, sorted by name.
pub fn packs() -> Vec<PackInfo> {
    let mut list: Vec<PackInfo> = PACKS
        .dirs()
        .filter_map(|d| read_pack_file(d).ok())
        .map(|p| PackInfo {
            name: p.name,
            description: p.description,
            language: p.language,
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

/// Renders a pack in memory: (relative path, content) for every project file.
pub fn render(lang: &str, name: &str, who: &Identity) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    validate_project_name(name)?;
    let (dir, pack) = find_pack(lang)?;
    render_pack(dir, &TemplateVars::new(name, &pack, who))
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

fn find_pack(lang: &str) -> Result<(&'static Dir<'static>, PackFile)> {
    let dir = PACKS
        .dirs()
        .find(|d| d.path().file_name().is_some_and(|n| n == lang))
        .ok_or_else(|| {
            let list: Vec<String> = packs()
                .iter()
                .map(|p| format!("{} ({})", p.name, p.description))
                .collect();
            Error::input(format!("unknown template pack `{lang}`")).with_help(format!(
                "choose one of: {}; `cargo ebpf new --list` shows them",
                list.join(", ")
            ))
        })?;
    Ok((dir, read_pack_file(dir)?))
}

fn read_pack_file(dir: &Dir) -> Result<PackFile> {
    let path = dir.path().join(PACK_FILE);
    let text = dir
        .get_file(&path)
        .and_then(File::contents_utf8)
        .ok_or_else(|| broken_pack(dir, "it has no pack.toml"))?;
    toml::from_str(text).map_err(|e| broken_pack(dir, &format!("bad pack.toml: {e}")))
}

/// A pack shipped in the binary failed: a bug in cargo-ebpf, not in the user's input.
fn broken_pack(dir: &Dir, why: &str) -> Error {
    Error::new(
        ErrorKind::Input,
        format!("template pack `{}` is broken: {why}", dir.path().display()),
    )
    .with_help("this is a bug in cargo-ebpf; please report it")
}

fn refuse_existing(target: &Path) -> Result<()> {
    if target.symlink_metadata().is_ok() {
        return Err(
            Error::input(format!("destination `{}` already exists", target.display())).with_help(
                format!(
                    "choose another name (or --path), or remove it first with `rm -r {}`",
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
    // Output is C, TOML and Markdown, never HTML.
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("toml", Box::new(toml_string_helper));
    hb
}

/// `{{toml x}}`: `x` as a quoted TOML string, so quotes in e.g. an author's name are safe.
fn toml_string_helper(
    h: &handlebars::Helper,
    _: &Handlebars,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let value = h
        .param(0)
        .and_then(|p| p.value().as_str())
        .ok_or_else(|| handlebars::RenderErrorReason::ParamNotFoundForIndex("toml", 0))?;
    out.write(&toml::Value::String(value.to_string()).to_string())?;
    Ok(())
}

fn render_pack(pack_dir: &Dir, vars: &TemplateVars) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let hb = renderer();
    let mut files = Vec::new();
    collect_files(pack_dir, &mut files);
    let mut out = Vec::new();
    for file in files {
        let rel = file
            .path()
            .strip_prefix(pack_dir.path())
            .expect("files lie inside their pack");
        if rel == Path::new(PACK_FILE) {
            continue;
        }
        out.push(render_file(&hb, pack_dir, rel, file.contents(), vars)?);
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn collect_files<'a>(dir: &'a Dir<'a>, out: &mut Vec<&'a File<'a>>) {
    out.extend(dir.files());
    for sub in dir.dirs() {
        collect_files(sub, out);
    }
}

fn render_file(
    hb: &Handlebars,
    pack_dir: &Dir,
    rel: &Path,
    contents: &[u8],
    vars: &TemplateVars,
) -> Result<(PathBuf, Vec<u8>)> {
    let fail = |e: handlebars::RenderError| {
        broken_pack(pack_dir, &format!("cannot render {}: {e}", rel.display()))
    };
    let rel_str = rel
        .to_str()
        .ok_or_else(|| broken_pack(pack_dir, "a file name is not UTF-8"))?;
    let path = hb.render_template(rel_str, vars).map_err(fail)?;
    match path.strip_suffix(TEMPLATE_SUFFIX) {
        Some(stripped) => {
            let text = std::str::from_utf8(contents)
                .map_err(|_| broken_pack(pack_dir, &format!("{} is not UTF-8", rel.display())))?;
            let rendered = hb.render_template(text, vars).map_err(fail)?;
            Ok((PathBuf::from(stripped), rendered.into_bytes()))
        }
        None => Ok((PathBuf::from(path), contents.to_vec())),
    }
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
