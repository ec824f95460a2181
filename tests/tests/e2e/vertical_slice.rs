//! The vertical slice, end to end, as root: `new` → `build` → `package` → `push` to a real
//! docker-registry → empty store → `run REF` with the kernel attaching the program, while
//! this test makes the syscall it traces and looks for its own event.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ebpf_e2e_tests::cli::{fails, ok, Background, Env};
use ebpf_e2e_tests::project::{events_about, run_command, run_while_opening, Project, RUN_SECS};
use ebpf_e2e_tests::Registry;
use ebpf_e2e_tests::{needs, Need};

/// Runs `cargo-ebpf run TARGET --output json --duration N [-- EXTRA]` while opening a
/// unique file; returns (events, the file opened, this thread's comm).
fn run_and_trigger(
    env: &Env,
    target: &str,
    extra: &[&str],
) -> (Vec<serde_json::Value>, String, String) {
    let run = run_while_opening(
        run_command(env, target, &["--output", "json"], extra),
        env.path(),
    );
    (run.json_events(), run.file, run.comm)
}

#[test]
fn new_build_package_push_pull_run_sees_own_event() {
    if !needs(&[Need::Kernel, Need::Build, Need::Registry, Need::Skopeo]) {
        return;
    }
    let registry = Registry::start();
    let slice = Project::new("opensnoop", "eunomia");

    ok(&mut slice.cmd(&["build"]));
    let object = slice.built("x86_64", "opensnoop.bpf.o");
    assert!(object.is_file(), "no object at {}", object.display());
    ok(&mut slice.cmd(&["package"]));
    assert!(slice.dir.join("target/ebpf/oci/index.json").is_file());

    let reference = format!("{}/slice/opensnoop:0.1.0", registry.addr());
    let pushed = ok(&mut slice.cmd(&["push", &reference]));
    let pushed = String::from_utf8(pushed.stdout).unwrap();
    let digest = pushed.trim().rsplit('@').next().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "push printed {pushed:?}");

    // skopeo, a real OCI client, sees the same manifest digest we pushed.
    let oci_dir = slice.env.path().join("skopeo-copy");
    let status = Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .arg(format!("oci:{}:copied", oci_dir.display()))
        .status()
        .expect("run skopeo");
    assert!(status.success());
    assert_eq!(manifest_digest_in_layout(&oci_dir), digest);

    // The store is empty: run must pull, verify, store, then load and attach.
    let listed = ok(&mut slice.env.cmd(["list", "--json"]));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&listed.stdout).unwrap(),
        serde_json::json!([])
    );

    let (events, file, comm) = run_and_trigger(&slice.env, &reference, &[]);
    let mine = events_about(&events, &file);
    assert!(
        !mine.is_empty(),
        "no event for {file} among {} events",
        events.len()
    );
    let e = mine[0];
    assert_eq!(e["pid"], std::process::id(), "{e}");
    assert_eq!(e["comm"], comm.as_str(), "{e}");
    assert_eq!(e["uid"], 0, "{e}");

    // The const volatile filter, set to another pid, hides this process's events.
    let (events, file, _) = run_and_trigger(&slice.env, &reference, &["--target-pid", "1"]);
    assert!(
        events_about(&events, &file).is_empty(),
        "filter let our events through: {events:?}"
    );
    assert!(
        events.iter().all(|e| e["pid"] == 1),
        "only pid 1 may pass: {events:?}"
    );

    let listed = String::from_utf8(ok(&mut slice.env.cmd(["list"])).stdout).unwrap();
    assert!(listed.contains(&reference), "list: {listed}");
    ok(&mut slice.env.cmd(["rm", &reference]));
    fails(&mut slice.env.cmd(["rm", &reference]), 3);
}

#[test]
fn run_accepts_project_dir_object_and_layout() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let slice = Project::new("opensnoop-paths", "eunomia");
    ok(&mut slice.cmd(&["package"]));
    let object = slice.built("x86_64", "opensnoop-paths.bpf.o");
    let layout = slice.dir.join("target/ebpf/oci");
    for target in [slice.dir.as_path(), object.as_path(), layout.as_path()] {
        let (events, file, _) = run_and_trigger(&slice.env, target.to_str().unwrap(), &[]);
        assert!(
            !events_about(&events, &file).is_empty(),
            "no event running {}",
            target.display()
        );
    }
}

#[test]
fn program_flags_are_listed_by_help() {
    if !needs(&[Need::Build]) {
        return;
    }
    let slice = Project::new("helpme", "eunomia");
    ok(&mut slice.cmd(&["build"]));
    let object = slice.built("x86_64", "helpme.bpf.o");
    let out = ok(slice.env.cmd(["run"]).arg(&object).args(["--", "--help"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--target-pid"), "help was: {text}");
    let err = fails(
        slice
            .env
            .cmd(["run"])
            .arg(&object)
            .args(["--", "--no-such-flag", "1"]),
        2,
    );
    assert!(
        err.contains("--target-pid"),
        "unknown-flag error should list flags: {err}"
    );
}

/// A fresh machine has neither tracefs nor bpffs mounted: in a private mount namespace
/// without them, `run` mounts both, says so, and still sees this test's event. debugfs goes
/// too: while it is mounted, a lookup of /sys/kernel/debug/tracing automounts tracefs.
#[test]
fn run_mounts_tracefs_and_bpffs_when_missing() {
    if !needs(&[Need::Kernel, Need::Build, Need::MountNs]) {
        return;
    }
    let slice = Project::new("mounts", "eunomia");
    ok(&mut slice.cmd(&["build"]));
    let object = slice.built("x86_64", "mounts.bpf.o");
    let run = slice.env.cmd(["run"]);
    let script = format!(
        "for m in /sys/kernel/debug/tracing /sys/kernel/debug /sys/kernel/tracing /sys/fs/bpf; do \
           while mountpoint -q $m; do umount $m || exit 1; done; done; \
         exec {} run {} --output json --duration {RUN_SECS}",
        run.get_program().to_string_lossy(),
        object.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    cmd.envs(run.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    let run = run_while_opening(cmd, slice.env.path());
    assert!(run.stderr.contains("Mounted tracefs"), "{}", run.stderr);
    assert!(run.stderr.contains("Mounted bpffs"), "{}", run.stderr);
    assert!(
        !events_about(&run.json_events(), &run.file).is_empty(),
        "no event after mounting"
    );
}

fn manifest_digest_in_layout(dir: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Ctrl-C (SIGINT) and SIGTERM end a run with no duration cleanly: exit 0, and the
/// programs and links it held are gone from the kernel.
#[test]
fn interrupt_detaches_and_leaves_nothing_in_the_kernel() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let slice = Project::new("ctrlc", "eunomia");
    ok(&mut slice.cmd(&["build"]));
    let object = slice.built("x86_64", "ctrlc.bpf.o");
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut cmd = slice.env.cmd(["run"]);
        cmd.arg(&object).args(["--output", "json"]);
        let mut bg = Background::spawn(cmd);
        bg.wait_for_stderr("Attached", Duration::from_secs(60));
        let held = bpf_ids_held_by(bg.pid());
        assert!(
            held.iter().any(|(kind, _)| kind == "prog"),
            "no program fd: {held:?}"
        );
        assert!(
            held.iter().any(|(kind, _)| kind == "link"),
            "no link fd: {held:?}"
        );
        bg.signal(signal);
        let (status, _, stderr) = bg.finish(Duration::from_secs(20));
        assert!(status.success(), "signal {signal}: {status}\n{stderr}");
        assert!(stderr.contains("detached"), "{stderr}");
        for (kind, id) in held {
            assert!(
                !bpf_object_exists(&kind, id),
                "{kind} {id} is still in the kernel"
            );
        }
    }
}

/// The BPF programs and links a process holds, from its fds' fdinfo: ("prog"|"link", id).
fn bpf_ids_held_by(pid: u32) -> Vec<(String, u32)> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            for kind in ["prog", "link"] {
                if let Some(id) = line.strip_prefix(&format!("{kind}_id:")) {
                    // A link's fdinfo names its program too; count only the link itself.
                    let is_link_fd = text.contains("link_type:");
                    if kind == "link" || !is_link_fd {
                        ids.push((kind.to_string(), id.trim().parse().unwrap()));
                    }
                }
            }
        }
    }
    ids
}

fn bpf_object_exists(kind: &str, id: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    // The kernel frees a program shortly after its last reference goes.
    loop {
        let out = Command::new("bpftool")
            .args([kind, "show", "id", &id.to_string()])
            .output()
            .expect("bpftool");
        if !out.status.success() || Instant::now() > deadline {
            return out.status.success();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
