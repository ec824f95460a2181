//! Programs written for other tools, run as they are (issue 12): ecc/ecli folders with no
//! `ebpf.toml` (tests/fixtures/ecc), `unsigned __int128` addresses beside a `family`,
//! `__u8 comm[16]` shown as text, ecli's underscore flags, `<linux/types.h>` without
//! vmlinux.h. Each is built with the real clang, loaded as root, and fed activity this test
//! makes, and the decoded fields are checked.

use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use ebpf_e2e_tests::cli::{self, fails, ok, Background, Env};
use ebpf_e2e_tests::project::{run_command, RUN_SECS};
use ebpf_e2e_tests::{needs, Need, Registry};

/// The fixture copied into `env` (builds write target/ beside the sources).
fn copy_fixture(env: &Env, name: &str) -> PathBuf {
    let from = cli::workspace_root().join("tests/fixtures/ecc").join(name);
    let to = env.path().join("work").join(name);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

/// `cargo ebpf ARGS` run inside `dir`, as a user in an ecc folder types it.
fn in_dir<'a>(env: &Env, dir: &Path, args: impl IntoIterator<Item = &'a str>) -> Command {
    let mut cmd = env.cmd(args);
    cmd.current_dir(dir);
    cmd
}

/// One TCP connection over loopback to `port`, in both families, from this thread.
fn connect_both_families(port: u16) {
    for ip in [
        std::net::IpAddr::V6(Ipv6Addr::LOCALHOST),
        std::net::IpAddr::V4(Ipv4Addr::LOCALHOST),
    ] {
        let addr = SocketAddr::new(ip, port);
        let listener = TcpListener::bind(addr).expect("bind loopback");
        let client = TcpStream::connect(addr).expect("connect loopback");
        let (server, _) = listener.accept().expect("accept");
        drop(client);
        drop(server);
    }
}

/// A free TCP port on both loopback addresses (bound and released).
fn free_port() -> u16 {
    loop {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        if TcpListener::bind(("::1", port)).is_ok() {
            return port;
        }
    }
}

#[test]
fn an_ecc_folder_without_a_manifest_builds_runs_and_decodes_u128_addresses() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let env = Env::new();
    let dir = copy_fixture(&env, "connwatch");
    assert!(!dir.join("ebpf.toml").exists());

    // inspect . builds the folder as it is: name from the source, params from the globals.
    let inspected = ok(&mut in_dir(&env, &dir, ["inspect", ".", "--json"]));
    let report: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(report["name"], "connwatch", "{report}");
    let stderr = String::from_utf8_lossy(&inspected.stderr);
    assert!(stderr.contains("no ebpf.toml: inferred"), "{stderr}");
    assert!(
        stderr.contains("Anchoring struct event from connwatch.h"),
        "{stderr}"
    );

    // run ., with ecli's spelling of the flags and a string for the char-array param.
    let port = free_port();
    let comm = cli::thread_comm();
    let port_text = port.to_string();
    let mut cmd = run_command(
        &env,
        ".",
        &["--output", "json"],
        &["--target_port", &port_text, "--target_comm", &comm],
    );
    cmd.current_dir(&dir);
    let mut bg = Background::spawn(cmd);
    bg.wait_for_stderr("Attached", Duration::from_secs(120));
    connect_both_families(port);
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(RUN_SECS + 30));
    assert!(status.success(), "run failed: {status}\n{stderr}");
    let events = cli::ndjson(&stdout);
    assert!(!events.is_empty(), "no events\n{stderr}");
    for e in &events {
        assert_eq!(e["comm"], comm.as_str(), "comm is text and filtered: {e}");
        let ours = e["sport_text"] == port_text.as_str() || e["dport_text"] == port_text.as_str();
        assert!(ours, "the port filter let {e} through");
    }
    let v6: Vec<&Value> = events.iter().filter(|e| e["family"] == 10).collect();
    let v4: Vec<&Value> = events.iter().filter(|e| e["family"] == 2).collect();
    assert!(!v6.is_empty() && !v4.is_empty(), "{events:?}");
    assert!(
        v6.iter()
            .any(|e| e["saddr_text"] == "::1" && e["daddr_text"] == "::1"),
        "{v6:?}"
    );
    assert!(
        v4.iter()
            .any(|e| e["saddr_text"] == "127.0.0.1" && e["daddr_text"] == "127.0.0.1"),
        "{v4:?}"
    );
    // The raw 128-bit value is kept, as a decimal string (JSON numbers stop at 64 bits).
    let loopback6 = u128::from_ne_bytes(Ipv6Addr::LOCALHOST.octets()).to_string();
    assert!(
        v6.iter().any(|e| e["saddr"] == loopback6.as_str()),
        "{v6:?}"
    );

    // The table shows the addresses too.
    let mut cmd = run_command(&env, ".", &[], &["--target-port", &port_text]);
    cmd.current_dir(&dir);
    let mut bg = Background::spawn(cmd);
    bg.wait_for_stderr("Attached", Duration::from_secs(120));
    connect_both_families(port);
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(RUN_SECS + 30));
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("::1") && stdout.contains("127.0.0.1"),
        "{stdout}"
    );

    // package and push work unchanged too.
    ok(&mut in_dir(&env, &dir, ["package"]));
    assert!(dir.join("target/ebpf/oci/oci-layout").is_file());
    let registry = Registry::start();
    let reference = format!("{}/compat/connwatch:0.1.0", registry.addr());
    let pushed = ok(&mut in_dir(&env, &dir, ["push", &reference]));
    assert!(String::from_utf8_lossy(&pushed.stdout).contains("@sha256:"));
    // publish has no registry to go to, and says how to give it one.
    let err = fails(&mut in_dir(&env, &dir, ["publish"]), 3);
    assert!(err.contains("cargo ebpf init"), "{err}");
}

#[test]
fn init_writes_a_manifest_for_an_existing_folder_and_never_overwrites() {
    let env = Env::new();
    let dir = copy_fixture(&env, "connwatch");
    let before: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();

    let out = ok(env.cmd(["init", "--path"]).arg(&dir));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Created"));
    let text = std::fs::read_to_string(dir.join("ebpf.toml")).unwrap();
    assert!(text.contains("name = \"connwatch\""), "{text}");
    assert!(text.contains("sources = [\"connwatch.bpf.c\"]"), "{text}");
    for name in &before {
        assert!(dir.join(name).exists(), "{name:?} went missing");
    }

    // Again: refused, the file untouched.
    std::fs::write(dir.join("ebpf.toml"), "# mine\n").unwrap();
    let err = fails(env.cmd(["init", "--path"]).arg(&dir), 3);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("ebpf.toml")).unwrap(),
        "# mine\n"
    );

    // A folder without sources: nothing written, and help on what to do.
    let empty = env.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = fails(env.cmd(["init", "--path"]).arg(&empty), 3);
    assert!(err.contains("NAME.bpf.c"), "{err}");
    assert!(!empty.join("ebpf.toml").exists());

    // `new` into an existing folder points at init, never at deleting it.
    let err = fails(env.cmd(["new", "x", "--path"]).arg(&dir), 3);
    assert!(
        err.contains("cargo ebpf init") && !err.contains("rm -r"),
        "{err}"
    );
}

#[test]
fn a_program_including_linux_types_h_builds_and_takes_underscore_flags() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let env = Env::new();
    let dir = copy_fixture(&env, "execwatch");
    ok(&mut in_dir(&env, &dir, ["build"]));
    let object = format!("target/ebpf/{}/execwatch.bpf.o", std::env::consts::ARCH);
    assert!(dir.join(object).is_file());

    // A shell that waits for a line, then execs: its pid is known before the run starts.
    let mut child = Command::new("/bin/sh")
        .args(["-c", "read line; exec /bin/true"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start /bin/sh");
    let pid = child.id().to_string();
    let mut cmd = run_command(&env, ".", &["--output", "json"], &["--pid_target", &pid]);
    cmd.current_dir(&dir);
    let mut bg = Background::spawn(cmd);
    bg.wait_for_stderr("Attached", Duration::from_secs(120));
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.wait().unwrap().success());
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(RUN_SECS + 30));
    assert!(status.success(), "run failed: {status}\n{stderr}");
    let events = cli::ndjson(&stdout);
    assert!(!events.is_empty(), "no exec seen\n{stderr}");
    for e in &events {
        assert_eq!(e["pid"].to_string(), pid, "the filter let {e} through");
        assert_eq!(e["comm"], "sh", "{e}");
    }
}

/// eunomia's annotations are honoured: a tc program whose `@tchook` names interface 1 (lo)
/// attaches there without `--iface`, with the handle and priority of its `@tcopts`, and
/// its `@sample {"interval": 500}` map is printed every half second with real counts.
#[test]
fn eunomia_annotations_name_the_interface_and_sample_the_map() {
    if !needs(&[Need::Kernel, Need::Build, Need::Tool("tc", "iproute2")]) {
        return;
    }
    let env = Env::new();
    let dir = copy_fixture(&env, "lopackets");
    let mut cmd = in_dir(&env, &dir, ["run", ".", "--duration", "4"]);
    cmd.current_dir(&dir);
    let mut bg = Background::spawn(cmd);
    bg.wait_for_stderr("Attached", Duration::from_secs(120));
    let filters = Command::new("tc")
        .args(["filter", "show", "dev", "lo", "ingress"])
        .output()
        .unwrap();
    let filters = String::from_utf8_lossy(&filters.stdout).to_string();
    for _ in 0..20 {
        connect_both_families(free_port());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(60));
    assert!(status.success(), "run failed: {status}\n{stderr}");
    assert!(
        stderr.contains("attaching `count_lo` to interface 1"),
        "{stderr}"
    );
    assert!(
        filters.contains("pref 3") && filters.contains("handle 0x7"),
        "@tcopts not applied:\n{filters}"
    );
    let blocks: Vec<&str> = stdout.split("--- ").skip(1).collect();
    assert!(
        blocks.len() >= 3,
        "expected a block every 500 ms:\n{stdout}"
    );
    let counts: Vec<u64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("packets = "))
        .map(|n| n.trim().parse().unwrap())
        .collect();
    assert!(counts.last().is_some_and(|n| *n > 0), "{stdout}");
}
