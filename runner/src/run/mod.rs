//! Load, attach and stream: the runner's last stage.
//! STUB: contract only.

use std::path::PathBuf;
use std::time::Duration;

use crate::format::PackageMeta;
use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub output: Output,
    pub duration: Option<Duration>,
    pub args: Vec<String>,
    pub btf: Option<PathBuf>,
}

pub fn run_object(
    object_name: &str,
    bytes: &[u8],
    meta: Option<&PackageMeta>,
    opts: &RunOptions,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let _ = (object_name, bytes, meta, opts, out);
    todo!()
}
