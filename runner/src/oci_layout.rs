//! OCI image layout directories: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
//! Written by `cargo ebpf package`, used as the local store, readable by skopeo (`oci:DIR:TAG`).
//! STUB: contract only; implemented by the registry/store work.

use std::path::{Path, PathBuf};

use oci_client::manifest::{ImageIndexEntry, OciImageIndex};

use crate::Result;

pub struct OciLayout {
    root: PathBuf,
}

impl OciLayout {
    /// Opens `root` as a layout, creating the directory, `oci-layout` and an empty
    /// `index.json` if missing. Idempotent.
    pub fn create(root: &Path) -> Result<OciLayout> {
        let _ = root;
        todo!()
    }
    /// Opens an existing layout; a clear Input error if `root` is not one.
    pub fn open(root: &Path) -> Result<OciLayout> {
        let _ = root;
        todo!()
    }
    /// Whether `path` looks like an OCI layout directory.
    pub fn is_layout(path: &Path) -> bool {
        path.join(crate::format::OCI_LAYOUT_FILE).is_file()
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Stores a blob atomically (temp file + fsync + rename); returns its digest.
    pub fn put_blob(&self, data: &[u8]) -> Result<String> {
        let _ = data;
        todo!()
    }
    /// Reads a blob and verifies its digest (Integrity error on mismatch).
    pub fn get_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let _ = digest;
        todo!()
    }
    pub fn has_blob(&self, digest: &str) -> bool {
        let _ = digest;
        todo!()
    }
    pub fn index(&self) -> Result<OciImageIndex> {
        todo!()
    }
    /// Points `ref_name` (stored as the `org.opencontainers.image.ref.name` annotation) at
    /// `entry`, replacing an entry with the same name. index.json is rewritten atomically,
    /// under a lock so concurrent writers do not lose updates.
    pub fn set_ref(&self, ref_name: &str, entry: ImageIndexEntry) -> Result<()> {
        let _ = (ref_name, entry);
        todo!()
    }
    /// The entry named `ref_name`; with `None`, the only entry (error if there are several).
    pub fn find_ref(&self, ref_name: Option<&str>) -> Result<Option<ImageIndexEntry>> {
        let _ = ref_name;
        todo!()
    }
    /// Removes the entry named `ref_name`; returns whether it existed.
    pub fn remove_ref(&self, ref_name: &str) -> Result<bool> {
        let _ = ref_name;
        todo!()
    }
    /// Deletes blobs no index entry reaches.
    pub fn gc(&self) -> Result<()> {
        todo!()
    }
}

impl crate::Package {
    pub fn write_to(&self, layout: &OciLayout, ref_name: &str) -> Result<()> {
        let _ = (layout, ref_name);
        todo!()
    }
    pub fn read_from(layout: &OciLayout, ref_name: Option<&str>) -> Result<crate::Package> {
        let _ = (layout, ref_name);
        todo!()
    }
}
