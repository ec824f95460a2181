//! cargo-ebpf: the developer side. `new` → `build` → `package` → `push`/`publish`, plus the
//! runner's `pull`/`run`/`list`/`rm` from [`ebpf_runner`], and background runs
//! (`install`/`start`/`ps`/`logs`/`stop`, in [`lifecycle`]).
//!
//! One module per stage: [`scaffold`] (new), [`build`], [`package`]; [`cli`] wires them up.

pub mod build;
pub mod cli;
pub mod lifecycle;
pub mod manifest;
pub mod package;
pub mod scaffold;

pub use ebpf_runner::{Error, ErrorKind, Result};
