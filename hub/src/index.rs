//! What a pushed manifest says about a package, checked before the manifest is accepted and
//! written into the index after. The format is recognised by the runner's own
//! [`ebpf_package::formats`]: our `PackageMeta` in the image config, or for Inspektor Gadget,
//! bumblebee and bpfman images a description synthesised from the tool's metadata
//! (gadget.yaml, `io.ebpf.*` labels) and the object's BTF, as `cargo ebpf inspect` shows it.
//! The manifest's `org.opencontainers.image.*` annotations fill what is missing.
//!
//! A package's program must be a BPF ELF (`e_machine` = EM_BPF); layers are only read
//! (gunzip + tar listing in memory), never unpacked to disk or executed.

use std::collections::BTreeMap;
use std::io::Read;

use ebpf_package::blob::Blob;
use ebpf_package::formats;
use ebpf_package::spec::{
    self, Format, ImageConfig, PackageMeta, ProgramInfo, ANNOTATION_AUTHORS, ANNOTATION_CREATED,
    ANNOTATION_DESCRIPTION, ANNOTATION_LICENSES, ANNOTATION_SOURCE, LABEL_BPFMAN_PROGRAMS,
};
use oci_client::manifest::OciImageManifest;

use crate::db::{PackageRow, VersionRow};

/// Largest layer the hub will open to look for the BPF object.
const MAX_INSPECTED_LAYER: u64 = 64 * 1024 * 1024;
const EM_BPF: u16 = 247;

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
/// are stored, not indexed); Err(message) when a package is malformed.
pub fn inspect(
    manifest: &[u8],
    config_bytes: &[u8],
    read_blob: impl Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Option<Inspected>, String> {
    let Ok(m) = serde_json::from_slice::<OciImageManifest>(manifest) else {
        return Ok(None);
    };
    let format = match formats::detect(&m, Some(config_bytes)) {
        Ok(f) => f,
        Err(e) if claims_to_be_ebpf(&m, config_bytes) => return Err(e.message),
        Err(_) => return Ok(None),
    };
    match format {
        Format::CargoEbpf | Format::Eunomia => ours(&m, config_bytes, read_blob).map(Some),
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
    m: &OciImageManifest,
    config_bytes: &[u8],
    read_blob: impl Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Inspected, String> {
    let config: ImageConfig = serde_json::from_slice(config_bytes)
        .map_err(|e| format!("the package's image config is not valid: {e}"))?;
    let meta = config.package.ok_or_else(|| {
        format!(
            "the manifest says {} but its config has no {} metadata",
            spec::ARTIFACT_TYPE,
            spec::CONFIG_KEY
        )
    })?;
    let layer = m
        .layers
        .first()
        .ok_or("an eBPF package needs a layer holding its program")?;
    let bytes =
        read_blob(&layer.digest).map_err(|e| format!("cannot read layer {}: {e}", layer.digest))?;
    let gzipped = layer.media_type.ends_with("+gzip") || bytes.starts_with(&[0x1f, 0x8b]);
    check_program_layer(&bytes, gzipped, Some(&meta.object))?;
    Ok(Inspected {
        format: Format::CargoEbpf,
        meta,
        layer_digest: layer.digest.clone(),
        created: config.created,
        arches: vec![],
        readme: readme_in_layer(&bytes, gzipped),
    })
}

/// A gadget, bumblebee or bpfman image, described the way the runner describes it (which
/// also checks that its object is a BPF ELF).
fn other_tool(
    format: Format,
    m: &OciImageManifest,
    config_bytes: &[u8],
    read_blob: impl Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Inspected, String> {
    let mut layers = Vec::new();
    for l in &m.layers {
        if l.size < 0 || l.size as u64 > MAX_INSPECTED_LAYER {
            return Err(format!("layer {} is too large to inspect", l.digest));
        }
        let data =
            read_blob(&l.digest).map_err(|e| format!("cannot read layer {}: {e}", l.digest))?;
        layers.push(Blob {
            descriptor: l.clone(),
            data,
        });
    }
    let meta = match formats::describe(m, config_bytes, &layers) {
        Ok((_, config)) => config.package.ok_or("the image describes no package")?,
        // bpfman loads objects without BTF, which the runner cannot describe: index those
        // from their labels, as long as the layer holds a BPF ELF.
        Err(e) if format == Format::Bpfman => {
            bpfman_from_labels(config_bytes, &layers).ok_or(e.message)?
        }
        Err(e) => return Err(e.message),
    };
    let program_types = [spec::GADGET_EBPF_LAYER, spec::BUMBLEBEE_PROGRAM_LAYER];
    let program = m
        .layers
        .iter()
        .find(|l| program_types.contains(&l.media_type.as_str()))
        .or(m.layers.first())
        .ok_or("an eBPF package needs a layer holding its program")?;
    let readme = layers
        .iter()
        .find(|l| l.descriptor.digest == program.digest)
        .and_then(|l| readme_in_layer(&l.data, l.data.starts_with(&[0x1f, 0x8b])));
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
/// object's BTF); None unless its layer holds a BPF ELF.
fn bpfman_from_labels(config_bytes: &[u8], layers: &[Blob]) -> Option<PackageMeta> {
    let layer = layers.first()?;
    check_program_layer(&layer.data, layer.data.starts_with(&[0x1f, 0x8b]), None).ok()?;
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
const MAX_README: u64 = 512 * 1024;

/// `README.md` at the root of a tar (or tar+gzip) layer, as text.
fn readme_in_layer(layer: &[u8], gzipped: bool) -> Option<String> {
    let reader: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::GzDecoder::new(layer))
    } else {
        Box::new(layer)
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        let path = entry.path().ok()?.to_string_lossy().into_owned();
        let is_readme = path.trim_start_matches("./") == "README.md"
            && entry.header().entry_type().is_file()
            && entry.size() <= MAX_README;
        if is_readme {
            let mut text = Vec::new();
            entry.read_to_end(&mut text).ok()?;
            return Some(String::from_utf8_lossy(&text).into_owned());
        }
    }
    None
}

/// The layer must hold `object` (or, for bpfman images, some file) that is a BPF ELF.
fn check_program_layer(layer: &[u8], gzipped: bool, object: Option<&str>) -> Result<(), String> {
    let reader: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::GzDecoder::new(layer))
    } else {
        Box::new(layer)
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| format!("the program layer is not a tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("the program layer is damaged: {e}"))?;
        if !entry.header().entry_type().is_file() || entry.size() > MAX_INSPECTED_LAYER {
            continue;
        }
        let path = entry
            .path()
            .map(|p| p.to_string_lossy().trim_start_matches("./").to_string());
        let path = path.map_err(|e| format!("bad path in the program layer: {e}"))?;
        if object.is_some_and(|o| o != path) {
            continue;
        }
        let mut head = [0u8; 20];
        let is_bpf = entry.read_exact(&mut head).is_ok() && is_bpf_elf(&head);
        match (object, is_bpf) {
            (_, true) => return Ok(()),
            (Some(o), false) => {
                return Err(format!(
                    "{o} in the program layer is not a BPF ELF (EM_BPF); refusing the package"
                ))
            }
            (None, false) => {}
        }
    }
    Err(match object {
        Some(o) => format!("the program layer does not contain {o}"),
        None => "the program layer holds no BPF ELF (EM_BPF)".to_string(),
    })
}

/// An ELF whose `e_machine`, in its own byte order, is EM_BPF.
pub fn is_bpf_elf(head: &[u8]) -> bool {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return false;
    }
    let raw = [head[18], head[19]];
    let machine = match head[5] {
        1 => u16::from_le_bytes(raw),
        2 => u16::from_be_bytes(raw),
        _ => return false,
    };
    machine == EM_BPF
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
        let digest = |b: &[u8]| crate::blobs::sha256_digest(b);
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
        let i = inspect(&manifest, &config, read).unwrap().expect("indexed");
        assert_eq!(i.format, Format::Bpfman);
        assert_eq!(i.meta.programs[0].name, "count_packets");
        assert_eq!(i.meta.programs[0].prog_type, "xdp");
        assert_eq!(i.meta.arch, "aarch64");
        // Not a BPF object: refused, with the runner's reason.
        let (manifest, config, blobs) = bpfman_image(&elf(62));
        let read = |d: &str| Ok(blobs[d].clone());
        assert!(inspect(&manifest, &config, read).is_err());
    }

    #[test]
    fn program_layer_must_hold_a_bpf_elf() {
        let good = tar_gz(&[("x.bpf.o", &elf(247))]);
        assert!(check_program_layer(&good, true, Some("x.bpf.o")).is_ok());
        assert!(check_program_layer(&good, true, None).is_ok());
        let x86 = tar_gz(&[("x.bpf.o", &elf(62))]);
        assert!(check_program_layer(&x86, true, Some("x.bpf.o"))
            .unwrap_err()
            .contains("not a BPF ELF"));
        let script = tar_gz(&[("x.bpf.o", b"#!/bin/sh\nrm -rf /\n")]);
        assert!(check_program_layer(&script, true, Some("x.bpf.o")).is_err());
        assert!(check_program_layer(&good, true, Some("other.o"))
            .unwrap_err()
            .contains("does not contain"));
        assert!(check_program_layer(b"garbage", true, None).is_err());
    }
}
