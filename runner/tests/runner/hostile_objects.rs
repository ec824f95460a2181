//! Hostile input: mutated copies of a real compiled object must give an `Error` (or a
//! result that decodes), never a panic or a hang, from `object::check_elf`,
//! `object::read` and `decode::decode`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{needs, Need};
use ebpf_package::object::{self, ObjectInfo};
use ebpf_package::{decode, spec::TypeLayout};

/// Where the BTF blob starts: its header is magic 0xeb9f, version 1, flags 0.
fn btf_start(bytes: &[u8]) -> usize {
    let magic: [u8; 4] = [0x9f, 0xeb, 1, 0];
    bytes
        .windows(4)
        .position(|w| w == magic)
        .expect("the fixture has BTF")
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_ne_bytes());
}

/// A tiny deterministic generator (xorshift), so every run tries the same variants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// 200 blind variants: truncations, then byte flips and overwritten words in the BTF blob
/// and in the ELF header.
fn blind_variants(original: &[u8]) -> Vec<Vec<u8>> {
    let btf = btf_start(original);
    let btf_end = (btf + 4096).min(original.len());
    let mut rng = Rng(0x5eed_cafe_f00d_beef);
    let mut out = Vec::new();
    for i in 0..40 {
        out.push(original[..original.len() * i / 40].to_vec());
    }
    for i in 0..160 {
        let mut bytes = original.to_vec();
        let (lo, hi) = if i % 4 == 0 { (0, 64) } else { (btf, btf_end) };
        for _ in 0..1 + rng.below(4) {
            let at = lo + rng.below(hi - lo - 4);
            match rng.below(3) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => put_u32(&mut bytes, at, u32::MAX),
                _ => put_u32(&mut bytes, at, rng.next() as u32),
            }
        }
        out.push(bytes);
    }
    out
}

/// One BTF type record: its id, kind, where it starts and its vlen.
struct Record {
    id: u32,
    kind: u32,
    at: usize,
    vlen: usize,
}

/// Walks the BTF type section (layout per the kernel's btf.rst).
fn records(bytes: &[u8]) -> Vec<Record> {
    let btf = btf_start(bytes);
    let hdr_len = u32_at(bytes, btf + 4) as usize;
    let types = btf + hdr_len + u32_at(bytes, btf + 8) as usize;
    let end = types + u32_at(bytes, btf + 12) as usize;
    let mut out = Vec::new();
    let (mut at, mut id) = (types, 1);
    while at < end {
        let info = u32_at(bytes, at + 4);
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        let extra = match kind {
            1 | 14 | 17 => 4,     // int, var, decl tag
            3 => 12,              // array
            4 | 5 => 12 * vlen,   // struct, union
            6 | 13 => 8 * vlen,   // enum, func proto
            15 | 19 => 12 * vlen, // datasec, enum64
            _ => 0,
        };
        out.push(Record { id, kind, at, vlen });
        at += 12 + extra;
        id += 1;
    }
    out
}

/// Variants that break one type each in the ways hand-written BTF can: reference cycles,
/// huge arrays, sizes and offsets, odd bitfield widths.
fn targeted_variants(original: &[u8]) -> Vec<Vec<u8>> {
    let records = records(original);
    // The first struct of at least 8 bytes, to make arrays of it overflow a u32 size.
    let big = records
        .iter()
        .find(|r| r.kind == 4 && u32_at(original, r.at + 8) >= 8)
        .expect("the fixture has a struct")
        .id;
    let mut out = Vec::new();
    let mut with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = original.to_vec();
        edit(&mut bytes);
        out.push(bytes);
    };
    for r in records {
        let (at, id) = (r.at, r.id);
        match r.kind {
            // ptr, typedef, volatile, const, restrict, var: refer to itself.
            2 | 8 | 9 | 10 | 11 | 14 => with(&|b| put_u32(b, at + 8, id)),
            1 => {
                // int: bits wider than the int, or zero bits.
                with(&|b| put_u32(b, at + 12, 0xff));
                with(&|b| put_u32(b, at + 12, 1 << 24 | 3));
            }
            3 => {
                with(&|b| put_u32(b, at + 20, u32::MAX));
                with(&|b| put_u32(b, at + 12, id));
                with(&|b| {
                    put_u32(b, at + 12, big);
                    put_u32(b, at + 20, 0x8000_0000);
                });
            }
            4 | 5 => {
                with(&|b| put_u32(b, at + 8, u32::MAX));
                if r.vlen > 0 {
                    with(&|b| put_u32(b, at + 12 + 8, u32::MAX - 7));
                    with(&|b| put_u32(b, at + 12 + 4, id));
                    // kflag on: the offset word now also holds a 255-bit width.
                    with(&|b| {
                        b[at + 7] |= 0x80;
                        put_u32(b, at + 12 + 8, 0xff00_0000 | 0xff_fff0);
                    });
                }
            }
            15 if r.vlen > 0 => {
                with(&|b| put_u32(b, at + 12 + 4, u32::MAX - 3));
                with(&|b| put_u32(b, at + 12 + 8, u32::MAX));
            }
            _ => {}
        }
    }
    out
}

/// Decodes a zeroed sample of every layout the object described.
fn decode_everything(info: &ObjectInfo) {
    let layouts = info.types.values().chain(info.params.iter().map(|p| &p.ty));
    for layout in layouts {
        all_sizes(layout);
        let sample = vec![0u8; sample_len(layout)];
        let _ = decode::decode(layout, &sample);
        let _ = decode::Table::new(layout);
    }
}

/// Every layout inspect returns, nested ones too, has a size that fits its u32
/// (`TypeLayout::size` overflows otherwise).
fn all_sizes(layout: &TypeLayout) {
    let _ = layout.size();
    match layout {
        TypeLayout::Array { elem, .. } => all_sizes(elem),
        TypeLayout::Struct { fields, .. } | TypeLayout::Union { fields, .. } => {
            fields.iter().for_each(|f| all_sizes(&f.ty))
        }
        _ => {}
    }
}

/// Big enough for sane layouts, bounded for absurd ones.
fn sample_len(layout: &TypeLayout) -> usize {
    match layout {
        TypeLayout::Struct { size, .. } | TypeLayout::Union { size, .. } => *size as usize,
        _ => 64,
    }
    .min(1 << 16)
}

/// Runs check_elf + inspect + decode on every variant in a thread; fails on a panic or on
/// a variant that takes longer than `limit` overall.
fn assert_all_handled(variants: Vec<Vec<u8>>, limit: Duration) {
    let current = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&current);
    let worker = std::thread::spawn(move || {
        let mut panicked = Vec::new();
        for (i, bytes) in variants.iter().enumerate() {
            seen.store(i, Ordering::SeqCst);
            let result = std::panic::catch_unwind(|| {
                let _ = object::check_elf(bytes);
                if let Ok(info) = object::read(bytes, None) {
                    decode_everything(&info);
                }
            });
            if result.is_err() {
                panicked.push(i);
            }
        }
        panicked
    });
    let start = Instant::now();
    while !worker.is_finished() {
        let i = current.load(Ordering::SeqCst);
        assert!(start.elapsed() < limit, "variant {i} hangs");
        std::thread::sleep(Duration::from_millis(20));
    }
    let panicked = worker.join().unwrap();
    assert!(panicked.is_empty(), "variants {panicked:?} panicked");
}

#[test]
fn blindly_mutated_objects_give_errors_not_panics() {
    if !needs(&[Need::Build]) {
        return;
    }
    let variants = blind_variants(&crate::common::compile("opensnoop"));
    assert_eq!(variants.len(), 200);
    assert_all_handled(variants, Duration::from_secs(120));
}

#[test]
fn objects_with_broken_btf_types_give_errors_not_panics_or_hangs() {
    if !needs(&[Need::Build]) {
        return;
    }
    let variants = targeted_variants(&crate::common::compile("opensnoop"));
    assert!(variants.len() > 50, "only {} variants", variants.len());
    assert_all_handled(variants, Duration::from_secs(120));
}

#[test]
fn a_rejected_object_error_carries_libbpf_s_reason() {
    if !needs(&[Need::Build]) {
        return;
    }
    let original = crate::common::compile("opensnoop");
    // Cut inside the section data: the ELF header still parses, the sections do not.
    let err = object::read(&original[..original.len() / 2], None).unwrap_err();
    assert!(
        err.message.starts_with("libbpf cannot read"),
        "{}",
        err.message
    );
    let details = err.details.expect("libbpf's log as details");
    assert!(details.contains("libbpf: "), "{details}");
}
