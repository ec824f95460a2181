//! The hub keeps its word, end to end with the real CLI against a real hub: a signed
//! publish earns a badge the hub verified itself against the key alice registered, `trust
//! add HUB/alice --from-hub` takes that key, a published version cannot be deleted, and
//! `cargo ebpf yank` hides a version that stays pullable (with a warning) until `--undo`.

use ebpf_e2e_tests::cli::{fails, ok, Env};
use ebpf_e2e_tests::hub::{Hub, Postgres};
use ebpf_e2e_tests::project::eunomia_publishing_to as project;
use ebpf_e2e_tests::{needs, Need};

#[test]
fn sqlite() {
    if !needs(&[Need::Build]) {
        return;
    }
    sign_yank_and_trust(&Hub::start());
}

#[test]
fn postgres() {
    if !needs(&[Need::Build, Need::Postgres]) {
        return;
    }
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    let hub = Hub::start_on(&data.path().join("data"), Some(&pg.url("hub")));
    sign_yank_and_trust(&hub);
}

fn text(out: std::process::Output) -> (String, String) {
    let s = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (s(out.stdout), s(out.stderr))
}

fn sign_yank_and_trust(hub: &Hub) {
    let (auth, token) = hub.user_with_token("alice");
    let env = Env::new();
    ok(&mut env.cmd(["login", hub.addr(), "-u", "alice", "-p", &token]));
    let prefix = env.path().join("alice");
    ok(env
        .cmd(["key", "generate"])
        .arg(&prefix)
        .arg("--no-password"));
    let (public, private) = (prefix.with_extension("pub"), prefix.with_extension("key"));
    let pem = std::fs::read_to_string(&public).unwrap();
    let body = serde_json::json!({"pem": pem, "label": "release"}).to_string();
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = hub.request(
        "POST",
        "/api/v1/users/alice/keys",
        &headers,
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let fingerprint = r.json()["fingerprint"].as_str().unwrap().to_string();

    // A signed publish: the hub checks the .sig against alice's key and shows the badge.
    let dir = project(&env, "trustsnoop", &format!("{}/alice", hub.addr()));
    let (out, _) = text(ok(env
        .cmd(["publish", "--sign"])
        .arg(&private)
        .arg("--manifest-path")
        .arg(&dir)));
    let digest = out.trim().rsplit('@').next().unwrap().to_string();
    let pkg = hub
        .request("GET", "/api/v1/packages/alice/trustsnoop", &[], b"")
        .json();
    let v = &pkg["versions"][0];
    assert_eq!(v["digest"], digest.as_str(), "{pkg}");
    assert_eq!(
        v["signatures"][0]["fingerprint"],
        fingerprint.as_str(),
        "{pkg}"
    );
    let badge = format!("signed by key {fingerprint} (alice's key \"release\")");
    assert_eq!(v["signatures"][0]["text"], badge.as_str());
    assert!(hub
        .request("GET", "/p/alice/trustsnoop", &[], b"")
        .text()
        .contains(&format!("signed by key {fingerprint}")));

    // A user takes alice's keys from the hub; pulls of alice's packages are then verified.
    let user = Env::new();
    let scope = format!("{}/alice", hub.addr());
    let (printed, _) = text(ok(&mut user.cmd(["trust", "add", &scope, "--from-hub"])));
    assert_eq!(printed.trim(), fingerprint);
    let (listed, _) = text(ok(&mut user.cmd(["trust", "list"])));
    assert!(
        listed.contains(&scope) && listed.contains(&fingerprint),
        "{listed}"
    );
    let reference = format!("{}/alice/trustsnoop:0.1.0", hub.addr());
    let (_, stderr) = text(ok(&mut user.cmd(["pull", &reference])));
    assert!(!stderr.contains("yanked"), "{stderr}");

    // The published version cannot be deleted, even by its owner.
    let del = [("Authorization", auth.as_str())];
    let r = hub.request("DELETE", "/v2/alice/trustsnoop/manifests/0.1.0", &del, b"");
    assert_eq!(r.status, 405, "{}", r.text());
    assert!(r.text().contains("yank"), "{}", r.text());

    // Someone else cannot yank it; alice can; it stays pullable, with a warning.
    let (_, bob_token) = hub.user_with_token("bob");
    let bob = Env::new();
    ok(&mut bob.cmd(["login", hub.addr(), "-u", "bob", "-p", &bob_token]));
    let err = fails(&mut bob.cmd(["yank", &reference]), 7);
    assert!(err.contains("only alice"), "{err}");
    let (_, said) = text(ok(&mut env.cmd(["yank", &reference])));
    assert!(
        said.contains("Yanked") && said.contains("no version is offered"),
        "{said}"
    );
    let pkg = hub
        .request("GET", "/api/v1/packages/alice/trustsnoop", &[], b"")
        .json();
    assert_eq!(
        (
            pkg["latest_version"].clone(),
            pkg["versions"][0]["yanked"].clone()
        ),
        ("".into(), true.into())
    );
    let search = hub.request("GET", "/search?q=trustsnoop", &[], b"").text();
    assert!(!search.contains("/p/alice/trustsnoop"), "{search}");
    let fresh = Env::new();
    let (_, stderr) = text(ok(&mut fresh.cmd(["pull", &reference])));
    assert!(
        stderr.contains("warning") && stderr.contains("is yanked"),
        "{stderr}"
    );
    let err = fails(
        &mut env.cmd(["yank", &format!("{}/alice/trustsnoop:9.9.9", hub.addr())]),
        3,
    );
    assert!(err.contains("no published version"), "{err}");

    let (_, said) = text(ok(&mut env.cmd(["yank", "--undo", &reference])));
    assert!(
        said.contains("Unyanked") && said.contains("latest is now 0.1.0"),
        "{said}"
    );
    let pkg = hub
        .request("GET", "/api/v1/packages/alice/trustsnoop", &[], b"")
        .json();
    assert_eq!(pkg["latest_version"], "0.1.0");
}
