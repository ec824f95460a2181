# The cargo-ebpf builder image: the toolchains every template pack needs (eunomia, c, go),
# and no Rust toolchain, because `cargo ebpf build --container` mounts its own binary into
# the container read-only and runs `cargo-ebpf build` there.
#
#   podman build -t ghcr.io/cargo-ebpf/builder:0.1.0 -f docker/builder.Dockerfile .
#
# BASE may name any Debian bookworm image; scripts/builder-image.sh passes a local one made
# with debootstrap, for machines that cannot reach docker.io.
ARG BASE=docker.io/library/debian:bookworm-slim
FROM ${BASE}

# The cargo-ebpf binary is linked against bookworm's glibc, libelf and zlib: keep the
# base on bookworm (or newer) so the mounted binary runs.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates \
        clang llvm bpftool \
        libbpf-dev libelf-dev zlib1g-dev pkg-config make gcc libc6-dev \
        gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
        golang-go golang-github-cilium-ebpf-dev \
    && rm -rf /var/lib/apt/lists/*

# bpftool lives in /usr/sbin on Debian.
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /project
