//! `stop ID`: ends a detached run and leaves nothing of it in the kernel or on the host.
//! Every step is idempotent and checks what is actually there, so stopping a run twice,
//! or one whose daemon was killed, cleans whatever is left and says what that was.

use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::run::{self, detached};
use ebpf_package::{Error, Result};

use super::state::{self, RunState};

/// How long the daemon gets to stop by itself after SIGTERM (it detaches, runs the stop
/// script, stops the container) before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(15);
/// How long the kernel gets to free programs once their last reference is gone.
const UNLOAD_WAIT: Duration = Duration::from_secs(5);

/// What `stop` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StopReport {
    pub id: String,
    /// The run had been stopped before.
    pub already_stopped: bool,
    /// One line per thing cleaned up.
    pub cleaned: Vec<String>,
    /// Programs of the run the kernel still has (held by someone else).
    pub still_loaded: Vec<u32>,
}

/// Stops run `id` (or a unique prefix of it).
pub fn stop(id: &str) -> Result<StopReport> {
    let mut state = state::load(id)?;
    let dir = state.dir()?;
    let mut report = StopReport {
        id: state.id.clone(),
        already_stopped: state.stopped.is_some(),
        ..StopReport::default()
    };
    end_processes(&state, &mut report);
    if let Some(container) = &state.container {
        let engine = Engine::named(&container.engine);
        if engine.remove(&container.name)? {
            report
                .cleaned
                .push(format!("removed container {}", container.name));
        }
    }
    report.cleaned.extend(run::undo_placed(&dir)?);
    let pin_dir = state
        .pin_dir
        .clone()
        .unwrap_or_else(|| detached::pin_dir(&state.id));
    let unpinned = run::pin::unpin_dir(&pin_dir)?;
    if !unpinned.is_empty() {
        report.cleaned.push(format!(
            "unpinned {} link(s) and map(s) from {}",
            unpinned.len(),
            pin_dir.display()
        ));
    }
    // The shared parent goes when the last run's pins do.
    let _ = std::fs::remove_dir(detached::BPFFS_ROOT);
    report.still_loaded = wait_unloaded(&state.program_ids);
    state.stopped.get_or_insert_with(state::now);
    state.save()?;
    if !report.still_loaded.is_empty() {
        return Err(still_loaded_error(&report.still_loaded));
    }
    Ok(report)
}

/// SIGTERM to the daemon, SIGKILL if it does not end in time, then SIGKILL to anything
/// left in its session (a loader whose daemon was killed).
fn end_processes(state: &RunState, report: &mut StopReport) {
    let Some(pid) = state.pid else { return };
    if state.daemon_alive() {
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + TERM_GRACE;
        while state.daemon_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if state.daemon_alive() {
            signal(pid, libc::SIGKILL);
            report.cleaned.push(format!(
                "killed the daemon (pid {pid}) after {}s",
                TERM_GRACE.as_secs()
            ));
        } else {
            report
                .cleaned
                .push(format!("stopped the daemon (pid {pid})"));
        }
    }
    for member in state::session_members(pid) {
        signal(member, libc::SIGKILL);
        report
            .cleaned
            .push(format!("killed leftover process {member} of the run"));
    }
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we recorded and just checked.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Waits until the kernel has freed `ids`; returns those it still has.
fn wait_unloaded(ids: &[u32]) -> Vec<u32> {
    let deadline = Instant::now() + UNLOAD_WAIT;
    loop {
        let loaded: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| run::pin::program_loaded(*id))
            .collect();
        if loaded.is_empty() || Instant::now() > deadline {
            return loaded;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn still_loaded_error(ids: &[u32]) -> Error {
    let list: Vec<String> = ids.iter().map(u32::to_string).collect();
    Error::kernel(format!(
        "the run is stopped but the kernel still has its program(s) {}",
        list.join(", ")
    ))
    .with_help(format!(
        "another process or pin holds them; `bpftool prog show id {}` and `bpftool link` show \
         which",
        ids[0]
    ))
}
