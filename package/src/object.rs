//! What a BPF ELF object holds: programs, maps, `const volatile` params and event layouts,
//! read from its sections and BTF without loading it into the kernel (no privileges needed).

use std::collections::BTreeMap;

use libbpf_rs::btf::types::{Composite, DataSec, IntEncoding, MemberAttr, Var};
use libbpf_rs::btf::{BtfKind, BtfType};
use libbpf_rs::{Btf, HasSize, MapType, ObjectBuilder, OpenObject, ProgramType, ReferencesType};

use crate::libbpf_log::{with_log, LogCapture};
use crate::spec::{
    EnumVariant, EventInfo, Field, MapInfo, PackageMeta, ParamInfo, ProgramInfo, TypeLayout,
};
use crate::{decode, Error, Result};

#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub programs: Vec<ProgramInfo>,
    pub maps: Vec<MapInfo>,
    pub params: Vec<ParamInfo>,
    pub events: Vec<EventInfo>,
    pub types: BTreeMap<String, TypeLayout>,
}

impl ObjectInfo {
    /// Puts what the object holds (programs, maps, events, params, types) into `meta`.
    pub fn fill_meta(self, meta: &mut PackageMeta) {
        meta.programs = self.programs;
        meta.maps = self.maps;
        meta.events = self.events;
        meta.params = self.params;
        meta.types = self.types;
    }
}

const EM_BPF: u16 = 247;
const BPF_HELP: &str = "pass the .bpf.o that `clang -target bpf` produced (or `cargo ebpf build`)";

/// Checks that `bytes` is a BPF ELF of the host's byte order: clear Input errors for
/// "not an ELF", "an ELF for another machine (x86-64, …)", "wrong endianness".
pub fn check_elf(bytes: &[u8]) -> Result<()> {
    check_bpf_elf(bytes)?;
    let little = bytes[5] == 1;
    let host_little = cfg!(target_endian = "little");
    if little != host_little {
        let (file, host) = if little {
            ("little", "big")
        } else {
            ("big", "little")
        };
        return Err(Error::input(format!(
            "an eBPF object for {file}-endian machines, but this host is {host}-endian"
        ))
        .with_help("rebuild it with `clang -target bpf` on (or for) this host's byte order"));
    }
    Ok(())
}

/// [`check_elf`] without the host's byte order: a 64-bit BPF ELF of either byte order, as
/// a registry holding objects for other hosts checks them.
pub fn check_bpf_elf(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(Error::input("not an ELF file").with_help(BPF_HELP));
    }
    let little = match bytes[5] {
        1 => true,
        2 => false,
        other => {
            return Err(
                Error::input(format!("an ELF with unknown byte order {other}")).with_help(BPF_HELP),
            )
        }
    };
    // e_machine is stored in the file's own byte order.
    let raw = [bytes[18], bytes[19]];
    let machine = if little {
        u16::from_le_bytes(raw)
    } else {
        u16::from_be_bytes(raw)
    };
    if machine != EM_BPF {
        let what = match machine_name(machine) {
            Some(name) => format!("an ELF for {name} (machine {machine}), not an eBPF object"),
            None => format!("an ELF for machine {machine}, not an eBPF object"),
        };
        return Err(Error::input(what).with_help(BPF_HELP));
    }
    if bytes[4] != 2 {
        return Err(Error::input("a 32-bit ELF; eBPF objects are 64-bit").with_help(BPF_HELP));
    }
    Ok(())
}

/// The section names of a 64-bit ELF of the host's byte order (call [`check_elf`] first);
/// empty when the section headers are out of bounds.
pub fn section_names(bytes: &[u8]) -> Vec<String> {
    sections(bytes).into_iter().map(|(name, _)| name).collect()
}

/// Each section's name and contents (empty for `SHT_NOBITS` ones such as `.bss`), of a
/// 64-bit ELF of the host's byte order; empty when the headers are out of bounds.
pub fn sections(bytes: &[u8]) -> Vec<(String, &[u8])> {
    let read = |at: usize, len: usize| -> Option<u64> {
        let b = bytes.get(at..at.checked_add(len)?)?;
        let mut v = [0u8; 8];
        if cfg!(target_endian = "little") {
            v[..len].copy_from_slice(b);
            Some(u64::from_le_bytes(v))
        } else {
            v[8 - len..].copy_from_slice(b);
            Some(u64::from_be_bytes(v))
        }
    };
    const SHT_NOBITS: u64 = 8;
    let all = || -> Option<Vec<(String, &[u8])>> {
        let (shoff, shentsize) = (read(0x28, 8)? as usize, read(0x3a, 2)? as usize);
        let (shnum, shstrndx) = (read(0x3c, 2)? as usize, read(0x3e, 2)? as usize);
        let header = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
        let strtab = read(header(shstrndx)?.checked_add(0x18)?, 8)? as usize;
        let mut out = Vec::with_capacity(shnum.min(4096));
        for i in 0..shnum {
            let h = header(i)?;
            let name = strtab.checked_add(read(h, 4)? as usize)?;
            let rest = bytes.get(name..)?;
            let end = rest.iter().position(|&b| b == 0)?;
            let name = String::from_utf8_lossy(&rest[..end]).into_owned();
            let data = if read(h.checked_add(4)?, 4)? == SHT_NOBITS {
                &[][..]
            } else {
                let (offset, size) = (
                    read(h.checked_add(0x18)?, 8)?,
                    read(h.checked_add(0x20)?, 8)?,
                );
                let start = usize::try_from(offset).ok()?;
                bytes.get(start..start.checked_add(usize::try_from(size).ok()?)?)?
            };
            out.push((name, data));
        }
        Some(out)
    };
    all().unwrap_or_default()
}

fn machine_name(machine: u16) -> Option<&'static str> {
    Some(match machine {
        3 => "x86 (i386)",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC64",
        22 => "s390",
        40 => "ARM",
        62 => "x86-64",
        183 => "AArch64",
        243 => "RISC-V",
        258 => "LoongArch",
        _ => return None,
    })
}

/// Reads everything a package and the runner need. `event_type` names the event struct
/// when the author chose it; otherwise it is inferred.
pub fn read(bytes: &[u8], event_type: Option<&str>) -> Result<ObjectInfo> {
    check_elf(bytes)?;
    // libbpf says why it rejects an object only in its log: keep that for the error (and
    // off stderr; the lock also keeps a concurrent load's log apart).
    let capture = LogCapture::start();
    let obj = open(bytes).map_err(|e| with_log(e, &capture.text()))?;
    let btf = Btf::from_raw("object", bytes)
        .map_err(|e| with_log(bad_object(&e), &capture.text()))?
        .ok_or_else(|| {
            Error::input("the eBPF object has no BTF")
                .with_help("compile it with `-g` so clang emits BTF (`clang -g -O2 -target bpf …`)")
        })?;
    drop(capture);
    let programs = programs(&obj);
    let maps = maps(&obj);
    let rodata = obj
        .maps()
        .find(|m| m.name().to_string_lossy().ends_with(".rodata"))
        .and_then(|m| m.initial_value().map(<[u8]>::to_vec));
    let params = params(&btf, rodata.as_deref())?;
    let (events, types) = events(&btf, &maps, event_type)?;
    Ok(ObjectInfo {
        programs,
        maps,
        params,
        events,
        types,
    })
}

/// Opens (parses, does not load) the object with libbpf.
fn open(bytes: &[u8]) -> Result<OpenObject> {
    ObjectBuilder::default()
        .open_memory(bytes)
        .map_err(|e| bad_object(&e))
}

fn bad_object(e: &libbpf_rs::Error) -> Error {
    Error::input("libbpf cannot read the eBPF object")
        .with_source(e.to_string())
        .with_help(BPF_HELP)
}

fn programs(obj: &OpenObject) -> Vec<ProgramInfo> {
    obj.progs()
        .map(|p| {
            let section = p.section().to_string_lossy().into_owned();
            ProgramInfo {
                name: p.name().to_string_lossy().into_owned(),
                prog_type: program_type_name(&section, p.prog_type()),
                section,
            }
        })
        .collect()
}

fn maps(obj: &OpenObject) -> Vec<MapInfo> {
    obj.maps()
        .filter_map(|m| {
            let name = m.name().to_string_lossy().into_owned();
            // libbpf's internal maps (`obj.rodata`, `.bss`, `.kconfig`, …) carry a dot;
            // user maps are C identifiers and cannot.
            if name.contains('.') {
                return None;
            }
            Some(MapInfo {
                name,
                map_type: map_type_name(m.map_type()).to_string(),
                key_size: m.key_size(),
                value_size: m.value_size(),
                max_entries: m.max_entries(),
            })
        })
        .collect()
}

/// The program type in bpfman's naming, from the ELF section (which is what tells libbpf how
/// to attach), falling back to the kernel program type.
pub fn program_type_name(section: &str, prog_type: ProgramType) -> String {
    let prefix = section.split('/').next().unwrap_or(section);
    // Sleepable (`.s`), multi and writable variants share their base type.
    let base = prefix.split('.').next().unwrap_or(prefix);
    let name = match base {
        "tracepoint" | "tp" => "tracepoint",
        "raw_tracepoint" | "raw_tp" => "raw_tracepoint",
        "tp_btf" => "tp_btf",
        "kprobe" | "kretprobe" | "ksyscall" | "kretsyscall" => "kprobe",
        "uprobe" | "uretprobe" | "usdt" => "uprobe",
        "fentry" => "fentry",
        "fexit" => "fexit",
        "fmod_ret" => "fmod_ret",
        "lsm" | "lsm_cgroup" => "lsm",
        "xdp" => "xdp",
        "tc" | "classifier" | "action" => "tc",
        "tcx" => "tcx",
        "cgroup_skb" => "cgroup_skb",
        "perf_event" => "perf_event",
        "socket" => "socket_filter",
        "iter" => "iter",
        _ => return snake_case(&format!("{prog_type:?}")),
    };
    name.to_string()
}

/// Where a program attaches, from its ELF section (what libbpf reads):
/// `tracepoint/syscalls/sys_enter_openat` → `tracepoint syscalls:sys_enter_openat`,
/// `kprobe/do_unlinkat` → `kprobe do_unlinkat`; programs whose section names no target
/// (xdp, tc, …) say what they need instead.
pub fn attach_point(section: &str) -> String {
    let (kind, target) = section.split_once('/').unwrap_or((section, ""));
    let base = kind.split('.').next().unwrap_or(kind);
    if target.is_empty() {
        return match base {
            "xdp" | "tc" | "tcx" | "classifier" | "action" => {
                format!("{base} (needs a network interface)")
            }
            "perf_event" => "perf_event (needs a perf event)".into(),
            "socket" => "socket filter (needs a socket)".into(),
            _ => base.to_string(),
        };
    }
    match base {
        "tracepoint" | "tp" => format!("tracepoint {}", target.replacen('/', ":", 1)),
        _ => format!("{base} {target}"),
    }
}

fn snake_case(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The map type in bpfman's naming: the kernel's `BPF_MAP_TYPE_*` in lower case, with
/// `PERCPU` spelled `per_cpu` as bpfman writes it.
pub fn map_type_name(map_type: MapType) -> &'static str {
    match map_type {
        MapType::Hash => "hash",
        MapType::Array => "array",
        MapType::ProgArray => "prog_array",
        MapType::PerfEventArray => "perf_event_array",
        MapType::PercpuHash => "per_cpu_hash",
        MapType::PercpuArray => "per_cpu_array",
        MapType::StackTrace => "stack_trace",
        MapType::CgroupArray => "cgroup_array",
        MapType::LruHash => "lru_hash",
        MapType::LruPercpuHash => "lru_per_cpu_hash",
        MapType::LpmTrie => "lpm_trie",
        MapType::ArrayOfMaps => "array_of_maps",
        MapType::HashOfMaps => "hash_of_maps",
        MapType::Devmap => "devmap",
        MapType::Sockmap => "sockmap",
        MapType::Cpumap => "cpumap",
        MapType::Xskmap => "xskmap",
        MapType::Sockhash => "sockhash",
        MapType::CgroupStorage => "cgroup_storage",
        MapType::CGrpStorage => "cgrp_storage",
        MapType::ReuseportSockarray => "reuseport_sockarray",
        MapType::PercpuCgroupStorage => "per_cpu_cgroup_storage",
        MapType::Queue => "queue",
        MapType::Stack => "stack",
        MapType::SkStorage => "sk_storage",
        MapType::DevmapHash => "devmap_hash",
        MapType::StructOps => "struct_ops",
        MapType::RingBuf => "ringbuf",
        MapType::InodeStorage => "inode_storage",
        MapType::TaskStorage => "task_storage",
        MapType::BloomFilter => "bloom_filter",
        MapType::UserRingBuf => "user_ringbuf",
        MapType::Arena => "arena",
        _ => "unspec",
    }
}

// ---- params ---------------------------------------------------------------------------------

/// The `const volatile` globals of `.rodata`, with their compiled-in values as defaults.
fn params(btf: &Btf, rodata: Option<&[u8]>) -> Result<Vec<ParamInfo>> {
    let Some(sec) = btf
        .type_by_kind::<DataSec>()
        .find(|s| s.name().is_some_and(|n| n == ".rodata"))
    else {
        return Ok(Vec::new());
    };
    let mut params = Vec::new();
    for info in sec.iter() {
        let Some(var) = btf.type_by_id::<Var>(info.ty) else {
            continue;
        };
        let ty = var.referenced_type();
        // String literals and plain `const` tables live in .rodata too; only
        // `const volatile` globals are meant to be set before load.
        if !is_volatile(ty) {
            continue;
        }
        let name = var.name().map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name else { continue };
        let layout = layout_of(btf, ty, 0);
        let start = info.offset as usize;
        let default = rodata
            .and_then(|r| r.get(start..start + layout.size() as usize))
            .map(|b| decode::decode(&layout, b))
            .transpose()?
            .unwrap_or(serde_json::Value::Null);
        params.push(ParamInfo {
            flag: name.replace('_', "-"),
            name,
            offset: info.offset,
            ty: layout,
            default,
            description: None,
            short: None,
            set_default: false,
        });
    }
    Ok(params)
}

/// Whether `ty` is volatile-qualified; for arrays C puts the qualifier on the elements.
fn is_volatile(mut ty: BtfType<'_>) -> bool {
    for _ in 0..MAX_CHAIN {
        match ty.kind() {
            BtfKind::Volatile => return true,
            BtfKind::Array => match libbpf_rs::btf::types::Array::try_from(ty) {
                Ok(array) => ty = array.contained_type(),
                Err(_) => return false,
            },
            BtfKind::Const | BtfKind::Restrict | BtfKind::TypeTag | BtfKind::Typedef => {
                match ty.next_type() {
                    Some(next) => ty = next,
                    None => return false,
                }
            }
            _ => return false,
        }
    }
    false
}

// ---- events ---------------------------------------------------------------------------------

type Events = (Vec<EventInfo>, BTreeMap<String, TypeLayout>);

/// Pairs every ring buffer / perf event array with its event struct: the value type the map
/// declares (`__type(value, struct event)`, bumblebee's style), else the one chosen by name
/// or inferred for the whole object.
fn events(btf: &Btf, maps: &[MapInfo], event_type: Option<&str>) -> Result<Events> {
    let chosen = match event_type {
        Some(name) => Some(named_struct(btf, name).ok_or_else(|| unknown_struct(btf, name))?),
        None => anchored_struct(btf).or_else(|| named_struct(btf, "event")),
    };
    let declared = declared_value_types(btf);
    let mut events = Vec::new();
    let mut types = BTreeMap::new();
    for map in maps {
        if map.map_type != "ringbuf" && map.map_type != "perf_event_array" {
            continue;
        }
        let Some(ty) = declared.get(&map.name).copied().or(chosen) else {
            continue;
        };
        let type_name = ty.name().map(|n| n.to_string_lossy().into_owned());
        let type_name = type_name.unwrap_or_else(|| "event".into());
        events.push(EventInfo {
            map: map.name.clone(),
            type_name: type_name.clone(),
        });
        types
            .entry(type_name)
            .or_insert_with(|| layout_of(btf, ty, 0));
    }
    Ok((events, types))
}

/// Map name → the named struct its BTF definition gives as value type. BTF-defined maps
/// are globals in `.maps` whose struct has a `value` member pointing at that type.
fn declared_value_types<'b>(btf: &'b Btf<'b>) -> BTreeMap<String, BtfType<'b>> {
    let mut found = BTreeMap::new();
    let Some(sec) = btf
        .type_by_kind::<DataSec>()
        .find(|s| s.name().is_some_and(|n| n == ".maps"))
    else {
        return found;
    };
    for info in sec.iter() {
        let Some(var) = btf.type_by_id::<Var>(info.ty) else {
            continue;
        };
        let value = map_value_type(btf, var.referenced_type());
        let (Some(name), Some(value)) = (var.name(), value) else {
            continue;
        };
        found.insert(name.to_string_lossy().into_owned(), value);
    }
    found
}

fn map_value_type<'b>(btf: &'b Btf<'b>, def: BtfType<'b>) -> Option<BtfType<'b>> {
    let def = Composite::try_from(skip_mods(def)?).ok()?;
    let member = def.iter().find(|m| m.name.is_some_and(|n| n == "value"))?;
    let ptr = skip_mods(btf.type_by_id::<BtfType>(member.ty)?)?;
    if ptr.kind() != BtfKind::Ptr {
        return None;
    }
    let target = skip_mods(ptr.next_type()?)?;
    (target.is_composite() && target.name().is_some()).then_some(target)
}

/// A struct or union called `name` (a typedef of one counts too).
fn named_struct<'b>(btf: &'b Btf<'b>, name: &str) -> Option<BtfType<'b>> {
    let ty = btf.type_by_kind::<BtfType<'b>>().find(|t| {
        matches!(
            t.kind(),
            BtfKind::Struct | BtfKind::Union | BtfKind::Typedef
        ) && t.name().is_some_and(|n| n == name)
            && skip_mods(*t).is_some_and(|t| t.is_composite())
    })?;
    skip_mods(ty)
}

/// The struct behind the anchor idiom `struct event *unused_event __attribute__((unused));`,
/// which keeps an otherwise unused struct in BTF (clang drops types nothing refers to).
fn anchored_struct<'b>(btf: &'b Btf<'b>) -> Option<BtfType<'b>> {
    btf.type_by_kind::<Var<'b>>().find_map(|var| {
        let ty = skip_mods(var.referenced_type())?;
        if ty.kind() != BtfKind::Ptr {
            return None;
        }
        let target = skip_mods(ty.next_type()?)?;
        (target.is_composite() && target.name().is_some()).then_some(target)
    })
}

fn unknown_struct(btf: &Btf, name: &str) -> Error {
    let mut names: Vec<String> = btf
        .type_by_kind::<Composite>()
        .filter_map(|c| c.name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names.dedup();
    let list = if names.is_empty() {
        "it has none".to_string()
    } else {
        format!("it has: {}", names.join(", "))
    };
    Error::input(format!("the eBPF object's BTF has no struct `{name}`")).with_help(format!(
        "name one of the object's structs ({list}); if yours is missing, clang dropped it because \
         nothing uses it: add `struct {name} *unused_event __attribute__((unused));`"
    ))
}

// ---- BTF → TypeLayout -------------------------------------------------------------------

/// Deep enough for any real event; stops runaway recursion on malformed BTF.
const MAX_DEPTH: u32 = 32;
/// Longer than any real const/volatile/typedef chain; malformed BTF can make one a cycle.
const MAX_CHAIN: u32 = 64;

/// `ty` without const/volatile/restrict/type tags and typedefs (libbpf-rs's own version
/// loops forever on a cycle); `None` for a chain that is cyclic or broken.
fn skip_mods(mut ty: BtfType<'_>) -> Option<BtfType<'_>> {
    for _ in 0..MAX_CHAIN {
        if !ty.is_mod() && ty.kind() != BtfKind::Typedef {
            return Some(ty);
        }
        ty = ty.next_type()?;
    }
    None
}

/// Most types one layout may hold: a struct whose members name it again (hostile BTF) would
/// otherwise grow as members^depth (found by fuzzing: gigabytes from a 5 KiB object).
const MAX_LAYOUT_NODES: u32 = 20_000;

/// The layout of `ty`, looking through const/volatile/restrict/type tags and typedefs.
pub fn layout_of(btf: &Btf, ty: BtfType<'_>, depth: u32) -> TypeLayout {
    let mut budget = MAX_LAYOUT_NODES;
    layout_within(btf, ty, depth, &mut budget)
}

/// [`layout_of`], spending one of `budget` per type; none left: opaque.
fn layout_within(btf: &Btf, ty: BtfType<'_>, depth: u32, budget: &mut u32) -> TypeLayout {
    let Some(ty) = skip_mods(ty).filter(|_| depth <= MAX_DEPTH && *budget > 0) else {
        return TypeLayout::Opaque { size: 0 };
    };
    *budget -= 1;
    match ty.kind() {
        BtfKind::Int => int_layout(ty),
        BtfKind::Float => TypeLayout::Float {
            size: sized(ty).unwrap_or(0),
        },
        BtfKind::Ptr => TypeLayout::Pointer {
            size: btf.ptr_size().map_or(8, |s| s.get() as u32),
        },
        BtfKind::Array => array_layout(btf, ty, depth, budget),
        BtfKind::Enum | BtfKind::Enum64 => enum_layout(ty),
        BtfKind::Struct | BtfKind::Union => composite_layout(btf, ty, depth, budget),
        _ => TypeLayout::Opaque {
            size: sized(ty).unwrap_or(0),
        },
    }
}

fn sized(ty: BtfType<'_>) -> Option<u32> {
    use libbpf_rs::btf::types;
    let size = match ty.kind() {
        BtfKind::Int => types::Int::try_from(ty).ok()?.size(),
        BtfKind::Float => types::Float::try_from(ty).ok()?.size(),
        BtfKind::Enum => types::Enum::try_from(ty).ok()?.size(),
        BtfKind::Enum64 => types::Enum64::try_from(ty).ok()?.size(),
        BtfKind::Struct | BtfKind::Union => Composite::try_from(ty).ok()?.size(),
        _ => return None,
    };
    Some(size as u32)
}

fn int_layout(ty: BtfType<'_>) -> TypeLayout {
    let Ok(int) = libbpf_rs::btf::types::Int::try_from(ty) else {
        return TypeLayout::Opaque { size: 0 };
    };
    let size = int.size() as u32;
    match int.encoding {
        IntEncoding::Bool => TypeLayout::Bool { size },
        IntEncoding::Signed => TypeLayout::Int { size, signed: true },
        IntEncoding::Char => TypeLayout::Int { size, signed: true },
        IntEncoding::None => TypeLayout::Int {
            size,
            signed: false,
        },
    }
}

fn array_layout(btf: &Btf, ty: BtfType<'_>, depth: u32, budget: &mut u32) -> TypeLayout {
    let Ok(array) = libbpf_rs::btf::types::Array::try_from(ty) else {
        return TypeLayout::Opaque { size: 0 };
    };
    let len = array.capacity() as u32;
    let elem = array.contained_type();
    if is_plain_char(elem) {
        return TypeLayout::String { len };
    }
    let elem = layout_within(btf, elem, depth + 1, budget);
    // Malformed BTF can declare arrays whose byte size overflows `TypeLayout::size`.
    if len.checked_mul(elem.size()).is_none() {
        return TypeLayout::Opaque { size: 0 };
    }
    TypeLayout::Array {
        len,
        elem: Box::new(elem),
    }
}

/// `char`, `signed char` or `unsigned char` spelled as such: `u8 buf[16]` (a typedef) stays
/// an array of numbers, since such buffers usually hold binary data.
fn is_plain_char(mut ty: BtfType<'_>) -> bool {
    for _ in 0..MAX_CHAIN {
        if !ty.is_mod() {
            break;
        }
        match ty.next_type() {
            Some(next) => ty = next,
            None => return false,
        }
    }
    let Ok(int) = libbpf_rs::btf::types::Int::try_from(ty) else {
        return false;
    };
    let name = ty.name().map(|n| n.to_string_lossy().into_owned());
    int.size() == 1
        && (matches!(int.encoding, IntEncoding::Char)
            || matches!(
                name.as_deref(),
                Some("char" | "signed char" | "unsigned char")
            ))
}

fn enum_layout(ty: BtfType<'_>) -> TypeLayout {
    use libbpf_rs::btf::types;
    let name_of = |n: Option<&std::ffi::OsStr>| {
        n.map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let (size, signed, variants) = if let Ok(e) = types::Enum::try_from(ty) {
        let variants = e
            .iter()
            .map(|m| EnumVariant {
                name: name_of(m.name),
                value: m.value,
            })
            .collect();
        (e.size(), e.is_signed(), variants)
    } else if let Ok(e) = types::Enum64::try_from(ty) {
        let variants = e
            .iter()
            .map(|m| EnumVariant {
                name: name_of(m.name),
                // Unsigned 64-bit values above i64::MAX keep their bit pattern.
                value: m.value as i64,
            })
            .collect();
        (e.size(), e.is_signed(), variants)
    } else {
        return TypeLayout::Opaque { size: 0 };
    };
    TypeLayout::Enum {
        size: size as u32,
        signed,
        variants,
    }
}

fn composite_layout(btf: &Btf, ty: BtfType<'_>, depth: u32, budget: &mut u32) -> TypeLayout {
    let Ok(comp) = Composite::try_from(ty) else {
        return TypeLayout::Opaque { size: 0 };
    };
    let name = ty.name().map(|n| n.to_string_lossy().into_owned());
    let size = comp.size() as u32;
    let mut fields = Vec::new();
    for member in comp.iter() {
        let (offset_bits, kflag_bits) = match member.attr {
            MemberAttr::Normal { offset } => (offset, None),
            MemberAttr::BitField { size, offset } => (offset, Some(u32::from(size))),
        };
        let Some(member_ty) = btf.type_by_id::<BtfType>(member.ty) else {
            continue;
        };
        // Without kflag, a bitfield's width is the Int's bit count (its offset is ignored:
        // libbpf-rs 0.27 decodes it wrongly, and clang always sets it to 0).
        let bits = kflag_bits.or_else(|| int_bitfield_bits(member_ty));
        let member_name = member.name.map(|n| n.to_string_lossy().into_owned());
        push_member(
            &mut fields,
            member_name,
            layout_within(btf, member_ty, depth + 1, budget),
            offset_bits,
            bits,
        );
    }
    if comp.is_struct {
        TypeLayout::Struct { name, size, fields }
    } else {
        TypeLayout::Union { name, size, fields }
    }
}

fn int_bitfield_bits(ty: BtfType<'_>) -> Option<u32> {
    let int = libbpf_rs::btf::types::Int::try_from(skip_mods(ty)?).ok()?;
    let bits = u32::from(int.bits);
    // u64: malformed BTF can claim an Int of gigabytes.
    (u64::from(bits) < (int.size() as u64).saturating_mul(8)).then_some(bits)
}

/// Adds a member; anonymous struct/union members are flattened into the parent (that is how
/// C code names their fields), an anonymous union as its first member, which is what
/// [`decode`] shows for unions. Unnamed non-composite members are padding and dropped.
fn push_member(
    fields: &mut Vec<Field>,
    name: Option<String>,
    ty: TypeLayout,
    offset_bits: u32,
    bitfield_bits: Option<u32>,
) {
    if let Some(name) = name {
        fields.push(Field {
            name,
            offset_bits,
            bitfield_bits,
            ty,
        });
        return;
    }
    let inner = match ty {
        TypeLayout::Struct { fields, .. } => fields,
        TypeLayout::Union { fields, .. } => fields.into_iter().take(1).collect(),
        _ => return,
    };
    for f in inner {
        push_member(
            fields,
            Some(f.name),
            f.ty,
            // Saturating: malformed BTF can place members past u32::MAX bits.
            offset_bits.saturating_add(f.offset_bits),
            f.bitfield_bits,
        );
    }
}
