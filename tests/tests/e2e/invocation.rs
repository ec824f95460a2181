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

/// `cargo ebpf list --json | head -1`-style use: when the reader has gone, listing commands
/// stop quietly with exit 0 instead of panicking on the broken pipe.
#[test]
fn output_into_a_closed_pipe_is_not_a_panic() {
    let env = ebpf_e2e_tests::cli::Env::new();
    for args in [
        &["new", "--list"][..],
        &["list", "--json"],
        &["ps", "--all"],
    ] {
        // The read end is closed before the command starts, so its first write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env.cmd(args).stdout(writer).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}
