//! Layer tar+gzip extraction: one file by name, bpfman's object search, and a whole unpack
//! into a temp dir (paths confined, links refused).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ebpf_package::layer::extract_file_within(data, "prog.bpf.o", 1 << 20);
    let _ = ebpf_package::formats::bpfman::find_object(data);
    let dir = tempfile::tempdir().unwrap();
    let _ = ebpf_package::layer::extract_all(data, dir.path());
});
