//! `cargo ebpf …` (cargo passes "ebpf" as the first argument) and `cargo-ebpf …` are the same.

use std::process::Command;

use ebpf_e2e_tests::cli::{cargo_ebpf_bin, show};

#[test]
fn works_as_cargo_subcommand_and_directly() {
    let bin = cargo_ebpf_bin();
    let dir = bin.parent().unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let via_cargo = Command::new(env!("CARGO"))
        .args(["ebpf", "new", "--list"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(via_cargo.status.success(), "{}", show(&via_cargo));
    let direct = Command::new(&bin).args(["new", "--list"]).output().unwrap();
    assert!(direct.status.success(), "{}", show(&direct));
    assert_eq!(via_cargo.stdout, direct.stdout);
    assert!(String::from_utf8_lossy(&direct.stdout).contains("eunomia"));

    let help = Command::new(&bin).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for cmd in [
        "new", "build", "package", "push", "publish", "login", "pull", "run", "list", "rm",
    ] {
        assert!(text.contains(cmd), "--help lacks {cmd}: {text}");
    }
}
