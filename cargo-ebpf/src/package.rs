//! `cargo ebpf package`: the built object + manifest → an OCI image layout under target/.
