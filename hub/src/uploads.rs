//! Upload sessions kept in the shared stores, so hub processes behind a load balancer stay
//! stateless: the session is a row of `uploads` and its bytes are pieces of at most
//! [`PIECE`] bytes in `upload_chunks`, both in the database every replica uses. A chunked
//! upload may start on one replica, take its PATCHes on others and finish on a third.
//!
//! Only the final PUT touches the local disk: it streams the pieces into a scratch file
//! under `DATA/uploads/` while hashing them, and only content matching the digest is
//! committed to the blob store (files, or the upstream registry whose storage drivers put
//! it in S3, GCS or Azure). The scratch file is removed whatever happens.

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::blobs::{BlobStore, UploadError};
use crate::db::Db;
use crate::error::HubResult;

/// Largest piece of an upload kept in one database row.
pub const PIECE: usize = 1024 * 1024;

/// Opens session `id` for repository `repo`.
pub async fn start(db: &Db, id: &str, repo: &str) -> HubResult<()> {
    db.add_upload(id, repo).await
}

/// Bytes received so far.
pub async fn size(db: &Db, id: &str) -> HubResult<u64> {
    Ok(db.upload_size(id).await?.unwrap_or(0) as u64)
}

/// Streams `body` onto the end of upload `id` in pieces; returns the new size. A second
/// writer appending at the same offset (two replicas given the same chunk) fails instead
/// of interleaving.
pub async fn append(
    db: &Db,
    max_blob: u64,
    id: &str,
    body: axum::body::Body,
) -> Result<u64, UploadError> {
    let mut size = size(db, id).await.map_err(store_error)?;
    let mut piece = Vec::with_capacity(PIECE.min(64 * 1024));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let mut chunk = &chunk.map_err(|e| UploadError::Body(e.to_string()))?[..];
        if size + (piece.len() + chunk.len()) as u64 > max_blob {
            return Err(UploadError::TooLarge(max_blob));
        }
        while !chunk.is_empty() {
            let take = chunk.len().min(PIECE - piece.len());
            piece.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if piece.len() == PIECE {
                size = put_piece(db, id, size, std::mem::take(&mut piece)).await?;
            }
        }
    }
    if !piece.is_empty() {
        size = put_piece(db, id, size, piece).await?;
    }
    Ok(size)
}

async fn put_piece(db: &Db, id: &str, offset: u64, piece: Vec<u8>) -> Result<u64, UploadError> {
    let end = offset + piece.len() as u64;
    if !db
        .add_upload_piece(id, offset as i64, piece)
        .await
        .map_err(store_error)?
    {
        return Err(UploadError::Body(format!(
            "another request wrote to this upload at byte {offset} at the same time"
        )));
    }
    Ok(end)
}

fn store_error(e: crate::error::HubError) -> UploadError {
    UploadError::Io(std::io::Error::other(e.to_string()))
}

/// Assembles upload `id`, checks it hashes to `digest`, and commits it to the blob store;
/// returns its size. The session's rows are left for the caller to remove.
pub async fn finish(
    db: &Db,
    blobs: &BlobStore,
    id: &str,
    digest: &str,
) -> Result<u64, UploadError> {
    let scratch = blobs.scratch_path(id);
    let assembled = assemble(db, id, &scratch).await;
    let result = match assembled {
        Ok((actual, _)) if actual != digest => Err(UploadError::DigestMismatch {
            expected: digest.to_string(),
            actual,
        }),
        Ok((_, size)) => blobs.commit(&scratch, digest, size).await.map(|_| size),
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_file(&scratch).await;
    result
}

/// Writes the pieces of `id` in order into `path`; returns their digest and size.
async fn assemble(db: &Db, id: &str, path: &std::path::Path) -> Result<(String, u64), UploadError> {
    let mut file = tokio::fs::File::create(path).await?;
    let mut hasher = Sha256::new();
    let mut offset = 0u64;
    while let Some(piece) = db
        .upload_piece(id, offset as i64)
        .await
        .map_err(store_error)?
    {
        if piece.is_empty() {
            break;
        }
        hasher.update(&piece);
        file.write_all(&piece).await?;
        offset += piece.len() as u64;
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), offset))
}

/// Deletes session `id` and its bytes (finished, cancelled, failed or abandoned).
pub async fn discard(db: &Db, id: &str) -> HubResult<()> {
    db.remove_upload(id).await
}
