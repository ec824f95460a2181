//! The local content-addressed store of pulled packages: an OCI image layout under
//! `$CARGO_EBPF_HOME/store` (default `~/.local/share/cargo-ebpf/store`), one index entry per
//! reference. STUB: contract only.

use std::path::Path;

use crate::{Package, Result};

pub struct Store {
    layout: crate::oci_layout::OciLayout,
}

/// One row of `cargo ebpf list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreEntry {
    pub reference: String,
    pub digest: String,
    pub name: Option<String>,
    pub version: Option<String>,
    pub size: u64,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store> {
        let _ = dir;
        todo!()
    }
    pub fn open_default() -> Result<Store> {
        todo!()
    }
    pub fn layout(&self) -> &crate::oci_layout::OciLayout {
        &self.layout
    }
    /// The package stored under `reference`, verified.
    pub fn get(&self, reference: &str) -> Result<Option<Package>> {
        let _ = reference;
        todo!()
    }
    /// Stores `pkg` under `reference`: blobs first, the reference last, so a crash never
    /// leaves a reference to a half package.
    pub fn insert(&self, reference: &str, pkg: &Package) -> Result<()> {
        let _ = (reference, pkg);
        todo!()
    }
    pub fn list(&self) -> Result<Vec<StoreEntry>> {
        todo!()
    }
    /// Removes `reference` and blobs nothing else uses; returns whether it existed.
    pub fn remove(&self, reference: &str) -> Result<bool> {
        let _ = reference;
        todo!()
    }
}
