//! BPF ELF objects and their BTF: programs, maps, params, event layouts.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ebpf_package::object::check_bpf_elf(data);
    let _ = ebpf_package::object::section_names(data);
    if let Ok(info) = ebpf_package::object::read(data, None) {
        let _ = format!("{info:?}");
    }
});
