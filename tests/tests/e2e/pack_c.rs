//! The `c` template pack, end to end, as root: `new --lang c` → `build` (the pack's own
//! Makefile: clang, bpftool skeleton, gcc) → `package` → `push` to a real docker-registry →
//! `pull` and `run` in a fresh environment, where `run` starts the packaged C loader, which
//! loads and attaches the program while this test opens a file and looks for its own event.
//! Also: the pack on its own (plain `make`, the binary run directly), compile errors, and
//! cross-builds.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ebpf_e2e_tests::cli::{self, fails, ok, Background, Env};
use ebpf_e2e_tests::project::{
    elf_machine, loader_events, loader_events_for, run_command, run_while_opening, unique_path,
    Project, EM_AARCH64,
};
use ebpf_e2e_tests::Registry;
use ebpf_e2e_tests::{needs, Need};

/// What the c pack's Makefile needs: clang and bpftool (skeleton, vmlinux.h), make, gcc
/// and libbpf's headers.
const C_PACK: &[Need] = &[
    Need::Build,
    Need::Tool("make", "make"),
    Need::Tool("gcc", "gcc"),
    Need::File("/usr/include/bpf/libbpf.h", "libbpf-dev"),
];

#[test]
fn new_build_package_push_pull_run_shows_own_openat() {
    if !(needs(C_PACK) && needs(&[Need::Kernel, Need::Registry])) {
        return;
    }
    let registry = Registry::start();
    let project = Project::new("copensnoop", "c");

    ok(&mut project.cmd(&["build"]));
    let object = project.built("x86_64", "copensnoop.bpf.o");
    let loader = project.built("x86_64", "copensnoop");
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
    let run = run_while_opening(run_command(&user, &reference, &[], &[]), user.path());
    let (stdout, stderr, file) = (&run.stdout, &run.stderr, &run.file);
    let mine = loader_events_for(stdout, file);
    assert!(
        mine.contains(&(std::process::id(), 0)),
        "no event (pid {}, uid 0) for {file}; stdout:\n{stdout}\nstderr:\n{stderr}",
        std::process::id()
    );

    // `-- -p 1`: the loader's pid filter, set in .rodata before load, hides our opens.
    let run = run_command(&user, &reference, &[], &["-p", "1"]);
    let run = run_while_opening(run, user.path());
    let stdout = &run.stdout;
    assert!(
        loader_events_for(stdout, &run.file).is_empty(),
        "filter leaked:\n{stdout}"
    );
    assert!(
        loader_events(stdout).iter().all(|e| e.pid == 1),
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
    if !(needs(C_PACK) && needs(&[Need::Kernel])) {
        return;
    }
    let project = Project::new("standalone", "c");
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
    let marker = unique_path(project.env.path(), "pack-c-make");
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
    let file = marker.display().to_string();
    assert!(
        !loader_events_for(&stdout, &file).is_empty(),
        "no event:\n{stdout}"
    );
    assert!(
        loader_events(&stdout)
            .iter()
            .all(|e| e.pid == std::process::id()),
        "the -p filter let others through:\n{stdout}"
    );
}

/// A syntax error in the loader or the BPF program: exit 5, and the compiler's own message.
#[test]
fn compile_errors_exit_5_with_the_compilers_message() {
    if !needs(C_PACK) {
        return;
    }
    let project = Project::new("broken", "c");
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
    if !needs(C_PACK) {
        return;
    }
    let project = Project::new("crossc", "c");
    let arm64_libs = Path::new("/usr/lib/aarch64-linux-gnu/libbpf.a").is_file();
    let out = project
        .cmd(&["build", "--arch", "aarch64"])
        .output()
        .unwrap();
    let loader = project.built("aarch64", "crossc");
    if arm64_libs {
        assert!(out.status.success(), "{}", cli::show(&out));
        assert_eq!(elf_machine(&loader), EM_AARCH64);
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
    if !needs(&[Need::Tool("clang", "clang")]) {
        return;
    }
    let project = Project::new("notools", "c");
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
