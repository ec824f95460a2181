//! The user's side of a package manager, end to end against a real hub and a real
//! docker-registry: `search` by word and by owner (and a clear refusal from a plain
//! registry), short names through the configured default registry, and the upgrade loop —
//! publish 0.1.0, `run -d`, publish 0.2.0 with a new param, `outdated` lists it, `diff`
//! shows the param, `upgrade` restarts the run on 0.2.0 (new programs attached, the old
//! ones gone from the kernel); a 0.3.0 that cannot attach is rolled back to 0.2.0.

use std::path::Path;

use ebpf_e2e_tests::cli::{fails, ok, Env};
use ebpf_e2e_tests::hub::Hub;
use ebpf_e2e_tests::project::eunomia_publishing_to as project;
use ebpf_e2e_tests::{bpftool_has_prog, needs, Need, Registry};

fn text(out: std::process::Output) -> (String, String) {
    let s = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (s(out.stdout), s(out.stderr))
}

/// A publisher `alice` logged in to `hub`, with a project `name` publishing there.
fn publisher(hub: &Hub, name: &str) -> (Env, std::path::PathBuf) {
    let (_, token) = hub.user_with_token("alice");
    let env = Env::new();
    ok(&mut env.cmd(["login", hub.addr(), "-u", "alice", "-p", &token]));
    let dir = project(&env, name, &format!("{}/alice", hub.addr()));
    (env, dir)
}

fn publish(env: &Env, dir: &Path) {
    ok(env.cmd(["publish", "--manifest-path"]).arg(dir));
}

/// Rewrites the project's version, and its source with `edit`.
fn bump(dir: &Path, name: &str, from: &str, to: &str, edit: impl Fn(String) -> String) {
    let manifest = dir.join("ebpf.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap();
    let bumped = toml.replace(
        &format!("version = \"{from}\""),
        &format!("version = \"{to}\""),
    );
    assert_ne!(toml, bumped, "no version {from} in {toml}");
    std::fs::write(&manifest, bumped).unwrap();
    let source = dir.join("src").join(format!("{name}.bpf.c"));
    let c = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, edit(c)).unwrap();
}

#[test]
fn search_finds_by_word_and_owner_and_short_names_resolve_through_the_default() {
    if !needs(&[Need::Build, Need::Registry]) {
        return;
    }
    let hub = Hub::start();
    let (alice, dir) = publisher(&hub, "findsnoop");
    // publish checks before uploading: a README and a description are required.
    std::fs::rename(dir.join("README.md"), dir.join("NOTES.md")).unwrap();
    let manifest = dir.join("ebpf.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap();
    let no_description: String = toml
        .lines()
        .filter(|l| !l.starts_with("description"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&manifest, no_description).unwrap();
    let err = fails(alice.cmd(["publish", "--manifest-path"]).arg(&dir), 3);
    assert!(
        err.contains("not ready to publish")
            && err.contains("README.md")
            && err.contains("a description"),
        "{err}"
    );
    assert!(hub
        .request("GET", "/v2/alice/findsnoop/tags/list", &[], b"")
        .json()["tags"]
        .as_array()
        .is_none_or(|t| t.is_empty()));
    std::fs::rename(dir.join("NOTES.md"), dir.join("README.md")).unwrap();
    std::fs::write(&manifest, toml).unwrap();
    publish(&alice, &dir);
    // The same version again is refused before anything is built or uploaded.
    let err = fails(alice.cmd(["publish", "--manifest-path"]).arg(&dir), 3);
    let at = format!(
        "0.1.0 is already published at {}/alice/findsnoop:0.1.0",
        hub.addr()
    );
    assert!(
        err.contains(&at) && err.contains("bump the version in ebpf.toml"),
        "{err}"
    );
    let user = Env::new();

    let (out, _) = text(ok(&mut user.cmd([
        "search",
        "findsnoop",
        "--registry",
        hub.addr(),
        "--json",
    ])));
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(found["total"], 1, "{found}");
    let p = &found["packages"][0];
    assert_eq!(
        (p["repository"].as_str(), p["latest"].as_str()),
        (Some("alice/findsnoop"), Some("0.1.0"))
    );
    assert_eq!(p["signed"], false);
    let (table, _) = text(ok(&mut user.cmd([
        "search",
        "alice",
        "--registry",
        hub.addr(),
    ])));
    assert!(
        table.contains(&format!("{}/alice/findsnoop", hub.addr())),
        "{table}"
    );
    assert!(
        table.lines().next().unwrap().contains("DOWNLOADS"),
        "{table}"
    );

    // A plain OCI registry has no search: its catalog's matching names are listed, and a
    // host that is no registry at all says it cannot be reached.
    let registry = Registry::start();
    let pushed = format!("{}/team/findsnoop:0.1.0", registry.addr());
    ok(alice.cmd(["push", &pushed, "--manifest-path"]).arg(&dir));
    let (table, said) = text(ok(&mut user.cmd([
        "search",
        "snoop",
        "--registry",
        registry.addr(),
    ])));
    assert!(said.contains("plain OCI registry"), "{said}");
    assert!(
        table.contains(&format!("{}/team/findsnoop", registry.addr())) && table.contains("0.1.0"),
        "{table}"
    );
    let (none, _) = text(ok(&mut user.cmd([
        "search",
        "nothing",
        "--registry",
        registry.addr(),
        "--json",
    ])));
    assert!(none.contains("\"total\": 0"), "{none}");
    let err = fails(
        &mut user.cmd(["search", "x", "--registry", &not_found_server()]),
        6,
    );
    assert!(err.contains("has no package search"), "{err}");
    let nowhere = format!("127.0.0.1:{}", ebpf_e2e_tests::free_port());
    let err = fails(&mut user.cmd(["search", "x", "--registry", &nowhere]), 6);
    assert!(err.contains("cannot reach"), "{err}");

    // No default registry: a short name goes nowhere, with help.
    let err = fails(&mut user.cmd(["pull", "findsnoop"]), 2);
    assert!(err.contains("no default registry is configured"), "{err}");
    assert!(err.contains("config set default-registry"), "{err}");
    let err = fails(&mut user.cmd(["search", "findsnoop"]), 2);
    assert!(err.contains("--registry"), "{err}");

    let default = format!("{}/alice", hub.addr());
    ok(&mut user.cmd(["config", "set", "default-registry", &default]));
    let (got, _) = text(ok(&mut user.cmd(["config", "get", "default-registry"])));
    assert_eq!(got.trim(), default);
    fails(
        &mut user.cmd(["config", "set", "default-registry", "alice"]),
        2,
    );
    let full = format!("{default}/findsnoop:0.1.0");
    for short in ["findsnoop", "findsnoop:0.1.0", "alice/findsnoop"] {
        let (_, said) = text(ok(&mut user.cmd(["pull", short])));
        assert!(
            said.contains(&format!("Resolved {short} to {full}")),
            "{said}"
        );
    }
    // Search with no --registry uses the default's hub.
    let (table, _) = text(ok(&mut user.cmd(["search", "findsnoop"])));
    assert!(table.contains("alice/findsnoop"), "{table}");
    let (listed, _) = text(ok(&mut user.cmd(["list", "--json"])));
    assert!(listed.contains(&full), "{listed}");

    // logout forgets the hub's credentials; a second one has nothing to do.
    let docker_config = alice.path().join("docker/config.json");
    assert!(std::fs::read_to_string(&docker_config)
        .unwrap()
        .contains(hub.addr()));
    ok(&mut alice.cmd(["logout", hub.addr()]));
    assert!(!std::fs::read_to_string(&docker_config)
        .unwrap()
        .contains(hub.addr()));
    let err = fails(&mut alice.cmd(["logout", hub.addr()]), 3);
    assert!(err.contains("no saved credentials"), "{err}");

    if needs(&[Need::Kernel]) {
        let (_, said) = text(ok(&mut user.cmd(["run", "findsnoop", "--duration", "1"])));
        assert!(
            said.contains(&format!("Resolved findsnoop to {full}")),
            "{said}"
        );
        assert!(said.contains("Attached"), "{said}");
    }
}

/// A loopback HTTP server answering 404 to everything (neither a hub nor a registry that
/// lists its catalog), for as long as the test runs; its `HOST:PORT`.
fn not_found_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().take(8).flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    addr
}

/// The run `id` as `ps --json --all` shows it.
fn ps_entry(env: &Env, id: &str) -> serde_json::Value {
    let (out, _) = text(ok(&mut env.cmd(["ps", "--all", "--json"])));
    let runs: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    runs.into_iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("run {id} not in ps: {out}"))
}

fn program_ids(entry: &serde_json::Value) -> Vec<u64> {
    let ids = entry["program_ids"].as_array().expect("program_ids");
    ids.iter().map(|v| v.as_u64().unwrap()).collect()
}

/// The id of the run a `Restarted run OLD as run NEW` (or rolled back … as run NEW) line names.
fn new_run_id(said: &str) -> String {
    let at = said
        .rfind("as run ")
        .unwrap_or_else(|| panic!("no new run in {said}"));
    said[at + 7..at + 15].to_string()
}

#[test]
fn upgrade_restarts_runs_on_the_new_version_and_rolls_back_a_bad_one() {
    if !needs(&[Need::Build, Need::Kernel]) {
        return;
    }
    let hub = Hub::start();
    let name = "upgsnoop";
    let (alice, dir) = publisher(&hub, name);
    publish(&alice, &dir);
    let user = Env::new();
    ok(&mut user.cmd([
        "config",
        "set",
        "default-registry",
        &format!("{}/alice", hub.addr()),
    ]));
    let (id, _) = text(ok(&mut user.cmd(["run", "-d", name, "--output", "json"])));
    let id = id.trim().to_string();
    let old_ids = program_ids(&ps_entry(&user, &id));
    assert!(!old_ids.is_empty());
    let mut runs = vec![id.clone()];
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        upgrade_steps(&hub, &alice, &dir, &user, &id, &old_ids, &mut runs)
    }));
    for run in &runs {
        let _ = user.cmd(["stop", run]).output();
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn upgrade_steps(
    hub: &Hub,
    alice: &Env,
    dir: &Path,
    user: &Env,
    id: &str,
    old_ids: &[u64],
    runs: &mut Vec<String>,
) {
    let name = "upgsnoop";
    let reference = format!("{}/alice/{name}", hub.addr());
    // 0.2.0 adds a param.
    bump(dir, name, "0.1.0", "0.2.0", |c| {
        c.replace(
            "const volatile pid_t target_pid = 0;",
            "const volatile pid_t target_pid = 0;\n/// @description Skip users below this uid\nconst volatile u32 min_uid = 0;",
        )
        .replace(
            "\tif (target_pid && pid != target_pid)",
            "\tif (min_uid && (u32)bpf_get_current_uid_gid() < min_uid)\n\t\treturn 0;\n\tif (target_pid && pid != target_pid)",
        )
    });
    publish(alice, dir);

    let (out, _) = text(ok(&mut user.cmd(["outdated", "--json"])));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["reference"], format!("{reference}:0.1.0").as_str());
    assert_eq!(
        (rows[0]["latest"].as_str(), rows[0]["compatible"].as_str()),
        (Some("0.2.0"), Some("0.2.0"))
    );
    assert_eq!(rows[0]["runs"], serde_json::json!([id]));

    let (diff, _) = text(ok(
        &mut user.cmd(["diff", name, "--from", "0.1.0", "--to", "0.2.0"])
    ));
    assert!(
        diff.contains("+ param --min-uid (int(4, unsigned), default 0)"),
        "{diff}"
    );
    assert!(!diff.contains("[breaking]"), "{diff}");
    let (diff2, _) = text(ok(&mut user.cmd([
        "diff",
        &format!("{reference}:0.1.0"),
        &format!("{reference}:0.2.0"),
    ])));
    assert!(diff2.contains("+ param --min-uid"), "{diff2}");

    let (printed, said) = text(ok(&mut user.cmd(["upgrade", name])));
    assert_eq!(printed.trim(), format!("{reference}:0.2.0"));
    assert!(
        said.contains("+ param --min-uid"),
        "the diff is shown: {said}"
    );
    assert!(
        said.contains(&format!("Restarted run {id} as run ")),
        "{said}"
    );
    let new_id = new_run_id(&said);
    runs.push(new_id.clone());
    let upgraded = ps_entry(user, &new_id);
    assert_eq!(upgraded["version"], "0.2.0");
    assert_eq!(upgraded["status"], "running");
    assert_eq!(upgraded["options"]["output"], "json", "the same options");
    let new_ids = program_ids(&upgraded);
    assert!(
        new_ids.iter().all(|p| bpftool_has_prog(*p)),
        "new programs attached"
    );
    assert!(
        old_ids.iter().all(|p| !bpftool_has_prog(*p)),
        "old programs gone"
    );
    assert!(ps_entry(user, id)["stopped"].is_u64());
    let (out, _) = text(ok(&mut user.cmd(["outdated", "--json"])));
    assert!(!out.contains(":0.2.0"), "0.2.0 is the newest: {out}");

    // 0.3.0 attaches to a tracepoint no kernel has: the upgrade rolls back to 0.2.0.
    bump(dir, name, "0.2.0", "0.3.0", |c| {
        c.replace("sys_enter_openat\")", "sys_enter_no_such_call\")")
    });
    publish(alice, dir);
    let (_, said) = text(ok(&mut user.cmd(["upgrade", name])));
    assert!(
        said.contains("failed to start") && said.contains("rolled back"),
        "{said}"
    );
    let back_id = new_run_id(&said);
    runs.push(back_id.clone());
    let back = ps_entry(user, &back_id);
    assert_eq!(back["version"], "0.2.0");
    assert_eq!(back["status"], "running");
    let back_ids = program_ids(&back);
    assert!(!back_ids.is_empty() && back_ids.iter().all(|p| bpftool_has_prog(*p)));
    assert!(new_ids.iter().all(|p| !bpftool_has_prog(*p)));

    // 0.4.0 attaches again but drops the min-uid param: breaking, so --yes is needed.
    bump(dir, name, "0.3.0", "0.4.0", |c| {
        c.replace("sys_enter_no_such_call\")", "sys_enter_openat\")")
            .replace(
                "\tif (min_uid && (u32)bpf_get_current_uid_gid() < min_uid)\n\t\treturn 0;\n",
                "",
            )
            .replace(
                "/// @description Skip users below this uid\nconst volatile u32 min_uid = 0;",
                "",
            )
    });
    publish(alice, dir);
    let err = fails(&mut user.cmd(["upgrade", name]), 2);
    assert!(
        err.contains("- param --min-uid") && err.contains("[breaking]"),
        "{err}"
    );
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(
        ps_entry(user, &back_id)["status"],
        "running",
        "nothing changed"
    );
    let (_, said) = text(ok(&mut user.cmd(["upgrade", name, "--yes"])));
    let last_id = new_run_id(&said);
    runs.push(last_id.clone());
    assert_eq!(ps_entry(user, &last_id)["version"], "0.4.0", "{said}");
    assert!(back_ids.iter().all(|p| !bpftool_has_prog(*p)));
}

/// `key generate PREFIX --no-password` in `env`: the private and public key paths.
fn keygen(env: &Env, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let prefix = env.path().join(name);
    ok(env
        .cmd(["key", "generate"])
        .arg(&prefix)
        .arg("--no-password"));
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// A new eunomia project `name` in `env`, pushed (signed by `key`, for `arches`) to `reference`;
/// returns the pushed digest.
fn push_signed(env: &Env, name: &str, reference: &str, arches: &str, key: &Path) -> String {
    let dir = env.path().join("work").join(name);
    ok(env
        .cmd(["new", name, "--lang", "eunomia", "--path"])
        .arg(&dir));
    let out = ok(env
        .cmd(["push", reference, "--arch", arches, "--sign"])
        .arg(key)
        .arg("--manifest-path")
        .arg(&dir));
    let out = String::from_utf8(out.stdout).unwrap();
    out.trim().rsplit_once('@').unwrap().1.to_string()
}

#[test]
fn mirror_copies_a_signed_multi_arch_package_that_still_verifies() {
    if !needs(&[Need::Build, Need::Registry, Need::Skopeo]) {
        return;
    }
    let (source, dest) = (Registry::start(), Registry::start());
    let env = Env::new();
    let (key, public) = keygen(&env, "alice");
    let reference = format!("{}/alice/mirsnoop:0.1.0", source.addr());
    let digest = push_signed(&env, "mirsnoop", &reference, "x86_64,arm64", &key);

    let (out, said) = text(ok(&mut env.cmd(["mirror", &reference, dest.addr()])));
    let copy = format!("{}/alice/mirsnoop:0.1.0", dest.addr());
    assert_eq!(out.trim(), copy);
    // The index, two platforms, and three signature and three provenance tags (the
    // index's and each platform's).
    assert!(
        said.contains("1 reference(s), 9 manifest(s), 6 signature/attestation tag(s)"),
        "{said}"
    );
    let raw = ebpf_e2e_tests::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{copy}"),
    ]);
    assert!(raw.status.success());
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    assert_eq!(
        ebpf_e2e_tests::sha256(&raw.stdout),
        digest,
        "copied byte for byte"
    );

    // verify passes on the copy, for the index and what a pull of this host picks.
    let (verified, _) = text(ok(env.cmd(["verify", &copy, "--key"]).arg(&public)));
    assert!(verified.starts_with(&digest), "{verified}");
    assert!(verified.contains("provenance signed by"), "{verified}");
    let user = Env::new();
    ok(user
        .cmd(["trust", "add", &format!("{}/alice/*", dest.addr()), "--key"])
        .arg(&public));
    let (_, pulled) = text(ok(&mut user.cmd(["pull", &copy])));
    assert!(pulled.contains("Verified"), "{pulled}");

    // A repository's versions: every version tag, nothing else.
    let env2 = Env::new();
    let (key2, _) = keygen(&env2, "bob");
    push_signed(
        &env2,
        "twosnoop",
        &format!("{}/bob/twosnoop:1.0.0", source.addr()),
        "x86_64",
        &key2,
    );
    let out = ok(env2
        .cmd([
            "push",
            &format!("{}/bob/twosnoop:1.1.0", source.addr()),
            "--manifest-path",
        ])
        .arg(env2.path().join("work/twosnoop")));
    assert!(out.status.success());
    let (out, _) = text(ok(&mut env2.cmd([
        "mirror",
        &format!("{}/bob/twosnoop", source.addr()),
        dest.addr(),
    ])));
    let mut copied: Vec<&str> = out.lines().collect();
    copied.sort();
    assert_eq!(
        copied,
        [
            format!("{}/bob/twosnoop:1.0.0", dest.addr()),
            format!("{}/bob/twosnoop:1.1.0", dest.addr())
        ]
    );

    // A list: references one a line, comments skipped.
    let list = env2.path().join("refs.txt");
    let one = format!("{}/bob/twosnoop:1.0.0", source.addr());
    std::fs::write(&list, format!("# to carry across\n{one}\n\n")).unwrap();
    let third = Registry::start();
    let (out, _) = text(ok(&mut env2.cmd([
        "mirror",
        &format!("@{}", list.display()),
        third.addr(),
    ])));
    assert_eq!(out.trim(), format!("{}/bob/twosnoop:1.0.0", third.addr()));
}

#[test]
fn a_pull_falls_back_to_a_mirror_that_cannot_substitute_anything() {
    if !needs(&[Need::Build, Need::Registry]) {
        return;
    }
    let primary = Registry::start();
    let mirror = Registry::start();
    let publisher = Env::new();
    let (key, public) = keygen(&publisher, "alice");
    let reference = format!("{}/alice/fallsnoop:0.1.0", primary.addr());
    let digest = push_signed(&publisher, "fallsnoop", &reference, "x86_64", &key);
    ok(&mut publisher.cmd(["mirror", &reference, mirror.addr()]));

    let user = Env::new();
    ok(user
        .cmd([
            "trust",
            "add",
            &format!("{}/alice/*", primary.addr()),
            "--key",
        ])
        .arg(&public));
    ok(&mut user.cmd([
        "config",
        "set",
        &format!("mirrors.{}", primary.addr()),
        mirror.addr(),
    ]));
    let (listed, _) = text(ok(&mut user.cmd(["config", "list"])));
    assert!(
        listed.contains(&format!(
            "mirrors.{} = \"{}\"",
            primary.addr(),
            mirror.addr()
        )),
        "{listed}"
    );
    let primary_addr = primary.addr().to_string();
    drop(primary);

    // The primary is down: the pull comes from the mirror, verified with the primary's scope.
    let (out, said) = text(ok(&mut user.cmd(["pull", &reference])));
    assert!(said.contains("trying its mirrors"), "{said}");
    assert!(
        said.contains(&format!(
            "Pulled {reference} from the mirror {}",
            mirror.addr()
        )),
        "{said}"
    );
    assert!(said.contains("Verified"), "{said}");
    assert_eq!(out.trim(), digest);
    let (listed, _) = text(ok(&mut user.cmd(["list", "--json"])));
    assert!(
        listed.contains(&reference),
        "stored under the primary's name: {listed}"
    );

    // Without a pin (no trusted key, no digest) the mirror is not believed …
    let stranger = Env::new();
    let mirror_flag = ["--mirror", mirror.addr()];
    let err = fails(stranger.cmd(["pull", &reference]).args(mirror_flag), 8);
    assert!(err.contains("cannot check what the mirror"), "{err}");
    // … but a digest pins it.
    let pinned = format!("{primary_addr}/alice/fallsnoop@{digest}");
    ok(stranger.cmd(["pull", &pinned]).args(mirror_flag));

    // A mirror serving other bytes under the tag is refused: the signature does not cover them.
    let mallory = Env::new();
    let (other_key, _) = keygen(&mallory, "mallory");
    push_signed(
        &mallory,
        "fallsnoop",
        &format!("{}/alice/fallsnoop:0.1.0", mirror.addr()),
        "x86_64",
        &other_key,
    );
    let victim = Env::new();
    ok(victim
        .cmd(["trust", "add", &format!("{primary_addr}/alice/*"), "--key"])
        .arg(&public));
    let err = fails(victim.cmd(["pull", &reference]).args(mirror_flag), 8);
    assert!(err.contains("failed signature verification"), "{err}");
    let (listed, _) = text(ok(&mut victim.cmd(["list", "--json"])));
    assert_eq!(listed.trim(), "[]", "nothing stored");
    // By digest, the mirror can only serve what the digest names: the original.
    let (out, _) = text(ok(victim.cmd(["pull", &pinned]).args(mirror_flag)));
    assert_eq!(out.trim(), digest);
}

#[test]
fn completions_man_pages_and_doctor() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "elvish"] {
        let (script, _) = text(ok(&mut env.cmd(["completions", shell])));
        for word in ["upgrade", "outdated", "search", "doctor", "mirror"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
        if shell == "bash" {
            let path = env.path().join("cargo-ebpf.bash");
            std::fs::write(&path, &script).unwrap();
            let check = std::process::Command::new("bash")
                .arg("-n")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "{}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
    fails(&mut env.cmd(["completions", "tcsh"]), 2);

    let man = env.path().join("man");
    ok(env.cmd(["install-man", "--dir"]).arg(&man));
    for page in [
        "cargo-ebpf.1",
        "cargo-ebpf-run.1",
        "cargo-ebpf-upgrade.1",
        "cargo-ebpf-config-set.1",
    ] {
        let text =
            std::fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text}"
        );
    }
    let run_page = std::fs::read_to_string(man.join("cargo-ebpf-run.1")).unwrap();
    assert!(
        run_page.contains("duration"),
        "the run page lists its flags"
    );

    let (json, _) = text(ok(&mut env.cmd(["doctor", "--json"])));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let find = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {json}"))
    };
    for name in [
        "BTF",
        "bpffs",
        "tracefs",
        "kprobes",
        "trampolines",
        "lockdown",
        "cgroup v2",
        "clang",
        "privileges",
    ] {
        find(name);
    }
    assert_eq!(find("clang")["debian"], "clang");
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    assert_eq!(find("BTF")["status"] == "ok", btf, "{json}");
    let (table, _) = text(ok(&mut env.cmd(["doctor"])));
    assert!(table.lines().next().unwrap().contains("STATUS"), "{table}");
}

#[test]
fn search_by_word_and_owner_on_a_postgres_hub() {
    if !needs(&[Need::Build, Need::Postgres]) {
        return;
    }
    let pg = ebpf_e2e_tests::hub::Postgres::start();
    let data = tempfile::tempdir().unwrap();
    let hub = Hub::start_on(&data.path().join("data"), Some(&pg.url("hub")));
    let (alice, dir) = publisher(&hub, "pgsnoop");
    publish(&alice, &dir);
    let user = Env::new();
    for words in ["pgsnoop", "alice"] {
        let (out, _) = text(ok(&mut user.cmd([
            "search",
            words,
            "--registry",
            hub.addr(),
            "--json",
        ])));
        let found: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            found["packages"][0]["repository"], "alice/pgsnoop",
            "{words}: {found}"
        );
        assert_eq!(found["packages"][0]["latest"], "0.1.0");
    }
}
