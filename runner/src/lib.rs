//! ebpf-runner: the pull/run side of cargo-ebpf, shared by `cargo ebpf` and the standalone runner.
//!
//! The pipeline, one module per stage:
//! - [`format`]: the package format (media types, keys, metadata types), typed in one place;
//! - [`formats`]: other tools' images and package.json, described as packages;
//! - [`package`]: a package in memory: build one from an object, read its object back;
//! - [`index`]: multi-platform packages (an OCI image index, one manifest per platform);
//! - [`oci_layout`]: OCI image layout directories (what `cargo ebpf package` writes);
//! - [`registry`]: push, pull and login against OCI registries; [`credentials`]: docker config.json;
//! - [`store`]: the local content-addressed store of pulled packages;
//! - [`trust`]: the trust policy (scopes → keys); [`signing`]: cosign-style signatures on a
//!   registry, and the policy gate every pull passes;
//! - [`object`]: what a BPF ELF holds (programs, maps, params, event layouts from BTF);
//! - [`decode`]: event bytes → values → table rows or JSON, with [`hints`] for fields that
//!   are times, addresses, ports or errnos;
//! - [`resolve`]: what `run` was pointed at (file, layout, reference → store or pull);
//! - [`run`]: load, attach, stream events;
//! - [`inspect`]: what a package holds, without loading it;
//! - [`lifecycle`]: detached runs (`install`, `run -d`, `ps`, `logs`, `stop`);
//! - [`versions`]: a repository's versions in semver order; [`upgrade`]: `outdated` and
//!   `upgrade` (pull, diff, restart the runs, roll back on failure);
//! - [`config`]: the user's settings (default registry for short names, mirrors);
//!   [`mirrors`]: pulls from mirrors when a registry fails, and `mirror` (copying);
//!   [`doctor`]: what this machine has for building and running;
//! - [`cli`]: the user-side commands, shared by `cargo ebpf` and the `ebpf-runner` binary.
//!
//! Shared by several stages: [`error`] (the one error type), [`digest`], [`engine`]
//! (podman/docker, for container builds and runtimes), [`which`] (finding programs).

pub mod attestation;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod doctor;
pub mod engine;
pub mod hub_api;
pub mod inspect;
pub mod lifecycle;
pub mod mirrors;
pub mod program;
pub mod registry;
pub mod resolve;
pub mod run;
pub mod signing;
pub mod store;
pub mod trust;
pub mod upgrade;
pub mod url;
pub mod versions;
pub mod which;
