#!/usr/bin/env bash
# Proves two things before the tests run, so a missing tool fails here with the package to
# install instead of deep inside a test (and CI cannot pass just because the tool happened to
# be on the machine):
#   1. present: every program or file in scripts/test-tools.txt is on this machine;
#   2. listed:  every program the Rust sources run is in scripts/test-tools.txt, so a test
#      that starts calling a new tool fails here on every machine until the tool is listed
#      (and so installed by install-deps.sh).
#
#   bash scripts/check-tools.sh [--listed-only]   (--listed-only: step 2 only)
#
# Step 2 finds, in the test sources: Command::new("x"), require_tool("x", ..), need("x", ..),
# find_program("x"), require_program("x", ..), "/usr/bin/x"-style paths, `PG_BIN).join("x")`
# and `for tool in ["x", ..] { require_tool(..) }` loops; in runner/src, cargo-ebpf/src and
# hub/src (which the tests drive): Command::new("x") and require_program("x", ..); in
# scripts/*.sh: `command -v x`. Programs passed in variables are not seen.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools-lib.sh
source scripts/tools-lib.sh

TEST_DIRS=(tests runner/tests cargo-ebpf/tests)
SRC_DIRS=(runner/src cargo-ebpf/src hub/src)
# The project's own binaries and the Rust toolchain (rustup installs those, not a distro).
OWN_PROGRAMS=" cargo cargo-ebpf ebpf-runner rustup rustc "

# ---------------------------------------------------------------------------- 1. present

# The directory git keeps its helper programs in (git-daemon), if git is there.
git_exec_dir() {
  git --exec-path 2>/dev/null || true
}

# True when COMMAND is on this machine: absolute paths (and globs) as files, names on PATH,
# /usr/sbin, /sbin or in git's exec dir.
tool_present() { # COMMAND
  case $1 in
    /*) compgen -G "$1" >/dev/null ;;
    *) (PATH=$PATH:/usr/sbin:/sbin:$(git_exec_dir) && command -v "$1" >/dev/null) ;;
  esac
}

# How to get the package on this machine's kind of distro.
install_hint() { # FAMILY PACKAGE
  case $2 in
    pypi:*) echo "python3 -m pip install ${2#pypi:}" ;;
    npm:*) echo "npm install -g ${2#npm:}" ;;
    *) case $1 in
         apt) echo "apt-get install $2" ;;
         dnf) echo "dnf install $2" ;;
       esac ;;
  esac
}

# Fails listing every missing command with the package that provides it.
check_present() {
  local family cmd deb dnf pkg missing=0
  family=$(os_family "${INSTALL_DEPS_OS_RELEASE:-/etc/os-release}" 2>/dev/null) || family=""
  while read -r cmd deb dnf; do
    tool_present "$cmd" && continue
    case $family in
      apt) pkg=$deb ;;
      dnf) pkg=$dnf ;;
      *) echo "missing: $cmd (Debian package: $deb, Fedora/openEuler package: $dnf)" >&2
         missing=1; continue ;;
    esac
    if [ "$pkg" = - ]; then
      echo "note: $cmd is missing and has no $family package (tests that need it skip or fail)" >&2
      continue
    fi
    echo "missing: $cmd — install it with: $(install_hint "$family" "$pkg")" >&2
    missing=1
  done < <(tools_entries)
  if ((missing)); then
    echo "error: tools the tests need are missing; run as root: bash scripts/install-deps.sh" >&2
    return 1
  fi
  echo "check-tools: every command in scripts/test-tools.txt is present"
}

# ----------------------------------------------------------------------------- 2. listed

# A Rust source file on one line with whitespace squeezed, so calls rustfmt split over
# several lines still match one pattern.
flat() { # FILE
  tr '\n\t' '  ' <"$1" | tr -s ' '
}

# The quoted argument of each match of a `NAME( "x"` pattern, one per line.
quoted_after() { # REGEX
  grep -oE "$1\\( ?\"[^\"]+\"" | sed -E 's/.*\( ?"//; s/"$//'
}

# Programs named in `for tool in ["a", "b"] { require_tool(..` or
# `for (tool, package) in [("a", "pkg"), ..] { require_tool(..` (the first of each pair).
loop_programs() {
  local loop
  grep -oE 'for [a-z_(), ]+ in \[[^]]*\] ?\{[^}]*(require_tool|need)\(' | while read -r loop; do
    loop=${loop#*[}
    loop=${loop%%]*}
    if [[ $loop == *\(* ]]; then
      grep -oE '\( ?"[^"]+"' <<<"$loop" | sed -E 's/.*"(.*)"/\1/'
    else
      grep -oE '"[^"]+"' <<<"$loop" | tr -d '"'
    fi
  done
}

# Every program a test source file runs or requires.
programs_in_test_file() { # FILE
  local text
  text=$(flat "$1")
  {
    quoted_after 'Command::new' <<<"$text"
    quoted_after '(require_tool|require_program|find_program|need)' <<<"$text"
    quoted_after 'PG_BIN\)\.join' <<<"$text"
    grep -oE '"/(usr/)?s?bin/[A-Za-z0-9._+-]+"' <<<"$text" | tr -d '"'
    loop_programs <<<"$text"
  } || true
}

# Programs the product code runs by a literal name.
programs_in_src_file() { # FILE
  flat "$1" | { quoted_after '(Command::new|require_program)' || true; }
}

# Programs the scripts look for with `command -v NAME`.
programs_in_script() { # FILE
  sed -E 's/(^|[[:space:]])#.*//' "$1" | grep -oE 'command -v [A-Za-z0-9._+-]+' |
    sed 's/command -v //' || true
}

# "FILE PROGRAM" for everything found, skipping our own binaries and deliberately missing
# names ("no-such-tool-xyz" in tests of the not-found error).
found_programs() {
  local f p
  {
    while read -r f; do programs_in_test_file "$f" | sed "s|^|$f |"; done \
      < <(find "${TEST_DIRS[@]}" -name '*.rs' | sort)
    while read -r f; do programs_in_src_file "$f" | sed "s|^|$f |"; done \
      < <(find "${SRC_DIRS[@]}" -name '*.rs' | sort)
    for f in scripts/*.sh .ci/run; do programs_in_script "$f" | sed "s|^|$f |"; done
  } | while read -r f p; do
    [[ $OWN_PROGRAMS == *" $p "* || $p == no-such-* || $p == *'$'* || $p == *'{'* ]] && continue
    echo "$f $p"
  done | sort -u
}

# True when the list covers PROGRAM: listed as is, matched by a listed glob, or (a bare
# name) the last part of a listed path.
listed() { # PROGRAM
  local entry
  for entry in "${LISTED[@]}"; do
    # shellcheck disable=SC2053 # entry is a glob on purpose
    [[ $1 == "$entry" || $1 == $entry ]] && return 0
    [[ $1 != /* && $1 == "${entry##*/}" ]] && return 0
  done
  return 1
}

check_listed() {
  local f p unlisted=0
  mapfile -t LISTED < <(tools_entries | cut -d' ' -f1)
  while read -r f p; do
    listed "$p" && continue
    echo "unlisted: $f runs \`$p\`, which scripts/test-tools.txt does not list" >&2
    unlisted=1
  done < <(found_programs)
  if ((unlisted)); then
    echo "error: add a line \`COMMAND DEBIAN_PACKAGE DNF_PACKAGE\` to scripts/test-tools.txt" \
      "for each, so install-deps.sh installs it on new machines" >&2
    return 1
  fi
  echo "check-tools: every program the sources run is in scripts/test-tools.txt"
}

main() {
  local rc=0
  case ${1:-} in
    "" | --listed-only) ;;
    *) echo "usage: check-tools.sh [--listed-only]" >&2; exit 2 ;;
  esac
  tools_validate
  check_listed || rc=1
  if [ "${1:-}" != --listed-only ]; then
    check_present || rc=1
  fi
  return "$rc"
}

main "$@"
