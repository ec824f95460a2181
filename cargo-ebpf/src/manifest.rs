//! `ebpf.toml`: the one manifest file of a project (package fields + build settings).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ebpf_package::{Error, Result};

/// The manifest's file name.
pub const FILE_NAME: &str = "ebpf.toml";

/// Longest accepted package name (registry repository components are limited, and a short
/// name keeps C identifiers and file names readable).
pub const MAX_NAME_LEN: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub package: PackageSection,
    #[serde(default)]
    pub build: BuildSection,
    /// How the package is started, when not by the build kind's default (see docs/format.md).
    #[serde(default)]
    pub run: Option<RunSection>,
    /// How to check it works (`test-kernels`).
    #[serde(default)]
    pub test: Option<TestSection>,
}

/// `[test]`: `smoke`, a shell command that makes the program emit an event (run in each
/// `test-kernels` VM once the package is attached; busybox's applets are there).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TestSection {
    #[serde(default)]
    pub smoke: Option<String>,
}

/// `[run]`: a container image or files + scripts instead of the kind's default runtime.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunSection {
    /// Container runtime: the image docker/podman runs.
    #[serde(default)]
    pub container: Option<String>,
    /// Container runtime: the container's command, before the user's `-- ARGS`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Container runtime: environment variables.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Files runtime: project files placed at absolute destinations.
    #[serde(default)]
    pub files: Vec<RunFile>,
    /// Files runtime: shell script (project path) run after the files are placed.
    #[serde(default)]
    pub script: Option<PathBuf>,
    /// Files runtime: shell script (project path) run before the files are removed.
    #[serde(default)]
    pub stop_script: Option<PathBuf>,
}

/// One `[[run.files]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFile {
    /// Path in the project; the same path inside the layer.
    pub src: PathBuf,
    /// Absolute destination on the host.
    pub dest: String,
    #[serde(default)]
    pub mode: Option<u32>,
    /// Replace (and on `stop` restore) a file already there.
    #[serde(default)]
    pub overwrite: bool,
}

impl RunSection {
    /// Whether this declares files + scripts.
    pub fn is_files(&self) -> bool {
        !self.files.is_empty() || self.script.is_some() || self.stop_script.is_some()
    }

    /// One runtime, complete, with relative project paths and absolute destinations.
    fn validate(&self) -> Result<()> {
        let help = "declare either `container = \"IMAGE\"` (with optional `args`, `env`) or \
                    `files`/`script`/`stop-script` under [run]; see docs/format.md";
        let container_only = !self.args.is_empty() || !self.env.is_empty();
        if self.container.is_some() && self.is_files() {
            return Err(Error::input("[run] declares both a container and files").with_help(help));
        }
        if self.container.is_none() && container_only {
            return Err(Error::input("[run] `args` and `env` need `container`").with_help(help));
        }
        if self.container.is_none() && !self.is_files() {
            return Err(Error::input("[run] declares no runtime").with_help(help));
        }
        let paths = self
            .files
            .iter()
            .map(|f| &f.src)
            .chain(&self.script)
            .chain(&self.stop_script);
        for path in paths {
            let inside = path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside || path.as_os_str().is_empty() {
                return Err(Error::input(format!(
                    "[run] path `{}` must be relative to the project, without `..`",
                    path.display()
                ))
                .with_help(help));
            }
        }
        for file in &self.files {
            let dest = Path::new(&file.dest);
            let up = dest
                .components()
                .any(|c| c == std::path::Component::ParentDir);
            if !dest.is_absolute() || up || dest.parent().is_none() {
                return Err(Error::input(format!(
                    "[run] destination `{}` must be an absolute file path without `..`",
                    file.dest
                ))
                .with_help(help));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSection {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    /// Source repository URL.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Where `cargo ebpf publish` pushes: `host[:port]/namespace`; the reference becomes
    /// `{registry}/{name}:{version}`.
    #[serde(default)]
    pub registry: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// The project kind: which build driver and runtime (default `eunomia`).
    #[serde(default)]
    pub kind: Option<Kind>,
    /// BPF C sources; default: every `src/*.bpf.c`.
    #[serde(default)]
    pub sources: Vec<PathBuf>,
    /// The event struct's name, when inference should not guess.
    #[serde(default)]
    pub event: Option<String>,
    /// Extra include directories, relative to the project.
    #[serde(default)]
    pub include: Vec<PathBuf>,
}

/// What kind of project this is: decides how `build` drives the toolchain and how the
/// package is started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Kernel-only C (eunomia-bpf style): the runner loads it and prints its events.
    #[default]
    Eunomia,
    /// libbpf C with a skeleton-based C loader, built with make.
    C,
    /// cilium/ebpf with bpf2go, built with go generate + go build.
    Go,
    /// libbpf-rs with a libbpf-cargo skeleton, built with cargo.
    Rust,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Eunomia => "eunomia",
            Kind::C => "c",
            Kind::Go => "go",
            Kind::Rust => "rust",
        }
    }
}

/// A loaded manifest with the project directory it came from.
#[derive(Debug, Clone)]
pub struct Project {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// No `ebpf.toml`: the manifest was inferred from an ecc/ecli folder ([`infer`]).
    pub inferred: bool,
}

impl Project {
    /// Finds `ebpf.toml` in `start` or its parents and loads it, with clear errors for a
    /// missing file, bad TOML, unknown keys, bad name or version.
    /// Without one, a folder holding `NAME.bpf.c` (eunomia's ecc/ecli layout) is a project
    /// as it stands, with its manifest inferred.
    pub fn discover(start: &Path) -> Result<Project> {
        let start =
            std::path::absolute(start).map_err(|e| Error::io("resolve the directory", start, e))?;
        if let Some(dir) = start.ancestors().find(|d| d.join(FILE_NAME).is_file()) {
            return Project::load(dir);
        }
        if let Some(manifest) = infer(&start)? {
            return Ok(Project {
                dir: start,
                manifest,
                inferred: true,
            });
        }
        Err(Error::input(format!(
            "could not find `{FILE_NAME}` or a NAME.bpf.c in {} or any parent directory",
            start.display()
        ))
        .with_help(
            "run `cargo ebpf new NAME` for a new project, `cargo ebpf init` in a folder of \
             BPF sources, or cd into a project",
        ))
    }

    /// Whether `dir` is a project by itself: it has `ebpf.toml` or top-level `*.bpf.c`.
    pub fn is_project_dir(dir: &Path) -> bool {
        dir.join(FILE_NAME).is_file() || !top_level_sources(dir).is_empty()
    }

    /// Loads `dir/ebpf.toml` (no search upwards).
    pub fn load(dir: &Path) -> Result<Project> {
        let path = dir.join(FILE_NAME);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        let manifest = Manifest::parse(&text, &path)?;
        Ok(Project {
            dir: dir.to_path_buf(),
            manifest,
            inferred: false,
        })
    }

    /// The project kind (`[build] kind`, default `eunomia`).
    pub fn kind(&self) -> Kind {
        self.manifest.build.kind.unwrap_or_default()
    }

    /// The package's name.
    pub fn name(&self) -> &str {
        &self.manifest.package.name
    }

    /// The package's version.
    pub fn version(&self) -> &str {
        &self.manifest.package.version
    }

    /// The path of the manifest file.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Where build outputs go: `DIR/target/ebpf`.
    pub fn target_dir(&self) -> PathBuf {
        self.dir.join("target").join("ebpf")
    }

    /// The reference `publish` pushes to: `{registry}/{name}:{version}`.
    pub fn reference(&self) -> Result<String> {
        let pkg = &self.manifest.package;
        let registry = pkg.registry.as_deref().ok_or_else(|| {
            Error::input(format!(
                "no registry is set for package `{}` in {}",
                pkg.name,
                self.manifest_path().display()
            ))
            .with_help(if self.inferred {
                "run `cargo ebpf init` to write an ebpf.toml, then add `registry = \
                 \"HOST[:PORT]/NAMESPACE\"` under [package]; or give a full reference to `push`"
            } else {
                "add `registry = \"HOST[:PORT]/NAMESPACE\"` under [package] in ebpf.toml, \
                 e.g. `registry = \"localhost:5000/you\"`, or give a full reference to `push`"
            })
        })?;
        Ok(format!(
            "{}/{}:{}",
            registry.trim_end_matches('/'),
            pkg.name,
            pkg.version
        ))
    }
}

/// The manifest an ecc/ecli folder implies: its top-level `*.bpf.c` files as sources, the
/// name of the only source (else of the folder), version 0.1.0; `None` without sources.
/// The event struct is left to the build's header search (`NAME.h`, as ecc does).
pub fn infer(dir: &Path) -> Result<Option<Manifest>> {
    let sources = top_level_sources(dir);
    let Some(first) = sources.first() else {
        return Ok(None);
    };
    let base = match sources.len() {
        1 => first.trim_end_matches(".bpf.c").to_string(),
        _ => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let name = suggest_name(&base);
    let manifest = Manifest {
        package: PackageSection {
            name,
            version: "0.1.0".into(),
            description: None,
            license: None,
            authors: Vec::new(),
            source: None,
            keywords: Vec::new(),
            registry: None,
        },
        build: BuildSection {
            sources: sources.iter().map(PathBuf::from).collect(),
            ..Default::default()
        },
        run: None,
        test: None,
    };
    manifest.validate(&dir.join(FILE_NAME))?;
    Ok(Some(manifest))
}

/// The names of the `*.bpf.c` files directly in `dir`, sorted.
fn top_level_sources(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".bpf.c") && n.len() > ".bpf.c".len())
        .collect();
    names.sort();
    names
}

/// `cargo ebpf init`: writes `dir/ebpf.toml` for an existing folder of BPF sources, as
/// [`infer`] reads it (`name` overrides the inferred name). Never replaces a file.
pub fn init(dir: &Path, name: Option<&str>) -> Result<(PathBuf, Manifest)> {
    let path = dir.join(FILE_NAME);
    if path.symlink_metadata().is_ok() {
        return Err(
            Error::input(format!("{} already exists", path.display())).with_help(
                "this folder is already a project: edit ebpf.toml, or `cargo ebpf build` it",
            ),
        );
    }
    let mut manifest = infer(dir)?.ok_or_else(|| {
        Error::input(format!("{} has no NAME.bpf.c to build", dir.display())).with_help(
            "put your BPF program in NAME.bpf.c (its event struct in NAME.h) and run \
             `cargo ebpf init` again, or start afresh with `cargo ebpf new NAME`",
        )
    })?;
    if let Some(name) = name {
        validate_name(name)?;
        manifest.package.name = name.to_string();
    }
    write_new(&path, &manifest.to_init_toml())?;
    Ok((path, manifest))
}

/// Creates `path` with `text`; fails rather than replace anything already there.
fn write_new(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io("write", path, e))
}

impl Manifest {
    /// The text `init` writes: the inferred fields, and commented hints for the rest.
    fn to_init_toml(&self) -> String {
        let sources: Vec<String> = self
            .build
            .sources
            .iter()
            .map(|s| format!("{:?}", s.display().to_string()))
            .collect();
        format!(
            "[package]\nname = \"{}\"\nversion = \"{}\"\n\
             # description = \"What it shows\"\n\
             # registry = \"localhost:5000/you\"   # where `cargo ebpf publish` pushes\n\n\
             [build]\nkind = \"eunomia\"\nsources = [{}]\n\
             # event = \"event\"   # the event struct, when the header defines several\n",
            self.package.name,
            self.package.version,
            sources.join(", ")
        )
    }

    /// Parses and validates manifest text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| toml_error(&e, text, path))?;
        manifest.validate(path)?;
        Ok(manifest)
    }

    /// Checks the fields serde cannot: name, version and registry syntax.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let pkg = &self.package;
        let in_file = |e: Error| Error {
            message: format!("{}: {}", path.display(), e.message),
            ..e
        };
        validate_name(&pkg.name).map_err(in_file)?;
        validate_version(&pkg.version).map_err(in_file)?;
        if let Some(registry) = &pkg.registry {
            validate_registry(registry).map_err(in_file)?;
        }
        if let Some(run) = &self.run {
            run.validate().map_err(in_file)?;
        }
        Ok(())
    }
}

/// Turns a TOML/serde error into an Input error naming the file, line and column.
fn toml_error(err: &toml::de::Error, text: &str, path: &Path) -> Error {
    let place = match err.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            format!("{}:{line}:{col}", path.display())
        }
        None => path.display().to_string(),
    };
    let message = err.message().trim_end();
    let help = if message.starts_with("unknown field") {
        "remove or rename the key; see `cargo ebpf new` output for a complete ebpf.toml"
    } else if message.starts_with("missing field") {
        "add the field: [package] needs at least `name` and `version`"
    } else {
        "fix the TOML syntax at the position shown"
    };
    Error::input(format!("invalid {FILE_NAME} at {place}: {message}")).with_help(help)
}

/// 1-based line and column (in characters) of byte offset `pos` in `text`.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = &text[..pos.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Checks a package name: lowercase ASCII letters, digits, `-` and `_`, starting with a
/// letter, at most 64 characters (it becomes a registry repository name and a C identifier).
pub fn validate_name(name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    let starts_with_letter = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if ok_chars && starts_with_letter && name.len() <= MAX_NAME_LEN {
        return Ok(());
    }
    Err(
        Error::input(format!("invalid package name `{name}`")).with_help(format!(
            "a name uses lowercase ASCII letters, digits, `-` and `_`, starts with a letter and \
         has at most {MAX_NAME_LEN} characters; try `{}`",
            suggest_name(name)
        )),
    )
}

/// A valid name close to `name`: lowercased, other characters turned into `-`, leading
/// non-letters dropped, cut to the length limit.
pub fn suggest_name(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '-') => c,
            _ => '-',
        })
        .collect();
    let trimmed = mapped.trim_start_matches(|c: char| !c.is_ascii_lowercase());
    let mut s: String = trimmed.chars().take(MAX_NAME_LEN).collect();
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() {
        "my-probe".to_string()
    } else {
        s
    }
}

/// Checks `MAJOR.MINOR.PATCH[-PRE]` (no `+build`: it is not allowed in a registry tag).
pub fn validate_version(version: &str) -> Result<()> {
    let (core, pre) = match version.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (version, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let core_ok = parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        });
    let pre_ok = pre.is_none_or(|p| {
        !p.is_empty()
            && p.split('.').all(|id| {
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    });
    if core_ok && pre_ok && version.len() <= 128 {
        return Ok(());
    }
    Err(
        Error::input(format!("invalid version `{version}`")).with_help(
            "use MAJOR.MINOR.PATCH with an optional -PRERELEASE, e.g. `0.1.0` or `1.2.0-rc.1` \
             (no `+build` suffix: the version becomes a registry tag)",
        ),
    )
}

/// Checks `host[:port]/namespace[/more…]`, without a scheme.
pub fn validate_registry(registry: &str) -> Result<()> {
    let bad = |why: &str| {
        Error::input(format!("invalid registry `{registry}`: {why}")).with_help(
            "write it as HOST[:PORT]/NAMESPACE without a scheme, e.g. \
             `registry = \"localhost:5000/you\"` or `registry = \"ghcr.io/your-org\"`",
        )
    };
    if registry.contains("://") {
        return Err(bad("it must not contain a scheme such as https://"));
    }
    let trimmed = registry.trim_end_matches('/');
    let (host, namespace) = trimmed
        .split_once('/')
        .ok_or_else(|| bad("a namespace after the host is missing"))?;
    let (hostname, port) = match host.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host, None),
    };
    let host_ok = !hostname.is_empty()
        && hostname
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !host_ok {
        return Err(bad("the host is not a valid host name"));
    }
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(bad("the port is not a number from 0 to 65535"));
    }
    let ns_ok = namespace.split('/').all(|c| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    });
    if !ns_ok {
        return Err(bad(
            "namespace components use lowercase letters, digits, `.`, `_` and `-`",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(text, Path::new("ebpf.toml"))
    }

    #[test]
    fn names() {
        for ok in ["a", "opensnoop", "my-probe_2", &"a".repeat(64)] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "1abc", "-x", "Open", "with space", "ü", &"a".repeat(65)] {
            let e = validate_name(bad).unwrap_err();
            assert_eq!(e.kind, ebpf_package::ErrorKind::Input);
            let help = e.help.unwrap();
            assert!(help.contains("starts with a letter"), "{help}");
            let suggestion = suggest_name(bad);
            validate_name(&suggestion).unwrap();
            assert!(help.contains(&format!("`{suggestion}`")));
        }
        assert_eq!(suggest_name("My Probe!"), "my-probe");
        assert_eq!(suggest_name("42open"), "open");
    }

    #[test]
    fn versions() {
        for ok in ["0.1.0", "1.20.300", "1.0.0-rc.1", "2.0.0-alpha-2"] {
            validate_version(ok).unwrap();
        }
        for bad in [
            "1", "1.0", "1.0.0.0", "01.0.0", "1.0.0-", "1.0.0+b", "v1.0.0", "1.x.0",
        ] {
            assert!(validate_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registries() {
        for ok in [
            "localhost:5000/you",
            "ghcr.io/org/team",
            "127.0.0.1:5000/a_b/",
        ] {
            validate_registry(ok).unwrap();
        }
        for bad in [
            "localhost:5000",
            "https://ghcr.io/x",
            "host:99999/x",
            "ghcr.io/Org",
            "/x",
            "a..b/x",
        ] {
            assert!(validate_registry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = parse("[package]\nname = \"x\"\nversion = 0.1.0\n").unwrap_err();
        assert!(e.message.contains("ebpf.toml:3:"), "{}", e.message);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse("[package]\nname = \"x\"\nversion = \"0.1.0\"\nnmae = \"y\"\n").unwrap_err();
        assert!(e.message.contains("unknown field `nmae`"), "{}", e.message);
        assert!(e.message.contains("ebpf.toml:4:1"), "{}", e.message);
    }

    #[test]
    fn run_section_declares_one_runtime() {
        let base = "[package]\nname = \"x\"\nversion = \"0.1.0\"\n";
        let m = parse(&format!(
            "{base}[run]\ncontainer = \"localhost/x:1\"\nargs = [\"/l.sh\"]\n"
        ))
        .unwrap();
        assert_eq!(m.run.unwrap().container.as_deref(), Some("localhost/x:1"));
        let m = parse(&format!(
            "{base}[run]\nscript = \"start.sh\"\nstop-script = \"stop.sh\"\n\
             [[run.files]]\nsrc = \"conf/a\"\ndest = \"/etc/x/a\"\nmode = 0o600\n"
        ))
        .unwrap();
        assert_eq!(m.run.unwrap().files[0].mode, Some(0o600));
        for bad in [
            "[run]\n",
            "[run]\ncontainer = \"i\"\nscript = \"s.sh\"\n",
            "[run]\nargs = [\"a\"]\nscript = \"s.sh\"\n",
            "[run]\nscript = \"../s.sh\"\n",
            "[[run.files]]\nsrc = \"a\"\ndest = \"etc/a\"\n",
            "[[run.files]]\nsrc = \"a\"\ndest = \"/etc/../a\"\n",
        ] {
            let e = parse(&format!("{base}{bad}")).unwrap_err();
            assert!(e.help.unwrap().contains("[run]"), "{bad}");
        }
    }

    #[test]
    fn reference_needs_registry() {
        let mut p = Project {
            dir: PathBuf::from("/p"),
            manifest: parse("[package]\nname = \"x\"\nversion = \"0.1.0\"\n").unwrap(),
            inferred: false,
        };
        assert!(p
            .reference()
            .unwrap_err()
            .help
            .unwrap()
            .contains("registry ="));
        p.manifest.package.registry = Some("localhost:5000/you/".into());
        assert_eq!(p.reference().unwrap(), "localhost:5000/you/x:0.1.0");
        assert_eq!(p.target_dir(), PathBuf::from("/p/target/ebpf"));
    }
}
