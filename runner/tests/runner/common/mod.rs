//! Shared by the runner's integration tests: fixtures compiled with the real clang, and an
//! output sink the test can read while the runner writes to it.
#![allow(dead_code)] // not every helper is used by every module

/// Honest skips and tests run alone: the same file as `ebpf_e2e_tests::harness`.
#[path = "../../../../tests/src/harness.rs"]
pub mod harness;

pub use harness::{needs, Need};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

// ---- building fixtures ------------------------------------------------------------------

/// vmlinux.h for this kernel, generated once per test process into a fixed directory
/// (replaced atomically, so concurrent test processes never see half a header).
pub fn include_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ebpf-runner-run");
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("bpftool")
            .args([
                "btf",
                "dump",
                "file",
                "/sys/kernel/btf/vmlinux",
                "format",
                "c",
            ])
            .output()
            .expect("bpftool runs");
        assert!(out.status.success(), "bpftool failed: {out:?}");
        let partial = dir.join(format!("vmlinux.h.{}", std::process::id()));
        std::fs::write(&partial, out.stdout).unwrap();
        std::fs::rename(&partial, dir.join("vmlinux.h")).unwrap();
        dir
    })
}

/// Compiles `tests/fixtures/<name>.bpf.c` with clang and returns the object's bytes.
pub fn compile(name: &str) -> Vec<u8> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.bpf.c"));
    compile_file(name, &src)
}

/// Compiles the BPF C file `src`.
pub fn compile_file(name: &str, src: &Path) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let obj = tmp.path().join(format!("{name}.bpf.o"));
    let out = Command::new("clang")
        .args(["-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86"])
        .arg("-I")
        .arg(include_dir())
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("clang runs");
    assert!(
        out.status.success(),
        "clang failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(obj).unwrap()
}

/// Runs the fixture `name` (compiled here) with `opts` in a thread of its own, calling
/// `during` until the run ends; returns its result and what it wrote.
pub fn run_fixture_while(
    name: &'static str,
    opts: ebpf_runner::run::RunOptions,
    mut during: impl FnMut(),
) -> (ebpf_package::Result<()>, String) {
    let bytes = compile(name);
    let out = Shared::default();
    let mut writer = out.clone();
    let runner = std::thread::spawn(move || {
        ebpf_runner::run::run_object(name, &bytes, None, &opts, &mut writer)
    });
    while !runner.is_finished() {
        during();
    }
    (runner.join().unwrap(), out.text())
}

/// A `Write` whose bytes the test can read while the runner still holds it.
#[derive(Clone, Default)]
pub struct Shared(pub Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}
