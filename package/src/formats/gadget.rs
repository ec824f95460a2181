//! Inspektor Gadget images: a gadget.yaml config (or the empty descriptor), exactly one eBPF
//! program layer holding the ELF, optional wasm and btfgen layers that the built-in loader
//! does not need.

use std::collections::BTreeMap;

use oci_client::manifest::OciImageManifest;
use serde_json::Value;

use super::{malformed, stand_in_config, synthesize, value_text, Described, ParamDoc};
use crate::blob::Blob;
use crate::spec::{
    ColumnHint, Format, ImageConfig, GADGET_BTFGEN_LAYER, GADGET_CONFIG, GADGET_EBPF_LAYER,
    GADGET_WASM_LAYER, MEDIA_TYPE_EMPTY,
};
use crate::{object, Result};

/// Most layers a gadget image may have: real ones carry the program plus at most a wasm
/// module and a btfgen archive; thousands would mean thousands of requests and notes.
pub const MAX_GADGET_LAYERS: usize = 8;

/// The manifest shape, checked before any blob is fetched.
pub(super) fn check_manifest(manifest: &OciImageManifest) -> Result<()> {
    if manifest.layers.len() > MAX_GADGET_LAYERS {
        return Err(malformed(
            Format::Gadget,
            format!(
                "it has {} layers, more than the {MAX_GADGET_LAYERS} a gadget image may have",
                manifest.layers.len()
            ),
        ));
    }
    let config_type = manifest.config.media_type.as_str();
    if config_type != GADGET_CONFIG && config_type != MEDIA_TYPE_EMPTY {
        return Err(malformed(
            Format::Gadget,
            format!("its config has media type {config_type:?}, expected {GADGET_CONFIG}"),
        ));
    }
    let programs = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == GADGET_EBPF_LAYER)
        .count();
    if programs != 1 {
        return Err(malformed(
            Format::Gadget,
            format!("it has {programs} eBPF program layers, expected exactly 1"),
        ));
    }
    let known = [GADGET_EBPF_LAYER, GADGET_WASM_LAYER, GADGET_BTFGEN_LAYER];
    if let Some(other) = manifest
        .layers
        .iter()
        .find(|l| !known.contains(&l.media_type.as_str()))
    {
        return Err(malformed(
            Format::Gadget,
            format!(
                "it has a layer of unknown media type {:?}",
                other.media_type
            ),
        ));
    }
    Ok(())
}

/// The package description: name, description, source and param keys, defaults and
/// descriptions from gadget.yaml; programs, maps, events and params from the ELF.
pub(super) fn image_config(
    manifest: &OciImageManifest,
    config: &[u8],
    layers: &[Blob],
) -> Result<ImageConfig> {
    let yaml = if manifest.config.media_type == GADGET_CONFIG {
        parse_yaml(config)?
    } else {
        Value::Null
    };
    let elf = super::raw_object(Format::Gadget, layers)?
        .ok_or_else(|| malformed(Format::Gadget, "its eBPF program layer is missing"))?;
    let elf = &elf[..];
    object::check_elf(elf).map_err(|e| malformed(Format::Gadget, e.full_message()))?;
    let mut described = Described::from_annotations(manifest);
    let text = |key: &str| {
        yaml[key]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    described.name = text("name").or(described.name);
    described.description = text("description").or(described.description);
    described.source = text("sourceURL")
        .or_else(|| text("homepageURL"))
        .or(described.source);
    let mut meta = synthesize(described, "program.bpf.o", elf, None, None)?;
    super::document_params(&mut meta.params, &param_docs(&yaml))
        .map_err(|e| malformed(Format::Gadget, format!("gadget.yaml: {}", e.full_message())))?;
    meta.columns = column_hints(&yaml);
    Ok(stand_in_config(meta))
}

/// Real gadget.yaml files are a few KiB; a larger one is not parsed.
const MAX_YAML_SIZE: usize = 1 << 20;

fn parse_yaml(config: &[u8]) -> Result<Value> {
    if config.len() > MAX_YAML_SIZE {
        return Err(malformed(
            Format::Gadget,
            format!("its gadget.yaml is larger than {MAX_YAML_SIZE} bytes"),
        ));
    }
    let value: Value = serde_norway::from_slice(config).map_err(|e| {
        malformed(
            Format::Gadget,
            format!("its gadget.yaml is not valid YAML: {e}"),
        )
    })?;
    if !value.is_object() && !value.is_null() {
        return Err(malformed(
            Format::Gadget,
            "its gadget.yaml is not a mapping",
        ));
    }
    Ok(value)
}

/// Most fields a gadget.yaml may annotate (real ones have tens).
const MAX_FIELDS: usize = 1024;

/// `datasources.<ds>.fields.<field>.annotations` (`columns.hidden`, `columns.width`,
/// `columns.alignment`, `template`) → column hints by field name. YAML gives booleans and
/// numbers as such or as strings; both are read.
fn column_hints(yaml: &Value) -> BTreeMap<String, ColumnHint> {
    let mut hints = BTreeMap::new();
    let Some(sources) = yaml["datasources"].as_object() else {
        return hints;
    };
    let fields = sources
        .values()
        .filter_map(|ds| ds["fields"].as_object())
        .flatten()
        .take(MAX_FIELDS);
    for (name, field) in fields {
        let a = &field["annotations"];
        let text = |key: &str| match &a[key] {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let hint = ColumnHint {
            hidden: text("columns.hidden").is_some_and(|v| v == "true"),
            width: text("columns.width").and_then(|w| w.parse().ok()),
            right: text("columns.alignment").is_some_and(|v| v == "right"),
            template: text("template").filter(|t| !t.is_empty() && t.len() <= 64),
        };
        if hint != ColumnHint::default() {
            hints.insert(name.clone(), hint);
        }
    }
    hints
}

/// `params.ebpf.<var>.{key, defaultValue, description}` → docs by variable name.
fn param_docs(yaml: &Value) -> BTreeMap<String, ParamDoc> {
    let Some(params) = yaml["params"]["ebpf"].as_object() else {
        return BTreeMap::new();
    };
    params
        .iter()
        .map(|(var, p)| {
            let doc = ParamDoc {
                description: p["description"].as_str().map(String::from),
                long: p["key"].as_str().map(String::from),
                short: None,
                default: value_text(&p["defaultValue"]).filter(|d| !d.is_empty()),
            };
            (var.clone(), doc)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::manifest::OciDescriptor;

    fn layer(media_type: &str) -> OciDescriptor {
        OciDescriptor {
            media_type: media_type.into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size: 1,
            ..Default::default()
        }
    }

    #[test]
    fn thousands_of_extra_layers_are_refused_before_any_blob() {
        let mut manifest = OciImageManifest {
            config: layer(GADGET_CONFIG),
            layers: vec![layer(GADGET_EBPF_LAYER)],
            ..Default::default()
        };
        manifest.layers.push(layer(GADGET_WASM_LAYER));
        check_manifest(&manifest).unwrap();
        manifest
            .layers
            .extend(std::iter::repeat_with(|| layer(GADGET_WASM_LAYER)).take(5000));
        let err = check_manifest(&manifest).unwrap_err();
        assert!(err.message.contains("5002 layers"), "{}", err.message);
    }

    #[test]
    fn column_annotations_become_hints() {
        let yaml: Value = serde_norway::from_str(
            "datasources:\n  ds:\n    fields:\n      pid:\n        annotations:\n          columns.hidden: true\n      ts:\n        annotations:\n          template: timestamp\n          columns.width: \"12\"\n          columns.alignment: right\n      comm: {}\n",
        )
        .unwrap();
        let hints = column_hints(&yaml);
        assert!(hints["pid"].hidden);
        assert_eq!(hints["ts"].template.as_deref(), Some("timestamp"));
        assert_eq!(hints["ts"].width, Some(12));
        assert!(hints["ts"].right);
        assert!(!hints.contains_key("comm"));
    }
}
