#!/usr/bin/env bash
# Benchmarks, run on demand (not part of the tests). Each measures cargo-ebpf against a peer
# doing the same work in the same run, RUNS times each after a warm-up, and prints min and
# median wall time and peak RSS, and the ratio ours / peer (below 1: cargo-ebpf is faster):
#   pull, small and 50 MB: `cargo ebpf pull REF` (verify + store) vs `skopeo copy docker://REF oci:DIR`
#   package, 50 MB:  `cargo ebpf package` (build fresh)        vs `tar -c FILES | gzip -6`
#   push, 50 MB:     `cargo ebpf push` of what was packaged     vs `skopeo copy oci:LAYOUT docker://REF`
#   cold run:        `cargo ebpf run REF --duration 0` (stored) vs a libbpf skeleton loader of the
#                    same object (open, load, attach, exit)
#   build:           `cargo ebpf build` from clean              vs the same bpftool + clang by hand
#   hub:             `cargo ebpf pull` from the hub vs the same pull from docker-registry, and
#                    scripts/bench-hub.sh (search at 10k packages, manifest GETs)
#   events:          scripts/bench-events.sh (`run --output json` vs a libbpf C consumer)
# The 50 MB payload is the first 50 MB of this machine's /usr/bin and /usr/lib executables,
# as a `[run]` file: compressible like the loaders and data files packages carry.
# Usage, as root: bash scripts/bench.sh [RUNS]   (RUNS ≥ 3, default 5)
#   (BENCH_BIN=PATH benches that binary, no build; BENCH_ONLY="pull package …" picks sections)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
[ "$runs" -ge 3 ] || { echo "error: RUNS must be at least 3 (min and median need them)" >&2; exit 2; }
only=${BENCH_ONLY:-pull package push run build hub events}
want() { [[ " $only " == *" $1 "* ]]; }

bash scripts/install-deps.sh
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  cargo build -q --release -p cargo-ebpf
  BIN=$PWD/target/release/cargo-ebpf
fi

port=${BENCH_REGISTRY_PORT:-5056}
source scripts/sandbox.sh "$port" bench
reg=127.0.0.1:$port
results=$work/results.jsonl
bench() { python3 scripts/bench.py run "$results" "$@"; }
pairs=()

# The small package: the default template.
"$BIN" new bench --path "$work/bench" >/dev/null 2>&1
"$BIN" package --manifest-path "$work/bench" >/dev/null 2>&1
ref=$reg/bench/bench:0.1.0
"$BIN" push "$ref" --manifest-path "$work/bench" >/dev/null 2>&1

# The 50 MB package: the template plus a 50 MB [run] file.
big=$work/big
"$BIN" new big --path "$big" >/dev/null 2>&1
python3 - "$big/payload.bin" <<'PY'
import os, sys
out, left = open(sys.argv[1], "wb"), 50 << 20
for d in ("/usr/bin", "/usr/lib"):
    for root, _, names in sorted(os.walk(d)):
        for n in sorted(names):
            p = os.path.join(root, n)
            if left and os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) > 100_000:
                data = open(p, "rb").read(left)
                out.write(data)
                left -= len(data)
PY
cat >>"$big/ebpf.toml" <<'TOML'

[[run.files]]
src = "payload.bin"
dest = "/tmp/cargo-ebpf-bench-payload.bin"
TOML
"$BIN" package --manifest-path "$big" >/dev/null 2>&1
big_ref=$reg/bench/big:0.1.0
"$BIN" push "$big_ref" --manifest-path "$big" >/dev/null 2>&1

if want pull; then
  bench "pull small" "$runs" --prepare "rm -rf $work/home/store" -- "$BIN" pull "$ref"
  bench "skopeo copy small" "$runs" --prepare "rm -rf $work/skopeo" -- \
    skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$work/skopeo:x"
  bench "pull 50 MB" "$runs" --prepare "rm -rf $work/home/store" -- "$BIN" pull "$big_ref"
  bench "skopeo copy 50 MB" "$runs" --prepare "rm -rf $work/skopeo" -- \
    skopeo copy -q --src-tls-verify=false "docker://$big_ref" "oci:$work/skopeo:x"
  pairs+=("pull small" "skopeo copy small" "pull 50 MB" "skopeo copy 50 MB")
fi

if want package; then
  # The same files the layer holds: object, payload, README.
  files=$(cd "$big" && echo target/ebpf/*/big.bpf.o payload.bin README.md)
  bench "package 50 MB" "$runs" --prepare "rm -rf $big/target/ebpf/oci" -- \
    "$BIN" package --manifest-path "$big"
  bench "tar | gzip -6" "$runs" -- sh -c "cd $big && tar -cf - $files | gzip -6 > $work/peer.tar.gz"
  pairs+=("package 50 MB" "tar | gzip -6")
fi

if want push; then
  # A new repository each run: every blob is uploaded, none found already there. skopeo
  # remembers which repositories hold a blob and mounts it from there instead of uploading:
  # it forgets that before each run, so both upload every byte.
  "$BIN" package --manifest-path "$big" >/dev/null 2>&1
  forget="rm -f /var/lib/containers/cache/blob-info-cache-v1.*"
  bench "push small" "$runs" -- "$BIN" push "$reg/bench/small-push{i}:0.1.0" --manifest-path "$work/bench"
  bench "skopeo copy (push) small" "$runs" --prepare "$forget" -- skopeo copy -q \
    --dest-tls-verify=false "oci:$work/bench/target/ebpf/oci:0.1.0" "docker://$reg/bench/skopeo-small{i}:0.1.0"
  bench "push 50 MB" "$runs" -- "$BIN" push "$reg/bench/big-push{i}:0.1.0" --manifest-path "$big"
  bench "skopeo copy (push) 50 MB" "$runs" --prepare "$forget" \
    -- skopeo copy -q --dest-tls-verify=false \
    "oci:$big/target/ebpf/oci:0.1.0" "docker://$reg/bench/skopeo-push{i}:0.1.0"
  pairs+=("push small" "skopeo copy (push) small" "push 50 MB" "skopeo copy (push) 50 MB")
fi

if want run; then
  # The peer: bpftool's skeleton of the same object, opened, loaded, attached, destroyed.
  obj=$(echo "$work"/bench/target/ebpf/*/bench.bpf.o)
  skel=$work/skel
  mkdir -p "$skel"
  bpftool gen skeleton "$obj" name bench >"$skel/bench.skel.h"
  cat >"$skel/main.c" <<'C'
#include <stdio.h>
#include "bench.skel.h"
int main(void)
{
	struct bench *s = bench__open_and_load();
	if (!s || bench__attach(s)) {
		fprintf(stderr, "cannot load or attach\n");
		return 1;
	}
	bench__destroy(s);
	return 0;
}
C
  clang -O2 -o "$skel/loader" "$skel/main.c" -I"$skel" -lbpf
  "$BIN" pull "$ref" >/dev/null 2>&1
  bench "cold run" "$runs" -- "$BIN" run "$ref" --duration 0
  bench "libbpf skeleton loader" "$runs" -- "$skel/loader"
  pairs+=("cold run" "libbpf skeleton loader")
fi

if want hub; then
  # The hub as the registry: same package, same client, the hub vs docker-registry.
  hub=127.0.0.1:${BENCH_HUB_PORT:-5057}
  "$BIN" hub serve --addr "$hub" --data "$work/hub" 2>"$work/hub.log" &
  hub_pid=$!
  trap 'cleanup; kill "$hub_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do curl -s -o /dev/null "http://$hub/v2/" && break; sleep 0.1; done
  printf 'bench-password' | "$BIN" hub user add bench --data "$work/hub" --password-stdin 2>/dev/null
  "$BIN" hub token create bench --data "$work/hub" |
    "$BIN" login "$hub" -u bench --password-stdin >/dev/null 2>&1
  "$BIN" push "$hub/bench/bench:0.1.0" --manifest-path "$work/bench" >/dev/null 2>&1
  "$BIN" push "$hub/bench/big:0.1.0" --manifest-path "$big" >/dev/null 2>&1
  for size in small:bench 50MB:big; do
    bench "pull ${size%%:*} from the hub" "$runs" --prepare "rm -rf $work/home/store" -- \
      "$BIN" pull "$hub/bench/${size#*:}:0.1.0"
    bench "pull ${size%%:*} from docker-registry" "$runs" --prepare "rm -rf $work/home/store" -- \
      "$BIN" pull "$reg/bench/${size#*:}:0.1.0"
    pairs+=("pull ${size%%:*} from the hub" "pull ${size%%:*} from docker-registry")
  done
fi

if want build; then
  src=$work/bench/src/bench.bpf.c
  arch=$(uname -m | sed 's/x86_64/x86/; s/aarch64/arm64/')
  bench "build from clean" "$runs" --prepare "rm -rf $work/bench/target $work/nocache" -- \
    env CARGO_EBPF_HOME="$work/nocache" "$BIN" build --manifest-path "$work/bench"
  bench "bpftool + clang" "$runs" --prepare "rm -rf $work/byhand; mkdir -p $work/byhand" -- \
    sh -c "bpftool btf dump file /sys/kernel/btf/vmlinux format c > $work/byhand/vmlinux.h && clang -g -O2 -target bpf -D__TARGET_ARCH_$arch -I$work/byhand -I$work/bench/src -c $src -o $work/byhand/bench.bpf.o"
  pairs+=("build from clean" "bpftool + clang")
fi

echo
echo "## cargo-ebpf vs peers ($(date -u +%F), $(nproc) CPUs, kernel $(uname -r))"
echo
[ ${#pairs[@]} -gt 0 ] && python3 scripts/bench.py table "$results" "${pairs[@]}"

if want hub; then
  echo
  BENCH_BIN=$BIN bash scripts/bench-hub.sh "$runs"
fi
if want events; then
  # A rate both consumers keep up with (loss and CPU per event), then more than one core
  # can take (how many events each gets through).
  for rate in 300000 1000000; do
    echo
    bash scripts/bench-events.sh "$runs" "$rate" 4
  done
fi
