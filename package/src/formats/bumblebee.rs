//! bumblebee images: a `{}` config and one program layer holding the ELF. Map names say
//! what a map is for: `print_*` maps carry events (their value type is the event struct);
//! `counter_*`, `gauge_*` and `hist_*` maps are metrics, which the runner's map output shows
//! (run/maps.rs: at the end of a run, every `--interval`, over `--metrics`).

use oci_client::manifest::OciImageManifest;

use super::{malformed, stand_in_config, synthesize, Described};
use crate::blob::Blob;
use crate::spec::{Format, ImageConfig, BUMBLEBEE_PRINT_PREFIX, BUMBLEBEE_PROGRAM_LAYER};
use crate::{object, Error, Result};

pub(super) fn check_manifest(manifest: &OciImageManifest) -> Result<()> {
    let [layer] = manifest.layers.as_slice() else {
        return Err(malformed(
            Format::Bumblebee,
            format!(
                "it has {} layers, expected exactly 1 program layer",
                manifest.layers.len()
            ),
        ));
    };
    if layer.media_type != BUMBLEBEE_PROGRAM_LAYER {
        return Err(malformed(
            Format::Bumblebee,
            format!(
                "its layer has media type {:?}, expected {BUMBLEBEE_PROGRAM_LAYER}",
                layer.media_type
            ),
        ));
    }
    Ok(())
}

/// Programs, maps and params from the ELF; events only from `print_` maps.
pub(super) fn image_config(manifest: &OciImageManifest, layers: &[Blob]) -> Result<ImageConfig> {
    let elf = super::raw_object(Format::Bumblebee, layers)?
        .ok_or_else(|| malformed(Format::Bumblebee, "its program layer is missing"))?;
    let elf = &elf[..];
    object::check_elf(elf).map_err(|e| malformed(Format::Bumblebee, e.full_message()))?;
    check_map_sections(elf)?;
    let described = Described::from_annotations(manifest);
    let mut meta = synthesize(described, "program.o", elf, None, None)?;
    meta.events
        .retain(|e| e.map.starts_with(BUMBLEBEE_PRINT_PREFIX));
    let kept: Vec<String> = meta.events.iter().map(|e| e.type_name.clone()).collect();
    meta.types.retain(|name, _| kept.contains(name));
    Ok(stand_in_config(meta))
}

/// bee's own builds put maps in `.maps.print` / `.maps.counter` / `.maps.gauge` sections,
/// which libbpf refuses to open (it knows only `.maps`); say so instead of a libbpf error.
fn check_map_sections(elf: &[u8]) -> Result<()> {
    let custom: Vec<String> = object::section_names(elf)
        .into_iter()
        .filter(|n| n.starts_with(".maps."))
        .collect();
    if custom.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "this bumblebee program keeps its maps in {} section(s), which libbpf cannot load",
        custom.join(", ")
    ))
    .with_help(
        "rebuild it with the maps in SEC(\".maps\") and name them by role \
         (print_events, counter_*, gauge_*): the runner reads the role from the name",
    ))
}
