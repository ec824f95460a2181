//! What a pushed manifest says about a package, checked before the manifest is accepted and
//! written into the index after. The format is recognised by the runner's own
//! [`ebpf_package::formats`]: our `PackageMeta` in the image config, or for Inspektor Gadget,
//! bumblebee and bpfman images a description synthesised from the tool's metadata
//! (gadget.yaml, `io.ebpf.*` labels) and the object's BTF, as `cargo ebpf inspect` shows it.
//! The manifest's `org.opencontainers.image.*` annotations fill what is missing.
//!
//! A package's program must be a BPF ELF (`e_machine` = EM_BPF, checked by the runner's
//! [`ebpf_package::object::check_bpf_elf`], any byte order: the hub serves every arch);
//! layers are only read in memory with the runner's [`extract_file`], never unpacked to
//! disk or executed.
//!
//! Failures are the runner's errors, as the runner library returns them: Input when the
//! package is malformed (the hub answers 400 `MANIFEST_INVALID`, see [`crate::error`]).

use std::collections::BTreeMap;

use ebpf_package::blob::Blob;
use ebpf_package::formats;
use ebpf_package::layer::extract_file;
use ebpf_package::object::check_bpf_elf;
use ebpf_package::spec::{
    self, Format, ImageConfig, PackageMeta, ProgramInfo, ANNOTATION_AUTHORS, ANNOTATION_CREATED,
    ANNOTATION_DESCRIPTION, ANNOTATION_LICENSES, ANNOTATION_SOURCE, LABEL_BPFMAN_PROGRAMS,
};
use ebpf_package::{Error, Result};
use oci_client::manifest::OciImageManifest;

use crate::db::{PackageRow, VersionRow};

/// Largest layer the hub will open to look for the BPF object.
const MAX_INSPECTED_LAYER: u64 = 64 * 1024 * 1024;

/// The package a manifest carries: the parts needed for the index rows.
pub struct Inspected {
    pub format: Format,
    /// Ours, or synthesised from another tool's metadata and the object.
    pub meta: PackageMeta,
    /// The layer holding the program (the object download reads it).
    pub layer_digest: String,
    pub created: Option<String>,
    /// Every architecture of a multi-arch index; empty for a single image (`meta.arch`).
    pub arches: Vec<String>,
    /// `README.md` from the program layer (`cargo ebpf package` puts the project's there).
    pub readme: Option<String>,
}

/// Reads the image `manifest` and its config (`config_bytes`) and, for an eBPF package of a
/// format we know, checks its program. Ok(None) for images that are not eBPF packages (they
/// are stored, not indexed); an Input error when a package is malformed.
pub fn read_package(
    manifest: &[u8],
    config_bytes: &[u8],
    read_blob: impl Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Option<Inspected>> {
    let Ok(m) = serde_json::from_slice::<OciImageManifest>(manifest) else {
        return Ok(None);
    };
    let format = match formats::detect(&m, Some(config_bytes)) {
        Ok(f) => f,
        Err(e) if claims_to_be_ebpf(&m, config_bytes) => return Err(e),
        Err(_) => return Ok(None),
    };
    match format {
        Format::CargoEbpf | Format::Eunomia => ours(format, &m, config_bytes, read_blob).map(Some),
        foreign => other_tool(foreign, &m, config_bytes, read_blob).map(Some),
    }
}

/// Says it is an eBPF package (ours, a gadget, a bumblebee or bpfman image), so a failure
/// to read it refuses the push instead of storing it unindexed.
fn claims_to_be_ebpf(m: &OciImageManifest, config: &[u8]) -> bool {
    let bpfman_label = serde_json::from_slice::<serde_json::Value>(config)
        .is_ok_and(|c| c["config"]["Labels"].get(LABEL_BPFMAN_PROGRAMS).is_some());
    let media_types = [
        spec::GADGET_CONFIG,
        spec::GADGET_EBPF_LAYER,
        spec::BUMBLEBEE_CONFIG,
    ];
    let artifacts = [spec::ARTIFACT_TYPE, spec::GADGET_ARTIFACT_TYPE];
    bpfman_label
        || m.artifact_type
            .as_deref()
            .is_some_and(|a| artifacts.contains(&a))
        || media_types.contains(&m.config.media_type.as_str())
        || m.layers
            .iter()
            .any(|l| media_types.contains(&l.media_type.as_str()))
}

/// Our package: `PackageMeta` from the config, the object checked in the first layer.
fn ours(
    format: Format,
    m: &OciImageManifest,
    config_bytes: &[u8],
    read_blob: impl Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Inspected> {
    let config: ImageConfig = serde_json::from_slice(config_bytes)
        .map_err(|e| Error::input("the package's image config is not valid").with_source(e))?;
    let meta = config.package.ok_or_else(|| {
        Error::input(format!(
            "the manifest says {} but its config has no {} metadata",
            spec::ARTIFACT_TYPE,
            spec::CONFIG_KEY
        ))
    })?;
    let layer = m.layers.first().ok_or_else(no_program_layer)?;
    let bytes = read_layer(&read_blob, &layer.digest)?;
    check_program_layer(&bytes, &meta.object)?;
    Ok(Inspected {
        format,
        meta,
        layer_digest: layer.digest.clone(),
        created: config.created,
        arches: vec![],
        readme: readme_in_layer(&bytes),
    })
}

fn no_program_layer() -> Error {
    Error::input("an eBPF package needs a layer holding its program")
}

/// A layer's bytes from the blob store; failing to read one is our storage failing.
fn read_layer(
    read_blob: impl Fn(&str) -> std::io::Result<Vec<u8>>,
    digest: &str,
) -> Result<Vec<u8>> {
    read_blob(digest)
        .map_err(|e| Error::environment(format!("cannot read layer {digest}")).with_source(e))
}

/// A gadget, bumblebee or bpfman image, described the way the runner describes it (which
/// also checks that its object is a BPF ELF).
fn other_tool(
    format: Format,
    m: &OciImageManifest,
    config_bytes: &[u8],
    read_blob: impl Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Inspected> {
    let mut layers = Vec::new();
    for l in &m.layers {
        if l.size < 0 || l.size as u64 > MAX_INSPECTED_LAYER {
            let why = format!("layer {} is too large to inspect", l.digest);
            return Err(Error::input(why));
        }
        let data = read_layer(&read_blob, &l.digest)?;
        layers.push(Blob {
            descriptor: l.clone(),
            data: data.into(),
        });
    }
    let meta = match formats::recognize(m, config_bytes, &layers) {
        Ok((_, config)) => config
            .package
            .ok_or_else(|| Error::input("the image describes no package"))?,
        // bpfman loads objects without BTF, which the runner cannot describe: index those
        // from their labels, as long as the layer holds a BPF ELF.
        Err(e) if format == Format::Bpfman => bpfman_from_labels(config_bytes, &layers).ok_or(e)?,
        Err(e) => return Err(e),
    };
    let program_types = [spec::GADGET_EBPF_LAYER, spec::BUMBLEBEE_PROGRAM_LAYER];
    let program = m
        .layers
        .iter()
        .find(|l| program_types.contains(&l.media_type.as_str()))
        .or(m.layers.first())
        .ok_or_else(no_program_layer)?;
    let readme = layers
        .iter()
        .find(|l| l.descriptor.digest == program.digest)
        .and_then(|l| readme_in_layer(&l.data.bytes().ok()?));
    Ok(Inspected {
        format,
        meta,
        layer_digest: program.digest.clone(),
        created: None,
        arches: vec![],
        readme,
    })
}

/// A bpfman image's programs from its `io.ebpf.programs` label (no sections: those need the
/// object's BTF); None unless its layer holds a BPF ELF, found the way the runner finds it.
fn bpfman_from_labels(config_bytes: &[u8], layers: &[Blob]) -> Option<PackageMeta> {
    let layer = layers.first()?;
    formats::bpfman::find_object(&layer.data.bytes().ok()?).ok()?;
    let config: serde_json::Value = serde_json::from_slice(config_bytes).ok()?;
    let label = config["config"]["Labels"][LABEL_BPFMAN_PROGRAMS].as_str()?;
    let programs: BTreeMap<String, String> = serde_json::from_str(label).ok()?;
    let mut meta = PackageMeta::new("", "", "");
    meta.programs = programs
        .into_iter()
        .map(|(name, prog_type)| ProgramInfo {
            name,
            section: String::new(),
            prog_type,
        })
        .collect();
    let arch = config["architecture"]
        .as_str()
        .and_then(spec::normalize_arch);
    meta.arch = arch.unwrap_or_default().to_string();
    Some(meta)
}

/// Largest README the index keeps.
const MAX_README: usize = 512 * 1024;

/// `README.md` at the root of a tar+gzip layer, as text; None when there is none (or the
/// layer is no archive: gadget and bumblebee layers are the object itself).
fn readme_in_layer(layer: &[u8]) -> Option<String> {
    let text = extract_file(layer, "README.md").ok()??;
    (text.len() <= MAX_README).then(|| String::from_utf8_lossy(&text).into_owned())
}

/// The program layer (tar+gzip) must hold `object`, and it must be a BPF ELF.
fn check_program_layer(layer: &[u8], object: &str) -> Result<()> {
    let bytes = extract_file(layer, object)?
        .ok_or_else(|| Error::input(format!("the program layer does not contain {object}")))?;
    check_bpf_elf(&bytes).map_err(|e| {
        Error::input(format!(
            "{object} in the program layer is not a BPF ELF (EM_BPF): {e}; refusing the package"
        ))
    })
}

/// The index rows for version `tag` of repository `repo`; `annotations` are the pushed
/// manifest's (an index's, for a multi-arch package).
pub fn rows(
    repo: &str,
    tag: &str,
    digest: &str,
    size: i64,
    annotations: &BTreeMap<String, String>,
    i: &Inspected,
) -> (PackageRow, VersionRow) {
    let ann = |k: &str| annotations.get(k).cloned().unwrap_or_default();
    let (owner, name) = repo.split_once('/').unwrap_or(("", repo));
    let meta = &i.meta;
    let or_ann = |v: Option<&String>, k: &str| {
        v.cloned()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| ann(k))
    };
    let mut authors = meta.authors.clone();
    if authors.is_empty() && !ann(ANNOTATION_AUTHORS).is_empty() {
        authors = ann(ANNOTATION_AUTHORS)
            .split(',')
            .map(|a| a.trim().to_string())
            .collect();
    }
    let package = PackageRow {
        repo: repo.to_string(),
        owner: owner.to_string(),
        name: name.to_string(),
        description: or_ann(meta.description.as_ref(), ANNOTATION_DESCRIPTION),
        keywords: meta.keywords.clone(),
        license: or_ann(meta.license.as_ref(), ANNOTATION_LICENSES),
        authors,
        source: or_ann(meta.source.as_ref(), ANNOTATION_SOURCE),
        latest_version: tag.to_string(),
        readme: i.readme.clone().unwrap_or_default(),
        ..Default::default()
    };
    let arch = if i.arches.is_empty() {
        meta.arch.clone()
    } else {
        i.arches.join(", ")
    };
    let runtime = match i.format {
        Format::CargoEbpf | Format::Eunomia => meta.runtime.kind().to_string(),
        other => other.name().to_string(),
    };
    let version = VersionRow {
        repo: repo.to_string(),
        version: tag.to_string(),
        digest: digest.to_string(),
        size,
        created: i.created.clone().unwrap_or_else(|| ann(ANNOTATION_CREATED)),
        arch,
        runtime,
        object: meta.object.clone(),
        layer_digest: i.layer_digest.clone(),
        programs: serde_json::to_string(&meta.programs).expect("programs serialize"),
        format: i.format.name().to_string(),
        meta: serde_json::to_string(meta).expect("metadata serializes"),
        ..Default::default()
    };
    (package, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            builder.append_data(&mut h, name, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn elf(machine: u16) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b
    }

    /// A bpfman image (config with `io.ebpf.programs`, one tar+gzip layer) holding `object`.
    fn bpfman_image(
        object: &[u8],
    ) -> (Vec<u8>, Vec<u8>, std::collections::HashMap<String, Vec<u8>>) {
        let layer = tar_gz(&[("prog.o", object)]);
        let config = serde_json::json!({
            "architecture": "arm64", "os": "linux",
            "config": {"Labels": {"io.ebpf.programs": r#"{"count_packets":"xdp"}"#}},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        let config = serde_json::to_vec(&config).unwrap();
        let digest = |b: &[u8]| ebpf_package::digest::sha256(b);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": spec::MEDIA_TYPE_MANIFEST,
            "config": {"mediaType": spec::MEDIA_TYPE_CONFIG, "digest": digest(&config), "size": config.len()},
            "layers": [{"mediaType": spec::MEDIA_TYPE_LAYER_TAR_GZIP, "digest": digest(&layer), "size": layer.len()}],
        });
        let blobs = [(digest(&layer), layer)].into_iter().collect();
        (serde_json::to_vec(&manifest).unwrap(), config, blobs)
    }

    #[test]
    fn bpfman_objects_without_btf_are_indexed_from_their_labels() {
        let (manifest, config, blobs) = bpfman_image(&elf(247));
        let read = |d: &str| Ok(blobs[d].clone());
        let i = read_package(&manifest, &config, read)
            .unwrap()
            .expect("indexed");
        assert_eq!(i.format, Format::Bpfman);
        assert_eq!(i.meta.programs[0].name, "count_packets");
        assert_eq!(i.meta.programs[0].prog_type, "xdp");
        assert_eq!(i.meta.arch, "aarch64");
        // Not a BPF object: refused, with the runner's reason.
        let (manifest, config, blobs) = bpfman_image(&elf(62));
        let read = |d: &str| Ok(blobs[d].clone());
        assert!(read_package(&manifest, &config, read).is_err());
    }

    #[test]
    fn program_layer_must_hold_a_bpf_elf() {
        let good = tar_gz(&[("x.bpf.o", &elf(247))]);
        assert!(check_program_layer(&good, "x.bpf.o").is_ok());
        let x86 = tar_gz(&[("x.bpf.o", &elf(62))]);
        let err = check_program_layer(&x86, "x.bpf.o").unwrap_err();
        assert!(err.message.contains("not a BPF ELF (EM_BPF)"), "{err}");
        let script = tar_gz(&[("x.bpf.o", b"#!/bin/sh\nrm -rf /\n")]);
        assert!(check_program_layer(&script, "x.bpf.o").is_err());
        let err = check_program_layer(&good, "other.o").unwrap_err();
        assert!(err.message.contains("does not contain"), "{err}");
        assert!(check_program_layer(b"garbage", "x.bpf.o").is_err());
        // Any byte order: the hub serves objects for every host.
        let mut big = elf(0);
        big[5] = 2;
        big[18..20].copy_from_slice(&247u16.to_be_bytes());
        let big = tar_gz(&[("x.bpf.o", &big)]);
        assert!(check_program_layer(&big, "x.bpf.o").is_ok());
    }
}
