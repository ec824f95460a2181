//! The `rust` template pack, end to end, as root: `new --lang rust` → `build` (real cargo,
//! clang, libbpf-cargo) → `package` → `push` to a real docker-registry → pull into an empty
//! store → `run REF`, which starts the packaged Rust loader; the kernel attaches it while
//! this test opens a file and looks for its own event in the loader's output.
//!
//! cargo's build directory is shared by every project these tests create
//! (`target/e2e-rust-pack` of this workspace, through `CARGO_TARGET_DIR`, which the rust
//! driver honours), so libbpf-sys and libbpf-cargo compile once, not once per test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ebpf_e2e_tests::cli::{self, fails, ok, show, Background, Env};
use ebpf_e2e_tests::project::{loader_events, run_command, run_while_opening, Project};
use ebpf_e2e_tests::Registry;
use ebpf_e2e_tests::{needs, Need};

/// A project created from the rust pack in its own environment, able to run cargo.
fn rust_project(name: &str) -> Project {
    Project::with_commands(name, "rust", with_rust)
}

/// The loader of `project`, built for this machine.
fn loader(project: &Project) -> PathBuf {
    project.built("x86_64", &project.name)
}

/// `Env` gives each test its own HOME; cargo and rustup must still find the real toolchain
/// and crate cache (no network needed beyond what crates.io already gave), and every
/// project shares one build directory.
fn with_rust(mut cmd: Command) -> Command {
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME"));
    let var =
        |name: &str, default: PathBuf| std::env::var_os(name).map(PathBuf::from).unwrap_or(default);
    cmd.env("CARGO_HOME", var("CARGO_HOME", home.join(".cargo")))
        .env("RUSTUP_HOME", var("RUSTUP_HOME", home.join(".rustup")))
        .env("CARGO_TARGET_DIR", shared_target_dir());
    cmd
}

fn shared_target_dir() -> PathBuf {
    cli::workspace_root().join("target").join("e2e-rust-pack")
}

/// Runs the stored package `reference` with `program_args` while opening a unique file;
/// returns the loader's events as (pid, filename) and the file opened.
fn run_and_trigger(
    env: &Env,
    reference: &str,
    program_args: &[&str],
) -> (Vec<(u32, String)>, String) {
    let run = run_while_opening(run_command(env, reference, &[], program_args), env.path());
    assert!(run.stderr.contains("program detached"), "{}", run.stderr);
    let events = loader_events(&run.stdout)
        .into_iter()
        .map(|e| (e.pid, e.file))
        .collect();
    (events, run.file)
}

#[test]
fn new_build_package_push_pull_run_sees_own_event() {
    if !needs(&[Need::Kernel, Need::Build, Need::Registry]) {
        return;
    }
    let registry = Registry::start();
    let project = rust_project("rsnoop");

    ok(&mut project.cmd(&["build"]));
    let object = project.built("x86_64", "rsnoop.bpf.o");
    assert!(object.is_file(), "no object at {}", object.display());
    assert_eq!(&std::fs::read(&object).unwrap()[..4], b"\x7fELF");
    assert!(is_executable(&loader(&project)));
    // Nothing changed: the second build reports Fresh and rewrites nothing.
    let before = std::fs::metadata(loader(&project))
        .unwrap()
        .modified()
        .unwrap();
    let again = ok(&mut project.cmd(&["build"]));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("Fresh"),
        "{}",
        show(&again)
    );
    let after = std::fs::metadata(loader(&project))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "a fresh build rewrote the loader");

    ok(&mut project.cmd(&["package"]));
    let reference = format!("{}/packs/rsnoop:0.1.0", registry.addr());
    ok(&mut project.cmd(&["push", &reference]));

    // Another machine, in effect: an empty store, nothing but the reference.
    let user = Env::new();
    ok(&mut user.cmd(["pull", &reference]));
    let help = ok(&mut user.cmd(["run", &reference, "--", "--help"]));
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("--pid"),
        "{}",
        show(&help)
    );
    let err = fails(
        &mut user.cmd(["run", &reference, "--", "--no-such-flag"]),
        2,
    );
    assert!(err.contains("unknown argument `--no-such-flag`"), "{err}");

    let (events, file) = run_and_trigger(&user, &reference, &[]);
    let me = std::process::id();
    assert!(
        events.iter().any(|(pid, f)| *pid == me && *f == file),
        "no event for {file} from pid {me} among {} events",
        events.len()
    );

    // The pid filter, set through the skeleton's .rodata, hides this process's events.
    let (events, file) = run_and_trigger(&user, &reference, &["-p", "1"]);
    let leaked: Vec<_> = events
        .iter()
        .filter(|(pid, f)| *pid != 1 || *f == file)
        .take(5)
        .collect();
    assert!(
        leaked.is_empty(),
        "only pid 1 may pass the filter: {leaked:?}"
    );
}

/// Ctrl-C ends the loader cleanly (exit 0), and without privileges it says what is needed.
#[test]
fn loader_stops_on_sigint_and_explains_missing_privileges() {
    if !needs(&[
        Need::Kernel,
        Need::Build,
        Need::Tool("setpriv", "util-linux"),
    ]) {
        return;
    }
    let project = rust_project("rsignals");
    ok(&mut project.cmd(&["build"]));

    let mut bg = Background::spawn(Command::new(loader(&project)));
    bg.wait_for_stderr("Attached", Duration::from_secs(30));
    bg.signal(libc::SIGINT);
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(10));
    assert!(status.success(), "SIGINT: {status}\n{stderr}");
    assert!(stdout.starts_with("PID"), "{stdout}");

    let out = cli::unprivileged(loader(&project))
        .output()
        .expect("run setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs root (or CAP_BPF and CAP_PERFMON)"),
        "{err}"
    );
}

/// A compiler error in the BPF code fails `build` with exit 5 and clang's own diagnostic;
/// plain `cargo build` without vmlinux.h says how to get one.
#[test]
fn build_errors_are_reported() {
    if !needs(&[Need::Build]) {
        return;
    }
    let project = rust_project("rbroken");
    let source = project.dir.join("src/bpf/rbroken.bpf.c");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace("e->uid =", "e->no_such_field =")).unwrap();
    let err = fails(&mut project.cmd(&["build"]), 5);
    assert!(err.contains("cargo could not build rbroken"), "{err}");
    assert!(
        err.contains("no_such_field"),
        "clang's diagnostic is missing: {err}"
    );

    // `cargo ebpf build` generated target/ebpf/include/vmlinux.h before cargo failed.
    std::fs::remove_dir_all(project.dir.join("target/ebpf/include")).unwrap();
    let mut cargo = with_rust(Command::new(cargo_bin()));
    cargo
        .arg("build")
        .current_dir(&project.dir)
        .env("HOME", project.env.path())
        .env_remove("CARGO_EBPF_VMLINUX_DIR");
    let out = cargo.output().expect("run cargo");
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("vmlinux.h (the kernel's types) was not found"),
        "{err}"
    );
    assert!(err.contains("cargo ebpf build"), "{err}");
}

fn cargo_bin() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
