//! The hub keeps its word: a published version never changes (no DELETE, no re-push),
//! tags that are not versions never describe the package, yanked versions are no longer
//! offered but stay pullable, and users' signing keys are public.

use ebpf_package::signature;
use serde_json::json;

use crate::packages::search;
use crate::support::{basic, bpf_object, image_manifest, meta, password, TestHub};

/// A real ECDSA P-256 public key (`openssl ec -pubout`).
pub const P256_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2GQ5xCfgTfIsCckLGSMeZMJhM8us
wChVBRAhjtK1gS4JNz11CF6bHPaIA/7Zt/Q+mhbaMgjbEYGOLcXTryrg0w==
-----END PUBLIC KEY-----
";

async fn publish(
    hub: &TestHub,
    auth: &str,
    repo: &str,
    version: &str,
    description: &str,
) -> String {
    let name = repo.rsplit('/').next().unwrap();
    let m = meta(name, version, description, &["files"]);
    let r = hub.push_package(auth, repo, m, &bpf_object()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.header("docker-content-digest").unwrap().to_string()
}

async fn package(hub: &TestHub, repo: &str) -> serde_json::Value {
    let r = hub
        .request("GET", &format!("/api/v1/packages/{repo}"), &[], b"")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[tokio::test]
async fn published_versions_cannot_be_deleted_or_replaced() {
    let hub = TestHub::start().await;
    let alice = hub.user_with_token("alice").await;
    let digest = publish(&hub, &alice, "alice/opensnoop", "0.1.0", "Trace opens").await;
    let auth = [("Authorization", alice.as_str())];
    for reference in ["0.1.0", digest.as_str()] {
        let path = format!("/v2/alice/opensnoop/manifests/{reference}");
        let r = hub.request("DELETE", &path, &auth, b"").await;
        assert_eq!(
            (r.status, r.code()),
            (405, "UNSUPPORTED".into()),
            "{reference}"
        );
        assert!(r.text().contains("yank"), "{}", r.text());
    }
    // Other content under the same version: still 409, and the registry serves the original.
    let m = meta("opensnoop", "0.1.0", "Something else", &[]);
    let r = hub
        .push_package(&alice, "alice/opensnoop", m, &bpf_object())
        .await;
    assert_eq!((r.status, r.code()), (409, "DENIED".into()));
    let served = hub
        .request("HEAD", "/v2/alice/opensnoop/manifests/0.1.0", &[], b"")
        .await;
    assert_eq!(
        served.header("docker-content-digest"),
        Some(digest.as_str())
    );
    assert_eq!(
        package(&hub, "alice/opensnoop").await["versions"][0]["digest"],
        digest
    );

    // A tag that is no version may still be deleted.
    let config = hub.push_blob(&alice, "alice/opensnoop", b"{}").await;
    let body = image_manifest(&config, &[], None);
    let r = hub
        .put_manifest(&alice, "alice/opensnoop", "scratch", body.as_bytes())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = hub
        .request(
            "DELETE",
            "/v2/alice/opensnoop/manifests/scratch",
            &auth,
            b"",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}

#[tokio::test]
async fn tags_that_are_not_versions_never_describe_the_package() {
    let hub = TestHub::start().await;
    let alice = hub.user_with_token("alice").await;
    publish(&hub, &alice, "alice/opensnoop", "0.2.0", "Trace opens").await;
    // The same package pushed under `zzz-hack` and an older version `0.1.0`.
    let hack = meta("opensnoop", "zzz-hack", "Hacked description", &[]);
    let r = hub
        .push_package(&alice, "alice/opensnoop", hack, &bpf_object())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    publish(&hub, &alice, "alice/opensnoop", "0.1.0", "Old description").await;
    let pkg = package(&hub, "alice/opensnoop").await;
    assert_eq!(pkg["latest_version"], "0.2.0");
    assert_eq!(pkg["description"], "Trace opens");
    let versions: Vec<_> = pkg["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].clone())
        .collect();
    assert!(!versions.contains(&json!("zzz-hack")), "{versions:?}");
    // A higher version does take over.
    publish(
        &hub,
        &alice,
        "alice/opensnoop",
        "0.10.0",
        "Trace every open",
    )
    .await;
    let pkg = package(&hub, "alice/opensnoop").await;
    assert_eq!(
        (pkg["latest_version"].clone(), pkg["description"].clone()),
        (json!("0.10.0"), json!("Trace every open"))
    );
}

#[tokio::test]
async fn yanked_versions_are_not_offered_but_stay_pullable() {
    let hub = TestHub::start().await;
    let alice = hub.user_with_token("alice").await;
    let bob = hub.user_with_token("bob").await;
    publish(&hub, &alice, "alice/opensnoop", "0.1.0", "Trace opens").await;
    publish(&hub, &alice, "alice/opensnoop", "0.2.0", "Trace opens").await;
    let yank = "/api/v1/packages/alice/opensnoop/versions/0.2.0/yank";
    // Only the owner, and only with credentials.
    let r = hub.post_json(yank, None, json!({})).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = hub.post_json(yank, Some(&bob), json!({})).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let pull_only = basic("alice", &hub.token("alice", &["pull"], &[]).await);
    let r = hub.post_json(yank, Some(&pull_only), json!({})).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = hub
        .post_json(
            "/api/v1/packages/alice/opensnoop/versions/9.9.9/yank",
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("no published version"));

    let r = hub.post_json(yank, Some(&alice), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["latest_version"], "0.1.0");
    let pkg = package(&hub, "alice/opensnoop").await;
    assert_eq!(pkg["latest_version"], "0.1.0");
    let yanked = |pkg: &serde_json::Value, v: &str| {
        pkg["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["version"] == v)
            .unwrap()["yanked"]
            .clone()
    };
    assert_eq!(yanked(&pkg, "0.2.0"), json!(true));
    assert_eq!(yanked(&pkg, "0.1.0"), json!(false));
    // Pullable by exact version, with the warning header; other versions carry none.
    let r = hub
        .request("GET", "/v2/alice/opensnoop/manifests/0.2.0", &[], b"")
        .await;
    assert_eq!(
        (r.status, r.header("x-cargo-ebpf-yanked")),
        (200, Some("true"))
    );
    // By digest too: the manifest is that of a yanked version.
    let digest = r.header("docker-content-digest").unwrap().to_string();
    let path = format!("/v2/alice/opensnoop/manifests/{digest}");
    let r = hub.request("GET", &path, &[], b"").await;
    assert_eq!(
        (r.status, r.header("x-cargo-ebpf-yanked")),
        (200, Some("true"))
    );
    let r = hub
        .request("GET", "/v2/alice/opensnoop/manifests/0.1.0", &[], b"")
        .await;
    assert_eq!((r.status, r.header("x-cargo-ebpf-yanked")), (200, None));
    // A yanked version cannot be pushed again, even with the same content.
    let m = meta("opensnoop", "0.2.0", "Trace opens", &["files"]);
    let r = hub
        .push_package(&alice, "alice/opensnoop", m, &bpf_object())
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("yanked"), "{}", r.text());

    // Every version yanked: out of search, no latest; unyank brings it back.
    let r = hub
        .post_json(
            "/api/v1/packages/alice/opensnoop/versions/0.1.0/yank",
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(package(&hub, "alice/opensnoop").await["latest_version"], "");
    assert_eq!(search(&hub, "opensnoop").await, Vec::<String>::new());
    let r = hub
        .post_json(
            "/api/v1/packages/alice/opensnoop/versions/0.2.0/unyank",
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        package(&hub, "alice/opensnoop").await["latest_version"],
        "0.2.0"
    );
    assert_eq!(search(&hub, "opensnoop").await, ["alice/opensnoop"]);
}

#[tokio::test]
async fn users_register_public_keys_that_anyone_can_read() {
    let hub = TestHub::start().await;
    let alice = hub.user_with_token("alice").await;
    let bob = hub.user_with_token("bob").await;
    let keys = "/api/v1/users/alice/keys";
    let body = json!({"pem": P256_PEM, "label": "laptop"});
    let r = hub.post_json(keys, None, body.clone()).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = hub.post_json(keys, Some(&bob), body.clone()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = hub.post_json(keys, Some(&alice), body.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let fingerprint = r.json()["fingerprint"].as_str().unwrap().to_string();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    let r = hub.post_json(keys, Some(&alice), body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("already has key"));
    for bad in [
        "hello",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----",
    ] {
        let r = hub.post_json(keys, Some(&alice), json!({"pem": bad})).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(
            r.json()["error"].as_str().unwrap().contains("P-256"),
            "{}",
            r.text()
        );
    }
    // Public: no credentials needed. The profile page lists them too.
    let listed = hub.request("GET", keys, &[], b"").await.json();
    assert_eq!(listed["keys"][0]["fingerprint"], fingerprint.as_str());
    assert_eq!(listed["keys"][0]["label"], "laptop");
    assert_eq!(listed["keys"][0]["pem"], P256_PEM);
    let page = hub.request("GET", "/u/alice", &[], b"").await.text();
    assert!(page.contains(&fingerprint), "{page}");

    let one = format!("{keys}/{fingerprint}");
    let r = hub
        .request("DELETE", &one, &[("Authorization", bob.as_str())], b"")
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = hub
        .request("DELETE", &one, &[("Authorization", alice.as_str())], b"")
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = hub
        .request("DELETE", &one, &[("Authorization", alice.as_str())], b"")
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        hub.request("GET", keys, &[], b"").await.json()["keys"],
        json!([])
    );
    // The password works as well as a token (HTTP Basic), like registry clients send it.
    let r = hub
        .post_json(
            keys,
            Some(&basic("alice", &password("alice"))),
            json!({"pem": P256_PEM}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

/// Pushes `key`'s signature of `digest` as the `sha256-<hex>.sig` tag of `repo`.
async fn push_signature(
    hub: &TestHub,
    auth: &str,
    repo: &str,
    digest: &str,
    key: &signature::PrivateKey,
) -> crate::support::Resp {
    let payload = signature::Payload::new(&format!("hub.test/{repo}"), digest);
    let sig = signature::Signature::create(key, payload);
    let (manifest, config) = signature::signature_manifest(None, &sig);
    hub.push_blob(auth, repo, &config.data.bytes().unwrap())
        .await;
    hub.push_blob(auth, repo, &sig.layer().data.bytes().unwrap())
        .await;
    let tag = signature::signature_tag(digest).unwrap();
    let body = serde_json::to_vec(&manifest).unwrap();
    hub.put_manifest(auth, repo, &tag, &body).await
}

#[tokio::test]
async fn the_hub_verifies_signatures_against_the_owners_keys() {
    let hub = TestHub::start().await;
    let alice = hub.user_with_token("alice").await;
    let signed = publish(&hub, &alice, "alice/opensnoop", "0.1.0", "Trace opens").await;
    let forged = publish(&hub, &alice, "alice/opensnoop", "0.2.0", "Trace opens").await;
    let latest = publish(&hub, &alice, "alice/opensnoop", "0.3.0", "Trace opens").await;
    let key = signature::PrivateKey::generate();
    let stranger = signature::PrivateKey::generate();
    let pem = key.public_key().to_pem();
    let r = hub
        .post_json(
            "/api/v1/users/alice/keys",
            Some(&alice),
            json!({"pem": pem, "label": "ci"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = push_signature(&hub, &alice, "alice/opensnoop", &signed, &key).await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Signed by a key alice never registered: stored (the push stands), no badge.
    let r = push_signature(&hub, &alice, "alice/opensnoop", &forged, &stranger).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let pkg = package(&hub, "alice/opensnoop").await;
    // The signature tags are no versions.
    assert_eq!(pkg["latest_version"], "0.3.0");
    let badges = |v: &str| {
        let all = pkg["versions"].as_array().unwrap();
        all.iter().find(|x| x["version"] == v).unwrap()["signatures"].clone()
    };
    let fingerprint = key.public_key().fingerprint();
    assert_eq!(badges("0.1.0")[0]["fingerprint"], fingerprint.as_str());
    assert_eq!(
        badges("0.1.0")[0]["text"],
        format!("signed by key {fingerprint} (alice's key \"ci\")")
    );
    assert_eq!(badges("0.2.0"), json!([]));
    assert_eq!(badges("0.3.0"), json!([]));
    let page = hub
        .request("GET", "/p/alice/opensnoop", &[], b"")
        .await
        .text();
    assert!(
        page.contains(&format!("signed by key {fingerprint}")),
        "{page}"
    );
    assert!(page.contains("unsigned"), "{page}");

    // The search API says whether the *latest* version carries a verified signature.
    assert_eq!(signed_in_search(&hub, "opensnoop").await, json!(false));
    let r = push_signature(&hub, &alice, "alice/opensnoop", &latest, &key).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(signed_in_search(&hub, "opensnoop").await, json!(true));
}

/// `signed` of the first package `GET /api/v1/search?q=Q` finds.
async fn signed_in_search(hub: &TestHub, q: &str) -> serde_json::Value {
    let r = hub
        .request("GET", &format!("/api/v1/search?q={q}"), &[], b"")
        .await;
    r.json()["packages"][0]["signed"].clone()
}
