//! The background-run commands: `install`, `run -d`/`start`, `ps`, `logs`, `stop`, and the
//! hidden daemon they start. The work is in `ebpf_runner::lifecycle`; this is wiring and
//! printing.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use ebpf_runner::format::PackageMeta;
use ebpf_runner::lifecycle::{self, DaemonOptions, RunStatus, StartRequest};
use ebpf_runner::registry::ClientOptions;
use ebpf_runner::resolve::Runnable;
use ebpf_runner::store::{self, Store};
use ebpf_runner::{object, Error, Package, Result};

use crate::cli::{resolve_run_target, OutputArg, RunArgs};

pub fn cmd_install(reference: &str, opts: &ClientOptions) -> Result<()> {
    let installed = lifecycle::install(reference, &Store::open_default()?, opts)?;
    let meta = installed.package.meta()?;
    eprintln!(
        "   Installed {} ({} {}, {} runtime, {}); start it with `cargo ebpf start {reference}`",
        installed.reference,
        meta.name,
        meta.version,
        meta.runtime.kind(),
        meta.arch
    );
    println!("{}", installed.package.digest());
    Ok(())
}

pub fn cmd_start(args: &RunArgs) -> Result<()> {
    let package = match resolve_run_target(args)? {
        Runnable::Package(pkg) => *pkg,
        Runnable::Object { name, bytes } => package_for_object(&name, &bytes)?,
    };
    // A reference (not a path) is served from the store: `rm` must know it is in use.
    let store_reference = if Path::new(&args.target).exists() {
        None
    } else {
        Some(store::normalize_reference(&args.target)?)
    };
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("find", Path::new("the cargo-ebpf binary"), e))?;
    let state = lifecycle::start(&StartRequest {
        package: &package,
        target: args.target.clone(),
        store_reference,
        options: DaemonOptions {
            output: match args.output {
                OutputArg::Table => "table".into(),
                OutputArg::Json => "json".into(),
            },
            args: args.args.clone(),
            btf: args.btf.clone(),
            duration_secs: args.duration,
            engine: args.engine.clone(),
            iface: args.iface.clone(),
            cgroup: args.cgroup.clone(),
            uprobe: args.uprobe.clone(),
            frequency: args.frequency,
            interval_secs: args.interval,
            metrics: args.metrics.clone(),
        },
        exe,
    })?;
    let programs = if state.program_ids.is_empty() {
        String::new()
    } else {
        format!(", program ids {}", ids(&state.program_ids))
    };
    eprintln!(
        "     Started {} as run {} ({} runtime{programs}); `cargo ebpf logs {}` shows its output, `cargo ebpf stop {}` ends it",
        state.target, state.id, state.runtime, state.id, state.id
    );
    println!("{}", state.id);
    Ok(())
}

/// A bare `.bpf.o` started in the background becomes a kernel-only package in memory.
fn package_for_object(name: &str, bytes: &[u8]) -> Result<Package> {
    let info = object::inspect(bytes, None)?;
    let stem = name.split('.').next().unwrap_or("object");
    let mut meta = PackageMeta::new(stem, "0.0.0", name);
    info.describe(&mut meta);
    Package::build(meta, bytes, None)
}

pub fn cmd_daemon(id: &str) -> Result<i32> {
    lifecycle::daemon_main(id)
}

pub fn cmd_ps(all: bool, json: bool) -> Result<()> {
    let runs: Vec<RunStatus> = lifecycle::list()?
        .into_iter()
        .filter(|r| all || r.state.stopped.is_none())
        .collect();
    if json {
        let text = serde_json::to_string_pretty(&runs).expect("runs serialize");
        println!("{text}");
        return Ok(());
    }
    println!(
        "{:<8}  {:<40}  {:<10}  {:<20}  {:<20}  PROGRAMS",
        "ID", "PACKAGE", "RUNTIME", "STARTED", "STATUS"
    );
    for run in runs {
        let s = &run.state;
        println!(
            "{:<8}  {:<40}  {:<10}  {:<20}  {:<20}  {}",
            s.id,
            s.target,
            s.runtime,
            started(s.started),
            run.status,
            ids(&s.program_ids)
        );
    }
    Ok(())
}

fn ids(ids: &[u32]) -> String {
    let list: Vec<String> = ids.iter().map(u32::to_string).collect();
    list.join(",")
}

/// `2026-01-01T10:00:00Z (5m ago)`-style, short enough for a column.
fn started(secs: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(secs);
    let age = lifecycle::state::now().saturating_sub(secs);
    let ago = match age {
        0..60 => format!("{age}s"),
        60..3600 => format!("{}m", age / 60),
        3600..86400 => format!("{}h", age / 3600),
        _ => format!("{}d", age / 86400),
    };
    let stamp = humantime::format_rfc3339_seconds(time).to_string();
    format!("{} ({ago} ago)", &stamp[11..19])
}

pub fn cmd_logs(id: &str, follow: bool) -> Result<()> {
    let state = lifecycle::load(id)?;
    let path = lifecycle::log_path(&state.dir()?);
    let mut file = std::fs::File::open(&path).map_err(|e| Error::io("read", &path, e))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut copy = |file: &mut std::fs::File| -> Result<()> {
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(|e| Error::io("read", &path, e))?;
        out.write_all(&buf)
            .and_then(|()| out.flush())
            .map_err(|e| Error::io("write", Path::new("<stdout>"), e))
    };
    copy(&mut file)?;
    // Follow while the daemon lives; then print what it wrote last.
    while follow && state.daemon_alive() {
        std::thread::sleep(Duration::from_millis(200));
        copy(&mut file)?;
    }
    if follow {
        copy(&mut file)?;
    }
    Ok(())
}

pub fn cmd_stop(id: &str) -> Result<()> {
    let report = lifecycle::stop(id)?;
    let id = &report.id;
    match (report.already_stopped, report.cleaned.is_empty()) {
        (true, true) => eprintln!("Run {id} was already stopped; nothing was left to clean"),
        (true, false) => eprintln!("Run {id} was already stopped; cleaned what was left:"),
        (false, true) => eprintln!("Stopped run {id}; nothing was left to clean"),
        (false, false) => eprintln!("Stopped run {id}:"),
    }
    for line in &report.cleaned {
        eprintln!("  {line}");
    }
    Ok(())
}

/// `rm` refuses a package that a run not yet stopped uses.
pub fn refuse_if_running(reference: &str) -> Result<()> {
    let key = store::normalize_reference(reference)?;
    let runs = lifecycle::active_runs_of(&key)?;
    let Some(run) = runs.first() else {
        return Ok(());
    };
    Err(Error::input(format!(
        "{reference} is in use by run {} and cannot be removed",
        run.id
    ))
    .with_help(format!("stop it first: `cargo ebpf stop {}`", run.id)))
}
