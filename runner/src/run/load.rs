//! Opening, loading and attaching with libbpf, with its log captured so a verifier
//! rejection can be shown as a clear error instead of a wall of text on stderr.

use libbpf_rs::{MapType, Object, ObjectBuilder, OpenObject};
use std::path::Path;

use super::attach::{self, AttachError, Attached, Plan};

use ebpf_package::libbpf_log::{with_log, LogCapture};
use ebpf_package::{Error, Result};

/// An object loaded into the kernel with its programs attached. Dropping it detaches them.
pub struct Loaded {
    // Attachments first: they must go before the object that owns their programs.
    pub attached: Vec<Attached>,
    pub object: Object,
}

impl Drop for Loaded {
    /// Detaches in reverse order: a tc filter attached later must go before the qdisc that
    /// an earlier one created (and removes with it).
    fn drop(&mut self) {
        while self.attached.pop().is_some() {}
    }
}

impl Loaded {
    /// How many programs are attached.
    pub fn programs(&self) -> usize {
        self.attached.len()
    }
}

/// Opens the object with libbpf (no kernel involved yet).
pub fn open(object_name: &str, bytes: &[u8], custom_btf: Option<&Path>) -> Result<OpenObject> {
    let mut builder = ObjectBuilder::default();
    let name = libbpf_name(object_name);
    builder.name(&name).map_err(|e| open_error(&e))?;
    if let Some(path) = custom_btf {
        builder.btf_custom_path(path).map_err(|e| open_error(&e))?;
    }
    let mut open = builder.open_memory(bytes).map_err(|e| open_error(&e))?;
    untype_ring_buffers(&mut open)?;
    size_unsized_maps(&mut open)?;
    Ok(open)
}

/// Entries given to a map declared with `max_entries = 0`, which the kernel refuses:
/// Inspektor Gadget's loader sizes such maps (its user-stack map) at load time, and its
/// headers use 10000 stacks for that map; tables get libbpf-tools' usual 10240; a ring
/// buffer 256 KiB. Perf event arrays stay 0 (libbpf sizes them to the CPU count), and
/// local-storage maps must be 0.
fn default_entries(ty: MapType) -> Option<u32> {
    Some(match ty {
        MapType::StackTrace => 10_000,
        MapType::RingBuf => 256 * 1024,
        MapType::Hash
        | MapType::Array
        | MapType::PercpuHash
        | MapType::PercpuArray
        | MapType::LruHash
        | MapType::LruPercpuHash => 10_240,
        _ => return None,
    })
}

fn size_unsized_maps(open: &mut OpenObject) -> Result<()> {
    for mut map in open.maps_mut() {
        if map.max_entries() != 0 {
            continue;
        }
        let Some(entries) = default_entries(map.map_type()) else {
            continue;
        };
        map.set_max_entries(entries).map_err(|e| open_error(&e))?;
        eprintln!(
            "note: map `{}` declares max_entries 0; sized to {entries} at load (as Inspektor Gadget's loader does)",
            map.name().to_string_lossy()
        );
    }
    Ok(())
}

/// Some tools (bumblebee) declare a ring buffer's record type with `__type(value, …)`; the
/// kernel wants ring buffers without a value size, so it is cleared (the type stays in BTF,
/// where the runner reads it to decode events).
fn untype_ring_buffers(open: &mut OpenObject) -> Result<()> {
    for mut map in open.maps_mut() {
        if map.map_type() == libbpf_rs::MapType::RingBuf && map.value_size() != 0 {
            map.set_value_size(0).map_err(|e| open_error(&e))?;
        }
    }
    Ok(())
}

/// libbpf prefixes internal map names with the object name: keep it a short identifier.
fn libbpf_name(object_name: &str) -> String {
    let stem = object_name.split('.').next().unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.is_empty() {
        "object".into()
    } else {
        name
    }
}

fn open_error(e: &libbpf_rs::Error) -> Error {
    Error::input("libbpf cannot open the eBPF object")
        .with_source(e.to_string())
        .with_help("pass the .bpf.o that `clang -target bpf` produced (or `cargo ebpf build`)")
}

/// Loads every program (the verifier runs here) and attaches each as its [`Plan`] says
/// (`plans` is in program order, from [`attach::plan`]).
pub fn load_and_attach(open: OpenObject, plans: &[Plan]) -> Result<Loaded> {
    let capture = LogCapture::start();
    let object = open.load().map_err(|e| load_error(&e, &capture.text()))?;
    let mut attached = Vec::new();
    for (prog, plan) in object.progs_mut().zip(plans) {
        let one = attach::attach(&prog, plan).map_err(|e| {
            let name = prog.name().to_string_lossy();
            let section = prog.section().to_string_lossy();
            attach_error(&name, &section, &e, &capture.text())
        })?;
        attached.push(one);
    }
    drop(capture);
    Ok(Loaded { attached, object })
}

fn load_error(e: &libbpf_rs::Error, log: &str) -> Error {
    if log.contains("failed to perform CO-RE relocations") {
        return with_log(
            Error::environment(
                "libbpf could not adapt the program to this kernel (CO-RE relocation failed)",
            )
            .with_help(
                "the kernel BTF must describe the running kernel: check `--btf FILE` or \
                     $CARGO_EBPF_KERNEL_BTF, or drop them to use /sys/kernel/btf/vmlinux",
            ),
            log,
        );
    }
    let Some(verifier) = verifier_log(log) else {
        return with_log(
            Error::kernel("libbpf could not load the eBPF object")
                .with_source(e.to_string())
                .with_help("libbpf's log below says what failed"),
            log,
        );
    };
    let prog = rejected_program(log).unwrap_or_else(|| "?".into());
    with_log(
        Error::kernel(format!("the kernel rejected program `{prog}`")).with_help(
            "the verifier log below ends at the instruction it refused; fix the program \
             (bounds checks, NULL checks, initialized memory) and rebuild",
        ),
        &verifier,
    )
}

fn attach_error(name: &str, section: &str, e: &AttachError, log: &str) -> Error {
    let e = match e {
        AttachError::Os(what, err) => {
            return with_log(
                Error::kernel(format!(
                    "cannot attach program `{name}` (section `{section}`): cannot {what}: {err}"
                ))
                .with_help("check the attach target and that the kernel supports it"),
                log,
            )
        }
        AttachError::Libbpf(e) => e,
    };
    let err = Error::kernel(format!(
        "cannot attach program `{name}` (section `{section}`): {}",
        errno_text(e)
    ));
    // EOPNOTSUPP: libbpf has no automatic attach for this section (sockets, iterators, …).
    let help = if e.kind() == libbpf_rs::ErrorKind::Unsupported {
        format!(
            "libbpf cannot attach `{section}` programs by itself and `cargo ebpf run` has no \
             attach code for them; it runs tracepoint, raw_tp, kprobe, uprobe, fentry/fexit, \
             lsm, perf_event, xdp, tc and cgroup programs"
        )
    } else {
        "check that the attach point exists on this kernel (e.g. the tracepoint under \
         /sys/kernel/tracing/events, the function in /sys/kernel/btf/vmlinux, the interface \
         in `ip link`)"
            .to_string()
    };
    with_log(err.with_help(help), log)
}

/// libbpf-rs errors read "context: cause"; the cause (the errno text) is what matters.
fn errno_text(e: &libbpf_rs::Error) -> String {
    let text = format!("{e:#}");
    let cause = text.rsplit(": ").next().unwrap_or(&text);
    cause.to_string()
}

/// The program named in libbpf's "prog 'NAME': BPF program load failed" lines.
fn rejected_program(log: &str) -> Option<String> {
    let line = log
        .lines()
        .find(|l| l.contains("prog '") && l.contains("load failed"))
        .or_else(|| log.lines().find(|l| l.contains("prog '")))?;
    let start = line.find("prog '")? + "prog '".len();
    let len = line[start..].find('\'')?;
    Some(line[start..start + len].to_string())
}

/// The verifier's own output, between libbpf's BEGIN/END PROG LOAD LOG markers.
fn verifier_log(log: &str) -> Option<String> {
    let begin = log.find("-- BEGIN PROG LOAD LOG --")?;
    let after = &log[begin..];
    let body = &after[after.find('\n')? + 1..];
    let end = body.find("-- END PROG LOAD LOG --").unwrap_or(body.len());
    Some(body[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "libbpf: prog 'bad': BPF program load failed: Permission denied\n\
        libbpf: prog 'bad': -- BEGIN PROG LOAD LOG --\n\
        0: R1=ctx() R10=fp0\n\
        1: (b7) r0 = 0\n\
        invalid access to map value, value_size=8 off=64 size=8\n\
        -- END PROG LOAD LOG --\n\
        libbpf: failed to load object 'x'\n";

    #[test]
    fn finds_rejected_program_and_verifier_log() {
        assert_eq!(rejected_program(LOG).as_deref(), Some("bad"));
        let verifier = verifier_log(LOG).unwrap();
        assert!(verifier.starts_with("0: R1=ctx()"));
        assert!(verifier.trim_end().ends_with("off=64 size=8"));
    }

    #[test]
    fn libbpf_names_are_short_identifiers() {
        assert_eq!(libbpf_name("opensnoop.bpf.o"), "opensnoop");
        assert_eq!(libbpf_name("my-prog.o"), "my_prog");
        assert_eq!(libbpf_name(""), "object");
    }
}
