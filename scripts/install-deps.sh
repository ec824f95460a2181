#!/usr/bin/env bash
# Installs what cargo-ebpf needs to build, test and run eBPF programs on Debian/Ubuntu (as root).
# Idempotent: skips apt entirely when everything is already there.
set -euo pipefail

PACKAGES=(clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev pkg-config
          docker-registry skopeo util-linux ca-certificates curl)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's docker-registry package may start a registry listening on every interface with its
# default config; we only ever run our own, bound to 127.0.0.1.
if pgrep -f '^/usr/bin/docker-registry serve /etc/docker/registry/config.yml' >/dev/null; then
  pkill -f '^/usr/bin/docker-registry serve /etc/docker/registry/config.yml' || true
fi

if ! command -v cargo >/dev/null; then
  echo "error: cargo (Rust 1.85 or newer) is required; install it with rustup" >&2
  exit 1
fi
