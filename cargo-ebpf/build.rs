//! Rebuild when a template pack or a shared CI template changes: `include_dir!` embeds
//! template-packs/, github-actions/ and gitee-ci/ but does not tell cargo to watch them.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["template-packs", "github-actions", "gitee-ci"] {
        watch(&root.join(dir));
    }
}

/// Emits rerun-if-changed for `dir` (so added or removed files count) and every file in it.
fn watch(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            watch(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
