//! Image manifests as a registry hands them to the runner: parse, detect the format, describe.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oci_client::manifest::OciImageManifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<OciImageManifest>(data) {
        let _ = ebpf_package::formats::detect(&m, None);
        let _ = ebpf_package::formats::detect(&m, Some(b"{}"));
        let _ = ebpf_package::formats::summary(&m, b"{}");
    }
});
