//! ebpf-package: what a cargo-ebpf package is, with no network, no kernel and no CLI.
//!
//! Shared by the runner (pull, store, run), the developer side (`cargo ebpf package`) and
//! the hub (what a push holds). Modules, lowest first; each imports only those above it:
//! - [`error`]: the one error type (kind → exit code, message, help, cause);
//! - [`spec`]: our format, typed in one place: media types, keys, `PackageMeta`, `Runtime`;
//! - [`digest`]: sha256 digests; [`reference`]: `HOST/REPO:TAG@DIGEST`, parsed once;
//! - [`platform`]: `os/arch`, and picking this host's entry of an index;
//! - [`blob`]: a blob with its descriptor, and the manifest parser;
//! - [`layer`]: reproducible tar+gzip layers and confined, bounded unpacking;
//! - [`libbpf_log`]: libbpf's log captured into errors;
//! - [`hints`] and [`decode`]: event and map bytes → values → table rows or JSON;
//! - [`object`]: what a BPF ELF holds (programs, maps, params, event layouts from BTF);
//! - [`formats`]: other tools' images and eunomia's package.json, read as packages;
//! - [`package`]: a package in memory, built from an object or read back and verified;
//! - [`verify_meta`]: a package's config checked against its object;
//! - [`plan`]: what running a package will do (attach points, capabilities, files, processes);
//! - [`diff`]: what changed between two versions of a package (breaking changes marked);
//! - [`signature`]: cosign-compatible keys, payloads, signing/verifying and `.sig` manifests;
//! - [`provenance`]: SLSA provenance statements in signed DSSE envelopes (cosign `.att`);
//! - [`kernel_matrix`]: on which kernels a package loads (`test-kernels`), and `run`'s warning;
//! - [`image_index`]: several platform packages behind one OCI image index;
//! - [`layout`]: OCI image layout directories, where packages are written and read.

pub mod blob;
pub mod btfgen;
pub mod codec;
pub mod cosign_key;
pub mod decode;
pub mod diff;
pub mod digest;
pub mod error;
pub mod formats;
#[cfg(test)]
mod fuzz_regressions;
pub mod hints;
pub mod image_index;
pub mod kernel_matrix;
pub mod layer;
pub mod layout;
pub mod libbpf_log;
pub mod object;
pub mod package;
pub mod plan;
pub mod platform;
pub mod printk;
pub mod provenance;
pub mod reference;
pub mod signature;
pub mod spec;
#[cfg(test)]
mod test_support;
pub mod verify_meta;

pub use error::{Error, ErrorKind, Result};
pub use package::Package;
pub use reference::Reference;
