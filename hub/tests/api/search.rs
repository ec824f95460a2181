//! Search on SQLite through `/api/v1/search` and the search page: substrings of names,
//! owners, `owner/name`, program names and sections; filters; sorts; pages. The same cases
//! run on Postgres against the real binary in tests/tests/e2e/hub_store.rs.

use ebpf_package::spec::ProgramInfo;
use serde_json::Value;

use crate::support::{bpf_object, meta, TestHub};

/// alice/opensnoop and bob/execsnoop (tracepoints, GPL) and carol/xdpdrop (XDP on
/// aarch64, MIT, keyword `network`).
pub async fn three_packages(hub: &TestHub) {
    let alice = hub.user_with_token("alice").await;
    let bob = hub.user_with_token("bob").await;
    let carol = hub.user_with_token("carol").await;
    let m = meta("opensnoop", "0.1.0", "Trace open() calls", &["files"]);
    let r = hub
        .push_package(&alice, "alice/opensnoop", m, &bpf_object())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let m = meta("execsnoop", "0.2.0", "Trace new processes", &["process"]);
    let r = hub
        .push_package(&bob, "bob/execsnoop", m, &bpf_object())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let mut m = meta("xdpdrop", "1.0.0", "Drop packets early", &["network"]);
    m.arch = "aarch64".into();
    m.license = Some("MIT".into());
    m.programs = vec![ProgramInfo {
        name: "drop_all".into(),
        section: "xdp".into(),
        prog_type: "xdp".into(),
    }];
    let r = hub
        .push_package(&carol, "carol/xdpdrop", m, &bpf_object())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

async fn search(hub: &TestHub, params: &str) -> Value {
    let r = hub
        .request("GET", &format!("/api/v1/search?{params}"), &[], b"")
        .await;
    assert_eq!(r.status, 200, "{params}: {}", r.text());
    r.json()
}

/// The repositories found, in order.
async fn found(hub: &TestHub, params: &str) -> Vec<String> {
    let body = search(hub, params).await;
    body["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["repository"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn words_match_inside_names_owners_and_programs() {
    let hub = TestHub::start().await;
    three_packages(&hub).await;
    let mut snoops = found(&hub, "q=snoop").await;
    snoops.sort();
    assert_eq!(snoops, ["alice/opensnoop", "bob/execsnoop"]);
    assert_eq!(found(&hub, "q=alice").await, ["alice/opensnoop"]);
    assert_eq!(found(&hub, "q=alice/opensnoop").await, ["alice/opensnoop"]);
    assert_eq!(found(&hub, "q=ALICE/OPENSNOOP").await, ["alice/opensnoop"]);
    assert_eq!(found(&hub, "q=drop_all").await, ["carol/xdpdrop"]);
    let mut openat = found(&hub, "q=sys_enter_openat").await;
    openat.sort();
    assert_eq!(openat, ["alice/opensnoop", "bob/execsnoop"]);
    // Every word must match; a wildcard in the query is a literal character.
    assert_eq!(found(&hub, "q=snoop+packets").await, Vec::<String>::new());
    assert_eq!(found(&hub, "q=o_p").await, Vec::<String>::new());
    assert_eq!(found(&hub, "q=process").await, ["bob/execsnoop"]);
    // No words: everything.
    let all = search(&hub, "").await;
    assert_eq!(all["total"], 3);
    let first = &all["packages"][0];
    for key in [
        "repository",
        "owner",
        "name",
        "latest",
        "description",
        "stars",
        "downloads",
        "signed",
    ] {
        assert!(first.get(key).is_some(), "no {key}: {first}");
    }
    // A name match outranks a description match.
    let m = meta("tracer", "0.1.0", "Uses opensnoop ideas", &[]);
    let auth = hub.user_with_token("dave").await;
    let r = hub
        .push_package(&auth, "dave/tracer", m, &bpf_object())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        found(&hub, "q=opensnoop").await,
        ["alice/opensnoop", "dave/tracer"]
    );
}

#[tokio::test]
async fn filters_sorts_and_pages() {
    let hub = TestHub::start().await;
    three_packages(&hub).await;
    assert_eq!(found(&hub, "attach=xdp").await, ["carol/xdpdrop"]);
    assert_eq!(
        found(&hub, "program_type=tracepoint&q=exec").await,
        ["bob/execsnoop"]
    );
    assert_eq!(found(&hub, "arch=aarch64").await, ["carol/xdpdrop"]);
    assert_eq!(found(&hub, "license=mit").await, ["carol/xdpdrop"]);
    assert_eq!(found(&hub, "keyword=network").await, ["carol/xdpdrop"]);
    assert_eq!(search(&hub, "format=ours").await["total"], 3);
    assert_eq!(search(&hub, "format=cargo-ebpf").await["total"], 3);
    assert_eq!(search(&hub, "format=gadget").await["total"], 0);
    assert_eq!(search(&hub, "signed=1").await["total"], 0);

    let db = &hub.state.db;
    for _ in 0..3 {
        db.count_download("bob/execsnoop", "0.2.0").await.unwrap();
    }
    db.count_download("carol/xdpdrop", "1.0.0").await.unwrap();
    assert_eq!(
        found(&hub, "sort=downloads").await,
        ["bob/execsnoop", "carol/xdpdrop", "alice/opensnoop"]
    );
    db.toggle_star("bob", "alice/opensnoop").await.unwrap();
    db.toggle_star("carol", "alice/opensnoop").await.unwrap();
    let starred = search(&hub, "sort=stars").await;
    assert_eq!(starred["packages"][0]["repository"], "alice/opensnoop");
    assert_eq!(starred["packages"][0]["stars"], 2);
    // Newest first (times are in seconds).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let auth = hub.user_with_token("dave").await;
    let m = meta("late", "0.1.0", "Pushed last", &[]);
    let r = hub.push_package(&auth, "dave/late", m, &bpf_object()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(found(&hub, "sort=newest").await[0], "dave/late");

    let page = search(&hub, "sort=downloads&per_page=1&page=2").await;
    assert_eq!(
        (page["total"].as_i64(), page["page"].as_i64()),
        (Some(4), Some(2))
    );
    assert_eq!(page["packages"][0]["repository"], "carol/xdpdrop");
    assert_eq!(page["packages"].as_array().unwrap().len(), 1);

    for bad in ["sort=best", "format=rpm", "page=0", "per_page=1000"] {
        let r = hub
            .request("GET", &format!("/api/v1/search?{bad}"), &[], b"")
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{}", r.text());
    }
}

#[tokio::test]
async fn the_search_page_shows_filters_counts_and_stars() {
    let hub = TestHub::start().await;
    three_packages(&hub).await;
    let page = hub.request("GET", "/search?q=snoop", &[], b"").await.text();
    assert!(
        page.contains("alice/opensnoop") && page.contains("bob/execsnoop"),
        "{page}"
    );
    assert!(!page.contains("carol/xdpdrop"), "{page}");
    assert!(page.contains("2 packages for “snoop”"), "{page}");
    assert!(page.contains("<label for=\"f-attach\">"), "{page}");
    let all = hub.request("GET", "/search", &[], b"").await.text();
    assert!(all.contains("3 packages"), "{all}");
    assert!(all.contains("★ 0"), "{all}");
    let filtered = hub
        .request("GET", "/search?attach=xdp&sort=stars", &[], b"")
        .await
        .text();
    assert!(filtered.contains("carol/xdpdrop") && !filtered.contains("alice/opensnoop"));
    assert!(
        filtered.contains("<option value=\"stars\" selected>"),
        "{filtered}"
    );
    let bad = hub.request("GET", "/search?sort=best", &[], b"").await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn package_and_version_pages_show_the_version_asked_for_and_its_plan() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("alice").await;
    for (version, description) in [("0.1.0", "first"), ("0.2.0", "second")] {
        let m = meta("opensnoop", version, description, &["files"]);
        let r = hub
            .push_package(&auth, "alice/opensnoop", m, &bpf_object())
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    hub.state
        .db
        .count_download("alice/opensnoop", "0.2.0")
        .await
        .unwrap();
    let page = hub
        .request("GET", "/p/alice/opensnoop", &[], b"")
        .await
        .text();
    assert!(
        page.contains("sudo cargo ebpf run localhost/alice/opensnoop:0.2.0"),
        "{page}"
    );
    assert!(
        page.contains("id=\"shown-version\" class=\"version\">0.2.0<"),
        "{page}"
    );
    assert!(
        page.contains("href=\"/p/alice/opensnoop/v/0.1.0\""),
        "{page}"
    );
    assert!(page.contains("<select id=\"version-picker\""), "{page}");
    assert!(page.contains("1 downloads in the last 30 days"), "{page}");
    assert!(page.contains("class=\"copy\""), "{page}");
    // What running it does, from Plan::of, as `inspect` prints it.
    assert!(page.contains("id=\"plan-attach\""), "{page}");
    assert!(
        page.contains("tracepoint syscalls:sys_enter_openat"),
        "{page}"
    );
    assert!(page.contains("CAP_BPF"), "{page}");

    for path in [
        "/p/alice/opensnoop/v/0.1.0",
        "/p/alice/opensnoop?version=0.1.0",
    ] {
        let old = hub.request("GET", path, &[], b"").await.text();
        assert!(
            old.contains("run localhost/alice/opensnoop:0.1.0"),
            "{path}: {old}"
        );
        assert!(
            old.contains("/p/alice/opensnoop/download/0.1.0"),
            "{path}: {old}"
        );
        assert!(old.contains("unsigned"), "{old}");
    }
    let missing = hub
        .request("GET", "/p/alice/opensnoop/v/9.9.9", &[], b"")
        .await;
    assert_eq!(missing.status, 404);
    for asset in [
        "/assets/hub.css",
        "/assets/hub.js",
        "/favicon.ico",
        "/assets/logo.svg",
    ] {
        let r = hub.request("GET", asset, &[], b"").await;
        assert_eq!(r.status, 200, "{asset}");
    }
}
