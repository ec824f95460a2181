//! The hub's registry face, end to end: a real `cargo-ebpf hub serve` on 127.0.0.1 with a
//! fresh data dir, driven by our own client (publish → run sees a real event), by skopeo,
//! and by raw HTTP for the edges (truncated uploads, wrong digests, paging, referrers).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ebpf_e2e_tests::cli::{self, fails, ok, Background, Env};
use ebpf_e2e_tests::hub::{Hub, Postgres};
use ebpf_e2e_tests::project::eunomia_publishing_to as project;
use ebpf_e2e_tests::{needs, Need};
use ebpf_e2e_tests::{sha256, skopeo};

/// Every scenario runs twice: on the embedded SQLite default, and on a real PostgreSQL the
/// test starts (same code path, the Postgres migrations and full-text search).
macro_rules! on_both_backends {
    ($($name:ident: [$($need:expr),*]),* $(,)?) => {
        mod sqlite {
            use super::*;
            $( #[test] fn $name() {
                if !needs(&[$($need),*]) {
                    return;
                }
                super::$name(&Hub::start())
            } )*
        }
        mod postgres {
            use super::*;
            $( #[test] fn $name() {
                if !needs(&[Need::Postgres, $($need),*]) {
                    return;
                }
                let pg = Postgres::start();
                let data = tempfile::tempdir().unwrap();
                let hub = Hub::start_on(&data.path().join("data"), Some(&pg.url("hub")));
                assert!(hub.log().contains("Postgres database"), "{}", hub.log());
                super::$name(&hub)
            } )*
        }
    };
}

// Each scenario with what it needs beyond the hub (the Postgres run adds Need::Postgres).
on_both_backends!(
    publish_to_the_hub_then_run_from_it_sees_a_real_event: [Need::Kernel, Need::Build],
    namespaces_belong_to_their_user: [Need::Build, Need::Skopeo],
    a_package_whose_program_is_not_bpf_is_refused: [],
    skopeo_copies_a_package_into_the_hub_and_back_out_unchanged: [Need::Build, Need::Skopeo],
    a_truncated_upload_leaves_nothing_visible: [],
    a_wrong_digest_is_refused_and_nothing_is_stored: [],
    chunked_upload_range_reads_and_cross_repo_mount: [],
    manifests_tags_catalog_referrers_and_errors: [],
    search_ranks_names_first_and_finds_keywords: [],
    the_store_pages_and_api_work_on_the_backend: [],
);

fn layout_manifest_digest(dir: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// No file under the hub's blob store or upload area (temp files included).
fn stored_files(hub: &Hub) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["blobs", "uploads"] {
        let mut stack = vec![hub.data_dir().join(sub)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path());
                }
            }
        }
    }
    out
}

fn publish_to_the_hub_then_run_from_it_sees_a_real_event(hub: &Hub) {
    let (_, token) = hub.user_with_token("alice");
    let env = Env::new();
    let dir = project(&env, "hubsnoop", &format!("{}/alice", hub.addr()));
    // `package` carries README.md in the layer; HTML in it must not reach the page as HTML.
    let readme = dir.join("README.md");
    let mut text = std::fs::read_to_string(&readme).unwrap();
    text.push_str("\n<script>alert('readme')</script>\n\n## Usage notes\n");
    std::fs::write(&readme, text).unwrap();
    ok(&mut env.cmd(["login", hub.addr(), "-u", "alice", "-p", &token]));
    let out = ok(env.cmd(["publish", "--manifest-path"]).arg(&dir));
    let printed = String::from_utf8(out.stdout).unwrap();
    let reference = format!("{}/alice/hubsnoop:0.1.0", hub.addr());
    assert!(
        printed.starts_with(&format!("{reference}@sha256:")),
        "{printed}"
    );
    let digest = printed.trim().rsplit('@').next().unwrap().to_string();

    // Indexed on push from the package config: description, license, programs.
    let pkg = hub
        .request("GET", "/api/v1/packages/alice/hubsnoop", &[], b"")
        .json();
    assert_eq!(pkg["owner"], "alice");
    assert_eq!(pkg["license"], "GPL-2.0");
    assert!(
        pkg["description"].as_str().unwrap().contains("openat"),
        "{pkg}"
    );
    assert_eq!(pkg["versions"][0]["version"], "0.1.0");
    assert_eq!(pkg["versions"][0]["digest"], digest.as_str());
    let section = &pkg["versions"][0]["programs"][0]["section"];
    assert!(
        section.as_str().unwrap().starts_with("tracepoint/"),
        "{pkg}"
    );

    // The package page shows the README rendered from Markdown, its HTML escaped.
    let page = hub.request("GET", "/p/alice/hubsnoop", &[], b"").text();
    assert!(page.contains("<h1>hubsnoop</h1>"), "{page}");
    assert!(page.contains("<h2>Usage notes</h2>"), "{page}");
    assert!(page.contains("&lt;script&gt;alert("), "{page}");
    assert!(!page.contains("<script>alert("), "{page}");

    // Someone else, never logged in, runs it: anonymous pull, load, attach, a real event.
    let stranger = Env::new();
    let marker = stranger
        .path()
        .join(format!("hub-run-{}", std::process::id()));
    let cmd = stranger.cmd(["run", &reference, "--output", "json", "--duration", "6"]);
    let mut bg = Background::spawn(cmd);
    bg.wait_for_stderr("Attached", Duration::from_secs(60));
    let until = Instant::now() + Duration::from_secs(2);
    assert!(cli::trigger_openat_while(&marker, || Instant::now() < until) > 0);
    let (status, stdout, stderr) = bg.finish(Duration::from_secs(40));
    assert!(status.success(), "run failed: {status}\n{stderr}");
    let file = marker.display().to_string();
    let events = cli::ndjson(&stdout);
    let mine: Vec<_> = events.iter().filter(|e| e["filename"] == file).collect();
    assert!(
        !mine.is_empty(),
        "no event for {file} among {} events",
        events.len()
    );
    assert_eq!(mine[0]["pid"], std::process::id());
    // The pull was counted (off the request path, so allow it a moment).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pkg = hub
            .request("GET", "/api/v1/packages/alice/hubsnoop", &[], b"")
            .json();
        if pkg["downloads"].as_i64().unwrap() >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "download not counted: {pkg}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // 0.1.0 is published: changing the package and publishing the same version is refused.
    let manifest = dir.join("ebpf.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("Trace file opens", "Trace opens")).unwrap();
    let err = fails(env.cmd(["publish", "--manifest-path"]).arg(&dir), 3);
    assert!(
        err.contains("0.1.0 is already published at") && err.contains("bump the version"),
        "{err}"
    );
    let tags = hub.request("GET", "/v2/alice/hubsnoop/manifests/0.1.0", &[], b"");
    assert_eq!(tags.header("docker-content-digest"), Some(digest.as_str()));
}

fn namespaces_belong_to_their_user(hub: &Hub) {
    let (_, alice) = hub.user_with_token("alice");
    let (bob_auth, bob) = hub.user_with_token("bob");
    let env = Env::new();
    let dir = project(&env, "mine", &format!("{}/alice", hub.addr()));
    ok(&mut env.cmd(["login", hub.addr(), "-u", "alice", "-p", &alice]));
    ok(env.cmd(["publish", "--manifest-path"]).arg(&dir));

    // Bob's token cannot push into alice/…, with our client, skopeo, or raw HTTP.
    let other = Env::new();
    ok(&mut other.cmd(["login", hub.addr(), "-u", "bob", "-p", &bob]));
    let reference = format!("{}/alice/mine:0.2.0", hub.addr());
    let err = fails(
        other.cmd(["push", &reference, "--manifest-path"]).arg(&dir),
        7,
    );
    // The hub's own words come through (exit code 7, an authorization failure); the
    // report may wrap them, so compare words.
    let words: Vec<&str> = err.split_whitespace().filter(|w| *w != "│").collect();
    assert!(
        words
            .join(" ")
            .contains("denied it: alice/mine is not in your namespace; push to bob/mine"),
        "{err}"
    );
    let tags = hub
        .request("GET", "/v2/alice/mine/tags/list", &[], b"")
        .json();
    assert_eq!(tags["tags"], serde_json::json!(["0.1.0"]));
    let r = hub.request(
        "POST",
        "/v2/alice/mine/blobs/uploads/",
        &[("Authorization", &bob_auth)],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["errors"][0]["code"], "DENIED");
    ok(env.cmd(["package", "--manifest-path"]).arg(&dir));
    let layout = dir.join("target/ebpf/oci");
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("bob:{bob}"),
        ])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{reference}"))
        .output()
        .expect("run skopeo");
    assert!(
        !out.status.success(),
        "skopeo pushed into another namespace"
    );
    // … but into his own, yes.
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("bob:{bob}"),
        &format!("oci:{}", layout.display()),
        &format!("docker://{}/bob/mine:0.1.0", hub.addr()),
    ]);

    // Anonymous: pull yes, push no (401 with a Basic challenge).
    let r = hub.request("GET", "/v2/alice/mine/tags/list", &[], b"");
    assert_eq!(r.status, 200);
    let r = hub.request("POST", "/v2/alice/mine/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    // A wrong token is refused, and `login` says so.
    fails(
        &mut other.cmd(["login", hub.addr(), "-u", "bob", "-p", "cehub_wrong"]),
        7,
    );
    // A pull-only token cannot push.
    let pull_only = hub.token("bob", "bob-password", &["pull"], &[]);
    let auth = ebpf_e2e_tests::hub::basic("bob", &pull_only);
    let r = hub.request(
        "POST",
        "/v2/bob/mine/blobs/uploads/",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
}

fn a_package_whose_program_is_not_bpf_is_refused(hub: &Hub) {
    let (auth, _) = hub.user_with_token("mallory");
    // A package built by the real packager, but its "object" is not a BPF ELF.
    let pkg = ebpf_e2e_tests::sample_package("fake", "0.1.0");
    let name = "mallory/fake";
    for blob in std::iter::once(&pkg.config_blob).chain(&pkg.layers) {
        push_blob(hub, &auth, name, &blob.data.bytes().unwrap());
    }
    let r = hub.request(
        "PUT",
        &format!("/v2/{name}/manifests/0.1.0"),
        &[("Authorization", &auth)],
        &pkg.manifest_bytes,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["code"], "MANIFEST_INVALID");
    assert!(r.text().contains("EM_BPF"), "{}", r.text());
    let tags = hub
        .request("GET", &format!("/v2/{name}/tags/list"), &[], b"")
        .json();
    assert_eq!(tags["tags"], serde_json::json!([]));
    let index = hub.request("GET", &format!("/api/v1/packages/{name}"), &[], b"");
    assert_eq!(index.status, 404);
}

fn skopeo_copies_a_package_into_the_hub_and_back_out_unchanged(hub: &Hub) {
    let (_, token) = hub.user_with_token("bob");
    let env = Env::new();
    let dir = project(&env, "copied", "localhost:1/unused");
    ok(env.cmd(["package", "--manifest-path"]).arg(&dir));
    let layout = dir.join("target/ebpf/oci");
    let pushed = layout_manifest_digest(&layout);

    let dest = format!("docker://{}/bob/copied:0.1.0", hub.addr());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("bob:{token}"),
        &format!("oci:{}", layout.display()),
        &dest,
    ]);
    let back = env.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &dest,
        &format!("oci:{}:x", back.display()),
    ]);
    assert_eq!(layout_manifest_digest(&back), pushed);

    // Every blob came back byte for byte under its digest.
    let manifest = hub.request(
        "GET",
        &format!("/v2/bob/copied/manifests/{pushed}"),
        &[],
        b"",
    );
    assert_eq!(manifest.status, 200);
    assert_eq!(sha256(&manifest.body), pushed);
    assert_eq!(
        manifest.header("docker-content-digest"),
        Some(pushed.as_str())
    );
    assert_eq!(
        manifest.header("content-type"),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    let m = manifest.json();
    for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
        let digest = d["digest"].as_str().unwrap();
        let hex = digest.strip_prefix("sha256:").unwrap();
        let bytes = std::fs::read(back.join("blobs/sha256").join(hex)).unwrap();
        assert_eq!(sha256(&bytes), digest);
    }
}

/// Starts an upload session; returns its Location path.
fn start_upload(hub: &Hub, auth: &str, name: &str) -> String {
    let r = hub.request(
        "POST",
        &format!("/v2/{name}/blobs/uploads/"),
        &[("Authorization", auth)],
        b"",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    r.header("location").expect("Location").to_string()
}

fn push_blob(hub: &Hub, auth: &str, name: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let r = hub.request(
        "POST",
        &format!("/v2/{name}/blobs/uploads/?digest={digest}"),
        &[("Authorization", auth)],
        bytes,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    digest
}

fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

fn a_truncated_upload_leaves_nothing_visible(hub: &Hub) {
    let (auth, _) = hub.user_with_token("carol");
    let content = vec![7u8; 64 * 1024];
    let digest = sha256(&content);

    // The final PUT announces 64 KiB but the connection ends after 1 KiB.
    let location = start_upload(hub, &auth, "carol/cut");
    let length = content.len().to_string();
    let r = hub.request(
        "PUT",
        &with_digest(&location, &digest),
        &[("Content-Length", &length), ("Authorization", &auth)],
        &content[..1024],
    );
    assert!(r.status != 201, "a short body was accepted: {r:?}");

    // A chunk that breaks off likewise.
    let location = start_upload(hub, &auth, "carol/cut");
    let r = hub.request(
        "PATCH",
        &location,
        &[("Content-Length", &length), ("Authorization", &auth)],
        &content[..512],
    );
    assert!(r.status != 202, "a short chunk was accepted: {r:?}");

    let head = hub.request("HEAD", &format!("/v2/carol/cut/blobs/{digest}"), &[], b"");
    assert_eq!(head.status, 404);
    // The server notices the broken body asynchronously; give it a moment to clean up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !stored_files(hub).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(stored_files(hub), Vec::<PathBuf>::new());
}

fn a_wrong_digest_is_refused_and_nothing_is_stored(hub: &Hub) {
    let (auth, _) = hub.user_with_token("dave");
    let claimed = sha256(b"what the client claims");
    let r = hub.request(
        "POST",
        &format!("/v2/dave/bad/blobs/uploads/?digest={claimed}"),
        &[("Authorization", &auth)],
        b"what the client sends",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["errors"][0]["code"],
        "DIGEST_INVALID",
        "{}",
        r.text()
    );
    let head = hub.request("HEAD", &format!("/v2/dave/bad/blobs/{claimed}"), &[], b"");
    assert_eq!(head.status, 404);
    assert_eq!(stored_files(hub), Vec::<PathBuf>::new());

    // A manifest PUT by digest must hash to that digest.
    let config = push_blob(hub, &auth, "dave/bad", b"{}");
    let manifest = image_manifest(&config, &[], None);
    let r = hub.request(
        "PUT",
        &format!("/v2/dave/bad/manifests/{claimed}"),
        &[
            ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
            ("Authorization", &auth),
        ],
        manifest.as_bytes(),
    );
    assert_eq!(
        r.json()["errors"][0]["code"],
        "DIGEST_INVALID",
        "{}",
        r.text()
    );
}

fn chunked_upload_range_reads_and_cross_repo_mount(hub: &Hub) {
    let (auth, _) = hub.user_with_token("erin");
    let (frank, _) = hub.user_with_token("frank");
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256(&content);

    let mut location = start_upload(hub, &auth, "erin/chunks");
    let mut sent = 0;
    for chunk in content.chunks(30_000) {
        let range = format!("{}-{}", sent, sent + chunk.len() - 1);
        let headers = [("Content-Range", range.as_str()), ("Authorization", &auth)];
        let r = hub.request("PATCH", &location, &headers, chunk);
        assert_eq!(r.status, 202, "{}", r.text());
        sent += chunk.len();
        assert_eq!(r.header("range"), Some(format!("0-{}", sent - 1).as_str()));
        location = r.header("location").unwrap().to_string();
    }
    // A chunk that does not continue where the upload stands is refused.
    let r = hub.request(
        "PATCH",
        &location,
        &[("Content-Range", "0-9"), ("Authorization", &auth)],
        &content[..10],
    );
    assert_eq!(r.status, 416, "{}", r.text());
    let r = hub.request(
        "PUT",
        &with_digest(&location, &digest),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));

    let blob = format!("/v2/erin/chunks/blobs/{digest}");
    // Until a manifest references it, only the pusher sees the blob.
    assert_eq!(hub.request("GET", &blob, &[], b"").status, 404);
    put_manifest(
        hub,
        &auth,
        "erin/chunks",
        "sig",
        &image_manifest(&digest, &[], None),
    );
    let full = hub.request("GET", &blob, &[], b"");
    assert_eq!(full.body, content);
    let part = hub.request("GET", &blob, &[("Range", "bytes=10-19")], b"");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &content[10..20]);
    assert_eq!(part.header("content-range"), Some("bytes 10-19/100000"));
    let head = hub.request("HEAD", &blob, &[], b"");
    assert_eq!(head.header("content-length"), Some("100000"));

    // Other repositories see the blob only after a mount.
    let elsewhere = format!("/v2/frank/other/blobs/{digest}");
    assert_eq!(hub.request("HEAD", &elsewhere, &[], b"").status, 404);
    let r = hub.request(
        "POST",
        &format!("/v2/frank/other/blobs/uploads/?mount={digest}&from=erin/chunks"),
        &[("Authorization", &frank)],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let as_frank = [("Authorization", frank.as_str())];
    assert_eq!(hub.request("GET", &elsewhere, &as_frank, b"").body, content);
    // Mounting from a repository that lacks the blob falls back to an upload session.
    let r = hub.request(
        "POST",
        &format!("/v2/frank/third/blobs/uploads/?mount={digest}&from=nobody/here"),
        &[("Authorization", &frank)],
        b"",
    );
    assert_eq!(r.status, 202);
}

/// A cosign-signature-shaped manifest (the hub stores these beside packages; anything that
/// is neither is refused). With no layers, the config's bytes serve as its one layer.
fn image_manifest(config: &str, layers: &[&str], subject: Option<&str>) -> String {
    let layers = if layers.is_empty() {
        &[config][..]
    } else {
        layers
    };
    let layers: Vec<_> = layers
        .iter()
        .map(|d| serde_json::json!({"mediaType": ebpf_package::spec::MEDIA_TYPE_COSIGN_SIMPLESIGNING, "digest": d, "size": 1}))
        .collect();
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": layers,
    });
    if let Some(s) = subject {
        m["artifactType"] = serde_json::json!("application/vnd.example.signature");
        m["subject"] = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": s, "size": 1
        });
        m["annotations"] = serde_json::json!({"org.example.kind": "sig"});
    }
    m.to_string()
}

fn put_manifest(hub: &Hub, auth: &str, name: &str, reference: &str, body: &str) -> String {
    let r = hub.request(
        "PUT",
        &format!("/v2/{name}/manifests/{reference}"),
        &[
            ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
            ("Authorization", auth),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.header("docker-content-digest").unwrap().to_string()
}

fn manifests_tags_catalog_referrers_and_errors(hub: &Hub) {
    let (auth, _) = hub.user_with_token("gina");
    let base = hub.request("GET", "/v2/", &[("Authorization", &auth)], b"");
    assert_eq!(base.status, 200);
    assert_eq!(
        base.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );

    let name = "gina/tools";
    let config = push_blob(hub, &auth, name, b"{}");
    let layer = push_blob(hub, &auth, name, b"layer bytes");

    // A manifest naming a blob the repository lacks is refused.
    let missing = sha256(b"never uploaded");
    let r = hub.request(
        "PUT",
        &format!("/v2/{name}/manifests/v1"),
        &[("Authorization", &auth)],
        image_manifest(&config, &[&missing], None).as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    // A media type off the allow list is refused.
    let odd = serde_json::json!({"schemaVersion": 2, "mediaType": "text/html"}).to_string();
    let r = hub.request(
        "PUT",
        &format!("/v2/{name}/manifests/v1"),
        &[("Authorization", &auth)],
        odd.as_bytes(),
    );
    assert_eq!(
        r.json()["errors"][0]["code"],
        "MANIFEST_INVALID",
        "{}",
        r.text()
    );

    let body = image_manifest(&config, &[&layer], None);
    let digest = put_manifest(hub, &auth, name, "v1", &body);
    assert_eq!(digest, sha256(body.as_bytes()));
    for t in ["v2", "a", "b", "c"] {
        put_manifest(hub, &auth, name, t, &body);
    }
    let got = hub.request("GET", &format!("/v2/{name}/manifests/v1"), &[], b"");
    assert_eq!(got.body, body.as_bytes(), "bytes must be stored exactly");

    // Tags page by page, following Link.
    let mut tags = Vec::new();
    let mut next = Some(format!("/v2/{name}/tags/list?n=2"));
    while let Some(path) = next {
        let r = hub.request("GET", &path, &[], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        tags.extend(
            r.json()["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string()),
        );
        next = r
            .header("link")
            .map(|l| l[1..l.find('>').unwrap()].to_string());
    }
    assert_eq!(tags, ["a", "b", "c", "v1", "v2"]);
    let catalog = hub.request("GET", "/v2/_catalog", &[], b"").json();
    assert_eq!(catalog["repositories"], serde_json::json!([name]));

    // A signature-like artifact refers to the manifest; the filter selects it.
    let sig = image_manifest(&config, &[], Some(&digest));
    let sig_digest = put_manifest(hub, &auth, name, &sha256(sig.as_bytes()), &sig);
    let referrers = format!("/v2/{name}/referrers/{digest}");
    let all = hub.request("GET", &referrers, &[], b"").json();
    assert_eq!(all["manifests"][0]["digest"], sig_digest.as_str());
    assert_eq!(
        all["manifests"][0]["annotations"]["org.example.kind"],
        "sig"
    );
    let filtered = hub.request(
        "GET",
        &format!("{referrers}?artifactType=application/vnd.example.signature"),
        &[],
        b"",
    );
    assert_eq!(filtered.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(filtered.json()["manifests"].as_array().unwrap().len(), 1);
    let none = hub.request(
        "GET",
        &format!("{referrers}?artifactType=application/x-other"),
        &[],
        b"",
    );
    assert_eq!(none.json()["manifests"], serde_json::json!([]));

    // Deleting by digest removes the manifest and its tags.
    let r = hub.request(
        "DELETE",
        &format!("/v2/{name}/manifests/{digest}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 202);
    let gone = hub.request("GET", &format!("/v2/{name}/manifests/v1"), &[], b"");
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");
    let unknown = hub.request("GET", "/v2/no/such/tags/list", &[], b"");
    assert_eq!(unknown.json()["errors"][0]["code"], "NAME_UNKNOWN");
    let invalid = hub.request("GET", "/v2/Upper/Case/tags/list", &[], b"");
    assert_eq!(invalid.json()["errors"][0]["code"], "NAME_INVALID");
}

/// A 64-byte ELF header for EM_BPF: all the hub looks at in a program layer.
fn fake_bpf_object() -> Vec<u8> {
    let mut b = vec![0u8; 64];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // 64-bit
    b[5] = 1; // little-endian
    b[18..20].copy_from_slice(&247u16.to_le_bytes());
    b
}

/// Pushes `repo:tag` over raw HTTP: a package built by the real packager with `meta`.
fn push_package(
    hub: &Hub,
    auth: &str,
    repo: &str,
    meta: ebpf_package::spec::PackageMeta,
) -> String {
    let tag = meta.version.clone();
    let pkg = ebpf_package::Package::build(meta, &fake_bpf_object(), None).unwrap();
    for blob in std::iter::once(&pkg.config_blob).chain(&pkg.layers) {
        push_blob(hub, auth, repo, &blob.data.bytes().unwrap());
    }
    let r = hub.request(
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Authorization", auth)],
        &pkg.manifest_bytes,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.header("docker-content-digest").unwrap().to_string()
}

fn meta(name: &str, description: &str, keywords: &[&str]) -> ebpf_package::spec::PackageMeta {
    let mut m = ebpf_e2e_tests::sample_meta(name, "1.0.0");
    m.description = Some(description.into());
    m.keywords = keywords.iter().map(|k| k.to_string()).collect();
    m
}

/// The package links of a search results page, in order.
fn search(hub: &Hub, q: &str) -> Vec<String> {
    let page = hub
        .request("GET", &format!("/search?q={q}"), &[], b"")
        .text();
    let results = &page[page.find("id=\"results\"").expect("results")..];
    results
        .split("<a href=\"/p/")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

fn search_ranks_names_first_and_finds_keywords(hub: &Hub) {
    let (auth, _) = hub.user_with_token("sam");
    push_package(
        hub,
        &auth,
        "sam/netwatch",
        meta("netwatch", "Watch new connections", &["network"]),
    );
    push_package(
        hub,
        &auth,
        "sam/tcplife",
        meta(
            "tcplife",
            "TCP session lifespans, a netwatch companion",
            &["tcp"],
        ),
    );
    push_package(
        hub,
        &auth,
        "sam/opensnoop",
        meta("opensnoop", "Trace file opens", &["files"]),
    );

    assert_eq!(search(hub, "netwatch"), ["sam/netwatch", "sam/tcplife"]);
    assert_eq!(search(hub, "tcp"), ["sam/tcplife"]);
    assert_eq!(search(hub, "files"), ["sam/opensnoop"]);
    assert_eq!(search(hub, "trace+file"), ["sam/opensnoop"]);
    assert_eq!(search(hub, "network"), ["sam/netwatch"]);
    assert!(search(hub, "nothing-like-this").is_empty());
    // Query syntax is not passed through: quotes and operators are dropped, and every
    // word must match.
    assert_eq!(search(hub, "%22net%22*+OR+zzz"), Vec::<String>::new());
    assert_eq!(search(hub, "%22netw%22"), ["sam/netwatch", "sam/tcplife"]);

    // Words match inside names (`snoop` in opensnoop and execsnoop), owners, and
    // `owner/name` exactly; filters and sorts; the same on SQLite and Postgres.
    let (bob, _) = hub.user_with_token("bob");
    push_package(
        hub,
        &bob,
        "bob/execsnoop",
        meta("execsnoop", "Trace new processes", &["process"]),
    );
    let mut xdp = meta("xdpdrop", "Drop packets early", &["network"]);
    xdp.arch = "aarch64".into();
    xdp.license = Some("MIT".into());
    xdp.programs[0] = ebpf_package::spec::ProgramInfo {
        name: "drop_all".into(),
        section: "xdp".into(),
        prog_type: "xdp".into(),
    };
    push_package(hub, &bob, "bob/xdpdrop", xdp);
    let mut snoops = api_search(hub, "q=snoop");
    snoops.sort();
    assert_eq!(snoops, ["bob/execsnoop", "sam/opensnoop"]);
    let mut owned = api_search(hub, "q=bob");
    owned.sort();
    assert_eq!(owned, ["bob/execsnoop", "bob/xdpdrop"]);
    assert_eq!(api_search(hub, "q=sam/opensnoop"), ["sam/opensnoop"]);
    assert_eq!(api_search(hub, "q=drop_all"), ["bob/xdpdrop"]);
    assert_eq!(api_search(hub, "q=o_p"), Vec::<String>::new());
    assert_eq!(api_search(hub, "").len(), 5);
    assert_eq!(api_search(hub, "attach=xdp"), ["bob/xdpdrop"]);
    assert_eq!(api_search(hub, "program_type=tracepoint").len(), 4);
    assert_eq!(api_search(hub, "arch=aarch64"), ["bob/xdpdrop"]);
    assert_eq!(api_search(hub, "license=MIT"), ["bob/xdpdrop"]);
    assert_eq!(api_search(hub, "keyword=network&q=watch"), ["sam/netwatch"]);
    assert_eq!(api_search(hub, "format=ours").len(), 5);
    assert_eq!(api_search(hub, "format=bpfman").len(), 0);
    assert_eq!(api_search(hub, "signed=1").len(), 0);
    // Pulls count: sort by downloads.
    for _ in 0..2 {
        let r = hub.request("GET", "/v2/bob/execsnoop/manifests/1.0.0", &[], b"");
        assert_eq!(r.status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while api_search(hub, "sort=downloads")[0] != "bob/execsnoop" {
        assert!(Instant::now() < deadline, "downloads never counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let page = hub.request(
        "GET",
        "/api/v1/search?sort=downloads&per_page=2&page=3",
        &[],
        b"",
    );
    assert_eq!(page.json()["total"], 5);
    assert_eq!(page.json()["packages"].as_array().unwrap().len(), 1);
}

/// The repositories `/api/v1/search?PARAMS` finds, in order.
fn api_search(hub: &Hub, params: &str) -> Vec<String> {
    let r = hub.request("GET", &format!("/api/v1/search?{params}"), &[], b"");
    assert_eq!(r.status, 200, "{params}: {}", r.text());
    r.json()["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["repository"].as_str().unwrap().to_string())
        .collect()
}

/// Two hub processes on one Postgres and one blob directory act as one registry: an upload
/// begun on one continues on the other, accounts and sessions are shared, and what one
/// indexes the other shows.
#[test]
fn several_hub_processes_share_one_postgres() {
    if !needs(&[Need::Postgres]) {
        return;
    }
    let pg = Postgres::start();
    let url = pg.url("shared");
    let data = tempfile::tempdir().unwrap();
    let a = Hub::start_on(&data.path().join("data"), Some(&url));
    let b = Hub::start_on(&data.path().join("data"), Some(&url));

    a.register("pat", "pat-password");
    let token = b.token("pat", "pat-password", &["pull", "push"], &[]);
    let auth = ebpf_e2e_tests::hub::basic("pat", &token);

    let content: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
    let digest = sha256(&content);
    let location = start_upload(&a, &auth, "pat/split");
    let r = b.request(
        "PATCH",
        &location,
        &[("Authorization", &auth)],
        &content[..20_000],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let r = a.request(
        "PUT",
        &with_digest(&location, &digest),
        &[("Authorization", &auth)],
        &content[20_000..],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // The pusher sees its blob on the other process (others once a manifest refers to it).
    assert_eq!(
        b.request(
            "GET",
            &format!("/v2/pat/split/blobs/{digest}"),
            &[("Authorization", &auth)],
            b""
        )
        .body,
        content
    );

    let pushed = push_package(
        &b,
        &auth,
        "pat/shared",
        meta("shared", "Seen from both hubs", &[]),
    );
    let m = a.request("HEAD", "/v2/pat/shared/manifests/1.0.0", &[], b"");
    assert_eq!(m.header("docker-content-digest"), Some(pushed.as_str()));
    let page = a.request("GET", "/p/pat/shared", &[], b"").text();
    assert!(page.contains(&pushed), "{page}");

    // A login on one hub is a login on the other.
    let form_page = a.request("GET", "/login", &[], b"");
    let csrf_cookie = form_page
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = ebpf_e2e_tests::hub::csrf_field(&form_page.text());
    let form = format!("name=pat&password=pat-password&csrf={csrf}");
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", csrf_cookie.as_str()),
    ];
    let r = a.request("POST", "/login", &headers, form.as_bytes());
    assert_eq!(r.status, 303, "{}", r.text());
    let session = ebpf_e2e_tests::hub::set_cookie(&r, "hub_session");
    let cookies = format!(
        "{session}; {}",
        ebpf_e2e_tests::hub::set_cookie(&r, "hub_csrf")
    );
    let tokens = b.request("GET", "/tokens", &[("Cookie", &cookies)], b"");
    assert_eq!(tokens.status, 200, "{}", tokens.text());
    assert!(
        tokens.text().contains("id=\"me\">pat<"),
        "{}",
        tokens.text()
    );
}

/// The store's own queries (follows, feed, most starred, counts, profiles, versions with
/// their plan, downloads per day, admin flags) on this backend, through pages and the API.
fn the_store_pages_and_api_work_on_the_backend(hub: &Hub) {
    let (alice, _) = hub.user_with_token("alice");
    let (bob, _) = hub.user_with_token("bob");
    push_package(
        hub,
        &alice,
        "alice/opensnoop",
        meta("opensnoop", "Trace opens", &["files"]),
    );
    let r = hub.request(
        "PUT",
        "/api/v1/users/alice/follow",
        &[("Authorization", &bob)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let followers = hub
        .request("GET", "/api/v1/users/alice/followers", &[], b"")
        .json();
    assert_eq!(followers["users"], serde_json::json!(["bob"]));
    let v = hub
        .request(
            "GET",
            "/api/v1/packages/alice/opensnoop/versions/1.0.0",
            &[],
            b"",
        )
        .json();
    assert_eq!(v["plan"]["attach"][0]["program"], "handle", "{v}");
    assert_eq!(
        hub.request("GET", "/v2/alice/opensnoop/manifests/1.0.0", &[], b"")
            .status,
        200
    );

    // bob logs in, stars the package, and sees alice's version in his feed.
    let page = hub.request("GET", "/login", &[], b"");
    let csrf_cookie = page
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = ebpf_e2e_tests::hub::csrf_field(&page.text());
    let form = format!("name=bob&password=bob-password&csrf={csrf}");
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", csrf_cookie.as_str()),
    ];
    let r = hub.request("POST", "/login", &headers, form.as_bytes());
    assert_eq!(r.status, 303, "{}", r.text());
    let session = ebpf_e2e_tests::hub::set_cookie(&r, "hub_session");
    let cookies = format!(
        "{session}; {}",
        ebpf_e2e_tests::hub::set_cookie(&r, "hub_csrf")
    );
    // The login rotated the CSRF value and bound it to the session: read it from a page.
    let csrf = ebpf_e2e_tests::hub::csrf_field(
        &hub.request("GET", "/p/alice/opensnoop", &[("Cookie", &cookies)], b"")
            .text(),
    );
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookies.as_str()),
    ];
    let r = hub.request(
        "POST",
        "/p/alice/opensnoop/star",
        &headers,
        format!("csrf={csrf}").as_bytes(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let home = hub.request("GET", "/", &[("Cookie", &cookies)], b"").text();
    assert!(
        home.contains("href=\"/p/alice/opensnoop/v/1.0.0\""),
        "{home}"
    );
    let starred = &home[home.find("id=\"most-starred\"").expect("most starred")..];
    assert!(
        starred.contains("alice/opensnoop") && starred.contains("★ 1"),
        "{home}"
    );
    assert!(home.contains("1<span>packages</span>"), "{home}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = hub.request("GET", "/p/alice/opensnoop", &[], b"").text();
        if page.contains("1 downloads in the last 30 days") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pull never showed in the chart: {page}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let form = format!("csrf={csrf}&display_name=Bob&bio=Hi&links=");
    let r = hub.request("POST", "/settings/profile", &headers, form.as_bytes());
    assert!(r.text().contains("Profile saved."), "{}", r.text());
    let me = hub.request("GET", "/api/v1/users/bob", &[], b"").json();
    assert_eq!(
        (me["display_name"].as_str(), me["following"].as_i64()),
        (Some("Bob"), Some(1))
    );
    let dash = hub
        .request("GET", "/dashboard", &[("Cookie", &cookies)], b"")
        .text();
    assert!(dash.contains("alice/opensnoop 1.0.0"), "{dash}");
}

/// Password guesses against one account are limited across hub processes: the counts live
/// in the shared database, so spreading guesses over replicas gains nothing (issue 11).
#[test]
fn password_guesses_are_limited_across_hub_processes() {
    if !needs(&[Need::Postgres]) {
        return;
    }
    let pg = Postgres::start();
    let url = pg.url("limits");
    let data = tempfile::tempdir().unwrap();
    let a = Hub::start_on(&data.path().join("data"), Some(&url));
    let b = Hub::start_on(&data.path().join("data"), Some(&url));
    a.register("pat", "pat-password");
    let wrong = ebpf_e2e_tests::hub::basic("pat", "not-the-password");
    let statuses: Vec<u16> = (0..12)
        .map(|i| {
            let hub = if i % 2 == 0 { &a } else { &b };
            hub.request("GET", "/v2/", &[("Authorization", &wrong)], b"")
                .status
        })
        .collect();
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429, 429], "{statuses:?}");
    let right = ebpf_e2e_tests::hub::basic("pat", "pat-password");
    let r = b.request("GET", "/v2/", &[("Authorization", &right)], b"");
    assert_eq!(r.status, 429, "{}", r.text());
}

/// `cargo ebpf hub gc` beside a running hub deletes a blob no manifest references and keeps
/// what a manifest does; anonymous readers never saw the unreferenced blob (issue 11).
#[test]
fn hub_gc_deletes_unreferenced_blobs_beside_a_running_hub() {
    let hub = Hub::start();
    let (auth, _) = hub.user_with_token("gus");
    let junk: Vec<u8> = (0..40_000u32).map(|i| (i % 253) as u8).collect();
    let digest = push_blob(&hub, &auth, "gus/junk", &junk);
    let kept = push_blob(&hub, &auth, "gus/kept", b"signed payload");
    let sig = image_manifest(&kept, &[], None);
    put_manifest(&hub, &auth, "gus/kept", "sig", &sig);
    let blob = format!("/v2/gus/junk/blobs/{digest}");
    assert_eq!(hub.request("GET", &blob, &[], b"").status, 404);
    // Links younger than the grace period (here: this second) stay.
    std::thread::sleep(Duration::from_millis(1100));
    let out = Command::new(cli::cargo_ebpf_bin())
        .args(["hub", "gc", "--grace-hours", "0", "--data"])
        .arg(hub.data_dir())
        .output()
        .expect("run cargo-ebpf hub gc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Collected 1 blobs (40000 bytes)"),
        "{stderr}"
    );
    let hex = &digest["sha256:".len()..];
    let file = hub
        .data_dir()
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    assert!(!file.exists(), "{} is still there", file.display());
    let as_gus = [("Authorization", auth.as_str())];
    assert_eq!(hub.request("GET", &blob, &as_gus, b"").status, 404);
    let kept_blob = format!("/v2/gus/kept/blobs/{kept}");
    assert_eq!(
        hub.request("GET", &kept_blob, &[], b"").body,
        b"signed payload"
    );
}
