//! `cargo ebpf new`: every built-in pack's rendered project, `--list`, and refusals that
//! write nothing.

use std::os::unix::fs::PermissionsExt;

use cargo_ebpf::manifest::Project;
use cargo_ebpf::scaffold::{format_pack_list, new_project_with, packs, NewOptions};
use cargo_ebpf::ErrorKind;

use crate::common::{entries, identity, list_files, new_eunomia, new_from_pack};

/// The files whose content every pack's snapshot records; the file list covers the rest.
const KEY_FILES: &[&str] = &[
    "ebpf.toml",
    "README.md",
    "Dockerfile",
    ".github/workflows/ebpf.yml",
    ".workflow/ebpf.yml",
];

/// Snapshots for every built-in pack, named after it: `PACK_files` and `PACK_<key file>`.
#[test]
fn every_pack_project_snapshot() {
    for pack in packs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = new_from_pack(tmp.path(), &pack.name, "opensnoop");
        let files = list_files(&dir);
        let listing: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        insta::assert_snapshot!(format!("{}_files", pack.name), listing.join("\n"));
        for key in KEY_FILES {
            let content = std::fs::read_to_string(dir.join(key))
                .unwrap_or_else(|e| panic!("pack {}: {key}: {e}", pack.name));
            let name = format!("{}_{key}", pack.name).replace('/', "__");
            insta::assert_snapshot!(name, content);
        }
        // Only the project itself: no staging directory left beside it.
        assert_eq!(entries(tmp.path()), ["opensnoop"]);
    }
}

#[test]
fn pack_list_is_one_aligned_line_per_pack() {
    let list = packs();
    let text = format_pack_list(&list);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), list.len(), "{text}");
    let mut description_columns = Vec::new();
    for (line, pack) in lines.iter().zip(&list) {
        assert!(line.starts_with(&format!("{}  ", pack.name)), "{line}");
        assert!(line.contains(&format!("  {}  ", pack.language)), "{line}");
        assert!(line.ends_with(&pack.description), "{line}");
        description_columns.push(line.len() - pack.description.len());
    }
    description_columns.dedup();
    assert_eq!(
        description_columns.len(),
        1,
        "descriptions not aligned:\n{text}"
    );
    // A longer name widens the first column for everyone.
    let wide = vec![
        cargo_ebpf::scaffold::PackInfo {
            name: "a".into(),
            language: "c".into(),
            description: "one".into(),
        },
        cargo_ebpf::scaffold::PackInfo {
            name: "longer-name".into(),
            language: "rust".into(),
            description: "two".into(),
        },
    ];
    assert_eq!(
        format_pack_list(&wide),
        "a            c     one\nlonger-name  rust  two\n"
    );
}

#[test]
fn new_list_prints_every_pack() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-ebpf"))
        .args(["new", "--list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout, format_pack_list(&packs()));
}

#[test]
fn rendered_manifest_loads_from_a_subdirectory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "my-probe_2");
    let project = Project::discover(&dir.join("src")).unwrap();
    assert_eq!(project.dir, dir);
    let pkg = &project.manifest.package;
    assert_eq!(pkg.name, "my-probe_2");
    assert_eq!(pkg.version, "0.1.0");
    assert_eq!(pkg.license.as_deref(), Some("GPL-2.0"));
    assert_eq!(pkg.authors, [identity().author]);
    assert_eq!(project.kind(), cargo_ebpf::manifest::Kind::Eunomia);
    // The name is used for file names as given, and as a C identifier in the header guard.
    assert!(dir.join("src/my-probe_2.bpf.c").is_file());
    let header = std::fs::read_to_string(dir.join("src/my-probe_2.h")).unwrap();
    assert!(header.contains("#ifndef __MY_PROBE_2_H"), "{header}");
}

#[test]
fn project_gets_the_umask_mode_not_a_temp_dirs_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_eunomia(tmp.path(), "modes");
    let reference = tmp.path().join("reference");
    std::fs::create_dir(&reference).unwrap();
    let mode = |p: &std::path::Path| p.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), mode(&reference));
}

#[test]
fn invalid_name_is_refused_with_a_suggestion_and_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    for (bad, suggestion) in [("My Probe", "my-probe"), ("1st", "st"), ("x.y", "x-y")] {
        let path = tmp.path().join("out");
        let opts = NewOptions {
            name: bad,
            lang: "eunomia",
            path: Some(&path),
        };
        let err = new_project_with(&opts, &identity()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Input);
        assert!(err.message.contains(bad), "{}", err.message);
        let help = err.help.unwrap();
        assert!(help.contains("starts with a letter"), "{help}");
        assert!(help.contains(&format!("`{suggestion}`")), "{help}");
    }
    assert!(entries(tmp.path()).is_empty());
}

#[test]
fn a_name_whose_header_would_shadow_vmlinux_h_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("vmlinux");
    let opts = NewOptions {
        name: "vmlinux",
        lang: "eunomia",
        path: Some(&path),
    };
    let err = new_project_with(&opts, &identity()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Input);
    assert!(err.message.contains("src/vmlinux.h"), "{}", err.message);
    assert!(err.help.unwrap().contains("`vmlinux-probe`"));
    assert!(entries(tmp.path()).is_empty());
}

#[test]
fn existing_directory_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("taken");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let opts = NewOptions {
        name: "taken",
        lang: "eunomia",
        path: Some(&dir),
    };
    let err = new_project_with(&opts, &identity()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Input);
    assert!(err.message.contains("already exists"), "{}", err.message);
    let help = err.help.unwrap();
    assert!(
        help.contains("another name")
            && help.contains("cargo ebpf init")
            && !help.contains("rm -r"),
        "{help}"
    );
    assert_eq!(entries(&dir), ["keep.txt"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("keep.txt")).unwrap(),
        "mine"
    );
    assert_eq!(entries(tmp.path()), ["taken"]);
}

#[test]
fn unknown_pack_lists_the_available_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("p");
    let opts = NewOptions {
        name: "p",
        lang: "cobol",
        path: Some(&path),
    };
    let err = new_project_with(&opts, &identity()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Input);
    assert!(err.message.contains("`cobol`"), "{}", err.message);
    assert!(err.help.unwrap().contains("eunomia"));
    assert!(entries(tmp.path()).is_empty());
}

#[test]
fn packs_lists_eunomia() {
    let list = packs();
    let eunomia = list.iter().find(|p| p.name == "eunomia").unwrap();
    assert_eq!(eunomia.language, "c");
    assert!(eunomia.description.contains("Kernel-only"));
}

#[test]
fn missing_parent_directories_are_created() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a/b/deep");
    let opts = NewOptions {
        name: "deep",
        lang: "eunomia",
        path: Some(&path),
    };
    let dir = new_project_with(&opts, &identity()).unwrap();
    assert!(dir.join("ebpf.toml").is_file());
    assert_eq!(entries(&tmp.path().join("a/b")), ["deep"]);
}
