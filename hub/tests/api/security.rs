//! Hostile clients and hostile packages (issue 11): password guessing and sign-up floods
//! are limited, also across replicas; argon2 stays off the async workers and is not redone
//! per request; reserved names; security headers, session-bound CSRF, Secure cookies, a
//! private database; honest download counts; only packages stored, only referenced blobs
//! served, a quota and a collector; objects extracted once, bounded.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{basic, bpf_object, elf, meta, password, sha256, Resp, TestHub};

async fn guess(hub: &TestHub, peer: &str, user: &str, secret: &str) -> u16 {
    let auth = basic(user, secret);
    hub.request_from(Some(peer), "GET", "/v2/", &[("Authorization", &auth)], b"")
        .await
        .status
}

#[tokio::test]
async fn password_guesses_are_limited_per_account_across_replicas() {
    let hub = TestHub::start().await;
    hub.register("alice", &password("alice")).await;
    let replica = hub.replica().await;
    let wrong = basic("alice", "not-her-password");
    let mut statuses = Vec::new();
    for i in 0..12 {
        // Every guess from another address, alternately through each hub process.
        let peer = format!("198.51.100.{}:5000", i + 1);
        let headers = [("Authorization", wrong.as_str())];
        let r = match i % 2 {
            0 => {
                hub.request_from(Some(&peer), "GET", "/v2/", &headers, b"")
                    .await
            }
            _ => {
                let body = json!({"scopes": ["push"]}).to_string();
                let headers = [
                    ("Authorization", wrong.as_str()),
                    ("Content-Type", "application/json"),
                ];
                hub.request_via(
                    &replica,
                    &peer,
                    "POST",
                    "/api/v1/tokens",
                    &headers,
                    body.as_bytes(),
                )
                .await
            }
        };
        statuses.push(r.status);
    }
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429, 429], "{statuses:?}");
    // Even the right password now waits: a guess that hit would mint no push token.
    let body = json!({"scopes": ["push"]});
    let right = basic("alice", &password("alice"));
    let r = hub.post_json("/api/v1/tokens", Some(&right), body).await;
    assert_eq!(r.status, 429, "{}", r.text());
}

#[tokio::test]
async fn password_guesses_are_limited_per_address() {
    let hub = TestHub::start().await;
    let mut statuses = Vec::new();
    for i in 0..22 {
        statuses.push(guess(&hub, "203.0.113.9:1234", &format!("user{i}"), "guess-guess").await);
    }
    assert_eq!(statuses[..20], [401; 20], "{statuses:?}");
    assert_eq!(statuses[20..], [429, 429], "{statuses:?}");
    // Another address is not held back.
    assert_eq!(
        guess(&hub, "203.0.113.10:1234", "user0", "guess-guess").await,
        401
    );
}

#[tokio::test]
async fn registrations_are_limited_per_address_on_the_api() {
    let hub = TestHub::start().await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let body = json!({"name": format!("flood{i}"), "password": "long-enough"}).to_string();
        let headers = [("Content-Type", "application/json")];
        let r = hub
            .request_from(
                Some("192.0.2.50:1"),
                "POST",
                "/api/v1/register",
                &headers,
                body.as_bytes(),
            )
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses[..10], [201; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429, 429], "{statuses:?}");
}

/// The time one request that checks a password with argon2 takes.
async fn one_hash(hub: &TestHub, peer: &str) -> Duration {
    let t = Instant::now();
    assert_eq!(guess(hub, peer, "nobody", "wrong-password").await, 401);
    t.elapsed()
}

#[tokio::test]
async fn a_verified_password_is_not_hashed_on_every_request() {
    let hub = TestHub::start().await;
    hub.register("alice", &password("alice")).await;
    let hash = one_hash(&hub, "192.0.2.1:1").await;
    let auth = basic("alice", &password("alice"));
    assert_eq!(
        guess(&hub, "192.0.2.2:1", "alice", &password("alice")).await,
        200
    );
    let t = Instant::now();
    for _ in 0..20 {
        let r = hub
            .request("GET", "/v2/", &[("Authorization", &auth)], b"")
            .await;
        assert_eq!(r.status, 200);
    }
    let twenty = t.elapsed();
    assert!(
        twenty < hash * 5,
        "20 password requests took {twenty:?}; one argon2 check {hash:?}"
    );
}

/// On a single-threaded runtime, an argon2 check on the async worker would stall every
/// other request; on the blocking pool an anonymous pull goes through meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn wrong_passwords_do_not_stall_anonymous_pulls() {
    let hub = Arc::new(TestHub::start().await);
    let hash = one_hash(&hub, "192.0.2.1:1").await;
    // Timed from when the guesses are on their way: they run while this request waits.
    let t = Instant::now();
    let mut guesses = Vec::new();
    for i in 0..4 {
        let hub = hub.clone();
        guesses.push(tokio::spawn(async move {
            guess(
                &hub,
                &format!("192.0.2.{}:1", 10 + i),
                "nobody",
                "wrong-password",
            )
            .await
        }));
    }
    // Let the guesses reach their password checks (this sleep ends late if they block).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = hub.request("GET", "/v2/nobody/x/tags/list", &[], b"").await;
    let anonymous = t.elapsed();
    assert_eq!(r.status, 404);
    for g in guesses {
        assert_eq!(g.await.unwrap(), 401);
    }
    assert!(
        anonymous < hash / 3 + Duration::from_millis(5),
        "an anonymous request took {anonymous:?} beside wrong passwords; one check {hash:?}"
    );
}

#[tokio::test]
async fn reserved_names_cannot_be_registered() {
    let hub = TestHub::start().await;
    for name in ["admin", "root", "api", "v2", "login", "tokens"] {
        let body = json!({"name": name, "password": "long-enough"});
        let r = hub.post_json("/api/v1/register", None, body).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert!(r.text().contains("reserved"), "{}", r.text());
    }
}

fn set_cookies(r: &Resp) -> Vec<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// `name=value` of the cookie `name` set by `r`.
fn cookie_pair(r: &Resp, name: &str) -> String {
    set_cookies(r)
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie: {:?}", set_cookies(r)))
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// The CSRF value a page embeds in its forms.
fn csrf_field(page: &Resp) -> String {
    let text = page.text();
    let at = text
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF field");
    let rest = &text[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

async fn form(hub: &TestHub, path: &str, cookies: &str, body: &str) -> Resp {
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookies),
    ];
    hub.request("POST", path, &headers, body.as_bytes()).await
}

/// Logs `user` in through the form; returns the browser's cookies after login.
async fn log_in(hub: &TestHub, user: &str) -> String {
    let page = hub.request("GET", "/login", &[], b"").await;
    let nonce = cookie_pair(&page, "hub_csrf");
    let body = format!(
        "name={user}&password={}&csrf={}",
        password(user),
        csrf_field(&page)
    );
    let r = form(hub, "/login", &nonce, &body).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let fresh = cookie_pair(&r, "hub_csrf");
    assert_ne!(fresh, nonce, "login rotates the CSRF nonce");
    format!("{}; {fresh}", cookie_pair(&r, "hub_session"))
}

#[tokio::test]
async fn pages_carry_security_headers_and_the_new_token_is_not_cached() {
    let hub = TestHub::start().await;
    let home = hub.request("GET", "/", &[], b"").await;
    let csp = home.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(home.header("x-frame-options"), Some("DENY"));
    assert_eq!(home.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(home.header("referrer-policy"), Some("same-origin"));
    let api = hub.request("GET", "/v2/_catalog", &[], b"").await;
    assert_eq!(api.header("x-content-type-options"), Some("nosniff"));

    hub.register("alice", &password("alice")).await;
    let cookies = log_in(&hub, "alice").await;
    let page = hub
        .request("GET", "/tokens", &[("Cookie", &cookies)], b"")
        .await;
    let body = format!("label=ci&pull=on&days=7&csrf={}", csrf_field(&page));
    let r = form(&hub, "/tokens", &cookies, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("cehub_"), "the new token is shown");
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn csrf_values_are_the_hubs_bound_to_the_session() {
    let hub = TestHub::start().await;
    hub.register("alice", &password("alice")).await;
    // An attacker who plants a cookie of their choosing and sends the same value.
    let planted = "0123456789abcdef0123456789abcdef";
    let body = format!("name=mallory&password=long-enough&csrf={planted}");
    let r = form(&hub, "/register", &format!("hub_csrf={planted}"), &body).await;
    assert_eq!(r.status, 403, "{}", r.text());

    // A value from before the login is void after it, and another session's value too.
    let before = hub.request("GET", "/login", &[], b"").await;
    let old_field = csrf_field(&before);
    let cookies = log_in(&hub, "alice").await;
    let r = form(&hub, "/logout", &cookies, &format!("csrf={old_field}")).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let page = hub
        .request("GET", "/tokens", &[("Cookie", &cookies)], b"")
        .await;
    let field = csrf_field(&page);
    let other = log_in(&hub, "alice").await;
    let r = form(&hub, "/logout", &other, &format!("csrf={field}")).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // The page's own value works; the JSON API wants it too.
    let yank = "/api/v1/packages/alice/x/versions/1.0.0/yank";
    let headers = [("Cookie", cookies.as_str()), ("X-Hub-Csrf", planted)];
    assert_eq!(hub.request("POST", yank, &headers, b"").await.status, 403);
    let r = form(&hub, "/logout", &cookies, &format!("csrf={field}")).await;
    assert_eq!(r.status, 303, "{}", r.text());
}

#[tokio::test]
async fn cookies_are_secure_behind_tls_and_the_database_is_private() {
    let hub = TestHub::start_with(|o| o.secure_cookies = true).await;
    let page = hub.request("GET", "/login", &[], b"").await;
    assert!(
        set_cookies(&page).iter().all(|c| c.contains("; Secure")),
        "{:?}",
        set_cookies(&page)
    );
    assert!(page.header("strict-transport-security").is_some());
    hub.register("alice", &password("alice")).await;
    let nonce = cookie_pair(&page, "hub_csrf");
    let body = format!(
        "name=alice&password={}&csrf={}",
        password("alice"),
        csrf_field(&page)
    );
    let r = form(&hub, "/login", &nonce, &body).await;
    assert!(
        set_cookies(&r).iter().all(|c| c.contains("; Secure")),
        "{:?}",
        set_cookies(&r)
    );

    let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(hub.data_dir().join("hub.db")), 0o600);
    assert_eq!(mode(hub.data_dir()), 0o700);
    let plain = TestHub::start().await;
    let page = plain.request("GET", "/login", &[], b"").await;
    assert!(set_cookies(&page).iter().all(|c| !c.contains("Secure")));
}

async fn downloads(hub: &TestHub, repo: &str) -> i64 {
    let r = hub
        .request("GET", &format!("/api/v1/packages/{repo}"), &[], b"")
        .await;
    r.json()["downloads"].as_i64().unwrap()
}

/// Waits for the counter (it is bumped off the request path) to settle at `want`.
async fn settle(hub: &TestHub, repo: &str, want: i64) -> i64 {
    let mut n = 0;
    for _ in 0..50 {
        n = downloads(hub, repo).await;
        if n >= want {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return downloads(hub, repo).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n
}

#[tokio::test]
async fn one_client_pulling_in_a_loop_counts_once() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("alice").await;
    let r = hub
        .push_package(
            &auth,
            "alice/counted",
            meta("counted", "1.0.0", "d", &[]),
            &bpf_object(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let path = "/v2/alice/counted/manifests/1.0.0";
    for _ in 0..30 {
        let r = hub
            .request_from(Some("192.0.2.77:999"), "GET", path, &[], b"")
            .await;
        assert_eq!(r.status, 200);
    }
    let r = hub
        .request_from(
            Some("192.0.2.77:999"),
            "GET",
            "/p/alice/counted/download/1.0.0",
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(settle(&hub, "alice/counted", 1).await, 1);
    hub.request_from(Some("192.0.2.78:999"), "GET", path, &[], b"")
        .await;
    assert_eq!(settle(&hub, "alice/counted", 2).await, 2);
}

/// A tar+gzip layer holding `files`.
fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        builder.append_data(&mut h, name, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
async fn a_docker_image_of_an_x86_binary_is_refused() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("mallory").await;
    let repo = "mallory/ls";
    let layer = tar_gz(&[("bin/ls", &elf(62))]);
    let config = json!({"architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/ls"]}, "rootfs": {"type": "layers", "diff_ids": []}})
    .to_string();
    let layer_digest = hub.push_blob(&auth, repo, &layer).await;
    let config_digest = hub.push_blob(&auth, repo, config.as_bytes()).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": layer_digest, "size": layer.len()}],
    })
    .to_string();
    let r = hub
        .put_manifest(&auth, repo, "latest", manifest.as_bytes())
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "MANIFEST_INVALID".into()),
        "{}",
        r.text()
    );
    assert!(r.text().contains("eBPF packages only"), "{}", r.text());
    // Neither its layer nor any other blob without a manifest is served to others.
    let blob = format!("/v2/{repo}/blobs/{layer_digest}");
    assert_eq!(hub.request("GET", &blob, &[], b"").await.status, 404);
    assert_eq!(
        hub.request("GET", &blob, &[("Authorization", &auth)], b"")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_users_storage_is_limited_by_the_quota() {
    let hub = TestHub::start_with(|o| o.user_quota = 3000).await;
    let auth = hub.user_with_token("quinn").await;
    hub.push_blob(&auth, "quinn/a", &[1u8; 2000]).await;
    let big = vec![2u8; 2000];
    let digest = sha256(&big);
    let path = format!("/v2/quinn/b/blobs/uploads/?digest={digest}");
    let r = hub
        .request("POST", &path, &[("Authorization", &auth)], &big)
        .await;
    assert_eq!(r.status, 507, "{}", r.text());
    assert!(r.text().contains("storage"), "{}", r.text());
    let blob = format!("/v2/quinn/b/blobs/{digest}");
    assert_eq!(
        hub.request("HEAD", &blob, &[("Authorization", &auth)], b"")
            .await
            .status,
        404
    );
    // Another user has a quota of their own.
    let other = hub.user_with_token("rita").await;
    hub.push_blob(&other, "rita/a", &big).await;
}

#[tokio::test]
async fn the_collector_deletes_blobs_no_manifest_references() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("alice").await;
    let r = hub
        .push_package(
            &auth,
            "alice/kept",
            meta("kept", "1.0.0", "d", &[]),
            &bpf_object(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let junk: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let digest = hub.push_blob(&auth, "alice/junk", &junk).await;
    let before = hub.stored_files().len();
    // A young blob may still be waiting for its manifest: kept.
    let kept = hub::gc::collect(&hub.state.db, &hub.state.blobs, 3600)
        .await
        .unwrap();
    assert_eq!(kept.blobs, 0);
    let done = hub::gc::collect(&hub.state.db, &hub.state.blobs, -10)
        .await
        .unwrap();
    assert_eq!((done.blobs, done.bytes), (1, junk.len() as u64));
    assert_eq!(hub.stored_files().len(), before - 1);
    let as_alice = [("Authorization", auth.as_str())];
    let gone = format!("/v2/alice/junk/blobs/{digest}");
    assert_eq!(hub.request("GET", &gone, &as_alice, b"").await.status, 404);
    // The package is whole.
    let m = hub
        .request("GET", "/v2/alice/kept/manifests/1.0.0", &[], b"")
        .await
        .json();
    for d in [&m["config"], &m["layers"][0]] {
        let path = format!("/v2/alice/kept/blobs/{}", d["digest"].as_str().unwrap());
        assert_eq!(hub.request("GET", &path, &[], b"").await.status, 200);
    }
}

#[tokio::test]
async fn the_object_is_taken_out_of_its_layer_once_at_push() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("alice").await;
    let r = hub
        .push_package(
            &auth,
            "alice/once",
            meta("once", "1.0.0", "d", &[]),
            &bpf_object(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // With the layer's file gone, the download still works: it never opens the layer.
    let m = hub
        .request("GET", "/v2/alice/once/manifests/1.0.0", &[], b"")
        .await
        .json();
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    let hex = &layer["sha256:".len()..];
    std::fs::remove_file(
        hub.data_dir()
            .join("blobs/sha256")
            .join(&hex[..2])
            .join(hex),
    )
    .unwrap();
    let r = hub
        .request("GET", "/p/alice/once/download/1.0.0", &[], b"")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, bpf_object());
}

#[tokio::test]
async fn a_layer_that_inflates_past_the_bound_is_refused_at_push() {
    let hub = TestHub::start().await;
    let auth = hub.user_with_token("alice").await;
    let repo = "alice/bomb";
    let m = meta("bomb", "1.0.0", "d", &[]);
    let pkg = ebpf_package::Package::build(m.clone(), &bpf_object(), None).unwrap();
    // The same package, but its layer holds 80 MiB of zeros before the object.
    let zeros = vec![0u8; 80 << 20];
    let layer = tar_gz(&[("pad", &zeros), (m.object.as_str(), &bpf_object())]);
    assert!(layer.len() < 1 << 20, "a small download: {}", layer.len());
    let mut manifest: serde_json::Value = serde_json::from_slice(&pkg.manifest_bytes).unwrap();
    manifest["layers"][0]["digest"] = json!(sha256(&layer));
    manifest["layers"][0]["size"] = json!(layer.len());
    hub.push_blob(&auth, repo, &pkg.config_blob.data.bytes().unwrap())
        .await;
    hub.push_blob(&auth, repo, &layer).await;
    let body = serde_json::to_vec(&manifest).unwrap();
    let r = hub.put_manifest(&auth, repo, "1.0.0", &body).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "MANIFEST_INVALID".into()),
        "{}",
        r.text()
    );
}
