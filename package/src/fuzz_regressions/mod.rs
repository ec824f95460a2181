//! Inputs the fuzz targets in `fuzz/` once crashed on, replayed through the same calls so a
//! fix stays fixed (`scripts/fuzz.sh` finds them; each is named for what it broke).

/// What the `object` fuzz target does with its input.
fn object_target(data: &[u8]) {
    let _ = crate::object::check_bpf_elf(data);
    let _ = crate::object::section_names(data);
    let _ = crate::object::read(data, None);
}

#[test]
fn a_section_table_at_the_end_of_the_address_space() {
    object_target(include_bytes!("object-section-table-overflow.bin"));
}

#[test]
fn a_btf_int_of_gigabytes_as_a_bitfield_member() {
    object_target(include_bytes!("object-int-size-overflow.bin"));
}

#[test]
fn a_struct_whose_members_name_it_again() {
    // Grew as members^depth: gigabytes and minutes before the layout had a node budget.
    let started = std::time::Instant::now();
    object_target(include_bytes!("object-self-referencing-struct.bin"));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
