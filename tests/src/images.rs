//! Other tools' images, written by hand the way those tools lay them out: the openat fixture
//! compiled with clang, OCI image layouts with blobs, manifests and tags, tar+gzip layers,
//! and `skopeo copy` to a registry or hub. Shared by the runner's format tests and the hub's
//! indexing tests.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::cli;

pub const GADGET_ARTIFACT: &str = "application/vnd.gadget.v1+binary";
pub const GADGET_CONFIG: &str = "application/vnd.gadget.config.v1+yaml";
pub const GADGET_PROGRAM: &str = "application/vnd.gadget.ebpf.program.v1+binary";
pub const GADGET_WASM: &str = "application/vnd.gadget.wasm.program.v1+binary";
pub const BUMBLEBEE_CONFIG: &str = "application/ebpf.oci.image.config.v1+json";
pub const BUMBLEBEE_PROGRAM: &str = "application/ebpf.oci.image.program.v1+binary";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// vmlinux.h for this kernel, generated once per test process.
fn include_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bpftool")
            .args(["btf", "dump", "file", "/sys/kernel/btf/vmlinux"])
            .args(["format", "c"])
            .output()
            .expect("bpftool runs (Debian package `bpftool`)");
        assert!(out.status.success(), "bpftool failed: {out:?}");
        std::fs::write(dir.path().join("vmlinux.h"), out.stdout).unwrap();
        dir
    })
    .path()
}

/// tests/fixtures/formats/openat.bpf.c compiled with `defines` (`-D` flags).
pub fn compile_openat(defines: &[&str]) -> Vec<u8> {
    let src = cli::workspace_root().join("tests/fixtures/formats/openat.bpf.c");
    let tmp = tempfile::tempdir().unwrap();
    let obj = tmp.path().join("openat.bpf.o");
    let out = Command::new("clang")
        .args(["-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86"])
        .args(defines.iter().map(|d| format!("-D{d}")))
        .arg("-I")
        .arg(include_dir())
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("clang runs (Debian package `clang`)");
    assert!(out.status.success(), "clang failed: {out:?}");
    std::fs::read(obj).unwrap()
}

/// `tests/fixtures/REL` (BPF C including vmlinux.h) compiled for the BPF target.
pub fn compile_fixture(rel: &str) -> Vec<u8> {
    let src = cli::workspace_root().join("tests/fixtures").join(rel);
    let tmp = tempfile::tempdir().unwrap();
    let obj = tmp.path().join("out.bpf.o");
    let out = Command::new("clang")
        .args(["-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I"])
        .arg(include_dir())
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("clang runs (Debian package `clang`)");
    assert!(out.status.success(), "clang failed on {rel}: {out:?}");
    std::fs::read(obj).unwrap()
}

/// An OCI image layout written by hand, the way another tool would lay out its image.
pub struct Layout {
    pub dir: tempfile::TempDir,
}

impl Default for Layout {
    fn default() -> Self {
        Layout::new()
    }
}

impl Layout {
    pub fn new() -> Layout {
        let layout = Layout {
            dir: tempfile::tempdir().unwrap(),
        };
        let root = layout.dir.path();
        std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        layout
    }

    /// Stores `data`; returns its descriptor.
    pub fn blob(&self, media_type: &str, data: &[u8]) -> Value {
        let digest = crate::sha256(data);
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::write(self.dir.path().join("blobs/sha256").join(hex), data).unwrap();
        json!({"mediaType": media_type, "digest": digest, "size": data.len()})
    }

    /// Stores an image manifest; returns its descriptor.
    pub fn manifest(&self, manifest: Value) -> Value {
        let mut manifest = manifest;
        manifest["schemaVersion"] = json!(2);
        manifest["mediaType"] = json!(OCI_MANIFEST);
        self.blob(OCI_MANIFEST, &serde_json::to_vec(&manifest).unwrap())
    }

    /// Names `descriptor` `tag` in index.json.
    pub fn tag(&self, descriptor: &Value, tag: &str) {
        let mut entry = descriptor.clone();
        entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]});
        let path = self.dir.path().join("index.json");
        std::fs::write(path, serde_json::to_vec(&index).unwrap()).unwrap();
    }

    /// `skopeo copy --all` of `tag` to `reference`, with `user:token` credentials if given.
    pub fn copy_to(&self, tag: &str, reference: &str, creds: Option<(&str, &str)>) -> Output {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--all", "--dest-tls-verify=false"]);
        if let Some((user, token)) = creds {
            cmd.arg("--dest-creds").arg(format!("{user}:{token}"));
        }
        cmd.arg(format!("oci:{}:{tag}", self.dir.path().display()))
            .arg(format!("docker://{reference}"))
            .output()
            .expect("skopeo runs (Debian package `skopeo`)")
    }

    /// [`Layout::copy_to`] without credentials, which must succeed.
    pub fn push(&self, tag: &str, reference: &str) {
        pushed(self.copy_to(tag, reference, None));
    }
}

/// Asserts that a `skopeo copy` succeeded.
pub fn pushed(out: Output) {
    assert!(
        out.status.success(),
        "skopeo copy failed: {}",
        cli::show(&out)
    );
}

/// A single-image manifest: config + layers, plus top-level keys from `extra`
/// (artifactType, annotations).
pub fn image(layout: &Layout, config: Value, layers: Vec<Value>, extra: Value) -> Value {
    let mut manifest = json!({"config": config, "layers": layers});
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            manifest[k] = v;
        }
    }
    layout.manifest(manifest)
}

/// A tar+gzip layer holding `files` at its root.
pub fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// The diff_id of a tar+gzip layer: the digest of the uncompressed tar.
pub fn diff_id(layer: &[u8]) -> String {
    let mut gz = flate2::read::GzDecoder::new(layer);
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut gz, &mut tar).unwrap();
    crate::sha256(&tar)
}

/// A gadget image for `elf`, described by `gadget_yaml`, with a wasm layer beside the program.
pub fn gadget_manifest(layout: &Layout, elf: &[u8], gadget_yaml: &str) -> Value {
    let config = layout.blob(GADGET_CONFIG, gadget_yaml.as_bytes());
    let program = layout.blob(GADGET_PROGRAM, elf);
    let wasm = layout.blob(GADGET_WASM, b"\0asm\x01\0\0\0");
    image(
        layout,
        config,
        vec![program, wasm],
        json!({"artifactType": GADGET_ARTIFACT}),
    )
}
