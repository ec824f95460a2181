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
            // Hashed when the file was written or checked: not read a second time.
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
    /// The digest of the content, computed as it was written or when it was verified.
    digest: String,
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
            _temp: None,
        }))
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
        match self {
            BlobData::Memory(b) => Ok(Cow::Borrowed(b)),
            BlobData::File(f) => std::fs::read(&f.path)
                .map(Cow::Owned)
                .map_err(|e| Error::io("read", &f.path, e)),
        }
    }

    /// The bytes as a stream.
    pub fn reader(&self) -> Result<Box<dyn Read + Send + '_>> {
        match self {
            BlobData::Memory(b) => Ok(Box::new(b.as_slice())),
            BlobData::File(f) => std::fs::File::open(&f.path)
                .map(|file| Box::new(std::io::BufReader::with_capacity(BUF, file)) as Box<_>)
                .map_err(|e| Error::io("read", &f.path, e)),
        }
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
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
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
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
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
