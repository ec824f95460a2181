//! A registry client from the environment (`Registry::from_env`) reads
//! `$REGISTRY_AUTH_FILE`. The test sets process environment variables, which must not
//! race with other tests: it runs alone, in a child process of its own.

use std::process::Command;

use ebpf_e2e_tests::harness::run_alone;
use ebpf_e2e_tests::{needs, sample_package, Need, Registry};
use ebpf_package::{ErrorKind, Reference};
use ebpf_runner::registry::{self, ClientOptions};
use ebpf_runner::store::Store;

#[test]
fn registry_auth_file_from_the_environment_is_used() {
    if !needs(&[Need::Registry, Need::Skopeo]) {
        return;
    }
    run_alone(
        module_path!(),
        "alone_registry_auth_file_from_the_environment_is_used",
    );
}

#[test]
#[ignore = "run alone by registry_auth_file_from_the_environment_is_used"]
fn alone_registry_auth_file_from_the_environment_is_used() {
    let reg = Registry::start_with_auth("dave", "hunter22");
    let tmp = tempfile::tempdir().unwrap();
    let authfile = tmp.path().join("auth.json");
    let out = Command::new("skopeo")
        .args(["login", "--tls-verify=false", "--authfile"])
        .arg(&authfile)
        .args(["--username", "dave", "--password", "hunter22", reg.addr()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Point every other lookup path into the temp dir, so only REGISTRY_AUTH_FILE can help.
    // SAFETY: this process runs this one test; no other thread reads the environment meanwhile.
    unsafe {
        std::env::set_var("HOME", tmp.path().join("home"));
        std::env::set_var("XDG_RUNTIME_DIR", tmp.path().join("run"));
        std::env::remove_var("DOCKER_CONFIG");
        std::env::remove_var("REGISTRY_AUTH_FILE");
    }
    let pkg = sample_package("env", "0.1.0");
    let reference = Reference::parse(&format!("{}/env:0.1.0", reg.addr())).unwrap();
    let client = |opts: ClientOptions| registry::Registry::from_env(opts);
    let err = client(ClientOptions::default())
        .push(&pkg, &reference)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{}", err.message);

    unsafe { std::env::set_var("REGISTRY_AUTH_FILE", &authfile) };
    let opts = ClientOptions {
        progress: true,
        ..Default::default()
    };
    assert_eq!(
        client(opts.clone()).push(&pkg, &reference).unwrap(),
        pkg.digest()
    );
    let store = Store::open(&tmp.path().join("store")).unwrap();
    // The sample's object is not BPF, so `resolve::pull_into`'s object check would refuse
    // it; what is under test here is where credentials come from.
    let pulled = client(opts).pull(&reference).unwrap();
    store.insert(&reference, &pulled).unwrap();
    assert_eq!(pulled.digest(), pkg.digest());
    assert_eq!(
        store.get(&reference).unwrap().unwrap().digest(),
        pkg.digest()
    );
}
