//! `doctor`: what this machine has and lacks, for building packages and for running them —
//! the programs (with the package that installs each on Debian/Ubuntu and on
//! Fedora/openEuler), the privileges, and the kernel features runs depend on (BTF, bpffs,
//! tracefs, kprobes, BPF trampolines, lockdown, cgroup v2).
//!
//! Everything is read from files and PATH: nothing is loaded into the kernel, so `doctor`
//! is safe to run anywhere, as any user.

use std::path::Path;

use serde::Serialize;

use crate::which::find_program;

/// One thing checked.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `build`, `run` or `kernel`.
    pub area: &'static str,
    pub name: &'static str,
    /// `ok`, `missing`, `off`, `limited` or `unknown`.
    pub status: &'static str,
    /// What was found, or what is missing it affects.
    pub detail: String,
    /// Debian/Ubuntu package that provides it (when it is a program or file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debian: Option<&'static str>,
    /// Fedora/openEuler package.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fedora: Option<&'static str>,
}

/// A program or file, what needs it, and the packages providing it.
struct Tool {
    area: &'static str,
    name: &'static str,
    /// A program name (looked up on PATH and sbin) or an absolute path.
    probe: &'static str,
    needed_for: &'static str,
    debian: &'static str,
    fedora: &'static str,
}

const TOOLS: &[Tool] = &[
    Tool {
        area: "build",
        name: "clang",
        probe: "clang",
        needed_for: "compiling BPF programs (every pack)",
        debian: "clang",
        fedora: "clang",
    },
    Tool {
        area: "build",
        name: "llvm-strip",
        probe: "llvm-strip",
        needed_for: "stripping BPF objects",
        debian: "llvm",
        fedora: "llvm",
    },
    Tool {
        area: "build",
        name: "bpftool",
        probe: "bpftool",
        needed_for: "vmlinux.h and skeletons (c pack)",
        debian: "bpftool",
        fedora: "bpftool",
    },
    Tool {
        area: "build",
        name: "libbpf headers",
        probe: "/usr/include/bpf/libbpf.h",
        needed_for: "<bpf/bpf_helpers.h> (every pack)",
        debian: "libbpf-dev",
        fedora: "libbpf-devel",
    },
    Tool {
        area: "build",
        name: "make",
        probe: "make",
        needed_for: "the c pack's loader",
        debian: "make",
        fedora: "make",
    },
    Tool {
        area: "build",
        name: "gcc",
        probe: "gcc",
        needed_for: "the c and rust packs' loaders",
        debian: "gcc",
        fedora: "gcc",
    },
    Tool {
        area: "build",
        name: "go",
        probe: "go",
        needed_for: "the go pack",
        debian: "golang-go",
        fedora: "golang",
    },
    Tool {
        area: "build",
        name: "cargo",
        probe: "cargo",
        needed_for: "the rust pack",
        debian: "cargo",
        fedora: "cargo",
    },
    Tool {
        area: "build",
        name: "podman or docker",
        probe: "podman|docker",
        needed_for: "build --container",
        debian: "podman",
        fedora: "podman",
    },
    Tool {
        area: "run",
        name: "podman or docker",
        probe: "podman|docker",
        needed_for: "container-runtime packages",
        debian: "podman",
        fedora: "podman",
    },
    Tool {
        area: "run",
        name: "bpftool",
        probe: "bpftool",
        needed_for: "inspecting what runs in the kernel (optional)",
        debian: "bpftool",
        fedora: "bpftool",
    },
];

/// Everything `doctor` checks, in a fixed order.
pub fn checks() -> Vec<Check> {
    let mut out: Vec<Check> = TOOLS.iter().map(tool).collect();
    out.push(privileges());
    out.extend(kernel());
    out
}

fn tool(t: &Tool) -> Check {
    let found = t.probe.split('|').find_map(|p| match p.starts_with('/') {
        true => Path::new(p).exists().then(|| p.into()),
        false => find_program(p),
    });
    let (status, detail) = match found {
        Some(path) => ("ok", path.display().to_string()),
        None => ("missing", format!("needed for {}", t.needed_for)),
    };
    Check {
        area: t.area,
        name: t.name,
        status,
        detail,
        debian: Some(t.debian),
        fedora: Some(t.fedora),
    }
}

fn kernel_check(name: &'static str, status: &'static str, detail: String) -> Check {
    Check {
        area: "kernel",
        name,
        status,
        detail,
        debian: None,
        fedora: None,
    }
}

/// Root, or CAP_BPF and CAP_PERFMON, from /proc/self/status.
fn privileges() -> Check {
    let ok = crate::run::check_privileges().is_ok();
    let detail = match ok {
        true => "may load and attach programs".to_string(),
        false => "runs need root, or CAP_BPF and CAP_PERFMON (sudo)".to_string(),
    };
    Check {
        area: "run",
        name: "privileges",
        status: if ok { "ok" } else { "missing" },
        detail,
        debian: None,
        fedora: None,
    }
}

fn kernel() -> Vec<Check> {
    let exists = |p: &str| Path::new(p).exists();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mounted = |fstype: &str| {
        mounts
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(fstype))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
    };
    let on_off = |ok: bool| if ok { "ok" } else { "off" };
    let mut out = vec![];
    let btf = exists("/sys/kernel/btf/vmlinux");
    out.push(kernel_check("BTF", on_off(btf), match btf {
        true => "/sys/kernel/btf/vmlinux".into(),
        false => "no /sys/kernel/btf/vmlinux: CO-RE programs need a kernel built with CONFIG_DEBUG_INFO_BTF (or --btf FILE)".into(),
    }));
    let bpffs = mounted("bpf");
    out.push(kernel_check(
        "bpffs",
        on_off(bpffs.is_some()),
        match bpffs {
            Some(at) => format!("mounted at {at}"),
            None => "not mounted: background runs pin there; `mount -t bpf bpf /sys/fs/bpf`".into(),
        },
    ));
    let tracefs = mounted("tracefs");
    out.push(kernel_check(
        "tracefs",
        on_off(tracefs.is_some()),
        match tracefs {
            Some(at) => format!("mounted at {at}"),
            None => {
                "not mounted: tracepoints need it; `mount -t tracefs tracefs /sys/kernel/tracing`"
                    .into()
            }
        },
    ));
    let kprobes = exists("/sys/bus/event_source/devices/kprobe/type");
    out.push(kernel_check(
        "kprobes",
        on_off(kprobes),
        match kprobes {
            true => "the kprobe PMU is there".into(),
            false => {
                "no kprobe PMU (CONFIG_KPROBES off): kprobe/kretprobe programs cannot attach".into()
            }
        },
    ));
    out.push(trampolines());
    out.push(lockdown());
    let cgroup2 = exists("/sys/fs/cgroup/cgroup.controllers");
    out.push(kernel_check(
        "cgroup v2",
        on_off(cgroup2),
        match cgroup2 {
            true => "unified hierarchy at /sys/fs/cgroup".into(),
            false => {
                "no cgroup v2 at /sys/fs/cgroup: cgroup programs need --cgroup PATH of a v2 mount"
                    .into()
            }
        },
    ));
    out
}

/// fentry/fexit/lsm need BPF trampolines: known from the kernel config when it is readable.
fn trampolines() -> Check {
    let Some(config) = kernel_config() else {
        return kernel_check(
            "trampolines",
            "unknown",
            "no readable kernel config (/boot/config-*): fentry/fexit support is untold".into(),
        );
    };
    let on = |key: &str| config.lines().any(|l| l == format!("{key}=y"));
    let ok = on("CONFIG_BPF_JIT") && on("CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS");
    let detail = match ok {
        true => {
            "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS=y: fentry/fexit/lsm can attach".to_string()
        }
        false => {
            "no CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS: fentry/fexit/lsm programs cannot attach"
                .to_string()
        }
    };
    kernel_check("trampolines", if ok { "ok" } else { "off" }, detail)
}

fn kernel_config() -> Option<String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    std::fs::read_to_string(format!("/boot/config-{}", release.trim())).ok()
}

/// `[none]` is fine; `integrity` or `confidentiality` refuse some BPF helpers (reading
/// kernel memory), so some tracing programs fail to load.
fn lockdown() -> Check {
    let Ok(text) = std::fs::read_to_string("/sys/kernel/security/lockdown") else {
        return kernel_check("lockdown", "ok", "no lockdown LSM".into());
    };
    let mode = text
        .split_whitespace()
        .find(|w| w.starts_with('['))
        .map(|w| w.trim_matches(['[', ']']).to_string())
        .unwrap_or_else(|| "none".into());
    match mode.as_str() {
        "none" => kernel_check("lockdown", "ok", "lockdown=none".into()),
        m => kernel_check(
            "lockdown",
            "limited",
            format!("lockdown={m}: helpers that read kernel memory are refused"),
        ),
    }
}

/// This machine's distribution family from /etc/os-release: `debian` or `fedora`.
pub fn distro() -> Option<&'static str> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_ascii_lowercase())
            .unwrap_or_default()
    };
    let ids = format!("{} {}", field("ID"), field("ID_LIKE"));
    if ids.contains("debian") || ids.contains("ubuntu") {
        Some("debian")
    } else if ["fedora", "rhel", "openeuler", "centos"]
        .iter()
        .any(|d| ids.contains(d))
    {
        Some("fedora")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_both_packages_and_the_kernel_rows_are_all_there() {
        let checks = checks();
        let names: Vec<&str> = checks
            .iter()
            .filter(|c| c.area == "kernel")
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "BTF",
                "bpffs",
                "tracefs",
                "kprobes",
                "trampolines",
                "lockdown",
                "cgroup v2"
            ]
        );
        let sh = Tool {
            area: "run",
            name: "sh",
            probe: "sh",
            needed_for: "x",
            debian: "dash",
            fedora: "bash",
        };
        assert_eq!(tool(&sh).status, "ok");
        let none = Tool {
            probe: "no-such-program-xyz|/no/such/file",
            ..sh
        };
        let missing = tool(&none);
        assert_eq!((missing.status, missing.debian), ("missing", Some("dash")));
        // This machine's kernel has BTF (the tests need it) and it is reported as such.
        if Path::new("/sys/kernel/btf/vmlinux").exists() {
            assert_eq!(
                checks.iter().find(|c| c.name == "BTF").unwrap().status,
                "ok"
            );
        }
    }
}
