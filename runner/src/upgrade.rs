//! `outdated` and `upgrade`: stored packages (and the background runs using them) whose
//! repository offers a newer version, and moving them onto it.
//!
//! An upgrade pulls the new version through the trust gate (exactly as `pull` would),
//! diffs it against the stored one, and only then stores it. Each background run of the
//! old version is stopped and started again on the new one with the same options; if the
//! new one fails to start, the old one is started again, so a bad release never leaves a
//! run down. The old version stays in the store (`rm` removes it).

use std::path::PathBuf;

use ebpf_package::diff::{PackageDiff, Side};
use ebpf_package::{Error, Package, Reference, Result};
use semver::Version;
use serde::Serialize;

use crate::lifecycle::{self, RunState, StartRequest};
use crate::registry::Registry;
use crate::resolve;
use crate::store::Store;
use crate::versions::{self, Offered};

/// One row of `outdated`.
#[derive(Debug, Clone, Serialize)]
pub struct Outdated {
    /// The store key (`HOST/REPO:VERSION`).
    pub reference: String,
    pub current: String,
    /// The newest version with the same major, if newer.
    pub compatible: Option<String>,
    /// The newest version of any major, if newer.
    pub latest: Option<String>,
    /// Background runs using the stored version.
    pub runs: Vec<String>,
}

/// A stored package whose tag is a version: its reference and that version.
fn versioned(reference: &str) -> Option<(Reference, Version)> {
    let reference = Reference::parse(reference).ok()?;
    let version = versions::parse(reference.tag()?)?;
    reference.digest().is_none().then_some((reference, version))
}

/// Stored packages whose repository offers a newer version. A registry that cannot be
/// asked is reported on stderr and skipped, so one offline registry does not hide the rest.
pub fn outdated(store: &Store, registry: &Registry) -> Result<Vec<Outdated>> {
    let mut rows = vec![];
    for entry in store.list()? {
        let Some((reference, current)) = versioned(&entry.reference) else {
            continue;
        };
        let offered = match versions::offered(registry, &reference) {
            Ok(o) => o,
            Err(e) => {
                eprintln!(
                    "warning: cannot list the versions of {reference}: {}",
                    e.full_message()
                );
                continue;
            }
        };
        let compatible = versions::newer(&offered, &current, false).map(|o| o.tag.clone());
        let latest = versions::newer(&offered, &current, true).map(|o| o.tag.clone());
        if compatible.is_none() && latest.is_none() {
            continue;
        }
        let runs = lifecycle::active_runs_of(&entry.reference)?;
        rows.push(Outdated {
            reference: entry.reference,
            current: current.to_string(),
            compatible,
            latest,
            runs: runs.into_iter().map(|r| r.id).collect(),
        });
    }
    Ok(rows)
}

/// The stored references `target` names: its tag when that is stored; else, of its
/// repository, the newest stored version and every version a background run uses (an old
/// version nobody runs is left alone).
pub fn stored_matching(store: &Store, target: &Reference) -> Result<Vec<String>> {
    let same_repo =
        |r: &Reference| r.registry() == target.registry() && r.repository() == target.repository();
    let mut found: Vec<(String, Version)> = store
        .list()?
        .into_iter()
        .filter_map(|e| versioned(&e.reference).map(|(r, v)| (e.reference, r, v)))
        .filter(|(_, r, _)| same_repo(r))
        .map(|(key, _, v)| (key, v))
        .collect();
    if let Some(exact) = found.iter().find(|(k, _)| *k == target.to_string()) {
        return Ok(vec![exact.0.clone()]);
    }
    found.sort_by(|a, b| a.1.cmp(&b.1));
    let newest = found.last().map(|(k, _)| k.clone());
    let mut keep = vec![];
    for (key, _) in found {
        if Some(&key) == newest.as_ref() || !lifecycle::active_runs_of(&key)?.is_empty() {
            keep.push(key);
        }
    }
    Ok(keep)
}

/// Every stored reference whose tag is a version (`upgrade --all`).
pub fn stored_versioned(store: &Store) -> Result<Vec<String>> {
    Ok(store
        .list()?
        .into_iter()
        .map(|e| e.reference)
        .filter(|r| versioned(r).is_some())
        .collect())
}

/// What `upgrade` is asked to do for one stored reference.
pub struct Request<'a> {
    pub reference: &'a str,
    /// Any major version, not only the current one's.
    pub latest: bool,
    /// Go ahead with a breaking change.
    pub yes: bool,
    /// The binary that runs background daemons.
    pub exe: PathBuf,
}

/// What happened to one background run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Restart {
    /// Now running the new version as `new_id`.
    Upgraded { old_id: String, new_id: String },
    /// The new version failed to start; the old one runs again as `new_id`.
    RolledBack {
        old_id: String,
        new_id: String,
        error: String,
    },
}

/// The result of upgrading one stored reference.
#[derive(Debug, Clone, Serialize)]
pub struct Upgraded {
    pub from: String,
    /// None when it is already the newest.
    pub to: Option<String>,
    pub diff: Option<PackageDiff>,
    pub restarts: Vec<Restart>,
}

/// Upgrades one stored reference; `show` receives the diff before anything is stored or
/// restarted (the CLI prints it).
pub fn upgrade(
    req: &Request,
    store: &Store,
    registry: &Registry,
    show: impl Fn(&PackageDiff),
) -> Result<Upgraded> {
    let (reference, current) = versioned(req.reference).ok_or_else(|| {
        Error::usage(format!("{} is not tagged with a version", req.reference))
            .with_help("upgrade knows packages tagged NAME:MAJOR.MINOR.PATCH")
    })?;
    let offered = versions::offered(registry, &reference)?;
    let Some(Offered { tag, .. }) = versions::newer(&offered, &current, req.latest) else {
        return Ok(Upgraded {
            from: reference.to_string(),
            to: None,
            diff: None,
            restarts: vec![],
        });
    };
    let new_ref = reference.with_tag(tag);
    let old = resolve::fetch(&reference, store, registry)?;
    let new = resolve::pull_verified(&new_ref, registry)?;
    let diff = diff(&old, &new.package)?;
    show(&diff);
    if diff.is_breaking() && !req.yes {
        return Err(Error::usage(format!(
            "{new_ref} has breaking changes (marked above); nothing was changed"
        ))
        .with_help("read the diff, then rerun with --yes to upgrade anyway"));
    }
    store.insert_verified(&new_ref, &new.package, new.verified_by.as_deref())?;
    let mut restarts = vec![];
    for run in lifecycle::active_runs_of(&reference.to_string())? {
        restarts.push(restart(&run, &old, &new.package, &new_ref, &req.exe)?);
    }
    Ok(Upgraded {
        from: reference.to_string(),
        to: Some(new_ref.to_string()),
        diff: Some(diff),
        restarts,
    })
}

/// The diff between two packages' metadata and sizes.
pub fn diff(old: &Package, new: &Package) -> Result<PackageDiff> {
    Ok(PackageDiff::of(
        Side {
            meta: old.meta()?,
            size: old.size(),
        },
        Side {
            meta: new.meta()?,
            size: new.size(),
        },
    ))
}

/// Stops `run`, starts `new` with its options; if that fails, starts `old` again.
fn restart(
    run: &RunState,
    old: &Package,
    new: &Package,
    new_ref: &Reference,
    exe: &std::path::Path,
) -> Result<Restart> {
    lifecycle::stop(&run.id)?;
    let started = lifecycle::start(&StartRequest {
        package: new,
        target: new_ref.to_string(),
        store_reference: Some(new_ref.to_string()),
        options: run.options.clone(),
        exe: exe.to_path_buf(),
    });
    let error = match started {
        Ok(state) => {
            return Ok(Restart::Upgraded {
                old_id: run.id.clone(),
                new_id: state.id,
            })
        }
        Err(e) => e,
    };
    let again = lifecycle::start(&StartRequest {
        package: old,
        target: run.target.clone(),
        store_reference: run.store_reference.clone(),
        options: run.options.clone(),
        exe: exe.to_path_buf(),
    })
    .map_err(|e2| {
        Error::kernel(format!(
            "{new_ref} failed to start ({}), and restarting the old version failed too ({})",
            error.full_message(),
            e2.full_message()
        ))
        .with_help("the run is stopped; start it again by hand once the cause is fixed")
    })?;
    Ok(Restart::RolledBack {
        old_id: run.id.clone(),
        new_id: again.id,
        error: error.full_message(),
    })
}
