//! What a CLI's users expect around it: shell completions (`completions bash|zsh|fish|elvish`)
//! and man pages (`install-man`: `cargo-ebpf.1` and one `cargo-ebpf-CMD.1` per command,
//! nested commands as `cargo-ebpf-CMD-SUB.1`), both generated from the clap definition so
//! they never drift from the real flags.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

use ebpf_package::{Error, Result};

/// The shells `completions` writes scripts for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Elvish,
}

/// Writes the completion script of `cmd` (the CLI's definition) for `shell` to `out`, for
/// the `cargo-ebpf` binary (`cargo ebpf …` goes through cargo's own completion).
pub fn completions(mut cmd: clap::Command, shell: CompletionShell, out: &mut dyn std::io::Write) {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
        CompletionShell::Elvish => Shell::Elvish,
    };
    clap_complete::generate(shell, &mut cmd, "cargo-ebpf", out);
}

/// Where `install-man` puts pages by default: `$XDG_DATA_HOME/man/man1`, else
/// `~/.local/share/man/man1` (on man's default search path for the user).
pub fn default_man_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("XDG_DATA_HOME") {
        return Ok(PathBuf::from(dir).join("man/man1"));
    }
    let home = var("HOME").ok_or_else(|| {
        Error::environment("cannot find where to install man pages: HOME is not set")
            .with_help("pass --dir DIR")
    })?;
    Ok(PathBuf::from(home).join(".local/share/man/man1"))
}

/// Writes one man page per command of `cmd` (and the top-level page) into `dir`; returns
/// the files written.
pub fn install_man(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let mut cmd = cmd.bin_name("cargo-ebpf");
    cmd.build();
    let mut written = vec![];
    write_pages(&cmd, ("cargo-ebpf", "cargo ebpf"), dir, &mut written)?;
    Ok(written)
}

/// The page of `cmd`, named `file` (`cargo-ebpf-config-set`) and shown as `shown`
/// (`cargo ebpf config set`), then those of its subcommands.
fn write_pages(
    cmd: &clap::Command,
    (name, shown): (&str, &str),
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let page = cmd.clone().bin_name(shown.to_string());
    let mut bytes = vec![];
    clap_mangen::Man::new(page)
        .title(name)
        .render(&mut bytes)
        .map_err(|e| Error::io("render the man page of", Path::new(name), e))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, bytes).map_err(|e| Error::io("write", &path, e))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_name = format!("{name}-{}", sub.get_name());
        let sub_shown = format!("{shown} {}", sub.get_name());
        write_pages(sub, (&sub_name, &sub_shown), dir, written)?;
    }
    Ok(())
}
