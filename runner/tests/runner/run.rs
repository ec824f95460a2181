//! The runtime against the real toolchain and kernel: BPF C compiled with clang, loaded and
//! attached with libbpf, events produced by this very test process calling openat(2).
//! Needs root (or CAP_BPF + CAP_PERFMON), clang, bpftool and kernel BTF.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{compile, compile_file, Shared};
use crate::common::{needs, Need};
use ebpf_package::object::{self, ObjectInfo};
use ebpf_package::spec::{EventInfo, TypeLayout};
use ebpf_package::{ErrorKind, Result};
use ebpf_runner::run::{run_object, Output, RunOptions};
use serde_json::{json, Value};

/// Compiles BPF C given inline.
fn compile_source(name: &str, source: &str) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join(format!("{name}.bpf.c"));
    std::fs::write(&src, source).unwrap();
    compile_file(name, &src)
}

// ---- running ----------------------------------------------------------------------------

fn opts(output: Output, args: &[&str]) -> RunOptions {
    RunOptions {
        output,
        duration: Some(Duration::from_secs(3)),
        args: args.iter().map(|s| s.to_string()).collect(),
        btf: None,
        ..Default::default()
    }
}

/// Runs the object in a thread while this thread keeps opening `probe`; returns what the
/// runner wrote.
fn run_while_opening(
    name: &str,
    bytes: Vec<u8>,
    meta: Option<ebpf_package::spec::PackageMeta>,
    opts: RunOptions,
    probe: &Path,
) -> (Result<()>, String) {
    let out = Shared::default();
    let mut writer = out.clone();
    let name = name.to_string();
    let runner =
        std::thread::spawn(move || run_object(&name, &bytes, meta.as_ref(), &opts, &mut writer));
    while !runner.is_finished() {
        // The file need not exist: the openat(2) call is what the program sees.
        let _ = std::fs::File::open(probe);
        std::thread::sleep(Duration::from_millis(50));
    }
    (runner.join().unwrap(), out.text())
}

fn unique_probe(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    PathBuf::from(format!(
        "/tmp/ebpf-runner-{tag}-{}-{nanos}",
        std::process::id()
    ))
}

fn json_events(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}")))
        .collect()
}

/// Events from this process opening `probe`.
fn ours<'a>(events: &'a [Value], probe: &Path) -> Vec<&'a Value> {
    let pid = std::process::id();
    events
        .iter()
        .filter(|e| e["pid"] == json!(pid) && e["filename"] == json!(probe.to_str().unwrap()))
        .collect()
}

// ---- inspect ----------------------------------------------------------------------------

#[test]
fn inspect_reads_programs_maps_params_and_event_layout() {
    if !needs(&[Need::Build]) {
        return;
    }
    let info: ObjectInfo = object::read(&compile("opensnoop"), None).unwrap();

    assert_eq!(info.programs.len(), 1);
    let prog = &info.programs[0];
    assert_eq!(prog.name, "handle_openat");
    assert_eq!(prog.section, "tracepoint/syscalls/sys_enter_openat");
    assert_eq!(prog.prog_type, "tracepoint");

    // Only the user's map: libbpf's .rodata/.bss maps are left out.
    assert_eq!(info.maps.len(), 1, "{:?}", info.maps);
    assert_eq!(info.maps[0].name, "events");
    assert_eq!(info.maps[0].map_type, "ringbuf");
    assert_eq!(info.maps[0].max_entries, 256 * 1024);

    let params: Vec<_> = info
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.flag.as_str(), p.default.clone()))
        .collect();
    assert_eq!(
        params,
        [
            ("target_pid", "target-pid", json!(0)),
            ("verbose", "verbose", json!(true)),
            ("tag", "tag", json!("abc")),
        ]
    );
    let pid = &info.params[0];
    assert_eq!(
        pid.ty,
        TypeLayout::Int {
            size: 4,
            signed: true
        }
    );
    assert_eq!(info.params[2].ty, TypeLayout::String { len: 8 });
    // Offsets are real .rodata offsets (distinct, in order), not clang's zeros.
    assert!(info.params[0].offset < info.params[1].offset);
    assert!(info.params[1].offset < info.params[2].offset);

    assert_eq!(
        info.events,
        [EventInfo {
            map: "events".into(),
            type_name: "event".into()
        }]
    );
    let layout = &info.types["event"];
    insta::assert_yaml_snapshot!(layout);
}

#[test]
fn inspect_honours_and_checks_an_explicit_event_type() {
    if !needs(&[Need::Build]) {
        return;
    }
    let bytes = compile("opensnoop");
    let err = object::read(&bytes, Some("no_such_struct")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Input);
    assert!(err.message.contains("no_such_struct"), "{}", err.message);
    // The help names the structs that do exist.
    assert!(err.help.unwrap().contains("event"));

    let info = object::read(&bytes, Some("trace_entry")).unwrap();
    assert_eq!(info.events[0].type_name, "trace_entry");
    assert!(info.types.contains_key("trace_entry"));
}

#[test]
fn non_bpf_input_gets_clear_errors() {
    let true_bin = std::fs::read("/bin/true").unwrap();
    let err = object::check_elf(&true_bin).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Input);
    assert_eq!(
        err.message,
        "an ELF for x86-64 (machine 62), not an eBPF object"
    );
    assert!(err.help.unwrap().contains("clang -target bpf"));

    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for bytes in [random.as_slice(), b"", b"\x7fEL"] {
        let err = run_object(
            "x.bpf.o",
            bytes,
            None,
            &opts(Output::Json, &[]),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Input);
        assert_eq!(err.message, "not an ELF file");
    }
    let err = run_object(
        "true",
        &true_bin,
        None,
        &opts(Output::Json, &[]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.message.contains("x86-64"), "{}", err.message);
}

// ---- run ---------------------------------------------------------------------------------

#[test]
fn streams_ringbuf_events_as_json() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let probe = unique_probe("json");
    let (result, text) = run_while_opening(
        "opensnoop.bpf.o",
        compile("opensnoop"),
        None,
        opts(Output::Json, &[]),
        &probe,
    );
    result.unwrap();
    let events = json_events(&text);
    let mine = ours(&events, &probe);
    assert!(!mine.is_empty(), "no event for {probe:?} in:\n{text}");
    let e = mine[0];
    assert_eq!(e["src"], json!("SRC_OPENAT"));
    assert_eq!(e["ver"], json!({"major": 3, "minor": 1000}));
    // Field order follows the struct.
    let keys: Vec<_> = e.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["pid", "src", "ver", "comm", "filename"]);
}

#[test]
fn target_pid_param_filters_events() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let bytes = compile("opensnoop");
    let probe = unique_probe("other");
    let (result, text) = run_while_opening(
        "opensnoop.bpf.o",
        bytes.clone(),
        None,
        opts(Output::Json, &["--target-pid", "1"]),
        &probe,
    );
    result.unwrap();
    assert!(ours(&json_events(&text), &probe).is_empty(), "{text}");

    let probe = unique_probe("self");
    let me = format!("--target-pid={}", std::process::id());
    let (result, text) = run_while_opening(
        "opensnoop.bpf.o",
        bytes,
        None,
        opts(Output::Json, &[&me]),
        &probe,
    );
    result.unwrap();
    let events = json_events(&text);
    assert!(!ours(&events, &probe).is_empty(), "{text}");
    assert!(
        events.iter().all(|e| e["pid"] == json!(std::process::id())),
        "{text}"
    );
}

#[test]
fn program_help_and_bad_flags_need_no_load() {
    if !needs(&[Need::Build]) {
        return;
    }
    let bytes = compile("opensnoop");
    let mut out = Vec::new();
    run_object(
        "opensnoop.bpf.o",
        &bytes,
        None,
        &opts(Output::Table, &["--help"]),
        &mut out,
    )
    .unwrap();
    let help = String::from_utf8(out).unwrap();
    assert!(help.contains("--target-pid  i32"), "{help}");
    assert!(help.contains("--tag         string[8]  \"abc\""), "{help}");

    let err = run_object(
        "opensnoop.bpf.o",
        &bytes,
        None,
        &opts(Output::Table, &["--pid", "1"]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Usage);
    assert!(err.help.unwrap().contains("--target-pid, --verbose, --tag"));
    let err = run_object(
        "opensnoop.bpf.o",
        &bytes,
        None,
        &opts(Output::Table, &["--tag", "far too long"]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Usage);
}

#[test]
fn verifier_rejection_is_a_kernel_error_with_the_log() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let err = run_object(
        "reject.bpf.o",
        &compile("reject"),
        None,
        &opts(Output::Json, &[]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Kernel);
    assert_eq!(err.message, "the kernel rejected program `out_of_bounds`");
    let details = err.details.expect("verifier log in details");
    assert!(details.contains("invalid access to map value"), "{details}");
    assert!(details.lines().count() <= 25, "{details}");
}

#[test]
fn streams_perf_events_as_a_table_using_package_metadata() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let bytes = compile("perfsnoop");
    let info = object::read(&bytes, None).unwrap();
    let types: Vec<_> = info.maps.iter().map(|m| m.map_type.as_str()).collect();
    assert_eq!(types, ["per_cpu_array", "perf_event_array"]);
    assert_eq!(
        info.events,
        [EventInfo {
            map: "pevents".into(),
            type_name: "event".into()
        }]
    );
    let meta = ebpf_package::spec::PackageMeta {
        schema: ebpf_package::spec::SCHEMA_VERSION,
        name: "perfsnoop".into(),
        version: "0.1.0".into(),
        description: None,
        license: None,
        authors: vec![],
        source: None,
        keywords: vec![],
        arch: "x86_64".into(),
        runtime: ebpf_package::spec::Runtime::Kernel,
        object: "perfsnoop.bpf.o".into(),
        programs: info.programs,
        maps: info.maps,
        events: info.events,
        params: info.params,
        types: info.types,
        annotations: Default::default(),
        smoke: None,
        columns: Default::default(),
    };
    let probe = unique_probe("table");
    let (result, text) = run_while_opening(
        "perfsnoop.bpf.o",
        bytes,
        Some(meta),
        opts(Output::Table, &[]),
        &probe,
    );
    result.unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("TIME     PID        FILENAME"),
        "{header:?}"
    );
    // Exactly one header, then rows aligned under it.
    let row = lines
        .find(|l| l.ends_with(probe.to_str().unwrap()))
        .unwrap_or_else(|| panic!("no row for {probe:?} in:\n{text}"));
    let pid_at = header.find("PID").unwrap();
    assert!(
        row[pid_at..].starts_with(&std::process::id().to_string()),
        "{header}\n{row}"
    );
    let file_at = header.find("FILENAME").unwrap();
    assert_eq!(&row[file_at..], probe.to_str().unwrap(), "{header}\n{row}");
    assert_eq!(text.lines().filter(|l| l.starts_with("TIME")).count(), 1);
}

#[test]
fn attach_failure_names_program_and_section() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let err = attach_error(
        "nosuchtp",
        r#"
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
SEC("tracepoint/syscalls/sys_enter_no_such_syscall")
int on_nothing(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
"#,
    );
    assert!(
        err.message.starts_with(
            "cannot attach program `on_nothing` (section `tracepoint/syscalls/sys_enter_no_such_syscall`): "
        ),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("No such file or directory"),
        "{}",
        err.message
    );
}

#[test]
fn events_without_a_known_type_are_shown_as_raw_hex() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    // No anchor and no `struct event`: the runner cannot know the type.
    let bytes = compile_source(
        "rawsnoop",
        r#"
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096 * 4); } raw SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_openat")
int emit(void *ctx) {
    u64 pid_tgid = bpf_get_current_pid_tgid();
    bpf_ringbuf_output(&raw, &pid_tgid, sizeof(pid_tgid), 0);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"#,
    );
    assert!(object::read(&bytes, None).unwrap().events.is_empty());
    let probe = unique_probe("raw");
    let (result, text) = run_while_opening(
        "rawsnoop.bpf.o",
        bytes,
        None,
        opts(Output::Json, &[]),
        &probe,
    );
    result.unwrap();
    // pid_tgid's upper half is our pid (the tgid) in native byte order.
    let mine = hex_of(&(u64::from(std::process::id()) << 32).to_ne_bytes()[4..]);
    let events = json_events(&text);
    assert!(
        events.iter().any(|e| e["raw"]
            .as_str()
            .is_some_and(|h| h.len() == 16 && h.ends_with(&mine))),
        "no raw event from pid {} in:\n{text}",
        std::process::id()
    );
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_custom_kernel_btf_is_handed_to_libbpf() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let bytes = compile("opensnoop");
    // The kernel's own BTF as a custom file works like the default...
    let mut with_vmlinux = opts(Output::Json, &[]);
    with_vmlinux.duration = Some(Duration::from_millis(300));
    with_vmlinux.btf = Some("/sys/kernel/btf/vmlinux".into());
    run_object(
        "opensnoop.bpf.o",
        &bytes,
        None,
        &with_vmlinux,
        &mut Vec::new(),
    )
    .unwrap();
    // ...and a file that is not BTF makes CO-RE relocation fail, so libbpf did read it.
    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), b"definitely not BTF").unwrap();
    let mut with_garbage = with_vmlinux.clone();
    with_garbage.btf = Some(garbage.path().to_path_buf());
    let err = run_object(
        "opensnoop.bpf.o",
        &bytes,
        None,
        &with_garbage,
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Environment, "{err:?}");
    assert!(err.message.contains("CO-RE"), "{}", err.message);
    assert!(err.details.unwrap().contains("target BTF"));
}

#[test]
fn programs_libbpf_cannot_attach_alone_get_an_explanation() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let err = attach_error(
        "socketonly",
        r#"
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
SEC("socket")
int pass(struct __sk_buff *skb) { return 0; }
char LICENSE[] SEC("license") = "GPL";
"#,
    );
    assert!(
        err.message
            .starts_with("cannot attach program `pass` (section `socket`): "),
        "{}",
        err.message
    );
    let help = err.help.unwrap();
    assert!(
        help.contains("cannot attach `socket` programs by itself"),
        "{help}"
    );
}

#[test]
fn a_param_outside_rodata_names_its_place_and_the_rodata_size() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let bytes = compile("opensnoop");
    let info = object::read(&bytes, None).unwrap();
    let mut params = info.params.clone();
    params[0].offset = 4096;
    let meta = ebpf_package::spec::PackageMeta {
        schema: ebpf_package::spec::SCHEMA_VERSION,
        name: "opensnoop".into(),
        version: "0.1.0".into(),
        description: None,
        license: None,
        authors: vec![],
        source: None,
        keywords: vec![],
        arch: "x86_64".into(),
        runtime: ebpf_package::spec::Runtime::Kernel,
        object: "opensnoop.bpf.o".into(),
        programs: info.programs,
        maps: info.maps,
        events: info.events,
        params,
        types: info.types,
        annotations: Default::default(),
        smoke: None,
        columns: Default::default(),
    };
    let err = run_object(
        "opensnoop.bpf.o",
        &bytes,
        Some(&meta),
        &opts(Output::Json, &["--target-pid", "1"]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Input);
    // target_pid (4 bytes), verbose (1) and tag (8) fill 13 bytes.
    assert_eq!(
        err.message,
        "param `target_pid` (4 bytes at offset 4096) lies outside the object's .rodata (13 bytes)"
    );
}

/// Compiles `source` as `name`, runs it, and returns the Kernel-kind error it must give.
fn attach_error(name: &str, source: &str) -> ebpf_package::Error {
    let bytes = compile_source(name, source);
    let object = format!("{name}.bpf.o");
    let err = run_object(
        &object,
        &bytes,
        None,
        &opts(Output::Json, &[]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Kernel, "{}", err.message);
    err
}
