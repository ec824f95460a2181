//! What changed between two versions of a package, from their metadata alone: programs and
//! attach points, maps, params (added, removed, retyped, new default), event fields, the
//! capabilities and host writes of the run plan, the runtime kind, the size.
//!
//! A change is *breaking* when a user's existing command line, event consumer or security
//! review may no longer hold: a param removed or retyped, an event field removed or
//! retyped, a capability or host write the old version did not need. `upgrade` shows the
//! diff and asks for `--yes` before a breaking one.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::plan::Plan;
use crate::spec::{PackageMeta, TypeLayout};

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `program`, `map`, `param`, `event`, `capability`, `writes`, `runtime`, `size`.
    pub area: &'static str,
    /// `+` added, `-` removed, `~` changed.
    pub sign: char,
    /// In words, e.g. `param target-pid: type int(4, signed) → string(16)`.
    pub text: String,
    pub breaking: bool,
}

/// Every difference from `old` to `new`, in a fixed order (by area, then name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageDiff {
    pub old_version: String,
    pub new_version: String,
    pub changes: Vec<Change>,
}

/// A package's side of the comparison: its metadata and its size in bytes.
pub struct Side<'a> {
    pub meta: &'a PackageMeta,
    pub size: u64,
}

impl PackageDiff {
    pub fn of(old: Side, new: Side) -> PackageDiff {
        let mut changes = vec![];
        programs(old.meta, new.meta, &mut changes);
        maps(old.meta, new.meta, &mut changes);
        params(old.meta, new.meta, &mut changes);
        events(old.meta, new.meta, &mut changes);
        plan(old.meta, new.meta, &mut changes);
        if old.meta.runtime.kind() != new.meta.runtime.kind() {
            let text = format!(
                "runtime {} → {}",
                old.meta.runtime.kind(),
                new.meta.runtime.kind()
            );
            changes.push(change("runtime", '~', text, true));
        }
        if old.size != new.size {
            let text = format!("size {} → {} bytes", old.size, new.size);
            changes.push(change("size", '~', text, false));
        }
        PackageDiff {
            old_version: old.meta.version.clone(),
            new_version: new.meta.version.clone(),
            changes,
        }
    }

    pub fn is_breaking(&self) -> bool {
        self.changes.iter().any(|c| c.breaking)
    }

    /// One line per change, breaking ones marked; a line saying so when nothing changed.
    pub fn render(&self) -> String {
        let mut out = format!("{} → {}\n", self.old_version, self.new_version);
        if self.changes.is_empty() {
            out.push_str("  no differences in programs, maps, params, events, plan or size\n");
        }
        for c in &self.changes {
            let mark = if c.breaking { "  [breaking]" } else { "" };
            let _ = writeln!(out, "  {} {}{mark}", c.sign, c.text);
        }
        out
    }
}

fn change(area: &'static str, sign: char, text: String, breaking: bool) -> Change {
    Change {
        area,
        sign,
        text,
        breaking,
    }
}

/// Keys added, keys removed, and keys in both with their old and new values when those differ.
type Compared<'a, V> = (Vec<&'a str>, Vec<&'a str>, Vec<(&'a str, &'a V, &'a V)>);

/// Added and removed keys of two maps, and the keys in both whose values differ.
fn compare<'a, V: PartialEq>(
    old: &'a BTreeMap<String, V>,
    new: &'a BTreeMap<String, V>,
) -> Compared<'a, V> {
    let added = new.keys().filter(|k| !old.contains_key(*k));
    let removed = old.keys().filter(|k| !new.contains_key(*k));
    let changed = old
        .iter()
        .filter_map(|(k, o)| new.get(k).filter(|n| *n != o).map(|n| (k.as_str(), o, n)));
    (
        added.map(String::as_str).collect(),
        removed.map(String::as_str).collect(),
        changed.collect(),
    )
}

fn programs(old: &PackageMeta, new: &PackageMeta, out: &mut Vec<Change>) {
    let by_name = |m: &PackageMeta| -> BTreeMap<String, String> {
        m.programs
            .iter()
            .map(|p| (p.name.clone(), p.section.clone()))
            .collect()
    };
    let (o, n) = (by_name(old), by_name(new));
    let kind = Named {
        kind: "program",
        label: "program",
        what: "attach ",
        breaks: false,
    };
    named_changes(&kind, &o, &n, out);
}

fn maps(old: &PackageMeta, new: &PackageMeta, out: &mut Vec<Change>) {
    let by_name = |m: &PackageMeta| -> BTreeMap<String, String> {
        m.maps
            .iter()
            .map(|m| {
                let shape = format!(
                    "{}, key {} B, value {} B, {} entries",
                    m.map_type, m.key_size, m.value_size, m.max_entries
                );
                (m.name.clone(), shape)
            })
            .collect()
    };
    let (o, n) = (by_name(old), by_name(new));
    let kind = Named {
        kind: "map",
        label: "map",
        what: "",
        breaks: false,
    };
    named_changes(&kind, &o, &n, out);
}

fn params(old: &PackageMeta, new: &PackageMeta, out: &mut Vec<Change>) {
    let by_flag = |m: &PackageMeta| -> BTreeMap<String, (String, String)> {
        m.params
            .iter()
            .map(|p| (p.flag.clone(), (type_name(&p.ty), p.default.to_string())))
            .collect()
    };
    let (o, n) = (by_flag(old), by_flag(new));
    let (added, removed, changed) = compare(&o, &n);
    for flag in added {
        let (ty, default) = &n[flag];
        let text = format!("param --{flag} ({ty}, default {default})");
        out.push(change("param", '+', text, false));
    }
    for flag in removed {
        let text = format!("param --{flag} ({})", o[flag].0);
        out.push(change("param", '-', text, true));
    }
    for (flag, (ot, od), (nt, nd)) in changed {
        if ot != nt {
            let text = format!("param --{flag}: type {ot} → {nt}");
            out.push(change("param", '~', text, true));
        }
        if od != nd {
            let text = format!("param --{flag}: default {od} → {nd}");
            out.push(change("param", '~', text, false));
        }
    }
}

/// Fields of every event type, keyed `TYPE.FIELD`, with their types.
fn event_fields(m: &PackageMeta) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    for event in &m.events {
        let Some(TypeLayout::Struct { fields: fs, .. }) = m.types.get(&event.type_name) else {
            continue;
        };
        for f in fs {
            let key = format!("{}.{}", event.type_name, f.name);
            fields.insert(key, type_name(&f.ty));
        }
    }
    fields
}

fn events(old: &PackageMeta, new: &PackageMeta, out: &mut Vec<Change>) {
    let (o, n) = (event_fields(old), event_fields(new));
    let kind = Named {
        kind: "event",
        label: "event field",
        what: "type ",
        breaks: true,
    };
    named_changes(&kind, &o, &n, out);
}

/// How one table of named items (programs, maps, event fields) reads in a diff.
struct Named {
    kind: &'static str,
    /// Before the name: `program opensnoop (…)`.
    label: &'static str,
    /// Before the old → new values of a changed item: `attach `, `type `.
    what: &'static str,
    /// Whether removing or changing an item breaks its users (adding one never does).
    breaks: bool,
}

/// `+ LABEL NAME (NEW)`, `- LABEL NAME (OLD)` and `~ LABEL NAME: WHAT OLD → NEW` lines for
/// two `name → description` tables.
fn named_changes(
    t: &Named,
    o: &BTreeMap<String, String>,
    n: &BTreeMap<String, String>,
    out: &mut Vec<Change>,
) {
    let (added, removed, changed) = compare(o, n);
    for name in added {
        let text = format!("{} {name} ({})", t.label, n[name]);
        out.push(change(t.kind, '+', text, false));
    }
    for name in removed {
        let text = format!("{} {name} ({})", t.label, o[name]);
        out.push(change(t.kind, '-', text, t.breaks));
    }
    for (name, a, b) in changed {
        let text = format!("{} {name}: {}{a} → {b}", t.label, t.what);
        out.push(change(t.kind, '~', text, t.breaks));
    }
}

/// Capabilities and host writes of the run plans: new ones are breaking (they widen what
/// the package may do to the machine), dropped ones are not.
fn plan(old: &PackageMeta, new: &PackageMeta, out: &mut Vec<Change>) {
    let (po, pn) = (Plan::of(old), Plan::of(new));
    let caps = |p: &Plan| -> BTreeMap<String, String> {
        p.capabilities
            .iter()
            .map(|c| (c.name.clone(), c.why.clone()))
            .collect()
    };
    let (o, n) = (caps(&po), caps(&pn));
    let (added, removed, _) = compare(&o, &n);
    for name in added {
        let text = format!("capability {name} ({})", n[name]);
        out.push(change("capability", '+', text, true));
    }
    for name in removed {
        out.push(change(
            "capability",
            '-',
            format!("capability {name}"),
            false,
        ));
    }
    let writes = |p: &Plan| -> BTreeMap<String, bool> {
        p.files
            .iter()
            .map(|f| (f.dest.clone(), f.overwrite))
            .collect()
    };
    let (o, n) = (writes(&po), writes(&pn));
    let (added, removed, changed) = compare(&o, &n);
    for dest in added {
        out.push(change("writes", '+', format!("host write {dest}"), true));
    }
    for dest in removed {
        out.push(change("writes", '-', format!("host write {dest}"), false));
    }
    for (dest, _, now) in changed {
        let text = format!("host write {dest}: overwrite {now}");
        out.push(change("writes", '~', text, *now));
    }
}

/// A short type name: `int(4, signed)`, `string(16)`, `struct foo`.
fn type_name(t: &TypeLayout) -> String {
    match t {
        TypeLayout::Int { size, signed } => {
            format!(
                "int({size}, {})",
                if *signed { "signed" } else { "unsigned" }
            )
        }
        TypeLayout::Bool { size } => format!("bool({size})"),
        TypeLayout::Float { size } => format!("float({size})"),
        TypeLayout::String { len } => format!("string({len})"),
        TypeLayout::Array { len, elem } => format!("{}[{len}]", type_name(elem)),
        TypeLayout::Enum { size, .. } => format!("enum({size})"),
        TypeLayout::Struct { name, size, .. } => {
            format!("struct {}({size})", name.as_deref().unwrap_or("?"))
        }
        TypeLayout::Union { name, size, .. } => {
            format!("union {}({size})", name.as_deref().unwrap_or("?"))
        }
        TypeLayout::Pointer { size } => format!("pointer({size})"),
        TypeLayout::Opaque { size } => format!("opaque({size})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{EventInfo, Field, ParamInfo, ProgramInfo, Runtime};

    fn param(flag: &str, ty: TypeLayout, default: i64) -> ParamInfo {
        ParamInfo {
            name: flag.replace('-', "_"),
            flag: flag.into(),
            offset: 0,
            ty,
            default: default.into(),
            description: None,
            short: None,
            set_default: false,
        }
    }

    fn int(size: u32) -> TypeLayout {
        TypeLayout::Int { size, signed: true }
    }

    fn with_event(m: &mut PackageMeta, fields: &[(&str, TypeLayout)]) {
        m.events = vec![EventInfo {
            map: "events".into(),
            type_name: "event".into(),
        }];
        let fields = fields
            .iter()
            .map(|(n, t)| Field {
                name: n.to_string(),
                offset_bits: 0,
                bitfield_bits: None,
                ty: t.clone(),
            })
            .collect();
        m.types.insert(
            "event".into(),
            TypeLayout::Struct {
                name: Some("event".into()),
                size: 16,
                fields,
            },
        );
    }

    #[test]
    fn an_added_param_is_not_breaking_and_a_retyped_one_is() {
        let mut old = PackageMeta::new("snoop", "0.1.0", "snoop.bpf.o");
        old.params = vec![param("target-pid", int(4), 0)];
        old.programs = vec![ProgramInfo {
            name: "on_open".into(),
            section: "tracepoint/syscalls/sys_enter_openat".into(),
            prog_type: "tracepoint".into(),
        }];
        with_event(
            &mut old,
            &[("pid", int(4)), ("comm", TypeLayout::String { len: 16 })],
        );
        let mut new = old.clone();
        new.version = "0.2.0".into();
        new.params.push(param("min-size", int(8), 64));
        let d = PackageDiff::of(
            Side {
                meta: &old,
                size: 10,
            },
            Side {
                meta: &new,
                size: 10,
            },
        );
        assert!(!d.is_breaking(), "{}", d.render());
        assert_eq!(d.changes.len(), 1);
        assert_eq!(
            d.changes[0].text,
            "param --min-size (int(8, signed), default 64)"
        );

        new.params[0].ty = TypeLayout::String { len: 8 };
        with_event(&mut new, &[("pid", int(4))]);
        new.runtime = Runtime::Executable {
            path: "bin/x".into(),
            args: vec![],
            env: Default::default(),
            workdir: None,
        };
        let d = PackageDiff::of(
            Side {
                meta: &old,
                size: 10,
            },
            Side {
                meta: &new,
                size: 12,
            },
        );
        let text = d.render();
        assert!(d.is_breaking());
        assert!(
            text.contains("~ param --target-pid: type int(4, signed) → string(8)  [breaking]"),
            "{text}"
        );
        assert!(
            text.contains("- event field event.comm (string(16))  [breaking]"),
            "{text}"
        );
        assert!(
            text.contains("~ runtime kernel → executable  [breaking]"),
            "{text}"
        );
        assert!(text.contains("~ size 10 → 12 bytes\n"), "{text}");
    }

    #[test]
    fn a_new_capability_is_breaking() {
        let old = PackageMeta::new("n", "1.0.0", "n.bpf.o");
        let mut new = old.clone();
        new.programs = vec![ProgramInfo {
            name: "xdp_pass".into(),
            section: "xdp".into(),
            prog_type: "xdp".into(),
        }];
        let d = PackageDiff::of(
            Side {
                meta: &old,
                size: 1,
            },
            Side {
                meta: &new,
                size: 1,
            },
        );
        assert!(d.is_breaking(), "{}", d.render());
        assert!(d
            .changes
            .iter()
            .any(|c| c.area == "capability" && c.text.starts_with("capability CAP_NET_ADMIN")));
        let same = PackageDiff::of(
            Side {
                meta: &old,
                size: 1,
            },
            Side {
                meta: &old,
                size: 1,
            },
        );
        assert!(same.changes.is_empty());
        assert!(same.render().contains("no differences"));
    }
}
