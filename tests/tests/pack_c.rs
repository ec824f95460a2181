//! The `c` template pack, end to end, as root: `new --lang c` → `build` (the pack's own
//! Makefile: clang, bpftool skeleton, gcc) → `package` → `push` to a real docker-registry →
//! `pull` and `run` in a fresh environment, where `run` starts the packaged C loader, which
//! loads and attaches the program while this test opens a file and looks for its own event.
//! Also: the pack on its own (plain `make`, the binary run directly), compile errors, and
//! cross-builds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ebpf_e2e_tests::cli::{self, fails, ok, Background, Env};
use ebpf_e2e_tests::Registry;

const RUN_SECS: u64 = 6;

/// A fresh `c` project in its own environment.
struct Project {
    env: Env,
    name: String,
    dir: PathBuf,
}

impl Project {
    fn new(name: &str) -> Project {
        let env = Env::new();
        let dir = env.path().join("work").join(name);
        ok(env.cmd(["new", name, "--lang", "c", "--path"]).arg(&dir));
        Project {
            env,
            name: name.to_string(),
            dir,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.env.cmd(args);
        cmd.arg("--manifest-path").arg(&self.dir);
        cmd
    }

    fn src(&self, ext: &str) -> PathBuf {
        self.dir.join("src").join(format!("{}.{ext}", self.name))
    }
}

/// A file name no other test or process opens.
fn unique_marker(dir: &Path, tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    dir.join(format!("pack-c-{tag}-{}-{nanos}", std::process::id()))
}

/// Runs `cmd` (which starts the loader) while this thread opens a unique file for two
/// seconds after the loader said it attached; returns (stdout, stderr, the file opened).
fn run_while_opening(cmd: Command, marker_dir: &Path) -> (String, String, String) {
    let marker = unique_marker(marker_dir, "run");
    let mut bg = Background::spawn(cmd);
    bg.wait_for_stderr("Attached", Duration::from_secs(60));
    let until = Instant::now() + Duration::from_secs(2);
    assert!(cli::trigger_openat_while(&marker, || Instant::now() < until) > 0);
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(RUN_SECS + 30));
    assert!(status.success(), "run failed: {status}\n{stderr}");
    (stdout, stderr, marker.display().to_string())
}

/// The loader's event lines (`PID UID COMM FILENAME`) for `file`, as (pid, uid).
fn events_for(stdout: &str, file: &str) -> Vec<(u32, u32)> {
    stdout
        .lines()
        .filter(|l| l.ends_with(file))
        .map(|l| {
            let mut cols = l.split_whitespace();
            let mut num = || cols.next().and_then(|c| c.parse().ok()).expect(l);
            (num(), num())
        })
        .collect()
}

fn assert_header_first(stdout: &str) {
    let first = stdout.lines().next().unwrap_or_default();
    let cols: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(
        cols,
        ["PID", "UID", "COMM", "FILENAME"],
        "stdout:\n{stdout}"
    );
}

#[test]
fn new_build_package_push_pull_run_shows_own_openat() {
    let registry = Registry::start();
    let project = Project::new("copensnoop");

    ok(&mut project.cmd(&["build"]));
    let arch_dir = project.dir.join("target/ebpf/x86_64");
    let object = arch_dir.join("copensnoop.bpf.o");
    let loader = arch_dir.join("copensnoop");
    assert!(
        object.is_file() && loader.is_file(),
        "build outputs missing"
    );
    let again = ok(&mut project.cmd(&["build"]));
    let again = String::from_utf8_lossy(&again.stderr);
    assert!(
        again.contains("Fresh"),
        "second build was not fresh: {again}"
    );

    ok(&mut project.cmd(&["package"]));
    let reference = format!("{}/packs/copensnoop:0.1.0", registry.addr());
    ok(&mut project.cmd(&["push", &reference]));

    // Someone else, with an empty store and no project: pull, then run the package.
    let user = Env::new();
    ok(&mut user.cmd(["pull", &reference]));
    let secs = RUN_SECS.to_string();
    let run = user.cmd(["run", &reference, "--duration", &secs]);
    let (stdout, stderr, file) = run_while_opening(run, user.path());
    assert_header_first(&stdout);
    let mine = events_for(&stdout, &file);
    assert!(
        mine.contains(&(std::process::id(), 0)),
        "no event (pid {}, uid 0) for {file}; stdout:\n{stdout}\nstderr:\n{stderr}",
        std::process::id()
    );

    // `-- -p 1`: the loader's pid filter, set in .rodata before load, hides our opens.
    let mut run = user.cmd(["run", &reference, "--duration", &secs]);
    run.args(["--", "-p", "1"]);
    let (stdout, _, file) = run_while_opening(run, user.path());
    assert!(
        events_for(&stdout, &file).is_empty(),
        "filter leaked:\n{stdout}"
    );
    let pids: Vec<u32> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        pids.iter().all(|&p| p == 1),
        "only pid 1 may pass:\n{stdout}"
    );

    let help = ok(&mut user.cmd(["run", &reference, "--", "--help"]));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("Usage: copensnoop") && help.contains("--pid PID"),
        "loader usage not shown: {help}"
    );
}

/// The pack without cargo-ebpf: `make` in the generated directory, then the binary itself.
#[test]
fn pack_builds_with_plain_make_and_runs_standalone() {
    let project = Project::new("standalone");
    let make = Command::new("make")
        .current_dir(&project.dir)
        .output()
        .expect("make is installed (apt install make)");
    assert!(make.status.success(), "make failed:\n{}", cli::show(&make));
    let binary = project.dir.join("standalone");
    assert!(binary.is_file(), "make did not produce ./standalone");

    let help = Command::new(&binary).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("-p, --pid PID"));
    let bad = Command::new(&binary).args(["-p", "nope"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", cli::show(&bad));

    // Filtered to this process: every line after the header must be ours.
    let mut cmd = Command::new(&binary);
    cmd.args(["-p", &std::process::id().to_string()]);
    let marker = unique_marker(project.env.path(), "make");
    let mut bg = Background::spawn(cmd);
    bg.wait_for_stderr("Attached", Duration::from_secs(30));
    let until = Instant::now() + Duration::from_secs(2);
    cli::trigger_openat_while(&marker, || Instant::now() < until);
    bg.signal(libc::SIGINT);
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(0),
        "SIGINT must end it cleanly: {stderr}"
    );
    assert_header_first(&stdout);
    let file = marker.display().to_string();
    assert!(
        !events_for(&stdout, &file).is_empty(),
        "no event:\n{stdout}"
    );
    let others = stdout
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with(&format!("{} ", std::process::id())));
    assert_eq!(
        others.count(),
        0,
        "the -p filter let others through:\n{stdout}"
    );
}

/// A syntax error in the loader or the BPF program: exit 5, and the compiler's own message.
#[test]
fn compile_errors_exit_5_with_the_compilers_message() {
    let project = Project::new("broken");
    for (ext, needle) in [("c", "int main"), ("bpf.c", "SEC(\"tracepoint")] {
        let path = project.src(ext);
        let original = std::fs::read_to_string(&path).unwrap();
        let broken = original.replacen(needle, &format!("int oops = ;\n{needle}"), 1);
        assert_ne!(broken, original, "{needle} not in {}", path.display());
        std::fs::write(&path, broken).unwrap();
        let err = fails(&mut project.cmd(&["build"]), 5);
        assert!(err.contains("make failed to build broken"), "{err}");
        assert!(
            err.contains(&format!("src/broken.{ext}:")) && err.contains("error: expected"),
            "compiler diagnostics missing: {err}"
        );
        std::fs::write(&path, original).unwrap();
    }
    ok(&mut project.cmd(&["build"]));
}

/// `--arch aarch64` either cross-builds an aarch64 loader (when the arm64 libraries are
/// installed) or says exactly why it cannot: never a half-built or host-arch binary.
#[test]
fn cross_build_for_aarch64_builds_or_says_why_not() {
    let project = Project::new("crossc");
    let arm64_libs = Path::new("/usr/lib/aarch64-linux-gnu/libbpf.a").is_file();
    let out = project
        .cmd(&["build", "--arch", "aarch64"])
        .output()
        .unwrap();
    let loader = project.dir.join("target/ebpf/aarch64/crossc");
    if arm64_libs {
        assert!(out.status.success(), "{}", cli::show(&out));
        let elf = std::fs::read(&loader).unwrap();
        const EM_AARCH64: u16 = 183;
        assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), EM_AARCH64);
    } else {
        assert_eq!(out.status.code(), Some(4), "{}", cli::show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("cannot cross-build the c loader for aarch64")
                && err.contains("libbpf-dev:arm64"),
            "{err}"
        );
        assert!(!loader.exists(), "a loader was left behind");
    }
}

/// Without make (or a C compiler) on PATH: exit 4 naming the package to install.
#[test]
fn missing_make_or_cc_is_an_environment_error() {
    let project = Project::new("notools");
    let bin = project.env.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/bin/clang", bin.join("clang")).unwrap();
    let err = fails(project.cmd(&["build"]).env("PATH", &bin), 4);
    assert!(
        err.contains("make was not found") && err.contains("apt install make"),
        "{err}"
    );

    std::os::unix::fs::symlink("/usr/bin/make", bin.join("make")).unwrap();
    let err = fails(
        project.cmd(&["build"]).env("PATH", &bin).env_remove("CC"),
        4,
    );
    assert!(
        err.contains("no C compiler") && err.contains("apt install gcc"),
        "{err}"
    );
}
