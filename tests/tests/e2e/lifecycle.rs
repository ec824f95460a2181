//! Background runs on the real kernel: `run -d` an eunomia package from a real registry,
//! `ps` shows its program ids, its events reach `logs`, `rm` is refused while it runs,
//! `stop` leaves nothing in the kernel or bpffs; a run whose daemon was SIGKILLed keeps
//! its programs attached through the pins, and `stop` still cleans it; a second `stop`
//! is clean.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ebpf_e2e_tests::cli::{self, fails, ok, Env};
use ebpf_e2e_tests::{bpftool_has_prog, project, Registry};
use ebpf_e2e_tests::{needs, Need};

const BPFFS_ROOT: &str = "/sys/fs/bpf/cargo-ebpf";

/// Scaffolds, builds and pushes an eunomia opensnoop; returns its reference.
fn publish(env: &Env, registry: &Registry, name: &str) -> String {
    project::publish_eunomia(env, registry.addr(), "life", name)
}

/// `run -d REF --output json`; returns the run id it printed.
fn start(env: &Env, reference: &str) -> String {
    let out = ok(&mut env.cmd(["run", "-d", reference, "--output", "json"]));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(id.len(), 8, "run -d printed {id:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("as run {id}")), "{stderr}");
    id
}

/// The run `id` as `ps --json --all` shows it.
fn ps_entry(env: &Env, id: &str) -> serde_json::Value {
    let out = ok(&mut env.cmd(["ps", "--all", "--json"]));
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    runs.into_iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("run {id} not in ps"))
}

fn program_ids(entry: &serde_json::Value) -> Vec<u64> {
    entry["program_ids"]
        .as_array()
        .expect("program_ids")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

fn pin_dir(id: &str) -> PathBuf {
    Path::new(BPFFS_ROOT).join(id)
}

/// Opens a unique file until `logs ID` shows the event for it; returns the log.
fn wait_for_event_in_logs(env: &Env, id: &str) -> String {
    let marker = env.path().join(format!("life-{}-{id}", std::process::id()));
    let marker_text = marker.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = String::new();
    cli::trigger_openat_while(&marker, || {
        let out = ok(&mut env.cmd(["logs", id]));
        log = String::from_utf8_lossy(&out.stdout).into_owned();
        !log.contains(&marker_text) && Instant::now() < deadline
    });
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mine = events
        .iter()
        .find(|e| e["filename"] == marker_text.as_str())
        .unwrap_or_else(|| panic!("no event for {marker_text} in the log:\n{log}"));
    assert_eq!(mine["pid"], std::process::id(), "{mine}");
    log
}

#[test]
fn detached_run_ps_logs_stop_leaves_nothing_in_the_kernel() {
    if !needs(&[Need::Kernel, Need::Build, Need::Registry]) {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let reference = publish(&env, &registry, "lifesnoop");
    ok(&mut env.cmd(["install", &reference]));

    let id = start(&env, &reference);
    let entry = ps_entry(&env, &id);
    assert_eq!(entry["status"], "running", "{entry}");
    assert_eq!(entry["runtime"], "kernel", "{entry}");
    let ids = program_ids(&entry);
    assert!(!ids.is_empty(), "{entry}");
    assert!(ids.iter().all(|p| bpftool_has_prog(*p)));
    assert!(pin_dir(&id).join("link-handle_openat").exists());
    let table = String::from_utf8(ok(&mut env.cmd(["ps"])).stdout).unwrap();
    assert!(
        table.contains(&id) && table.contains(&ids[0].to_string()),
        "{table}"
    );

    wait_for_event_in_logs(&env, &id);

    let err = fails(&mut env.cmd(["rm", &reference]), 3);
    assert!(err.contains(&format!("in use by run {id}")), "{err}");
    assert!(err.contains(&format!("cargo ebpf stop {id}")), "{err}");

    let out = ok(&mut env.cmd(["stop", &id]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("Stopped run {id}")), "{said}");
    for prog in &ids {
        assert!(
            !bpftool_has_prog(*prog),
            "program {prog} still loaded after stop"
        );
    }
    assert!(!pin_dir(&id).exists());
    assert_eq!(ps_entry(&env, &id)["status"], "stopped");
    let plain_ps = String::from_utf8(ok(&mut env.cmd(["ps"])).stdout).unwrap();
    assert!(!plain_ps.contains(&id), "{plain_ps}");

    // A second stop is clean and says so.
    let out = ok(&mut env.cmd(["stop", &id]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("already stopped; nothing was left to clean"),
        "{said}"
    );

    ok(&mut env.cmd(["rm", &reference]));
    let err = fails(&mut env.cmd(["stop", "ffffffff"]), 3);
    assert!(err.contains("no run `ffffffff`"), "{err}");
}

#[test]
fn killed_daemon_keeps_programs_attached_until_stop_cleans_them() {
    if !needs(&[Need::Kernel, Need::Build, Need::Registry]) {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let reference = publish(&env, &registry, "crashsnoop");
    let id = start(&env, &reference);
    let entry = ps_entry(&env, &id);
    let ids = program_ids(&entry);
    let pid = entry["pid"].as_i64().expect("daemon pid") as i32;

    // SAFETY: kill(2) on the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ps_entry(&env, &id)["status"] == "running" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let entry = ps_entry(&env, &id);
    assert_eq!(entry["status"], "dead, programs attached", "{entry}");
    // The pins keep the programs in the kernel without any process.
    assert!(ids.iter().all(|p| bpftool_has_prog(*p)));

    let out = ok(&mut env.cmd(["stop", &id]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("unpinned"), "{said}");
    for prog in &ids {
        assert!(
            !bpftool_has_prog(*prog),
            "program {prog} still loaded after stop"
        );
    }
    assert!(!pin_dir(&id).exists());

    let out = ok(&mut env.cmd(["stop", &id]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("already stopped"), "{said}");
}
