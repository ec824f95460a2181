//! libbpf's log, captured: libbpf prints through one process-wide hook, so opening an object
//! (here, to read its BTF) and loading it (in the runner) both route that hook into a buffer
//! while they work, and a failure carries the log's last lines instead of a wall of stderr.

use std::ffi::{c_char, c_int};
use std::sync::{Mutex, MutexGuard};

use libbpf_rs::libbpf_sys;

use crate::Error;

/// How many lines of the verifier log an error shows.
pub const LOG_TAIL: usize = 25;

/// Attaches the last lines of `log` as details, if there are any.
pub fn with_log(err: Error, log: &str) -> Error {
    let details = tail(log);
    if details.is_empty() {
        err
    } else {
        err.with_details(details)
    }
}

/// The last [`LOG_TAIL`] non-blank lines of `text`.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
}

/// libbpf's print hook is process-wide and takes a plain `fn`, so the capture buffer is
/// global; the lock keeps two loads in one process from mixing their logs.
static LOAD_LOCK: Mutex<()> = Mutex::new(());
static LOG: Mutex<String> = Mutex::new(String::new());

type VaList = *mut libbpf_sys::__va_list_tag;

extern "C" {
    // As libbpf_sys declares vdprintf: on its targets a va_list is passed as this pointer.
    fn vfprintf(stream: *mut libc::FILE, format: *const c_char, args: VaList) -> c_int;
}

/// libbpf's print hook, installed directly: libbpf-rs's hook panics on a message that is
/// not UTF-8 (a hostile object's names make one), and a panic there aborts the process.
unsafe extern "C" fn capture(
    level: libbpf_sys::libbpf_print_level,
    format: *const c_char,
    args: VaList,
) -> c_int {
    if level == libbpf_sys::LIBBPF_DEBUG {
        return 0;
    }
    let (mut buf, mut len) = (std::ptr::null_mut::<c_char>(), 0usize);
    // SAFETY: open_memstream gets valid out-pointers; vfprintf gets libbpf's own format and
    // arguments, used once; after fclose, buf holds len bytes that we free once.
    unsafe {
        let stream = libc::open_memstream(&mut buf, &mut len);
        if stream.is_null() {
            return 0;
        }
        vfprintf(stream, format, args);
        libc::fclose(stream);
        if !buf.is_null() {
            let bytes = std::slice::from_raw_parts(buf.cast::<u8>(), len);
            lock_log().push_str(&String::from_utf8_lossy(bytes));
            libc::free(buf.cast());
        }
    }
    0
}

/// Routes libbpf's log into [`LOG`] until dropped, then restores the previous hook.
pub struct LogCapture {
    previous: libbpf_sys::libbpf_print_fn_t,
    _guard: MutexGuard<'static, ()>,
}

impl LogCapture {
    pub fn start() -> LogCapture {
        let guard = LOAD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        lock_log().clear();
        // SAFETY: `capture` has the signature libbpf expects and stays valid forever.
        let previous = unsafe { libbpf_sys::libbpf_set_print(Some(capture)) };
        LogCapture {
            previous,
            _guard: guard,
        }
    }

    pub fn text(&self) -> String {
        lock_log().clone()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        // SAFETY: restores the hook libbpf itself returned.
        unsafe { libbpf_sys::libbpf_set_print(self.previous.take()) };
    }
}

fn lock_log() -> MutexGuard<'static, String> {
    LOG.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let long: String = (0..40).map(|i| format!("line {i}\n\n")).collect();
        let t = tail(&long);
        assert_eq!(t.lines().count(), LOG_TAIL);
        assert!(t.ends_with("line 39"));
        assert!(with_log(Error::kernel("x"), "").details.is_none());
    }
}
