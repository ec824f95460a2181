//! Container engines (podman, docker), shared by the two places that start containers:
//! `cargo ebpf build --container` (cargo-ebpf's build/container.rs) and packages whose
//! runtime is a container image ([`crate::run`]'s container runtime).
//!
//! What both need from a host without systemd or crun (sandboxes, CI, minimal servers):
//! podman's global options ([`podman_host_args`]), `--ulimit`s runc can set
//! ([`ulimit_args`]), and a `DOCKER_CONFIG` podman accepts ([`Engine::command`]).
//!
//! [`ENGINE_ENV`] (`CARGO_EBPF_ENGINE`) picks the engine for both. Each command also keeps the
//! variables it was first documented with, which win when set:
//! - `cargo ebpf build --container`: `CARGO_EBPF_CONTAINER_ENGINE` (`podman` or `docker`)
//!   and `CARGO_EBPF_CONTAINER_ARGS` (global options for either engine);
//! - `run`/`install` of a container package: [`PODMAN_ARGS_ENV`] (`CARGO_EBPF_PODMAN_ARGS`,
//!   podman only).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::which::find_program;
use ebpf_package::{Error, Result};

/// The engines looked for when none is chosen, in order of preference.
pub const ENGINES: [&str; 2] = ["podman", "docker"];

/// Environment variable choosing the engine, like `--engine`: for container packages and,
/// unless `CARGO_EBPF_CONTAINER_ENGINE` is set, for `build --container`.
pub const ENGINE_ENV: &str = "CARGO_EBPF_ENGINE";
/// Environment variable with podman's global options for container packages, replacing
/// the detected ones (e.g. `--runtime runc --cgroup-manager cgroupfs`).
pub const PODMAN_ARGS_ENV: &str = "CARGO_EBPF_PODMAN_ARGS";

/// How long `stop` gives the container's process after SIGTERM before the engine kills it.
const STOP_GRACE_SECS: u32 = 5;

/// A container engine: the program and the global options it needs on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// A program name (looked up on PATH when run) or a path.
    pub program: String,
    /// Options placed before the subcommand.
    pub global_args: Vec<String>,
}

impl Engine {
    /// For container packages: `choice` (`--engine`), else [`ENGINE_ENV`], else podman,
    /// else docker.
    pub fn detect(choice: Option<&str>) -> Result<Engine> {
        let env = std::env::var(ENGINE_ENV).ok().filter(|v| !v.is_empty());
        let program = match choice.map(str::to_string).or(env) {
            Some(program) if find_program(&program).is_some() => program,
            Some(program) => {
                return Err(Error::environment(format!(
                    "the container engine `{program}` is not installed"
                ))
                .with_help("install it (`apt-get install podman`), or pick another with --engine"))
            }
            None => first_installed()
                .ok_or_else(|| {
                    Error::environment("this package runs in a container, but neither podman nor docker is installed")
                        .with_help("install one (`apt-get install podman`) and run it again")
                })?
                .to_string(),
        };
        Ok(Engine::named(&program))
    }

    /// The engine `program` for container packages, with the global options this host
    /// needs ([`PODMAN_ARGS_ENV`] replaces podman's detected ones).
    pub fn named(program: &str) -> Engine {
        let podman_args = std::env::var(PODMAN_ARGS_ENV)
            .ok()
            .filter(|_| file_name(program) == "podman");
        Engine::with_args(program, podman_args)
    }

    /// `program` with `global_args` (whitespace-separated) when given; otherwise, for
    /// podman, the options this host needs ([`podman_host_args`]).
    pub fn with_args(program: &str, global_args: Option<String>) -> Engine {
        let mut engine = Engine {
            program: program.to_string(),
            global_args: Vec::new(),
        };
        engine.global_args = match global_args {
            Some(args) => args.split_whitespace().map(str::to_string).collect(),
            None if engine.is_podman() => podman_host_args(),
            None => Vec::new(),
        };
        engine
    }

    /// The program's file name: `podman` or `docker`.
    pub fn name(&self) -> &str {
        file_name(&self.program)
    }

    pub fn is_podman(&self) -> bool {
        self.name() == "podman"
    }

    /// A command for this engine with its global options.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.global_args);
        // podman refuses to start anything when $DOCKER_CONFIG names a directory without
        // a config.json; such a directory holds no credentials, so dropping it loses nothing.
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            if !Path::new(&dir).join("config.json").is_file() {
                cmd.env_remove("DOCKER_CONFIG");
            }
        }
        cmd
    }

    /// Whether `image` is in the engine's local images.
    pub fn has_image(&self, image: &str) -> Result<bool> {
        let status = self
            .command()
            .args(["image", "inspect", image])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| Error::io("run", Path::new(&self.program), e))?;
        Ok(status.success())
    }

    /// The image's id (`sha256:…` of its config), if the engine has it.
    pub fn image_id(&self, image: &str) -> Result<Option<String>> {
        let out = self
            .command()
            .args(["image", "inspect", "--format", "{{.Id}}", image])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| Error::io("run", Path::new(&self.program), e))?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(
            (out.status.success() && !id.is_empty()).then(|| match id.contains(':') {
                true => id,
                false => format!("sha256:{id}"),
            }),
        )
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

fn file_name(program: &str) -> &str {
    Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(program)
}

/// The first of [`ENGINES`] that is installed.
pub fn first_installed() -> Option<&'static str> {
    ENGINES.into_iter().find(|p| find_program(p).is_some())
}

/// What podman needs to be told on a host without systemd (`--cgroup-manager cgroupfs`)
/// or without crun (`--runtime runc`); its defaults assume both.
pub fn podman_host_args() -> Vec<String> {
    let mut args = Vec::new();
    if find_program("crun").is_none() && find_program("runc").is_some() {
        args.extend(["--runtime".to_string(), "runc".to_string()]);
    }
    if !Path::new("/run/systemd/system").is_dir() {
        args.extend(["--cgroup-manager".to_string(), "cgroupfs".to_string()]);
    }
    args
}

/// `--ulimit` options asking for this process's own limits. podman asks the runtime for
/// open-file and process limits of 1048576, and runc can only set them from outside the
/// container, which fails with EPERM wherever podman's own hard limits are lower and
/// CAP_SYS_RESOURCE is missing (sandboxes, CI). Processes are capped at the 32768 podman 4
/// sets for itself before starting the container.
pub fn ulimit_args() -> Vec<String> {
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

/// This process's (soft, hard) limit of `resource`, unless unlimited.
fn rlimit(resource: libc::__rlimit_resource_t) -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    let ok = unsafe { libc::getrlimit(resource, &mut limit) } == 0;
    (ok && limit.rlim_max != libc::RLIM_INFINITY).then_some((limit.rlim_cur, limit.rlim_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_engine_is_an_environment_error() {
        let err = Engine::detect(Some("no-such-engine-xyz")).unwrap_err();
        assert_eq!(err.kind, ebpf_package::ErrorKind::Environment);
        assert!(err.message.contains("no-such-engine-xyz"));
    }

    #[test]
    fn given_global_args_replace_the_detected_ones() {
        let engine = Engine::with_args("/usr/bin/podman", Some(" --a  b ".into()));
        assert_eq!(engine.name(), "podman");
        assert_eq!(engine.global_args, ["--a", "b"]);
        assert!(Engine::with_args("docker", None).global_args.is_empty());
        assert!(ulimit_args().join(" ").contains("--ulimit nproc="));
    }
}
