//! The hub's web face in a real headless Chromium (Debian's chromium + chromedriver, driven
//! over the W3C WebDriver protocol): register, log out and in, create a token, publish with
//! it, search, open the package page, see the run command and versions, star, and find the
//! star on the user page. Plus the CSRF and download checks over raw HTTP.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ebpf_e2e_tests::cli::{ok, Env};
use ebpf_e2e_tests::free_port;
use ebpf_e2e_tests::hub::{request, request_waiting, Hub};
use ebpf_e2e_tests::project::eunomia_publishing_to as project;
use ebpf_e2e_tests::{needs, Need};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver's log, in the profile directory (gone with the session).
const DRIVER_LOG: &str = "chromedriver.log";

/// A chromedriver process and one headless Chromium session; both end on drop.
pub(crate) struct Browser {
    driver: Child,
    addr: String,
    session: String,
    profile: tempfile::TempDir,
}

impl Browser {
    pub(crate) fn start() -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: apt-get install chromium chromium-driver"
            );
        }
        let port = free_port();
        let profile = tempfile::tempdir().unwrap();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                profile.path().join(DRIVER_LOG).display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage",
                         format!("--user-data-dir={}", profile.path().display())],
            },
        }}});
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            profile,
        };
        let created = browser.call("POST", "/session", Some(caps));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    /// One WebDriver command; returns its `value`.
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers = [("Content-Type", "application/json")];
        // Generous: on a loaded machine a page's accessibility check can take a while.
        let wait = Duration::from_secs(180);
        let send = || request_waiting(&self.addr, method, path, &headers, body.as_bytes(), wait);
        let mut r = send();
        // Twice a script's answer was lost on its way back (chromedriver logged it, the socket
        // gave nothing), both times around axe-core. The scripts these tests run give the
        // same result when run again, so a lost answer is asked for once more.
        if r.status == 0 && path.contains("/execute/") {
            r = send();
        }
        assert!(
            r.status != 0,
            "WebDriver {method} {path}: no answer (chromedriver closed the connection or took \
             over {wait:?}); the end of its log:\n{}",
            self.driver_log_tail()
        );
        let v = r.json();
        assert!(r.status == 200, "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    /// The last lines chromedriver logged: why a command got no answer.
    fn driver_log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.profile.path().join(DRIVER_LOG));
        let log = log.unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub(crate) fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub(crate) fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Waits (up to 10 s) until `check` holds for the text of `css`: the page a click led
    /// to may still be loading. Returns the text.
    pub(crate) fn wait_text(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let e = self.find(css);
            let path = format!("/session/{}/element/{e}/text", self.session);
            let r = request(&self.addr, "GET", &path, &[], b"");
            let text = r.json()["value"].as_str().unwrap_or("").to_string();
            if check(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never matched; last text: {text:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn url(&self) -> String {
        self.session_call("GET", "/url", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The element matching `css`, waiting up to 10 s for it (a click's navigation may
    /// still be loading the next page).
    pub(crate) fn find(&self, css: &str) -> String {
        let path = format!("/session/{}/element", self.session);
        let body = json!({"using": "css selector", "value": css}).to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let headers = [("Content-Type", "application/json")];
            let r = request(&self.addr, "POST", &path, &headers, body.as_bytes());
            if let Some(id) = r.json()["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(Instant::now() < deadline, "no element {css}: {}", r.text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.session_call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    pub(crate) fn click(&self, css: &str) {
        let e = self.find(css);
        self.session_call("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    pub(crate) fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.session_call("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Browser {
    /// Saves a PNG of the window to `path`.
    pub(crate) fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let shot = self.session_call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().expect("a base64 screenshot"))
            .expect("base64");
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// Runs `script` in the page (WebDriver's synchronous execute); returns its value.
    pub(crate) fn execute(&self, script: &str, args: Value) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Runs `script`, which calls its last argument with the result, and waits for it.
    pub(crate) fn execute_async(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/async",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Sets the window's size (a narrow one shows the layout phones get).
    pub(crate) fn resize(&self, width: u32, height: u32) {
        self.session_call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = request(&self.addr, "DELETE", &path, &[], b"");
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn register_login_token_publish_search_star_in_a_real_browser() {
    if !needs(&[
        Need::Build,
        Need::File("/usr/bin/chromium", "chromium"),
        Need::File("/usr/bin/chromedriver", "chromium-driver"),
    ]) {
        return;
    }
    let hub = Hub::start();
    let base = format!("http://{}", hub.addr());
    let b = Browser::start();

    b.goto(&format!("{base}/register"));
    b.type_into("#name", "webby");
    b.type_into("#email", "webby@example.com");
    b.type_into("#password", "correct horse battery");
    b.click("#submit");
    b.wait_text("#user-name", |t| t == "webby");
    assert_eq!(b.url(), format!("{base}/u/webby"));
    assert_eq!(b.text("#me"), "webby");

    b.click("#logout");
    b.wait_text("#login-link", |t| t == "Log in");
    b.goto(&format!("{base}/login"));
    b.type_into("#name", "webby");
    b.type_into("#password", "wrong password");
    b.click("#submit");
    assert!(b.text("#error").contains("Wrong"));
    b.goto(&format!("{base}/login"));
    b.type_into("#name", "webby");
    b.type_into("#password", "correct horse battery");
    b.click("#submit");
    b.wait_text("#user-name", |t| t == "webby");
    assert_eq!(b.url(), format!("{base}/u/webby"));

    b.goto(&format!("{base}/tokens"));
    b.type_into("#label", "laptop");
    b.click("#create-token");
    let token = b.text("#new-token");
    assert!(token.starts_with("cehub_"), "{token}");
    assert!(b.text("#tokens").contains("laptop"));

    // Publish with the token the page showed.
    let env = Env::new();
    let dir = project(&env, "websnoop", &format!("{}/webby", hub.addr()));
    ok(&mut env.cmd(["login", hub.addr(), "-u", "webby", "-p", &token]));
    let out = ok(env.cmd(["publish", "--manifest-path"]).arg(&dir));
    let printed = String::from_utf8(out.stdout).unwrap();
    let digest = printed.trim().rsplit('@').next().unwrap().to_string();

    // Search from the header box, then open the result.
    b.goto(&base);
    b.type_into("input[name=q]", "openat trace");
    b.click("header input[type=submit]");
    b.wait_text("#results", |t| t.contains("webby/websnoop"));
    assert!(b.url().contains("/search?q=openat"), "{}", b.url());
    b.click("#results a[href='/p/webby/websnoop']");
    b.wait_text("#package-name", |t| t == "webby/websnoop");
    assert_eq!(
        b.text("#run-command"),
        format!("sudo cargo ebpf run {}/webby/websnoop:0.1.0", hub.addr())
    );
    assert!(b.text("#versions").contains("0.1.0"));
    // The digest is in the side panel, for the version shown.
    assert_eq!(b.text("#digest"), digest);
    assert!(b.text("#programs").contains("tracepoint"));

    b.click("#star");
    b.wait_text("#stars", |t| t == "1");
    assert!(b.text("#star").contains("Unstar"));
    b.goto(&format!("{base}/u/webby"));
    b.wait_text("#user-name", |t| t == "webby");
    assert!(b.text("#starred").contains("webby/websnoop"));
    assert!(b.text("#packages").contains("webby/websnoop"));

    // The object download is the BPF ELF, and it counts.
    let obj = hub.request("GET", "/p/webby/websnoop/download/0.1.0", &[], b"");
    assert_eq!(obj.status, 200);
    assert_eq!(&obj.body[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([obj.body[18], obj.body[19]]), 247);
}

#[test]
fn forms_without_the_csrf_value_are_refused() {
    let hub = Hub::start();
    // A cross-site form can carry the browser's cookies but not the page's CSRF value.
    let page = hub.request("GET", "/register", &[], b"");
    let cookie = page
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let form = "name=eve&password=longenough1&csrf=0123456789abcdef0123456789abcdef";
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookie.as_str()),
    ];
    let r = hub.request("POST", "/register", &headers, form.as_bytes());
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(hub.request("GET", "/u/eve", &[], b"").status, 404);

    // With the page's value it works (and the cookie's own value is not it).
    let csrf = ebpf_e2e_tests::hub::csrf_field(&page.text());
    assert_ne!(csrf, cookie.split('=').nth(1).unwrap());
    let form = format!("name=eve&password=longenough1&csrf={csrf}");
    let r = hub.request("POST", "/register", &headers, form.as_bytes());
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(hub.request("GET", "/u/eve", &[], b"").status, 200);
}

#[test]
fn signing_keys_badges_and_yank_in_a_real_browser() {
    if !needs(&[
        Need::Build,
        Need::File("/usr/bin/chromium", "chromium"),
        Need::File("/usr/bin/chromedriver", "chromium-driver"),
    ]) {
        return;
    }
    let hub = Hub::start();
    let base = format!("http://{}", hub.addr());
    let b = Browser::start();
    b.goto(&format!("{base}/register"));
    b.type_into("#name", "signer");
    b.type_into("#password", "correct horse battery");
    b.click("#submit");
    b.wait_text("#user-name", |t| t == "signer");
    b.goto(&format!("{base}/tokens"));
    b.type_into("#label", "ci");
    b.click("#create-token");
    let token = b.text("#new-token");

    // The public key goes onto the profile through its form.
    let env = Env::new();
    let prefix = env.path().join("signer");
    let out = ok(env
        .cmd(["key", "generate"])
        .arg(&prefix)
        .arg("--no-password"));
    let fingerprint = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let pem = std::fs::read_to_string(prefix.with_extension("pub")).unwrap();
    b.goto(&format!("{base}/u/signer"));
    b.type_into("#add-key input[name=label]", "laptop");
    b.type_into("#add-key textarea[name=pem]", &pem);
    b.click("#add-key button[type=submit]");
    b.wait_text("#keys", |t| {
        t.contains(&fingerprint) && t.contains("laptop")
    });

    // 0.1.0 published signed, 0.2.0 unsigned.
    ok(&mut env.cmd(["login", hub.addr(), "-u", "signer", "-p", &token]));
    let dir = project(&env, "websign", &format!("{}/signer", hub.addr()));
    let key = prefix.with_extension("key");
    ok(env
        .cmd(["publish", "--sign"])
        .arg(&key)
        .arg("--manifest-path")
        .arg(&dir));
    let manifest = dir.join("ebpf.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1),
    )
    .unwrap();
    ok(env.cmd(["publish", "--manifest-path"]).arg(&dir));

    b.goto(&format!("{base}/p/signer/websign"));
    let signed = b.wait_text("#version-0\\.1\\.0 .badge-cell", |t| {
        t.contains("signed by key")
    });
    assert_eq!(
        signed,
        format!("✔ signed by key {fingerprint} (signer's key \"laptop\")")
    );
    assert_eq!(b.text("#version-0\\.2\\.0 .badge-cell"), "unsigned");
    assert!(b.text("#run-command").ends_with("websign:0.2.0"));

    // The owner's Yank button: marked yanked, no longer the version to run.
    b.click("#version-0\\.2\\.0 button.yank");
    b.wait_text("#version-0\\.2\\.0", |t| t.contains("yanked"));
    assert!(
        b.text("#run-command").ends_with("websign:0.1.0"),
        "{}",
        b.text("#run-command")
    );
    assert!(!b.text("#version-0\\.1\\.0").contains("yanked"));
    let pkg = hub
        .request("GET", "/api/v1/packages/signer/websign", &[], b"")
        .json();
    assert_eq!(pkg["latest_version"], "0.1.0");
    b.click("#version-0\\.2\\.0 button.yank");
    b.wait_text("#version-0\\.2\\.0", |t| !t.contains("yanked"));
    assert!(b.text("#run-command").ends_with("websign:0.2.0"));
}
