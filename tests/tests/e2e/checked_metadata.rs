//! Checked metadata, end to end: packages whose config lies about their object (hand-built
//! with the real packager, pushed to a real docker-registry) are refused by `pull` and
//! `inspect` with exit 8 naming the difference, and nothing is stored; a package whose
//! "object" is /bin/true is refused at `pull`, not only at `run`. A truthful package of the
//! same object passes.

use ebpf_e2e_tests::cli::{fails, ok, Env};
use ebpf_e2e_tests::images::compile_openat;
use ebpf_e2e_tests::{needs, sample_meta, Need, Registry};
use ebpf_package::spec::{PackageMeta, ProgramInfo};
use ebpf_package::{object, Package, Reference};
use ebpf_runner::credentials::AuthPaths;
use ebpf_runner::registry::{ClientOptions, Registry as Client};

/// Pushes `pkg` as `reference` with credentials isolated inside `env`.
fn push(env: &Env, pkg: &Package, reference: &str) {
    let auth = AuthPaths {
        registry_auth_file: None,
        xdg_runtime_dir: None,
        docker_config_dir: Some(env.path().join("docker")),
        home: Some(env.path().to_path_buf()),
    };
    Client::new(ClientOptions::default(), auth)
        .push(pkg, &Reference::parse(reference).unwrap())
        .expect("push to the test registry");
}

/// Whether the (wrapped, boxed) error report says `needle`: compared without whitespace
/// and the report's box-drawing margin.
fn says(report: &str, needle: &str) -> bool {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '│')
            .collect()
    };
    squash(report).contains(&squash(needle))
}

/// The store is empty: `list --json` says `[]`.
fn assert_nothing_stored(env: &Env) {
    let listed = ok(&mut env.cmd(["list", "--json"]));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed, serde_json::json!([]), "the store was written");
}

/// The openat object described truthfully, then its claims replaced by a getpid counter.
fn lying_meta(elf: &[u8]) -> PackageMeta {
    let mut meta = PackageMeta::new("liar", "0.1.0", "liar.bpf.o");
    object::read(elf, None).unwrap().fill_meta(&mut meta);
    meta.programs = vec![ProgramInfo {
        name: "count_getpid".into(),
        section: "tracepoint/syscalls/sys_enter_getpid".into(),
        prog_type: "tracepoint".into(),
    }];
    meta.maps.clear();
    meta
}

#[test]
fn a_config_that_lies_about_its_object_is_refused_at_pull_and_inspect() {
    if !needs(&[Need::Build, Need::Registry]) {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let elf = compile_openat(&[]);
    let liar = Package::build(lying_meta(&elf), &elf, None).unwrap();
    let reference = format!("{}/checked/liar:0.1.0", registry.addr());
    push(&env, &liar, &reference);

    for verb in ["pull", "inspect"] {
        let err = fails(&mut env.cmd([verb, &reference]), 8);
        for needle in [
            "does not match its object liar.bpf.o",
            "config says program count_getpid on tracepoint/syscalls/sys_enter_getpid",
            "the object has program handle_openat on tracepoint/syscalls/sys_enter_openat",
            "config lists no maps, the object has map `events` (ringbuf",
        ] {
            assert!(
                says(&err, needle),
                "{verb} does not say {needle:?}:\n{err:?}"
            );
        }
        assert_nothing_stored(&env);
    }

    // The same object, described truthfully, is pulled.
    let mut honest = PackageMeta::new("honest", "0.1.0", "honest.bpf.o");
    object::read(&elf, None).unwrap().fill_meta(&mut honest);
    let honest = Package::build(honest, &elf, None).unwrap();
    let reference = format!("{}/checked/honest:0.1.0", registry.addr());
    push(&env, &honest, &reference);
    ok(&mut env.cmd(["pull", &reference]));
    let text = ok(&mut env.cmd(["inspect", &reference]));
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("attach: handle_openat → tracepoint syscalls:sys_enter_openat"),
        "{text}"
    );
}

#[test]
fn a_package_whose_object_is_not_bpf_is_refused_at_pull() {
    if !needs(&[Need::Registry]) {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let not_bpf = std::fs::read("/bin/true").unwrap();
    let pkg = Package::build(sample_meta("truthy", "0.1.0"), &not_bpf, None).unwrap();
    let reference = format!("{}/checked/truthy:0.1.0", registry.addr());
    push(&env, &pkg, &reference);

    let err = fails(&mut env.cmd(["pull", &reference]), 8);
    assert!(
        says(
            &err,
            "the package's object truthy.bpf.o is not an eBPF object"
        ),
        "{err}"
    );
    assert!(says(&err, "x86-64") || says(&err, "AArch64"), "{err}");
    assert_nothing_stored(&env);
    fails(&mut env.cmd(["inspect", &reference]), 8);
}
