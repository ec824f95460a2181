//! Detached kernel-only runs: every link and map pinned in bpffs, so the programs stay
//! attached when the process that loaded them is gone; removing the pins (and closing
//! the loader's fds) is what detaches and unloads them.

use std::path::{Path, PathBuf};

use std::os::fd::AsFd;

use libbpf_rs::{MapCore, Program};

use super::attach::Attached;
use super::detached::{Detached, Ready};
use super::load::Loaded;
use ebpf_package::{Error, Result};

/// Pins `loaded`'s links (`link-<program>`) and maps (`map-<map>`) under the run's bpffs
/// directory and reports the program ids. On failure nothing stays pinned.
pub fn pin_and_report(loaded: &mut Loaded, detached: &Detached) -> Result<()> {
    let dir = detached.pin_dir();
    std::fs::create_dir_all(&dir).map_err(|e| pin_error(&dir, &e.to_string()))?;
    let result = pin_all(loaded, &dir).and_then(|program_ids| {
        detached.report_ready(&Ready {
            program_ids,
            pin_dir: Some(dir.clone()),
        })
    });
    if result.is_err() {
        let _ = unpin_dir(&dir);
    }
    result
}

fn pin_all(loaded: &mut Loaded, dir: &Path) -> Result<Vec<u32>> {
    let names: Vec<String> = loaded
        .object
        .progs()
        .map(|p| p.name().to_string_lossy().into_owned())
        .collect();
    // load_and_attach makes one attachment per program, in program order.
    for (attached, name) in loaded.attached.iter_mut().zip(&names) {
        pin_attachment(attached, dir, &pin_name(name))?;
    }
    for mut map in loaded.object.maps_mut() {
        let path = dir.join(format!("map-{}", pin_name(&map.name().to_string_lossy())));
        map.pin(&path)
            .map_err(|e| pin_error(&path, &e.to_string()))?;
    }
    let mut ids = Vec::new();
    for prog in loaded.object.progs() {
        ids.push(Program::id_from_fd(prog.as_fd()).map_err(|e| pin_error(dir, &e.to_string()))?);
    }
    Ok(ids)
}

/// Pins a program's link(s): `link-<name>`, or `link-<name>-<cpu>` for per-CPU perf links.
fn pin_attachment(attached: &mut Attached, dir: &Path, name: &str) -> Result<()> {
    let pin = |link: &mut libbpf_rs::Link, path: PathBuf| {
        link.pin(&path)
            .map_err(|e| pin_error(&path, &e.to_string()))
    };
    match attached {
        Attached::Link(link) => pin(link, dir.join(format!("link-{name}"))),
        Attached::Links(links) => links
            .iter_mut()
            .enumerate()
            .try_for_each(|(i, link)| pin(link, dir.join(format!("link-{name}-{i}")))),
        // A tc filter is a netlink object, not a link: nothing in bpffs would hold it.
        Attached::Tc(_) => Err(Error::usage(format!(
            "program {name} is a tc program, which a detached run cannot keep attached yet"
        ))
        .with_help("run it in the foreground (without -d)")),
    }
}

/// bpffs refuses names with dots (libbpf's internal maps are called `obj.rodata`).
fn pin_name(name: &str) -> String {
    name.replace('.', "_")
}

fn pin_error(path: &Path, cause: &str) -> Error {
    Error::kernel(format!(
        "cannot pin in bpffs at {}: {cause}",
        path.display()
    ))
    .with_help(
        "detached runs keep their programs attached through pins in /sys/fs/bpf; check that \
         bpffs is mounted there and writable by root",
    )
}

/// Removes every pin in `dir` and the directory; returns the pins removed (none when the
/// directory is already gone).
pub fn unpin_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io("read", dir, e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io("read", dir, e))?.path();
        std::fs::remove_file(&path).map_err(|e| Error::io("unpin", &path, e))?;
        removed.push(path);
    }
    std::fs::remove_dir(dir).map_err(|e| Error::io("remove", dir, e))?;
    removed.sort();
    Ok(removed)
}

/// Whether the kernel still has program `id` loaded.
pub fn program_loaded(id: u32) -> bool {
    Program::fd_from_id(id).is_ok()
}
