//! What `push --sign`/`publish --sign` attests about a build: the source (repository, commit,
//! dirty or not), the `ebpf.toml` digest, the builder (this host, or the builder image by
//! id) and the tool versions and command. The statement format lives in
//! [`ebpf_package::provenance`]; storing it on a registry in [`ebpf_runner::attestation`].
//!
//! Facts are gathered best-effort: a project outside git or a missing tool leaves a field
//! empty rather than failing a publish that already built.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use ebpf_package::digest;
use ebpf_package::provenance::BuildFacts;
use ebpf_package::{Error, Result};

use crate::manifest::{Project, FILE_NAME};

/// The facts of the build of `project` that just ran; `builder` is `host:NAME` or the
/// builder image's identity.
pub fn gather(project: &Project, builder: String) -> Result<BuildFacts> {
    let manifest = project.dir.join(FILE_NAME);
    let manifest_digest = match std::fs::read(&manifest) {
        Ok(bytes) => digest::sha256(&bytes),
        // An ecc/ecli folder has no ebpf.toml: its manifest was inferred.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("read", &manifest, e)),
    };
    let (repository, commit, dirty) = git_facts(&project.dir);
    Ok(BuildFacts {
        repository,
        commit,
        dirty,
        manifest_digest,
        builder,
        tools: tool_versions(),
        command: std::env::args().collect(),
    })
}

/// `host:HOSTNAME`: a build on this machine.
pub fn host_builder() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("host:{name}")
}

/// The repository's `origin` URL (else its path), HEAD's commit, and whether tracked or
/// untracked (not ignored) files differ from it.
fn git_facts(dir: &Path) -> (Option<String>, Option<String>, bool) {
    let Ok(repo) = git2::Repository::discover(dir) else {
        return (None, None, false);
    };
    let repository = repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().ok().map(str::to_string))
        .or_else(|| repo.workdir().map(|d| d.display().to_string()));
    let commit = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id().to_string());
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true).include_ignored(false);
    let dirty = repo
        .statuses(Some(&mut opts))
        .map(|s| !s.is_empty())
        .unwrap_or(true);
    (repository, commit, dirty)
}

/// clang, bpftool and libbpf versions (and cargo-ebpf's own), those that can be found.
fn tool_versions() -> BTreeMap<String, String> {
    let mut tools = BTreeMap::new();
    tools.insert("cargo-ebpf".into(), env!("CARGO_PKG_VERSION").into());
    if let Some(v) = first_line("clang", &["--version"]) {
        tools.insert("clang".into(), v);
    }
    if let Some(v) = first_line("bpftool", &["version"]) {
        tools.insert("bpftool".into(), v);
    }
    if let Some(v) = libbpf_version(Path::new("/usr/include/bpf/libbpf_version.h")) {
        tools.insert("libbpf".into(), v);
    }
    tools
}

fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim();
    (out.status.success() && !line.is_empty()).then(|| line.to_string())
}

/// `MAJOR.MINOR` from libbpf's version header (what the program was compiled against).
fn libbpf_version(header: &Path) -> Option<String> {
    let text = std::fs::read_to_string(header).ok()?;
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.trim().strip_prefix("#define")?.trim();
            rest.strip_prefix(name)?.trim().parse::<u32>().ok()
        })
    };
    Some(format!(
        "{}.{}",
        field("LIBBPF_MAJOR_VERSION")?,
        field("LIBBPF_MINOR_VERSION")?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libbpf_version_reads_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let header = dir.path().join("libbpf_version.h");
        std::fs::write(
            &header,
            "#ifndef X\n#define LIBBPF_MAJOR_VERSION 1\n#define LIBBPF_MINOR_VERSION 4\n#endif\n",
        )
        .unwrap();
        assert_eq!(libbpf_version(&header).as_deref(), Some("1.4"));
        std::fs::write(&header, "nothing here").unwrap();
        assert_eq!(libbpf_version(&header), None);
    }

    #[test]
    fn git_facts_see_commit_and_dirt() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(git_facts(dir.path()), (None, None, false));
        let repo = git2::Repository::init(dir.path()).unwrap();
        repo.remote("origin", "https://example.com/p.git").unwrap();
        std::fs::write(dir.path().join("ebpf.toml"), "x").unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("ebpf.toml")).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let id = repo
            .commit(Some("HEAD"), &sig, &sig, "c", &tree, &[])
            .unwrap();
        let (url, commit, dirty) = git_facts(dir.path());
        assert_eq!(url.as_deref(), Some("https://example.com/p.git"));
        assert_eq!(commit, Some(id.to_string()));
        assert!(!dirty);
        std::fs::write(dir.path().join("ebpf.toml"), "changed").unwrap();
        assert!(git_facts(dir.path()).2);
    }
}
