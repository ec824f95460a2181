//! What a BPF ELF object holds: programs, maps, `const volatile` params and event layouts,
//! read from its sections and BTF without loading it into the kernel.
//! STUB: contract only.

use std::collections::BTreeMap;

use crate::format::{EventInfo, MapInfo, ParamInfo, ProgramInfo, TypeLayout};
use crate::Result;

#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub programs: Vec<ProgramInfo>,
    pub maps: Vec<MapInfo>,
    pub params: Vec<ParamInfo>,
    pub events: Vec<EventInfo>,
    pub types: BTreeMap<String, TypeLayout>,
}

/// Checks that `bytes` is a BPF ELF of the host's byte order: clear Input errors for
/// "not an ELF", "an ELF for another machine (x86-64, …)", "wrong endianness".
pub fn check_elf(bytes: &[u8]) -> Result<()> {
    let _ = bytes;
    todo!()
}

/// Reads everything a package and the runner need. `event_type` names the event struct
/// when the author chose it; otherwise it is inferred.
pub fn inspect(bytes: &[u8], event_type: Option<&str>) -> Result<ObjectInfo> {
    let _ = (bytes, event_type);
    todo!()
}
