//! Other tools' formats, end to end, as root: each test builds an openat tracer here with
//! clang, wraps it the way Inspektor Gadget, bumblebee, bpfman or eunomia-bpf would, pushes
//! it with skopeo to a real docker-registry on 127.0.0.1 (or writes the package.json), and
//! then `cargo-ebpf pull` + `run` must attach it and print this test's own openat events.
//! Damaged images are refused with a clear message and leave the store empty.

use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use ebpf_e2e_tests::cli::{self, fails, ok, Env};
use ebpf_e2e_tests::images::{
    self, compile_openat as compile, image, tar_gz, Layout, BUMBLEBEE_CONFIG, BUMBLEBEE_PROGRAM,
    GADGET_ARTIFACT, GADGET_CONFIG, GADGET_PROGRAM, OCI_CONFIG, OCI_INDEX, TAR_GZIP,
};
use ebpf_e2e_tests::project::{
    events_about, run_command, run_while_opening, unique_path, RUN_SECS,
};
use ebpf_e2e_tests::{needs, Need};
use ebpf_e2e_tests::{sha256, Registry};

const GADGET_YAML: &str = "\
name: open-tracer
description: traces openat, as a gadget
sourceURL: https://example.com/open-tracer
datasources:
  open:
    fields:
      comm:
        annotations:
          columns.width: 16
params:
  ebpf:
    enabled:
      key: enable
      defaultValue: \"true\"
      description: emit events (gadget.yaml turns this on)
";

/// A gadget image for `elf` described by [`GADGET_YAML`].
fn gadget_manifest(layout: &Layout, elf: &[u8]) -> Value {
    images::gadget_manifest(layout, elf, GADGET_YAML)
}

// ---- running ---------------------------------------------------------------------------

/// `run TARGET --output json --duration N [-- ARGS]` while this thread opens a unique file;
/// returns the events about that file, and stderr.
fn run_and_trigger(env: &Env, target: &str, args: &[&str]) -> (Vec<Value>, String) {
    let run = run_while_opening(
        run_command(env, target, &["--output", "json"], args),
        env.path(),
    );
    let ours = events_about(&run.json_events(), &run.file)
        .into_iter()
        .cloned()
        .collect();
    (ours, run.stderr)
}

fn assert_own_events(events: &[Value], stderr: &str) {
    assert!(
        !events.is_empty(),
        "no event for our file; stderr:\n{stderr}"
    );
    let pid = std::process::id();
    assert!(
        events
            .iter()
            .all(|e| e["pid"] == pid && e["comm"].is_string()),
        "{events:?}"
    );
}

fn listed(env: &Env) -> Value {
    let out = ok(&mut env.cmd(["list", "--json"]));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `pull REF` then `run REF`: the events of this test's openat calls appear.
/// Pulls, then runs from the store; returns what both said on stderr.
fn pull_and_run(env: &Env, reference: &str) -> String {
    let pulled = ok(&mut env.cmd(["pull", reference]));
    let (events, stderr) = run_and_trigger(env, reference, &[]);
    assert_own_events(&events, &stderr);
    format!("{}{stderr}", String::from_utf8_lossy(&pulled.stderr))
}

// ---- the formats ---------------------------------------------------------------------------

#[test]
fn gadget_image_from_a_multi_arch_index_runs_with_its_yaml_defaults() {
    if !needs(&[Need::Kernel, Need::Build, Need::Registry, Need::Skopeo]) {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let elf = compile(&[]);
    let layout = Layout::new();
    let here = gadget_manifest(&layout, &elf);
    // The other platform's program is no object at all: picking it would fail the pull.
    let other = gadget_manifest(&layout, b"\x7fELF, but not for this platform");
    let mut here_entry = here.clone();
    here_entry["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let mut other_entry = other.clone();
    other_entry["platform"] = json!({"os": "linux", "architecture": "arm64"});
    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "artifactType": GADGET_ARTIFACT,
        "manifests": [other_entry, here_entry],
    });
    let index = layout.blob(OCI_INDEX, &serde_json::to_vec(&index).unwrap());
    layout.tag(&index, "v1");
    let reference = format!("{}/gadgets/open-tracer:v1", registry.addr());
    layout.push("v1", &reference);
    // The wasm module is never fetched: with its bytes gone from the registry, the pull
    // still works.
    let wasm = ebpf_e2e_tests::sha256(b"\0asm\x01\0\0\0");
    std::fs::remove_file(registry.blob_data_path(&wasm)).unwrap();

    // `enabled` is false in the object: events prove gadget.yaml's default was applied.
    let stderr = pull_and_run(&env, &reference);
    assert!(
        stderr.contains("not fetching the gadget's 1 wasm module layer(s)"),
        "{stderr}"
    );
    let list = listed(&env);
    assert_eq!(list[0]["format"], "gadget", "{list}");
    assert_eq!(list[0]["name"], "open-tracer", "{list}");
    assert_eq!(list[0]["digest"], here["digest"], "{list}");

    // inspect reads the same description the runner uses.
    let out = ok(&mut env.cmd(["inspect", &reference, "--json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["format"], "gadget", "{report}");
    assert_eq!(
        report["description"], "traces openat, as a gadget",
        "{report}"
    );
    assert_eq!(report["params"][0]["flag"], "enable", "{report}");
    assert_eq!(report["params"][0]["default"], true, "{report}");
    assert_eq!(report["events"][0]["type"], "open_event", "{report}");

    // gadget.yaml's key names the flag; its description and default are listed.
    let help = ok(&mut env.cmd(["run", &reference, "--", "--help"]));
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("--enable"), "{help}");
    assert!(help.contains("true"), "{help}");
    assert!(
        help.contains("emit events (gadget.yaml turns this on)"),
        "{help}"
    );
    // The flag still turns it off.
    let (events, _) = run_and_trigger(&env, &reference, &["--enable", "false"]);
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn bumblebee_image_prints_its_print_map_events() {
    if !needs(&[Need::Kernel, Need::Build, Need::Registry, Need::Skopeo]) {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let elf = compile(&["BUMBLEBEE", "ENABLED=1"]);
    let layout = Layout::new();
    let config = layout.blob(BUMBLEBEE_CONFIG, b"{}");
    let mut program = layout.blob(BUMBLEBEE_PROGRAM, &elf);
    program["annotations"] = json!({"org.opencontainers.image.title": "program.o"});
    let manifest = image(&layout, config, vec![program], json!({}));
    layout.tag(&manifest, "v1");
    let reference = format!("{}/bee/opens:v1", registry.addr());
    layout.push("v1", &reference);

    // The event struct is neither anchored nor called `event`: it comes from the
    // print_events map's declared value type.
    let stderr = pull_and_run(&env, &reference);
    assert!(stderr.contains("counter_opens"), "{stderr}");
    assert_eq!(listed(&env)[0]["format"], "bumblebee");
    // The layout it was pushed from reads the same way.
    let dir = layout.dir.path().to_str().unwrap();
    let out = ok(&mut env.cmd(["inspect", dir, "--json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["format"], "bumblebee", "{report}");
    assert_eq!(report["digest"], manifest["digest"], "{report}");
    assert_eq!(report["events"][0]["map"], "print_events", "{report}");
    assert_eq!(report["events"][0]["type"], "open_event", "{report}");
}

/// The bumblebee image of the openat tracer, written to a layout (and tagged `v1`).
fn bumblebee_layout() -> Layout {
    let elf = compile(&["BUMBLEBEE", "ENABLED=1"]);
    let layout = Layout::new();
    let config = layout.blob(BUMBLEBEE_CONFIG, b"{}");
    let mut program = layout.blob(BUMBLEBEE_PROGRAM, &elf);
    program["annotations"] = json!({"org.opencontainers.image.title": "program.o"});
    let manifest = image(&layout, config, vec![program], json!({}));
    layout.tag(&manifest, "v1");
    layout
}

/// bumblebee's metric maps, `counter_opens` (pid → opens) and `hist_name_len` (log2 slot of
/// the name's length → opens), come out through the map output: as NDJSON lines at the end
/// of a run that also streams events, and as Prometheus counter and histogram on --metrics.
#[test]
fn bumblebee_metric_maps_are_printed_and_served() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let env = Env::new();
    let layout = bumblebee_layout();
    let addr = format!("127.0.0.1:{}", ebpf_e2e_tests::free_port());
    let target = layout.dir.path().to_str().unwrap();
    let cmd = run_command(&env, target, &["--output", "json", "--metrics", &addr], &[]);
    let mut bg = cli::Background::spawn(cmd);
    bg.wait_for_stderr("Attached", Duration::from_secs(60));
    let marker = unique_path(env.path(), "bee");
    let until = Instant::now() + Duration::from_secs(2);
    assert!(cli::trigger_openat_while(&marker, || Instant::now() < until) > 0);
    let scraped = ebpf_e2e_tests::hub::request(&addr, "GET", "/metrics", &[], &[]).text();
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(RUN_SECS + 30));
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("showing maps `counter_opens`, `hist_name_len` at the end"),
        "{stderr}"
    );

    let me = std::process::id();
    let lines = cli::ndjson(&stdout);
    let marker = marker.display().to_string();
    assert!(
        !events_about(&lines, &marker).is_empty(),
        "no events: {stdout}"
    );
    let map = |name: &str| {
        lines
            .iter()
            .find(|l| l["map"] == name)
            .unwrap_or_else(|| panic!("no `{name}` line in {stdout}"))
    };
    let mine = map("counter_opens")["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == me)
        .unwrap_or_else(|| panic!("no count for pid {me}: {stdout}"))
        .clone();
    assert!(mine["value"].as_u64().unwrap() >= 1, "{mine}");
    let hist = &map("hist_name_len")["entries"][0]["value"]["slots"];
    let total: u64 = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(total >= 1, "{hist}");

    assert!(
        scraped.contains("# TYPE ebpf_counter_opens counter\n"),
        "{scraped}"
    );
    assert!(
        scraped.contains(&format!("ebpf_counter_opens{{key=\"{me}\"}} ")),
        "{scraped}"
    );
    assert!(
        scraped.contains("# TYPE ebpf_hist_name_len histogram\n"),
        "{scraped}"
    );
    assert!(
        scraped.contains("ebpf_hist_name_len_bucket{key=\"0\",le=\"+Inf\"} "),
        "{scraped}"
    );
}

#[test]
fn bpfman_image_runs_the_object_found_in_its_layer() {
    if !needs(&[Need::Kernel, Need::Build, Need::Registry, Need::Skopeo]) {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let elf = compile(&["ENABLED=1"]);
    let layout = Layout::new();
    let layer = tar_gz(&[("README", b"not an object"), ("openat.o", &elf)]);
    let diff_id = images::diff_id(&layer);
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {
            "io.ebpf.programs": r#"{"handle_openat":"tracepoint"}"#,
            "io.ebpf.maps": r#"{"events":"ringbuf"}"#,
        }},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let config = layout.blob(OCI_CONFIG, &serde_json::to_vec(&config).unwrap());
    let layer = layout.blob(TAR_GZIP, &layer);
    let manifest = image(&layout, config, vec![layer], json!({}));
    layout.tag(&manifest, "latest");
    let reference = format!("{}/bpfman/openat:latest", registry.addr());
    layout.push("latest", &reference);

    pull_and_run(&env, &reference);
    assert_eq!(listed(&env)[0]["format"], "bpfman");
}

/// An eunomia package.json for `elf`, with `cmdarg` docs on `enabled`.
fn package_json(elf: &[u8]) -> Value {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(elf).unwrap();
    let data = base64::engine::general_purpose::STANDARD.encode(z.finish().unwrap());
    json!({
        "bpf_skel": {
            "obj_name": "openat",
            "data": data,
            "maps": [{"ident": "events", "name": "events"}],
            "progs": [{"name": "handle_openat", "attach": "tracepoint/syscalls/sys_enter_openat"}],
            "data_sections": [{"name": ".rodata", "variables": [{
                "name": "enabled", "type": "bool",
                "description": "emit events",
                "cmdarg": {"default": true, "short": "e", "long": "emit"},
            }]}],
        },
        "export_types": [{
            "name": "open_event", "size": 116, "type_id": 1,
            "members": [{"name": "pid", "type": "u32"}, {"name": "comm", "type": "char[16]"},
                        {"name": "filename", "type": "char[96]"}],
        }],
    })
}

#[test]
fn eunomia_package_json_runs_from_a_path() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let env = Env::new();
    let path = env.path().join("package.json");
    let json = package_json(&compile(&[]));
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let target = path.display().to_string();

    // `enabled` is false in the object; the cmdarg default turns it on.
    let (events, stderr) = run_and_trigger(&env, &target, &[]);
    assert_own_events(&events, &stderr);
    let help = ok(&mut env.cmd(["run", &target, "--", "--help"]));
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("-e, --emit"), "{help}");
    assert!(help.contains("emit events"), "{help}");
    let (events, _) = run_and_trigger(&env, &target, &["-e", "false"]);
    assert!(events.is_empty(), "{events:?}");

    let out = ok(&mut env.cmd(["inspect", &target, "--json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["format"], "eunomia", "{report}");
    assert_eq!(report["name"], "openat", "{report}");
    let bytes = std::fs::read(&path).unwrap();
    let digest = sha256(&bytes);
    assert_eq!(report["digest"], digest.as_str(), "{report}");
    assert_eq!(report["size"], bytes.len(), "{report}");
}

/// Error text without miette's line wrapping and frame.
fn flat(stderr: &str) -> String {
    stderr
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Serves `body` at `/package.json` (404 elsewhere) on 127.0.0.1; returns the base URL.
/// The server thread ends with the test process.
fn serve(body: Vec<u8>) -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let found = request.starts_with("GET /package.json ");
            let (status, content) = if found {
                ("200 OK", body.as_slice())
            } else {
                ("404 Not Found", &b"no such file"[..])
            };
            let mut stream = reader.into_inner();
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                content.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(content);
        }
    });
    format!("http://{addr}")
}

#[test]
fn eunomia_package_json_runs_from_a_url() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let env = Env::new();
    let json = serde_json::to_vec(&package_json(&compile(&[]))).unwrap();
    let base = serve(json);
    let url = format!("{base}/package.json");
    let help = ok(&mut env.cmd(["run", &url, "--", "--help"]));
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("-e, --emit"), "{help}");
    let (events, stderr) = run_and_trigger(&env, &url, &[]);
    assert_own_events(&events, &stderr);
    let err = flat(&fails(
        &mut env.cmd(["run", &format!("{base}/gone.json")]),
        6,
    ));
    assert!(err.contains("answered HTTP 404"), "{err}");
}

// ---- damaged and unknown images --------------------------------------------------------

/// Pushes `manifest` from `layout`, then `pull` must fail with exit 3 saying `why`, and
/// leave the store empty.
fn refused(registry: &Registry, layout: &Layout, manifest: &Value, repo: &str, why: &str) {
    let env = Env::new();
    layout.tag(manifest, "bad");
    let reference = format!("{}/{repo}:bad", registry.addr());
    layout.push("bad", &reference);
    let stderr = flat(&fails(&mut env.cmd(["pull", &reference]), 3));
    assert!(stderr.contains(why), "expected {why:?} in:\n{stderr}");
    let store = env.path().join("ebpf-home/store/blobs/sha256");
    let stored = std::fs::read_dir(&store).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 0, "blobs were stored in {}", store.display());
    assert_eq!(listed(&env), json!([]));
}

#[test]
fn damaged_or_unknown_images_are_refused_and_nothing_is_stored() {
    if !needs(&[Need::Build, Need::Registry, Need::Skopeo]) {
        return;
    }
    let registry = Registry::start();
    let elf = compile(&["ENABLED=1"]);
    let layout = Layout::new();

    let config = layout.blob(GADGET_CONFIG, GADGET_YAML.as_bytes());
    let one = layout.blob(GADGET_PROGRAM, &elf);
    let two = layout.blob(GADGET_PROGRAM, b"\x7fELF second program");
    let two_programs = image(
        &layout,
        config,
        vec![one, two],
        json!({"artifactType": GADGET_ARTIFACT}),
    );
    refused(
        &registry,
        &layout,
        &two_programs,
        "bad/two",
        "2 eBPF program layers",
    );

    let config = layout.blob(BUMBLEBEE_CONFIG, b"{}");
    let text = layout.blob(BUMBLEBEE_PROGRAM, b"#!/bin/sh\necho not an object\n");
    let not_elf = image(&layout, config, vec![text], json!({}));
    refused(
        &registry,
        &layout,
        &not_elf,
        "bad/not-elf",
        "not an ELF file",
    );

    let config = layout.blob(BUMBLEBEE_CONFIG, b"{}");
    let sections = compile(&["BUMBLEBEE", "ENABLED=1", "PRINT_SEC=\".maps.print\""]);
    let program = layout.blob(BUMBLEBEE_PROGRAM, &sections);
    let bee_sections = image(&layout, config, vec![program], json!({}));
    refused(
        &registry,
        &layout,
        &bee_sections,
        "bad/sections",
        "libbpf cannot load",
    );

    let config = json!({"architecture": "amd64", "os": "linux",
                        "rootfs": {"type": "layers", "diff_ids": []}});
    let config = layout.blob(OCI_CONFIG, &serde_json::to_vec(&config).unwrap());
    let layer = layout.blob(TAR_GZIP, &tar_gz(&[("bin/sh", b"#!")]));
    let container = image(&layout, config, vec![layer], json!({}));
    refused(
        &registry,
        &layout,
        &container,
        "bad/container",
        "container image",
    );
}

#[test]
fn a_package_json_with_bad_base64_is_a_clear_error() {
    if !needs(&[Need::Build]) {
        return;
    }
    let env = Env::new();
    let path = env.path().join("package.json");
    let mut json = package_json(&compile(&[]));
    json["bpf_skel"]["data"] = json!("@@@ not base64 @@@");
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let stderr = flat(&fails(
        &mut env.cmd(["run", &path.display().to_string()]),
        3,
    ));
    assert!(
        stderr.contains("bpf_skel.data is not valid base64"),
        "{stderr}"
    );
}

/// eunomia's `ecc` packs the minimal BTFs beside `package.json` (BTFHub's layout): run
/// reads them as it reads a btfgen layer, so with `/sys/kernel/btf` hidden the archive still
/// loads, with the entry for this host, and its events arrive.
#[test]
fn an_ecc_archive_with_its_btfs_runs_where_the_kernel_has_none() {
    if !needs(&[Need::Kernel, Need::Build, Need::MountNs]) {
        return;
    }
    use crate::btfhub::{os_release_field, uname_r, without_kernel_btf};
    let env = Env::new();
    let json = serde_json::to_vec(&package_json(&compile(&[]))).unwrap();
    let vmlinux = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
    let (id, version, release) = (
        os_release_field("ID"),
        os_release_field("VERSION_ID"),
        uname_r(),
    );
    let btf_path = format!("btfhub-archive/{id}/{version}/x86_64/{release}.btf");
    let archive = ebpf_e2e_tests::images::tar_gz(&[("package.json", &json), (&btf_path, &vmlinux)]);
    let path = env.path().join("openat.tar.gz");
    std::fs::write(&path, archive).unwrap();
    let target = path.display().to_string();
    let run = without_kernel_btf(&env, run_command(&env, &target, &["--output", "json"], &[]));
    let run = run_while_opening(run, env.path());
    assert!(
        run.stderr
            .contains(&format!("embedded BTF for {id} {version} x86_64 {release}")),
        "{}",
        run.stderr
    );
    let events = run.json_events();
    assert!(
        !ebpf_e2e_tests::project::events_about(&events, &run.file).is_empty(),
        "{}",
        run.stderr
    );
}

/// A gadget.yaml's field annotations shape the table: `columns.hidden` drops the pid
/// column, `columns.width` and `columns.alignment: right` set the comm column (JSON keeps
/// every field).
#[test]
fn gadget_yaml_column_annotations_shape_the_table() {
    if !needs(&[Need::Kernel, Need::Build, Need::Registry, Need::Skopeo]) {
        return;
    }
    const YAML: &str = "\
name: columns
datasources:
  open:
    fields:
      pid:
        annotations:
          columns.hidden: true
      comm:
        annotations:
          columns.width: 20
          columns.alignment: right
params:
  ebpf:
    enabled:
      key: enable
      defaultValue: \"true\"
";
    let registry = Registry::start();
    let env = Env::new();
    let layout = Layout::new();
    let manifest = images::gadget_manifest(&layout, &compile(&[]), YAML);
    layout.tag(&manifest, "v1");
    let reference = format!("{}/gadgets/columns:v1", registry.addr());
    layout.push("v1", &reference);
    let run = run_while_opening(run_command(&env, &reference, &[], &[]), env.path());
    let header = run
        .stdout
        .lines()
        .find(|l| l.starts_with("TIME"))
        .unwrap_or_else(|| panic!("no header:\n{}\n{}", run.stdout, run.stderr));
    assert!(!header.contains("PID"), "{header}");
    assert!(
        header.contains(&format!("{:>20} FILENAME", "COMM")),
        "{header}"
    );
    let row = run
        .stdout
        .lines()
        .find(|l| l.ends_with(&run.file))
        .unwrap_or_else(|| panic!("no row for {}:\n{}", run.file, run.stdout));
    assert!(
        row.contains(&format!("{:>20} {}", run.comm, run.file)),
        "{row}"
    );
}
