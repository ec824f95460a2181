//! Event bytes → values (by [`TypeLayout`]) → table rows or JSON.
//! STUB: contract only.

use crate::format::{ParamInfo, TypeLayout};
use crate::Result;

/// Decodes `bytes` as `layout` into JSON values (objects keep field order).
pub fn decode(layout: &TypeLayout, bytes: &[u8]) -> Result<serde_json::Value> {
    let _ = (layout, bytes);
    todo!()
}

/// Parses a command-line value for `param` into the bytes to store in `.rodata`.
pub fn encode_param(param: &ParamInfo, text: &str) -> Result<Vec<u8>> {
    let _ = (param, text);
    todo!()
}
