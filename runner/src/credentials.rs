//! Registry credentials in the docker `config.json` format, so `docker login` and
//! `skopeo login` credentials work, and ours work for them.
//!
//! Lookup order for a registry host (first file with an answer wins):
//! 1. `$REGISTRY_AUTH_FILE`;
//! 2. `$XDG_RUNTIME_DIR/containers/auth.json` (where `skopeo login`/`podman login` write);
//! 3. `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
//!
//! In each file: `credHelpers.<host>`, then `auths.<host>.auth` (base64 `user:pass`), then
//! `credsStore`. Helpers are run as `docker-credential-<name> get`, host on stdin.
//! `login` writes to the docker config, keeping every other key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Map, Value};

use ebpf_package::{Error, Result};

/// A username and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    // Never print the password, not even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where credentials files live. Taken from the environment by [`AuthPaths::from_env`];
/// tests build one by hand so they never touch the process environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthPaths {
    /// `$REGISTRY_AUTH_FILE`.
    pub registry_auth_file: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `$DOCKER_CONFIG` (a directory).
    pub docker_config_dir: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
}

impl AuthPaths {
    pub fn from_env() -> AuthPaths {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        AuthPaths {
            registry_auth_file: var("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            docker_config_dir: var("DOCKER_CONFIG"),
            home: var("HOME"),
        }
    }

    /// The files consulted, in order (whether or not they exist).
    pub fn read_order(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        files.extend(self.registry_auth_file.clone());
        files.extend(
            self.xdg_runtime_dir
                .as_ref()
                .map(|d| d.join("containers").join("auth.json")),
        );
        files.extend(self.docker_config());
        files
    }

    /// The docker config file: where `login` writes.
    pub fn docker_config(&self) -> Option<PathBuf> {
        match (&self.docker_config_dir, &self.home) {
            (Some(dir), _) => Some(dir.join("config.json")),
            (None, Some(home)) => Some(home.join(".docker").join("config.json")),
            (None, None) => None,
        }
    }
}

/// Credentials for `host` (`host[:port]`) from the environment's files, if any.
pub fn lookup(host: &str) -> Result<Option<Credentials>> {
    lookup_in(&AuthPaths::from_env(), host)
}

/// Credentials for `host` from the files named by `paths`, if any.
pub fn lookup_in(paths: &AuthPaths, host: &str) -> Result<Option<Credentials>> {
    for file in paths.read_order() {
        let Some(config) = read_config(&file)? else {
            continue;
        };
        if let Some(creds) = lookup_in_config(&config, &file, host)? {
            return Ok(Some(creds));
        }
    }
    Ok(None)
}

/// Stores credentials for `host` in the environment's docker config; returns its path.
pub fn store(host: &str, creds: &Credentials) -> Result<PathBuf> {
    store_in(&AuthPaths::from_env(), host, creds)
}

/// Stores credentials for `host` in the docker config named by `paths`, keeping every other
/// key; the file is replaced atomically with mode 0600. Returns its path.
pub fn store_in(paths: &AuthPaths, host: &str, creds: &Credentials) -> Result<PathBuf> {
    let file = paths.docker_config().ok_or_else(|| {
        Error::environment(
            "cannot find where to store credentials: neither DOCKER_CONFIG nor HOME is set",
        )
        .with_help("set HOME, or DOCKER_CONFIG to a directory for config.json")
    })?;
    let mut config = read_config(&file)?.unwrap_or_default();
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(auths) = auths else {
        return Err(bad_config(&file, "`auths` is not an object"));
    };
    let token = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", creds.username, creds.password));
    let entry = auths
        .entry(host.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    match entry {
        Value::Object(e) => {
            e.insert("auth".into(), Value::String(token));
        }
        other => *other = serde_json::json!({ "auth": token }),
    }
    write_private(&file, &config)?;
    Ok(file)
}

/// Removes the credentials for `host` from the docker config named by `paths` (every key
/// that names the host, with or without a URL scheme), keeping everything else. Returns
/// the file changed, or None when it held none for `host`.
pub fn remove_in(paths: &AuthPaths, host: &str) -> Result<Option<PathBuf>> {
    let Some(file) = paths.docker_config() else {
        return Ok(None);
    };
    let Some(mut config) = read_config(&file)? else {
        return Ok(None);
    };
    let keys = host_keys(host);
    let Some(Value::Object(auths)) = config.get_mut("auths") else {
        return Ok(None);
    };
    let before = auths.len();
    auths.retain(|k, _| !keys.iter().any(|h| k == h || strip_url(k) == h));
    if auths.len() == before {
        return Ok(None);
    }
    write_private(&file, &config)?;
    Ok(Some(file))
}

/// Parses one config file; `None` if it does not exist.
fn read_config(file: &Path) -> Result<Option<Map<String, Value>>> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", file, e)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(Map::new()));
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(bad_config(file, "it is not a JSON object")),
        Err(e) => Err(bad_config(file, &e.to_string())),
    }
}

fn bad_config(file: &Path, why: &str) -> Error {
    Error::input(format!(
        "the credentials file {} is not valid: {why}",
        file.display()
    ))
    .with_help("fix or remove that file, then log in again")
}

fn lookup_in_config(
    config: &Map<String, Value>,
    file: &Path,
    host: &str,
) -> Result<Option<Credentials>> {
    let keys = host_keys(host);
    if let Some(helper) = find_by_host(config.get("credHelpers"), &keys).and_then(Value::as_str) {
        return run_helper(helper, file, host);
    }
    if let Some(entry) = find_by_host(config.get("auths"), &keys) {
        if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
            if !auth.is_empty() {
                return decode_auth(auth, file, host).map(Some);
            }
        }
    }
    match config.get("credsStore").and_then(Value::as_str) {
        Some(store) if !store.is_empty() => run_helper(store, file, host),
        _ => Ok(None),
    }
}

/// The keys a host may be stored under: bare, with a scheme, or (Docker Hub) the v1 URL.
fn host_keys(host: &str) -> Vec<String> {
    let mut keys = vec![host.to_string()];
    if matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        keys.push("https://index.docker.io/v1/".into());
        keys.push("docker.io".into());
    }
    keys
}

/// Finds a key matching one of `keys`, ignoring a scheme and path on the stored key
/// (docker writes `https://host/v1/` for some registries).
fn find_by_host<'a>(section: Option<&'a Value>, keys: &[String]) -> Option<&'a Value> {
    let map = section?.as_object()?;
    for key in keys {
        if let Some(v) = map.get(key) {
            return Some(v);
        }
    }
    map.iter()
        .find(|(k, _)| keys.iter().any(|want| strip_url(k) == want))
        .map(|(_, v)| v)
}

fn strip_url(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

fn decode_auth(auth: &str, file: &Path, host: &str) -> Result<Credentials> {
    let bad = || {
        bad_config(
            file,
            &format!("the `auth` entry for {host} is not base64 of user:password"),
        )
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (user, pass) = text.split_once(':').ok_or_else(bad)?;
    Ok(Credentials {
        username: user.to_string(),
        password: pass.to_string(),
    })
}

/// Runs `docker-credential-<helper> get` with `host` on stdin.
fn run_helper(helper: &str, file: &Path, host: &str) -> Result<Option<Credentials>> {
    // With a `/`, the name would become a path relative to the current directory instead
    // of a program looked up on PATH.
    if helper.contains('/') {
        return Err(bad_config(
            file,
            &format!("credential helper {helper:?} is not a helper name (it contains `/`)"),
        ));
    }
    run_helper_program(&format!("docker-credential-{helper}"), host)
}

fn run_helper_program(program: &str, host: &str) -> Result<Option<Credentials>> {
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::environment(format!("cannot run the credential helper {program}"))
                .with_source(e)
                .with_help(format!(
                    "install {program}, or remove it from your docker config"
                ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading stdin is reported by its exit status below.
        let _ = stdin.write_all(host.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| {
        Error::environment(format!("credential helper {program} failed")).with_source(e)
    })?;
    parse_helper_output(program, host, &out)
}

fn parse_helper_output(
    program: &str,
    host: &str,
    out: &std::process::Output,
) -> Result<Option<Credentials>> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // The helper protocol's way of saying "nothing stored for this host".
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::auth(format!(
            "credential helper {program} failed for {host}: {}",
            format!("{stdout} {stderr}").trim()
        ))
        .with_help(format!(
            "check that {program} works: echo {host} | {program} get"
        )));
    }
    let value: Value = serde_json::from_str(&stdout).map_err(|e| {
        Error::auth(format!(
            "credential helper {program} printed invalid JSON: {e}"
        ))
    })?;
    let field = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default();
    if field("Secret").is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: field("Username").to_string(),
        password: field("Secret").to_string(),
    }))
}

/// Writes `config` to `file` with mode 0600 (its directory 0700 if we create it), atomically.
fn write_private(file: &Path, config: &Map<String, Value>) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = file.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("create", dir, e))?;
    }
    let mut bytes = serde_json::to_vec_pretty(config)
        .map_err(|e| Error::input("cannot serialize credentials").with_source(e))?;
    bytes.push(b'\n');
    // tempfile creates files 0600, so the secret is never readable by others, even briefly.
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.json.")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|_| tmp.write_all(&bytes))
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Error::io("write", tmp.path(), e))?;
    tmp.persist(file)
        .map_err(|e| Error::io("write", file, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn auth_entry(u: &str, p: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    }

    /// A config file whose `auths` hold `user:pass` for `host`.
    fn auths_json(host: &str, user: &str, pass: &str) -> String {
        format!(
            r#"{{"auths":{{"{host}":{{"auth":"{}"}}}}}}"#,
            auth_entry(user, pass)
        )
    }

    #[test]
    fn read_order_follows_containers_then_docker() {
        let t = tempfile::tempdir().unwrap();
        let paths = AuthPaths {
            registry_auth_file: Some(t.path().join("explicit.json")),
            xdg_runtime_dir: Some(t.path().join("run")),
            docker_config_dir: None,
            home: Some(t.path().join("home")),
        };
        let host = "reg.example:5000";
        write(
            &t.path().join("home/.docker/config.json"),
            &auths_json(host, "d", "1"),
        );
        assert_eq!(lookup_in(&paths, host).unwrap(), Some(creds("d", "1")));
        write(
            &t.path().join("run/containers/auth.json"),
            &auths_json(host, "x", "2"),
        );
        assert_eq!(lookup_in(&paths, host).unwrap(), Some(creds("x", "2")));
        write(&t.path().join("explicit.json"), &auths_json(host, "e", "3"));
        assert_eq!(lookup_in(&paths, host).unwrap(), Some(creds("e", "3")));
        assert_eq!(lookup_in(&paths, "other.example").unwrap(), None);
    }

    #[test]
    fn docker_config_dir_overrides_home_and_urls_match_hosts() {
        let t = tempfile::tempdir().unwrap();
        let paths = AuthPaths {
            docker_config_dir: Some(t.path().join("dc")),
            home: Some(t.path().join("home")),
            ..Default::default()
        };
        assert_eq!(paths.docker_config(), Some(t.path().join("dc/config.json")));
        write(
            &t.path().join("dc/config.json"),
            &format!(
                r#"{{"auths":{{"https://reg.example/v1/":{{"auth":"{}"}}}}}}"#,
                auth_entry("u", "p:with:colons")
            ),
        );
        assert_eq!(
            lookup_in(&paths, "reg.example").unwrap(),
            Some(creds("u", "p:with:colons"))
        );
    }

    #[test]
    fn store_keeps_other_keys_and_is_private() {
        let t = tempfile::tempdir().unwrap();
        let paths = AuthPaths {
            home: Some(t.path().join("home")),
            ..Default::default()
        };
        let file = t.path().join("home/.docker/config.json");
        write(
            &file,
            r#"{"auths":{"keep.example":{"auth":"a2VlcDptZQ=="}},"psFormat":"table","credHelpers":{"gcr.io":"gcloud"}}"#,
        );
        let written = store_in(&paths, "127.0.0.1:5000", &creds("me", "s3cret")).unwrap();
        assert_eq!(written, file);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "table");
        assert_eq!(v["credHelpers"]["gcr.io"], "gcloud");
        assert_eq!(v["auths"]["keep.example"]["auth"], "a2VlcDptZQ==");
        assert_eq!(
            lookup_in(&paths, "127.0.0.1:5000").unwrap(),
            Some(creds("me", "s3cret"))
        );
        assert_eq!(
            lookup_in(&paths, "keep.example").unwrap(),
            Some(creds("keep", "me"))
        );
    }

    #[test]
    fn store_creates_private_dir() {
        let t = tempfile::tempdir().unwrap();
        let paths = AuthPaths {
            docker_config_dir: Some(t.path().join("new/dir")),
            ..Default::default()
        };
        store_in(&paths, "h", &creds("u", "p")).unwrap();
        let mode = std::fs::metadata(t.path().join("new/dir"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn invalid_config_is_a_clear_error_and_not_overwritten() {
        let t = tempfile::tempdir().unwrap();
        let paths = AuthPaths {
            docker_config_dir: Some(t.path().to_path_buf()),
            ..Default::default()
        };
        write(&t.path().join("config.json"), "{not json");
        let err = lookup_in(&paths, "h").unwrap_err();
        assert_eq!(err.kind, ebpf_package::ErrorKind::Input);
        assert!(err.message.contains("not valid"), "{}", err.message);
        assert!(store_in(&paths, "h", &creds("u", "p")).is_err());
        assert_eq!(
            std::fs::read_to_string(t.path().join("config.json")).unwrap(),
            "{not json"
        );
    }

    /// A real helper program on disk, speaking the helper protocol.
    #[test]
    fn cred_helpers_are_run() {
        let t = tempfile::tempdir().unwrap();
        let helper = t.path().join("docker-credential-cargoebpftest");
        write(
            &helper,
            "#!/bin/sh\nhost=$(cat)\nif [ \"$host\" = reg.example ]; then\n  printf '{\"ServerURL\":\"%s\",\"Username\":\"hu\",\"Secret\":\"hs\"}' \"$host\"\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
        );
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let program = helper.to_str().unwrap();
        assert_eq!(
            run_helper_program(program, "reg.example").unwrap(),
            Some(creds("hu", "hs"))
        );
        assert_eq!(run_helper_program(program, "other.example").unwrap(), None);
    }

    #[test]
    fn cred_helper_entries_route_to_the_helper() {
        let t = tempfile::tempdir().unwrap();
        let paths = AuthPaths {
            docker_config_dir: Some(t.path().to_path_buf()),
            ..Default::default()
        };
        write(
            &t.path().join("config.json"),
            r#"{"credHelpers":{"reg.example":"cargoebpf-no-such-helper"},"auths":{"reg.example":{"auth":"dTpw"}}}"#,
        );
        // credHelpers wins over auths: the (missing) helper is what gets run.
        let err = lookup_in(&paths, "reg.example").unwrap_err();
        assert_eq!(err.kind, ebpf_package::ErrorKind::Environment);
        assert!(
            err.message
                .contains("docker-credential-cargoebpf-no-such-helper"),
            "{}",
            err.message
        );
        assert_eq!(lookup_in(&paths, "plain.example").unwrap(), None);
    }

    #[test]
    fn cred_helper_names_with_a_slash_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let paths = AuthPaths {
            docker_config_dir: Some(t.path().to_path_buf()),
            ..Default::default()
        };
        write(
            &t.path().join("config.json"),
            r#"{"credsStore":"../../tmp/evil"}"#,
        );
        let err = lookup_in(&paths, "reg.example").unwrap_err();
        assert_eq!(err.kind, ebpf_package::ErrorKind::Input);
        assert!(err.message.contains("contains `/`"), "{}", err.message);
    }
}
