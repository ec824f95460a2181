#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian/Ubuntu machine as root:
# install → scaffold → build → package → publish to a hub it starts (SQLite + blob files in
# a temp dir, nothing to set up) → pull → run, showing events, and the package's web page.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build -q -p cargo-ebpf
BIN=$PWD/target/debug/cargo-ebpf

port=${DEMO_HUB_PORT:-5055}
hub=127.0.0.1:$port
work=$(mktemp -d /tmp/cargo-ebpf-demo.XXXXXX)
export CARGO_EBPF_HOME=$work/home DOCKER_CONFIG=$work/docker
hub_pid='' trigger_pid=''
cleanup() {
  for pid in $trigger_pid $hub_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The hub: a registry with a web store. An account and an API token straight from its
# database (`hub user add`, `hub token create`), as a first operator or a script would.
"$BIN" hub serve --addr "$hub" --data "$work/hub" 2>"$work/hub.log" & hub_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://$hub/v2/" && break; sleep 0.1; done
curl -s -o /dev/null "http://$hub/v2/" || { cat "$work/hub.log"; exit 1; }
printf 'demo-password' | "$BIN" hub user add demo --data "$work/hub" --password-stdin
token=$("$BIN" hub token create demo --data "$work/hub" --scope pull,push --days 1)

ref=$hub/demo/opensnoop:0.1.0
set -x
"$BIN" new opensnoop --lang eunomia --path "$work/opensnoop"
cd "$work/opensnoop"
sed -i "s|^# registry = .*|registry = \"$hub/demo\"|" ebpf.toml
"$BIN" build
"$BIN" package
"$BIN" login "$hub" -u demo --password-stdin <<<"$token"
"$BIN" publish
"$BIN" pull "$ref"
"$BIN" list
"$BIN" rm "$ref"           # empty the store: `run` pulls it again
"$BIN" run "$ref" -- --help
set +x
# Something to see: open a file every half second while the program runs.
( while true; do cat /etc/hostname >/dev/null; sleep 0.5; done ) & trigger_pid=$!
set -x
"$BIN" run "$ref" --duration 5
set +x
echo
echo "Published to the hub; its page: http://$hub/p/demo/opensnoop"
curl -fsS "http://$hub/p/demo/opensnoop" | grep -o 'sudo cargo ebpf run [^<]*' | head -1
if [ "${DEMO_KEEP_HUB:-}" = 1 ]; then
  echo "The hub keeps running; open the page in a browser, Ctrl-C to stop."
  wait "$hub_pid"
else
  echo "(The hub stops with this script; DEMO_KEEP_HUB=1 keeps it running.)"
fi
