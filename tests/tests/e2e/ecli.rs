//! Programs written for eunomia's ecli, unmodified, as root: kernel-only C whose event
//! struct lives in the header beside the .bpf.c and is reached only through
//! `bpf_ringbuf_reserve(&rb, sizeof(*e), 0)`, with `/// @description`-documented
//! `const volatile` flags, and an ebpf.toml holding nothing but name and version
//! (tests/fixtures/ecli/proclife). `cargo ebpf build` must anchor the struct itself, and
//! `cargo ebpf run` must decode the records of processes this test starts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// A shell that waits for a line on its stdin, then runs `sh -c 'exit CODE'` twenty times.
/// The records the filter must let through are its children, and it starts no others (no
/// `sleep`): every test of this binary runs in one process, so children of the test process
/// itself may be anyone's.
struct Trigger {
    shell: Child,
}

impl Trigger {
    fn spawn(code: i32) -> Trigger {
        let script = format!(
            "read go; i=0; while [ $i -lt 20 ]; do /bin/sh -c 'exit {code}'; i=$((i+1)); done"
        );
        let shell = Command::new("/bin/sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run /bin/sh");
        Trigger { shell }
    }

    fn pid(&self) -> String {
        self.shell.id().to_string()
    }

    /// Starts the children and waits until the last has exited.
    fn fire(mut self) {
        let mut stdin = self.shell.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        assert!(self.shell.wait().unwrap().success());
    }
}

/// Runs the program filtered to a fresh [`Trigger`]'s children; returns its records and
/// the trigger's pid.
fn run_json(env: &Env, dir: &Path, args: &[&str]) -> (Vec<Value>, String, String) {
    let trigger = Trigger::spawn(3);
    let parent = trigger.pid();
    let mut args: Vec<&str> = args.to_vec();
    args.extend(["--parent-pid", &parent]);
    let cmd = run_command(env, dir.to_str().unwrap(), &["--output", "json"], &args);
    let mut bg = Background::spawn(cmd);
    bg.wait_for_stderr("Attached", Duration::from_secs(120));
    trigger.fire();
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(RUN_SECS + 30));
    assert!(status.success(), "run failed: {status}\n{stderr}");
    (cli::ndjson(&stdout), stderr, parent)
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

    let (events, stderr, parent) = run_json(&env, &dir, &[]);
    assert!(stderr.contains("streaming events from `rb`"), "{stderr}");
    let execs: Vec<&Value> = events.iter().filter(|e| e["exiting"] == false).collect();
    let exits: Vec<&Value> = events.iter().filter(|e| e["exiting"] == true).collect();
    assert!(!execs.is_empty(), "no exec records: {events:?}");
    for e in &execs {
        assert_eq!(e["ppid"].to_string(), parent, "the filter let {e} through");
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
    let (events, _, _) = run_json(&env, &dir, &["--no-exits"]);
    assert!(events.iter().any(|e| e["exiting"] == false), "{events:?}");
    assert!(events.iter().all(|e| e["exiting"] == false), "{events:?}");
}
