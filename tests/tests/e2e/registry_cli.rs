//! The registry commands as a user meets them: exit codes and messages of `login`, `push`
//! and `pull` against a real docker-registry, and a store left untouched when a pull fails.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use ebpf_e2e_tests::cli::{fails, ok, show, Env};
use ebpf_e2e_tests::{free_port, http_status, snapshot_dir, Registry};
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

/// A push reads a large layer once, as it sends it: a layer damaged in the layout after
/// `package` stops the upload before its end, the registry keeps nothing, and `package`
/// (which reads every blob) repairs the layout for the next push.
#[test]
fn a_layer_damaged_after_package_stops_the_push_and_package_repairs_it() {
    if !needs(&[Need::Build, Need::Registry]) {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let project = new_project(&env, "damaged");
    std::fs::write(project.join("payload.bin"), noise(6 << 20)).unwrap();
    let mut toml = std::fs::OpenOptions::new()
        .append(true)
        .open(project.join("ebpf.toml"))
        .unwrap();
    writeln!(
        toml,
        "\n[[run.files]]\nsrc = \"payload.bin\"\ndest = \"/tmp/damaged.bin\""
    )
    .unwrap();
    ok(env.cmd(["package", "--manifest-path"]).arg(&project));
    let layout = project.join("target/ebpf/oci");
    let layer = largest_layer(&layout);
    let blob = layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    assert!(
        bytes.len() > 4 << 20,
        "the layer is small enough to be read whole"
    );
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();

    let reference = format!("{}/x/damaged:0.1.0", registry.addr());
    let err = fails(
        env.cmd(["push", &reference, "--manifest-path"])
            .arg(&project),
        8,
    );
    let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(err.contains("does not match its digest"), "{err}");
    assert!(err.contains("run `cargo ebpf package`"), "{err}");
    let addr = registry.addr();
    assert_eq!(
        http_status(addr, "/v2/x/damaged/manifests/0.1.0"),
        Some(404)
    );
    assert_eq!(
        http_status(addr, &format!("/v2/x/damaged/blobs/{layer}")),
        Some(404)
    );

    ok(env.cmd(["package", "--manifest-path"]).arg(&project));
    let repaired = std::fs::read(&blob).unwrap() != bytes;
    assert!(repaired, "package kept the damaged layer");
    let pushed = ok(env
        .cmd(["push", &reference, "--manifest-path"])
        .arg(&project))
    .stdout;
    let digest = String::from_utf8(pushed).unwrap();
    let digest = digest.trim().rsplit('@').next().unwrap().to_string();
    assert_eq!(
        manifest_of(&registry, &digest)["layers"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        http_status(addr, &format!("/v2/x/damaged/blobs/{layer}")),
        Some(200)
    );
}

/// Random bytes: gzip cannot shrink them, so a layer holding them stays large.
fn noise(len: u64) -> Vec<u8> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let random = std::fs::File::open("/dev/urandom").unwrap();
    random.take(len).read_to_end(&mut bytes).unwrap();
    bytes
}

/// The digest of the largest layer of the package an OCI layout's first entry names.
fn largest_layer(layout: &std::path::Path) -> String {
    let read = |digest: &str| -> serde_json::Value {
        let path = layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = read(index["manifests"][0]["digest"].as_str().unwrap());
    let layers = manifest["layers"].as_array().unwrap();
    let largest = layers.iter().max_by_key(|l| l["size"].as_u64()).unwrap();
    largest["digest"].as_str().unwrap().to_string()
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
