//! `cargo ebpf build`: vmlinux.h from host BTF (cached), clang to a BPF object, checks.
//! STUB: contract only.

use std::path::PathBuf;

use ebpf_runner::Result;

use crate::manifest::Project;

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
}

pub fn build(project: &Project, opts: &BuildOptions) -> Result<BuildOutput> {
    let _ = (project, opts);
    todo!()
}
