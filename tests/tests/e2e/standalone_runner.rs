//! The standalone `ebpf-runner` binary, as a server without Rust would use it: a package
//! built and pushed by `cargo ebpf` to a real registry is pulled, listed and run by
//! `ebpf-runner` on the real kernel (this test triggers the traced syscall and finds its own
//! event); `run -d`/`ps`/`stop` work with the runner as their daemon; its `--help` has no
//! developer commands, and it links none of the developer-only crates.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ebpf_e2e_tests::cli::{
    self, cargo_ebpf_bin, fails, ok, runner_bin, workspace_root, Background, Env,
};
use ebpf_e2e_tests::{bpftool_has_prog, project, Registry};
use ebpf_e2e_tests::{needs, Need};

const RUN_SECS: u64 = 6;

/// Crates only the developer side needs: template packs, git templates, manifests.
// toml is not here: the runner reads its trust policy (trust.toml).
const DEVELOPER_ONLY: &[&str] = &["handlebars", "git2", "include_dir", "walkdir"];

/// `cargo ebpf new` + `push` of an eunomia opensnoop (the developer's machine); returns
/// its reference.
fn publish(env: &Env, registry: &Registry, name: &str) -> String {
    project::publish_eunomia(env, registry.addr(), "standalone", name)
}

fn stdout(out: std::process::Output) -> String {
    String::from_utf8(out.stdout).expect("UTF-8 stdout")
}

#[test]
fn pull_list_and_run_a_pushed_package() {
    if !needs(&[Need::Kernel, Need::Build, Need::Registry]) {
        return;
    }
    let registry = Registry::start();
    let developer = Env::new();
    let reference = publish(&developer, &registry, "runnersnoop");

    // The server: its own empty store, only the runner binary.
    let server = Env::new();
    let listed = stdout(ok(&mut server.runner_cmd(["list", "--json"])));
    assert_eq!(listed.trim(), "[]");
    let digest = stdout(ok(&mut server.runner_cmd(["pull", &reference])));
    assert!(
        digest.trim().starts_with("sha256:"),
        "pull printed {digest:?}"
    );
    let listed = stdout(ok(&mut server.runner_cmd(["list"])));
    assert!(listed.contains(&reference), "list: {listed}");
    let short = &digest.trim()["sha256:".len()..][..12];
    assert!(listed.contains(short), "list lacks {short}: {listed}");

    let secs = RUN_SECS.to_string();
    let run = server.runner_cmd(["run", &reference, "--output", "json", "--duration", &secs]);
    let marker = server
        .path()
        .join(format!("standalone-{}", std::process::id()));
    let mut bg = Background::spawn(run);
    bg.wait_for_stderr("Attached", Duration::from_secs(60));
    let until = Instant::now() + Duration::from_secs(2);
    assert!(cli::trigger_openat_while(&marker, || Instant::now() < until) > 0);
    let (status, out, err) = bg.finish(Duration::from_secs(RUN_SECS + 30));
    assert!(status.success(), "run failed: {status}\n{err}");
    // Before it attaches, run says what it will do: where, and with which capabilities.
    let first: Vec<&str> = err.lines().take(4).collect();
    assert_eq!(first[0], "Plan:", "{err}");
    assert!(
        first[1].contains("attach: handle_openat → tracepoint syscalls:sys_enter_openat"),
        "{err}"
    );
    assert!(first[2].contains("needs:  CAP_BPF"), "{err}");
    assert!(
        first[3].contains("CAP_PERFMON (to load and attach tracepoint programs)"),
        "{err}"
    );
    let events = cli::ndjson(&out);
    let marker = marker.display().to_string();
    let mine = events
        .iter()
        .find(|e| e["filename"] == marker.as_str())
        .unwrap_or_else(|| panic!("no event for {marker} among {} events", events.len()));
    assert_eq!(mine["pid"], std::process::id(), "{mine}");

    // Building is cargo-ebpf's: a project directory is refused with a way out.
    let project = developer.path().join("work/runnersnoop");
    let err = fails(server.runner_cmd(["run"]).arg(&project), 3);
    // miette wraps long lines: compare words.
    let err = err
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(err.contains("not an OCI image layout"), "{err}");
    assert!(err.contains("cargo ebpf run"), "{err}");
}

/// The command names of a `--help` text (its "Commands:" section).
fn help_commands(help: &str) -> BTreeSet<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn help_lists_only_runner_commands() {
    let env = Env::new();
    let help = stdout(ok(&mut env.runner_cmd(["--help"])));
    let expected: BTreeSet<String> = [
        "login", "pull", "run", "list", "rm", "inspect", "install", "start", "ps", "logs", "stop",
        "verify", "trust", "search", "config", "logout", "outdated", "upgrade", "diff", "mirror",
        "doctor", "help",
    ]
    .map(String::from)
    .into();
    assert_eq!(help_commands(&help), expected, "{help}");
    assert!(help.starts_with("Pull and run eBPF packages"), "{help}");
    // The developer commands do not exist here, and say so the way clap does (exit 2).
    for cmd in ["new", "build", "package", "push", "publish", "sign", "key"] {
        let err = fails(&mut env.runner_cmd([cmd]), 2);
        assert!(err.contains("unrecognized subcommand"), "{cmd}: {err}");
    }
    // `start` is already in the background: no -d there; `run` has it, and names every
    // kind of target it takes.
    let start = stdout(ok(&mut env.runner_cmd(["start", "--help"])));
    assert!(!start.contains("--detach"), "{start}");
    let run = stdout(ok(&mut env.runner_cmd(["run", "--help"])));
    assert!(run.contains("-d, --detach"), "{run}");
    assert!(
        run.lines().next().unwrap().contains("a package.json"),
        "{run}"
    );
    // cargo-ebpf still lists both sides, from the same definitions.
    let full = stdout(ok(&mut env.cmd(["--help"])));
    let full = help_commands(&full);
    assert!(full.is_superset(&expected), "{full:?}");
    assert!(full.contains("publish"), "{full:?}");
}

/// The run `id` as `ebpf-runner ps --json --all` shows it.
fn ps_entry(env: &Env, id: &str) -> serde_json::Value {
    let out = ok(&mut env.runner_cmd(["ps", "--all", "--json"]));
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    runs.into_iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("run {id} not in ps"))
}

#[test]
fn detached_run_ps_and_stop() {
    if !needs(&[Need::Kernel, Need::Build, Need::Registry]) {
        return;
    }
    let registry = Registry::start();
    let developer = Env::new();
    let reference = publish(&developer, &registry, "runnerdaemon");
    let server = Env::new();

    let out = ok(&mut server.runner_cmd(["run", "-d", &reference, "--output", "json"]));
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let id = stdout(out).trim().to_string();
    assert_eq!(id.len(), 8, "run -d printed {id:?}");
    // Its hints name the binary in use, not cargo ebpf.
    assert!(said.contains(&format!("`ebpf-runner stop {id}`")), "{said}");

    let entry = ps_entry(&server, &id);
    assert_eq!(entry["status"], "running", "{entry}");
    // The daemon is this binary re-executed (`ebpf-runner __daemon ID`).
    let pid = entry["pid"].as_i64().expect("daemon pid");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("daemon exe");
    assert_eq!(exe, runner_bin().canonicalize().unwrap());
    let ids: Vec<u64> = entry["program_ids"]
        .as_array()
        .expect("program_ids")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(
        !ids.is_empty() && ids.iter().all(|p| bpftool_has_prog(*p)),
        "{entry}"
    );
    let table = stdout(ok(&mut server.runner_cmd(["ps"])));
    assert!(table.contains(&id), "{table}");

    let err = fails(&mut server.runner_cmd(["rm", &reference]), 3);
    assert!(err.contains(&format!("ebpf-runner stop {id}")), "{err}");

    let out = ok(&mut server.runner_cmd(["stop", &id]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("Stopped run {id}")), "{said}");
    for prog in &ids {
        assert!(!bpftool_has_prog(*prog), "program {prog} still loaded");
    }
    assert_eq!(ps_entry(&server, &id)["status"], "stopped");
    // The daemon's log lines and the lifecycle's hints name this binary too.
    let logs = cli::show(&ok(&mut server.runner_cmd(["logs", &id])));
    assert!(
        logs.contains(&format!("ebpf-runner: run {id} of")),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("ebpf-runner: run {id} ended")),
        "{logs}"
    );
    let err = fails(&mut server.runner_cmd(["stop", "zzzzzzzz"]), 3);
    assert!(err.contains("`ebpf-runner ps --all`"), "{err}");
    ok(&mut server.runner_cmd(["rm", &reference]));
}

/// The crates `cargo tree` shows for the runner's normal dependencies.
fn runner_dependency_tree() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "ebpf-runner",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "{}", cli::show(&out));
    stdout(out)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Whether the binary holds source paths of `krate` (`…/registry/src/…/<krate>-<version>/`):
/// debug info and panic locations name every linked crate this way. grep scans the
/// binaries far faster than an unoptimized test could.
fn links_crate(binary: &Path, krate: &str) -> bool {
    let status = Command::new("grep")
        .args(["-aqE", &format!("/{krate}-[0-9]")])
        .arg(binary)
        .status()
        .expect("run grep");
    assert!(
        status.code().is_some_and(|c| c < 2),
        "grep failed on {}",
        binary.display()
    );
    status.success()
}

#[test]
fn runner_links_no_developer_only_crates() {
    let tree = runner_dependency_tree();
    for needed in ["ebpf-runner", "libbpf-rs", "clap", "oci-client"] {
        assert!(tree.contains(needed), "cargo tree lacks {needed}: {tree:?}");
    }
    for krate in DEVELOPER_ONLY.iter().chain(&["cargo-ebpf"]) {
        assert!(!tree.contains(*krate), "the runner depends on {krate}");
    }

    let (runner, developer) = (runner_bin(), cargo_ebpf_bin());
    assert!(
        links_crate(&runner, "libbpf-rs"),
        "the marker check finds nothing"
    );
    for krate in DEVELOPER_ONLY {
        // cargo-ebpf shows the check sees these crates when they are linked.
        assert!(
            links_crate(&developer, krate),
            "cargo-ebpf without {krate}?"
        );
        assert!(!links_crate(&runner, krate), "ebpf-runner links {krate}");
    }
}
