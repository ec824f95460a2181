//! The steps every end-to-end pack test shares: a project scaffolded from a template pack
//! in its own [`Env`], a run that traces `openat` while this test opens a file of its own,
//! and reading the events back (NDJSON from the built-in loader, `PID UID COMM FILENAME`
//! lines from the packs' own loaders).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cli::{self, ok, Background, Env};

/// `--duration` of the traced runs, in seconds.
pub const RUN_SECS: u64 = 6;

/// ELF `e_machine` values the tests check build outputs against.
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
pub const EM_BPF: u16 = 247;

/// A project made by `cargo-ebpf new NAME --lang LANG` in an environment of its own.
pub struct Project {
    pub env: Env,
    pub name: String,
    pub dir: PathBuf,
    /// Applied to every command of this project (the rust pack adds its toolchain's env).
    prepare: fn(Command) -> Command,
}

impl Project {
    pub fn new(name: &str, lang: &str) -> Project {
        Self::with_commands(name, lang, |cmd| cmd)
    }

    /// Like [`Project::new`], with `prepare` applied to every `cargo-ebpf` command.
    pub fn with_commands(name: &str, lang: &str, prepare: fn(Command) -> Command) -> Project {
        let env = Env::new();
        let dir = env.path().join("work").join(name);
        ok(prepare(env.cmd(["new", name, "--lang", lang, "--path"])).arg(&dir));
        Project {
            env,
            name: name.to_string(),
            dir,
            prepare,
        }
    }

    /// `cargo-ebpf ARGS --manifest-path DIR`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = (self.prepare)(self.env.cmd(args));
        cmd.arg("--manifest-path").arg(&self.dir);
        cmd
    }

    /// `target/ebpf/<arch>/<file>`: where `build` leaves its outputs.
    pub fn built(&self, arch: &str, file: &str) -> PathBuf {
        self.dir.join("target/ebpf").join(arch).join(file)
    }

    /// `src/<name>.<ext>`.
    pub fn src(&self, ext: &str) -> PathBuf {
        self.dir.join("src").join(format!("{}.{ext}", self.name))
    }
}

/// `cargo-ebpf run TARGET --duration RUN_SECS FLAGS [-- PROGRAM_ARGS]` in `env`.
pub fn run_command(env: &Env, target: &str, flags: &[&str], program_args: &[&str]) -> Command {
    let secs = RUN_SECS.to_string();
    let mut cmd = env.cmd(["run", target, "--duration", &secs]);
    cmd.args(flags);
    if !program_args.is_empty() {
        cmd.arg("--").args(program_args);
    }
    cmd
}

/// What a traced run printed while this test opened [`TracedRun::file`].
pub struct TracedRun {
    pub stdout: String,
    pub stderr: String,
    /// The file this test opened, as the kernel reports it.
    pub file: String,
    /// This thread's `comm`, which its events carry.
    pub comm: String,
}

impl TracedRun {
    /// stdout as NDJSON events (`run --output json`).
    pub fn json_events(&self) -> Vec<serde_json::Value> {
        cli::ndjson(&self.stdout)
    }
}

/// Starts `cmd`, waits for it to say `Attached`, opens a unique file under `dir` for two
/// seconds, then waits for `cmd` to end by itself (e.g. through `--duration`) and requires
/// that it succeeded.
pub fn run_while_opening(cmd: Command, dir: &Path) -> TracedRun {
    let marker = unique_path(dir, "openat");
    let mut bg = Background::spawn(cmd);
    bg.wait_for_stderr("Attached", Duration::from_secs(60));
    let comm = cli::thread_comm();
    let until = Instant::now() + Duration::from_secs(2);
    assert!(cli::trigger_openat_while(&marker, || Instant::now() < until) > 0);
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(RUN_SECS + 30));
    assert!(status.success(), "run failed: {status}\n{stderr}");
    TracedRun {
        stdout,
        stderr,
        file: marker.display().to_string(),
        comm,
    }
}

/// A path under `dir` that no other test or process uses.
pub fn unique_path(dir: &Path, tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    dir.join(format!("{tag}-{}-{nanos}", std::process::id()))
}

/// The JSON events whose `filename` is `file`.
pub fn events_about<'a>(events: &'a [serde_json::Value], file: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["filename"] == file).collect()
}

/// One line of a pack loader's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderEvent {
    pub pid: u32,
    pub uid: u32,
    pub file: String,
}

/// The c, go and rust packs' loaders print a `PID UID COMM FILENAME` header, then one
/// `%-8d %-8u %-16s %s` line per event (COMM may hold spaces; the tests' file names do not).
pub fn loader_events(stdout: &str) -> Vec<LoaderEvent> {
    let mut lines = stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header
            .split_whitespace()
            .eq(["PID", "UID", "COMM", "FILENAME"]),
        "first line is not the header: {stdout}"
    );
    lines
        .map(|line| {
            let mut cols = line.split_whitespace();
            let mut num = || {
                cols.next()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_else(|| panic!("bad line {line:?}"))
            };
            let (pid, uid) = (num(), num());
            let file = line.rsplit(' ').next().unwrap_or_default().to_string();
            LoaderEvent { pid, uid, file }
        })
        .collect()
}

/// The loader events about `file`, as (pid, uid).
pub fn loader_events_for(stdout: &str, file: &str) -> Vec<(u32, u32)> {
    loader_events(stdout)
        .into_iter()
        .filter(|e| e.file == file)
        .map(|e| (e.pid, e.uid))
        .collect()
}

/// The ELF `e_machine` of `path` (little-endian header field at offset 18).
pub fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_eq!(
        &bytes[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        path.display()
    );
    u16::from_le_bytes([bytes[18], bytes[19]])
}

/// A new eunomia project named `name` in `env` whose ebpf.toml publishes to `registry`
/// (`host:port/namespace`).
pub fn eunomia_publishing_to(env: &Env, name: &str, registry: &str) -> PathBuf {
    let dir = env.path().join("work").join(name);
    ok(env
        .cmd(["new", name, "--lang", "eunomia", "--path"])
        .arg(&dir));
    let manifest = dir.join("ebpf.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replace(
        "# registry = \"localhost:5000/you\"",
        &format!("registry = \"{registry}\""),
    );
    assert!(
        text.contains(&format!("registry = \"{registry}\"")),
        "{text}"
    );
    std::fs::write(&manifest, text).unwrap();
    dir
}

/// `cargo ebpf new` (eunomia) + `push` to `registry` (host:port) as `namespace/name:0.1.0`,
/// in `env`; returns the reference.
pub fn publish_eunomia(env: &Env, registry: &str, namespace: &str, name: &str) -> String {
    let project = env.path().join("work").join(name);
    ok(env
        .cmd(["new", name, "--lang", "eunomia", "--path"])
        .arg(&project));
    let reference = format!("{registry}/{namespace}/{name}:0.1.0");
    ok(env
        .cmd(["push", &reference, "--manifest-path"])
        .arg(&project));
    reference
}
