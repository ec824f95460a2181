//! What a runtime needs to know when it runs detached (`run -d`, `start`): the run's id
//! and its state directory, where it reports "started" and keeps what `stop` must undo.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ebpf_package::{Error, Result};

/// Where detached kernel-only runs pin their links and maps: `<root>/<id>/`.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf/cargo-ebpf";

/// A detached run's identity, handed to the runtime by the lifecycle daemon.
#[derive(Debug, Clone)]
pub struct Detached {
    pub id: String,
    /// `$CARGO_EBPF_HOME/run/<id>`.
    pub state_dir: PathBuf,
}

/// Written by the runtime once it is up; the starting command waits for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// Kernel ids of the attached programs (kernel-only runs).
    #[serde(default)]
    pub program_ids: Vec<u32>,
    /// The bpffs directory holding the pins (kernel-only runs).
    #[serde(default)]
    pub pin_dir: Option<PathBuf>,
}

impl Detached {
    /// The bpffs directory for this run's pins.
    pub fn pin_dir(&self) -> PathBuf {
        pin_dir(&self.id)
    }

    /// The file [`Ready`] is written to.
    pub fn ready_path(&self) -> PathBuf {
        ready_path(&self.state_dir)
    }

    /// Where files and container runtimes unpack the layer (kept for the stop script).
    pub fn package_dir(&self) -> PathBuf {
        self.state_dir.join("package")
    }

    /// The container name of a container runtime.
    pub fn container_name(&self) -> String {
        container_name(&self.id)
    }

    /// Says the runtime is up (atomically: the waiter never reads half a file).
    pub fn report_ready(&self, ready: &Ready) -> Result<()> {
        let text = serde_json::to_vec_pretty(ready).expect("ready report serializes");
        write_atomic(&self.ready_path(), &text)
    }
}

pub fn pin_dir(id: &str) -> PathBuf {
    Path::new(BPFFS_ROOT).join(id)
}

pub fn ready_path(state_dir: &Path) -> PathBuf {
    state_dir.join("ready.json")
}

pub fn container_name(id: &str) -> String {
    format!("cargo-ebpf-{id}")
}

/// Writes `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("write", path, e))
}
