//! Blob bytes on the filesystem: `DIR/blobs/sha256/<2 hex>/<hex>` for verified content, and
//! `DIR/uploads/<id>` for uploads in progress. A blob becomes visible only by a rename after
//! its digest was checked, so a truncated or corrupt upload never shows up.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
}

/// `sha256:<64 lowercase hex>`: the only algorithm this hub stores.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A random identifier (128 bits, hex) for uploads and tokens.
pub fn random_id() -> String {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).expect("the OS random source");
    hex::encode(buf)
}

impl BlobStore {
    pub fn new(data: &Path, max_blob: u64) -> std::io::Result<BlobStore> {
        std::fs::create_dir_all(data.join("blobs/sha256"))?;
        std::fs::create_dir_all(data.join("uploads"))?;
        Ok(BlobStore {
            root: data.to_path_buf(),
            max_blob,
        })
    }

    /// Where a verified blob lives. `digest` must have passed [`is_sha256_digest`].
    pub fn blob_path(&self, digest: &str) -> PathBuf {
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

    pub async fn open(&self, digest: &str) -> std::io::Result<tokio::fs::File> {
        tokio::fs::File::open(self.blob_path(digest)).await
    }

    pub async fn read(&self, digest: &str) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.blob_path(digest)).await
    }
}

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
