//! Inspektor Gadget images: `gadget.yaml` (the config blob) read through `recognize`.
#![no_main]
use ebpf_package::blob::Blob;
use ebpf_package::spec::{GADGET_CONFIG, GADGET_EBPF_LAYER};
use libfuzzer_sys::fuzz_target;
use oci_client::manifest::{OciDescriptor, OciImageManifest};

/// A 64-byte little-endian EM_BPF ELF header.
fn elf() -> Vec<u8> {
    let mut b = vec![0u8; 64];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[18..20].copy_from_slice(&247u16.to_le_bytes());
    b
}

fuzz_target!(|data: &[u8]| {
    let object = elf();
    let layer = OciDescriptor {
        media_type: GADGET_EBPF_LAYER.into(),
        digest: ebpf_package::digest::sha256(&object),
        size: object.len() as i64,
        ..Default::default()
    };
    let manifest = OciImageManifest {
        config: OciDescriptor {
            media_type: GADGET_CONFIG.into(),
            digest: ebpf_package::digest::sha256(data),
            size: data.len() as i64,
            ..Default::default()
        },
        layers: vec![layer.clone()],
        ..Default::default()
    };
    let blobs = [Blob { descriptor: layer, data: object }];
    let _ = ebpf_package::formats::detect(&manifest, Some(data));
    let _ = ebpf_package::formats::recognize(&manifest, data, &blobs);
    let _ = ebpf_package::formats::summary(&manifest, data);
});
