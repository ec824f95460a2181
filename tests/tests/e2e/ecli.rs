//! Programs written for eunomia's ecli, unmodified, as root: kernel-only C whose event
//! struct lives in the header beside the .bpf.c and is reached only through
//! `bpf_ringbuf_reserve(&rb, sizeof(*e), 0)`, with `/// @description`-documented
//! `const volatile` flags, and an ebpf.toml holding nothing but name and version
//! (tests/fixtures/ecli/proclife). `cargo ebpf build` must anchor the struct itself, and
//! `cargo ebpf run` must decode the records of processes this test starts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use ebpf_e2e_tests::cli::{self, ok, Background, Env};
use ebpf_e2e_tests::project::{run_command, RUN_SECS};
use ebpf_e2e_tests::{needs, Need};

/// The fixture copied into `env`, so builds write nothing into the source tree.
fn copy_fixture(env: &Env, name: &str) -> PathBuf {
    let to = env.path().join("work").join(name);
    copy_dir(
        &cli::workspace_root().join("tests/fixtures/ecli").join(name),
        &to,
    );
    to
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// Runs `sh -c 'exit CODE'` every 100 ms for two seconds: each is an exec of the shell by
/// this process and an exit with CODE.
fn spawn_shells_exiting_with(code: i32) {
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let status = Command::new("/bin/sh")
            .args(["-c", &format!("exit {code}")])
            .status()
            .expect("run /bin/sh");
        assert_eq!(status.code(), Some(code));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_json(env: &Env, dir: &Path, args: &[&str]) -> (Vec<Value>, String) {
    let cmd = run_command(env, dir.to_str().unwrap(), &["--output", "json"], args);
    let mut bg = Background::spawn(cmd);
    bg.wait_for_stderr("Attached", Duration::from_secs(120));
    spawn_shells_exiting_with(3);
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(RUN_SECS + 30));
    assert!(status.success(), "run failed: {status}\n{stderr}");
    (cli::ndjson(&stdout), stderr)
}

#[test]
fn an_ecli_program_builds_and_runs_unmodified_with_decoded_events() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let env = Env::new();
    let dir = copy_fixture(&env, "proclife");

    let built = ok(env.cmd(["build", "--manifest-path"]).arg(&dir));
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(
        stderr.contains("Anchoring struct event from src/proclife.h"),
        "{stderr}"
    );

    // The documented flags, from the `/// @description` lines.
    let help = ok(env.cmd(["run"]).arg(&dir).args(["--", "--help"]));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--parent-pid"), "{help}");
    assert!(
        help.contains("Report only children of this parent process"),
        "{help}"
    );
    assert!(help.contains("Leave out exit records"), "{help}");

    let me = std::process::id().to_string();
    let (events, stderr) = run_json(&env, &dir, &["--parent-pid", &me]);
    assert!(stderr.contains("streaming events from `rb`"), "{stderr}");
    let execs: Vec<&Value> = events.iter().filter(|e| e["exiting"] == false).collect();
    let exits: Vec<&Value> = events.iter().filter(|e| e["exiting"] == true).collect();
    assert!(!execs.is_empty(), "no exec records: {events:?}");
    for e in &execs {
        assert_eq!(e["ppid"], std::process::id(), "the filter let {e} through");
        assert_eq!(e["comm"], "sh", "{e}");
        assert!(e["path"].as_str().unwrap().ends_with("sh"), "{e}");
        assert_eq!(e["lifetime_ns"], 0, "{e}");
    }
    assert!(!exits.is_empty(), "no exit records: {events:?}");
    for e in &exits {
        assert_eq!(e["exit_code"], 3, "{e}");
        assert_eq!(e["path"], "", "{e}");
        assert!(e["lifetime_ns"].as_u64().unwrap() > 0, "{e}");
    }
    // Every exit pairs with an exec of the same process.
    for exit in &exits {
        assert!(execs.iter().any(|e| e["pid"] == exit["pid"]), "{exit}");
    }

    // The bool flag turns exit records off.
    let (events, _) = run_json(&env, &dir, &["--parent-pid", &me, "--no-exits"]);
    assert!(events.iter().any(|e| e["exiting"] == false), "{events:?}");
    assert!(events.iter().all(|e| e["exiting"] == false), "{events:?}");
}
