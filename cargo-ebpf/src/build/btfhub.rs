//! `--btfhub-archive DIR`: for each kernel of a BTFHub archive of the built arch
//! (`<distro>/<version>/<arch>/<release>.btf.tar.xz`), the minimal BTF the object's CO-RE
//! relocations need (`bpftool gen min_core_btf`), gathered into the package's per-kernel
//! BTF layer ([`ebpf_package::btfgen`]). A program then loads on those kernels even when
//! they lack `/sys/kernel/btf/vmlinux`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use ebpf_package::btfgen::{self, Kernel};
use ebpf_package::{Error, Result};

use super::util::{install_help, require_program, status, write_atomic};

/// Largest `.btf.tar.xz` read and largest BTF unpacked from one (a full vmlinux BTF is
/// ~6 MiB): an archive is input from disk, not trusted to be sane.
const MAX_ARCHIVE_FILE: u64 = 64 << 20;
const MAX_BTF: u64 = 256 << 20;

/// Writes the per-kernel BTF layer for `object` (built for `arch`) next to it, from the
/// archive's kernels of that arch. Returns the layer's path.
pub fn generate(archive: &Path, arch: &str, object: &Path) -> Result<PathBuf> {
    let bpftool = require_program("bpftool", install_help("bpftool", "bpftool"))?;
    let found = archive_kernels(archive, arch)?;
    if found.is_empty() {
        return Err(Error::usage(format!(
            "the BTFHub archive {} has no {arch} kernels",
            archive.display()
        ))
        .with_help("point --btfhub-archive at a directory laid out as <distro>/<version>/<arch>/<release>.btf.tar.xz"));
    }
    let scratch =
        tempfile::tempdir().map_err(|e| Error::io("create", Path::new("a temp dir"), e))?;
    let mut kernels = Vec::new();
    for (kernel, path) in &found {
        let full = scratch.path().join("full.btf");
        write_atomic(&full, &unpack(path, &kernel.release)?)?;
        let min = scratch.path().join("min.btf");
        min_core_btf(&bpftool, &full, &min, object)?;
        let data = std::fs::read(&min).map_err(|e| Error::io("read", &min, e))?;
        kernels.push((kernel.clone(), data));
    }
    let layer = btfgen::layer(&kernels)?;
    let dest = object.with_file_name("btfgen.tar.gz");
    write_atomic(&dest, &layer.data.bytes()?)?;
    status(
        "BTF",
        &format!(
            "embedded minimal BTF for {} {arch} kernel(s) from {}",
            kernels.len(),
            archive.display()
        ),
    );
    Ok(dest)
}

/// Every `.btf.tar.xz` under `archive` whose arch is `arch`, sorted, not following links.
fn archive_kernels(archive: &Path, arch: &str) -> Result<Vec<(Kernel, PathBuf)>> {
    let mut found = Vec::new();
    let mut dirs = vec![archive.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("read", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read", &dir, e))?;
            let ty = entry
                .file_type()
                .map_err(|e| Error::io("read", &entry.path(), e))?;
            let path = entry.path();
            if ty.is_dir() {
                dirs.push(path);
            } else if ty.is_file() {
                let rel = path
                    .strip_prefix(archive)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                if let Some(k) = Kernel::from_path(&rel).filter(|_| rel.ends_with(".btf.tar.xz")) {
                    if btfgen::same_arch(&k.arch, arch) {
                        found.push((k, path));
                    }
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The `<release>.btf` inside one `.btf.tar.xz`, size-bounded.
fn unpack(path: &Path, release: &str) -> Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io("read", path, e))?
        .len();
    if size > MAX_ARCHIVE_FILE {
        return Err(Error::input(format!(
            "{} is over {MAX_ARCHIVE_FILE} bytes",
            path.display()
        ))
        .with_help("a BTFHub entry is a few MiB; check the archive"));
    }
    let xz = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let mut tar = Bounded(Vec::new());
    lzma_rs::xz_decompress(&mut xz.as_slice(), &mut tar).map_err(|e| {
        Error::input(format!(
            "{} is not an xz file (or unpacks beyond {MAX_BTF} bytes)",
            path.display()
        ))
        .with_source(e.to_string())
        .with_help("BTFHub entries are `<release>.btf.tar.xz`: a tar, compressed with xz")
    })?;
    let tar = tar.0;
    let want = format!("{release}.btf");
    let mut archive = tar::Archive::new(tar.as_slice());
    for entry in archive.entries().map_err(|e| Error::io("read", path, e))? {
        let entry = entry.map_err(|e| Error::io("read", path, e))?;
        let name = entry.path().map_err(|e| Error::io("read", path, e))?;
        if entry.header().entry_type().is_file() && name.file_name().is_some_and(|n| *n == *want) {
            let mut data = Vec::new();
            entry
                .take(MAX_BTF + 1)
                .read_to_end(&mut data)
                .map_err(|e| Error::io("read", path, e))?;
            return Ok(data);
        }
    }
    Err(Error::input(format!("{} holds no {want}", path.display()))
        .with_help("BTFHub entries hold one file named after the kernel release"))
}

fn min_core_btf(bpftool: &Path, full: &Path, min: &Path, object: &Path) -> Result<()> {
    let out = Command::new(bpftool)
        .args(["gen", "min_core_btf"])
        .args([full, min, object])
        .output()
        .map_err(|e| Error::io("run", bpftool, e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::build(format!(
        "bpftool gen min_core_btf failed for {}",
        object.display()
    ))
    .with_source(String::from_utf8_lossy(&out.stderr).trim().to_string())
    .with_help("check that the archive's BTF files are valid (bpftool btf dump file FILE)"))
}

/// A `Vec` that refuses to grow past [`MAX_BTF`]: xz's own size claims are not trusted.
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() as u64 + buf.len() as u64 > MAX_BTF {
            return Err(std::io::Error::other("over the size limit"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
