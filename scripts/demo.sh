#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian/Ubuntu machine as root:
# install → scaffold → build → package → push to a local registry → pull → run, showing events.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build -q -p cargo-ebpf
BIN=$PWD/target/debug/cargo-ebpf

work=$(mktemp -d /tmp/cargo-ebpf-demo.XXXXXX)
export CARGO_EBPF_HOME=$work/home DOCKER_CONFIG=$work/docker
port=${DEMO_REGISTRY_PORT:-5055}
reg_pid=$(bash scripts/local-registry.sh "$work/registry" "$port")
trap 'kill $reg_pid 2>/dev/null; kill $trigger_pid 2>/dev/null' EXIT
trigger_pid=

ref=127.0.0.1:$port/demo/opensnoop:0.1.0
set -x
"$BIN" new opensnoop --lang eunomia --path "$work/opensnoop"
cd "$work/opensnoop"
"$BIN" build
"$BIN" package
"$BIN" push "$ref"
"$BIN" pull "$ref"
"$BIN" list
"$BIN" rm "$ref"           # empty the store: `run` pulls it again
"$BIN" run "$ref" -- --help
set +x
# Something to see: open a file every half second while the program runs.
( while true; do cat /etc/hostname >/dev/null; sleep 0.5; done ) & trigger_pid=$!
set -x
"$BIN" run "$ref" --duration 5
