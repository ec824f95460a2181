//! Platforms: the `os/architecture` a package is built for, and choosing this host's entry
//! among an image index's (pull, run of a layout) with one clear error when there is none.

use oci_client::manifest::ImageIndexEntry;
use serde::{Deserialize, Serialize};

use crate::{spec, Error, Result};

/// An OCI platform as far as packages need it: `linux` and a GOARCH name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
}

impl Platform {
    /// The platform this process runs on.
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: spec::oci_arch(spec::host_arch()).into(),
        }
    }

    /// The platform of an index entry, when it names one.
    pub fn of_entry(entry: &ImageIndexEntry) -> Option<Platform> {
        serde_json::to_value(entry.platform.as_ref()?)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)
    }
}

/// The entry of `entries` for this host. `what` names the package in the error, which says
/// which platforms it has and what to do (an Input error: the package does not fit here).
pub fn pick_platform<'a>(
    entries: &'a [ImageIndexEntry],
    what: &str,
) -> Result<&'a ImageIndexEntry> {
    let host = Platform::host();
    if let Some(entry) = entries
        .iter()
        .find(|e| Platform::of_entry(e).as_ref() == Some(&host))
    {
        return Ok(entry);
    }
    let have: Vec<String> = entries
        .iter()
        .map(|e| Platform::of_entry(e).map_or("an unnamed platform".into(), |p| p.to_string()))
        .collect();
    Err(wrong_platform(what, &have))
}

/// Refuses a single-platform package built for another platform than this host's.
pub fn check_host_platform(platform: &Platform, what: &str) -> Result<()> {
    if *platform == Platform::host() {
        return Ok(());
    }
    Err(wrong_platform(what, &[platform.to_string()]))
}

/// The error for a package with nothing for this host: the same whether platform selection
/// or the runner's preflight (a package's own `arch`) finds it.
pub fn wrong_platform(what: &str, have: &[String]) -> Error {
    let host = Platform::host();
    let have = if have.is_empty() {
        "no platform at all".to_string()
    } else {
        have.join(", ")
    };
    Error::input(format!(
        "{what} has no package for this machine ({host}), only for {have}"
    ))
    .with_help(format!(
        "run it on a machine of one of those platforms, or ask the publisher to build and push \
         it for this one too: `cargo ebpf publish --arch {},...`",
        spec::host_arch()
    ))
}
