//! The one error type of cargo-ebpf and its runner.
//!
//! Every failure carries a kind (which decides the process exit code), a one-sentence
//! message and, where we know it, help that says what to do next, and keeps its cause
//! (`std::error::Error::source`) rather than pasting it into the message. Constructors are
//! short so that call sites read like prose: `Error::input("…").with_help("…")`.

use std::path::Path;

/// What went wrong, broadly. Decides the exit code; stable so scripts can rely on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad command-line usage: unknown flag, bad value.
    Usage,
    /// Bad input from the user: manifest, ELF, package, archive, reference.
    Input,
    /// The machine lacks something: a tool, kernel BTF, a mount, a permission.
    Environment,
    /// The compiler (or another build tool) failed.
    Build,
    /// Talking to a registry failed: unreachable, refused, not found.
    Registry,
    /// Credentials were missing or rejected.
    Auth,
    /// Content did not match its digest, or was otherwise tampered with.
    Integrity,
    /// The kernel refused: verifier rejection, attach failure.
    Kernel,
    /// A local file operation failed.
    Io,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Usage,
        ErrorKind::Input,
        ErrorKind::Environment,
        ErrorKind::Build,
        ErrorKind::Registry,
        ErrorKind::Auth,
        ErrorKind::Integrity,
        ErrorKind::Kernel,
        ErrorKind::Io,
    ];

    /// The process exit code for this kind (documented in docs/cli.md).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Usage => 2,
            ErrorKind::Input => 3,
            ErrorKind::Environment => 4,
            ErrorKind::Build => 5,
            ErrorKind::Registry => 6,
            ErrorKind::Auth => 7,
            ErrorKind::Integrity => 8,
            ErrorKind::Kernel => 9,
            ErrorKind::Io => 10,
        }
    }

    /// The kind whose [`exit_code`](Self::exit_code) is `code`, if any: how a parent reads
    /// the exit of a cargo-ebpf it started (a daemon, the build inside a container).
    pub fn from_exit_code(code: i32) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|k| k.exit_code() == code)
    }

    /// A stable machine-readable name for the kind (`ebpf::input`), as diagnostics show it.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Usage => "ebpf::usage",
            ErrorKind::Input => "ebpf::input",
            ErrorKind::Environment => "ebpf::environment",
            ErrorKind::Build => "ebpf::build",
            ErrorKind::Registry => "ebpf::registry",
            ErrorKind::Auth => "ebpf::auth",
            ErrorKind::Integrity => "ebpf::integrity",
            ErrorKind::Kernel => "ebpf::kernel",
            ErrorKind::Io => "ebpf::io",
        }
    }
}

/// A cause kept behind an [`Error`].
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error type used everywhere in cargo-ebpf.
#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub help: Option<String>,
    /// Extra text shown after the message, verbatim (compiler output, verifier log tail).
    pub details: Option<String>,
    /// What caused it (an I/O, HTTP or parse error), shown after the message by the CLI.
    pub source: Option<Cause>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            help: None,
            details: None,
            source: None,
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Input, message)
    }
    pub fn environment(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Environment, message)
    }
    pub fn build(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Build, message)
    }
    pub fn registry(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Registry, message)
    }
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }
    pub fn integrity(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Integrity, message)
    }
    pub fn kernel(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Kernel, message)
    }

    /// An I/O error on `path`, saying what we were doing.
    pub fn io(action: &str, path: &Path, err: std::io::Error) -> Self {
        let kind = if err.kind() == std::io::ErrorKind::PermissionDenied {
            ErrorKind::Environment
        } else {
            ErrorKind::Io
        };
        let mut e = Self::new(kind, format!("cannot {action} {}", path.display())).with_source(err);
        if kind == ErrorKind::Environment {
            e.help = Some(
                "check the file's owner and mode, or run as a user who may write there".into(),
            );
        }
        e
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    /// Keeps `cause` as this error's source.
    pub fn with_source(mut self, cause: impl Into<Cause>) -> Self {
        self.source = Some(cause.into());
        self
    }

    /// The message followed by each cause: "cannot read x: permission denied". For text
    /// that must stand alone (logs, HTTP bodies, another error's message).
    pub fn full_message(&self) -> String {
        let mut text = self.message.clone();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    pub fn exit_code(&self) -> i32 {
        self.kind.exit_code()
    }

    /// Prefixes the message with the file it is about.
    pub fn with_context_path(mut self, path: &Path) -> Self {
        self.message = format!("{}: {}", path.display(), self.message);
        self
    }
}

#[cfg(feature = "diagnostic")]
impl miette::Diagnostic for Error {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.kind.code()))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
}
