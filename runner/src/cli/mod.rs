//! The user-side commands, defined once for both binaries: `cargo ebpf` embeds
//! [`RunnerCommand`] next to its developer commands, and the standalone `ebpf-runner` is
//! [`RunnerCli`] alone. Everything here is wiring and printing; the work is in the stage
//! modules.
//!
//! - `packages`: `login`, `pull`, `list`, `rm`, `inspect`;
//! - `foreground`: `run`;
//! - `background`: `install`, `run -d`/`start`, `ps`, `logs`, `stop` and the hidden daemon;
//! - `trust`: `verify` and `trust add/list/rm`;
//! - `settings`: `config`, `search`, `logout`, `doctor`;
//! - `versions`: `outdated`, `upgrade`, `diff`.
//!
//! A reference the user types goes through [`full_reference`] first: short names
//! (`opensnoop`, `alice/opensnoop:0.2.0`) resolve through the configured default registry.

mod background;
mod foreground;
mod packages;
mod settings;
mod trust;
mod versions;

pub use settings::ConfigCommand;
pub use trust::TrustCommand;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::registry::{ClientOptions, Registry};
use crate::resolve::{self, Runnable};
use crate::store::Store;
use ebpf_package::{Error, Package, Reference, Result};

/// Turns a run target into a package when it is something only the host binary can read;
/// `None` when it is not one.
pub type ProjectHook = fn(&Path) -> Option<Result<Package>>;

/// What differs between the binaries that embed these commands.
pub struct Host {
    /// How users type this binary, for hints such as "`cargo ebpf stop ID` ends it".
    pub name: &'static str,
    /// Consulted before the runner's own resolution: `cargo ebpf` builds and packages a
    /// project directory here.
    pub build_project: Option<ProjectHook>,
}

impl Host {
    /// The standalone `ebpf-runner`: packages, layouts and objects only.
    pub const STANDALONE: Host = Host {
        name: "ebpf-runner",
        build_project: None,
    };
}

/// Pull and run eBPF packages: the user side of cargo-ebpf, without the build tools.
#[derive(Debug, Parser)]
#[command(name = "ebpf-runner", version)]
pub struct RunnerCli {
    #[command(subcommand)]
    pub command: RunnerCommand,
}

#[derive(Debug, Subcommand)]
pub enum RunnerCommand {
    /// Save registry credentials (docker config.json format).
    Login(LoginArgs),
    /// Download a package into the local store.
    Pull {
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Run a package, an OCI layout, a package.json, a .bpf.o or (cargo ebpf only) a project
    /// directory, printing its events.
    Run {
        #[command(flatten)]
        run: RunArgs,
        /// Run in the background (`ps`, `logs`, `stop` manage it).
        #[arg(short, long, conflicts_with = "check")]
        detach: bool,
    },
    /// List the packages in the local store.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a package from the local store (refused while a run uses it).
    Rm { reference: String },
    /// Show what a package holds (programs, maps, params, events, …) without loading it.
    Inspect {
        /// A registry reference, an OCI layout dir, a package.json, or a .bpf.o file.
        target: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Pull a package and check it can run here, without starting it.
    Install {
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Start a package in the background (same as `run -d`).
    Start(RunArgs),
    /// List the background runs.
    Ps {
        /// Include stopped runs.
        #[arg(short, long)]
        all: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a background run's output.
    Logs {
        id: String,
        /// Keep printing new output until the run ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Stop a background run and remove everything it left in the kernel and on disk.
    Stop { id: String },
    /// Check that a package on a registry is signed by a key (cosign-compatible signatures).
    Verify {
        reference: String,
        /// Public key (PEM `.pub` file); repeat to accept any of several.
        #[arg(long, value_name = "PUB", required = true)]
        key: Vec<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Manage the trust policy: which keys must sign packages from which scopes.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Search a hub's packages by words (name, description, keywords, owner).
    Search {
        #[arg(required = true)]
        words: Vec<String>,
        /// The hub to search (default: the host of `default-registry`).
        #[arg(long, value_name = "HUB")]
        registry: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Which page of results.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        page: u64,
        /// Results per page (at most 100).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100))]
        per_page: u64,
        #[command(flatten)]
        registry_args: RegistryArgs,
    },
    /// Read or change your settings (config.toml): `default-registry` for short names.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Forget the credentials saved for a registry.
    Logout {
        /// Registry host, e.g. `ghcr.io` or `127.0.0.1:5000`.
        registry: String,
    },
    /// List stored packages, and the background runs using them, that have a newer version.
    Outdated {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Pull the newest version (same major unless --latest), verified by the trust policy,
    /// and restart the background runs of the old one on it (rolled back if it fails).
    Upgrade {
        /// The package to upgrade (a stored reference or short name).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        reference: Option<String>,
        /// Upgrade every stored package.
        #[arg(long)]
        all: bool,
        /// Allow a new major version.
        #[arg(long)]
        latest: bool,
        /// Go ahead even when the diff shows breaking changes.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Show what changed between two versions: programs, maps, params, event fields,
    /// capabilities, host writes, runtime, size (breaking changes marked).
    Diff {
        /// The old package (reference, layout or short name); with --from/--to, the
        /// package whose versions to compare.
        old: String,
        /// The new package.
        #[arg(required_unless_present = "to", conflicts_with_all = ["from", "to"])]
        new: Option<String>,
        /// The old version of OLD.
        #[arg(long, value_name = "VERSION", requires = "to")]
        from: Option<String>,
        /// The new version of OLD.
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Copy packages with their signatures, attestations and every platform to another
    /// registry, byte for byte (e.g. to feed an air-gapped registry).
    Mirror {
        /// A reference (one tag), a repository without a tag (all its versions), or
        /// `@FILE` (references, one a line).
        source: String,
        /// The destination registry, `HOST[:PORT][/PREFIX]`; repository paths are kept.
        dest: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// What this machine has and lacks for building and running packages (programs with
    /// the package that installs each, privileges, kernel features).
    Doctor {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The daemon of a background run (started by `run -d`, not by hand).
    #[command(name = "__daemon", hide = true)]
    Daemon { id: String },
}

#[derive(Debug, Args, Default, Clone)]
pub struct RegistryArgs {
    /// Allow plain HTTP to a non-loopback registry (or package.json URL).
    #[arg(long)]
    pub insecure: bool,
    /// Refuse packages not signed by a trusted key, even outside every trust scope.
    #[arg(long)]
    pub require_signed: bool,
    /// Give up a pull, login or URL fetch after SECS seconds in all (default 60, or
    /// $CARGO_EBPF_TIMEOUT).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// A mirror to try when the registry fails, instead of those in config.toml (repeat
    /// for several, tried in order): `HOST[:PORT][/PREFIX]`.
    #[arg(long, value_name = "HOST")]
    pub mirror: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host, e.g. `ghcr.io` or `127.0.0.1:5000`.
    pub registry: String,
    #[arg(short, long)]
    pub username: String,
    /// The password (prefer --password-stdin: arguments are visible to other users).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputArg {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A registry reference, an OCI layout dir, a package.json, a .bpf.o file, or (cargo ebpf
    /// only) a project directory, built first.
    pub target: String,
    /// How to print events.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputArg,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Load and attach (kernel-only packages), then detach and exit: 0 when every program
    /// loaded and attached. Prints one JSON line, `{"check":"pass"}` or
    /// `{"check":"fail",…}` with the error and the verifier's log, for scripts and
    /// `cargo ebpf test-kernels`.
    #[arg(long, conflicts_with_all = ["duration", "interval", "metrics"])]
    pub check: bool,
    /// Kernel BTF to use instead of /sys/kernel/btf/vmlinux.
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,
    /// Network interface for XDP and tc programs.
    #[arg(long, value_name = "NAME")]
    pub iface: Option<String>,
    /// Cgroup v2 directory for cgroup programs (default: the root cgroup).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,
    /// Binary (and function) for uprobes whose section names none.
    #[arg(long, value_name = "BINARY[:FUNCTION]")]
    pub uprobe: Option<String>,
    /// Samples per second per CPU for perf_event programs (default 49).
    #[arg(long, value_name = "HZ")]
    pub frequency: Option<u64>,
    /// Print the program's maps (counters, tables, histograms) every SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub interval: Option<u64>,
    /// Serve the maps in Prometheus text format on ADDR (e.g. 127.0.0.1:9435).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Container engine for container packages: docker or podman (default: detected).
    #[arg(long, value_name = "PROGRAM")]
    pub engine: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Arguments for the program, after `--` (`-- --help` lists them).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Runs one command; returns the exit code (non-zero only when `run` started a packaged
/// loader that exited with it).
pub fn execute(command: RunnerCommand, host: &Host) -> Result<i32> {
    crate::program::set_name(host.name);
    match command {
        RunnerCommand::Run { run, detach: false } => foreground::run(&run, host),
        RunnerCommand::Run { run, detach: true } | RunnerCommand::Start(run) => {
            background::start(&run, host)
        }
        RunnerCommand::Daemon { id } => crate::lifecycle::daemon_main(&id),
        RunnerCommand::Login(args) => packages::login(&args),
        RunnerCommand::Pull {
            reference,
            registry,
        } => packages::pull(&reference, &registry),
        RunnerCommand::Search {
            words,
            registry,
            json,
            page,
            per_page,
            registry_args,
        } => settings::search(
            &words.join(" "),
            registry.as_deref(),
            json,
            (page, per_page),
            &registry_args,
        ),
        RunnerCommand::Config(command) => settings::config(command),
        RunnerCommand::Logout { registry } => settings::logout(&registry),
        RunnerCommand::Doctor { json } => settings::doctor(json),
        RunnerCommand::Mirror {
            source,
            dest,
            registry,
        } => versions::mirror(&source, &dest, &registry),
        RunnerCommand::Outdated { json, registry } => versions::outdated(json, &registry),
        RunnerCommand::Upgrade {
            reference,
            all: _,
            latest,
            yes,
            registry,
        } => versions::upgrade(reference.as_deref(), latest, yes, &registry, host),
        RunnerCommand::Diff {
            old,
            new,
            from,
            to,
            json,
            registry,
        } => versions::diff(
            &old,
            new.as_deref(),
            (from.as_deref(), to.as_deref()),
            json,
            &registry,
        ),
        RunnerCommand::List { json } => packages::list(json),
        RunnerCommand::Rm { reference } => packages::rm(&reference, host),
        RunnerCommand::Inspect {
            target,
            json,
            registry,
        } => packages::inspect(&target, json, &registry, host),
        RunnerCommand::Install {
            reference,
            registry,
        } => {
            let registry = self::registry(&registry)?;
            let reference = full_reference(&reference, &registry)?;
            background::install(&reference, &registry, host)
        }
        RunnerCommand::Ps { all, json } => background::ps(all, json),
        RunnerCommand::Logs { id, follow } => background::logs(&id, follow),
        RunnerCommand::Stop { id } => background::stop(&id),
        RunnerCommand::Verify {
            reference,
            key,
            registry,
        } => trust::verify(&reference, &key, &registry),
        RunnerCommand::Trust(command) => trust::trust(command, host),
    }
}

/// Writes one line of command output to stdout. When the reader went away (`… | head`),
/// the command stops quietly with exit 0, as a Unix filter would, instead of panicking.
pub fn out_line(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("cannot write to stdout: {e}");
        std::process::exit(ebpf_package::ErrorKind::Io.exit_code());
    }
}

/// `println!` for command output, through [`out_line`].
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::out_line(format_args!($($arg)*)) };
}
pub(crate) use outln;

/// How every binary's `main` ends: the command's exit code, or its error as a report on
/// stderr with the error kind's exit code.
pub fn exit(result: Result<i32>) -> ! {
    let err = match result {
        Ok(code) => std::process::exit(code),
        Err(err) => err,
    };
    let code = err.exit_code();
    let details = err.details.clone();
    eprintln!("{:?}", miette::Report::new(err));
    if let Some(details) = details {
        eprintln!("{details}");
    }
    std::process::exit(code)
}

/// The registry client these flags ask for, with the environment's credentials; the
/// deadline is `--timeout`, else `CARGO_EBPF_TIMEOUT`, else the default.
pub fn registry(args: &RegistryArgs) -> Result<Registry> {
    let timeout = match args.timeout {
        Some(secs) => Some(std::time::Duration::from_secs(secs)),
        None => crate::registry::timeout_from_env()?,
    };
    Ok(Registry::from_env(ClientOptions {
        insecure: args.insecure,
        progress: std::io::stdout().is_terminal(),
        require_signed: args.require_signed,
        timeout,
        mirrors: (!args.mirror.is_empty()).then(|| args.mirror.clone()),
    }))
}

/// What `run`/`start` point at: the host's project hook first, then the runner's own
/// resolution (file, layout, reference → store or registry). Also returns the target as
/// resolved: a short name becomes its full reference.
fn resolve_run_target(args: &RunArgs, host: &Host) -> Result<(Runnable, String)> {
    let built = host
        .build_project
        .and_then(|build| build(Path::new(&args.target)));
    if let Some(pkg) = built {
        return Ok((Runnable::Package(Box::new(pkg?)), args.target.clone()));
    }
    let registry = registry(&args.registry)?;
    let target = full_target(&args.target, &registry)?;
    let runnable = resolve::resolve(&target, &registry, Store::open_default)?;
    Ok((runnable, target))
}

/// A run or inspect target made full: paths and URLs as they are, references through
/// [`full_reference`].
fn full_target(target: &str, registry: &Registry) -> Result<String> {
    if !resolve::is_reference(target) {
        return Ok(target.to_string());
    }
    full_reference(target, registry).map(|r| r.to_string())
}

/// A reference as the user typed it, made full. A short name (`opensnoop`,
/// `alice/opensnoop:0.2.0`) resolves through the configured default registry, and without
/// a tag to the newest version its repository offers; what it resolved to is said on
/// stderr. A full reference is taken as it is.
pub fn full_reference(text: &str, registry: &Registry) -> Result<Reference> {
    let expanded = crate::config::expand(text)?;
    let mut reference = Reference::parse(&expanded)?;
    if !crate::config::is_short_name(text) {
        return Ok(reference);
    }
    let last = text.rsplit('/').next().unwrap_or(text);
    if !last.contains(':') && !last.contains('@') {
        if let Some(newest) = crate::versions::offered(registry, &reference)?.last() {
            reference = reference.with_tag(&newest.tag);
        }
    }
    eprintln!("    Resolved {text} to {reference}");
    Ok(reference)
}

fn stdout_error(e: std::io::Error) -> Error {
    Error::io("write", Path::new("<stdout>"), e)
}
