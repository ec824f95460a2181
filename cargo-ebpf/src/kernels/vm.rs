//! One throw-away QEMU VM: boot a kernel with an initramfs, collect the serial console,
//! give up after a deadline. KVM when /dev/kvm is usable, plain emulation (TCG, slower)
//! otherwise. No disk, no network: the guest only has its initramfs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ebpf_package::{Error, Result};

/// The console is kept up to this size (a looping guest must not fill the host's memory).
const MAX_CONSOLE: usize = 4 << 20;
pub const QEMU: &str = "qemu-system-x86_64";

/// How to run the VMs.
#[derive(Debug, Clone)]
pub struct VmOptions {
    pub qemu: PathBuf,
    pub kvm: bool,
    pub memory_mib: u32,
    pub timeout: Duration,
    /// The deadline once KVM turned out unusable and the VMs are emulated instead.
    pub emulated_timeout: Duration,
}

/// What one boot left behind.
pub struct Boot {
    pub console: String,
    /// QEMU's own complaints (a CPU model KVM refuses, a missing file).
    pub qemu_stderr: String,
    /// Set when the deadline passed and the VM was killed.
    pub timed_out: bool,
    pub elapsed: Duration,
}

/// Whether this process may use KVM: /dev/kvm exists and opens read-write.
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Boots `kernel` with `initrd` and returns its console once the guest powers off (or the
/// deadline passes). With `first_word`, a guest that prints no `mark` that soon is killed
/// as stalled (a KVM that cannot run guests, e.g. nested virtualization, hangs silently).
pub fn boot(
    opts: &VmOptions,
    kernel: &Path,
    initrd: &Path,
    first_word: Option<(&str, Duration)>,
) -> Result<Boot> {
    let start = Instant::now();
    let mut child = command(opts, kernel, initrd)
        .spawn()
        .map_err(|e| qemu_missing(&opts.qemu, e))?;
    let console = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let readers = [
        collect(stdout, Arc::clone(&console)),
        collect(stderr, Arc::new(Mutex::new(Vec::new()))),
    ];
    let heard = |mark: &str| {
        let bytes = console.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).contains(mark)
    };
    let deadline = start + opts.timeout;
    let stall = first_word.map(|(mark, after)| (mark, start + after));
    let ended = wait_until(&mut child, deadline, |now| {
        stall.is_some_and(|(mark, at)| now >= at && !heard(mark))
    })?;
    let [out, err] = readers.map(|r| r.join().unwrap_or_default());
    Ok(Boot {
        console: String::from_utf8_lossy(&out).into_owned(),
        qemu_stderr: String::from_utf8_lossy(&err).into_owned(),
        timed_out: ended == Ended::Deadline,
        elapsed: start.elapsed(),
    })
}

/// Reads `from` to its end into `into` (kept to [`MAX_CONSOLE`]); the thread returns a
/// copy of what it read.
fn collect(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut all = into.lock().unwrap_or_else(|e| e.into_inner());
            if all.len() < MAX_CONSOLE {
                all.extend_from_slice(&buf[..n]);
            }
        }
        let all = into.lock().unwrap_or_else(|e| e.into_inner());
        all.clone()
    })
}

fn command(opts: &VmOptions, kernel: &Path, initrd: &Path) -> Command {
    let mut cmd = Command::new(&opts.qemu);
    if opts.kvm {
        cmd.args(["-enable-kvm", "-cpu", "host"]);
    } else {
        cmd.args(["-cpu", "max"]);
    }
    cmd.args([
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ])
    .args(["-smp", "1", "-m", &format!("{}M", opts.memory_mib)])
    .arg("-kernel")
    .arg(kernel)
    .arg("-initrd")
    .arg(initrd)
    // panic=-1 with -no-reboot: a guest whose init dies ends the VM at once.
    .args([
        "-append",
        "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Exited,
    Deadline,
    Stalled,
}

/// Waits for the VM to exit; kills it at `deadline` or when `stalled(now)` says so.
fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
    stalled: impl Fn(Instant) -> bool,
) -> Result<Ended> {
    loop {
        let exited = child
            .try_wait()
            .map_err(|e| Error::io("wait for", Path::new(QEMU), e))?;
        if exited.is_some() {
            return Ok(Ended::Exited);
        }
        let now = Instant::now();
        let why = if now >= deadline {
            Ended::Deadline
        } else if stalled(now) {
            Ended::Stalled
        } else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        // The VM is ours alone: kill it and reap it.
        let _ = child.kill();
        let _ = child.wait();
        return Ok(why);
    }
}

fn qemu_missing(qemu: &Path, e: std::io::Error) -> Error {
    Error::environment(format!("cannot start {}", qemu.display()))
        .with_source(e)
        .with_help("install QEMU (Debian package qemu-system-x86, Fedora qemu-system-x86-core)")
}
