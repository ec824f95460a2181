//! OCI image layout directories: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
//! Written by `cargo ebpf package`, used as the local store, readable by skopeo (`oci:DIR:TAG`).
//!
//! Every write is atomic (temp file in the same directory, rename; fsync too for index.json,
//! which nothing else can check), and index.json is only rewritten under an exclusive
//! `flock` on a lock file, so concurrent writers never lose each other's updates and
//! readers never see half a file.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use oci_client::manifest::{ImageIndexEntry, OciImageIndex};

use crate::blob::{Blob, BlobData};
use crate::image_index::Release;
use crate::platform;
use crate::spec::{self, ANNOTATION_REF_NAME, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use crate::{digest, Error, Package, Result};

const INDEX_FILE: &str = "index.json";
/// Lock file for index.json writers (and gc). Skopeo ignores unknown files in a layout.
const LOCK_FILE: &str = ".index.lock";
/// Index entries nest at most this deep; deeper means a cycle or a hostile layout.
const MAX_INDEX_DEPTH: usize = 8;

pub struct OciLayout {
    root: PathBuf,
}

/// An exclusive lock on a layout's index, released on drop (closing the file drops the flock).
pub struct IndexLock {
    _file: File,
}

impl OciLayout {
    /// Opens `root` as a layout, creating the directory, `oci-layout` and an empty
    /// `index.json` if missing. Idempotent.
    pub fn create(root: &Path) -> Result<OciLayout> {
        let layout = OciLayout {
            root: root.to_path_buf(),
        };
        let blobs = layout.blob_dir();
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io("create", &blobs, e))?;
        let marker = root.join(spec::OCI_LAYOUT_FILE);
        if !marker.is_file() {
            write_atomic(&marker, spec::OCI_LAYOUT_CONTENT.as_bytes())?;
        }
        if !layout.index_path().is_file() {
            let lock = layout.lock()?;
            // Re-check under the lock: another process may have just written it.
            if !layout.index_path().is_file() {
                layout.write_index(&lock, &empty_index())?;
            }
        }
        Ok(layout)
    }

    /// Opens an existing layout; a clear Input error if `root` is not one.
    pub fn open(root: &Path) -> Result<OciLayout> {
        if !Self::is_layout(root) {
            return Err(Error::input(format!(
                "{} is not an OCI image layout (it has no {} file)",
                root.display(),
                spec::OCI_LAYOUT_FILE
            ))
            .with_help("point at a directory written by `cargo ebpf package`"));
        }
        Ok(OciLayout {
            root: root.to_path_buf(),
        })
    }

    /// Whether `path` looks like an OCI layout directory.
    pub fn is_layout(path: &Path) -> bool {
        path.join(crate::spec::OCI_LAYOUT_FILE).is_file()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn index_path(&self) -> PathBuf {
        self.root.join(INDEX_FILE)
    }

    /// The file holding blob `digest` (validated, so it cannot point outside the layout).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.blob_dir().join(digest::hex_part(digest)?))
    }

    /// Stores a blob atomically (temp file + fsync + rename); returns its digest.
    pub fn put_blob(&self, data: &[u8]) -> Result<String> {
        let digest = digest::sha256(data);
        self.put_blob_expecting(&digest, data)?;
        Ok(digest)
    }

    /// Stores a blob that must have digest `expected`: an Integrity error, and nothing
    /// written, if it does not.
    pub fn put_blob_expecting(&self, expected: &str, data: &[u8]) -> Result<()> {
        let path = self.blob_path(expected)?;
        digest::verify(expected, data, "blob")?;
        // Content addressing: an intact existing copy is the same bytes, keep it.
        if std::fs::read(&path).is_ok_and(|old| digest::sha256(&old) == expected) {
            return Ok(());
        }
        write_blob(&path, data)
    }

    /// Stores a blob whose digest its descriptor gives; a file's bytes stream from disk.
    pub fn put(&self, blob: &Blob) -> Result<()> {
        let expected = &blob.descriptor.digest;
        let Some(source) = blob.data.path() else {
            return self.put_blob_expecting(expected, &blob.data.bytes()?);
        };
        let path = self.blob_path(expected)?;
        if crate::blob::hash_file(&path).is_ok_and(|old| &old == expected) {
            return Ok(());
        }
        if blob.data.unchecked_digest().is_some() {
            // Checked as it is copied: a damaged source fails and leaves nothing behind.
            return write_blob(&path, blob.data.reader()?);
        }
        let file = File::open(source).map_err(|e| Error::io("read", source, e))?;
        write_blob(&path, file)
    }

    /// A blob of `size` bytes, verified: in memory when small, else left in its file
    /// (hashed as a stream), so a large package is never read into memory whole.
    pub fn get(&self, digest: &str, size: u64) -> Result<BlobData> {
        self.get_with(digest, size, Check::Now)
    }

    fn get_with(&self, digest: &str, size: u64, check: Check) -> Result<BlobData> {
        if size <= crate::blob::SPOOL_IN_MEMORY as u64 {
            return self.get_blob(digest).map(BlobData::from);
        }
        let path = self.blob_path(digest)?;
        if check == Check::OnUse {
            return self.unread(digest, size, path);
        }
        let actual = crate::blob::hash_file(&path).map_err(|e| self.missing(digest, e))?;
        digest::verify_digest(digest, &actual, &format!("blob in {}", self.root.display()))?;
        let len = std::fs::metadata(&path)
            .map_err(|e| Error::io("read", &path, e))?
            .len();
        Ok(BlobData::file(path, len, actual))
    }

    /// A large blob left unread, its size checked now and its digest when it is read.
    fn unread(&self, digest: &str, size: u64, path: PathBuf) -> Result<BlobData> {
        let len = std::fs::metadata(&path)
            .map_err(|e| self.missing(digest, Error::io("read", &path, e)))?
            .len();
        if len != size {
            return Err(Error::integrity(format!(
                "blob {digest} in {} is {len} bytes, not {size}",
                self.root.display()
            ))
            .with_help("the layout is damaged; write it again"));
        }
        Ok(BlobData::file_checked_on_use(path, len, digest.to_string()))
    }

    /// A missing blob says the layout is incomplete; other errors are passed on.
    fn missing(&self, digest: &str, e: Error) -> Error {
        if self.has_blob(digest) {
            return e;
        }
        Error::integrity(format!(
            "blob {digest} is missing from {}",
            self.root.display()
        ))
        .with_help("the layout is incomplete; write it again (or pull the package again)")
    }

    /// Reads a blob and verifies its digest (Integrity error on mismatch).
    pub fn get_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let data = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::integrity(format!(
                    "blob {digest} is missing from {}",
                    self.root.display()
                ))
                .with_help("the layout is incomplete; write it again (or pull the package again)")
            } else {
                Error::io("read", &path, e)
            }
        })?;
        digest::verify(digest, &data, &format!("blob in {}", self.root.display()))?;
        Ok(data)
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    pub fn index(&self) -> Result<OciImageIndex> {
        let path = self.index_path();
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::input(format!("{} is not a valid OCI index: {e}", path.display()))
                .with_help("the layout is damaged; write it again")
        })
    }

    /// Takes the exclusive index lock, blocking until other writers are done.
    pub fn lock(&self) -> Result<IndexLock> {
        let path = self.root.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        // SAFETY: flock on a valid, open descriptor owned by `file`.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(Error::io("lock", &path, std::io::Error::last_os_error()));
        }
        Ok(IndexLock { _file: file })
    }

    /// Points `ref_name` (stored as the `org.opencontainers.image.ref.name` annotation) at
    /// `entry`, replacing an entry with the same name. index.json is rewritten atomically,
    /// under a lock so concurrent writers do not lose updates.
    pub fn set_ref(&self, ref_name: &str, entry: ImageIndexEntry) -> Result<()> {
        let lock = self.lock()?;
        self.set_ref_locked(&lock, ref_name, entry)
    }

    /// [`Self::set_ref`] for a caller already holding the lock.
    pub fn set_ref_locked(
        &self,
        lock: &IndexLock,
        ref_name: &str,
        mut entry: ImageIndexEntry,
    ) -> Result<()> {
        let mut index = self.index()?;
        index
            .manifests
            .retain(|e| entry_ref_name(e) != Some(ref_name));
        entry
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(ANNOTATION_REF_NAME.to_string(), ref_name.to_string());
        index.manifests.push(entry);
        self.write_index(lock, &index)
    }

    /// The entry named `ref_name`; with `None`, the only entry (error if there are several).
    pub fn find_ref(&self, ref_name: Option<&str>) -> Result<Option<ImageIndexEntry>> {
        let index = self.index()?;
        let Some(name) = ref_name else {
            if index.manifests.len() > 1 {
                return Err(Error::input(format!(
                    "{} holds several packages ({}); say which one",
                    self.root.display(),
                    ref_names(&index.manifests)
                ))
                .with_help(format!("name one, e.g. {}:REF", self.root.display())));
            }
            return Ok(index.manifests.into_iter().next());
        };
        Ok(index
            .manifests
            .into_iter()
            .find(|e| entry_ref_name(e) == Some(name)))
    }

    /// The names of all entries, in index order.
    pub fn ref_names(&self) -> Result<Vec<String>> {
        Ok(self
            .index()?
            .manifests
            .iter()
            .filter_map(|e| entry_ref_name(e).map(str::to_string))
            .collect())
    }

    /// Removes the entry named `ref_name`; returns whether it existed.
    pub fn remove_ref(&self, ref_name: &str) -> Result<bool> {
        let lock = self.lock()?;
        let mut index = self.index()?;
        let before = index.manifests.len();
        index
            .manifests
            .retain(|e| entry_ref_name(e) != Some(ref_name));
        if index.manifests.len() == before {
            return Ok(false);
        }
        self.write_index(&lock, &index)?;
        Ok(true)
    }

    /// Deletes blobs no index entry reaches.
    pub fn gc(&self) -> Result<()> {
        // Holding the lock keeps writers that use it (write_to, store inserts) from having
        // their fresh, not yet referenced blobs collected underneath them.
        let _lock = self.lock()?;
        self.sweep_stale_temp(STALE_TEMP_AGE)?;
        let mut live = HashSet::new();
        for entry in self.index()?.manifests {
            self.mark(&entry.digest, &entry.media_type, 0, &mut live)?;
        }
        let dir = self.blob_dir();
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
        for file in entries {
            let file = file.map_err(|e| Error::io("list", &dir, e))?;
            let name = file.file_name().to_string_lossy().into_owned();
            // Only content files: temp files of concurrent writers start with a dot.
            if digest::hex_part(&format!("sha256:{name}")).is_err() || live.contains(&name) {
                continue;
            }
            let path = file.path();
            std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
        }
        Ok(())
    }

    /// Removes the temporary files (`.tmp-*`, see [`write_atomic`]) that writers killed
    /// mid-write left behind, once older than `age`: younger ones may belong to a writer
    /// still running. Returns how many were removed.
    pub fn sweep_stale_temp(&self, age: std::time::Duration) -> Result<usize> {
        let mut removed = 0;
        for dir in [self.root.clone(), self.blob_dir()] {
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
            for file in entries.flatten() {
                let is_temp = file.file_name().to_string_lossy().starts_with(TEMP_PREFIX);
                let stale = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|e| e >= age));
                // Another process may sweep the same file at the same time: gone is fine.
                if is_temp && stale && std::fs::remove_file(file.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Adds the hex digests reachable from one descriptor to `live`.
    fn mark(
        &self,
        digest: &str,
        media_type: &str,
        depth: usize,
        live: &mut HashSet<String>,
    ) -> Result<()> {
        let hex = digest::hex_part(digest)?.to_string();
        if depth > MAX_INDEX_DEPTH || !live.insert(hex) {
            return Ok(());
        }
        let is_manifest = media_type == MEDIA_TYPE_MANIFEST || media_type == MEDIA_TYPE_INDEX;
        if !is_manifest || !self.has_blob(digest) {
            return Ok(());
        }
        let value: serde_json::Value =
            serde_json::from_slice(&self.get_blob(digest)?).map_err(|e| {
                Error::input(format!("manifest {digest} is not valid JSON")).with_source(e)
            })?;
        let descriptors = ["config", "layers", "manifests", "subject"]
            .iter()
            .filter_map(|k| value.get(*k))
            .flat_map(|v| match v {
                serde_json::Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            });
        for d in descriptors {
            if let (Some(dg), Some(mt)) = (d["digest"].as_str(), d["mediaType"].as_str()) {
                self.mark(dg, mt, depth + 1, live)?;
            }
        }
        Ok(())
    }

    fn write_index(&self, _lock: &IndexLock, index: &OciImageIndex) -> Result<()> {
        let mut index = index.clone();
        index.schema_version = 2;
        index.media_type = Some(MEDIA_TYPE_INDEX.to_string());
        let bytes = serde_json::to_vec_pretty(&index)
            .map_err(|e| Error::input("cannot serialize index.json").with_source(e))?;
        write_atomic(&self.index_path(), &bytes)
    }

    /// The package behind `entry`, with every digest verified. An index resolves to this
    /// host's platform; a package for another platform is refused (see [`crate::index`]).
    pub fn read_entry(&self, entry: &ImageIndexEntry) -> Result<Package> {
        let what = self.entry_label(entry);
        let mut entry = entry.clone();
        for _ in 0..MAX_INDEX_DEPTH {
            let bytes = self.get_blob(&entry.digest)?;
            if entry.media_type != MEDIA_TYPE_INDEX {
                let pkg = self.read_manifest(bytes, &entry.digest, Check::Now)?;
                platform::check_host_platform(&pkg.platform(), &what)?;
                return Ok(pkg);
            }
            let image_index: OciImageIndex = serde_json::from_slice(&bytes)
                .map_err(|e| Error::input(format!("index {} is not valid: {e}", entry.digest)))?;
            entry = platform::pick_platform(&image_index.manifests, &what)?.clone();
        }
        Err(Error::input("image indexes nest too deeply"))
    }

    /// `DIR:NAME` (or `DIR`) for error messages about one entry.
    fn entry_label(&self, entry: &ImageIndexEntry) -> String {
        match entry_ref_name(entry) {
            Some(name) => format!("{}:{name}", self.root.display()),
            None => self.root.display().to_string(),
        }
    }

    fn read_manifest(
        &self,
        manifest_bytes: Vec<u8>,
        manifest_digest: &str,
        check: Check,
    ) -> Result<Package> {
        let manifest = crate::blob::parse_manifest(&manifest_bytes)?;
        let config = self.get_blob(&manifest.config.digest)?;
        let layers = crate::formats::needed_layers(&manifest)
            .iter()
            .map(|l| self.get_with(&l.digest, u64::try_from(l.size).unwrap_or(0), check))
            .collect::<Result<Vec<_>>>()?;
        Package::from_parts(manifest_bytes, Some(manifest_digest), config, layers)
    }
}

// ---- packages in a layout: only the layout knows both a package and where its bytes go --

impl OciLayout {
    /// Writes `pkg` under `ref_name`: blobs first, the ref last, all under the index lock,
    /// so nobody ever sees a ref to a half-written package.
    pub fn write_package(&self, pkg: &Package, ref_name: &str) -> Result<()> {
        self.write_package_annotated(pkg, ref_name, BTreeMap::new())
    }

    /// [`OciLayout::write_package`], with extra annotations on the index entry (such as who
    /// verified the package), written in the same step as the ref.
    pub fn write_package_annotated(
        &self,
        pkg: &Package,
        ref_name: &str,
        annotations: BTreeMap<String, String>,
    ) -> Result<()> {
        check_ref_name(ref_name)?;
        let lock = self.lock()?;
        self.write_package_blobs(pkg, &lock)?;
        let mut entry = pkg.index_entry();
        if !annotations.is_empty() {
            entry.annotations = Some(annotations);
        }
        self.set_ref_locked(&lock, ref_name, entry)
    }

    /// Writes a release under `ref_name`: one package, or every platform package and then
    /// the index; the ref is written last, so it never points at a half-written index.
    pub fn write_release(&self, release: &Release, ref_name: &str) -> Result<()> {
        self.write_release_annotated(release, ref_name, BTreeMap::new())
    }

    /// [`OciLayout::write_release`], with extra annotations on the ref's index entry.
    pub fn write_release_annotated(
        &self,
        release: &Release,
        ref_name: &str,
        annotations: BTreeMap<String, String>,
    ) -> Result<()> {
        let index = match release {
            Release::Single(pkg) => {
                return self.write_package_annotated(pkg, ref_name, annotations)
            }
            Release::Multi(index) => index,
        };
        check_ref_name(ref_name)?;
        let lock = self.lock()?;
        for pkg in &index.packages {
            self.write_package_blobs(pkg, &lock)?;
        }
        self.put_blob_expecting(&index.digest(), &index.index_bytes)?;
        let mut entry = index.index_entry();
        entry.annotations = Some(annotations).filter(|a| !a.is_empty());
        self.set_ref_locked(&lock, ref_name, entry)
    }

    /// The whole release under `entry` (every platform of an index, not only this host's),
    /// verified: what a publish pushes.
    pub fn read_release(&self, entry: &ImageIndexEntry) -> Result<Release> {
        self.read_release_with(entry, Check::Now)
    }

    /// [`OciLayout::read_release`] without reading the large layers: each is checked against
    /// its digest by whoever reads it ([`BlobData::file_checked_on_use`]), so a push reads a
    /// 50 MB layer once, as it sends it, not once more before.
    pub fn read_release_checked_on_use(&self, entry: &ImageIndexEntry) -> Result<Release> {
        self.read_release_with(entry, Check::OnUse)
    }

    fn read_release_with(&self, entry: &ImageIndexEntry, check: Check) -> Result<Release> {
        let bytes = self.get_blob(&entry.digest)?;
        if entry.media_type != MEDIA_TYPE_INDEX {
            return Release::new(vec![self.read_manifest(bytes, &entry.digest, check)?]);
        }
        let index: OciImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| Error::input(format!("index {} is not valid: {e}", entry.digest)))?;
        let packages = index
            .manifests
            .iter()
            .map(|m| self.read_manifest(self.get_blob(&m.digest)?, &m.digest, check))
            .collect::<Result<Vec<_>>>()?;
        let release = Release::new(packages)?;
        digest::verify_digest(&entry.digest, &release.digest(), "the layout's index")?;
        Ok(release)
    }

    /// Writes config, layers and manifest (no ref) while the caller holds the index lock,
    /// so gc cannot collect them before a ref points at them.
    pub fn write_package_blobs(&self, pkg: &Package, _lock: &IndexLock) -> Result<()> {
        for blob in std::iter::once(&pkg.config_blob).chain(&pkg.layers) {
            self.put(blob)?;
        }
        self.put_blob_expecting(&pkg.digest(), &pkg.manifest_bytes)
    }

    /// Reads the package named `ref_name` (or the only one, with `None`), verified.
    pub fn read_package(&self, ref_name: Option<&str>) -> Result<Package> {
        match self.find_ref(ref_name)? {
            Some(entry) => self.read_entry(&entry),
            None => Err(missing_ref(self, ref_name)),
        }
    }
}

fn missing_ref(layout: &OciLayout, ref_name: Option<&str>) -> Error {
    let present = layout
        .index()
        .map(|i| ref_names(&i.manifests))
        .unwrap_or_default();
    let root = layout.root().display();
    match ref_name {
        Some(name) if present.is_empty() => {
            Error::input(format!("{root} has no package named {name:?}; it is empty"))
                .with_help("write a package into it first with `cargo ebpf package`")
        }
        Some(name) => Error::input(format!(
            "{root} has no package named {name:?}; it has: {present}"
        ))
        .with_help(format!("use one of those names, e.g. {root}:REF")),
        None => Error::input(format!("{root} holds no package"))
            .with_help("write a package into it first with `cargo ebpf package`"),
    }
}

/// When a large layer read from a layout is checked against its digest.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Before it is handed out (hashed as a stream).
    Now,
    /// By whoever reads it, as they read it ([`BlobData::file_checked_on_use`]).
    OnUse,
}

/// Ref names go into JSON only, but empty ones make skopeo's `oci:DIR:` syntax ambiguous.
pub fn check_ref_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(Error::input(format!("invalid reference name {name:?}"))
            .with_help("use a tag like `latest` or `0.1.0`"));
    }
    Ok(())
}

fn entry_ref_name(entry: &ImageIndexEntry) -> Option<&str> {
    entry
        .annotations
        .as_ref()?
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
}

/// "a, b, sha256:…" — the names of entries (digests for unnamed ones), for error messages.
fn ref_names(entries: &[ImageIndexEntry]) -> String {
    entries
        .iter()
        .map(|e| entry_ref_name(e).unwrap_or(&e.digest).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn empty_index() -> OciImageIndex {
    OciImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.to_string()),
        artifact_type: None,
        manifests: vec![],
        annotations: None,
    }
}

/// How temporary files of [`write_atomic`] start (the sweep finds them by it).
const TEMP_PREFIX: &str = ".tmp-";
/// Age after which a temporary file is taken for the leftover of a killed writer: far
/// longer than writing any blob takes.
pub const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Writes `path` atomically and durably: a temp file in the same directory, fsync,
/// rename, fsync the dir. For the files nothing can check (index.json, oci-layout).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic_from(path, data, true)
}

/// Writes a blob atomically (temp file, rename) but without fsync: a blob is verified
/// against its digest whenever it is read, so one torn by a crash is found then and written
/// again by the next pull or package, while the fsyncs cost most of a small pull.
fn write_blob(path: &Path, data: impl std::io::Read) -> Result<()> {
    write_atomic_from(path, data, false)
}

/// [`write_atomic`] from a stream (file to file is a kernel copy, no user-space buffer).
fn write_atomic_from(path: &Path, mut data: impl std::io::Read, sync: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    std::io::copy(&mut data, tmp.as_file_mut())
        .and_then(|_| {
            if sync {
                tmp.as_file().sync_all()
            } else {
                Ok(())
            }
        })
        .map_err(|e| match e.kind() {
            // The source failed its check ([`crate::blob::StreamCheck`]), not the write.
            std::io::ErrorKind::InvalidData => {
                Error::integrity(format!("{e}; nothing was written to {}", path.display()))
                    .with_help(crate::blob::DAMAGED_HELP)
            }
            _ => Error::io("write", tmp.path(), e),
        })?;
    tmp.persist(path)
        .map_err(|e| Error::io("write", path, e.error))?;
    // Make the rename itself durable; failure here only weakens crash safety.
    match File::open(dir) {
        Ok(d) if sync => drop(d.sync_all()),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::PackageMeta;
    use crate::test_support::{other_arch, platform_sample};

    pub(crate) fn sample(name: &str, object: &[u8]) -> Package {
        let meta = PackageMeta::new(name, "0.1.0", &format!("{name}.bpf.o"));
        Package::build(meta, object, None).unwrap()
    }

    /// Bytes no compressor shrinks much, so the layer stays over the in-memory limit.
    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn a_large_layer_goes_through_files_and_is_still_verified() {
        let dir = tempfile::tempdir().unwrap();
        let files = large_files(dir.path());
        let payload = std::fs::read(dir.path().join("payload.bin")).unwrap();
        let meta = PackageMeta::new("big", "0.1.0", "big.bpf.o");
        let pkg = Package::build_with_files(meta, &files, None).unwrap();
        assert!(
            pkg.layers[0].data.path().is_some(),
            "the layer was spooled to a file"
        );
        // The same files give the same layer as the in-memory writer.
        let in_memory = crate::layer::gzip(&crate::layer::tar_files(&files).unwrap()).unwrap();
        assert_eq!(pkg.layers[0].descriptor.digest, digest::sha256(&in_memory));

        let layout = OciLayout::create(&dir.path().join("oci")).unwrap();
        layout.write_package(&pkg, "v1").unwrap();
        let back = layout.read_package(Some("v1")).unwrap();
        assert_eq!(back.digest(), pkg.digest());
        assert!(
            back.layers[0].data.path().is_some(),
            "read back without loading it"
        );
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        back.extract_to(&out).unwrap();
        assert_eq!(
            std::fs::read(out.join("data/payload.bin")).unwrap(),
            payload
        );

        // A large blob changed on disk is refused like a small one.
        let blob = layout.blob_path(&pkg.layers[0].descriptor.digest).unwrap();
        let mut bytes = std::fs::read(&blob).unwrap();
        bytes[1000] ^= 1;
        std::fs::write(&blob, bytes).unwrap();
        let err = layout.read_package(Some("v1")).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity, "{}", err.message);
    }

    /// An object and `DIR/payload.bin`, twice the in-memory limit: files whose layer is
    /// spooled to a file.
    fn large_files(dir: &Path) -> [crate::layer::LayerFile; 2] {
        let payload_path = dir.join("payload.bin");
        std::fs::write(&payload_path, noise(crate::blob::SPOOL_IN_MEMORY * 2)).unwrap();
        [
            crate::layer::LayerFile::new("big.bpf.o", b"obj".to_vec(), 0o644),
            crate::layer::LayerFile::from_disk("data/payload.bin", &payload_path, 0o644).unwrap(),
        ]
    }

    /// A package of [`large_files`], written under `v1` in `DIR/oci`.
    fn large_package_in_layout(dir: &Path) -> (OciLayout, Package) {
        let meta = PackageMeta::new("big", "0.1.0", "big.bpf.o");
        let pkg = Package::build_with_files(meta, &large_files(dir), None).unwrap();
        let layout = OciLayout::create(&dir.join("oci")).unwrap();
        layout.write_package(&pkg, "v1").unwrap();
        (layout, pkg)
    }

    /// The layer of the release under `v1`, read to be checked on use.
    fn unread_layer(layout: &OciLayout) -> Result<Blob> {
        let entry = layout.find_ref(Some("v1")).unwrap().unwrap();
        let release = layout.read_release_checked_on_use(&entry)?;
        Ok(release.packages()[0].layers[0].clone())
    }

    #[test]
    fn a_layer_read_to_be_checked_on_use_is_checked_by_every_reader() {
        let dir = tempfile::tempdir().unwrap();
        let (layout, pkg) = large_package_in_layout(dir.path());
        let layer = unread_layer(&layout).unwrap();
        let digest = layer.descriptor.digest.clone();
        assert_eq!(layer.data.unchecked_digest(), Some(digest.as_str()));
        assert_eq!(
            layer.data.bytes().unwrap(),
            pkg.layers[0].data.bytes().unwrap()
        );

        // The same size, one bit changed: handed out, then refused by each reader.
        let path = layout.blob_path(&digest).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[1000] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let layer = unread_layer(&layout).unwrap();
        let err = layer.data.bytes().unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity, "{}", err.message);
        assert!(
            err.message.contains("does not match its digest"),
            "{}",
            err.message
        );

        // A stream fails before its last block, so nobody acts on all of the bad bytes.
        let mut reader = layer.data.reader().unwrap();
        let mut got = 0;
        let mut buf = vec![0; 64 << 10];
        let err = loop {
            match reader.read(&mut buf) {
                Ok(0) => panic!("the damaged layer read to its end"),
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(got < bytes.len(), "{got} of {} bytes came out", bytes.len());

        // Copied into another layout: refused, and nothing is left there.
        let other = OciLayout::create(&dir.path().join("other")).unwrap();
        let err = other.put(&layer).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity, "{}", err.message);
        assert!(!other.has_blob(&digest));
        let blobs = dir.path().join("other/blobs/sha256");
        assert_eq!(
            std::fs::read_dir(&blobs).unwrap().count(),
            0,
            "a temp file stayed"
        );

        // Read to be used now, the same layout is refused at once.
        let entry = layout.find_ref(Some("v1")).unwrap().unwrap();
        let err = layout.read_release(&entry).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity, "{}", err.message);

        // A layer of another size is refused before anyone reads it.
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = unread_layer(&layout).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity, "{}", err.message);
    }

    #[test]
    fn create_is_idempotent_and_index_has_media_type() {
        let dir = tempfile::tempdir().unwrap();
        OciLayout::create(dir.path()).unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(raw["mediaType"], MEDIA_TYPE_INDEX);
        assert_eq!(raw["schemaVersion"], 2);
        assert!(layout.index().unwrap().manifests.is_empty());
        assert!(OciLayout::open(dir.path()).is_ok());
    }

    #[test]
    fn open_rejects_non_layout() {
        let dir = tempfile::tempdir().unwrap();
        let err = OciLayout::open(dir.path()).err().unwrap();
        assert_eq!(err.kind, crate::ErrorKind::Input);
        assert!(err.message.contains("not an OCI image layout"));
    }

    #[test]
    fn blobs_round_trip_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let d = layout.put_blob(b"hello").unwrap();
        assert!(layout.has_blob(&d));
        assert_eq!(layout.get_blob(&d).unwrap(), b"hello");
        std::fs::write(layout.blob_path(&d).unwrap(), b"hellO").unwrap();
        let err = layout.get_blob(&d).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity);
        // Writing the right content again repairs it.
        layout.put_blob(b"hello").unwrap();
        assert_eq!(layout.get_blob(&d).unwrap(), b"hello");
        let wrong = layout
            .put_blob_expecting(&digest::sha256(b"x"), b"y")
            .unwrap_err();
        assert_eq!(wrong.kind, crate::ErrorKind::Integrity);
        assert!(!layout.has_blob(&digest::sha256(b"x")));
    }

    #[test]
    fn package_write_read_and_refs() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let a = sample("a", b"obj-a");
        let b = sample("b", b"obj-b");
        layout.write_package(&a, "latest").unwrap();
        assert_eq!(layout.read_package(None).unwrap().digest(), a.digest());
        layout.write_package(&b, "other").unwrap();
        let err = layout.read_package(None).unwrap_err();
        assert!(err.message.contains("latest, other"), "{}", err.message);
        let err = layout.read_package(Some("nope")).unwrap_err();
        assert!(
            err.message.contains("it has: latest, other"),
            "{}",
            err.message
        );
        // Re-pointing a name replaces the entry instead of adding one.
        layout.write_package(&b, "latest").unwrap();
        assert_eq!(layout.index().unwrap().manifests.len(), 2);
        let back = layout.read_package(Some("latest")).unwrap();
        assert_eq!(back.object().unwrap().1, b"obj-b");
    }

    #[test]
    fn gc_drops_only_unreachable_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let a = sample("a", b"obj-a");
        layout.write_package(&a, "a").unwrap();
        let stray = layout.put_blob(b"stray").unwrap();
        layout.gc().unwrap();
        assert!(!layout.has_blob(&stray));
        assert!(layout.read_package(Some("a")).is_ok());
        assert!(layout.remove_ref("a").unwrap());
        assert!(!layout.remove_ref("a").unwrap());
        layout.gc().unwrap();
        assert!(!layout.has_blob(&a.digest()));
    }

    #[test]
    fn concurrent_writers_keep_every_ref() {
        let dir = tempfile::tempdir().unwrap();
        OciLayout::create(dir.path()).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let root = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let layout = OciLayout::open(&root).unwrap();
                    let pkg = sample("p", format!("obj-{i}").as_bytes());
                    layout.write_package(&pkg, &format!("r{i}")).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let layout = OciLayout::open(dir.path()).unwrap();
        let mut names = layout.ref_names().unwrap();
        names.sort();
        assert_eq!(names, (0..8).map(|i| format!("r{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn layout_tag_points_at_the_index_and_reads_back_the_host_package() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let (here, there) = (
            platform_sample(spec::host_arch()),
            platform_sample(other_arch()),
        );
        let release = Release::new(vec![there, here.clone()]).unwrap();
        layout.write_release(&release, "0.1.0").unwrap();
        let entry = layout.find_ref(Some("0.1.0")).unwrap().unwrap();
        assert_eq!(entry.media_type, MEDIA_TYPE_INDEX);
        assert_eq!(entry.digest, release.digest());
        let back = layout.read_package(None).unwrap();
        assert_eq!(back.digest(), here.digest());
        // gc keeps every platform's blobs: they are reachable through the index.
        layout.gc().unwrap();
        for pkg in release.packages() {
            assert!(layout.has_blob(&pkg.digest()));
            assert!(layout.has_blob(&pkg.layers[0].descriptor.digest));
        }
    }
}
