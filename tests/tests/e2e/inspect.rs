//! `inspect`, end to end: a project scaffolded from the eunomia pack (whose param carries
//! `/// @description` and `/// @cmdarg` doc comments) is packaged and pushed to a real
//! docker-registry; `inspect` then describes it from the registry (storing nothing), from
//! the store after a pull, from its OCI layout and from its object file — and `run -- --help`
//! lists the documented flag.

use serde_json::Value;

use ebpf_e2e_tests::cli::{fails, ok, Env};
use ebpf_e2e_tests::project::Project;
use ebpf_e2e_tests::Registry;
use ebpf_e2e_tests::{needs, Need};

/// An eunomia project, packaged.
fn packaged(name: &str) -> Project {
    let project = Project::new(name, "eunomia");
    ok(&mut project.cmd(&["package"]));
    project
}

fn inspect_json(env: &Env, target: &str) -> Value {
    let out = ok(&mut env.cmd(["inspect", target, "--json"]));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What every source of the same package must report.
fn assert_describes_opensnoop(report: &Value) {
    assert_eq!(report["arch"], std::env::consts::ARCH, "{report}");
    let programs = &report["programs"];
    assert_eq!(programs[0]["name"], "handle_openat", "{report}");
    assert_eq!(programs[0]["type"], "tracepoint", "{report}");
    assert_eq!(
        programs[0]["attach"], "tracepoint syscalls:sys_enter_openat",
        "{report}"
    );
    assert_eq!(report["maps"][0]["name"], "events", "{report}");
    assert_eq!(report["maps"][0]["type"], "ringbuf", "{report}");
    let events = &report["events"][0];
    assert_eq!(events["map"], "events", "{report}");
    assert_eq!(events["type"], "event", "{report}");
    let fields: Vec<&str> = events["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(fields.contains(&"pid: u32"), "{fields:?}");
    assert!(fields.contains(&"comm: string[16]"), "{fields:?}");
}

#[test]
fn inspect_describes_a_package_from_registry_store_layout_and_object() {
    if !needs(&[Need::Build, Need::Registry]) {
        return;
    }
    let registry = Registry::start();
    let p = packaged("opensnoop");
    let reference = format!("{}/inspect/opensnoop:0.1.0", registry.addr());
    let pushed = ok(&mut p.cmd(&["push", &reference]));
    let pushed = String::from_utf8(pushed.stdout).unwrap();
    let digest = pushed.trim().rsplit('@').next().unwrap().to_string();

    // From the registry: nothing is stored.
    let remote = inspect_json(&p.env, &reference);
    assert_describes_opensnoop(&remote);
    assert_eq!(remote["format"], "cargo-ebpf");
    assert_eq!(remote["name"], "opensnoop");
    assert_eq!(remote["version"], "0.1.0");
    assert_eq!(remote["digest"], digest.as_str());
    assert!(remote["size"].as_u64().unwrap() > 1000, "{remote}");
    let listed = ok(&mut p.env.cmd(["list", "--json"]));
    assert_eq!(
        serde_json::from_slice::<Value>(&listed.stdout).unwrap(),
        serde_json::json!([])
    );

    // The param's doc comments became its description, short flag and default.
    let param = &remote["params"][0];
    assert_eq!(param["name"], "target_pid", "{param}");
    assert_eq!(param["flag"], "target-pid", "{param}");
    assert_eq!(param["short"], "p", "{param}");
    assert_eq!(param["default"], 0, "{param}");
    assert!(
        param["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Only trace this process")),
        "{param}"
    );

    // From the store after a pull: the same description.
    ok(&mut p.env.cmd(["pull", &reference]));
    let stored = inspect_json(&p.env, &reference);
    assert_eq!(stored["digest"], remote["digest"]);
    assert_eq!(stored["params"], remote["params"]);

    // From the layout and the object file.
    let layout = p.dir.join("target/ebpf/oci");
    let local = inspect_json(&p.env, layout.to_str().unwrap());
    assert_eq!(local["digest"], digest.as_str());
    let object = p.dir.join("target/ebpf/x86_64/opensnoop.bpf.o");
    let bare = inspect_json(&p.env, object.to_str().unwrap());
    assert_describes_opensnoop(&bare);
    assert_eq!(bare["format"], "object");
    let bytes = std::fs::read(&object).unwrap();
    assert_eq!(bare["size"], bytes.len());

    // The text form names the same things.
    let text = ok(&mut p.env.cmd(["inspect", &reference]));
    let text = String::from_utf8(text.stdout).unwrap();
    for needle in [
        "Format:      cargo-ebpf",
        "tracepoint syscalls:sys_enter_openat",
        "-p, --target-pid",
        digest.as_str(),
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
}

#[test]
fn run_help_lists_documented_flags_and_the_short_flag_works() {
    if !needs(&[Need::Build]) {
        return;
    }
    let p = packaged("documented");
    let dir = p.dir.to_str().unwrap();
    let help = ok(&mut p.env.cmd(["run", dir, "--", "--help"]));
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("-p, --target-pid"), "{help}");
    assert!(help.contains("Only trace this process ID"), "{help}");
    // `-p` takes a value like `--target-pid` does.
    let err = fails(&mut p.env.cmd(["run", dir, "--", "-p", "x"]), 2);
    assert!(err.contains("--target-pid"), "{err}");
}

#[test]
fn inspect_of_a_missing_reference_or_a_bad_file_fails_clearly() {
    if !needs(&[Need::Build, Need::Registry]) {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let missing = format!("{}/nothing/here:1", registry.addr());
    let err = fails(&mut env.cmd(["inspect", &missing]), 6);
    assert!(err.contains("not found"), "{err}");
    let file = env.path().join("notes.o");
    std::fs::write(&file, "plain text").unwrap();
    let err = fails(&mut env.cmd(["inspect", file.to_str().unwrap()]), 3);
    assert!(err.contains("not an ELF file"), "{err}");
}
