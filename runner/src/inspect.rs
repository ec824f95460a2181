//! `inspect`: what a package, image, package.json or object holds — metadata, format,
//! programs with their attach points, maps, params, events, arch, digest and size — read
//! from the store, a registry, a layout or the file, without loading anything — and what
//! running it will do ([`Plan`]). Packages from a registry or a layout are checked against
//! their object first (see [`resolve`]).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::attestation::Attested;
use crate::registry::Registry;
use crate::resolve::{self, Runnable};
use crate::store::Store;
use ebpf_package::kernel_matrix::KernelMatrix;
use ebpf_package::plan::Plan;
use ebpf_package::provenance::BuildFacts;
use ebpf_package::spec::{EventInfo, Format, MapInfo, PackageMeta, ParamInfo, Runtime, TypeLayout};
use ebpf_package::{decode, digest, object, spec, Package, Result};

/// Everything `inspect` shows; `--json` prints it as is.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    /// `cargo-ebpf`, `gadget`, `bumblebee`, `bpfman`, `eunomia`, or `object` for a bare ELF.
    pub format: String,
    pub name: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub arch: String,
    pub runtime: Runtime,
    /// The manifest digest of an image; the file's sha256 for a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Bytes: config + layers of an image, the file's length otherwise.
    pub size: u64,
    pub object: String,
    pub programs: Vec<ProgramReport>,
    pub maps: Vec<MapInfo>,
    pub params: Vec<ParamInfo>,
    pub events: Vec<EventReport>,
    /// What running it will do (attach points, capabilities, files, processes).
    pub plan: Plan,
    /// Where it was built, from its signed provenance attestation (references only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<ProvenanceReport>,
    /// Which kernels it was tested on, from its signed kernel-matrix attestation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_matrix: Option<MatrixReport>,
}

/// A package's attested kernel matrix, and who vouches for it.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixReport {
    pub verified_by: Option<String>,
    pub matrix: KernelMatrix,
}

/// A package's attested build, and who vouches for it.
#[derive(Debug, Clone, Serialize)]
pub struct ProvenanceReport {
    /// The trusted key whose signature checked; `None` when no trusted key covers the
    /// package's scope (the facts are then the publisher's unverified claims).
    pub verified_by: Option<String>,
    #[serde(flatten)]
    pub facts: BuildFacts,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgramReport {
    pub name: String,
    pub section: String,
    #[serde(rename = "type")]
    pub prog_type: String,
    /// Where it attaches, e.g. `tracepoint syscalls:sys_enter_openat`.
    pub attach: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventReport {
    pub map: String,
    #[serde(rename = "type")]
    pub type_name: String,
    /// The event's fields as `name: type`.
    pub fields: Vec<String>,
}

/// Describes `target` (reference, layout dir, package.json path or URL, .bpf.o).
pub fn target_report(
    target: &str,
    registry: &Registry,
    open_store: impl FnOnce() -> Result<Store>,
) -> Result<Report> {
    let file = Path::new(target);
    let file_bytes = if file.is_file() {
        Some(std::fs::read(file).map_err(|e| ebpf_package::Error::io("read", file, e))?)
    } else {
        None
    };
    let file_digest = file_bytes.as_deref().map(digest::sha256);
    let file_size = file_bytes.as_ref().map(|b| b.len() as u64);
    let mut report = match resolve::peek(target, registry, open_store)? {
        Runnable::Package(pkg) => {
            let mut report = from_package(target, &pkg)?;
            if pkg.format == Format::Eunomia {
                // Its manifest exists only in memory: the file is what has an identity.
                report.digest = file_digest;
                report.size = file_size.unwrap_or(0);
            }
            report
        }
        Runnable::Object { name, bytes } => {
            let mut report = from_object(target, &name, &bytes)?;
            report.digest = file_digest;
            report
        }
    };
    if let Some(reference) = resolve::reference_target(target)? {
        if let Some(attested) = Attested::of_reference(registry, &reference)? {
            attested_facts(&attested, &mut report)?;
        }
    }
    Ok(report)
}

/// The provenance and kernel matrix attested for the package, verified in a trusted scope
/// (exit 8 when that fails), unverified claims otherwise.
fn attested_facts(attested: &Attested, report: &mut Report) -> Result<()> {
    report.provenance =
        attested
            .statement(spec::SLSA_PROVENANCE_V1)?
            .map(|(statement, verified_by)| ProvenanceReport {
                verified_by,
                facts: statement.facts(),
            });
    report.kernel_matrix = attested
        .kernel_matrix()?
        .map(|(matrix, verified_by)| MatrixReport {
            verified_by,
            matrix,
        });
    Ok(())
}

/// The report of a package already in hand (a project the host just built).
pub fn package_report(target: &str, pkg: &Package) -> Result<Report> {
    from_package(target, pkg)
}

fn from_package(target: &str, pkg: &Package) -> Result<Report> {
    let meta = pkg.meta()?;
    Ok(report(
        target,
        pkg.format.name(),
        meta,
        Some(pkg.digest()),
        pkg.size(),
    ))
}

fn from_object(target: &str, name: &str, bytes: &[u8]) -> Result<Report> {
    let info = object::read(bytes, None)?;
    let stem = name.split('.').next().unwrap_or(name);
    let mut meta = PackageMeta::new(stem, "", name);
    info.fill_meta(&mut meta);
    Ok(report(target, "object", &meta, None, bytes.len() as u64))
}

fn report(
    target: &str,
    format: &str,
    meta: &PackageMeta,
    digest: Option<String>,
    size: u64,
) -> Report {
    Report {
        target: target.to_string(),
        format: format.to_string(),
        name: meta.name.clone(),
        version: meta.version.clone(),
        description: meta.description.clone(),
        license: meta.license.clone(),
        source: meta.source.clone(),
        arch: meta.arch.clone(),
        runtime: meta.runtime.clone(),
        digest,
        size,
        object: meta.object.clone(),
        programs: meta
            .programs
            .iter()
            .map(|p| ProgramReport {
                name: p.name.clone(),
                section: p.section.clone(),
                prog_type: p.prog_type.clone(),
                attach: object::attach_point(&p.section),
            })
            .collect(),
        maps: meta.maps.clone(),
        params: meta.params.clone(),
        events: meta.events.iter().map(|e| event_report(e, meta)).collect(),
        plan: Plan::of(meta),
        provenance: None,
        kernel_matrix: None,
    }
}

fn event_report(event: &EventInfo, meta: &PackageMeta) -> EventReport {
    let fields = match meta.types.get(&event.type_name) {
        Some(TypeLayout::Struct { fields, .. } | TypeLayout::Union { fields, .. }) => fields
            .iter()
            .map(|f| format!("{}: {}", f.name, decode::kind_name(&f.ty)))
            .collect(),
        _ => vec![],
    };
    EventReport {
        map: event.map.clone(),
        type_name: event.type_name.clone(),
        fields,
    }
}

/// The report as aligned text, for a terminal: the package's facts, a table each for its
/// programs, maps, params and events, then what running it will do.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    render_facts(&mut out, r);
    if let Some(p) = &r.provenance {
        render_provenance(&mut out, p);
    }
    if let Some(m) = &r.kernel_matrix {
        let _ = writeln!(
            out,
            "Kernels:     tested on {} kernel(s), {}",
            m.matrix.kernels.len(),
            who(&m.verified_by)
        );
        for line in m.matrix.render().lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    render_tables(&mut out, r);
    out.push_str(&r.plan.render());
    out
}

/// `Name:`, `Format:`, … one aligned line each.
fn render_facts(out: &mut String, r: &Report) {
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(out, "{k:<12} {v}");
    };
    line("Name:", format!("{} {}", r.name, r.version).trim_end());
    line("Format:", &r.format);
    for (k, v) in [
        ("Description:", &r.description),
        ("License:", &r.license),
        ("Source:", &r.source),
    ] {
        if let Some(v) = v {
            line(k, v);
        }
    }
    line("Arch:", &r.arch);
    line("Runtime:", &runtime_text(&r.runtime));
    if let Some(d) = &r.digest {
        line("Digest:", d);
    }
    line("Size:", &format!("{} bytes", r.size));
    line("Object:", &r.object);
}

/// `Provenance:` with who signed it, then the attested facts.
fn render_provenance(out: &mut String, p: &ProvenanceReport) {
    let _ = writeln!(out, "Provenance:  {}", who(&p.verified_by));
    let f = &p.facts;
    let source = format!(
        "{} @ {}{}",
        f.repository.as_deref().unwrap_or("(no repository)"),
        f.commit.as_deref().unwrap_or("(no commit)"),
        if f.dirty {
            " (dirty: uncommitted changes)"
        } else {
            ""
        }
    );
    let tools: Vec<String> = f.tools.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    for (k, v) in [
        ("source", source),
        ("ebpf.toml", f.manifest_digest.clone()),
        ("builder", f.builder.clone()),
        ("tools", tools.join("; ")),
        ("command", f.command.join(" ")),
    ] {
        let _ = writeln!(out, "  {k:<10} {v}");
    }
}

/// Who vouches for an attestation, in words.
fn who(verified_by: &Option<String>) -> String {
    match verified_by {
        Some(key) => format!("signed by trusted key {key}"),
        None => "UNVERIFIED (no trusted key for this scope: `trust add SCOPE --key PUB`)".into(),
    }
}

fn render_tables(out: &mut String, r: &Report) {
    section(
        out,
        "Programs",
        r.programs
            .iter()
            .map(|p| vec![p.name.clone(), p.prog_type.clone(), p.attach.clone()]),
    );
    section(
        out,
        "Maps",
        r.maps.iter().map(|m| {
            vec![
                m.name.clone(),
                m.map_type.clone(),
                format!(
                    "key {} B, value {} B, max {}",
                    m.key_size, m.value_size, m.max_entries
                ),
            ]
        }),
    );
    section(
        out,
        "Params",
        r.params.iter().map(|p| {
            let flags = match &p.short {
                Some(s) => format!("-{s}, --{}", p.flag),
                None => format!("--{}", p.flag),
            };
            vec![
                flags,
                decode::kind_name(&p.ty),
                format!("default {}", p.default),
                p.description.clone().unwrap_or_default(),
            ]
        }),
    );
    section(
        out,
        "Events",
        r.events.iter().map(|e| {
            vec![
                e.map.clone(),
                format!("struct {}", e.type_name),
                e.fields.join(", "),
            ]
        }),
    );
}

fn runtime_text(runtime: &Runtime) -> String {
    match runtime {
        Runtime::Kernel => "kernel (the built-in loader attaches the object)".into(),
        Runtime::Executable { path, .. } => format!("executable ({path})"),
        Runtime::Container { image, .. } => format!("container ({image})"),
        Runtime::Files { files, script, .. } => format!(
            "files ({} placed{})",
            files.len(),
            script
                .as_deref()
                .map(|s| format!(", then {s}"))
                .unwrap_or_default()
        ),
    }
}

/// A titled list of aligned rows; "none" when empty.
fn section(out: &mut String, title: &str, rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let _ = writeln!(out, "{title}:");
    if rows.is_empty() {
        out.push_str("  none\n");
        return;
    }
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
    }
}
