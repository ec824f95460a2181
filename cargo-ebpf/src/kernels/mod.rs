//! `cargo ebpf test-kernels`: "will it run on my kernel?", answered by booting each kernel
//! in a throw-away QEMU VM and loading and attaching the package there.
//!
//! Per kernel: an initramfs ([`initramfs`]) with a static busybox, the standalone runner
//! (and its shared libraries), the package and an `/init` ([`guest`]) that runs
//! `ebpf-runner run TARGET --check`; one VM at a time ([`vm`]); the console becomes a row
//! of the [`KernelMatrix`]. Kernels are the user's (`--kernel VMLINUZ[:BTF]`) or those
//! `--fetch` (`fetch-debian-kernels.sh`, also scripts/fetch-test-kernels.sh) unpacked from
//! Debian's packages.

pub mod command;
mod guest;
mod initramfs;
mod vm;

pub use vm::{kvm_usable, VmOptions, QEMU};

use std::path::{Path, PathBuf};
use std::time::Duration;

use ebpf_package::kernel_matrix::{KernelMatrix, KernelResult};
use ebpf_package::layout::OciLayout;
use ebpf_package::spec::Runtime;
use ebpf_package::{Error, Package, Result};

use initramfs::Archive;

/// Where `fetch-test-kernels.sh` puts the Debian kernels (one directory per series, each
/// with `vmlinuz` and `release`), and the variable that moves it.
pub const KERNELS_ENV: &str = "CARGO_EBPF_KERNELS";
pub const DEFAULT_KERNELS_DIR: &str = "/var/cache/cargo-ebpf/kernels";
const BUSYBOX: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];
const LAYOUT_TAG: &str = "test";
/// The guests are x86-64 (`qemu-system-x86_64`): the OCI name of the packages they can run.
const GUEST_ARCH: &str = "amd64";

/// What is tested: a package (kernel-only) or a bare BPF object.
pub enum Subject {
    Package(Box<Package>),
    Object { name: String, bytes: Vec<u8> },
}

/// A kernel to boot: its image, a BTF file for kernels without their own, and a name for
/// the matrix until the guest says its release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelImage {
    pub vmlinuz: PathBuf,
    pub btf: Option<PathBuf>,
    pub label: String,
}

impl KernelImage {
    /// `--kernel VMLINUZ[:BTF]`, or a directory holding `vmlinuz` (and `vmlinux.btf`).
    pub fn parse(arg: &str) -> Result<KernelImage> {
        let (image, btf) = match arg.split_once(':') {
            Some((image, btf)) if !Path::new(arg).exists() => (image, Some(PathBuf::from(btf))),
            _ => (arg, None),
        };
        let path = Path::new(image);
        let mut kernel = if path.is_dir() {
            from_dir(path)?
        } else {
            KernelImage {
                vmlinuz: path.to_path_buf(),
                btf: None,
                label: label_of(path),
            }
        };
        if btf.is_some() {
            kernel.btf = btf;
        }
        kernel.check()?;
        Ok(kernel)
    }

    fn check(&self) -> Result<()> {
        for file in std::iter::once(&self.vmlinuz).chain(&self.btf) {
            let meta = std::fs::metadata(file).map_err(|e| {
                Error::io("read", file, e).with_help(
                    "pass --kernel VMLINUZ[:BTF] with a kernel image (and a BTF file for \
                     kernels built without CONFIG_DEBUG_INFO_BTF)",
                )
            })?;
            if !meta.is_file() {
                return Err(Error::usage(format!("{} is not a file", file.display())));
            }
        }
        Ok(())
    }
}

fn from_dir(dir: &Path) -> Result<KernelImage> {
    let btf = dir.join("vmlinux.btf");
    let release = std::fs::read_to_string(dir.join("release")).ok();
    Ok(KernelImage {
        vmlinuz: dir.join("vmlinuz"),
        btf: btf.is_file().then_some(btf),
        label: release
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| label_of(dir)),
    })
}

fn label_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The kernels `fetch-test-kernels.sh` left in `$CARGO_EBPF_KERNELS` (default
/// [`DEFAULT_KERNELS_DIR`]), oldest series first.
pub fn cached_kernels() -> Result<Vec<KernelImage>> {
    let dir = std::env::var_os(KERNELS_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KERNELS_DIR));
    let entries = std::fs::read_dir(&dir).map_err(|_| no_kernels(&dir))?;
    let mut kernels: Vec<KernelImage> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("vmlinuz").is_file())
        .map(|p| from_dir(&p))
        .collect::<Result<_>>()?;
    if kernels.is_empty() {
        return Err(no_kernels(&dir));
    }
    kernels.sort_by_key(|k| version_key(&k.label));
    Ok(kernels)
}

fn version_key(label: &str) -> Vec<u64> {
    label
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

fn no_kernels(dir: &Path) -> Error {
    Error::environment(format!("no kernels to test in {}", dir.display())).with_help(format!(
        "pass --kernel VMLINUZ[:BTF] (repeatable), or unpack Debian's kernels there with \
         scripts/fetch-test-kernels.sh from the cargo-ebpf repository (${KERNELS_ENV} \
         moves the directory)"
    ))
}

/// Everything besides the subject and the kernels.
pub struct TestOptions {
    pub vm: VmOptions,
    /// The standalone runner for the guest (default: next to this binary, then PATH).
    pub runner: Option<PathBuf>,
    /// The program's arguments (params), as after `run … --`.
    pub args: Vec<String>,
    /// The tool that writes the matrix, e.g. `cargo-ebpf 0.1.0`.
    pub tool: String,
}

/// A guest under KVM prints its first marker within seconds; silence this long means KVM
/// cannot run it (nested virtualization often hangs the guest without a word).
const KVM_FIRST_WORD: Duration = Duration::from_secs(20);

/// Boots every kernel in turn with `subject` and returns the matrix (oldest kernel first);
/// `progress` sees each row as it is known.
pub fn test_kernels(
    subject: &Subject,
    kernels: &[KernelImage],
    opts: &TestOptions,
    mut progress: impl FnMut(&KernelResult),
) -> Result<KernelMatrix> {
    let (package, digest) = describe(subject)?;
    let work = tempfile::tempdir().map_err(|e| Error::io("create", Path::new("a temp dir"), e))?;
    let base = GuestFiles::prepare(subject, opts, work.path())?;
    let mut vm = opts.vm.clone();
    let mut rows = Vec::new();
    for kernel in kernels {
        let initrd = work.path().join("initramfs.cpio");
        let archive = base.archive(kernel)?;
        std::fs::write(&initrd, archive).map_err(|e| Error::io("write", &initrd, e))?;
        let boot = boot_with_fallback(&mut vm, kernel, &initrd)?;
        let row = guest::result(&guest::Boot {
            label: &kernel.label,
            console: &boot.console,
            timed_out: boot.timed_out.then_some(vm.timeout.as_secs()),
            duration_ms: u64::try_from(boot.elapsed.as_millis()).unwrap_or(u64::MAX),
        });
        progress(&row);
        rows.push(row);
    }
    let mut matrix = KernelMatrix {
        package,
        digest,
        tool: opts.tool.clone(),
        kernels: rows,
    };
    matrix.sort();
    Ok(matrix)
}

/// Boots under KVM while KVM works; a KVM guest that never says a word (or a QEMU that
/// refuses the KVM CPU) switches this and every later VM to emulation, with a warning.
fn boot_with_fallback(vm: &mut VmOptions, kernel: &KernelImage, initrd: &Path) -> Result<vm::Boot> {
    if !vm.kvm {
        return vm::boot(vm, &kernel.vmlinuz, initrd, None);
    }
    let boot = vm::boot(
        vm,
        &kernel.vmlinuz,
        initrd,
        Some((guest::MARK, KVM_FIRST_WORD)),
    )?;
    if boot.console.contains(guest::MARK) {
        return Ok(boot);
    }
    let qemu_said = boot.qemu_stderr.lines().find(|l| !l.trim().is_empty());
    eprintln!(
        "warning: KVM could not run the guest ({}); emulating the CPU instead for this and \
         the remaining kernels (slower; --no-kvm skips the attempt)",
        qemu_said.unwrap_or("no output from the guest kernel: nested virtualization?")
    );
    vm.kvm = false;
    vm.timeout = vm.emulated_timeout;
    vm::boot(vm, &kernel.vmlinuz, initrd, None)
}

/// The subject's name and digest for the matrix; refuses packages that start their own
/// loader (the check loads kernel-only packages).
fn describe(subject: &Subject) -> Result<(String, Option<String>)> {
    match subject {
        Subject::Package(pkg) => {
            let meta = pkg.meta()?;
            if !matches!(meta.runtime, Runtime::Kernel) {
                return Err(Error::usage(format!(
                    "test-kernels checks kernel-only packages; `{}` is a {} package, which \
                     starts its own loader",
                    meta.name,
                    meta.runtime.kind()
                ))
                .with_help("test the BPF object itself: cargo ebpf test-kernels NAME.bpf.o"));
            }
            let platform = pkg.platform();
            if platform.architecture != GUEST_ARCH {
                return Err(Error::usage(format!(
                    "test-kernels boots x86-64 kernels, and `{}` is built for {platform}",
                    meta.name
                ))
                .with_help(
                    "test the package's linux/amd64 build (cargo ebpf build --arch x86_64)",
                ));
            }
            Ok((
                format!("{}:{}", meta.name, meta.version),
                Some(pkg.digest()),
            ))
        }
        Subject::Object { name, .. } => Ok((name.clone(), None)),
    }
}

/// The files every guest gets, read once: busybox, the runner and its libraries, the
/// subject, and where the subject lies inside the guest.
struct GuestFiles {
    files: Vec<(String, Vec<u8>, bool)>,
    target: String,
    args: Vec<String>,
    /// The package's `[test] smoke` command.
    smoke: Option<String>,
}

impl GuestFiles {
    fn prepare(subject: &Subject, opts: &TestOptions, work: &Path) -> Result<GuestFiles> {
        let mut files = Vec::new();
        let busybox = find_busybox()?;
        files.push(("/bin/busybox".to_string(), read(&busybox)?, true));
        let runner = find_runner(opts.runner.as_deref())?;
        for lib in initramfs::shared_libraries(&runner)? {
            files.push((lib.display().to_string(), read(&lib)?, true));
        }
        let small = initramfs::stripped(&runner, work).unwrap_or(runner);
        files.push((guest::RUNNER.to_string(), read(&small)?, true));
        let target = subject_files(subject, work, &mut files)?;
        let smoke = match subject {
            Subject::Package(pkg) => pkg.meta().ok().and_then(|m| m.smoke.clone()),
            Subject::Object { .. } => None,
        };
        Ok(GuestFiles {
            files,
            target,
            args: opts.args.clone(),
            smoke,
        })
    }

    /// The initramfs for `kernel`: the shared files, its BTF if given, and `/init`.
    fn archive(&self, kernel: &KernelImage) -> Result<Vec<u8>> {
        let mut a = Archive::default();
        a.console();
        for dir in ["/proc", "/sys", "/tmp", "/run"] {
            a.dir(dir);
        }
        for (path, data, exec) in &self.files {
            a.file(path, data, *exec);
        }
        if let Some(btf) = &kernel.btf {
            a.copy(btf, guest::GIVEN_BTF)?;
        }
        let init = guest::init_script(&self.target, &self.args, self.smoke.as_deref());
        a.file("/init", init.as_bytes(), true);
        Ok(a.finish())
    }
}

/// Adds the subject's files under [`guest::TARGET_DIR`] and returns the path to run.
fn subject_files(
    subject: &Subject,
    work: &Path,
    files: &mut Vec<(String, Vec<u8>, bool)>,
) -> Result<String> {
    match subject {
        Subject::Object { name, bytes } => {
            let file = Path::new(name)
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .replace(|c: char| c.is_whitespace(), "_")
                })
                .filter(|n| !n.starts_with('.'))
                .unwrap_or_else(|| "object.bpf.o".into());
            let path = format!("{}/{file}", guest::TARGET_DIR);
            files.push((path.clone(), bytes.clone(), false));
            Ok(path)
        }
        Subject::Package(pkg) => {
            let root = work.join("layout");
            OciLayout::create(&root)?.write_package(pkg, LAYOUT_TAG)?;
            let guest_root = format!("{}/layout", guest::TARGET_DIR);
            for entry in walkdir::WalkDir::new(&root).follow_links(false) {
                let entry = entry.map_err(|e| {
                    Error::io(
                        "read",
                        &root,
                        e.into_io_error()
                            .unwrap_or_else(|| std::io::Error::other("walk")),
                    )
                })?;
                if !entry.file_type().is_file() {
                    continue;
                }
                let rel = entry.path().strip_prefix(&root).expect("under the root");
                let path = format!("{guest_root}/{}", rel.display());
                files.push((path, read(entry.path())?, false));
            }
            Ok(guest_root)
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("read", path, e))
}

fn find_busybox() -> Result<PathBuf> {
    let busybox = BUSYBOX
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::environment("the guest needs a static busybox, and none is installed")
                .with_help("install it (Debian package busybox-static, Fedora busybox)")
        })?;
    if !initramfs::shared_libraries(&busybox)?.is_empty() {
        return Err(Error::environment(format!(
            "{} is linked dynamically; the guest needs a static busybox",
            busybox.display()
        ))
        .with_help("install Debian's busybox-static instead of busybox"));
    }
    Ok(busybox)
}

/// `--runner`, else `ebpf-runner` next to this binary, else on PATH, else this binary
/// itself: `cargo-ebpf run … --check` is the same command (a bigger guest, no extra install).
fn find_runner(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = flag {
        return if ebpf_runner::which::is_executable(path) {
            Ok(path.to_path_buf())
        } else {
            Err(Error::usage(format!(
                "--runner {} is not an executable file",
                path.display()
            )))
        };
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("ebpf-runner")))
        .filter(|p| ebpf_runner::which::is_executable(p));
    sibling
        .or_else(|| ebpf_runner::which::find_program("ebpf-runner"))
        .or_else(|| std::env::current_exe().ok())
        .ok_or_else(|| {
            Error::environment("the guest needs a runner, and no ebpf-runner is found")
                .with_help("pass --runner PATH (ebpf-runner runs the check inside each VM)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_arguments_name_an_image_and_maybe_btf() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("vmlinuz-6.1");
        let btf = dir.path().join("vmlinux.btf");
        std::fs::write(&image, b"MZ").unwrap();
        std::fs::write(&btf, b"btf").unwrap();
        let k = KernelImage::parse(&image.display().to_string()).unwrap();
        assert_eq!((k.btf, k.label.as_str()), (None, "vmlinuz-6.1"));
        let arg = format!("{}:{}", image.display(), btf.display());
        let k = KernelImage::parse(&arg).unwrap();
        assert_eq!(k.btf.as_deref(), Some(btf.as_path()));

        // A directory: vmlinuz, vmlinux.btf and the release for a label.
        std::fs::rename(&image, dir.path().join("vmlinuz")).unwrap();
        std::fs::write(dir.path().join("release"), "6.1.0-28-amd64\n").unwrap();
        let k = KernelImage::parse(&dir.path().display().to_string()).unwrap();
        assert_eq!(k.label, "6.1.0-28-amd64");
        assert_eq!(k.btf.as_deref(), Some(btf.as_path()));

        let err = KernelImage::parse("/nonexistent/vmlinuz").unwrap_err();
        assert!(err.help.unwrap().contains("--kernel VMLINUZ[:BTF]"));
    }

    fn package(arch: &str, runtime: Runtime) -> Subject {
        let mut meta = ebpf_package::spec::PackageMeta::new("probe", "0.2.0", "probe.bpf.o");
        meta.arch = arch.into();
        meta.runtime = runtime;
        Subject::Package(Box::new(Package::build(meta, b"\x7fELF", None).unwrap()))
    }

    #[test]
    fn only_x86_64_kernel_only_packages_are_tested() {
        let (name, digest) = describe(&package("x86_64", Runtime::Kernel)).unwrap();
        assert_eq!(name, "probe:0.2.0");
        assert!(digest.unwrap().starts_with("sha256:"));
        let err = describe(&package("aarch64", Runtime::Kernel)).unwrap_err();
        assert!(
            err.message.contains("built for linux/arm64"),
            "{}",
            err.message
        );
        let loader = Runtime::Executable {
            path: "bin/probe".into(),
            args: vec![],
            env: Default::default(),
            workdir: None,
        };
        let err = describe(&package("x86_64", loader)).unwrap_err();
        assert!(
            err.message.contains("kernel-only packages"),
            "{}",
            err.message
        );
        let object = Subject::Object {
            name: "x.bpf.o".into(),
            bytes: vec![],
        };
        assert_eq!(describe(&object).unwrap(), ("x.bpf.o".to_string(), None));
    }

    #[test]
    fn cached_kernels_sort_by_version() {
        assert!(version_key("5.10.0-32-amd64") < version_key("6.1.0-50-amd64"));
        assert!(version_key("6.1.0-50-amd64") < version_key("6.12.95+deb12-amd64"));
    }
}
