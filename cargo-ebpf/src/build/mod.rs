//! `cargo ebpf build`: one entry point, [`build`], that picks the driver for the project's
//! kind (`[build] kind` in ebpf.toml):
//! - `eunomia` — kernel-only C, compiled by us with clang ([`kernel`]);
//! - `c`, `go`, `rust` — a BPF object plus a userspace loader, built by the language's own
//!   tool (make, go, cargo) and then collected into `target/ebpf/<arch>/`.
//!
//! Every driver returns the same [`BuildOutput`], so `package`, `push` and `run` do not
//! care which language the project is in.

mod kernel;

use std::path::PathBuf;

use ebpf_runner::format::{bpf_target_arch, host_arch, normalize_arch};
use ebpf_runner::{Error, Result};

use crate::manifest::{Kind, Project};

#[allow(unused_imports)] // used by the language drivers
pub(crate) use kernel::{
    find_program, param_docs, relative, status, vmlinux_include_dir, warning, write_atomic,
};

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Kernel BTF to generate vmlinux.h from; default /sys/kernel/btf/vmlinux.
    pub btf: Option<PathBuf>,
    /// Target architecture (Rust naming); default the host's.
    pub arch: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// The BPF object (`target/ebpf/<arch>/<name>.bpf.o`).
    pub object: PathBuf,
    pub arch: String,
    /// True when nothing changed and nothing was rebuilt.
    pub fresh: bool,
    /// The userspace loader (`target/ebpf/<arch>/<name>`), for kinds that have one; it is
    /// packaged under `bin/` and started by `run`.
    pub loader: Option<PathBuf>,
}

/// Builds the project for one architecture with the driver for its kind.
pub fn build(project: &Project, opts: &BuildOptions) -> Result<BuildOutput> {
    let arch = resolve_arch(opts.arch.as_deref())?;
    match project.kind() {
        Kind::Eunomia => kernel::build(project, opts, arch),
        other => Err(Error::input(format!(
            "building `{}` projects is not supported yet",
            other.as_str()
        ))),
    }
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
