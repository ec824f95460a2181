//! What every test binary of the workspace shares (the e2e lib exports it as
//! `ebpf_e2e_tests::harness`; the runner's and cargo-ebpf's test binaries include this very
//! file from their `common` module with `#[path]`, so it uses nothing but std and libc):
//!
//! - honest skips: a test that needs something this machine may lack starts with
//!   `if !needs(&[Need::Kernel, Need::Build]) { return; }`. When a need is unmet it prints
//!   `skipped: TEST: needs WHAT (HOW)` and the test returns (passes) — so `cargo test` on a
//!   laptop, unprivileged and without clang, runs the portable part — unless
//!   `CARGO_EBPF_TEST_STRICT=1` is set (scripts/test.sh, which CI runs, sets it): then the
//!   same message is a panic, and a skip is a failure;
//! - [`run_alone`]: a test that touches process-wide state (environment variables, signal
//!   handlers) runs in a child process of its own.

use std::io::Write;
use std::path::Path;
use std::process::Command;

/// Set to `1` to turn every skip into a failure.
pub const STRICT_ENV: &str = "CARGO_EBPF_TEST_STRICT";

/// Something a test needs from the machine. The composite ones stand for what a step of
/// the tool needs (a build, a kernel load); each part is checked and reported on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Effective uid 0: loading and attaching programs, mounts, podman, setpriv, chown.
    Root,
    /// The running kernel's BTF at /sys/kernel/btf/vmlinux (CO-RE loads, vmlinux.h).
    KernelBtf,
    /// A program on PATH (or in /usr/sbin, /sbin), and the Debian package that has it (or
    /// the command that installs it, when it is not a Debian package).
    Tool(&'static str, &'static str),
    /// A file that must exist, and the Debian package that has it.
    File(&'static str, &'static str),
    /// New network namespaces (`unshare -n`): root with CAP_SYS_ADMIN outside a restricted
    /// container.
    NetNs,
    /// New mount namespaces (`unshare -m`), likewise.
    MountNs,
    /// Loading and attaching programs in the running kernel: root and kernel BTF.
    Kernel,
    /// Compiling BPF C the way `cargo ebpf build` and the fixtures do: clang, and bpftool
    /// to write vmlinux.h from the kernel BTF.
    Build,
    /// A real docker-registry (distribution) to push to and pull from.
    Registry,
    /// skopeo, to copy images in and out of registries and OCI layouts.
    Skopeo,
    /// podman, which these tests run as root.
    Podman,
    /// A throwaway PostgreSQL 15 cluster, run as the `postgres` user (through runuser).
    Postgres,
}

impl Need {
    /// The plain needs this one stands for.
    fn parts(self) -> Vec<Need> {
        match self {
            Need::Kernel => vec![Need::Root, Need::KernelBtf],
            Need::Build => vec![
                Need::Tool("clang", "clang"),
                Need::Tool("bpftool", "bpftool"),
                Need::KernelBtf,
            ],
            Need::Registry => vec![Need::File("/usr/bin/docker-registry", "docker-registry")],
            Need::Skopeo => vec![Need::Tool("skopeo", "skopeo")],
            Need::Podman => vec![Need::Root, Need::Tool("podman", "podman")],
            Need::Postgres => vec![
                Need::Root,
                Need::File("/usr/lib/postgresql/15/bin/initdb", "postgresql-15"),
                Need::Tool("runuser", "util-linux"),
            ],
            plain => vec![plain],
        }
    }

    /// Whether this machine has it (only called on plain needs).
    fn met(self) -> bool {
        match self {
            // SAFETY: geteuid has no preconditions and cannot fail.
            Need::Root => (unsafe { libc::geteuid() }) == 0,
            Need::KernelBtf => std::fs::File::open("/sys/kernel/btf/vmlinux").is_ok(),
            Need::Tool(tool, _) => on_path(tool),
            Need::File(path, _) => Path::new(path).exists(),
            Need::NetNs => unshares("-n"),
            Need::MountNs => unshares("-m"),
            _ => self.parts().into_iter().all(Need::met),
        }
    }

    /// What is missing and how to get it: `WHAT (HOW)`.
    fn describe(self) -> String {
        match self {
            Need::Root => "root (run as root, as scripts/test.sh does: sudo scripts/test.sh)".into(),
            Need::KernelBtf => {
                "kernel BTF at /sys/kernel/btf/vmlinux (a kernel built with CONFIG_DEBUG_INFO_BTF=y)"
                    .into()
            }
            Need::Tool(tool, package) => format!("`{tool}` ({})", install(package)),
            Need::File(path, package) => format!("{path} ({})", install(package)),
            Need::NetNs => "new network namespaces (root with CAP_SYS_ADMIN, `unshare -n true` must work)".into(),
            Need::MountNs => "new mount namespaces (root with CAP_SYS_ADMIN, `unshare -m true` must work)".into(),
            composite => format!("{composite:?}"),
        }
    }
}

/// `apt-get install PACKAGE`, or `how` itself when it is a command (`pip install …`).
fn install(how: &str) -> String {
    if how.contains(' ') {
        how.to_string()
    } else {
        format!("apt-get install {how}")
    }
}

/// Whether every one of `what` is met. If one is not, prints
/// `skipped: TEST: needs WHAT (HOW)` for each missing need and returns false (the test
/// then returns early) — or, with `CARGO_EBPF_TEST_STRICT=1`, panics with that message.
pub fn needs(what: &[Need]) -> bool {
    let mut missing: Vec<Need> = Vec::new();
    for need in what.iter().flat_map(|n| n.parts()) {
        if !missing.contains(&need) && !need.met() {
            missing.push(need);
        }
    }
    if missing.is_empty() {
        return true;
    }
    let test = current_test();
    let message = missing
        .iter()
        .map(|n| format!("skipped: {test}: needs {}", n.describe()))
        .collect::<Vec<_>>()
        .join("\n");
    if strict() {
        panic!("{message}\n({STRICT_ENV}=1: a skip is a failure)");
    }
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(std::io::stderr(), "{message}");
    false
}

/// Whether `CARGO_EBPF_TEST_STRICT=1` is set.
pub fn strict() -> bool {
    std::env::var(STRICT_ENV).is_ok_and(|v| v == "1")
}

/// The running test's name (libtest names each test's thread after it).
fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "this test".to_string(),
    }
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| is_executable(&dir.join(tool)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `unshare FLAG true` works here.
fn unshares(flag: &str) -> bool {
    Command::new("unshare")
        .args([flag, "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

// ---- running a test alone ------------------------------------------------------------------

/// The libtest name of test `name` in the module whose `module_path!()` is `module`
/// (`e2e::registry_env` → `registry_env::name`): what `--exact` wants.
pub fn test_path(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, path)) => format!("{path}::{name}"),
        None => name.to_string(),
    }
}

/// Runs the `#[ignore]`d test `name` of `module` (its `module_path!()`) in a child copy of
/// this test binary, alone in its process, and fails if it fails: for a test that sets
/// environment variables or signals its own process, which must not share a process with
/// the other tests of the binary.
pub fn run_alone(module: &str, name: &str) {
    let test = test_path(module, name);
    let out = Command::new(std::env::current_exe().expect("test executable path"))
        .args([
            "--exact",
            &test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{test}, run alone, failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run:\n{stdout}\n{stderr}"
    );
    // A skip in the child is reported by the parent too.
    let _ = std::io::stderr().write_all(
        stderr
            .lines()
            .filter(|l| l.starts_with("skipped: "))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .as_bytes(),
    );
}
