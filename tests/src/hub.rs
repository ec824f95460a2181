//! Fixtures for the hub: a real `cargo-ebpf hub serve` on 127.0.0.1 with a fresh data dir,
//! and a minimal HTTP/1.1 client for poking at its registry API byte by byte.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::cargo_ebpf_bin;
use crate::{free_port, http_status};

/// A running hub. Stopped with SIGTERM (and its data dir deleted) on drop.
pub struct Hub {
    child: Child,
    addr: String,
    data: PathBuf,
    /// Owns `data` unless the caller gave a directory to share.
    _dir: Option<tempfile::TempDir>,
}

impl Hub {
    /// A hub on SQLite in a fresh data dir.
    pub fn start() -> Hub {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        Self::launch(&data, None, None, Some(dir), &[])
    }

    /// A hub on SQLite in a fresh data dir, with more `hub serve` arguments.
    pub fn start_with_args(args: &[&str]) -> Hub {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        Self::launch(&data, None, None, Some(dir), args)
    }

    /// A hub keeping metadata in the Postgres at `url` and blobs in `data` (which several
    /// hubs may share).
    pub fn start_on(data: &Path, database: Option<&str>) -> Hub {
        Self::launch(data, database, None, None, &[])
    }

    /// A hub like [`Hub::start_on`] whose verified blobs go to `blob_store`
    /// (`--blob-store registry+http://…`).
    pub fn start_with_blob_store(data: &Path, database: Option<&str>, blob_store: &str) -> Hub {
        Self::launch(data, database, Some(blob_store), None, &[])
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension(format!("{}.log", self.port())))
            .unwrap_or_default()
    }

    fn port(&self) -> &str {
        self.addr.rsplit(':').next().unwrap_or("")
    }

    /// Kills the process with SIGKILL (`kill -9`): no graceful shutdown, requests in
    /// flight are cut.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends one raw HTTP request; see [`request`].
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(&self.addr, method, path, headers, body)
    }

    /// Registers `user` with `password` through the hub's API.
    pub fn register(&self, user: &str, password: &str) {
        let body = serde_json::json!({ "name": user, "password": password }).to_string();
        let r = self.request("POST", "/api/v1/register", &JSON, body.as_bytes());
        assert_eq!(r.status, 201, "register {user}: {}", r.text());
    }

    /// Mints an API token for `user` (authenticated by password) with `scopes` (`pull`,
    /// `push`) limited to `namespaces` (empty: all of the user's).
    pub fn token(
        &self,
        user: &str,
        password: &str,
        scopes: &[&str],
        namespaces: &[&str],
    ) -> String {
        let body = serde_json::json!({
            "label": "test", "scopes": scopes, "namespaces": namespaces,
        })
        .to_string();
        let auth = basic(user, password);
        let headers = [JSON[0], ("Authorization", auth.as_str())];
        let r = self.request("POST", "/api/v1/tokens", &headers, body.as_bytes());
        assert_eq!(r.status, 201, "token for {user}: {}", r.text());
        r.json()["token"].as_str().expect("a token").to_string()
    }

    /// A new user with a push+pull token: returns the `Authorization` header value.
    pub fn user_with_token(&self, user: &str) -> (String, String) {
        let password = format!("{user}-password");
        self.register(user, &password);
        let token = self.token(user, &password, &["pull", "push"], &[]);
        (basic(user, &token), token)
    }

    fn launch(
        data: &Path,
        database: Option<&str>,
        blob_store: Option<&str>,
        dir: Option<tempfile::TempDir>,
        extra: &[&str],
    ) -> Hub {
        let mut dir = dir;
        let mut last_log = String::new();
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let port = addr.rsplit(':').next().unwrap().to_string();
            std::fs::create_dir_all(data.parent().expect("data dir parent")).expect("data parent");
            let log_path = data.with_extension(format!("{port}.log"));
            let log = std::fs::File::create(&log_path).expect("hub log file");
            let mut cmd = Command::new(cargo_ebpf_bin());
            cmd.args(["hub", "serve", "--addr", &addr, "--data"])
                .arg(data)
                .env_remove("CARGO_EBPF_HUB_DATABASE")
                .env_remove("CARGO_EBPF_HUB_BLOB_STORE")
                .env_remove("CARGO_EBPF_HUB_CONTACT")
                .args(extra)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log);
            if let Some(url) = database {
                cmd.args(["--database", url]);
            }
            if let Some(url) = blob_store {
                cmd.args(["--blob-store", url]);
            }
            let child = cmd.spawn().expect("start cargo-ebpf hub serve");
            let mut hub = Hub {
                child,
                addr,
                data: data.to_path_buf(),
                _dir: dir.take(),
            };
            if hub.wait_ready(Duration::from_secs(30)) {
                return hub;
            }
            last_log = hub.log();
            dir = hub._dir.take();
        }
        panic!("the hub did not start; last log:\n{last_log}");
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if http_status(&self.addr, "/v2/").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // SIGTERM first so the hub shuts down cleanly; kill if it lingers.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const JSON: [(&str, &str); 1] = [("Content-Type", "application/json")];

/// An `Authorization: Basic …` header value.
/// The CSRF value a page embeds in its forms (derived by the hub from the browser's nonce
/// cookie and session, so it differs from the cookie).
/// `NAME=VALUE` of the cookie `name` a response sets (a login sets a session and a new CSRF
/// nonce).
pub fn set_cookie(r: &Response, name: &str) -> String {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set"))
}

pub fn csrf_field(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("a form with a CSRF field") + marker.len();
    html[at..at + html[at..].find('"').expect("a closing quote")].to_string()
}

pub fn basic(user: &str, secret: &str) -> String {
    use base64::Engine;
    let raw = format!("{user}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// An HTTP response: status, headers (names lowercased), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); `Content-Length` is
/// set from `body` unless `headers` gives one. When `headers` announces more than `body`
/// holds, the connection is half-closed after `body`, like a client that died mid-upload;
/// the server may then answer with an error or just close (status 0).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    request_waiting(addr, method, path, headers, body, Duration::from_secs(30))
}

/// [`request`], waiting up to `wait` for the answer (a browser running a long script).
pub fn request_waiting(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    wait: Duration,
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect to the hub");
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let announced = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().expect("a numeric Content-Length"));
    if announced.is_none() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The peer may answer and close before reading a body it refuses.
    let _ = stream.write_all(body);
    if announced.is_some_and(|n| n > body.len()) {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    read_response(&mut stream, method == "HEAD")
}

fn read_response(stream: &mut TcpStream, head_only: bool) -> Response {
    let raw = read_message(stream, head_only);
    if raw.is_empty() {
        return Response {
            status: 0,
            headers: vec![],
            body: vec![],
        };
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if head_only {
        body.clear();
    } else if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

/// Reads until the peer closes or, when the head says `Content-Length`, until the body is
/// complete (some servers keep the connection open despite `Connection: close`).
fn read_message(stream: &mut TcpStream, head_only: bool) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return raw,
            Ok(n) => n,
        };
        raw.extend_from_slice(&buf[..n]);
        let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let length = head
            .lines()
            .filter_map(|l| l.strip_prefix("content-length:"))
            .find_map(|v| v.trim().parse::<usize>().ok());
        match length {
            Some(_) if head_only => return raw,
            Some(len) if raw.len() >= split + 4 + len => return raw,
            _ => {}
        }
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

/// haproxy in front of some backends on 127.0.0.1, round-robin over a new connection per
/// request, checking each backend's `/v2/` every 200 ms and (by default) retrying a request
/// whose backend refused or cut the connection on another one. Stopped on drop.
pub struct LoadBalancer {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl LoadBalancer {
    pub fn start(backends: &[&str]) -> LoadBalancer {
        Self::start_with(backends, true)
    }

    /// Like [`LoadBalancer::start`]; without `retries`, a request cut by a dying backend
    /// fails instead of being sent again to another one.
    pub fn start_with(backends: &[&str], retries: bool) -> LoadBalancer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut last = String::new();
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let mut lines: Vec<String> = [
                "global",
                "    maxconn 256",
                "defaults",
                "    mode http",
                "    timeout connect 2s",
                "    timeout client 30s",
                "    timeout server 30s",
                "    retries 3",
                "    option redispatch 1",
                "frontend hubs",
            ]
            .map(String::from)
            .to_vec();
            if retries {
                lines.insert(9, "    retry-on conn-failure empty-response".into());
            }
            lines.push(format!("    bind {addr}"));
            lines.extend(
                [
                    "    default_backend replicas",
                    "backend replicas",
                    "    balance roundrobin",
                    "    option httpchk GET /v2/",
                    "    http-check expect status 200,401",
                    "    default-server inter 200ms fall 1 rise 2",
                ]
                .map(String::from),
            );
            for (i, b) in backends.iter().enumerate() {
                lines.push(format!("    server hub{i} {b} check"));
            }
            let config = lines.join("\n") + "\n";
            let path = dir.path().join("haproxy.cfg");
            std::fs::write(&path, config).expect("write haproxy.cfg");
            let log = dir.path().join("haproxy.log");
            let mut child = Command::new("haproxy")
                .args(["-db", "-f"])
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log).expect("log"))
                .stderr(std::fs::File::create(dir.path().join("haproxy.err")).expect("log"))
                .spawn()
                .expect("start haproxy");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if http_status(&addr, "/v2/").is_some() {
                    return LoadBalancer {
                        child,
                        addr,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            last = std::fs::read_to_string(dir.path().join("haproxy.err")).unwrap_or_default();
        }
        panic!("haproxy did not start: {last}");
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where Debian's PostgreSQL 15 server binaries live.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A throwaway PostgreSQL cluster owned by the test: `initdb` into a temp dir and `pg_ctl`
/// on a free 127.0.0.1 port, run as the `postgres` user (the server refuses root).
/// Stopped and deleted on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    pub fn start() -> Postgres {
        assert!(
            Path::new(PG_BIN).join("initdb").exists(),
            "{PG_BIN}/initdb is missing: apt-get install postgresql-15"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("pg");
        std::fs::create_dir(&data).unwrap();
        chown_postgres(dir.path());
        chown_postgres(&data);
        as_postgres(
            "initdb",
            &["-A", "trust", "-U", "postgres", "-E", "UTF8", "-D"],
            &data,
        );
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
                dir.path().display()
            );
            let log = dir.path().join("pg.log");
            let out = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(Path::new(PG_BIN).join("pg_ctl"))
                .args(["start", "-w", "-t", "30", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &options])
                .output()
                .expect("run pg_ctl");
            if out.status.success() {
                return Postgres { dir, port };
            }
            last = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("postgres did not start:\n{last}");
    }

    /// A URL for database `db`, created on first use.
    pub fn url(&self, db: &str) -> String {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(PG_BIN).join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                db,
            ])
            .output()
            .expect("run createdb");
        let exists = String::from_utf8_lossy(&out.stderr).contains("already exists");
        assert!(
            out.status.success() || exists,
            "createdb {db}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(PG_BIN).join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.dir.path().join("pg"))
            .output();
    }
}

fn chown_postgres(path: &Path) {
    let status = Command::new("chown")
        .arg("postgres:postgres")
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success(), "chown postgres {}", path.display());
}

fn as_postgres(tool: &str, args: &[&str], dir: &Path) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(Path::new(PG_BIN).join(tool))
        .args(args)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
