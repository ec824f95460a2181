//! The local content-addressed store of pulled packages: an OCI image layout under
//! `$CARGO_EBPF_HOME/store` (else `$XDG_DATA_HOME/cargo-ebpf/store`, else
//! `~/.local/share/cargo-ebpf/store`), one index entry per reference.
//!
//! Entries are named by the normalized full reference (`docker.io/library/x:latest`,
//! `localhost:5000/demo:0.1.0`), so `demo` and `docker.io/library/demo:latest` are one entry.
//! Blobs are shared between entries; removing an entry removes only blobs nothing else uses.

use std::path::{Path, PathBuf};

use ebpf_package::layout::OciLayout;
use ebpf_package::spec::ANNOTATION_VERIFIED_BY;
use ebpf_package::{Error, Package, Reference, Result};

pub struct Store {
    layout: ebpf_package::layout::OciLayout,
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
    /// Fingerprint of the key whose signature was verified when it was pulled.
    pub verified_by: Option<String>,
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

    pub fn layout(&self) -> &ebpf_package::layout::OciLayout {
        &self.layout
    }

    /// The package stored under `reference`, verified.
    pub fn get(&self, reference: &Reference) -> Result<Option<Package>> {
        let key = reference.to_string();
        match self.layout.find_ref(Some(&key))? {
            Some(entry) => self.layout.read_entry(&entry).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `pkg` under `reference`: blobs first, the reference last, so a crash never
    /// leaves a reference to a half package.
    pub fn insert(&self, reference: &Reference, pkg: &Package) -> Result<()> {
        self.insert_verified(reference, pkg, None)
    }

    /// [`Store::insert`], recording the fingerprint of the key whose signature was verified.
    pub fn insert_verified(
        &self,
        reference: &Reference,
        pkg: &Package,
        verified_by: Option<&str>,
    ) -> Result<()> {
        let annotations = verified_by
            .map(|fp| (ANNOTATION_VERIFIED_BY.to_string(), fp.to_string()))
            .into_iter()
            .collect();
        self.layout
            .write_package_annotated(pkg, &reference.to_string(), annotations)
    }

    pub fn list(&self) -> Result<Vec<StoreEntry>> {
        let index = self.layout.index()?;
        let mut rows: Vec<StoreEntry> = index
            .manifests
            .iter()
            .filter_map(|e| {
                let annotations = e.annotations.as_ref()?;
                let reference = annotations.get(ebpf_package::spec::ANNOTATION_REF_NAME)?;
                let mut row = self.row(reference, &e.digest);
                row.verified_by = annotations.get(ANNOTATION_VERIFIED_BY).cloned();
                Some(row)
            })
            .collect();
        rows.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(rows)
    }

    /// Removes `reference` and blobs nothing else uses; returns whether it existed.
    pub fn remove(&self, reference: &Reference) -> Result<bool> {
        let existed = self.layout.remove_ref(&reference.to_string())?;
        if existed {
            self.layout.gc()?;
        }
        Ok(existed)
    }

    /// A list row; name, version and size stay empty if the entry cannot be read, so one
    /// damaged entry does not hide the others (`get` reports the damage).
    fn row(&self, reference: &str, digest: &str) -> StoreEntry {
        let mut row = StoreEntry {
            reference: reference.to_string(),
            digest: digest.to_string(),
            name: None,
            version: None,
            format: None,
            size: 0,
            verified_by: None,
        };
        let Ok(manifest) = self
            .layout
            .get_blob(digest)
            .and_then(|b| ebpf_package::blob::parse_manifest(&b))
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
            .and_then(|config| ebpf_package::formats::summary(&manifest, &config));
        if let Some((format, described)) = summary {
            row.format = Some(format.name().to_string());
            row.name = described.name;
            row.version = described.version;
        }
        row
    }
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
    use ebpf_package::spec::PackageMeta;

    fn r(text: &str) -> Reference {
        Reference::parse(text).unwrap()
    }

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
        store.insert(&r("localhost:5000/demo:0.1.0"), &pkg).unwrap();
        // Short and long forms name the same entry.
        store.insert(&r("demo"), &pkg).unwrap();
        let got = store
            .get(&r("docker.io/library/demo:latest"))
            .unwrap()
            .unwrap();
        assert_eq!(got.digest(), pkg.digest());
        assert!(store.get(&r("localhost:5000/other")).unwrap().is_none());
        let list = store.list().unwrap();
        let refs: Vec<_> = list.iter().map(|e| e.reference.as_str()).collect();
        assert_eq!(
            refs,
            ["docker.io/library/demo:latest", "localhost:5000/demo:0.1.0"]
        );
        assert_eq!(list[0].name.as_deref(), Some("demo"));
        assert_eq!(list[0].version.as_deref(), Some("0.1.0"));
        assert_eq!(list[0].size, pkg.size());
        assert!(store.remove(&r("demo")).unwrap());
        assert!(!store.remove(&r("demo")).unwrap());
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
        store.insert(&r("localhost/a"), &a).unwrap();
        store.insert(&r("localhost/b"), &b).unwrap();
        assert!(store.remove(&r("localhost/a")).unwrap());
        let layout = store.layout();
        assert!(layout.has_blob(&a.layers[0].descriptor.digest));
        assert!(!layout.has_blob(&a.config_blob.descriptor.digest));
        assert!(!layout.has_blob(&a.digest()));
        assert_eq!(
            store
                .get(&r("localhost/b"))
                .unwrap()
                .unwrap()
                .object()
                .unwrap()
                .1,
            b"same object"
        );
        assert!(store.remove(&r("localhost/b")).unwrap());
        assert!(!layout.has_blob(&b.layers[0].descriptor.digest));
    }

    #[test]
    fn corrupt_store_blob_is_integrity_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let pkg = sample("demo", "0.1.0", b"object");
        store.insert(&r("localhost/demo"), &pkg).unwrap();
        let path = store
            .layout()
            .blob_path(&pkg.layers[0].descriptor.digest)
            .unwrap();
        let mut data = std::fs::read(&path).unwrap();
        data[10] ^= 1;
        std::fs::write(&path, data).unwrap();
        let err = store.get(&r("localhost/demo")).err().unwrap();
        assert_eq!(err.kind, ebpf_package::ErrorKind::Integrity);
    }
}
