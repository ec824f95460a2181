//! The runner's integration tests, one binary: the runtime against the real toolchain and
//! kernel. Run one area with `cargo test -p ebpf-runner --test runner -- attach_types::`.
//!
//! Tests that need something this machine may lack (root, clang, kernel BTF, a tool) skip
//! with `skipped: TEST: needs WHAT (HOW)`; under `scripts/test.sh`
//! (`CARGO_EBPF_TEST_STRICT=1`) a skip is a failure. See `common::needs`.

mod common;

mod attach_types;
mod btf_layouts;
mod hostile;
mod hostile_objects;
mod maps;
mod printk;
mod run;
mod run_signal;
