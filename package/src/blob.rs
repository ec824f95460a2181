//! A blob with its descriptor, and the manifest parser every reader shares: the smallest
//! pieces of an OCI image, used by [`crate::package`] and by [`crate::formats`] alike.

use oci_client::manifest::{OciDescriptor, OciImageManifest};

use crate::{digest, Error, Result};

/// A blob with its descriptor.
#[derive(Debug, Clone)]
pub struct Blob {
    pub descriptor: OciDescriptor,
    pub data: Vec<u8>,
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
            data,
        }
    }

    /// Checks size and digest against the descriptor.
    pub fn verify(&self) -> Result<()> {
        if self.descriptor.size != self.data.len() as i64 {
            return Err(Error::integrity(format!(
                "size mismatch for blob {}: expected {} bytes, got {}",
                self.descriptor.digest,
                self.descriptor.size,
                self.data.len()
            )));
        }
        digest::verify(&self.descriptor.digest, &self.data, "blob")
    }
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
