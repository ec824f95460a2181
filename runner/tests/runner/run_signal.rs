//! SIGTERM stops a run with no duration cleanly. Signal handlers are process-wide, so this
//! must not share a process with other runs: it runs alone, in a child process of its own.

use std::time::{Duration, Instant};

use crate::common::harness::run_alone;
use crate::common::{compile, needs, Need, Shared};
use ebpf_runner::run::{run_object, Output, RunOptions};

#[test]
fn sigterm_stops_an_endless_run() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    run_alone(module_path!(), "alone_sigterm_stops_an_endless_run");
}

#[test]
#[ignore = "run alone by sigterm_stops_an_endless_run"]
fn alone_sigterm_stops_an_endless_run() {
    let bytes = compile("opensnoop");
    let out = Shared::default();
    let mut writer = out.clone();
    let runner = std::thread::spawn(move || {
        let opts = RunOptions {
            output: Output::Json,
            duration: None,
            args: vec![],
            btf: None,
            ..Default::default()
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
