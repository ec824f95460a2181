//! The hub's scale-out storage: metadata in a Postgres the test starts, blobs in a real
//! docker-registry (`--blob-store registry+http://USER:PASS@HOST:PORT/REPO`) whose storage
//! drivers are what scales. Accounts come from the admin CLI (`hub user add`, `hub token
//! create`), not the web. Our client publishes and pulls, skopeo copies in and out, and
//! every blob is found in the upstream registry's own storage, never in the hub's data dir.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ebpf_e2e_tests::cli::{ok, Env};
use ebpf_e2e_tests::hub::{Hub, Postgres};
use ebpf_e2e_tests::Registry;
use ebpf_e2e_tests::{needs, Need};
use ebpf_e2e_tests::{sha256, skopeo};

/// `cargo-ebpf hub ARGS --data DATA --database URL`, with `stdin` piped in.
fn hub_admin(args: &[&str], data: &Path, database: &str, stdin: &str) -> String {
    let mut child = Command::new(ebpf_e2e_tests::cli::cargo_ebpf_bin())
        .arg("hub")
        .args(args)
        .arg("--data")
        .arg(data)
        .args(["--database", database])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cargo-ebpf hub");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "hub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn blobs_live_in_an_upstream_registry_and_metadata_in_postgres() {
    if !needs(&[Need::Postgres, Need::Build, Need::Registry, Need::Skopeo]) {
        return;
    }
    let store = Registry::start_with_auth("store", "store-secret");
    let pg = Postgres::start();
    let url = pg.url("hub");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let blob_store = format!(
        "registry+http://store:store-secret@{}/hub-blobs",
        store.addr()
    );
    let hub = Hub::start_with_blob_store(&data, Some(&url), &blob_store);

    // An account and a token from the admin CLI, on the same database the hub uses.
    hub_admin(
        &["user", "add", "erin", "--password-stdin"],
        &data,
        &url,
        "erin-password\n",
    );
    let token = hub_admin(
        &["token", "create", "erin", "--scope", "pull,push"],
        &data,
        &url,
        "",
    );
    assert!(token.starts_with("cehub_"), "{token}");

    // Publish with our client.
    let env = Env::new();
    let dir = env.path().join("stored");
    ok(env.cmd(["new", "stored", "--path"]).arg(&dir));
    let reference = format!("{}/erin/stored:0.1.0", hub.addr());
    ok(&mut env.cmd(["login", hub.addr(), "-u", "erin", "-p", &token]));
    let out = ok(env.cmd(["push", &reference, "--manifest-path"]).arg(&dir));
    let digest = String::from_utf8(out.stdout).unwrap();
    let digest = digest.trim().rsplit('@').next().unwrap().to_string();

    // Every blob is in the upstream registry's storage; the hub's data dir holds none.
    let manifest = hub.request(
        "GET",
        &format!("/v2/erin/stored/manifests/{digest}"),
        &[],
        b"",
    );
    assert_eq!(manifest.status, 200);
    let m = manifest.json();
    let blobs: Vec<String> = std::iter::once(&m["config"])
        .chain(m["layers"].as_array().unwrap())
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    for b in &blobs {
        let on_disk = std::fs::read(store.blob_data_path(b))
            .unwrap_or_else(|e| panic!("{b} not in the upstream storage: {e}\n{}", store.log()));
        assert_eq!(&sha256(&on_disk), b);
    }
    assert_eq!(files_under(&data.join("blobs")), Vec::<PathBuf>::new());
    assert_eq!(files_under(&data.join("uploads")), Vec::<PathBuf>::new());
    // Indexed from the layer read back out of the upstream registry.
    let pkg = hub
        .request("GET", "/api/v1/packages/erin/stored", &[], b"")
        .json();
    assert_eq!(pkg["versions"][0]["digest"], digest.as_str());

    // Reads stream through the hub: a Range, then a full pull by someone else.
    let layer = &blobs[1];
    let part = hub.request(
        "GET",
        &format!("/v2/erin/stored/blobs/{layer}"),
        &[("Range", "bytes=2-11")],
        b"",
    );
    assert_eq!(part.status, 206, "{}", part.text());
    let whole = std::fs::read(store.blob_data_path(layer)).unwrap();
    assert_eq!(part.body, whole[2..12]);
    let stranger = Env::new();
    ok(&mut stranger.cmd(["pull", &reference]));

    // skopeo out of the hub and back into it (a second repository), digests unchanged.
    let copy = tmp.path().join("copy");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:x", copy.display()),
    ]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &format!("erin:{token}"),
        &format!("oci:{}:x", copy.display()),
        &format!("docker://{}/erin/again:0.1.0", hub.addr()),
    ]);
    let again = hub.request("HEAD", "/v2/erin/again/manifests/0.1.0", &[], b"");
    assert_eq!(again.header("docker-content-digest"), Some(digest.as_str()));

    // A wrong digest is refused before anything reaches the upstream registry.
    let auth = ebpf_e2e_tests::hub::basic("erin", &token);
    let sent = b"bytes that do not match".to_vec();
    let claimed = sha256(b"something else");
    let r = hub.request(
        "POST",
        &format!("/v2/erin/stored/blobs/uploads/?digest={claimed}"),
        &[("Authorization", &auth)],
        &sent,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    for d in [claimed, sha256(&sent)] {
        assert!(!store.blob_data_path(&d).exists(), "{d} reached the store");
    }
    assert_eq!(files_under(&data.join("uploads")), Vec::<PathBuf>::new());
}

#[test]
fn a_blob_store_that_does_not_answer_stops_the_hub_with_help() {
    if !needs(&[Need::Registry]) {
        return;
    }
    let store = Registry::start_with_auth("store", "store-secret");
    let tmp = tempfile::tempdir().unwrap();
    let wrong = format!("registry+http://store:wrong@{}/hub-blobs", store.addr());
    let out = Command::new(ebpf_e2e_tests::cli::cargo_ebpf_bin())
        .args([
            "hub",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--blob-store",
            &wrong,
            "--data",
        ])
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("blob store") && err.contains("401"), "{err}");
    let out = Command::new(ebpf_e2e_tests::cli::cargo_ebpf_bin())
        .args(["hub", "serve", "--blob-store", "s3://bucket", "--data"])
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
