//! Driving the real `cargo-ebpf` binary: an isolated home per test, commands that must
//! succeed or fail, and background runs whose output is collected live.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `cargo-ebpf` binary of this workspace, built on first use if `cargo test` did not.
pub fn cargo_ebpf_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("cargo-ebpf", "cargo-ebpf"))
        .clone()
}

/// The standalone `ebpf-runner` binary (the runner crate's bin), built on first use.
pub fn runner_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("ebpf-runner", "ebpf-runner"))
        .clone()
}

fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> → target/debug/<bin>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(bin);
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", package, "--bin", bin])
        .current_dir(workspace_root())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building {bin} failed");
    assert!(path.is_file(), "{} missing after build", path.display());
    path
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// An isolated user environment: its own store, cache and docker config.
pub struct Env {
    pub home: tempfile::TempDir,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    pub fn new() -> Env {
        Env {
            home: tempfile::tempdir().expect("temp home"),
        }
    }

    pub fn path(&self) -> &Path {
        self.home.path()
    }

    /// `cargo-ebpf ARGS` with this environment.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd_of(cargo_ebpf_bin(), args)
    }

    /// `ebpf-runner ARGS` with this environment.
    pub fn runner_cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd_of(runner_bin(), args)
    }

    fn cmd_of<I, S>(&self, bin: PathBuf, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("CARGO_EBPF_HOME", self.path().join("ebpf-home"))
            .env("DOCKER_CONFIG", self.path().join("docker"))
            .env("HOME", self.path())
            .env("CARGO_EBPF_TRUST_POLICY", self.path().join("trust.toml"))
            .env_remove("CARGO_EBPF_KEY_PASSWORD")
            .env_remove("CARGO_EBPF_CONFIG")
            .env_remove("COSIGN_PASSWORD")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }
}

/// Runs `cmd`, panicking with its output unless it succeeds.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn cargo-ebpf");
    assert!(
        out.status.success(),
        "command failed: {cmd:?}\n{}",
        show(&out)
    );
    out
}

/// Runs `cmd`, panicking unless it fails with exit code `code`; returns stderr.
pub fn fails(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().expect("spawn cargo-ebpf");
    assert_eq!(
        out.status.code(),
        Some(code),
        "unexpected exit for {cmd:?}\n{}",
        show(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn show(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A command running in the background with stdout collected and stderr watched.
pub struct Background {
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Arc<Mutex<String>>,
    stderr_lines: mpsc::Receiver<String>,
}

impl Background {
    pub fn spawn(mut cmd: Command) -> Background {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut out = child.stdout.take().expect("stdout");
        let stdout = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        });
        let err = child.stderr.take().expect("stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, stderr_lines) = mpsc::channel();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Background {
            child,
            stdout: Some(stdout),
            stderr,
            stderr_lines,
        }
    }

    /// Waits for a stderr line containing `needle`; panics with all stderr on timeout or exit.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.stderr_lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = self.child.kill();
        panic!(
            "no `{needle}` on stderr; stderr was:\n{}",
            self.stderr.lock().unwrap()
        );
    }

    /// Sends `signal` (e.g. `libc::SIGINT`) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for exit; returns (exit status, stdout, stderr).
    pub fn finish(mut self, timeout: Duration) -> (std::process::ExitStatus, String, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "process did not exit in {timeout:?}; stderr:\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = String::from_utf8_lossy(
            &self
                .stdout
                .take()
                .expect("stdout taken once")
                .join()
                .expect("stdout thread"),
        )
        .into_owned();
        // Give the stderr reader a moment to drain the closed pipe.
        std::thread::sleep(Duration::from_millis(100));
        let stderr = self.stderr.lock().unwrap().clone();
        (status, stdout, stderr)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program` as user and group 65534 (nobody) with no capabilities, through util-linux's
/// setpriv: how the tests check what an unprivileged user is told.
pub fn unprivileged(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(program);
    cmd
}

/// Parses NDJSON output, panicking on a bad line.
pub fn ndjson(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// This thread's `comm`, as the kernel reports it in events.
pub fn thread_comm() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .expect("read comm")
        .trim_end()
        .to_string()
}

/// Opens (creating) `path` every 100 ms while `keep_going` says so: each open is an
/// `openat` syscall the traced program must see.
pub fn trigger_openat_while(path: &Path, mut keep_going: impl FnMut() -> bool) -> usize {
    let mut n = 0;
    while keep_going() {
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path);
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    n
}
