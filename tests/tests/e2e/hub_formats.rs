//! The hub indexes other tools' images on push, the way `cargo ebpf inspect` reads them:
//! an Inspektor Gadget image (gadget.yaml name, description, source; programs from the
//! object) and a bpfman image (object found in its layer), built here with clang and laid
//! out the way tests/tests/e2e/formats.rs does, pushed with skopeo. Multi-arch pushes (an OCI
//! index under a version tag: ours from `push --arch x86_64,arm64`, and a gadget index) are
//! indexed from their first platform's manifest, with every arch listed.

use serde_json::{json, Value};

use ebpf_e2e_tests::cli::{self, ok, Env};
use ebpf_e2e_tests::hub::Hub;
use ebpf_e2e_tests::images::{
    compile_openat as compile, diff_id, gadget_manifest, image, pushed, tar_gz, Layout,
    GADGET_ARTIFACT, OCI_CONFIG, OCI_INDEX, TAR_GZIP,
};
use ebpf_e2e_tests::project::Project;
use ebpf_e2e_tests::{needs, Need};

const GADGET_YAML: &str = "\
name: open-tracer
description: traces openat, as a gadget
sourceURL: https://example.com/open-tracer
";

fn gadget(layout: &Layout, elf: &[u8]) -> Value {
    gadget_manifest(layout, elf, GADGET_YAML)
}

fn package(hub: &Hub, repo: &str) -> Value {
    let r = hub.request("GET", &format!("/api/v1/packages/{repo}"), &[], b"");
    assert_eq!(r.status, 200, "{repo}: {}", r.text());
    r.json()
}

fn assert_openat_program(version: &Value) {
    let program = &version["programs"][0];
    assert_eq!(program["name"], "handle_openat", "{version}");
    assert_eq!(program["type"], "tracepoint", "{version}");
    let section = program["section"].as_str().unwrap();
    assert!(section.starts_with("tracepoint/syscalls/"), "{version}");
}

#[test]
fn gadget_and_bpfman_images_are_indexed_from_their_own_metadata() {
    if !needs(&[Need::Build, Need::Skopeo]) {
        return;
    }
    let hub = Hub::start();
    let (_, token) = hub.user_with_token("gina");
    let elf = compile(&[]);

    // Inspektor Gadget: gadget.yaml names and describes it; the object gives the programs.
    let layout = Layout::new();
    let manifest = gadget(&layout, &elf);
    layout.tag(&manifest, "v1.0.0");
    pushed(layout.copy_to(
        "v1.0.0",
        &format!("{}/gina/open-tracer:v1.0.0", hub.addr()),
        Some(("gina", &token)),
    ));
    let pkg = package(&hub, "gina/open-tracer");
    assert_eq!(pkg["description"], "traces openat, as a gadget", "{pkg}");
    assert_eq!(pkg["source"], "https://example.com/open-tracer", "{pkg}");
    let v = &pkg["versions"][0];
    assert_eq!(v["digest"], manifest["digest"], "{pkg}");
    assert_eq!(v["runtime"], "gadget", "{pkg}");
    assert_openat_program(v);
    // The page shows it, and the object download is the gadget's program layer itself.
    let page = hub.request("GET", "/p/gina/open-tracer", &[], b"").text();
    assert!(page.contains("traces openat, as a gadget"), "{page}");
    assert!(page.contains("handle_openat"), "{page}");
    let download = hub.request("GET", "/p/gina/open-tracer/download/v1.0.0", &[], b"");
    assert_eq!(download.status, 200, "{}", download.text());
    assert_eq!(download.body, elf);

    // bpfman: the object found in the tar layer, program types from it.
    let layout = Layout::new();
    let layer = tar_gz(&[("README", b"not an object"), ("openat.o", &elf)]);
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": {"io.ebpf.programs": r#"{"handle_openat":"tracepoint"}"#}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id(&layer)]},
    });
    let config = layout.blob(OCI_CONFIG, &serde_json::to_vec(&config).unwrap());
    let layer = layout.blob(TAR_GZIP, &layer);
    let manifest = image(&layout, config, vec![layer], json!({}));
    layout.tag(&manifest, "0.3.0");
    pushed(layout.copy_to(
        "0.3.0",
        &format!("{}/gina/openat:0.3.0", hub.addr()),
        Some(("gina", &token)),
    ));
    let pkg = package(&hub, "gina/openat");
    let v = &pkg["versions"][0];
    assert_eq!(v["runtime"], "bpfman", "{pkg}");
    assert_eq!(v["object"], "openat.o", "{pkg}");
    assert_eq!(v["arch"], "x86_64", "{pkg}");
    assert_openat_program(v);

    // A gadget whose program is not a BPF object is refused, and nothing is indexed.
    let layout = Layout::new();
    let bad = gadget(&layout, b"\x7fELF, but no BPF object at all");
    layout.tag(&bad, "v1.0.0");
    let out = layout.copy_to(
        "v1.0.0",
        &format!("{}/gina/broken:v1.0.0", hub.addr()),
        Some(("gina", &token)),
    );
    assert!(!out.status.success(), "a broken gadget was accepted");
    assert!(
        cli::show(&out).contains("MANIFEST_INVALID") || cli::show(&out).contains("ELF"),
        "{}",
        cli::show(&out)
    );
    let r = hub.request("GET", "/api/v1/packages/gina/broken", &[], b"");
    assert_eq!(r.status, 404);
}

#[test]
fn multi_arch_indexes_are_indexed_with_every_arch() {
    if !needs(&[Need::Build, Need::Skopeo]) {
        return;
    }
    let hub = Hub::start();
    let (_, token) = hub.user_with_token("max");

    // Ours: `push --arch x86_64,arm64` uploads both manifests, then the index by tag.
    let project = Project::new("multihub", "eunomia");
    let reference = format!("{}/max/multihub:0.1.0", hub.addr());
    ok(&mut project
        .env
        .cmd(["login", hub.addr(), "-u", "max", "-p", &token]));
    let out = ok(&mut project.cmd(&["push", &reference, "--arch", "x86_64,arm64"]));
    let digest = String::from_utf8(out.stdout).unwrap();
    let digest = digest.trim().rsplit('@').next().unwrap().to_string();
    let index = hub.request(
        "GET",
        &format!("/v2/max/multihub/manifests/{digest}"),
        &[],
        b"",
    );
    assert_eq!(index.json()["mediaType"], OCI_INDEX);
    let pkg = package(&hub, "max/multihub");
    let v = &pkg["versions"][0];
    assert_eq!(v["digest"], digest.as_str(), "{pkg}");
    assert_eq!(v["arch"], "x86_64, aarch64", "{pkg}");
    assert_eq!(v["runtime"], "kernel", "{pkg}");
    assert!(
        pkg["description"].as_str().unwrap().contains("openat"),
        "{pkg}"
    );
    assert!(
        v["programs"][0]["section"]
            .as_str()
            .unwrap()
            .starts_with("tracepoint/"),
        "{pkg}"
    );
    let page = hub.request("GET", "/p/max/multihub", &[], b"").text();
    assert!(page.contains("x86_64, aarch64"), "{page}");
    // And it runs from the hub's index on this host (the amd64 entry).
    let stranger = Env::new();
    let pulled = ok(&mut stranger.cmd(["pull", &reference]));
    assert!(String::from_utf8(pulled.stdout)
        .unwrap()
        .starts_with("sha256:"));

    // A gadget index: two platforms, listed; programs from the first one.
    let layout = Layout::new();
    let arm = gadget(&layout, &compile(&["ENABLED=1"]));
    let amd = gadget(&layout, &compile(&[]));
    let mut entries = vec![];
    for (m, arch) in [(&arm, "arm64"), (&amd, "amd64")] {
        let mut e = m.clone();
        e["platform"] = json!({"os": "linux", "architecture": arch});
        entries.push(e);
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "artifactType": GADGET_ARTIFACT, "manifests": entries});
    let index = layout.blob(OCI_INDEX, &serde_json::to_vec(&index).unwrap());
    layout.tag(&index, "v2.0.0");
    pushed(layout.copy_to(
        "v2.0.0",
        &format!("{}/max/open-tracer:v2.0.0", hub.addr()),
        Some(("max", &token)),
    ));
    let pkg = package(&hub, "max/open-tracer");
    let v = &pkg["versions"][0];
    assert_eq!(v["digest"], index["digest"], "{pkg}");
    assert_eq!(v["arch"], "aarch64, x86_64", "{pkg}");
    assert_eq!(v["runtime"], "gadget", "{pkg}");
    assert_eq!(pkg["description"], "traces openat, as a gadget", "{pkg}");
    assert_openat_program(v);
}
