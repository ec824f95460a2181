//! Command-line interface: argument definitions and one dispatch function per command.
//! Everything here is wiring; the work happens in the stage modules and in `ebpf_runner`.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use ebpf_runner::registry::{self, ClientOptions};
use ebpf_runner::resolve::{self, Runnable};
use ebpf_runner::run::{self, Output, RunOptions};
use ebpf_runner::store::Store;
use ebpf_runner::{Error, Package, Result};

use crate::build::{self, BuildOptions, BuildOutput};
use crate::manifest::{self, Project};
use crate::package;
use crate::scaffold::{self, NewOptions};

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
    /// Remove a package from the local store.
    Rm { reference: String },
    /// Run the hub: an OCI registry for packages with a web store on top.
    #[cfg(feature = "hub")]
    #[command(subcommand)]
    Hub(HubCommand),
}

#[cfg(feature = "hub")]
#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Serve the registry API (/v2/) and the web pages until SIGINT/SIGTERM.
    Serve {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
        addr: String,
        /// Blobs, uploads and the SQLite database live here.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Keep metadata in Postgres instead (postgres://USER@HOST:PORT/DB), shared by
        /// several hub processes.
        #[arg(long, value_name = "URL", env = "CARGO_EBPF_HUB_DATABASE")]
        database: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The project name (lowercase letters, digits, '-', '_').
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// The template pack.
    #[arg(long, default_value = "eunomia")]
    pub lang: String,
    /// Where to create the project (default: ./NAME).
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// List the template packs.
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
    /// Target architecture (default: the host's).
    #[arg(long)]
    pub arch: Option<String>,
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
    if let Command::Run(args) = &cli.command {
        return cmd_run(args);
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
        Command::Run(_) => unreachable!("handled above"),
        Command::List { json } => cmd_list(json),
        Command::Rm { reference } => cmd_rm(&reference),
        #[cfg(feature = "hub")]
        Command::Hub(HubCommand::Serve {
            addr,
            data,
            database,
        }) => hub::serve(hub::ServeOptions {
            addr,
            data,
            database,
        }),
    }
    .map(|()| 0)
}

fn client_options(args: &RegistryArgs) -> ClientOptions {
    ClientOptions {
        insecure: args.insecure,
        progress: std::io::stdout().is_terminal(),
    }
}

fn cmd_new(args: &NewArgs) -> Result<()> {
    if args.list {
        for pack in scaffold::packs() {
            println!("{:<10} {}", pack.name, pack.description);
        }
        return Ok(());
    }
    let name = args.name.as_deref().unwrap_or_default();
    let dir = scaffold::new_project(&NewOptions {
        name,
        lang: &args.lang,
        path: args.path.as_deref(),
    })?;
    eprintln!(
        "     Created `{name}` ({} pack) in {}",
        args.lang,
        dir.display()
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
        arch: args.arch.clone(),
    }
}

fn cmd_build(args: &BuildArgs) -> Result<(Project, BuildOutput)> {
    let project = load_project(args)?;
    let built = build::build(&project, &build_options(args))?;
    Ok((project, built))
}

fn cmd_package(args: &BuildArgs) -> Result<()> {
    let (project, built) = cmd_build(args)?;
    let out = package::package(&project, &built)?;
    eprintln!(
        "    Packaged {} v{} → {} (oci:{}:{}, {})",
        project.manifest.package.name,
        project.manifest.package.version,
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
    let pkg = package::build_package(&project, &built)?;
    let digest = registry::push(&pkg, &reference, &client_options(reg))?;
    eprintln!("      Pushed {reference}");
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

/// A project directory is built and packaged first; anything else goes to the runner.
fn resolve_run_target(args: &RunArgs) -> Result<Runnable> {
    let path = Path::new(&args.target);
    if path.join(manifest::FILE_NAME).is_file() {
        let build_args = BuildArgs {
            manifest_path: Some(path.to_path_buf()),
            ..Default::default()
        };
        let (project, built) = cmd_build(&build_args)?;
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
        "{:<50} {:<12} {:<19} {:>8}",
        "REFERENCE", "VERSION", "DIGEST", "SIZE"
    );
    for e in entries {
        let short = e
            .digest
            .trim_start_matches("sha256:")
            .get(..12)
            .unwrap_or("")
            .to_string();
        let version = e.version.unwrap_or_default();
        println!(
            "{:<50} {:<12} sha256:{:<12} {:>8}",
            e.reference, version, short, e.size
        );
    }
    Ok(())
}

fn cmd_rm(reference: &str) -> Result<()> {
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
