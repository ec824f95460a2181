//! The end-to-end tests, one binary: each module is one area (real clang, kernel attach,
//! docker-registry, skopeo, podman, Postgres, Chromium). Run one area with
//! `cargo test -p ebpf-e2e-tests --test e2e -- vertical_slice::`.
//!
//! Tests that need something this machine may lack (root, clang, kernel BTF, a tool) skip
//! with `skipped: TEST: needs WHAT (HOW)`; under `scripts/test.sh`
//! (`CARGO_EBPF_TEST_STRICT=1`) a skip is a failure. See `ebpf_e2e_tests::needs`.

mod btfhub;
mod checked_metadata;
mod compat;
mod container_build;
mod ecli;
mod errors;
mod formats;
mod hub;
mod hub_blob_store;
mod hub_formats;
mod hub_replicas;
mod hub_store;
mod hub_trust;
mod hub_web;
mod inspect;
mod invocation;
mod kernel_matrix;
mod lifecycle;
mod multi_arch;
mod pack_c;
mod pack_go;
mod pack_rust;
mod package_manager;
mod provenance;
mod registry;
mod registry_cli;
mod registry_env;
mod runtimes;
mod signing;
mod standalone_runner;
mod vertical_slice;
