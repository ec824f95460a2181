#!/usr/bin/env bash
# The test suite, as root: installs what it needs and proves it is all there (and that
# scripts/test-tools.txt lists every tool the tests run), tests install-deps.sh's distro
# handling, checks formatting, lints, module cycles and packaging, then runs every test for
# real (clang, kernel attach, docker-registry, skopeo). A test that lacks something it needs
# (root, clang, kernel BTF, a tool) skips on a contributor's laptop; here
# CARGO_EBPF_TEST_STRICT=1 makes that skip a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/check-tools.sh
bash scripts/test-install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
python3 scripts/check-module-cycles.py
# The crates as published: package them, install cargo-ebpf from its .crate, render every pack.
bash scripts/check-package.sh
CARGO_EBPF_TEST_STRICT=1 cargo test --workspace --no-fail-fast 2>&1
