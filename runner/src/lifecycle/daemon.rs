//! `run -d` / `start`: the package is copied into the run's directory and a daemon — this
//! same binary re-executed as `<exe> __daemon <id>`, in its own session, with stdout and
//! stderr on the run's log file — starts it with the ordinary runner. Kernel-only runs pin
//! their links and maps in bpffs, so the programs stay attached even if the daemon dies;
//! the daemon is what reads their ring buffers into the log.
//!
//! The starting command returns once the runtime reports it is up (`ready.json`), or
//! fails with the daemon's own error if it ends first.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::run::detached::{self, write_atomic, Detached, Ready};
use crate::run::{self, AttachOptions, Output, RunOptions};
use ebpf_package::layout::OciLayout;
use ebpf_package::spec::Runtime;
use ebpf_package::{Error, ErrorKind, Package, Result};

use super::state::{self, ContainerRef, DaemonOptions, Exit, RunState};
use super::{install, stop};

/// The hidden subcommand the CLI maps to [`daemon_main`].
pub const DAEMON_COMMAND: &str = "__daemon";
/// The tag of the package copy in a run's `image/` layout.
const IMAGE_TAG: &str = "run";
/// How long a runtime may take to come up (loading a large object, pulling an image).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What to start in the background.
pub struct StartRequest<'a> {
    pub package: &'a Package,
    /// What the user named (shown by `ps`).
    pub target: String,
    /// The store key, when the package came from the store.
    pub store_reference: Option<String>,
    pub options: DaemonOptions,
    /// The binary that implements [`DAEMON_COMMAND`] (normally `current_exe()`).
    pub exe: PathBuf,
}

/// Starts a detached run; returns its state once the runtime is up.
pub fn start(req: &StartRequest) -> Result<RunState> {
    let meta = req.package.meta()?;
    install::check_ready(meta, req.options.engine.as_deref())?;
    let (id, dir) = state::new_run_dir()?;
    let mut state = RunState {
        id: id.clone(),
        target: req.target.clone(),
        store_reference: req.store_reference.clone(),
        name: meta.name.clone(),
        version: meta.version.clone(),
        digest: req.package.digest(),
        runtime: meta.runtime.kind().to_string(),
        started: state::now(),
        pid: None,
        pid_start: None,
        program_ids: vec![],
        pin_dir: None,
        container: None,
        options: req.options.clone(),
        stopped: None,
    };
    match launch(req, &mut state, &dir) {
        Ok(()) => Ok(state),
        Err(err) => {
            // Leave nothing behind: stop whatever came up, then forget the run.
            let _ = stop::stop(&state.id);
            let _ = std::fs::remove_dir_all(&dir);
            Err(err)
        }
    }
}

fn launch(req: &StartRequest, state: &mut RunState, dir: &Path) -> Result<()> {
    let layout = OciLayout::create(&dir.join("image"))?;
    layout.write_package(req.package, IMAGE_TAG)?;
    if let Runtime::Container { .. } = req.package.meta()?.runtime {
        let engine = Engine::detect(state.options.engine.as_deref())?;
        state.options.engine = Some(engine.program.clone());
        state.container = Some(ContainerRef {
            engine: engine.program,
            name: detached::container_name(&state.id),
        });
    }
    state.save()?;
    let mut child = spawn_daemon(&req.exe, &state.id, dir)?;
    state.pid = Some(child.id() as i32);
    state.pid_start = state::process_start(child.id() as i32);
    state.save()?;
    let ready = wait_ready(&mut child, dir)?;
    state.program_ids = ready.program_ids;
    state.pin_dir = ready.pin_dir;
    state.save()
}

fn spawn_daemon(exe: &Path, id: &str, dir: &Path) -> Result<Child> {
    let log_path = state::log_path(dir);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io("create", &log_path, e))?;
    let err_log = log
        .try_clone()
        .map_err(|e| Error::io("open", &log_path, e))?;
    let mut cmd = Command::new(exe);
    cmd.args([DAEMON_COMMAND, id])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log);
    // SAFETY: setsid is async-signal-safe; a new session detaches the daemon from the
    // terminal (no SIGINT/SIGHUP from it) and groups its children for `stop`.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| {
        Error::environment(format!("cannot start the daemon {}: {e}", exe.display())).with_help(
            format!(
                "check that the {} binary is still in place",
                crate::program::binary_name()
            ),
        )
    })
}

/// Waits for `ready.json`; if the daemon ends first, its error becomes ours.
fn wait_ready(child: &mut Child, dir: &Path) -> Result<Ready> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let ready_path = detached::ready_path(dir);
    loop {
        if let Ok(bytes) = std::fs::read(&ready_path) {
            return serde_json::from_slice(&bytes)
                .map_err(|e| Error::input(format!("{} is damaged: {e}", ready_path.display())));
        }
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("wait for", Path::new("the daemon"), e))?
        {
            return Err(daemon_failed(dir, status.code()));
        }
        if Instant::now() > deadline {
            return Err(Error::environment(format!(
                "the run did not come up within {}s",
                READY_TIMEOUT.as_secs()
            ))
            .with_details(log_tail(dir)));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn daemon_failed(dir: &Path, code: Option<i32>) -> Error {
    let exit: Option<Exit> = std::fs::read(state::exit_path(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let code = exit.as_ref().map(|e| e.code).or(code).unwrap_or(1);
    let kind = ErrorKind::from_exit_code(code).unwrap_or(ErrorKind::Kernel);
    match exit {
        // The daemon's own error, as it would have been shown in the foreground.
        Some(Exit {
            error: Some(message),
            help,
            details,
            ..
        }) => {
            let mut e = Error::new(kind, message);
            e.help = help;
            e.details = details;
            e
        }
        _ => Error::new(
            kind,
            format!("the run ended before it was up (exit code {code})"),
        )
        .with_help("its log is below")
        .with_details(log_tail(dir)),
    }
}

fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(state::log_path(dir)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The daemon: replays the run from its state directory with the ordinary runner, output
/// on the log; cleans its own pins when it ends and records how it ended.
pub fn daemon_main(id: &str) -> Result<i32> {
    let state = state::load(id)?;
    let dir = state.dir()?;
    eprintln!(
        "{}: run {id} of {} (daemon pid {})",
        crate::program::binary_name(),
        state.target,
        std::process::id()
    );
    let result = replay(&state, &dir);
    if state.runtime == "kernel" {
        let _ = run::pin::unpin_dir(&detached::pin_dir(id));
    }
    let exit = match &result {
        Ok(code) => Exit {
            code: *code,
            error: None,
            help: None,
            details: None,
        },
        Err(e) => Exit {
            code: e.exit_code(),
            error: Some(e.full_message()),
            help: e.help.clone(),
            details: e.details.clone(),
        },
    };
    let text = serde_json::to_vec(&exit).expect("exit serializes");
    let _ = write_atomic(&state::exit_path(&dir), &text);
    eprintln!(
        "{}: run {id} ended (exit code {})",
        crate::program::binary_name(),
        exit.code
    );
    result
}

fn replay(state: &RunState, dir: &Path) -> Result<i32> {
    let layout = OciLayout::open(&dir.join("image"))?;
    let pkg = layout.read_package(Some(IMAGE_TAG))?;
    let o = &state.options;
    let opts = RunOptions {
        output: if o.output == "json" {
            Output::Json
        } else {
            Output::Table
        },
        duration: o.duration_secs.map(Duration::from_secs),
        args: o.args.clone(),
        btf: o.btf.clone(),
        engine: o.engine.clone(),
        attach: AttachOptions {
            iface: o.iface.clone(),
            cgroup: o.cgroup.clone(),
            uprobe: o.uprobe.clone(),
            frequency: o.frequency,
            annotations: Default::default(),
        },
        interval: o.interval_secs.map(Duration::from_secs),
        metrics: o.metrics.clone(),
        detached: Some(Detached {
            id: state.id.clone(),
            state_dir: dir.to_path_buf(),
        }),
        check: false,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run::run_package(&pkg, &opts, &mut out)
}
