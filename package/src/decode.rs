//! Event bytes → values (by [`TypeLayout`]) → table rows or JSON.
//!
//! Values are decoded in the host's byte order: events come from the running kernel.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::hints::{self, Hint};
use crate::spec::{ColumnHint, EnumVariant, Field, ParamInfo, TypeLayout};
use crate::{Error, Result};

// ---- decoding -------------------------------------------------------------------------------

/// Decodes `bytes` as `layout` into JSON values (objects keep field order).
pub fn decode(layout: &TypeLayout, bytes: &[u8]) -> Result<Value> {
    let Some(need) = byte_size(layout) else {
        return Err(
            Error::input("an event type's size overflows: its array lengths are absurd")
                .with_help("the package metadata is malformed: rebuild and repackage the program"),
        );
    };
    if bytes.len() < need {
        return Err(Error::input(format!(
            "an event of {} bytes is too short for its type, which needs {need} bytes",
            bytes.len()
        ))
        .with_help(
            "the object and its package metadata disagree: rebuild and repackage the program",
        ));
    }
    Ok(value_of(layout, &bytes[..need]))
}

/// `layout`'s size in bytes, or `None` when an array's size overflows: metadata from a
/// package is untrusted, and [`TypeLayout::size`] would overflow on it.
pub(crate) fn byte_size(layout: &TypeLayout) -> Option<usize> {
    match layout {
        TypeLayout::Array { len, elem } => (*len as usize).checked_mul(byte_size(elem)?),
        other => Some(other.size() as usize),
    }
}

/// Decodes `bytes`, already checked to be exactly `byte_size(layout)` long.
fn value_of(layout: &TypeLayout, bytes: &[u8]) -> Value {
    match layout {
        TypeLayout::Int { signed, .. } => {
            let (raw, bits) = read_int(bytes);
            int_value(raw, bits, *signed)
        }
        TypeLayout::Bool { .. } => Value::Bool(bytes.iter().any(|b| *b != 0)),
        TypeLayout::Float { size } => float_value(*size, bytes),
        TypeLayout::String { .. } => {
            let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
            Value::String(String::from_utf8_lossy(&bytes[..end]).into_owned())
        }
        TypeLayout::Array { elem, .. } => {
            let size = byte_size(elem).unwrap_or(0);
            if size == 0 {
                return Value::Array(Vec::new());
            }
            Value::Array(
                bytes
                    .chunks_exact(size)
                    .map(|c| value_of(elem, c))
                    .collect(),
            )
        }
        TypeLayout::Enum {
            signed, variants, ..
        } => {
            let (raw, bits) = read_int(bytes);
            enum_value(raw, bits, *signed, variants)
        }
        TypeLayout::Struct { fields, .. } => fields_value(fields, bytes),
        // A union is shown as its first member: which one is live is not recorded.
        TypeLayout::Union { fields, .. } => fields_value(&fields[..fields.len().min(1)], bytes),
        TypeLayout::Pointer { .. } => Value::String(format!("0x{:x}", read_int(bytes).0)),
        TypeLayout::Opaque { .. } => Value::String(hex::encode(bytes)),
    }
}

fn fields_value(fields: &[Field], bytes: &[u8]) -> Value {
    let mut map = Map::new();
    for field in fields {
        map.insert(field.name.clone(), field_value(field, bytes));
    }
    Value::Object(map)
}

pub(crate) fn field_value(field: &Field, bytes: &[u8]) -> Value {
    if let Some(bits) = field.bitfield_bits {
        let signed = matches!(
            field.ty,
            TypeLayout::Int { signed: true, .. } | TypeLayout::Enum { signed: true, .. }
        );
        let raw = read_bits(bytes, field.offset_bits, bits);
        return match &field.ty {
            TypeLayout::Enum { variants, .. } => enum_value(raw, bits, signed, variants),
            TypeLayout::Bool { .. } => Value::Bool(raw != 0),
            _ => int_value(raw, bits, signed),
        };
    }
    let start = (field.offset_bits / 8) as usize;
    let end = byte_size(&field.ty).and_then(|size| start.checked_add(size));
    match end.and_then(|end| bytes.get(start..end)) {
        Some(slice) if is_byte_array(&field.ty) && !hints::is_address_name(&field.name) => {
            byte_text(slice).map_or_else(|| value_of(&field.ty, slice), Value::String)
        }
        Some(slice) => value_of(&field.ty, slice),
        // Only malformed layouts get here: the total size was checked up front.
        None => Value::Null,
    }
}

/// `__u8 comm[16]` and the like: an array of one-byte integers.
fn is_byte_array(ty: &TypeLayout) -> bool {
    matches!(ty, TypeLayout::Array { elem, .. } if matches!(**elem, TypeLayout::Int { size: 1, .. }))
}

/// A byte array that holds text — printable UTF-8 up to the first NUL (or the end), not
/// empty — as that text, the way Inspektor Gadget shows `__u8 comm[16]`; else `None`
/// (binary data stays a list of numbers).
fn byte_text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    let printable = !text.is_empty() && text.chars().all(|c| !c.is_control());
    printable.then(|| text.to_string())
}

/// Reads a native-order integer of up to 16 bytes, zero-extended; returns it with its width.
pub(crate) fn read_int(bytes: &[u8]) -> (u128, u32) {
    let n = bytes.len().min(16);
    let mut buf = [0u8; 16];
    let raw = if cfg!(target_endian = "little") {
        buf[..n].copy_from_slice(&bytes[..n]);
        u128::from_le_bytes(buf)
    } else {
        buf[16 - n..].copy_from_slice(&bytes[..n]);
        u128::from_be_bytes(buf)
    };
    (raw, n as u32 * 8)
}

/// Extracts a bitfield of `bits` bits at `offset_bits` (BTF numbering: from the struct's
/// first bit in memory order on little-endian hosts, from the most significant on big-endian).
pub(crate) fn read_bits(bytes: &[u8], offset_bits: u32, bits: u32) -> u128 {
    let start = (offset_bits / 8) as usize;
    // In u64: hostile metadata can put a field near u32::MAX bits.
    let end = (u64::from(offset_bits) + u64::from(bits)).div_ceil(8) as usize;
    let Some(chunk) = bytes.get(start..end.min(start + 16)) else {
        return 0;
    };
    let (word, width) = read_int(chunk);
    let shift = if cfg!(target_endian = "little") {
        offset_bits % 8
    } else {
        width.saturating_sub(offset_bits % 8 + bits)
    };
    (word >> shift) & mask(bits)
}

pub(crate) fn mask(bits: u32) -> u128 {
    if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

/// `raw` (the low `bits` bits) as a signed number.
pub(crate) fn sign_extend(raw: u128, bits: u32) -> i128 {
    if bits > 0 && bits < 128 && raw & (1 << (bits - 1)) != 0 {
        (raw | !mask(bits)) as i128
    } else {
        raw as i128
    }
}

/// JSON numbers for up to 64 bits; wider values as decimal strings (JSON readers lose
/// precision beyond 64 bits).
fn int_value(raw: u128, bits: u32, signed: bool) -> Value {
    match (signed, bits <= 64) {
        (true, true) => Value::from(sign_extend(raw, bits) as i64),
        (false, true) => Value::from(raw as u64),
        (true, false) => Value::String(sign_extend(raw, bits).to_string()),
        (false, false) => Value::String(raw.to_string()),
    }
}

fn float_value(size: u32, bytes: &[u8]) -> Value {
    let f = match size {
        4 => f64::from(f32::from_ne_bytes(bytes.try_into().unwrap_or_default())),
        8 => f64::from_ne_bytes(bytes.try_into().unwrap_or_default()),
        _ => return Value::String(hex::encode(bytes)),
    };
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn enum_value(raw: u128, bits: u32, signed: bool, variants: &[EnumVariant]) -> Value {
    // Compare bit patterns: 64-bit unsigned variants are stored as i64.
    let found = variants
        .iter()
        .find(|x| x.value as i128 as u128 & mask(bits) == raw);
    match found {
        Some(x) => Value::String(x.name.clone()),
        None => int_value(raw, bits, signed),
    }
}

// ---- parameters -----------------------------------------------------------------------------

/// Parses a command-line value for `param` into the bytes to store in `.rodata`.
pub fn encode_param(param: &ParamInfo, text: &str) -> Result<Vec<u8>> {
    let flag = &param.flag;
    // Sizes outside 1..=16 only come from malformed metadata; they fall to the error below.
    match &param.ty {
        TypeLayout::Int {
            size: size @ 1..=16,
            signed,
        } => {
            let v = parse_int(text, *size, *signed).ok_or_else(|| {
                int_error(flag, text, *size, *signed, "an integer")
                    .with_help("write it in decimal (42, -1) or hex (0x2a)")
            })?;
            Ok(int_bytes(v, *size))
        }
        TypeLayout::Bool {
            size: size @ 1..=16,
        } => {
            let v = match text {
                "true" | "1" => 1,
                "false" | "0" => 0,
                _ => {
                    return Err(Error::usage(format!(
                        "`--{flag}` expects true or false, got `{text}`"
                    ))
                    .with_help(format!(
                        "write `--{flag} true` or `--{flag} false` (or 1/0)"
                    )))
                }
            };
            Ok(int_bytes(v, *size))
        }
        TypeLayout::String { len } => encode_string(flag, text, *len),
        // `__u8 name[16]` / `unsigned char name[16]`: set from text, like a char array.
        TypeLayout::Array { len, .. } if is_byte_array(&param.ty) => {
            encode_string(flag, text, *len)
        }
        TypeLayout::Enum {
            size,
            signed,
            variants,
        } => encode_enum(flag, text, *size, *signed, variants),
        TypeLayout::Float {
            size: size @ (4 | 8),
        } => encode_float(flag, text, *size),
        other => Err(Error::usage(format!(
            "`--{flag}` cannot be set from the command line: its type ({}) is not a number, \
             bool, string or enum",
            kind_name(other)
        ))
        .with_help("set it in the program's source and rebuild")),
    }
}

fn parse_int(text: &str, size: u32, signed: bool) -> Option<i128> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let magnitude = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u128::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<u128>().ok()?,
    };
    let magnitude = i128::try_from(magnitude).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    let (min, max) = int_range(size, signed);
    (min..=max).contains(&value).then_some(value)
}

fn int_range(size: u32, signed: bool) -> (i128, i128) {
    // Saturating, and 0 bytes hold only 0: metadata from a package is untrusted.
    let bits = size.saturating_mul(8).min(127);
    if bits == 0 {
        (0, 0)
    } else if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else if bits == 127 {
        // A u128 (or wider): its top half does not fit i128, so the range stops at
        // i128::MAX (`1 << 127` would overflow).
        (0, i128::MAX)
    } else {
        // Not `(1 << bits) - 1`: at 127 bits (a u128) that overflows.
        (0, i128::MAX >> (127 - bits))
    }
}

fn int_error(flag: &str, text: &str, size: u32, signed: bool, what: &str) -> Error {
    let (min, max) = int_range(size, signed);
    Error::usage(format!(
        "`--{flag}` expects {what} from {min} to {max}, got `{text}`"
    ))
}

fn int_bytes(v: i128, size: u32) -> Vec<u8> {
    let size = size.min(16) as usize;
    if cfg!(target_endian = "little") {
        v.to_le_bytes()[..size].to_vec()
    } else {
        v.to_be_bytes()[16 - size..].to_vec()
    }
}

fn encode_string(flag: &str, text: &str, len: u32) -> Result<Vec<u8>> {
    let max = len.saturating_sub(1) as usize;
    if text.len() > max || text.as_bytes().contains(&0) {
        return Err(Error::usage(format!(
            "`--{flag}` expects a string of at most {max} bytes, got {} bytes",
            text.len()
        ))
        .with_help("the variable is a fixed-size char array with room for a terminating NUL"));
    }
    let mut bytes = text.as_bytes().to_vec();
    bytes.resize(len as usize, 0);
    Ok(bytes)
}

fn encode_enum(
    flag: &str,
    text: &str,
    size: u32,
    signed: bool,
    variants: &[EnumVariant],
) -> Result<Vec<u8>> {
    if let Some(v) = variants.iter().find(|v| v.name == text) {
        return Ok(int_bytes(i128::from(v.value), size));
    }
    let names: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
    match parse_int(text, size, signed) {
        Some(v) => Ok(int_bytes(v, size)),
        None => Err(Error::usage(format!(
            "`--{flag}` expects one of {} or a number, got `{text}`",
            names.join(", ")
        ))
        .with_help("write a variant name as declared in the C enum")),
    }
}

fn encode_float(flag: &str, text: &str, size: u32) -> Result<Vec<u8>> {
    let v: f64 = text.trim().parse().map_err(|_| {
        Error::usage(format!("`--{flag}` expects a number, got `{text}`"))
            .with_help("write it like 1.5 or -3")
    })?;
    Ok(if size == 4 {
        (v as f32).to_ne_bytes().to_vec()
    } else {
        v.to_ne_bytes().to_vec()
    })
}

/// A short human name for a layout's type, for flag listings and errors.
pub fn kind_name(layout: &TypeLayout) -> String {
    match layout {
        TypeLayout::Int { size, signed } => {
            format!(
                "{}{}",
                if *signed { "i" } else { "u" },
                u64::from(*size) * 8
            )
        }
        TypeLayout::Bool { .. } => "bool".into(),
        TypeLayout::Float { size } => format!("f{}", u64::from(*size) * 8),
        TypeLayout::String { len } => format!("string[{len}]"),
        TypeLayout::Array { len, elem } => format!("{}[{len}]", kind_name(elem)),
        TypeLayout::Enum { .. } => "enum".into(),
        TypeLayout::Struct { name, .. } => format!("struct {}", name.as_deref().unwrap_or("")),
        TypeLayout::Union { name, .. } => format!("union {}", name.as_deref().unwrap_or("")),
        TypeLayout::Pointer { .. } => "pointer".into(),
        TypeLayout::Opaque { size } => format!("opaque[{size}]"),
    }
}

// ---- rendering ------------------------------------------------------------------------------

/// Widest a column gets from its type alone; longer values still print in full.
const MAX_COLUMN: usize = 24;
const TIME_HEADER: &str = "TIME";
pub(crate) const TIME_WIDTH: usize = 8;

/// Renders events of one type as aligned text columns, TIME first; nested structs become
/// `A.B` columns.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<Column>,
}

#[derive(Debug, Clone)]
struct Column {
    header: String,
    /// Where the value sits in the decoded object.
    path: Vec<String>,
    width: usize,
    /// Shown readably (a time, an address, an errno) rather than as the raw number.
    hint: Option<Hint>,
    /// A sibling `family` field, which says how an address column reads.
    family: Option<Vec<String>>,
    /// Right-aligned (a gadget's `columns.alignment: right`).
    right: bool,
}

/// Widest column a package's hints may ask for.
const MAX_COLUMN_WIDTH: usize = 256;

impl Table {
    pub fn new(layout: &TypeLayout) -> Table {
        let mut columns = Vec::new();
        match layout {
            TypeLayout::Struct { fields, .. } => flatten(fields, &mut Vec::new(), &mut columns),
            TypeLayout::Union { fields, .. } => flatten(
                &fields[..fields.len().min(1)],
                &mut Vec::new(),
                &mut columns,
            ),
            other => columns.push(Column {
                header: "VALUE".into(),
                path: Vec::new(),
                width: type_width(other),
                hint: None,
                family: None,
                right: false,
            }),
        }
        Table { columns }
    }

    /// [`Table::new`] with a gadget's column annotations applied by field name (the dotted
    /// path, or the last part of it): hidden columns go, widths and alignment change, and a
    /// `timestamp` template shows a time of day.
    pub fn with_hints(layout: &TypeLayout, hints: &BTreeMap<String, ColumnHint>) -> Table {
        let mut table = Table::new(layout);
        let hint_of = |c: &Column| {
            hints
                .get(&c.path.join("."))
                .or_else(|| c.path.last().and_then(|last| hints.get(last)))
                .cloned()
        };
        table
            .columns
            .retain(|c| !hint_of(c).is_some_and(|h| h.hidden));
        for column in &mut table.columns {
            let Some(h) = hint_of(column) else {
                continue;
            };
            if h.template.as_deref() == Some("timestamp") {
                column.hint = Some(Hint::Timestamp);
                column.width = column.width.max(Hint::Timestamp.width());
            }
            if let Some(width) = h.width {
                column.width = width.min(MAX_COLUMN_WIDTH);
            }
            column.right = h.right;
        }
        table
    }

    /// A table for events whose type is unknown: their bytes in hex.
    pub fn raw() -> Table {
        Table {
            columns: vec![Column {
                header: "DATA".into(),
                path: vec!["raw".into()],
                width: 0,
                hint: None,
                family: None,
                right: false,
            }],
        }
    }

    /// The header line (no trailing newline).
    pub fn header(&self) -> String {
        let mut cells = vec![TIME_HEADER.to_string()];
        cells.extend(self.columns.iter().map(|c| c.header.clone()));
        self.join(cells)
    }

    /// One row for `value` (as [`decode`] returned it) seen at `time` (`HH:MM:SS`).
    pub fn row(&self, time: &str, value: &Value) -> String {
        let mut cells = vec![time.to_string()];
        cells.extend(self.columns.iter().map(|c| {
            let family = c.family.as_ref().map(|path| lookup(value, path));
            let value = lookup(value, &c.path);
            c.hint
                .and_then(|h| hints::show_with_family(h, value, family))
                .unwrap_or_else(|| cell(value))
        }));
        self.join(cells)
    }

    /// Each column's width, in order (TIME excluded).
    pub(crate) fn widths(&self) -> Vec<usize> {
        self.columns.iter().map(|c| c.width).collect()
    }

    fn join(&self, cells: Vec<String>) -> String {
        let widths = std::iter::once((TIME_WIDTH, false))
            .chain(self.columns.iter().map(|c| (c.width, c.right)));
        let last = cells.len() - 1;
        let mut line = String::new();
        for (i, (text, (width, right))) in cells.into_iter().zip(widths).enumerate() {
            match (i == last, right) {
                (true, false) => line.push_str(&text),
                (true, true) => line.push_str(&format!("{text:>width$}")),
                (false, false) => line.push_str(&format!("{text:<width$} ")),
                (false, true) => line.push_str(&format!("{text:>width$} ")),
            }
        }
        line
    }
}

fn flatten(fields: &[Field], prefix: &mut Vec<String>, columns: &mut Vec<Column>) {
    for field in fields {
        prefix.push(field.name.clone());
        match &field.ty {
            TypeLayout::Struct { fields, .. } => flatten(fields, prefix, columns),
            TypeLayout::Union { fields, .. } => {
                flatten(&fields[..fields.len().min(1)], prefix, columns)
            }
            ty => {
                let header = prefix.join(".").to_uppercase();
                let hint = hints::hint_for(&field.name, ty);
                let width = hint.map_or_else(|| type_width(ty), Hint::width);
                let family = family_field(fields).map(|name| {
                    let mut path = prefix.clone();
                    path.pop();
                    path.push(name.to_string());
                    path
                });
                columns.push(Column {
                    header: header.clone(),
                    path: prefix.clone(),
                    width: width.max(header.chars().count()),
                    hint,
                    family,
                    right: false,
                });
            }
        }
        prefix.pop();
    }
}

/// The width a value of `ty` usually needs, capped at [`MAX_COLUMN`].
fn type_width(ty: &TypeLayout) -> usize {
    let width = match ty {
        TypeLayout::Int { size, signed } => {
            let (min, max) = int_range(*size, *signed);
            max.to_string().len().max(min.to_string().len())
        }
        TypeLayout::Bool { .. } => 5,
        TypeLayout::Float { .. } => 12,
        TypeLayout::String { len } => len.saturating_sub(1) as usize,
        TypeLayout::Enum { variants, .. } => {
            variants.iter().map(|v| v.name.len()).max().unwrap_or(0)
        }
        TypeLayout::Pointer { size } => 2 + 2 * *size as usize,
        TypeLayout::Opaque { size } => 2 * *size as usize,
        TypeLayout::Array { .. } | TypeLayout::Struct { .. } | TypeLayout::Union { .. } => {
            MAX_COLUMN
        }
    };
    width.min(MAX_COLUMN)
}

/// The name of the integer field among `fields` that holds an address family, if any.
fn family_field(fields: &[Field]) -> Option<&str> {
    fields
        .iter()
        .find(|f| hints::is_family(&f.name) && matches!(f.ty, TypeLayout::Int { .. }))
        .map(|f| f.name.as_str())
}

fn lookup<'v>(value: &'v Value, path: &[String]) -> &'v Value {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .unwrap_or(&Value::Null)
}

fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Adds a readable `<field>_text` companion after every hinted field of `value` (decoded
/// as `layout`) whose readable form differs from the raw one; raw values stay as they are.
pub fn annotate(layout: &TypeLayout, value: &mut Value) {
    let (TypeLayout::Struct { fields, .. } | TypeLayout::Union { fields, .. }) = layout else {
        return;
    };
    let Value::Object(map) = value else {
        return;
    };
    let family = family_field(fields).and_then(|name| map.get(name)).cloned();
    let mut out = Map::new();
    for (key, mut v) in std::mem::take(map) {
        let field = fields.iter().find(|f| f.name == key);
        let text = field.and_then(|f| {
            annotate(&f.ty, &mut v);
            hints::hint_for(&f.name, &f.ty)
                .and_then(|h| hints::show_with_family(h, &v, family.as_ref()))
        });
        let companion = format!("{key}_text");
        out.insert(key, v);
        if let Some(text) = text {
            if !fields.iter().any(|f| f.name == companion) {
                out.insert(companion, Value::String(text));
            }
        }
    }
    *map = out;
}

/// One NDJSON line (no trailing newline) for a decoded event: just its fields.
pub fn json_line(value: &Value) -> String {
    value.to_string()
}

/// The value shown for an event whose type is unknown: `{"raw": "<hex>"}`.
pub fn raw_value(bytes: &[u8]) -> Value {
    let mut map = Map::new();
    map.insert("raw".into(), Value::String(hex::encode(bytes)));
    Value::Object(map)
}

/// The local wall-clock time as `HH:MM:SS`.
pub fn time_of_day() -> String {
    // SAFETY: time(NULL) only returns a value; localtime_r fills the zeroed plain-data `tm`
    // through valid pointers and is thread-safe.
    let (tm, ok) = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        let ok = !libc::localtime_r(&now, &mut tm).is_null();
        (tm, ok)
    };
    if !ok {
        return "??:??:??".into();
    }
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{bitfield, field, int};
    use serde_json::json;

    fn strukt(name: &str, size: u32, fields: Vec<Field>) -> TypeLayout {
        TypeLayout::Struct {
            name: Some(name.into()),
            size,
            fields,
        }
    }

    fn color() -> TypeLayout {
        TypeLayout::Enum {
            size: 4,
            signed: false,
            variants: vec![
                EnumVariant {
                    name: "RED".into(),
                    value: 0,
                },
                EnumVariant {
                    name: "GREEN".into(),
                    value: 7,
                },
            ],
        }
    }

    /// struct { u32 pid; struct { i16 x; i16 y; } pos; char comm[8]; u16 ports[2];
    ///          enum color c; bool ok; i64 delta; }
    fn event() -> TypeLayout {
        let pos = strukt(
            "pos",
            4,
            vec![field("x", 0, int(2, true)), field("y", 2, int(2, true))],
        );
        strukt(
            "event",
            40,
            vec![
                field("pid", 0, int(4, false)),
                field("pos", 4, pos),
                field("comm", 8, TypeLayout::String { len: 8 }),
                field(
                    "ports",
                    16,
                    TypeLayout::Array {
                        len: 2,
                        elem: Box::new(int(2, false)),
                    },
                ),
                field("c", 20, color()),
                field("ok", 24, TypeLayout::Bool { size: 1 }),
                field("delta", 32, int(8, true)),
            ],
        )
    }

    fn event_bytes() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(4242u32.to_ne_bytes());
        b.extend((-3i16).to_ne_bytes());
        b.extend(5i16.to_ne_bytes());
        b.extend(b"bash\0zz\0");
        b.extend(80u16.to_ne_bytes());
        b.extend(443u16.to_ne_bytes());
        b.extend(7u32.to_ne_bytes());
        b.extend([1, 0, 0, 0, 0, 0, 0, 0]);
        b.extend((-9_000_000_000i64).to_ne_bytes());
        b
    }

    #[test]
    fn decodes_nested_struct_array_string_enum_bool_and_negatives() {
        let v = decode(&event(), &event_bytes()).unwrap();
        assert_eq!(
            v,
            json!({"pid": 4242, "pos": {"x": -3, "y": 5}, "comm": "bash",
                   "ports": [80, 443], "c": "GREEN", "ok": true, "delta": -9_000_000_000i64})
        );
        // Field order is the struct's, not alphabetical.
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["pid", "pos", "comm", "ports", "c", "ok", "delta"]);
    }

    #[test]
    fn unknown_enum_value_is_a_number() {
        let v = decode(&color(), &3u32.to_ne_bytes()).unwrap();
        assert_eq!(v, json!(3));
    }

    #[test]
    fn decodes_bitfields() {
        // struct { unsigned a:3; int b:5; unsigned c:1; enum color d:4; }, little-endian bits.
        let layout = strukt(
            "flags",
            4,
            vec![
                bitfield("a", 0, 3, int(4, false)),
                bitfield("b", 3, 5, int(4, true)),
                bitfield("c", 8, 1, TypeLayout::Bool { size: 1 }),
                bitfield("d", 9, 4, color()),
            ],
        );
        let word: u32 = 5 | (0b11110 << 3) | (1 << 8) | (7 << 9);
        let v = decode(&layout, &word.to_ne_bytes()).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(v, json!({"a": 5, "b": -2, "c": true, "d": "GREEN"}));
        }
    }

    #[test]
    fn pointer_opaque_u128_and_union() {
        assert_eq!(
            decode(
                &TypeLayout::Pointer { size: 8 },
                &0xdead_beefu64.to_ne_bytes()
            )
            .unwrap(),
            json!("0xdeadbeef")
        );
        assert_eq!(
            decode(&TypeLayout::Opaque { size: 2 }, &[0xab, 0x01]).unwrap(),
            json!("ab01")
        );
        let big = u128::MAX - 1;
        assert_eq!(
            decode(&int(16, false), &big.to_ne_bytes()).unwrap(),
            json!(big.to_string())
        );
        let union = TypeLayout::Union {
            name: None,
            size: 4,
            fields: vec![
                field("n", 0, int(4, true)),
                field("f", 0, TypeLayout::Float { size: 4 }),
            ],
        };
        assert_eq!(
            decode(&union, &(-1i32).to_ne_bytes()).unwrap(),
            json!({"n": -1})
        );
    }

    #[test]
    fn absurd_layouts_from_untrusted_metadata_do_not_panic() {
        let huge = TypeLayout::Array {
            len: u32::MAX,
            elem: Box::new(int(4, false)),
        };
        // 2^32 × 2^32 × 4 bytes overflows even usize.
        let huger = TypeLayout::Array {
            len: u32::MAX,
            elem: Box::new(huge.clone()),
        };
        let err = decode(&huge, &[0; 8]).unwrap_err();
        assert!(err.message.contains("too short"), "{}", err.message);
        let err = decode(&huger, &[0; 8]).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Input);
        assert!(err.message.contains("overflows"), "{}", err.message);
        // Inside a struct of sane size, such fields and far-away bitfields decode as null/0.
        let layout = strukt(
            "s",
            4,
            vec![
                field("arr", 0, huge),
                field("arr2", 0, huger),
                bitfield("far", u32::MAX - 1, 8, int(4, false)),
                bitfield("wide", 0, 255, int(4, true)),
            ],
        );
        assert_eq!(
            decode(&layout, &[0xff; 4]).unwrap(),
            json!({"arr": null, "arr2": null, "far": 0, "wide": "0"})
        );
    }

    #[test]
    fn zero_and_huge_int_sizes_from_untrusted_metadata_do_not_panic() {
        for ty in [int(0, true), int(0, false), int(u32::MAX, true)] {
            let layout = strukt("s", 1, vec![field("n", 0, ty.clone())]);
            let table = Table::new(&layout);
            assert!(table.header().ends_with(" N"), "{}", table.header());
            let _ = kind_name(&ty);
            assert_eq!(
                encode_param(&param(ty), "1").unwrap_err().kind,
                crate::ErrorKind::Usage
            );
        }
        assert_eq!(kind_name(&int(u32::MAX, false)), "u34359738360");
    }

    #[test]
    fn short_buffer_is_an_input_error_naming_both_sizes() {
        let err = decode(&event(), &[0u8; 10]).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Input);
        assert!(err.message.contains("10 bytes"), "{}", err.message);
        assert!(err.message.contains("40 bytes"), "{}", err.message);
    }

    fn param(ty: TypeLayout) -> ParamInfo {
        ParamInfo {
            name: "target_pid".into(),
            flag: "target-pid".into(),
            offset: 0,
            ty,
            default: json!(0),
            description: None,
            short: None,
            set_default: false,
        }
    }

    #[test]
    fn encodes_ints_in_decimal_hex_and_negative_with_range_checks() {
        let p = param(int(4, true));
        assert_eq!(encode_param(&p, "42").unwrap(), 42i32.to_ne_bytes());
        assert_eq!(encode_param(&p, "-1").unwrap(), (-1i32).to_ne_bytes());
        assert_eq!(encode_param(&p, "0x10").unwrap(), 16i32.to_ne_bytes());
        let err = encode_param(&p, "2147483648").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Usage);
        assert!(
            err.message.contains("-2147483648 to 2147483647"),
            "{}",
            err.message
        );
        assert!(encode_param(&p, "abc").is_err());

        let u = param(int(1, false));
        assert_eq!(encode_param(&u, "255").unwrap(), [255]);
        assert!(encode_param(&u, "256").is_err());
        assert!(encode_param(&u, "-1").is_err());
        let u64p = param(int(8, false));
        assert_eq!(
            encode_param(&u64p, "0xffffffffffffffff").unwrap(),
            u64::MAX.to_ne_bytes()
        );
    }

    #[test]
    fn encodes_bool_string_and_enum() {
        let b = param(TypeLayout::Bool { size: 1 });
        assert_eq!(encode_param(&b, "true").unwrap(), [1]);
        assert_eq!(encode_param(&b, "0").unwrap(), [0]);
        let err = encode_param(&b, "yes").unwrap_err();
        assert!(err.message.contains("true or false"), "{}", err.message);

        let s = param(TypeLayout::String { len: 4 });
        assert_eq!(encode_param(&s, "ab").unwrap(), b"ab\0\0");
        assert_eq!(encode_param(&s, "abc").unwrap(), b"abc\0");
        let err = encode_param(&s, "abcd").unwrap_err();
        assert!(err.message.contains("at most 3 bytes"), "{}", err.message);

        let e = param(color());
        assert_eq!(encode_param(&e, "GREEN").unwrap(), 7u32.to_ne_bytes());
        assert_eq!(encode_param(&e, "3").unwrap(), 3u32.to_ne_bytes());
        let err = encode_param(&e, "BLUE").unwrap_err();
        assert!(err.message.contains("RED, GREEN"), "{}", err.message);

        let st = param(event());
        assert_eq!(
            encode_param(&st, "1").unwrap_err().kind,
            crate::ErrorKind::Usage
        );
    }

    #[test]
    fn table_header_and_rows_align() {
        let table = Table::new(&event());
        let header = table.header();
        let row = table.row("12:34:56", &decode(&event(), &event_bytes()).unwrap());
        // Every column starts at the same offset in the header and in the row.
        let starts = |line: &str, cols: &[&str]| -> Vec<usize> {
            cols.iter().map(|c| line.find(c).unwrap()).collect()
        };
        let h = starts(
            &header,
            &[
                "TIME", "PID", "POS.X", "POS.Y", "COMM", "PORTS", "C ", "OK", "DELTA",
            ],
        );
        let r = starts(
            &row,
            &[
                "12:34:56",
                "4242",
                "-3",
                "5 ",
                "bash",
                "[80,443]",
                "GREEN",
                "true",
                "-9000000000",
            ],
        );
        assert_eq!(h, r, "\n{header}\n{row}");
        insta::assert_snapshot!(format!("{header}\n{row}"), @r"
        TIME     PID        POS.X  POS.Y  COMM    PORTS                    C     OK    DELTA
        12:34:56 4242       -3     5      bash    [80,443]                 GREEN true  -9000000000
        ");
        // The last column is not padded.
        assert!(!row.ends_with(' ') && !header.ends_with(' '));
    }

    #[test]
    fn raw_table_and_json_lines() {
        let v = raw_value(&[1, 2, 255]);
        assert_eq!(json_line(&v), r#"{"raw":"0102ff"}"#);
        assert_eq!(Table::raw().row("00:00:00", &v), "00:00:00 0102ff");
        let time = time_of_day();
        assert_eq!(time.len(), 8, "{time}");
    }

    /// The shape TCP tools use: one 128-bit field for either family, `family` beside it.
    fn tcp_event() -> TypeLayout {
        let u8x16 = TypeLayout::Array {
            elem: Box::new(int(1, false)),
            len: 16,
        };
        strukt(
            "event",
            56,
            vec![
                field("saddr", 0, int(16, false)),
                field("daddr", 16, int(16, false)),
                field("family", 32, int(2, false)),
                field("comm", 34, u8x16.clone()),
                field("blob", 40, u8x16),
            ],
        )
    }

    fn tcp_bytes(family: u16, saddr: &[u8], daddr: &[u8], comm: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; 56];
        bytes[..saddr.len()].copy_from_slice(saddr);
        bytes[16..16 + daddr.len()].copy_from_slice(daddr);
        bytes[32..34].copy_from_slice(&family.to_ne_bytes());
        bytes[34..34 + comm.len()].copy_from_slice(comm);
        bytes[40] = 1; // binary: stays numbers
        bytes
    }

    #[test]
    fn u128_addresses_read_by_family_and_byte_arrays_as_text() {
        let layout = tcp_event();
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        let bytes = tcp_bytes(
            10,
            &v6,
            &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            b"curl",
        );
        let mut value = decode(&layout, &bytes).unwrap();
        assert_eq!(value["comm"], "curl");
        assert!(value["blob"].is_array(), "{value}");
        let table = Table::new(&layout);
        let row = table.row("12:00:00", &value);
        assert!(row.contains("::1") && row.contains("fe80::2"), "{row}");
        annotate(&layout, &mut value);
        assert_eq!(value["saddr_text"], "::1");
        assert_eq!(value["daddr_text"], "fe80::2");

        let mut value = decode(
            &layout,
            &tcp_bytes(2, &[127, 0, 0, 1], &[10, 1, 2, 3], b"nc"),
        )
        .unwrap();
        annotate(&layout, &mut value);
        assert_eq!(value["saddr_text"], "127.0.0.1");
        assert_eq!(value["daddr_text"], "10.1.2.3");
        let row = Table::new(&layout).row("12:00:00", &value);
        assert!(
            row.contains("127.0.0.1") && row.contains("10.1.2.3"),
            "{row}"
        );
    }

    #[test]
    fn u128_fields_have_a_range_and_byte_array_params_take_text() {
        assert_eq!(int_range(16, false), (0, i128::MAX));
        let _ = Table::new(&int(16, false)).header();
        let param = ParamInfo {
            name: "target_comm".into(),
            flag: "target-comm".into(),
            offset: 0,
            ty: TypeLayout::Array {
                elem: Box::new(int(1, false)),
                len: 8,
            },
            default: json!([0, 0, 0, 0, 0, 0, 0, 0]),
            description: None,
            short: None,
            set_default: false,
        };
        assert_eq!(encode_param(&param, "bash").unwrap(), b"bash\0\0\0\0");
        assert!(encode_param(&param, "too-long-name").is_err());
    }

    #[test]
    fn column_hints_hide_align_and_template() {
        use crate::spec::{ColumnHint, Field};
        let int = |size| TypeLayout::Int {
            size,
            signed: false,
        };
        let field = |name: &str, ty| Field {
            name: name.into(),
            offset_bits: 0,
            bitfield_bits: None,
            ty,
        };
        let layout = TypeLayout::Struct {
            name: Some("e".into()),
            size: 16,
            fields: vec![
                field("pid", int(4)),
                field("when", int(8)),
                field("n", int(4)),
            ],
        };
        let mut hints = BTreeMap::new();
        hints.insert(
            "pid".to_string(),
            ColumnHint {
                hidden: true,
                ..Default::default()
            },
        );
        hints.insert(
            "when".to_string(),
            ColumnHint {
                template: Some("timestamp".into()),
                ..Default::default()
            },
        );
        hints.insert(
            "n".to_string(),
            ColumnHint {
                width: Some(6),
                right: true,
                ..Default::default()
            },
        );
        let table = Table::with_hints(&layout, &hints);
        let header = table.header();
        assert!(
            !header.contains("PID") && header.contains("WHEN"),
            "{header}"
        );
        assert!(header.ends_with("     N"), "{header:?}");
        let row = table.row(
            "12:00:00",
            &serde_json::json!({"pid": 1, "when": 0, "n": 42}),
        );
        assert!(row.ends_with("    42"), "{row:?}");
    }
}
