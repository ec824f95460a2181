//! Load, attach and stream: the runner's last stage.
//!
//! [`run_package`] starts a package by its runtime: executable packages run their own
//! loader ([`exec`]), container packages an image ([`container`]), files packages place
//! files and run a script ([`files`]); kernel-only ones go to [`run_object`], which checks
//! the object and the machine first ([`preflight`]), sets `const volatile` params from the program's arguments ([`params`]),
//! loads and attaches with libbpf ([`load`]) and prints events until told to stop
//! ([`stream`]).

mod attach;
mod btf;
mod container;
pub mod detached;
mod exec;
mod files;
mod load;
mod maps;
mod metrics;
mod params;
pub mod pin;
mod preflight;
mod signals;
mod stream;
mod trace_pipe;

pub use crate::engine::Engine;
pub use attach::{AttachOptions, DEFAULT_FREQUENCY};
pub use container::{check_image as check_container_image, run_container};
pub use detached::Detached;
pub use exec::run_executable;
pub use files::{
    check_destinations as check_file_destinations, run_files, undo_placed,
    validate as validate_files,
};
pub use preflight::{check_privileges, kernel_btf_path, DEFAULT_KERNEL_BTF, KERNEL_BTF_ENV};

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use ebpf_package::plan::Plan;
use ebpf_package::spec::{EventInfo, PackageMeta, ParamInfo, Runtime, TypeLayout};
use ebpf_package::{object, Error, Package, Result};

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// Aligned columns with a header, TIME first.
    #[default]
    Table,
    /// One JSON object per line (NDJSON).
    Json,
}

/// What `cargo ebpf run` was asked for, beyond the object itself.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub output: Output,
    /// Stop after this long; `None` runs until SIGINT/SIGTERM.
    pub duration: Option<Duration>,
    /// The PROGRAM-ARGS after `--`: `--flag VALUE` pairs setting params, or `--help`.
    pub args: Vec<String>,
    /// A kernel BTF file to use instead of /sys/kernel/btf/vmlinux.
    pub btf: Option<PathBuf>,
    /// Targets for programs that libbpf cannot attach from their section alone.
    pub attach: AttachOptions,
    /// Print the object's non-event maps (counters, tables, histograms) this often.
    pub interval: Option<Duration>,
    /// Serve the maps in Prometheus text format on this address (`127.0.0.1:9435`).
    pub metrics: Option<String>,
    /// Container runtimes: `docker` or `podman` (default: detected).
    pub engine: Option<String>,
    /// Set when the run is detached (`run -d`): kernel-only runs pin their links and maps,
    /// every runtime reports when it is up and keeps what `stop` must undo.
    pub detached: Option<Detached>,
    /// `run --check`: load and attach, then detach and return without streaming; a load
    /// or attach failure is the error, as for a normal run.
    pub check: bool,
}

/// Starts a package the way its runtime says: the built-in loader for kernel-only
/// packages, the packaged loader for executable ones. Returns the exit code to end with.
pub fn run_package(pkg: &Package, opts: &RunOptions, out: &mut dyn Write) -> Result<i32> {
    let meta = pkg.meta()?;
    announce(meta, opts);
    let ignored = loader_only_flags(opts);
    if !matches!(meta.runtime, Runtime::Kernel) && !ignored.is_empty() {
        eprintln!(
            "warning: {} only apply to kernel-only packages; this {} package starts its own \
             loader, so they are ignored",
            ignored.join(", "),
            meta.runtime.kind()
        );
    }
    if opts.check && !matches!(meta.runtime, Runtime::Kernel) {
        return Err(Error::usage(format!(
            "--check loads kernel-only packages; this {} package starts its own loader",
            meta.runtime.kind()
        ))
        .with_help("run it without --check, with --duration SECS, to try it"));
    }
    match &meta.runtime {
        Runtime::Kernel => {
            let (name, bytes) = pkg.object()?;
            // Kept until the run ends: libbpf reads it at load.
            let embedded = btf::embedded(pkg, opts.btf.as_deref())?;
            let with_btf;
            let opts = match &embedded {
                Some(file) => {
                    with_btf = RunOptions {
                        btf: Some(file.path().to_path_buf()),
                        ..opts.clone()
                    };
                    &with_btf
                }
                None => opts,
            };
            run_object(&name, &bytes, Some(meta), opts, out).map(|()| 0)
        }
        Runtime::Executable { .. } => {
            if let Some(detached) = &opts.detached {
                detached.report_ready(&detached::Ready::default())?;
            }
            run_executable(pkg, meta, opts)
        }
        Runtime::Container { .. } => run_container(pkg, meta, opts),
        Runtime::Files { .. } => run_files(pkg, meta, opts),
    }
}

/// Says what the run will do before it does it (on stderr; stdout is for events). Not for
/// `-- --help`, which only lists flags.
fn announce(meta: &PackageMeta, opts: &RunOptions) {
    if opts.args.iter().any(|a| a == "--help" || a == "-h") {
        return;
    }
    eprint!("{}", Plan::of(meta).render());
}

/// The run flags given that only the built-in loader acts on (events, maps, attach targets).
fn loader_only_flags(opts: &RunOptions) -> Vec<&'static str> {
    let attach = &opts.attach;
    [
        ("--output json", opts.output == Output::Json),
        ("--interval", opts.interval.is_some()),
        ("--metrics", opts.metrics.is_some()),
        ("--iface", attach.iface.is_some()),
        ("--cgroup", attach.cgroup.is_some()),
        ("--uprobe", attach.uprobe.is_some()),
        ("--frequency", attach.frequency.is_some()),
        ("--btf", opts.btf.is_some()),
    ]
    .into_iter()
    .filter_map(|(flag, given)| given.then_some(flag))
    .collect()
}

/// The parts of the package description the runner uses.
struct Described {
    params: Vec<ParamInfo>,
    events: Vec<EventInfo>,
    types: BTreeMap<String, TypeLayout>,
}

/// Loads `bytes` (the BPF object called `object_name`), attaches every program and writes
/// its events to `out` until `opts.duration` passes or SIGINT/SIGTERM arrives.
/// Status lines go to stderr; `out` gets only events (or the flag list for `-- --help`).
/// `meta` supplies params and event types; without it they are read from the object.
pub fn run_object(
    object_name: &str,
    bytes: &[u8],
    meta: Option<&PackageMeta>,
    opts: &RunOptions,
    out: &mut dyn Write,
) -> Result<()> {
    object::check_elf(bytes)?;
    let described = stream_shapes(bytes, meta)?;
    // Arguments first: `--help` and typos need no privileges.
    let values = match params::parse(&described.params, &opts.args)? {
        params::Parsed::Help => {
            // What the program does first, as ecli's help shows it.
            if let Some(about) = meta.and_then(|m| m.description.as_deref()) {
                writeln!(out, "{about}\n")
                    .map_err(|e| Error::io("write", std::path::Path::new("<output>"), e))?;
            }
            return params::print_help(object_name, &described.params, out);
        }
        params::Parsed::Values(values) => values,
    };
    preflight::check_arch(meta)?;
    let custom_btf = preflight::kernel_btf(opts.btf.as_deref())?;
    let mut open = load::open(object_name, bytes, custom_btf.as_deref())?;
    // Missing attach targets are usage errors, found before privileges matter.
    let programs = attach::program_sections(open.progs());
    let mut attach_opts = opts.attach.clone();
    if let Some(meta) = meta {
        attach_opts.annotations = meta.annotations.clone();
    }
    let mut plans = attach::plan(&programs, &attach_opts)?;
    preflight::check_privileges()?;
    preflight::ensure_mounts()?;
    attach::check_kernel(&programs, &mut plans)?;
    for (_, section, ty) in &programs {
        preflight::check_program_type(*ty, &object::program_type_name(section, *ty))?;
    }

    params::apply(&mut open, &values)?;
    let mut loaded = load::load_and_attach(open, &plans)?;
    if opts.check {
        eprintln!(
            "check: {} program(s) loaded and attached; detaching",
            loaded.programs()
        );
        return Ok(());
    }
    if let Some(detached) = &opts.detached {
        pin::pin_and_report(&mut loaded, detached)?;
    }
    let no_annotations = Default::default();
    let annotations = meta.map_or(&no_annotations, |m| &m.annotations);
    let watch = maps::Watch::new(&loaded.object, annotations)?;
    // Stops (and joins) when this function returns, before the maps go away.
    let _server = match &opts.metrics {
        Some(addr) => Some(metrics::serve(addr, watch.clone())?),
        None => None,
    };
    let printk =
        ebpf_package::printk::uses_printk(bytes).then(|| ebpf_package::printk::Formats::of(bytes));
    let no_columns = BTreeMap::new();
    let described = stream::Described {
        events: &described.events,
        types: &described.types,
        columns: meta.map_or(&no_columns, |m| &m.columns),
        watch: &watch,
        printk,
    };
    stream::stream(&loaded, &described, opts, out)
}

fn stream_shapes(bytes: &[u8], meta: Option<&PackageMeta>) -> Result<Described> {
    Ok(match meta {
        Some(meta) => Described {
            params: meta.params.clone(),
            events: meta.events.clone(),
            types: meta.types.clone(),
        },
        None => {
            let info = object::read(bytes, None)?;
            Described {
                params: info.params,
                events: info.events,
                types: info.types,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_loaders_flags_are_named_when_given() {
        assert!(loader_only_flags(&RunOptions::default()).is_empty());
        let opts = RunOptions {
            output: Output::Json,
            interval: Some(Duration::from_secs(1)),
            btf: Some("/tmp/btf".into()),
            attach: AttachOptions {
                iface: Some("lo".into()),
                frequency: Some(99),
                ..AttachOptions::default()
            },
            duration: Some(Duration::from_secs(1)),
            ..RunOptions::default()
        };
        assert_eq!(
            loader_only_flags(&opts),
            [
                "--output json",
                "--interval",
                "--iface",
                "--frequency",
                "--btf"
            ]
        );
    }
}
