//! `cargo ebpf new`: render a template pack into a new project directory.
//! STUB: contract only.

use std::path::{Path, PathBuf};

use ebpf_runner::Result;

pub struct NewOptions<'a> {
    pub name: &'a str,
    /// Template pack: `eunomia` (later: c, go, rust).
    pub lang: &'a str,
    /// Where to create the project; default `./NAME`.
    pub path: Option<&'a Path>,
}

/// Renders the pack; refuses an invalid name or an existing directory, writing nothing.
/// Returns the project directory.
pub fn new_project(opts: &NewOptions) -> Result<PathBuf> {
    let _ = opts;
    todo!()
}

/// One template pack, for `new --list`.
#[derive(Debug, Clone)]
pub struct PackInfo {
    pub name: String,
    pub description: String,
    pub language: String,
}

pub fn packs() -> Vec<PackInfo> {
    todo!()
}
