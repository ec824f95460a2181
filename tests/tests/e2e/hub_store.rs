//! The store, page by page, in a real headless Chromium: a visitor, a publisher and an
//! admin each walk their pages; every page is screenshotted into
//! `target/hub-screenshots/` (wide and, for a few, phone-narrow), checked for what it must
//! show, and checked by axe-core (WCAG 2 A and AA rules, loaded from the file npm installed:
//! nothing is fetched at run time) for accessibility violations.

use std::path::PathBuf;

use ebpf_e2e_tests::hub::{request, Hub};
use ebpf_e2e_tests::{needs, sha256, Need};
use serde_json::json;

use crate::hub_web::Browser;

/// Where `npm install -g axe-core` puts the checker on the project's machines.
const AXE: &str = "/usr/lib/node_modules/axe-core/axe.min.js";

/// Where the screenshots go: `target/hub-screenshots/`.
fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("hub-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Pushes `repo:version` over raw HTTP: a package with a param and an event type, so the
/// pages have params and event fields to show.
fn publish(hub: &Hub, auth: &str, repo: &str, version: &str, description: &str) -> String {
    let name = repo.rsplit('/').next().unwrap();
    let mut meta = ebpf_e2e_tests::sample_meta(name, version);
    meta.description = Some(description.into());
    meta.keywords = vec!["files".into(), "trace".into()];
    meta.params = vec![serde_json::from_value(json!({
        "name": "target_pid", "flag": "target-pid", "offset": 0,
        "type": {"kind": "int", "size": 4, "signed": false}, "default": 0,
        "description": "Only trace this process",
    }))
    .unwrap()];
    meta.events = vec![serde_json::from_value(json!({"map": "events", "type": "event"})).unwrap()];
    meta.types.insert(
        "event".into(),
        serde_json::from_value(json!({"kind": "struct", "name": "event", "size": 20, "fields": [
            {"name": "pid", "offset_bits": 0, "type": {"kind": "int", "size": 4, "signed": false}},
            {"name": "comm", "offset_bits": 32, "type": {"kind": "string", "len": 16}},
        ]}))
        .unwrap(),
    );
    let mut object = vec![0u8; 64];
    object[..4].copy_from_slice(b"\x7fELF");
    object[4] = 2;
    object[5] = 1;
    object[18..20].copy_from_slice(&247u16.to_le_bytes());
    let pkg = ebpf_package::Package::build(meta, &object, None).unwrap();
    for blob in std::iter::once(&pkg.config_blob).chain(&pkg.layers) {
        let digest = sha256(&blob.data.bytes().unwrap());
        let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
        let r = hub.request(
            "POST",
            &path,
            &[("Authorization", auth)],
            &blob.data.bytes().unwrap(),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let headers = [
        ("Authorization", auth),
        ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
    ];
    let path = format!("/v2/{repo}/manifests/{version}");
    let r = hub.request("PUT", &path, &headers, &pkg.manifest_bytes);
    assert_eq!(r.status, 201, "{}", r.text());
    r.header("docker-content-digest").unwrap().to_string()
}

/// Walks pages in one browser, screenshotting and checking each.
struct Walk<'a> {
    browser: &'a Browser,
    base: String,
    role: &'static str,
    axe: String,
    shots: PathBuf,
    /// Every accessibility violation found, by page.
    violations: Vec<String>,
    pages: usize,
}

impl Walk<'_> {
    /// Opens `path`, waits for `css` to show `expect`, screenshots it as ROLE-NAME.png and
    /// runs axe-core on it.
    fn page(&mut self, name: &str, path: &str, css: &str, expect: &str) {
        self.browser.goto(&format!("{}{path}", self.base));
        self.check(name, css, expect);
    }

    /// Like [`Walk::page`] for the page the browser is on.
    fn check(&mut self, name: &str, css: &str, expect: &str) {
        self.browser.wait_text(css, |t| t.contains(expect));
        // The whole page: the window grows to the document's height for the shot.
        let rect = self.browser.session_call("GET", "/window/rect", None);
        let (width, height) = (
            rect["width"].as_u64().unwrap_or(1280) as u32,
            rect["height"].as_u64().unwrap_or(900) as u32,
        );
        let page = self.browser.execute(
            "return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight;",
            json!([]),
        );
        let full = page.as_u64().unwrap_or(height as u64) as u32;
        self.browser.resize(width, full.clamp(height, 6000));
        let file = self.shots.join(format!("{}-{name}.png", self.role));
        self.browser.screenshot(&file);
        self.browser.resize(width, height);
        self.pages += 1;
        self.browser
            .execute(&format!("{};\nreturn true;", self.axe), json!([]));
        let found = self.browser.execute_async(
            "const done = arguments[arguments.length - 1];\n\
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})\n\
               .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' at ' +\n\
                 v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))))\n\
               .catch(e => done(['axe failed: ' + e]));",
        );
        for v in found.as_array().expect("a list of violations") {
            self.violations.push(format!(
                "{} {name}: {}",
                self.role,
                v.as_str().unwrap_or("")
            ));
        }
    }

    /// Logs in through the form.
    fn login(&mut self, user: &str, password: &str) {
        self.browser.goto(&format!("{}/login", self.base));
        self.browser.type_into("#name", user);
        self.browser.type_into("#password", password);
        self.browser.click("#submit");
        self.browser.wait_text("#user-name", |t| t == user);
    }
}

#[test]
fn visitor_publisher_and_admin_walk_every_page_in_chromium() {
    if !needs(&[
        Need::File("/usr/bin/chromium", "chromium"),
        Need::File("/usr/bin/chromedriver", "chromium-driver"),
        Need::File(AXE, "npm install -g axe-core@4 (scripts/install-deps.sh)"),
    ]) {
        return;
    }
    let hub = Hub::start_with_args(&["--contact", "hub-team@example.com"]);
    let (alice, _) = hub.user_with_token("alice");
    let (bob, _) = hub.user_with_token("bob");
    publish(
        &hub,
        &alice,
        "alice/opensnoop",
        "0.1.0",
        "Trace open() calls",
    );
    let latest = publish(
        &hub,
        &alice,
        "alice/opensnoop",
        "0.2.0",
        "Trace open() calls",
    );
    publish(&hub, &bob, "bob/execsnoop", "1.0.0", "Trace new processes");
    let r = hub.request("GET", "/v2/alice/opensnoop/manifests/0.2.0", &[], b"");
    assert_eq!(r.status, 200);
    hub.register("operator", "operator-password");
    let out = std::process::Command::new(ebpf_e2e_tests::cli::cargo_ebpf_bin())
        .args(["hub", "user", "admin", "operator", "--data"])
        .arg(hub.data_dir())
        .env_remove("CARGO_EBPF_HUB_DATABASE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let browser = Browser::start();
    browser.session_call("POST", "/timeouts", Some(json!({"script": 150_000})));
    browser.resize(1280, 900);
    let mut walk = Walk {
        browser: &browser,
        base: format!("http://{}", hub.addr()),
        role: "visitor",
        axe: std::fs::read_to_string(AXE).expect("axe-core"),
        shots: shots_dir(),
        violations: vec![],
        pages: 0,
    };

    // A visitor.
    walk.page("home", "/", "#counts", "packages");
    assert!(
        browser
            .text("#counts")
            .starts_with("2\npackages\n2\npublishers"),
        "{}",
        browser.text("#counts")
    );
    assert!(browser.text("#newest").contains("alice/opensnoop"));
    assert!(browser.text("#popular").contains("alice/opensnoop"));
    walk.page(
        "search-snoop",
        "/search?q=snoop",
        "#result-count",
        "2 packages",
    );
    let results = browser.text("#results");
    assert!(results.contains("alice/opensnoop") && results.contains("bob/execsnoop"));
    walk.page("search-owner", "/search?q=bob", "#results", "bob/execsnoop");
    assert!(!browser.text("#results").contains("alice/"));
    walk.page(
        "search-filters",
        "/search?attach=tracepoint&sort=downloads",
        "#result-count",
        "2 packages",
    );
    assert!(browser.text("#results").starts_with("alice/opensnoop"));
    walk.page(
        "package",
        "/p/alice/opensnoop",
        "#package-name",
        "alice/opensnoop",
    );
    assert!(browser
        .text("#run-command")
        .ends_with("alice/opensnoop:0.2.0"));
    assert_eq!(browser.text("#digest"), latest);
    assert!(browser
        .text("#plan")
        .contains("tracepoint syscalls:sys_enter_openat"));
    assert!(browser.text("#plan").contains("CAP_BPF"));
    assert!(browser.text("#params").contains("--target-pid"));
    assert!(browser.text("#events").contains("comm"));
    assert!(browser.text("#signature").contains("unsigned"));
    assert!(browser.text("#downloads").contains("1 in all"));
    walk.page(
        "version",
        "/p/alice/opensnoop/v/0.1.0",
        "#shown-version",
        "0.1.0",
    );
    assert!(browser
        .text("#run-command")
        .ends_with("alice/opensnoop:0.1.0"));
    walk.page("user", "/u/alice", "#user-name", "alice");
    assert!(browser.text("#packages").contains("alice/opensnoop"));
    walk.page("about", "/about", "#contact", "hub-team@example.com");
    walk.page("login", "/login", "h1", "Log in");
    walk.page("register", "/register", "h1", "Register");
    walk.page("missing", "/p/nobody/nothing", "h1", "No such package");
    browser.resize(400, 850);
    walk.page(
        "package-phone",
        "/p/alice/opensnoop",
        "#package-name",
        "alice/opensnoop",
    );
    walk.page("home-phone", "/", "#counts", "packages");
    let overflow = browser.execute(
        "return document.documentElement.scrollWidth > window.innerWidth;",
        json!([]),
    );
    assert_eq!(
        overflow,
        json!(false),
        "the home page scrolls sideways on a phone"
    );
    walk.page(
        "package-phone",
        "/p/alice/opensnoop",
        "#package-name",
        "alice/opensnoop",
    );
    let overflow = browser.execute(
        "return document.documentElement.scrollWidth > window.innerWidth;",
        json!([]),
    );
    assert_eq!(
        overflow,
        json!(false),
        "the package page scrolls sideways on a phone"
    );

    // README code blocks: the code inside `pre` has no padding of its own, so its first
    // line starts where the others do.
    let padding = browser.execute(
        "const p = document.createElement('pre'); const c = document.createElement('code'); \
         c.textContent = 'a\\nb'; p.appendChild(c); document.querySelector('#readme').appendChild(p); \
         return getComputedStyle(c).paddingLeft;",
        json!([]),
    );
    assert_eq!(padding, json!("0px"));

    // The checker itself finds a fault: an image without a text alternative.
    walk.browser.execute(
        "const i = document.createElement('img'); i.src = '/assets/logo.svg'; \
         document.querySelector('main').appendChild(i); return true;",
        json!([]),
    );
    let before = walk.violations.len();
    walk.check("self-check", "#package-name", "alice/opensnoop");
    assert!(
        walk.violations[before..]
            .iter()
            .any(|v| v.contains("image-alt")),
        "axe-core did not flag an image without alt: {:?}",
        &walk.violations[before..]
    );
    walk.violations.truncate(before);
    browser.resize(1280, 900);

    // A publisher: alice follows bob, edits her profile, deprecates a package.
    walk.role = "publisher";
    walk.login("alice", "alice-password");
    walk.check("profile", "#user-name", "alice");
    walk.page("bob", "/u/bob", "#follow", "Follow");
    browser.click("#follow");
    browser.wait_text("#followers", |t| t.starts_with("1 "));
    walk.page("followers", "/u/bob/followers", "#people", "alice");
    walk.page("settings", "/settings", "h1", "Settings");
    browser.type_into("#display_name", "Alice A.");
    browser.type_into("#bio", "I write tracing tools.");
    browser.click("#save-profile");
    walk.check("settings-saved", "#notice", "Profile saved.");
    walk.page("dashboard", "/dashboard", "#feed", "bob/execsnoop 1.0.0");
    browser.type_into("#dep-0", "Use opensnoop2");
    browser.click("#manage-alice\\/opensnoop button.save-deprecation");
    browser.wait_text("#manage-alice\\/opensnoop", |t| t.contains("deprecated"));
    walk.page(
        "package-deprecated",
        "/p/alice/opensnoop",
        "#deprecation",
        "Use opensnoop2",
    );
    walk.page("tokens", "/tokens", "h1", "API tokens");
    walk.page("home-feed", "/", "#feed", "bob/execsnoop 1.0.0");
    browser.click("#logout");
    browser.wait_text("#login-link", |t| t == "Log in");

    // An admin features a package; the home page shows it.
    walk.role = "admin";
    walk.login("operator", "operator-password");
    walk.page("admin", "/admin", "#admin-packages", "bob/execsnoop");
    browser.click("#admin-bob\\/execsnoop button.feature");
    browser.wait_text("#admin-bob\\/execsnoop", |t| t.contains("Unfeature"));
    walk.check("admin-featured", "#admin-packages", "Unfeature");
    walk.page("home-featured", "/", "#featured", "bob/execsnoop");

    println!(
        "screenshots of {} pages in {}",
        walk.pages,
        walk.shots.display()
    );
    assert!(
        walk.violations.is_empty(),
        "accessibility violations (axe-core):\n{}",
        walk.violations.join("\n")
    );
    // The CSS, script and logo come from the hub itself.
    for asset in [
        "/assets/hub.css",
        "/assets/hub.js",
        "/assets/logo.svg",
        "/favicon.ico",
    ] {
        assert_eq!(
            request(hub.addr(), "GET", asset, &[], b"").status,
            200,
            "{asset}"
        );
    }
}
