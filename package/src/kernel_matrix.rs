//! The kernel matrix: on which kernels a package loads and attaches, as `cargo ebpf
//! test-kernels` found by booting each one in a throw-away VM.
//!
//! It is the predicate of a kernel-matrix attestation (predicate type
//! [`spec::KERNEL_MATRIX_PREDICATE_TYPE`]) that travels with the package, so this module
//! holds only what every side needs without a VM or a network: the serde type, reading it
//! back from untrusted JSON (bounded), the question `run` asks before loading ("does this
//! matrix say the running kernel fails?", [`KernelMatrix::failing_for`]) and the text
//! `inspect` prints ([`KernelMatrix::render`]).

use serde::{Deserialize, Serialize};

use crate::spec;
use crate::{Error, Result};

/// A matrix read from a registry is untrusted: bound its size, rows and texts.
pub const MAX_MATRIX_BYTES: usize = 1 << 20;
const MAX_KERNELS: usize = 256;
const MAX_TEXT: usize = 4096;

/// What one kernel made of the package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every program loaded (the verifier accepted it) and attached.
    Pass,
    /// The kernel refused: the verifier, a missing helper or attach type, an attach error.
    Fail,
    /// Not tested to the end: the kernel has no BTF, or the VM could not run the check.
    Skip,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
        }
    }
}

/// One row of the matrix: a kernel and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelResult {
    /// The kernel release as `uname -r` prints it in the VM, e.g. `6.1.0-28-amd64`.
    pub kernel: String,
    /// Major.minor, e.g. `6.1` (see [`series_of`]).
    pub series: String,
    /// The machine as `uname -m` prints it, e.g. `x86_64`.
    pub arch: String,
    pub result: Outcome,
    /// Why it failed or was skipped: the error and the verifier's last words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long the VM took, boot to power-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// The whole matrix: what was tested and each kernel's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelMatrix {
    /// What was tested: the package's name (or the object's file name).
    pub package: String,
    /// The package manifest's digest (`sha256:…`), when a package was tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The tool that ran the matrix, e.g. `cargo-ebpf 0.1.0`.
    pub tool: String,
    pub kernels: Vec<KernelResult>,
}

/// Why `run` should warn: the matrix row that says this kernel fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning<'a> {
    pub row: &'a KernelResult,
    /// `true` when the row is this very kernel release; `false` when it is only the same
    /// series (and no row of that series passed).
    pub exact: bool,
}

impl Warning<'_> {
    /// One sentence for the user, e.g. before `run` loads anything.
    pub fn message(&self) -> String {
        let which = if self.exact {
            format!("this kernel ({})", self.row.kernel)
        } else {
            format!(
                "kernel {} of this kernel's series {}",
                self.row.kernel, self.row.series
            )
        };
        let reason = self.row.reason.as_deref().unwrap_or("no reason recorded");
        format!(
            "the package's kernel matrix says it fails on {which}: {}",
            printable(reason)
        )
    }
}

impl KernelMatrix {
    /// Reads a matrix (e.g. an attestation's predicate), refusing oversized or malformed
    /// input with a clear error.
    pub fn from_json(bytes: &[u8]) -> Result<KernelMatrix> {
        if bytes.len() > MAX_MATRIX_BYTES {
            return Err(Error::input(format!(
                "the kernel matrix is {} bytes, more than the {MAX_MATRIX_BYTES} allowed",
                bytes.len()
            ))
            .with_help(
                "a matrix lists a few kernels; this one is not from cargo ebpf test-kernels",
            ));
        }
        let matrix: KernelMatrix = serde_json::from_slice(bytes).map_err(|e| {
            Error::input("the kernel matrix is not valid JSON of the expected shape")
                .with_source(e.to_string())
                .with_help(format!(
                    "a kernel matrix ({}) is written by `cargo ebpf test-kernels --output FILE`",
                    spec::KERNEL_MATRIX_PREDICATE_TYPE
                ))
        })?;
        matrix.check_bounds()?;
        Ok(matrix)
    }

    /// A matrix from an attestation's predicate, bounded as [`KernelMatrix::from_json`].
    pub fn from_predicate(predicate: &serde_json::Value) -> Result<KernelMatrix> {
        let bytes = serde_json::to_vec(predicate).expect("JSON values serialize");
        KernelMatrix::from_json(&bytes)
    }

    /// The matrix as pretty JSON (what `--output FILE` writes).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::input("cannot encode the kernel matrix").with_source(e.to_string()))
    }

    fn check_bounds(&self) -> Result<()> {
        if self.kernels.len() > MAX_KERNELS {
            return Err(Error::input(format!(
                "the kernel matrix lists {} kernels, more than the {MAX_KERNELS} allowed",
                self.kernels.len()
            )));
        }
        let texts = self.kernels.iter().flat_map(|k| {
            [&k.kernel, &k.series, &k.arch]
                .into_iter()
                .chain(k.reason.as_ref())
        });
        if texts
            .chain([&self.package, &self.tool])
            .any(|t| t.len() > MAX_TEXT)
        {
            return Err(Error::input(format!(
                "a text in the kernel matrix is longer than {MAX_TEXT} bytes"
            )));
        }
        Ok(())
    }

    /// Orders the rows oldest kernel first (by version, then arch).
    pub fn sort(&mut self) {
        self.kernels
            .sort_by(|a, b| (version(&a.kernel), &a.arch).cmp(&(version(&b.kernel), &b.arch)));
    }

    /// Does the matrix say the kernel `release` on `arch` (`uname -r`, `uname -m`) fails?
    /// A row of this exact release decides; without one, a failing row of the same series
    /// and arch does, unless another row of that series passed (then the series is not
    /// the cause). Kernels the matrix does not cover give `None`.
    pub fn failing_for(&self, release: &str, arch: &str) -> Option<Warning<'_>> {
        let same_arch = || self.kernels.iter().filter(move |k| k.arch == arch);
        if let Some(row) = same_arch().find(|k| k.kernel == release) {
            return (row.result == Outcome::Fail).then_some(Warning { row, exact: true });
        }
        let series = series_of(release)?;
        let in_series = || same_arch().filter(|k| k.series == series);
        if in_series().any(|k| k.result == Outcome::Pass) {
            return None;
        }
        in_series()
            .find(|k| k.result == Outcome::Fail)
            .map(|row| Warning { row, exact: false })
    }

    /// The matrix as an aligned text table, for `inspect` and the command itself.
    pub fn render(&self) -> String {
        let header = ["KERNEL", "SERIES", "ARCH", "RESULT", "REASON"].map(String::from);
        let rows: Vec<[String; 5]> = self
            .kernels
            .iter()
            .map(|k| {
                [
                    printable(&k.kernel),
                    printable(&k.series),
                    printable(&k.arch),
                    k.result.as_str().to_string(),
                    k.reason.as_deref().map(printable).unwrap_or_default(),
                ]
            })
            .collect();
        let mut widths = header.clone().map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut text = String::new();
        for row in std::iter::once(&header).chain(&rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  "));
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// The running kernel's release and machine, as `uname -r` and `uname -m` print them (what
/// [`KernelMatrix::failing_for`] compares with); `None` without /proc.
pub fn running_kernel() -> Option<(String, String)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    // Rust's names for these arches are the kernel's `uname -m` ones (x86_64, aarch64, …).
    Some((
        release.trim().to_string(),
        std::env::consts::ARCH.to_string(),
    ))
}

/// The series of a kernel release: its major.minor (`5.10.0-32-amd64` → `5.10`).
pub fn series_of(release: &str) -> Option<String> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().filter(|p| !p.is_empty())?;
    let rest = release.get(major.len()..)?;
    let minor: String = rest
        .strip_prefix('.')?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!minor.is_empty()).then(|| format!("{major}.{minor}"))
}

/// The leading numbers of a release (`6.12.9+bpo-amd64` → [6, 12, 9]), for ordering.
fn version(release: &str) -> Vec<u64> {
    release
        .split(|c: char| c != '.' && !c.is_ascii_digit())
        .next()
        .unwrap_or_default()
        .split('.')
        .map_while(|p| p.parse().ok())
        .collect()
}

/// One line, without control characters: a matrix may come from anyone, and its texts go
/// to a terminal.
fn printable(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A series as a comparable number: `5.10` → 5010.
pub fn series_number(series: &str) -> Option<i64> {
    let (major, minor) = series.split_once('.')?;
    Some(major.parse::<i64>().ok()? * 1000 + minor.parse::<i64>().ok()?)
}

/// The oldest series from which every tested series passes (a series passes when every
/// kernel of it passed); None when the newest tested series did not.
pub fn loads_from(matrix: &KernelMatrix) -> Option<i64> {
    let mut series: Vec<(i64, bool)> = Vec::new();
    for row in &matrix.kernels {
        let Some(n) = series_number(&row.series) else {
            continue;
        };
        let pass = row.result == Outcome::Pass;
        match series.iter_mut().find(|(s, _)| *s == n) {
            Some((_, ok)) => *ok &= pass,
            None => series.push((n, pass)),
        }
    }
    series.sort_unstable();
    let mut from = None;
    for (n, pass) in series.into_iter().rev() {
        if !pass {
            break;
        }
        from = Some(n);
    }
    from
}

/// `5010` → `5.10`.
pub fn series_text(n: i64) -> String {
    format!("{}.{}", n / 1000, n % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kernel: &str, result: Outcome, reason: Option<&str>) -> KernelResult {
        KernelResult {
            kernel: kernel.into(),
            series: series_of(kernel).unwrap(),
            arch: "x86_64".into(),
            result,
            reason: reason.map(String::from),
            duration_ms: None,
        }
    }

    fn matrix() -> KernelMatrix {
        KernelMatrix {
            package: "loops".into(),
            digest: None,
            tool: "cargo-ebpf test".into(),
            kernels: vec![
                row("6.12.9+bpo-amd64", Outcome::Pass, None),
                row(
                    "5.10.0-32-amd64",
                    Outcome::Fail,
                    Some("the kernel rejected program `count`: invalid func unknown#181"),
                ),
                row("6.1.0-28-amd64", Outcome::Pass, None),
            ],
        }
    }

    #[test]
    fn the_running_kernel_is_named_as_uname_names_it() {
        let (release, arch) = running_kernel().unwrap();
        // SAFETY: uname fills the zeroed plain-data struct with NUL-terminated strings.
        let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::uname(&mut uts) }, 0);
        let text = |field: &[libc::c_char]| {
            let bytes: Vec<u8> = field
                .iter()
                .take_while(|c| **c != 0)
                .map(|c| *c as u8)
                .collect();
            String::from_utf8(bytes).unwrap()
        };
        assert_eq!(release, text(&uts.release));
        assert_eq!(arch, text(&uts.machine));
        assert!(series_of(&release).is_some(), "{release}");
    }

    #[test]
    fn series_is_major_dot_minor() {
        assert_eq!(series_of("5.10.0-32-amd64").as_deref(), Some("5.10"));
        assert_eq!(series_of("6.12.9+bpo-amd64").as_deref(), Some("6.12"));
        assert_eq!(series_of("6.1").as_deref(), Some("6.1"));
        assert_eq!(series_of("6"), None);
        assert_eq!(series_of("vmlinuz"), None);
        assert_eq!(series_of(""), None);
    }

    #[test]
    fn an_exact_failing_release_warns() {
        let m = matrix();
        let w = m.failing_for("5.10.0-32-amd64", "x86_64").unwrap();
        assert!(w.exact);
        assert!(
            w.message().contains("invalid func unknown#181"),
            "{}",
            w.message()
        );
        assert!(m.failing_for("6.1.0-28-amd64", "x86_64").is_none());
    }

    #[test]
    fn another_release_of_a_failing_series_warns_unless_the_series_also_passed() {
        let mut m = matrix();
        let w = m.failing_for("5.10.0-35-amd64", "x86_64").unwrap();
        assert!(!w.exact);
        assert_eq!(w.row.kernel, "5.10.0-32-amd64");
        m.kernels.push(row("5.10.0-40-amd64", Outcome::Pass, None));
        assert!(m.failing_for("5.10.0-35-amd64", "x86_64").is_none());
        // The exact row still decides for the failing release itself.
        assert!(m.failing_for("5.10.0-32-amd64", "x86_64").is_some());
    }

    #[test]
    fn other_arches_and_uncovered_kernels_do_not_warn() {
        let m = matrix();
        assert!(m.failing_for("5.10.0-32-amd64", "aarch64").is_none());
        assert!(m.failing_for("5.15.0-1-generic", "x86_64").is_none());
        assert!(m.failing_for("weird", "x86_64").is_none());
    }

    #[test]
    fn skipped_rows_never_warn() {
        let mut m = matrix();
        m.kernels = vec![row("5.4.0-1-amd64", Outcome::Skip, Some("no BTF"))];
        assert!(m.failing_for("5.4.0-1-amd64", "x86_64").is_none());
        assert!(m.failing_for("5.4.0-9-amd64", "x86_64").is_none());
    }

    #[test]
    fn sorts_oldest_first_and_renders_a_table() {
        let mut m = matrix();
        m.sort();
        let kernels: Vec<_> = m.kernels.iter().map(|k| k.series.as_str()).collect();
        assert_eq!(kernels, ["5.10", "6.1", "6.12"]);
        let text = m.render();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("KERNEL"));
        assert!(lines[1].starts_with("5.10.0-32-amd64   5.10    x86_64  fail    the kernel"));
        assert_eq!(lines[2], "6.1.0-28-amd64    6.1     x86_64  pass");
    }

    #[test]
    fn round_trips_through_json() {
        let m = matrix();
        let json = m.to_json().unwrap();
        assert!(json.contains("\"result\": \"fail\""));
        assert_eq!(KernelMatrix::from_json(json.as_bytes()).unwrap(), m);
    }

    #[test]
    fn hostile_json_is_refused_or_neutralised() {
        let big = vec![b' '; MAX_MATRIX_BYTES + 1];
        assert!(KernelMatrix::from_json(&big).is_err());
        assert!(KernelMatrix::from_json(b"{\"kernels\": 3}").is_err());
        let mut m = matrix();
        m.kernels[0].reason = Some("x".repeat(MAX_TEXT + 1));
        assert!(KernelMatrix::from_json(m.to_json().unwrap().as_bytes()).is_err());
        m.kernels[0].reason = Some("evil\x1b[2J\nline".into());
        assert!(m.render().contains("evil?[2J line"));
    }
}
