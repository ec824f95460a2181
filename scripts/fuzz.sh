#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ (libFuzzer via libfuzzer-sys on the stable toolchain:
# SanitizerCoverage through -Cpasses=sancov-module, no sanitizer) and runs each for SECONDS
# (default 60). Prints executions per target and the total; exits non-zero on a crash,
# leaving the input in fuzz/artifacts/TARGET/.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(manifest index config layer object decode eunomia gadget hub_manifest_put hub_blob_upload)
fi
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="$PWD/target"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros.
triple="$(rustc -vV | sed -n "s/^host: //p")"
cargo build --release --bins --target "$triple"
# The object target starts from a real BPF object with BTF, when clang is here.
if command -v clang >/dev/null; then
    clang -g -O2 -target bpf -c seed-event.bpf.c -o seeds/object/event.bpf.o
fi
total=0
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t/last-run.log"
    if ! "target/$triple/release/$t" "corpus/$t" "seeds/$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
        -max_len=65536 -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
        echo "CRASH in $t: see $log and artifacts/$t/" >&2
        status=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    runs=${runs:-0}
    total=$((total + runs))
    printf '%-18s %12s executions\n' "$t" "$runs"
done
printf '%-18s %12s executions\n' total "$total"
exit $status
