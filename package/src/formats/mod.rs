//! Other tools' packages: Inspektor Gadget, bumblebee and bpfman images, eunomia-bpf's
//! `package.json`.
//!
//! Each is turned into what the runner already runs: a [`PackageMeta`] synthesised from the
//! object's own BTF ([`object::read`]) plus what the tool's metadata says (names, params
//! and their defaults, which map carries events). The foreign manifest, config and layers
//! are kept as they came: the store holds them unchanged, and only the in-memory
//! [`Package`](crate::Package) carries the synthesised description.
//!
//! [`detect`] is the one place that recognises a format, from the manifest alone (before
//! any blob is fetched) or with the config too.

pub mod bpfman;
mod bumblebee;
pub mod eunomia;
mod gadget;

use std::collections::BTreeMap;

use oci_client::manifest::{OciDescriptor, OciImageManifest};

use crate::blob::Blob;
use crate::spec::{
    self, Format, ImageConfig, PackageMeta, ParamInfo, ARTIFACT_TYPE, BUMBLEBEE_CONFIG,
    GADGET_ARTIFACT_TYPE, GADGET_CONFIG, GADGET_EBPF_LAYER, MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_LAYER_TAR_GZIP,
};
use crate::{decode, object, Error, Result};

/// What `pull` accepts, for error help.
const ACCEPTED: &str = "cargo-ebpf packages, Inspektor Gadget images, bumblebee images and \
                        bpfman bytecode images";

/// Recognises the format of an image from its manifest and, when already fetched, its
/// config. Without the config the answer is provisional only for plain OCI image configs
/// (a cargo-ebpf package or a bpfman image); everything unknown is refused here, before
/// any blob is downloaded.
/// The layers a runner fetches and keeps: all of them, except an Inspektor Gadget image's
/// wasm modules, which the built-in loader never runs (so a hostile image cannot make it
/// download them). Package readers ([`crate::Package::from_parts`], the registry client,
/// layouts) all go by this one rule.
pub fn needed_layers(manifest: &OciImageManifest) -> Vec<&OciDescriptor> {
    let gadget = detect(manifest, None).is_ok_and(|f| f == Format::Gadget);
    manifest
        .layers
        .iter()
        .filter(|l| !(gadget && l.media_type == spec::GADGET_WASM_LAYER))
        .collect()
}

pub fn detect(manifest: &OciImageManifest, config: Option<&[u8]>) -> Result<Format> {
    let config_type = manifest.config.media_type.as_str();
    let is_gadget = manifest.artifact_type.as_deref() == Some(GADGET_ARTIFACT_TYPE)
        || config_type == GADGET_CONFIG
        || manifest
            .layers
            .iter()
            .any(|l| l.media_type == GADGET_EBPF_LAYER);
    if is_gadget {
        gadget::check_manifest(manifest)?;
        return Ok(Format::Gadget);
    }
    if config_type == BUMBLEBEE_CONFIG {
        bumblebee::check_manifest(manifest)?;
        return Ok(Format::Bumblebee);
    }
    if config_type != MEDIA_TYPE_CONFIG {
        return Err(unknown(format!(
            "its config has media type {config_type:?}"
        )));
    }
    match config {
        // Before any blob: both ours and bpfman's images have exactly one tar+gzip layer.
        None => {
            single_tar_layer(manifest)?;
            let ours = manifest.artifact_type.as_deref() == Some(ARTIFACT_TYPE);
            Ok(if ours {
                Format::CargoEbpf
            } else {
                Format::Bpfman
            })
        }
        // A package of ours already read (store, layout) is judged by its own metadata.
        Some(bytes) => match image_config_format(bytes)? {
            Format::Bpfman => single_tar_layer(manifest).map(|()| Format::Bpfman),
            ours => Ok(ours),
        },
    }
}

/// A standard image config: ours carries [`spec::CONFIG_KEY`], bpfman's the
/// `io.ebpf.programs` label; any other image is an ordinary container image.
fn image_config_format(bytes: &[u8]) -> Result<Format> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::input("the image config is not valid JSON").with_source(e))?;
    if value.get(spec::CONFIG_KEY).is_some() {
        return Ok(Format::CargoEbpf);
    }
    if value["config"]["Labels"]
        .get(spec::LABEL_BPFMAN_PROGRAMS)
        .is_some()
    {
        return Ok(Format::Bpfman);
    }
    Err(unknown(format!(
        "it is a container image without cargo-ebpf metadata or a `{}` label",
        spec::LABEL_BPFMAN_PROGRAMS
    )))
}

fn single_tar_layer(manifest: &OciImageManifest) -> Result<()> {
    let [layer] = manifest.layers.as_slice() else {
        return Err(unknown(format!(
            "it has {} layers, expected exactly 1",
            manifest.layers.len()
        )));
    };
    if layer.media_type != MEDIA_TYPE_LAYER_TAR_GZIP {
        return Err(unknown(format!(
            "its layer has media type {:?}, expected {MEDIA_TYPE_LAYER_TAR_GZIP}",
            layer.media_type
        )));
    }
    Ok(())
}

/// Neither ours nor another format we know; the help lists what is accepted.
fn unknown(why: String) -> Error {
    Error::input(format!("not a cargo-ebpf package: {why}"))
        .with_help(format!("`pull` and `run` accept {ACCEPTED}"))
}

/// A damaged image of a known format: what is wrong, and that nothing was stored.
fn malformed(format: Format, why: impl std::fmt::Display) -> Error {
    Error::input(format!("this {format} image is malformed: {why}"))
        .with_help("ask its publisher to rebuild it; nothing was stored")
}

/// The format of a verified image and the image config the runner works from: the
/// package's own for cargo-ebpf, else one synthesised from the tool's metadata and the
/// object's BTF. The hub indexes other tools' images with it too.
pub fn recognize(
    manifest: &OciImageManifest,
    config: &[u8],
    layers: &[Blob],
) -> Result<(Format, ImageConfig)> {
    let format = detect(manifest, Some(config))?;
    let described = match format {
        Format::CargoEbpf | Format::Eunomia => {
            let config: ImageConfig = serde_json::from_slice(config).map_err(|e| {
                Error::input("the package's image config is not valid").with_source(e)
            })?;
            return Ok((format, config));
        }
        Format::Gadget => gadget::image_config(manifest, config, layers)?,
        Format::Bumblebee => bumblebee::image_config(manifest, layers)?,
        Format::Bpfman => bpfman::image_config(manifest, config, layers)?,
    };
    Ok((format, described))
}

/// A cheap look at a stored image for `list`: its format, name and version, without
/// reading its layers. `None` for what cannot be recognised.
pub fn summary(manifest: &OciImageManifest, config: &[u8]) -> Option<(Format, Described)> {
    let format = detect(manifest, Some(config)).ok()?;
    let mut described = Described::from_annotations(manifest);
    match format {
        Format::CargoEbpf | Format::Eunomia => {
            let meta = serde_json::from_slice::<ImageConfig>(config)
                .ok()?
                .package?;
            described.name = Some(meta.name);
            described.version = Some(meta.version);
        }
        Format::Gadget if manifest.config.media_type == GADGET_CONFIG => {
            let yaml: serde_json::Value = serde_norway::from_slice(config).ok()?;
            if let Some(name) = yaml["name"].as_str() {
                described.name = Some(name.to_string());
            }
        }
        _ => {}
    }
    Some((format, described))
}

/// The BPF object of a foreign image; `None` for formats whose object sits in a tar+gzip
/// layer under [`PackageMeta::object`] (ours, bpfman's).
pub(crate) fn raw_object(
    format: Format,
    layers: &[Blob],
) -> Result<Option<std::borrow::Cow<'_, [u8]>>> {
    let media_type = match format {
        Format::Gadget => GADGET_EBPF_LAYER,
        Format::Bumblebee => spec::BUMBLEBEE_PROGRAM_LAYER,
        _ => return Ok(None),
    };
    layers
        .iter()
        .find(|l| l.descriptor.media_type == media_type)
        .map(|l| l.data.bytes())
        .transpose()
}

/// What a tool's metadata says about a package (annotations, gadget.yaml, …).
#[derive(Debug, Default)]
pub struct Described {
    pub name: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub source: Option<String>,
    pub license: Option<String>,
    pub authors: Vec<String>,
}

impl Described {
    fn from_annotations(manifest: &OciImageManifest) -> Described {
        let empty = BTreeMap::new();
        let a = manifest.annotations.as_ref().unwrap_or(&empty);
        let get = |k: &str| a.get(k).filter(|v| !v.is_empty()).cloned();
        Described {
            name: get(spec::ANNOTATION_TITLE),
            version: get(spec::ANNOTATION_VERSION),
            description: get(spec::ANNOTATION_DESCRIPTION),
            source: get(spec::ANNOTATION_SOURCE),
            license: get(spec::ANNOTATION_LICENSES),
            authors: get(spec::ANNOTATION_AUTHORS).into_iter().collect(),
        }
    }
}

/// A kernel-only [`PackageMeta`] for `elf` (called `object_name`), from its BTF plus what
/// the tool said. `arch` is the image's, in either naming; the host's when unknown.
fn synthesize(
    described: Described,
    object_name: &str,
    elf: &[u8],
    event_type: Option<&str>,
    arch: Option<&str>,
) -> Result<PackageMeta> {
    let info = object::read(elf, event_type)?;
    let fallback = object_name.trim_end_matches(".o").trim_end_matches(".bpf");
    let name = described.name.unwrap_or_else(|| fallback.to_string());
    let version = described.version.unwrap_or_else(|| "0.0.0".into());
    let mut meta = PackageMeta::new(&name, &version, object_name);
    meta.description = described.description;
    meta.source = described.source;
    meta.license = described.license;
    meta.authors = described.authors;
    if let Some(arch) = arch.and_then(spec::normalize_arch) {
        meta.arch = arch.to_string();
    }
    info.fill_meta(&mut meta);
    Ok(meta)
}

/// An image config standing in for a foreign one, so the rest of the runner reads every
/// package the same way. Never serialized into the store.
fn stand_in_config(meta: PackageMeta) -> ImageConfig {
    ImageConfig {
        created: None,
        architecture: spec::oci_arch(&meta.arch).to_string(),
        os: "linux".into(),
        config: Default::default(),
        rootfs: spec::RootFs {
            fs_type: "layers".into(),
            diff_ids: vec![],
        },
        package: Some(meta),
    }
}

/// What an author declared about a `const volatile` param outside the BTF: its doc comment
/// (`/// @description`), eunomia's `@cmdarg`, or a gadget.yaml `params.ebpf` entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamDoc {
    pub description: Option<String>,
    /// The long flag, replacing the one derived from the variable name.
    pub long: Option<String>,
    pub short: Option<String>,
    /// The default as text, as a user would type it.
    pub default: Option<String>,
}

/// Applies `doc` to `param`. A declared default that differs from the compiled-in value is
/// recorded with `set_default`, so the runner writes it before load.
pub fn document_param(param: &mut ParamInfo, doc: &ParamDoc) -> Result<()> {
    if let Some(description) = doc.description.as_ref().filter(|d| !d.is_empty()) {
        param.description = Some(description.clone());
    }
    if let Some(long) = &doc.long {
        check_flag_name(&param.name, long, 2)?;
        param.flag = long.clone();
    }
    if let Some(short) = &doc.short {
        check_flag_name(&param.name, short, 1)?;
        param.short = Some(short.clone());
    }
    if let Some(text) = &doc.default {
        let bytes = decode::encode_param(param, text).map_err(|e| {
            Error::input(format!(
                "the declared default {text:?} of param `{}` does not fit its type: {}",
                param.name, e.message
            ))
            .with_help("fix the default where the param is documented")
        })?;
        let value = decode::decode(&param.ty, &bytes)?;
        if value != param.default {
            param.default = value;
            param.set_default = true;
        }
    }
    Ok(())
}

/// Long flags are two or more of `[a-z0-9_-]` (ecli packages spell them like the C
/// variable, `pid_target`), short ones a single letter or digit.
fn check_flag_name(param: &str, flag: &str, min: usize) -> Result<()> {
    let chars_ok = flag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || (min > 1 && (c == '-' || c == '_')));
    let len_ok = if min == 1 {
        flag.chars().count() == 1
    } else {
        flag.len() >= min
    };
    if chars_ok && len_ok && !flag.starts_with('-') && flag != "help" && flag != "h" {
        return Ok(());
    }
    let what = if min == 1 { "short" } else { "long" };
    Err(Error::input(format!(
        "param `{param}` declares an invalid {what} flag {flag:?}"
    ))
    .with_help(
        "long flags are letters, digits, '-' and '_' (e.g. \"failed\"), short flags one \
                 letter (e.g. \"f\"); `help`/`h` are taken",
    ))
}

/// Applies every doc in `docs` (by variable name) to `params`.
pub fn document_params(params: &mut [ParamInfo], docs: &BTreeMap<String, ParamDoc>) -> Result<()> {
    for param in params.iter_mut() {
        if let Some(doc) = docs.get(&param.name) {
            document_param(param, doc)?;
        }
    }
    Ok(())
}

/// A JSON value as the text a user would type for it (`"abc"` → `abc`, `5` → `5`).
fn value_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
