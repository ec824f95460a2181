//! Where a template pack comes from: built into the binary, a directory, or a git repository.
//! Every source is read into memory as (relative path, bytes) before anything is rendered,
//! so a pack that turns out to be broken never leaves a half-written project.

use std::path::{Path, PathBuf};

use include_dir::Dir;

use ebpf_package::{Error, Result};

/// A pack's files, `pack.toml` included, as read from its source.
pub(super) type Files = Vec<(PathBuf, Vec<u8>)>;

/// Which pack `cargo ebpf new` renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackSource {
    /// A pack shipped in cargo-ebpf (`--lang NAME`).
    Builtin(String),
    /// A pack in a local directory (`--template DIR`).
    Dir(PathBuf),
    /// A pack at the root of a git repository (`--template URL[#REV]`, `--rev REV`).
    Git { url: String, rev: Option<String> },
}

impl PackSource {
    /// Reads `--template` and `--rev`: a URL (`scheme://…`, `git@host:…`) or any `--rev` means
    /// git, anything else is a directory. `URL#REV` names the revision inline.
    pub fn from_template(template: &str, rev: Option<&str>) -> PackSource {
        let (location, inline_rev) = match template.rsplit_once('#') {
            Some((loc, r)) if !r.is_empty() && looks_like_git(loc) => (loc, Some(r)),
            _ => (template, None),
        };
        let rev = rev.or(inline_rev).map(str::to_string);
        if looks_like_git(location) || rev.is_some() {
            PackSource::Git {
                url: location.to_string(),
                rev,
            }
        } else {
            PackSource::Dir(PathBuf::from(location))
        }
    }

    /// How error messages name the pack.
    pub fn label(&self) -> String {
        match self {
            PackSource::Builtin(name) => format!("template pack `{name}`"),
            PackSource::Dir(dir) => format!("template pack in `{}`", dir.display()),
            PackSource::Git { url, rev: None } => format!("template pack from `{url}`"),
            PackSource::Git { url, rev: Some(r) } => format!("template pack from `{url}` at `{r}`"),
        }
    }
}

fn looks_like_git(location: &str) -> bool {
    location.contains("://") || location.starts_with("git@")
}

/// Every file of an embedded pack.
pub(super) fn embedded_files(dir: &Dir) -> Files {
    let mut out = Vec::new();
    collect_embedded(dir, dir.path(), &mut out);
    out
}

fn collect_embedded(dir: &Dir, root: &Path, out: &mut Files) {
    for file in dir.files() {
        let rel = file
            .path()
            .strip_prefix(root)
            .expect("files lie inside their pack");
        out.push((rel.to_path_buf(), file.contents().to_vec()));
    }
    for sub in dir.dirs() {
        collect_embedded(sub, root, out);
    }
}

/// Every regular file under `root`, skipping `.git/`. A symbolic link is refused: it could
/// point anywhere on the machine, and its target would be copied into the project.
pub(super) fn dir_files(root: &Path, broken: &dyn Fn(&str) -> Error) -> Result<Files> {
    if !root.is_dir() {
        return Err(Error::input(format!(
            "template pack directory `{}` does not exist",
            root.display()
        ))
        .with_help("pass a directory that holds a pack.toml, or a git URL (https://…, file://…)"));
    }
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git");
    for entry in walk {
        let entry = entry.map_err(|e| broken(&format!("cannot read it: {e}")))?;
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("walkdir stays under its root");
        if entry.path_is_symlink() {
            return Err(broken(&format!(
                "`{}` is a symbolic link; packs hold regular files only",
                rel.display()
            )));
        }
        if entry.file_type().is_file() {
            let bytes =
                std::fs::read(entry.path()).map_err(|e| Error::io("read", entry.path(), e))?;
            out.push((rel.to_path_buf(), bytes));
        }
    }
    Ok(out)
}

/// Clones `url` into a temporary bare repository and reads the tree at `rev` (default: the
/// remote's HEAD). Over the network and without a revision the clone is shallow: only the
/// newest commit is fetched. libgit2's local transport cannot fetch shallowly, and a local
/// clone costs nothing anyway.
pub(super) fn git_files(
    url: &str,
    rev: Option<&str>,
    broken: &dyn Fn(&str) -> Error,
) -> Result<Files> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("create", &std::env::temp_dir(), e))?;
    let mut fetch = git2::FetchOptions::new();
    if rev.is_none() && !is_local(url) {
        fetch.depth(1);
    }
    let repo = git2::build::RepoBuilder::new()
        .bare(true)
        .fetch_options(fetch)
        .clone(url, tmp.path())
        .map_err(|e| clone_failed(url, &e))?;
    let tree = resolve_tree(&repo, rev).map_err(|e| {
        Error::input(format!(
            "`{url}` has no revision `{}`: {}",
            rev.unwrap_or("HEAD"),
            e.message()
        ))
        .with_help("name a branch, tag or commit that exists in the repository (--rev or URL#REV)")
    })?;
    tree_files(&repo, &tree, broken)
}

/// A `file://` URL or a plain path: what libgit2 clones with its local transport.
fn is_local(url: &str) -> bool {
    url.starts_with("file://") || !url.contains("://") && !url.starts_with("git@")
}

fn clone_failed(url: &str, e: &git2::Error) -> Error {
    Error::input(format!(
        "cannot clone template pack from `{url}`: {}",
        e.message()
    ))
    .with_help(
        "check the URL and that you can reach it (`git clone URL` should work); \
         for a pack on this machine pass its directory",
    )
}

/// The tree of `rev`, tried as given and as a remote-tracking branch (a bare clone keeps
/// branches under their own names, but be lenient with `origin/…`).
fn resolve_tree<'r>(
    repo: &'r git2::Repository,
    rev: Option<&str>,
) -> Result<git2::Tree<'r>, git2::Error> {
    let spec = rev.unwrap_or("HEAD");
    let object = repo.revparse_single(spec).or_else(|e| {
        repo.revparse_single(&format!("origin/{spec}"))
            .map_err(|_| e)
    })?;
    object.peel_to_tree()
}

fn tree_files(
    repo: &git2::Repository,
    tree: &git2::Tree,
    broken: &dyn Fn(&str) -> Error,
) -> Result<Files> {
    const SYMLINK: i32 = 0o120000;
    const SUBMODULE: i32 = 0o160000;
    let mut out = Vec::new();
    let mut problem = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        let rel = PathBuf::from(dir).join(entry.name().unwrap_or("?"));
        match entry.filemode() {
            SYMLINK | SUBMODULE => {
                problem = Some(format!(
                    "`{}` is a symbolic link or submodule; packs hold regular files only",
                    rel.display()
                ));
                git2::TreeWalkResult::Abort
            }
            _ => {
                if let Ok(blob) = entry.to_object(repo).and_then(|o| o.peel_to_blob()) {
                    out.push((rel, blob.content().to_vec()));
                }
                git2::TreeWalkResult::Ok
            }
        }
    })
    .ok(); // an abort is reported through `problem`
    match problem {
        Some(why) => Err(broken(&why)),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_argument_forms() {
        let dir = PackSource::from_template("../my-pack", None);
        assert_eq!(dir, PackSource::Dir("../my-pack".into()));
        let git = |url: &str, rev: Option<&str>| PackSource::Git {
            url: url.into(),
            rev: rev.map(Into::into),
        };
        assert_eq!(
            PackSource::from_template("https://example.com/p.git", None),
            git("https://example.com/p.git", None)
        );
        assert_eq!(
            PackSource::from_template("file:///tmp/p#v2", None),
            git("file:///tmp/p", Some("v2"))
        );
        // --rev wins over #REV, and makes a local path a git source.
        assert_eq!(
            PackSource::from_template("file:///tmp/p#v2", Some("main")),
            git("file:///tmp/p", Some("main"))
        );
        assert_eq!(
            PackSource::from_template("/tmp/repo", Some("main")),
            git("/tmp/repo", Some("main"))
        );
        // A `#` in a directory name is just part of the name.
        assert_eq!(
            PackSource::from_template("packs/c#1", None),
            PackSource::Dir("packs/c#1".into())
        );
    }
}
