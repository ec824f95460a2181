//! Kernels without BTF: `package --btfhub-archive DIR` embeds each archive kernel's minimal
//! BTF as an extra layer; in a mount namespace where `/sys/kernel/btf` is hidden, `run`
//! picks the entry for this host and still sees this test's event; under another release
//! name it names the kernels the package covers and how to add one.

use std::path::Path;
use std::process::Command;

use ebpf_e2e_tests::cli::{ok, Env};
use ebpf_e2e_tests::project::{events_about, run_command, run_while_opening, Project};
use ebpf_e2e_tests::{needs, Need};

/// A BTFHub archive entry `<distro>/<version>/<arch>/<release>.btf.tar.xz` holding this
/// host's BTF under `release`.
pub(crate) fn add_kernel(archive: &Path, distro: &str, version: &str, release: &str) {
    let dir = archive.join(distro).join(version).join("x86_64");
    std::fs::create_dir_all(&dir).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    std::fs::copy(
        "/sys/kernel/btf/vmlinux",
        scratch.path().join(format!("{release}.btf")),
    )
    .unwrap();
    let out = Command::new("tar")
        .arg("-C")
        .arg(scratch.path())
        .arg("-cJf")
        .arg(dir.join(format!("{release}.btf.tar.xz")))
        .arg(format!("{release}.btf"))
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {out:?}");
}

pub(crate) fn os_release_field(key: &str) -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
        .trim_matches('"')
        .to_string()
}

pub(crate) fn uname_r() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_string()
}

/// `cargo-ebpf run ...` inside a private mount namespace with /sys/kernel/btf hidden.
pub(crate) fn without_kernel_btf(env: &Env, run: Command) -> Command {
    let script =
        "mount -t tmpfs none /sys/kernel/btf && test ! -e /sys/kernel/btf/vmlinux && exec \"$@\"";
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ]);
    cmd.arg(run.get_program()).args(run.get_args());
    cmd.envs(run.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    cmd.current_dir(env.path());
    cmd
}

#[test]
fn embedded_btf_runs_where_the_kernel_has_none() {
    if !needs(&[
        Need::Kernel,
        Need::Build,
        Need::MountNs,
        Need::Tool("xz", "xz-utils"),
    ]) {
        return;
    }
    let project = Project::new("nobtf", "eunomia");
    let archive = project.env.path().join("btfhub-archive");
    let (distro, version) = (os_release_field("ID"), os_release_field("VERSION_ID"));
    add_kernel(&archive, &distro, &version, &uname_r());
    add_kernel(&archive, "ubuntu", "20.04", "5.4.0-1010-aws");
    let out = ok(&mut project.cmd(&["package", "--btfhub-archive", archive.to_str().unwrap()]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("embedded minimal BTF for 2"), "{said}");

    // The layout's manifest lists the BTF layer next to the package layer.
    let layout = project.dir.join("target/ebpf/oci");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap(),
    )
    .unwrap();
    let types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.cargo-ebpf.btfgen.v1.tar+gzip"
        ]
    );
    // The minimal BTF is a small part of the whole.
    let btf_layer = manifest["layers"][1]["size"].as_u64().unwrap();
    assert!(btf_layer < 200_000, "{btf_layer} bytes");

    // No kernel BTF: the embedded entry for this host is used, and events flow.
    let target = layout.to_str().unwrap().to_string();
    let run = without_kernel_btf(
        &project.env,
        run_command(&project.env, &target, &["--output", "json"], &[]),
    );
    let run = run_while_opening(run, project.env.path());
    assert!(
        run.stderr.contains(&format!(
            "embedded BTF for {distro} {version} x86_64 {}",
            uname_r()
        )),
        "{}",
        run.stderr
    );
    assert!(
        !events_about(&run.json_events(), &run.file).is_empty(),
        "no event with the embedded BTF: {}",
        run.stderr
    );

    // A package covering only other kernels: a clear error naming them.
    let other = project.env.path().join("other-archive");
    add_kernel(&other, "ubuntu", "20.04", "5.4.0-1010-aws");
    ok(&mut project.cmd(&["package", "--btfhub-archive", other.to_str().unwrap()]));
    let mut run = without_kernel_btf(
        &project.env,
        project.env.cmd(["run", &target, "--duration", "1"]),
    );
    let out = run.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("ubuntu 20.04 x86_64 5.4.0-1010-aws"), "{err}");
    assert!(err.contains("--btfhub-archive"), "{err}");
}
