//! eBPF packages: checked on push (the program must be a BPF ELF, versions are immutable),
//! indexed for the JSON API and the object download, and found by search.

use std::time::Duration;

use crate::support::{bpf_object, elf, meta, TestHub};

#[tokio::test]
async fn a_package_whose_program_is_not_bpf_is_refused() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("mallory").await;
    let m = meta("fake", "0.1.0", "not really", &[]);
    let r = hub.push_package(&auth, "mallory/fake", m, &elf(62)).await;
    assert_eq!((r.status, r.code()), (400, "MANIFEST_INVALID".into()));
    assert!(r.text().contains("EM_BPF"), "{}", r.text());
    let tags = hub
        .request("GET", "/v2/mallory/fake/tags/list", &[], b"")
        .await;
    assert_eq!(tags.json()["tags"], serde_json::json!([]));
    let index = hub
        .request("GET", "/api/v1/packages/mallory/fake", &[], b"")
        .await;
    assert_eq!(index.status, 404);
    assert!(index.json()["error"]
        .as_str()
        .unwrap()
        .contains("no package"));
}

#[tokio::test]
async fn published_versions_are_immutable_and_other_tags_move() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("sam").await;
    let first = meta("snoop", "1.0.0", "Trace file opens", &[]);
    let r = hub
        .push_package(&auth, "sam/snoop", first.clone(), &bpf_object())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // The same manifest again is fine.
    let again = hub
        .push_package(&auth, "sam/snoop", first, &bpf_object())
        .await;
    assert_eq!(again.status, 201, "{}", again.text());
    let changed = meta("snoop", "1.0.0", "Trace opens", &[]);
    let r = hub
        .push_package(&auth, "sam/snoop", changed, &bpf_object())
        .await;
    assert_eq!((r.status, r.code()), (409, "DENIED".into()));
    assert!(r.text().contains("already published"), "{}", r.text());
    // `latest` is no version: it may point elsewhere.
    let config = hub.push_blob(&auth, "sam/snoop", b"{}").await;
    for body in [
        crate::support::image_manifest(&config, &[], None),
        crate::support::image_manifest(&config, &[&config], None),
    ] {
        let r = hub
            .put_manifest(&auth, "sam/snoop", "latest", body.as_bytes())
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
}

#[tokio::test]
async fn the_json_api_and_the_download_show_what_was_indexed() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("alice").await;
    let m = meta("hubsnoop", "0.1.0", "Trace openat calls", &["files"]);
    let r = hub
        .push_package(&auth, "alice/hubsnoop", m, &bpf_object())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let digest = r.header("docker-content-digest").unwrap().to_string();

    let pkg = hub
        .request("GET", "/api/v1/packages/alice/hubsnoop", &[], b"")
        .await
        .json();
    assert_eq!(pkg["owner"], "alice");
    assert_eq!(pkg["name"], "hubsnoop");
    assert_eq!(pkg["license"], "GPL-2.0");
    assert_eq!(pkg["description"], "Trace openat calls");
    assert_eq!(pkg["keywords"], serde_json::json!(["files"]));
    assert_eq!(pkg["latest_version"], "0.1.0");
    let version = &pkg["versions"][0];
    assert_eq!(version["version"], "0.1.0");
    assert_eq!(version["digest"], digest.as_str());
    assert_eq!(version["object"], "hubsnoop.bpf.o");
    assert_eq!(
        version["programs"][0]["section"],
        "tracepoint/syscalls/sys_enter_openat"
    );

    // The web page offers the object itself, taken out of the layer.
    let object = hub
        .request("GET", "/p/alice/hubsnoop/download/0.1.0", &[], b"")
        .await;
    assert_eq!(object.status, 200);
    assert_eq!(object.body, bpf_object());
    assert_eq!(object.header("content-type"), Some("application/x-elf"));

    // A pull by tag from another client counts as a download (off the request path, so
    // allow it a moment); the same client pulling again does not.
    pull_from(&hub, "192.0.2.7:4000").await;
    assert_eq!(
        downloads_reach(&hub, 2).await,
        2,
        "the download and the pull"
    );
    pull_from(&hub, "192.0.2.7:4001").await;
    pull_from(&hub, "192.0.2.8:4000").await;
    assert_eq!(downloads_reach(&hub, 3).await, 3, "one more client, once");
    // Had the repeated pull been counted, its count would land by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        downloads_reach(&hub, 0).await,
        3,
        "a repeated pull is not counted"
    );
}

async fn pull_from(hub: &TestHub, peer: &str) {
    let path = "/v2/alice/hubsnoop/manifests/0.1.0";
    let r = hub.request_from(Some(peer), "GET", path, &[], b"").await;
    assert_eq!(r.status, 200);
}

/// The package's download count once it is at least `n` (or after two seconds).
async fn downloads_reach(hub: &TestHub, n: i64) -> i64 {
    let mut downloads = 0;
    for _ in 0..100 {
        let pkg = hub
            .request("GET", "/api/v1/packages/alice/hubsnoop", &[], b"")
            .await;
        downloads = pkg.json()["downloads"].as_i64().unwrap();
        if downloads >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    downloads
}

/// The package links of a search results page, in order.
pub async fn search(hub: &TestHub, q: &str) -> Vec<String> {
    let page = hub
        .request("GET", &format!("/search?q={q}"), &[], b"")
        .await
        .text();
    let results = &page[page.find("id=\"results\"").expect("results")..];
    results
        .split("<a href=\"/p/")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

#[tokio::test]
async fn search_ranks_names_first_and_finds_keywords() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("sam").await;
    let packages = [
        ("netwatch", "Watch new connections", "network"),
        (
            "tcplife",
            "TCP session lifespans, a netwatch companion",
            "tcp",
        ),
        ("opensnoop", "Trace file opens", "files"),
    ];
    for (name, description, keyword) in packages {
        let m = meta(name, "1.0.0", description, &[keyword]);
        let r = hub
            .push_package(&auth, &format!("sam/{name}"), m, &bpf_object())
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    assert_eq!(
        search(&hub, "netwatch").await,
        ["sam/netwatch", "sam/tcplife"]
    );
    assert_eq!(search(&hub, "tcp").await, ["sam/tcplife"]);
    assert_eq!(search(&hub, "files").await, ["sam/opensnoop"]);
    assert_eq!(search(&hub, "trace+file").await, ["sam/opensnoop"]);
    assert!(search(&hub, "nothing-like-this").await.is_empty());
    // Query syntax is not passed through: quotes and operators are dropped, and every
    // word must match.
    assert!(search(&hub, "%22net%22*+OR+zzz").await.is_empty());
    assert_eq!(
        search(&hub, "%22netw%22").await,
        ["sam/netwatch", "sam/tcplife"]
    );
}

#[tokio::test]
async fn the_json_search_pages_and_describes_each_package() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("sam").await;
    for name in ["netwatch", "netflow", "netstat"] {
        let m = meta(name, "1.0.0", &format!("{name}: network tracing"), &[]);
        let r = hub
            .push_package(&auth, &format!("sam/{name}"), m, &bpf_object())
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let get = |q: &'static str| hub.request("GET", q, &[], b"");
    let all = get("/api/v1/search?q=network").await;
    assert_eq!(all.status, 200, "{}", all.text());
    let all = all.json();
    assert_eq!(
        (all["total"].as_i64(), all["page"].as_i64()),
        (Some(3), Some(1))
    );
    let first = &all["packages"][0];
    assert_eq!(first["owner"], "sam");
    assert_eq!(first["latest"], "1.0.0");
    assert_eq!(first["stars"], 0);
    assert_eq!(first["signed"], false);
    let repo = first["repository"].as_str().unwrap();
    assert_eq!(repo, format!("sam/{}", first["name"].as_str().unwrap()));
    assert!(first["description"].as_str().unwrap().contains("network"));

    // Pages of two: the second holds the one left, and no repository is on both.
    let p1 = get("/api/v1/search?q=network&per_page=2").await.json();
    let p2 = get("/api/v1/search?q=network&per_page=2&page=2")
        .await
        .json();
    assert_eq!(p1["packages"].as_array().unwrap().len(), 2);
    assert_eq!(p2["packages"].as_array().unwrap().len(), 1);
    assert_eq!(
        (p2["total"].as_i64(), p2["per_page"].as_i64()),
        (Some(3), Some(2))
    );
    let on_p1: Vec<_> = p1["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["repository"])
        .collect();
    assert!(!on_p1.contains(&&p2["packages"][0]["repository"]));

    // A one-word query naming an owner finds their packages.
    let owned = get("/api/v1/search?q=sam").await.json();
    assert_eq!(owned["total"], 3, "{owned}");

    let none = get("/api/v1/search?q=nothing-like-this").await.json();
    assert_eq!(none["total"], 0);
    assert_eq!(none["packages"], serde_json::json!([]));
}
