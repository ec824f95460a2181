//! Container packages: the loader lives in a container image, started with docker or
//! podman `run --privileged` with what eBPF loaders need from the host (kernel BTF, bpffs,
//! tracefs, the host's pid and network namespaces) and the package layer at `/package`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::format::{self, PackageMeta, Runtime};
use crate::{Error, Package, Result};

use super::detached::Ready;
use super::signals::StopSignals;
use super::{preflight, RunOptions};

/// Environment variable choosing the engine, like `--engine`.
pub const ENGINE_ENV: &str = "CARGO_EBPF_ENGINE";
/// Environment variable with podman's global options, replacing the detected ones
/// (e.g. `--runtime runc --cgroup-manager cgroupfs`).
pub const PODMAN_ARGS_ENV: &str = "CARGO_EBPF_PODMAN_ARGS";

/// Host paths bind-mounted into the container when they exist: kernel BTF (read-only),
/// bpffs (so pins are shared with the host) and tracefs in both of its usual places.
const HOST_MOUNTS: [(&str, bool); 4] = [
    ("/sys/kernel/btf", true),
    ("/sys/fs/bpf", false),
    ("/sys/kernel/tracing", false),
    ("/sys/kernel/debug", false),
];

/// How long `stop` gives the container's process after SIGTERM before the engine kills it.
const STOP_GRACE_SECS: u32 = 5;

/// A container engine: the program and the global options it needs on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    pub program: String,
    pub global_args: Vec<String>,
}

impl Engine {
    /// `choice` (`--engine`), else `$CARGO_EBPF_ENGINE`, else podman, else docker.
    pub fn detect(choice: Option<&str>) -> Result<Engine> {
        let env = std::env::var(ENGINE_ENV).ok().filter(|v| !v.is_empty());
        let program = match choice.map(str::to_string).or(env) {
            Some(program) if find_in_path(&program).is_some() => program,
            Some(program) => {
                return Err(Error::environment(format!(
                    "the container engine `{program}` is not installed"
                ))
                .with_help("install it (`apt-get install podman`), or pick another with --engine"))
            }
            None => ["podman", "docker"]
                .into_iter()
                .find(|p| find_in_path(p).is_some())
                .ok_or_else(|| {
                    Error::environment("this package runs in a container, but neither podman nor docker is installed")
                        .with_help("install one (`apt-get install podman`) and run it again")
                })?
                .to_string(),
        };
        Ok(Engine::named(&program))
    }

    /// The engine `program` with the global options this host needs.
    pub fn named(program: &str) -> Engine {
        Engine {
            global_args: global_args(program),
            program: program.to_string(),
        }
    }

    /// A command for this engine with its global options.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.global_args);
        // podman refuses to start anything when $DOCKER_CONFIG names a directory without
        // a config.json; without the variable it uses its own default.
        let config = std::env::var_os("DOCKER_CONFIG").map(PathBuf::from);
        if config.is_some_and(|dir| !dir.join("config.json").is_file()) {
            cmd.env_remove("DOCKER_CONFIG");
        }
        cmd
    }

    /// Whether a container called `name` exists (running or not).
    pub fn exists(&self, name: &str) -> bool {
        self.command()
            .args(["container", "inspect", "--format", "{{.Id}}", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Stops (SIGTERM, then SIGKILL after a grace period) and removes container `name`;
    /// returns whether there was one.
    pub fn remove(&self, name: &str) -> Result<bool> {
        if !self.exists(name) {
            return Ok(false);
        }
        let _ = self.quiet(&["stop", "--time", &STOP_GRACE_SECS.to_string(), name]);
        let out = self.quiet(&["rm", "--force", name])?;
        if !out.status.success() && self.exists(name) {
            return Err(Error::environment(format!(
                "`{} rm --force {name}` failed: {}",
                self.program,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .with_help("remove the container by hand"));
        }
        Ok(true)
    }

    fn quiet(&self, args: &[&str]) -> Result<std::process::Output> {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                Error::environment(format!("cannot run {}: {e}", self.program))
                    .with_help("check the container engine's installation")
            })
    }
}

/// podman needs to be told when the host lacks systemd (cgroupfs) or crun (runc);
/// `$CARGO_EBPF_PODMAN_ARGS` overrides the detection.
fn global_args(program: &str) -> Vec<String> {
    let is_podman = Path::new(program)
        .file_name()
        .is_some_and(|n| n == "podman");
    if !is_podman {
        return vec![];
    }
    if let Ok(args) = std::env::var(PODMAN_ARGS_ENV) {
        return args.split_whitespace().map(str::to_string).collect();
    }
    let mut args = Vec::new();
    if find_in_path("crun").is_none() && find_in_path("runc").is_some() {
        args.extend(["--runtime".to_string(), "runc".to_string()]);
    }
    if !Path::new("/run/systemd/system").is_dir() {
        args.extend(["--cgroup-manager".to_string(), "cgroupfs".to_string()]);
    }
    args
}

/// podman asks for open-file and process limits of 1048576, which runc cannot set where
/// its own hard limits are lower and CAP_SYS_RESOURCE is missing (sandboxes, CI): ask for
/// our own limits instead, processes capped at the 32768 podman 4 sets for itself.
fn ulimits() -> Vec<String> {
    const NPROC_CAP: u64 = 32768;
    let mut out = Vec::new();
    if let Some((soft, hard)) = rlimit(libc::RLIMIT_NOFILE) {
        out.extend(["--ulimit".into(), format!("nofile={soft}:{hard}")]);
    }
    let (soft, hard) = rlimit(libc::RLIMIT_NPROC).unwrap_or((NPROC_CAP, NPROC_CAP));
    let (soft, hard) = (soft.min(NPROC_CAP), hard.min(NPROC_CAP));
    out.extend(["--ulimit".into(), format!("nproc={soft}:{hard}")]);
    out
}

/// This process's (soft, hard) limit, unless unlimited.
fn rlimit(resource: libc::__rlimit_resource_t) -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    let ok = unsafe { libc::getrlimit(resource, &mut limit) } == 0;
    (ok && limit.rlim_max != libc::RLIM_INFINITY).then_some((limit.rlim_cur, limit.rlim_max))
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Runs a container package; returns the container's exit code.
pub fn run_container(pkg: &Package, meta: &PackageMeta, opts: &RunOptions) -> Result<i32> {
    let Runtime::Container { .. } = &meta.runtime else {
        return Err(Error::input("this package has no container image"));
    };
    let engine = Engine::detect(opts.engine.as_deref())?;
    preflight::check_privileges()?;
    preflight::ensure_mounts()?;
    // Detached runs keep the layer in their state dir; foreground ones in a temp dir.
    let temp;
    let (package_dir, name) = match &opts.detached {
        Some(d) => (d.package_dir(), d.container_name()),
        None => {
            temp = tempfile::Builder::new()
                .prefix("cargo-ebpf-run-")
                .tempdir()
                .map_err(|e| Error::io("create a directory in", &std::env::temp_dir(), e))?;
            let name = format!("cargo-ebpf-run-{}", std::process::id());
            (temp.path().to_path_buf(), name)
        }
    };
    std::fs::create_dir_all(&package_dir).map_err(|e| Error::io("create", &package_dir, e))?;
    pkg.extract_to(&package_dir)?;
    let mut cmd = engine.command();
    cmd.args(run_args(meta, &package_dir, &name, &opts.args));
    eprintln!(
        "Starting {} in {} as container {name}",
        image_of(meta),
        engine.program
    );
    let child = cmd.stdin(Stdio::null()).spawn().map_err(|e| {
        Error::environment(format!("cannot start {}: {e}", engine.program))
            .with_help("check the container engine's installation")
    })?;
    if let Some(detached) = &opts.detached {
        detached.report_ready(&Ready::default())?;
    }
    let code = supervise(child, &engine, &name, opts.duration);
    // `--rm` removes it when it ends by itself; this covers an engine that died first.
    let _ = engine.remove(&name);
    code
}

fn image_of(meta: &PackageMeta) -> &str {
    match &meta.runtime {
        Runtime::Container { image, .. } => image,
        _ => "",
    }
}

/// `run …` arguments: privileged, host pid and network, host BTF/bpffs/tracefs, the
/// package at /package, its env, then the image, its args and the user's.
pub fn run_args(
    meta: &PackageMeta,
    package_dir: &Path,
    name: &str,
    user_args: &[String],
) -> Vec<OsString> {
    let Runtime::Container { image, args, env } = &meta.runtime else {
        return vec![];
    };
    let mut out: Vec<OsString> = ["run", "--rm", "--name", name, "--privileged"]
        .into_iter()
        .chain(["--pid=host", "--network=host"])
        .map(OsString::from)
        .collect();
    out.extend(ulimits().into_iter().map(OsString::from));
    for (path, read_only) in HOST_MOUNTS {
        if Path::new(path).exists() {
            let suffix = if read_only { ":ro" } else { "" };
            out.push("--volume".into());
            out.push(format!("{path}:{path}{suffix}").into());
        }
    }
    let inside = format::CONTAINER_PACKAGE_DIR;
    let mut volume = OsString::from(package_dir);
    volume.push(format!(":{inside}:ro"));
    out.extend(["--volume".into(), volume]);
    let object = format!("{}={inside}/{}", format::ENV_OBJECT, meta.object);
    let dir = format!("{}={inside}", format::ENV_PACKAGE_DIR);
    for var in [object, dir]
        .into_iter()
        .chain(env.iter().map(|(k, v)| format!("{k}={v}")))
    {
        out.extend(["--env".into(), var.into()]);
    }
    out.push(image.into());
    out.extend(args.iter().chain(user_args).map(OsString::from));
    out
}

/// Waits for the engine's `run`; on SIGINT/SIGTERM or `--duration` asks the engine to stop
/// the container (a shell as PID 1 ignores a forwarded SIGTERM).
fn supervise(
    mut child: Child,
    engine: &Engine,
    name: &str,
    duration: Option<Duration>,
) -> Result<i32> {
    let signals = StopSignals::install();
    let deadline = duration.map(|d| Instant::now() + d);
    let mut stopping = false;
    loop {
        let status = child
            .try_wait()
            .map_err(|e| Error::io("wait for", Path::new(&engine.program), e))?;
        if let Some(status) = status {
            // Stopped on request: the stop the user asked for, not a failure.
            return Ok(if stopping {
                0
            } else {
                status.code().unwrap_or(1)
            });
        }
        let expired = deadline.is_some_and(|d| Instant::now() >= d);
        if (signals.requested() || expired) && !stopping {
            stopping = true;
            engine.remove(name)?;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn run_args_mount_the_host_and_pass_args_in_order() {
        let mut meta = PackageMeta::new("demo", "0.1.0", "demo.bpf.o");
        meta.runtime = Runtime::Container {
            image: "localhost/demo:1".into(),
            args: vec!["/loader.sh".into()],
            env: BTreeMap::from([("MODE".to_string(), "fast".to_string())]),
        };
        let args: Vec<String> = run_args(&meta, Path::new("/tmp/pkg"), "c1", &["--x".into()])
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        assert!(joined.starts_with("run --rm --name c1 --privileged --pid=host --network=host"));
        assert!(joined.contains("--ulimit nproc="), "{joined}");
        assert!(joined.contains("--volume /tmp/pkg:/package:ro"));
        assert!(joined.contains("--env CARGO_EBPF_OBJECT=/package/demo.bpf.o"));
        assert!(joined.contains("--env MODE=fast"));
        assert!(
            joined.ends_with("localhost/demo:1 /loader.sh --x"),
            "{joined}"
        );
        if Path::new("/sys/kernel/btf").exists() {
            assert!(joined.contains("--volume /sys/kernel/btf:/sys/kernel/btf:ro"));
        }
    }

    #[test]
    fn unknown_engine_is_an_environment_error() {
        let err = Engine::detect(Some("no-such-engine-xyz")).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Environment);
        assert!(err.message.contains("no-such-engine-xyz"));
    }
}
