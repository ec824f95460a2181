//! The registry API under `/v2/`: uploads (monolithic, chunked, mounts), digests, manifests
//! by tag and digest, lists, referrers, and who may push where.

use crate::support::{basic, image_manifest, sha256, TestHub};

#[tokio::test]
async fn the_base_endpoint_asks_anonymous_callers_to_log_in() {
    let hub = TestHub::start().await;
    let r = hub.request("GET", "/v2/", &[], b"").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "UNAUTHORIZED");
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    let auth = hub.user_with_token("gina").await;
    let r = hub
        .request("GET", "/v2/", &[("Authorization", &auth)], b"")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    let r = hub.request("GET", "/v2/a/b/nothing", &[], b"").await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND".into()));
}

#[tokio::test]
async fn a_monolithic_upload_reads_back_whole_and_by_range() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("erin").await;
    let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let digest = hub.push_blob(&auth, "erin/mono", &content).await;
    let blob = format!("/v2/erin/mono/blobs/{digest}");
    // No manifest references it yet: only the pusher sees it.
    assert_eq!(hub.request("GET", &blob, &[], b"").await.status, 404);
    let signature = image_manifest(&digest, &[], None);
    let r = hub
        .put_manifest(&auth, "erin/mono", "sig", signature.as_bytes())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let full = hub.request("GET", &blob, &[], b"").await;
    assert_eq!(full.body, content);
    assert_eq!(full.header("docker-content-digest"), Some(digest.as_str()));
    let part = hub
        .request("GET", &blob, &[("Range", "bytes=10-19")], b"")
        .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &content[10..20]);
    assert_eq!(part.header("content-range"), Some("bytes 10-19/10000"));
    let head = hub.request("HEAD", &blob, &[], b"").await;
    assert_eq!(head.header("content-length"), Some("10000"));
    assert!(head.body.is_empty());
    let bad = hub
        .request("GET", &blob, &[("Range", "bytes=20000-")], b"")
        .await;
    assert_eq!((bad.status, bad.code()), (416, "RANGE_INVALID".into()));
}

#[tokio::test]
async fn a_chunked_upload_continues_where_it_stands() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("erin").await;
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
    let digest = sha256(&content);
    let r = hub
        .request(
            "POST",
            "/v2/erin/chunks/blobs/uploads/",
            &[("Authorization", &auth)],
            b"",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let mut location = r.header("location").unwrap().to_string();
    let mut sent = 0;
    for chunk in content.chunks(30_000) {
        let range = format!("{}-{}", sent, sent + chunk.len() - 1);
        let headers = [("Content-Range", range.as_str()), ("Authorization", &auth)];
        let r = hub.request("PATCH", &location, &headers, chunk).await;
        assert_eq!(r.status, 202, "{}", r.text());
        sent += chunk.len();
        assert_eq!(r.header("range"), Some(format!("0-{}", sent - 1).as_str()));
        location = r.header("location").unwrap().to_string();
    }
    let status = hub
        .request("GET", &location, &[("Authorization", &auth)], b"")
        .await;
    assert_eq!(status.header("range"), Some("0-99999"));
    // A chunk that does not continue where the upload stands is refused.
    let headers = [("Content-Range", "0-9"), ("Authorization", &auth)];
    let r = hub
        .request("PATCH", &location, &headers, &content[..10])
        .await;
    assert_eq!((r.status, r.code()), (416, "BLOB_UPLOAD_INVALID".into()));
    let put = format!("{location}?digest={digest}");
    let r = hub
        .request("PUT", &put, &[("Authorization", &auth)], b"")
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    let blob = format!("/v2/erin/chunks/blobs/{digest}");
    let pusher = [("Authorization", auth.as_str())];
    assert_eq!(hub.request("GET", &blob, &pusher, b"").await.body, content);
    // The session is over.
    let r = hub
        .request("GET", &location, &[("Authorization", &auth)], b"")
        .await;
    assert_eq!((r.status, r.code()), (404, "BLOB_UPLOAD_UNKNOWN".into()));
}

#[tokio::test]
async fn a_wrong_digest_is_refused_and_nothing_is_stored() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("dave").await;
    let claimed = sha256(b"what the client claims");
    let path = format!("/v2/dave/bad/blobs/uploads/?digest={claimed}");
    let r = hub
        .request(
            "POST",
            &path,
            &[("Authorization", &auth)],
            b"what the client sends",
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "DIGEST_INVALID".into()));
    let head = hub
        .request("HEAD", &format!("/v2/dave/bad/blobs/{claimed}"), &[], b"")
        .await;
    assert_eq!(head.status, 404);
    assert_eq!(hub.stored_files(), Vec::<std::path::PathBuf>::new());
    // Not a sha256 digest at all.
    let r = hub
        .request("GET", "/v2/dave/bad/blobs/sha256:XYZ", &[], b"")
        .await;
    assert_eq!((r.status, r.code()), (400, "DIGEST_INVALID".into()));
    // A manifest PUT by digest must hash to that digest.
    let config = hub.push_blob(&auth, "dave/bad", b"{}").await;
    let manifest = image_manifest(&config, &[], None);
    let r = hub
        .put_manifest(&auth, "dave/bad", &claimed, manifest.as_bytes())
        .await;
    assert_eq!((r.status, r.code()), (400, "DIGEST_INVALID".into()));
}

#[tokio::test]
async fn blobs_show_in_other_repositories_only_after_a_mount() {
    let hub = TestHub::start().await;
    let erin = hub.user_with_token("erin").await;
    let frank = hub.user_with_token("frank").await;
    let digest = hub.push_blob(&erin, "erin/src", b"shared bytes").await;
    let signature = image_manifest(&digest, &[], None);
    let r = hub
        .put_manifest(&erin, "erin/src", "sig", signature.as_bytes())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let elsewhere = format!("/v2/frank/other/blobs/{digest}");
    let r = hub.request("HEAD", &elsewhere, &[], b"").await;
    assert_eq!(r.status, 404);
    let mount = format!("/v2/frank/other/blobs/uploads/?mount={digest}&from=erin/src");
    let r = hub
        .request("POST", &mount, &[("Authorization", &frank)], b"")
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Frank, the pusher, sees it; everyone else once a manifest there references it.
    let as_frank = [("Authorization", frank.as_str())];
    assert_eq!(
        hub.request("GET", &elsewhere, &as_frank, b"").await.body,
        b"shared bytes"
    );
    // Mounting from a repository without the blob falls back to an upload session.
    let mount = format!("/v2/frank/third/blobs/uploads/?mount={digest}&from=nobody/here");
    let r = hub
        .request("POST", &mount, &[("Authorization", &frank)], b"")
        .await;
    assert_eq!(r.status, 202);
    // Deleting the link hides it again.
    let r = hub
        .request("DELETE", &elsewhere, &[("Authorization", &frank)], b"")
        .await;
    assert_eq!(r.status, 202);
    let r = hub.request("GET", &elsewhere, &as_frank, b"").await;
    assert_eq!((r.status, r.code()), (404, "BLOB_UNKNOWN".into()));
}

#[tokio::test]
async fn manifests_by_tag_and_digest() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("gina").await;
    let name = "gina/tools";
    let config = hub.push_blob(&auth, name, b"{}").await;
    let layer = hub.push_blob(&auth, name, b"layer bytes").await;

    let missing = sha256(b"never uploaded");
    let body = image_manifest(&config, &[&missing], None);
    let r = hub.put_manifest(&auth, name, "v1", body.as_bytes()).await;
    assert_eq!((r.status, r.code()), (400, "MANIFEST_BLOB_UNKNOWN".into()));
    let odd = serde_json::json!({"schemaVersion": 2, "mediaType": "text/html"}).to_string();
    let r = hub.put_manifest(&auth, name, "v1", odd.as_bytes()).await;
    assert_eq!((r.status, r.code()), (400, "MANIFEST_INVALID".into()));
    let r = hub.put_manifest(&auth, name, "v1", b"not json").await;
    assert_eq!((r.status, r.code()), (400, "MANIFEST_INVALID".into()));

    let body = image_manifest(&config, &[&layer], None);
    let r = hub.put_manifest(&auth, name, "v1", body.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let digest = sha256(body.as_bytes());
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    for reference in ["v1", digest.as_str()] {
        let got = hub
            .request(
                "GET",
                &format!("/v2/{name}/manifests/{reference}"),
                &[],
                b"",
            )
            .await;
        assert_eq!(got.body, body.as_bytes(), "bytes must be stored exactly");
        assert_eq!(got.header("docker-content-digest"), Some(digest.as_str()));
        assert_eq!(
            got.header("content-type"),
            Some("application/vnd.oci.image.manifest.v1+json")
        );
    }
    let head = hub
        .request("HEAD", &format!("/v2/{name}/manifests/v1"), &[], b"")
        .await;
    assert_eq!(
        head.header("content-length"),
        Some(body.len().to_string().as_str())
    );

    let by_digest = format!("/v2/{name}/manifests/{digest}");
    let r = hub
        .request("DELETE", &by_digest, &[("Authorization", &auth)], b"")
        .await;
    assert_eq!(r.status, 202);
    let gone = hub
        .request("GET", &format!("/v2/{name}/manifests/v1"), &[], b"")
        .await;
    assert_eq!((gone.status, gone.code()), (404, "MANIFEST_UNKNOWN".into()));
    let r = hub
        .request("PATCH", &by_digest, &[("Authorization", &auth)], b"")
        .await;
    assert_eq!((r.status, r.code()), (405, "UNSUPPORTED".into()));
}

#[tokio::test]
async fn tags_page_with_link_and_the_catalog_lists_repositories() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("gina").await;
    let name = "gina/tools";
    let config = hub.push_blob(&auth, name, b"{}").await;
    let body = image_manifest(&config, &[], None);
    for tag in ["v2", "a", "b", "c", "v1"] {
        let r = hub.put_manifest(&auth, name, tag, body.as_bytes()).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let mut tags = Vec::new();
    let mut next = Some(format!("/v2/{name}/tags/list?n=2"));
    while let Some(path) = next {
        let r = hub.request("GET", &path, &[], b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let page = r.json()["tags"].as_array().unwrap().clone();
        tags.extend(page.iter().map(|t| t.as_str().unwrap().to_string()));
        next = r
            .header("link")
            .map(|l| l[1..l.find('>').unwrap()].to_string());
    }
    assert_eq!(tags, ["a", "b", "c", "v1", "v2"]);
    let catalog = hub.request("GET", "/v2/_catalog", &[], b"").await.json();
    assert_eq!(catalog["repositories"], serde_json::json!([name]));

    let r = hub.request("GET", "/v2/no/such/tags/list", &[], b"").await;
    assert_eq!((r.status, r.code()), (404, "NAME_UNKNOWN".into()));
    let r = hub
        .request("GET", "/v2/Upper/Case/tags/list", &[], b"")
        .await;
    assert_eq!((r.status, r.code()), (400, "NAME_INVALID".into()));
    let r = hub
        .request("GET", &format!("/v2/{name}/tags/list?n=-1"), &[], b"")
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "PAGINATION_NUMBER_INVALID".into())
    );
}

#[tokio::test]
async fn referrers_list_what_refers_to_a_manifest_and_filter_by_type() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("gina").await;
    let name = "gina/signed";
    let config = hub.push_blob(&auth, name, b"{}").await;
    let body = image_manifest(&config, &[], None);
    let digest = sha256(body.as_bytes());
    assert_eq!(
        hub.put_manifest(&auth, name, "v1", body.as_bytes())
            .await
            .status,
        201
    );
    let sig = image_manifest(&config, &[], Some(&digest));
    let sig_digest = sha256(sig.as_bytes());
    let r = hub
        .put_manifest(&auth, name, &sig_digest, sig.as_bytes())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("oci-subject"), Some(digest.as_str()));

    let referrers = format!("/v2/{name}/referrers/{digest}");
    let all = hub.request("GET", &referrers, &[], b"").await.json();
    assert_eq!(all["manifests"][0]["digest"], sig_digest.as_str());
    assert_eq!(
        all["manifests"][0]["annotations"]["org.example.kind"],
        "sig"
    );
    let wanted = format!("{referrers}?artifactType=application/vnd.example.signature");
    let filtered = hub.request("GET", &wanted, &[], b"").await;
    assert_eq!(filtered.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(filtered.json()["manifests"].as_array().unwrap().len(), 1);
    let other = format!("{referrers}?artifactType=application/x-other");
    let none = hub.request("GET", &other, &[], b"").await.json();
    assert_eq!(none["manifests"], serde_json::json!([]));
}

#[tokio::test]
async fn pushes_need_a_token_and_stay_in_the_users_namespace() {
    let hub = TestHub::start().await;
    let alice = hub.user_with_token("alice").await;
    let bob = hub.user_with_token("bob").await;
    hub.push_blob(&alice, "alice/mine", b"x").await;
    let start = "/v2/alice/mine/blobs/uploads/";

    // Anonymous: pull yes, push no (401 with the Basic challenge).
    let r = hub
        .request("GET", "/v2/alice/mine/tags/list", &[], b"")
        .await;
    assert_eq!(r.status, 200);
    let r = hub.request("POST", start, &[], b"").await;
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED".into()));
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    // Someone else's namespace: 403, saying where to push instead.
    let r = hub
        .request("POST", start, &[("Authorization", &bob)], b"")
        .await;
    assert_eq!((r.status, r.code()), (403, "DENIED".into()));
    assert!(r
        .text()
        .contains("alice/mine is not in your namespace; push to bob/mine"));
    // A wrong token is no login at all.
    let wrong = basic("bob", "cehub_wrong");
    let r = hub
        .request(
            "POST",
            "/v2/bob/x/blobs/uploads/",
            &[("Authorization", &wrong)],
            b"",
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED".into()));
    // A pull-only token cannot push; a token limited to one repository only pushes there.
    let pull_only = basic("bob", &hub.token("bob", &["pull"], &[]).await);
    let r = hub
        .request(
            "POST",
            "/v2/bob/x/blobs/uploads/",
            &[("Authorization", &pull_only)],
            b"",
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "DENIED".into()));
    let one = basic("bob", &hub.token("bob", &["push"], &["bob/one"]).await);
    let r = hub
        .request(
            "POST",
            "/v2/bob/one/blobs/uploads/",
            &[("Authorization", &one)],
            b"",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = hub
        .request(
            "POST",
            "/v2/bob/two/blobs/uploads/",
            &[("Authorization", &one)],
            b"",
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "DENIED".into()));
    // A push-only token cannot pull.
    let r = hub
        .request(
            "GET",
            "/v2/bob/one/tags/list",
            &[("Authorization", &one)],
            b"",
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "DENIED".into()));
    // A bare Bearer token works too.
    let token = hub.token("bob", &["pull", "push"], &[]).await;
    let bearer = format!("Bearer {token}");
    let r = hub
        .request(
            "POST",
            "/v2/bob/x/blobs/uploads/",
            &[("Authorization", &bearer)],
            b"",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}
