//! The guest's initramfs: a `newc` cpio archive built in memory, holding a static busybox,
//! the standalone runner with its shared libraries, the package and an `/init` script.
//!
//! Why write cpio here rather than call `cpio`: the format is a few fixed-width hex
//! headers, and building it in memory keeps file modes and owners exact whoever runs it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use ebpf_package::{Error, Result};

const MODE_DIR: u32 = 0o040_755;
const MODE_FILE: u32 = 0o100_644;
const MODE_EXEC: u32 = 0o100_755;
const MODE_CHAR: u32 = 0o020_600;

/// An archive being built: entries in order, parent directories added on first use.
#[derive(Default)]
pub struct Archive {
    bytes: Vec<u8>,
    dirs: BTreeSet<String>,
    inode: u32,
}

impl Archive {
    /// Adds a regular file at `path` (absolute inside the guest).
    pub fn file(&mut self, path: &str, data: &[u8], executable: bool) {
        self.parents(path);
        let mode = if executable { MODE_EXEC } else { MODE_FILE };
        self.entry(path, mode, data, 0);
    }

    /// Adds the host file `src` at `path`, keeping its executable bit.
    pub fn copy(&mut self, src: &Path, path: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let data = std::fs::read(src).map_err(|e| Error::io("read", src, e))?;
        let meta = std::fs::metadata(src).map_err(|e| Error::io("read", src, e))?;
        self.file(path, &data, meta.permissions().mode() & 0o111 != 0);
        Ok(())
    }

    /// Adds a directory (and its parents).
    pub fn dir(&mut self, path: &str) {
        self.parents(path);
        if self.dirs.insert(path.to_string()) {
            self.entry(path, MODE_DIR, &[], 0);
        }
    }

    /// The console device, so `/init` has its stdio before devtmpfs is mounted.
    pub fn console(&mut self) {
        self.dir("/dev");
        self.entry("/dev/console", MODE_CHAR, &[], (5 << 8) | 1);
    }

    /// The finished archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], 0);
        self.bytes
    }

    fn parents(&mut self, path: &str) {
        let mut parent = Path::new(path).parent();
        let mut missing = Vec::new();
        while let Some(p) = parent.filter(|p| *p != Path::new("/")) {
            let text = p.to_string_lossy().into_owned();
            if self.dirs.contains(&text) {
                break;
            }
            missing.push(text);
            parent = p.parent();
        }
        for dir in missing.into_iter().rev() {
            self.dirs.insert(dir.clone());
            self.entry(&dir, MODE_DIR, &[], 0);
        }
    }

    /// One `newc` entry: header, name and data, each padded to 4 bytes.
    fn entry(&mut self, path: &str, mode: u32, data: &[u8], rdev: u32) {
        self.inode += 1;
        let name = path.trim_start_matches('/');
        let fields = [
            self.inode,
            mode,
            0, // uid
            0, // gid
            if mode == MODE_DIR { 2 } else { 1 },
            0, // mtime: reproducible
            u32::try_from(data.len()).expect("guest files are far below 4 GiB"),
            0,
            0,
            rdev >> 8,
            rdev & 0xff,
            u32::try_from(name.len() + 1).expect("short names"),
            0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

/// The shared libraries `binary` needs, with the dynamic loader, as `ldd` resolves them on
/// this host (none for a static binary).
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output().map_err(|e| {
        Error::environment("cannot run ldd to find the runner's shared libraries")
            .with_source(e)
            .with_help("install it (Debian package libc-bin), or pass a static --runner")
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // "not a dynamic executable": a static runner needs nothing more.
        return Ok(Vec::new());
    }
    Ok(parse_ldd(&text))
}

/// The absolute library paths in `ldd` output (`libz.so.1 => /lib/…/libz.so.1 (0x…)` and
/// the loader's bare `/lib64/ld-linux-x86-64.so.2 (0x…)`).
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// A copy of `binary` without debug sections (a debug build of the runner is mostly DWARF,
/// which the guest would have to hold in memory), or `None` when no strip tool is found.
pub fn stripped(binary: &Path, dir: &Path) -> Option<PathBuf> {
    let out = dir.join("ebpf-runner");
    ["strip", "llvm-strip"].into_iter().find_map(|tool| {
        let ok = Command::new(tool)
            .arg("--strip-debug")
            .arg("-o")
            .arg(&out)
            .arg(binary)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| out.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_entries_are_padded_and_parents_come_first() {
        let mut a = Archive::default();
        a.file("/bin/busybox", b"12345", true);
        let bytes = a.finish();
        assert!(bytes.len().is_multiple_of(4));
        let text = String::from_utf8_lossy(&bytes);
        let bin = text.find("bin\0").unwrap();
        let busybox = text.find("bin/busybox\0").unwrap();
        assert!(bin < busybox);
        // The trailer's name (11 bytes after a 110-byte header) padded to 4 bytes.
        assert!(text.ends_with("TRAILER!!!\0\0\0\0"));
        // The file's header: magic, inode 2 (the dir is 1), mode 0100755, size 5.
        let header = &text[busybox - 110..busybox];
        assert!(header.starts_with("070701"));
        assert_eq!(&header[6..14], "00000002");
        assert_eq!(&header[14..22], format!("{:08x}", MODE_EXEC));
        assert_eq!(&header[54..62], "00000005");
    }

    #[test]
    fn ldd_lines_give_library_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f00)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f01)\n";
        assert_eq!(
            parse_ldd(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libz.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }
}
