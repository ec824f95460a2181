#!/usr/bin/env bash
# Installs, as root, every package scripts/test-tools.txt lists: what cargo-ebpf needs to
# build, test and run eBPF programs. Why one list: the tests call real programs (clang,
# bpftool, podman, /bin/busybox, postgres, chromium...), and a tool that is only "happens to
# be on my machine" breaks the tests on a new one. check-tools.sh then proves all is there.
#
#   bash scripts/install-deps.sh [--dry-run]
#
# Debian/Ubuntu use apt-get, Fedora/openEuler dnf, chosen from /etc/os-release
# (INSTALL_DEPS_OS_RELEASE=FILE reads another one; the tests use fake ones).
# --dry-run prints the commands a fresh machine gets (every listed package) and changes nothing.
# Idempotent: a real run only installs what is missing, and skips the package manager
# entirely when nothing is. On Debian/Ubuntu it also fetches the test kernels
# (fetch-test-kernels.sh: skipped when cached).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools-lib.sh
source "$here/tools-lib.sh"

DRY_RUN=0

usage() {
  echo "usage: install-deps.sh [--dry-run]" >&2
  exit 2
}

die() {
  echo "error: $*" >&2
  exit 1
}

# Runs a command, or with --dry-run prints it (shell-quoted) instead.
run() {
  if ((DRY_RUN)); then
    local line
    line=$(printf '%q ' "$@")
    echo "${line% }"
  else
    "$@"
  fi
}

# Installing needs root; say so before the package manager gives a less clear error.
need_root() {
  ((DRY_RUN)) || [ "$(id -u)" = 0 ] ||
    die "installing packages needs root: run this as root (or prefix it with sudo)"
}

# Debian package names from the list; on a real run only those not installed yet.
apt_wanted() {
  local p
  for p in $(packages_for apt); do
    if ((DRY_RUN)) || ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      echo "$p"
    fi
  done
}

# Foreign architectures (the `:arm64` in libbpf-dev:arm64) dpkg must know before apt-get
# can install them; on a real run only those not added yet.
apt_foreign_archs() { # PACKAGES...
  local arch
  for arch in $(printf '%s\n' "$@" | sed -n 's/.*:\(.*\)/\1/p' | sort -u); do
    if ((DRY_RUN)) || ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
      echo "$arch"
    fi
  done
}

install_apt() {
  local wanted arch
  mapfile -t wanted < <(apt_wanted)
  ((${#wanted[@]})) || return 0
  need_root
  for arch in $(apt_foreign_archs "${wanted[@]}"); do
    run dpkg --add-architecture "$arch"
  done
  ((DRY_RUN)) || echo "==> installing: ${wanted[*]}"
  run apt-get update -q
  run env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${wanted[@]}"
  ((DRY_RUN)) || stop_debian_registry
}

# Debian's docker-registry package may start a registry listening on every interface with
# its default config; we only ever run our own, bound to 127.0.0.1.
stop_debian_registry() {
  local pattern='^/usr/bin/docker-registry serve /etc/docker/registry/config.yml'
  if pgrep -f "$pattern" >/dev/null; then
    pkill -f "$pattern" || true
  fi
}

# dnf package names from the list; on a real run only those not installed yet.
dnf_wanted() {
  local p
  for p in $(packages_for dnf); do
    if ((DRY_RUN)) || ! rpm -q --whatprovides "$p" >/dev/null 2>&1; then
      echo "$p"
    fi
  done
}

# A name some Fedora/openEuler release lacks must not stop the rest from installing:
# dnf4's --skip-broken also skips unavailable names, dnf5 needs --skip-unavailable for that.
# check-tools.sh then names whatever is still missing.
dnf_skip_flags() {
  echo --skip-broken
  if dnf --version 2>/dev/null | grep -q '^dnf5'; then
    echo --skip-unavailable
  fi
}

install_dnf() {
  local wanted flags
  mapfile -t wanted < <(dnf_wanted)
  ((${#wanted[@]})) || return 0
  need_root
  mapfile -t flags < <(dnf_skip_flags)
  ((DRY_RUN)) || echo "==> installing: ${wanted[*]}"
  run dnf install -y "${flags[@]}" "${wanted[@]}"
}

# What the list takes from PyPI (check-jsonschema validates generated GitHub workflows
# against the workflow schema it ships). Debian 12 marks its Python as externally managed,
# hence the second try.
install_pypi() { # FAMILY
  local cmd name
  while read -r cmd name; do
    if ((DRY_RUN)); then
      run python3 -m pip install -q "$name"
    elif ! command -v "$cmd" >/dev/null; then
      echo "==> installing $name (PyPI)"
      python3 -m pip install -q "$name" 2>/dev/null ||
        python3 -m pip install -q --break-system-packages "$name"
    fi
  done < <(pypi_for "$1")
  # Libraries, not commands (so not in test-tools.txt's COMMAND column), that
  # tests/python/cosign_interop.py uses to check our signatures independently: Python's
  # `cryptography` (ECDSA, scrypt) and PyNaCl (`nacl`: the secretbox of cosign's key files).
  local module package
  for pair in cryptography:cryptography nacl:pynacl; do
    module=${pair%%:*} package=${pair#*:}
    if ((DRY_RUN)); then
      run python3 -m pip install -q "$package"
    elif ! python3 -c "import $module" 2>/dev/null; then
      echo "==> installing $package (PyPI)"
      python3 -m pip install -q "$package" 2>/dev/null ||
        python3 -m pip install -q --break-system-packages "$package"
    fi
  done
}

# What the list takes from the npm registry, installed globally (axe-core, the accessibility
# checker the Chromium test runs in the hub's pages). COMMAND is the file it installs.
install_npm() { # FAMILY
  local file name
  while read -r file name; do
    if ((DRY_RUN)); then
      run npm install -g "$name"
    elif [ ! -e "$file" ]; then
      echo "==> installing $name (npm)"
      npm install -g "$name"
    fi
  done < <(npm_for "$1")
}

# cargo comes from rustup, not from a distro package.
check_rust() {
  command -v cargo >/dev/null ||
    die "cargo (Rust 1.85 or newer) is required; install it with rustup (https://rustup.rs)"
}

main() {
  case ${1:-} in
    --dry-run) DRY_RUN=1 ;;
    "") ;;
    *) usage ;;
  esac
  [ $# -le 1 ] || usage
  tools_validate
  local os_release=${INSTALL_DEPS_OS_RELEASE:-/etc/os-release} family
  family=$(os_family "$os_release")
  if ((DRY_RUN)); then
    echo "# install-deps.sh --dry-run: $family commands for $os_release on a fresh machine"
  fi
  "install_$family"
  install_pypi "$family"
  install_npm "$family"
  # The Debian kernels test-kernels' tests boot in QEMU (cached outside the repo, idempotent).
  if [ "$family" = apt ]; then
    run bash "$here/fetch-test-kernels.sh"
  fi
  ((DRY_RUN)) || check_rust
}

main "$@"
