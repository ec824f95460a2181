//! Blob bytes. Uploads in progress are files under `DIR/uploads/<id>`; when the final PUT
//! comes, the file is hashed and only a matching upload is committed to the blob store, so a
//! truncated or corrupt upload never shows up. The store is either files under
//! `DIR/blobs/sha256/<2 hex>/<hex>` (the embedded default, committed by a rename) or an
//! upstream OCI registry ([`upstream`], `--blob-store registry+http://HOST:PORT/REPO`), whose
//! own storage drivers (S3, GCS, Azure, Swift, …) then hold the bytes.

mod upstream;

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

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

    fn upload_path(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    pub async fn start_upload(&self, id: &str) -> std::io::Result<()> {
        tokio::fs::File::create(self.upload_path(id))
            .await
            .map(|_| ())
    }

    /// Bytes received so far for upload `id`.
    pub async fn upload_size(&self, id: &str) -> std::io::Result<u64> {
        Ok(tokio::fs::metadata(self.upload_path(id)).await?.len())
    }

    /// Streams `body` onto the end of upload `id`; returns the new size.
    pub async fn append(&self, id: &str, body: axum::body::Body) -> Result<u64, UploadError> {
        let path = self.upload_path(id);
        let mut file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .await?;
        let mut size = file.metadata().await?.len();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if size > self.max_blob {
                return Err(UploadError::TooLarge(self.max_blob));
            }
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        Ok(size)
    }

    /// Hashes upload `id`; when it matches `digest`, moves it into place and returns its
    /// size. On a mismatch the upload is deleted.
    pub async fn finish(&self, id: &str, digest: &str) -> Result<u64, UploadError> {
        let path = self.upload_path(id);
        let (actual, size) = hash_file(&path).await?;
        if actual != digest {
            self.discard(id).await;
            return Err(UploadError::DigestMismatch {
                expected: digest.to_string(),
                actual,
            });
        }
        if let Some(upstream) = &self.upstream {
            let sent = upstream.put(digest, &path, size).await;
            self.discard(id).await;
            sent?;
            return Ok(size);
        }
        let target = self.blob_path(digest);
        tokio::fs::create_dir_all(target.parent().expect("blob dir")).await?;
        // Same digest, same bytes: if another upload won the race, either copy is right.
        tokio::fs::rename(&path, &target).await?;
        Ok(size)
    }

    /// Removes an upload's bytes (abandoned, cancelled, or failed).
    pub async fn discard(&self, id: &str) {
        let _ = tokio::fs::remove_file(self.upload_path(id)).await;
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
            tokio_util::io::ReaderStream::new(file.take(len)),
        ))
    }

    /// Stores `bytes` the way an upload would (hashed, then moved into place); returns
    /// their digest and size. For what the hub makes itself (objects taken out of layers).
    pub async fn store_bytes(&self, bytes: &[u8]) -> Result<(String, u64), UploadError> {
        let id = random_id();
        let digest = ebpf_package::digest::sha256(bytes);
        self.start_upload(&id).await?;
        if let Err(e) = tokio::fs::write(self.upload_path(&id), bytes).await {
            self.discard(&id).await;
            return Err(e.into());
        }
        let size = self.finish(&id, &digest).await?;
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

/// The digest and size of a file, hashed as it streams (`ebpf_package::digest` hashes
/// bytes in memory; an upload may be hundreds of MiB).
async fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), size))
}
