//! `cargo ebpf build --container` with real podman, as root. There is no docker.io here, so
//! the builder image is made locally by scripts/builder-image.sh (debootstrap of bookworm,
//! imported into podman, then docker/builder.Dockerfile on top), tagged with a hash of the
//! Dockerfile: it is built once per machine and reused until the Dockerfile changes.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use ebpf_e2e_tests::cli::{self, fails, ok};
use ebpf_e2e_tests::project::Project;
use ebpf_e2e_tests::{needs, Need};
use ebpf_package::object;

/// The project is owned by this uid/gid; the container build must leave its files so.
const OWNER: u32 = 4321;

/// The builder image for the current docker/builder.Dockerfile, built if missing.
fn builder_image() -> String {
    use sha2::Digest;
    let root = cli::workspace_root();
    let dockerfile = std::fs::read(root.join("docker/builder.Dockerfile")).expect("Dockerfile");
    let hash = hex::encode(sha2::Sha256::digest(&dockerfile));
    let tag = format!("localhost/cargo-ebpf/builder:test-{}", &hash[..12]);
    let out = Command::new("bash")
        .arg(root.join("scripts/builder-image.sh"))
        .arg(&tag)
        .env("ENGINE", "podman")
        .output()
        .expect("run scripts/builder-image.sh");
    assert!(out.status.success(), "builder image: {}", cli::show(&out));
    tag
}

/// `cargo-ebpf VERB --container --engine podman --image IMAGE EXTRA` in `project`.
fn in_podman(project: &Project, verb: &str, image: &str, extra: &[&str]) -> Command {
    let mut cmd = project.cmd(&[verb, "--container", "--engine", "podman", "--image", image]);
    cmd.args(extra);
    cmd
}

fn chown_tree(dir: &Path, uid: u32) {
    let status = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(dir)
        .status()
        .expect("run chown");
    assert!(status.success());
}

/// Every path under `dir` (itself included) that is not owned by `uid:gid`.
fn not_owned_by(dir: &Path, uid: u32) -> Vec<String> {
    let mut bad = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.uid() != uid || meta.gid() != uid {
            bad.push(format!(
                "{} ({}:{})",
                path.display(),
                meta.uid(),
                meta.gid()
            ));
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                stack.push(entry.expect("dir entry").path());
            }
        }
    }
    bad
}

fn programs_and_maps(path: &Path) -> (Vec<String>, Vec<String>) {
    let info = object::read(&std::fs::read(path).expect("read object"), None).expect("inspect");
    let programs = info
        .programs
        .iter()
        .map(|p| format!("{} {} {}", p.name, p.section, p.prog_type))
        .collect();
    let maps = info
        .maps
        .iter()
        .map(|m| format!("{} {}", m.name, m.map_type))
        .collect();
    (programs, maps)
}

#[test]
fn container_build_matches_host_build_and_keeps_the_owner() {
    if !needs(&[
        Need::Podman,
        Need::Tool("debootstrap", "debootstrap"),
        Need::Build,
    ]) {
        return;
    }
    let image = builder_image();

    // The same project built on the host, for comparison.
    let host = Project::new("csnoop", "eunomia");
    ok(&mut host.cmd(&["build"]));

    let boxed = Project::new("csnoop", "eunomia");
    chown_tree(&boxed.dir, OWNER);
    let out = ok(&mut in_podman(&boxed, "build", &image, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Container"), "{stderr}");
    let object = boxed.built("x86_64", "csnoop.bpf.o");
    assert!(object.is_file(), "no {}: {stderr}", object.display());
    assert_eq!(
        programs_and_maps(&object),
        programs_and_maps(&host.built("x86_64", "csnoop.bpf.o")),
        "container and host builds differ"
    );
    let target = boxed.dir.join("target");
    let wrong = not_owned_by(&target, OWNER);
    assert!(wrong.is_empty(), "not owned by {OWNER}: {wrong:#?}");

    // Same absolute paths and inputs inside and out: the host sees the build as fresh.
    let again = ok(&mut boxed.cmd(&["build"]));
    let again = String::from_utf8_lossy(&again.stderr);
    assert!(again.contains("Fresh"), "{again}");

    // A multi-arch container build feeds `package` like a host build does.
    ok(&mut in_podman(
        &boxed,
        "package",
        &image,
        &["--arch", "x86_64,arm64"],
    ));
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(boxed.dir.join("target/ebpf/oci/index.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        index["manifests"][0]["mediaType"],
        ebpf_package::spec::MEDIA_TYPE_INDEX
    );
    assert!(boxed.dir.join("target/ebpf/aarch64/csnoop.bpf.o").is_file());
}

#[test]
fn container_build_errors_are_clear() {
    if !needs(&[Need::Podman, Need::Tool("debootstrap", "debootstrap")]) {
        return;
    }
    let image = builder_image();
    let project = Project::new("cbroken", "eunomia");

    // A compile error inside: exit 5, clang's own message passed through.
    let source = project.dir.join("src/cbroken.bpf.c");
    let mut text = std::fs::read_to_string(&source).unwrap();
    text.push_str("\nint broken = ;\n");
    std::fs::write(&source, text).unwrap();
    let stderr = fails(&mut in_podman(&project, "build", &image, &[]), 5);
    assert!(stderr.contains("expected expression"), "{stderr}");
    assert!(stderr.contains("inside the container failed"), "{stderr}");

    // A missing image: exit 4 and how to build it.
    let stderr = fails(
        &mut in_podman(
            &project,
            "build",
            "localhost/cargo-ebpf/no-such-builder:0",
            &[],
        ),
        4,
    );
    assert!(stderr.contains("docker/builder.Dockerfile"), "{stderr}");

    // No engine on PATH: exit 4 and what to install.
    let empty = tempfile::tempdir().unwrap();
    let stderr = fails(
        project
            .cmd(&["build", "--container"])
            .env("PATH", empty.path()),
        4,
    );
    assert!(stderr.contains("no container engine found"), "{stderr}");
    assert!(stderr.contains("apt install podman"), "{stderr}");
}
