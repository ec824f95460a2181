//! Command-line interface: the developer commands (`new`, `build`, `package`, `push`,
//! `publish`, `sign`, `key generate`), with the user-side ones embedded from [`ebpf_runner::cli`] (shared with the
//! standalone `ebpf-runner`). Everything here is wiring; the work happens in the stage modules.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use ebpf_package::image_index::Release;
use ebpf_package::kernel_matrix::KernelMatrix;
use ebpf_package::provenance::{BuildFacts, Statement};
use ebpf_package::signature::PrivateKey;
use ebpf_package::spec;
use ebpf_package::{Error, Package, Reference, Result};
use ebpf_runner::cli::{self as runner_cli, out_line, Host, RegistryArgs, RunnerCommand};
use ebpf_runner::{attestation, hub_api, signing};

use crate::build::{self, container, BuildOptions, BuildOutput};
use crate::kernels::command::{self, TestKernelsArgs};
use crate::keys;
use crate::manifest::{self, Project};
use crate::package;
use crate::provenance;
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
    /// Make an existing folder of BPF sources (NAME.bpf.c, NAME.h) a project: writes only
    /// its ebpf.toml, never replacing a file.
    Init(InitArgs),
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
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Build, package and push to the manifest's registry, tagged with the version.
    Publish {
        #[command(flatten)]
        build: BuildArgs,
        #[command(flatten)]
        registry: RegistryArgs,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Yank a published version on its hub (it stays pullable by exact version but is no
    /// longer offered), or with --undo bring it back. Uses your login for the hub.
    Yank {
        /// The version to yank: HUB/USER/NAME:VERSION.
        reference: String,
        /// Unyank: offer the version again.
        #[arg(long)]
        undo: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Sign a pushed package (an index and each of its platforms) with a private key,
    /// stored on the registry as cosign does (tag `sha256-<hex>.sig`).
    Sign {
        reference: String,
        /// Private key file (`PREFIX.key` from `cargo ebpf key generate`).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Read the key's password from stdin (else CARGO_EBPF_KEY_PASSWORD or COSIGN_PASSWORD).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Manage signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Boot each kernel in a throw-away QEMU VM, load and attach the package there, and
    /// print a kernel × result matrix (the verifier's reason where one fails).
    TestKernels(TestKernelsArgs),
    /// Print a shell completion script (e.g. `cargo ebpf completions bash > ~/.local/share/bash-completion/completions/cargo-ebpf`).
    Completions {
        #[arg(value_enum)]
        shell: crate::shell::CompletionShell,
    },
    /// Write a man page per command (cargo-ebpf.1, cargo-ebpf-run.1, …).
    InstallMan {
        /// Where to write them (default: ~/.local/share/man/man1, or $XDG_DATA_HOME/man/man1).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The user-side commands (`pull`, `run`, `ps`, …), shared with the standalone runner.
    #[command(flatten)]
    Runner(RunnerCommand),
    /// Run the hub: an OCI registry for packages with a web store on top.
    #[cfg(feature = "hub")]
    #[command(subcommand)]
    Hub(HubCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new ECDSA P-256 key pair: PREFIX.key (private, mode 0600) and PREFIX.pub.
    Generate {
        prefix: PathBuf,
        /// Read the password that encrypts PREFIX.key from stdin (else
        /// CARGO_EBPF_KEY_PASSWORD or COSIGN_PASSWORD).
        #[arg(long, conflicts_with = "no_password")]
        password_stdin: bool,
        /// Write PREFIX.key unencrypted.
        #[arg(long)]
        no_password: bool,
    },
}

/// `--sign KEY` for push and publish.
#[derive(Debug, Args, Default)]
pub struct SignArgs {
    /// Sign what was pushed with this private key (see `cargo ebpf sign`).
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// Read the key's password from stdin (else CARGO_EBPF_KEY_PASSWORD or COSIGN_PASSWORD).
    #[arg(long, requires = "sign")]
    pub password_stdin: bool,
    /// Attach this kernel matrix (`cargo ebpf test-kernels --output FILE` of this very
    /// build) as a signed attestation.
    #[arg(long, value_name = "FILE", requires = "sign")]
    pub kernel_matrix: Option<PathBuf>,
    /// Test the x86_64 package on the cached kernels first (as `test-kernels` does) and
    /// attach the matrix as a signed attestation.
    #[arg(long, requires = "sign", conflicts_with = "kernel_matrix")]
    pub test_kernels: bool,
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
        /// Where verified blobs go: `file` (DIR/blobs, the default) or an OCI registry whose
        /// own storage scales, `registry+http(s)://[USER:PASS@]HOST[:PORT]/REPO`.
        #[arg(long, value_name = "URL", env = "CARGO_EBPF_HUB_BLOB_STORE")]
        blob_store: Option<String>,
        /// How to reach the hub's operators (an email address or a URL), shown on /about.
        #[arg(long, value_name = "CONTACT", env = "CARGO_EBPF_HUB_CONTACT")]
        contact: Option<String>,
        /// Browsers reach the hub over HTTPS (directly or through a TLS-terminating proxy):
        /// mark cookies Secure and send HSTS.
        #[arg(long, env = "CARGO_EBPF_HUB_SECURE_COOKIES")]
        secure_cookies: bool,
        /// Most bytes of blobs one user's repositories may hold.
        #[arg(long, value_name = "BYTES", default_value_t = hub::DEFAULT_USER_QUOTA)]
        user_quota: u64,
    },
    /// Delete blobs that no manifest references (uploads whose manifest never came, layers
    /// of deleted manifests). `hub serve` also does this every hour.
    Gc {
        #[command(flatten)]
        store: HubStoreArgs,
        /// The blob store `serve` uses (see `hub serve --blob-store`).
        #[arg(long, value_name = "URL", env = "CARGO_EBPF_HUB_BLOB_STORE")]
        blob_store: Option<String>,
        /// Leave blobs unreferenced for less than this many hours (pushes in progress).
        #[arg(long, default_value_t = 24)]
        grace_hours: i64,
    },
    /// Manage accounts directly in the hub's database (no server or browser needed).
    #[command(subcommand)]
    User(HubUserCommand),
    /// Manage API tokens directly in the hub's database.
    #[command(subcommand)]
    Token(HubTokenCommand),
}

/// Where an admin command finds the hub's metadata: the same --data/--database as `serve`.
#[cfg(feature = "hub")]
#[derive(Debug, Args)]
pub struct HubStoreArgs {
    /// The hub's data dir (holds the SQLite database unless --database is given).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The hub's Postgres database, when it uses one.
    #[arg(long, value_name = "URL", env = "CARGO_EBPF_HUB_DATABASE")]
    database: Option<String>,
}

#[cfg(feature = "hub")]
#[derive(Debug, Subcommand)]
pub enum HubUserCommand {
    /// Create an account (the same rules as /register).
    Add {
        name: String,
        /// Read the password from stdin (required: arguments are visible to other users).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        store: HubStoreArgs,
    },
    /// Make USER an admin of the hub's web store (feature and hide packages, disable
    /// users), or with --revoke take the role back.
    Admin {
        name: String,
        #[arg(long)]
        revoke: bool,
        #[command(flatten)]
        store: HubStoreArgs,
    },
}

#[cfg(feature = "hub")]
#[derive(Debug, Subcommand)]
pub enum HubTokenCommand {
    /// Mint an API token for USER and print it on stdout (it is shown only once).
    Create {
        user: String,
        /// Scopes, comma-separated: pull, push.
        #[arg(long, value_delimiter = ',', default_value = "pull,push")]
        scope: Vec<String>,
        /// Limit the token to these repositories inside USER's namespace (USER/NAME).
        #[arg(long, value_delimiter = ',')]
        namespace: Vec<String>,
        /// Days until the token expires (1-3650).
        #[arg(long, default_value_t = 90)]
        days: i64,
        /// A label to recognise the token by on the tokens page.
        #[arg(long, default_value = "cli")]
        label: String,
        #[command(flatten)]
        store: HubStoreArgs,
    },
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

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder (default: the current directory).
    #[arg(long, default_value = ".")]
    pub path: PathBuf,
    /// The package name (default: the only source's NAME, else the folder's name).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args, Default)]
pub struct BuildArgs {
    /// Path to ebpf.toml or the project directory (default: search from the current directory).
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Kernel BTF to build against (default: /sys/kernel/btf/vmlinux).
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,
    /// A BTFHub archive (`<distro>/<version>/<arch>/<release>.btf.tar.xz`): embed each of
    /// its kernels' minimal BTF, so the package loads on them without kernel BTF.
    #[arg(long, value_name = "DIR")]
    pub btfhub_archive: Option<PathBuf>,
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

/// Parses arguments, accepting both `cargo ebpf …` (cargo passes "ebpf" first) and `cargo-ebpf …`.
pub fn parse_args() -> Cli {
    let mut args: Vec<_> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "ebpf") {
        args.remove(1);
    }
    Cli::parse_from(args)
}

/// How the runner commands refer to this binary, and its hook: `run`/`start` of a project
/// directory build and package it first.
const HOST: Host = Host {
    name: "cargo ebpf",
    build_project: Some(build_project),
};

/// Runs one command; returns the exit code (non-zero only when `run` started a packaged
/// loader that exited with it).
pub fn execute(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::New(args) => cmd_new(&args),
        Command::Init(args) => cmd_init(&args),
        Command::Build(args) => cmd_build(&args).map(|_| ()),
        Command::Package(args) => cmd_package(&args),
        Command::Push {
            reference,
            build,
            registry,
            sign,
        } => cmd_push(&build, Some(&reference), &registry, &sign),
        Command::Publish {
            build,
            registry,
            sign,
        } => cmd_push(&build, None, &registry, &sign),
        Command::Sign {
            reference,
            key,
            password_stdin,
            registry,
        } => cmd_sign(&reference, &key, password_stdin, &registry),
        Command::Key(KeyCommand::Generate {
            prefix,
            password_stdin,
            no_password,
        }) => cmd_key_generate(&prefix, password_stdin, no_password),
        Command::Yank {
            reference,
            undo,
            registry,
        } => cmd_yank(&reference, undo, &registry),
        Command::TestKernels(args) => command::test_kernels(&args, build_project),
        Command::Completions { shell } => {
            let mut script = vec![];
            crate::shell::completions(<Cli as clap::CommandFactory>::command(), shell, &mut script);
            // Through out_line, so `completions bash | head` ends quietly.
            out_line(format_args!(
                "{}",
                String::from_utf8_lossy(&script).trim_end()
            ));
            Ok(())
        }
        Command::InstallMan { dir } => cmd_install_man(dir),
        Command::Runner(command) => return runner_cli::execute(command, &HOST),
        #[cfg(feature = "hub")]
        Command::Hub(command) => cmd_hub(command),
    }
    .map(|()| 0)
}

#[cfg(feature = "hub")]
fn cmd_hub(command: HubCommand) -> Result<()> {
    match command {
        HubCommand::Serve {
            addr,
            data,
            database,
            blob_store,
            contact,
            secure_cookies,
            user_quota,
        } => hub::serve(hub::ServeOptions {
            addr,
            data,
            database,
            blob_store,
            contact,
            secure_cookies,
            user_quota,
        }),
        HubCommand::Gc {
            store,
            blob_store,
            grace_hours,
        } => {
            let done = hub::admin::gc(
                &store.data,
                store.database.as_deref(),
                blob_store.as_deref(),
                grace_hours * 3600,
            )?;
            eprintln!(
                "     Collected {} blobs ({} bytes), {} unreferenced links",
                done.blobs, done.bytes, done.links
            );
            Ok(())
        }
        HubCommand::User(HubUserCommand::Add { name, store, .. }) => {
            let password = read_stdin_line()?;
            hub::admin::add_user(&store.data, store.database.as_deref(), &name, &password)?;
            eprintln!("       Added user {name}");
            Ok(())
        }
        HubCommand::User(HubUserCommand::Admin {
            name,
            revoke,
            store,
        }) => {
            hub::admin::set_admin(&store.data, store.database.as_deref(), &name, !revoke)?;
            let role = if revoke {
                "no longer an admin"
            } else {
                "an admin"
            };
            eprintln!("       {name} is {role}");
            Ok(())
        }
        HubCommand::Token(HubTokenCommand::Create {
            user,
            scope,
            namespace,
            days,
            label,
            store,
        }) => {
            let request = hub::accounts::TokenRequest {
                label,
                can_pull: scope.iter().any(|s| s == "pull"),
                can_push: scope.iter().any(|s| s == "push"),
                namespaces: namespace,
                expires_in_days: Some(days),
            };
            let secret =
                hub::admin::create_token(&store.data, store.database.as_deref(), &user, request)?;
            out_line(format_args!("{secret}"));
            Ok(())
        }
    }
}

/// A password piped in: stdin up to EOF, without the trailing newline.
#[cfg(feature = "hub")]
fn read_stdin_line() -> Result<String> {
    use std::io::Read;
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Error::io("read", Path::new("<stdin>"), e))?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

fn cmd_new(args: &NewArgs) -> Result<()> {
    if args.list {
        out_line(format_args!(
            "{}",
            scaffold::format_pack_list(&scaffold::packs()).trim_end()
        ));
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
        source.label()
    );
    eprintln!(
        "Next: cd {} && cargo ebpf build && sudo cargo ebpf run .",
        dir.display()
    );
    Ok(())
}

fn cmd_init(args: &InitArgs) -> Result<()> {
    let dir = std::path::absolute(&args.path)
        .map_err(|e| Error::io("resolve the directory", &args.path, e))?;
    let (path, manifest) = manifest::init(&dir, args.name.as_deref())?;
    eprintln!(
        "     Created {} for `{}` ({} source{})",
        path.display(),
        manifest.package.name,
        manifest.build.sources.len(),
        if manifest.build.sources.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    eprintln!("Next: cargo ebpf build && sudo cargo ebpf run .");
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
    let built = match &args.btfhub_archive {
        Some(archive) => embed_btf(archive, built)?,
        None => built,
    };
    if args.print_outputs {
        let json = serde_json::to_string(&built).expect("build outputs serialize");
        out_line(format_args!("{json}"));
    }
    Ok((project, built))
}

/// Adds the per-kernel BTF layer to each build (on the host, also after `--container`).
fn embed_btf(archive: &Path, built: Vec<BuildOutput>) -> Result<Vec<BuildOutput>> {
    if !archive.is_dir() {
        return Err(Error::usage(format!(
            "--btfhub-archive {}: not a directory",
            archive.display()
        ))
        .with_help(
            "pass a BTFHub archive directory (<distro>/<version>/<arch>/<release>.btf.tar.xz)",
        ));
    }
    built
        .into_iter()
        .map(|b| {
            let btfgen = build::btfhub::generate(archive, &b.arch, &b.object)?;
            Ok(BuildOutput {
                btfgen: Some(btfgen),
                ..b
            })
        })
        .collect()
}

fn cmd_package(args: &BuildArgs) -> Result<()> {
    let (project, built) = cmd_build(args)?;
    let (out, _) = package::package(&project, &built, package::Reuse::Verified)?;
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

fn cmd_push(
    args: &BuildArgs,
    reference: Option<&str>,
    reg: &RegistryArgs,
    sign: &SignArgs,
) -> Result<()> {
    // A bad reference or key fails before anything is built or pushed.
    let given = reference.map(Reference::parse).transpose()?;
    let key = match &sign.sign {
        Some(path) => Some(keys::load(
            path,
            keys::password(sign.password_stdin)?.as_deref(),
        )?),
        None => None,
    };
    if given.is_none() {
        let project = load_project(args)?;
        let reference = Reference::parse(&project.reference()?)?;
        crate::publish::check_metadata(&project)?;
        crate::publish::check_unpublished(&runner_cli::registry(reg)?, &reference)?;
    }
    let (project, built) = cmd_build(args)?;
    let facts = match key {
        Some(_) => Some(provenance::gather(&project, builder(args)?)?),
        None => None,
    };
    let reference = match given {
        Some(r) => r,
        None => Reference::parse(&project.reference()?)?,
    };
    // Layers are checked as they are sent, unless a VM test reads them first.
    let reuse = match sign.test_kernels {
        true => package::Reuse::Verified,
        false => package::Reuse::CheckedOnUse,
    };
    let (_, release) = package::package(&project, &built, reuse)?;
    // Tested before anything is pushed: a failing VM run publishes nothing.
    let matrix = kernel_matrix(sign, &release)?;
    let digest = runner_cli::registry(reg)?.push_release(&release, &reference)?;
    let arches: Vec<&str> = built.iter().map(|b| b.arch.as_str()).collect();
    eprintln!("      Pushed {reference} ({})", arches.join(", "));
    if let (Some(key), Some(facts)) = (key, facts) {
        let signed = sign_pushed(&reference.with_digest(&digest), &key, reg)?;
        attest_provenance(&reference, &signed, &facts, &key, reg)?;
        if let Some(matrix) = matrix {
            attest_kernel_matrix(&reference, &signed, &matrix, &key, reg)?;
        }
    }
    out_line(format_args!("{reference}@{digest}"));
    Ok(())
}

fn cmd_sign(reference: &str, key: &Path, password_stdin: bool, reg: &RegistryArgs) -> Result<()> {
    let reference = Reference::parse(reference)?;
    let key = keys::load(key, keys::password(password_stdin)?.as_deref())?;
    sign_pushed(&reference, &key, reg).map(drop)
}

/// Signs `reference`; returns the signed digests (the tag's first, then its platforms).
fn sign_pushed(reference: &Reference, key: &PrivateKey, reg: &RegistryArgs) -> Result<Vec<String>> {
    let signed = signing::sign(&runner_cli::registry(reg)?, reference, key)?;
    let fingerprint = key.public_key().fingerprint();
    for digest in &signed {
        eprintln!("      Signed {digest} with {fingerprint}");
    }
    Ok(signed)
}

/// Attaches a signed SLSA provenance statement about `digests`, next to each, so a platform
/// pinned by digest finds it too.
fn attest_provenance(
    reference: &Reference,
    digests: &[String],
    facts: &BuildFacts,
    key: &PrivateKey,
    reg: &RegistryArgs,
) -> Result<()> {
    let statement = Statement::provenance(&subjects(reference, digests), facts)?;
    attest(reference, digests, &statement, key, reg)?;
    eprintln!("    Attested provenance of {}", digests.join(", "));
    Ok(())
}

/// `(REGISTRY/REPO, digest)` for each of `digests`: a statement's subjects.
fn subjects(reference: &Reference, digests: &[String]) -> Vec<(String, String)> {
    let name = format!("{}/{}", reference.registry(), reference.repository());
    digests.iter().map(|d| (name.clone(), d.clone())).collect()
}

/// Signs `statement` and stores it as cosign stores attestations (`sha256-<hex>.att`)
/// next to each of `digests`.
fn attest(
    reference: &Reference,
    digests: &[String],
    statement: &Statement,
    key: &PrivateKey,
    reg: &RegistryArgs,
) -> Result<()> {
    let registry = runner_cli::registry(reg)?;
    for digest in digests {
        attestation::attach(&registry, reference, digest, statement, key)?;
    }
    Ok(())
}

/// The kernel matrix `--kernel-matrix FILE` names, or `--test-kernels` makes now.
fn kernel_matrix(sign: &SignArgs, release: &Release) -> Result<Option<KernelMatrix>> {
    if let Some(path) = &sign.kernel_matrix {
        let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        let matrix = KernelMatrix::from_json(&bytes)?;
        let ours: Vec<String> = release.packages().iter().map(Package::digest).collect();
        let tested = matrix.digest.clone().unwrap_or_default();
        if !ours.contains(&tested) {
            return Err(Error::input(format!(
                "the kernel matrix {} is of {}, not of this build ({}); nothing was pushed",
                path.display(),
                if tested.is_empty() { "an object, not a package" } else { &tested },
                ours.join(", ")
            ))
            .with_help("run `cargo ebpf test-kernels --output FILE` on this build (same sources and version), or use --test-kernels"));
        }
        return Ok(Some(matrix));
    }
    if !sign.test_kernels {
        return Ok(None);
    }
    let pkg = release
        .packages()
        .iter()
        .find(|p| p.platform().architecture == "amd64")
        .ok_or_else(|| {
            Error::usage(
                "--test-kernels boots x86-64 kernels, and this build has no x86_64 package",
            )
            .with_help("add x86_64 to --arch, or publish without --test-kernels")
        })?;
    command::test_package(pkg.clone()).map(Some)
}

/// Attaches `matrix` as a signed attestation of the tested package and of the tag.
fn attest_kernel_matrix(
    reference: &Reference,
    digests: &[String],
    matrix: &KernelMatrix,
    key: &PrivateKey,
    reg: &RegistryArgs,
) -> Result<()> {
    // Checked against the build before the push ([`kernel_matrix`]).
    let tested = matrix.digest.clone().unwrap_or_default();
    let mut at = vec![digests[0].clone()];
    if tested != digests[0] {
        at.push(tested.clone());
    }
    let predicate = serde_json::to_value(matrix).expect("a matrix serializes");
    let statement = Statement::new(
        &subjects(reference, &at),
        spec::KERNEL_MATRIX_PREDICATE_TYPE,
        predicate,
    )?;
    attest(reference, &at, &statement, key, reg)?;
    eprintln!(
        "    Attested the kernel matrix ({} kernel(s)) of {tested}",
        matrix.kernels.len()
    );
    Ok(())
}

/// Who built it, for provenance: this host, or the builder image of `--container`.
fn builder(args: &BuildArgs) -> Result<String> {
    if !args.container {
        return Ok(provenance::host_builder());
    }
    container::builder_id(&container::ContainerOptions {
        engine: args.engine,
        image: args.image.clone(),
    })
}

fn cmd_key_generate(prefix: &Path, password_stdin: bool, no_password: bool) -> Result<()> {
    let password = if no_password {
        None
    } else {
        Some(keys::password(password_stdin)?.ok_or_else(|| {
            Error::usage("no password for the private key")
                .with_help("pipe one in with --password-stdin, set CARGO_EBPF_KEY_PASSWORD (or COSIGN_PASSWORD), or pass --no-password to write it unencrypted")
        })?)
    };
    let (key, key_path, pub_path) = keys::generate(prefix, password.as_deref())?;
    eprintln!(
        "     Created {} (private, keep it secret) and {} (public)",
        key_path.display(),
        pub_path.display()
    );
    out_line(format_args!("{}", key.public_key().fingerprint()));
    Ok(())
}

fn cmd_install_man(dir: Option<PathBuf>) -> Result<()> {
    let dir = match dir {
        Some(d) => d,
        None => crate::shell::default_man_dir()?,
    };
    let written = crate::shell::install_man(<Cli as clap::CommandFactory>::command(), &dir)?;
    eprintln!(
        "   Installed {} man pages in {} (`man cargo-ebpf`; add it to MANPATH if man does not find them)",
        written.len(),
        dir.display()
    );
    Ok(())
}

fn cmd_yank(reference: &str, undo: bool, reg: &RegistryArgs) -> Result<()> {
    // A short name with its version (`opensnoop:0.1.0`) resolves through the default
    // registry like everywhere else.
    let reference = Reference::parse(&ebpf_runner::config::expand(reference)?)?;
    let outcome = hub_api::yank(&runner_cli::registry(reg)?, &reference, !undo)?;
    let latest = match &outcome.latest {
        Some(v) => format!("latest is now {v}"),
        None => "no version is offered now".to_string(),
    };
    let done = if undo { "Unyanked" } else { "Yanked" };
    eprintln!("      {done} {reference} ({latest})");
    Ok(())
}

/// The run hook: a directory with an `ebpf.toml`, or an ecc/ecli folder (`NAME.bpf.c`),
/// is built for the host and packaged.
fn build_project(dir: &Path) -> Option<Result<Package>> {
    if !dir.is_dir() || !Project::is_project_dir(dir) {
        return None;
    }
    let build_args = BuildArgs {
        manifest_path: Some(dir.to_path_buf()),
        ..Default::default()
    };
    let package = load_project(&build_args).and_then(|project| {
        let built = build::build(&project, &build_options(&build_args))?;
        package::build_package(&project, &built)
    });
    Some(package)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::{completions, install_man, CompletionShell};
    use clap::CommandFactory;

    #[test]
    fn every_shell_gets_a_script_naming_the_new_commands() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
            CompletionShell::Elvish,
        ] {
            let mut out = vec![];
            completions(Cli::command(), shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            for word in ["search", "upgrade", "outdated", "doctor", "completions"] {
                assert!(text.contains(word), "{shell:?} lacks {word}");
            }
        }
    }

    #[test]
    fn man_pages_cover_each_command_and_no_hidden_one() {
        let dir = tempfile::tempdir().unwrap();
        let written = install_man(Cli::command(), dir.path()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for page in [
            "cargo-ebpf.1",
            "cargo-ebpf-upgrade.1",
            "cargo-ebpf-config-set.1",
            "cargo-ebpf-search.1",
        ] {
            assert!(
                names.iter().any(|n| n == page),
                "{page} missing from {names:?}"
            );
        }
        assert!(!names.iter().any(|n| n.contains("__daemon")));
        let upgrade = std::fs::read_to_string(dir.path().join("cargo-ebpf-upgrade.1")).unwrap();
        assert!(
            upgrade.contains(".TH") && upgrade.contains("latest"),
            "{upgrade}"
        );
    }
}
