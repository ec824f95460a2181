//! The `c` kind: the project's own Makefile (libbpf-bootstrap style) builds the BPF object,
//! its bpftool skeleton and the C loader. We hand it the architecture, the compilers and
//! vmlinux.h, then collect the results:
//! - `target/ebpf/<arch>/make/` — make's OUTPUT (objects, skeleton);
//! - `target/ebpf/<arch>/<name>.bpf.o` — the BPF object, copied from there;
//! - `target/ebpf/<arch>/<name>` — the loader, linked there directly (make's BINDIR).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use ebpf_package::spec::{bpf_target_arch, host_arch};
use ebpf_package::{Error, Result};

use crate::manifest::Project;

use super::util::{
    find_program, install_help, label, relative, report_built, require_program, status,
    warn_if_host_btf, write_if_changed,
};
use super::{vmlinux_include_dir, BuildOptions, BuildOutput};

/// Runs make for `arch` and returns the object and the loader.
pub(super) fn build(project: &Project, opts: &BuildOptions, arch: &str) -> Result<BuildOutput> {
    let started = Instant::now();
    let make = require_program("make", install_help("make", "make"))?;
    let cross_cc = cross_compiler(arch)?;
    warn_if_host_btf(arch, opts);
    // vmlinux.h comes from our shared step rather than the Makefile's own bpftool rule: it
    // is cached by the BTF's digest (so `--btf FILE` or CARGO_EBPF_KERNEL_BTF switches it,
    // and make sees the new header and rebuilds), and a missing BTF, bpftool or clang is
    // reported as a clear environment error instead of a make failure.
    let include = vmlinux_include_dir(project, opts, arch)?;
    let paths = Paths::new(project, arch);
    let make = || make_command(&make, project, &paths, &include, arch, cross_cc.as_deref());

    let up_to_date = question(make())?;
    if !up_to_date {
        let label = label(project);
        status("Compiling", &format!("{label} ({})", project.dir.display()));
        run_make(make(), project)?;
    }
    let copied = copy_if_changed(&paths.made_object, &paths.object)?;
    let fresh = up_to_date && !copied && paths.loader.is_file();
    report_built(project, started, fresh, &[&paths.object, &paths.loader]);
    Ok(BuildOutput {
        object: paths.object,
        arch: arch.to_string(),
        fresh,
        loader: Some(paths.loader),
        btfgen: None,
    })
}

struct Paths {
    /// make's OUTPUT directory.
    output: PathBuf,
    /// Where make leaves the object, and where we copy it.
    made_object: PathBuf,
    object: PathBuf,
    /// make's BINDIR is the arch directory, so the loader lands here directly.
    loader: PathBuf,
}

impl Paths {
    fn new(project: &Project, arch: &str) -> Paths {
        let arch_dir = project.target_dir().join(arch);
        let output = arch_dir.join("make");
        Paths {
            made_object: output.join(format!("{}.bpf.o", project.name())),
            object: arch_dir.join(format!("{}.bpf.o", project.name())),
            loader: arch_dir.join(project.name()),
            output,
        }
    }
}

/// `make -C DIR` with every variable the pack's Makefile documents as overridable.
fn make_command(
    make: &Path,
    project: &Project,
    paths: &Paths,
    include: &Path,
    arch: &str,
    cross_cc: Option<&Path>,
) -> Command {
    let bpf_arch = bpf_target_arch(arch).expect("resolve_arch accepts only BPF arches");
    // Paths relative to the project (make runs there) keep make's progress lines short.
    let rel = |p: &Path| relative(p, &project.dir).to_path_buf();
    let bindir = paths.loader.parent().expect("in the arch dir");
    let mut cmd = Command::new(make);
    cmd.arg("-C")
        .arg(&project.dir)
        .arg("--no-print-directory")
        .arg(format!("ARCH={bpf_arch}"))
        .arg(var("OUTPUT", &rel(&paths.output)))
        .arg(var("BINDIR", &rel(bindir)))
        .arg(var("VMLINUX", &rel(&include.join("vmlinux.h"))))
        .stdin(Stdio::null())
        // A make invoking us (`make` → `cargo ebpf build`) must not leak its flags into ours.
        .env_remove("MAKEFLAGS")
        .env_remove("MAKELEVEL");
    // Debian keeps bpftool in /usr/sbin, which PATH may lack; find_program looks there.
    if let Some(bpftool) = find_program("bpftool") {
        cmd.arg(var("BPFTOOL", &bpftool));
    }
    if let Some(cc) = cross_cc {
        cmd.arg(var("CC", cc));
    }
    cmd
}

fn var(name: &str, value: &Path) -> String {
    format!("{name}={}", value.display())
}

/// `make -q`: true when everything is up to date (exit 0). Exit 2 (a broken Makefile) is
/// treated as "not up to date" so the real run reports make's error.
fn question(mut make: Command) -> Result<bool> {
    let program = PathBuf::from(make.get_program());
    let status = make
        .arg("-q")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| Error::io("run", &program, e))?;
    Ok(status.success())
}

/// The real run: make's progress lines go to our stderr as they come; its stderr (the
/// compiler's diagnostics) is captured for the error.
fn run_make(mut make: Command, project: &Project) -> Result<()> {
    let program = PathBuf::from(make.get_program());
    let out = make
        .stdout(std::io::stderr())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::io("run", &program, e))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        // Compiler warnings are worth seeing even when the build worked.
        eprint!("{stderr}");
        return Ok(());
    }
    Err(Error::build(format!(
        "make failed to build {} ({})",
        project.name(),
        project.dir.display()
    ))
    .with_help(
        "fix the errors below, then run `cargo ebpf build` again (`make V=1` shows the commands)",
    )
    .with_details(stderr))
}

/// Copies make's object into place unless it is already there; true when it copied.
fn copy_if_changed(from: &Path, to: &Path) -> Result<bool> {
    let made = std::fs::read(from).map_err(|e| {
        Error::io("read", from, e).with_help(
            "the Makefile must write $(OUTPUT)/$(APP).bpf.o; compare it with `cargo ebpf new --lang c`",
        )
    })?;
    write_if_changed(to, &made)
}

// ---- cross-building ----------------------------------------------------------------------

/// For a non-host arch: the cross C compiler, after checking that the libraries the loader
/// links statically exist for that arch. `None` when building for the host (make's `cc`,
/// checked here so a machine without gcc hears `apt install gcc`, not "cc: not found").
fn cross_compiler(arch: &str) -> Result<Option<PathBuf>> {
    if arch == host_arch() {
        let user_cc = std::env::var_os("CC").is_some_and(|cc| !cc.is_empty());
        if !user_cc && find_program("cc").is_none() {
            return Err(Error::environment("no C compiler (cc) was found on PATH")
                .with_help("install one: Debian/Ubuntu `sudo apt install gcc libc6-dev`, Fedora `sudo dnf install gcc glibc-static`"));
        }
        return Ok(None);
    }
    let cannot = |why: String| {
        Error::environment(format!("cannot cross-build the c loader for {arch}: {why}"))
    };
    let (triple, deb_arch) = gnu_triple(arch)
        .ok_or_else(|| cannot("no known GNU toolchain triple for it".to_string()))?;
    let gcc = format!("{triple}-gcc");
    let cc = find_program(&gcc).ok_or_else(|| {
        cannot(format!("{gcc} was not found on PATH")).with_help(format!(
            "install it: Debian/Ubuntu `sudo apt install gcc-{triple} libc6-dev-{deb_arch}-cross`"
        ))
    })?;
    let libdir = Path::new("/usr/lib").join(triple);
    let missing: Vec<&str> = ["libbpf.a", "libelf.a", "libz.a"]
        .into_iter()
        .filter(|lib| !libdir.join(lib).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(cannot(format!(
            "{} not found in {}",
            missing.join(", "),
            libdir.display()
        ))
        .with_help(format!(
            "install the {deb_arch} libraries: `sudo dpkg --add-architecture {deb_arch} && \
             sudo apt update && sudo apt install libbpf-dev:{deb_arch} libelf-dev:{deb_arch} \
             zlib1g-dev:{deb_arch}`"
        )));
    }
    Ok(Some(cc))
}

/// Rust/uname arch → (GNU triple of Debian's cross toolchains, Debian arch).
fn gnu_triple(arch: &str) -> Option<(&'static str, &'static str)> {
    Some(match arch {
        "x86_64" => ("x86_64-linux-gnu", "amd64"),
        "aarch64" => ("aarch64-linux-gnu", "arm64"),
        "riscv64" => ("riscv64-linux-gnu", "riscv64"),
        "s390x" => ("s390x-linux-gnu", "s390x"),
        "powerpc64" => ("powerpc64le-linux-gnu", "ppc64el"),
        _ => return None,
    })
}
