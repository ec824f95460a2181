//! A package in memory: its manifest, config and layers, each with the exact bytes that
//! were (or will be) digested. Built from a BPF object by `cargo ebpf package`, read back
//! from an OCI layout, the local store or a registry by the runner.

use std::collections::BTreeMap;
use std::path::Path;

use oci_client::manifest::{ImageIndexEntry, OciImageManifest};

use crate::blob::{parse_manifest, Blob, BlobData};
use crate::layer::{extract_all, extract_file, write_layer, LayerFile};
use crate::platform::Platform;
use crate::spec::{self, Format, ImageConfig, PackageMeta};
use crate::{digest, Error, Result};

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
        let (layer, diff_id) = write_layer(files)?;
        let layer = Blob::spooled(spec::MEDIA_TYPE_LAYER_TAR_GZIP, layer);

        let annotations = annotations(&meta, created.as_deref());
        let mut labels = bpfman_labels(&meta);
        labels.extend(annotations.clone());

        let config = ImageConfig {
            created: created.clone(),
            architecture: spec::oci_arch(&meta.arch).to_string(),
            os: "linux".into(),
            config: spec::ImageConfigConfig { labels },
            rootfs: spec::RootFs {
                fs_type: "layers".into(),
                diff_ids: vec![diff_id],
            },
            package: Some(meta),
        };
        let config_blob = Blob::new(spec::MEDIA_TYPE_CONFIG, to_json(&config)?);
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(spec::MEDIA_TYPE_MANIFEST.to_string()),
            config: config_blob.descriptor.clone(),
            layers: vec![layer.descriptor.clone()],
            subject: None,
            artifact_type: Some(spec::ARTIFACT_TYPE.to_string()),
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
    /// `layer_data` holds the [`crate::formats::needed_layers`], in manifest order.
    pub fn from_parts(
        manifest_bytes: Vec<u8>,
        manifest_digest: Option<&str>,
        config_data: Vec<u8>,
        layer_data: Vec<BlobData>,
    ) -> Result<Package> {
        if let Some(expected) = manifest_digest {
            digest::verify(expected, &manifest_bytes, "manifest")?;
        }
        let manifest = parse_manifest(&manifest_bytes)?;
        let config_blob = Blob {
            descriptor: manifest.config.clone(),
            data: config_data.into(),
        };
        config_blob.verify()?;
        // Only the layers a runner uses were fetched ([`crate::formats::needed_layers`]).
        let needed = crate::formats::needed_layers(&manifest);
        if needed.len() != layer_data.len() {
            return Err(Error::input(
                "manifest and layers disagree on the layer count",
            ));
        }
        let layers = needed
            .into_iter()
            .zip(layer_data)
            .map(|(d, data)| {
                let blob = Blob {
                    descriptor: d.clone(),
                    data,
                };
                blob.verify().map(|_| blob)
            })
            .collect::<Result<Vec<_>>>()?;
        let (format, config) =
            crate::formats::recognize(&manifest, &config_blob.data.bytes()?, &layers)?;
        Ok(Package {
            manifest,
            manifest_bytes,
            format,
            config,
            config_blob,
            layers,
        })
    }

    /// A package for an eunomia-bpf `package.json` (see [`crate::formats::eunomia`]). It
    /// lives in memory only; its format says eunomia.
    pub fn from_eunomia_json(json: &[u8]) -> Result<Package> {
        let (meta, elf) = crate::formats::eunomia::read(json)?;
        let mut pkg = Package::build(meta, &elf, None)?;
        pkg.format = Format::Eunomia;
        Ok(pkg)
    }

    /// A package for an `ecc` archive: its `package.json`, plus the minimal per-kernel BTFs
    /// packed beside it (BTFHub's layout) as this package's btfgen layer, so the runner uses
    /// them on kernels without BTF as it does ours.
    pub fn from_eunomia_archive(archive: &[u8]) -> Result<Package> {
        let json = crate::formats::eunomia::package_json_in(archive)?;
        let pkg = Package::from_eunomia_json(&json)?;
        let btfs = crate::btfgen::collect(archive)?;
        if btfs.is_empty() {
            return Ok(pkg);
        }
        pkg.with_btfgen(crate::btfgen::layer(&btfs)?)
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
        if meta.schema > spec::SCHEMA_VERSION {
            return Err(Error::input(format!(
                "package metadata schema {} is newer than this runner understands ({})",
                meta.schema,
                spec::SCHEMA_VERSION
            ))
            .with_help("upgrade cargo-ebpf"));
        }
        Ok(meta)
    }

    /// The BPF object: (file name, ELF bytes), extracted from the layer archive.
    pub fn object(&self) -> Result<(String, Vec<u8>)> {
        let meta = self.meta()?;
        if let Some(raw) = crate::formats::raw_object(self.format, &self.layers)? {
            return Ok((meta.object.clone(), raw.into_owned()));
        }
        for layer in &self.layers {
            if layer.descriptor.media_type != spec::MEDIA_TYPE_LAYER_TAR_GZIP {
                continue;
            }
            if let Some(data) = extract_file(layer.data.reader()?, &meta.object)? {
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
            .filter(|l| l.descriptor.media_type == spec::MEDIA_TYPE_LAYER_TAR_GZIP)
            .try_for_each(|l| extract_all(l.data.reader()?, dest))
    }

    /// The platform this package was built for (from its image config).
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.config.os.clone(),
            architecture: self.config.architecture.clone(),
        }
    }

    /// The index.json entry describing this package's manifest.
    pub fn index_entry(&self) -> ImageIndexEntry {
        // Platform's field types live in oci-spec; build it from JSON rather than depend on it.
        let platform = serde_json::to_value(self.platform())
            .and_then(serde_json::from_value)
            .ok();
        ImageIndexEntry {
            media_type: spec::MEDIA_TYPE_MANIFEST.to_string(),
            digest: self.digest(),
            size: self.manifest_bytes.len() as i64,
            platform,
            annotations: None,
            artifact_type: self.manifest.artifact_type.clone(),
        }
    }

    /// This package with `btfgen` (see [`crate::btfgen::layer`]) as an extra layer, listed
    /// in the config's diff_ids like any layer, so registries and skopeo see a normal image.
    pub fn with_btfgen(mut self, btfgen: Blob) -> Result<Package> {
        let tar = gunzip_bounded(&btfgen.data.bytes()?)?;
        self.config.rootfs.diff_ids.push(digest::sha256(&tar));
        self.config_blob = Blob::new(spec::MEDIA_TYPE_CONFIG, to_json(&self.config)?);
        self.manifest.config = self.config_blob.descriptor.clone();
        self.manifest.layers.push(btfgen.descriptor.clone());
        self.manifest_bytes = to_json(&self.manifest)?;
        self.layers.push(btfgen);
        Ok(self)
    }

    /// The per-kernel BTF layer (ours or Inspektor Gadget's btfgen), if it carries one.
    pub fn btfgen_layer(&self) -> Option<&Blob> {
        self.layers
            .iter()
            .find(|l| crate::btfgen::is_btfgen_layer(&l.descriptor.media_type))
    }

    /// Total size of config and layers.
    pub fn size(&self) -> u64 {
        self.config_blob.data.len() + self.layers.iter().map(|l| l.data.len()).sum::<u64>()
    }
}

fn annotations(meta: &PackageMeta, created: Option<&str>) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            a.insert(k.to_string(), v.to_string());
        }
    };
    put(spec::ANNOTATION_TITLE, Some(&meta.name));
    put(spec::ANNOTATION_VERSION, Some(&meta.version));
    put(spec::ANNOTATION_DESCRIPTION, meta.description.as_deref());
    put(spec::ANNOTATION_LICENSES, meta.license.as_deref());
    put(spec::ANNOTATION_SOURCE, meta.source.as_deref());
    put(spec::ANNOTATION_URL, meta.source.as_deref());
    put(spec::ANNOTATION_CREATED, created);
    let authors = meta.authors.join(", ");
    put(spec::ANNOTATION_AUTHORS, Some(&authors));
    a
}

fn json_string<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("maps of strings always serialize")
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::input("cannot serialize").with_source(e))
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
            spec::LABEL_BPFMAN_PROGRAMS.to_string(),
            json_string(&programs),
        ),
        (spec::LABEL_BPFMAN_MAPS.to_string(), json_string(&maps)),
    ])
}

/// A gzip stream decompressed, refused beyond the unpacked-size cap.
fn gunzip_bounded(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(crate::layer::MAX_UNPACKED_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::input("the BTF layer is not gzip").with_source(e))?;
    if out.len() as u64 > crate::layer::MAX_UNPACKED_SIZE {
        return Err(Error::input("the BTF layer unpacks beyond the size limit")
            .with_help("package fewer kernels (--btfhub-archive with a smaller archive)"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ProgramInfo;

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
            a.config_blob.data.bytes().unwrap().into_owned(),
            a.layers.iter().map(|l| l.data.clone()).collect(),
        )
        .unwrap();
        assert_eq!(
            back.object().unwrap(),
            ("demo.bpf.o".to_string(), b"\x7fELF-ish".to_vec())
        );
        assert_eq!(
            back.config.config.labels[spec::LABEL_BPFMAN_PROGRAMS],
            r#"{"p":"tracepoint"}"#
        );
        assert_eq!(
            back.manifest.artifact_type.as_deref(),
            Some(spec::ARTIFACT_TYPE)
        );
    }

    #[test]
    fn from_parts_rejects_corrupt_layer() {
        let a = Package::build(meta(), b"obj", None).unwrap();
        let mut layer = a.layers[0].data.bytes().unwrap().into_owned();
        let last = layer.len() - 1;
        layer[last] ^= 0xff;
        let err = Package::from_parts(
            a.manifest_bytes.clone(),
            None,
            a.config_blob.data.bytes().unwrap().into_owned(),
            vec![layer.into()],
        )
        .unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity);
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
    fn build_with_files_needs_the_object() {
        let files = [LayerFile::new("other.o", b"x".to_vec(), 0o644)];
        let err = Package::build_with_files(meta(), &files, None).unwrap_err();
        assert!(err.message.contains("demo.bpf.o"), "{}", err.message);
    }

    #[test]
    fn bpfman_labels_spell_map_types_as_bpfman_does() {
        use libbpf_rs::MapType;
        let mut meta = meta();
        let map = |name: &str, ty| crate::spec::MapInfo {
            name: name.into(),
            map_type: crate::object::map_type_name(ty).into(),
            key_size: 4,
            value_size: 8,
            max_entries: 1,
        };
        meta.maps = vec![
            map("a", MapType::PercpuArray),
            map("h", MapType::PercpuHash),
            map("l", MapType::LruPercpuHash),
            map("r", MapType::RingBuf),
        ];
        let labels = bpfman_labels(&meta);
        let maps: BTreeMap<String, String> =
            serde_json::from_str(&labels[spec::LABEL_BPFMAN_MAPS]).unwrap();
        let want = [
            ("a", "per_cpu_array"),
            ("h", "per_cpu_hash"),
            ("l", "lru_per_cpu_hash"),
            ("r", "ringbuf"),
        ];
        for (name, ty) in want {
            assert_eq!(maps[name], ty);
        }
        let programs: BTreeMap<String, String> =
            serde_json::from_str(&labels[spec::LABEL_BPFMAN_PROGRAMS]).unwrap();
        assert_eq!(programs["p"], "tracepoint");
    }
}
