//! Layer archives: the reproducible tar+gzip `cargo ebpf package` writes, and the bounded,
//! confined readers (one file, or a whole layer into a directory) the runner and hub use.
//! A layer is hostile until proven otherwise: no absolute paths, no `..`, no links or
//! devices, no setuid bits, and every file size capped.

use std::io::{Read, Write};
use std::path::Path;

use crate::{Error, Result};

/// A file to put into a package layer.
#[derive(Debug, Clone)]
pub struct LayerFile {
    /// Relative path inside the layer (`hello.bpf.o`, `bin/hello`).
    pub path: String,
    pub data: Vec<u8>,
    /// Unix permission bits (0o755 for executables).
    pub mode: u32,
}

impl LayerFile {
    pub fn new(path: &str, data: Vec<u8>, mode: u32) -> LayerFile {
        LayerFile {
            path: path.into(),
            data,
            mode,
        }
    }
}

/// A tar of `files` with fixed metadata (mtime 0, root-owned), so output is reproducible.
pub(crate) fn tar_files(files: &[LayerFile]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(file.data.len() as u64);
        header.set_mode(file.mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder
            .append_data(&mut header, &file.path, file.data.as_slice())
            .map_err(|e| Error::input(format!("cannot archive {}: {e}", file.path)))?;
    }
    builder
        .into_inner()
        .map_err(|e| Error::input("cannot archive the package files").with_source(e))
}

/// A tar archive over `data`, gunzipped first when it starts with gzip's magic (other
/// tools ship tarballs either way: IG's btfgen layer, `ecc`'s package archives).
pub(crate) fn tar_maybe_gzip(data: &[u8]) -> tar::Archive<Box<dyn Read + '_>> {
    let reader: Box<dyn Read + '_> = if data.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(data))
    } else {
        Box::new(data)
    };
    tar::Archive::new(reader)
}

/// Gzip at the best level with a zero mtime, so the same input gives the same bytes.
pub(crate) fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(data)
        .and_then(|_| enc.finish())
        .map_err(|e| Error::input("cannot compress layer").with_source(e))
}

/// Largest object we extract; BPF objects are far smaller, this stops gzip bombs.
const MAX_OBJECT_SIZE: u64 = 256 << 20;
/// Most bytes a whole layer may unpack to: the per-file cap alone lets a small layer
/// expand to many files of that size.
pub const MAX_UNPACKED_SIZE: u64 = 512 << 20;
/// Most entries (files and directories) a layer may hold.
pub const MAX_ENTRIES: usize = 10_000;

/// What one unpack may cost.
#[derive(Debug, Clone, Copy)]
struct Limits {
    total: u64,
    entries: usize,
}

const LIMITS: Limits = Limits {
    total: MAX_UNPACKED_SIZE,
    entries: MAX_ENTRIES,
};

fn bad_archive(e: std::io::Error) -> Error {
    Error::input(format!(
        "the package layer is not a valid tar+gzip archive: {e}"
    ))
}

/// The normal components of an archive path; absolute paths and `..` are refused so a
/// hostile layer cannot point outside its directory.
fn safe_components(path: &Path) -> Result<Vec<std::path::Component<'_>>> {
    let normal: Vec<_> = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    let safe = normal
        .iter()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !safe {
        return Err(Error::integrity(format!(
            "the package layer holds an unsafe path {:?} (absolute or with ..)",
            path
        ))
        .with_help("refuse this package: it tries to write outside its directory"));
    }
    Ok(normal)
}

/// Finds `name` at the root of a tar+gzip archive. Rejects absolute paths, `..`, links
/// and anything that is not a plain file at the root.
pub fn extract_file(tar_gz: &[u8], name: &str) -> Result<Option<Vec<u8>>> {
    extract_file_within(tar_gz, name, MAX_UNPACKED_SIZE)
}

/// [`extract_file`], reading at most `max_unpacked` bytes of the decompressed tar stream:
/// a small gzip of gigabytes of zeros before the file ends as a truncated archive instead
/// of burning CPU on every read (the hub uses a tighter bound than the runner).
pub fn extract_file_within(
    tar_gz: &[u8],
    name: &str,
    max_unpacked: u64,
) -> Result<Option<Vec<u8>>> {
    let stream = flate2::read::GzDecoder::new(tar_gz).take(max_unpacked);
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(bad_archive)? {
        let entry = entry.map_err(bad_archive)?;
        let path = entry.path().map_err(bad_archive)?.into_owned();
        let normal = safe_components(&path)?;
        let is_target = normal.len() == 1 && normal[0].as_os_str() == name;
        if !is_target {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            return Err(Error::integrity(format!(
                "{name} in the package layer is not a regular file"
            )));
        }
        return read_limited(entry, name).map(Some);
    }
    Ok(None)
}

fn read_limited(entry: impl Read, name: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    entry
        .take(MAX_OBJECT_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(bad_archive)?;
    if data.len() as u64 > MAX_OBJECT_SIZE {
        return Err(Error::input(format!(
            "{name} is larger than {MAX_OBJECT_SIZE} bytes"
        )));
    }
    Ok(data)
}

/// Unpacks a whole tar+gzip layer into `dest` (an existing, empty directory the caller
/// owns). Only directories and regular files are accepted; paths that escape, links and
/// devices are refused; setuid/setgid bits are dropped. Used to start executable packages.
/// At most [`MAX_ENTRIES`] entries and [`MAX_UNPACKED_SIZE`] bytes in all.
pub fn extract_all(tar_gz: &[u8], dest: &Path) -> Result<()> {
    extract_within(tar_gz, dest, LIMITS)
}

fn too_large(what: String) -> Error {
    Error::input(format!("the package layer unpacks to {what}")).with_help(
        "refuse this package: eBPF packages are small, this one looks like an archive bomb",
    )
}

fn extract_within(tar_gz: &[u8], dest: &Path, limits: Limits) -> Result<()> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tar_gz));
    let mut total: u64 = 0;
    for (index, entry) in archive.entries().map_err(bad_archive)?.enumerate() {
        if index >= limits.entries {
            return Err(too_large(format!("more than {} entries", limits.entries)));
        }
        let entry = entry.map_err(bad_archive)?;
        let path = entry.path().map_err(bad_archive)?.into_owned();
        let target: std::path::PathBuf = std::iter::once(dest.as_os_str())
            .chain(safe_components(&path)?.iter().map(|c| c.as_os_str()))
            .collect();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| Error::io("create", &target, e))?;
            continue;
        }
        if !kind.is_file() {
            return Err(Error::integrity(format!(
                "{} in the package layer is a link or device, not a regular file",
                path.display()
            ))
            .with_help("refuse this package: only plain files and directories are allowed"));
        }
        let mode = entry.header().mode().map_err(bad_archive)? & 0o755;
        let data = read_limited(entry, &path.display().to_string())?;
        total += data.len() as u64;
        if total > limits.total {
            return Err(too_large(format!(
                "more than {} bytes in all",
                limits.total
            )));
        }
        write_file(&target, &data, mode)?;
    }
    Ok(())
}

fn write_file(target: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(target)
        .map_err(|e| Error::io("create", target, e))?;
    file.write_all(data)
        .map_err(|e| Error::io("write", target, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_rejects_path_traversal() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        let data = b"evil";
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // Write the name straight into the header: the tar crate's setters refuse "..".
        header.as_old_mut().name[..12].copy_from_slice(b"../escape.o\0");
        header.set_cksum();
        builder.append(&header, &data[..]).unwrap();
        let gz = gzip(&builder.into_inner().unwrap()).unwrap();
        let err = extract_file(&gz, "escape.o").unwrap_err();
        assert!(err.message.contains("unsafe path"), "{}", err.message);
    }

    fn zeros_layer(files: usize, size: usize) -> Vec<u8> {
        let files: Vec<LayerFile> = (0..files)
            .map(|i| LayerFile::new(&format!("f{i}"), vec![0; size], 0o644))
            .collect();
        gzip(&tar_files(&files).unwrap()).unwrap()
    }

    #[test]
    fn extract_all_caps_the_total_and_the_entry_count() {
        // Each file is under the per-file cap; together they pass the total.
        let gz = zeros_layer(6, 4096);
        let dir = tempfile::tempdir().unwrap();
        let small = Limits {
            total: 5 * 4096,
            entries: 100,
        };
        let err = extract_within(&gz, dir.path(), small).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Input);
        assert!(err.message.contains("bytes in all"), "{}", err.message);
        // The real cap: more entries than any package holds, however small.
        let many = zeros_layer(MAX_ENTRIES + 1, 0);
        let dir = tempfile::tempdir().unwrap();
        let err = extract_all(&many, dir.path()).unwrap_err();
        assert!(err.message.contains("entries"), "{}", err.message);
    }

    #[test]
    fn extract_all_refuses_links() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "bin/demo", "/etc/passwd")
            .unwrap();
        let gz = gzip(&builder.into_inner().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = extract_all(&gz, dir.path()).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity);
        assert!(!dir.path().join("bin/demo").exists());
    }
}
