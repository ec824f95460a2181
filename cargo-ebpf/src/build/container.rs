//! `cargo ebpf build --container`: the same build, run inside a builder image
//! (docker/builder.Dockerfile) with podman or docker, so the host needs no clang, bpftool,
//! libbpf or Go.
//!
//! The container gets:
//! - this very binary, read-only, as `/usr/local/bin/cargo-ebpf` (the image needs no Rust);
//! - the project directory at the same absolute path, so paths in the build's outputs and
//!   fingerprints mean the same inside and out (a host build after a container build of the
//!   same sources is fresh);
//! - the kernel BTF (`/sys/kernel/btf/vmlinux` or `--btf`), read-only, for vmlinux.h.
//!
//! Ownership: the container runs as the owner (uid:gid) of the project directory, so every
//! file it writes under target/ belongs to that user from the start. A chown afterwards
//! would also work, but it needs root on the host, misses files when the build fails half
//! way, and lets a root process inside write into the user's tree. Rootless podman adds
//! `--userns keep-id` so that uid means the same user inside.
//!
//! The inner `cargo-ebpf build --print-outputs` prints its [`BuildOutput`]s as JSON on
//! stdout (status lines go to stderr, which the user sees as they happen).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ebpf_runner::{Error, ErrorKind, Result};

use crate::manifest::Project;

use super::{find_program, status, BuildOptions, BuildOutput};

/// Environment variable naming the builder image (overridden by `--image`).
pub const ENV_IMAGE: &str = "CARGO_EBPF_BUILDER_IMAGE";
/// Environment variable choosing the engine, `docker` or `podman` (overridden by `--engine`).
pub const ENV_ENGINE: &str = "CARGO_EBPF_CONTAINER_ENGINE";
/// Extra global arguments for the engine (e.g. `--runtime runc --cgroup-manager cgroupfs`);
/// when set, podman's own detection below is skipped.
pub const ENV_ENGINE_ARGS: &str = "CARGO_EBPF_CONTAINER_ARGS";

/// Where the binary and the kernel BTF appear inside the container.
const EXE_IN_CONTAINER: &str = "/usr/local/bin/cargo-ebpf";
const BTF_IN_CONTAINER: &str = "/run/cargo-ebpf/vmlinux.btf";

/// The builder image used when neither `--image` nor [`ENV_IMAGE`] names one.
pub fn default_image() -> String {
    format!("ghcr.io/cargo-ebpf/builder:{}", env!("CARGO_PKG_VERSION"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    Docker,
    Podman,
}

impl Engine {
    fn program(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }
}

/// [`ENV_ENGINE`], when set.
fn engine_from_env() -> Result<Option<Engine>> {
    match std::env::var(ENV_ENGINE).unwrap_or_default().as_str() {
        "" => Ok(None),
        "podman" => Ok(Some(Engine::Podman)),
        "docker" => Ok(Some(Engine::Docker)),
        other => Err(
            Error::usage(format!("{ENV_ENGINE}={other} names no container engine"))
                .with_help("set it to `podman` or `docker`, or unset it"),
        ),
    }
}

#[derive(Debug, Clone, Default)]
pub struct ContainerOptions {
    /// The engine; `None` = [`ENV_ENGINE`], else podman if installed, else docker.
    pub engine: Option<Engine>,
    /// The builder image; `None` = [`ENV_IMAGE`], else [`default_image`].
    pub image: Option<String>,
}

/// [`super::build_all`] inside the builder image: builds `arches` (none = the host's) and
/// returns what the inner build produced.
pub fn build_all(
    project: &Project,
    opts: &BuildOptions,
    container: &ContainerOptions,
    arches: &[String],
) -> Result<Vec<BuildOutput>> {
    let arches = super::resolve_arches(arches)?;
    let engine = Runner::find(
        container
            .engine
            .map_or_else(engine_from_env, |e| Ok(Some(e)))?,
    )?;
    let image = container
        .image
        .clone()
        .or_else(|| std::env::var(ENV_IMAGE).ok().filter(|i| !i.is_empty()))
        .unwrap_or_else(default_image);
    engine.ensure_image(&image)?;
    let (btf, _) = ebpf_runner::run::kernel_btf_path(opts.btf.as_deref())?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("find", Path::new("the cargo-ebpf binary"), e))?;
    status(
        "Container",
        &format!("building {} in {image} ({})", project.name(), engine.name),
    );
    let mut cmd = engine.command();
    cmd.args(run_args(
        engine.engine,
        project,
        &image,
        &exe,
        &btf,
        &arches,
    )?);
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::io("run", &engine.path, e))?;
    if !out.status.success() {
        return Err(inner_failure(&engine.name, &image, out.status.code()));
    }
    parse_outputs(&out.stdout)
}

/// `run …` arguments: mounts, user, environment, then the inner build command.
fn run_args(
    engine: Engine,
    project: &Project,
    image: &str,
    exe: &Path,
    btf: &Path,
    arches: &[&str],
) -> Result<Vec<String>> {
    let dir = project
        .dir
        .canonicalize()
        .map_err(|e| Error::io("read", &project.dir, e))?;
    let dir_s = path_arg(&dir)?;
    let (uid, gid) = owner(&dir)?;
    // The vmlinux.h cache of the inner build lives in the project (the user's home is not
    // mounted), next to the outputs.
    let home = format!("{dir_s}/target/ebpf/.container-home");
    // The image was checked (or pulled) already; never pull behind the user's back.
    let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--pull".into(), "never".into()];
    args.extend(["--network".into(), "host".into()]);
    args.extend(["--user".into(), format!("{uid}:{gid}")]);
    if engine == Engine::Podman {
        args.extend(podman_ulimits());
        // Rootless podman maps container uids to subordinate ids; keep-id makes the
        // owner's uid inside the same user outside.
        if is_rootless() {
            args.extend(["--userns".into(), "keep-id".into()]);
        }
    }
    args.extend(["-v".into(), format!("{dir_s}:{dir_s}")]);
    args.extend(["-w".into(), dir_s.clone()]);
    args.extend([
        "-v".into(),
        format!("{}:{EXE_IN_CONTAINER}:ro", path_arg(exe)?),
    ]);
    args.extend([
        "-v".into(),
        format!("{}:{BTF_IN_CONTAINER}:ro", path_arg(btf)?),
    ]);
    args.extend(["-e".into(), format!("CARGO_EBPF_HOME={home}")]);
    args.extend(["-e".into(), format!("HOME={home}")]);
    if std::env::var_os("SOURCE_DATE_EPOCH").is_some() {
        args.extend(["-e".into(), "SOURCE_DATE_EPOCH".into()]);
    }
    args.extend(["--entrypoint".into(), EXE_IN_CONTAINER.into()]);
    args.push(image.into());
    args.extend(["build".into(), "--manifest-path".into(), dir_s]);
    args.extend(["--btf".into(), BTF_IN_CONTAINER.into()]);
    args.extend(["--arch".into(), arches.join(",")]);
    args.push("--print-outputs".into());
    Ok(args)
}

/// Mount specs are `SRC:DST[:ro]`: a path with `:` (or not UTF-8) cannot be expressed.
fn path_arg(path: &Path) -> Result<String> {
    match path.to_str() {
        Some(s) if !s.contains(':') => Ok(s.to_string()),
        _ => Err(Error::input(format!(
            "{} cannot be mounted into a container (it contains ':' or is not UTF-8)",
            path.display()
        ))
        .with_help("move the project to a plain path, or build without --container")),
    }
}

fn owner(dir: &Path) -> Result<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let meta = dir.metadata().map_err(|e| Error::io("read", dir, e))?;
    Ok((meta.uid(), meta.gid()))
}

/// podman asks the runtime for open-files and process limits of 1048576, and runc can only
/// set them from outside the container, which fails with EPERM wherever podman's own hard
/// limits are lower and CAP_SYS_RESOURCE is missing (sandboxes, CI). So ask for what podman
/// itself will have: our limits, and at most 32768 processes (podman 4 lowers its own
/// RLIMIT_NPROC to that before starting the container).
fn podman_ulimits() -> Vec<String> {
    const PODMAN_NPROC: u64 = 32768;
    let mut args = Vec::new();
    if let Some((soft, hard)) = limit(libc::RLIMIT_NOFILE) {
        args.extend(["--ulimit".into(), format!("nofile={soft}:{hard}")]);
    }
    let (soft, hard) = limit(libc::RLIMIT_NPROC).unwrap_or((PODMAN_NPROC, PODMAN_NPROC));
    let (soft, hard) = (soft.min(PODMAN_NPROC), hard.min(PODMAN_NPROC));
    args.extend(["--ulimit".into(), format!("nproc={soft}:{hard}")]);
    args
}

/// Our (soft, hard) limit of `resource`, unless unlimited.
fn limit(resource: libc::__rlimit_resource_t) -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    (rc == 0 && lim.rlim_max != libc::RLIM_INFINITY).then_some((lim.rlim_cur, lim.rlim_max))
}

fn is_rootless() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() != 0 }
}

/// The inner build's exit code keeps its meaning (3 bad manifest, 4 missing tool, 5 build
/// failure, …); the engine's own codes (125–127) mean the container never ran the build.
fn inner_failure(engine: &str, image: &str, code: Option<i32>) -> Error {
    match code {
        Some(125 | 126) => Error::environment(format!(
            "{engine} could not start the build container"
        ))
        .with_help(format!(
            "see {engine}'s message above; on machines without systemd or crun set \
             {ENV_ENGINE_ARGS}=\"--runtime runc --cgroup-manager cgroupfs\""
        )),
        Some(127) => Error::environment(format!(
            "the image {image} cannot run the mounted cargo-ebpf binary"
        ))
        .with_help("use a Debian bookworm (or newer) based image: docker/builder.Dockerfile"),
        Some(code) => Error::new(
            kind_of_exit_code(code),
            format!("the build inside the container failed (exit {code})"),
        )
        .with_help("its output is above"),
        None => Error::build("the build container was killed by a signal"),
    }
}

fn kind_of_exit_code(code: i32) -> ErrorKind {
    [
        ErrorKind::Usage,
        ErrorKind::Input,
        ErrorKind::Environment,
        ErrorKind::Registry,
        ErrorKind::Auth,
        ErrorKind::Integrity,
        ErrorKind::Kernel,
        ErrorKind::Io,
    ]
    .into_iter()
    .find(|k| k.exit_code() == code)
    .unwrap_or(ErrorKind::Build)
}

fn parse_outputs(stdout: &[u8]) -> Result<Vec<BuildOutput>> {
    let outputs: Vec<BuildOutput> = serde_json::from_slice(stdout).map_err(|e| {
        Error::build(format!(
            "the build inside the container printed no build result: {e}"
        ))
        .with_help("the image may run a different cargo-ebpf; use docker/builder.Dockerfile")
        .with_details(String::from_utf8_lossy(stdout).into_owned())
    })?;
    if let Some(missing) = outputs.iter().find(|o| !o.object.is_file()) {
        return Err(Error::build(format!(
            "the container build reported {} but it is not there",
            missing.object.display()
        )));
    }
    Ok(outputs)
}

// ---- the engine ---------------------------------------------------------------------------

struct Runner {
    engine: Engine,
    name: String,
    path: PathBuf,
    /// Global arguments placed before the subcommand.
    global: Vec<String>,
}

impl Runner {
    fn find(wanted: Option<Engine>) -> Result<Runner> {
        let candidates = match wanted {
            Some(engine) => vec![engine],
            None => vec![Engine::Podman, Engine::Docker],
        };
        let found = candidates
            .iter()
            .find_map(|e| find_program(e.program()).map(|p| (*e, p)));
        let Some((engine, path)) = found else {
            let what = match wanted {
                Some(e) => format!("{} was not found on PATH", e.program()),
                None => "no container engine found (looked for podman and docker on PATH)".into(),
            };
            return Err(Error::environment(what).with_help(
                "install one: Debian/Ubuntu `sudo apt install podman` (or `sudo apt install \
                 docker.io`); or build on the host without --container",
            ));
        };
        Ok(Runner {
            engine,
            name: engine.program().into(),
            global: global_args(engine),
            path,
        })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.args(&self.global);
        // podman refuses to start anything when DOCKER_CONFIG names a directory without a
        // config.json; such a directory holds no credentials, so dropping it loses nothing.
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            if !Path::new(&dir).join("config.json").is_file() {
                cmd.env_remove("DOCKER_CONFIG");
            }
        }
        cmd
    }

    /// The image is there, or pulled; otherwise say how to build it.
    fn ensure_image(&self, image: &str) -> Result<()> {
        if self.has_image(image)? {
            return Ok(());
        }
        // A localhost/ image exists only where it was built: pulling it cannot help.
        let pullable = !image.starts_with("localhost/");
        let pulled = pullable
            && self
                .command()
                .args(["pull", "--quiet", image])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if pulled {
            return Ok(());
        }
        let why = if pullable {
            " and could not be pulled"
        } else {
            ""
        };
        Err(Error::environment(format!(
            "the builder image {image} is not in {}'s images{why}",
            self.name
        ))
        .with_help(format!(
            "build it from the cargo-ebpf repository: `{name} build -t {image} -f \
             docker/builder.Dockerfile docker`, or without docker.io `sudo ENGINE={name} bash \
             scripts/builder-image.sh {image}`; or pass --image IMAGE",
            name = self.name
        )))
    }

    fn has_image(&self, image: &str) -> Result<bool> {
        let status = self
            .command()
            .args(["image", "inspect", image])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| Error::io("run", &self.path, e))?;
        Ok(status.success())
    }
}

/// [`ENV_ENGINE_ARGS`] when set; otherwise, for podman, what machines without systemd or
/// without crun need (podman's defaults assume both).
fn global_args(engine: Engine) -> Vec<String> {
    if let Ok(args) = std::env::var(ENV_ENGINE_ARGS) {
        return args.split_whitespace().map(String::from).collect();
    }
    let mut args = Vec::new();
    if engine == Engine::Podman {
        if find_program("crun").is_none() && find_program("runc").is_some() {
            args.extend(["--runtime".into(), "runc".into()]);
        }
        if !Path::new("/run/systemd/system").is_dir() {
            args.extend(["--cgroup-manager".into(), "cgroupfs".into()]);
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_keep_their_kind() {
        assert_eq!(kind_of_exit_code(3), ErrorKind::Input);
        assert_eq!(kind_of_exit_code(4), ErrorKind::Environment);
        assert_eq!(kind_of_exit_code(5), ErrorKind::Build);
        assert_eq!(kind_of_exit_code(139), ErrorKind::Build);
        let err = inner_failure("podman", "img", Some(5));
        assert_eq!(err.exit_code(), 5);
        assert_eq!(inner_failure("podman", "img", Some(125)).exit_code(), 4);
        assert!(inner_failure("podman", "img", Some(127))
            .message
            .contains("binary"));
    }

    #[test]
    fn paths_with_colons_cannot_be_mounted() {
        assert!(path_arg(Path::new("/a:b")).is_err());
        assert_eq!(path_arg(Path::new("/a/b")).unwrap(), "/a/b");
    }
}
