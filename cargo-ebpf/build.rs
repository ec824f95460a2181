//! Rebuild when a template pack or a shared CI template changes: `include_dir!` embeds
//! templates/packs/, templates/github-actions/ and templates/gitee-ci/ but does not tell
//! cargo to watch them. They live inside this crate so a published crate holds them; the
//! repository root's template-packs/, github-actions/ and gitee-ci/ are links to them.

use std::path::Path;

fn main() {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for dir in ["packs", "github-actions", "gitee-ci"] {
        watch(&templates.join(dir));
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
