//! Executable packages: the layer is unpacked into a private directory and the packaged
//! userspace loader runs there with the user's arguments. The runner stays in front so
//! SIGINT/SIGTERM reach the loader and the directory is removed afterwards.
//! The loader path and working directory a package declares are confined to that
//! directory: a package must not start a host binary or work in a host directory.

use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ebpf_package::spec::{self, PackageMeta, Runtime};
use ebpf_package::{Error, Package, Result};

use super::signals::StopSignals;
use super::RunOptions;

/// Runs the loader of an executable package; returns its exit code (128+N when killed by
/// signal N, as shells report it).
/// `--duration` stops it like SIGTERM does.
pub fn run_executable(pkg: &Package, meta: &PackageMeta, opts: &RunOptions) -> Result<i32> {
    let Runtime::Executable {
        path,
        args,
        env,
        workdir,
    } = &meta.runtime
    else {
        return Err(Error::input("this package has no userspace loader"));
    };
    let dir = tempfile::Builder::new()
        .prefix("cargo-ebpf-run-")
        .tempdir()
        .map_err(|e| Error::io("create a directory in", &std::env::temp_dir(), e))?;
    pkg.extract_to(dir.path())?;
    let loader = confined(dir.path(), path, "loader")?;
    let workdir = match workdir {
        Some(w) => Some(confined(dir.path(), w, "working directory")?),
        None => None,
    };
    if !loader.is_file() {
        return Err(Error::input(format!(
            "the package declares the loader {path} but its layer does not hold it"
        ))
        .with_help("rebuild the package with `cargo ebpf package`"));
    }
    let mut command = Command::new(&loader);
    command
        .args(args)
        .args(&opts.args)
        .envs(env)
        .env(spec::ENV_OBJECT, dir.path().join(&meta.object))
        .env(spec::ENV_PACKAGE_DIR, dir.path());
    if let Some(workdir) = workdir {
        command.current_dir(workdir);
    }
    let child = command.spawn().map_err(|e| {
        Error::environment(format!("cannot start the loader {path}"))
            .with_source(e)
            .with_help(
                "the loader may be built for another architecture or libc; rebuild it with \
             `cargo ebpf build` on a matching machine",
            )
    })?;
    supervise(child, &loader, opts.duration)
}

/// `rel` inside the unpacked package `dir`: a relative path without `..`, which still
/// resolves inside `dir` once links are followed. Returns the resolved path (a missing
/// one is returned unresolved; the caller reports it).
fn confined(dir: &Path, rel: &str, what: &str) -> Result<PathBuf> {
    let outside = || {
        Error::input(format!(
            "the package's {what} {rel:?} is not a path inside the package"
        ))
        .with_help("refuse this package: a package may only run and work inside its own files")
    };
    let plain = !rel.is_empty()
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !plain {
        return Err(outside());
    }
    let joined = dir.join(rel);
    let (Ok(root), Ok(resolved)) = (dir.canonicalize(), joined.canonicalize()) else {
        return Ok(joined);
    };
    if !resolved.starts_with(&root) {
        return Err(outside());
    }
    Ok(resolved)
}

/// Waits for the loader, forwarding SIGINT/SIGTERM so it can detach cleanly.
fn supervise(mut child: Child, loader: &Path, duration: Option<Duration>) -> Result<i32> {
    let signals = StopSignals::install();
    let deadline = duration.map(|d| Instant::now() + d);
    let mut forwarded = false;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("wait for", loader, e))?
        {
            // Killed by the SIGTERM we forwarded: the stop the user asked for, not a failure.
            if forwarded && status.signal() == Some(libc::SIGTERM) {
                return Ok(0);
            }
            return Ok(status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
        }
        let expired = deadline.is_some_and(|d| Instant::now() >= d);
        if (signals.requested() || expired) && !forwarded {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            forwarded = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_and_workdir_stay_inside_the_package() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/loader"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/bin", dir.path().join("host-bin")).unwrap();
        for (rel, what) in [
            ("/bin/echo", "loader"),
            ("../../../../bin/echo", "loader"),
            ("bin/../../x", "loader"),
            ("host-bin/echo", "loader"),
            ("/etc", "working directory"),
            ("", "working directory"),
        ] {
            let err = confined(dir.path(), rel, what).unwrap_err();
            assert_eq!(err.kind, ebpf_package::ErrorKind::Input, "{rel}");
            assert!(err.message.contains(what), "{}", err.message);
        }
        let loader = confined(dir.path(), "bin/loader", "loader").unwrap();
        assert!(loader.starts_with(dir.path().canonicalize().unwrap()));
        confined(dir.path(), "./bin", "working directory").unwrap();
    }
}
