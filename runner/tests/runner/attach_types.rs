//! Every attach type the built-in loader supports, attached for real and seen firing: each
//! fixture (tests/fixtures/attach_*.bpf.c) reports one ring buffer event per hit, which
//! this test triggers itself (a syscall, a call in a small binary, a packet on lo in the
//! test's own network namespace, a connect from a cgroup). Types this kernel lacks get
//! their one-sentence preflight error checked instead.
//! Needs root, clang, gcc, bpftool, iproute2 and kernel BTF.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{compile, compile_file, Shared};
use crate::common::{needs, Need};
use ebpf_package::{ErrorKind, Result};
use ebpf_runner::run::{run_object, AttachOptions, Output, RunOptions};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn opts(attach: AttachOptions, args: &[String]) -> RunOptions {
    RunOptions {
        output: Output::Json,
        duration: Some(Duration::from_secs(2)),
        args: args.to_vec(),
        attach,
        ..Default::default()
    }
}

/// `-- --target-pid PID`: only this test process's events.
fn ours() -> Vec<String> {
    vec!["--target-pid".into(), std::process::id().to_string()]
}

/// Runs the object in a thread while this thread calls `trigger` every 20 ms; returns the
/// run's result and its events.
fn run_while(
    name: &str,
    bytes: Vec<u8>,
    opts: RunOptions,
    mut trigger: impl FnMut(),
) -> (Result<()>, Vec<Value>) {
    let out = Shared::default();
    let mut writer = out.clone();
    let name = name.to_string();
    let runner = std::thread::spawn(move || run_object(&name, &bytes, None, &opts, &mut writer));
    while !runner.is_finished() {
        trigger();
        std::thread::sleep(Duration::from_millis(20));
    }
    let result = runner.join().unwrap();
    let events = out
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON {l:?}: {e}")))
        .collect();
    (result, events)
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

fn open_something() {
    let _ = std::fs::File::open("/etc/hostname");
}

#[test]
fn raw_tracepoint_fires_on_syscalls() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let (result, events) = run_while(
        "attach_raw_tp",
        compile("attach_raw_tp"),
        opts(AttachOptions::default(), &ours()),
        open_something,
    );
    result.unwrap();
    assert!(
        !of_kind(&events, "RAW_TP").is_empty(),
        "no raw_tp events: {events:?}"
    );
}

/// Whether this kernel loads BPF trampoline programs, asked independently of the runner:
/// bpftool loads the object and pins it (then the pin is removed).
fn bpftool_loads(bytes: &[u8], name: &str) -> bool {
    let tmp = tempfile::tempdir().unwrap();
    let obj = tmp.path().join(format!("{name}.bpf.o"));
    std::fs::write(&obj, bytes).unwrap();
    let pin = format!(
        "/sys/fs/bpf/ebpf-runner-probe-{name}-{}",
        std::process::id()
    );
    let out = Command::new("bpftool")
        .args(["prog", "loadall"])
        .arg(&obj)
        .arg(&pin)
        .output()
        .expect("bpftool runs (apt-get install bpftool)");
    let _ = std::fs::remove_dir_all(&pin);
    out.status.success()
}

/// Runs a trampoline fixture: it fires where the kernel loads such programs, and gets the
/// preflight's one sentence where it refuses them.
fn trampoline_fixture(name: &str, kinds: &[&str], refusal: &str) {
    let bytes = compile(name);
    let supported = bpftool_loads(&bytes, name);
    let (result, events) = run_while(
        name,
        bytes,
        opts(AttachOptions::default(), &ours()),
        open_something,
    );
    if supported {
        result.unwrap();
        for kind in kinds {
            assert!(
                !of_kind(&events, kind).is_empty(),
                "no {kind} events: {events:?}"
            );
        }
    } else {
        let err = result.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Environment, "{err:?}");
        assert!(err.message.starts_with(refusal), "{}", err.message);
        assert!(err.help.unwrap().contains("tracepoint"));
    }
}

#[test]
fn fentry_and_fexit_fire_or_say_the_kernel_refuses_them() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    trampoline_fixture(
        "attach_fentry",
        &["FENTRY", "FEXIT"],
        "fentry/fexit programs are not available: this kernel",
    );
}

#[test]
fn lsm_hook_fires_or_says_the_kernel_refuses_it() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    trampoline_fixture(
        "attach_lsm",
        &["LSM"],
        "BPF LSM programs are not available: this kernel",
    );
}

#[test]
fn perf_event_samples_the_cpus() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let attach = AttachOptions {
        frequency: Some(199),
        ..Default::default()
    };
    // Keep a CPU busy so the CPU clock has this process to sample.
    let spin = || {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(15) {
            std::hint::black_box(0u64);
        }
    };
    let (result, events) = run_while(
        "attach_perf_event",
        compile("attach_perf_event"),
        opts(attach, &ours()),
        spin,
    );
    result.unwrap();
    let samples = of_kind(&events, "PERF_EVENT");
    assert!(samples.len() >= 5, "only {} samples", samples.len());
}

// ---- uprobes ------------------------------------------------------------------------------

/// Builds tests/fixtures/uprobe_target.c with gcc into `dir`.
fn uprobe_target(dir: &Path) -> PathBuf {
    let bin = dir.join("uprobe_target");
    let out = Command::new("gcc")
        .args(["-O1", "-g", "-o"])
        .arg(&bin)
        .arg(Path::new(FIXTURES).join("uprobe_target.c"))
        .output()
        .expect("gcc runs (apt-get install gcc)");
    assert!(out.status.success(), "gcc failed: {out:?}");
    bin
}

fn run_target(bin: &Path) -> impl FnMut() + '_ {
    move || {
        let status = Command::new(bin).arg("42").status().unwrap();
        assert!(status.success());
    }
}

fn assert_uprobe_events(events: &[Value]) {
    // The target calls ebpf_probe_target(0..=41); the last call returns 42.
    let calls = of_kind(events, "UPROBE");
    assert!(
        calls.iter().any(|e| e["value"] == 41),
        "no uprobe events: {events:?}"
    );
    let returns = of_kind(events, "URETPROBE");
    assert!(
        returns.iter().any(|e| e["value"] == 42),
        "no uretprobe events: {events:?}"
    );
}

#[test]
fn uprobes_take_their_target_from_the_flag() {
    if !needs(&[Need::Kernel, Need::Build, Need::Tool("gcc", "gcc")]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin = uprobe_target(tmp.path());
    let attach = AttachOptions {
        uprobe: Some(format!("{}:ebpf_probe_target", bin.display())),
        ..Default::default()
    };
    let (result, events) = run_while(
        "attach_uprobe",
        compile("attach_uprobe"),
        opts(attach, &[]),
        run_target(&bin),
    );
    result.unwrap();
    assert_uprobe_events(&events);
}

#[test]
fn uprobes_take_their_target_from_the_section() {
    if !needs(&[Need::Kernel, Need::Build, Need::Tool("gcc", "gcc")]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bin = uprobe_target(tmp.path());
    let source = std::fs::read_to_string(Path::new(FIXTURES).join("attach_uprobe.bpf.c"))
        .unwrap()
        .replace(
            "\"attach_event.h\"",
            &format!("\"{FIXTURES}/attach_event.h\""),
        )
        .replace(
            "SEC(\"uprobe\")",
            &format!("SEC(\"uprobe/{}:ebpf_probe_target\")", bin.display()),
        )
        .replace(
            "SEC(\"uretprobe\")",
            &format!("SEC(\"uretprobe/{}:ebpf_probe_target\")", bin.display()),
        );
    let src = tmp.path().join("attach_uprobe_section.bpf.c");
    std::fs::write(&src, source).unwrap();
    let bytes = compile_file("attach_uprobe_section", &src);
    let (result, events) = run_while(
        "attach_uprobe_section",
        bytes,
        opts(AttachOptions::default(), &[]),
        run_target(&bin),
    );
    result.unwrap();
    assert_uprobe_events(&events);
}

// ---- network ------------------------------------------------------------------------------

/// Runs `f` on a thread in a fresh network namespace with `lo` up: packets there are the
/// test's own, and the namespace goes away with the thread.
fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare only changes this thread's network namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        let status = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("ip runs (apt-get install iproute2)");
        assert!(status.success());
        f()
    })
    .join()
    .unwrap()
}

fn send_udp() -> impl FnMut() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    move || {
        // Nothing listens on the discard port: the packets still cross lo.
        let _ = socket.send_to(b"ping", "127.0.0.1:9");
    }
}

fn lo() -> AttachOptions {
    AttachOptions {
        iface: Some("lo".into()),
        ..Default::default()
    }
}

#[test]
fn xdp_sees_packets_on_the_interface() {
    if !needs(&[
        Need::Kernel,
        Need::Build,
        Need::NetNs,
        Need::Tool("ip", "iproute2"),
    ]) {
        return;
    }
    let (result, events) = in_new_netns(|| {
        run_while(
            "attach_xdp",
            compile("attach_xdp"),
            opts(lo(), &[]),
            send_udp(),
        )
    });
    result.unwrap();
    // Ethernet (14) + IPv4 (20) + UDP (8) + "ping" (4).
    let packets = of_kind(&events, "XDP");
    assert!(
        packets.iter().any(|e| e["value"] == 46),
        "no xdp events: {events:?}"
    );
}

#[test]
fn tc_sees_packets_both_ways() {
    if !needs(&[
        Need::Kernel,
        Need::Build,
        Need::NetNs,
        Need::Tool("ip", "iproute2"),
        Need::Tool("tc", "iproute2"),
    ]) {
        return;
    }
    let (result, events) = in_new_netns(|| {
        let result = run_while(
            "attach_tc",
            compile("attach_tc"),
            opts(lo(), &[]),
            send_udp(),
        );
        // The clsact qdisc the runner created is gone with it.
        let out = Command::new("tc")
            .args(["qdisc", "show", "dev", "lo"])
            .output()
            .expect("tc runs (apt-get install iproute2)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.contains("clsact"), "clsact left behind: {text}");
        result
    });
    result.unwrap();
    assert!(
        !of_kind(&events, "TC_INGRESS").is_empty(),
        "no ingress: {events:?}"
    );
    assert!(
        !of_kind(&events, "TC_EGRESS").is_empty(),
        "no egress: {events:?}"
    );
}

#[test]
fn network_programs_need_an_interface() {
    if !needs(&[Need::Build]) {
        return;
    }
    let err = run_object(
        "attach_xdp",
        &compile("attach_xdp"),
        None,
        &opts(AttachOptions::default(), &[]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Usage);
    assert_eq!(
        err.message,
        "program `on_packet` (section `xdp`) attaches to a network interface: pass --iface NAME"
    );
    let bad = AttachOptions {
        iface: Some("nope0".into()),
        ..Default::default()
    };
    let err = run_object(
        "attach_tc",
        &compile("attach_tc"),
        None,
        &opts(bad, &[]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.message, "there is no network interface `nope0`");
}

#[test]
fn bare_uprobes_need_a_binary() {
    if !needs(&[Need::Build]) {
        return;
    }
    let err = run_object(
        "attach_uprobe",
        &compile("attach_uprobe"),
        None,
        &opts(AttachOptions::default(), &[]),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Usage);
    assert!(
        err.message.contains("pass --uprobe BINARY:FUNCTION"),
        "{}",
        err.message
    );
}

// ---- cgroups ------------------------------------------------------------------------------

fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("a cgroup2 mount (mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified)")
}

/// A fresh cgroup, removed on drop.
struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn cgroup_program_sees_connects_from_its_cgroup() {
    if !needs(&[Need::Kernel, Need::Build, Need::Tool("bash", "bash")]) {
        return;
    }
    let cgroup =
        TestCgroup(cgroup2_root().join(format!("ebpf-runner-test-{}", std::process::id())));
    std::fs::create_dir(&cgroup.0).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let attach = AttachOptions {
        cgroup: Some(cgroup.0.clone()),
        ..Default::default()
    };
    // A shell that moves itself into the cgroup, then connects.
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec 3<>/dev/tcp/127.0.0.1/{port}",
        cgroup.0.display()
    );
    let connect = || {
        let status = Command::new("bash").args(["-c", &script]).status().unwrap();
        assert!(status.success());
    };
    let (result, events) = run_while(
        "attach_cgroup",
        compile("attach_cgroup"),
        opts(attach, &[]),
        connect,
    );
    result.unwrap();
    let connects = of_kind(&events, "CGROUP_CONNECT4");
    assert!(
        connects.iter().any(|e| e["value"] == port),
        "no connect4 events: {events:?}"
    );
}

// ---- what this kernel lacks ------------------------------------------------------------------

#[test]
fn kprobes_attach_or_say_the_kernel_lacks_them() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let has_kprobes = Path::new("/sys/bus/event_source/devices/kprobe").exists()
        || Path::new("/sys/kernel/tracing/kprobe_events").exists();
    let (result, events) = run_while(
        "attach_kprobe",
        compile("attach_kprobe"),
        opts(AttachOptions::default(), &ours()),
        open_something,
    );
    if has_kprobes {
        result.unwrap();
        assert!(!of_kind(&events, "KPROBE").is_empty());
    } else {
        let err = result.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Environment);
        assert_eq!(
            err.message,
            "kprobes are not available: this kernel was built without CONFIG_KPROBES"
        );
        assert!(err.help.unwrap().contains("fentry"));
    }
}
