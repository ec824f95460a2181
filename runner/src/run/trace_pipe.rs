//! The kernel's `trace_pipe`, read without blocking between event polls, for programs that
//! print with `bpf_printk`: only lines whose message fits one of the object's own formats
//! are kept ([`ebpf_package::printk`]). Reading consumes the lines, as `cat trace_pipe` does.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ebpf_package::printk::{self, Formats, Line};
use ebpf_package::{Error, Result};

const PATHS: [&str; 2] = [
    "/sys/kernel/tracing/trace_pipe",
    "/sys/kernel/debug/tracing/trace_pipe",
];
/// A partial line longer than this is dropped (trace lines are short).
const MAX_LINE: usize = 64 * 1024;

pub struct TracePipe {
    file: File,
    formats: Formats,
    pending: Vec<u8>,
}

impl TracePipe {
    /// Opens `trace_pipe` (tracefs is mounted by the preflight).
    pub fn open(formats: Formats) -> Result<TracePipe> {
        let path = PATHS
            .iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or(&PATHS[0]);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| {
                Error::io("open", Path::new(path), e)
                    .with_help("bpf_printk lines are read from tracefs; mount it, or run as root")
            })?;
        Ok(TracePipe {
            file,
            formats,
            pending: Vec::new(),
        })
    }

    /// The object's lines that arrived since the last call.
    pub fn read_lines(&mut self) -> Vec<Line> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') else {
            if self.pending.len() > MAX_LINE {
                self.pending.clear();
            }
            return vec![];
        };
        let complete: Vec<u8> = self.pending.drain(..=end).collect();
        String::from_utf8_lossy(&complete)
            .lines()
            .filter_map(printk::parse_line)
            .filter(|l| self.formats.matches(&l.message))
            .collect()
    }
}
