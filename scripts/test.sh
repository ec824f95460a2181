#!/usr/bin/env bash
# The test suite, as root: installs what it needs and proves it is all there (and that
# scripts/test-tools.txt lists every tool the tests run), tests install-deps.sh's distro
# handling, checks formatting and lints, then runs every test for real (clang, kernel
# attach, docker-registry, skopeo).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/check-tools.sh
bash scripts/test-install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
cargo test --workspace --no-fail-fast 2>&1
