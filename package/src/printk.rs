//! `bpf_printk` output: whether an object prints with it, the formats it prints, and the
//! lines of the kernel's `trace_pipe` that are its own.
//!
//! The kernel writes every program's `bpf_printk` into one global trace buffer, tagged only
//! with the task that was running. A line is taken as this object's when its message fits
//! one of the object's format strings (the literal text between the `%` conversions, in
//! order), which the ELF holds in its read-only data. No syscalls here: the runner reads
//! `trace_pipe`.

use crate::object;

/// `bpf_trace_printk` and `bpf_trace_vprintk`, as helper numbers in a call instruction.
const PRINTK_HELPERS: [i32; 2] = [6, 177];
/// BPF_JMP | BPF_CALL.
const CALL: u8 = 0x85;

/// Whether any program of `elf` calls `bpf_trace_printk`/`bpf_trace_vprintk`.
pub fn uses_printk(elf: &[u8]) -> bool {
    object::sections(elf)
        .into_iter()
        .filter(|(name, _)| is_code(name))
        .any(|(_, code)| {
            code.chunks_exact(8).any(|insn| {
                let helper = i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]);
                // A helper call has source register 0 (1 and 2 are calls to functions).
                insn[0] == CALL && insn[1] >> 4 == 0 && PRINTK_HELPERS.contains(&helper)
            })
        })
}

/// Program sections (`tracepoint/…`, `.text` for subprograms), not data or metadata.
fn is_code(name: &str) -> bool {
    name == ".text"
        || !(name.starts_with('.') || name == "license" || name == "maps" || name.is_empty())
}

/// The format strings an object may print: the printable NUL-terminated strings of its
/// read-only data, each split into the literal parts between conversions.
#[derive(Debug, Clone, Default)]
pub struct Formats(Vec<Vec<String>>);

impl Formats {
    pub fn of(elf: &[u8]) -> Formats {
        let mut formats = Vec::new();
        for (name, data) in object::sections(elf) {
            if !name.starts_with(".rodata") {
                continue;
            }
            for text in data.split(|&b| b == 0) {
                let Ok(text) = std::str::from_utf8(text) else {
                    continue;
                };
                let printable = text
                    .chars()
                    .all(|c| !c.is_control() || c == '\n' || c == '\t');
                if printable && text.trim().len() >= 2 {
                    formats.push(literals(text.trim_end_matches('\n')));
                }
            }
        }
        Formats(formats)
    }

    /// Whether `message` fits one of the formats (every format's literals, in order, the
    /// first at the start and the last at the end). With no formats known, everything fits.
    pub fn matches(&self, message: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|parts| fits(parts, message))
    }
}

/// The literal parts of a printf format: `"pid %d opened %s"` → `["pid ", " opened ", ""]`.
fn literals(format: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            parts.last_mut().expect("never empty").push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            parts.last_mut().expect("never empty").push('%');
            continue;
        }
        // Flags, width, precision and length, then the conversion letter.
        while let Some(&n) = chars.peek() {
            chars.next();
            if n.is_ascii_alphabetic() && !matches!(n, 'l' | 'h' | 'z') {
                break;
            }
        }
        parts.push(String::new());
    }
    parts
}

fn fits(parts: &[String], message: &str) -> bool {
    let (first, rest) = parts.split_first().expect("never empty");
    let Some(mut tail) = message.strip_prefix(first.as_str()) else {
        return false;
    };
    if rest.is_empty() {
        return tail.is_empty();
    }
    let (last, middle) = rest.split_last().expect("not empty");
    for part in middle {
        match tail.find(part.as_str()) {
            Some(at) => tail = &tail[at + part.len()..],
            None => return false,
        }
    }
    tail.ends_with(last.as_str())
}

/// One `bpf_printk` line of `trace_pipe`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Line {
    pub comm: String,
    pub pid: u32,
    pub cpu: u32,
    pub message: String,
}

/// Parses `  comm-1234  [001] d..31  56.789: bpf_trace_printk: message` (other trace
/// events and malformed lines give `None`).
pub fn parse_line(line: &str) -> Option<Line> {
    let (head, message) = line.split_once(": bpf_trace_printk: ")?;
    let (task, rest) = head.split_once(" [")?;
    let (comm, pid) = task.trim().rsplit_once('-')?;
    let cpu = rest.split(']').next()?.trim().parse().ok()?;
    Some(Line {
        comm: comm.to_string(),
        pid: pid.parse().ok()?,
        cpu,
        message: message.trim_end_matches('\n').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_parts_and_matching() {
        assert_eq!(literals("pid %d opened %s"), ["pid ", " opened ", ""]);
        assert_eq!(literals("100%% at %-5lu!"), ["100% at ", "!"]);
        let formats = Formats(vec![literals("pid %d opened %s")]);
        assert!(formats.matches("pid 42 opened /etc/passwd"));
        assert!(!formats.matches("someone else's line"));
        assert!(!formats.matches("xpid 1 opened y"));
        assert!(Formats::default().matches("anything"));
        let exact = Formats(vec![literals("hello")]);
        assert!(exact.matches("hello") && !exact.matches("hello world"));
    }

    #[test]
    fn trace_pipe_lines() {
        let line = "     cat-my-tool-1234    [003] d..31  4567.891011: bpf_trace_printk: pid 1234 opened x\n";
        assert_eq!(
            parse_line(line),
            Some(Line {
                comm: "cat-my-tool".into(),
                pid: 1234,
                cpu: 3,
                message: "pid 1234 opened x".into()
            })
        );
        assert_eq!(parse_line("  <idle>-0 [000] 1.0: sched_switch: x"), None);
    }
}
