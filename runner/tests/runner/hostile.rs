//! Hostile packages and hostile servers against the real `ebpf-runner` binary: files
//! packages that would destroy host data, executable packages that reach for host
//! binaries, registries that send endless manifests or never answer, stale temp files,
//! and passwords on the command line. Host files live in temp dirs, never in /etc.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ebpf_package::layer::LayerFile;
use ebpf_package::layout::OciLayout;
use ebpf_package::spec::{PackageMeta, PlacedFile, Runtime};
use ebpf_package::Package;

use crate::common::{needs, Need};

/// The runner with its own empty home, so no test sees the user's store or logins.
fn runner(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ebpf-runner"));
    cmd.env("CARGO_EBPF_HOME", home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("REGISTRY_AUTH_FILE", home.join("auth.json"))
        .env_remove("CARGO_EBPF_TIMEOUT");
    cmd
}

/// stdout and stderr as one line of words: miette wraps long messages (with `│`).
fn flat(out: &Output) -> String {
    text(out)
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An OCI layout in `dir` holding a package with `runtime` and `files` in its layer.
fn layout(dir: &Path, runtime: Runtime, files: &[(&str, &str, u32)]) -> PathBuf {
    // A real object described from its BTF: packages read from a layout are checked
    // against their object first, and what is under test here is the runtime.
    let object = crate::common::compile("opensnoop");
    let mut meta = PackageMeta::new("hostile", "0.1.0", "hostile.bpf.o");
    ebpf_package::object::read(&object, None)
        .unwrap()
        .fill_meta(&mut meta);
    meta.runtime = runtime;
    let mut layer = vec![LayerFile::new("hostile.bpf.o", object, 0o644)];
    layer.extend(
        files
            .iter()
            .map(|(path, data, mode)| LayerFile::new(path, data.as_bytes().to_vec(), *mode)),
    );
    let pkg = Package::build_with_files(meta, &layer, None).unwrap();
    let root = dir.join("layout");
    OciLayout::create(&root)
        .unwrap()
        .write_package(&pkg, "hostile:0.1.0")
        .unwrap();
    root
}

fn files_runtime(dest: &Path, script: Option<&str>) -> Runtime {
    Runtime::Files {
        files: vec![PlacedFile {
            src: "conf/a".into(),
            dest: dest.to_str().unwrap().into(),
            mode: None,
            overwrite: true,
        }],
        script: script.map(String::from),
        stop_script: None,
    }
}

/// Runs a files package that overwrites `dest` for one second.
fn run_files(home: &Path, dest: &Path, script: Option<(&str, &str)>) -> Output {
    let mut files = vec![("conf/a", "from the package", 0o644)];
    files.extend(script.map(|(name, body)| (name, body, 0o755)));
    let runtime = files_runtime(dest, script.map(|(name, _)| name));
    let layout = layout(home, runtime, &files);
    runner(home)
        .args(["run", layout.to_str().unwrap(), "--duration", "1"])
        .output()
        .unwrap()
}

#[test]
fn files_overwrite_onto_a_symlink_is_refused_and_its_target_kept() {
    if !needs(&[Need::Root, Need::Build]) {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    let target = host.path().join("precious");
    std::fs::write(&target, "precious").unwrap();
    let link = host.path().join("conf");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let out = run_files(home.path(), &link, None);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(flat(&out).contains("symbolic link"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
}

#[test]
fn files_overwrite_of_a_hard_linked_file_is_refused() {
    if !needs(&[Need::Root, Need::Build]) {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    let dest = host.path().join("conf");
    std::fs::write(&dest, "original").unwrap();
    let other = host.path().join("other-name");
    std::fs::hard_link(&dest, &other).unwrap();

    let out = run_files(home.path(), &dest, None);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(flat(&out).contains("hard links"), "{}", text(&out));
    for path in [&dest, &other] {
        assert_eq!(std::fs::read_to_string(path).unwrap(), "original");
        assert_eq!(std::fs::metadata(path).unwrap().nlink(), 2);
    }
}

#[test]
fn files_overwrite_onto_a_directory_is_a_clear_input_error() {
    if !needs(&[Need::Root, Need::Build]) {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    let dest = host.path().join("conf.d");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("inside"), "kept").unwrap();

    let out = run_files(home.path(), &dest, None);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(flat(&out).contains("is a directory"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(dest.join("inside")).unwrap(),
        "kept"
    );
}

#[test]
fn files_overwrite_restores_the_original_itself() {
    if !needs(&[Need::Root, Need::Build]) {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    let dest = host.path().join("conf");
    std::fs::write(&dest, "original").unwrap();
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&dest, Some(4242), Some(4243)).unwrap();
    let before = std::fs::metadata(&dest).unwrap();
    let seen = host.path().join("seen");
    let script = format!("cat '{}' > '{}'\n", dest.display(), seen.display());

    let out = run_files(home.path(), &dest, Some(("start.sh", &script)));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "from the package");
    let after = std::fs::symlink_metadata(&dest).unwrap();
    assert!(after.is_file());
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "original");
    assert_eq!(after.ino(), before.ino(), "the original inode comes back");
    assert_eq!((after.uid(), after.gid()), (4242, 4243));
    assert_eq!(after.mode() & 0o7777, 0o600);
    let left: Vec<_> = std::fs::read_dir(host.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "nothing left behind: {left:?}");
}

/// An executable package whose loader and working directory are `path` and `workdir`.
fn run_executable(path: &str, workdir: Option<&str>) -> Output {
    let home = tempfile::tempdir().unwrap();
    let runtime = Runtime::Executable {
        path: path.into(),
        args: vec!["host binary ran".into()],
        env: BTreeMap::new(),
        workdir: workdir.map(String::from),
    };
    let loader = "#!/bin/sh\necho \"workdir=$(pwd)\"\n";
    let layout = layout(home.path(), runtime, &[("bin/loader", loader, 0o755)]);
    runner(home.path())
        .args(["run", layout.to_str().unwrap()])
        .output()
        .unwrap()
}

#[test]
fn executable_loader_and_workdir_are_confined_to_the_package() {
    if !needs(&[Need::Build]) {
        return;
    }
    for path in ["/bin/echo", "../../../../../../bin/echo"] {
        let out = run_executable(path, None);
        assert_eq!(out.status.code(), Some(3), "{path}: {}", text(&out));
        // The plan names the command line; only the binary's own output would show it ran.
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("host binary ran"), "{}", text(&out));
        assert!(
            flat(&out).contains("not a path inside the package"),
            "{}",
            text(&out)
        );
    }
    let out = run_executable("bin/loader", Some("/etc"));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(!flat(&out).contains("workdir=/etc"), "{}", text(&out));
    let out = run_executable("bin/loader", Some("bin"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("/bin\n"), "{}", text(&out));
}

/// A registry on 127.0.0.1 that answers `/v2/` and sends every other request an endless
/// (capped at `max` bytes) manifest body; counts what it managed to send.
fn endless_manifest_registry(max: u64) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || serve_endless(stream, max, &counter));
        }
    });
    (addr, sent)
}

fn serve_endless(mut stream: std::net::TcpStream, max: u64, sent: &AtomicU64) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    if request.starts_with(b"GET /v2/ ") {
        let _ =
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = vec![b' '; 64 << 10];
    while sent.load(Ordering::SeqCst) < max {
        if stream.write_all(&chunk).is_err() {
            return;
        }
        sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
}

#[test]
fn an_endless_manifest_is_cut_off_at_the_limit() {
    let home = tempfile::tempdir().unwrap();
    // Capped so a runner without the streaming limit still finishes (after 256 MiB).
    let (addr, sent) = endless_manifest_registry(256 << 20);
    let started = Instant::now();
    let out = runner(home.path())
        .args(["pull", &format!("{addr}/hostile/demo:1")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(flat(&out).contains("larger than"), "{}", text(&out));
    // The 4 MiB limit plus what socket buffers held when the runner stopped reading.
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent < 32 << 20, "the server sent {sent} bytes");
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// A registry that accepts connections and never says a word.
fn silent_registry() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

#[test]
fn a_registry_that_never_answers_is_given_up_on_after_the_timeout() {
    let home = tempfile::tempdir().unwrap();
    let addr = silent_registry();
    let reference = format!("{addr}/hostile/demo:1");
    let attempts: [(&[&str], Option<&str>); 2] = [
        (&["pull", &reference, "--timeout", "2"], None),
        (&["inspect", &reference], Some("2")),
    ];
    for (args, env) in attempts {
        let started = Instant::now();
        let mut cmd = runner(home.path());
        if let Some(secs) = env {
            cmd.env("CARGO_EBPF_TIMEOUT", secs);
        }
        let out = cmd.args(args).output().unwrap();
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(6), "{args:?}: {}", text(&out));
        assert!(
            flat(&out).contains("did not finish within 2 s"),
            "{}",
            text(&out)
        );
        assert!(flat(&out).contains("--timeout"), "{}", text(&out));
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
    }
    let out = runner(home.path())
        .args(["pull", &reference])
        .env("CARGO_EBPF_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn stale_temp_files_are_swept_from_the_store() {
    let home = tempfile::tempdir().unwrap();
    let store = home.path().join("store");
    let blobs = store.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let stale = blobs.join(".tmp-killed-pull");
    let fresh = blobs.join(".tmp-running-pull");
    for path in [&stale, &fresh] {
        std::fs::write(path, vec![0u8; 4096]).unwrap();
    }
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();

    let out = runner(home.path()).arg("list").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!stale.exists(), "a temp file from an hour ago is swept");
    assert!(
        fresh.exists(),
        "a temp file a pull may still be writing stays"
    );
}

#[test]
fn login_with_a_password_argument_warns_it_is_visible() {
    let home = tempfile::tempdir().unwrap();
    // Nothing listens there: the login itself fails, the warning comes first.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = runner(home.path())
        .args([
            "login",
            &format!("127.0.0.1:{port}"),
            "-u",
            "me",
            "-p",
            "s3cret",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning:"), "{}", text(&out));
    assert!(stderr.contains("process list"), "{}", text(&out));
    assert!(stderr.contains("--password-stdin"), "{}", text(&out));
}
