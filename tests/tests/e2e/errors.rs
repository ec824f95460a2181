//! Bad input and a hostile environment: each gives one clear message, the documented exit
//! code, and leaves nothing half done. Exit codes: 2 usage, 3 input, 4 environment,
//! 5 build, 6 registry, 7 auth, 8 integrity, 9 kernel.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use ebpf_e2e_tests::cli::{fails, ok, Env};
use ebpf_e2e_tests::{needs, Need};

/// A BPF object the verifier rejects: it reads far past the end of its tracepoint context.
const REJECTED_C: &str = r#"
#define SEC(name) __attribute__((section(name), used))
SEC("tracepoint/syscalls/sys_enter_openat")
int out_of_bounds(void *ctx) { return *(volatile int *)((char *)ctx + 100000); }
char LICENSE[] SEC("license") = "GPL";
"#;

fn compile(dir: &Path, name: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    let o = dir.join(format!("{name}.o"));
    std::fs::write(&c, source).unwrap();
    let status = Command::new("clang")
        .args(["-g", "-O2", "-target", "bpf", "-c"])
        .arg(&c)
        .arg("-o")
        .arg(&o)
        .status()
        .expect("run clang");
    assert!(status.success());
    o
}

#[test]
fn verifier_rejection_shows_log_tail() {
    if !needs(&[Need::Kernel, Need::Tool("clang", "clang")]) {
        return;
    }
    let env = Env::new();
    let object = compile(env.path(), "rejected", REJECTED_C);
    let err = fails(env.cmd(["run"]).arg(&object).args(["--duration", "1"]), 9);
    assert!(err.contains("out_of_bounds"), "names the program: {err}");
    // The verifier's own words for this mistake vary by kernel version.
    assert!(
        err.contains("disallowed") || err.contains("invalid bpf_context access"),
        "shows the verifier's verdict: {err}"
    );
    assert!(
        err.contains("processed "),
        "shows the log's last lines: {err}"
    );
}

#[test]
fn non_bpf_elf_and_garbage_are_refused() {
    let env = Env::new();
    let err = fails(&mut env.cmd(["run", "/bin/true"]), 3);
    assert!(err.contains("not an eBPF object"), "{err}");
    assert!(err.contains("x86-64"), "names the machine it is for: {err}");

    let garbage = env.path().join("garbage.bpf.o");
    std::fs::write(&garbage, b"this is not an ELF file at all").unwrap();
    let err = fails(env.cmd(["run"]).arg(&garbage), 3);
    assert!(err.contains("not an ELF"), "{err}");
}

/// A kernel without BTF, for real: /sys/kernel/btf is hidden under an empty tmpfs in a
/// private mount namespace.
#[test]
fn kernel_without_btf_is_explained() {
    if !needs(&[Need::Root, Need::MountNs, Need::Tool("clang", "clang")]) {
        return;
    }
    let env = Env::new();
    let object = compile(env.path(), "rejected", REJECTED_C);
    let script = format!(
        "mount -t tmpfs none /sys/kernel/btf && exec {} run {}",
        ebpf_e2e_tests::cli::cargo_ebpf_bin().display(),
        object.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let err = fails(&mut cmd, 4);
    assert!(err.contains("no BTF"), "{err}");
    assert!(
        err.contains("CONFIG_DEBUG_INFO_BTF"),
        "says what to do: {err}"
    );
}

#[test]
fn missing_btf_file_is_explained() {
    if !needs(&[Need::Tool("clang", "clang")]) {
        return;
    }
    let env = Env::new();
    let object = compile(env.path(), "rejected", REJECTED_C);
    let err = fails(
        env.cmd(["run"])
            .arg(&object)
            .env("CARGO_EBPF_KERNEL_BTF", "/nonexistent/vmlinux"),
        4,
    );
    assert!(err.contains("BTF"), "{err}");
    assert!(err.contains("--btf"), "says what to do: {err}");
}

#[test]
fn unprivileged_user_is_told_to_use_root() {
    if !needs(&[
        Need::Root,
        Need::KernelBtf,
        Need::Tool("clang", "clang"),
        Need::Tool("setpriv", "util-linux"),
    ]) {
        return;
    }
    let env = Env::new();
    let shared = tempfile::Builder::new()
        .prefix("ebpf-unpriv")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let object = compile(shared.path(), "rejected", REJECTED_C);
    std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bin = ebpf_e2e_tests::cli::cargo_ebpf_bin();
    let out = ebpf_e2e_tests::cli::unprivileged(&bin)
        .arg("run")
        .arg(&object)
        .env("HOME", shared.path())
        .output()
        .expect("run setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("root") && err.contains("CAP_BPF"), "{err}");
    drop(env);
}

#[test]
fn build_errors_are_clear() {
    if !needs(&[Need::Build]) {
        return;
    }
    let env = Env::new();
    let project = env.path().join("broken");
    ok(env.cmd(["new", "broken", "--path"]).arg(&project));
    let manifest = ["--manifest-path", project.to_str().unwrap()];

    // No clang on PATH: the error names the package to install.
    let err = fails(
        env.cmd(["build"])
            .args(manifest)
            .env("PATH", "/nonexistent"),
        4,
    );
    assert!(err.contains("apt install clang"), "{err}");

    // A compiler error: clang's own message, exit 5.
    let src = project.join("src/broken.bpf.c");
    let mut text = std::fs::read_to_string(&src).unwrap();
    text.push_str("\nthis is not C;\n");
    std::fs::write(&src, text).unwrap();
    let err = fails(env.cmd(["build"]).args(manifest), 5);
    assert!(
        err.contains("error:"),
        "clang's diagnostics are shown: {err}"
    );

    // A broken manifest.
    std::fs::write(
        project.join("ebpf.toml"),
        "[package]\nname = \"Bad Name\"\n",
    )
    .unwrap();
    let err = fails(env.cmd(["build"]).args(manifest), 3);
    assert!(err.contains("ebpf.toml"), "{err}");
}

#[test]
fn new_refuses_bad_name_and_existing_dir() {
    let env = Env::new();
    let err = fails(env.cmd(["new", "Bad Name"]).current_dir(env.path()), 3);
    assert!(err.contains("name"), "{err}");
    let dir = env.path().join("taken");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    fails(env.cmd(["new", "taken", "--path"]).arg(&dir), 3);
    assert_eq!(
        std::fs::read_to_string(dir.join("keep.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "nothing added");
}
