//! Image configs with our package metadata, and the format detection that reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oci_client::manifest::OciImageManifest;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ebpf_package::spec::ImageConfig>(data);
    let manifest: OciImageManifest = serde_json::from_value(serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000", "size": 2},
        "layers": [],
    }))
    .unwrap();
    let _ = ebpf_package::formats::detect(&manifest, Some(data));
    let _ = ebpf_package::formats::summary(&manifest, data);
});
