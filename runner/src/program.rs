//! The name this process answers to (`cargo ebpf` or `ebpf-runner`), for hints printed far
//! from the command line (run state, daemon logs, files journals). Set once by the CLI; a
//! leaf module, so the lifecycle and run code can name the binary without importing the CLI.

use std::sync::OnceLock;

static NAME: OnceLock<&'static str> = OnceLock::new();

/// Records how users type the running binary; the first call wins.
pub fn set_name(name: &'static str) {
    let _ = NAME.set(name);
}

/// How users type the running binary (`cargo ebpf`, `ebpf-runner`).
pub fn name() -> &'static str {
    NAME.get().copied().unwrap_or("cargo ebpf")
}

/// The running binary's file name: `cargo-ebpf` or `ebpf-runner`.
pub fn binary_name() -> String {
    name().replace(' ', "-")
}
