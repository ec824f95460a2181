//! The container and files runtimes, declared in `ebpf.toml [run]`, run for real:
//! - container: podman runs a local image (built here by `podman import` from a static
//!   busybox and the host's bpftool, no registry needed) whose loader loads the package's
//!   object with CO-RE (needs /sys/kernel/btf) and pins it in the host's bpffs (needs the
//!   bpffs mount and privileges), in the foreground and detached;
//! - files: files placed at absolute destinations, a start script that writes a marker,
//!   a stop script that removes it, and `stop` removing exactly what was placed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ebpf_e2e_tests::cli::{fails, ok, Env};
use ebpf_e2e_tests::{needs, Need};

const BUSYBOX: &str = "/bin/busybox";
const BPFTOOL: &str = "/usr/sbin/bpftool";

/// The container's entrypoint: proves it can do what an eBPF loader does, then (with
/// `wait`) stays up until stopped.
const LOADER_SH: &str = r#"set -e
test -r /sys/kernel/btf/vmlinux
echo "object=$CARGO_EBPF_OBJECT"
bpftool prog loadall "$CARGO_EBPF_OBJECT" "/sys/fs/bpf/$1"
bpftool prog show pinned "/sys/fs/bpf/$1/handle_openat"
echo "loader done"
if [ "$2" = wait ]; then
  trap 'echo "loader stopping"; exit 0' TERM
  while :; do sleep 1; done
fi
"#;

/// What the loader image and its runs need: podman (as root), static busybox and the
/// host's bpftool to put in the image, and kernel BTF for the CO-RE load.
const LOADER_IMAGE: &[Need] = &[
    Need::Podman,
    Need::File(BUSYBOX, "busybox-static"),
    Need::File(BPFTOOL, "bpftool"),
    Need::KernelBtf,
];

/// Builds (once per content) a tiny image: static busybox as /bin/sh, bpftool with its
/// libraries, and /loader.sh as the entrypoint. Returns its name.
fn loader_image() -> String {
    let mut files: Vec<PathBuf> = vec![BUSYBOX.into(), BPFTOOL.into()];
    files.extend(shared_libraries(BPFTOOL));
    // The tag is a hash of everything in the image, so a changed input makes a new image
    // and an unchanged one is reused across tests and runs.
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    for file in &files {
        sha2::Digest::update(&mut hasher, std::fs::read(file).unwrap());
    }
    sha2::Digest::update(&mut hasher, LOADER_SH);
    let tag = &hex::encode(sha2::Digest::finalize(hasher))[..16];
    let image = format!("localhost/cargo-ebpf-test/bpf-loader:{tag}");
    if podman(&["image", "exists", &image]).status.success() {
        return image;
    }
    let root = tempfile::tempdir().unwrap();
    for file in &files {
        let dest = root.path().join(file.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(file, &dest).unwrap();
    }
    std::fs::create_dir_all(root.path().join("usr/bin")).unwrap();
    for tool in ["sh", "sleep", "test", "echo"] {
        std::os::unix::fs::symlink("/bin/busybox", root.path().join("bin").join(tool)).unwrap();
    }
    std::os::unix::fs::symlink("/usr/sbin/bpftool", root.path().join("usr/bin/bpftool")).unwrap();
    std::fs::write(root.path().join("loader.sh"), LOADER_SH).unwrap();
    let tar = root.path().with_extension("tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .args(["-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let out = podman(&[
        "import",
        "--change",
        r#"ENTRYPOINT ["/bin/sh", "/loader.sh"]"#,
        "--change",
        "ENV PATH=/usr/sbin:/usr/bin:/bin",
        tar.to_str().unwrap(),
        &image,
    ]);
    let _ = std::fs::remove_file(&tar);
    assert!(
        out.status.success(),
        "podman import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

fn shared_libraries(binary: &str) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect()
}

/// podman with the options this host needs (no systemd, runc).
fn podman(args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .args(args)
        .output()
        .expect("run podman")
}

/// An eunomia project whose ebpf.toml gets `run_section` appended.
fn project(env: &Env, name: &str, run_section: &str) -> PathBuf {
    let dir = env.path().join("work").join(name);
    ok(env
        .cmd(["new", name, "--lang", "eunomia", "--path"])
        .arg(&dir));
    let manifest = dir.join("ebpf.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(run_section);
    std::fs::write(&manifest, text).unwrap();
    dir
}

/// Removes a bpffs pin directory the container made (the loaded programs go with it).
struct PinCleanup(PathBuf);

impl Drop for PinCleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `[run]` section of a package whose loader is `image`.
fn container_section(image: &str) -> String {
    format!("\n[run]\ncontainer = \"{image}\"\n")
}

/// `cargo-ebpf run FLAGS DIR --engine podman -- LOADER_ARGS`.
fn run_in_podman(env: &Env, dir: &Path, flags: &[&str], loader_args: &[&str]) -> Command {
    let mut cmd = env.cmd(["run"]);
    cmd.args(flags)
        .arg(dir)
        .args(["--engine", "podman", "--"])
        .args(loader_args);
    cmd
}

fn pin_name(what: &str) -> String {
    format!("cargo-ebpf-test-{what}-{}", std::process::id())
}

#[test]
fn container_runtime_loads_with_host_btf_and_bpffs() {
    if !needs(LOADER_IMAGE) {
        return;
    }
    let image = loader_image();
    let env = Env::new();
    let dir = project(&env, "contsnoop", &container_section(&image));
    let pin = pin_name("fg");
    let _cleanup = PinCleanup(Path::new("/sys/fs/bpf").join(&pin));

    let out = ok(&mut run_in_podman(&env, &dir, &[], &[&pin]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("object=/package/contsnoop.bpf.o"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tracepoint") && stdout.contains("loader done"),
        "{stdout}"
    );
    // The pin the container made is in the host's bpffs.
    assert!(Path::new("/sys/fs/bpf")
        .join(&pin)
        .join("handle_openat")
        .exists());

    // A failing loader's exit code comes back (the pin exists now, so loadall fails).
    let out = run_in_podman(&env, &dir, &[], &[&pin]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn container_runtime_detached_is_stopped_and_removed() {
    if !needs(LOADER_IMAGE) {
        return;
    }
    let image = loader_image();
    let env = Env::new();
    let dir = project(&env, "contdaemon", &container_section(&image));
    let pin = pin_name("bg");
    let _cleanup = PinCleanup(Path::new("/sys/fs/bpf").join(&pin));

    let out = ok(&mut run_in_podman(&env, &dir, &["-d"], &[&pin, "wait"]));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let container = format!("cargo-ebpf-{id}");
    let log = wait_for_log(&env, &id, "loader done");
    assert!(log.contains("tracepoint"), "{log}");
    let ps = String::from_utf8(ok(&mut env.cmd(["ps"])).stdout).unwrap();
    assert!(
        ps.contains(&id) && ps.contains("container") && ps.contains("running"),
        "{ps}"
    );
    assert!(podman(&["container", "exists", &container])
        .status
        .success());

    let out = ok(&mut env.cmd(["stop", &id]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(&format!("Stopped run {id}")), "{said}");
    assert!(!podman(&["container", "exists", &container])
        .status
        .success());
    let out = ok(&mut env.cmd(["stop", &id]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already stopped"));
}

fn wait_for_log(env: &Env, id: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = String::from_utf8(ok(&mut env.cmd(["logs", id])).stdout).unwrap();
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no `{needle}` in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A files project: `conf/demo.conf` placed under `host` (in a directory it creates),
/// a start script copying it to `host/marker`, a stop script removing the marker.
fn files_project(env: &Env, host: &Path, extra: &str) -> PathBuf {
    let dest = host.join("etc-demo/sub/demo.conf");
    let marker = host.join("marker");
    let run = format!(
        "\n[run]\nscript = \"start.sh\"\nstop-script = \"stop.sh\"\n\
         [[run.files]]\nsrc = \"conf/demo.conf\"\ndest = \"{}\"\nmode = 0o600\n{extra}",
        dest.display()
    );
    let dir = project(env, "filesdemo", &run);
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::write(dir.join("conf/demo.conf"), "demo setting\n").unwrap();
    std::fs::write(
        dir.join("start.sh"),
        // Written beside and renamed: a test polling for the marker must never see it empty.
        format!(
            "cat '{0}' > '{1}.part' && mv '{1}.part' '{1}'\n",
            dest.display(),
            marker.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("stop.sh"), format!("rm '{}'\n", marker.display())).unwrap();
    dir
}

/// The digest the layout's tag names.
fn packaged_digest(dir: &Path) -> String {
    let index = std::fs::read(dir.join("target/ebpf/oci/index.json")).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn package_is_reused_until_an_input_changes_and_push_sends_what_was_packaged() {
    let env = Env::new();
    let host = tempfile::tempdir().unwrap();
    let dir = files_project(&env, host.path(), "");
    ok(env.cmd(["package"]).current_dir(&dir));
    let first = packaged_digest(&dir);
    let index = dir.join("target/ebpf/oci/index.json");
    let written = std::fs::metadata(&index).unwrap().modified().unwrap();

    // Nothing changed: the layout is used as it is, not written again.
    ok(env.cmd(["package"]).current_dir(&dir));
    assert_eq!(packaged_digest(&dir), first);
    assert_eq!(
        std::fs::metadata(&index).unwrap().modified().unwrap(),
        written
    );

    // A packaged file changed: a new package, and push sends exactly that one.
    std::fs::write(dir.join("conf/demo.conf"), "another setting\n").unwrap();
    let registry = ebpf_e2e_tests::Registry::start();
    let reference = format!("{}/reuse/filesdemo:0.1.0", registry.addr());
    let out = ok(env.cmd(["push", &reference]).current_dir(&dir));
    let pushed = String::from_utf8(out.stdout).unwrap();
    let second = packaged_digest(&dir);
    assert_ne!(second, first, "the changed file was not packaged");
    assert!(
        pushed.trim().ends_with(&second),
        "pushed {pushed}, packaged {second}"
    );
}

#[test]
fn files_runtime_places_runs_and_undoes_exactly() {
    let env = Env::new();
    let host = tempfile::tempdir().unwrap();
    let existing = host.path().join("existing.conf");
    std::fs::write(&existing, "original\n").unwrap();
    let extra = format!(
        "[[run.files]]\nsrc = \"conf/demo.conf\"\ndest = \"{}\"\noverwrite = true\n",
        existing.display()
    );
    let dir = files_project(&env, host.path(), &extra);
    let dest = host.path().join("etc-demo/sub/demo.conf");
    let marker = host.path().join("marker");

    let out = ok(&mut env.cmd(["run", "-d", dir.to_str().unwrap()]));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "demo setting\n");
    let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&existing).unwrap(),
        "demo setting\n"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "demo setting\n");
    let ps = String::from_utf8(ok(&mut env.cmd(["ps"])).stdout).unwrap();
    assert!(ps.contains(&id) && ps.contains("files"), "{ps}");
    // inspect says which host files it writes, and which it replaces.
    ok(env.cmd(["package"]).current_dir(&dir));
    let layout = dir.join("target/ebpf/oci");
    let text = ok(&mut env.cmd(["inspect", layout.to_str().unwrap()]));
    let text = String::from_utf8(text.stdout).unwrap();
    let writes = [
        format!(
            "writes: {} (mode 0600, from conf/demo.conf) (must not exist yet)",
            dest.display()
        ),
        format!(
            "writes: {} (mode 0644, from conf/demo.conf) [overwrite: the file there is saved",
            existing.display()
        ),
        "runs:   sh start.sh".to_string(),
        "runs:   sh stop.sh (at stop)".to_string(),
    ];
    for line in writes {
        assert!(text.contains(&line), "inspect lacks {line:?}:\n{text}");
    }

    ok(&mut env.cmd(["stop", &id]));
    assert!(!marker.exists(), "the stop script did not run");
    assert!(
        !host.path().join("etc-demo").exists(),
        "created directories left"
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "original\n");
    let mut left: Vec<_> = std::fs::read_dir(host.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["existing.conf"]);

    // Foreground, for a bounded time: the same, undone when it ends. Flags only the
    // built-in loader understands are named as ignored.
    let out = ok(&mut env.cmd([
        "run",
        dir.to_str().unwrap(),
        "--duration",
        "1",
        "--output",
        "json",
        "--interval",
        "1",
    ]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("writes: {} (mode 0600", dest.display())),
        "{said}"
    );
    assert!(
        said.contains(
            "warning: --output json, --interval only apply to kernel-only packages; \
             this files package starts its own loader, so they are ignored"
        ),
        "{said}"
    );
    assert!(!marker.exists() && !host.path().join("etc-demo").exists());
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "original\n");
}

#[test]
fn files_runtime_refuses_to_overwrite_undeclared() {
    let env = Env::new();
    let host = tempfile::tempdir().unwrap();
    let existing = host.path().join("existing.conf");
    std::fs::write(&existing, "original\n").unwrap();
    let extra = format!(
        "[[run.files]]\nsrc = \"conf/demo.conf\"\ndest = \"{}\"\n",
        existing.display()
    );
    let dir = files_project(&env, host.path(), &extra);
    let err = fails(
        &mut env.cmd(["run", dir.to_str().unwrap(), "--duration", "1"]),
        3,
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "original\n");
    // The file placed before the refusal was taken back; the script never ran.
    assert!(!host.path().join("etc-demo").exists());
    assert!(!host.path().join("marker").exists());

    let err = fails(&mut env.cmd(["run", "-d", dir.to_str().unwrap()]), 3);
    assert!(err.contains("already exists"), "{err}");
    let ps = String::from_utf8(ok(&mut env.cmd(["ps", "--all"])).stdout).unwrap();
    assert_eq!(ps.lines().count(), 1, "a failed start left a run:\n{ps}");
}
