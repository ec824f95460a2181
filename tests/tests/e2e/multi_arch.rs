//! Multi-arch packages end to end, as root: `--arch x86_64,arm64` builds two real BPF
//! objects (the arm64 one with -D__TARGET_ARCH_arm64), `package` writes an OCI image index,
//! `push` uploads it to a real docker-registry, skopeo reads both, and `pull`/`run` on this
//! x86_64 host pick the amd64 manifest and see a real openat event. Packages without this
//! host's platform are refused with the platforms they have, and the store stays unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;

use ebpf_e2e_tests::cli::{self, fails, ok, Env};
use ebpf_e2e_tests::project::{
    elf_machine, events_about, run_command, run_while_opening, Project, EM_BPF,
};
use ebpf_e2e_tests::{needs, Need};
use ebpf_e2e_tests::{sha256, snapshot_dir, Registry};
use ebpf_package::spec::{MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};

const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// A `const volatile` whose compiled-in value tells which `__TARGET_ARCH_*` clang saw; it
/// shows up in each package's metadata as a param default.
const ARCH_MARKER: &str = r#"
#if defined(__TARGET_ARCH_arm64)
const volatile int built_for = 64;
#elif defined(__TARGET_ARCH_x86)
const volatile int built_for = 86;
#else
const volatile int built_for = 0;
#endif
"#;

/// An eunomia project whose source records the arch it was compiled for ([`ARCH_MARKER`]).
fn arch_project(name: &str) -> Project {
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "these tests expect an x86_64 host"
    );
    let project = Project::new(name, "eunomia");
    let source = project.src("bpf.c");
    let mut text = std::fs::read_to_string(&source).expect("read the template's source");
    text.push_str(ARCH_MARKER);
    std::fs::write(&source, text).expect("write source");
    project
}

fn oci_layout(project: &Project) -> PathBuf {
    project.dir.join("target/ebpf/oci")
}

fn store_dir(project: &Project) -> PathBuf {
    project.env.path().join("ebpf-home/store")
}

fn skopeo_raw(location: &str) -> (serde_json::Value, Vec<u8>) {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", location])
        .output()
        .expect("run skopeo (apt install skopeo)");
    assert!(
        out.status.success(),
        "skopeo inspect {location}: {}",
        cli::show(&out)
    );
    let json = serde_json::from_slice(&out.stdout).expect("skopeo printed JSON");
    (json, out.stdout)
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob in layout")
}

/// The index's entry for `arch` (GOARCH naming).
fn entry<'a>(index: &'a serde_json::Value, arch: &str) -> &'a serde_json::Value {
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["platform"]["architecture"] == arch)
        .unwrap_or_else(|| panic!("no {arch} entry in {index}"))
}

/// The package metadata in the config of manifest `digest` of the layout.
fn package_meta(layout: &Path, digest: &str) -> serde_json::Value {
    let manifest: serde_json::Value = serde_json::from_slice(&blob(layout, digest)).unwrap();
    assert_eq!(manifest["mediaType"], MEDIA_TYPE_MANIFEST);
    let config: serde_json::Value = serde_json::from_slice(&blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    config["dev.cargo-ebpf.package"].clone()
}

fn param_default(meta: &serde_json::Value, name: &str) -> serde_json::Value {
    meta["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no param {name} in {meta}"))["default"]
        .clone()
}

#[test]
fn multi_arch_package_push_pull_run() {
    if !needs(&[Need::Kernel, Need::Build, Need::Registry, Need::Skopeo]) {
        return;
    }
    let registry = Registry::start();
    let project = arch_project("multisnoop");

    // Build and package for both, naming one arch each way.
    ok(&mut project.cmd(&["package", "--arch", "x86_64,arm64"]));
    for arch in ["x86_64", "aarch64"] {
        let object = project.built(arch, "multisnoop.bpf.o");
        assert_eq!(elf_machine(&object), EM_BPF, "{}", object.display());
    }

    // The layout's tag points at an index with one manifest per platform (skopeo reads it).
    let layout = oci_layout(&project);
    let (index, index_bytes) = skopeo_raw(&format!("oci:{}:0.1.0", layout.display()));
    assert_eq!(index["mediaType"], MEDIA_TYPE_INDEX);
    assert_eq!(MEDIA_TYPE_INDEX, INDEX_MEDIA_TYPE);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    let amd64 = entry(&index, "amd64")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let arm64 = entry(&index, "arm64")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    for (digest, arch, marker) in [(&amd64, "x86_64", 86), (&arm64, "aarch64", 64)] {
        let meta = package_meta(&layout, digest);
        assert_eq!(meta["arch"], arch);
        // clang compiled this object with this arch's __TARGET_ARCH_* define.
        assert_eq!(param_default(&meta, "built_for"), marker, "{meta}");
        assert_eq!(
            entry(&index, ebpf_package::spec::oci_arch(arch))["platform"]["os"],
            "linux"
        );
    }

    // Push: every manifest by digest, then the index under the tag, mediaType kept.
    let reference = format!("{}/multi/multisnoop:0.1.0", registry.addr());
    let pushed = ok(&mut project.cmd(&["push", &reference, "--arch", "amd64,aarch64"]));
    let pushed = String::from_utf8(pushed.stdout).unwrap();
    let (remote, remote_bytes) = skopeo_raw(&format!("docker://{reference}"));
    assert_eq!(remote["mediaType"], MEDIA_TYPE_INDEX, "{remote}");
    assert_eq!(
        remote_bytes, index_bytes,
        "the registry holds the index as packaged"
    );
    assert_eq!(
        pushed.trim(),
        format!("{reference}@{}", sha256(&remote_bytes))
    );
    for digest in [&amd64, &arm64] {
        let (manifest, bytes) = skopeo_raw(&format!(
            "docker://{}/multi/multisnoop@{digest}",
            registry.addr()
        ));
        assert_eq!(manifest["mediaType"], MEDIA_TYPE_MANIFEST);
        assert_eq!(&sha256(&bytes), digest);
    }

    // Pull on this x86_64 host stores the amd64 manifest.
    let pulled = ok(&mut project.env.cmd(["pull", &reference]));
    assert_eq!(String::from_utf8(pulled.stdout).unwrap().trim(), amd64);
    let listed = ok(&mut project.env.cmd(["list", "--json"]));
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["digest"], amd64.as_str(), "{listed}");

    // Running the layout itself (its tag names the index) picks the amd64 package too.
    let help = ok(project.env.cmd(["run"]).arg(&layout).args(["--", "--help"]));
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let row: Vec<&str> = help
        .lines()
        .find(|l| l.trim_start().starts_with("--built-for"))
        .unwrap_or_else(|| panic!("no --built-for flag in {help}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[2], "86", "the amd64 object's default: {help}");

    // And run of the stored package attaches and sees this test's openat.
    run_sees_own_openat(&project.env, &reference);
}

fn run_sees_own_openat(env: &Env, reference: &str) {
    let run = run_command(env, reference, &["--output", "json"], &[]);
    let run = run_while_opening(run, env.path());
    let events = run.json_events();
    let mine = events_about(&events, &run.file);
    assert!(
        !mine.is_empty(),
        "no event for {} among {} events",
        run.file,
        events.len()
    );
    assert_eq!(mine[0]["pid"], std::process::id());
}

#[test]
fn a_package_without_this_hosts_platform_is_refused_and_nothing_is_stored() {
    if !needs(&[Need::Build, Need::Registry, Need::Skopeo]) {
        return;
    }
    let registry = Registry::start();
    let project = arch_project("armonly");
    let plain = format!("{}/multi/armonly:0.1.0", registry.addr());
    let index = format!("{}/multi/armonly:index", registry.addr());
    // One arch stays a plain manifest; two make an index, here without amd64.
    ok(&mut project.cmd(&["push", &plain, "--arch", "arm64"]));
    ok(&mut project.cmd(&["push", &index, "--arch", "arm64,riscv64"]));
    let (raw, _) = skopeo_raw(&format!("docker://{plain}"));
    assert_eq!(raw["mediaType"], MEDIA_TYPE_MANIFEST);

    ok(&mut project.env.cmd(["list"])); // creates the (empty) store
    let before = snapshot_dir(&store_dir(&project));
    for (reference, has) in [
        (&plain, "linux/arm64"),
        (&index, "linux/arm64, linux/riscv64"),
    ] {
        for verb in ["pull", "run"] {
            let stderr = fails(&mut project.env.cmd([verb, reference.as_str()]), 3);
            // miette wraps long lines with a `│` gutter: undo that before matching.
            let stderr = stderr
                .split_whitespace()
                .filter(|w| *w != "│")
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                stderr.contains(&format!(
                    "has no package for this machine (linux/amd64), only for {has}"
                )),
                "{verb} {reference}: {stderr}"
            );
            assert!(stderr.contains("--arch x86_64"), "{stderr}");
            assert_eq!(
                snapshot_dir(&store_dir(&project)),
                before,
                "{verb} changed the store"
            );
        }
    }

    // The same for a local layout packaged for arm64 only.
    ok(&mut project.cmd(&["package", "--arch", "aarch64"]));
    let stderr = fails(project.env.cmd(["run"]).arg(oci_layout(&project)), 3);
    assert!(stderr.contains("only for linux/arm64"), "{stderr}");
}

#[test]
fn arch_lists_are_deduplicated_and_checked() {
    if !needs(&[Need::Build, Need::Skopeo]) {
        return;
    }
    let project = arch_project("archlist");
    // Both namings of one arch: one build, a plain manifest.
    ok(&mut project.cmd(&["package", "--arch", "amd64,x86_64"]));
    let (raw, _) = skopeo_raw(&format!("oci:{}:0.1.0", oci_layout(&project).display()));
    assert_eq!(raw["mediaType"], MEDIA_TYPE_MANIFEST, "{raw}");
    let stderr = fails(&mut project.cmd(&["build", "--arch", "x86_64,sparc"]), 2);
    assert!(stderr.contains("unknown architecture `sparc`"), "{stderr}");
}
