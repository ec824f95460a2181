//! `run` in the foreground: events (or the packaged loader's output) on stdout until the
//! program ends, `--duration` passes, or Ctrl-C.

use std::io::Write;
use std::time::Duration;

use crate::inspect;
use crate::resolve::{self, Runnable};
use crate::run::{self, AttachOptions, Output, RunOptions};
use ebpf_package::kernel_matrix;
use ebpf_package::{Error, Result};

use super::{registry, resolve_run_target, stdout_error, Host, OutputArg, RegistryArgs, RunArgs};

pub fn run(args: &RunArgs, host: &Host) -> Result<i32> {
    if !args.check {
        return run_streaming(args, host);
    }
    // `--check` ends with one JSON line on stdout either way, then the usual exit.
    let result = run_streaming(args, host);
    let line = match &result {
        Ok(_) => serde_json::json!({ "check": "pass" }),
        Err(e) => serde_json::json!({
            "check": "fail",
            "kind": e.kind.code(),
            "message": e.full_message(),
            "log": e.details,
        }),
    };
    super::outln!("{line}");
    result
}

fn run_streaming(args: &RunArgs, host: &Host) -> Result<i32> {
    let opts = run_options(args)?;
    let (runnable, target) = resolve_run_target(args, host)?;
    warn_if_kernel_fails(&target, &args.registry)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let code = match runnable {
        Runnable::Package(pkg) => run::run_package(&pkg, &opts, &mut out)?,
        Runnable::Object { name, bytes } => {
            run::run_object(&name, &bytes, None, &opts, &mut out).map(|()| 0)?
        }
    };
    out.flush().map_err(stdout_error)?;
    Ok(code)
}

/// Before loading a package from a registry: a warning when its signed kernel matrix says
/// the running kernel fails (advisory: the kernel has the last word).
fn warn_if_kernel_fails(target: &str, registry_args: &RegistryArgs) -> Result<()> {
    let Some(reference) = resolve::reference_target(target)? else {
        return Ok(());
    };
    let Some((release, arch)) = kernel_matrix::running_kernel() else {
        return Ok(());
    };
    let found = match inspect::kernel_matrix_of(&registry(registry_args)?, &reference) {
        Ok(found) => found,
        Err(e) => {
            eprintln!(
                "warning: the package's kernel matrix does not verify, so it is ignored: {}",
                e.message
            );
            return Ok(());
        }
    };
    if let Some(report) = found {
        if let Some(warning) = report.matrix.failing_for(&release, &arch) {
            let unverified = match report.verified_by {
                Some(_) => "",
                None => " (unverified: no trusted key for this scope)",
            };
            eprintln!("warning: {}{unverified}; loading anyway", warning.message());
        }
    }
    Ok(())
}

fn run_options(args: &RunArgs) -> Result<RunOptions> {
    Ok(RunOptions {
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
            annotations: Default::default(),
        },
        interval: interval(args.interval)?,
        metrics: args.metrics.clone(),
        engine: args.engine.clone(),
        detached: None,
        check: args.check,
    })
}

fn interval(secs: Option<u64>) -> Result<Option<Duration>> {
    match secs {
        Some(0) => Err(Error::usage("--interval must be at least 1 second")
            .with_help("pass how often to print the maps, e.g. --interval 1")),
        other => Ok(other.map(Duration::from_secs)),
    }
}
