//! The hub's HTTP API in process: the real axum router over a temp SQLite data dir, driven
//! request by request with `tower::ServiceExt::oneshot`. Fast and needing no other tool, so
//! these cover the API's contract (status codes, OCI error codes, bodies); the tests in
//! `tests/tests/hub*.rs` keep checking the real binary with real clients (our CLI, skopeo,
//! Chromium, docker-registry, Postgres).
//!
//! One test binary (modules below) so the hub crate is linked once.

mod accounts;
mod oci;
mod packages;
mod search;
mod security;
mod store;
mod support;
mod trust;
