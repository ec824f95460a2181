//! Background runs: `install`, `run -d`/`start`, `ps`, `logs`, `stop`. The work is in
//! [`crate::lifecycle`]; the daemon is whichever binary started the run, re-executed as
//! `<exe> __daemon ID` (both binaries have that hidden command).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::lifecycle::{self, DaemonOptions, RunStatus, StartRequest};
use crate::registry::Registry;
use crate::resolve::Runnable;
use crate::store::Store;
use ebpf_package::spec::PackageMeta;
use ebpf_package::{object, Error, Package, Reference, Result};

use super::{outln, resolve_run_target, stdout_error, Host, OutputArg, RunArgs};

pub fn install(reference: &Reference, registry: &Registry, host: &Host) -> Result<i32> {
    let installed = lifecycle::install(reference, &Store::open_default()?, registry)?;
    let meta = installed.package.meta()?;
    eprintln!(
        "   Installed {} ({} {}, {} runtime, {}); start it with `{} start {reference}`",
        installed.reference,
        meta.name,
        meta.version,
        meta.runtime.kind(),
        meta.arch,
        host.name
    );
    outln!("{}", installed.package.digest());
    Ok(0)
}

pub fn start(args: &RunArgs, host: &Host) -> Result<i32> {
    if args.check {
        return Err(Error::usage("--check runs in the foreground only")
            .with_help("drop -d (or use `run --check` instead of `start`)"));
    }
    let (runnable, target) = resolve_run_target(args, host)?;
    let package = match runnable {
        Runnable::Package(pkg) => *pkg,
        Runnable::Object { name, bytes } => package_for_object(&name, &bytes)?,
    };
    // A reference (not a path) is served from the store: `rm` and `upgrade` must know
    // it is in use. The run records the full reference a short name resolved to.
    let store_reference = if crate::resolve::is_reference(&target) {
        Some(Reference::parse(&target)?.to_string())
    } else {
        None
    };
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("find", Path::new(&format!("the {} binary", host.name)), e))?;
    let state = lifecycle::start(&StartRequest {
        package: &package,
        target: store_reference.clone().unwrap_or(target),
        store_reference,
        options: daemon_options(args),
        exe,
    })?;
    let programs = if state.program_ids.is_empty() {
        String::new()
    } else {
        format!(", program ids {}", ids(&state.program_ids))
    };
    let (name, id) = (host.name, &state.id);
    eprintln!(
        "     Started {} as run {id} ({} runtime{programs}); `{name} logs {id}` shows its output, `{name} stop {id}` ends it",
        state.target, state.runtime
    );
    outln!("{id}");
    Ok(0)
}

/// The run's flags, saved with its state so the daemon replays them.
fn daemon_options(args: &RunArgs) -> DaemonOptions {
    DaemonOptions {
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
    }
}

/// A bare `.bpf.o` started in the background becomes a kernel-only package in memory.
fn package_for_object(name: &str, bytes: &[u8]) -> Result<Package> {
    let info = object::read(bytes, None)?;
    let stem = name.split('.').next().unwrap_or("object");
    let mut meta = PackageMeta::new(stem, "0.0.0", name);
    info.fill_meta(&mut meta);
    Package::build(meta, bytes, None)
}

pub fn ps(all: bool, json: bool) -> Result<i32> {
    let runs: Vec<RunStatus> = lifecycle::list()?
        .into_iter()
        .filter(|r| all || r.state.stopped.is_none())
        .collect();
    if json {
        let text = serde_json::to_string_pretty(&runs).expect("runs serialize");
        outln!("{text}");
        return Ok(0);
    }
    outln!(
        "{:<8}  {:<40}  {:<10}  {:<20}  {:<20}  PROGRAMS",
        "ID",
        "PACKAGE",
        "RUNTIME",
        "STARTED",
        "STATUS"
    );
    for run in runs {
        let s = &run.state;
        outln!(
            "{:<8}  {:<40}  {:<10}  {:<20}  {:<20}  {}",
            s.id,
            s.target,
            s.runtime,
            started(s.started),
            run.status,
            ids(&s.program_ids)
        );
    }
    Ok(0)
}

pub(super) fn ids(ids: &[u32]) -> String {
    let list: Vec<String> = ids.iter().map(u32::to_string).collect();
    list.join(",")
}

/// `10:00:00 (5m ago)`: the UTC time of day and the age, short enough for a column.
fn started(secs: u64) -> String {
    let age = lifecycle::state::now().saturating_sub(secs);
    let ago = match age {
        0..60 => format!("{age}s"),
        60..3600 => format!("{}m", age / 60),
        3600..86400 => format!("{}h", age / 3600),
        _ => format!("{}d", age / 86400),
    };
    let day = secs % 86400;
    let (h, m, s) = (day / 3600, day / 60 % 60, day % 60);
    format!("{h:02}:{m:02}:{s:02} ({ago} ago)")
}

pub fn logs(id: &str, follow: bool) -> Result<i32> {
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
            .map_err(stdout_error)
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
    Ok(0)
}

pub fn stop(id: &str) -> Result<i32> {
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
    Ok(0)
}

/// `rm` refuses a package that a run not yet stopped uses.
pub fn refuse_if_running(reference: &str, host: &Host) -> Result<()> {
    let key = Reference::parse(reference)?.to_string();
    let runs = lifecycle::active_runs_of(&key)?;
    let Some(run) = runs.first() else {
        return Ok(());
    };
    Err(Error::input(format!(
        "{reference} is in use by run {} and cannot be removed",
        run.id
    ))
    .with_help(format!("stop it first: `{} stop {}`", host.name, run.id)))
}
