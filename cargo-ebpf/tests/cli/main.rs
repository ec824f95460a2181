//! cargo-ebpf's integration tests, one binary: scaffolding, template packs, CI templates
//! and `build` with the real clang. Run one area with
//! `cargo test -p cargo-ebpf --test cli -- scaffold::`.
//!
//! Tests that need something this machine may lack (clang, bpftool, kernel BTF, a tool)
//! skip with `skipped: TEST: needs WHAT (HOW)`; under `scripts/test.sh`
//! (`CARGO_EBPF_TEST_STRICT=1`) a skip is a failure. See `common::needs`.

mod common;

mod build;
mod ci_templates;
mod scaffold;
mod third_party_packs;
