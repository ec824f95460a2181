//! What a pushed manifest says about a package, checked before the manifest is accepted and
//! written into the index after: our `PackageMeta` in the image config, bpfman's
//! `io.ebpf.*` labels, and the manifest's `org.opencontainers.image.*` annotations.
//!
//! A package's program layer must hold a BPF ELF (`e_machine` = EM_BPF); layers are only
//! read (gunzip + tar listing in memory), never unpacked to disk or executed.

use std::collections::BTreeMap;
use std::io::Read;

use ebpf_runner::format::{
    self, ImageConfig, PackageMeta, ProgramInfo, ANNOTATION_AUTHORS, ANNOTATION_CREATED,
    ANNOTATION_DESCRIPTION, ANNOTATION_LICENSES, ANNOTATION_SOURCE, LABEL_BPFMAN_PROGRAMS,
};

use crate::db::{PackageRow, VersionRow};

/// Largest layer the hub will open to look for the BPF object.
const MAX_INSPECTED_LAYER: u64 = 64 * 1024 * 1024;
const EM_BPF: u16 = 247;

/// The package a manifest carries: the parts needed for the index rows.
pub struct Inspected {
    pub meta: Option<PackageMeta>,
    /// bpfman `io.ebpf.programs`: function name → program type.
    pub bpfman_programs: BTreeMap<String, String>,
    pub layer_digest: String,
    pub created: Option<String>,
}

/// The manifest's annotations and config/layer digests, as the indexer needs them.
pub struct ManifestFacts<'a> {
    pub artifact_type: Option<&'a str>,
    pub layers: Vec<(&'a str, &'a str)>,
    pub annotations: &'a BTreeMap<String, String>,
}

/// Reads the config (`config_bytes`) and, for a package, checks its program layer. Ok(None)
/// for images that are not eBPF packages; Err(message) when a package is malformed.
pub fn inspect(
    facts: &ManifestFacts<'_>,
    config_bytes: Option<&[u8]>,
    read_layer: impl Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Option<Inspected>, String> {
    let config: Option<ImageConfig> = config_bytes.and_then(|b| serde_json::from_slice(b).ok());
    let meta = config.as_ref().and_then(|c| c.package.clone());
    let bpfman_programs: BTreeMap<String, String> = config
        .as_ref()
        .and_then(|c| c.config.labels.get(LABEL_BPFMAN_PROGRAMS))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    let ours = facts.artifact_type == Some(format::ARTIFACT_TYPE);
    if ours && meta.is_none() {
        return Err(format!(
            "the manifest says {} but its config has no {} metadata",
            format::ARTIFACT_TYPE,
            format::CONFIG_KEY
        ));
    }
    if meta.is_none() && bpfman_programs.is_empty() {
        return Ok(None);
    }
    let (layer_digest, media_type) = *facts
        .layers
        .first()
        .ok_or("an eBPF package needs a layer holding its program")?;
    let layer =
        read_layer(layer_digest).map_err(|e| format!("cannot read layer {layer_digest}: {e}"))?;
    let gzipped = media_type.ends_with("+gzip") || layer.starts_with(&[0x1f, 0x8b]);
    let object = meta.as_ref().map(|m| m.object.as_str());
    check_program_layer(&layer, gzipped, object)?;
    Ok(Some(Inspected {
        meta,
        bpfman_programs,
        layer_digest: layer_digest.to_string(),
        created: config.and_then(|c| c.created),
    }))
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

/// The index rows for version `tag` of repository `repo`.
pub fn rows(
    repo: &str,
    tag: &str,
    digest: &str,
    size: i64,
    facts: &ManifestFacts<'_>,
    i: &Inspected,
) -> (PackageRow, VersionRow) {
    let ann = |k: &str| facts.annotations.get(k).cloned().unwrap_or_default();
    let (owner, name) = repo.split_once('/').unwrap_or(("", repo));
    let meta = i.meta.as_ref();
    let or_ann = |v: Option<&String>, k: &str| {
        v.cloned()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| ann(k))
    };
    let mut authors = meta.map(|m| m.authors.clone()).unwrap_or_default();
    if authors.is_empty() && !ann(ANNOTATION_AUTHORS).is_empty() {
        authors = ann(ANNOTATION_AUTHORS)
            .split(',')
            .map(|a| a.trim().to_string())
            .collect();
    }
    let programs: Vec<ProgramInfo> = match meta {
        Some(m) => m.programs.clone(),
        None => i
            .bpfman_programs
            .iter()
            .map(|(name, ty)| ProgramInfo {
                name: name.clone(),
                section: String::new(),
                prog_type: ty.clone(),
            })
            .collect(),
    };
    let package = PackageRow {
        repo: repo.to_string(),
        owner: owner.to_string(),
        name: name.to_string(),
        description: or_ann(
            meta.and_then(|m| m.description.as_ref()),
            ANNOTATION_DESCRIPTION,
        ),
        keywords: meta.map(|m| m.keywords.clone()).unwrap_or_default(),
        license: or_ann(meta.and_then(|m| m.license.as_ref()), ANNOTATION_LICENSES),
        authors,
        source: or_ann(meta.and_then(|m| m.source.as_ref()), ANNOTATION_SOURCE),
        latest_version: tag.to_string(),
        ..Default::default()
    };
    let version = VersionRow {
        repo: repo.to_string(),
        version: tag.to_string(),
        digest: digest.to_string(),
        size,
        created: i.created.clone().unwrap_or_else(|| ann(ANNOTATION_CREATED)),
        arch: meta.map(|m| m.arch.clone()).unwrap_or_default(),
        runtime: meta
            .map(|m| m.runtime.kind().to_string())
            .unwrap_or_else(|| "bpfman".into()),
        object: meta.map(|m| m.object.clone()).unwrap_or_default(),
        layer_digest: i.layer_digest.clone(),
        programs: serde_json::to_string(&programs).expect("programs serialize"),
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
