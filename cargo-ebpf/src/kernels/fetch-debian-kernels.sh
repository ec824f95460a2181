#!/usr/bin/env bash
# Fetches the Debian kernels `cargo ebpf test-kernels` and its tests boot in QEMU: one per
# series (5.10 from bullseye, 6.1 from bookworm, 6.12 from bookworm-backports), unpacked, never
# installed into the host. Why a private apt configuration: it verifies the archive's
# signatures like any apt download, while leaving the host's sources and dpkg database alone.
# Embedded in cargo-ebpf (`test-kernels --fetch` runs it) and linked from the repository as
# scripts/fetch-test-kernels.sh (install-deps.sh runs it).
#
#   bash scripts/fetch-test-kernels.sh [SERIES...]     (default: 5.10 6.1 6.12)
#
# Result, per series: $CARGO_EBPF_KERNELS/<series>/{vmlinuz,config,release}
# (default directory /var/cache/cargo-ebpf/kernels). Idempotent: a series whose vmlinuz is
# already there is skipped. MIRROR=URL picks another Debian mirror.
set -euo pipefail

dest=${CARGO_EBPF_KERNELS:-/var/cache/cargo-ebpf/kernels}
mirror=${MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

die() {
  echo "error: $*" >&2
  exit 1
}

suite_of() { # SERIES -> Debian suite that ships it
  case "$1" in
    5.10) echo bullseye ;;
    6.1) echo bookworm ;;
    6.12) echo bookworm-backports ;;
    *) die "unknown kernel series '$1' (known: 5.10, 6.1, 6.12)" ;;
  esac
}

# apt-get/apt-cache confined to DIR: its own sources, lists, cache and an empty status file.
papt() { # DIR TOOL ARGS...
  local dir=$1 tool=$2
  shift 2
  "$tool" -q -o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts="$dir/parts" \
    -o Dir::Etc::preferences=/dev/null -o Dir::Etc::preferencesparts="$dir/parts" \
    -o Dir::State="$dir/state" -o Dir::State::status="$dir/status" \
    -o Dir::Cache="$dir/cache" -o APT::Sandbox::User=root \
    -o Debug::NoLocking=1 -o APT::Architecture=amd64 "$@"
}

fetch_series() { # SERIES
  local series=$1 suite work meta pkg deb unpacked
  if [ -s "$dest/$series/vmlinuz" ]; then
    echo "==> $series: cached in $dest/$series"
    return 0
  fi
  suite=$(suite_of "$series")
  work="$scratch/$series"
  mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial" "$work/parts"
  : >"$work/status"
  echo "deb [signed-by=$keyring] $mirror $suite main" >"$work/sources.list"
  echo "==> $series: reading $suite's index"
  papt "$work" apt-get update >/dev/null
  # The meta package names the current ABI, e.g. linux-image-6.1.0-28-amd64.
  meta=$(papt "$work" apt-cache show linux-image-amd64 | sed -n 's/^Depends: *//p' | head -n1)
  pkg=$(echo "$meta" | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*-amd64\).*/\1/p' | head -n1)
  [ -n "$pkg" ] || die "$suite: cannot find the kernel package linux-image-amd64 depends on"
  echo "==> $series: downloading $pkg"
  (cd "$work" && papt "$work" apt-get download "$pkg" >/dev/null)
  deb=$(ls "$work"/*.deb)
  unpacked="$work/root"
  dpkg-deb -x "$deb" "$unpacked"
  mkdir -p "$dest/$series.partial"
  cp "$unpacked"/boot/vmlinuz-* "$dest/$series.partial/vmlinuz"
  cp "$unpacked"/boot/config-* "$dest/$series.partial/config"
  basename "$unpacked"/boot/vmlinuz-* | sed 's/^vmlinuz-//' >"$dest/$series.partial/release"
  rm -rf "${dest:?}/$series"
  mv "$dest/$series.partial" "$dest/$series"
  echo "==> $series: $(cat "$dest/$series/release") in $dest/$series"
}

main() {
  local series
  command -v apt-get >/dev/null || die "fetching Debian kernels needs apt-get (Debian/Ubuntu)"
  [ -r "$keyring" ] || die "$keyring is missing: install debian-archive-keyring"
  mkdir -p "$dest"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  if (($#)); then set -- "$@"; else set -- 5.10 6.1 6.12; fi
  for series in "$@"; do fetch_series "$series"; done
}

main "$@"
