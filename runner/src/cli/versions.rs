//! Versions of packages: `outdated`, `upgrade`, `diff`, and `mirror` (copying them to
//! another registry). The work is in [`crate::upgrade`], [`ebpf_package::diff`] and
//! [`crate::mirrors`].

use std::path::Path;

use crate::resolve::{self, Runnable};
use crate::store::Store;
use crate::upgrade::{self, Request, Restart};
use ebpf_package::{Error, Package, Reference, Result};

use super::{full_reference, full_target, outln, registry, Host, RegistryArgs};

pub fn outdated(json: bool, args: &RegistryArgs) -> Result<i32> {
    let rows = upgrade::outdated(&Store::open_default()?, &registry(args)?)?;
    if json {
        let text = serde_json::to_string_pretty(&rows).expect("rows serialize");
        outln!("{text}");
        return Ok(0);
    }
    if rows.is_empty() {
        eprintln!("Every stored package is at its newest version");
        return Ok(0);
    }
    outln!(
        "{:<50} {:<10} {:<11} {:<10} RUNS",
        "REFERENCE",
        "CURRENT",
        "COMPATIBLE",
        "LATEST"
    );
    for r in rows {
        let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        outln!(
            "{:<50} {:<10} {:<11} {:<10} {}",
            r.reference,
            r.current,
            dash(r.compatible),
            dash(r.latest),
            r.runs.join(",")
        );
    }
    Ok(0)
}

pub fn upgrade(
    target: Option<&str>,
    latest: bool,
    yes: bool,
    args: &RegistryArgs,
    host: &Host,
) -> Result<i32> {
    let registry = registry(args)?;
    let store = Store::open_default()?;
    let references = match target {
        Some(text) => {
            let reference = Reference::parse(&crate::config::expand(text)?)?;
            let found = upgrade::stored_matching(&store, &reference)?;
            if found.is_empty() {
                return Err(Error::input(format!(
                    "no version of {} is in the local store",
                    reference.repository()
                ))
                .with_help(format!("install it first: `{} install {text}`", host.name)));
            }
            found
        }
        None => upgrade::stored_versioned(&store)?,
    };
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("find", Path::new(&format!("the {} binary", host.name)), e))?;
    for reference in references {
        let request = Request {
            reference: &reference,
            latest,
            yes,
            exe: exe.clone(),
        };
        let show = |d: &ebpf_package::diff::PackageDiff| eprint!("{}", d.render());
        let done = upgrade::upgrade(&request, &store, &registry, show)?;
        let Some(to) = done.to else {
            eprintln!("  Up to date {reference}");
            continue;
        };
        eprintln!("    Upgraded {reference} → {to}");
        outln!("{to}");
        for restart in done.restarts {
            report_restart(&restart, host);
        }
    }
    Ok(0)
}

fn report_restart(restart: &Restart, host: &Host) {
    match restart {
        Restart::Upgraded { old_id, new_id } => eprintln!(
            "   Restarted run {old_id} as run {new_id} on the new version (`{} logs {new_id}`)",
            host.name
        ),
        Restart::RolledBack {
            old_id,
            new_id,
            error,
        } => eprintln!(
            "warning: the new version failed to start ({error}); rolled back: run {old_id} \
             runs the old version again as run {new_id}"
        ),
    }
}

pub fn diff(
    old: &str,
    new: Option<&str>,
    (from, to): (Option<&str>, Option<&str>),
    json: bool,
    args: &RegistryArgs,
) -> Result<i32> {
    let registry = registry(args)?;
    let (old_target, new_target) = match (new, to) {
        (Some(new), _) => (full_target(old, &registry)?, full_target(new, &registry)?),
        (None, Some(to)) => {
            let base = full_reference(old, &registry)?;
            let from = match from {
                Some(f) => f.to_string(),
                None => base.tag().unwrap_or("latest").to_string(),
            };
            (
                base.with_tag(&from).to_string(),
                base.with_tag(to).to_string(),
            )
        }
        (None, None) => {
            return Err(Error::usage("diff needs two packages")
                .with_help("`diff OLD NEW`, or `diff REF --from 0.1.0 --to 0.2.0`"))
        }
    };
    let read = |target: &str| -> Result<Package> {
        match resolve::peek(target, &registry, Store::open_default)? {
            Runnable::Package(p) => Ok(*p),
            Runnable::Object { name, .. } => Err(Error::input(format!(
                "{name} is a bare object, not a package"
            ))
            .with_help("diff compares packages: references or OCI layouts")),
        }
    };
    let diff = upgrade::diff(&read(&old_target)?, &read(&new_target)?)?;
    if json {
        let text = serde_json::to_string_pretty(&diff).expect("diffs serialize");
        outln!("{text}");
    } else {
        outln!("{old_target} → {new_target}");
        outln!("{}", diff.render().trim_end());
    }
    Ok(0)
}

/// Largest `@FILE` list read.
const MAX_LIST_SIZE: u64 = 1 << 20;

pub fn mirror(source: &str, dest: &str, args: &RegistryArgs) -> Result<i32> {
    let registry = registry(args)?;
    crate::config::check_registry_prefix(dest)?;
    let mut copied = crate::mirrors::Copied::default();
    for reference in mirror_sources(source, &registry)? {
        crate::mirrors::copy(&registry, &reference, dest, &mut copied)?;
        eprintln!("      Copied {reference} → {dest}");
    }
    eprintln!(
        "    Mirrored {} reference(s), {} manifest(s), {} signature/attestation tag(s)",
        copied.references.len(),
        copied.manifests,
        copied.signature_tags.len()
    );
    for r in &copied.references {
        outln!("{r}");
    }
    Ok(0)
}

/// What `mirror SOURCE` names: `@FILE`'s references, a repository's version tags, or one
/// reference.
fn mirror_sources(source: &str, registry: &crate::registry::Registry) -> Result<Vec<Reference>> {
    if let Some(file) = source.strip_prefix('@') {
        return read_list(Path::new(file))?
            .iter()
            .map(|line| full_reference(line, registry))
            .collect();
    }
    let last = source.rsplit('/').next().unwrap_or(source);
    let reference = full_reference(source, registry)?;
    if last.contains(':') || last.contains('@') || crate::config::is_short_name(source) {
        return Ok(vec![reference]);
    }
    let tags = registry.list_tags(&reference)?;
    let versions: Vec<Reference> = tags
        .iter()
        .filter(|t| crate::versions::parse(t).is_some())
        .map(|t| reference.with_tag(t))
        .collect();
    if versions.is_empty() {
        return Err(Error::input(format!(
            "{} has no version tags to mirror",
            reference.repository()
        ))
        .with_help("name one reference with its tag to copy just that"));
    }
    Ok(versions)
}

fn read_list(path: &Path) -> Result<Vec<String>> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_LIST_SIZE).read_to_string(&mut text))
        .map_err(|e| Error::io("read", path, e))?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        return Err(
            Error::input(format!("{} lists no reference", path.display()))
                .with_help("write one reference a line (# starts a comment)"),
        );
    }
    Ok(lines)
}
