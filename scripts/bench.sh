#!/usr/bin/env bash
# Benchmarks, run on demand (not part of the tests). Each measures cargo-ebpf against a peer
# doing the same work in the same run, and reports the ratio (ours / peer; below 1 is faster):
#   pull:  `cargo ebpf pull REF` (verify + store)   vs  `skopeo copy docker://REF oci:DIR`
#   build: `cargo ebpf build` from clean           vs  the same bpftool + clang commands by hand
#   hub:   `cargo ebpf pull` from the hub           vs  the same pull from docker-registry
#          (and a push of a new version to each)
#   events: `run --output json` vs a libbpf C consumer (scripts/bench-events.sh)
#   hub load: search p50/p99 at 10k packages on SQLite and Postgres, manifest GETs vs
#          docker-registry (scripts/bench-hub.sh)
# Usage, as root (or prefixed with sudo): bash scripts/bench.sh [RUNS]
#   (BENCH_BIN=PATH benches that binary, no build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}

bash scripts/install-deps.sh
command -v hyperfine >/dev/null || {
  echo "error: hyperfine is missing; install-deps.sh installs it (it is in scripts/test-tools.txt)" >&2
  exit 1
}
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  cargo build -q --release -p cargo-ebpf
  BIN=$PWD/target/release/cargo-ebpf
fi

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

# The hub as the registry: same package, same client, the hub vs docker-registry.
hub=127.0.0.1:${BENCH_HUB_PORT:-5057}
"$BIN" hub serve --addr "$hub" --data "$work/hub" 2>"$work/hub.log" & hub_pid=$!
trap 'cleanup; kill "$hub_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://$hub/v2/" && break; sleep 0.1; done
printf 'bench-password' | "$BIN" hub user add bench --data "$work/hub" --password-stdin 2>/dev/null
"$BIN" login "$hub" -u bench --password-stdin <<<"$("$BIN" hub token create bench --data "$work/hub")" 2>/dev/null
hub_ref=$hub/bench/bench:0.1.0
"$BIN" push "$hub_ref" --manifest-path "$work/bench" >/dev/null 2>&1
hyperfine -N -w 3 -r "$runs" --export-json "$work/hub-pull.json" \
  --prepare "rm -rf $work/home/store" \
  -n "pull from the hub" "$BIN pull $hub_ref" \
  -n "pull from docker-registry" "$BIN pull $ref"
# A new tag each run (versions are immutable on the hub): the blobs exist, the manifest is new.
hyperfine -N -w 2 -r "$runs" --export-json "$work/hub-push.json" \
  -n "push to the hub" "$BIN push $hub/bench/bench:latest --manifest-path $work/bench" \
  -n "push to docker-registry" "$BIN push 127.0.0.1:$port/bench/bench:latest --manifest-path $work/bench"

echo
echo "pull  ratio (cargo ebpf / skopeo):         $(ratio "$work/pull.json")"
echo "build ratio (cargo ebpf / bpftool+clang):  $(ratio "$work/build.json")"
echo "hub pull ratio (hub / docker-registry):    $(ratio "$work/hub-pull.json")"
echo "hub push ratio (hub / docker-registry):    $(ratio "$work/hub-push.json")"

# Event throughput: `ebpf-runner run --output json` vs a libbpf C consumer (and bpftrace).
echo
bash scripts/bench-events.sh "${BENCH_EVENT_RUNS:-3}"

# The hub under load: search at 10k packages (SQLite, Postgres), manifest GETs vs docker-registry.
echo
BENCH_BIN=$BIN bash scripts/bench-hub.sh "${BENCH_HUB_RUNS:-3}"
