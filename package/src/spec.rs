//! The cargo-ebpf package format, typed in one place.
//!
//! A package is an OCI image (see docs/format.md):
//! - manifest: `application/vnd.oci.image.manifest.v1+json`, `artifactType` [`ARTIFACT_TYPE`];
//! - config: a standard OCI image config whose `config.Labels` carry bpfman's `io.ebpf.*`
//!   labels and whose extension key [`CONFIG_KEY`] holds [`PackageMeta`];
//! - one layer: `tar+gzip` holding the BPF object at the archive root (bpfman's layout).
//!
//! Every media type, label and annotation key used anywhere is defined here once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

// ---- media types -------------------------------------------------------------------------

pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The manifest `artifactType` that marks a cargo-ebpf package.
pub const ARTIFACT_TYPE: &str = "application/vnd.cargo-ebpf.package.v1";

// ---- keys ----------------------------------------------------------------------------------

/// Extension key in the image config JSON holding [`PackageMeta`].
pub const CONFIG_KEY: &str = "dev.cargo-ebpf.package";
/// Version of [`PackageMeta`]; bump on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// bpfman bytecode-image labels: JSON objects {program function name: program type} and
/// {map name: map type}.
pub const LABEL_BPFMAN_PROGRAMS: &str = "io.ebpf.programs";
pub const LABEL_BPFMAN_MAPS: &str = "io.ebpf.maps";

pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
pub const ANNOTATION_DESCRIPTION: &str = "org.opencontainers.image.description";
pub const ANNOTATION_VERSION: &str = "org.opencontainers.image.version";
pub const ANNOTATION_AUTHORS: &str = "org.opencontainers.image.authors";
pub const ANNOTATION_LICENSES: &str = "org.opencontainers.image.licenses";
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
pub const ANNOTATION_URL: &str = "org.opencontainers.image.url";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Names a manifest inside an OCI image layout's `index.json` (the tag or full reference).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The file that marks an OCI image layout directory, and its content.
/// Response header a hub adds to a manifest of a yanked version (value `true`): still
/// pullable by exact version, and the runner warns.
pub const HEADER_YANKED: &str = "X-Cargo-Ebpf-Yanked";

pub const OCI_LAYOUT_FILE: &str = "oci-layout";
pub const OCI_LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

// ---- other tools' formats ------------------------------------------------------------------
//
// `pull`/`run` also accept images made by other eBPF tools; `crate::formats` recognises them
// by these media types and keys and describes each as a [`PackageMeta`].

/// Inspektor Gadget: the manifest's `artifactType`, the gadget.yaml config, the one eBPF
/// program layer (a raw ELF) and the optional layers we do not use.
pub const GADGET_ARTIFACT_TYPE: &str = "application/vnd.gadget.v1+binary";
pub const GADGET_CONFIG: &str = "application/vnd.gadget.config.v1+yaml";
pub const GADGET_EBPF_LAYER: &str = "application/vnd.gadget.ebpf.program.v1+binary";
pub const GADGET_WASM_LAYER: &str = "application/vnd.gadget.wasm.program.v1+binary";
pub const GADGET_BTFGEN_LAYER: &str = "application/vnd.gadget.btfgen.v1+binary";
/// Our per-kernel BTF layer (`package --btfhub-archive`): a tar+gzip of minimal BTFs in
/// BTFHub's layout, `<distro>/<version>/<arch>/<release>.btf` (see `btfgen.rs`).
pub const MEDIA_TYPE_BTFGEN: &str = "application/vnd.cargo-ebpf.btfgen.v1.tar+gzip";
/// The OCI empty descriptor's media type (content `{}`), a config that says nothing.
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// cosign "simple signing": the media type of a signature layer (its blob is the payload)
/// and the layer annotation holding base64 of the ASN.1 DER ECDSA signature.
pub const MEDIA_TYPE_COSIGN_SIMPLESIGNING: &str =
    "application/vnd.dev.cosign.simplesigning.v1+json";
pub const ANNOTATION_COSIGN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// The `critical.type` of a cosign signature payload.
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";
/// Tag suffix of the manifest holding the signatures of `sha256:<hex>`: `sha256-<hex>.sig`.
pub const COSIGN_SIGNATURE_TAG_SUFFIX: &str = ".sig";
/// cosign attestations: the tag suffix (`sha256-<hex>.att`), the layer media type (its blob is
/// a DSSE envelope) and the layer annotation naming the statement's predicate type.
pub const COSIGN_ATTESTATION_TAG_SUFFIX: &str = ".att";
pub const MEDIA_TYPE_DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const ANNOTATION_PREDICATE_TYPE: &str = "predicateType";
/// DSSE payload type of an in-toto statement, the statement's `_type`, and SLSA provenance.
pub const DSSE_PAYLOAD_TYPE_IN_TOTO: &str = "application/vnd.in-toto+json";
pub const IN_TOTO_STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// Predicate type of a kernel-matrix attestation: which kernels a package loads and attaches
/// on, as `cargo ebpf test-kernels` found in real VMs (`kernel_matrix::KernelMatrix`).
pub const KERNEL_MATRIX_PREDICATE_TYPE: &str = "https://cargo-ebpf.dev/kernel-matrix/v1";
/// Our SLSA `buildDefinition.buildType`.
pub const SLSA_BUILD_TYPE: &str = "https://cargo-ebpf.dev/build/v1";
/// Key in a payload's `optional` naming the signing key's fingerprint (a hint for error
/// messages only: verification never trusts it).
pub const SIGNATURE_KEY_HINT: &str = "dev.cargo-ebpf.key-fingerprint";
/// Layout-entry annotation `cargo ebpf package` writes: a fingerprint of what went into the
/// package, so an unchanged project is pushed as packaged instead of compressed again.
pub const ANNOTATION_PACKAGE_INPUTS: &str = "dev.cargo-ebpf.package-inputs";
/// Store-entry annotation recording the fingerprint of the key that verified a package.
pub const ANNOTATION_VERIFIED_BY: &str = "dev.cargo-ebpf.verified-by";

/// bumblebee (solo.io): config (content `{}`) and the one program layer (a raw ELF).
pub const BUMBLEBEE_CONFIG: &str = "application/ebpf.oci.image.config.v1+json";
pub const BUMBLEBEE_PROGRAM_LAYER: &str = "application/ebpf.oci.image.program.v1+binary";
/// bumblebee map-name prefixes: `print_` maps carry events; the others are metrics.
pub const BUMBLEBEE_PRINT_PREFIX: &str = "print_";
pub const BUMBLEBEE_METRIC_PREFIXES: [&str; 3] = ["counter_", "gauge_", "hist_"];

/// eunomia-bpf `package.json`: the skeleton (`data` = base64 of the zlib-compressed ELF) and
/// the exported event types.
pub const EUNOMIA_SKEL_KEY: &str = "bpf_skel";
pub const EUNOMIA_EXPORT_TYPES_KEY: &str = "export_types";

/// Which tool made a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Ours: [`ARTIFACT_TYPE`], metadata under [`CONFIG_KEY`].
    CargoEbpf,
    /// Inspektor Gadget image.
    Gadget,
    /// bumblebee image.
    Bumblebee,
    /// bpfman bytecode image (`io.ebpf.*` labels, object in a tar+gzip layer).
    Bpfman,
    /// eunomia-bpf `package.json`.
    Eunomia,
}

impl Format {
    /// The name `list` and `inspect` show.
    pub fn name(self) -> &'static str {
        match self {
            Format::CargoEbpf => "cargo-ebpf",
            Format::Gadget => "gadget",
            Format::Bumblebee => "bumblebee",
            Format::Bpfman => "bpfman",
            Format::Eunomia => "eunomia",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// ---- package metadata ----------------------------------------------------------------------

/// Everything a runner and a hub need to know about a package, stored in the image config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageMeta {
    pub schema: u32,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// Target architecture of the BPF object, in Rust/uname naming (`x86_64`, `aarch64`).
    pub arch: String,
    pub runtime: Runtime,
    /// File name of the BPF object inside the layer.
    pub object: String,
    pub programs: Vec<ProgramInfo>,
    pub maps: Vec<MapInfo>,
    /// Which maps carry events, and the type of each event.
    #[serde(default)]
    pub events: Vec<EventInfo>,
    /// `const volatile` globals, settable from the command line.
    #[serde(default)]
    pub params: Vec<ParamInfo>,
    /// Layouts of the event types, by type name.
    #[serde(default)]
    pub types: BTreeMap<String, TypeLayout>,
    /// eunomia's source annotations (`/// @tchook {…}` above a program, `/// @sample {…}`
    /// above a map): program or map name → annotation name → its JSON value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// A shell command that makes the program emit an event (`[test] smoke`), which
    /// `test-kernels` runs in each VM to see one arrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoke: Option<String>,
    /// How event fields show in tables, by field name (Inspektor Gadget's gadget.yaml
    /// `columns.*` and `template` field annotations).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, ColumnHint>,
}

/// One event field's table column, as a gadget.yaml field's annotations describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnHint {
    /// `columns.hidden`: not shown in the table (JSON keeps it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
    /// `columns.width`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<usize>,
    /// `columns.alignment: right`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub right: bool,
    /// `template`: `timestamp` shows a time of day; others (`comm`, `pid`, stacks) are kept
    /// for reference and shown as the value is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

impl PackageMeta {
    /// Metadata for the host's architecture with only the required fields set: a kernel-only
    /// package `name` `version` whose layer holds `object`.
    pub fn new(name: &str, version: &str, object: &str) -> PackageMeta {
        PackageMeta {
            schema: SCHEMA_VERSION,
            name: name.into(),
            version: version.into(),
            description: None,
            license: None,
            authors: vec![],
            source: None,
            keywords: vec![],
            arch: host_arch().into(),
            runtime: Runtime::Kernel,
            object: object.into(),
            programs: vec![],
            maps: vec![],
            events: vec![],
            params: vec![],
            types: BTreeMap::new(),
            annotations: BTreeMap::new(),
            smoke: None,
            columns: BTreeMap::new(),
        }
    }
}

/// How a package is started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Runtime {
    /// Kernel-only: the runner loads and attaches the object and prints its events.
    Kernel,
    /// A userspace loader shipped in the layer (C, Go and Rust packs): the runner extracts
    /// the layer into a private directory and executes the loader, passing the user's
    /// `-- ARGS` after `args`. The loader gets [`ENV_OBJECT`] and [`ENV_PACKAGE_DIR`].
    Executable {
        /// The loader's path inside the layer, e.g. `bin/hello`.
        path: String,
        /// Arguments placed before the user's.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        /// Extra environment variables.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        /// Working directory inside the extracted package; default: the caller's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workdir: Option<String>,
    },
    /// A container image that holds the loader: the runner starts it with docker or podman,
    /// privileged, with /sys/kernel/btf, bpffs and tracefs mounted and the extracted layer at
    /// [`CONTAINER_PACKAGE_DIR`]; the user's `-- ARGS` follow `args`.
    Container {
        /// The image reference the engine runs (pulled by the engine if it lacks it).
        image: String,
        /// Arguments placed after the image (the container's command), before the user's.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        /// Extra environment variables inside the container.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
    },
    /// Files from the layer placed at absolute destinations, then a start script; `stop`
    /// runs the stop script and removes exactly what was placed.
    Files {
        files: Vec<PlacedFile>,
        /// Shell script inside the layer run (with `sh`) after the files are placed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        script: Option<String>,
        /// Shell script inside the layer run before the placed files are removed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_script: Option<String>,
    },
}

impl Runtime {
    /// The runtime's `kind` as written in the metadata (`kernel`, `executable`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Runtime::Kernel => "kernel",
            Runtime::Executable { .. } => "executable",
            Runtime::Container { .. } => "container",
            Runtime::Files { .. } => "files",
        }
    }
}

/// One file of a [`Runtime::Files`] package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedFile {
    /// Path inside the layer.
    pub src: String,
    /// Absolute destination on the host (no `..`).
    pub dest: String,
    /// Permission bits; default 0644.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Replace a file already at `dest` (it is saved and put back by `stop`); without it an
    /// existing file is an error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overwrite: bool,
}

/// Where a container runtime sees the extracted package layer.
pub const CONTAINER_PACKAGE_DIR: &str = "/package";
/// Host paths bind-mounted into a container runtime's container when they exist, and
/// whether read-only: kernel BTF, bpffs (so pins are shared with the host) and tracefs in
/// both of its usual places.
pub const CONTAINER_HOST_MOUNTS: [(&str, bool); 4] = [
    ("/sys/kernel/btf", true),
    ("/sys/fs/bpf", false),
    ("/sys/kernel/tracing", false),
    ("/sys/kernel/debug", false),
];

/// Environment variable telling an executable runtime where the extracted BPF object is.
pub const ENV_OBJECT: &str = "CARGO_EBPF_OBJECT";
/// Environment variable telling an executable runtime where its package was extracted.
pub const ENV_PACKAGE_DIR: &str = "CARGO_EBPF_PACKAGE_DIR";
/// Where the loader of an executable package lives inside the layer: `bin/<name>`.
pub fn loader_path(name: &str) -> String {
    format!("bin/{name}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramInfo {
    /// The C function name.
    pub name: String,
    /// ELF section, which tells libbpf how to attach (e.g. `tracepoint/syscalls/sys_enter_openat`).
    pub section: String,
    /// Program type in bpfman's naming (`tracepoint`, `kprobe`, `xdp`, …).
    #[serde(rename = "type")]
    pub prog_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapInfo {
    pub name: String,
    /// Map type in bpfman's naming (`hash`, `array`, `per_cpu_array`, `ringbuf`, …); the
    /// kernel-style `percpu_*` spellings of older packages are read as bpfman's.
    #[serde(rename = "type", deserialize_with = "bpfman_map_type_de")]
    pub map_type: String,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// A map type name in bpfman's spelling: the kernel's `percpu` is bpfman's `per_cpu`
/// (`percpu_array` → `per_cpu_array`, `lru_percpu_hash` → `lru_per_cpu_hash`); other names
/// are the same in both.
pub fn bpfman_map_type(name: &str) -> String {
    match name {
        "percpu_hash" | "percpu_array" | "lru_percpu_hash" | "percpu_cgroup_storage" => {
            name.replace("percpu", "per_cpu")
        }
        other => other.to_string(),
    }
}

fn bpfman_map_type_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(|name| bpfman_map_type(&name))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    /// The ring buffer or perf event array map.
    pub map: String,
    /// The event struct's name, a key of [`PackageMeta::types`].
    #[serde(rename = "type")]
    pub type_name: String,
}

/// A `const volatile` global of the object's `.rodata`, exposed as `--flag VALUE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// The C variable name (`target_pid`).
    pub name: String,
    /// The command-line flag without dashes (`target-pid`).
    pub flag: String,
    /// Byte offset inside the `.rodata` section.
    pub offset: u32,
    #[serde(rename = "type")]
    pub ty: TypeLayout,
    /// The value compiled into the object.
    pub default: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A one-letter alias (`f` for `-f`), from eunomia's `@cmdarg {"short": "f"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short: Option<String>,
    /// Set when the author declared a default (`@cmdarg`, gadget.yaml) other than the value
    /// compiled into the object: the runner then writes [`ParamInfo::default`] before load
    /// unless the flag is given.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub set_default: bool,
}

/// The layout of a C type, as far as decoding event bytes needs it. Built from BTF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TypeLayout {
    /// Integer of 1, 2, 4, 8 or 16 bytes.
    Int {
        size: u32,
        signed: bool,
    },
    Bool {
        size: u32,
    },
    Float {
        size: u32,
    },
    /// `char[N]`: shown as a string up to the first NUL.
    String {
        len: u32,
    },
    Array {
        len: u32,
        elem: Box<TypeLayout>,
    },
    Enum {
        size: u32,
        signed: bool,
        /// (name, value) pairs.
        variants: Vec<EnumVariant>,
    },
    Struct {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        size: u32,
        fields: Vec<Field>,
    },
    /// A union; decoded as its first member.
    Union {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        size: u32,
        fields: Vec<Field>,
    },
    /// A pointer: shown as a hex address.
    Pointer {
        size: u32,
    },
    /// Anything else (e.g. function pointers): shown as hex bytes.
    Opaque {
        size: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumVariant {
    pub name: String,
    pub value: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    /// Offset from the start of the enclosing struct, in bits.
    pub offset_bits: u32,
    /// Set for bitfields: the width in bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitfield_bits: Option<u32>,
    #[serde(rename = "type")]
    pub ty: TypeLayout,
}

impl TypeLayout {
    /// Size of a value of this type in bytes.
    pub fn size(&self) -> u32 {
        match self {
            TypeLayout::Int { size, .. }
            | TypeLayout::Bool { size }
            | TypeLayout::Float { size }
            | TypeLayout::Enum { size, .. }
            | TypeLayout::Struct { size, .. }
            | TypeLayout::Union { size, .. }
            | TypeLayout::Pointer { size }
            | TypeLayout::Opaque { size } => *size,
            TypeLayout::String { len } => *len,
            TypeLayout::Array { len, elem } => len * elem.size(),
        }
    }
}

// ---- the OCI image config we write -------------------------------------------------------

/// A standard OCI image config, plus our [`PackageMeta`] under [`CONFIG_KEY`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// GOARCH naming, as OCI requires (`amd64`, `arm64`).
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub config: ImageConfigConfig,
    pub rootfs: RootFs,
    #[serde(
        rename = "dev.cargo-ebpf.package",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub package: Option<PackageMeta>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfigConfig {
    #[serde(rename = "Labels", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub fs_type: String,
    /// Digests of the *uncompressed* layer tars.
    pub diff_ids: Vec<String>,
}

// ---- architectures -------------------------------------------------------------------------

/// The host's architecture in Rust/uname naming.
pub fn host_arch() -> &'static str {
    std::env::consts::ARCH
}

/// Rust/uname arch name → OCI (GOARCH) name.
pub fn oci_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Rust/uname arch name → the `__TARGET_ARCH_*` suffix that libbpf's bpf_tracing.h expects.
pub fn bpf_target_arch(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv",
        "s390x" => "s390",
        "powerpc64" => "powerpc",
        "loongarch64" => "loongarch",
        _ => return None,
    })
}

/// Accepts either naming (`arm64` or `aarch64`) and returns the Rust/uname one.
pub fn normalize_arch(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "x86_64" | "amd64" | "x86" => "x86_64",
        "aarch64" | "arm64" => "aarch64",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" | "ppc64le" => "powerpc64",
        _ => return None,
    })
}

#[cfg(test)]
mod map_type_tests {
    use super::*;

    #[test]
    fn both_spellings_of_per_cpu_map_types_read_as_bpfmans() {
        for (old, new) in [
            ("percpu_array", "per_cpu_array"),
            ("per_cpu_array", "per_cpu_array"),
            ("percpu_hash", "per_cpu_hash"),
            ("lru_percpu_hash", "lru_per_cpu_hash"),
            ("lru_per_cpu_hash", "lru_per_cpu_hash"),
            ("ringbuf", "ringbuf"),
        ] {
            let json = format!(
                r#"{{"name":"m","type":"{old}","key_size":4,"value_size":8,"max_entries":1}}"#
            );
            let map: MapInfo = serde_json::from_str(&json).unwrap();
            assert_eq!(map.map_type, new);
        }
    }
}
