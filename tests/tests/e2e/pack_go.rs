//! The `go` template pack end to end, as root: `new --lang go` → `build` (go generate with
//! bpf2go, go build) → `package` → `push` to a real docker-registry → a fresh user pulls and
//! `run`s it, the packaged Go loader attaching to the openat tracepoint while this test
//! opens a file of its own. Also: the `-p` filter, the loader's help and non-root message,
//! and an arm64 cross-build.

use std::path::Path;
use std::process::Command;

use ebpf_e2e_tests::cli::{self, ok, Env};
use ebpf_e2e_tests::project::{
    elf_machine, loader_events, loader_events_for, run_command, run_while_opening, Project,
    EM_AARCH64, EM_BPF, EM_X86_64,
};
use ebpf_e2e_tests::Registry;
use ebpf_e2e_tests::{needs, Need};

const NAME: &str = "gosnoop";

/// A user with a freshly scaffolded go project.
fn go_project() -> Project {
    Project::new(NAME, "go")
}

/// What the go pack needs: go, clang and llvm-strip for bpf2go, bpftool, and cilium/ebpf
/// for offline (GOPATH) builds.
const GO_PACK: &[Need] = &[
    Need::Tool("go", "golang-go"),
    Need::Tool("clang", "clang"),
    Need::Tool("llvm-strip", "llvm"),
    Need::Tool("bpftool", "bpftool"),
    Need::File(
        "/usr/share/gocode/src/github.com/cilium/ebpf",
        "golang-github-cilium-ebpf-dev",
    ),
    Need::KernelBtf,
];

/// `run REF --duration N [-- EXTRA]` while this thread opens a unique file; returns the
/// loader's stdout and the file opened.
fn run_and_trigger(env: &Env, reference: &str, extra: &[&str]) -> (String, String) {
    let run = run_while_opening(run_command(env, reference, &[], extra), env.path());
    (run.stdout, run.file)
}

#[test]
fn go_pack_builds_packages_pushes_and_runs_from_the_registry() {
    if !(needs(GO_PACK) && needs(&[Need::Kernel, Need::Registry])) {
        return;
    }
    let registry = Registry::start();
    let project = go_project();

    ok(&mut project.cmd(&["build"]));
    let loader = project.built("x86_64", NAME);
    let object = project.built("x86_64", &format!("{NAME}.bpf.o"));
    assert_eq!(elf_machine(&loader), EM_X86_64);
    assert_eq!(elf_machine(&object), EM_BPF);
    // Nothing changed: the second build says Fresh and rewrites neither output.
    let mtimes = || [&loader, &object].map(|p| std::fs::metadata(p).unwrap().modified().unwrap());
    let before = mtimes();
    let again = ok(&mut project.cmd(&["build"]));
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains(&format!("Fresh {NAME} v0.1.0")), "{said}");
    assert_eq!(before, mtimes(), "a fresh build rewrote its outputs");

    ok(&mut project.cmd(&["package"]));
    let reference = format!("{}/gopack/{NAME}:0.1.0", registry.addr());
    ok(&mut project.cmd(&["push", &reference]));

    // Someone else, with an empty store, pulls and runs it.
    let user = Env::new();
    ok(&mut user.cmd(["pull", &reference]));
    let (stdout, file) = run_and_trigger(&user, &reference, &[]);
    assert!(stdout.starts_with("PID"), "no header line first:\n{stdout}");
    let mine = loader_events_for(&stdout, &file);
    assert!(
        mine.contains(&(std::process::id(), 0)),
        "no event for {file} from pid {} (uid 0) in:\n{stdout}",
        std::process::id()
    );

    // The const volatile filter, set to pid 1 through the loader's -p flag, hides ours.
    let (stdout, file) = run_and_trigger(&user, &reference, &["-p", "1"]);
    assert!(
        loader_events_for(&stdout, &file).is_empty(),
        "-p 1 let our events through:\n{stdout}"
    );
    assert!(
        loader_events(&stdout).iter().all(|e| e.pid == 1),
        "only pid 1 may pass:\n{stdout}"
    );

    // The loader's own help, through `run`.
    let help = ok(&mut user.cmd(["run", &reference, "--", "-h"]));
    let text = String::from_utf8_lossy(&help.stderr);
    assert!(
        text.contains("Usage: gosnoop") && text.contains("-pid"),
        "{text}"
    );
}

#[test]
fn go_loader_says_it_needs_root() {
    if !(needs(GO_PACK) && needs(&[Need::Root, Need::Tool("setpriv", "util-linux")])) {
        return;
    }
    let project = go_project();
    ok(&mut project.cmd(&["build"]));
    let out = cli::unprivileged(project.built("x86_64", NAME))
        .output()
        .expect("run setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(1), "{}", cli::show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs root") && stderr.contains("sudo"),
        "{stderr}"
    );
}

#[test]
fn go_pack_cross_builds_an_arm64_loader() {
    if !needs(GO_PACK) {
        return;
    }
    let project = go_project();
    ok(&mut project.cmd(&["build", "--arch", "aarch64"]));
    assert_eq!(elf_machine(&project.built("aarch64", NAME)), EM_AARCH64);
    assert_eq!(
        elf_machine(&project.built("aarch64", &format!("{NAME}.bpf.o"))),
        EM_BPF
    );
}

#[test]
fn go_build_errors_name_the_fix() {
    if !needs(GO_PACK) {
        return;
    }
    let project = go_project();

    // No go on PATH: an environment error naming the Debian package.
    let empty = tempfile::tempdir().unwrap();
    let stderr = cli::fails(project.cmd(&["build"]).env("PATH", empty.path()), 4);
    assert!(stderr.contains("apt install golang-go"), "{stderr}");

    // A bad mode override is a usage error.
    let stderr = cli::fails(
        project.cmd(&["build"]).env("CARGO_EBPF_GO_MODE", "vendor"),
        2,
    );
    assert!(
        stderr.contains("modules") && stderr.contains("gopath"),
        "{stderr}"
    );

    // A C error: clang's message, with the project's own path, in a build error.
    let source = project.dir.join(format!("bpf/{NAME}.bpf.c"));
    let mut text = std::fs::read_to_string(&source).unwrap();
    text.push_str("\nthis is not C\n");
    std::fs::write(&source, text).unwrap();
    let stderr = cli::fails(&mut project.cmd(&["build"]), 5);
    assert!(stderr.contains("go generate"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:", source.display())) && stderr.contains("error:"),
        "{stderr}"
    );
    assert!(!project.built("x86_64", NAME).exists());
}

/// A `file://` Go module proxy (GOPROXY layout) holding Debian's cilium/ebpf sources as
/// v0.9.1 and golang.org/x/sys at the version cilium/ebpf requires. Modules that only
/// cilium/ebpf's own tests import get empty packages (`go mod tidy` resolves test imports
/// of dependencies); the rest of its requirements get just a go.mod.
struct ModuleProxy {
    dir: tempfile::TempDir,
}

const SYSTEM_GOCODE: &str = "/usr/share/gocode/src";
const EBPF_VERSION: &str = "v0.9.1";

impl ModuleProxy {
    fn new() -> ModuleProxy {
        let zip_found = Command::new("zip").arg("-v").output().is_ok();
        assert!(zip_found, "`zip` is missing: apt install zip");
        let proxy = ModuleProxy {
            dir: tempfile::tempdir().unwrap(),
        };
        let ebpf = "github.com/cilium/ebpf";
        proxy.add_sources(ebpf, EBPF_VERSION, &Path::new(SYSTEM_GOCODE).join(ebpf));
        let go_mod =
            std::fs::read_to_string(Path::new(SYSTEM_GOCODE).join(ebpf).join("go.mod")).unwrap();
        for (module, version) in requirements(&go_mod) {
            match module.as_str() {
                "golang.org/x/sys" => {
                    proxy.add_sources(&module, &version, &Path::new(SYSTEM_GOCODE).join(&module))
                }
                "github.com/frankban/quicktest" => proxy.add_stub(&module, &version, &[""]),
                "github.com/google/go-cmp" => {
                    proxy.add_stub(&module, &version, &["cmp", "cmp/cmpopts"])
                }
                _ => proxy.add_info(&module, &version, &format!("module {module}\n")),
            }
        }
        proxy
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.path().join("proxy").display())
    }

    /// `@v/VERSION.{info,mod}` and the version list.
    fn add_info(&self, module: &str, version: &str, go_mod: &str) {
        let dir = self.dir.path().join("proxy").join(module).join("@v");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{version}.mod")), go_mod).unwrap();
        let info = format!(r#"{{"Version":"{version}","Time":"2022-01-01T00:00:00Z"}}"#);
        std::fs::write(dir.join(format!("{version}.info")), info).unwrap();
        std::fs::write(dir.join("list"), format!("{version}\n")).unwrap();
    }

    /// A module zip of `src` (files under `module@version/`), as `go mod download` wants.
    fn add_sources(&self, module: &str, version: &str, src: &Path) {
        let go_mod = std::fs::read_to_string(src.join("go.mod"))
            .unwrap_or_else(|_| format!("module {module}\n"));
        self.add_info(module, version, &go_mod);
        let staging = self.dir.path().join("staging");
        let root = staging.join(format!("{module}@{version}"));
        std::fs::create_dir_all(root.parent().unwrap()).unwrap();
        let copied = Command::new("cp")
            .arg("-r")
            .arg(src)
            .arg(&root)
            .status()
            .unwrap();
        assert!(copied.success());
        let zip = self
            .dir
            .path()
            .join("proxy")
            .join(module)
            .join(format!("@v/{version}.zip"));
        let zipped = Command::new("zip")
            .args(["-q", "-r"])
            .arg(&zip)
            .arg(format!("{module}@{version}"))
            .current_dir(&staging)
            .status()
            .unwrap();
        assert!(zipped.success(), "zip failed for {module}");
    }

    /// A module whose packages (`""` = the module root) are empty.
    fn add_stub(&self, module: &str, version: &str, packages: &[&str]) {
        let src = self.dir.path().join("stubs").join(module);
        for package in packages {
            let dir = src.join(package);
            std::fs::create_dir_all(&dir).unwrap();
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::write(dir.join("stub.go"), format!("package {name}\n")).unwrap();
        }
        std::fs::write(src.join("go.mod"), format!("module {module}\n")).unwrap();
        self.add_sources(module, version, &src);
    }
}

/// The `module version` pairs of a go.mod's require lines and blocks.
fn requirements(go_mod: &str) -> Vec<(String, String)> {
    go_mod
        .lines()
        .map(|l| l.trim().trim_start_matches("require").trim())
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (module, version) = (words.next()?, words.next()?);
            (module.contains('.') && version.starts_with('v'))
                .then(|| (module.to_string(), version.to_string()))
        })
        .collect()
}

#[test]
fn go_pack_builds_with_go_modules_when_a_module_proxy_answers() {
    if !needs(GO_PACK) {
        return;
    }
    let proxy = ModuleProxy::new();
    let project = go_project();
    // The template pins a current cilium/ebpf, which needs a newer Go than Debian 12's and
    // which this offline proxy does not have: point go.mod at what the proxy serves.
    let go_mod = project.dir.join("go.mod");
    let text = std::fs::read_to_string(&go_mod).unwrap();
    let text: String = text
        .lines()
        .map(|l| match l {
            l if l.starts_with("go ") => "go 1.19".to_string(),
            l if l.starts_with("require github.com/cilium/ebpf ") => {
                format!("require github.com/cilium/ebpf {EBPF_VERSION}")
            }
            l => l.to_string(),
        })
        .map(|l| l + "\n")
        .collect();
    std::fs::write(&go_mod, text).unwrap();
    let modcache = tempfile::tempdir().unwrap();
    let with_modules = |cmd: &mut Command, proxy_url: &str| {
        cmd.env("GOPROXY", proxy_url)
            .env("GOSUMDB", "off")
            .env("GOMODCACHE", modcache.path())
            // Module cache files are read-only by default; the temp dir must be removable.
            .env("GOFLAGS", "-modcacherw");
    };

    // Modules forced with no proxy: a build error that says how to build offline.
    let mut cmd = project.cmd(&["build"]);
    with_modules(&mut cmd, "off");
    let stderr = cli::fails(cmd.env("CARGO_EBPF_GO_MODE", "modules"), 5);
    assert!(
        stderr.contains("go mod tidy") && stderr.contains("CARGO_EBPF_GO_MODE=gopath"),
        "{stderr}"
    );

    // With the proxy: modules are detected and used (no GOPATH fallback), go.sum written.
    let mut cmd = project.cmd(&["build"]);
    with_modules(&mut cmd, &proxy.url());
    let out = ok(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("GOPATH"),
        "fell back to GOPATH mode:\n{stderr}"
    );
    let sum = std::fs::read_to_string(project.dir.join("go.sum")).expect("go.sum written");
    assert!(
        sum.contains(&format!("github.com/cilium/ebpf {EBPF_VERSION} h1:")),
        "{sum}"
    );
    assert_eq!(elf_machine(&project.built("x86_64", NAME)), EM_X86_64);
    assert_eq!(
        elf_machine(&project.built("x86_64", &format!("{NAME}.bpf.o"))),
        EM_BPF
    );
}
