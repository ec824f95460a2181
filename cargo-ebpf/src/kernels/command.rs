//! The `test-kernels` command: its flags, what TARGET is, progress on stderr, the matrix on
//! stdout and in `--output FILE`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use ebpf_package::kernel_matrix::{KernelMatrix, KernelResult, Outcome};
use ebpf_package::{Error, Result};
use ebpf_runner::cli::{out_line, registry, ProjectHook, RegistryArgs};
use ebpf_runner::resolve::{self, Runnable};
use ebpf_runner::store::Store;

use super::{
    cached_kernels, kvm_usable, KernelImage, Subject, TestOptions, VmOptions, DEFAULT_KERNELS_DIR,
    KERNELS_ENV, QEMU,
};

const TIMEOUT_KVM: u64 = 120;
const TIMEOUT_EMULATED: u64 = 900;

#[derive(Debug, Args)]
pub struct TestKernelsArgs {
    /// A project directory (built first), an OCI layout, a .bpf.o or a registry reference.
    #[arg(default_value = ".")]
    pub target: String,
    /// A kernel to boot: VMLINUZ, VMLINUZ:BTF (for kernels without their own BTF), or a
    /// directory with `vmlinuz` (and `vmlinux.btf`). Repeat for several; default: every
    /// kernel in $CARGO_EBPF_KERNELS (/var/cache/cargo-ebpf/kernels).
    #[arg(long = "kernel", value_name = "IMAGE")]
    pub kernels: Vec<String>,
    /// First fetch Debian's 5.10, 6.1 and 6.12 kernels into $CARGO_EBPF_KERNELS (apt-get
    /// with a private configuration, nothing installed; skipped when cached), then test them.
    #[arg(long, conflicts_with = "kernels")]
    pub fetch: bool,
    /// Also write the matrix as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The standalone runner to put in the VMs (default: ebpf-runner next to this binary,
    /// then on PATH).
    #[arg(long, value_name = "PATH")]
    pub runner: Option<PathBuf>,
    /// Give up on one VM after SECS seconds (default 120 with KVM, 900 without).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub vm_timeout: Option<u64>,
    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(128..=65536))]
    pub memory: u32,
    /// Emulate the CPU even where /dev/kvm is usable (much slower).
    #[arg(long)]
    pub no_kvm: bool,
    /// Exit with the kernel error code (9) when any kernel fails.
    #[arg(long)]
    pub deny_fail: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Arguments for the program (params), after `--`, as for `run`.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Runs the matrix; `build_project` turns a project directory into a package.
pub fn test_kernels(args: &TestKernelsArgs, build_project: ProjectHook) -> Result<()> {
    if args.fetch {
        fetch_debian_kernels()?;
    }
    let kernels = kernels(&args.kernels)?;
    let vm = vm_options(args)?;
    let subject = subject(args, build_project)?;
    let opts = TestOptions {
        vm,
        runner: args.runner.clone(),
        args: args.args.clone(),
        tool: format!("cargo-ebpf {}", env!("CARGO_PKG_VERSION")),
    };
    let how = if opts.vm.kvm {
        "KVM"
    } else {
        "QEMU without KVM (slow)"
    };
    eprintln!(
        "     Testing on {} kernel(s), one VM at a time ({how})",
        kernels.len()
    );
    let start = Instant::now();
    let matrix = super::test_kernels(&subject, &kernels, &opts, progress)?;
    eprintln!(
        "    Finished {} kernel(s) in {:.1} s",
        matrix.kernels.len(),
        start.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.output {
        write_json(&matrix, path)?;
    }
    for line in matrix.render().lines() {
        out_line(format_args!("{line}"));
    }
    let failed = count(&matrix, Outcome::Fail);
    if args.deny_fail && failed > 0 {
        return Err(Error::kernel(format!(
            "the package fails on {failed} of {} kernels",
            matrix.kernels.len()
        ))
        .with_help("the REASON column says what each kernel refused"));
    }
    Ok(())
}

/// `publish --sign KEY --test-kernels`: the matrix of `pkg` on the default kernels, with
/// the defaults `test-kernels` has (KVM when usable, 512 MiB), progress on stderr.
pub fn test_package(pkg: ebpf_package::Package) -> Result<KernelMatrix> {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        args: TestKernelsArgs,
    }
    let args = <Defaults as clap::Parser>::parse_from(["test-kernels"]).args;
    let kernels = kernels(&args.kernels)?;
    let opts = TestOptions {
        vm: vm_options(&args)?,
        runner: None,
        args: vec![],
        tool: format!("cargo-ebpf {}", env!("CARGO_PKG_VERSION")),
    };
    eprintln!(
        "     Testing on {} kernel(s) before publishing",
        kernels.len()
    );
    let matrix = super::test_kernels(&Subject::Package(Box::new(pkg)), &kernels, &opts, progress)?;
    for line in matrix.render().lines() {
        eprintln!("  {line}");
    }
    Ok(matrix)
}

/// The script that fetches Debian's kernels (also scripts/fetch-test-kernels.sh).
const FETCH_SCRIPT: &str = include_str!("fetch-debian-kernels.sh");

fn fetch_debian_kernels() -> Result<()> {
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(FETCH_SCRIPT)
        .arg("fetch-debian-kernels")
        .status()
        .map_err(|e| {
            Error::environment("cannot run bash to fetch Debian's kernels").with_source(e)
        })?;
    if status.success() {
        return Ok(());
    }
    Err(
        Error::environment("fetching Debian's kernels failed (its output is above)").with_help(
            format!(
                "--fetch needs apt-get, dpkg-deb and debian-archive-keyring (Debian or Ubuntu), \
             a Debian mirror and a writable ${KERNELS_ENV} (default {DEFAULT_KERNELS_DIR}); \
             or pass --kernel VMLINUZ[:BTF]"
            ),
        ),
    )
}

fn kernels(args: &[String]) -> Result<Vec<KernelImage>> {
    if args.is_empty() {
        return cached_kernels();
    }
    args.iter().map(|a| KernelImage::parse(a)).collect()
}

fn vm_options(args: &TestKernelsArgs) -> Result<VmOptions> {
    let qemu = ebpf_runner::which::find_program(QEMU).ok_or_else(|| {
        Error::environment(format!(
            "{QEMU} is not installed; test-kernels boots each kernel in it"
        ))
        .with_help("install QEMU (Debian package qemu-system-x86, Fedora qemu-system-x86-core)")
    })?;
    let kvm = !args.no_kvm && kvm_usable();
    let secs = |default| Duration::from_secs(args.vm_timeout.unwrap_or(default));
    Ok(VmOptions {
        qemu,
        kvm,
        memory_mib: args.memory,
        timeout: secs(if kvm { TIMEOUT_KVM } else { TIMEOUT_EMULATED }),
        emulated_timeout: secs(TIMEOUT_EMULATED),
    })
}

fn subject(args: &TestKernelsArgs, build_project: ProjectHook) -> Result<Subject> {
    if let Some(pkg) = build_project(Path::new(&args.target)) {
        return Ok(Subject::Package(Box::new(pkg?)));
    }
    let reg = registry(&args.registry)?;
    Ok(
        match resolve::resolve(&args.target, &reg, Store::open_default)? {
            Runnable::Package(pkg) => Subject::Package(pkg),
            Runnable::Object { name, bytes } => Subject::Object { name, bytes },
        },
    )
}

fn progress(row: &KernelResult) {
    let secs = row.duration_ms.unwrap_or(0) as f64 / 1000.0;
    eprintln!(
        "      {:<6} {} ({secs:.1} s)",
        row.result.as_str(),
        row.kernel
    );
}

fn count(matrix: &KernelMatrix, outcome: Outcome) -> usize {
    matrix
        .kernels
        .iter()
        .filter(|k| k.result == outcome)
        .count()
}

/// Writes the JSON next to `path` first, then renames: a failed write leaves no half file.
fn write_json(matrix: &KernelMatrix, path: &Path) -> Result<()> {
    let json = matrix.to_json()?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io("write", path, e))?;
    std::io::Write::write_all(&mut tmp, format!("{json}\n").as_bytes())
        .map_err(|e| Error::io("write", path, e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("write", path, e.error))?;
    eprintln!("       Wrote {}", path.display());
    Ok(())
}
