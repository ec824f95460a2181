//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// Honest skips and tests run alone: the same file as `ebpf_e2e_tests::harness`.
#[path = "../../../../tests/src/harness.rs"]
pub mod harness;

pub use harness::{needs, Need};

use std::path::{Path, PathBuf};

use cargo_ebpf::scaffold::{new_project_with, Identity, NewOptions};

/// A fixed author and year, so rendered projects are the same on every machine.
pub fn identity() -> Identity {
    Identity {
        author: "Test Author <test@example.com>".into(),
        year: 2024,
    }
}

/// `cargo ebpf new NAME --lang eunomia --path BASE/NAME`.
pub fn new_eunomia(base: &Path, name: &str) -> PathBuf {
    new_from_pack(base, "eunomia", name)
}

/// `cargo ebpf new NAME --lang PACK --path BASE/NAME`.
pub fn new_from_pack(base: &Path, pack: &str, name: &str) -> PathBuf {
    let dir = base.join(name);
    new_project_with(
        &NewOptions {
            name,
            lang: pack,
            path: Some(&dir),
        },
        &identity(),
    )
    .expect("new project")
}

/// Every file under `dir`, relative and sorted.
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(dir).unwrap().to_path_buf())
        .collect();
    files.sort();
    files
}

/// Names of the entries directly in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
