//! The hub's manifest PUT handler: any bytes as a manifest, by tag and by digest.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "hub_common.rs"]
mod hub_common;

fuzz_target!(|data: &[u8]| {
    let f = hub_common::fixture();
    let body = hub_common::with_digests(f, data);
    let status = hub_common::send(f, "PUT", "/v2/fuzz/p/manifests/latest", body.clone());
    assert!(status != 500, "a manifest made the hub fail: {}", String::from_utf8_lossy(&body));
    let digest = ebpf_package::digest::sha256(&body);
    let status = hub_common::send(f, "PUT", &format!("/v2/fuzz/p/manifests/{digest}"), body);
    assert!(status != 500);
});
