//! The registry commands as a user meets them: exit codes and messages of `login`, `push`
//! and `pull` against a real docker-registry, and a store left untouched when a pull fails.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use ebpf_e2e_tests::cli::{fails, ok, show, Env};
use ebpf_e2e_tests::{free_port, snapshot_dir, Registry};
use ebpf_e2e_tests::{needs, Need};

fn with_stdin(mut cmd: Command, input: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn new_project(env: &Env, name: &str) -> std::path::PathBuf {
    let dir = env.path().join(name);
    ok(env.cmd(["new", name, "--path"]).arg(&dir));
    dir
}

#[test]
fn login_checks_password_then_push_and_pull_use_it() {
    if !needs(&[Need::Build, Need::Registry]) {
        return;
    }
    let registry = Registry::start_with_auth("alice", "s3cret");
    let env = Env::new();
    let project = new_project(&env, "authy");
    let reference = format!("{}/alice/authy:0.1.0", registry.addr());

    // Without credentials the push is refused with a hint to log in.
    let err = fails(
        env.cmd(["push", &reference, "--manifest-path"])
            .arg(&project),
        7,
    );
    assert!(err.contains("cargo ebpf login"), "{err}");

    let wrong = with_stdin(
        env.cmd(["login", registry.addr(), "-u", "alice", "--password-stdin"]),
        "nope\n",
    );
    assert_eq!(wrong.status.code(), Some(7), "{}", show(&wrong));
    let config = env.path().join("docker/config.json");
    assert!(!config.exists(), "a failed login writes nothing");

    let right = with_stdin(
        env.cmd(["login", registry.addr(), "-u", "alice", "--password-stdin"]),
        "s3cret\n",
    );
    assert!(right.status.success(), "{}", show(&right));
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    ok(env
        .cmd(["push", &reference, "--manifest-path"])
        .arg(&project));
    ok(&mut env.cmd(["pull", &reference]));
    let listed = String::from_utf8(ok(&mut env.cmd(["list"])).stdout).unwrap();
    assert!(listed.contains("alice/authy"), "{listed}");
}

#[test]
fn corrupt_blob_fails_pull_and_leaves_store_alone() {
    if !needs(&[Need::Build, Need::Registry]) {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let project = new_project(&env, "corrupt");
    let good = format!("{}/x/corrupt:0.1.0", registry.addr());
    ok(env.cmd(["push", &good, "--manifest-path"]).arg(&project));
    ok(&mut env.cmd(["pull", &good]));
    let store = env.path().join("ebpf-home/store");
    let before = snapshot_dir(&store);

    // Push a second version, then flip a byte of its layer on the registry's disk.
    let bad = format!("{}/x/corrupt:0.2.0", registry.addr());
    let manifest_path = project.join("ebpf.toml");
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(
        &manifest_path,
        text.replace("version = \"0.1.0\"", "version = \"0.2.0\""),
    )
    .unwrap();
    let pushed =
        String::from_utf8(ok(env.cmd(["push", &bad, "--manifest-path"]).arg(&project)).stdout)
            .unwrap();
    let digest = pushed.trim().rsplit('@').next().unwrap();
    let manifest = manifest_of(&registry, digest);
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let path = registry.blob_data_path(layer);
    let mut data = std::fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&path, data).unwrap();

    let err = fails(&mut env.cmd(["pull", &bad]), 8);
    assert!(err.contains("does not match its digest"), "{err}");
    assert_eq!(
        snapshot_dir(&store),
        before,
        "the store changed after a failed pull"
    );
    // `run` of the corrupt package fails the same way, before loading anything.
    fails(&mut env.cmd(["run", &bad, "--duration", "1"]), 8);
    assert_eq!(snapshot_dir(&store), before);
}

#[test]
fn unreachable_registry_is_a_clear_error() {
    let env = Env::new();
    let reference = format!("127.0.0.1:{}/x/y:1.0.0", free_port());
    let err = fails(&mut env.cmd(["pull", &reference]), 6);
    assert!(err.contains("cannot reach registry"), "{err}");
    let err = fails(&mut env.cmd(["run", &reference]), 6);
    assert!(err.contains("cannot reach registry"), "{err}");
}

fn manifest_of(registry: &Registry, digest: &str) -> serde_json::Value {
    let hex = digest.trim_start_matches("sha256:");
    let path = registry.storage_dir().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A pull killed (SIGKILL) while a blob is half downloaded leaves no package behind, and
/// the next pull works.
#[test]
fn pull_killed_mid_blob_leaves_no_half_package() {
    if !needs(&[Need::Build, Need::Registry]) {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let project = new_project(&env, "killed");
    let direct = format!("{}/x/killed:0.1.0", registry.addr());
    let pushed =
        String::from_utf8(ok(env.cmd(["push", &direct, "--manifest-path"]).arg(&project)).stdout)
            .unwrap();
    let manifest = manifest_of(&registry, pushed.trim().rsplit('@').next().unwrap());
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    let proxy = ebpf_e2e_tests::proxy::StallingProxy::start(registry.addr(), &layer, 600);
    let via_proxy = format!("{}/x/killed:0.1.0", proxy.addr());
    let mut child = env
        .cmd(["pull", &via_proxy])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !proxy.has_stalled() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pull never reached the layer"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the pull ended before the stall"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();

    let listed = ok(&mut env.cmd(["list", "--json"]));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&listed.stdout).unwrap(),
        serde_json::json!([])
    );
    let store = env.path().join("ebpf-home/store");
    for (path, bytes) in snapshot_dir(&store) {
        if let Some(hex) = path.to_str().unwrap().strip_prefix("blobs/sha256/") {
            assert_eq!(
                ebpf_package::digest::sha256(&bytes),
                format!("sha256:{hex}"),
                "half blob {path:?}"
            );
        }
    }
    fails(&mut env.cmd(["rm", &via_proxy]), 3);

    proxy.disarm();
    ok(&mut env.cmd(["pull", &via_proxy]));
    let listed = String::from_utf8(ok(&mut env.cmd(["list"])).stdout).unwrap();
    assert!(listed.contains("x/killed"), "{listed}");
}

#[test]
fn publish_pushes_to_the_manifest_registry_tagged_with_the_version() {
    if !needs(&[Need::Build, Need::Registry]) {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let project = new_project(&env, "pubme");
    let err = fails(env.cmd(["publish", "--manifest-path"]).arg(&project), 3);
    assert!(
        err.contains("registry"),
        "says the registry is missing: {err}"
    );

    let manifest = project.join("ebpf.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let line = format!("registry = \"{}/team\"", registry.addr());
    std::fs::write(
        &manifest,
        text.replace("# registry = \"localhost:5000/you\"", &line),
    )
    .unwrap();
    let out = String::from_utf8(ok(env.cmd(["publish", "--manifest-path"]).arg(&project)).stdout)
        .unwrap();
    let expected = format!("{}/team/pubme:0.1.0@sha256:", registry.addr());
    assert!(out.starts_with(&expected), "{out}");
    ok(&mut env.cmd(["pull", &format!("{}/team/pubme:0.1.0", registry.addr())]));
}
