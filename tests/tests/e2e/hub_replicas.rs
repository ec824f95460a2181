//! Hub replicas behind a real load balancer: two `hub serve` processes with their own data
//! dirs on one Postgres, blobs in a docker-registry (`--blob-store registry+http://…`),
//! and Debian's haproxy round-robin in front on 127.0.0.1. Nothing is sticky: a chunked
//! upload whose requests alternate replicas completes, a login on one is a login on the
//! other, and when one replica is killed with `kill -9` in the middle of a loop of pulls,
//! only the pulls in flight at that moment may fail (none, when haproxy retries a cut
//! request on the other replica). The figures are printed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ebpf_e2e_tests::hub::{basic, request, Hub, LoadBalancer, Postgres, Response};
use ebpf_e2e_tests::Registry;
use ebpf_e2e_tests::{needs, sha256, Need};

/// How many pulls the kill loop makes, and the most it may take.
const PULLS: usize = 150;
const PULL_LOOP_LIMIT: Duration = Duration::from_secs(120);

/// [`PULLS`] pulls through `addr`, counting each in `done`: (start of the loop, [(when a
/// pull began, whether it succeeded, when it ended)]).
type PullLog = (Instant, Vec<(Duration, bool, Duration)>);

fn pull_loop(addr: &str, done: &AtomicUsize) -> PullLog {
    let start = Instant::now();
    let mut results = Vec::new();
    for _ in 0..PULLS {
        if start.elapsed() > PULL_LOOP_LIMIT {
            break;
        }
        let began = start.elapsed();
        let ok = pull(addr, "rita/pulled", "1.0.0");
        results.push((began, ok, start.elapsed()));
        done.fetch_add(1, Ordering::SeqCst);
    }
    (start, results)
}

/// A request that reports a broken connection as status 0 instead of panicking.
fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    catch_unwind(AssertUnwindSafe(|| {
        request(addr, method, path, headers, body)
    }))
    .unwrap_or(Response {
        status: 0,
        headers: vec![],
        body: vec![],
    })
}

/// One pull through `addr`: the manifest by tag, then every blob, digests checked.
fn pull(addr: &str, repo: &str, tag: &str) -> bool {
    let m = try_request(
        addr,
        "GET",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[],
        b"",
    );
    if m.status != 200 {
        return false;
    }
    let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&m.body) else {
        return false;
    };
    let mut digests = vec![manifest["config"]["digest"]
        .as_str()
        .unwrap_or("")
        .to_string()];
    for l in manifest["layers"].as_array().into_iter().flatten() {
        digests.push(l["digest"].as_str().unwrap_or("").to_string());
    }
    digests.iter().all(|d| {
        let b = try_request(addr, "GET", &format!("/v2/{repo}/blobs/{d}"), &[], b"");
        b.status == 200 && sha256(&b.body) == *d
    })
}

/// Pushes a package built by the real packager, one blob per request, through `addr`.
fn push_package(addr: &str, auth: &str, repo: &str, version: &str) {
    let meta = ebpf_e2e_tests::sample_meta(repo.rsplit('/').next().unwrap(), version);
    let mut object = vec![0u8; 64];
    object[..4].copy_from_slice(b"\x7fELF");
    object[4] = 2;
    object[5] = 1;
    object[18..20].copy_from_slice(&247u16.to_le_bytes());
    let pkg = ebpf_package::Package::build(meta, &object, None).unwrap();
    for blob in std::iter::once(&pkg.config_blob).chain(&pkg.layers) {
        let digest = sha256(&blob.data.bytes().unwrap());
        let r = request(
            addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            &[("Authorization", auth)],
            &blob.data.bytes().unwrap(),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = request(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{version}"),
        &[
            ("Authorization", auth),
            ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
        ],
        &pkg.manifest_bytes,
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

/// POST, PATCH…, PUT of `content` in `chunks` pieces, request `i` sent to `addrs[i % n]`.
fn chunked_upload(addrs: &[&str], auth: &str, repo: &str, content: &[u8], chunks: usize) {
    let digest = sha256(content);
    let at = |i: usize| addrs[i % addrs.len()];
    let r = request(
        at(0),
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[("Authorization", auth)],
        b"",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let mut location = r.header("location").unwrap().to_string();
    let size = content.len().div_ceil(chunks);
    for (i, piece) in content.chunks(size).enumerate() {
        let start = i * size;
        let range = format!("{start}-{}", start + piece.len() - 1);
        let headers = [("Authorization", auth), ("Content-Range", range.as_str())];
        let r = request(at(i + 1), "PATCH", &location, &headers, piece);
        assert_eq!(r.status, 202, "chunk {i} on {}: {}", at(i + 1), r.text());
        assert_eq!(
            r.header("range"),
            Some(format!("0-{}", start + piece.len() - 1).as_str())
        );
        location = r.header("location").unwrap().to_string();
    }
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = request(
        at(chunks + 1),
        "PUT",
        &format!("{location}{sep}digest={digest}"),
        &[("Authorization", auth)],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // Until a manifest references it, only the pusher may read the blob (issue 11).
    for addr in addrs {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let got = request(addr, "GET", &path, &[("Authorization", auth)], b"");
        assert_eq!(sha256(&got.body), digest, "read back through {addr}");
        assert_eq!(request(addr, "GET", &path, &[], b"").status, 404);
    }
}

/// The session and CSRF cookies of a login through `addr` (the CSRF value comes from the
/// page; the login rotates it and binds it to the session).
fn login(addr: &str, user: &str, password: &str) -> String {
    let page = request(addr, "GET", "/login", &[], b"");
    let csrf_cookie = ebpf_e2e_tests::hub::set_cookie(&page, "hub_csrf");
    let csrf = ebpf_e2e_tests::hub::csrf_field(&page.text());
    let form = format!("name={user}&password={password}&csrf={csrf}");
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", csrf_cookie.as_str()),
    ];
    let r = request(addr, "POST", "/login", &headers, form.as_bytes());
    assert_eq!(r.status, 303, "{}", r.text());
    format!(
        "{}; {}",
        ebpf_e2e_tests::hub::set_cookie(&r, "hub_session"),
        ebpf_e2e_tests::hub::set_cookie(&r, "hub_csrf")
    )
}

#[test]
fn replicas_behind_a_load_balancer_share_uploads_sessions_and_survive_a_kill() {
    if !needs(&[
        Need::Postgres,
        Need::Registry,
        Need::Tool("haproxy", "haproxy"),
    ]) {
        return;
    }
    let store = Registry::start_with_auth("store", "store-secret");
    let pg = Postgres::start();
    let url = pg.url("replicas");
    let tmp = tempfile::tempdir().unwrap();
    let blob_store = format!(
        "registry+http://store:store-secret@{}/hub-blobs",
        store.addr()
    );
    // Separate data dirs: the replicas share only Postgres and the blob store.
    let mut a = Hub::start_with_blob_store(&tmp.path().join("a/data"), Some(&url), &blob_store);
    let b = Hub::start_with_blob_store(&tmp.path().join("b/data"), Some(&url), &blob_store);
    let lb = LoadBalancer::start(&[a.addr(), b.addr()]);
    let via = lb.addr();

    let body = serde_json::json!({"name": "rita", "password": "rita-password"}).to_string();
    let r = request(
        via,
        "POST",
        "/api/v1/register",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let token_body = serde_json::json!({"label": "lb", "scopes": ["pull", "push"]}).to_string();
    let r = request(
        via,
        "POST",
        "/api/v1/tokens",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &basic("rita", "rita-password")),
        ],
        token_body.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let auth = basic("rita", r.json()["token"].as_str().unwrap());

    // 3 MiB in 5 chunks (each over a database piece), alternating replicas directly, then
    // the same through the balancer's round-robin.
    let content: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    chunked_upload(
        &[a.addr(), b.addr()],
        &auth,
        "rita/alternating",
        &content,
        5,
    );
    let other: Vec<u8> = content.iter().rev().copied().collect();
    chunked_upload(&[via], &auth, "rita/balanced", &other, 4);
    assert!(
        std::fs::read_dir(tmp.path().join("a/data/uploads"))
            .unwrap()
            .next()
            .is_none()
            && std::fs::read_dir(tmp.path().join("b/data/uploads"))
                .unwrap()
                .next()
                .is_none(),
        "upload bytes were left in a replica's data dir"
    );

    push_package(via, &auth, "rita/pulled", "1.0.0");

    // A login through the balancer holds on whichever replica answers.
    let cookies = login(via, "rita", "rita-password");
    for _ in 0..4 {
        let page = request(via, "GET", "/tokens", &[("Cookie", &cookies)], b"");
        assert_eq!(page.status, 200, "{}", page.text());
        assert!(page.text().contains("id=\"me\">rita<"), "{}", page.text());
    }

    // Rate limits through the balancer: bad logins (one CSRF cookie, so every request is
    // a POST and round-robin spreads them over both replicas) until a 429.
    let page = request(via, "GET", "/login", &[], b"");
    let c = ebpf_e2e_tests::hub::set_cookie(&page, "hub_csrf");
    let form = format!(
        "name=rita&password=wrong&csrf={}",
        ebpf_e2e_tests::hub::csrf_field(&page.text())
    );
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", c.as_str()),
    ];
    let mut before_429 = 0;
    while before_429 < 45 && request(via, "POST", "/login", &headers, form.as_bytes()).status != 429
    {
        before_429 += 1;
    }
    println!(
        "FIGURE rate limit: {before_429} bad logins through the balancer before a 429 \
         (the limit is 20 a minute per address; more than that means each replica counts alone)"
    );
    // The counts live in the shared database: replicas do not each allow the limit.
    assert!(
        before_429 <= 20,
        "{before_429} guesses got through two replicas"
    );

    // Pulls in a loop through two balancers over the same replicas, one that retries a cut
    // request on the other replica and one that does not; one replica is killed with
    // `kill -9` a third of the way in.
    let bare = LoadBalancer::start_with(&[a.addr(), b.addr()], false);
    let done = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = [via.to_string(), bare.addr().to_string()]
        .into_iter()
        .map(|target| {
            let counter = done.clone();
            std::thread::spawn(move || pull_loop(&target, &counter))
        })
        .collect();
    while done.load(Ordering::SeqCst) < 2 * PULLS / 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed_at = Instant::now();
    a.kill9();
    for (label, handle) in ["with retries", "without retries"].into_iter().zip(loops) {
        let (start, results) = handle.join().unwrap();
        let killed = killed_at.duration_since(start);
        let ok = results.iter().filter(|r| r.1).count();
        let failed: Vec<_> = results.iter().filter(|r| !r.1).collect();
        println!(
            "FIGURE kill -9 of one replica after {:.0} ms, haproxy {label}: {} pulls, {ok} OK, {} failed",
            killed.as_secs_f64() * 1000.0,
            results.len(),
            failed.len()
        );
        assert_eq!(results.len(), PULLS, "the pull loop ran out of time");
        // A failure is a pull in flight when the replica died, or one sent in the health
        // check's window (200 ms) before haproxy marked it down.
        let window = Duration::from_millis(1000);
        for (began, _, ended) in &failed {
            assert!(
                *ended >= killed && *began <= killed + window,
                "a pull from {began:?} to {ended:?} failed, away from the kill at {killed:?}"
            );
        }
        assert!(failed.len() <= 5, "{} pulls failed {label}", failed.len());
    }
    // The survivor still serves everything.
    assert!(pull(b.addr(), "rita/pulled", "1.0.0"));
}
