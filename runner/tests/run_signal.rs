//! SIGTERM stops a run with no duration cleanly. Its own test binary: signal handlers are
//! process-wide, so this must not share a process with other runs.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ebpf_runner::run::{run_object, Output, RunOptions};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn compile_opensnoop(dir: &Path) -> Vec<u8> {
    let btf = Command::new("bpftool")
        .args([
            "btf",
            "dump",
            "file",
            "/sys/kernel/btf/vmlinux",
            "format",
            "c",
        ])
        .output()
        .unwrap();
    assert!(btf.status.success());
    std::fs::write(dir.join("vmlinux.h"), btf.stdout).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/opensnoop.bpf.c");
    let obj = dir.join("opensnoop.bpf.o");
    let status = Command::new("clang")
        .args(["-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I"])
        .arg(dir)
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(&obj)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(obj).unwrap()
}

#[test]
fn sigterm_stops_an_endless_run() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = compile_opensnoop(tmp.path());
    let out = Shared::default();
    let mut writer = out.clone();
    let runner = std::thread::spawn(move || {
        let opts = RunOptions {
            output: Output::Json,
            duration: None,
            args: vec![],
            btf: None,
        };
        run_object("opensnoop.bpf.o", &bytes, None, &opts, &mut writer)
    });
    // Events flowing means the stream loop (and its signal handlers) is running.
    let start = Instant::now();
    while out.0.lock().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(30), "no events");
        let _ = std::fs::File::open("/tmp/ebpf-runner-signal-probe");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own pid; the runner's handler turns it into a stop request.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
    let stopped = Instant::now();
    while !runner.is_finished() {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "SIGTERM did not stop the run"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    runner.join().unwrap().unwrap();
}
