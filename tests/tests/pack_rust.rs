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
use std::time::{Duration, Instant};

use ebpf_e2e_tests::cli::{self, fails, ok, show, Background, Env};
use ebpf_e2e_tests::Registry;

const RUN_SECS: u64 = 5;

/// A project created from the rust pack in its own environment.
struct RustProject {
    env: Env,
    name: String,
    dir: PathBuf,
}

impl RustProject {
    fn new(name: &str) -> RustProject {
        let env = Env::new();
        let dir = env.path().join("work").join(name);
        ok(with_rust(env.cmd(["new", name, "--lang", "rust", "--path"])).arg(&dir));
        RustProject {
            env,
            name: name.to_string(),
            dir,
        }
    }

    /// `cargo-ebpf ARGS --manifest-path DIR`, able to run cargo.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = with_rust(self.env.cmd(args));
        cmd.arg("--manifest-path").arg(&self.dir);
        cmd
    }

    fn built(&self, file: &str) -> PathBuf {
        self.dir.join("target/ebpf/x86_64").join(file)
    }

    fn loader(&self) -> PathBuf {
        self.built(&self.name)
    }
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

fn unique(prefix: &str, env: &Env) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    env.path()
        .join(format!("{prefix}-{}-{nanos}", std::process::id()))
}

/// Runs `cmd` (a `run …` of the rust loader) while opening a unique file; returns the
/// loader's event lines as (pid, filename) and the file opened.
fn run_and_trigger(env: &Env, cmd: Command) -> (Vec<(u32, String)>, String) {
    let marker = unique("rust-pack", env);
    let mut bg = Background::spawn(cmd);
    bg.wait_for_stderr("Attached", Duration::from_secs(60));
    let until = Instant::now() + Duration::from_secs(2);
    assert!(cli::trigger_openat_while(&marker, || Instant::now() < until) > 0);
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(RUN_SECS + 30));
    assert!(status.success(), "run failed: {status}\n{stderr}");
    assert!(stderr.contains("program detached"), "{stderr}");
    (events(&stdout), marker.display().to_string())
}

/// The loader prints a header, then `PID UID COMM FILENAME` per event (COMM may hold
/// spaces, the test's file names do not).
fn events(stdout: &str) -> Vec<(u32, String)> {
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header
            .split_whitespace()
            .eq(["PID", "UID", "COMM", "FILENAME"]),
        "first line is not the header: {stdout}"
    );
    lines
        .map(|line| {
            let pid = line.split_whitespace().next().unwrap_or_default();
            let pid = pid.parse().unwrap_or_else(|_| panic!("bad line {line:?}"));
            let file = line.rsplit(' ').next().unwrap_or_default().to_string();
            (pid, file)
        })
        .collect()
}

#[test]
fn new_build_package_push_pull_run_sees_own_event() {
    let registry = Registry::start();
    let project = RustProject::new("rsnoop");

    ok(&mut project.cmd(&["build"]));
    let object = project.built("rsnoop.bpf.o");
    assert!(object.is_file(), "no object at {}", object.display());
    assert_eq!(&std::fs::read(&object).unwrap()[..4], b"\x7fELF");
    assert!(is_executable(&project.loader()));
    // Nothing changed: the second build reports Fresh and rewrites nothing.
    let before = std::fs::metadata(project.loader())
        .unwrap()
        .modified()
        .unwrap();
    let again = ok(&mut project.cmd(&["build"]));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("Fresh"),
        "{}",
        show(&again)
    );
    let after = std::fs::metadata(project.loader())
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

    let secs = RUN_SECS.to_string();
    let run = user.cmd(["run", &reference, "--duration", &secs]);
    let (events, file) = run_and_trigger(&user, run);
    let me = std::process::id();
    assert!(
        events.iter().any(|(pid, f)| *pid == me && *f == file),
        "no event for {file} from pid {me} among {} events",
        events.len()
    );

    // The pid filter, set through the skeleton's .rodata, hides this process's events.
    let mut run = user.cmd(["run", &reference, "--duration", &secs]);
    run.args(["--", "-p", "1"]);
    let (events, file) = run_and_trigger(&user, run);
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
    let project = RustProject::new("rsignals");
    ok(&mut project.cmd(&["build"]));

    let mut bg = Background::spawn(Command::new(project.loader()));
    bg.wait_for_stderr("Attached", Duration::from_secs(30));
    bg.signal(libc::SIGINT);
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(10));
    assert!(status.success(), "SIGINT: {status}\n{stderr}");
    assert!(stdout.starts_with("PID"), "{stdout}");

    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(project.loader())
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
    let project = RustProject::new("rbroken");
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
