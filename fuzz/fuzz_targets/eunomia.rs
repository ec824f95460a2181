//! eunomia-bpf `package.json` (the object inside, base64 and maybe compressed).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if ebpf_package::formats::eunomia::looks_like(data) {
        let _ = ebpf_package::formats::eunomia::read(data);
    }
    let _ = ebpf_package::formats::eunomia::read(data);
});
