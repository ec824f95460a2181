//! Event layouts read from real clang BTF for the C shapes that are easy to get wrong.

use crate::common::{needs, Need};
use ebpf_package::spec::TypeLayout;
use ebpf_package::{decode, object};
use serde_json::{json, Value};

fn compile_source(name: &str, source: &str) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join(format!("{name}.bpf.c"));
    std::fs::write(&src, source).unwrap();
    crate::common::compile_file(name, &src)
}

const TRICKY: &str = r#"
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
typedef const volatile unsigned int cu32;
typedef cu32 cu32_t;
enum big { BIG_A = 1, BIG_B = 0xffffffffffULL, BIG_C = 0xfffffffffffffff0ULL };
struct point { short x; short y; };
struct event {
    cu32_t id;
    enum big b;
    struct point pts[2];
    union { u32 as_u32; u8 as_bytes[4]; };
    struct { u8 lo; u8 hi; };
    signed char sc;
    unsigned char uc[3];
    signed char sca[4];
    const char cname[4];
    char data[0];
};
struct event *unused_event __attribute__((unused));
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(".maps");
const volatile enum big which = BIG_B;
const volatile signed char delta = -3;
const volatile struct point origin = { 1, 2 };
SEC("tracepoint/syscalls/sys_enter_openat")
int handle(void *ctx) { return which + delta + origin.x; }
char LICENSE[] SEC("license") = "GPL";
"#;

/// The decoded value of a sample whose every byte is its own index (plus `extra` bytes, as
/// perf buffers pad samples).
fn decode_counting(layout: &TypeLayout, extra: usize) -> Value {
    let bytes: Vec<u8> = (0..layout.size() as usize + extra)
        .map(|i| i as u8)
        .collect();
    decode::decode(layout, &bytes).unwrap()
}

#[test]
fn typedef_chains_arrays_of_structs_anonymous_members_and_flexible_arrays() {
    if !needs(&[Need::Build]) {
        return;
    }
    let info = object::read(&compile_source("tricky", TRICKY), None).unwrap();
    let layout = &info.types["event"];
    assert_eq!(layout.size(), 48);
    let TypeLayout::Struct { fields, .. } = layout else {
        panic!("{layout:?}")
    };
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    // Anonymous union and struct members are flattened (the union as its first member).
    assert_eq!(
        names,
        ["id", "b", "pts", "as_u32", "lo", "hi", "sc", "uc", "sca", "cname", "data"]
    );
    let id = &fields[0].ty;
    assert_eq!(
        id,
        &TypeLayout::Int {
            size: 4,
            signed: false
        }
    );
    let sc = &fields[6].ty;
    assert_eq!(
        sc,
        &TypeLayout::Int {
            size: 1,
            signed: true
        }
    );
    // Padded samples decode the same as exact ones.
    let value = decode_counting(layout, 8);
    assert_eq!(value, decode_counting(layout, 0));
    assert_eq!(
        value,
        json!({"id": u32::from_ne_bytes([0, 1, 2, 3]),
               "b": u64::from_ne_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
               "pts": [{"x": i16::from_ne_bytes([16, 17]), "y": i16::from_ne_bytes([18, 19])},
                       {"x": i16::from_ne_bytes([20, 21]), "y": i16::from_ne_bytes([22, 23])}],
               "as_u32": u32::from_ne_bytes([24, 25, 26, 27]),
               "lo": 28, "hi": 29, "sc": 30,
               "uc": "\u{1f} !", "sca": "\"#$%", "cname": "&'()", "data": ""})
    );

    let params: Vec<_> = info
        .params
        .iter()
        .map(|p| (p.name.as_str(), &p.default))
        .collect();
    assert_eq!(
        params,
        [
            // A number, not "BIG_B": clang 14 predates ENUM64 and truncates the variants'
            // values in BTF to 32 bits, so none matches.
            ("which", &json!(0xff_ffff_ffffu64)),
            ("delta", &json!(-3)),
            ("origin", &json!({"x": 1, "y": 2})),
        ]
    );
}
