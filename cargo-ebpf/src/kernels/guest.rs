//! Inside the VM: the `/init` script the guest kernel starts, and reading what it printed on
//! the serial console back into a matrix row.
//!
//! The script prints `@@cargo-ebpf KEY VALUE` lines (the kernel release and arch, where its
//! BTF came from, the runner's exit code, its `run --check` JSON line and its stderr) and
//! powers off; everything else on the console (kernel messages) is ignored.

use ebpf_package::kernel_matrix::{series_of, KernelResult, Outcome};

/// Marks the lines the init script prints for the host.
pub const MARK: &str = "@@cargo-ebpf";
/// Where the guest finds the package, the runner and a BTF file given with the kernel.
pub const RUNNER: &str = "/opt/cargo-ebpf/ebpf-runner";
pub const TARGET_DIR: &str = "/opt/cargo-ebpf/target";
pub const GIVEN_BTF: &str = "/opt/cargo-ebpf/vmlinux.btf";
const STDERR_LINES: usize = 40;

/// The `/init` script: mount what the runner needs, say what kernel this is, run
/// `ebpf-runner run TARGET --check`, report and power off. `target` is the path inside
/// the guest, `args` the program's arguments.
pub fn init_script(target: &str, args: &[String], smoke: Option<&str>) -> String {
    let args: String = args.iter().map(|a| format!(" {}", quote(a))).collect();
    let smoke = smoke.map_or(String::new(), |command| {
        smoke_script(target, &args, command)
    });
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mkdir -p /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
echo "{MARK} uname $(uname -r) $(uname -m)"
btf=""
if [ -e /sys/kernel/btf/vmlinux ]; then
  echo "{MARK} btf kernel"
elif [ -e {GIVEN_BTF} ]; then
  echo "{MARK} btf given"; btf="--btf {GIVEN_BTF}"
else
  echo "{MARK} btf none"
fi
{RUNNER} run {target} --check $btf --{args} >/tmp/out 2>/tmp/err
echo "{MARK} exit $?"
sed 's/^/{MARK} out /' /tmp/out
tail -n {STDERR_LINES} /tmp/err | sed 's/^/{MARK} err /'
{smoke}echo "{MARK} done"
poweroff -f
"#
    )
}

/// After a passing check: run the package again streaming JSON events, run the smoke
/// command once it is attached, and report how many events arrived.
fn smoke_script(target: &str, args: &str, command: &str) -> String {
    format!(
        r#"if grep -q '"check":"pass"' /tmp/out; then
  {RUNNER} run {target} --output json --duration {SMOKE_SECS} $btf --{args} >/tmp/events 2>/tmp/eerr &
  for i in $(seq 1 100); do grep -q '^Attached' /tmp/eerr && break; sleep 0.1; done
  sh -c {command} >/dev/null 2>&1
  wait
  echo "{MARK} events $(grep -c '^{{' /tmp/events)"
fi
"#,
        command = quote(command)
    )
}

/// How long the smoke run streams events (the smoke command runs once it is attached).
const SMOKE_SECS: u32 = 3;

/// Single-quotes `arg` for the guest's shell.
fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// What the console said, before it becomes a row.
#[derive(Debug, Default)]
struct Report {
    release: Option<String>,
    arch: Option<String>,
    btf: Option<String>,
    exit: Option<i32>,
    check: Option<serde_json::Value>,
    /// Events seen after the smoke command, when the package declares one.
    events: Option<u64>,
    stderr: Vec<String>,
    done: bool,
}

fn read_report(console: &str) -> Report {
    let mut r = Report::default();
    for line in console.lines() {
        // The serial console ends lines with CR LF.
        let Some(rest) = line.trim_end_matches('\r').split_once(MARK).map(|(_, r)| r) else {
            continue;
        };
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
        match key {
            "uname" => {
                let mut parts = value.split_whitespace();
                r.release = parts.next().map(String::from);
                r.arch = parts.next().map(String::from);
            }
            "btf" => r.btf = Some(value.to_string()),
            "exit" => r.exit = value.trim().parse().ok(),
            "events" => r.events = value.trim().parse().ok(),
            "out" => {
                if let Ok(json) = serde_json::from_str::<serde_json::Value>(value) {
                    if json.get("check").is_some() {
                        r.check = Some(json);
                    }
                }
            }
            "err" => r.stderr.push(value.to_string()),
            "done" => r.done = true,
            _ => {}
        }
    }
    r
}

/// What the host knew before booting: a name for the kernel when the guest never said its
/// own release, and why the VM may have ended early.
pub struct Boot<'a> {
    pub label: &'a str,
    pub console: &'a str,
    pub timed_out: Option<u64>,
    pub duration_ms: u64,
}

/// The matrix row the console output of one VM stands for.
pub fn result(boot: &Boot) -> KernelResult {
    let r = read_report(boot.console);
    let kernel = r.release.clone().unwrap_or_else(|| boot.label.to_string());
    let (result, reason) = outcome(&r, boot);
    KernelResult {
        series: series_of(&kernel).unwrap_or_else(|| "?".into()),
        arch: r.arch.clone().unwrap_or_else(|| "?".into()),
        kernel,
        result,
        reason,
        duration_ms: Some(boot.duration_ms),
    }
}

fn outcome(r: &Report, boot: &Boot) -> (Outcome, Option<String>) {
    let check = r.check.as_ref();
    let verdict = check.and_then(|c| c.get("check")).and_then(|v| v.as_str());
    match verdict {
        Some("pass") if r.exit == Some(0) && r.events == Some(0) => (
            Outcome::Fail,
            Some("loads and attaches, but no event arrived after the smoke command".into()),
        ),
        Some("pass") if r.exit == Some(0) => (Outcome::Pass, None),
        Some("fail") => {
            let reason = failure_reason(check.expect("a verdict came from it"));
            if r.btf.as_deref() == Some("none") {
                return (Outcome::Skip, Some(needs_btf(&reason)));
            }
            (Outcome::Fail, Some(reason))
        }
        _ => (Outcome::Skip, Some(no_report(r, boot))),
    }
}

/// The error message and the last line of libbpf's or the verifier's log, which names what
/// was refused (`unknown func bpf_loop#181`, `invalid access to map value`, …).
fn failure_reason(check: &serde_json::Value) -> String {
    let message = check.get("message").and_then(|m| m.as_str()).unwrap_or("");
    let last = check
        .get("log")
        .and_then(|l| l.as_str())
        .and_then(|log| last_meaningful_line(log));
    match last {
        Some(line) if !message.contains(line) => format!("{message}: {line}"),
        _ => message.to_string(),
    }
}

/// The log's last line that says something (libbpf's closing "failed to load object" and
/// the verifier's statistics lines say nothing about the cause).
fn last_meaningful_line(log: &str) -> Option<&str> {
    log.lines().map(str::trim).rev().find(|l| {
        !l.is_empty()
            && !l.starts_with("processed ")
            && !l.starts_with("verification time")
            && !l.starts_with("stack depth")
            && !l.contains("failed to load object")
            && !l.contains("-- END PROG LOAD LOG --")
            && !l.contains("failed to load BPF skeleton")
    })
}

fn needs_btf(reason: &str) -> String {
    format!(
        "needs BTF: this kernel has no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF is off) \
         and the package embeds no BTF for it; give one with --kernel IMAGE:BTF ({reason})"
    )
}

fn no_report(r: &Report, boot: &Boot) -> String {
    let why = match (boot.timed_out, r.release.is_some(), r.done) {
        (Some(secs), _, _) => format!("the VM did not finish within {secs} s"),
        (None, false, _) => "the kernel did not start the check (no report on the console)".into(),
        (None, true, false) => "the VM stopped before the check finished".into(),
        (None, true, true) => format!(
            "the runner gave no verdict (exit {})",
            r.exit.map_or("?".into(), |c| c.to_string())
        ),
    };
    let tail = if r.stderr.is_empty() {
        last_console_lines(boot.console)
    } else {
        r.stderr[r.stderr.len().saturating_sub(3)..].join(" | ")
    };
    if tail.is_empty() {
        why
    } else {
        format!("{why}: {tail}")
    }
}

fn last_console_lines(console: &str) -> String {
    let lines: Vec<&str> = console
        .lines()
        .map(|l| l.trim_end_matches('\r').trim())
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(console: &str) -> KernelResult {
        result(&Boot {
            label: "vmlinuz",
            console,
            timed_out: None,
            duration_ms: 1200,
        })
    }

    const FAIL: &str = r#"{"check":"fail","kind":"ebpf::kernel","message":"the kernel rejected program `count`","log":"0: R1=ctx()\n3: (85) call unknown#181\ninvalid func unknown#181\nprocessed 3 insns"}"#;

    #[test]
    fn a_passing_check_is_a_pass() {
        let console = format!(
            "[    0.1] Linux version 6.1\r\n{MARK} uname 6.1.0-28-amd64 x86_64\r\n{MARK} btf kernel\r\n\
             {MARK} exit 0\r\n{MARK} out {{\"check\":\"pass\"}}\r\n{MARK} done\r\n"
        );
        let row = boot(&console);
        assert_eq!(row.kernel, "6.1.0-28-amd64");
        assert_eq!(row.series, "6.1");
        assert_eq!(row.arch, "x86_64");
        assert_eq!(row.result, Outcome::Pass);
        assert_eq!(row.reason, None);
        assert_eq!(row.duration_ms, Some(1200));
    }

    #[test]
    fn a_rejection_gives_the_verifiers_last_words() {
        let console = format!(
            "{MARK} uname 5.10.0-32-amd64 x86_64\n{MARK} btf kernel\n{MARK} exit 9\n{MARK} out {FAIL}\n{MARK} done\n"
        );
        let row = boot(&console);
        assert_eq!(row.result, Outcome::Fail);
        assert_eq!(
            row.reason.as_deref(),
            Some("the kernel rejected program `count`: invalid func unknown#181")
        );
    }

    #[test]
    fn a_failure_without_kernel_btf_says_the_package_needs_one() {
        let console = format!(
            "{MARK} uname 4.19.0-1-amd64 x86_64\n{MARK} btf none\n{MARK} exit 4\n{MARK} out {FAIL}\n{MARK} done\n"
        );
        let row = boot(&console);
        assert_eq!(row.result, Outcome::Skip);
        assert!(row.reason.unwrap().starts_with("needs BTF:"));
    }

    #[test]
    fn no_report_is_a_skip_that_says_why() {
        let row = result(&Boot {
            label: "my-vmlinuz",
            console: "[    0.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n",
            timed_out: None,
            duration_ms: 10,
        });
        assert_eq!(row.kernel, "my-vmlinuz");
        assert_eq!(row.result, Outcome::Skip);
        let reason = row.reason.unwrap();
        assert!(reason.contains("did not start the check"), "{reason}");
        assert!(reason.contains("Unable to mount root fs"), "{reason}");

        let row = result(&Boot {
            label: "k",
            console: &format!("{MARK} uname 6.1.0 x86_64\n"),
            timed_out: Some(60),
            duration_ms: 60_000,
        });
        assert!(row.reason.unwrap().contains("within 60 s"));
    }

    #[test]
    fn program_arguments_are_quoted_for_the_guest_shell() {
        let script = init_script("/t/x.bpf.o", &["--name".into(), "it's".into()], None);
        assert!(script.contains(r"--check $btf -- '--name' 'it'\''s' >/tmp/out"));
        assert!(script.starts_with("#!/bin/busybox sh\n"));
    }

    #[test]
    fn a_smoke_command_without_events_is_a_failure() {
        let script = init_script("/t/p", &[], Some("sync"));
        assert!(script.contains("sh -c 'sync'"), "{script}");
        let console = format!(
            "{MARK} uname 6.1.0-28-amd64 x86_64\n{MARK} btf kernel\n{MARK} exit 0\n\
             {MARK} out {{\"check\":\"pass\"}}\n{MARK} events 0\n{MARK} done\n"
        );
        let row = boot(&console);
        assert_eq!(row.result, Outcome::Fail);
        assert!(row.reason.unwrap().contains("no event arrived"));
        let row = boot(&console.replace("events 0", "events 2"));
        assert_eq!(row.result, Outcome::Pass);
    }
}
