//! A package in memory: its manifest, config and layers, each with the exact bytes that
//! were (or will be) digested. Built from a BPF object by `cargo ebpf package`, read back
//! from an OCI layout, the local store or a registry by the runner.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use oci_client::manifest::{OciDescriptor, OciImageManifest};

use crate::format::{self, Format, ImageConfig, PackageMeta};
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

/// One package: a single-platform OCI image.
#[derive(Debug, Clone)]
pub struct Package {
    pub manifest: OciImageManifest,
    /// The manifest exactly as serialized; its digest is the package's identity.
    pub manifest_bytes: Vec<u8>,
    /// The tool that made it; for other tools' images, `config` is a stand-in synthesised
    /// from their metadata (see [`crate::formats`]) and `config_blob` holds their own.
    pub format: Format,
    pub config: ImageConfig,
    pub config_blob: Blob,
    pub layers: Vec<Blob>,
}

impl Package {
    /// Builds a package holding `object` (the BPF ELF) described by `meta`.
    /// Deterministic: the same inputs and `created` give the same digest.
    pub fn build(meta: PackageMeta, object: &[u8], created: Option<String>) -> Result<Package> {
        let file = LayerFile::new(&meta.object, object.to_vec(), 0o644);
        Package::build_with_files(meta, &[file], created)
    }

    /// Builds a package whose layer holds `files` (the object named by `meta.object`
    /// among them, plus e.g. a userspace loader under `bin/`). Deterministic, like [`build`].
    ///
    /// [`build`]: Package::build
    pub fn build_with_files(
        meta: PackageMeta,
        files: &[LayerFile],
        created: Option<String>,
    ) -> Result<Package> {
        if !files.iter().any(|f| f.path == meta.object) {
            return Err(Error::input(format!(
                "the package files do not include its object {}",
                meta.object
            )));
        }
        let tar = tar_files(files)?;
        let diff_id = digest::sha256(&tar);
        let layer = Blob::new(format::MEDIA_TYPE_LAYER_TAR_GZIP, gzip(&tar)?);

        let annotations = annotations(&meta, created.as_deref());
        let mut labels = bpfman_labels(&meta);
        labels.extend(annotations.clone());

        let config = ImageConfig {
            created: created.clone(),
            architecture: format::oci_arch(&meta.arch).to_string(),
            os: "linux".into(),
            config: format::ImageConfigConfig { labels },
            rootfs: format::RootFs {
                fs_type: "layers".into(),
                diff_ids: vec![diff_id],
            },
            package: Some(meta),
        };
        let config_blob = Blob::new(format::MEDIA_TYPE_CONFIG, to_json(&config)?);
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(format::MEDIA_TYPE_MANIFEST.to_string()),
            config: config_blob.descriptor.clone(),
            layers: vec![layer.descriptor.clone()],
            subject: None,
            artifact_type: Some(format::ARTIFACT_TYPE.to_string()),
            annotations: Some(annotations),
        };
        let manifest_bytes = to_json(&manifest)?;
        Ok(Package {
            manifest,
            manifest_bytes,
            format: Format::CargoEbpf,
            config,
            config_blob,
            layers: vec![layer],
        })
    }

    /// Reassembles a package from raw parts (as read from a registry or layout),
    /// verifying every digest and size. `manifest_digest`, when known, is checked too.
    pub fn from_parts(
        manifest_bytes: Vec<u8>,
        manifest_digest: Option<&str>,
        config_data: Vec<u8>,
        layer_data: Vec<Vec<u8>>,
    ) -> Result<Package> {
        if let Some(expected) = manifest_digest {
            digest::verify(expected, &manifest_bytes, "manifest")?;
        }
        let manifest = parse_manifest(&manifest_bytes)?;
        let config_blob = Blob {
            descriptor: manifest.config.clone(),
            data: config_data,
        };
        config_blob.verify()?;
        if manifest.layers.len() != layer_data.len() {
            return Err(Error::input(
                "manifest and layers disagree on the layer count",
            ));
        }
        let layers = manifest
            .layers
            .iter()
            .zip(layer_data)
            .map(|(d, data)| {
                let blob = Blob {
                    descriptor: d.clone(),
                    data,
                };
                blob.verify().map(|_| blob)
            })
            .collect::<Result<Vec<_>>>()?;
        let (format, config) = crate::formats::describe(&manifest, &config_blob.data, &layers)?;
        Ok(Package {
            manifest,
            manifest_bytes,
            format,
            config,
            config_blob,
            layers,
        })
    }

    /// The manifest digest: the package's content address.
    pub fn digest(&self) -> String {
        digest::sha256(&self.manifest_bytes)
    }

    /// Our metadata, or a clear error for images that are not cargo-ebpf packages.
    pub fn meta(&self) -> Result<&PackageMeta> {
        let meta = self.config.package.as_ref().ok_or_else(|| {
            Error::input(
                "this image is not a cargo-ebpf package (its config has no package metadata)",
            )
            .with_help(
                "build and package it with `cargo ebpf package`, or run a BPF object file directly",
            )
        })?;
        if meta.schema > format::SCHEMA_VERSION {
            return Err(Error::input(format!(
                "package metadata schema {} is newer than this runner understands ({})",
                meta.schema,
                format::SCHEMA_VERSION
            ))
            .with_help("upgrade cargo-ebpf"));
        }
        Ok(meta)
    }

    /// The BPF object: (file name, ELF bytes), extracted from the layer archive.
    pub fn object(&self) -> Result<(String, Vec<u8>)> {
        let meta = self.meta()?;
        if let Some(raw) = crate::formats::raw_object(self.format, &self.layers) {
            return Ok((meta.object.clone(), raw.to_vec()));
        }
        for layer in &self.layers {
            if layer.descriptor.media_type != format::MEDIA_TYPE_LAYER_TAR_GZIP {
                continue;
            }
            if let Some(data) = extract_file(&layer.data, &meta.object)? {
                return Ok((meta.object.clone(), data));
            }
        }
        Err(Error::input(format!(
            "the package has no layer holding its object {}",
            meta.object
        )))
    }

    /// Unpacks every tar+gzip layer into `dest` (see [`extract_all`]).
    pub fn extract_to(&self, dest: &Path) -> Result<()> {
        self.layers
            .iter()
            .filter(|l| l.descriptor.media_type == format::MEDIA_TYPE_LAYER_TAR_GZIP)
            .try_for_each(|l| extract_all(&l.data, dest))
    }

    /// Total size of config and layers.
    pub fn size(&self) -> u64 {
        self.config_blob.data.len() as u64
            + self.layers.iter().map(|l| l.data.len() as u64).sum::<u64>()
    }
}

/// Parses and sanity-checks a single-image manifest.
pub fn parse_manifest(bytes: &[u8]) -> Result<OciImageManifest> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::input(format!("the manifest is not valid JSON: {e}")))?;
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

fn annotations(meta: &PackageMeta, created: Option<&str>) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            a.insert(k.to_string(), v.to_string());
        }
    };
    put(format::ANNOTATION_TITLE, Some(&meta.name));
    put(format::ANNOTATION_VERSION, Some(&meta.version));
    put(format::ANNOTATION_DESCRIPTION, meta.description.as_deref());
    put(format::ANNOTATION_LICENSES, meta.license.as_deref());
    put(format::ANNOTATION_SOURCE, meta.source.as_deref());
    put(format::ANNOTATION_URL, meta.source.as_deref());
    put(format::ANNOTATION_CREATED, created);
    let authors = meta.authors.join(", ");
    put(format::ANNOTATION_AUTHORS, Some(&authors));
    a
}

fn json_string<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("maps of strings always serialize")
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::input(format!("cannot serialize: {e}")))
}

/// A tar holding one regular file at the root, with fixed metadata so output is reproducible.
/// A file to put into a package layer.
#[derive(Debug, Clone)]
pub struct LayerFile {
    /// Relative path inside the layer (`hello.bpf.o`, `bin/hello`).
    pub path: String,
    pub data: Vec<u8>,
    /// Unix permission bits (0o755 for executables).
    pub mode: u32,
}

impl LayerFile {
    pub fn new(path: &str, data: Vec<u8>, mode: u32) -> LayerFile {
        LayerFile {
            path: path.into(),
            data,
            mode,
        }
    }
}

fn tar_files(files: &[LayerFile]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(file.data.len() as u64);
        header.set_mode(file.mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder
            .append_data(&mut header, &file.path, file.data.as_slice())
            .map_err(|e| Error::input(format!("cannot archive {}: {e}", file.path)))?;
    }
    builder
        .into_inner()
        .map_err(|e| Error::input(format!("cannot archive the package files: {e}")))
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(data)
        .and_then(|_| enc.finish())
        .map_err(|e| Error::input(format!("cannot compress layer: {e}")))
}

/// Largest object we extract; BPF objects are far smaller, this stops gzip bombs.
const MAX_OBJECT_SIZE: u64 = 256 << 20;

fn bad_archive(e: std::io::Error) -> Error {
    Error::input(format!(
        "the package layer is not a valid tar+gzip archive: {e}"
    ))
}

/// The normal components of an archive path; absolute paths and `..` are refused so a
/// hostile layer cannot point outside its directory.
fn safe_components(path: &Path) -> Result<Vec<std::path::Component<'_>>> {
    let normal: Vec<_> = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    let safe = normal
        .iter()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !safe {
        return Err(Error::integrity(format!(
            "the package layer holds an unsafe path {:?} (absolute or with ..)",
            path
        ))
        .with_help("refuse this package: it tries to write outside its directory"));
    }
    Ok(normal)
}

/// Finds `name` at the root of a tar+gzip archive. Rejects absolute paths, `..`, links
/// and anything that is not a plain file at the root.
pub fn extract_file(tar_gz: &[u8], name: &str) -> Result<Option<Vec<u8>>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tar_gz));
    for entry in archive.entries().map_err(bad_archive)? {
        let entry = entry.map_err(bad_archive)?;
        let path = entry.path().map_err(bad_archive)?.into_owned();
        let normal = safe_components(&path)?;
        let is_target = normal.len() == 1 && normal[0].as_os_str() == name;
        if !is_target {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            return Err(Error::integrity(format!(
                "{name} in the package layer is not a regular file"
            )));
        }
        return read_limited(entry, name).map(Some);
    }
    Ok(None)
}

fn read_limited(entry: impl Read, name: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    entry
        .take(MAX_OBJECT_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(bad_archive)?;
    if data.len() as u64 > MAX_OBJECT_SIZE {
        return Err(Error::input(format!(
            "{name} is larger than {MAX_OBJECT_SIZE} bytes"
        )));
    }
    Ok(data)
}

/// Unpacks a whole tar+gzip layer into `dest` (an existing, empty directory the caller
/// owns). Only directories and regular files are accepted; paths that escape, links and
/// devices are refused; setuid/setgid bits are dropped. Used to start executable packages.
pub fn extract_all(tar_gz: &[u8], dest: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tar_gz));
    for entry in archive.entries().map_err(bad_archive)? {
        let entry = entry.map_err(bad_archive)?;
        let path = entry.path().map_err(bad_archive)?.into_owned();
        let target: std::path::PathBuf = std::iter::once(dest.as_os_str())
            .chain(safe_components(&path)?.iter().map(|c| c.as_os_str()))
            .collect();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| Error::io("create", &target, e))?;
            continue;
        }
        if !kind.is_file() {
            return Err(Error::integrity(format!(
                "{} in the package layer is a link or device, not a regular file",
                path.display()
            ))
            .with_help("refuse this package: only plain files and directories are allowed"));
        }
        let mode = entry.header().mode().map_err(bad_archive)? & 0o755;
        let data = read_limited(entry, &path.display().to_string())?;
        write_file(&target, &data, mode)?;
    }
    Ok(())
}

fn write_file(target: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(target)
        .map_err(|e| Error::io("create", target, e))?;
    file.write_all(data)
        .map_err(|e| Error::io("write", target, e))
}

/// The labels bpfman reads from an image config: program name → type, map name → type.
fn bpfman_labels(meta: &PackageMeta) -> BTreeMap<String, String> {
    let programs: BTreeMap<_, _> = meta
        .programs
        .iter()
        .map(|p| (p.name.clone(), p.prog_type.clone()))
        .collect();
    let maps: BTreeMap<_, _> = meta
        .maps
        .iter()
        .map(|m| (m.name.clone(), m.map_type.clone()))
        .collect();
    BTreeMap::from([
        (
            format::LABEL_BPFMAN_PROGRAMS.to_string(),
            json_string(&programs),
        ),
        (format::LABEL_BPFMAN_MAPS.to_string(), json_string(&maps)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ProgramInfo;

    fn meta() -> PackageMeta {
        let mut meta = PackageMeta::new("demo", "0.1.0", "demo.bpf.o");
        meta.description = Some("a demo".into());
        meta.license = Some("GPL-2.0".into());
        meta.authors = vec!["A <a@example.com>".into()];
        meta.programs = vec![ProgramInfo {
            name: "p".into(),
            section: "tracepoint/syscalls/sys_enter_openat".into(),
            prog_type: "tracepoint".into(),
        }];
        meta
    }

    #[test]
    fn build_is_deterministic_and_round_trips() {
        let a =
            Package::build(meta(), b"\x7fELF-ish", Some("2026-01-01T00:00:00Z".into())).unwrap();
        let b =
            Package::build(meta(), b"\x7fELF-ish", Some("2026-01-01T00:00:00Z".into())).unwrap();
        assert_eq!(a.digest(), b.digest());
        let back = Package::from_parts(
            a.manifest_bytes.clone(),
            Some(&a.digest()),
            a.config_blob.data.clone(),
            a.layers.iter().map(|l| l.data.clone()).collect(),
        )
        .unwrap();
        assert_eq!(
            back.object().unwrap(),
            ("demo.bpf.o".to_string(), b"\x7fELF-ish".to_vec())
        );
        assert_eq!(
            back.config.config.labels[format::LABEL_BPFMAN_PROGRAMS],
            r#"{"p":"tracepoint"}"#
        );
        assert_eq!(
            back.manifest.artifact_type.as_deref(),
            Some(format::ARTIFACT_TYPE)
        );
    }

    #[test]
    fn from_parts_rejects_corrupt_layer() {
        let a = Package::build(meta(), b"obj", None).unwrap();
        let mut layer = a.layers[0].data.clone();
        let last = layer.len() - 1;
        layer[last] ^= 0xff;
        let err = Package::from_parts(
            a.manifest_bytes.clone(),
            None,
            a.config_blob.data.clone(),
            vec![layer],
        )
        .unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity);
    }

    #[test]
    fn extract_rejects_path_traversal() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        let data = b"evil";
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // Write the name straight into the header: the tar crate's setters refuse "..".
        header.as_old_mut().name[..12].copy_from_slice(b"../escape.o\0");
        header.set_cksum();
        builder.append(&header, &data[..]).unwrap();
        let gz = gzip(&builder.into_inner().unwrap()).unwrap();
        let err = extract_file(&gz, "escape.o").unwrap_err();
        assert!(err.message.contains("unsafe path"), "{}", err.message);
    }

    #[test]
    fn extract_to_unpacks_files_with_their_modes() {
        use std::os::unix::fs::PermissionsExt;
        let files = [
            LayerFile::new("demo.bpf.o", b"obj".to_vec(), 0o644),
            LayerFile::new("bin/demo", b"#!/bin/sh\n".to_vec(), 0o4755),
        ];
        let pkg = Package::build_with_files(meta(), &files, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        pkg.extract_to(dir.path()).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("demo.bpf.o")).unwrap(),
            b"obj"
        );
        let mode = std::fs::metadata(dir.path().join("bin/demo"))
            .unwrap()
            .permissions()
            .mode();
        // Executable, but the setuid bit is dropped.
        assert_eq!(mode & 0o7777, 0o755);
    }

    #[test]
    fn extract_all_refuses_links() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "bin/demo", "/etc/passwd")
            .unwrap();
        let gz = gzip(&builder.into_inner().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = extract_all(&gz, dir.path()).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity);
        assert!(!dir.path().join("bin/demo").exists());
    }

    #[test]
    fn build_with_files_needs_the_object() {
        let files = [LayerFile::new("other.o", b"x".to_vec(), 0o644)];
        let err = Package::build_with_files(meta(), &files, None).unwrap_err();
        assert!(err.message.contains("demo.bpf.o"), "{}", err.message);
    }
}
