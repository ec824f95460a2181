//! A hub in process ([`TestHub`]) and a small response type, so tests read like the raw
//! HTTP tests of the real binary: `hub.request("GET", "/v2/", &[], b"")`.

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use axum::Router;
use tower::ServiceExt;

use ebpf_package::spec::{PackageMeta, ProgramInfo};

/// The router and state of a hub on SQLite in a fresh temp data dir.
pub struct TestHub {
    app: Router,
    /// The hub's state, for setting up what no request can (download counts, stars).
    pub state: hub::AppState,
    dir: tempfile::TempDir,
}

/// What the hub answered.
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The OCI error code of an `{"errors":[…]}` body.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no OCI error: {}", self.text()))
            .to_string()
    }
}

impl TestHub {
    pub async fn start() -> TestHub {
        TestHub::start_with(|_| {}).await
    }

    /// A hub whose options `set` changes first (quota, secure cookies).
    pub async fn start_with(set: impl FnOnce(&mut hub::ServeOptions)) -> TestHub {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut opts = hub::ServeOptions::new("127.0.0.1:0", dir.path().join("data"));
        opts.contact = Some("hub-admins@example.com".into());
        set(&mut opts);
        let state = hub::open(&opts).await.expect("open the hub");
        TestHub {
            app: hub::router(state.clone()),
            state,
            dir,
        }
    }

    /// A second hub process's router on the same data dir and database (a replica).
    pub async fn replica(&self) -> Router {
        let opts = hub::ServeOptions::new("127.0.0.1:0", self.data_dir());
        hub::router(hub::open(&opts).await.expect("open the replica"))
    }

    /// One request through another router (a replica) of this hub.
    pub async fn request_via(
        &self,
        app: &Router,
        peer: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        let addr: std::net::SocketAddr = peer.parse().expect("IP:PORT");
        req = req.extension(axum::extract::ConnectInfo(addr));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body.to_vec())).expect("a request");
        respond(app.clone().oneshot(req).await.expect("infallible")).await
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// One request through the router.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        self.request_from(None, method, path, headers, body).await
    }

    /// A request as if it came over a socket from `peer`, as the real server sees one.
    pub async fn request_from(
        &self,
        peer: Option<&str>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(p) = peer {
            let addr: std::net::SocketAddr = p.parse().expect("IP:PORT");
            req = req.extension(axum::extract::ConnectInfo(addr));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body.to_vec())).expect("a request");
        respond(self.app.clone().oneshot(req).await.expect("infallible")).await
    }

    pub async fn post_json(&self, path: &str, auth: Option<&str>, body: serde_json::Value) -> Resp {
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend(auth.map(|a| ("Authorization", a)));
        self.request("POST", path, &headers, body.to_string().as_bytes())
            .await
    }

    pub async fn register(&self, user: &str, password: &str) {
        let body = serde_json::json!({ "name": user, "password": password });
        let r = self.post_json("/api/v1/register", None, body).await;
        assert_eq!(r.status, 201, "register {user}: {}", r.text());
    }

    /// A logged-in browser of `user`: the `Cookie` header (session and CSRF cookies) and the
    /// CSRF value its forms carry. The session row is written directly, as a login would.
    pub async fn browser(&self, user: &str) -> (String, String) {
        let secret = format!("{user}-session-secret");
        let hash = ebpf_package::digest::sha256(secret.as_bytes());
        self.state
            .db
            .add_session(&hash, user, hub::db::now() + 3600)
            .await
            .unwrap();
        // The form value is bound to the nonce cookie and the session, as the hub derives it.
        let nonce = "0123456789abcdef0123456789abcdef";
        let csrf = hub::web::csrf_value(&self.state.csrf_key, nonce, &secret);
        (format!("hub_session={secret}; hub_csrf={nonce}"), csrf)
    }

    /// A form POST from `browser` ([`TestHub::browser`]) with `fields` plus its CSRF value.
    pub async fn post_form(&self, browser: &(String, String), path: &str, fields: &str) -> Resp {
        let body = format!("csrf={}&{fields}", browser.1);
        let headers = [
            ("Cookie", browser.0.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        self.request("POST", path, &headers, body.as_bytes()).await
    }

    /// Mints a token for `user` with `scopes`, limited to `namespaces` (empty: all).
    pub async fn token(&self, user: &str, scopes: &[&str], namespaces: &[&str]) -> String {
        let body = serde_json::json!({ "label": "t", "scopes": scopes, "namespaces": namespaces });
        let auth = basic(user, &password(user));
        let r = self.post_json("/api/v1/tokens", Some(&auth), body).await;
        assert_eq!(r.status, 201, "token for {user}: {}", r.text());
        r.json()["token"].as_str().expect("a token").to_string()
    }

    /// A new user with a pull+push token; returns the `Authorization` header value.
    pub async fn user_with_token(&self, user: &str) -> String {
        self.register(user, &password(user)).await;
        basic(user, &self.token(user, &["pull", "push"], &[]).await)
    }

    /// A monolithic upload (`POST ?digest=`); returns the digest.
    pub async fn push_blob(&self, auth: &str, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
        let r = self
            .request("POST", &path, &[("Authorization", auth)], bytes)
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        digest
    }

    pub async fn put_manifest(&self, auth: &str, repo: &str, reference: &str, body: &[u8]) -> Resp {
        let headers = [
            ("Authorization", auth),
            ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
        ];
        let path = format!("/v2/{repo}/manifests/{reference}");
        self.request("PUT", &path, &headers, body).await
    }

    /// Pushes a package built by the real packager around `object`, tagged with its
    /// version; returns the manifest PUT's answer.
    pub async fn push_package(
        &self,
        auth: &str,
        repo: &str,
        meta: PackageMeta,
        object: &[u8],
    ) -> Resp {
        let tag = meta.version.clone();
        let pkg = ebpf_package::Package::build(meta, object, None).expect("a package");
        for blob in std::iter::once(&pkg.config_blob).chain(&pkg.layers) {
            self.push_blob(auth, repo, &blob.data.bytes().unwrap())
                .await;
        }
        self.put_manifest(auth, repo, &tag, &pkg.manifest_bytes)
            .await
    }

    /// Files left in the blob store and the upload area.
    pub fn stored_files(&self) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![
            self.data_dir().join("blobs"),
            self.data_dir().join("uploads"),
        ];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                match e.path().is_dir() {
                    true => stack.push(e.path()),
                    false => out.push(e.path()),
                }
            }
        }
        out
    }
}

async fn respond(res: axum::response::Response) -> Resp {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("the body");
    Resp {
        status,
        headers,
        body: body.to_vec(),
    }
}

pub fn password(user: &str) -> String {
    format!("{user}-password")
}

pub fn sha256(bytes: &[u8]) -> String {
    ebpf_package::digest::sha256(bytes)
}

/// An `Authorization: Basic …` value.
pub fn basic(user: &str, secret: &str) -> String {
    use base64::Engine;
    let raw = format!("{user}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// A 64-byte ELF header for EM_BPF: all the hub looks at in a program.
pub fn bpf_object() -> Vec<u8> {
    elf(247)
}

/// A 64-bit little-endian ELF header for `machine` (62 is x86-64).
pub fn elf(machine: u16) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[18..20].copy_from_slice(&machine.to_le_bytes());
    b
}

/// Package metadata with one tracepoint program.
pub fn meta(name: &str, version: &str, description: &str, keywords: &[&str]) -> PackageMeta {
    let mut m = PackageMeta::new(name, version, &format!("{name}.bpf.o"));
    m.description = Some(description.into());
    m.license = Some("GPL-2.0".into());
    m.keywords = keywords.iter().map(|k| k.to_string()).collect();
    m.programs = vec![ProgramInfo {
        name: "handle".into(),
        section: "tracepoint/syscalls/sys_enter_openat".into(),
        prog_type: "tracepoint".into(),
    }];
    m
}

/// A cosign-signature-shaped manifest (not a package; the hub accepts these beside
/// packages) over `config` and `layers`, optionally referring to `subject`.
pub fn image_manifest(config: &str, layers: &[&str], subject: Option<&str>) -> String {
    // A signature has at least one layer: the config's bytes serve when none is given.
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
