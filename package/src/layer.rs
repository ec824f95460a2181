//! Layer archives: the reproducible tar+gzip `cargo ebpf package` writes, and the bounded,
//! confined readers (one file, or a whole layer into a directory) the runner and hub use.
//! A layer is hostile until proven otherwise: no absolute paths, no `..`, no links or
//! devices, no setuid bits, and every file size capped.

use std::io::{Read, Write};
use std::path::Path;

use crate::blob::{BlobData, Spool};
use crate::{Error, Result};

/// A file to put into a package layer.
#[derive(Debug, Clone)]
pub struct LayerFile {
    /// Relative path inside the layer (`hello.bpf.o`, `bin/hello`).
    pub path: String,
    content: Content,
    /// Unix permission bits (0o755 for executables).
    pub mode: u32,
}

/// A layer file's bytes: given, or read from disk while the layer is written (a large
/// payload is never held in memory).
#[derive(Debug, Clone)]
enum Content {
    Bytes(Vec<u8>),
    Disk { path: std::path::PathBuf, len: u64 },
}

impl LayerFile {
    pub fn new(path: &str, data: Vec<u8>, mode: u32) -> LayerFile {
        LayerFile {
            path: path.into(),
            content: Content::Bytes(data),
            mode,
        }
    }

    /// The file at `disk`, read when the layer is written.
    pub fn from_disk(path: &str, disk: &Path, mode: u32) -> Result<LayerFile> {
        let meta = std::fs::metadata(disk).map_err(|e| Error::io("read", disk, e))?;
        if !meta.is_file() {
            return Err(
                Error::input(format!("{} is not a regular file", disk.display()))
                    .with_help("package regular files only"),
            );
        }
        Ok(LayerFile {
            path: path.into(),
            content: Content::Disk {
                path: disk.to_path_buf(),
                len: meta.len(),
            },
            mode,
        })
    }

    /// What identifies this file's content without reading a file from disk: its bytes'
    /// digest, or its path, size and modification time (how make and cargo judge freshness).
    pub fn fingerprint(&self) -> String {
        let head = format!("{}\0{:o}\0", self.path, self.mode);
        match &self.content {
            Content::Bytes(b) => head + &crate::digest::sha256(b),
            Content::Disk { path, len } => {
                let modified = std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("{head}{}\0{len}\0{modified}", path.display())
            }
        }
    }

    pub fn len(&self) -> u64 {
        match &self.content {
            Content::Bytes(b) => b.len() as u64,
            Content::Disk { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn append_to<W: Write>(&self, builder: &mut tar::Builder<W>) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(self.len());
        header.set_mode(self.mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let failed = |e: std::io::Error| Error::input(format!("cannot archive {}: {e}", self.path));
        match &self.content {
            Content::Bytes(b) => builder.append_data(&mut header, &self.path, b.as_slice()),
            Content::Disk { path, len } => {
                let file = std::fs::File::open(path).map_err(|e| Error::io("read", path, e))?;
                let exact = Exact {
                    inner: file.take(*len),
                    left: *len,
                };
                builder.append_data(&mut header, &self.path, exact)
            }
        }
        .map_err(failed)
    }
}

/// Exactly `left` bytes: a file that changed size since it was measured would otherwise
/// overrun its tar header (grown) or leave the archive short of it (shrunk, which the tar
/// writer does not notice).
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank while it was packaged; package again",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A reproducible tar+gzip layer of `files` (see [`write_layer`]), kept in memory.
pub(crate) fn tar_files(files: &[LayerFile]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for file in files {
        file.append_to(&mut builder)?;
    }
    builder
        .into_inner()
        .map_err(|e| Error::input("cannot archive the package files").with_source(e))
}

/// The gzipped tar of `files` streamed into a [`Spool`]: (layer, digest of the
/// uncompressed tar — the image config's diff_id). Fixed metadata (mtime 0, root-owned)
/// and a fixed gzip header, so the same files give the same bytes.
pub(crate) fn write_layer(files: &[LayerFile]) -> Result<((BlobData, String), String)> {
    let failed =
        |e: std::io::Error| Error::input("cannot archive the package files").with_source(e);
    let gz = gzip_writer(Spool::new());
    let mut builder = tar::Builder::new(Hashing::new(gz));
    for file in files {
        file.append_to(&mut builder)?;
    }
    let hashing = builder.into_inner().map_err(failed)?;
    let diff_id = format!(
        "sha256:{}",
        hex::encode(sha2::Digest::finalize(hashing.hasher))
    );
    let spool = hashing.inner.finish().map_err(failed)?;
    Ok((spool.finish()?, diff_id))
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hasher: sha2::Digest::new(),
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
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

/// Gzip with a zero mtime, so the same input gives the same bytes.
pub(crate) fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut enc = gzip_writer(Vec::new());
    enc.write_all(data)
        .and_then(|_| enc.finish())
        .map_err(|e| Error::input("cannot compress layer").with_source(e))
}

/// gzip's default level (what `tar | gzip` uses): level 9 took 1.5× as long on a large
/// payload for a few percent of size.
fn gzip_writer<W: Write>(out: W) -> flate2::write::GzEncoder<W> {
    flate2::GzBuilder::new()
        .mtime(0)
        .write(out, flate2::Compression::new(6))
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
pub fn extract_file(tar_gz: impl Read, name: &str) -> Result<Option<Vec<u8>>> {
    extract_file_within(tar_gz, name, MAX_UNPACKED_SIZE)
}

/// [`extract_file`], reading at most `max_unpacked` bytes of the decompressed tar stream:
/// a small gzip of gigabytes of zeros before the file ends as a truncated archive instead
/// of burning CPU on every read (the hub uses a tighter bound than the runner).
pub fn extract_file_within(
    tar_gz: impl Read,
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
pub fn extract_all(tar_gz: impl Read, dest: &Path) -> Result<()> {
    extract_within(tar_gz, dest, LIMITS)
}

fn too_large(what: String) -> Error {
    Error::input(format!("the package layer unpacks to {what}")).with_help(
        "refuse this package: eBPF packages are small, this one looks like an archive bomb",
    )
}

fn extract_within(tar_gz: impl Read, dest: &Path, limits: Limits) -> Result<()> {
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
        // Streamed to disk, at most one byte past either limit, to notice going over it.
        let cap = (limits.total - total).min(MAX_OBJECT_SIZE);
        let written = write_file(&target, entry.take(cap + 1), mode)?;
        total += written;
        if total > limits.total {
            return Err(too_large(format!(
                "more than {} bytes in all",
                limits.total
            )));
        }
        if written > MAX_OBJECT_SIZE {
            return Err(Error::input(format!(
                "{} is larger than {MAX_OBJECT_SIZE} bytes",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Writes `data` to a new file at `target`; returns the bytes written.
fn write_file(target: &Path, mut data: impl Read, mode: u32) -> Result<u64> {
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
    std::io::copy(&mut data, &mut file).map_err(|e| Error::io("write", target, e))
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
        let err = extract_file(&gz[..], "escape.o").unwrap_err();
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
        let err = extract_within(&gz[..], dir.path(), small).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Input);
        assert!(err.message.contains("bytes in all"), "{}", err.message);
        // The real cap: more entries than any package holds, however small.
        let many = zeros_layer(MAX_ENTRIES + 1, 0);
        let dir = tempfile::tempdir().unwrap();
        let err = extract_all(&many[..], dir.path()).unwrap_err();
        assert!(err.message.contains("entries"), "{}", err.message);
    }

    #[test]
    fn a_file_that_shrinks_while_packaged_is_an_error_not_a_short_archive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payload");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        let file = LayerFile::from_disk("payload", &path, 0o644).unwrap();
        std::fs::write(&path, vec![7u8; 100]).unwrap();
        let err = tar_files(&[file]).unwrap_err();
        assert!(err.message.contains("shrank"), "{}", err.message);
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
        let err = extract_all(&gz[..], dir.path()).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity);
        assert!(!dir.path().join("bin/demo").exists());
    }
}
