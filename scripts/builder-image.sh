#!/usr/bin/env bash
# Builds the cargo-ebpf builder image (docker/builder.Dockerfile) on a machine that cannot
# reach docker.io: the Debian bookworm base is made with debootstrap from the Debian mirror
# and imported into the engine, then the Dockerfile is built on top of it.
#
#   bash scripts/builder-image.sh [TAG]     (as root or with sudo; default: localhost/cargo-ebpf/builder:dev)
#
# Cached by tag: when TAG already exists nothing is done, so tests may call this every run.
# ENGINE=docker|podman (default podman), MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

engine=${ENGINE:-podman}
tag=${1:-localhost/cargo-ebpf/builder:dev}
base=localhost/cargo-ebpf/bookworm-base:latest
mirror=${MIRROR:-http://deb.debian.org/debian}
repo=$(cd "$(dirname "$0")/.." && pwd)

for tool in "$engine" debootstrap; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool is not installed: run scripts/install-deps.sh as root (or apt-get install $tool)" >&2
        exit 4
    }
done

image_exists() { "$engine" image inspect "$1" >/dev/null 2>&1; }

# Concurrent test runs wait for one another instead of building twice.
exec 9>/tmp/cargo-ebpf-builder-image.lock
flock 9

if image_exists "$tag"; then
    echo "builder image $tag exists"
    exit 0
fi

if ! image_exists "$base"; then
    rootfs=$(mktemp -d /var/tmp/cargo-ebpf-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    echo "debootstrap: bookworm minbase from $mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
        tail -n 30 "$rootfs.log" >&2
        rm -f "$rootfs.log"
        exit 1
    }
    rm -f "$rootfs.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | "$engine" import - "$base" >/dev/null
fi

# Host networking: the build's apt-get needs the mirror, and container networks may not
# be set up on CI machines.
"$engine" build --network host --build-arg "BASE=$base" -t "$tag" \
    -f "$repo/docker/builder.Dockerfile" "$repo/docker"
echo "built builder image $tag"
