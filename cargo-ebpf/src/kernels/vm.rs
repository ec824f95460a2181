//! One throw-away QEMU VM: boot a kernel with an initramfs, collect the serial console,
//! give up after a deadline. KVM when /dev/kvm is usable, plain emulation (TCG, slower)
//! otherwise. No disk, no network: the guest only has its initramfs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
}

/// What one boot left behind.
pub struct Boot {
    pub console: String,
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
/// deadline passes).
pub fn boot(opts: &VmOptions, kernel: &Path, initrd: &Path) -> Result<Boot> {
    let start = Instant::now();
    let mut child = command(opts, kernel, initrd)
        .spawn()
        .map_err(|e| qemu_missing(&opts.qemu, e))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut console = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            if console.len() < MAX_CONSOLE {
                console.extend_from_slice(&buf[..n]);
            }
        }
        console
    });
    let timed_out = wait_or_kill(&mut child, opts.timeout)?;
    let console = reader.join().unwrap_or_default();
    Ok(Boot {
        console: String::from_utf8_lossy(&console).into_owned(),
        timed_out,
        elapsed: start.elapsed(),
    })
}

fn command(opts: &VmOptions, kernel: &Path, initrd: &Path) -> Command {
    let mut cmd = Command::new(&opts.qemu);
    if opts.kvm {
        cmd.args(["-enable-kvm", "-cpu", "host"]);
    } else {
        cmd.args(["-cpu", "max"]);
    }
    cmd.args(["-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot"])
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
        .stderr(Stdio::null());
    cmd
}

/// Waits for the VM to exit; kills it when `timeout` passes. Returns whether it was killed.
fn wait_or_kill(child: &mut std::process::Child, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let exited = child
            .try_wait()
            .map_err(|e| Error::io("wait for", Path::new(QEMU), e))?;
        if exited.is_some() {
            return Ok(false);
        }
        if Instant::now() >= deadline {
            // The VM is ours alone: kill it and reap it.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn qemu_missing(qemu: &Path, e: std::io::Error) -> Error {
    Error::environment(format!("cannot start {}", qemu.display()))
        .with_source(e)
        .with_help("install QEMU (Debian package qemu-system-x86, Fedora qemu-system-x86-core)")
}
