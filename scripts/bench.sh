#!/usr/bin/env bash
# Benchmarks, run on demand (not part of the tests). Each measures cargo-ebpf against a peer
# doing the same work in the same run, and reports the ratio (ours / peer; below 1 is faster):
#   pull:  `cargo ebpf pull REF` (verify + store)   vs  `skopeo copy docker://REF oci:DIR`
#   build: `cargo ebpf build` from clean           vs  the same bpftool + clang commands by hand
# Usage: sudo bash scripts/bench.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}

bash scripts/install-deps.sh
command -v hyperfine >/dev/null || { apt-get update -q && apt-get install -y -q hyperfine python3; }
cargo build -q --release -p cargo-ebpf
BIN=$PWD/target/release/cargo-ebpf

port=${BENCH_REGISTRY_PORT:-5056}
source scripts/sandbox.sh "$port" bench

"$BIN" new bench --path "$work/bench" >/dev/null 2>&1
ref=127.0.0.1:$port/bench/bench:0.1.0
"$BIN" push "$ref" --manifest-path "$work/bench" >/dev/null 2>&1

ratio() { # $1 = hyperfine JSON: mean of command 0 / mean of command 1
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print("%.2f" % (r[0]["mean"]/r[1]["mean"]))' "$1"
}

hyperfine -N -w 3 -r "$runs" --export-json "$work/pull.json" \
  --prepare "rm -rf $work/home/store $work/skopeo" \
  -n "cargo ebpf pull" "$BIN pull $ref" \
  -n "skopeo copy" "skopeo copy -q --src-tls-verify=false docker://$ref oci:$work/skopeo:x"

src=$work/bench/src/bench.bpf.c
arch=$(uname -m | sed 's/x86_64/x86/; s/aarch64/arm64/')
hyperfine -w 2 -r "$runs" --export-json "$work/build.json" \
  --prepare "rm -rf $work/bench/target $work/nocache $work/byhand; mkdir -p $work/byhand" \
  -n "cargo ebpf build" "CARGO_EBPF_HOME=$work/nocache $BIN build --manifest-path $work/bench" \
  -n "bpftool + clang" "bpftool btf dump file /sys/kernel/btf/vmlinux format c > $work/byhand/vmlinux.h && clang -g -O2 -target bpf -D__TARGET_ARCH_$arch -I$work/byhand -I$work/bench/src -c $src -o $work/byhand/bench.bpf.o"

echo
echo "pull  ratio (cargo ebpf / skopeo):         $(ratio "$work/pull.json")"
echo "build ratio (cargo ebpf / bpftool+clang):  $(ratio "$work/build.json")"
