//! Blob bytes. Uploads in progress live in the database ([`crate::uploads`]); the final
//! PUT assembles and hashes them in a scratch file under `DIR/uploads/`, and only a
//! matching upload is committed here, so a truncated or corrupt upload never shows up. The store is either files under
//! `DIR/blobs/sha256/<2 hex>/<hex>` (the embedded default, committed by a rename) or an
//! upstream OCI registry ([`upstream`], `--blob-store registry+http://HOST:PORT/REPO`), whose
//! own storage drivers (S3, GCS, Azure, Swift, …) then hold the bytes.

mod upstream;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes read per step when a blob streams from or to a file: each read is a trip to tokio's
/// blocking pool, and the default 4 KiB made a 50 MB pull take 12 800 of them.
pub(crate) const STREAM_BLOCK: usize = 256 << 10;

/// `len` bytes of `file` from `start` (where its cursor stands) as a response body. Each block
/// is read into a buffer of its own on the blocking pool, one copy where `tokio::fs::File`
/// makes two, and the next block is read while this one is sent: at most two blocks are held
/// per download, and no thread waits on a slow client.
fn file_body(file: std::fs::File, start: u64, len: u64) -> axum::body::Body {
    let file = Arc::new(file);
    let end = start + len;
    let first = (len > 0).then(|| (read_block(file.clone(), start, end), start));
    let blocks = futures_util::stream::unfold(first, move |state| {
        let file = file.clone();
        async move {
            let (pending, offset) = state?;
            let block = match pending.await.map_err(std::io::Error::other) {
                Ok(Ok(block)) => block,
                Ok(Err(e)) | Err(e) => return Some((Err(e), None)),
            };
            let next = offset + block.len() as u64;
            let following = (next < end).then(|| (read_block(file, next, end), next));
            Some((Ok(block), following))
        }
    });
    axum::body::Body::from_stream(blocks)
}

/// The block at `offset` (the file's cursor: blocks are read one after another), up to `end`.
fn read_block(
    file: Arc<std::fs::File>,
    offset: u64,
    end: u64,
) -> tokio::task::JoinHandle<std::io::Result<axum::body::Bytes>> {
    let want = (end - offset).min(STREAM_BLOCK as u64);
    tokio::task::spawn_blocking(move || {
        let mut block = Vec::with_capacity(want as usize);
        std::io::Read::take(&*file, want).read_to_end(&mut block)?;
        if (block.len() as u64) < want {
            // The database says the blob is longer than its file: never send a short body
            // under a longer Content-Length.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "blob file ends at {} of {end} bytes",
                    offset + block.len() as u64
                ),
            ));
        }
        Ok(block.into())
    })
}

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
        let path = self.blob_path(digest);
        let file = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(path)?;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(file_body(file, start, len))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `len` bytes that differ from block to block, and its path.
    fn blob_file(len: usize) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("blob");
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        (dir, path, bytes)
    }

    /// The body for `len` bytes from `start`; more blocks than the length needs fail the test
    /// rather than hang it (a body that kept reading empty blocks at the file's end never ends).
    async fn body_of(path: &Path, start: u64, len: u64) -> Result<Vec<u8>, axum::Error> {
        use futures_util::StreamExt;
        let mut file = std::fs::File::open(path).expect("open");
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start)).expect("seek");
        let mut blocks = file_body(file, start, len).into_data_stream();
        let (mut bytes, mut count) = (Vec::new(), 0);
        while let Some(block) = blocks.next().await {
            count += 1;
            assert!(
                count <= len as usize / STREAM_BLOCK + 2,
                "the body never ends"
            );
            bytes.extend_from_slice(&block?);
        }
        Ok(bytes)
    }

    #[tokio::test]
    async fn a_range_across_block_edges_reads_back_exactly() {
        let total = 2 * STREAM_BLOCK + 1000;
        let (_dir, path, bytes) = blob_file(total);
        let whole = body_of(&path, 0, total as u64).await.expect("whole");
        assert!(whole == bytes, "the whole blob differs");
        // From inside the first block to inside the last, and a last block of one byte.
        let (start, end) = (STREAM_BLOCK - 7, 2 * STREAM_BLOCK + 9);
        let part = body_of(&path, start as u64, (end - start) as u64).await;
        assert!(
            part.expect("range") == bytes[start..end],
            "the range differs"
        );
        let tail = body_of(&path, (total - 1) as u64, 1).await.expect("tail");
        assert_eq!(tail, [bytes[total - 1]]);
        assert!(body_of(&path, 5, 0).await.expect("empty").is_empty());
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_record_fails_the_body() {
        let (_dir, path, _) = blob_file(STREAM_BLOCK + 10);
        // The record says one byte more than the file holds: the body errors, never ends short.
        let err = body_of(&path, 0, STREAM_BLOCK as u64 + 11)
            .await
            .expect_err("short");
        assert!(err.to_string().contains("ends at"), "{err}");
    }
}
