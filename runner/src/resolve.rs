//! What `run`/`pull` were pointed at: a BPF object file, an eunomia package.json (a file or
//! an http(s) URL), an OCI layout directory, or a registry reference (served from the
//! local store, pulled into it when missing).
//!
//! Packages that come in from outside (a registry, a layout directory) are checked here:
//! their object must be eBPF and their config must describe it truthfully
//! ([`Package::check_against_object`]), before anything is stored or shown.

use std::path::Path;

use ebpf_package::formats::eunomia;
use ebpf_package::layout::OciLayout;
use ebpf_package::{object, Error, Package, Reference, Result};

use crate::attestation;
use crate::mirrors;
use crate::registry::Registry;
use crate::signing;
use crate::store::Store;
use crate::url;

/// Something the runner can start.
pub enum Runnable {
    /// A cargo-ebpf package (from a layout, the store or a registry).
    Package(Box<Package>),
    /// A bare BPF object file.
    Object { name: String, bytes: Vec<u8> },
}

/// Resolves `target`: an existing path (object file or OCI layout dir) wins; anything
/// else is a registry reference. The store is opened only when a reference needs it, so
/// running a file works for users who have no writable home.
pub fn resolve(
    target: &str,
    registry: &Registry,
    open_store: impl FnOnce() -> Result<Store>,
) -> Result<Runnable> {
    let path = Path::new(target);
    if path.exists() {
        return resolve_path(path);
    }
    if url::is_url(target) {
        let json = url::fetch(target, registry.options())?;
        return Ok(Runnable::Package(Box::new(Package::from_eunomia_json(
            &json,
        )?)));
    }
    if looks_like_path(target) {
        return Err(
            Error::input(format!("no such file or directory: {target}")).with_help(
                "check the path; a package from a registry is named like \
                 registry.example.com/team/name:1.0",
            ),
        );
    }
    let reference = Reference::parse(target)?;
    Ok(Runnable::Package(Box::new(fetch(
        &reference,
        &open_store()?,
        registry,
    )?)))
}

/// Like [`resolve`], but a reference missing from the store is read from the registry
/// without being stored (for `inspect`).
pub fn peek(
    target: &str,
    registry: &Registry,
    open_store: impl FnOnce() -> Result<Store>,
) -> Result<Runnable> {
    let Some(reference) = reference_target(target)? else {
        return resolve(target, registry, open_store);
    };
    match open_store()?.get(&reference)? {
        Some(pkg) => Ok(Runnable::Package(Box::new(pkg))),
        None => {
            let pkg = pull_checked(&reference, registry)?;
            warn_if_yanked(registry, &reference);
            Ok(Runnable::Package(Box::new(pkg)))
        }
    }
}

/// `target` as a registry reference, when it is not a file, directory, URL or path.
pub fn reference_target(target: &str) -> Result<Option<Reference>> {
    is_reference(target)
        .then(|| Reference::parse(target))
        .transpose()
}

/// The package for `reference`: from the store, or pulled and stored first.
pub fn fetch(reference: &Reference, store: &Store, registry: &Registry) -> Result<Package> {
    if let Some(pkg) = store.get(reference)? {
        return Ok(pkg);
    }
    pull_into(reference, store, registry)
}

/// Pulls `reference` and stores it under its normalized name. The store is only written
/// once everything has been downloaded and verified. The one place that knows both a
/// registry and the store, as a copy between them.
/// The trust policy is applied first ([`signing::gate`]): a verified package is pulled by
/// the digest its signature covers, so a tag re-pointed meanwhile cannot swap it.
pub fn pull_into(reference: &Reference, store: &Store, registry: &Registry) -> Result<Package> {
    let verified = pull_verified(reference, registry)?;
    store.insert_verified(
        reference,
        &verified.package,
        verified.verified_by.as_deref(),
    )?;
    Ok(verified.package)
}

/// A package pulled through the trust gate, not yet stored.
pub struct Verified {
    pub package: Package,
    /// The fingerprint of the key whose signature verified, if the policy asked for one.
    pub verified_by: Option<String>,
}

/// [`pull_into`] without the store: the trust policy applied, the package pulled by the
/// digest its signature covers and checked against its object; for `upgrade`, which shows
/// a diff before it stores anything.
/// When the registry fails, its mirrors are tried in order ([`crate::mirrors`]), each
/// through the same trust gate with the content pinned.
pub fn pull_verified(reference: &Reference, registry: &Registry) -> Result<Verified> {
    let primary = signing::gate(registry, reference).and_then(|gate| {
        let package = pull_checked(&gate.pull, registry)?;
        warn_if_yanked(registry, reference);
        attestation::warn_if_kernel_fails(registry, reference, &package.digest());
        Ok(Verified {
            package,
            verified_by: gate.verified_by,
        })
    });
    match primary {
        Err(e) if mirrors::worth_a_mirror(&e) => from_mirrors(reference, registry, e),
        other => other,
    }
}

/// Tries `reference`'s mirrors in order after the primary failed with `failure`. A mirror
/// that cannot be reached is skipped; one whose content does not verify stops the pull.
fn from_mirrors(reference: &Reference, registry: &Registry, failure: Error) -> Result<Verified> {
    let list = mirrors::for_host(registry, reference.registry())?;
    if list.is_empty() {
        return Err(failure);
    }
    eprintln!(
        "warning: {} failed ({}); trying its mirrors",
        reference.registry(),
        failure.message
    );
    for mirror in &list {
        let source = mirrors::on_mirror(reference, mirror)?;
        let attempt = mirrors::gate(registry, reference, &source).and_then(|gate| {
            let package = pull_checked(&gate.pull, registry)?;
            Ok(Verified {
                package,
                verified_by: gate.verified_by,
            })
        });
        match attempt {
            Ok(verified) => {
                eprintln!("      Pulled {reference} from the mirror {mirror}");
                return Ok(verified);
            }
            Err(e) if mirrors::worth_a_mirror(&e) => {
                eprintln!("warning: the mirror {mirror} failed too ({})", e.message);
            }
            Err(e) => return Err(e),
        }
    }
    Err(failure.with_help(format!(
        "its mirrors ({}) could not serve it either; check that one of them is up",
        list.join(", ")
    )))
}

/// Pulls `reference` and checks its config against its object; nothing is written.
fn pull_checked(reference: &Reference, registry: &Registry) -> Result<Package> {
    let pkg = registry.pull(reference)?;
    pkg.check_against_object()?;
    Ok(pkg)
}

/// A hub still serves a yanked version by its exact version (pinned installs keep
/// working) but marks it; say so, since its publisher took it back.
fn warn_if_yanked(registry: &Registry, reference: &Reference) {
    if crate::hub_api::is_yanked(registry, reference) {
        eprintln!(
            "warning: {reference} is yanked: its publisher no longer offers it; pick another \
             version unless you need exactly this one"
        );
    }
}

fn resolve_path(path: &Path) -> Result<Runnable> {
    if path.is_dir() {
        if !OciLayout::is_layout(path) {
            return Err(Error::input(format!(
                "{} is a directory but not an OCI image layout (no `oci-layout` file)",
                path.display()
            ))
            .with_help("point at a project directory with `cargo ebpf run`, a package layout (target/ebpf/oci), or a .bpf.o file"));
        }
        let pkg = OciLayout::open(path)?.read_package(None)?;
        pkg.check_against_object()
            .map_err(|e| e.with_context_path(path))?;
        return Ok(Runnable::Package(Box::new(pkg)));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    if eunomia::looks_like_archive(&bytes) {
        let pkg = Package::from_eunomia_archive(&bytes).map_err(|e| e.with_context_path(path))?;
        return Ok(Runnable::Package(Box::new(pkg)));
    }
    let is_json = path.extension().is_some_and(|x| x == "json");
    if is_json || eunomia::looks_like(&bytes) {
        let pkg = Package::from_eunomia_json(&bytes).map_err(|e| e.with_context_path(path))?;
        return Ok(Runnable::Package(Box::new(pkg)));
    }
    object::check_elf(&bytes).map_err(|e| e.with_context_path(path))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Runnable::Object { name, bytes })
}

/// Whether `target` names a registry reference rather than a file, directory or URL.
pub fn is_reference(target: &str) -> bool {
    !Path::new(target).exists() && !url::is_url(target) && !looks_like_path(target)
}

fn looks_like_path(target: &str) -> bool {
    target.starts_with('.')
        || target.starts_with('/')
        || target.ends_with(".o")
        || target.ends_with(".json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_path_is_an_input_error_with_help_and_opens_no_store() {
        for target in ["./nope.bpf.o", "/no/such/dir", "missing.o"] {
            let registry = Registry::from_env(Default::default());
            let result = resolve(target, &registry, || {
                panic!("the store is not needed for a path")
            });
            let Err(err) = result else {
                panic!("{target} resolved")
            };
            assert_eq!(err.kind, ebpf_package::ErrorKind::Input);
            assert_eq!(err.message, format!("no such file or directory: {target}"));
            assert!(err.help.is_some_and(|h| h.contains("check the path")));
        }
    }
}
