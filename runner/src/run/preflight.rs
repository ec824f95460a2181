//! Checks that the machine can run eBPF programs, each failure one clear sentence with help.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Environment variable naming a kernel BTF file (like `--btf`).
pub const KERNEL_BTF_ENV: &str = "CARGO_EBPF_KERNEL_BTF";
/// The running kernel's BTF.
pub const DEFAULT_KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

const TRACEFS: &str = "/sys/kernel/tracing";
const TRACEFS_EVENTS: [&str; 2] = [
    "/sys/kernel/tracing/events",
    "/sys/kernel/debug/tracing/events",
];
const BPFFS: &str = "/sys/fs/bpf";
const BPFFS_MAGIC: i64 = 0xcafe_4a11;

/// Loading and attaching needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN.
pub fn check_privileges() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = effective_caps(&status).unwrap_or(0);
    if has_caps(caps) {
        return Ok(());
    }
    Err(
        Error::environment("loading eBPF programs needs root or CAP_BPF and CAP_PERFMON")
            .with_help("run it with sudo"),
    )
}

fn effective_caps(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

fn has_caps(caps: u64) -> bool {
    let has = |bit: u32| caps & (1u64 << bit) != 0;
    (has(CAP_BPF) && has(CAP_PERFMON)) || has(CAP_SYS_ADMIN)
}

/// Where the kernel BTF is: `--btf`, else `$CARGO_EBPF_KERNEL_BTF`, else the running
/// kernel's own. Returns the path and whether it is a custom one (to hand to libbpf).
/// Shared with `cargo ebpf build`, which generates vmlinux.h from the same file.
pub fn kernel_btf_path(flag: Option<&Path>) -> Result<(PathBuf, bool)> {
    let custom = flag.map(|p| (p.to_path_buf(), "--btf")).or_else(|| {
        std::env::var_os(KERNEL_BTF_ENV)
            .filter(|p| !p.is_empty())
            .map(|p| (PathBuf::from(p), KERNEL_BTF_ENV))
    });
    match custom {
        Some((path, _)) if path.is_file() => Ok((path, true)),
        Some((path, source)) => Err(Error::environment(format!(
            "the kernel BTF file {} (from {source}) does not exist",
            path.display()
        ))
        .with_help(format!(
            "pass an existing BTF file with --btf FILE (for example one from btfhub), or unset \
             {KERNEL_BTF_ENV} to use {DEFAULT_KERNEL_BTF}"
        ))),
        None if Path::new(DEFAULT_KERNEL_BTF).is_file() => Ok((DEFAULT_KERNEL_BTF.into(), false)),
        None => Err(Error::environment(format!(
            "this kernel has no BTF ({DEFAULT_KERNEL_BTF} is missing), which CO-RE programs need"
        ))
        .with_help(
            "use a kernel built with CONFIG_DEBUG_INFO_BTF=y, or pass a BTF file for this kernel \
             with `--btf FILE`",
        )),
    }
}

/// The BTF path to hand libbpf: `None` when it is the running kernel's own.
pub fn kernel_btf(flag: Option<&Path>) -> Result<Option<PathBuf>> {
    let (path, custom) = kernel_btf_path(flag)?;
    Ok(custom.then_some(path))
}

/// Mounts tracefs and bpffs where they are missing (fresh containers and VMs lack them).
pub fn ensure_mounts() -> Result<()> {
    if !TRACEFS_EVENTS.iter().any(|p| Path::new(p).exists()) {
        mount("tracefs", TRACEFS)?;
        eprintln!("Mounted tracefs at {TRACEFS}");
    }
    if !is_bpffs(BPFFS) {
        mount("bpf", BPFFS)?;
        eprintln!("Mounted bpffs at {BPFFS}");
    }
    Ok(())
}

fn is_bpffs(path: &str) -> bool {
    let Ok(c_path) = CString::new(path) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed plain-data struct; the path is a valid C string.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut buf) };
    rc == 0 && buf.f_type as i64 == BPFFS_MAGIC
}

fn mount(fs_type: &str, target: &str) -> Result<()> {
    let c = |s: &str| CString::new(s).expect("constant paths have no NUL");
    let (source, fstype, dir) = (c(fs_type), c(fs_type), c(target));
    // SAFETY: all pointers are valid C strings; no mount data is passed.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            dir.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    Err(
        Error::environment(format!("cannot mount {fs_type} at {target}: {err}")).with_help(
            format!("mount it yourself with `mount -t {fs_type} {fs_type} {target}` and retry"),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_capabilities() {
        let status = "Name:\tx\nCapInh:\t0\nCapEff:\t000001fffeffffff\n";
        assert_eq!(effective_caps(status), Some(0x1fffeffffff));
        assert!(has_caps(0x1fffeffffff));
        assert!(has_caps(1 << CAP_SYS_ADMIN));
        assert!(has_caps((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!has_caps(1 << CAP_BPF));
        assert!(!has_caps(0));
    }

    #[test]
    fn custom_btf_must_exist() {
        let err = kernel_btf(Some(Path::new("/nonexistent/vmlinux.btf"))).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Environment);
        assert!(err.message.contains("/nonexistent/vmlinux.btf"));
        let file = tempfile::NamedTempFile::new().unwrap();
        assert_eq!(
            kernel_btf(Some(file.path())).unwrap().as_deref(),
            Some(file.path())
        );
    }
}
