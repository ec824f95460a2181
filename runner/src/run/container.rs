//! Container packages: the loader lives in a container image, started with docker or
//! podman `run --privileged` with what eBPF loaders need from the host (kernel BTF, bpffs,
//! tracefs, the host's pid and network namespaces) and the package layer at `/package`.
//! Finding and driving the engine is [`crate::engine`]'s part.
//! The image a package names is checked against the image-reference grammar and placed
//! after `--`, so a hostile name such as `--volume=/:/host` never reaches the engine as an
//! option.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::engine::{self, Engine};
use ebpf_package::spec::{self, PackageMeta, Runtime};
use ebpf_package::{Error, Package, Result};

use super::detached::Ready;
use super::signals::StopSignals;
use super::{preflight, RunOptions};

/// Runs a container package; returns the container's exit code.
pub fn run_container(pkg: &Package, meta: &PackageMeta, opts: &RunOptions) -> Result<i32> {
    let Runtime::Container { image, .. } = &meta.runtime else {
        return Err(Error::input("this package has no container image"));
    };
    check_image(image)?;
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

/// A package's image must be a plain image reference (`[HOST[:PORT]/]NAME[:TAG][@DIGEST]`,
/// the distribution grammar), never something the engine could read as an option.
pub fn check_image(image: &str) -> Result<()> {
    let refused = || {
        Error::input(format!(
            "the package's container image {image:?} is not an image reference"
        ))
        .with_help("refuse this package: its image must be named like registry.example.com/team/loader:1.0")
    };
    if image.starts_with('-') || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refused());
    }
    ebpf_package::Reference::parse(image).map_err(|_| refused())?;
    Ok(())
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
    out.extend(engine::ulimit_args().into_iter().map(OsString::from));
    for (path, read_only) in spec::CONTAINER_HOST_MOUNTS {
        if Path::new(path).exists() {
            let suffix = if read_only { ":ro" } else { "" };
            out.push("--volume".into());
            out.push(format!("{path}:{path}{suffix}").into());
        }
    }
    let inside = spec::CONTAINER_PACKAGE_DIR;
    let mut volume = OsString::from(package_dir);
    volume.push(format!(":{inside}:ro"));
    out.extend(["--volume".into(), volume]);
    let object = format!("{}={inside}/{}", spec::ENV_OBJECT, meta.object);
    let dir = format!("{}={inside}", spec::ENV_PACKAGE_DIR);
    for var in [object, dir]
        .into_iter()
        .chain(env.iter().map(|(k, v)| format!("{k}={v}")))
    {
        out.extend(["--env".into(), var.into()]);
    }
    // Options end here: whatever follows is the image and its arguments.
    out.push("--".into());
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
    fn images_that_look_like_options_are_refused() {
        for image in [
            "--volume=/:/host",
            "-v",
            "--privileged",
            "Demo",
            "demo@not-a-digest",
            "demo image",
            "demo\n--rm",
            "",
        ] {
            let err = check_image(image).unwrap_err();
            assert_eq!(err.kind, ebpf_package::ErrorKind::Input, "{image:?}");
        }
        for image in [
            "localhost/demo:1",
            "ghcr.io/team/loader:0.1.0",
            "busybox",
            "127.0.0.1:5000/x@sha256:0123456789012345678901234567890123456789012345678901234567890123",
        ] {
            check_image(image).unwrap();
        }
    }

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
        assert!(joined.contains(" -- localhost/demo:1 "), "{joined}");
        if Path::new("/sys/kernel/btf").exists() {
            assert!(joined.contains("--volume /sys/kernel/btf:/sys/kernel/btf:ro"));
        }
    }
}
