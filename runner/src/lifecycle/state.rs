//! Where detached runs keep their state: `$CARGO_EBPF_HOME/run/<id>/` holding `state.json`
//! (what was started, by which process, which programs), `log` (its output), `image/`
//! (the package, for the daemon to read), `package/` (the unpacked layer of container and
//! files runtimes), `ready.json` (written by the runtime once it is up), `exit.json`
//! (written by the daemon when it ends by itself).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::run::detached::write_atomic;
use crate::run::pin;
use crate::store;
use ebpf_package::{Error, Result};

const STATE_FILE: &str = "state.json";
const LOG_FILE: &str = "log";
const EXIT_FILE: &str = "exit.json";
/// Length of a run id in hex digits.
const ID_LEN: usize = 8;

/// Everything `ps`, `logs` and `stop` need to know about one detached run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub id: String,
    /// What the user asked to run (reference, path).
    pub target: String,
    /// The store key, when it came from the store (for `rm` to refuse).
    #[serde(default)]
    pub store_reference: Option<String>,
    pub name: String,
    pub version: String,
    pub digest: String,
    /// The runtime kind (`kernel`, `executable`, `container`, `files`).
    pub runtime: String,
    /// Unix seconds.
    pub started: u64,
    /// The daemon process and its start time (clock ticks since boot, from
    /// /proc/PID/stat), so a reused pid is not mistaken for it.
    #[serde(default)]
    pub pid: Option<i32>,
    #[serde(default)]
    pub pid_start: Option<u64>,
    #[serde(default)]
    pub program_ids: Vec<u32>,
    #[serde(default)]
    pub pin_dir: Option<PathBuf>,
    /// Container runtimes: the engine program and the container name.
    #[serde(default)]
    pub container: Option<ContainerRef>,
    pub options: DaemonOptions,
    /// Unix seconds; set by `stop`.
    #[serde(default)]
    pub stopped: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    pub engine: String,
    pub name: String,
}

/// The run options the daemon replays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonOptions {
    /// `table` or `json`.
    pub output: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub btf: Option<PathBuf>,
    #[serde(default)]
    pub duration_secs: Option<u64>,
    #[serde(default)]
    pub engine: Option<String>,
    /// Attach targets (`--iface`, `--cgroup`, `--uprobe`, `--frequency`).
    #[serde(default)]
    pub iface: Option<String>,
    #[serde(default)]
    pub cgroup: Option<PathBuf>,
    #[serde(default)]
    pub uprobe: Option<String>,
    #[serde(default)]
    pub frequency: Option<u64>,
    /// Map output (`--interval`, `--metrics`).
    #[serde(default)]
    pub interval_secs: Option<u64>,
    #[serde(default)]
    pub metrics: Option<String>,
}

/// How the daemon ended, when it ended by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub code: i32,
    /// The daemon's error, when it failed: message, help, details.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub help: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
}

/// A run's state plus what is true now.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    #[serde(flatten)]
    pub state: RunState,
    /// `running`, `exited (code N)`, `dead`, `stopped`.
    pub status: String,
    /// The recorded programs still loaded in the kernel.
    pub loaded_program_ids: Vec<u32>,
}

/// `$CARGO_EBPF_HOME/run` (next to the store).
pub fn runs_dir() -> Result<PathBuf> {
    let store = store::default_dir()?;
    Ok(store.parent().unwrap_or(Path::new(".")).join("run"))
}

pub fn run_dir(id: &str) -> Result<PathBuf> {
    Ok(runs_dir()?.join(id))
}

pub fn log_path(dir: &Path) -> PathBuf {
    dir.join(LOG_FILE)
}

pub fn exit_path(dir: &Path) -> PathBuf {
    dir.join(EXIT_FILE)
}

/// Creates a fresh run directory with a new short id (claimed atomically by mkdir).
pub fn new_run_dir() -> Result<(String, PathBuf)> {
    let runs = runs_dir()?;
    std::fs::create_dir_all(&runs).map_err(|e| Error::io("create", &runs, e))?;
    for _ in 0..16 {
        let id = random_id()?;
        let dir = runs.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("create", &dir, e)),
        }
    }
    Err(Error::io(
        "find a free run id in",
        &runs,
        std::io::Error::other("every id tried was taken"),
    ))
}

fn random_id() -> Result<String> {
    let mut bytes = [0u8; ID_LEN / 2];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("read", Path::new("/dev/urandom"), e))?;
    Ok(hex::encode(bytes))
}

impl RunState {
    pub fn dir(&self) -> Result<PathBuf> {
        run_dir(&self.id)
    }

    pub fn save(&self) -> Result<()> {
        let dir = self.dir()?;
        let text = serde_json::to_vec_pretty(self).expect("run state serializes");
        write_atomic(&dir.join(STATE_FILE), &text)
    }

    /// Whether the daemon process is still the one that was started.
    pub fn daemon_alive(&self) -> bool {
        match (self.pid, self.pid_start) {
            (Some(pid), Some(start)) => process_start(pid) == Some(start),
            _ => false,
        }
    }

    /// The current status, as `ps` shows it.
    pub fn status(&self) -> RunStatus {
        let loaded: Vec<u32> = self
            .program_ids
            .iter()
            .copied()
            .filter(|id| pin::program_loaded(*id))
            .collect();
        let status = if self.stopped.is_some() {
            "stopped".to_string()
        } else if self.daemon_alive() {
            "running".to_string()
        } else if let Some(exit) = self.dir().ok().and_then(|d| read_exit(&d)) {
            format!("exited (code {})", exit.code)
        } else if !loaded.is_empty() {
            "dead, programs attached".to_string()
        } else {
            "dead".to_string()
        };
        RunStatus {
            state: self.clone(),
            status,
            loaded_program_ids: loaded,
        }
    }
}

fn read_exit(dir: &Path) -> Option<Exit> {
    let bytes = std::fs::read(exit_path(dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Loads the run `id`; a unique prefix of an id is accepted too.
pub fn load(id: &str) -> Result<RunState> {
    let runs = runs_dir()?;
    let full = resolve_id(&runs, id)?;
    let path = runs.join(&full).join(STATE_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::input(format!("{} is damaged: {e}", path.display()))
            .with_help(format!("remove {} by hand", runs.join(&full).display()))
    })
}

fn resolve_id(runs: &Path, id: &str) -> Result<String> {
    let valid = !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit());
    let matches: Vec<String> = if valid {
        list_ids(runs)?
            .into_iter()
            .filter(|known| known.starts_with(id))
            .collect()
    } else {
        vec![]
    };
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(
            Error::input(format!("there is no run `{id}`")).with_help(format!(
                "`{} ps --all` lists the runs and their ids",
                crate::program::name()
            )),
        ),
        _ => Err(
            Error::input(format!("`{id}` matches more than one run")).with_help(format!(
                "give more of the id (`{} ps --all` lists them)",
                crate::program::name()
            )),
        ),
    }
}

fn list_ids(runs: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(runs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io("read", runs, e)),
    };
    Ok(entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE_FILE).is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

/// Every run with a readable state, oldest first.
pub fn list() -> Result<Vec<RunStatus>> {
    let runs = runs_dir()?;
    let mut states: Vec<RunState> = list_ids(&runs)?
        .iter()
        .filter_map(|id| load(id).ok())
        .collect();
    states.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
    Ok(states.iter().map(RunState::status).collect())
}

/// Runs not yet stopped that use the store entry `store_reference`.
pub fn active_runs_of(store_reference: &str) -> Result<Vec<RunState>> {
    Ok(list()?
        .into_iter()
        .map(|s| s.state)
        .filter(|s| s.stopped.is_none() && s.store_reference.as_deref() == Some(store_reference))
        .collect())
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A live (not zombie) process's start time in clock ticks since boot.
pub fn process_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (field 3), fields[19] the start time (field 22).
    if fields.first().is_some_and(|s| *s == "Z" || *s == "X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Pids of live processes in session `sid` (the daemon calls setsid, so its children
/// share its session unless they left it).
pub fn session_members(sid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // fields[3] is the session id (field 6).
            fields.first().is_some_and(|s| *s != "Z") && fields.get(3) == Some(&&*sid.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_has_a_start_time() {
        let me = std::process::id() as i32;
        assert!(process_start(me).is_some());
        assert!(process_start(i32::MAX).is_none());
        let sid = unsafe { libc::getsid(0) };
        assert!(session_members(sid).contains(&me));
    }

    #[test]
    fn ids_resolve_by_unique_prefix() {
        let dir = tempfile::tempdir().unwrap();
        for id in ["abcd1234", "abce0000"] {
            std::fs::create_dir(dir.path().join(id)).unwrap();
            std::fs::write(dir.path().join(id).join(STATE_FILE), "{}").unwrap();
        }
        assert_eq!(resolve_id(dir.path(), "abcd").unwrap(), "abcd1234");
        assert!(resolve_id(dir.path(), "abc")
            .unwrap_err()
            .message
            .contains("more than one"));
        assert!(resolve_id(dir.path(), "ffff")
            .unwrap_err()
            .message
            .contains("no run"));
        assert!(resolve_id(dir.path(), "../x").is_err());
    }
}
