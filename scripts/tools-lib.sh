# Sourced (not run) by install-deps.sh, check-tools.sh and test-install-deps.sh, so all three
# read scripts/test-tools.txt and tell distros apart the same way.
# Provides: tools_entries, tools_validate, os_family, package_column, packages_for, pypi_for,
# npm_for.
# shellcheck shell=bash

TOOLS_FILE=${TOOLS_FILE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/test-tools.txt}

# The list without comments or blank lines, one "COMMAND DEBIAN DNF" per line.
tools_entries() {
  sed -e 's/#.*//' -e 's/[[:space:]]\{1,\}/ /g' -e 's/^ //' -e 's/ $//' "$TOOLS_FILE" |
    grep -v '^$' || true
}

# Fails, naming the line, when a line of the list does not have exactly three columns.
tools_validate() {
  local bad
  bad=$(awk '{ sub(/#.*/, "") } NF && NF != 3 { print FILENAME ":" FNR ": " $0 }' "$TOOLS_FILE")
  if [ -n "$bad" ]; then
    echo "error: these lines need exactly three columns (COMMAND DEBIAN_PACKAGE DNF_PACKAGE):" >&2
    echo "$bad" >&2
    return 1
  fi
}

# The value of FIELD in an os-release file, without quotes.
os_release_field() { # FIELD FILE
  sed -n "s/^$1=//p" "$2" | head -n 1 | tr -d "\"'"
}

# "apt" (Debian, Ubuntu) or "dnf" (Fedora, openEuler and their relatives) for an os-release
# file; fails with a clear message for anything else.
os_family() { # FILE
  local file=$1 id like
  if [ ! -r "$file" ]; then
    echo "error: cannot read $file to tell which distro this is" >&2
    return 1
  fi
  id=$(os_release_field ID "$file")
  like=$(os_release_field ID_LIKE "$file")
  case " ${id,,} ${like,,} " in
    *" debian "* | *" ubuntu "*) echo apt ;;
    *" fedora "* | *" openeuler "* | *" rhel "* | *" centos "*) echo dnf ;;
    *)
      echo "error: unsupported distro '${id:-unknown}' (from $file): only Debian/Ubuntu" \
        "(apt-get) and Fedora/openEuler (dnf) are known; install the packages in" \
        "$TOOLS_FILE by hand" >&2
      return 1
      ;;
  esac
}

# Which column of the list holds the package names for a family.
package_column() { # FAMILY
  case $1 in
    apt) echo 2 ;;
    dnf) echo 3 ;;
    *) echo "error: unknown package family '$1'" >&2; return 1 ;;
  esac
}

# The distro packages to install for a family, each once, in list order.
packages_for() { # FAMILY
  local col
  col=$(package_column "$1") || return 1
  tools_entries | awk -v c="$col" '$c != "-" && $c !~ /^(pypi|npm):/ && !seen[$c]++ { print $c }'
}

# "COMMAND PYPI_NAME" for what comes from PyPI on a family.
pypi_for() { # FAMILY
  local col
  col=$(package_column "$1") || return 1
  tools_entries | awk -v c="$col" '$c ~ /^pypi:/ { print $1, substr($c, 6) }'
}

# "COMMAND NPM_NAME" for what comes from the npm registry on a family (installed globally).
npm_for() { # FAMILY
  local col
  col=$(package_column "$1") || return 1
  tools_entries | awk -v c="$col" '$c ~ /^npm:/ { print $1, substr($c, 5) }'
}
