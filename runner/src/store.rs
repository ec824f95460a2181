//! The local content-addressed store of pulled packages: an OCI image layout under
//! `$CARGO_EBPF_HOME/store` (else `$XDG_DATA_HOME/cargo-ebpf/store`, else
//! `~/.local/share/cargo-ebpf/store`), one index entry per reference.
//!
//! Entries are named by the normalized full reference (`docker.io/library/x:latest`,
//! `localhost:5000/demo:0.1.0`), so `demo` and `docker.io/library/demo:latest` are one entry.
//! Blobs are shared between entries; removing an entry removes only blobs nothing else uses.

use std::path::{Path, PathBuf};

use crate::oci_layout::OciLayout;
use crate::{Error, Package, Result};

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
    /// Which tool made it (`cargo-ebpf`, `gadget`, `bumblebee`, `bpfman`).
    pub format: Option<String>,
    pub size: u64,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store> {
        Ok(Store {
            layout: OciLayout::create(dir)?,
        })
    }

    pub fn open_default() -> Result<Store> {
        Self::open(&default_dir()?)
    }

    pub fn layout(&self) -> &crate::oci_layout::OciLayout {
        &self.layout
    }

    /// The package stored under `reference`, verified.
    pub fn get(&self, reference: &str) -> Result<Option<Package>> {
        let key = normalize_reference(reference)?;
        match self.layout.find_ref(Some(&key))? {
            Some(entry) => self.layout.read_entry(&entry).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `pkg` under `reference`: blobs first, the reference last, so a crash never
    /// leaves a reference to a half package.
    pub fn insert(&self, reference: &str, pkg: &Package) -> Result<()> {
        let key = normalize_reference(reference)?;
        pkg.write_to(&self.layout, &key)
    }

    pub fn list(&self) -> Result<Vec<StoreEntry>> {
        let index = self.layout.index()?;
        let mut rows: Vec<StoreEntry> = index
            .manifests
            .iter()
            .filter_map(|e| {
                let reference = e
                    .annotations
                    .as_ref()?
                    .get(crate::format::ANNOTATION_REF_NAME)?;
                Some(self.describe(reference, &e.digest))
            })
            .collect();
        rows.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(rows)
    }

    /// Removes `reference` and blobs nothing else uses; returns whether it existed.
    pub fn remove(&self, reference: &str) -> Result<bool> {
        let key = normalize_reference(reference)?;
        let existed = self.layout.remove_ref(&key)?;
        if existed {
            self.layout.gc()?;
        }
        Ok(existed)
    }

    /// A list row; name, version and size stay empty if the entry cannot be read, so one
    /// damaged entry does not hide the others (`get` reports the damage).
    fn describe(&self, reference: &str, digest: &str) -> StoreEntry {
        let mut row = StoreEntry {
            reference: reference.to_string(),
            digest: digest.to_string(),
            name: None,
            version: None,
            format: None,
            size: 0,
        };
        let Ok(manifest) = self
            .layout
            .get_blob(digest)
            .and_then(|b| crate::package::parse_manifest(&b))
        else {
            return row;
        };
        row.size = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .map(|d| d.size.max(0) as u64)
            .sum();
        let summary = self
            .layout
            .get_blob(&manifest.config.digest)
            .ok()
            .and_then(|config| crate::formats::summary(&manifest, &config));
        if let Some((format, described)) = summary {
            row.format = Some(format.name().to_string());
            row.name = described.name;
            row.version = described.version;
        }
        row
    }
}

/// The store key for `reference`: its normalized full form.
pub fn normalize_reference(reference: &str) -> Result<String> {
    Ok(crate::registry::parse_reference(reference)?.whole())
}

/// `$CARGO_EBPF_HOME/store`, else `$XDG_DATA_HOME/cargo-ebpf/store`, else
/// `$HOME/.local/share/cargo-ebpf/store`.
pub fn default_dir() -> Result<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    default_dir_from(var("CARGO_EBPF_HOME"), var("XDG_DATA_HOME"), var("HOME"))
}

fn default_dir_from(
    cargo_ebpf_home: Option<PathBuf>,
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf> {
    if let Some(dir) = cargo_ebpf_home {
        return Ok(dir.join("store"));
    }
    if let Some(dir) = xdg_data_home {
        return Ok(dir.join("cargo-ebpf").join("store"));
    }
    match home {
        Some(home) => Ok(home.join(".local/share/cargo-ebpf/store")),
        None => Err(Error::environment(
            "cannot find the package store: none of CARGO_EBPF_HOME, XDG_DATA_HOME, HOME is set",
        )
        .with_help("set CARGO_EBPF_HOME to a directory cargo-ebpf may write to")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::PackageMeta;

    fn sample(name: &str, version: &str, object: &[u8]) -> Package {
        let meta = PackageMeta::new(name, version, "prog.bpf.o");
        Package::build(meta, object, None).unwrap()
    }

    #[test]
    fn default_dir_order() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            default_dir_from(p("/c"), p("/x"), p("/h")).unwrap(),
            PathBuf::from("/c/store")
        );
        assert_eq!(
            default_dir_from(None, p("/x"), p("/h")).unwrap(),
            PathBuf::from("/x/cargo-ebpf/store")
        );
        assert_eq!(
            default_dir_from(None, None, p("/h")).unwrap(),
            PathBuf::from("/h/.local/share/cargo-ebpf/store")
        );
        assert!(default_dir_from(None, None, None).is_err());
    }

    #[test]
    fn insert_get_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let pkg = sample("demo", "0.1.0", b"object");
        store.insert("localhost:5000/demo:0.1.0", &pkg).unwrap();
        // Short and long forms name the same entry.
        store.insert("demo", &pkg).unwrap();
        let got = store.get("docker.io/library/demo:latest").unwrap().unwrap();
        assert_eq!(got.digest(), pkg.digest());
        assert!(store.get("localhost:5000/other").unwrap().is_none());
        let list = store.list().unwrap();
        let refs: Vec<_> = list.iter().map(|e| e.reference.as_str()).collect();
        assert_eq!(
            refs,
            ["docker.io/library/demo:latest", "localhost:5000/demo:0.1.0"]
        );
        assert_eq!(list[0].name.as_deref(), Some("demo"));
        assert_eq!(list[0].version.as_deref(), Some("0.1.0"));
        assert_eq!(list[0].size, pkg.size());
        assert!(store.remove("demo").unwrap());
        assert!(!store.remove("demo").unwrap());
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn remove_keeps_shared_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = sample("a", "1.0.0", b"same object");
        let b = sample("b", "1.0.0", b"same object");
        // Same object → same layer blob, different configs and manifests.
        assert_eq!(a.layers[0].descriptor.digest, b.layers[0].descriptor.digest);
        store.insert("localhost/a", &a).unwrap();
        store.insert("localhost/b", &b).unwrap();
        assert!(store.remove("localhost/a").unwrap());
        let layout = store.layout();
        assert!(layout.has_blob(&a.layers[0].descriptor.digest));
        assert!(!layout.has_blob(&a.config_blob.descriptor.digest));
        assert!(!layout.has_blob(&a.digest()));
        assert_eq!(
            store
                .get("localhost/b")
                .unwrap()
                .unwrap()
                .object()
                .unwrap()
                .1,
            b"same object"
        );
        assert!(store.remove("localhost/b").unwrap());
        assert!(!layout.has_blob(&b.layers[0].descriptor.digest));
    }

    #[test]
    fn corrupt_store_blob_is_integrity_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let pkg = sample("demo", "0.1.0", b"object");
        store.insert("localhost/demo", &pkg).unwrap();
        let path = store
            .layout()
            .blob_path(&pkg.layers[0].descriptor.digest)
            .unwrap();
        let mut data = std::fs::read(&path).unwrap();
        data[10] ^= 1;
        std::fs::write(&path, data).unwrap();
        let err = store.get("localhost/demo").err().unwrap();
        assert_eq!(err.kind, crate::ErrorKind::Integrity);
    }

    #[test]
    fn bad_reference_is_input_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let err = store.get("Not A Ref").err().unwrap();
        assert_eq!(err.kind, crate::ErrorKind::Input);
    }
}
