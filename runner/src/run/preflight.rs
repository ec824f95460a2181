//! Checks that the machine can run eBPF programs, each failure one clear sentence with help.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use ebpf_package::spec::{host_arch, normalize_arch, PackageMeta};
use ebpf_package::{Error, Result};

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

/// A package built for another architecture: its tracing programs read registers and
/// structs laid out for that one, so it must not load here.
pub fn check_arch(meta: Option<&PackageMeta>) -> Result<()> {
    let Some(meta) = meta else {
        return Ok(());
    };
    let host = host_arch();
    let theirs = normalize_arch(&meta.arch).unwrap_or(meta.arch.as_str());
    if normalize_arch(host).unwrap_or(host) == theirs {
        return Ok(());
    }
    let theirs = ebpf_package::platform::Platform {
        os: "linux".into(),
        architecture: ebpf_package::spec::oci_arch(theirs).into(),
    };
    let what = format!("{} {}", meta.name, meta.version);
    Err(ebpf_package::platform::wrong_platform(
        &what,
        &[theirs.to_string()],
    ))
}

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
    mount_as(fs_type, fs_type, target)
}

fn mount_as(source: &str, fs_type: &str, target: &str) -> Result<()> {
    let c = |s: &str| CString::new(s).expect("constant paths have no NUL");
    let (source, fstype, dir) = (c(source), c(fs_type), c(target));
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

// ---- kernel features ------------------------------------------------------------------------

const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";
const KPROBE_EVENTS: [&str; 2] = [
    "/sys/kernel/tracing/kprobe_events",
    "/sys/kernel/debug/tracing/kprobe_events",
];
const SECURITYFS: &str = "/sys/kernel/security";
const LSM_LIST: &str = "/sys/kernel/security/lsm";

/// kprobes need CONFIG_KPROBES, which shows as the `kprobe` perf PMU (or tracefs's
/// kprobe_events on older kernels).
pub fn check_kprobes() -> Result<()> {
    let present =
        Path::new(KPROBE_PMU).exists() || KPROBE_EVENTS.iter().any(|p| Path::new(p).exists());
    if present {
        return Ok(());
    }
    Err(Error::environment(
        "kprobes are not available: this kernel was built without CONFIG_KPROBES",
    )
    .with_help(
        "use a tracepoint, raw tracepoint or tp_btf program instead (or fentry/fexit where the \
         kernel has BPF trampolines), or run on a kernel built with CONFIG_KPROBES=y",
    ))
}

/// BPF LSM programs need `bpf` among the active LSMs (securityfs's `lsm` file).
pub fn check_bpf_lsm() -> Result<()> {
    if !Path::new(LSM_LIST).exists() {
        // Fresh containers and VMs may lack securityfs, like tracefs.
        mount_as("securityfs", "securityfs", SECURITYFS)?;
        eprintln!("Mounted securityfs at {SECURITYFS}");
    }
    let active = std::fs::read_to_string(LSM_LIST).unwrap_or_default();
    if active.trim().split(',').any(|lsm| lsm == "bpf") {
        return Ok(());
    }
    Err(Error::environment(format!(
        "BPF LSM programs cannot run: `bpf` is not among this kernel's active LSMs ({})",
        active.trim()
    ))
    .with_help(
        "boot with `lsm=...,bpf` on the kernel command line (the kernel needs CONFIG_BPF_LSM=y)",
    ))
}

/// The root of the cgroup v2 hierarchy, mounting one at /sys/fs/cgroup (or, when that
/// holds v1 controllers, /sys/fs/cgroup/unified) if there is none.
pub fn cgroup2_root() -> Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if let Some(path) = cgroup2_mount(&mounts) {
        return Ok(path);
    }
    let target = if mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some("/sys/fs/cgroup"))
    {
        "/sys/fs/cgroup/unified"
    } else {
        "/sys/fs/cgroup"
    };
    std::fs::create_dir_all(target).map_err(|e| Error::io("create", Path::new(target), e))?;
    mount_as("cgroup2", "cgroup2", target)?;
    eprintln!("Mounted cgroup2 at {target}");
    Ok(target.into())
}

fn cgroup2_mount(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut parts = line.split(' ');
        let (_, dir, fs) = (parts.next()?, parts.next()?, parts.next()?);
        (fs == "cgroup2").then(|| PathBuf::from(dir))
    })
}

/// fentry/fexit/fmod_ret and LSM programs run from BPF trampolines. Loads a two-instruction
/// program of that kind on the section's own target (`fentry/FUNC`, `lsm/HOOK`) so a kernel
/// that refuses them gets one sentence instead of a bare EPERM from libbpf.
pub fn check_trampoline(section: &str) -> Result<()> {
    let Some((kind, target)) = section.split_once('/') else {
        return Ok(());
    };
    let Some(trampoline) = Trampoline::of(kind) else {
        return Ok(());
    };
    let Ok(c_target) = CString::new(target) else {
        return Ok(());
    };
    // SAFETY: a valid C string; libbpf reads the running kernel's BTF.
    let btf_id = unsafe {
        libbpf_rs::libbpf_sys::libbpf_find_vmlinux_btf_id(c_target.as_ptr(), trampoline.attach_type)
    };
    if btf_id <= 0 {
        // No such function: the load names it in a clearer error of its own.
        return Ok(());
    }
    let Err(err) = trampoline.try_load(btf_id as u32) else {
        return Ok(());
    };
    Err(Error::environment(format!(
        "{} programs are not available: this kernel ({}) refuses to load BPF trampoline \
         programs ({err})",
        trampoline.what,
        kernel_release()
    ))
    .with_help(
        "use a tracepoint, raw tracepoint or tp_btf program instead; trampolines need x86-64 or \
         arm64 with CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS and no lockdown or policy blocking them",
    ))
}

/// A kind of program that runs from a BPF trampoline.
struct Trampoline {
    prog_type: libbpf_rs::libbpf_sys::bpf_prog_type,
    attach_type: libbpf_rs::libbpf_sys::bpf_attach_type,
    /// How the error message names it.
    what: &'static str,
}

impl Trampoline {
    /// The trampoline kind of a section prefix (`fentry`, `fexit.s`, `lsm`, …), if any.
    fn of(kind: &str) -> Option<Trampoline> {
        use libbpf_rs::libbpf_sys as sys;
        let base = kind.split('.').next().unwrap_or(kind);
        let (prog_type, attach_type, what) = match base {
            "fentry" => (
                sys::BPF_PROG_TYPE_TRACING,
                sys::BPF_TRACE_FENTRY,
                "fentry/fexit",
            ),
            "fexit" => (
                sys::BPF_PROG_TYPE_TRACING,
                sys::BPF_TRACE_FEXIT,
                "fentry/fexit",
            ),
            "fmod_ret" => (
                sys::BPF_PROG_TYPE_TRACING,
                sys::BPF_MODIFY_RETURN,
                "fmod_ret",
            ),
            "lsm" => (sys::BPF_PROG_TYPE_LSM, sys::BPF_LSM_MAC, "BPF LSM"),
            _ => return None,
        };
        Some(Trampoline {
            prog_type,
            attach_type,
            what,
        })
    }

    /// Loads `r0 = 0; exit` of this kind on the kernel function with BTF id `btf_id`, and
    /// closes it again.
    fn try_load(&self, btf_id: u32) -> std::io::Result<()> {
        use libbpf_rs::libbpf_sys as sys;
        let insns = [
            sys::bpf_insn {
                code: 0xb7,
                ..Default::default()
            },
            sys::bpf_insn {
                code: 0x95,
                ..Default::default()
            },
        ];
        let mut opts = sys::bpf_prog_load_opts {
            sz: std::mem::size_of::<sys::bpf_prog_load_opts>() as _,
            expected_attach_type: self.attach_type,
            attach_btf_id: btf_id,
            ..Default::default()
        };
        let license = CString::new("GPL").expect("no NUL");
        // SAFETY: valid instructions, license and options that outlive the call.
        let fd = unsafe {
            sys::bpf_prog_load(
                self.prog_type,
                std::ptr::null(),
                license.as_ptr(),
                insns.as_ptr(),
                2,
                &mut opts,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::from_raw_os_error(-fd));
        }
        // SAFETY: the fd is ours and used nowhere else.
        unsafe { libc::close(fd) };
        Ok(())
    }
}

/// Asks the kernel (through libbpf's probe, a tiny load) whether it runs programs of
/// `ty`; `what` names them for the message.
pub fn check_program_type(ty: libbpf_rs::ProgramType, what: &str) -> Result<()> {
    use libbpf_rs::ProgramType as T;
    // BTF-attached types cannot be probed without a target function (libbpf's probe says
    // "no" for them on some kernels); their load says what is missing.
    if matches!(ty, T::Tracing | T::Lsm | T::Ext | T::StructOps | T::Unknown) {
        return Ok(());
    }
    // An error from the probe itself is no answer: the load will tell.
    if ty.is_supported().unwrap_or(true) {
        return Ok(());
    }
    Err(Error::environment(format!(
        "this kernel ({}) cannot run {what} programs (program type {ty:?})",
        kernel_release()
    ))
    .with_help("run it on a newer kernel, or one built with the options this program type needs"))
}

/// The running kernel's release, as `uname -r` prints it.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown version".into())
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
    fn packages_for_other_architectures_are_refused() {
        let mut meta = PackageMeta::new("x", "1.0.0", "x.bpf.o");
        assert!(check_arch(Some(&meta)).is_ok());
        meta.arch = if host_arch() == "aarch64" {
            "x86_64"
        } else {
            "aarch64"
        }
        .into();
        let err = check_arch(Some(&meta)).unwrap_err();
        // An Input error (exit 3), worded as when platform selection refuses it.
        assert_eq!(err.kind, ebpf_package::ErrorKind::Input);
        assert_eq!(err.exit_code(), 3);
        let host = ebpf_package::spec::oci_arch(host_arch());
        assert!(
            err.message.starts_with(&format!(
                "x 1.0.0 has no package for this machine (linux/{host}), only for linux/"
            )),
            "{}",
            err.message
        );
    }

    #[test]
    fn finds_cgroup2_mount() {
        let mounts = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
            cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
            cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(
            cgroup2_mount(mounts),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount("proc /proc proc rw 0 0\n"), None);
    }

    #[test]
    fn custom_btf_must_exist() {
        let err = kernel_btf(Some(Path::new("/nonexistent/vmlinux.btf"))).unwrap_err();
        assert_eq!(err.kind, ebpf_package::ErrorKind::Environment);
        assert!(err.message.contains("/nonexistent/vmlinux.btf"));
        let file = tempfile::NamedTempFile::new().unwrap();
        assert_eq!(
            kernel_btf(Some(file.path())).unwrap().as_deref(),
            Some(file.path())
        );
    }
}
