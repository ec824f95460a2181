//! Fixtures for end-to-end tests against real tools.
//!
//! - [`Registry`]: a real `docker-registry` (distribution 2.8) on 127.0.0.1, with our own
//!   config, storage in a temp dir, optionally htpasswd auth; killed on drop.
//! - [`sample_package`]: a small package built with the real `Package::build`.
//! - [`cli`]: the real `cargo-ebpf` binary in an isolated [`cli::Env`];
//!   [`project`]: a scaffolded project and the run-while-opening flow of the pack tests.
//! - [`harness`]: honest skips ([`harness::needs`]) and tests run alone in a child process;
//!   shared with the runner's and cargo-ebpf's test binaries.
//! - [`sha256`]: the `sha256:HEX` digest every test compares against.

pub mod cli;
pub mod harness;
pub mod hub;
pub mod images;
pub mod project;
pub mod proxy;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ebpf_package::spec::{PackageMeta, ProgramInfo};
use ebpf_package::Package;
use sha2::{Digest, Sha256};

pub use harness::{needs, Need};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running docker-registry. Killed (and its storage deleted) on drop.
pub struct Registry {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Registry {
    /// An open registry (no auth).
    pub fn start() -> Registry {
        Self::launch(None)
    }

    /// A registry requiring HTTP Basic auth as `user`/`pass` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, pass: &str) -> Registry {
        Self::launch(Some((user, pass)))
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The registry's storage root (filesystem driver `rootdirectory`).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The file holding blob `digest` on the registry's disk.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// What the registry printed so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn launch(auth: Option<(&str, &str)>) -> Registry {
        // A port picked by the kernel can be taken by someone else before the registry binds
        // it; try a few times.
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let addr = format!("127.0.0.1:{}", free_port());
            let config = write_config(dir.path(), &addr, auth);
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN}: {e}"));
            let mut registry = Registry { child, addr, dir };
            if registry.wait_ready(Duration::from_secs(20)) {
                return registry;
            }
            last_log = registry.log();
        }
        panic!("docker-registry did not start; last log:\n{last_log}");
    }

    /// Polls /v2/ until it answers (200 or 401), the process exits, or `timeout` passes.
    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Some(status) = http_status(&self.addr, "/v2/") {
                if status == 200 || status == 401 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, addr: &str, auth: Option<(&str, &str)>) -> PathBuf {
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).expect("storage dir");
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: {addr}\n  secret: cargo-ebpf-tests\n",
        storage.display()
    );
    if let Some((user, pass)) = auth {
        let htpasswd = dir.join("htpasswd");
        // Go's bcrypt wants the $2y$ prefix htpasswd uses; cost 4 keeps tests fast.
        let hash = bcrypt::hash_with_result(pass, 4)
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoY);
        std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("htpasswd");
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: cargo-ebpf-tests\n    path: {}\n",
            htpasswd.display()
        ));
    }
    let path = dir.join("config.yml");
    std::fs::write(&path, config).expect("registry config");
    path
}

/// The OCI digest of `bytes`: `sha256:` and the hex of their SHA-256.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `skopeo ARGS`, which must succeed; returns its output.
pub fn skopeo(args: &[&str]) -> Output {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether the kernel has a BPF program with this id (`bpftool prog show id ID`).
pub fn bpftool_has_prog(id: u64) -> bool {
    Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string()])
        .output()
        .expect("bpftool (apt-get install bpftool)")
        .status
        .success()
}

/// A TCP port on 127.0.0.1 that nothing listens on (at the time of the call).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// The HTTP status of `GET path` on `addr`, or None if nothing answers.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The metadata of a small sample package named `name`.
pub fn sample_meta(name: &str, version: &str) -> PackageMeta {
    let mut meta = PackageMeta::new(name, version, &format!("{name}.bpf.o"));
    meta.description = Some(format!("{name}, a test package"));
    meta.license = Some("GPL-2.0".into());
    meta.authors = vec!["Test <test@example.com>".into()];
    meta.programs = vec![ProgramInfo {
        name: "handle".into(),
        section: "tracepoint/syscalls/sys_enter_openat".into(),
        prog_type: "tracepoint".into(),
    }];
    meta
}

/// A sample package holding a small fake object whose bytes depend on `name`.
pub fn sample_package(name: &str, version: &str) -> Package {
    let object = format!("\x7fELF fake object for {name} {version}").into_bytes();
    Package::build(
        sample_meta(name, version),
        &object,
        Some("2026-01-01T00:00:00Z".into()),
    )
    .expect("build sample package")
}

/// Every file under `dir` with its bytes, sorted by path: a snapshot to compare before/after.
pub fn snapshot_dir(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                out.push((path.strip_prefix(dir).unwrap().to_path_buf(), bytes));
            }
        }
    }
    out.sort();
    out
}
