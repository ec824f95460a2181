//! `cargo ebpf package`: the built object + manifest → a package, written as an OCI image
//! layout under `target/ebpf/oci` (tagged with the version; `skopeo` reads it as
//! `oci:target/ebpf/oci:VERSION`). Built for several architectures, the tag points at an
//! OCI image index with one package per platform ([`ebpf_package::image_index`]).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use ebpf_package::blob::Blob;
use ebpf_package::image_index::Release;
use ebpf_package::layer::LayerFile;
use ebpf_package::layout::OciLayout;
use ebpf_package::spec::{self, PackageMeta, PlacedFile, Runtime, SCHEMA_VERSION};
use ebpf_package::{formats, object, Error, Package, Result};

use crate::build::BuildOutput;
use crate::manifest::{Project, RunSection};

/// Where `package` wrote to.
#[derive(Debug, Clone)]
pub struct PackageOutput {
    pub layout_dir: PathBuf,
    /// The tag inside the layout (the version).
    pub tag: String,
    /// What the tag points at: the manifest, or the index of a multi-arch package.
    pub digest: String,
    /// The architectures packaged, in order.
    pub arches: Vec<String>,
}

/// Builds the package for a built project: small parts in memory, a large layer spooled
/// to a temp file (see [`ebpf_package::blob::Spool`]).
pub fn build_package(project: &Project, built: &BuildOutput) -> Result<Package> {
    Inputs::of(project, built)?.build()
}

/// What goes into one package: its metadata, the layer's files, the creation time and the
/// per-kernel BTF layer.
struct Inputs {
    meta: PackageMeta,
    files: Vec<LayerFile>,
    created: String,
    btfgen: Option<PathBuf>,
}

impl Inputs {
    /// The layer holds the object at its root and, for kinds with a userspace loader, the
    /// loader as `bin/<name>`.
    fn of(project: &Project, built: &BuildOutput) -> Result<Inputs> {
        let bytes =
            std::fs::read(&built.object).map_err(|e| Error::io("read", &built.object, e))?;
        let (meta, files) = package_files(project, built, bytes)?;
        Ok(Inputs {
            meta,
            files,
            created: created_timestamp(built),
            btfgen: built.btfgen.clone(),
        })
    }

    /// Changes whenever the package would: metadata, files, time, BTF layer, this tool.
    fn fingerprint(&self) -> Result<String> {
        let meta = serde_json::to_string(&self.meta)
            .map_err(|e| Error::input("cannot serialize the package metadata").with_source(e))?;
        let mut parts = vec![
            env!("CARGO_PKG_VERSION").to_string(),
            meta,
            self.created.clone(),
        ];
        parts.extend(self.files.iter().map(LayerFile::fingerprint));
        if let Some(path) = &self.btfgen {
            parts.push(LayerFile::from_disk("btfgen", path, 0)?.fingerprint());
        }
        Ok(ebpf_package::digest::sha256(parts.join("\n").as_bytes()))
    }

    fn build(self) -> Result<Package> {
        let pkg = Package::build_with_files(self.meta, &self.files, Some(self.created))?;
        match &self.btfgen {
            Some(path) => {
                let data = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
                pkg.with_btfgen(Blob::new(spec::MEDIA_TYPE_BTFGEN, data))
            }
            None => Ok(pkg),
        }
    }
}

/// The metadata and the layer's files of a build (`bytes` is the object).
fn package_files(
    project: &Project,
    built: &BuildOutput,
    bytes: Vec<u8>,
) -> Result<(PackageMeta, Vec<LayerFile>)> {
    let mut meta = package_meta(project, built, &bytes)?;
    let mut files = vec![LayerFile::new(&meta.object, bytes, 0o644)];
    if let Some(loader) = &built.loader {
        let path = spec::loader_path(project.name());
        files.push(LayerFile::from_disk(&path, loader, 0o755)?);
        meta.runtime = Runtime::Executable {
            path,
            args: vec![],
            env: Default::default(),
            workdir: None,
        };
    }
    if let Some(run) = &project.manifest.run {
        if built.loader.is_some() {
            return Err(Error::input(format!(
                "{}: [run] declares a runtime, but a `{}` project ships its own loader",
                project.manifest_path().display(),
                project.kind().as_str()
            ))
            .with_help(
                "remove [run], or use `kind = \"eunomia\"` for a container or files package",
            ));
        }
        meta.runtime = declared_runtime(run);
        files.extend(declared_files(project, run)?);
    }
    if !files.iter().any(|f| f.path == README) {
        files.extend(readme_file(project)?);
    }
    Ok((meta, files))
}

/// The project's README, carried in the layer so a hub can show it on the package page.
const README: &str = "README.md";
/// A README larger than this is left out (a hub shows the description instead).
const MAX_README: u64 = 512 * 1024;

/// `README.md` of the project, when it has one of a sensible size.
fn readme_file(project: &Project) -> Result<Option<LayerFile>> {
    let path = project.dir.join(README);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() && m.len() <= MAX_README => {
            let data = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            Ok(Some(LayerFile::new(README, data, 0o644)))
        }
        Ok(m) if m.is_file() => {
            eprintln!(
                "warning: {} is larger than {MAX_README} bytes; not packaged",
                path.display()
            );
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// The runtime `[run]` declares (validated when the manifest was read).
fn declared_runtime(run: &RunSection) -> Runtime {
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    match &run.container {
        Some(image) => Runtime::Container {
            image: image.clone(),
            args: run.args.clone(),
            env: run.env.clone(),
        },
        None => Runtime::Files {
            files: run
                .files
                .iter()
                .map(|f| PlacedFile {
                    src: path(&f.src),
                    dest: f.dest.clone(),
                    mode: f.mode,
                    overwrite: f.overwrite,
                })
                .collect(),
            script: run.script.as_deref().map(path),
            stop_script: run.stop_script.as_deref().map(path),
        },
    }
}

/// The project files `[run]` names (files and scripts), at the same paths in the layer.
fn declared_files(project: &Project, run: &RunSection) -> Result<Vec<LayerFile>> {
    let paths = run
        .files
        .iter()
        .map(|f| (&f.src, f.mode.unwrap_or(0o644)))
        .chain(run.script.iter().map(|s| (s, 0o755)))
        .chain(run.stop_script.iter().map(|s| (s, 0o755)));
    let mut out: Vec<LayerFile> = Vec::new();
    for (rel, mode) in paths {
        let name = rel.to_string_lossy();
        if out.iter().any(|f| f.path == name) {
            continue;
        }
        let full = project.dir.join(rel);
        let file = LayerFile::from_disk(&name, &full, mode & 0o777)
            .map_err(|e| e.with_help("[run] in ebpf.toml names this file"))?;
        out.push(file);
    }
    Ok(out)
}

/// Builds the package (or index, one package per architecture) and writes it into
/// `target/ebpf/oci`, tagged with the version; returns it too, for `push`. When nothing
/// that goes into it changed since the last `package`, the layout's copy is used as it is:
/// what was packaged (and maybe tested) is what is pushed, and nothing is compressed twice.
pub fn package(
    project: &Project,
    built: &[BuildOutput],
    reuse: Reuse,
) -> Result<(PackageOutput, Release)> {
    let inputs = built
        .iter()
        .map(|b| Inputs::of(project, b))
        .collect::<Result<Vec<_>>>()?;
    let fingerprints = inputs
        .iter()
        .map(Inputs::fingerprint)
        .collect::<Result<Vec<_>>>()?;
    let key = ebpf_package::digest::sha256(fingerprints.join("\n").as_bytes());
    let layout_dir = project.target_dir().join("oci");
    let layout = OciLayout::create(&layout_dir)?;
    let tag = project.manifest.package.version.clone();
    let release = match packaged_before(&layout, &tag, &key, reuse) {
        Some(release) => release,
        None => {
            let packages = inputs.into_iter().map(Inputs::build);
            let release = Release::new(packages.collect::<Result<Vec<_>>>()?)?;
            let stamp = [(spec::ANNOTATION_PACKAGE_INPUTS.to_string(), key)].into();
            layout.write_release_annotated(&release, &tag, stamp)?;
            release
        }
    };
    let out = PackageOutput {
        layout_dir,
        tag,
        digest: release.digest(),
        arches: built.iter().map(|b| b.arch.clone()).collect(),
    };
    Ok((out, release))
}

/// How much of an earlier `package`'s layout is read before it is used again.
#[derive(Clone, Copy)]
pub enum Reuse {
    /// Every blob hashed now, so a damaged one is packaged anew: `cargo ebpf package`.
    Verified,
    /// Large layers checked against their digests as they are read: `push`, which reads
    /// them once, as it sends them, and stops at a damaged one.
    CheckedOnUse,
}

/// The release under `tag` when it was packaged from inputs with fingerprint `key` and is
/// still intact; anything else (another version's files, a damaged blob) packages anew.
fn packaged_before(layout: &OciLayout, tag: &str, key: &str, reuse: Reuse) -> Option<Release> {
    let entry = layout.find_ref(Some(tag)).ok()??;
    let stamp = entry
        .annotations
        .as_ref()?
        .get(spec::ANNOTATION_PACKAGE_INPUTS)?;
    if stamp != key {
        return None;
    }
    match reuse {
        Reuse::Verified => layout.read_release(&entry),
        Reuse::CheckedOnUse => layout.read_release_checked_on_use(&entry),
    }
    .ok()
}

/// The package metadata: the manifest's fields plus what the object itself says.
fn package_meta(
    project: &Project,
    built: &BuildOutput,
    object_bytes: &[u8],
) -> Result<PackageMeta> {
    let m = &project.manifest;
    let mut info = object::read(object_bytes, m.build.event.as_deref())?;
    // `/// @description` and `/// @cmdarg` above the params, read from the sources.
    formats::document_params(&mut info.params, &crate::build::param_docs(project)?)?;
    let object_name = built
        .object
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("{}.bpf.o", m.package.name));
    let annotations = annotations_of(project, &info.programs, &info.maps)?;
    Ok(PackageMeta {
        schema: SCHEMA_VERSION,
        name: m.package.name.clone(),
        version: m.package.version.clone(),
        description: m.package.description.clone(),
        license: m.package.license.clone(),
        authors: m.package.authors.clone(),
        source: m.package.source.clone(),
        keywords: m.package.keywords.clone(),
        arch: built.arch.clone(),
        runtime: Runtime::Kernel,
        object: object_name,
        programs: info.programs,
        maps: info.maps,
        events: info.events,
        params: info.params,
        types: info.types,
        annotations,
        smoke: m.test.as_ref().and_then(|t| t.smoke.clone()),
        columns: Default::default(),
    })
}

/// RFC 3339 creation time: SOURCE_DATE_EPOCH when set, else when the build outputs were last
/// written. Not "now": `package` and a later `push` of the same unchanged build must give the
/// same digest, or what was tested is not what was published.
fn created_timestamp(built: &BuildOutput) -> String {
    let from_env = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|secs| UNIX_EPOCH + std::time::Duration::from_secs(secs));
    let from_outputs = || {
        std::iter::once(&built.object)
            .chain(&built.loader)
            .filter_map(|p| p.metadata().and_then(|m| m.modified()).ok())
            .max()
    };
    let time = from_env
        .or_else(from_outputs)
        .unwrap_or_else(SystemTime::now);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The source annotations of the object's own programs and maps.
fn annotations_of(
    project: &Project,
    programs: &[ebpf_package::spec::ProgramInfo],
    maps: &[ebpf_package::spec::MapInfo],
) -> Result<std::collections::BTreeMap<String, std::collections::BTreeMap<String, serde_json::Value>>>
{
    let mut all = crate::build::source_annotations(project)?;
    let known = |name: &String| {
        programs.iter().any(|p| &p.name == name) || maps.iter().any(|m| &m.name == name)
    };
    all.retain(|name, _| known(name));
    Ok(all)
}
