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

use std::path::Path;
use std::process::Stdio;

use ebpf_package::{Error, ErrorKind, Result};
use ebpf_runner::engine::{self, Engine as EngineCommand};

use crate::manifest::Project;

use super::util::{find_program, status};
use super::{BuildOptions, BuildOutput};

/// Environment variable naming the builder image (overridden by `--image`).
pub const ENV_IMAGE: &str = "CARGO_EBPF_BUILDER_IMAGE";
/// Environment variable choosing the engine, `docker` or `podman` (overridden by `--engine`).
pub const ENV_ENGINE: &str = "CARGO_EBPF_CONTAINER_ENGINE";
/// Extra global arguments for the engine (e.g. `--runtime runc --cgroup-manager cgroupfs`);
/// when set, podman's own detection ([`engine::podman_host_args`]) is skipped.
pub const ENV_ENGINE_ARGS: &str = "CARGO_EBPF_CONTAINER_ARGS";

/// Where the binary and the kernel BTF appear inside the container.
const EXE_IN_CONTAINER: &str = "/usr/local/bin/cargo-ebpf";
const BTF_IN_CONTAINER: &str = "/run/cargo-ebpf/vmlinux.btf";

/// The builder image used when neither `--image` nor [`ENV_IMAGE`] names one.
pub fn default_image() -> String {
    format!("ghcr.io/cargo-ebpf/builder:{}", env!("CARGO_PKG_VERSION"))
}

/// `--engine` of `build --container`; the engine itself is driven by [`ebpf_runner::engine`].
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

/// [`ENV_ENGINE`], else the runner's general [`engine::ENGINE_ENV`], when set.
fn engine_from_env() -> Result<Option<Engine>> {
    let value = [ENV_ENGINE, engine::ENGINE_ENV]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_default();
    match value.as_str() {
        "" => Ok(None),
        "podman" => Ok(Some(Engine::Podman)),
        "docker" => Ok(Some(Engine::Docker)),
        other => Err(Error::usage(format!(
            "the container engine `{other}` ({ENV_ENGINE} or {}) is not podman or docker",
            engine::ENGINE_ENV
        ))
        .with_help("set it to `podman` or `docker`, or unset it")),
    }
}

#[derive(Debug, Clone, Default)]
pub struct ContainerOptions {
    /// The engine; `None` = [`ENV_ENGINE`], else podman if installed, else docker.
    pub engine: Option<Engine>,
    /// The builder image; `None` = [`ENV_IMAGE`], else [`default_image`].
    pub image: Option<String>,
}

/// The engine and builder image `container` names (options, else environment, else defaults).
fn engine_and_image(container: &ContainerOptions) -> Result<(EngineCommand, String)> {
    let engine = find_engine(
        container
            .engine
            .map_or_else(engine_from_env, |e| Ok(Some(e)))?,
    )?;
    let image = container
        .image
        .clone()
        .or_else(|| std::env::var(ENV_IMAGE).ok().filter(|i| !i.is_empty()))
        .unwrap_or_else(default_image);
    Ok((engine, image))
}

/// The builder a provenance statement names: `container:IMAGE@sha256:ID`.
pub fn builder_id(container: &ContainerOptions) -> Result<String> {
    let (engine, image) = engine_and_image(container)?;
    let id = engine.image_id(&image)?.unwrap_or_default();
    Ok(format!("container:{image}@{id}"))
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
    let (engine, image) = engine_and_image(container)?;
    ensure_image(&engine, &image)?;
    let (btf, _) = ebpf_runner::run::kernel_btf_path(opts.btf.as_deref())?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("find", Path::new("the cargo-ebpf binary"), e))?;
    status(
        "Container",
        &format!("building {} in {image} ({})", project.name(), engine.name()),
    );
    let mut cmd = engine.command();
    cmd.args(run_args(&engine, project, &image, &exe, &btf, &arches)?);
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::io("run", Path::new(&engine.program), e))?;
    if !out.status.success() {
        return Err(inner_failure(engine.name(), &image, out.status.code()));
    }
    parse_outputs(&out.stdout)
}

/// `run …` arguments: mounts, user, environment, then the inner build command.
fn run_args(
    engine: &EngineCommand,
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
    if engine.is_podman() {
        args.extend(engine::ulimit_args());
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
            ErrorKind::from_exit_code(code).unwrap_or(ErrorKind::Build),
            format!("the build inside the container failed (exit {code})"),
        )
        .with_help("its output is above"),
        None => Error::build("the build container was killed by a signal"),
    }
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

/// `wanted`, else podman if installed, else docker; with [`ENV_ENGINE_ARGS`] or the
/// options podman needs on this host.
fn find_engine(wanted: Option<Engine>) -> Result<EngineCommand> {
    let candidates = match wanted {
        Some(engine) => vec![engine],
        None => vec![Engine::Podman, Engine::Docker],
    };
    let found = candidates.iter().find_map(|e| find_program(e.program()));
    let Some(path) = found else {
        let what = match wanted {
            Some(e) => format!("{} was not found on PATH", e.program()),
            None => "no container engine found (looked for podman and docker on PATH)".into(),
        };
        return Err(Error::environment(what).with_help(
            "install one: Debian/Ubuntu `sudo apt install podman` (or `sudo apt install \
             docker.io`); or build on the host without --container",
        ));
    };
    let global_args = std::env::var(ENV_ENGINE_ARGS).ok();
    Ok(EngineCommand::with_args(
        &path.to_string_lossy(),
        global_args,
    ))
}

/// The image is there, or pulled; otherwise say how to build it.
fn ensure_image(engine: &EngineCommand, image: &str) -> Result<()> {
    if engine.has_image(image)? {
        return Ok(());
    }
    // A localhost/ image exists only where it was built: pulling it cannot help.
    let pullable = !image.starts_with("localhost/");
    let pulled = pullable
        && engine
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
    let name = engine.name();
    Err(Error::environment(format!(
        "the builder image {image} is not in {name}'s images{why}"
    ))
    .with_help(format!(
        "build it from the cargo-ebpf repository: `{name} build -t {image} -f \
         docker/builder.Dockerfile docker`, or without docker.io `sudo ENGINE={name} bash \
         scripts/builder-image.sh {image}`; or pass --image IMAGE"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One variable picks the engine everywhere: the runner's general one applies to builds
    /// unless the build's own is set. (The only test touching these variables.)
    #[test]
    fn the_general_engine_variable_applies_to_builds_too() {
        std::env::remove_var(ENV_ENGINE);
        std::env::set_var(engine::ENGINE_ENV, "docker");
        assert_eq!(engine_from_env().unwrap(), Some(Engine::Docker));
        std::env::set_var(ENV_ENGINE, "podman");
        assert_eq!(engine_from_env().unwrap(), Some(Engine::Podman));
        std::env::set_var(ENV_ENGINE, "nonsense");
        let err = engine_from_env().unwrap_err();
        assert!(err.message.contains("`nonsense`"), "{}", err.message);
        std::env::remove_var(ENV_ENGINE);
        std::env::remove_var(engine::ENGINE_ENV);
        assert_eq!(engine_from_env().unwrap(), None);
    }

    #[test]
    fn exit_codes_keep_their_kind() {
        assert_eq!(
            inner_failure("podman", "img", Some(3)).kind,
            ErrorKind::Input
        );
        assert_eq!(
            inner_failure("podman", "img", Some(139)).kind,
            ErrorKind::Build
        );
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
