//! The `go` build: cilium/ebpf + bpf2go projects (the `go` template pack).
//!
//! 1. vmlinux.h from the kernel BTF (the shared cache) is copied to `bpf/vmlinux.h`, where
//!    the pack's first `go:generate` line would otherwise make it with bpftool;
//! 2. `go generate` runs bpf2go, which compiles the BPF C and writes `<stem>_bpfel.o`/`.go`
//!    (and `_bpfeb`) next to main.go;
//! 3. `go build` (CGO_ENABLED=0, GOARCH from `--arch`) links the loader with the object
//!    embedded;
//! 4. the object for the target's byte order and the loader are copied to
//!    `target/ebpf/<arch>/<name>.bpf.o` and `target/ebpf/<arch>/<name>`.
//!
//! go's build cache decides whether the loader is relinked: it builds into
//! `target/ebpf/<arch>/go/<name>`, which go leaves alone when it is up to date. Both outputs
//! are copied only when their content changed, so an unchanged build touches nothing in
//! `target/ebpf/<arch>/` and says `Fresh`, as the c and rust drivers do.
//!
//! Go modules or GOPATH: see [`Mode`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ebpf_package::spec::oci_arch;
use ebpf_package::{Error, Result};

use crate::manifest::Project;

use super::util::{
    install, install_help, label, report_built, require_program, status, warn_if_host_btf, warning,
    write_if_changed,
};
use super::{vmlinux_include_dir, BuildOptions, BuildOutput};

/// Forces the mode: `modules` or `gopath`.
pub const MODE_ENV: &str = "CARGO_EBPF_GO_MODE";

/// Where Debian's golang-*-dev packages install Go sources (GOPATH layout).
const SYSTEM_GOPATH: &str = "/usr/share/gocode";

pub(super) fn build(project: &Project, opts: &BuildOptions, arch: &str) -> Result<BuildOutput> {
    let started = Instant::now();
    let go = require_program("go", install_help("golang-go", "golang"))?;
    let endian = bpf2go_endian(arch);
    warn_if_host_btf(arch, opts);
    let include = vmlinux_include_dir(project, opts, arch)?;
    provide_vmlinux(project, &include)?;

    status(
        "Compiling",
        &format!("{} ({})", label(project), project.dir.display()),
    );
    let mode = Mode::detect(&go, project)?;
    let workspace = Workspace::enter(&mode, project)?;

    let arch_dir = project.target_dir().join(arch);
    let linked = arch_dir.join("go").join(project.name());
    generate_and_build(&go, &workspace, project, &linked, arch)?;

    let loader = arch_dir.join(project.name());
    let loader_written = install(&linked, &loader, 0o755)?;
    let object = arch_dir.join(format!("{}.bpf.o", project.name()));
    let generated = find_generated_object(&project.dir, endian)?;
    let bytes = std::fs::read(&generated).map_err(|e| Error::io("read", &generated, e))?;
    let object_written = write_if_changed(&object, &bytes)?;

    let fresh = !loader_written && !object_written;
    report_built(project, started, fresh, &[&loader, &object]);
    Ok(BuildOutput {
        object,
        arch: arch.to_string(),
        fresh,
        loader: Some(loader),
        btfgen: None,
    })
}

/// `go generate` (bpf2go), then `go build` of a static loader for `arch` into `loader`.
fn generate_and_build(
    go: &Path,
    workspace: &Workspace,
    project: &Project,
    loader: &Path,
    arch: &str,
) -> Result<()> {
    // go generate runs bpf2go with `go run`, so it must build for the host: only the
    // final `go build` gets the target's GOARCH.
    let generate = workspace.go(go).arg("generate").output();
    check(generate, "go generate (bpf2go)", go).map_err(|e| workspace.unalias(e, project))?;

    let dir = loader
        .parent()
        .expect("the loader is in target/ebpf/<arch>");
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    let compiled = workspace
        .go(go)
        .args(["build", "-trimpath", "-o"])
        .arg(loader)
        .arg(".")
        .env("CGO_ENABLED", "0")
        .env("GOOS", "linux")
        .env("GOARCH", oci_arch(arch))
        .output();
    check(compiled, "go build", go).map_err(|e| workspace.unalias(e, project))
}

/// bpf2go's name for the target's byte order (`-target bpfel,bpfeb` builds both; the Go
/// build embeds the one matching GOARCH, and we package that same one).
fn bpf2go_endian(arch: &str) -> &'static str {
    match arch {
        "s390x" => "bpfeb",
        _ => "bpfel",
    }
}

/// Copies vmlinux.h into `bpf/` (the pack's source directory) when it differs, so bpf2go
/// compiles against the BTF `--btf` chose. Projects without `bpf/` make their own.
fn provide_vmlinux(project: &Project, include: &Path) -> Result<()> {
    let bpf_dir = project.dir.join("bpf");
    if !bpf_dir.is_dir() {
        return Ok(());
    }
    let source = include.join("vmlinux.h");
    let header = std::fs::read(&source).map_err(|e| Error::io("read", &source, e))?;
    write_if_changed(&bpf_dir.join("vmlinux.h"), &header)?;
    Ok(())
}

/// The one `*_<endian>.o` bpf2go wrote in the project directory.
fn find_generated_object(dir: &Path, endian: &str) -> Result<PathBuf> {
    let suffix = format!("_{endian}.o");
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(&suffix))
        .collect();
    found.sort();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::build(format!(
            "go generate wrote no BPF object (*{suffix}) in {}",
            dir.display()
        ))
        .with_help(
            "main.go needs a `//go:generate go run github.com/cilium/ebpf/cmd/bpf2go ...` line \
             whose -target includes bpfel and bpfeb (the default)",
        )),
        several => Err(Error::build(format!(
            "several BPF objects (*{suffix}) in {}: {}",
            dir.display(),
            several
                .iter()
                .map(|p| p.file_name().unwrap_or_default().to_string_lossy())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_help("a package holds one object: keep one bpf2go line and delete stale outputs")),
    }
}

/// Turns a finished tool run into an error carrying its output when it failed.
fn check(output: std::io::Result<std::process::Output>, what: &str, go: &Path) -> Result<()> {
    let out = output.map_err(|e| Error::io("run", go, e))?;
    if out.status.success() {
        return Ok(());
    }
    let mut details = String::from_utf8_lossy(&out.stderr).into_owned();
    details.push_str(&String::from_utf8_lossy(&out.stdout));
    Err(Error::build(format!("{what} failed ({})", out.status))
        .with_help("fix the errors go reported (below)")
        .with_details(details.trim_end().to_string()))
}

// ---- modules or GOPATH -------------------------------------------------------------------

/// How `go` finds cilium/ebpf.
///
/// The rule: `CARGO_EBPF_GO_MODE=modules|gopath` decides when set. Otherwise modules are
/// used when `go mod tidy` succeeds, i.e. the module proxy is reachable or the module cache
/// already holds everything go.mod needs (that is what real users have). When it fails
/// (offline, no proxy, a Go too old for go.mod) and Debian's golang-github-cilium-ebpf-dev is
/// installed, the build falls back to GOPATH mode against /usr/share/gocode, with a warning
/// that shows why modules did not work.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Modules,
    Gopath,
}

impl Mode {
    fn detect(go: &Path, project: &Project) -> Result<Mode> {
        match std::env::var(MODE_ENV).ok().as_deref().map(str::trim) {
            Some("modules") => return tidy(go, project).map(|()| Mode::Modules),
            Some("gopath") => return gopath_available().map(|()| Mode::Gopath),
            Some("") | None => {}
            Some(other) => {
                return Err(
                    Error::usage(format!("{MODE_ENV}={other} is not a Go build mode")).with_help(
                        format!("set {MODE_ENV} to `modules` or `gopath`, or unset it"),
                    ),
                )
            }
        }
        if !project.dir.join("go.mod").is_file() {
            return gopath_available().map(|()| Mode::Gopath);
        }
        let Err(modules_error) = tidy(go, project) else {
            return Ok(Mode::Modules);
        };
        if gopath_available().is_err() {
            return Err(modules_error);
        }
        let reason = modules_error.details.as_deref().unwrap_or_default();
        let last = reason.lines().rfind(|l| !l.trim().is_empty());
        warning(&format!(
            "Go modules are not usable here ({}); building in GOPATH mode against \
             {SYSTEM_GOPATH} (set {MODE_ENV}=modules to see the full error)",
            last.unwrap_or("go mod tidy failed").trim()
        ));
        Ok(Mode::Gopath)
    }
}

/// `go mod tidy`: resolves go.mod's requirements and writes go.sum, as cargo writes
/// Cargo.lock.
fn tidy(go: &Path, project: &Project) -> Result<()> {
    let out = Command::new(go)
        .args(["mod", "tidy"])
        .current_dir(&project.dir)
        .env("GO111MODULE", "on")
        .output();
    check(out, "go mod tidy", go).map_err(|e| {
        e.with_help(format!(
            "Go modules need the module proxy (GOPROXY) or a filled module cache; offline, \
             install Debian's golang-github-cilium-ebpf-dev and set {MODE_ENV}=gopath"
        ))
    })
}

fn gopath_available() -> Result<()> {
    let ebpf = Path::new(SYSTEM_GOPATH).join("src/github.com/cilium/ebpf");
    if ebpf.join("cmd/bpf2go").is_dir() {
        return Ok(());
    }
    Err(
        Error::environment(format!("cilium/ebpf is not installed in {SYSTEM_GOPATH}")).with_help(
            "building without Go modules needs `sudo apt install golang-github-cilium-ebpf-dev`; \
                 with a module proxy, add a go.mod instead",
        ),
    )
}

/// Where `go` runs. In GOPATH mode that is the project seen through a symlink at
/// `<private GOPATH>/src/<module path>`, since GOPATH mode only builds packages under a
/// GOPATH; the private directory goes away with the workspace.
struct Workspace {
    dir: PathBuf,
    gopath: Option<tempfile::TempDir>,
}

impl Workspace {
    fn enter(mode: &Mode, project: &Project) -> Result<Workspace> {
        if *mode == Mode::Modules {
            return Ok(Workspace {
                dir: project.dir.clone(),
                gopath: None,
            });
        }
        let root = tempfile::Builder::new()
            .prefix("cargo-ebpf-gopath-")
            .tempdir()
            .map_err(|e| Error::io("create a directory in", &std::env::temp_dir(), e))?;
        let link = root.path().join("src").join(module_path(project));
        let parent = link.parent().expect("the link is under src/");
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
        std::os::unix::fs::symlink(&project.dir, &link)
            .map_err(|e| Error::io("create a symlink at", &link, e))?;
        Ok(Workspace {
            dir: link,
            gopath: Some(root),
        })
    }

    /// Error details name files by the GOPATH symlink; show the project's own paths.
    fn unalias(&self, mut err: Error, project: &Project) -> Error {
        if self.gopath.is_some() {
            let alias = self.dir.display().to_string();
            let real = project.dir.display().to_string();
            err.details = err.details.map(|d| d.replace(&alias, &real));
        }
        err
    }

    /// `go` in the workspace, with the mode's environment.
    fn go(&self, go: &Path) -> Command {
        let mut cmd = Command::new(go);
        // PWD makes go see the symlinked path (its position in GOPATH), not the target.
        cmd.current_dir(&self.dir)
            .env("PWD", &self.dir)
            .env_remove("GOARCH")
            .env_remove("GOOS");
        match &self.gopath {
            None => {
                cmd.env("GO111MODULE", "on");
            }
            Some(root) => {
                let gopath = std::env::join_paths([root.path(), Path::new(SYSTEM_GOPATH)])
                    .expect("no ':' in these paths");
                // Module flags (-mod=...) are errors in GOPATH mode.
                cmd.env("GO111MODULE", "off")
                    .env("GOPATH", gopath)
                    .env("GOFLAGS", "");
            }
        }
        cmd
    }
}

/// go.mod's `module` line, else the package name.
fn module_path(project: &Project) -> String {
    std::fs::read_to_string(project.dir.join("go.mod"))
        .ok()
        .and_then(|text| {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("module "))
                .map(|rest| rest.trim().trim_matches('"').to_string())
                .find(|m| !m.is_empty() && !m.starts_with('/') && !m.contains(".."))
        })
        .unwrap_or_else(|| project.name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_follows_the_architecture() {
        assert_eq!(bpf2go_endian("x86_64"), "bpfel");
        assert_eq!(bpf2go_endian("aarch64"), "bpfel");
        assert_eq!(bpf2go_endian("s390x"), "bpfeb");
    }
}
