# Sourced by demo.sh and bench.sh: a throw-away work dir with its own store and docker config,
# and a docker-registry on 127.0.0.1:$1 (our config, temp storage), stopped on exit.
# Sets: work, reg_pid; exports CARGO_EBPF_HOME, DOCKER_CONFIG.
# shellcheck shell=bash
work=$(mktemp -d /tmp/cargo-ebpf-"$2".XXXXXX)
export CARGO_EBPF_HOME=$work/home DOCKER_CONFIG=$work/docker
reg_pid=$(bash scripts/local-registry.sh "$work/registry" "$1")
cleanup() { kill "$reg_pid" 2>/dev/null || true; }
trap cleanup EXIT
