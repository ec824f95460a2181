//! The kernel-only (`eunomia`) build: vmlinux.h from host BTF (cached), clang to a BPF
//! object, checks. The other kinds reuse its vmlinux.h ([`vmlinux_include_dir`]) and
//! param docs ([`param_docs`]).
//!
//! Layout under `target/ebpf/`:
//! - `include/vmlinux.h` — copied from the cache, keyed by the kernel BTF's sha256;
//! - `<arch>/obj/<stem>.o` — one object per source;
//! - `<arch>/<name>.bpf.o` — the final object (one source copied, several linked);
//! - `<arch>/.fingerprint` — what the final object was built from; equal → nothing to do.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};

use std::collections::BTreeMap;

use ebpf_package::formats::ParamDoc;
use ebpf_package::spec::bpf_target_arch;
use ebpf_package::{Error, Result};

use crate::manifest::{Kind, Project};

use super::anchor;
use super::util::{
    install_help, label, relative, report_built, require_program, status, stem, warn_if_host_btf,
    write_atomic, write_if_changed,
};
use super::{BuildOptions, BuildOutput};

/// Builds the project's BPF object, then checks that its event struct survived into BTF.
pub(super) fn build(project: &Project, opts: &BuildOptions, arch: &str) -> Result<BuildOutput> {
    let started = Instant::now();
    let tools = Tools::find(project)?;
    let sources = find_sources(project)?;
    let (btf, _) = ebpf_runner::run::kernel_btf_path(opts.btf.as_deref())?;
    warn_if_host_btf(arch, opts);
    let layout = Layout::new(project, arch);
    let vmlinux_digest = prepare_vmlinux(&tools, &btf, &layout)?;
    let flags = clang_flags(project, &layout, arch)?;

    let fingerprint = fingerprint(
        project,
        &sources,
        &tools.clang_version,
        &flags,
        &vmlinux_digest,
    )?;
    if layout.is_fresh(&fingerprint) {
        report_built(project, started, true, &[]);
        return Ok(layout.output(arch, true));
    }

    status(
        "Compiling",
        &format!("{} ({})", label(project), project.dir.display()),
    );
    let objects = compile_all(&tools, &flags, &sources, &layout)?;
    let event = project.manifest.build.event.as_deref();
    let inputs = Inputs {
        project,
        tools: &tools,
        flags: &flags,
        sources: &sources,
        layout: &layout,
    };
    let installed = link_with_events(&inputs, &objects, event)
        .and_then(|bytes| check_param_docs(&sources, &bytes))
        .and_then(|()| layout.install(&layout.staged(), &fingerprint));
    if installed.is_err() {
        // A rejected object must not linger in target/ as a stray temp file.
        let _ = std::fs::remove_file(layout.staged());
    }
    installed?;
    report_built(project, started, false, &[&layout.object]);
    Ok(layout.output(arch, false))
}

/// What the compile and link steps share.
struct Inputs<'a> {
    project: &'a Project,
    tools: &'a Tools,
    flags: &'a [String],
    sources: &'a [PathBuf],
    layout: &'a Layout,
}

/// Links the objects into the staging file and checks the event struct; returns the staged
/// object's bytes. When the struct is missing but a header of the sources defines it (an
/// ecli program: `struct event` in `NAME.h`), a generated anchor unit is linked in too.
fn link_with_events(inputs: &Inputs, objects: &[PathBuf], event: Option<&str>) -> Result<Vec<u8>> {
    let staged = link(inputs.tools, objects, inputs.layout)?;
    let bytes = std::fs::read(&staged).map_err(|e| Error::io("read", &staged, e))?;
    let Err(missing) = check_event_struct(&inputs.layout.object, &bytes, event) else {
        return Ok(bytes);
    };
    let Some(anchor) = anchor::find(inputs.sources, event)? else {
        return Err(missing);
    };
    status(
        "Anchoring",
        &format!(
            "{} from {} (so its records can be decoded)",
            anchor.chosen.c_type,
            relative(&anchor.header, &inputs.project.dir).display()
        ),
    );
    let unit = inputs.layout.obj_dir.join("anchor").join("event.c");
    write_if_changed(&unit, anchor.unit()?.as_bytes())?;
    let mut flags = inputs.flags.to_vec();
    // The unit repeats the source's quoted includes, which are found beside the source.
    if let Some(dir) = anchor.source.parent() {
        flags.extend(["-iquote".to_string(), dir.display().to_string()]);
    }
    let anchor_obj = unit.with_extension("o");
    compile(inputs.tools, &flags, &unit, &anchor_obj)?;
    let all: Vec<PathBuf> = objects.iter().cloned().chain([anchor_obj]).collect();
    let staged = link(inputs.tools, &all, inputs.layout)?;
    let bytes = std::fs::read(&staged).map_err(|e| Error::io("read", &staged, e))?;
    check_event_struct(&inputs.layout.object, &bytes, event)?;
    Ok(bytes)
}

/// The event check: a ring buffer or perf event array whose record type is missing from
/// BTF means the runner could not decode anything, so the build fails here rather than at
/// `cargo ebpf run`.
fn check_event_struct(object: &Path, bytes: &[u8], event: Option<&str>) -> Result<()> {
    let info = ebpf_package::object::read(bytes, event)?;
    let has_event_map = info
        .maps
        .iter()
        .any(|m| m.map_type == "ringbuf" || m.map_type == "perf_event_array");
    if has_event_map && info.events.is_empty() {
        return Err(Error::build(format!(
            "{} has an event map but its event struct is not in the object's BTF",
            object.display()
        ))
        .with_help(
            "clang keeps a struct in BTF only when a global refers to it; add\n    \
             struct event *unused_event __attribute__((unused));\n\
             to the .bpf.c file (with your struct's name), and set `event = \"NAME\"` \
             under [build] in ebpf.toml if there is more than one candidate",
        ));
    }
    Ok(())
}

// ---- param docs --------------------------------------------------------------------------

/// The eunomia convention for documenting `const volatile` params, read from the sources
/// (BTF has no comments):
///
/// ```c
/// /// @description Trace only failed opens
/// /// @cmdarg {"default": false, "short": "f", "long": "failed"}
/// const volatile bool targ_failed = false;
/// ```
///
/// Plain `///` lines count as description too. Returned by variable name. Read from the
/// kind's BPF sources ([`bpf_source_dir`]), so packages with their own loader record the
/// descriptions too (for `inspect` and the hub; their loader parses its own arguments).
pub(crate) fn param_docs(project: &Project) -> Result<BTreeMap<String, ParamDoc>> {
    let sources = match project.kind() {
        Kind::Eunomia => find_sources(project)?,
        kind => bpf_sources_in(&project.dir.join(bpf_source_dir(kind)))?,
    };
    docs_in(&sources)
}

/// eunomia's source annotations that change how a program runs, by program or map name:
///
/// ```c
/// /// @tchook {"ifindex": 1, "attach_point": "BPF_TC_INGRESS"}
/// /// @tcopts {"handle": 1, "priority": 1}
/// SEC("tc")
/// int count_packets(struct __sk_buff *skb) { … }
///
/// /// @sample {"interval": 1000, "type": "log2_hist"}
/// struct { … } latency SEC(".maps");
/// ```
///
/// (`@ifindex N` and `@xdpopts {…}` above XDP programs.) Values are JSON; a bare word or
/// number is kept as it is.
pub(crate) fn source_annotations(project: &Project) -> Result<Annotations> {
    let sources = match project.kind() {
        Kind::Eunomia => find_sources(project)?,
        kind => bpf_sources_in(&project.dir.join(bpf_source_dir(kind)))?,
    };
    let mut all = Annotations::new();
    for source in &sources {
        let text = std::fs::read_to_string(source).map_err(|e| Error::io("read", source, e))?;
        all.extend(parse_annotations(&text).map_err(|e| e.with_context_path(source))?);
    }
    Ok(all)
}

/// Program or map name → annotation → value.
pub(crate) type Annotations = BTreeMap<String, BTreeMap<String, serde_json::Value>>;

/// The annotations the runner acts on.
const ANNOTATIONS: [&str; 5] = ["tchook", "tcopts", "xdpopts", "ifindex", "sample"];

/// Every annotated program and map of one C source: a `///` block binds to the function
/// after the `SEC("…")` line below it, or to the map a `struct { … } NAME SEC(".maps")`
/// block below it defines.
fn parse_annotations(source: &str) -> Result<Annotations> {
    let mut found = Annotations::new();
    let mut pending = BTreeMap::new();
    let (mut in_map, mut after_sec) = (false, false);
    for (n, line) in source.lines().enumerate() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix("///") {
            if let Some((key, value)) = annotation(comment.trim(), n + 1)? {
                pending.insert(key, value);
            }
            continue;
        }
        if pending.is_empty() || line.is_empty() || line.starts_with("//") {
            continue;
        }
        if line.starts_with("struct") && line.ends_with('{') {
            in_map = true;
        } else if in_map && line.starts_with('}') && line.contains("SEC(\".maps\")") {
            let name = line[1..].split("SEC").next().unwrap_or_default().trim();
            found.insert(name.to_string(), std::mem::take(&mut pending));
            in_map = false;
        } else if in_map {
            continue;
        } else if line.starts_with("SEC(\"") {
            after_sec = true;
        } else if after_sec && line.contains('(') {
            let head = line.split('(').next().unwrap_or_default();
            let name = head
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .trim_start_matches('*');
            found.insert(name.to_string(), std::mem::take(&mut pending));
            after_sec = false;
        } else if after_sec {
            // The return type on a line of its own.
            continue;
        } else {
            // Documented something else (a param: see param_docs).
            pending.clear();
            after_sec = false;
        }
    }
    Ok(found)
}

/// `@tchook {…}` → ("tchook", the JSON); other `///` lines → None.
fn annotation(comment: &str, line: usize) -> Result<Option<(String, serde_json::Value)>> {
    let Some(rest) = comment.strip_prefix('@') else {
        return Ok(None);
    };
    let (key, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !ANNOTATIONS.contains(&key) {
        return Ok(None);
    }
    let value = value.trim();
    let parsed = match serde_json::from_str(value) {
        Ok(v) => v,
        Err(_) if !value.starts_with('{') => serde_json::Value::String(value.to_string()),
        Err(e) => {
            return Err(
                Error::input(format!("line {line}: @{key} is not valid JSON"))
                    .with_source(e)
                    .with_help(format!(
                        r#"write it like /// @{key} {{"ifindex": 1}} (see docs/formats.md)"#
                    )),
            )
        }
    };
    Ok(Some((key.to_string(), parsed)))
}

/// Where each kind's template pack keeps its BPF C: `src/` (eunomia, c), `bpf/` (go, next
/// to bpf2go's output), `src/bpf/` (rust, next to the skeleton's build.rs input).
fn bpf_source_dir(kind: Kind) -> &'static str {
    match kind {
        Kind::Eunomia | Kind::C => "src",
        Kind::Go => "bpf",
        Kind::Rust => "src/bpf",
    }
}

fn docs_in(sources: &[PathBuf]) -> Result<BTreeMap<String, ParamDoc>> {
    let mut docs = BTreeMap::new();
    for source in sources {
        let text = std::fs::read_to_string(source).map_err(|e| Error::io("read", source, e))?;
        docs.extend(parse_param_docs(&text).map_err(|e| e.with_context_path(source))?);
    }
    Ok(docs)
}

/// Every documented `const volatile` global in one C source.
fn parse_param_docs(source: &str) -> Result<BTreeMap<String, ParamDoc>> {
    let mut docs = BTreeMap::new();
    let mut pending: Option<ParamDoc> = None;
    for (n, line) in source.lines().enumerate() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix("///") {
            let doc = pending.get_or_insert_with(ParamDoc::default);
            add_doc_line(doc, comment.trim())
                .map_err(|e| Error::input(format!("line {}: {}", n + 1, e.full_message())))?;
            continue;
        }
        if let (Some(doc), Some(name)) = (pending.take(), const_volatile_name(line)) {
            docs.insert(name, doc);
        }
    }
    Ok(docs)
}

fn add_doc_line(doc: &mut ParamDoc, comment: &str) -> Result<()> {
    if let Some(json) = comment.strip_prefix("@cmdarg") {
        let value: serde_json::Value = serde_json::from_str(json.trim()).map_err(|e| {
            Error::input("@cmdarg is not a JSON object")
                .with_source(e)
                .with_help(
                    r#"write it like /// @cmdarg {"default": 0, "short": "p", "long": "pid"}"#,
                )
        })?;
        let text = |key: &str| value[key].as_str().map(String::from);
        doc.long = text("long");
        doc.short = text("short");
        doc.default = match &value["default"] {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        return Ok(());
    }
    let text = comment
        .strip_prefix("@description")
        .unwrap_or(comment)
        .trim();
    if !text.is_empty() {
        let joined = match doc.description.take() {
            Some(before) => format!("{before} {text}"),
            None => text.to_string(),
        };
        doc.description = Some(joined);
    }
    Ok(())
}

/// `const volatile TYPE NAME[...] = ...;` → NAME.
fn const_volatile_name(line: &str) -> Option<String> {
    if !(line.contains("const") && line.contains("volatile")) {
        return None;
    }
    let declarator = line.split(['=', ';', '[']).next()?;
    let name = declarator
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .rfind(|w| !w.is_empty())?;
    Some(name.to_string())
}

/// Applies the documented defaults to the object's params, so a @cmdarg default that does
/// not fit its type fails the build rather than `run`.
fn check_param_docs(sources: &[PathBuf], object: &[u8]) -> Result<()> {
    let docs = docs_in(sources)?;
    let mut params = ebpf_package::object::read(object, None)?.params;
    ebpf_package::formats::document_params(&mut params, &docs)
}

// ---- architecture, tools, inputs ---------------------------------------------------------

struct Tools {
    clang: PathBuf,
    bpftool: PathBuf,
    /// `clang --version`'s first line: part of the fingerprint.
    clang_version: String,
}

impl Tools {
    fn find(project: &Project) -> Result<Tools> {
        let clang = require_program("clang", install_help("clang", "clang"))?;
        let bpftool = require_program(
            "bpftool",
            "install it: Debian `sudo apt install bpftool`, Ubuntu `sudo apt install \
             linux-tools-common linux-tools-$(uname -r)`, Fedora `sudo dnf install bpftool`",
        )?;
        check_libbpf_headers(project)?;
        let cache = cache_dir(&project.target_dir().join("cache"))?;
        let clang_version = cached_version(&clang, &cache)?;
        Ok(Tools {
            clang,
            bpftool,
            clang_version,
        })
    }
}

fn check_libbpf_headers(project: &Project) -> Result<()> {
    let extra = project
        .manifest
        .build
        .include
        .iter()
        .map(|d| project.dir.join(d));
    let found = [
        PathBuf::from("/usr/include"),
        PathBuf::from("/usr/local/include"),
    ]
    .into_iter()
    .chain(extra)
    .any(|dir| dir.join("bpf/bpf_helpers.h").is_file());
    if found {
        return Ok(());
    }
    Err(
        Error::environment("the libbpf headers (bpf/bpf_helpers.h) were not found").with_help(
            "install them: Debian/Ubuntu `sudo apt install libbpf-dev`, \
             Fedora `sudo dnf install libbpf-devel`",
        ),
    )
}

/// [`tool_version`], remembered in the user's cache for this very executable (its resolved path,
/// size and modification time): starting clang costs more than a fresh build's other work
/// together, and its memory tops a `package` run's.
fn cached_version(tool: &Path, cache_dir: &Path) -> Result<String> {
    let Ok(identity) = file_identity(tool) else {
        return tool_version(tool);
    };
    let name = tool
        .file_name()
        .map_or("tool".into(), |n| n.to_string_lossy());
    let cache = cache_dir.join(format!("{name}-version"));
    let cached = std::fs::read_to_string(&cache).ok();
    let line = format!("{identity}\n");
    if let Some(version) = cached.as_deref().and_then(|c| c.strip_prefix(&line)) {
        return Ok(version.to_string());
    }
    let version = tool_version(tool)?;
    // Only a cache: a read-only target dir still builds.
    let _ = std::fs::create_dir_all(cache_dir)
        .and_then(|_| std::fs::write(&cache, format!("{identity}\n{version}")));
    Ok(version)
}

/// What changes whenever a file's content does: its resolved path, device, inode, size,
/// and modification and change times (the last is set by the kernel, so a restored mtime
/// does not hide an edit).
fn file_identity(file: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(file)?;
    let m = std::fs::metadata(&real)?;
    Ok(format!(
        "{}\0{}:{}\0{}\0{}.{}\0{}.{}",
        real.display(),
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

/// The sha256 (hex) of `file`, remembered in `memo` for its [`file_identity`]: the kernel
/// BTF and vmlinux.h are megabytes, and hashing them on every build was most of a fresh
/// build's time.
fn cached_digest(file: &Path, memo: &Path) -> Result<String> {
    // Taken before hashing: a file changed meanwhile has another identity next time.
    let identity = file_identity(file).map_err(|e| Error::io("read", file, e))?;
    let line = format!("{identity}\n");
    let remembered = std::fs::read_to_string(memo).ok();
    if let Some(digest) = remembered.as_deref().and_then(|c| c.strip_prefix(&line)) {
        return Ok(digest.to_string());
    }
    let digest = sha256_file(file)?;
    // Only a cache: a read-only cache dir still builds.
    let _ = write_atomic(memo, format!("{line}{digest}").as_bytes());
    Ok(digest)
}

fn tool_version(tool: &Path) -> Result<String> {
    let out = Command::new(tool)
        .arg("--version")
        .output()
        .map_err(|e| Error::io("run", tool, e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

/// The sources to compile: `[build] sources`, else every `src/*.bpf.c`, sorted.
fn find_sources(project: &Project) -> Result<Vec<PathBuf>> {
    let listed = &project.manifest.build.sources;
    let sources = if listed.is_empty() {
        default_sources(project)?
    } else {
        listed.iter().map(|s| project.dir.join(s)).collect()
    };
    if sources.is_empty() {
        return Err(Error::input(format!(
            "no BPF sources: {} has no *.bpf.c files",
            project.dir.join("src").display()
        ))
        .with_help("add src/NAME.bpf.c, or list files in `sources = [...]` under [build]"));
    }
    if let Some(missing) = sources.iter().find(|s| !s.is_file()) {
        return Err(
            Error::input(format!("source {} does not exist", missing.display()))
                .with_help("fix `sources` under [build] in ebpf.toml"),
        );
    }
    check_unique_stems(&sources)?;
    Ok(sources)
}

fn default_sources(project: &Project) -> Result<Vec<PathBuf>> {
    bpf_sources_in(&project.dir.join("src"))
}

/// The `*.bpf.c` files directly in `src`, sorted; none when it does not exist.
fn bpf_sources_in(src: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(src) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read directory", src, e)),
    };
    let mut sources: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    sources.sort();
    Ok(sources)
}

fn check_unique_stems(sources: &[PathBuf]) -> Result<()> {
    let mut seen = std::collections::BTreeMap::new();
    for s in sources {
        if let Some(other) = seen.insert(stem(s), s) {
            return Err(Error::input(format!(
                "sources {} and {} would both compile to {}.o",
                other.display(),
                s.display(),
                stem(s)
            ))
            .with_help("rename one of them"));
        }
    }
    Ok(())
}

// ---- output layout -----------------------------------------------------------------------

struct Layout {
    include: PathBuf,
    arch_dir: PathBuf,
    obj_dir: PathBuf,
    object: PathBuf,
    fingerprint: PathBuf,
}

impl Layout {
    fn new(project: &Project, arch: &str) -> Layout {
        let target = project.target_dir();
        let arch_dir = target.join(arch);
        Layout {
            include: target.join("include"),
            obj_dir: arch_dir.join("obj"),
            object: arch_dir.join(format!("{}.bpf.o", project.name())),
            fingerprint: arch_dir.join(".fingerprint"),
            arch_dir,
        }
    }

    /// Where the final object is put together before it is checked and installed.
    fn staged(&self) -> PathBuf {
        self.arch_dir.join(".object.tmp")
    }

    fn is_fresh(&self, fingerprint: &str) -> bool {
        self.object.is_file()
            && std::fs::read_to_string(&self.fingerprint).is_ok_and(|f| f.trim() == fingerprint)
    }

    /// Puts the staged object in place and records what it was built from. The old
    /// fingerprint goes first, so a crash in between never pairs it with a new object.
    fn install(&self, staged: &Path, fingerprint: &str) -> Result<()> {
        match std::fs::remove_file(&self.fingerprint) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove", &self.fingerprint, e))
            }
            _ => {}
        }
        std::fs::rename(staged, &self.object).map_err(|e| Error::io("write", &self.object, e))?;
        write_atomic(&self.fingerprint, format!("{fingerprint}\n").as_bytes())
    }

    fn output(&self, arch: &str, fresh: bool) -> BuildOutput {
        BuildOutput {
            object: self.object.clone(),
            arch: arch.to_string(),
            fresh,
            loader: None,
            btfgen: None,
        }
    }
}

// ---- vmlinux.h ---------------------------------------------------------------------------

/// For the other kinds' drivers: makes `target/ebpf/include/vmlinux.h` match the kernel
/// BTF (from the same cache) and returns that include directory.
#[allow(dead_code)] // for the language drivers
pub(crate) fn vmlinux_include_dir(
    project: &Project,
    opts: &BuildOptions,
    arch: &str,
) -> Result<PathBuf> {
    let tools = Tools::find(project)?;
    let (btf, _) = ebpf_runner::run::kernel_btf_path(opts.btf.as_deref())?;
    let layout = Layout::new(project, arch);
    prepare_vmlinux(&tools, &btf, &layout)?;
    Ok(layout.include)
}

/// Makes `target/ebpf/include/vmlinux.h` match the kernel BTF; returns its sha256.
fn prepare_vmlinux(tools: &Tools, btf: &Path, layout: &Layout) -> Result<String> {
    let cache = cache_dir(&layout.include.with_file_name("cache"))?;
    let btf_digest = cached_digest(btf, &cache.join("btf-sha256"))?;
    let cached = cache.join(format!("vmlinux-{btf_digest}.h"));
    if !cached.is_file() {
        status("Generating", &format!("vmlinux.h from {}", btf.display()));
        let header = dump_btf(tools, btf)?;
        write_atomic(&cached, &header)?;
    }
    let digest = cached_digest(
        &cached,
        &cache.join(format!("vmlinux-{btf_digest}.h.sha256")),
    )?;
    let dest = layout.include.join("vmlinux.h");
    let memo = layout.include.join(".vmlinux.h.sha256");
    // Read and compared only when it may differ: a fresh build reads neither header.
    if cached_digest(&dest, &memo).ok().as_ref() != Some(&digest) {
        let header = std::fs::read(&cached).map_err(|e| Error::io("read", &cached, e))?;
        // Rewrite only on change, so a fresh build touches nothing.
        write_if_changed(&dest, &header)?;
    }
    Ok(digest)
}

fn dump_btf(tools: &Tools, btf: &Path) -> Result<Vec<u8>> {
    let out = Command::new(&tools.bpftool)
        .args(["btf", "dump", "file"])
        .arg(btf)
        .args(["format", "c"])
        .output()
        .map_err(|e| Error::io("run", &tools.bpftool, e))?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(Error::build(format!(
            "bpftool could not generate vmlinux.h from {}",
            btf.display()
        ))
        .with_help("check that the file holds kernel BTF (e.g. /sys/kernel/btf/vmlinux)")
        .with_details(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    Ok(out.stdout)
}

/// `$CARGO_EBPF_HOME/cache`, `$XDG_CACHE_HOME/cargo-ebpf`, `~/.cache/cargo-ebpf`, or as a last
/// resort `fallback` (in the project's own target dir).
fn cache_dir(fallback: &Path) -> Result<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = var("CARGO_EBPF_HOME")
        .map(|h| h.join("cache"))
        .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("cargo-ebpf")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("cargo-ebpf")))
        .unwrap_or_else(|| fallback.to_path_buf());
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    Ok(dir)
}

// ---- compile and link --------------------------------------------------------------------

/// The clang flags shared by every source (all but `-c SRC -o OBJ`).
fn clang_flags(project: &Project, layout: &Layout, arch: &str) -> Result<Vec<String>> {
    let target_arch = bpf_target_arch(arch).expect("resolve_arch accepts only BPF arches");
    let mut flags: Vec<String> = ["-g", "-O2", "-target", "bpf"].map(String::from).into();
    flags.push(format!("-D__TARGET_ARCH_{target_arch}"));
    let mut includes = vec![layout.include.clone(), project.dir.join("src")];
    for extra in &project.manifest.build.include {
        let dir = project.dir.join(extra);
        if !dir.is_dir() {
            return Err(Error::input(format!(
                "include directory {} does not exist",
                dir.display()
            ))
            .with_help("fix `include` under [build] in ebpf.toml"));
        }
        includes.push(dir);
    }
    for dir in includes {
        flags.push("-I".into());
        flags.push(dir.display().to_string());
    }
    // `<linux/types.h>` includes `<asm/types.h>`, which Debian-style systems keep only in
    // the multiarch directory; `-target bpf` does not search it (ecc adds it too). After
    // the project's own directories, so a project header still wins.
    if let Some(dir) = multiarch_include_dir(arch).filter(|d| d.is_dir()) {
        flags.push("-idirafter".into());
        flags.push(dir.display().to_string());
    }
    Ok(flags)
}

/// `/usr/include/<GNU triple>` for a target architecture (uname naming).
fn multiarch_include_dir(arch: &str) -> Option<PathBuf> {
    let triple = match arch {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        "riscv64" => "riscv64-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "loongarch64" => "loongarch64-linux-gnu",
        _ => return None,
    };
    Some(Path::new("/usr/include").join(triple))
}

fn compile_all(
    tools: &Tools,
    flags: &[String],
    sources: &[PathBuf],
    layout: &Layout,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(&layout.obj_dir)
        .map_err(|e| Error::io("create directory", &layout.obj_dir, e))?;
    sources
        .iter()
        .map(|src| {
            let obj = layout.obj_dir.join(format!("{}.o", stem(src)));
            compile(tools, flags, src, &obj).map(|()| obj)
        })
        .collect()
}

/// One clang run. Its diagnostics go straight to the user's terminal (colours and all).
fn compile(tools: &Tools, flags: &[String], src: &Path, obj: &Path) -> Result<()> {
    let status = Command::new(&tools.clang)
        .args(flags)
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(obj)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| Error::io("run", &tools.clang, e))?;
    if status.success() {
        return Ok(());
    }
    Err(
        Error::build(format!("clang failed to compile {}", src.display()))
            .with_help("fix the errors clang reported above"),
    )
}

/// Produces the final object in a staging file next to it: one object is copied, several
/// are linked with `bpftool gen object`.
fn link(tools: &Tools, objects: &[PathBuf], layout: &Layout) -> Result<PathBuf> {
    let staged = layout.staged();
    if let [single] = objects {
        std::fs::copy(single, &staged).map_err(|e| Error::io("write", &staged, e))?;
        return Ok(staged);
    }
    status("Linking", &format!("{} objects", objects.len()));
    let out = Command::new(&tools.bpftool)
        .args(["gen", "object"])
        .arg(&staged)
        .args(objects)
        .stdout(Stdio::null())
        .output()
        .map_err(|e| Error::io("run", &tools.bpftool, e))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&staged);
        return Err(Error::build("bpftool failed to link the BPF objects")
            .with_help("two sources may define the same global or map; make one of them static")
            .with_details(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    Ok(staged)
}

// ---- fingerprint -------------------------------------------------------------------------

/// sha256 over everything the object depends on: project files (path, mtime, content),
/// clang's version, the flags and vmlinux.h.
fn fingerprint(
    project: &Project,
    sources: &[PathBuf],
    clang_version: &str,
    flags: &[String],
    vmlinux_digest: &str,
) -> Result<String> {
    let mut files: Vec<PathBuf> = sources.to_vec();
    if !project.inferred {
        files.push(project.manifest_path());
    }
    files.extend(files_under(&project.dir.join("src")));
    // Listed sources may live outside src/, and `#include "x.h"` finds headers beside them.
    for dir in sources.iter().filter_map(|s| s.parent()) {
        files.extend(headers_in(dir));
    }
    // Include dirs outside the project (system headers) are left out: walking them on every
    // build is slow, and they change with packages, not with the project.
    for extra in project
        .manifest
        .build
        .include
        .iter()
        .filter(|p| p.is_relative())
    {
        files.extend(files_under(&project.dir.join(extra)));
    }
    files.sort();
    files.dedup();

    let mut h = Sha256::new();
    for file in &files {
        hash_file_entry(&mut h, file)?;
    }
    for part in [clang_version, &flags.join("\u{1f}"), vmlinux_digest] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    Ok(hex::encode(h.finalize()))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

/// The `*.h` files directly in `dir`.
fn headers_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "h") && p.is_file())
        .collect()
}

/// Path, modification time (so `touch` forces a rebuild, as with make and cargo) and content.
fn hash_file_entry(h: &mut Sha256, file: &Path) -> Result<()> {
    let meta = file.metadata().map_err(|e| Error::io("read", file, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    h.update(file.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(mtime.to_le_bytes());
    h.update(sha256_file(file)?.as_bytes());
    Ok(())
}

// ---- small helpers -----------------------------------------------------------------------

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("read", path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut h).map_err(|e| Error::io("read", path, e))?;
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_digest_is_used_until_the_file_changes_even_with_its_old_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vmlinux");
        let memo = dir.path().join("memo");
        std::fs::write(&file, b"first").unwrap();
        let first = cached_digest(&file, &memo).unwrap();
        assert_eq!(first, hex::encode(Sha256::digest(b"first")));

        // Remembered: a memo saying otherwise for the same identity is believed.
        let text = std::fs::read_to_string(&memo).unwrap();
        std::fs::write(&memo, text.replace(&first, "remembered")).unwrap();
        assert_eq!(cached_digest(&file, &memo).unwrap(), "remembered");

        // The same size and modification time, other bytes: hashed again.
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        // File times advance once per kernel tick (up to 10 ms): let one pass.
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::write(&file, b"other").unwrap();
        let f = std::fs::File::options().write(true).open(&file).unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        assert_eq!(
            cached_digest(&file, &memo).unwrap(),
            hex::encode(Sha256::digest(b"other"))
        );
    }

    #[test]
    fn annotations_bind_to_the_program_or_map_below() {
        let src = r#"
/// @description a param, not annotated
const volatile int pid = 0;

/// @tchook {"ifindex": 1, "attach_point": "BPF_TC_EGRESS"}
/// @tcopts {"handle": 2, "priority": 3}
SEC("tc")
int count_packets(struct __sk_buff *skb)
{
    return 0;
}

/// @sample {"interval": 500, "type": "log2_hist"}
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
} sizes SEC(".maps");

/// @ifindex 1
/// @unknown whatever
SEC("xdp")
int
pass_all(struct xdp_md *ctx) { return 2; }
"#;
        let found = parse_annotations(src).unwrap();
        assert_eq!(
            found["count_packets"]["tchook"]["attach_point"],
            "BPF_TC_EGRESS"
        );
        assert_eq!(found["count_packets"]["tcopts"]["priority"], 3);
        assert_eq!(found["sizes"]["sample"]["interval"], 500);
        assert_eq!(found["pass_all"]["ifindex"], 1);
        assert_eq!(found.len(), 3, "{found:?}");
        let err = parse_annotations("/// @tchook {oops\nSEC(\"tc\")\nint f(void) {}").unwrap_err();
        assert!(err.message.contains("line 1: @tchook"), "{}", err.message);
    }

    #[test]
    fn param_docs_follow_the_eunomia_convention() {
        let source = r#"
/// @description Trace only failed opens
/// @cmdarg {"default": true, "short": "f", "long": "failed"}
const volatile bool targ_failed = false;
/// Process to trace,
/// 0 for all
const volatile pid_t targ_pid = 0;
const volatile int undocumented = 1;
/// a comment above something else
int not_a_param;
const volatile char comm[16] = "";
"#;
        let docs = parse_param_docs(source).unwrap();
        assert_eq!(
            docs["targ_failed"],
            ParamDoc {
                description: Some("Trace only failed opens".into()),
                long: Some("failed".into()),
                short: Some("f".into()),
                default: Some("true".into()),
            }
        );
        assert_eq!(
            docs["targ_pid"].description.as_deref(),
            Some("Process to trace, 0 for all")
        );
        assert_eq!(docs.len(), 2, "{docs:?}");
    }

    #[test]
    fn param_docs_come_from_the_kinds_bpf_sources() {
        let doc = "/// @description Only this pid\nconst volatile int pid = 0;\n";
        for (kind, dir) in [("go", "bpf"), ("rust", "src/bpf"), ("c", "src")] {
            let tmp = tempfile::tempdir().unwrap();
            let manifest = format!(
                "[package]\nname = \"x\"\nversion = \"0.1.0\"\n[build]\nkind = \"{kind}\"\n"
            );
            std::fs::write(tmp.path().join("ebpf.toml"), manifest).unwrap();
            std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
            std::fs::write(tmp.path().join(dir).join("x.bpf.c"), doc).unwrap();
            let project = Project::discover(tmp.path()).unwrap();
            let docs = param_docs(&project).unwrap();
            assert_eq!(
                docs["pid"].description.as_deref(),
                Some("Only this pid"),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_bad_cmdarg_names_its_line() {
        let err = parse_param_docs("\n/// @cmdarg {default: 1}\nconst volatile int x = 0;\n")
            .unwrap_err();
        assert!(
            err.message.starts_with("line 2: @cmdarg"),
            "{}",
            err.message
        );
    }
}
