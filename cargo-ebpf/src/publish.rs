//! What `publish` checks before it uploads anything: the package says what it is
//! (description), under which terms (license), and has a README for its hub page; and its
//! version is not already published (versions are immutable: a new build needs a new
//! version, not a re-push). `push` to an explicit reference skips these: it is the tool for
//! tags that move.

use ebpf_package::{Error, Reference, Result};
use ebpf_runner::registry::Registry;

use crate::manifest::Project;

/// README file names a hub shows, in order of preference.
const READMES: [&str; 3] = ["README.md", "README", "README.txt"];

/// The metadata a published package must carry; every gap is named at once.
pub fn check_metadata(project: &Project) -> Result<()> {
    let pkg = &project.manifest.package;
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    let mut missing = vec![];
    if blank(&pkg.description) {
        missing.push("a description (`description = \"…\"` under [package])");
    }
    if blank(&pkg.license) {
        missing.push("a license (`license = \"GPL-2.0\"` or another SPDX id under [package])");
    }
    if !READMES.iter().any(|r| project.dir.join(r).is_file()) {
        missing.push("a README.md next to ebpf.toml (the hub shows it on the package page)");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "{} {} is not ready to publish: it lacks {}",
        pkg.name,
        pkg.version,
        missing.join("; ")
    ))
    .with_help(format!(
        "add them in {} (nothing was built or uploaded); `push REF` uploads without these checks",
        project.dir.display()
    )))
}

/// Refuses a version the registry already has under its tag.
pub fn check_unpublished(registry: &Registry, reference: &Reference) -> Result<()> {
    let version = reference.tag().unwrap_or_default();
    match registry.fetch_manifest(reference) {
        Ok(Some((_, digest))) => Err(Error::input(format!(
            "{version} is already published at {reference} ({digest}); bump the version in ebpf.toml"
        ))
        .with_help("published versions never change: raise `version` under [package] (e.g. the patch number) and publish again")),
        // Absent, or the registry cannot say: the upload itself will tell.
        Ok(None) | Err(_) => Ok(()),
    }
}
