#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian/Ubuntu machine as root:
# install → scaffold → build → package → push to a local registry → pull → run, showing events.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build -q -p cargo-ebpf
BIN=$PWD/target/debug/cargo-ebpf

port=${DEMO_REGISTRY_PORT:-5055}
source scripts/sandbox.sh "$port" demo
trigger_pid=
trap 'cleanup; [ -z "$trigger_pid" ] || kill "$trigger_pid" 2>/dev/null' EXIT

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
