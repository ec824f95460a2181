//! Files packages: files from the layer placed at declared absolute destinations, then a
//! start script; stopping runs the stop script and removes exactly what was placed.
//!
//! Every change is written to a journal (`placed.json`) *before* it is made, so `stop`
//! can undo a run whose process was killed: it removes the files it placed, puts back
//! the originals it replaced (only where `overwrite` was declared), and removes the
//! directories it created once they are empty. Nothing else is touched.
//!
//! A replaced original is never copied or written through: it is kept as itself (a hard
//! link named `.NAME.cargo-ebpf-orig` next to it) while the package's file is written to a
//! temporary file in the same directory and renamed into place; `stop` renames the
//! original back, so its content, owner, mode, xattrs and inode come back exactly.
//! Destinations that cannot be handled that way (symbolic links, directories, devices,
//! files with other hard links) are refused before anything is unpacked or placed.

use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use ebpf_package::spec::{self, PackageMeta, PlacedFile, Runtime};
use ebpf_package::{Error, Package, Result};

use super::detached::{write_atomic, Ready};
use super::signals::StopSignals;
use super::RunOptions;

const JOURNAL: &str = "placed.json";

/// What a files run changed on the host, as `stop` needs it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Journal {
    /// Where the layer was unpacked (holds the stop script).
    package_dir: PathBuf,
    stop_script: Option<String>,
    /// Whether the start script was started (the stop script runs only then).
    started: bool,
    files: Vec<Placed>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Placed {
    dest: PathBuf,
    /// A copy of the file `dest` replaced (declared `overwrite`), restored by `stop`.
    backup: Option<PathBuf>,
    /// Directories created for `dest`, outermost first.
    created_dirs: Vec<PathBuf>,
}

/// The journal of a run whose state lives in `dir`.
struct JournalFile {
    dir: PathBuf,
    journal: Journal,
}

impl JournalFile {
    fn save(&self) -> Result<()> {
        let text = serde_json::to_vec_pretty(&self.journal).expect("journal serializes");
        write_atomic(&self.dir.join(JOURNAL), &text)
    }
}

/// Checks the declared files and scripts: absolute destinations without `..`, sources
/// and scripts relative and inside the layer. Shared with `install`.
pub fn validate(files: &[PlacedFile], scripts: &[&Option<String>]) -> Result<()> {
    for file in files {
        check_dest(&file.dest)?;
        check_inside(&file.src, "file")?;
    }
    for script in scripts.iter().filter_map(|s| s.as_ref()) {
        check_inside(script, "script")?;
    }
    Ok(())
}

/// Suffix of the hard link that keeps a replaced original while the package runs.
const BACKUP_SUFFIX: &str = ".cargo-ebpf-orig";

/// Checks every destination on this host before anything is placed: an existing one must
/// be declared `overwrite` and be a regular file with no other hard link, so that putting
/// it back on stop restores it exactly. Returns how many files will be replaced.
pub fn check_destinations(files: &[PlacedFile]) -> Result<usize> {
    let mut replaced = 0;
    for file in files {
        let dest = Path::new(&file.dest);
        let Ok(meta) = std::fs::symlink_metadata(dest) else {
            continue;
        };
        if !file.overwrite {
            return Err(Error::input(format!(
                "{} already exists; the package would overwrite it",
                dest.display()
            ))
            .with_help(
                "remove or move that file first (the package does not declare `overwrite` for it)",
            ));
        }
        check_replaceable(dest, &meta)?;
        replaced += 1;
    }
    Ok(replaced)
}

/// Whether the existing `dest` is something we can set aside and put back exactly.
fn check_replaceable(dest: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let kind = meta.file_type();
    let why = if kind.is_symlink() {
        Some("is a symbolic link (writing through it would change its target for good)")
    } else if kind.is_dir() {
        Some("is a directory; a package may only replace files")
    } else if !kind.is_file() {
        Some("is not a regular file (a device, socket or pipe)")
    } else if meta.nlink() > 1 {
        Some("has other hard links, which would no longer share its content")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(Error::input(format!(
            "the package would overwrite {}, which {why}",
            dest.display()
        ))
        .with_help("nothing was changed; replace that path with a plain file yourself, or do not run this package")),
    }
}

fn check_dest(dest: &str) -> Result<()> {
    let path = Path::new(dest);
    let escapes = path.components().any(|c| c == Component::ParentDir);
    if !path.is_absolute() || escapes || path.parent().is_none() {
        return Err(Error::input(format!(
            "the package wants to place a file at {dest:?}, which is not an absolute path without `..`"
        ))
        .with_help("refuse this package; its author must declare absolute destinations like /etc/NAME/FILE"));
    }
    Ok(())
}

fn check_inside(path: &str, what: &str) -> Result<()> {
    let ok = !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !ok {
        return Err(Error::input(format!(
            "the package's {what} {path:?} is not a relative path inside its layer"
        ))
        .with_help("refuse this package; sources and scripts must be paths inside the layer"));
    }
    Ok(())
}

/// Runs a files package: place, start script, wait for Ctrl-C/`--duration`/`stop`, undo.
/// Returns the start script's exit code when it failed, else 0.
pub fn run_files(pkg: &Package, meta: &PackageMeta, opts: &RunOptions) -> Result<i32> {
    let Runtime::Files {
        files,
        script,
        stop_script,
    } = &meta.runtime
    else {
        return Err(Error::input("this package has no files to place"));
    };
    validate(files, &[script, stop_script])?;
    let replaced = check_destinations(files)?;
    if replaced > 0 {
        eprintln!(
            "Replacing {replaced} existing file(s); each original is kept next to it as \
             .NAME{BACKUP_SUFFIX} and put back on stop"
        );
    }
    let temp;
    let state_dir = match &opts.detached {
        Some(d) => d.state_dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("cargo-ebpf-run-")
                .tempdir()
                .map_err(|e| Error::io("create a directory in", &std::env::temp_dir(), e))?;
            temp.path().to_path_buf()
        }
    };
    let package_dir = state_dir.join("package");
    std::fs::create_dir_all(&package_dir).map_err(|e| Error::io("create", &package_dir, e))?;
    pkg.extract_to(&package_dir)?;
    let mut journal = JournalFile {
        dir: state_dir.clone(),
        journal: Journal {
            package_dir: package_dir.clone(),
            stop_script: stop_script.clone(),
            ..Journal::default()
        },
    };
    journal.save()?;
    let code = place_and_run(&mut journal, files, script.as_deref(), opts);
    // Undo whether or not placing and starting worked.
    for line in undo_placed(&state_dir)? {
        eprintln!("Stop: {line}");
    }
    code
}

fn place_and_run(
    journal: &mut JournalFile,
    files: &[PlacedFile],
    script: Option<&str>,
    opts: &RunOptions,
) -> Result<i32> {
    for file in files {
        place(journal, file)?;
    }
    eprintln!("Placed {} file(s)", files.len());
    let child = match script {
        Some(script) => {
            journal.journal.started = true;
            journal.save()?;
            Some(start_script(
                &journal.journal.package_dir,
                script,
                &opts.args,
            )?)
        }
        None => None,
    };
    if let Some(detached) = &opts.detached {
        detached.report_ready(&Ready::default())?;
    }
    eprintln!(
        "Started; Ctrl-C (or `{} stop`) runs the stop script and removes the files",
        crate::program::name()
    );
    wait(child, opts.duration)
}

/// Places one file, journaling first so a crash in between is still undone.
fn place(journal: &mut JournalFile, file: &PlacedFile) -> Result<()> {
    let src = journal.journal.package_dir.join(&file.src);
    let meta = std::fs::symlink_metadata(&src).ok();
    if !meta.is_some_and(|m| m.is_file()) {
        return Err(Error::input(format!(
            "the package declares {} but its layer holds no such file",
            file.src
        ))
        .with_help("rebuild the package with `cargo ebpf package`"));
    }
    let dest = PathBuf::from(&file.dest);
    // Checked up front by `check_destinations`; again here, as the host may have changed.
    let replaces = check_destinations(std::slice::from_ref(file))? > 0;
    let created_dirs = missing_dirs(&dest);
    let backup = replaces.then(|| backup_path(&dest));
    journal.journal.files.push(Placed {
        dest: dest.clone(),
        backup: backup.clone(),
        created_dirs: created_dirs.clone(),
    });
    journal.save()?;
    for dir in &created_dirs {
        std::fs::create_dir(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    if let Some(backup) = &backup {
        // A second name for the original itself: nothing about it is copied or changed.
        std::fs::hard_link(&dest, backup).map_err(|e| Error::io("keep the original", &dest, e))?;
    }
    write_file(
        &src,
        &dest,
        file.mode.unwrap_or(0o644) & 0o777,
        backup.is_some(),
    )
}

/// `.NAME.cargo-ebpf-orig` next to `dest`.
fn backup_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    dest.with_file_name(format!(".{name}{BACKUP_SUFFIX}"))
}

/// The ancestors of `dest` that do not exist yet, outermost first.
fn missing_dirs(dest: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = dest
        .ancestors()
        .skip(1)
        .take_while(|d| !d.exists())
        .map(Path::to_path_buf)
        .collect();
    dirs.reverse();
    dirs
}

/// Writes the package's file as a new temporary file next to `dest` (never following a
/// link) and renames it into place; without `replace`, an existing `dest` is an error.
fn write_file(src: &Path, dest: &Path, mode: u32, replace: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let data = std::fs::read(src).map_err(|e| Error::io("read", src, e))?;
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let temp = dest.with_file_name(format!(".{name}.cargo-ebpf-new-{}", std::process::id()));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .map_err(|e| Error::io("create", &temp, e))?;
    let written = out
        .write_all(&data)
        .and_then(|()| out.set_permissions(std::fs::Permissions::from_mode(mode)))
        .and_then(|()| out.sync_all());
    drop(out);
    let placed = written.and_then(|()| {
        if replace {
            std::fs::rename(&temp, dest)
        } else {
            // Never clobber a file that appeared since the check.
            std::fs::hard_link(&temp, dest).and_then(|()| std::fs::remove_file(&temp))
        }
    });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&temp);
        return Err(Error::io("write", dest, e));
    }
    Ok(())
}

fn start_script(package_dir: &Path, script: &str, args: &[String]) -> Result<Child> {
    Command::new("sh")
        .arg(package_dir.join(script))
        .args(args)
        .current_dir(package_dir)
        .env(spec::ENV_PACKAGE_DIR, package_dir)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| {
            Error::environment(format!("cannot start the script {script}"))
                .with_source(e)
                .with_help("files packages need `sh` on the host")
        })
}

/// Waits for a stop request or the deadline; a start script that fails ends the run early
/// with its exit code, one that succeeds leaves the package in place until then.
fn wait(mut child: Option<Child>, duration: Option<Duration>) -> Result<i32> {
    let signals = StopSignals::install();
    let deadline = duration.map(|d| Instant::now() + d);
    loop {
        if let Some(running) = &mut child {
            if let Some(status) = running
                .try_wait()
                .map_err(|e| Error::io("wait for", Path::new("the script"), e))?
            {
                child = None;
                if !status.success() {
                    let code = status.code().unwrap_or(1);
                    eprintln!("The start script failed (exit code {code}); undoing");
                    return Ok(code);
                }
            }
        }
        if signals.requested() || deadline.is_some_and(|d| Instant::now() >= d) {
            if let Some(mut running) = child {
                // SAFETY: kill(2) on our own child's pid.
                unsafe { libc::kill(running.id() as libc::pid_t, libc::SIGTERM) };
                let _ = running.wait();
            }
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Undoes what the files run with state in `state_dir` placed: runs its stop script (when
/// the start script ran), removes the placed files, restores replaced ones, removes the
/// directories it created when empty. Idempotent; returns one line per thing undone.
pub fn undo_placed(state_dir: &Path) -> Result<Vec<String>> {
    let path = state_dir.join(JOURNAL);
    let journal: Journal = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::input(format!("{} is damaged: {e}", path.display()))
                .with_help("remove the files it lists by hand")
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let mut done = Vec::new();
    if journal.started {
        if let Some(script) = &journal.stop_script {
            done.push(run_stop_script(&journal.package_dir, script));
        }
    }
    for placed in journal.files.iter().rev() {
        done.extend(undo_one(placed)?);
    }
    std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
    Ok(done)
}

fn run_stop_script(package_dir: &Path, script: &str) -> String {
    let status = Command::new("sh")
        .arg(package_dir.join(script))
        .current_dir(package_dir)
        .env(spec::ENV_PACKAGE_DIR, package_dir)
        .stdin(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => format!("ran the stop script {script}"),
        Ok(s) => format!("warning: the stop script {script} failed ({s})"),
        Err(e) => format!("warning: cannot run the stop script {script}: {e}"),
    }
}

fn undo_one(placed: &Placed) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let dest = &placed.dest;
    if let Some(backup) = &placed.backup {
        // No kept original: the run stopped before replacing it, or it is already back;
        // either way `dest` is the original now and stays.
        if std::fs::symlink_metadata(backup).is_ok() {
            // One rename puts the original itself back over the package's file.
            std::fs::rename(backup, dest).map_err(|e| Error::io("restore", dest, e))?;
            // Stopped between keeping and replacing: both names are the original, and
            // rename(2) leaves both; drop the extra one.
            if std::fs::symlink_metadata(backup).is_ok() {
                std::fs::remove_file(backup).map_err(|e| Error::io("remove", backup, e))?;
            }
            done.push(format!("restored the original {}", dest.display()));
        }
    } else {
        match std::fs::remove_file(dest) {
            Ok(()) => done.push(format!("removed {}", dest.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", dest, e)),
        }
    }
    for dir in placed.created_dirs.iter().rev() {
        // Only if empty: something else may have put files there since.
        if std::fs::remove_dir(dir).is_ok() {
            done.push(format!("removed directory {}", dir.display()));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(src: &str, dest: &str) -> PlacedFile {
        PlacedFile {
            src: src.into(),
            dest: dest.into(),
            mode: None,
            overwrite: false,
        }
    }

    #[test]
    fn destinations_must_be_absolute_without_dotdot() {
        for dest in ["etc/x", "/etc/../x", "/", "../x", ""] {
            let err = validate(&[file("a", dest)], &[]).unwrap_err();
            assert_eq!(err.kind, ebpf_package::ErrorKind::Input, "{dest}");
        }
        for src in ["/abs", "../up", "a/../../b", ""] {
            assert!(validate(&[file(src, "/tmp/x")], &[]).is_err(), "{src}");
        }
        assert!(validate(&[file("a", "/tmp/x")], &[&Some("../s.sh".into())]).is_err());
        validate(
            &[file("conf/a", "/etc/demo/a")],
            &[&Some("start.sh".into())],
        )
        .unwrap();
    }

    #[test]
    fn place_refuses_existing_and_undo_restores_exactly() {
        let state = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        let pkg = state.path().join("package");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("a"), "new a").unwrap();
        let existing = host.path().join("existing");
        std::fs::write(&existing, "original").unwrap();
        let mut journal = JournalFile {
            dir: state.path().to_path_buf(),
            journal: Journal {
                package_dir: pkg.clone(),
                ..Journal::default()
            },
        };
        let nested = host.path().join("d1/d2/a");
        place(&mut journal, &file("a", nested.to_str().unwrap())).unwrap();
        let err = place(&mut journal, &file("a", existing.to_str().unwrap())).unwrap_err();
        assert!(err.message.contains("already exists"), "{}", err.message);
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "original");
        let mut over = file("a", existing.to_str().unwrap());
        over.overwrite = true;
        place(&mut journal, &over).unwrap();
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "new a");
        assert_eq!(std::fs::read_to_string(&nested).unwrap(), "new a");

        let done = undo_placed(state.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "original");
        assert!(!host.path().join("d1").exists(), "{done:?}");
        assert!(done.iter().any(|l| l.contains("restored")), "{done:?}");
        // A second undo finds nothing left.
        assert!(undo_placed(state.path()).unwrap().is_empty());
    }
}
