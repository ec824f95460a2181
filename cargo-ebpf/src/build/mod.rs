//! `cargo ebpf build`: one entry point, [`build`], that picks the driver for the project's
//! kind (`[build] kind` in ebpf.toml):
//! - `eunomia` — kernel-only C, compiled by us with clang ([`eunomia`]);
//! - `c`, `go`, `rust` — a BPF object plus a userspace loader, built by the language's own
//!   tool (make, go, cargo) and then collected into `target/ebpf/<arch>/`.
//!
//! Every driver returns the same [`BuildOutput`], so `package`, `push` and `run` do not
//! care which language the project is in.
//!
//! [`build_all`] builds for several architectures (`--arch x86_64,arm64`) on the host;
//! [`container::build_all`] does the same inside a builder image (`--container`).
//! What the drivers share (finding tools, status lines, writing only what changed) is in
//! `util`.

mod anchor;
pub mod btfhub;
mod c;
pub mod container;
mod eunomia;
mod go;
mod rust;
mod util;

use std::path::PathBuf;

use ebpf_package::spec::{bpf_target_arch, host_arch, normalize_arch};
use ebpf_package::{Error, ErrorKind, Result};

use crate::manifest::{Kind, Project};

use eunomia::vmlinux_include_dir;
pub(crate) use eunomia::{param_docs, source_annotations};
use util::warning;

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Kernel BTF to generate vmlinux.h from; default /sys/kernel/btf/vmlinux.
    pub btf: Option<PathBuf>,
    /// Target architecture (Rust naming); default the host's.
    pub arch: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BuildOutput {
    /// The BPF object (`target/ebpf/<arch>/<name>.bpf.o`).
    pub object: PathBuf,
    pub arch: String,
    /// True when nothing changed and nothing was rebuilt.
    pub fresh: bool,
    /// The userspace loader (`target/ebpf/<arch>/<name>`), for kinds that have one; it is
    /// packaged under `bin/` and started by `run`.
    pub loader: Option<PathBuf>,
    /// The per-kernel BTF layer (`--btfhub-archive`), packaged as an extra layer.
    #[serde(default)]
    pub btfgen: Option<PathBuf>,
}

/// Builds the project for one architecture with the driver for its kind.
pub fn build(project: &Project, opts: &BuildOptions) -> Result<BuildOutput> {
    let arch = resolve_arch(opts.arch.as_deref())?;
    match project.kind() {
        Kind::Eunomia => eunomia::build(project, opts, arch),
        Kind::Rust => rust::build(project, opts, arch),
        Kind::C => c::build(project, opts, arch),
        Kind::Go => go::build(project, opts, arch),
    }
}

/// Builds for every architecture in `arches` (none = the host's), in order. A driver that
/// cannot build for a non-host architecture answers with an Environment error: that arch
/// is skipped with a warning and the others go on; if every arch is skipped, the build
/// fails with the reasons.
pub fn build_all(
    project: &Project,
    opts: &BuildOptions,
    arches: &[String],
) -> Result<Vec<BuildOutput>> {
    let arches = resolve_arches(arches)?;
    build_each(&arches, |arch| {
        let one = BuildOptions {
            arch: Some(arch.to_string()),
            ..opts.clone()
        };
        build(project, &one)
    })
}

/// Runs `build_one` for every arch. Among several, an Environment error for a non-host arch
/// (a driver that cannot cross-build its userspace) skips that arch with a warning; any other
/// error stops. A single requested arch is never skipped: its own error, with its help, is
/// the answer.
fn build_each(
    arches: &[&str],
    mut build_one: impl FnMut(&str) -> Result<BuildOutput>,
) -> Result<Vec<BuildOutput>> {
    let mut outputs = Vec::new();
    let mut skipped = Vec::new();
    for &arch in arches {
        match build_one(arch) {
            Ok(out) => outputs.push(out),
            Err(e)
                if arches.len() > 1 && e.kind == ErrorKind::Environment && arch != host_arch() =>
            {
                warning(&format!("skipped {arch}: {}", e.full_message()));
                skipped.push(format!("{arch}: {}", e.full_message()));
            }
            Err(e) => return Err(e),
        }
    }
    if outputs.is_empty() {
        return Err(Error::environment(format!(
            "no architecture could be built ({})",
            skipped.join("; ")
        ))
        .with_help(format!(
            "build for this machine's architecture ({}), or on a machine of the target's",
            host_arch()
        )));
    }
    Ok(outputs)
}

/// `["x86_64,arm64"]`-style lists → distinct Rust arch names, in order; empty → the host's.
pub fn resolve_arches(requested: &[String]) -> Result<Vec<&'static str>> {
    let names: Vec<&str> = requested
        .iter()
        .flat_map(|a| a.split(','))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(vec![resolve_arch(None)?]);
    }
    let mut arches = Vec::new();
    for name in names {
        let arch = resolve_arch(Some(name))?;
        if !arches.contains(&arch) {
            arches.push(arch);
        }
    }
    Ok(arches)
}

fn resolve_arch(arch: Option<&str>) -> Result<&'static str> {
    let Some(requested) = arch else {
        return normalize_arch(host_arch()).ok_or_else(|| {
            Error::environment(format!("cannot build BPF for this host ({})", host_arch()))
                .with_help("pass --arch x86_64 or --arch aarch64")
        });
    };
    normalize_arch(requested)
        .filter(|a| bpf_target_arch(a).is_some())
        .ok_or_else(|| {
            Error::usage(format!("unknown architecture `{requested}`"))
                .with_help("use one of x86_64 (amd64), aarch64 (arm64), riscv64, s390x, powerpc64")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(arch: &str) -> BuildOutput {
        BuildOutput {
            object: PathBuf::from(format!("target/ebpf/{arch}/x.bpf.o")),
            arch: arch.into(),
            fresh: false,
            loader: None,
            btfgen: None,
        }
    }

    fn other_arch() -> &'static str {
        if host_arch() == "x86_64" {
            "aarch64"
        } else {
            "x86_64"
        }
    }

    #[test]
    fn arch_lists_accept_both_namings_once_each() {
        let list = |s: &str| resolve_arches(&[s.to_string()]);
        assert_eq!(
            list("x86_64,arm64,amd64,aarch64").unwrap(),
            ["x86_64", "aarch64"]
        );
        assert_eq!(list("").unwrap(), [host_arch()]);
        assert_eq!(list("mips").unwrap_err().kind, ErrorKind::Usage);
    }

    #[test]
    fn a_non_host_arch_the_driver_cannot_build_is_skipped() {
        let other = other_arch();
        let built = build_each(&[host_arch(), other], |arch| {
            if arch == host_arch() {
                Ok(output(arch))
            } else {
                Err(Error::environment("no cross linker"))
            }
        })
        .unwrap();
        assert_eq!(built.len(), 1);
        assert_eq!(built[0].arch, host_arch());
    }

    #[test]
    fn skipping_every_arch_fails_with_the_reasons() {
        let other = other_arch();
        let err = build_each(&[other, "riscv64"], |_| {
            Err(Error::environment("no cross linker"))
        })
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Environment);
        assert_eq!(
            err.message,
            format!(
                "no architecture could be built ({other}: no cross linker; \
                 riscv64: no cross linker)"
            )
        );
    }

    #[test]
    fn a_single_arch_keeps_the_drivers_own_error_and_help() {
        let err = build_each(&[other_arch()], |_| {
            Err(Error::environment("no cross linker").with_help("apt install it"))
        })
        .unwrap_err();
        assert_eq!(err.message, "no cross linker");
        assert_eq!(err.help.as_deref(), Some("apt install it"));
    }

    #[test]
    fn host_failures_and_other_errors_are_not_skipped() {
        let err = build_each(&[host_arch()], |_| Err(Error::environment("no clang"))).unwrap_err();
        assert_eq!(err.message, "no clang");
        let err = build_each(&[other_arch(), host_arch()], |_| {
            Err(Error::build("clang failed"))
        })
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Build);
    }
}
