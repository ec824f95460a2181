//! cargo-ebpf: the developer side. `new` → `build` → `package` → `push`/`publish`, plus the
//! user-side commands (`pull`/`run`/`list`/`rm`, background runs) from [`ebpf_runner::cli`].
//!
//! One module per stage: [`scaffold`] (new), [`build`], [`package`], [`keys`] (signing
//! keys), [`kernels`] (test-kernels: the package in real VMs), [`publish`] (checks before
//! publishing), [`shell`] (completions, man pages); [`cli`] wires them up.

pub mod build;
pub mod cli;
pub mod kernels;
pub mod keys;
pub mod manifest;
pub mod package;
pub mod provenance;
pub mod publish;
pub mod scaffold;
pub mod shell;

pub use ebpf_package::{Error, ErrorKind, Result};
