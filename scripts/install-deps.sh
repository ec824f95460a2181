#!/usr/bin/env bash
# Installs what cargo-ebpf needs to build, test and run eBPF programs on Debian/Ubuntu (as root).
# Idempotent: skips apt entirely when everything is already there.
set -euo pipefail

PACKAGES=(
  # build: the eunomia and c packs, vmlinux.h
  clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev pkg-config make gcc
  # the go pack, offline: Debian's cilium/ebpf in GOPATH mode
  golang-go golang-github-cilium-ebpf-dev
  # multi-arch: cross compilers for the userspace loaders
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  # containerized builds and container runtimes
  podman runc debootstrap
  # registries and OCI clients
  docker-registry skopeo
  # the hub: scale-out database, browser test
  postgresql chromium chromium-driver
  util-linux iproute2 ca-certificates curl git zip libssl-dev python3-pip
)

# arm64 libraries, so `cargo ebpf build --arch arm64` cross-links the c pack's static loader.
CROSS_PACKAGES=(libbpf-dev:arm64 libelf-dev:arm64 zlib1g-dev:arm64)
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi
PACKAGES+=("${CROSS_PACKAGES[@]}")

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

# check-jsonschema validates generated GitHub workflows against the workflow schema it ships.
if ! command -v check-jsonschema >/dev/null; then
  echo "==> installing check-jsonschema (PyPI)"
  python3 -m pip install -q check-jsonschema 2>/dev/null \
    || python3 -m pip install -q --break-system-packages check-jsonschema
fi
