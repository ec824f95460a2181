//! `cargo ebpf test-kernels` on real Debian kernels (5.10 from bullseye, 6.1 from bookworm,
//! 6.12 from bookworm-backports, unpacked by scripts/fetch-test-kernels.sh), each booted in
//! its own QEMU VM: a scaffolded package that loads everywhere passes on all three; an object
//! calling `bpf_loop` (Linux 5.17) fails on 5.10 with the verifier's reason and passes on
//! the others. Also `run --check`, the guest's half, on the host kernel.

use std::path::Path;

use ebpf_e2e_tests::cli::{self, fails, ok, Env};
use ebpf_e2e_tests::images::compile_fixture;
use ebpf_e2e_tests::project::Project;
use ebpf_e2e_tests::{needs, Need};
use ebpf_package::kernel_matrix::{KernelMatrix, Outcome};

const KERNELS: [&str; 3] = [
    "/var/cache/cargo-ebpf/kernels/5.10",
    "/var/cache/cargo-ebpf/kernels/6.1",
    "/var/cache/cargo-ebpf/kernels/6.12",
];
const FETCH: &str = "bash scripts/fetch-test-kernels.sh";

fn vm_needs() -> bool {
    needs(&[
        Need::Build,
        Need::Tool("qemu-system-x86_64", "qemu-system-x86"),
        Need::File("/bin/busybox", "busybox-static"),
        Need::Tool("ldd", "libc-bin"),
        Need::File("/var/cache/cargo-ebpf/kernels/5.10/vmlinuz", FETCH),
        Need::File("/var/cache/cargo-ebpf/kernels/6.1/vmlinuz", FETCH),
        Need::File("/var/cache/cargo-ebpf/kernels/6.12/vmlinuz", FETCH),
    ])
}

/// `test-kernels TARGET` over the three kernels, its matrix read back from `--output`.
fn matrix(env: &Env, target: &Path) -> (KernelMatrix, String) {
    // The guest's runner is the ebpf-runner next to cargo-ebpf: make sure it is built.
    cli::runner_bin();
    let json = env.path().join("matrix.json");
    let mut cmd = env.cmd(["test-kernels"]);
    cmd.arg(target).arg("--output").arg(&json);
    for kernel in KERNELS {
        cmd.args(["--kernel", kernel]);
    }
    let out = ok(&mut cmd);
    let matrix = KernelMatrix::from_json(&std::fs::read(&json).unwrap()).unwrap();
    (matrix, String::from_utf8(out.stdout).unwrap())
}

fn series(matrix: &KernelMatrix) -> Vec<(&str, Outcome)> {
    let rows = matrix.kernels.iter();
    rows.map(|k| (k.series.as_str(), k.result)).collect()
}

#[test]
fn a_bpf_loop_object_fails_on_5_10_with_the_verifiers_reason() {
    if !vm_needs() {
        return;
    }
    let env = Env::new();
    let obj = env.path().join("needs_bpf_loop.bpf.o");
    std::fs::write(&obj, compile_fixture("kernels/needs_bpf_loop.bpf.c")).unwrap();
    let (matrix, table) = matrix(&env, &obj);
    assert_eq!(
        series(&matrix),
        [
            ("5.10", Outcome::Fail),
            ("6.1", Outcome::Pass),
            ("6.12", Outcome::Pass)
        ],
        "{table}"
    );
    let old = &matrix.kernels[0];
    assert!(old.kernel.starts_with("5.10."), "{old:?}");
    assert_eq!(old.arch, "x86_64");
    let reason = old.reason.as_deref().unwrap();
    // libbpf's summary and the 5.10 verifier's own words: it knows no callback subprograms.
    assert!(
        reason.starts_with("the kernel rejected program `loop_getpid`: "),
        "{reason}"
    );
    assert!(reason.len() > "the kernel rejected program `loop_getpid`: ".len());
    assert!(matrix.kernels[1..].iter().all(|k| k.reason.is_none()));
    assert_eq!(matrix.package, "needs_bpf_loop.bpf.o");
    // The table on stdout: a header and one row per kernel, the reason on the failing one.
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[1].contains(" fail ") && lines[1].contains(reason),
        "{table}"
    );
    // --deny-fail: the same failure as exit 9, after the table (one kernel is enough).
    let mut cmd = env.cmd(["test-kernels", "--deny-fail", "--kernel", KERNELS[0]]);
    let out = cmd.arg(&obj).output().unwrap();
    assert_eq!(out.status.code(), Some(9), "{}", cli::show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(reason));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fails on 1 of 1 kernels"));
    // The matrix says this kernel family fails: what `run` will warn about.
    assert!(matrix.failing_for(&old.kernel, "x86_64").is_some());
    assert!(matrix
        .failing_for(&matrix.kernels[2].kernel, "x86_64")
        .is_none());
}

#[test]
fn a_package_that_loads_everywhere_passes_on_every_kernel() {
    if !vm_needs() {
        return;
    }
    let project = Project::new("everywhere", "eunomia");
    let (matrix, table) = matrix(&project.env, &project.dir);
    assert_eq!(
        series(&matrix),
        [
            ("5.10", Outcome::Pass),
            ("6.1", Outcome::Pass),
            ("6.12", Outcome::Pass)
        ],
        "{table}"
    );
    // A package (not a bare object) carries its name, version and digest into the matrix.
    assert!(
        matrix.package.starts_with("everywhere:"),
        "{}",
        matrix.package
    );
    assert!(matrix.digest.as_deref().unwrap().starts_with("sha256:"));
    assert!(matrix.kernels.iter().all(|k| k.duration_ms.is_some()));
}

#[test]
fn bad_kernel_arguments_fail_before_any_vm() {
    let env = Env::new();
    let err = fails(
        &mut env.cmd(["test-kernels", ".", "--kernel", "/nonexistent/vmlinuz"]),
        10,
    );
    assert!(err.contains("/nonexistent/vmlinuz"), "{err}");
    assert!(err.contains("--kernel VMLINUZ[:BTF]"), "{err}");
    // A directory without kernels says how to get them.
    let empty = env.path().join("no-kernels");
    std::fs::create_dir(&empty).unwrap();
    let err = fails(
        env.cmd(["test-kernels", "."])
            .env("CARGO_EBPF_KERNELS", &empty),
        4,
    );
    assert!(err.contains("no kernels to test"), "{err}");
    assert!(err.contains("fetch-test-kernels.sh"), "{err}");
}

#[test]
fn run_check_loads_attaches_and_reports_one_json_line() {
    if !needs(&[Need::Kernel, Need::Build]) {
        return;
    }
    let env = Env::new();
    let good = env.path().join("everywhere.bpf.o");
    std::fs::write(&good, compile_fixture("kernels/everywhere.bpf.c")).unwrap();
    let out = ok(env.runner_cmd(["run", "--check"]).arg(&good));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"check\":\"pass\"}\n"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 program(s) loaded and attached"),
        "{stderr}"
    );

    let bad = env.path().join("rejected.bpf.o");
    std::fs::write(&bad, compile_fixture("kernels/rejected.bpf.c")).unwrap();
    let out = env
        .runner_cmd(["run", "--check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9), "{}", cli::show(&out));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["check"], "fail");
    assert_eq!(line["kind"], "ebpf::kernel");
    assert_eq!(line["message"], "the kernel rejected program `unchecked`");
    assert!(
        line["log"].as_str().unwrap().contains("invalid mem access"),
        "{line}"
    );
    // --check is a foreground check: with -d it is refused.
    fails(env.runner_cmd(["run", "-d", "--check"]).arg(&good), 2);
}

/// The matrix travels with the package: `push --sign KEY --kernel-matrix FILE` attaches it
/// as a signed attestation of the tested digest; `inspect` shows it; a matrix that lists the
/// running kernel as failing makes `run` warn before loading; a matrix of another build is
/// refused before anything is pushed.
#[test]
fn the_matrix_is_attested_shown_and_warned_about() {
    if !vm_needs() || !needs(&[Need::Kernel, Need::Registry]) {
        return;
    }
    let registry = ebpf_e2e_tests::Registry::start();
    let project = Project::new("attested", "eunomia");
    let (mut matrix, _) = matrix(&project.env, &project.dir);
    let env = &project.env;
    let key = env.path().join("k");
    ok(env.cmd(["key", "generate", "--no-password"]).arg(&key));
    let (key, public) = (key.with_extension("key"), key.with_extension("pub"));
    let json = env.path().join("matrix.json");
    let reference = format!("{}/me/attested:0.1.0", registry.addr());
    let push = |file: &Path, reference: &str| {
        let mut cmd = project.cmd(&["push", reference, "--sign", key.to_str().unwrap()]);
        cmd.arg("--kernel-matrix").arg(file);
        cmd
    };
    let out = ok(&mut push(&json, &reference));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Attested the kernel matrix (3 kernel(s))"),
        "{said}"
    );

    ok(env
        .cmd([
            "trust",
            "add",
            &format!("{}/me/*", registry.addr()),
            "--key",
        ])
        .arg(&public));
    let text = String::from_utf8(ok(&mut env.cmd(["inspect", &reference])).stdout).unwrap();
    assert!(
        text.contains("Kernels:     tested on 3 kernel(s), signed by trusted key SHA256:"),
        "{text}"
    );
    assert!(text.contains("6.12") && text.contains("pass"), "{text}");

    // The running kernel listed as failing: run warns, then loads anyway.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut row = matrix.kernels[0].clone();
    row.kernel = release.trim().to_string();
    row.series = ebpf_package::kernel_matrix::series_of(&row.kernel).unwrap();
    row.result = Outcome::Fail;
    row.reason = Some("invalid func unknown#195896080".into());
    matrix.kernels.push(row);
    std::fs::write(&json, matrix.to_json().unwrap()).unwrap();
    let failing = format!("{}/me/attested:0.1.0-failing", registry.addr());
    ok(&mut push(&json, &failing));
    let out = ok(&mut env.cmd(["run", &failing, "--duration", "1"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("warning: the package's kernel matrix says it fails on")
            && said.contains("invalid func unknown#195896080"),
        "{said}"
    );
    let warned = said.find("kernel matrix says").unwrap();
    assert!(
        said[warned..].contains("Attached"),
        "warned before loading: {said}"
    );

    // A matrix of another build: refused (exit 3) before anything is pushed.
    matrix.digest = Some(format!("sha256:{}", "0".repeat(64)));
    std::fs::write(&json, matrix.to_json().unwrap()).unwrap();
    let other = format!("{}/me/attested:other", registry.addr());
    let err = fails(&mut push(&json, &other), 3);
    assert!(err.contains("not of this build"), "{err}");
    let err = fails(&mut env.cmd(["pull", &other]), 6);
    assert!(err.contains("not found"), "{err}");
}

/// The hub shows the matrix: `publish --sign --kernel-matrix` to a real hub whose owner
/// registered the key; the hub verifies the attestation itself, the version page (in
/// Chromium) says "tested on 3 kernels" with the table, and the search filter "loads on
/// kernel ≥ X" finds it for 5.10 and newer, not for an older series.
#[test]
fn the_hub_shows_the_verified_matrix_and_filters_by_kernel() {
    if !vm_needs()
        || !needs(&[
            Need::File("/usr/bin/chromium", "chromium"),
            Need::File("/usr/bin/chromedriver", "chromium-driver"),
        ])
    {
        return;
    }
    let hub = ebpf_e2e_tests::hub::Hub::start();
    let (auth, token) = hub.user_with_token("kara");
    let env = Env::new();
    ok(&mut env.cmd(["login", hub.addr(), "-u", "kara", "-p", &token]));
    let prefix = env.path().join("kara");
    ok(env.cmd(["key", "generate", "--no-password"]).arg(&prefix));
    let pem = std::fs::read_to_string(prefix.with_extension("pub")).unwrap();
    let body = serde_json::json!({"pem": pem, "label": "ci"}).to_string();
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = hub.request("POST", "/api/v1/users/kara/keys", &headers, body.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());

    let dir = ebpf_e2e_tests::project::eunomia_publishing_to(
        &env,
        "kmsnoop",
        &format!("{}/kara", hub.addr()),
    );
    let (matrix, _) = matrix(&env, &dir);
    let json = env.path().join("matrix.json");
    std::fs::write(&json, matrix.to_json().unwrap()).unwrap();
    ok(env
        .cmd(["publish", "--sign"])
        .arg(prefix.with_extension("key"))
        .arg("--kernel-matrix")
        .arg(&json)
        .arg("--manifest-path")
        .arg(&dir));

    let base = format!("http://{}", hub.addr());
    let b = crate::hub_web::Browser::start();
    b.goto(&format!("{base}/p/kara/kmsnoop"));
    b.wait_text("#badge-kernels", |t| t == "tested on 3 kernels");
    let table = b.text("#kernel-matrix");
    for series in ["5.10", "6.1", "6.12"] {
        assert!(table.contains(series), "{table}");
    }
    let search = |kernel: &str| {
        let r = hub.request(
            "GET",
            &format!("/api/v1/search?q=kmsnoop&kernel={kernel}"),
            &[],
            b"",
        );
        r.json()["total"].as_u64().unwrap()
    };
    assert_eq!(search("5.10"), 1);
    assert_eq!(search("6.12"), 1);
    assert_eq!(search("4.19"), 0);
}

/// A project whose program traces sync(2) and whose `[test] smoke` is `smoke`.
fn smoke_project(name: &str, smoke: &str) -> Project {
    let project = Project::new(name, "eunomia");
    let src = std::fs::read_to_string(
        cli::workspace_root().join("tests/fixtures/kernels/syncwatch.bpf.c"),
    )
    .unwrap();
    std::fs::write(
        project.src("bpf.c"),
        src.replace("EVENT_HEADER", &format!("{name}.h")),
    )
    .unwrap();
    std::fs::write(
        project.src("h"),
        "struct event {\n\tu32 pid;\n\tchar comm[16];\n};\n",
    )
    .unwrap();
    let manifest = project.dir.join("ebpf.toml");
    let mut toml = std::fs::read_to_string(&manifest).unwrap();
    toml.push_str(&format!("\n[test]\nsmoke = \"{smoke}\"\n"));
    std::fs::write(&manifest, toml).unwrap();
    project
}

/// `[test] smoke`: after load and attach, each VM runs the command and an event must
/// arrive. `sync` makes the sync(2) tracer's event on every kernel; `true` makes none, so
/// every kernel fails with that reason although the program loads.
#[test]
fn a_declared_smoke_command_must_make_an_event_arrive() {
    if !vm_needs() {
        return;
    }
    let good = smoke_project("syncgood", "sync");
    let (matrix_good, table) = matrix(&good.env, &good.dir);
    assert!(
        matrix_good
            .kernels
            .iter()
            .all(|k| k.result == Outcome::Pass),
        "{table}"
    );
    let quiet = smoke_project("syncquiet", "true");
    let (matrix_quiet, table) = matrix(&quiet.env, &quiet.dir);
    assert_eq!(matrix_quiet.kernels.len(), 3, "{table}");
    for k in &matrix_quiet.kernels {
        assert_eq!(k.result, Outcome::Fail, "{table}");
        assert!(
            k.reason
                .as_deref()
                .unwrap_or("")
                .contains("no event arrived"),
            "{table}"
        );
    }
}
