//! `bpf_printk`-only programs: `run` streams the program's own trace_pipe lines (task, pid,
//! message), not another program's printing on the same syscall at the same time.

use std::time::Duration;

use crate::common::{compile, needs, run_fixture_while, Need};
use ebpf_runner::run::{Output, RunOptions};

#[test]
fn printk_lines_of_this_program_only() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    // The other program, loaded and attached directly, prints on the same syscall.
    let other = compile("printk_other");
    let open = libbpf_rs::ObjectBuilder::default()
        .open_memory(&other)
        .unwrap();
    let object = open.load().unwrap();
    let _links: Vec<_> = object.progs_mut().map(|p| p.attach().unwrap()).collect();

    let opts = RunOptions {
        output: Output::Json,
        duration: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let (result, text) = run_fixture_while("printk_only", opts, || {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
        std::thread::sleep(Duration::from_millis(20));
    });
    result.unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pid = std::process::id();
    // SAFETY: gettid has no preconditions. trace_pipe names the task: this thread.
    let tid = unsafe { libc::gettid() } as u32;
    let ours: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == format!("getppid from {pid} says hello"))
        .collect();
    assert!(!ours.is_empty(), "no line of ours:\n{text}");
    assert!(
        ours.iter()
            .all(|l| l["pid"] == tid && l["source"] == "bpf_printk"),
        "{text}"
    );
    assert!(
        !text.contains("unrelated program line"),
        "another program's line was shown:\n{text}"
    );
}
