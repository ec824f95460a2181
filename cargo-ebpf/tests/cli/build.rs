//! `cargo ebpf build` with the real clang and bpftool against this machine's kernel BTF.
//!
//! Tests that look at what the build writes to stderr (clang's diagnostics) run the build in
//! a child copy of this test binary, since clang writes to the process's real stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use cargo_ebpf::build::{build, BuildOptions, BuildOutput};
use cargo_ebpf::manifest::Project;
use cargo_ebpf::{ErrorKind, Result};

use crate::common::new_eunomia;
use crate::common::{needs, Need};

/// Set in a child test process: the project directory to build.
const CHILD_DIR: &str = "CARGO_EBPF_TEST_CHILD_DIR";
const EM_BPF: u16 = 247;
const ANCHOR: &str = "struct event *unused_event __attribute__((unused));";

fn build_project(project: &Project, opts: &BuildOptions) -> Result<BuildOutput> {
    build(project, opts)
}

fn load(dir: &Path) -> Project {
    Project::discover(dir).unwrap()
}

fn mtime(path: &Path) -> SystemTime {
    path.metadata().unwrap().modified().unwrap()
}

/// `bpftool btf dump file OBJ`: the object's BTF as text.
fn btf_dump(object: &Path) -> String {
    let out = Command::new("bpftool")
        .args(["btf", "dump", "file"])
        .arg(object)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Runs the ignored test `name` (of this module) in a child process with `envs`; returns
/// its output.
fn run_child(name: &str, envs: &[(&str, &Path)]) -> Output {
    let test = crate::common::harness::test_path(module_path!(), name);
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        &test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "child {name} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn child_project() -> Project {
    let dir = std::env::var_os(CHILD_DIR).expect("run by its parent test, not directly");
    load(Path::new(&dir))
}

#[test]
fn build_produces_a_bpf_elf_with_the_event_struct_in_btf() {
    if !needs(&[Need::Build]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "opensnoop");
    let out = build_project(&load(&dir), &BuildOptions::default()).unwrap();

    let arch = ebpf_package::spec::host_arch();
    assert_eq!(out.arch, arch);
    assert!(!out.fresh);
    assert_eq!(
        out.object,
        dir.join(format!("target/ebpf/{arch}/opensnoop.bpf.o"))
    );
    let bytes = std::fs::read(&out.object).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), EM_BPF);

    let btf = btf_dump(&out.object);
    assert!(btf.contains("STRUCT 'event' size=284 vlen=5"), "{btf}");
    assert!(btf.contains("FUNC 'handle_openat'"), "{btf}");
    assert!(btf.contains("VAR 'target_pid'"), "{btf}");
    assert!(dir.join("target/ebpf/include/vmlinux.h").is_file());
}

#[test]
fn second_build_is_fresh_and_touches_nothing() {
    if !needs(&[Need::Build]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "fresh");
    let project = load(&dir);
    let first = build_project(&project, &BuildOptions::default()).unwrap();
    let watched = [
        first.object.clone(),
        first.object.with_file_name(".fingerprint"),
        dir.join("target/ebpf/include/vmlinux.h"),
    ];
    let before: Vec<SystemTime> = watched.iter().map(|p| mtime(p)).collect();

    let second = build_project(&project, &BuildOptions::default()).unwrap();
    assert!(second.fresh);
    assert_eq!(second.object, first.object);
    let after: Vec<SystemTime> = watched.iter().map(|p| mtime(p)).collect();
    assert_eq!(before, after);
}

#[test]
fn touching_or_editing_an_input_rebuilds() {
    if !needs(&[Need::Build]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "touchy");
    let project = load(&dir);
    let object = build_project(&project, &BuildOptions::default())
        .unwrap()
        .object;

    // `touch src/touchy.bpf.c`: same content, newer mtime.
    let source = dir.join("src/touchy.bpf.c");
    let later = SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&source)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let before = mtime(&object);
    let out = build_project(&project, &BuildOptions::default()).unwrap();
    assert!(!out.fresh);
    assert_ne!(mtime(&object), before);
    assert!(
        build_project(&project, &BuildOptions::default())
            .unwrap()
            .fresh
    );

    // Edit the header but keep its mtime: the content hash still notices.
    let header = dir.join("src/touchy.h");
    let header_mtime = mtime(&header);
    edit(&header, "int flags;", "int flags;\n\tu32 extra;");
    std::fs::File::options()
        .write(true)
        .open(&header)
        .unwrap()
        .set_modified(header_mtime)
        .unwrap();
    let out = build_project(&project, &BuildOptions::default()).unwrap();
    assert!(!out.fresh);
    assert!(btf_dump(&out.object).contains("STRUCT 'event' size=288 vlen=6"));
}

#[test]
fn syntax_error_is_a_build_error_and_clang_speaks_to_stderr() {
    if !needs(&[Need::Build]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "broken");
    let object = build_project(&load(&dir), &BuildOptions::default())
        .unwrap()
        .object;
    let before = mtime(&object);
    edit(
        &dir.join("src/broken.bpf.c"),
        "e->pid = pid;",
        "e->pid = pid",
    );

    let out = run_child("child_build_with_syntax_error", &[(CHILD_DIR, &dir)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.bpf.c:"), "{stderr}");
    assert!(stderr.contains("error: expected ';'"), "{stderr}");
    assert!(stderr.contains("Compiling broken v0.1.0"), "{stderr}");
    // The old object stays, and is not taken for up to date.
    assert_eq!(mtime(&object), before);
    let project = load(&dir);
    assert!(build_project(&project, &BuildOptions::default()).is_err());
}

#[test]
#[ignore = "helper: run by syntax_error_is_a_build_error_and_clang_speaks_to_stderr"]
fn child_build_with_syntax_error() {
    let project = child_project();
    let err = build_project(&project, &BuildOptions::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Build);
    let source = project.dir.join("src/broken.bpf.c");
    assert_eq!(
        err.message,
        format!("clang failed to compile {}", source.display())
    );
}

#[test]
fn vmlinux_h_is_cached_by_btf_digest_under_cargo_ebpf_home() {
    if !needs(&[Need::Build]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "cached");
    let home = tmp.path().join("home");
    let out = run_child(
        "child_build_ok",
        &[(CHILD_DIR, &dir), ("CARGO_EBPF_HOME", &home)],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Generating vmlinux.h"));

    let btf = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
    let digest = ebpf_package::digest::sha256(&btf);
    let hex = digest.strip_prefix("sha256:").unwrap_or(&digest);
    let cached = home.join(format!("cache/vmlinux-{hex}.h"));
    let copied = dir.join("target/ebpf/include/vmlinux.h");
    assert_eq!(
        std::fs::read(&cached).unwrap(),
        std::fs::read(&copied).unwrap()
    );
    // One header; clang's version and the BTF's and header's digests remembered beside
    // it; no temp files left.
    let mut names = crate::common::entries(&home.join("cache"));
    names.sort();
    assert_eq!(
        names,
        [
            "btf-sha256".to_string(),
            "clang-version".to_string(),
            format!("vmlinux-{hex}.h"),
            format!("vmlinux-{hex}.h.sha256")
        ]
    );

    // A second project reuses the cache instead of running bpftool again.
    let other = new_eunomia(tmp.path(), "other");
    let out = run_child(
        "child_build_ok",
        &[(CHILD_DIR, &other), ("CARGO_EBPF_HOME", &home)],
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Generating"));
}

#[test]
#[ignore = "helper: run by vmlinux_h_is_cached_by_btf_digest_under_cargo_ebpf_home"]
fn child_build_ok() {
    build_project(&child_project(), &BuildOptions::default()).unwrap();
}

#[test]
fn several_sources_are_linked_into_one_object() {
    if !needs(&[Need::Build]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "multi");
    let second = r#"#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_enter_close")
int handle_close(void *ctx)
{
	return 0;
}
"#;
    std::fs::write(dir.join("src/second.bpf.c"), second).unwrap();
    let out = build_project(&load(&dir), &BuildOptions::default()).unwrap();
    let btf = btf_dump(&out.object);
    assert!(btf.contains("FUNC 'handle_openat'"), "{btf}");
    assert!(btf.contains("FUNC 'handle_close'"), "{btf}");
    assert!(btf.contains("STRUCT 'event'"), "{btf}");
    let obj = out.object.parent().unwrap().join("obj");
    assert_eq!(crate::common::entries(&obj), ["multi.o", "second.o"]);
}

#[test]
fn listed_sources_and_extra_includes_are_used() {
    if !needs(&[Need::Build]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "listed");
    std::fs::create_dir(dir.join("include")).unwrap();
    std::fs::write(dir.join("include/extra.h"), "#define EXTRA_FLAG 7\n").unwrap();
    edit(
        &dir.join("src/listed.bpf.c"),
        "#include \"listed.h\"",
        "#include \"listed.h\"\n#include \"extra.h\"",
    );
    edit(
        &dir.join("src/listed.bpf.c"),
        "(int)ctx->args[2]",
        "EXTRA_FLAG",
    );
    // An unlisted source that does not compile must be ignored.
    std::fs::write(dir.join("src/ignored.bpf.c"), "not C at all").unwrap();
    edit(
        &dir.join("ebpf.toml"),
        "[build]\n",
        "[build]\nsources = [\"src/listed.bpf.c\"]\ninclude = [\"include\"]\n",
    );
    let out = build_project(&load(&dir), &BuildOptions::default()).unwrap();
    assert!(btf_dump(&out.object).contains("FUNC 'handle_openat'"));
}

#[test]
fn a_header_beside_a_source_outside_src_is_an_input() {
    if !needs(&[Need::Build]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "outside");
    std::fs::rename(dir.join("src"), dir.join("bpf")).unwrap();
    edit(
        &dir.join("ebpf.toml"),
        "[build]\n",
        "[build]\nsources = [\"bpf/outside.bpf.c\"]\n",
    );
    let project = load(&dir);
    build_project(&project, &BuildOptions::default()).unwrap();
    assert!(
        build_project(&project, &BuildOptions::default())
            .unwrap()
            .fresh
    );
    edit(
        &dir.join("bpf/outside.h"),
        "int flags;",
        "int flags;\n\tu32 extra;",
    );
    let out = build_project(&project, &BuildOptions::default()).unwrap();
    assert!(!out.fresh);
    assert!(btf_dump(&out.object).contains("STRUCT 'event' size=288 vlen=6"));
}

#[test]
fn build_checks_event_struct() {
    if !needs(&[Need::Build]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let good = new_eunomia(tmp.path(), "anchored");
    let out = build(&load(&good), &BuildOptions::default()).unwrap();
    assert!(out.object.is_file());

    // The struct defined in the .bpf.c itself, with nothing referring to it: no header
    // to anchor it from, so the build fails and says how to anchor it.
    let bad = new_eunomia(tmp.path(), "unanchored");
    let source = bad.join("src/unanchored.bpf.c");
    let header = std::fs::read_to_string(bad.join("src/unanchored.h")).unwrap();
    edit(&source, ANCHOR, "");
    edit(&source, "#include \"unanchored.h\"\n", &header);
    std::fs::remove_file(bad.join("src/unanchored.h")).unwrap();
    let err = build(&load(&bad), &BuildOptions::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Build);
    assert!(err.message.contains("event struct"), "{}", err.message);
    assert!(err.help.unwrap().contains(ANCHOR));
    // A failed check installs no object, so the next build is not taken as fresh, and
    // leaves no staging file behind.
    let arch_dir = bad.join(format!("target/ebpf/{}", ebpf_package::spec::host_arch()));
    assert!(!arch_dir.join("unanchored.bpf.o").exists());
    assert!(!arch_dir.join(".object.tmp").exists());
}

/// An ecli-style program: `struct event` only in the header beside the source, nothing
/// anchoring it. The build links a generated anchor unit, so the struct is in BTF and the
/// object's event map is paired with it; a second build is fresh.
#[test]
fn an_event_struct_only_in_the_header_is_anchored() {
    if !needs(&[Need::Build]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "ecli");
    edit(&dir.join("src/ecli.bpf.c"), ANCHOR, "");
    let out = build(&load(&dir), &BuildOptions::default()).unwrap();
    let dump = btf_dump(&out.object);
    assert!(dump.contains("STRUCT 'event' size=284 vlen=5"), "{dump}");
    let bytes = std::fs::read(&out.object).unwrap();
    let info = ebpf_package::object::read(&bytes, None).unwrap();
    assert_eq!(info.events.len(), 1, "{:?}", info.events);
    assert_eq!(info.events[0].type_name, "event");
    let unit = out.object.parent().unwrap().join("obj/anchor/event.c");
    let unit = std::fs::read_to_string(unit).unwrap();
    assert!(unit.contains("#include \"ecli.h\""), "{unit}");
    assert!(build(&load(&dir), &BuildOptions::default()).unwrap().fresh);

    // Two candidate structs and none called `event`: the build asks which, and the
    // manifest's `event` answers.
    edit(
        &dir.join("src/ecli.h"),
        "struct event {",
        "struct other { int x; };\nstruct exec_event {",
    );
    edit(
        &dir.join("src/ecli.bpf.c"),
        "struct event *e;",
        "struct exec_event *e;",
    );
    let err = build(&load(&dir), &BuildOptions::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Build);
    assert!(
        err.message.contains("(other, exec_event)"),
        "{}",
        err.message
    );
    let manifest = dir.join("ebpf.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replacen("[build]", "[build]\nevent = \"exec_event\"", 1);
    std::fs::write(&manifest, text).unwrap();
    let out = build(&load(&dir), &BuildOptions::default()).unwrap();
    assert!(btf_dump(&out.object).contains("STRUCT 'exec_event'"));
}

#[test]
fn manifest_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "manifesto");
    let manifest = dir.join("ebpf.toml");

    edit(&manifest, "version = \"0.1.0\"", "version = \"0.1\"");
    let err = Project::discover(&dir).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Input);
    assert!(
        err.message.contains("invalid version `0.1`"),
        "{}",
        err.message
    );
    assert!(err.help.unwrap().contains("MAJOR.MINOR.PATCH"));

    edit(
        &manifest,
        "version = \"0.1\"",
        "version = \"0.1.0\"\nfalvor = 1",
    );
    let err = Project::discover(&dir.join("src")).unwrap_err();
    assert!(
        err.message.contains("unknown field `falvor`"),
        "{}",
        err.message
    );
    assert!(err.message.contains("ebpf.toml:4:1"), "{}", err.message);

    edit(
        &manifest,
        "falvor = 1",
        "registry = \"https://localhost:5000/you\"",
    );
    let err = Project::discover(&dir).unwrap_err();
    assert!(err.message.contains("scheme"), "{}", err.message);

    edit(&manifest, "[build]", "[build");
    let err = Project::discover(&dir).unwrap_err();
    assert!(err.message.contains("ebpf.toml:"), "{}", err.message);
    assert!(err.help.unwrap().contains("TOML syntax"));
}

#[test]
fn no_manifest_says_how_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Project::discover(tmp.path()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Input);
    assert!(err.message.contains("ebpf.toml"), "{}", err.message);
    assert!(err.help.unwrap().contains("cargo ebpf new NAME"));
}

#[test]
fn missing_kernel_btf_is_an_environment_error() {
    if !needs(&[Need::Tool("clang", "clang")]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "nobtf");
    let opts = BuildOptions {
        btf: Some(PathBuf::from("/nonexistent/vmlinux")),
        arch: None,
    };
    let err = build_project(&load(&dir), &opts).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Environment);
    assert!(
        err.message.contains("/nonexistent/vmlinux"),
        "{}",
        err.message
    );
    let help = err.help.unwrap();
    assert!(help.contains("--btf FILE"), "{help}");
    assert!(!dir.join("target").exists(), "nothing built");
}

#[test]
fn btf_from_another_file_and_arch_alias() {
    if !needs(&[Need::Build]) {
        return;
    }
    // --btf with a copy of the kernel's BTF, and --arch in OCI naming.
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "otherbtf");
    let btf = tmp.path().join("vmlinux.btf");
    std::fs::copy("/sys/kernel/btf/vmlinux", &btf).unwrap();
    let host = ebpf_package::spec::host_arch();
    let opts = BuildOptions {
        btf: Some(btf),
        arch: Some(ebpf_package::spec::oci_arch(host).to_string()),
    };
    let out = build_project(&load(&dir), &opts).unwrap();
    assert_eq!(out.arch, host);

    let bad = BuildOptions {
        arch: Some("vax".into()),
        ..Default::default()
    };
    let err = build_project(&load(&dir), &bad).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Usage);
}

#[test]
fn missing_clang_is_an_environment_error_naming_the_package() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "noclang");
    let empty = tmp.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    run_child(
        "child_build_without_clang",
        &[(CHILD_DIR, &dir), ("PATH", &empty)],
    );
    assert!(!dir.join("target").exists(), "nothing built");
}

#[test]
#[ignore = "helper: run by missing_clang_is_an_environment_error_naming_the_package"]
fn child_build_without_clang() {
    let err = build_project(&child_project(), &BuildOptions::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Environment);
    assert!(err.message.contains("clang"), "{}", err.message);
    let help = err.help.unwrap();
    assert!(
        help.contains("apt install clang") && help.contains("dnf install clang"),
        "{help}"
    );
}
