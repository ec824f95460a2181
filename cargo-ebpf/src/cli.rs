//! Command-line interface: argument definitions and one dispatch function per command.
//! Everything here is wiring; the work happens in the stage modules and in `ebpf_runner`.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use ebpf_runner::registry::{self, ClientOptions};
use ebpf_runner::resolve::{self, Runnable};
use ebpf_runner::run::{self, AttachOptions, Output, RunOptions};
use ebpf_runner::store::Store;
use ebpf_runner::{Error, Package, Result};

use crate::build::{self, container, BuildOptions, BuildOutput};
use crate::lifecycle;
use crate::manifest::{self, Project};
use crate::package;
use crate::scaffold::{self, PackSource};

/// Write, build, package, publish and run eBPF programs.
#[derive(Debug, Parser)]
#[command(name = "cargo-ebpf", bin_name = "cargo ebpf", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new eBPF project from a template pack.
    New(NewArgs),
    /// Compile the project's eBPF program into target/ebpf/.
    Build(BuildArgs),
    /// Build, then write the package as an OCI image layout (target/ebpf/oci).
    Package(BuildArgs),
    /// Build, package and push to REF (`host[:port]/repo:tag`).
    Push {
        reference: String,
        #[command(flatten)]
        build: BuildArgs,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Build, package and push to the manifest's registry, tagged with the version.
    Publish {
        #[command(flatten)]
        build: BuildArgs,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Save registry credentials (docker config.json format).
    Login(LoginArgs),
    /// Download a package into the local store.
    Pull {
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Run a package, an OCI layout, a .bpf.o, or a project directory, printing its events.
    Run(RunArgs),
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
    /// The daemon of a background run (started by `run -d`, not by hand).
    #[command(name = "__daemon", hide = true)]
    Daemon { id: String },
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The project name (lowercase letters, digits, '-', '_').
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// A built-in template pack (`--list` shows them).
    #[arg(long, default_value = "eunomia")]
    pub lang: String,
    /// A template pack of your own: a directory, or a git URL (`URL#REV` for a branch, tag or
    /// commit).
    #[arg(long, value_name = "PATH|GIT-URL", conflicts_with = "lang")]
    pub template: Option<String>,
    /// The git branch, tag or commit of --template.
    #[arg(long, requires = "template")]
    pub rev: Option<String>,
    /// Where to create the project (default: ./NAME).
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// List the built-in template packs.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Args, Default)]
pub struct BuildArgs {
    /// Path to ebpf.toml or the project directory (default: search from the current directory).
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Kernel BTF to build against (default: /sys/kernel/btf/vmlinux).
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,
    /// Target architectures, comma-separated, either naming (`x86_64,arm64`); default the
    /// host's. Several give a multi-arch package (an OCI image index).
    #[arg(long, value_delimiter = ',', value_name = "ARCH[,ARCH...]")]
    pub arch: Vec<String>,
    /// Build inside a builder image with podman or docker (the host needs no toolchain).
    #[arg(long)]
    pub container: bool,
    /// Container engine for --container (default: $CARGO_EBPF_CONTAINER_ENGINE, else podman
    /// if installed, else docker).
    #[arg(long, value_enum, requires = "container")]
    pub engine: Option<container::Engine>,
    /// Builder image for --container (default: $CARGO_EBPF_BUILDER_IMAGE, else
    /// ghcr.io/cargo-ebpf/builder:VERSION).
    #[arg(long, value_name = "IMAGE", requires = "container")]
    pub image: Option<String>,
    /// Print the build's outputs as JSON on stdout (used by --container's inner build).
    #[arg(long, hide = true)]
    pub print_outputs: bool,
}

#[derive(Debug, Args, Default, Clone)]
pub struct RegistryArgs {
    /// Allow plain HTTP to a non-loopback registry.
    #[arg(long)]
    pub insecure: bool,
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
    /// A registry reference, an OCI layout dir, a .bpf.o file, or a project directory.
    pub target: String,
    /// How to print events.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputArg,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
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
    /// Run in the background (`ps`, `logs`, `stop` manage it).
    #[arg(short, long)]
    pub detach: bool,
    /// Container engine for container packages: docker or podman (default: detected).
    #[arg(long, value_name = "PROGRAM")]
    pub engine: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Arguments for the program, after `--` (`-- --help` lists them).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Parses arguments, accepting both `cargo ebpf …` (cargo passes "ebpf" first) and `cargo-ebpf …`.
pub fn parse_args() -> Cli {
    let mut args: Vec<_> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "ebpf") {
        args.remove(1);
    }
    Cli::parse_from(args)
}

/// Runs one command; returns the exit code (non-zero only when `run` started a packaged
/// loader that exited with it).
pub fn execute(cli: Cli) -> Result<i32> {
    match &cli.command {
        Command::Run(args) if args.detach => return lifecycle::cmd_start(args).map(|()| 0),
        Command::Run(args) => return cmd_run(args),
        Command::Start(args) => return lifecycle::cmd_start(args).map(|()| 0),
        Command::Daemon { id } => return lifecycle::cmd_daemon(id),
        _ => {}
    }
    match cli.command {
        Command::New(args) => cmd_new(&args),
        Command::Build(args) => cmd_build(&args).map(|_| ()),
        Command::Package(args) => cmd_package(&args),
        Command::Push {
            reference,
            build,
            registry,
        } => cmd_push(&build, Some(&reference), &registry),
        Command::Publish { build, registry } => cmd_push(&build, None, &registry),
        Command::Login(args) => cmd_login(&args),
        Command::Pull {
            reference,
            registry,
        } => cmd_pull(&reference, &registry),
        Command::Run(_) | Command::Start(_) | Command::Daemon { .. } => {
            unreachable!("handled above")
        }
        Command::List { json } => cmd_list(json),
        Command::Rm { reference } => cmd_rm(&reference),
        Command::Inspect {
            target,
            json,
            registry,
        } => cmd_inspect(&target, json, &registry),
        Command::Install {
            reference,
            registry,
        } => lifecycle::cmd_install(&reference, &client_options(&registry)),
        Command::Ps { all, json } => lifecycle::cmd_ps(all, json),
        Command::Logs { id, follow } => lifecycle::cmd_logs(&id, follow),
        Command::Stop { id } => lifecycle::cmd_stop(&id),
    }
    .map(|()| 0)
}

pub(crate) fn client_options(args: &RegistryArgs) -> ClientOptions {
    ClientOptions {
        insecure: args.insecure,
        progress: std::io::stdout().is_terminal(),
    }
}

fn cmd_new(args: &NewArgs) -> Result<()> {
    if args.list {
        print!("{}", scaffold::format_pack_list(&scaffold::packs()));
        return Ok(());
    }
    let name = args.name.as_deref().unwrap_or_default();
    let source = match &args.template {
        Some(template) => PackSource::from_template(template, args.rev.as_deref()),
        None => PackSource::Builtin(args.lang.clone()),
    };
    let dir = scaffold::new_project_from(
        name,
        args.path.as_deref(),
        &source,
        &scaffold::Identity::detect(),
    )?;
    eprintln!(
        "     Created `{name}` in {} ({})",
        dir.display(),
        source.describe()
    );
    eprintln!(
        "Next: cd {} && cargo ebpf build && sudo cargo ebpf run .",
        dir.display()
    );
    Ok(())
}

fn load_project(args: &BuildArgs) -> Result<Project> {
    match &args.manifest_path {
        Some(path) => Project::discover(project_dir(path)),
        None => {
            let cwd = std::env::current_dir().map_err(|e| Error::io("read", Path::new("."), e))?;
            Project::discover(&cwd)
        }
    }
}

fn build_options(args: &BuildArgs) -> BuildOptions {
    BuildOptions {
        btf: args.btf.clone(),
        arch: None,
    }
}

/// Builds every `--arch`, on the host or (`--container`) in the builder image.
fn cmd_build(args: &BuildArgs) -> Result<(Project, Vec<BuildOutput>)> {
    let project = load_project(args)?;
    let opts = build_options(args);
    let built = if args.container {
        let container = container::ContainerOptions {
            engine: args.engine,
            image: args.image.clone(),
        };
        container::build_all(&project, &opts, &container, &args.arch)?
    } else {
        build::build_all(&project, &opts, &args.arch)?
    };
    if args.print_outputs {
        let json = serde_json::to_string(&built).expect("build outputs serialize");
        println!("{json}");
    }
    Ok((project, built))
}

fn cmd_package(args: &BuildArgs) -> Result<()> {
    let (project, built) = cmd_build(args)?;
    let out = package::package(&project, &built)?;
    eprintln!(
        "    Packaged {} v{} for {} → {} (oci:{}:{}, {})",
        project.manifest.package.name,
        project.manifest.package.version,
        out.arches.join(", "),
        out.layout_dir.display(),
        out.layout_dir.display(),
        out.tag,
        out.digest
    );
    Ok(())
}

fn cmd_push(args: &BuildArgs, reference: Option<&str>, reg: &RegistryArgs) -> Result<()> {
    let (project, built) = cmd_build(args)?;
    let reference = match reference {
        Some(r) => r.to_string(),
        None => project.reference()?,
    };
    let release = package::build_release(&project, &built)?;
    let digest = registry::push_release(&release, &reference, &client_options(reg))?;
    let arches: Vec<&str> = built.iter().map(|b| b.arch.as_str()).collect();
    eprintln!("      Pushed {reference} ({})", arches.join(", "));
    println!("{reference}@{digest}");
    Ok(())
}

fn cmd_login(args: &LoginArgs) -> Result<()> {
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => read_password_stdin()?,
        (None, false) => {
            return Err(Error::usage("no password given")
                .with_help("pass --password-stdin and pipe the password in, or use --password"))
        }
    };
    let path = registry::login(
        &args.registry,
        &args.username,
        &password,
        &client_options(&args.registry_args),
    )?;
    eprintln!("Login succeeded; credentials saved in {}", path.display());
    Ok(())
}

fn read_password_stdin() -> Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Error::io("read", Path::new("<stdin>"), e))?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

fn cmd_pull(reference: &str, reg: &RegistryArgs) -> Result<()> {
    let pkg = registry::pull_into(&Store::open_default()?, reference, &client_options(reg))?;
    eprintln!("      Pulled {reference}");
    println!("{}", pkg.digest());
    Ok(())
}

fn cmd_run(args: &RunArgs) -> Result<i32> {
    let opts = RunOptions {
        output: match args.output {
            OutputArg::Table => Output::Table,
            OutputArg::Json => Output::Json,
        },
        duration: args.duration.map(Duration::from_secs),
        args: args.args.clone(),
        btf: args.btf.clone(),
        attach: AttachOptions {
            iface: args.iface.clone(),
            cgroup: args.cgroup.clone(),
            uprobe: args.uprobe.clone(),
            frequency: args.frequency,
        },
        interval: interval(args.interval)?,
        metrics: args.metrics.clone(),
        engine: args.engine.clone(),
        detached: None,
    };
    let runnable = resolve_run_target(args)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let code = match runnable {
        Runnable::Package(pkg) => run::run_package(&pkg, &opts, &mut out)?,
        Runnable::Object { name, bytes } => {
            run::run_object(&name, &bytes, None, &opts, &mut out).map(|()| 0)?
        }
    };
    out.flush()
        .map_err(|e| Error::io("write", Path::new("<stdout>"), e))?;
    Ok(code)
}

fn interval(secs: Option<u64>) -> Result<Option<Duration>> {
    match secs {
        Some(0) => Err(Error::usage("--interval must be at least 1 second")
            .with_help("pass how often to print the maps, e.g. --interval 1")),
        other => Ok(other.map(Duration::from_secs)),
    }
}

/// A project directory is built and packaged first; anything else goes to the runner.
pub(crate) fn resolve_run_target(args: &RunArgs) -> Result<Runnable> {
    let path = Path::new(&args.target);
    if path.join(manifest::FILE_NAME).is_file() {
        let build_args = BuildArgs {
            manifest_path: Some(path.to_path_buf()),
            ..Default::default()
        };
        let project = load_project(&build_args)?;
        let built = build::build(&project, &build_options(&build_args))?;
        let pkg: Package = package::build_package(&project, &built)?;
        return Ok(Runnable::Package(Box::new(pkg)));
    }
    resolve::resolve(
        &args.target,
        &client_options(&args.registry),
        Store::open_default,
    )
}

fn cmd_list(json: bool) -> Result<()> {
    let entries = Store::open_default()?.list()?;
    if json {
        let text = serde_json::to_string_pretty(&entries).expect("store entries serialize");
        println!("{text}");
        return Ok(());
    }
    println!(
        "{:<50} {:<12} {:<10} {:<19} {:>8}",
        "REFERENCE", "VERSION", "FORMAT", "DIGEST", "SIZE"
    );
    for e in entries {
        let short = e
            .digest
            .trim_start_matches("sha256:")
            .get(..12)
            .unwrap_or("")
            .to_string();
        let version = e.version.unwrap_or_default();
        let format = e.format.unwrap_or_else(|| "?".into());
        println!(
            "{:<50} {:<12} {:<10} sha256:{:<12} {:>8}",
            e.reference, version, format, short, e.size
        );
    }
    Ok(())
}

fn cmd_inspect(target: &str, json: bool, reg: &RegistryArgs) -> Result<()> {
    let report = ebpf_runner::inspect::inspect(target, &client_options(reg), Store::open_default)?;
    if json {
        let text = serde_json::to_string_pretty(&report).expect("reports serialize");
        println!("{text}");
    } else {
        print!("{}", ebpf_runner::inspect::render(&report));
    }
    Ok(())
}

fn cmd_rm(reference: &str) -> Result<()> {
    lifecycle::refuse_if_running(reference)?;
    if Store::open_default()?.remove(reference)? {
        eprintln!("     Removed {reference}");
        Ok(())
    } else {
        Err(
            Error::input(format!("{reference} is not in the local store"))
                .with_help("`cargo ebpf list` shows what is"),
        )
    }
}

/// `--manifest-path` may name the file or its directory.
fn project_dir(path: &Path) -> &Path {
    match path.file_name() {
        Some(n) if n == manifest::FILE_NAME => path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
        _ => path,
    }
}
