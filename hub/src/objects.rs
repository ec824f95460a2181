//! A package's BPF object, taken out of its layer once (at push, or at the first download
//! of a version pushed before this existed) and kept as a blob of its own, so the download
//! page serves bytes instead of decompressing a layer per request. The extraction reads
//! at most [`MAX_UNPACKED`] bytes of decompressed layer: a gzip bomb ends as a refusal.

use crate::error::{HubError, HubResult};
use crate::AppState;

/// Most decompressed bytes read from a layer to find its object.
pub const MAX_UNPACKED: u64 = 64 * 1024 * 1024;

/// The object `name` in `layer`: the layer itself when it is an ELF (Inspektor Gadget and
/// bumblebee keep the object as a layer), else the file at the root of a tar+gzip layer.
pub fn object_of_layer(layer: &[u8], name: &str) -> ebpf_package::Result<Vec<u8>> {
    if layer.starts_with(b"\x7fELF") {
        return Ok(layer.to_vec());
    }
    ebpf_package::layer::extract_file_within(layer, name, MAX_UNPACKED)?.ok_or_else(|| {
        ebpf_package::Error::input(format!("the program layer does not contain {name}"))
    })
}

/// The digest of the blob holding object `name` of `layer_digest`, extracting and storing
/// it on first use.
pub async fn ensure(app: &AppState, layer_digest: &str, name: &str) -> HubResult<String> {
    if let Some(digest) = app.db.layer_object(layer_digest, name).await? {
        return Ok(digest);
    }
    let layer = app.blobs.read(layer_digest).await?;
    let object = name.to_string();
    let bytes = tokio::task::spawn_blocking(move || object_of_layer(&layer, &object))
        .await
        .map_err(HubError::internal)??;
    let (digest, size) = app
        .blobs
        .store_bytes(&bytes)
        .await
        .map_err(|e| HubError::internal(format!("cannot store the object: {e:?}")))?;
    app.db
        .add_layer_object(layer_digest, name, &digest, size as i64)
        .await?;
    Ok(digest)
}
