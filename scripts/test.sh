#!/usr/bin/env bash
# The test suite, as root: installs what it needs, checks formatting, lints and packaging, then
# runs every test for real (clang, kernel attach, docker-registry, skopeo).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
# The crates as published: package them, install cargo-ebpf from its .crate, render every pack.
bash scripts/check-package.sh
cargo test --workspace --no-fail-fast 2>&1
