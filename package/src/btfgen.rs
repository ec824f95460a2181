//! Per-kernel BTF carried inside a package, for kernels without `/sys/kernel/btf/vmlinux`.
//!
//! `cargo ebpf package --btfhub-archive DIR` shrinks each BTFHub kernel's BTF to what the
//! object's CO-RE relocations need (`bpftool gen min_core_btf`) and stores the results as
//! one extra layer: a tar+gzip in BTFHub's layout, `<distro>/<version>/<arch>/<release>.btf`.
//! Inspektor Gadget's btfgen layer uses the same layout, so the runner reads both here.
//! The layer is untrusted input: entries are bounded in number and size, and only plain
//! files whose path parses as a kernel are considered.

use std::io::Read;

use crate::blob::Blob;
use crate::layer::{self, LayerFile};
use crate::{spec, Error, Result};

/// Most kernels a layer may list, and the largest BTF read from it (a full vmlinux BTF is
/// ~6 MiB; a minimal one a few KiB).
const MAX_KERNELS: usize = 20_000;
const MAX_BTF_SIZE: u64 = 64 << 20;

/// One kernel of the archive: `ubuntu/20.04/x86_64/5.4.0-1010-aws`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kernel {
    pub distro: String,
    pub version: String,
    pub arch: String,
    pub release: String,
}

impl Kernel {
    /// `<distro>/<version>/<arch>/<release>.btf` (or `.btf.tar.xz` in a BTFHub archive):
    /// the last four components of `path`.
    pub fn from_path(path: &str) -> Option<Kernel> {
        let path = path.trim_start_matches("./");
        let mut parts: Vec<&str> = path.split('/').collect();
        if parts.len() < 4 {
            return None;
        }
        let file = parts.pop()?;
        let release = file
            .strip_suffix(".btf.tar.xz")
            .or_else(|| file.strip_suffix(".btf"))?;
        let arch = parts.pop()?;
        let version = parts.pop()?;
        let distro = parts.pop()?;
        let ok = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('\\');
        [distro, version, arch, release]
            .iter()
            .all(|s| ok(s))
            .then(|| Kernel {
                distro: distro.into(),
                version: version.into(),
                arch: arch.into(),
                release: release.into(),
            })
    }

    /// Its path in the layer.
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}/{}.btf",
            self.distro, self.version, self.arch, self.release
        )
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.distro, self.version, self.arch, self.release
        )
    }
}

/// The running system, as the runner sees it (os-release `ID`/`VERSION_ID`, `uname -m`, `uname -r`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub distro: String,
    pub version: String,
    pub arch: String,
    pub release: String,
}

impl Host {
    /// From the text of `/etc/os-release` and uname's machine and release.
    pub fn new(os_release: &str, arch: &str, release: &str) -> Host {
        let field = |key: &str| {
            os_release
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_string())
                .unwrap_or_default()
        };
        Host {
            distro: field("ID"),
            version: field("VERSION_ID"),
            arch: arch.into(),
            release: release.into(),
        }
    }
}

/// The extra layer holding `kernels` (each with its minimal BTF), reproducible.
pub fn layer(kernels: &[(Kernel, Vec<u8>)]) -> Result<Blob> {
    let mut files: Vec<LayerFile> = kernels
        .iter()
        .map(|(k, btf)| LayerFile::new(&k.path(), btf.clone(), 0o644))
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let tar = layer::tar_files(&files)?;
    Ok(Blob::new(spec::MEDIA_TYPE_BTFGEN, layer::gzip(&tar)?))
}

/// Whether two arch names mean the same architecture (BTFHub says `arm64`, uname `aarch64`).
pub fn same_arch(a: &str, b: &str) -> bool {
    match (spec::normalize_arch(a), spec::normalize_arch(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// Whether `media_type` is a per-kernel BTF layer (ours or Inspektor Gadget's).
pub fn is_btfgen_layer(media_type: &str) -> bool {
    media_type == spec::MEDIA_TYPE_BTFGEN || media_type == spec::GADGET_BTFGEN_LAYER
}

/// The kernels a btfgen layer covers.
pub fn kernels(data: &[u8]) -> Result<Vec<Kernel>> {
    let mut found = Vec::new();
    walk(data, |kernel, _| {
        found.push(kernel);
        Ok(false)
    })?;
    found.sort();
    Ok(found)
}

/// Every kernel's BTF in a tar (gzip or not) laid out as BTFHub's archive, under any
/// prefix: how eunomia's `ecc` ships the minimal BTFs beside its `package.json`.
pub fn collect(data: &[u8]) -> Result<Vec<(Kernel, Vec<u8>)>> {
    let mut found = Vec::new();
    let mut total = 0u64;
    walk(data, |kernel, entry| {
        let btf = read_bounded(entry, &kernel)?;
        total += btf.len() as u64;
        if total > crate::layer::MAX_UNPACKED_SIZE {
            return Err(
                Error::integrity("the package's BTF files add up past the size limit")
                    .with_help("refuse this package: it is hostile or broken"),
            );
        }
        found.push((kernel, btf));
        Ok(false)
    })?;
    Ok(found)
}

/// The BTF for `host` from a btfgen layer: the entry of the same arch and release, from
/// the host's own distro and version when several match. When none matches, an error
/// listing the kernels covered and how to add this one.
pub fn pick(data: &[u8], host: &Host) -> Result<(Kernel, Vec<u8>)> {
    let covered = kernels(data)?;
    let same = |k: &Kernel| same_arch(&k.arch, &host.arch) && k.release == host.release;
    let best = covered
        .iter()
        .filter(|k| same(k))
        .max_by_key(|k| (k.distro == host.distro, k.version == host.version))
        .cloned()
        .ok_or_else(|| not_covered(&covered, host))?;
    let mut btf = None;
    walk(data, |kernel, entry| {
        if kernel != best {
            return Ok(false);
        }
        btf = Some(read_bounded(entry, &kernel)?);
        Ok(true)
    })?;
    let btf = btf.ok_or_else(|| not_covered(&covered, host))?;
    Ok((best, btf))
}

/// Calls `f` for each plain-file kernel entry until it returns true.
fn walk(data: &[u8], mut f: impl FnMut(Kernel, &mut dyn Read) -> Result<bool>) -> Result<()> {
    let mut archive = layer::tar_maybe_gzip(data);
    let entries = archive.entries().map_err(bad)?;
    for (count, entry) in entries.enumerate() {
        if count >= MAX_KERNELS {
            return Err(Error::integrity(format!(
                "the package's per-kernel BTF layer lists over {MAX_KERNELS} entries"
            ))
            .with_help("refuse this package: its BTF layer is hostile or broken"));
        }
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let Some(kernel) = Kernel::from_path(&path) else {
            continue;
        };
        if f(kernel, &mut entry)? {
            return Ok(());
        }
    }
    Ok(())
}

fn read_bounded(entry: &mut dyn Read, kernel: &Kernel) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    Read::take(&mut *entry, MAX_BTF_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(bad)?;
    if data.len() as u64 > MAX_BTF_SIZE {
        return Err(Error::integrity(format!(
            "the BTF for {kernel} in the package is over {MAX_BTF_SIZE} bytes"
        ))
        .with_help("refuse this package: its BTF layer is hostile or broken"));
    }
    Ok(data)
}

fn not_covered(covered: &[Kernel], host: &Host) -> Error {
    let list = if covered.is_empty() {
        "none".to_string()
    } else {
        covered
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Error::environment(format!(
        "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing) and the package's embedded BTF does not cover it ({} {} {} {}); it covers: {list}",
        host.distro, host.version, host.arch, host.release
    ))
    .with_help(format!(
        "pass this kernel's BTF with --btf FILE, or ask the publisher to add it: put \
         {0}/{1}/{2}/{3}.btf.tar.xz in a BTFHub archive and package with --btfhub-archive DIR",
        host.distro, host.version, host.arch, host.release
    ))
}

fn bad(e: std::io::Error) -> Error {
    Error::integrity("the package's per-kernel BTF layer is not a readable tar archive")
        .with_source(e)
        .with_help("refuse this package, or ask its publisher to package it again")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(distro: &str, release: &str) -> Kernel {
        Kernel::from_path(&format!("{distro}/12/x86_64/{release}.btf")).unwrap()
    }

    #[test]
    fn paths_parse_both_ways() {
        let k = Kernel::from_path("archive/ubuntu/20.04/x86_64/5.4.0-1010-aws.btf.tar.xz").unwrap();
        assert_eq!(k.path(), "ubuntu/20.04/x86_64/5.4.0-1010-aws.btf");
        assert_eq!(Kernel::from_path(&k.path()), Some(k));
        assert_eq!(Kernel::from_path("x86_64/5.4.btf"), None);
        assert_eq!(Kernel::from_path("a/../x86_64/5.4.btf"), None);
        assert_eq!(Kernel::from_path("a/b/c/readme.txt"), None);
    }

    #[test]
    fn host_reads_os_release() {
        let host = Host::new(
            "NAME=\"Debian\"\nID=debian\nVERSION_ID=\"12\"\n",
            "x86_64",
            "6.1.0",
        );
        assert_eq!(
            (host.distro.as_str(), host.version.as_str()),
            ("debian", "12")
        );
    }

    #[test]
    fn pick_prefers_the_hosts_distro_and_names_what_is_covered() {
        let blob = layer(&[
            (kernel("fedora", "6.1.0"), b"fedora".to_vec()),
            (kernel("debian", "6.1.0"), b"debian".to_vec()),
            (kernel("debian", "5.10.0"), b"old".to_vec()),
        ])
        .unwrap();
        assert_eq!(blob.descriptor.media_type, spec::MEDIA_TYPE_BTFGEN);
        let data = blob.data.bytes().unwrap();
        assert_eq!(kernels(&data).unwrap().len(), 3);
        let host = Host::new("ID=debian\nVERSION_ID=12\n", "x86_64", "6.1.0");
        let (k, btf) = pick(&data, &host).unwrap();
        assert_eq!(
            (k.distro.as_str(), btf.as_slice()),
            ("debian", &b"debian"[..])
        );
        let other = Host::new("ID=debian\nVERSION_ID=12\n", "x86_64", "6.18.0");
        let err = pick(&data, &other).unwrap_err();
        assert!(
            err.message.contains("debian 12 x86_64 5.10.0"),
            "{}",
            err.message
        );
        assert!(err.help.unwrap().contains("--btfhub-archive"));
    }
}
