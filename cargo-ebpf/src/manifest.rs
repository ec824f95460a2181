//! `ebpf.toml`: the one manifest file of a project (package fields + build settings).
//! STUB: contract only.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ebpf_runner::Result;

/// The manifest's file name.
pub const FILE_NAME: &str = "ebpf.toml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub package: PackageSection,
    #[serde(default)]
    pub build: BuildSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSection {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    /// Source repository URL.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Where `cargo ebpf publish` pushes: `host[:port]/namespace`; the reference becomes
    /// `{registry}/{name}:{version}`.
    #[serde(default)]
    pub registry: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// The project kind; `eunomia` (kernel-only C) is the only one so far.
    #[serde(default)]
    pub kind: Option<String>,
    /// BPF C sources; default: every `src/*.bpf.c`.
    #[serde(default)]
    pub sources: Vec<PathBuf>,
    /// The event struct's name, when inference should not guess.
    #[serde(default)]
    pub event: Option<String>,
    /// Extra include directories, relative to the project.
    #[serde(default)]
    pub include: Vec<PathBuf>,
}

/// A loaded manifest with the project directory it came from.
#[derive(Debug, Clone)]
pub struct Project {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Project {
    /// Finds `ebpf.toml` in `start` or its parents and loads it, with clear errors for a
    /// missing file, bad TOML, unknown keys, bad name or version.
    pub fn discover(start: &Path) -> Result<Project> {
        let _ = start;
        todo!()
    }
}

/// Checks a package name: lowercase ASCII letters, digits, `-` and `_`, starting with a
/// letter, at most 64 characters (it becomes a registry repository name and a C identifier).
pub fn validate_name(name: &str) -> Result<()> {
    let _ = name;
    todo!()
}

impl Project {
    pub fn reference(&self) -> Result<String> {
        todo!()
    }
    pub fn target_dir(&self) -> PathBuf {
        self.dir.join("target").join("ebpf")
    }
}
