//! bpfman bytecode images: an ordinary image config whose labels name the programs
//! (`io.ebpf.programs`) and maps (`io.ebpf.maps`), and one tar+gzip layer with the object
//! file at its root. The object's name is not recorded anywhere, so it is found: the one
//! eBPF ELF at the archive root.

use std::collections::BTreeMap;
use std::io::Read;

use oci_client::manifest::OciImageManifest;
use serde_json::Value;

use super::{malformed, stand_in_config, synthesize, Described};
use crate::blob::Blob;
use crate::layer::extract_file;
use crate::spec::{Format, ImageConfig, LABEL_BPFMAN_PROGRAMS};
use crate::{object, Result};

/// Files at the archive root we look at; more is not a bytecode image.
const MAX_ROOT_FILES: usize = 64;

pub(super) fn image_config(
    manifest: &OciImageManifest,
    config: &[u8],
    layers: &[Blob],
) -> Result<ImageConfig> {
    let config: Value = serde_json::from_slice(config)
        .map_err(|e| malformed(Format::Bpfman, format!("its config is not JSON: {e}")))?;
    let labels = &config["config"]["Labels"];
    let programs = json_label(labels, LABEL_BPFMAN_PROGRAMS)?;
    let layer = layers
        .first()
        .ok_or_else(|| malformed(Format::Bpfman, "it has no layer"))?;
    let (name, elf) = find_object(&layer.data.bytes()?)?;
    let mut described = Described::from_annotations(manifest);
    let label = |k: &str| labels[k].as_str().map(String::from);
    described.name = described
        .name
        .or_else(|| label(crate::spec::ANNOTATION_TITLE));
    described.version = described
        .version
        .or_else(|| label(crate::spec::ANNOTATION_VERSION));
    let arch = config["architecture"].as_str();
    let meta = synthesize(described, &name, &elf, None, arch)?;
    if let Some(missing) = programs
        .keys()
        .find(|p| !meta.programs.iter().any(|q| &&q.name == p))
    {
        return Err(malformed(
            Format::Bpfman,
            format!(
                "its {LABEL_BPFMAN_PROGRAMS} label names `{missing}`, which {name} does not hold"
            ),
        ));
    }
    Ok(stand_in_config(meta))
}

/// A label holding a JSON object {name: type}.
fn json_label(labels: &Value, key: &str) -> Result<BTreeMap<String, String>> {
    let text = labels[key].as_str().unwrap_or("{}");
    serde_json::from_str(text).map_err(|e| {
        malformed(
            Format::Bpfman,
            format!("its {key} label is not a JSON object of names to types: {e}"),
        )
    })
}

/// The one eBPF ELF among the regular files at the archive root: (file name, bytes).
pub fn find_object(tar_gz: &[u8]) -> Result<(String, Vec<u8>)> {
    let mut objects = Vec::new();
    for name in root_files(tar_gz)? {
        if let Some(bytes) = extract_file(tar_gz, &name)? {
            if object::check_elf(&bytes).is_ok() {
                objects.push((name, bytes));
            }
        }
    }
    match objects.len() {
        1 => Ok(objects.remove(0)),
        0 => Err(malformed(
            Format::Bpfman,
            "its layer holds no eBPF object at the archive root",
        )),
        n => {
            let names: Vec<&str> = objects.iter().map(|(n, _)| n.as_str()).collect();
            Err(malformed(
                Format::Bpfman,
                format!(
                    "its layer holds {n} eBPF objects ({}), expected one",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// Names of the regular files directly at the archive root (`x.o`, `./x.o`, `/x.o`).
fn root_files(tar_gz: &[u8]) -> Result<Vec<String>> {
    let bad = |e: std::io::Error| {
        malformed(
            Format::Bpfman,
            format!("its layer is not a valid tar+gzip archive: {e}"),
        )
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tar_gz));
    let mut names = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(bad)?.into_owned();
        let parts: Vec<_> = path
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect();
        if let [single] = parts.as_slice() {
            names.push(single.as_os_str().to_string_lossy().into_owned());
        }
        // Skip the content without buffering it.
        std::io::copy(&mut entry.by_ref().take(u64::MAX), &mut std::io::sink()).map_err(bad)?;
        if names.len() > MAX_ROOT_FILES {
            return Err(malformed(Format::Bpfman, "its layer holds too many files"));
        }
    }
    Ok(names)
}
