//! An event type compiled once into a rendering plan: field offsets, kinds, JSON keys,
//! display hints and table columns are worked out when the program loads, so each event is
//! written straight into a reused buffer, with no per-event map, `Value` or string.
//!
//! The output is byte for byte what [`crate::decode`] renders (`decode` + `annotate` +
//! `json_line`, and `Table::row`): that module stays the reference, and the generic path
//! for layouts the plan does not cover (malformed metadata, duplicate field names).

use std::collections::BTreeMap;
use std::io::Write as _;

use serde_json::Value;

use crate::decode::{self, Table};
use crate::hints::{self, Hint};
use crate::spec::{ColumnHint, Field, TypeLayout};
use crate::Result;

/// How events of one type are written as JSON lines and table rows.
#[derive(Debug, Clone)]
pub struct EventCodec {
    layout: TypeLayout,
    table: Table,
    /// `None` when the layout needs the generic path.
    plan: Option<Plan>,
    /// Table rows through the generic path (column annotations apply there).
    rows_generic: bool,
}

#[derive(Debug, Clone)]
struct Plan {
    size: usize,
    root: Node,
    columns: Vec<Column>,
}

/// How a value of one type is written.
#[derive(Debug, Clone)]
enum Node {
    Int {
        signed: bool,
    },
    Bool,
    Float {
        size: u32,
    },
    Str,
    /// `variants`: first match wins.
    Enum {
        signed: bool,
        variants: Vec<Variant>,
    },
    Pointer,
    Hex,
    Array {
        elem_size: usize,
        elem: Box<Node>,
    },
    Object {
        slots: Vec<Slot>,
    },
}

/// An enum variant: its bit pattern as read, its name bare and as a JSON string.
#[derive(Debug, Clone)]
struct Variant {
    pattern: u128,
    name: Box<str>,
    json: Box<str>,
}

/// One member of a struct (or a union's first member).
#[derive(Debug, Clone)]
struct Slot {
    /// `"name":`, escaped once.
    key: Box<[u8]>,
    at: At,
    node: Node,
    hint: Option<Hinted>,
}

/// Where a member sits in its parent's bytes.
#[derive(Debug, Clone)]
enum At {
    Bytes(usize, usize),
    Bits {
        offset: u32,
        bits: u32,
        signed: bool,
    },
}

/// A hinted member: its field (decoded as a `Value` for [`hints::show`]) and, unless a
/// member already has that name, the `"<name>_text":` key its JSON companion gets.
#[derive(Debug, Clone)]
struct Hinted {
    hint: Hint,
    field: Field,
    companion: Option<Box<[u8]>>,
}

/// One table column: a leaf member and the byte range of the struct holding it.
#[derive(Debug, Clone)]
struct Column {
    parent: (usize, usize),
    at: At,
    node: Node,
    hint: Option<Hinted>,
    width: usize,
}

impl EventCodec {
    /// Compiles `layout` (untrusted package metadata: anything odd takes the generic path).
    pub fn new(layout: &TypeLayout) -> EventCodec {
        EventCodec::with_columns(layout, &BTreeMap::new())
    }

    /// Like [`EventCodec::new`], with a gadget's column annotations for the table. Rows of a
    /// table they change (hidden, right-aligned or templated columns) take the generic
    /// path, which applies them; JSON is unchanged.
    pub fn with_columns(layout: &TypeLayout, columns: &BTreeMap<String, ColumnHint>) -> EventCodec {
        let table = Table::with_hints(layout, columns);
        let plan = compile(layout, &table.widths());
        EventCodec {
            layout: layout.clone(),
            table,
            plan,
            rows_generic: !columns.is_empty(),
        }
    }

    /// The table this codec writes rows of (for its header).
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Whether events take the compiled path (false: the generic one, same output).
    pub fn is_compiled(&self) -> bool {
        self.plan.is_some()
    }

    /// Appends one NDJSON line (no newline) for the event in `bytes`, with the readable
    /// `<field>_text` companions; an event too short for its type is an error.
    pub fn write_json(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match &self.plan {
            Some(plan) if bytes.len() >= plan.size => {
                json(&plan.root, &bytes[..plan.size], true, out);
                Ok(())
            }
            _ => {
                let mut value = decode::decode(&self.layout, bytes)?;
                decode::annotate(&self.layout, &mut value);
                out.extend_from_slice(decode::json_line(&value).as_bytes());
                Ok(())
            }
        }
    }

    /// Appends one table row (no newline) for the event in `bytes` seen at `time`.
    pub fn write_row(&self, time: &str, bytes: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let compiled = self.plan.as_ref().filter(|p| bytes.len() >= p.size);
        let Some(plan) = compiled.filter(|_| !self.rows_generic) else {
            let value = decode::decode(&self.layout, bytes)?;
            out.extend_from_slice(self.table.row(time, &value).as_bytes());
            return Ok(());
        };
        let bytes = &bytes[..plan.size];
        let last = plan.columns.len();
        pad_cell(out, last == 0, decode::TIME_WIDTH, |out| {
            out.extend_from_slice(time.as_bytes())
        });
        for (i, col) in plan.columns.iter().enumerate() {
            pad_cell(out, i + 1 == last, col.width, |out| {
                column_cell(col, bytes, out)
            });
        }
        Ok(())
    }
}

/// Writes a cell and, unless it is the last, pads it to `width` characters plus a space.
fn pad_cell(out: &mut Vec<u8>, last: bool, width: usize, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    write(out);
    if last {
        return;
    }
    // Characters, not bytes, as `format!("{:<width$}")` counts them.
    let chars = out[start..].iter().filter(|b| (**b & 0xc0) != 0x80).count();
    out.resize(out.len() + width.saturating_sub(chars), b' ');
    out.push(b' ');
}

// ---- compiling ------------------------------------------------------------------------------

fn compile(layout: &TypeLayout, widths: &[usize]) -> Option<Plan> {
    if needs_reference_renderer(layout) {
        return None;
    }
    let size = decode::byte_size(layout)?;
    let root = node(layout, size)?;
    let mut columns = Vec::new();
    match &root {
        Node::Object { slots } => leaf_columns(slots, (0, size), &mut columns),
        other => columns.push(Column {
            parent: (0, size),
            at: At::Bytes(0, size),
            node: other.clone(),
            hint: None,
            width: 0,
        }),
    }
    if columns.len() != widths.len() {
        return None;
    }
    for (col, width) in columns.iter_mut().zip(widths) {
        col.width = *width;
    }
    Some(Plan {
        size,
        root,
        columns,
    })
}

/// Layouts whose rendering the plan does not reproduce yet, left to [`decode`]: byte arrays
/// (shown as text when they hold text), 128-bit integers, and addresses read by a sibling
/// `family` field.
fn needs_reference_renderer(layout: &TypeLayout) -> bool {
    match layout {
        TypeLayout::Int { size, .. } => *size > 8,
        TypeLayout::Array { elem, .. } => {
            matches!(**elem, TypeLayout::Int { size: 1, .. }) || needs_reference_renderer(elem)
        }
        TypeLayout::Struct { fields, .. } | TypeLayout::Union { fields, .. } => {
            fields.iter().any(|f| {
                f.name == "af" || f.name.ends_with("family") || needs_reference_renderer(&f.ty)
            })
        }
        _ => false,
    }
}

/// The plan for a value of `layout` occupying `size` bytes; `None` sends the whole type to
/// the generic path.
fn node(layout: &TypeLayout, size: usize) -> Option<Node> {
    Some(match layout {
        TypeLayout::Int { signed, .. } => Node::Int { signed: *signed },
        TypeLayout::Bool { .. } => Node::Bool,
        TypeLayout::Float { size: s @ (4 | 8) } => Node::Float { size: *s },
        TypeLayout::Float { .. } | TypeLayout::Opaque { .. } => Node::Hex,
        TypeLayout::String { .. } => Node::Str,
        TypeLayout::Pointer { .. } => Node::Pointer,
        TypeLayout::Enum {
            signed, variants, ..
        } => enum_node(*signed, variants, (size.min(16) * 8) as u32),
        TypeLayout::Array { elem, .. } => {
            let elem_size = decode::byte_size(elem)?;
            Node::Array {
                elem_size,
                elem: Box::new(node(elem, elem_size)?),
            }
        }
        TypeLayout::Struct { fields, .. } => object(fields, fields, size)?,
        TypeLayout::Union { fields, .. } => object(&fields[..fields.len().min(1)], fields, size)?,
    })
}

fn enum_node(signed: bool, variants: &[crate::spec::EnumVariant], bits: u32) -> Node {
    let variants = variants
        .iter()
        .map(|v| Variant {
            pattern: v.value as i128 as u128 & decode::mask(bits),
            name: v.name.as_str().into(),
            json: serde_json::to_string(&v.name).unwrap_or_default().into(),
        })
        .collect();
    Node::Enum { signed, variants }
}

/// A struct (or union) showing `shown` out of all its members `all`.
fn object(shown: &[Field], all: &[Field], size: usize) -> Option<Node> {
    // Duplicate names collapse in a JSON object: left to the generic path.
    let mut names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    let slots = shown
        .iter()
        .map(|f| slot(f, all, size))
        .collect::<Option<_>>()?;
    Some(Node::Object { slots })
}

fn slot(field: &Field, siblings: &[Field], parent_size: usize) -> Option<Slot> {
    let (at, node) = match field.bitfield_bits {
        Some(bits) => bit_member(field, bits)?,
        None => {
            let start = (field.offset_bits / 8) as usize;
            let size = decode::byte_size(&field.ty)?;
            let end = start.checked_add(size).filter(|e| *e <= parent_size)?;
            (At::Bytes(start, end), node(&field.ty, size)?)
        }
    };
    let hint = hints::hint_for(&field.name, &field.ty).map(|hint| {
        let companion = format!("{}_text", field.name);
        let clash = siblings.iter().any(|f| f.name == companion);
        Hinted {
            hint,
            field: field.clone(),
            companion: (!clash).then(|| json_key(&companion)),
        }
    });
    Some(Slot {
        key: json_key(&field.name),
        at,
        node,
        hint,
    })
}

/// A bitfield of an integer, enum or bool type (anything else: the generic path).
fn bit_member(field: &Field, bits: u32) -> Option<(At, Node)> {
    let signed = matches!(
        field.ty,
        TypeLayout::Int { signed: true, .. } | TypeLayout::Enum { signed: true, .. }
    );
    let node = match &field.ty {
        TypeLayout::Enum { variants, .. } => enum_node(signed, variants, bits),
        TypeLayout::Bool { .. } => Node::Bool,
        TypeLayout::Struct { .. } | TypeLayout::Union { .. } | TypeLayout::Array { .. } => {
            return None
        }
        _ => Node::Int { signed },
    };
    let at = At::Bits {
        offset: field.offset_bits,
        bits,
        signed,
    };
    Some((at, node))
}

fn json_key(name: &str) -> Box<[u8]> {
    let mut key = serde_json::to_vec(name).unwrap_or_default();
    key.push(b':');
    key.into()
}

/// The table's columns, in [`Table`]'s order: nested structs flattened depth first.
fn leaf_columns(slots: &[Slot], parent: (usize, usize), out: &mut Vec<Column>) {
    for s in slots {
        match (&s.node, &s.at) {
            (Node::Object { slots }, At::Bytes(start, end)) => {
                leaf_columns(slots, (parent.0 + start, parent.0 + end), out)
            }
            _ => out.push(Column {
                parent,
                at: s.at.clone(),
                node: s.node.clone(),
                hint: s.hint.clone(),
                width: 0,
            }),
        }
    }
}

// ---- writing --------------------------------------------------------------------------------

/// Writes a value of `node` held in `b` (exactly its size) as JSON; `annotate` adds the
/// `_text` companions (as `decode::annotate` does: not inside arrays).
fn json(node: &Node, b: &[u8], annotate: bool, out: &mut Vec<u8>) {
    match node {
        Node::Array { elem_size, elem } => {
            out.push(b'[');
            if *elem_size > 0 {
                for (i, chunk) in b.chunks_exact(*elem_size).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json(elem, chunk, false, out);
                }
            }
            out.push(b']');
        }
        Node::Object { slots } => {
            out.push(b'{');
            for (i, s) in slots.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&s.key);
                member(s, b, annotate, out);
            }
            out.push(b'}');
        }
        leaf => scalar(leaf, b, true, out),
    }
}

/// Writes one struct member (from its parent's bytes `b`) and its companion.
fn member(s: &Slot, b: &[u8], annotate: bool, out: &mut Vec<u8>) {
    match &s.at {
        At::Bytes(start, end) => json(&s.node, &b[*start..*end], annotate, out),
        At::Bits {
            offset,
            bits,
            signed,
        } => bits_value(&s.node, b, *offset, *bits, *signed, true, out),
    }
    let Some(h) = s.hint.as_ref().filter(|_| annotate) else {
        return;
    };
    let Some(key) = &h.companion else { return };
    if let Some(text) = hints::show(h.hint, &decode::field_value(&h.field, b)) {
        out.push(b',');
        out.extend_from_slice(key);
        json_str(&text, out);
    }
}

fn bits_value(
    node: &Node,
    b: &[u8],
    offset: u32,
    bits: u32,
    signed: bool,
    quote: bool,
    out: &mut Vec<u8>,
) {
    let raw = decode::read_bits(b, offset, bits);
    match node {
        Node::Bool => out.extend_from_slice(if raw != 0 { b"true" } else { b"false" }),
        Node::Enum { variants, .. } => enum_value(variants, raw, bits, signed, quote, out),
        _ => int(raw, bits, signed, quote, out),
    }
}

/// A leaf value; `quote`: as JSON (strings quoted) or as a table cell (bare text).
fn scalar(node: &Node, b: &[u8], quote: bool, out: &mut Vec<u8>) {
    match node {
        Node::Int { signed } => {
            let (raw, bits) = decode::read_int(b);
            int(raw, bits, *signed, quote, out)
        }
        Node::Bool => {
            let on = b.iter().any(|x| *x != 0);
            out.extend_from_slice(if on { b"true" } else { b"false" })
        }
        Node::Float { size } => {
            let f = if *size == 4 {
                f64::from(f32::from_ne_bytes(b.try_into().unwrap_or_default()))
            } else {
                f64::from_ne_bytes(b.try_into().unwrap_or_default())
            };
            // Non-finite floats are JSON null, which a table cell shows as `-`.
            if !quote && !f.is_finite() {
                out.push(b'-');
            } else {
                let _ = serde_json::to_writer(&mut *out, &f);
            }
        }
        Node::Str => {
            let end = b.iter().position(|x| *x == 0).unwrap_or(b.len());
            let text = String::from_utf8_lossy(&b[..end]);
            text_value(&text, quote, out)
        }
        Node::Enum { signed, variants } => {
            let (raw, bits) = decode::read_int(b);
            enum_value(variants, raw, bits, *signed, quote, out)
        }
        Node::Pointer => {
            let q: &[u8] = if quote { b"\"" } else { b"" };
            out.extend_from_slice(q);
            let _ = write!(out, "0x{:x}", decode::read_int(b).0);
            out.extend_from_slice(q);
        }
        Node::Hex => hex(b, quote, out),
        Node::Array { .. } | Node::Object { .. } => json(node, b, false, out),
    }
}

/// JSON numbers up to 64 bits; wider values as decimal strings.
fn int(raw: u128, bits: u32, signed: bool, quote: bool, out: &mut Vec<u8>) {
    let mut buf = itoa::Buffer::new();
    let text = match (signed, bits <= 64) {
        (true, true) => buf.format(decode::sign_extend(raw, bits) as i64),
        (false, true) => buf.format(raw as u64),
        (true, false) => buf.format(decode::sign_extend(raw, bits)),
        (false, false) => buf.format(raw),
    };
    if bits > 64 && quote {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

fn enum_value(
    variants: &[Variant],
    raw: u128,
    bits: u32,
    signed: bool,
    quote: bool,
    out: &mut Vec<u8>,
) {
    match variants.iter().find(|v| v.pattern == raw) {
        Some(v) if quote => out.extend_from_slice(v.json.as_bytes()),
        Some(v) => out.extend_from_slice(v.name.as_bytes()),
        None => int(raw, bits, signed, quote, out),
    }
}

fn text_value(text: &str, quote: bool, out: &mut Vec<u8>) {
    if quote {
        json_str(text, out)
    } else {
        out.extend_from_slice(text.as_bytes())
    }
}

fn json_str(text: &str, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, text);
}

fn hex(b: &[u8], quote: bool, out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    if quote {
        out.push(b'"');
    }
    for x in b {
        out.push(DIGITS[usize::from(x >> 4)]);
        out.push(DIGITS[usize::from(x & 0xf)]);
    }
    if quote {
        out.push(b'"');
    }
}

/// One table cell: the readable form when the column has a hint that applies, else the
/// value as `decode::Table` shows it (strings bare, everything else as JSON).
fn column_cell(col: &Column, bytes: &[u8], out: &mut Vec<u8>) {
    let parent = &bytes[col.parent.0..col.parent.1];
    if let Some(h) = &col.hint {
        let value = decode::field_value(&h.field, parent);
        match hints::show(h.hint, &value) {
            Some(text) => out.extend_from_slice(text.as_bytes()),
            None => value_cell(&value, out),
        }
        return;
    }
    match &col.at {
        At::Bytes(start, end) => scalar(&col.node, &parent[*start..*end], false, out),
        At::Bits {
            offset,
            bits,
            signed,
        } => bits_value(&col.node, parent, *offset, *bits, *signed, false, out),
    }
}

fn value_cell(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::String(s) => out.extend_from_slice(s.as_bytes()),
        Value::Null => out.push(b'-'),
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::EnumVariant;
    use crate::test_support::{bitfield, field, int};

    fn strukt(size: u32, fields: Vec<Field>) -> TypeLayout {
        TypeLayout::Struct {
            name: Some("s".into()),
            size,
            fields,
        }
    }

    fn array(len: u32, elem: TypeLayout) -> TypeLayout {
        TypeLayout::Array {
            len,
            elem: Box::new(elem),
        }
    }

    fn color(size: u32, signed: bool) -> TypeLayout {
        let variants = [("RED", 0), ("GREEN", 7), ("NEG", -1), ("Q\"UOTE", 9)]
            .into_iter()
            .map(|(name, value)| EnumVariant {
                name: name.into(),
                value,
            })
            .collect();
        TypeLayout::Enum {
            size,
            signed,
            variants,
        }
    }

    /// Layouts covering every kind, hints (and their companions), nesting, unions and
    /// bitfields, plus ones the plan leaves to the generic path.
    fn layouts() -> Vec<TypeLayout> {
        let inner = strukt(
            8,
            vec![
                field("x", 0, int(2, true)),
                field("lat_ns", 2, int(2, false)),
                field("ret", 4, int(4, true)),
            ],
        );
        let union = TypeLayout::Union {
            name: None,
            size: 8,
            fields: vec![
                field("saddr", 0, int(4, false)),
                field("f", 0, TypeLayout::Float { size: 8 }),
            ],
        };
        let main = strukt(
            120,
            vec![
                field("pid", 0, int(4, false)),
                field("comm", 4, TypeLayout::String { len: 8 }),
                field("ts", 16, int(8, false)),
                field("delta_us", 24, int(8, false)),
                field("saddr", 32, int(4, false)),
                field("dport", 36, int(2, false)),
                field("ok", 38, TypeLayout::Bool { size: 1 }),
                field("ret", 40, int(4, true)),
                field("err", 44, int(4, true)),
                field("err_text", 48, int(4, false)),
                field("daddr_v6", 52, array(16, int(1, false))),
                field("inner", 68, inner.clone()),
                field("u", 76, union),
                field("c", 84, color(4, false)),
                field("ptr", 88, TypeLayout::Pointer { size: 8 }),
                field("blob", 96, TypeLayout::Opaque { size: 3 }),
                field("f32", 100, TypeLayout::Float { size: 4 }),
                field("pair", 104, array(2, inner)),
                field("big", 104, int(16, true)),
            ],
        );
        let bits = strukt(
            16,
            vec![
                bitfield("a", 0, 3, int(4, false)),
                bitfield("err", 3, 5, int(4, true)),
                bitfield("b", 8, 1, TypeLayout::Bool { size: 1 }),
                bitfield("c", 9, 4, color(4, true)),
                bitfield("far", 60, 8, int(4, false)),
                bitfield("wide", 0, 255, int(4, true)),
                field("ubig", 0, int(16, false)),
            ],
        );
        vec![
            main,
            bits,
            int(8, true),
            int(16, false),
            color(2, true),
            array(3, int(2, false)),
            TypeLayout::Float { size: 2 },
            strukt(0, vec![]),
            // Generic path: duplicate names, a field past the end, absurd sizes.
            strukt(
                8,
                vec![field("a", 0, int(4, false)), field("a", 4, int(4, true))],
            ),
            strukt(4, vec![field("late", 2, int(4, false))]),
            strukt(
                4,
                vec![field(
                    "arr",
                    0,
                    array(u32::MAX, array(u32::MAX, int(4, false))),
                )],
            ),
        ]
    }

    /// Deterministic pseudo-random bytes (xorshift), with NULs, quotes, non-UTF-8 and
    /// small negatives mixed in so every branch shows up.
    fn samples(len: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut state = seed | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut out = vec![vec![0; len], vec![0xff; len]];
        for _ in 0..200 {
            let palette: [u8; 8] = [0, 0xff, b'"', b'\\', 0xc3, b'a', 7, 0xfe];
            out.push(
                (0..len)
                    .map(|_| {
                        let r = next();
                        if r % 3 == 0 {
                            palette[(r >> 8) as usize % 8]
                        } else {
                            (r >> 16) as u8
                        }
                    })
                    .collect(),
            );
        }
        out
    }

    /// Masks `HH:MM:SS.micros` times: each rendering reads the clocks again, so a
    /// timestamp's wall-clock form can move by a microsecond between two renderings.
    fn mask_times(text: &str) -> String {
        let shape = b"dd:dd:dd.dddddd";
        let b = text.as_bytes();
        let mut out = String::new();
        let mut i = 0;
        while i < b.len() {
            let fits = b.len() - i >= shape.len()
                && shape.iter().zip(&b[i..]).all(|(s, c)| match s {
                    b'd' => c.is_ascii_digit(),
                    s => s == c,
                });
            if fits {
                out.push_str("<time>");
                i += shape.len();
            } else {
                let ch = text[i..].chars().next().unwrap();
                out.push(ch);
                i += ch.len_utf8();
            }
        }
        out
    }

    fn old_json(layout: &TypeLayout, bytes: &[u8]) -> Option<String> {
        let mut v = decode::decode(layout, bytes).ok()?;
        decode::annotate(layout, &mut v);
        Some(decode::json_line(&v))
    }

    #[test]
    fn compiled_output_is_byte_identical_to_the_reference_renderer() {
        let mut compiled = 0;
        for (i, layout) in layouts().iter().enumerate() {
            let codec = EventCodec::new(layout);
            compiled += usize::from(codec.is_compiled());
            let size = decode::byte_size(layout).unwrap_or(8).min(256);
            let table = Table::new(layout);
            for bytes in samples(size + 2, i as u64 + 1) {
                let mut json = Vec::new();
                let ok = codec.write_json(&bytes, &mut json).is_ok();
                assert_eq!(
                    ok.then(|| mask_times(&String::from_utf8(json).unwrap())),
                    old_json(layout, &bytes).map(|s| mask_times(&s)),
                    "layout {i}"
                );
                let mut row = Vec::new();
                if codec.write_row("12:34:56", &bytes, &mut row).is_ok() {
                    let value = decode::decode(layout, &bytes).unwrap();
                    assert_eq!(
                        mask_times(&String::from_utf8(row).unwrap()),
                        mask_times(&table.row("12:34:56", &value)),
                        "layout {i}"
                    );
                }
            }
        }
        // All but the generic-path layouts take the compiled path: three the plan cannot
        // lay out, and three with byte arrays or 128-bit ints (`needs_reference_renderer`).
        assert_eq!(compiled, layouts().len() - 6);
    }

    #[test]
    fn short_events_are_the_same_input_error() {
        let layout = &layouts()[0];
        let codec = EventCodec::new(layout);
        let err = codec.write_json(&[0; 10], &mut Vec::new()).unwrap_err();
        let old = decode::decode(layout, &[0; 10]).unwrap_err();
        assert_eq!((err.kind, err.message), (old.kind, old.message));
        assert!(codec.write_row("t", &[0; 10], &mut Vec::new()).is_err());
    }

    #[test]
    fn a_reused_buffer_only_grows_by_the_line() {
        let layout = &layouts()[0];
        let codec = EventCodec::new(layout);
        let bytes = &samples(120, 9)[5];
        let mut buf = b"keep".to_vec();
        codec.write_json(bytes, &mut buf).unwrap();
        assert_eq!(&buf[4..], old_json(layout, bytes).unwrap().as_bytes());
    }
}
