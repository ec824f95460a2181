//! A blob with its descriptor, and the manifest parser every reader shares: the smallest
//! pieces of an OCI image, used by [`crate::package`] and by [`crate::formats`] alike.
//!
//! A blob's bytes are in memory when small (configs, manifests, objects) and in a file when
//! large ([`Spool`]), so packaging, pushing and pulling a large package streams through
//! disk with bounded memory instead of holding each layer (and copies of it) in memory.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_client::manifest::{OciDescriptor, OciImageManifest};
use sha2::{Digest as _, Sha256};

use crate::{digest, Error, Result};

/// A blob with its descriptor.
#[derive(Debug, Clone)]
pub struct Blob {
    pub descriptor: OciDescriptor,
    pub data: BlobData,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Blob {
        Blob {
            descriptor: OciDescriptor {
                media_type: media_type.to_string(),
                digest: digest::sha256(&data),
                size: data.len() as i64,
                ..Default::default()
            },
            data: BlobData::Memory(data),
        }
    }

    /// A blob whose bytes were hashed while they were written ([`Spool::finish`]).
    pub fn spooled(media_type: &str, (data, digest): (BlobData, String)) -> Blob {
        Blob {
            descriptor: OciDescriptor {
                media_type: media_type.to_string(),
                digest,
                size: data.len() as i64,
                ..Default::default()
            },
            data,
        }
    }

    /// Checks size and digest against the descriptor (streaming, for a file).
    pub fn verify(&self) -> Result<()> {
        if self.descriptor.size != self.data.len() as i64 {
            return Err(Error::integrity(format!(
                "size mismatch for blob {}: expected {} bytes, got {}",
                self.descriptor.digest,
                self.descriptor.size,
                self.data.len()
            )));
        }
        match &self.data {
            BlobData::Memory(bytes) => digest::verify(&self.descriptor.digest, bytes, "blob"),
            // Hashed when the file was written or checked (not read a second time), or
            // to be checked by its readers ([`BlobData::file_checked_on_use`]).
            BlobData::File(file) => {
                digest::verify_digest(&self.descriptor.digest, &file.digest, "blob")
            }
        }
    }
}

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
pub enum BlobData {
    Memory(Vec<u8>),
    /// A file nobody else writes: a spooled temp file, or a content-addressed layout blob.
    File(Arc<BlobFile>),
}

/// A blob in a file; a spooled one is deleted with its last handle.
#[derive(Debug)]
pub struct BlobFile {
    path: PathBuf,
    len: u64,
    /// The digest of the content: computed as it was written or when it was verified, or,
    /// when `checked` is false, the one it must have, checked by whoever reads it.
    digest: String,
    checked: bool,
    _temp: Option<tempfile::TempPath>,
}

impl BlobData {
    /// A file holding `len` bytes whose content was just hashed to `digest`, kept where it
    /// is (a layout's blob).
    pub fn file(path: PathBuf, len: u64, digest: String) -> BlobData {
        BlobData::File(Arc::new(BlobFile {
            path,
            len,
            digest,
            checked: true,
            _temp: None,
        }))
    }

    /// A file of `len` bytes that must hash to `digest`, not read yet: every reader checks
    /// the bytes as it reads them ([`BlobData::bytes`], [`BlobData::reader`], an upload
    /// through [`StreamCheck`]), so a large blob sent once is read once.
    pub fn file_checked_on_use(path: PathBuf, len: u64, digest: String) -> BlobData {
        BlobData::File(Arc::new(BlobFile {
            path,
            len,
            digest,
            checked: false,
            _temp: None,
        }))
    }

    /// The digest whoever reads the file directly ([`BlobData::path`]) must check its bytes
    /// against: `Some` only for a file nobody has hashed yet.
    pub fn unchecked_digest(&self) -> Option<&str> {
        match self {
            BlobData::File(f) if !f.checked => Some(&f.digest),
            _ => None,
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            BlobData::Memory(b) => b.len() as u64,
            BlobData::File(f) => f.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All the bytes: borrowed when in memory, read when in a file. For blobs a reader
    /// needs whole (configs, objects, foreign formats), never for a package's payload.
    pub fn bytes(&self) -> Result<Cow<'_, [u8]>> {
        let f = match self {
            BlobData::Memory(b) => return Ok(Cow::Borrowed(b)),
            BlobData::File(f) => f,
        };
        let mut bytes = Vec::with_capacity(usize::try_from(f.len).unwrap_or(0));
        self.reader()?
            .read_to_end(&mut bytes)
            .map_err(|e| read_error(&f.path, e))?;
        Ok(Cow::Owned(bytes))
    }

    /// The bytes as a stream; one of a file not hashed yet fails at its end (before the
    /// reader says it is done) unless the bytes are what its digest promised.
    pub fn reader(&self) -> Result<Box<dyn Read + Send + '_>> {
        let f = match self {
            BlobData::Memory(b) => return Ok(Box::new(b.as_slice())),
            BlobData::File(f) => f,
        };
        let file = std::fs::File::open(&f.path).map_err(|e| Error::io("read", &f.path, e))?;
        let file = std::io::BufReader::with_capacity(BUF, file);
        if f.checked {
            return Ok(Box::new(file));
        }
        let check = StreamCheck::new(&f.digest, f.len, true);
        Ok(Box::new(CheckedReader { inner: file, check }))
    }

    /// The file holding the bytes, when they are in one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            BlobData::Memory(_) => None,
            BlobData::File(f) => Some(&f.path),
        }
    }
}

impl From<Vec<u8>> for BlobData {
    fn from(bytes: Vec<u8>) -> BlobData {
        BlobData::Memory(bytes)
    }
}

/// An Integrity error for a blob file whose bytes failed [`StreamCheck`], else an I/O one.
fn read_error(path: &Path, e: std::io::Error) -> Error {
    if e.kind() != std::io::ErrorKind::InvalidData {
        return Error::io("read", path, e);
    }
    Error::integrity(format!("{}: {e}", path.display())).with_help(DAMAGED_HELP)
}

/// What to do about a blob file that fails its check.
pub(crate) const DAMAGED_HELP: &str = "the file was changed or damaged after it was written; write it again (`cargo ebpf package`, or pull the package again)";

/// Checks a blob's bytes as they pass, for whoever streams them: never more than its size,
/// and at the end exactly its size and (when asked to hash) its digest.
#[derive(Clone)]
pub struct StreamCheck {
    expected: String,
    len: u64,
    seen: u64,
    hasher: Option<Sha256>,
}

impl StreamCheck {
    /// A check for `len` bytes with digest `expected`; `hash` false checks the size only
    /// (for bytes already hashed when they were written).
    pub fn new(expected: &str, len: u64, hash: bool) -> StreamCheck {
        StreamCheck {
            expected: expected.to_string(),
            len,
            seen: 0,
            hasher: hash.then(Sha256::new),
        }
    }

    /// Takes the next block (empty at the end): an error once there are more bytes than
    /// the size, and, on the block that completes them or at the end, unless they are all
    /// there and hash to the digest, so the last block is never handed on when they fail.
    pub fn pass(&mut self, block: &[u8]) -> std::io::Result<()> {
        self.update(block)?;
        if block.is_empty() || self.is_complete() {
            self.finish()?;
        }
        Ok(())
    }

    /// Takes the next bytes: an error once there are more than the size.
    fn update(&mut self, block: &[u8]) -> std::io::Result<()> {
        self.seen += block.len() as u64;
        if self.seen > self.len {
            return Err(invalid(format!(
                "blob {} is longer than its {} bytes",
                self.expected, self.len
            )));
        }
        if let Some(h) = &mut self.hasher {
            h.update(block);
        }
        Ok(())
    }

    /// True once every byte has passed.
    fn is_complete(&self) -> bool {
        self.seen == self.len
    }

    /// The end of the bytes: an error unless they were all there and hash to the digest.
    fn finish(&mut self) -> std::io::Result<()> {
        if self.seen != self.len {
            return Err(invalid(format!(
                "blob {} ends after {} of its {} bytes",
                self.expected, self.seen, self.len
            )));
        }
        let Some(hasher) = self.hasher.take() else {
            return Ok(());
        };
        let actual = digest::of(hasher);
        if actual != self.expected {
            return Err(invalid(format!(
                "blob {} does not match its digest (its bytes hash to {actual})",
                self.expected
            )));
        }
        Ok(())
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// A reader that fails instead of ending when its bytes fail their [`StreamCheck`].
struct CheckedReader<R> {
    inner: R,
    check: StreamCheck,
}

impl<R: Read> Read for CheckedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.check.pass(&buf[..n])?;
        Ok(n)
    }
}

/// Buffer size for streaming blobs through files.
const BUF: usize = 128 << 10;
/// Bytes a [`Spool`] keeps in memory before it moves to a temp file.
pub const SPOOL_IN_MEMORY: usize = 4 << 20;

/// A writer that hashes what it is given and keeps it in memory until it passes
/// [`SPOOL_IN_MEMORY`], then in a temp file: how layers are built and downloaded.
pub struct Spool {
    hasher: Sha256,
    memory: Vec<u8>,
    file: Option<(std::io::BufWriter<std::fs::File>, tempfile::TempPath)>,
    len: u64,
}

impl Default for Spool {
    fn default() -> Spool {
        Spool::new()
    }
}

impl Spool {
    pub fn new() -> Spool {
        Spool {
            hasher: Sha256::new(),
            memory: Vec::new(),
            file: None,
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes and their digest.
    pub fn finish(self) -> Result<(BlobData, String)> {
        let digest = digest::of(self.hasher);
        let Some((writer, path)) = self.file else {
            return Ok((BlobData::Memory(self.memory), digest));
        };
        writer
            .into_inner()
            .map_err(|e| e.into_error())
            .map_err(|e| Error::io("write", &path, e))?;
        let data = BlobData::File(Arc::new(BlobFile {
            path: path.to_path_buf(),
            len: self.len,
            digest: digest.clone(),
            checked: true,
            _temp: Some(path),
        }));
        Ok((data, digest))
    }

    fn move_to_file(&mut self) -> std::io::Result<()> {
        let temp = tempfile::NamedTempFile::new()?;
        let (file, path) = temp.into_parts();
        let mut writer = std::io::BufWriter::with_capacity(BUF, file);
        writer.write_all(&self.memory)?;
        self.memory = Vec::new();
        self.file = Some((writer, path));
        Ok(())
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        if self.file.is_none() && self.memory.len() + buf.len() > SPOOL_IN_MEMORY {
            self.move_to_file()?;
        }
        match &mut self.file {
            Some((writer, _)) => writer.write_all(buf)?,
            None => self.memory.extend_from_slice(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some((writer, _)) => writer.flush(),
            None => Ok(()),
        }
    }
}

/// The digest of a file's content, read in blocks.
pub fn hash_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("read", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(digest::of(hasher))
}

/// Parses and sanity-checks a single-image manifest.
pub fn parse_manifest(bytes: &[u8]) -> Result<OciImageManifest> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::input("the manifest is not valid JSON").with_source(e))?;
    if value.get("manifests").is_some() {
        return Err(Error::input(
            "expected an image manifest but got an image index",
        ));
    }
    let manifest: OciImageManifest = serde_json::from_value(value).map_err(|e| {
        Error::input(format!(
            "the manifest is not a valid OCI image manifest: {e}"
        ))
    })?;
    if manifest.schema_version != 2 {
        return Err(Error::input(format!(
            "unsupported manifest schemaVersion {}",
            manifest.schema_version
        )));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(data: &[u8], hash: bool) -> StreamCheck {
        StreamCheck::new(&digest::sha256(data), data.len() as u64, hash)
    }

    #[test]
    fn a_stream_check_takes_the_promised_bytes_in_any_blocks() {
        let data = b"hello, blob".as_slice();
        let mut c = check(data, true);
        c.update(&data[..4]).unwrap();
        assert!(!c.is_complete());
        c.update(&data[4..]).unwrap();
        assert!(c.is_complete());
        c.finish().unwrap();
    }

    #[test]
    fn a_stream_check_refuses_other_bytes_and_other_sizes() {
        let data = b"hello, blob".as_slice();
        let mut c = check(data, true);
        c.update(b"hello, blub").unwrap();
        let e = c.finish().unwrap_err();
        assert!(e.to_string().contains("does not match its digest"), "{e}");

        let mut c = check(data, true);
        let e = c.update(b"hello, blob!").unwrap_err();
        assert!(e.to_string().contains("longer than its 11 bytes"), "{e}");

        let mut c = check(data, true);
        c.update(b"hello").unwrap();
        let e = c.finish().unwrap_err();
        assert!(
            e.to_string().contains("ends after 5 of its 11 bytes"),
            "{e}"
        );

        // Size only, for bytes hashed when they were written: the size still counts.
        let mut c = check(data, false);
        c.update(b"hello").unwrap();
        assert!(c.finish().is_err());
    }
}
