#!/usr/bin/env bash
# Proves the crates can be published and that cargo-ebpf installed from its .crate works:
# packages every publishable workspace crate (with cargo's verification build), installs
# cargo-ebpf from the unpacked .crate (its workspace siblings from theirs, as crates.io would
# serve them), then renders every built-in template pack with the installed binary and checks
# each project holds every file of its pack plus the shared CI files. Catches what a workspace
# build cannot: a file the binary embeds that `cargo package` leaves out.
#
# Build artifacts are shared with the workspace's own dev builds (same target dir, same
# profile), so after `cargo clippy`/`cargo test` little beyond the three crates is rebuilt.
# CHECK_PACKAGE_MAX_KIB caps each .crate (default 1024; crates.io refuses more than 10 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

fail() {
  echo "check-package: FAILED: $*" >&2
  exit 1
}
step() { echo "==> check-package: $*"; }

# What to package and where cargo builds, from the workspace itself, so a crate added later
# (or one turned publish = false) needs no edit here. `publish` is null (anywhere) or a list
# of registries; [] is publish = false.
metadata=$(cargo metadata --no-deps --format-version 1)
read -r target_dir < <(python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' <<<"$metadata")
mapfile -t crates < <(python3 -c '
import json, sys
m = json.load(sys.stdin)
members = set(m["workspace_members"])
for p in m["packages"]:
    if p["id"] in members and p["publish"] != []:
        print(p["name"], p["version"])
' <<<"$metadata")
((${#crates[@]})) || fail "no publishable crate in the workspace"

# The workspace's [profile] tables as --config flags: cargo's verification build and
# `cargo install` build a crate on its own, outside this workspace, so without them they would
# compile every dependency a second time with other settings.
mapfile -t profile_config < <(python3 -c '
import json, sys, tomllib
def flat(prefix, value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flat(prefix + [k], v)
    else:
        yield ".".join(json.dumps(k) for k in prefix) + "=" + json.dumps(value)
with open("Cargo.toml", "rb") as f:
    profile = tomllib.load(f).get("profile", {})
for line in flat(["profile"], profile):
    print("--config")
    print(line)
')

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-package.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
case "$tmp/" in "$repo"/*) fail "temp dir $tmp is inside the repository" ;; esac

# cargo's verification build unpacks each sibling .crate into the registry cache as
# NAME-VERSION and reuses that directory on later runs even when the crate changed (same
# version): drop our own crates' copies, so verification builds what is packaged now.
# Builds of those copies are fresh forever to cargo (registry sources never change, so their
# fingerprints list no source files: a dep-info of a few bytes): drop those fingerprints too.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
for crate in "${crates[@]}"; do
  name=${crate% *}
  rm -rf "$cargo_home"/registry/src/*/"$name-${crate#* }"
  for dep_info in "$target_dir"/*/.fingerprint/"$name"-*/dep-lib-*; do
    [[ -f $dep_info && $(stat -c %s "$dep_info") -lt 64 ]] && rm -rf "$(dirname "$dep_info")"
  done
done

package_args=()
for crate in "${crates[@]}"; do package_args+=(-p "${crate% *}"); done
step "cargo package ${package_args[*]} (with verification)"
start=$SECONDS
# --allow-dirty: this checks the working tree, committed or not; publishing is a separate step.
cargo package --allow-dirty "${package_args[@]}" "${profile_config[@]}" \
  || fail "cargo package failed (see above)"
step "packaged and verified in $((SECONDS - start))s"

# Unpack every .crate, and point crates.io at the unpacked siblings: cargo-ebpf's dependency
# on ebpf-runner 0.1.0 then resolves to exactly what would be published.
max_kib=${CHECK_PACKAGE_MAX_KIB:-1024}
patch_config=()
for crate in "${crates[@]}"; do
  name=${crate% *} version=${crate#* }
  file="$target_dir/package/$name-$version.crate"
  [[ -f $file ]] || fail "$file was not written by cargo package"
  kib=$(($(stat -c %s "$file") / 1024))
  ((kib <= max_kib)) || fail "$file is ${kib} KiB, over CHECK_PACKAGE_MAX_KIB=$max_kib: see \`cargo package --list -p $name\` and add what it need not ship to exclude"
  tar -xzf "$file" -C "$tmp"
  [[ $name == cargo-ebpf ]] && continue
  patch_config+=(--config "patch.crates-io.$name.path=\"$tmp/$name-$version\"")
done
crate_dir=$(echo "$tmp"/cargo-ebpf-*/)
[[ -f $crate_dir/Cargo.toml ]] || fail "cargo-ebpf is not among the packaged crates"

# The .crate's Cargo.lock names the siblings as crates.io packages; let cargo swap in the
# patched ones (every other entry stays), then install --locked as the generated CI files do:
# a dependency missing from the packaged lock fails here rather than for users.
host=$(rustc -vV | sed -n 's/^host: //p')
(cd "$crate_dir" && cargo metadata --format-version 1 --filter-platform "$host" \
  "${patch_config[@]}" >/dev/null) \
  || fail "cargo could not resolve the unpacked cargo-ebpf crate"
step "cargo install --path $crate_dir (debug build, deps shared with $target_dir)"
start=$SECONDS
# build-dir: intermediate artifacts (dependencies) go where the workspace builds keep theirs;
# the installed binary's own output stays in the temp dir, not over target/debug/cargo-ebpf.
cargo install --locked --debug --path "$crate_dir" --root "$tmp/root" \
  --target-dir "$tmp/target" --config "build.build-dir=\"$target_dir\"" \
  "${profile_config[@]}" "${patch_config[@]}" \
  || fail "cargo install of the packaged cargo-ebpf failed (see above)"
step "installed in $((SECONDS - start))s"
bin=$tmp/root/bin/cargo-ebpf
[[ -x $bin ]] || fail "cargo install wrote no $bin"

# Every pack in the repository, and at least the four the docs promise.
packs_dir=$repo/cargo-ebpf/templates/packs
mapfile -t packs < <(cd "$packs_dir" && for d in */; do echo "${d%/}"; done)
for lang in eunomia c go rust; do
  [[ -d $packs_dir/$lang ]] || fail "the $lang pack is missing from $packs_dir"
done

name=probe
for lang in "${packs[@]}"; do
  project=$tmp/projects/$lang/$name
  mkdir -p "$(dirname "$project")"
  if ! CARGO_EBPF_AUTHOR="Check Package <check@example.com>" \
    "$bin" ebpf new "$name" --lang "$lang" --path "$project" >"$tmp/new.log" 2>&1; then
    cat "$tmp/new.log" >&2
    fail "the installed cargo-ebpf could not render the $lang pack: is cargo-ebpf/templates/packs/$lang in the crate? (cargo package --list -p cargo-ebpf)"
  fi
  # What the project must hold: every file of the pack (pack.toml aside) with .hbs dropped
  # and {{name}} filled in, plus the shared CI files.
  expected=(.github/workflows/ebpf.yml .workflow/ebpf.yml)
  while IFS= read -r file; do
    file=${file#./}
    [[ $file == pack.toml ]] && continue
    file=${file%.hbs}
    expected+=("${file//\{\{name\}\}/$name}")
  done < <(cd "$packs_dir/$lang" && find . -type f)
  for file in ebpf.toml README.md Dockerfile "${expected[@]}"; do
    [[ -s $project/$file ]] \
      || fail "the $lang project from the installed cargo-ebpf has no (or an empty) $file: the crate lacks part of its templates (cargo package --list -p cargo-ebpf)"
  done
  echo "    $lang: ${#expected[@]} files, as in the pack"
done
step "OK: ${#crates[@]} crates packaged; the installed cargo-ebpf rendered ${#packs[@]} packs (${packs[*]})"
