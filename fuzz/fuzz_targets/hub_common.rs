//! One in-process hub (SQLite in a temp dir) shared by the hub's fuzz targets: a user with a
//! push token, limits raised so the fuzzer reaches the handlers, and a real package's config
//! and layer already uploaded (`@C`/`@L` in an input become their digests).

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

pub struct Fixture {
    pub runtime: tokio::runtime::Runtime,
    pub app: axum::Router,
    pub auth: String,
    pub config: String,
    pub layer: String,
    _dir: tempfile::TempDir,
}

fn elf() -> Vec<u8> {
    let mut b = vec![0u8; 64];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[18..20].copy_from_slice(&247u16.to_le_bytes());
    b
}

pub fn send(f: &Fixture, method: &str, path: &str, body: Vec<u8>) -> u16 {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("Authorization", &f.auth)
        .header("Content-Type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let app = f.app.clone();
    f.runtime.block_on(async move {
        let res = app.oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let _ = axum::body::to_bytes(res.into_body(), usize::MAX).await;
        status
    })
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let opts = hub::ServeOptions::new("127.0.0.1:0", dir.path().join("data"));
        let mut state = runtime.block_on(hub::open(&opts)).unwrap();
        let mut limits = (*state.limits).clone();
        for l in [&mut limits.publish, &mut limits.register, &mut limits.login_account, &mut limits.login_address] {
            l.max = i64::MAX;
        }
        state.limits = std::sync::Arc::new(limits);
        let app = hub::router(state);
        let mut f = Fixture { runtime, app, auth: String::new(), config: String::new(), layer: String::new(), _dir: dir };
        let reg = serde_json::json!({"name": "fuzz", "password": "fuzz-password"}).to_string();
        assert_eq!(send(&f, "POST", "/api/v1/register", reg.into_bytes()), 201);
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        f.auth = format!("Basic {}", b64("fuzz:fuzz-password"));
        let meta = ebpf_package::spec::PackageMeta::new("p", "1.0.0", "p.bpf.o");
        let pkg = ebpf_package::Package::build(meta, &elf(), None).unwrap();
        for blob in std::iter::once(&pkg.config_blob).chain(&pkg.layers) {
            let digest = ebpf_package::digest::sha256(&blob.data);
            let path = format!("/v2/fuzz/p/blobs/uploads/?digest={digest}");
            assert_eq!(send(&f, "POST", &path, blob.data.clone()), 201);
        }
        f.config = ebpf_package::digest::sha256(&pkg.config_blob.data);
        f.layer = ebpf_package::digest::sha256(&pkg.layers[0].data);
        f
    })
}

/// `data` with `@C` and `@L` replaced by the uploaded config's and layer's digests.
#[allow(dead_code)]
pub fn with_digests(f: &Fixture, data: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(data)
        .replace("@C", &f.config)
        .replace("@L", &f.layer)
        .into_bytes()
}
