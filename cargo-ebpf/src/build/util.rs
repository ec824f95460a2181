//! What every build driver shares: finding the tools it runs (and saying which package
//! installs a missing one), cargo-style status lines, and writing outputs only when they
//! changed, so that a fresh build touches nothing.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ebpf_package::spec::host_arch;
use ebpf_package::{Error, Result};

use crate::manifest::Project;

use super::BuildOptions;

pub(crate) use ebpf_runner::which::find_program;

/// `name` on PATH (or in the sbin directories); else an environment error with `help`.
pub(crate) fn require_program(name: &str, help: impl Into<String>) -> Result<PathBuf> {
    find_program(name)
        .ok_or_else(|| Error::environment(format!("{name} was not found on PATH")).with_help(help))
}

/// How to install a tool packaged as `debian` on Debian/Ubuntu and `fedora` on Fedora.
pub(crate) fn install_help(debian: &str, fedora: &str) -> String {
    format!(
        "install it: Debian/Ubuntu `sudo apt install {debian}`, Fedora `sudo dnf install {fedora}`"
    )
}

/// The kernel BTF decides vmlinux.h; building for another arch with this machine's BTF
/// works for most programs, but the user should know.
pub(crate) fn warn_if_host_btf(arch: &str, opts: &BuildOptions) {
    if arch != host_arch() && opts.btf.is_none() {
        warning(&format!(
            "building for {arch} with the host's kernel BTF; pass --btf FILE for the target's"
        ));
    }
}

/// `NAME vVERSION`, as status lines name the project.
pub(crate) fn label(project: &Project) -> String {
    let inferred = if project.inferred {
        " (no ebpf.toml: inferred from the sources)"
    } else {
        ""
    };
    format!("{} v{}{inferred}", project.name(), project.version())
}

/// The driver's last line: `Fresh NAME vVERSION` when nothing was rebuilt, else
/// `Finished OUTPUT and OUTPUT in N.NNs`.
pub(crate) fn report_built(project: &Project, started: Instant, fresh: bool, outputs: &[&Path]) {
    if fresh {
        status("Fresh", &label(project));
        return;
    }
    let outputs: Vec<String> = outputs
        .iter()
        .map(|p| relative(p, &project.dir).display().to_string())
        .collect();
    status(
        "Finished",
        &format!(
            "{} in {:.2}s",
            outputs.join(" and "),
            started.elapsed().as_secs_f64()
        ),
    );
}

/// Writes `content` to `dest` unless it already holds exactly that; true when it wrote.
pub(crate) fn write_if_changed(dest: &Path, content: &[u8]) -> Result<bool> {
    if std::fs::read(dest).is_ok_and(|current| current == content) {
        return Ok(false);
    }
    write_atomic(dest, content)?;
    Ok(true)
}

/// Copies `src` to `dest` with `mode` unless `dest` already holds the same bytes; true
/// when it wrote.
pub(crate) fn install(src: &Path, dest: &Path, mode: u32) -> Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let content = std::fs::read(src).map_err(|e| Error::io("read", src, e))?;
    if !write_if_changed(dest, &content)? {
        return Ok(false);
    }
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("write", dest, e))?;
    Ok(true)
}

/// Writes through a temporary file in the same directory and renames it into place, so
/// readers (and concurrent builds sharing the cache) never see half a file.
pub(crate) fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io("create a file in", dir, e))?;
    tmp.write_all(content)
        .map_err(|e| Error::io("write", tmp.path(), e))?;
    // NamedTempFile is created 0600; the result is an ordinary file.
    let perms = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    std::fs::set_permissions(tmp.path(), perms).map_err(|e| Error::io("write", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("write", path, e.error))?;
    Ok(())
}

pub(crate) fn relative<'a>(path: &'a Path, base: &Path) -> &'a Path {
    path.strip_prefix(base).unwrap_or(path)
}

/// A cargo-style status line on stderr: a right-aligned verb, green and bold on a terminal.
pub(crate) fn status(verb: &str, message: &str) {
    let line = if use_color() {
        format!("\x1b[1;32m{verb:>12}\x1b[0m {message}\n")
    } else {
        format!("{verb:>12} {message}\n")
    };
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `warning: …` on stderr, yellow and bold on a terminal, as cargo does.
pub(crate) fn warning(message: &str) {
    let line = if use_color() {
        format!("\x1b[1;33mwarning\x1b[0m: {message}\n")
    } else {
        format!("warning: {message}\n")
    };
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn use_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `a.bpf.c` → `a`; other names lose only their extension.
pub(crate) fn stem(source: &Path) -> String {
    let file = source.file_name().unwrap_or_default().to_string_lossy();
    match file.strip_suffix(".bpf.c") {
        Some(s) => s.to_string(),
        None => source
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_content_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/out.o");
        assert!(write_if_changed(&dest, b"one").unwrap());
        assert!(!write_if_changed(&dest, b"one").unwrap());
        assert!(write_if_changed(&dest, b"two").unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
    }

    #[test]
    fn a_missing_tool_names_its_package() {
        let err =
            require_program("no-such-tool-xyz", install_help("xyz", "xyz-tools")).unwrap_err();
        assert_eq!(err.kind, ebpf_package::ErrorKind::Environment);
        assert_eq!(err.message, "no-such-tool-xyz was not found on PATH");
        assert!(err.help.unwrap().contains("sudo dnf install xyz-tools"));
    }
}
