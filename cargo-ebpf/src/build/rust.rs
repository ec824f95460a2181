//! The `rust` kind (libbpf-rs): cargo builds everything. The project's build.rs compiles the
//! BPF C code with clang through libbpf-cargo's `SkeletonBuilder` and embeds it in the
//! loader; this driver hands it vmlinux.h, runs cargo, and copies the two results into
//! `target/ebpf/<arch>/`: `<name>.bpf.o` (what the package inspects and ships) and `<name>`
//! (the loader, packaged as `bin/<name>`).
//!
//! Contract with the template's build.rs (template-packs/rust/build.rs.hbs):
//! - we set `CARGO_EBPF_VMLINUX_DIR` to the directory holding vmlinux.h;
//! - it reports the object it wrote with `cargo:rustc-env=CARGO_EBPF_BUILT_OBJECT=PATH`,
//!   which cargo's JSON messages pass back to us.
//!
//! cargo's target directory is `$CARGO_TARGET_DIR` when set (cargo's own variable: tests
//! point every generated project at one directory so libbpf-sys compiles once), else the
//! project's `target/`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use ebpf_package::spec::host_arch;
use ebpf_package::{Error, Result};

use crate::manifest::Project;

use super::util::{find_program, install, label, report_built, status, warn_if_host_btf};
use super::{vmlinux_include_dir, BuildOptions, BuildOutput};

/// The variable build.rs reads to find vmlinux.h.
const VMLINUX_ENV: &str = "CARGO_EBPF_VMLINUX_DIR";
/// The variable build.rs emits (as `cargo:rustc-env`) with the path of the BPF object.
const OBJECT_ENV: &str = "CARGO_EBPF_BUILT_OBJECT";

pub(super) fn build(project: &Project, opts: &BuildOptions, arch: &str) -> Result<BuildOutput> {
    let started = Instant::now();
    let cargo = find_cargo()?;
    check_cargo_project(project)?;
    let cross = cross_target(arch)?;
    warn_if_host_btf(arch, opts);
    let vmlinux = vmlinux_include_dir(project, opts, arch)?;
    status(
        "Building",
        &format!("{} with cargo ({})", label(project), project.dir.display()),
    );
    let built = run_cargo(&cargo, project, &vmlinux, cross.as_ref())?;

    let dir = project.target_dir().join(arch);
    let object = dir.join(format!("{}.bpf.o", project.name()));
    let loader = dir.join(project.name());
    let copied_object = install(&built.object, &object, 0o644)?;
    let copied_loader = install(&built.loader, &loader, 0o755)?;
    let fresh = built.fresh && !copied_object && !copied_loader;
    report_built(project, started, fresh, &[&object, &loader]);
    Ok(BuildOutput {
        object,
        arch: arch.to_string(),
        fresh,
        loader: Some(loader),
        btfgen: None,
    })
}

// ---- tools and inputs --------------------------------------------------------------------

/// `$CARGO` (set when we run as `cargo ebpf`), else PATH, else rustup's default location
/// (sudo often drops `~/.cargo/bin` from PATH).
fn find_cargo() -> Result<PathBuf> {
    let from_env = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    let from_home = || {
        let home = std::env::var_os("HOME")?;
        let path = PathBuf::from(home).join(".cargo/bin/cargo");
        path.is_file().then_some(path)
    };
    from_env
        .or_else(|| find_program("cargo"))
        .or_else(from_home)
        .ok_or_else(|| {
            Error::environment("cargo was not found: `rust` projects are built with cargo")
                .with_help(
                    "install Rust with rustup: `curl --proto '=https' --tlsv1.2 -sSf \
                     https://sh.rustup.rs | sh`; under sudo keep your PATH: \
                     `sudo env \"PATH=$PATH\" cargo ebpf build`",
                )
        })
}

fn check_cargo_project(project: &Project) -> Result<()> {
    let manifest = project.dir.join("Cargo.toml");
    if manifest.is_file() {
        return Ok(());
    }
    Err(Error::input(format!(
        "{} has no Cargo.toml, but ebpf.toml says `kind = \"rust\"`",
        project.dir.display()
    ))
    .with_help("create the project with `cargo ebpf new NAME --lang rust`, or fix `kind`"))
}

/// What cargo needs to build the loader for another architecture.
#[derive(Debug)]
struct CrossTarget {
    /// The Rust target triple (`aarch64-unknown-linux-gnu`).
    triple: String,
    /// The C cross compiler, used as linker and for libbpf-sys's C code.
    gcc: PathBuf,
}

/// `None` for the host; for another arch, the target when its standard library is installed
/// and a cross gcc exists, else an environment error (the caller reports it as a skip).
fn cross_target(arch: &str) -> Result<Option<CrossTarget>> {
    if arch == host_arch() {
        return Ok(None);
    }
    let cannot = |why: String| {
        Error::environment(format!(
            "cannot cross-build the rust loader for {arch}: {why}"
        ))
    };
    let (triple, gnu) = match arch {
        "aarch64" => ("aarch64-unknown-linux-gnu", "aarch64"),
        "x86_64" => ("x86_64-unknown-linux-gnu", "x86-64"),
        "riscv64" => ("riscv64gc-unknown-linux-gnu", "riscv64"),
        "s390x" => ("s390x-unknown-linux-gnu", "s390x"),
        "powerpc64" => ("powerpc64le-unknown-linux-gnu", "powerpc64le"),
        _ => return Err(cannot("no known Rust target for it".into())),
    };
    if !installed_rust_targets().iter().any(|t| t == triple) {
        return Err(cannot(format!("the Rust target {triple} is not installed"))
            .with_help(format!("rustup target add {triple}")));
    }
    let gcc_name = format!("{}-linux-gnu-gcc", gnu.replace('-', "_"));
    let gcc = find_program(&gcc_name).ok_or_else(|| {
        cannot(format!("no cross compiler {gcc_name} on PATH")).with_help(format!(
            "Debian/Ubuntu: `sudo apt install gcc-{gnu}-linux-gnu`"
        ))
    })?;
    Ok(Some(CrossTarget {
        triple: triple.to_string(),
        gcc,
    }))
}

/// `rustup target list --installed`; empty without rustup (then only the host builds).
fn installed_rust_targets() -> Vec<String> {
    let Some(rustup) = find_program("rustup") else {
        return Vec::new();
    };
    Command::new(rustup)
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

// ---- cargo -------------------------------------------------------------------------------

/// What one cargo run produced.
#[derive(Debug, Default)]
struct CargoBuilt {
    object: PathBuf,
    loader: PathBuf,
    /// True when cargo rebuilt nothing of this package.
    fresh: bool,
}

/// Runs `cargo build` and reads where the object and loader went from its JSON messages.
///
/// The dev profile, not `--release`: the loader only polls a ring buffer and prints, so
/// optimising it buys nothing, while a release build of libbpf-rs and its build tools takes
/// several times longer. The BPF object is compiled by clang with `-O2` either way.
fn run_cargo(
    cargo: &Path,
    project: &Project,
    vmlinux: &Path,
    cross: Option<&CrossTarget>,
) -> Result<CargoBuilt> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| project.dir.join("target"), PathBuf::from);
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--message-format=json-render-diagnostics",
        "--manifest-path",
    ])
    .arg(project.dir.join("Cargo.toml"))
    .current_dir(&project.dir)
    .env("CARGO_TARGET_DIR", &target_dir)
    .env(VMLINUX_ENV, vmlinux)
    .stdin(Stdio::null());
    if let Some(cross) = cross {
        let var = cross.triple.to_uppercase().replace('-', "_");
        cmd.args(["--target", &cross.triple])
            .env(format!("CARGO_TARGET_{var}_LINKER"), &cross.gcc)
            .env(format!("CC_{}", cross.triple.replace('-', "_")), &cross.gcc);
    }
    let out = cmd.output().map_err(|e| Error::io("run", cargo, e))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(
            Error::build(format!("cargo could not build {}", project.name()))
                .with_help("fix the errors cargo reported (below)")
                .with_details(problems_only(&stderr)),
        );
    }
    parse_messages(&out.stdout, project.name()).map_err(|e| e.with_details(problems_only(&stderr)))
}

/// Reads cargo's JSON messages: the build script's `CARGO_EBPF_BUILT_OBJECT` and the
/// executable of the bin target named like the package.
fn parse_messages(stdout: &[u8], name: &str) -> Result<CargoBuilt> {
    let mut built = CargoBuilt {
        fresh: true,
        ..CargoBuilt::default()
    };
    for line in stdout.lines().map_while(std::result::Result::ok) {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue; // not a message (a build script may print to stdout under -vv)
        };
        match msg["reason"].as_str() {
            Some("build-script-executed") => {
                if let Some(path) = rustc_env(&msg, OBJECT_ENV) {
                    built.object = PathBuf::from(path);
                }
            }
            Some("compiler-artifact") if msg["target"]["name"] == name => {
                built.fresh &= msg["fresh"].as_bool().unwrap_or(false);
                if let Some(exe) = msg["executable"].as_str() {
                    built.loader = PathBuf::from(exe);
                }
            }
            _ => {}
        }
    }
    if built.object.as_os_str().is_empty() {
        return Err(Error::build(format!(
            "build.rs did not say where it wrote the BPF object (`{OBJECT_ENV}`)"
        ))
        .with_help(format!(
            "build.rs must print `cargo:rustc-env={OBJECT_ENV}=PATH` after building the \
             object; see the template: `cargo ebpf new NAME --lang rust`"
        )));
    }
    if built.loader.as_os_str().is_empty() {
        return Err(Error::build(format!(
            "cargo built no executable named `{name}` (the loader)"
        ))
        .with_help(format!(
            "the package in Cargo.toml must be named `{name}` like in ebpf.toml, with a \
             src/main.rs"
        )));
    }
    Ok(built)
}

/// The value of `key` in a build-script-executed message's `env` (a list of pairs).
fn rustc_env<'a>(msg: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    msg["env"]
        .as_array()?
        .iter()
        .find(|pair| pair[0] == key)
        .and_then(|pair| pair[1].as_str())
}

/// cargo's stderr without its progress lines (`Compiling x`, `Downloaded y`, …), so an
/// error report shows the problem rather than forty crate names.
fn problems_only(stderr: &str) -> String {
    const PROGRESS: &[&str] = &[
        "Compiling ",
        "Checking ",
        "Downloaded ",
        "Downloading ",
        "Updating ",
        "Locking ",
        "Adding ",
        "Blocking ",
        "Fresh ",
    ];
    stderr
        .lines()
        .filter(|l| !PROGRESS.iter().any(|p| l.trim_start().starts_with(p)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGES: &str = r#"{"reason":"compiler-artifact","target":{"name":"libc"},"fresh":false,"executable":null}
{"reason":"build-script-executed","package_id":"path+file:///p#snoop@0.1.0","env":[["CARGO_EBPF_BUILT_OBJECT","/t/out/probe.bpf.o"]],"out_dir":"/t/out"}
{"reason":"compiler-artifact","target":{"name":"snoop"},"fresh":true,"executable":"/t/debug/snoop"}
{"reason":"build-finished","success":true}
"#;

    #[test]
    fn messages_give_object_loader_and_freshness() {
        let built = parse_messages(MESSAGES.as_bytes(), "snoop").unwrap();
        assert_eq!(built.object, Path::new("/t/out/probe.bpf.o"));
        assert_eq!(built.loader, Path::new("/t/debug/snoop"));
        // Only our own artifacts count: libc being rebuilt does not make us stale.
        assert!(built.fresh);
        let rebuilt = MESSAGES.replace(r#""fresh":true"#, r#""fresh":false"#);
        assert!(!parse_messages(rebuilt.as_bytes(), "snoop").unwrap().fresh);
    }

    #[test]
    fn missing_object_report_names_the_contract() {
        let no_env = MESSAGES.replace("CARGO_EBPF_BUILT_OBJECT", "OTHER");
        let err = parse_messages(no_env.as_bytes(), "snoop").unwrap_err();
        assert!(err.to_string().contains(OBJECT_ENV), "{err}");
        let err = parse_messages(MESSAGES.as_bytes(), "other-name").unwrap_err();
        assert!(err.to_string().contains("other-name"), "{err}");
    }

    #[test]
    fn progress_lines_are_dropped_from_details() {
        let stderr = "   Compiling libc v0.2\n  Downloaded x v1\nerror: boom\n  --> src/main.rs:1";
        assert_eq!(problems_only(stderr), "error: boom\n  --> src/main.rs:1");
    }

    /// Whether or not this machine has the other arch's Rust target and cross gcc, the
    /// answer is a target or an environment error in the words the multi-arch build reports.
    #[test]
    fn cross_target_is_found_or_refused_with_the_reason() {
        let other = if host_arch() == "aarch64" {
            "s390x"
        } else {
            "aarch64"
        };
        match cross_target(other) {
            Ok(Some(target)) => assert!(target.triple.starts_with(other), "{target:?}"),
            Ok(None) => panic!("{other} taken for the host"),
            Err(err) => {
                assert_eq!(err.kind, ebpf_package::ErrorKind::Environment);
                let prefix = format!("cannot cross-build the rust loader for {other}: ");
                assert!(err.to_string().starts_with(&prefix), "{err}");
                assert!(err.help.is_some(), "{err:?}");
            }
        }
        assert!(cross_target(host_arch()).unwrap().is_none());
    }
}
