//! Packages that run in the background: `install`, `run -d`/`start`, `ps`, `logs`, `stop`.
//!
//! - [`install`]: pull and check a package is ready, start nothing;
//! - [`daemon`]: start a run detached — a daemon process replays it with the ordinary
//!   runner, kernel-only programs pinned in bpffs under `/sys/fs/bpf/cargo-ebpf/<id>/`;
//! - [`state`]: the state of each run under `$CARGO_EBPF_HOME/run/<id>/`, liveness, ids;
//! - [`stop`]: end a run and remove everything it left, idempotently.

pub mod daemon;
pub mod install;
pub mod state;
pub mod stop;

pub use daemon::{daemon_main, start, StartRequest, DAEMON_COMMAND};
pub use install::{install, Installed};
pub use state::{active_runs_of, list, load, log_path, DaemonOptions, RunState, RunStatus};
pub use stop::{stop, StopReport};
