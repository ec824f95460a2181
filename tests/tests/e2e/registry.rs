//! Push, pull, login and the local store against a real docker-registry, cross-checked with
//! a real skopeo.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ebpf_e2e_tests::{
    free_port, sample_meta, sample_package, sha256, skopeo, snapshot_dir, Registry,
};
use ebpf_e2e_tests::{needs, Need};
use ebpf_package::layout::OciLayout;
use ebpf_package::{ErrorKind, Package, Reference, Result};
use ebpf_runner::credentials::{self, AuthPaths, Credentials};
use ebpf_runner::registry::{self, ClientOptions};
use ebpf_runner::store::Store;

fn opts() -> ClientOptions {
    ClientOptions::default()
}

/// Credential paths inside `dir` only, so the host's own docker/skopeo logins never leak in.
fn isolated_auth(dir: &Path) -> AuthPaths {
    AuthPaths {
        registry_auth_file: None,
        xdg_runtime_dir: Some(dir.join("run")),
        docker_config_dir: Some(dir.join("docker")),
        home: Some(dir.join("home")),
    }
}

/// The registry client with explicit options and credential paths, as each test wants it.
fn client(opts: &ClientOptions, auth: &AuthPaths) -> registry::Registry {
    registry::Registry::new(opts.clone(), auth.clone())
}

fn push_with(
    pkg: &Package,
    reference: &str,
    opts: &ClientOptions,
    auth: &AuthPaths,
) -> Result<String> {
    client(opts, auth).push(pkg, &Reference::parse(reference)?)
}

fn pull_with(reference: &str, opts: &ClientOptions, auth: &AuthPaths) -> Result<Package> {
    client(opts, auth).pull(&Reference::parse(reference)?)
}

fn login_with(
    registry: &str,
    user: &str,
    password: &str,
    opts: &ClientOptions,
    auth: &AuthPaths,
) -> Result<std::path::PathBuf> {
    client(opts, auth).login(registry, user, password)
}

#[test]
fn push_then_pull_round_trips_with_the_same_digest() {
    if !needs(&[Need::Registry]) {
        return;
    }
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let auth = isolated_auth(tmp.path());
    let pkg = sample_package("hello", "0.1.0");
    let reference = format!("{}/demo/hello:0.1.0", reg.addr());

    let pushed = push_with(&pkg, &reference, &opts(), &auth).unwrap();
    assert_eq!(pushed, pkg.digest());
    // Pushing again is idempotent (blobs already there are skipped).
    assert_eq!(push_with(&pkg, &reference, &opts(), &auth).unwrap(), pushed);

    let pulled = pull_with(&reference, &opts(), &auth).unwrap();
    assert_eq!(pulled.digest(), pushed);
    assert_eq!(pulled.manifest_bytes, pkg.manifest_bytes);
    assert_eq!(pulled.object().unwrap(), pkg.object().unwrap());
    assert_eq!(pulled.meta().unwrap().name, "hello");

    // By digest too.
    let by_digest = format!("{}/demo/hello@{pushed}", reg.addr());
    assert_eq!(
        pull_with(&by_digest, &opts(), &auth).unwrap().digest(),
        pushed
    );

    let missing =
        pull_with(&format!("{}/demo/hello:9.9.9", reg.addr()), &opts(), &auth).unwrap_err();
    assert_eq!(missing.kind, ErrorKind::Registry, "{}", missing.message);
    assert!(
        missing.message.contains("not found on"),
        "{}",
        missing.message
    );
}

#[test]
fn skopeo_copies_what_we_pushed_without_changing_the_digest() {
    if !needs(&[Need::Registry, Need::Skopeo]) {
        return;
    }
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let pkg = sample_package("copyme", "1.2.3");
    let reference = format!("{}/copyme:1.2.3", reg.addr());
    let pushed = push_with(&pkg, &reference, &opts(), &isolated_auth(tmp.path())).unwrap();

    let out_dir = tmp.path().join("oci");
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:1.2.3", out_dir.display()),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], pushed.as_str());
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "1.2.3"
    );

    // Our reader reads skopeo's layout, verified.
    let layout = OciLayout::open(&out_dir).unwrap();
    let read = layout.read_package(Some("1.2.3")).unwrap();
    assert_eq!(read.digest(), pushed);
    assert_eq!(read.object().unwrap(), pkg.object().unwrap());
}

#[test]
fn skopeo_reads_our_oci_layout() {
    if !needs(&[Need::Registry, Need::Skopeo]) {
        return;
    }
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let layout = OciLayout::create(&dir).unwrap();
    let pkg = sample_package("layout", "0.3.0");
    layout.write_package(&pkg, "0.3.0").unwrap();
    layout
        .write_package(&sample_package("other", "1.0.0"), "other")
        .unwrap();

    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:0.3.0", dir.display())]).stdout;
    assert_eq!(raw, pkg.manifest_bytes);
    assert_eq!(sha256(&raw), pkg.digest());

    // The layout is complete: skopeo can ship it to a registry, and we pull the same digest.
    let reference = format!("{}/from-layout:0.3.0", reg.addr());
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:0.3.0", dir.display()),
        &format!("docker://{reference}"),
    ]);
    let pulled = pull_with(&reference, &opts(), &isolated_auth(tmp.path())).unwrap();
    assert_eq!(pulled.digest(), pkg.digest());
}

#[test]
fn corrupted_blob_on_the_registry_fails_pull_and_leaves_the_store_untouched() {
    if !needs(&[Need::Registry]) {
        return;
    }
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let auth = isolated_auth(tmp.path());
    let pkg = sample_package("fragile", "0.1.0");
    let reference = format!("{}/fragile:0.1.0", reg.addr());
    push_with(&pkg, &reference, &opts(), &auth).unwrap();

    let store = Store::open(&tmp.path().join("store")).unwrap();
    store
        .insert(
            &Reference::parse("localhost/already:1").unwrap(),
            &sample_package("already", "1"),
        )
        .unwrap();
    let before = snapshot_dir(store.layout().root());

    let data_file = reg.blob_data_path(&pkg.layers[0].descriptor.digest);
    let mut data = std::fs::read(&data_file).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&data_file, data).unwrap();

    let err = pull_with(&reference, &opts(), &auth)
        .and_then(|p| {
            store
                .insert(&Reference::parse(&reference).unwrap(), &p)
                .map(|_| p)
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Integrity, "{}", err.message);
    assert!(
        err.message.contains("does not match its digest"),
        "{}",
        err.message
    );
    assert_eq!(snapshot_dir(store.layout().root()), before);
    assert!(store
        .get(&Reference::parse(&reference).unwrap())
        .unwrap()
        .is_none());
}

#[test]
fn unreachable_registry_is_a_clear_registry_error() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let reference = format!("{addr}/nothing:1");
    let auth = isolated_auth(tmp.path());

    let err = pull_with(&reference, &opts(), &auth).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Registry, "{}", err.message);
    assert!(
        err.message
            .starts_with(&format!("cannot reach registry {addr}")),
        "{}",
        err.message
    );
    assert_eq!(
        err.help.as_deref(),
        Some("check the address and that the registry is running")
    );

    let err = push_with(&sample_package("x", "1"), &reference, &opts(), &auth).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Registry, "{}", err.message);

    let err = login_with(&addr, "u", "p", &opts(), &auth).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Registry, "{}", err.message);
}

#[test]
fn wrong_or_missing_credentials_are_auth_errors() {
    if !needs(&[Need::Registry]) {
        return;
    }
    let reg = Registry::start_with_auth("alice", "correct horse");
    let tmp = tempfile::tempdir().unwrap();
    let auth = isolated_auth(tmp.path());
    let pkg = sample_package("secret", "0.1.0");
    let reference = format!("{}/secret:0.1.0", reg.addr());

    // No credentials at all.
    let err = push_with(&pkg, &reference, &opts(), &auth).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{}", err.message);
    assert_eq!(
        err.help.as_deref(),
        Some(format!("run `cargo ebpf login {}`", reg.addr()).as_str())
    );

    // Login with the wrong password is refused and writes nothing.
    let err = login_with(reg.addr(), "alice", "wrong", &opts(), &auth).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{}", err.message);
    assert!(
        err.message
            .contains(&format!("registry {} rejected the credentials", reg.addr())),
        "{}",
        err.message
    );
    assert!(!auth.docker_config().unwrap().exists());

    // Wrong credentials already stored (as if the password changed since).
    let wrong = Credentials {
        username: "alice".into(),
        password: "wrong".into(),
    };
    credentials::store_in(&auth, reg.addr(), &wrong).unwrap();
    let err = push_with(&pkg, &reference, &opts(), &auth).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{}", err.message);
    let err = pull_with(&reference, &opts(), &auth).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{}", err.message);
}

#[test]
fn login_writes_a_private_config_and_push_then_works() {
    if !needs(&[Need::Registry]) {
        return;
    }
    let reg = Registry::start_with_auth("bob", "s3cret!");
    let tmp = tempfile::tempdir().unwrap();
    let auth = isolated_auth(tmp.path());
    let config = tmp.path().join("docker/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, r#"{"detachKeys":"ctrl-x"}"#).unwrap();

    let written = login_with(reg.addr(), "bob", "s3cret!", &opts(), &auth).unwrap();
    assert_eq!(written, config);
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(v["detachKeys"], "ctrl-x");
    assert!(v["auths"][reg.addr()]["auth"].is_string());

    let pkg = sample_package("private", "0.1.0");
    let reference = format!("{}/private:0.1.0", reg.addr());
    let pushed = push_with(&pkg, &reference, &opts(), &auth).unwrap();
    assert_eq!(pushed, pkg.digest());
    let pulled = pull_with(&reference, &opts(), &auth).unwrap();
    assert_eq!(pulled.digest(), pushed);
}

#[test]
fn skopeo_login_credentials_are_used_via_registry_auth_file() {
    if !needs(&[Need::Registry, Need::Skopeo]) {
        return;
    }
    let reg = Registry::start_with_auth("carol", "pa55word");
    let tmp = tempfile::tempdir().unwrap();
    let authfile = tmp.path().join("skopeo-auth.json");
    skopeo(&[
        "login",
        "--tls-verify=false",
        "--authfile",
        authfile.to_str().unwrap(),
        "--username",
        "carol",
        "--password",
        "pa55word",
        reg.addr(),
    ]);
    let auth = AuthPaths {
        registry_auth_file: Some(authfile),
        ..isolated_auth(tmp.path())
    };
    let pkg = sample_package("via-skopeo", "0.1.0");
    let reference = format!("{}/via-skopeo:0.1.0", reg.addr());
    assert_eq!(
        push_with(&pkg, &reference, &opts(), &auth).unwrap(),
        pkg.digest()
    );
    // And skopeo, with the same file, sees what we pushed.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--authfile",
        auth.registry_auth_file.as_ref().unwrap().to_str().unwrap(),
        &format!("docker://{reference}"),
    ])
    .stdout;
    assert_eq!(sha256(&raw), pkg.digest());
}

#[test]
fn store_holds_pulled_packages_and_gc_keeps_shared_blobs() {
    if !needs(&[Need::Registry]) {
        return;
    }
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let auth = isolated_auth(tmp.path());
    // Two packages with the same object: one shared layer, distinct configs and manifests.
    let object = b"\x7fELF shared object";
    let a = Package::build(sample_meta("shared", "1.0.0"), object, None).unwrap();
    let b = Package::build(sample_meta("shared", "2.0.0"), object, None).unwrap();
    let layer = a.layers[0].descriptor.digest.clone();
    assert_eq!(layer, b.layers[0].descriptor.digest);
    let ref_a = format!("{}/shared:1.0.0", reg.addr());
    let ref_b = format!("{}/shared:2.0.0", reg.addr());
    push_with(&a, &ref_a, &opts(), &auth).unwrap();
    push_with(&b, &ref_b, &opts(), &auth).unwrap();

    let store = Store::open(&tmp.path().join("store")).unwrap();
    for r in [&ref_a, &ref_b] {
        let pkg = pull_with(r, &opts(), &auth).unwrap();
        store.insert(&Reference::parse(r).unwrap(), &pkg).unwrap();
    }
    let list = store.list().unwrap();
    let rows: Vec<_> = list
        .iter()
        .map(|e| {
            (
                e.reference.as_str(),
                e.version.as_deref(),
                e.digest.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (ref_a.as_str(), Some("1.0.0"), a.digest().as_str()),
            (ref_b.as_str(), Some("2.0.0"), b.digest().as_str()),
        ]
    );
    assert!(list.iter().all(|e| e.name.as_deref() == Some("shared")));

    assert!(store.remove(&Reference::parse(&ref_a).unwrap()).unwrap());
    assert!(store
        .get(&Reference::parse(&ref_a).unwrap())
        .unwrap()
        .is_none());
    assert!(store.layout().has_blob(&layer));
    assert!(!store.layout().has_blob(&a.digest()));
    assert_eq!(
        store
            .get(&Reference::parse(&ref_b).unwrap())
            .unwrap()
            .unwrap()
            .digest(),
        b.digest()
    );
    assert!(store.remove(&Reference::parse(&ref_b).unwrap()).unwrap());
    assert!(!store.layout().has_blob(&layer));
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn an_image_with_two_layers_is_refused_before_its_blobs_are_fetched() {
    if !needs(&[Need::Registry, Need::Skopeo]) {
        return;
    }
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let auth = isolated_auth(tmp.path());
    // A real image the registry accepts, but not of our shape: two layers.
    let mut pkg = sample_package("twolayers", "0.1.0");
    let extra = sample_package("other", "0.1.0").layers[0].clone();
    pkg.manifest.layers.push(extra.descriptor.clone());
    pkg.layers.push(extra);
    pkg.manifest_bytes = serde_json::to_vec(&pkg.manifest).unwrap();
    let reference = format!("{}/twolayers:0.1.0", reg.addr());
    push_with(&pkg, &reference, &opts(), &auth).unwrap();
    // Drop every blob from the registry's disk: a pull that fetched any would fail with a
    // registry error instead of the shape check.
    for blob in std::iter::once(&pkg.config_blob).chain(&pkg.layers) {
        std::fs::remove_file(reg.blob_data_path(&blob.descriptor.digest)).unwrap();
    }

    let err = pull_with(&reference, &opts(), &auth).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Input, "{}", err.message);
    assert!(
        err.message
            .contains("not a cargo-ebpf package: it has 2 layers"),
        "{}",
        err.message
    );
}
