//! A kernel without `/sys/kernel/btf/vmlinux` can still run a package that carries BTF for
//! it (`package --btfhub-archive`, or an Inspektor Gadget btfgen layer): the entry for this
//! host (os-release, arch, release) is written to a temporary file for libbpf.

use std::io::Write as _;
use std::path::Path;

use ebpf_package::btfgen::{self, Host};
use ebpf_package::{Error, Package, Result};

use super::preflight::{DEFAULT_KERNEL_BTF, KERNEL_BTF_ENV};

/// The package's BTF for this kernel, when the kernel has none of its own and the user
/// named no BTF file; `None` otherwise (the usual BTF rules apply).
pub fn embedded(pkg: &Package, flag: Option<&Path>) -> Result<Option<tempfile::NamedTempFile>> {
    let named = flag.is_some() || std::env::var_os(KERNEL_BTF_ENV).is_some_and(|v| !v.is_empty());
    if named || Path::new(DEFAULT_KERNEL_BTF).is_file() {
        return Ok(None);
    }
    let Some(layer) = pkg.btfgen_layer() else {
        return Ok(None);
    };
    let host = host()?;
    let (kernel, btf) = btfgen::pick(&layer.data.bytes()?, &host)?;
    let mut file = tempfile::Builder::new()
        .prefix("cargo-ebpf-btf-")
        .tempfile()
        .map_err(|e| Error::io("create", Path::new("a temporary BTF file"), e))?;
    file.write_all(&btf)
        .map_err(|e| Error::io("write", file.path(), e))?;
    eprintln!("Using the package's embedded BTF for {kernel} ({DEFAULT_KERNEL_BTF} is missing)");
    Ok(Some(file))
}

/// This system: os-release's ID and VERSION_ID, uname's machine and release.
fn host() -> Result<Host> {
    let os_release = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    // SAFETY: uname fills the zeroed struct it is given.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(Error::io(
            "read",
            Path::new("uname"),
            std::io::Error::last_os_error(),
        ));
    }
    let text = |field: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates every field.
        unsafe { std::ffi::CStr::from_ptr(field.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    Ok(Host::new(
        &os_release,
        &text(&uts.machine),
        &text(&uts.release),
    ))
}
