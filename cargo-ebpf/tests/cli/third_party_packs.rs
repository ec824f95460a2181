//! `cargo ebpf new NAME --template DIR|GIT-URL`: a pack of one's own, from a directory or a
//! git repository the test creates (file:// URLs, no network). A broken pack is an error with
//! help, and nothing is written.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{entries, identity, list_files};
use crate::common::{needs, Need};
use cargo_ebpf::scaffold::{new_project_from, PackSource};
use cargo_ebpf::{Error, ErrorKind};

const PACK_TOML: &str = r#"
name = "mine"
description = "A pack of my own"
language = "c"
project_description = "Made from a third-party pack"

[ci]
apt = ["clang", "libbpf-dev", "my-extra-tool"]
setup = ["echo setting up: done"]
test = ["true"]
"#;

/// A small valid pack in `dir`.
fn write_pack(dir: &Path) {
    write(dir, "pack.toml", PACK_TOML);
    write(dir, "ebpf.toml.hbs", "[package]\nname = \"{{name}}\"\nversion = \"{{version}}\"\n\n[build]\nkind = \"eunomia\"\n");
    write(
        dir,
        "src/{{name}}.bpf.c.hbs",
        "/* {{description}} ({{pack}}) */\n",
    );
    write(dir, "notes.txt", "copied as is: {{name}}\n");
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn new_from(source: &PackSource, out: &Path) -> Result<PathBuf, Error> {
    new_project_from("probe", Some(&out.join("probe")), source, &identity())
}

fn git(repo: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(repo)
        .status()
        .expect("git is needed for these tests: apt-get install git");
    assert!(status.success(), "git {args:?}");
}

/// A git repository holding the pack, with two commits: tag `v1` has the first description,
/// `main` a second one.
fn pack_repo(dir: &Path) -> String {
    write_pack(dir);
    git(dir, &["init", "-q"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "v1"]);
    git(dir, &["tag", "v1"]);
    let toml = PACK_TOML.replace("Made from a third-party pack", "Second version");
    write(dir, "pack.toml", &toml);
    git(dir, &["commit", "-qam", "v2"]);
    format!("file://{}", dir.display())
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap()
}

#[test]
fn a_pack_from_a_directory_renders_with_the_shared_ci_files() {
    let tmp = tempfile::tempdir().unwrap();
    let pack = tmp.path().join("pack");
    write_pack(&pack);
    let out = tmp.path().join("out");
    let dir = new_from(&PackSource::Dir(pack), &out).unwrap();
    let files: Vec<String> = list_files(&dir)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        files,
        [
            ".github/workflows/ebpf.yml",
            ".workflow/ebpf.yml",
            "ebpf.toml",
            "notes.txt",
            "src/probe.bpf.c"
        ]
    );
    assert_eq!(
        read(&dir, "src/probe.bpf.c"),
        "/* Made from a third-party pack (mine) */\n"
    );
    assert_eq!(read(&dir, "notes.txt"), "copied as is: {{name}}\n");
    let workflow = read(&dir, ".github/workflows/ebpf.yml");
    assert!(
        workflow.contains("libssl-dev clang libbpf-dev my-extra-tool\n"),
        "{workflow}"
    );
    assert!(
        workflow.contains("          echo setting up: done\n"),
        "{workflow}"
    );
    let gitee = read(&dir, ".workflow/ebpf.yml");
    // Quoted, so the `: ` does not turn the command into a mapping.
    assert!(gitee.contains("- \"echo setting up: done\"\n"), "{gitee}");
}

#[test]
fn a_pack_file_replaces_the_shared_one_at_the_same_path() {
    let tmp = tempfile::tempdir().unwrap();
    let pack = tmp.path().join("pack");
    write_pack(&pack);
    write(&pack, ".github/workflows/ebpf.yml", "# my own workflow\n");
    let dir = new_from(&PackSource::Dir(pack), tmp.path()).unwrap();
    assert_eq!(
        read(&dir, ".github/workflows/ebpf.yml"),
        "# my own workflow\n"
    );
    assert!(dir.join(".workflow/ebpf.yml").is_file());
}

#[test]
fn a_pack_from_a_git_url_at_head_a_tag_and_a_branch() {
    if !needs(&[Need::Tool("git", "git")]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let url = pack_repo(&tmp.path().join("repo"));
    let cases = [
        (PackSource::from_template(&url, None), "Second version"),
        (
            PackSource::from_template(&format!("{url}#v1"), None),
            "Made from a third-party pack",
        ),
        (
            PackSource::from_template(&url, Some("main")),
            "Second version",
        ),
        (
            PackSource::from_template(&url, Some("v1")),
            "Made from a third-party pack",
        ),
    ];
    for (i, (source, description)) in cases.iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        let dir = new_from(source, &out).unwrap_or_else(|e| panic!("{source:?}: {e:?}"));
        let c = read(&dir, "src/probe.bpf.c");
        assert_eq!(c, format!("/* {description} (mine) */\n"), "{source:?}");
        // The clone was read into memory: no .git and no temp dir in the project.
        assert_eq!(entries(&out), ["probe"]);
        assert!(!dir.join(".git").exists());
    }
}

#[test]
fn the_cli_takes_template_and_rev() {
    if !needs(&[Need::Tool("git", "git")]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let url = pack_repo(&tmp.path().join("repo"));
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-ebpf"))
        .args(["new", "probe", "--template", &url, "--rev", "v1"])
        .current_dir(tmp.path())
        .env("CARGO_EBPF_AUTHOR", "T <t@example.com>")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(read(&tmp.path().join("probe"), "src/probe.bpf.c").contains("third-party"));

    // A bad pack through the CLI: exit code 3, the reason and the help on stderr.
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-ebpf"))
        .args(["new", "other", "--template", "no-such-dir"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-dir") && stderr.contains("git URL"),
        "{stderr}"
    );
    assert!(!tmp.path().join("other").exists());
}

/// Asserts a clear input error whose message and help mention the given words, and that
/// nothing was written to `out`.
fn assert_refused(result: Result<PathBuf, Error>, out: &Path, message: &[&str], help: &str) {
    let err = result.expect_err("a broken pack must be refused");
    assert_eq!(err.kind, ErrorKind::Input, "{err:?}");
    for word in message {
        assert!(
            err.message.contains(word),
            "`{word}` not in: {}",
            err.message
        );
    }
    let h = err.help.clone().unwrap_or_default();
    assert!(h.contains(help), "help `{h}` lacks `{help}`");
    assert!(
        !out.exists() || entries(out).is_empty(),
        "something was written: {:?}",
        entries(out)
    );
}

#[test]
fn broken_packs_are_refused_and_nothing_is_written() {
    type Breakage = (&'static str, fn(&Path), &'static [&'static str]);
    let cases: [Breakage; 10] = [
        (
            "no pack.toml",
            |p| std::fs::remove_file(p.join("pack.toml")).unwrap(),
            &["no pack.toml"],
        ),
        (
            "bad TOML",
            |p| write(p, "pack.toml", "name = \"x\ndescription"),
            &["bad pack.toml"],
        ),
        (
            "unknown key",
            |p| {
                write(
                    p,
                    "pack.toml",
                    &format!("{PACK_TOML}\ncolour = \"red\"\n")
                        .replace("[ci]\n", "colour = 1\n[ci]\n"),
                )
            },
            &["bad pack.toml", "colour"],
        ),
        (
            "syntax error",
            |p| write(p, "README.md.hbs", "{{#if name}}unclosed\n"),
            &["README.md.hbs"],
        ),
        (
            "unknown variable",
            |p| write(p, "README.md.hbs", "{{nosuchvar}}\n"),
            &["README.md.hbs", "nosuchvar"],
        ),
        (
            "unknown variable in a path",
            |p| write(p, "src/{{nope}}.c", ""),
            &["{{nope}}.c"],
        ),
        (
            "`..` after the suffix",
            |p| write(p, "src/...hbs", "x"),
            &["...hbs", "not a path inside the project"],
        ),
        (
            "`.` after the suffix",
            |p| write(p, "src/..hbs", "x"),
            &["..hbs", "not a path inside the project"],
        ),
        (
            "`..` from a variable",
            |p| write(p, "{{description}}.hbs", "x"),
            &["../escape", "not a path inside the project"],
        ),
        (
            "a symlink",
            |p| std::os::unix::fs::symlink("/etc/hostname", p.join("host")).unwrap(),
            &["host", "symbolic link"],
        ),
    ];
    for (what, breakage, words) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let pack = tmp.path().join("pack");
        write_pack(&pack);
        if what == "`..` from a variable" {
            let toml = PACK_TOML.replace("Made from a third-party pack", "../escape");
            write(&pack, "pack.toml", &toml);
        }
        breakage(&pack);
        let out = tmp.path().join("out");
        let result = new_from(&PackSource::Dir(pack.clone()), &out);
        assert_refused(result, &out, words, "docs/templates.md");
        // Nothing beside the pack either: no escaped file, no staging directory.
        assert_eq!(entries(tmp.path()), ["pack"], "{what}");
    }
}

#[test]
fn a_broken_pack_in_git_is_refused_too() {
    if !needs(&[Need::Tool("git", "git")]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    write_pack(&repo);
    write(&repo, "README.md.hbs", "{{nosuchvar}}\n");
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "broken"]);
    let out = tmp.path().join("out");
    let source = PackSource::from_template(&format!("file://{}", repo.display()), None);
    assert_refused(
        new_from(&source, &out),
        &out,
        &["from `file://", "nosuchvar"],
        "docs/templates.md",
    );
}

#[test]
fn clone_failures_and_missing_revisions_are_refused() {
    if !needs(&[Need::Tool("git", "git")]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let missing = format!("file://{}/nothing-here", tmp.path().display());
    let source = PackSource::from_template(&missing, None);
    assert_refused(
        new_from(&source, &out),
        &out,
        &["cannot clone", "nothing-here"],
        "git clone URL",
    );

    let url = pack_repo(&tmp.path().join("repo"));
    let source = PackSource::from_template(&url, Some("no-such-tag"));
    assert_refused(
        new_from(&source, &out),
        &out,
        &["no-such-tag"],
        "branch, tag or commit",
    );

    let source = PackSource::Dir(tmp.path().join("nowhere"));
    assert_refused(
        new_from(&source, &out),
        &out,
        &["does not exist"],
        "pack.toml",
    );
}

/// `git daemon` on 127.0.0.1, killed on drop: a real network transport, where the clone
/// without a revision is shallow (the local transport cannot be).
struct GitDaemon(std::process::Child);

impl GitDaemon {
    fn start(base: &Path) -> (GitDaemon, u16) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // git-daemon itself, not `git daemon`: killing the `git` wrapper would orphan it.
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git is needed for these tests: apt-get install git");
        let exec_path = String::from_utf8(exec_path.stdout).unwrap();
        let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("git daemon is needed: apt-get install git");
        let daemon = GitDaemon(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (daemon, port);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("git daemon did not start listening on port {port}");
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_pack_over_the_git_protocol_shallow_and_at_a_tag() {
    if !needs(&[Need::Tool("git", "git")]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repos = tmp.path().join("repos");
    pack_repo(&repos.join("pack"));
    let (_daemon, port) = GitDaemon::start(&repos);
    let url = format!("git://127.0.0.1:{port}/pack");
    for (i, (template, description)) in [
        (url.clone(), "Second version"),
        (format!("{url}#v1"), "Made from a third-party pack"),
    ]
    .iter()
    .enumerate()
    {
        let out = tmp.path().join(format!("out{i}"));
        let source = PackSource::from_template(template, None);
        let dir = new_from(&source, &out).unwrap_or_else(|e| panic!("{template}: {e:?}"));
        assert_eq!(
            read(&dir, "src/probe.bpf.c"),
            format!("/* {description} (mine) */\n")
        );
    }
}
