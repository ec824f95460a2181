#!/usr/bin/env bash
# Tests install-deps.sh's distro handling without installing anything: runs it with
# --dry-run against fake os-release files and checks the package manager and package names
# it would use. Why: the dnf path cannot run on the Debian CI machine, so this is what keeps
# it (and the Debian one) from quietly breaking. Exits non-zero naming each mismatch.
#
#   bash scripts/test-install-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools-lib.sh
source scripts/tools-lib.sh

FAILURES=0
OUT=""
WORK=$(mktemp -d /tmp/test-install-deps.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

fail() {
  echo "FAIL: $*" >&2
  FAILURES=$((FAILURES + 1))
}

# Writes a fake os-release with the given lines; prints its path.
fake_os_release() { # NAME LINE...
  local file=$WORK/$1
  shift
  printf '%s\n' "$@" >"$file"
  echo "$file"
}

# Sets OUT to install-deps.sh --dry-run's output for an os-release file; a non-zero exit
# is a failure.
dry_run() { # OS_RELEASE
  if ! OUT=$(INSTALL_DEPS_OS_RELEASE=$1 bash scripts/install-deps.sh --dry-run 2>&1); then
    fail "install-deps.sh --dry-run exited non-zero for $1: $OUT"
  fi
}

# The output lines that start with PREFIX (the install commands), joined into one line
# (pip runs once per PyPI package).
install_line() { # OUTPUT PREFIX
  { grep -E "^$2" <<<"$1" || true; } | tr '\n' ' '
}

# Fails for each WORD that is not a whole word of LINE.
expect_words() { # WHAT LINE WORD...
  local what=$1 text=${2:-<no such command>} word
  shift 2
  for word in "$@"; do
    [[ " $text " == *" $word "* ]] || fail "$what: expected package '$word' in: $text"
  done
}

# Fails for each WORD that is a whole word of LINE.
refuse_words() { # WHAT LINE WORD...
  local what=$1 text=$2 word
  shift 2
  for word in "$@"; do
    [[ " $text " != *" $word "* ]] || fail "$what: did not expect '$word' in: $text"
  done
}

# A dnf distro: one `dnf install` naming the Fedora/openEuler packages, no apt-get, no
# Debian-only names.
test_dnf_distro() { # NAME LINE...
  local name=$1 line
  dry_run "$(fake_os_release "$@")"
  line=$(install_line "$OUT" 'dnf install ')
  [ -n "$line" ] || {
    fail "$name: no 'dnf install' command in: $OUT"
    return 0
  }
  if grep -q 'apt-get' <<<"$OUT"; then
    fail "$name: apt-get in a dnf distro's commands: $OUT"
  fi
  expect_words "$name" "$line" clang llvm bpftool libbpf-devel elfutils-libelf-devel \
    zlib-devel golang podman skopeo postgresql-server chromium chromedriver busybox \
    docker-distribution iproute-tc git-daemon python3-pip hyperfine
  refuse_words "$name" "$line" busybox-static libbpf-dev libelf-dev zlib1g-dev golang-go \
    docker-registry libbpf-dev:arm64 -
  expect_words "$name" "$(install_line "$OUT" 'python3 -m pip install')" check-jsonschema \
    cryptography pynacl
  expect_words "$name" "$(install_line "$OUT" 'npm install -g')" axe-core@4
}

# Debian: apt-get install naming every Debian package in the list (arm64 ones after
# dpkg --add-architecture), no dnf.
test_debian() {
  local line
  dry_run "$(fake_os_release debian 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"' \
    'ID=debian' 'VERSION_ID="12"')"
  line=$(install_line "$OUT" '(env DEBIAN_FRONTEND=noninteractive )?apt-get install ')
  [ -n "$line" ] || {
    fail "debian: no 'apt-get install' command in: $OUT"
    return 0
  }
  if grep -q 'dnf' <<<"$OUT"; then
    fail "debian: dnf in Debian's commands: $OUT"
  fi
  if ! grep -qx 'dpkg --add-architecture arm64' <<<"$OUT"; then
    fail "debian: no 'dpkg --add-architecture arm64' for the :arm64 packages"
  fi
  expect_words debian "$line" busybox-static clang llvm bpftool libbpf-dev docker-registry \
    skopeo postgresql chromium-driver libbpf-dev:arm64 hyperfine
  # shellcheck disable=SC2046 # one word per package
  expect_words "debian (every package in test-tools.txt)" "$line" $(packages_for apt)
}

# An unknown distro: a clear error and a non-zero exit, nothing printed to run.
test_unknown() {
  local out
  if out=$(INSTALL_DEPS_OS_RELEASE=$(fake_os_release plan9 'ID=plan9') \
    bash scripts/install-deps.sh --dry-run 2>&1); then
    fail "unknown distro: install-deps.sh exited 0"
  fi
  grep -q "unsupported distro 'plan9'" <<<"$out" ||
    fail "unknown distro: expected \"unsupported distro 'plan9'\" in: $out"
}

main() {
  test_dnf_distro fedora 'NAME="Fedora Linux"' 'ID=fedora' 'VERSION_ID=40'
  test_dnf_distro openeuler 'NAME="openEuler"' 'ID="openEuler"' 'VERSION_ID="22.03"'
  test_debian
  test_unknown
  if ((FAILURES)); then
    echo "test-install-deps: $FAILURES failure(s)" >&2
    exit 1
  fi
  echo "test-install-deps: Fedora, openEuler, Debian and unknown distros ok"
}

main
