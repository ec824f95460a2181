//! Checked metadata: a package's config ([`PackageMeta`]) compared with what its object
//! really holds ([`object::read`]).
//!
//! The config is what `inspect`, the hub and `run --help` show; the object is what the
//! kernel loads. A package whose config claims one thing while its object does another
//! (hand-edited, or built by a broken tool) is refused where packages come in from outside
//! (registry pull, a layout given on the command line), as an Integrity error naming every
//! difference. Other tools' images are described *from* their object (see
//! [`crate::formats`]), so only our own format's claims need checking; their objects must
//! still be eBPF objects.

use crate::object::ObjectInfo;
use crate::spec::{EventInfo, Format, MapInfo, PackageMeta, ParamInfo, ProgramInfo};
use crate::{decode, object, Error, Package, Result};

const HELP: &str = "do not run it: the package was altered after it was built, or built by a \
                    broken tool; ask its publisher to rebuild it with `cargo ebpf package` \
                    and push it again";

impl Package {
    /// Checks that the package's object is an eBPF object and, for our own format, that the
    /// config describes it truthfully (see [`check`]).
    pub fn check_against_object(&self) -> Result<()> {
        let meta = self.meta()?;
        let (name, bytes) = self.object()?;
        object::check_bpf_elf(&bytes).map_err(|e| not_bpf(&name, e))?;
        if self.format != Format::CargoEbpf {
            return Ok(());
        }
        check(meta, &bytes)
    }
}

/// Compares `meta` with the object `bytes`: programs (name, section, type), maps (name,
/// type, sizes), params (name, offset, type) and events (map, type, layout). An object of
/// the other byte order cannot be opened here and is only checked for being eBPF.
pub fn check(meta: &PackageMeta, bytes: &[u8]) -> Result<()> {
    object::check_bpf_elf(bytes).map_err(|e| not_bpf(&meta.object, e))?;
    if object::check_elf(bytes).is_err() {
        return Ok(());
    }
    let info = object::read(bytes, None).map_err(|e| {
        Error::integrity(format!(
            "the package's object {} cannot be read",
            meta.object
        ))
        .with_source(e)
        .with_help(HELP)
    })?;
    let mut diffs = Vec::new();
    diff_programs(&meta.programs, &info.programs, &mut diffs);
    diff_maps(&meta.maps, &info.maps, &mut diffs);
    diff_params(&meta.params, &info.params, &mut diffs);
    diff_events(meta, bytes, &info, &mut diffs);
    if diffs.is_empty() {
        return Ok(());
    }
    Err(Error::integrity(format!(
        "the package's metadata does not match its object {}: {}",
        meta.object,
        diffs.join("; ")
    ))
    .with_help(HELP))
}

fn not_bpf(object: &str, cause: Error) -> Error {
    Error::integrity(format!(
        "the package's object {object} is not an eBPF object"
    ))
    .with_source(cause)
    .with_help(HELP)
}

/// Pushes "config says …; the object has …" when the two sorted descriptions differ.
fn compare(what: &str, config: Vec<String>, object: Vec<String>, diffs: &mut Vec<String>) {
    let (mut config, mut object) = (config, object);
    config.sort();
    object.sort();
    if config == object {
        return;
    }
    let side = |items: &[String]| match items.len() {
        0 => format!("no {what}s"),
        1 => format!("{what} {}", items[0]),
        _ => format!("{what}s {}", items.join(", ")),
    };
    let says = match config.is_empty() {
        true => format!("config lists {}", side(&config)),
        false => format!("config says {}", side(&config)),
    };
    diffs.push(format!("{says}, the object has {}", side(&object)));
}

fn diff_programs(config: &[ProgramInfo], object: &[ProgramInfo], diffs: &mut Vec<String>) {
    let text = |p: &ProgramInfo| format!("{} on {} ({})", p.name, p.section, p.prog_type);
    compare(
        "program",
        config.iter().map(text).collect(),
        object.iter().map(text).collect(),
        diffs,
    );
}

fn diff_maps(config: &[MapInfo], object: &[MapInfo], diffs: &mut Vec<String>) {
    let text = |m: &MapInfo| {
        format!(
            "`{}` ({}, key {} B, value {} B, max {})",
            m.name, m.map_type, m.key_size, m.value_size, m.max_entries
        )
    };
    compare(
        "map",
        config.iter().map(text).collect(),
        object.iter().map(text).collect(),
        diffs,
    );
}

/// Defaults and descriptions may be the author's (`@cmdarg`); where and what a param is
/// may not.
fn diff_params(config: &[ParamInfo], object: &[ParamInfo], diffs: &mut Vec<String>) {
    let text = |p: &ParamInfo| {
        format!(
            "`{}` ({} at .rodata+{})",
            p.name,
            decode::kind_name(&p.ty),
            p.offset
        )
    };
    compare(
        "param",
        config.iter().map(text).collect(),
        object.iter().map(text).collect(),
        diffs,
    );
}

/// The event maps and types the config names must be what the object's BTF says, with the
/// same layouts. The author may have chosen the event type (`[build] event`), so when the
/// inferred events differ the object is read again with the config's choice.
fn diff_events(meta: &PackageMeta, bytes: &[u8], info: &ObjectInfo, diffs: &mut Vec<String>) {
    if event_diffs(meta, info).is_empty() {
        return;
    }
    let chosen = meta.events.first().map(|e| e.type_name.as_str());
    match chosen.map(|name| object::read(bytes, Some(name))) {
        Some(Ok(info)) => diffs.extend(event_diffs(meta, &info)),
        Some(Err(_)) => diffs.push(format!(
            "config says events of type `{}`, the object has no such struct",
            chosen.unwrap_or_default()
        )),
        None => diffs.extend(event_diffs(meta, info)),
    }
}

fn event_diffs(meta: &PackageMeta, info: &ObjectInfo) -> Vec<String> {
    let text = |e: &EventInfo| format!("`{}` on map `{}`", e.type_name, e.map);
    let mut diffs = Vec::new();
    compare(
        "event",
        meta.events.iter().map(text).collect(),
        info.events.iter().map(text).collect(),
        &mut diffs,
    );
    if !diffs.is_empty() {
        return diffs;
    }
    for event in &meta.events {
        if meta.types.get(&event.type_name) != info.types.get(&event.type_name) {
            diffs.push(format!(
                "config gives event type `{}` a layout the object's BTF does not have",
                event.type_name
            ));
        }
    }
    diffs.dedup();
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_read_as_config_then_object() {
        let mut diffs = Vec::new();
        compare(
            "program",
            vec!["a on tracepoint/x/y (tracepoint)".into()],
            vec!["b on xdp (xdp)".into()],
            &mut diffs,
        );
        compare("map", vec![], vec!["`events` (ringbuf)".into()], &mut diffs);
        compare("param", vec![], vec![], &mut diffs);
        assert_eq!(
            diffs,
            [
                "config says program a on tracepoint/x/y (tracepoint), the object has program \
                 b on xdp (xdp)",
                "config lists no maps, the object has map `events` (ringbuf)",
            ]
        );
    }

    #[test]
    fn a_non_elf_object_is_an_integrity_error() {
        let meta = PackageMeta::new("demo", "0.1.0", "demo.bpf.o");
        let err = check(&meta, b"#!/bin/sh\nexit 0\n").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Integrity);
        assert!(
            err.message.contains("not an eBPF object"),
            "{}",
            err.message
        );
    }
}
