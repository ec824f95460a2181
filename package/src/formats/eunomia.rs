//! eunomia-bpf `package.json`, from a file or an http(s) URL: `bpf_skel.data` is the ELF,
//! zlib-compressed and base64-encoded; `export_types` names the event struct; the
//! `.rodata` variables of `bpf_skel.data_sections` may carry a description and a
//! `cmdarg` ({default, short, long}).

use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine;
use serde_json::Value;

use super::{value_text, Described, ParamDoc};
use crate::spec::PackageMeta;
use crate::spec::{EUNOMIA_EXPORT_TYPES_KEY, EUNOMIA_SKEL_KEY};
use crate::{Error, Result};

/// Largest package.json or decompressed object we accept.
const MAX_SIZE: u64 = 64 << 20;

/// Whether `bytes` look like an eunomia package.json (a JSON object with `bpf_skel`).
pub fn looks_like(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && serde_json::from_slice::<Value>(bytes).is_ok_and(|v| v.get(EUNOMIA_SKEL_KEY).is_some())
}

/// Whether `bytes` look like a tar archive (ustar magic) or gzip, as `ecc` packs a
/// `package.json` with its minimal BTFs.
pub fn looks_like_archive(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b]) || bytes.get(257..262) == Some(b"ustar")
}

/// The `package.json` inside an `ecc` archive (the shallowest one), bounded.
pub fn package_json_in(archive: &[u8]) -> Result<Vec<u8>> {
    let mut tar = crate::layer::tar_maybe_gzip(archive);
    let entries = tar
        .entries()
        .map_err(|e| bad(format!("it is not a readable tar archive: {e}")))?;
    let mut best: Option<(usize, Vec<u8>)> = None;
    for (n, entry) in entries.enumerate() {
        if n >= 20_000 {
            return Err(bad("its archive lists over 20000 entries"));
        }
        let mut entry = entry.map_err(|e| bad(format!("its archive is damaged: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(format!("its archive is damaged: {e}")))?
            .to_string_lossy()
            .into_owned();
        let depth = path.matches('/').count();
        let is_json = entry.header().entry_type().is_file()
            && (path == "package.json" || path.ends_with("/package.json"));
        if !is_json || best.as_ref().is_some_and(|(d, _)| *d <= depth) {
            continue;
        }
        let mut json = Vec::new();
        (&mut entry)
            .take(MAX_SIZE + 1)
            .read_to_end(&mut json)
            .map_err(|e| bad(format!("its archive is damaged: {e}")))?;
        if json.len() as u64 > MAX_SIZE {
            return Err(bad(format!("its package.json is over {MAX_SIZE} bytes")));
        }
        best = Some((depth, json));
    }
    best.map(|(_, json)| json)
        .ok_or_else(|| bad("its archive holds no package.json"))
}

/// The object in `json` and its metadata, described from its BTF, `export_types` and
/// `data_sections`; [`Package::from_eunomia_json`] wraps them as a package.
///
/// [`Package::from_eunomia_json`]: crate::Package::from_eunomia_json
pub fn read(json: &[u8]) -> Result<(PackageMeta, Vec<u8>)> {
    let root: Value =
        serde_json::from_slice(json).map_err(|e| bad(format!("it is not valid JSON: {e}")))?;
    let skel = root
        .get(EUNOMIA_SKEL_KEY)
        .filter(|s| s.is_object())
        .ok_or_else(|| bad(format!("it has no `{EUNOMIA_SKEL_KEY}` object")))?;
    let elf = object_bytes(skel)?;
    crate::object::check_elf(&elf)
        .map_err(|e| bad(format!("bpf_skel.data: {}", e.full_message())))?;
    let name = skel["obj_name"]
        .as_str()
        .filter(|n| is_simple_name(n))
        .unwrap_or("eunomia");
    let event = root[EUNOMIA_EXPORT_TYPES_KEY][0]["name"].as_str();
    let described = Described {
        name: Some(name.to_string()),
        description: skel["doc"]["description"].as_str().map(String::from),
        version: skel["doc"]["version"].as_str().map(String::from),
        ..Default::default()
    };
    let object_name = format!("{name}.bpf.o");
    let mut meta = super::synthesize(described, &object_name, &elf, event, None)?;
    super::document_params(&mut meta.params, &param_docs(skel))?;
    Ok((meta, elf))
}

/// base64 → zlib → the ELF, refusing more than [`MAX_SIZE`] bytes.
fn object_bytes(skel: &Value) -> Result<Vec<u8>> {
    let data = skel["data"]
        .as_str()
        .ok_or_else(|| bad("bpf_skel.data is missing or not a string"))?;
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| bad(format!("bpf_skel.data is not valid base64: {e}")))?;
    let mut elf = Vec::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice())
        .take(MAX_SIZE + 1)
        .read_to_end(&mut elf)
        .map_err(|e| bad(format!("bpf_skel.data is not zlib-compressed data: {e}")))?;
    if elf.len() as u64 > MAX_SIZE {
        return Err(bad(format!("bpf_skel.data expands past {MAX_SIZE} bytes")));
    }
    Ok(elf)
}

/// `data_sections[].variables[]` with a description or cmdarg → docs by variable name.
fn param_docs(skel: &Value) -> BTreeMap<String, ParamDoc> {
    let mut docs = BTreeMap::new();
    let sections = skel["data_sections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for var in sections
        .iter()
        .flat_map(|s| s["variables"].as_array().cloned().unwrap_or_default())
    {
        let Some(name) = var["name"].as_str() else {
            continue;
        };
        let cmdarg = &var["cmdarg"];
        docs.insert(
            name.to_string(),
            ParamDoc {
                description: var["description"].as_str().map(String::from),
                long: cmdarg["long"].as_str().map(String::from),
                short: cmdarg["short"].as_str().map(String::from),
                default: value_text(&cmdarg["default"]),
            },
        );
    }
    docs
}

fn is_simple_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn bad(why: impl std::fmt::Display) -> Error {
    Error::input(format!("this eunomia package.json is not usable: {why}"))
        .with_help("regenerate it with eunomia's `ecc` (or point at the .bpf.o directly)")
}
