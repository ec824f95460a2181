//! OCI image indexes (multi-arch releases).
#![no_main]
use libfuzzer_sys::fuzz_target;
use oci_client::manifest::OciImageIndex;

fuzz_target!(|data: &[u8]| {
    if let Ok(i) = serde_json::from_slice::<OciImageIndex>(data) {
        for m in &i.manifests {
            if let Some(p) = &m.platform {
                let _ = ebpf_package::spec::normalize_arch(&p.architecture.to_string());
            }
        }
    }
});
