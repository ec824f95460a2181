//! `run` in the foreground: events (or the packaged loader's output) on stdout until the
//! program ends, `--duration` passes, or Ctrl-C.

use std::io::Write;
use std::time::Duration;

use crate::resolve::Runnable;
use crate::run::{self, AttachOptions, Output, RunOptions};
use ebpf_package::{Error, Result};

use super::{resolve_run_target, stdout_error, Host, OutputArg, RunArgs};

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
    let (runnable, _) = resolve_run_target(args, host)?;
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
