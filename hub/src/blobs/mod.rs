//! Blob bytes. Uploads in progress live in the database ([`crate::uploads`]); the final
//! PUT assembles and hashes them in a scratch file under `DIR/uploads/`, and only a
//! matching upload is committed here, so a truncated or corrupt upload never shows up. The store is either files under
//! `DIR/blobs/sha256/<2 hex>/<hex>` (the embedded default, committed by a rename) or an
//! upstream OCI registry ([`upstream`], `--blob-store registry+http://HOST:PORT/REPO`), whose
//! own storage drivers (S3, GCS, Azure, Swift, …) then hold the bytes.

mod upstream;

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Bytes read per step when a blob streams from or to a file: each read is a trip to tokio's
/// blocking pool, and the default 4 KiB made a 50 MB pull take 12 800 of them.
pub(crate) const STREAM_BLOCK: usize = 256 << 10;

/// Why writing or finishing an upload failed.
#[derive(Debug)]
pub enum UploadError {
    /// The client's body ended early or broke off.
    Body(String),
    /// The content does not hash to the digest the client named.
    DigestMismatch {
        expected: String,
        actual: String,
    },
    /// The upload would exceed the per-blob size limit.
    TooLarge(u64),
    Io(std::io::Error),
}

impl From<std::io::Error> for UploadError {
    fn from(e: std::io::Error) -> Self {
        UploadError::Io(e)
    }
}

#[derive(Clone)]
pub struct BlobStore {
    root: PathBuf,
    /// Largest blob accepted, in bytes.
    pub max_blob: u64,
    /// Where verified blobs go; None keeps them as files under `root`.
    upstream: Option<upstream::Upstream>,
}

/// Where `--blob-store` puts verified blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `DATA/blobs/…` (the default, also spelled `file`).
    Files,
    /// `registry+http(s)://[USER:PASS@]HOST[:PORT]/REPO`: one repository of an OCI
    /// registry holds every blob, content-addressed; the hub's database knows which of
    /// its own repositories reference them.
    Registry(upstream::UpstreamRepo),
}

impl Location {
    pub fn parse(spec: Option<&str>) -> ebpf_package::Result<Location> {
        match spec {
            None | Some("") | Some("file") => Ok(Location::Files),
            Some(s) => upstream::UpstreamRepo::parse(s).map(Location::Registry),
        }
    }
}

/// A random identifier (128 bits, hex) for uploads and tokens.
pub fn random_id() -> String {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).expect("the OS random source");
    hex::encode(buf)
}

impl BlobStore {
    pub fn new(data: &Path, max_blob: u64, location: &Location) -> std::io::Result<BlobStore> {
        std::fs::create_dir_all(data.join("uploads"))?;
        let upstream = match location {
            Location::Files => {
                std::fs::create_dir_all(data.join("blobs/sha256"))?;
                None
            }
            Location::Registry(target) => Some(upstream::Upstream::new(target.clone())?),
        };
        Ok(BlobStore {
            root: data.to_path_buf(),
            max_blob,
            upstream,
        })
    }

    /// Where verified blobs go, for the startup line.
    pub fn label(&self) -> String {
        match &self.upstream {
            Some(u) => u.label(),
            None => self.root.join("blobs").display().to_string(),
        }
    }

    /// Checks that the store answers (the upstream registry is reachable and accepts us).
    pub async fn check(&self) -> std::io::Result<()> {
        match &self.upstream {
            Some(u) => u.check().await,
            None => Ok(()),
        }
    }

    /// Where a verified blob lives in the file store. `digest` must have passed
    /// [`crate::oci::is_digest`].
    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = &digest["sha256:".len()..];
        self.root.join("blobs/sha256").join(&hex[..2]).join(hex)
    }

    /// Where the final PUT of upload `id` assembles its bytes ([`crate::uploads`]).
    pub fn scratch_path(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    /// Commits the verified content in `path` (its digest checked by the caller) as blob
    /// `digest`: moved into the file store, or sent to the upstream registry.
    pub async fn commit(&self, path: &Path, digest: &str, size: u64) -> Result<(), UploadError> {
        if size > self.max_blob {
            return Err(UploadError::TooLarge(self.max_blob));
        }
        if let Some(upstream) = &self.upstream {
            upstream.put(digest, path, size).await?;
            return Ok(());
        }
        let target = self.blob_path(digest);
        tokio::fs::create_dir_all(target.parent().expect("blob dir")).await?;
        // Same digest, same bytes: if another upload won the race, either copy is right.
        tokio::fs::rename(path, &target).await?;
        Ok(())
    }

    /// `len` bytes of a verified blob from `start`, streamed.
    pub async fn read_range(
        &self,
        digest: &str,
        start: u64,
        len: u64,
    ) -> std::io::Result<axum::body::Body> {
        if let Some(upstream) = &self.upstream {
            return upstream.get_range(digest, start, len).await;
        }
        let mut file = tokio::fs::File::open(self.blob_path(digest)).await?;
        file.seek(std::io::SeekFrom::Start(start)).await?;
        Ok(axum::body::Body::from_stream(
            tokio_util::io::ReaderStream::with_capacity(file.take(len), STREAM_BLOCK),
        ))
    }

    /// Stores `bytes` the way an upload would (hashed, then moved into place); returns
    /// their digest and size. For what the hub makes itself (objects taken out of layers).
    pub async fn store_bytes(&self, bytes: &[u8]) -> Result<(String, u64), UploadError> {
        let digest = ebpf_package::digest::sha256(bytes);
        let path = self.scratch_path(&random_id());
        let size = bytes.len() as u64;
        let written = async {
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            tokio::fs::write(&path, bytes).await
        };
        if let Err(e) = written.await {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e.into());
        }
        let committed = self.commit(&path, &digest, size).await;
        // Moved into place, or (upstream store, or an error) left behind: never kept.
        let _ = tokio::fs::remove_file(&path).await;
        committed?;
        Ok((digest, size))
    }

    /// Deletes a verified blob that nothing references any more (the garbage collector).
    /// In an upstream registry the blob stays: its own collector owns that storage.
    pub async fn remove(&self, digest: &str) -> std::io::Result<()> {
        if self.upstream.is_some() {
            return Ok(());
        }
        match tokio::fs::remove_file(self.blob_path(digest)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// A whole verified blob in memory (configs, and layers the indexer reads).
    pub async fn read(&self, digest: &str) -> std::io::Result<Vec<u8>> {
        match &self.upstream {
            Some(upstream) => upstream.get(digest).await,
            None => tokio::fs::read(self.blob_path(digest)).await,
        }
    }
}
