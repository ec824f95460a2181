//! Maps that are not event channels: counters, key → value tables and histograms, read
//! from the kernel and decoded from the object's BTF, for `--interval` and `--metrics`.
//!
//! Shapes, by convention (docs/runner.md):
//! - a **histogram** is a map whose value is a struct with an integer array field `slots`
//!   (the libbpf-tools `struct hist`); slot `i` counts values in `[2^i, 2^(i+1))` (log2),
//!   unless the struct also has an integer field `step`: then slot `i` counts
//!   `[min + i*step, min + (i+1)*step)` (linear, `min` optional, default 0). Each key of
//!   the map is one histogram.
//! - a **counter** is an array map of one entry with an integer value;
//! - an array of 2 to 64 integers whose name has the word `hist` (`name_len_hist`) is one
//!   log2 **histogram** indexed by slot;
//! - every other hash/array map is a **table** of key → value.
//!
//! Which maps are **output** (printed at the end of every run, and with `--interval`):
//! histograms, counters, bumblebee's metric maps, and tables — except tables whose name says
//! they are a program's scratch state, by one of its `_`-separated words: `start`, `starts`,
//! `started`, `ts`, `tmp`, `temp`, `scratch`, `inflight`, `pending`, `args`, `entry`
//! (libbpf-tools keep timestamps in `start`, arguments in `args`, …). `--interval` prints
//! every map.
//!
//! bumblebee's map names add a role ([`Metric`]): `counter_*` and `gauge_*` maps are
//! Prometheus counters and gauges, `hist_*` maps histograms — either of the shape above, or
//! keyed by the log2 slot with a count as value. Metric maps are output, not bookkeeping:
//! `run` shows them at the end even when the program also streams events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use libbpf_rs::btf::BtfType;
use libbpf_rs::libbpf_sys;
use libbpf_rs::{AsRawLibbpf, Btf, MapCore, MapFlags, MapHandle, MapType, Object};
use serde_json::Value;

use ebpf_package::decode::{decode, raw_value};
use ebpf_package::spec::TypeLayout;
use ebpf_package::{object, Error, Result};

/// Source annotations by map name (`@sample`), as in the package metadata.
pub type Annotations = BTreeMap<String, BTreeMap<String, Value>>;

/// Most rows a table shows per interval (the largest values first).
const MAX_ROWS: usize = 20;
/// Width of the longest histogram bar.
const BAR_WIDTH: usize = 40;

/// How a map is shown.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Counter,
    Table,
    Histogram { linear: bool },
}

/// What a map's name says it measures (bumblebee's `counter_`, `gauge_`, `hist_`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Counter,
    Gauge,
    Histogram,
}

impl Metric {
    /// The role bumblebee's naming convention gives the map `name`, if any.
    pub fn of(name: &str) -> Option<Metric> {
        let [counter, gauge, hist] = ebpf_package::spec::BUMBLEBEE_METRIC_PREFIXES;
        [
            (counter, Metric::Counter),
            (gauge, Metric::Gauge),
            (hist, Metric::Histogram),
        ]
        .into_iter()
        .find_map(|(prefix, metric)| name.starts_with(prefix).then_some(metric))
    }
}

/// A map being watched, with its own fd (so the metrics thread can read it too).
#[derive(Debug)]
pub struct Watched {
    pub name: String,
    pub shape: Shape,
    pub metric: Option<Metric>,
    /// A `hist_*` map keyed by slot, or an array histogram: its entries are gathered
    /// into one histogram.
    slot_keyed: bool,
    /// Printed at the end of a run (see the module doc); scratch tables are not.
    output: bool,
    /// eunomia's `/// @sample {"interval": MS}`: printed this often during the run.
    sample_every: Option<Duration>,
    key: Option<TypeLayout>,
    value: Option<TypeLayout>,
    handle: MapHandle,
}

/// One map's contents at one moment: decoded (key, value) pairs.
#[derive(Debug, Clone)]
pub struct MapData {
    pub name: String,
    pub shape: Shape,
    pub metric: Option<Metric>,
    pub entries: Vec<(Value, Value)>,
}

/// The watched maps of a loaded object; cheap to clone, shareable across threads.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    maps: Arc<Vec<Watched>>,
}

impl Watch {
    /// Picks the object's hash and array maps (not libbpf's `.rodata`/`.bss`, not ring
    /// buffers) and works out how to show each.
    /// `annotations` are the package's source annotations by map name (`@sample`).
    pub fn new(object: &Object, annotations: &Annotations) -> Result<Watch> {
        let btf = object.btf().ok().flatten();
        let mut maps = Vec::new();
        for map in object.maps() {
            let name = map.name().to_string_lossy().into_owned();
            if name.contains('.') || !is_watchable(map.map_type()) {
                continue;
            }
            // SAFETY: the map pointer is libbpf's own and outlives these calls.
            let (key_id, value_id) = unsafe {
                let raw = map.as_libbpf_object().as_ptr();
                (
                    libbpf_sys::bpf_map__btf_key_type_id(raw),
                    libbpf_sys::bpf_map__btf_value_type_id(raw),
                )
            };
            let key = btf.as_ref().and_then(|b| layout(b, key_id));
            let value = btf.as_ref().and_then(|b| layout(b, value_id));
            let handle = MapHandle::try_from(&map).map_err(|e| {
                Error::kernel(format!("cannot open map `{name}`"))
                    .with_source(e)
                    .with_help("this is unexpected; run again, and report it if it persists")
            })?;
            let metric = Metric::of(&name);
            let sample = annotations.get(&name).and_then(|a| a.get("sample"));
            let sampled_hist = sample.is_some_and(|s| s["type"] == "log2_hist");
            let ints = matches!(key, Some(TypeLayout::Int { .. }))
                && matches!(value, Some(TypeLayout::Int { .. }));
            let slot_keyed = ints
                && (metric == Some(Metric::Histogram)
                    || sampled_hist
                    || is_array_histogram(&name, map.map_type(), map.max_entries()));
            let sample_every = sample
                .and_then(|s| s["interval"].as_u64())
                .filter(|ms| *ms > 0)
                .map(|ms| Duration::from_millis(ms.max(100)));
            let shape = match slot_keyed {
                true => Shape::Histogram { linear: false },
                false => shape_of(map.map_type(), map.max_entries(), value.as_ref()),
            };
            let output = metric.is_some() || shape != Shape::Table || !is_scratch(&name);
            maps.push(Watched {
                name,
                shape,
                metric,
                slot_keyed,
                output: output || sample.is_some(),
                sample_every,
                key,
                value,
                handle,
            });
        }
        Ok(Watch {
            maps: Arc::new(maps),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.maps.iter().map(|m| m.name.as_str()).collect()
    }

    /// Reads every watched map now.
    pub fn read(&self) -> Vec<MapData> {
        self.maps.iter().map(read_map).collect()
    }

    /// How often the `@sample` maps are printed (the shortest of their intervals).
    pub fn sample_interval(&self) -> Option<Duration> {
        self.maps.iter().filter_map(|m| m.sample_every).min()
    }

    /// Reads the `@sample` maps now.
    pub fn read_sampled(&self) -> Vec<MapData> {
        self.maps
            .iter()
            .filter(|m| m.sample_every.is_some())
            .map(read_map)
            .collect()
    }

    /// The names of the output maps (see the module doc).
    pub fn output_names(&self) -> Vec<&str> {
        self.maps
            .iter()
            .filter(|m| m.output)
            .map(|m| m.name.as_str())
            .collect()
    }

    /// Reads the output maps now.
    pub fn read_output(&self) -> Vec<MapData> {
        self.maps
            .iter()
            .filter(|m| m.output)
            .map(read_map)
            .collect()
    }
}

fn is_watchable(ty: MapType) -> bool {
    matches!(
        ty,
        MapType::Hash
            | MapType::Array
            | MapType::PercpuHash
            | MapType::PercpuArray
            | MapType::LruHash
            | MapType::LruPercpuHash
    )
}

/// An array of slot counts: `name_len_hist[slot]`.
fn is_array_histogram(name: &str, ty: MapType, max_entries: u32) -> bool {
    matches!(ty, MapType::Array | MapType::PercpuArray)
        && (2..=64).contains(&max_entries)
        && name.split('_').any(|w| w == "hist" || w == "histogram")
}

/// A table holding a program's own bookkeeping, by its name (see the module doc).
fn is_scratch(name: &str) -> bool {
    const WORDS: [&str; 11] = [
        "start", "starts", "started", "ts", "tmp", "temp", "scratch", "inflight", "pending",
        "args", "entry",
    ];
    name.to_ascii_lowercase()
        .split('_')
        .any(|w| WORDS.contains(&w))
}

fn is_percpu(ty: MapType) -> bool {
    matches!(
        ty,
        MapType::PercpuHash | MapType::PercpuArray | MapType::LruPercpuHash
    )
}

fn layout(btf: &Btf, id: u32) -> Option<TypeLayout> {
    if id == 0 {
        return None;
    }
    let ty: BtfType = btf.type_by_id(id.into())?;
    Some(object::layout_of(btf, ty, 0))
}

fn shape_of(ty: MapType, max_entries: u32, value: Option<&TypeLayout>) -> Shape {
    if let Some(TypeLayout::Struct { fields, .. }) = value {
        let has = |name: &str| fields.iter().any(|f| f.name == name);
        let slots = fields.iter().any(|f| {
            f.name == "slots"
                && matches!(&f.ty, TypeLayout::Array { elem, .. } if matches!(**elem, TypeLayout::Int { .. }))
        });
        if slots {
            return Shape::Histogram {
                linear: has("step"),
            };
        }
    }
    let one = matches!(ty, MapType::Array | MapType::PercpuArray) && max_entries == 1;
    if one && matches!(value, Some(TypeLayout::Int { .. })) {
        Shape::Counter
    } else {
        Shape::Table
    }
}

// ---- reading ----------------------------------------------------------------------------

fn read_map(map: &Watched) -> MapData {
    let percpu = is_percpu(map.handle.map_type());
    let mut entries = Vec::new();
    for key in map.handle.keys() {
        let value = if percpu {
            map.handle
                .lookup_percpu(&key, MapFlags::ANY)
                .ok()
                .flatten()
                .map(|cpus| sum_cpus(cpus.iter().map(|v| decoded(map.value.as_ref(), v))))
        } else {
            map.handle
                .lookup(&key, MapFlags::ANY)
                .ok()
                .flatten()
                .map(|v| decoded(map.value.as_ref(), &v))
        };
        // A key deleted between listing and lookup is simply gone.
        if let Some(value) = value {
            entries.push((decoded(map.key.as_ref(), &key), value));
        }
    }
    if map.slot_keyed {
        entries = vec![(Value::from(0), slots_from_keys(&entries))];
    }
    MapData {
        name: map.name.clone(),
        shape: map.shape.clone(),
        metric: map.metric,
        entries,
    }
}

/// `slot → count` entries as one histogram value, `{"slots": [...]}`.
fn slots_from_keys(entries: &[(Value, Value)]) -> Value {
    const MAX_SLOTS: usize = 64;
    let mut slots = Vec::new();
    for (key, count) in entries {
        let (Some(slot), Some(count)) = (key.as_u64(), count.as_u64()) else {
            continue;
        };
        let slot = (slot as usize).min(MAX_SLOTS - 1);
        if slots.len() <= slot {
            slots.resize(slot + 1, 0u64);
        }
        slots[slot] += count;
    }
    serde_json::json!({ "slots": slots })
}

fn decoded(layout: Option<&TypeLayout>, bytes: &[u8]) -> Value {
    match layout.map(|l| decode(l, bytes)) {
        Some(Ok(value)) => value,
        _ => raw_value(bytes),
    }
}

/// A per-CPU map's values added up, number by number (other leaves from the first CPU).
fn sum_cpus(mut values: impl Iterator<Item = Value>) -> Value {
    let first = values.next().unwrap_or(Value::Null);
    values.fold(first, |acc, v| add(acc, &v))
}

fn add(acc: Value, other: &Value) -> Value {
    match (acc, other) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => Value::from(a.saturating_add(b)),
            _ => Value::from(
                a.as_u64()
                    .unwrap_or(0)
                    .saturating_add(b.as_u64().unwrap_or(0)),
            ),
        },
        (Value::Array(a), Value::Array(b)) => {
            Value::Array(a.into_iter().zip(b).map(|(x, y)| add(x, y)).collect())
        }
        (Value::Object(mut a), Value::Object(b)) => {
            for (k, v) in b {
                if let Some(x) = a.remove(k) {
                    a.insert(k.clone(), add(x, v));
                }
            }
            Value::Object(a)
        }
        (acc, _) => acc,
    }
}

// ---- histograms ---------------------------------------------------------------------------

/// One bucket: values in `[low, high)` seen `count` times.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub low: u64,
    pub high: u64,
    pub count: u64,
}

/// The buckets of one histogram value (a struct with `slots`, maybe `min`/`step`).
pub fn buckets(value: &Value, linear: bool) -> Vec<Bucket> {
    let slots: Vec<u64> = value["slots"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0)).collect())
        .unwrap_or_default();
    let (min, step) = (
        value["min"].as_u64().unwrap_or(0),
        value["step"].as_u64().unwrap_or(1).max(1),
    );
    slots
        .iter()
        .enumerate()
        .map(|(i, &count)| {
            let i = i as u64;
            let (low, high) = if linear {
                (min + i * step, min + (i + 1) * step)
            } else {
                // Slot 0 holds 0 and 1 in the libbpf-tools convention (log2l(0) == 0).
                (
                    if i == 0 { 0 } else { 1 << i.min(63) },
                    1u64.checked_shl((i + 1) as u32).unwrap_or(u64::MAX),
                )
            };
            Bucket { low, high, count }
        })
        .collect()
}

/// Draws a histogram as bpftrace does: `[low, high)  count |@@@@   |`, one line per
/// bucket from the first to the last non-empty one (zero buckets between them included).
pub fn draw_histogram(buckets: &[Bucket]) -> String {
    let first = buckets.iter().position(|b| b.count > 0);
    let last = buckets.iter().rposition(|b| b.count > 0);
    let (Some(first), Some(last)) = (first, last) else {
        return "     (empty)\n".into();
    };
    let shown = &buckets[first..=last];
    let max = shown.iter().map(|b| b.count).max().unwrap_or(1).max(1);
    let ranges: Vec<String> = shown
        .iter()
        .map(|b| format!("[{}, {})", b.low, b.high))
        .collect();
    let width = ranges.iter().map(String::len).max().unwrap_or(0);
    let count_width = shown
        .iter()
        .map(|b| b.count.to_string().len())
        .max()
        .unwrap_or(1);
    let mut out = String::new();
    for (b, range) in shown.iter().zip(&ranges) {
        let bar = (b.count as u128 * BAR_WIDTH as u128 / max as u128) as usize;
        out.push_str(&format!(
            "{range:<width$} {:>count_width$} |{:<BAR_WIDTH$}|\n",
            b.count,
            "@".repeat(bar),
        ));
    }
    out
}

/// One NDJSON line for a map: `{"map": NAME, "entries": [{"key": K, "value": V}, …]}`.
pub fn json_line(map: &MapData) -> String {
    let entries: Vec<Value> = map
        .entries
        .iter()
        .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
        .collect();
    serde_json::json!({"map": map.name, "entries": entries}).to_string()
}

// ---- text output ----------------------------------------------------------------------------

/// All maps as text: counters as `name = N`, tables as key/value rows (largest first),
/// histograms as bars.
pub fn render_text(maps: &[MapData], time: &str) -> String {
    let mut out = format!("--- {time} ---\n");
    for map in maps {
        match &map.shape {
            Shape::Counter => {
                let value = map
                    .entries
                    .first()
                    .map_or(Value::from(0), |(_, v)| v.clone());
                out.push_str(&format!("{} = {}\n", map.name, cell(&value)));
            }
            Shape::Table => out.push_str(&render_table(map)),
            Shape::Histogram { linear } => {
                for (key, value) in &map.entries {
                    let label = match key {
                        Value::Number(n) if n.as_u64() == Some(0) && map.entries.len() == 1 => {
                            String::new()
                        }
                        other => format!(" [{}]", cell(other)),
                    };
                    out.push_str(&format!("@{}{label}:\n", map.name));
                    out.push_str(&draw_histogram(&buckets(value, *linear)));
                }
                if map.entries.is_empty() {
                    out.push_str(&format!("@{}:\n     (empty)\n", map.name));
                }
            }
        }
    }
    out
}

fn render_table(map: &MapData) -> String {
    // An array's untouched slots are zeros: noise, not results.
    let zero = |v: &Value| v.as_u64() == Some(0) || v.as_i64() == Some(0);
    let hidden = map.entries.iter().filter(|(_, v)| zero(v)).count();
    let mut rows: Vec<(String, String, f64, &Value)> = map
        .entries
        .iter()
        .filter(|(_, v)| !zero(v))
        .map(|(k, v)| (cell(k), cell(v), sort_key(v), k))
        .collect();
    // Largest value first; equal values by key, numbers as numbers ("2" before "10").
    rows.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then_with(|| sort_key(a.3).total_cmp(&sort_key(b.3)))
            .then_with(|| a.0.cmp(&b.0))
    });
    let kw = rows.iter().map(|r| r.0.len()).max().unwrap_or(3).max(3);
    let mut out = format!(
        "{}: {} entr{}\n",
        map.name,
        map.entries.len(),
        if map.entries.len() == 1 { "y" } else { "ies" }
    );
    out.push_str(&format!("  {:<kw$}  VALUE\n", "KEY"));
    for (key, value, _, _) in rows.iter().take(MAX_ROWS) {
        out.push_str(&format!("  {key:<kw$}  {value}\n"));
    }
    if rows.len() > MAX_ROWS {
        out.push_str(&format!("  … {} more\n", rows.len() - MAX_ROWS));
    }
    if hidden > 0 {
        out.push_str(&format!("  ({hidden} zero entries not shown)\n"));
    }
    out
}

/// Larger numbers first; a struct sorts by its first number.
fn sort_key(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::Object(map) => map.values().map(sort_key).next().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// A value in one cell: strings bare, structs as `a=1 b=2`.
fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log2_and_linear_buckets() {
        let b = buckets(&json!({"slots": [1, 0, 3]}), false);
        assert_eq!(
            b[0],
            Bucket {
                low: 0,
                high: 2,
                count: 1
            }
        );
        assert_eq!(
            b[2],
            Bucket {
                low: 4,
                high: 8,
                count: 3
            }
        );
        let b = buckets(&json!({"slots": [1, 2], "min": 10, "step": 5}), true);
        assert_eq!(
            b[1],
            Bucket {
                low: 15,
                high: 20,
                count: 2
            }
        );
    }

    #[test]
    fn draws_bars_between_first_and_last_nonempty() {
        let b = buckets(&json!({"slots": [0, 2, 4, 0, 0]}), false);
        let text = draw_histogram(&b);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("[2, 4) 2 |"), "{text}");
        assert!(lines[1].starts_with("[4, 8) 4 |"), "{text}");
        assert!(lines[1].contains(&"@".repeat(BAR_WIDTH)), "{text}");
        assert!(
            lines[0].contains(&format!("|{}{}|", "@".repeat(20), " ".repeat(20))),
            "{text}"
        );
    }

    #[test]
    fn bumblebee_names_give_roles_and_slot_keys_make_one_histogram() {
        assert_eq!(Metric::of("counter_opens"), Some(Metric::Counter));
        assert_eq!(Metric::of("gauge_active"), Some(Metric::Gauge));
        assert_eq!(Metric::of("hist_sizes"), Some(Metric::Histogram));
        assert_eq!(Metric::of("opens"), None);
        let value = slots_from_keys(&[(json!(3), json!(5)), (json!(1), json!(2))]);
        assert_eq!(value, json!({"slots": [0, 2, 0, 5]}));
    }

    #[test]
    fn per_cpu_values_add_up() {
        let sum = sum_cpus([json!({"n": 1, "s": "a"}), json!({"n": 2, "s": "b"})].into_iter());
        assert_eq!(sum, json!({"n": 3, "s": "a"}));
    }

    #[test]
    fn shapes() {
        let int = TypeLayout::Int {
            size: 8,
            signed: false,
        };
        assert_eq!(shape_of(MapType::Array, 1, Some(&int)), Shape::Counter);
        assert_eq!(shape_of(MapType::Hash, 1, Some(&int)), Shape::Table);
        let hist = TypeLayout::Struct {
            name: Some("hist".into()),
            size: 16,
            fields: vec![ebpf_package::spec::Field {
                name: "slots".into(),
                offset_bits: 0,
                bitfield_bits: None,
                ty: TypeLayout::Array {
                    len: 4,
                    elem: Box::new(TypeLayout::Int {
                        size: 4,
                        signed: false,
                    }),
                },
            }],
        };
        assert_eq!(
            shape_of(MapType::Array, 1, Some(&hist)),
            Shape::Histogram { linear: false }
        );
    }

    #[test]
    fn array_histograms_and_scratch_tables_by_name() {
        assert!(is_array_histogram("name_len_hist", MapType::Array, 32));
        assert!(!is_array_histogram("name_len_hist", MapType::Hash, 32));
        assert!(!is_array_histogram("history", MapType::Array, 32));
        assert!(!is_array_histogram("name_hist", MapType::Array, 1000));
        assert!(is_scratch("start") && is_scratch("exec_start") && is_scratch("info_tmp"));
        assert!(is_scratch("started") && is_scratch("exec_ts"));
        assert!(!is_scratch("counts") && !is_scratch("startup_counts"));
    }
}
