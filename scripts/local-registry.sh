#!/usr/bin/env bash
# Starts Debian's docker-registry on 127.0.0.1 with our own config and temporary storage.
# Usage: local-registry.sh DIR PORT   (prints the PID; stop it with `kill PID`)
set -euo pipefail
dir=$1 port=$2
mkdir -p "$dir/storage"
cat >"$dir/config.yml" <<YML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $dir/storage}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$port
YML
/usr/bin/docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
pid=$!
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && { echo "$pid"; exit 0; }
  sleep 0.2
done
echo "error: the registry did not start; see $dir/registry.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
