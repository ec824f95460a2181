//! The user's settings, `config.toml`: the default registry that short names resolve
//! through (`default-registry = "HOST/NAMESPACE"`), and per registry the mirrors to try when
//! it fails (`[[registry]] prefix = "ghcr.io"`, `mirrors = ["127.0.0.1:5001"]`).
//!
//! Where: `$CARGO_EBPF_CONFIG`, else `$XDG_CONFIG_HOME/cargo-ebpf/config.toml`, else
//! `~/.config/cargo-ebpf/config.toml`. A missing file is an empty configuration.
//!
//! Short names are only ever expanded through a registry the user configured: with no
//! `default-registry`, `opensnoop` is an error with help, never a guess at some public
//! registry.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ebpf_package::{Error, Reference, Result};

/// The environment variable naming the config file.
pub const ENV_CONFIG: &str = "CARGO_EBPF_CONFIG";
/// The keys `config get|set` know (besides `mirrors.HOST`).
pub const KEYS: &[&str] = &["default-registry"];
/// The prefix of the per-registry mirrors key, `mirrors.HOST`.
const MIRRORS_KEY: &str = "mirrors.";
/// Largest config file read: it is a few lines.
const MAX_CONFIG_SIZE: u64 = 1 << 20;

/// What `config.toml` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// `HOST[:PORT]/NAMESPACE` (or just `HOST[:PORT]`) that short names resolve through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_registry: Option<String>,
    /// Per-registry settings (mirrors).
    #[serde(default, rename = "registry", skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<RegistryConfig>,
}

/// One `[[registry]]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RegistryConfig {
    /// The registry host (`ghcr.io`, `127.0.0.1:5000`) whose pulls these settings change.
    pub prefix: String,
    /// Hosts serving the same repositories, tried in order when the registry fails.
    #[serde(default)]
    pub mirrors: Vec<String>,
}

/// Where the config file is.
pub fn path() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(p) = var(ENV_CONFIG) {
        return Ok(PathBuf::from(p));
    }
    if let Some(dir) = var("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("cargo-ebpf/config.toml"));
    }
    match var("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".config/cargo-ebpf/config.toml")),
        None => Err(Error::environment(
            "cannot find the config file: none of CARGO_EBPF_CONFIG, XDG_CONFIG_HOME, HOME is set",
        )
        .with_help(format!("set {ENV_CONFIG} to the config file's path"))),
    }
}

impl Config {
    /// The configuration in effect (empty when there is no file).
    pub fn load() -> Result<Config> {
        Self::load_from(&path()?)
    }

    pub fn load_from(path: &Path) -> Result<Config> {
        let text = match read_bounded(path)? {
            Some(t) => t,
            None => return Ok(Config::default()),
        };
        let config: Config = toml::from_str(&text).map_err(|e| {
            Error::input(format!("{} is not a valid config file", path.display()))
                .with_source(e)
                .with_help("fix or remove it; `cargo ebpf config list` shows what is set")
        })?;
        if let Some(r) = &config.default_registry {
            check_registry_prefix(r).map_err(|e| e.with_context_path(path))?;
        }
        Ok(config)
    }

    /// Writes the file atomically (a temporary file renamed over it).
    pub fn save_to(&self, path: &Path) -> Result<()> {
        let text = toml::to_string(self).expect("the config serializes");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        }
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io("write", path, e))
    }

    /// The value of `key`, or None when unset.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        if let Some(host) = key.strip_prefix(MIRRORS_KEY) {
            let list = self.mirrors_of(host);
            return Ok((!list.is_empty()).then(|| list.join(",")));
        }
        match key {
            "default-registry" => Ok(self.default_registry.clone()),
            _ => Err(unknown_key(key)),
        }
    }

    /// Sets `key` to `value`, checked; an empty value unsets it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        if let Some(host) = key.strip_prefix(MIRRORS_KEY) {
            return self.set_mirrors(host, value);
        }
        match key {
            "default-registry" if value.is_empty() => self.default_registry = None,
            "default-registry" => {
                check_registry_prefix(value)?;
                self.default_registry = Some(value.trim_end_matches('/').to_string());
            }
            _ => return Err(unknown_key(key)),
        }
        Ok(())
    }

    /// `mirrors.HOST = "M1,M2"`: the `[[registry]]` table of HOST, replaced (removed when
    /// empty).
    fn set_mirrors(&mut self, host: &str, value: &str) -> Result<()> {
        if !is_registry_host(host) {
            return Err(Error::usage(format!("{host:?} is not a registry host"))
                .with_help("write the key as mirrors.HOST[:PORT], e.g. mirrors.ghcr.io"));
        }
        let mirrors: Vec<String> = value
            .split(',')
            .map(|m| m.trim().trim_end_matches('/').to_string())
            .filter(|m| !m.is_empty())
            .collect();
        for m in &mirrors {
            check_registry_prefix(m)?;
        }
        self.registries.retain(|r| r.prefix != host);
        if !mirrors.is_empty() {
            self.registries.push(RegistryConfig {
                prefix: host.to_string(),
                mirrors,
            });
        }
        Ok(())
    }

    /// The mirrors configured for `host`, in order.
    pub fn mirrors_of(&self, host: &str) -> Vec<String> {
        self.registries
            .iter()
            .filter(|r| r.prefix == host)
            .flat_map(|r| r.mirrors.iter().cloned())
            .collect()
    }
}

fn read_bounded(path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let mut text = String::new();
    file.take(MAX_CONFIG_SIZE)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(Some(text))
}

fn unknown_key(key: &str) -> Error {
    Error::usage(format!("unknown config key {key:?}")).with_help(format!(
        "the keys are: {}, and mirrors.HOST (e.g. mirrors.ghcr.io = \"127.0.0.1:5001\")",
        KEYS.join(", ")
    ))
}

/// `HOST[:PORT]` or `HOST[:PORT]/NAMESPACE`, where HOST looks like a registry host (a dot, a
/// port or `localhost`), so a default is never mistaken for a namespace.
pub fn check_registry_prefix(value: &str) -> Result<()> {
    let bad = || {
        Error::usage(format!("{value:?} is not a registry and namespace")).with_help(
            "write it as HOST[:PORT]/NAMESPACE, e.g. hub.example.com/alice or 127.0.0.1:5000/team",
        )
    };
    let value = value.trim_end_matches('/');
    let (host, namespace) = value.split_once('/').unwrap_or((value, ""));
    if !is_registry_host(host) {
        return Err(bad());
    }
    // A namespace must be usable as the start of a repository name.
    if !namespace.is_empty() {
        Reference::parse(&format!("{host}/{namespace}/x")).map_err(|_| bad())?;
    }
    Ok(())
}

/// Whether the first component of a reference names a registry (as docker decides it).
pub fn is_registry_host(first: &str) -> bool {
    !first.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost")
}

/// Whether `text` is a short name (`NAME`, `NAME:TAG`, `OWNER/NAME[:TAG]`): its first
/// component names no registry.
pub fn is_short_name(text: &str) -> bool {
    match text.split_once('/') {
        None => true,
        Some((first, rest)) => !is_registry_host(first) && !rest.contains('/'),
    }
}

/// A short name expanded through `default` (`HOST/NAMESPACE`): `NAME` →
/// `HOST/NAMESPACE/NAME`, `OWNER/NAME` → `HOST/OWNER/NAME`; the tag or digest is kept.
pub fn expand_with(text: &str, default: &str) -> Result<String> {
    let (host, namespace) = default.split_once('/').unwrap_or((default, ""));
    let full = match (text.contains('/'), namespace) {
        (true, _) | (false, "") => format!("{host}/{text}"),
        (false, ns) => format!("{host}/{ns}/{text}"),
    };
    Reference::parse(&full)?;
    Ok(full)
}

/// What a reference the user typed means: a full one as it is; a short one through the
/// configured default registry, or an error saying how to configure one.
pub fn expand(text: &str) -> Result<String> {
    if !is_short_name(text) {
        return Ok(text.to_string());
    }
    let config = Config::load()?;
    match &config.default_registry {
        Some(default) => expand_with(text, default),
        None => Err(Error::usage(format!(
            "{text:?} is a short name, and no default registry is configured"
        ))
        .with_help(format!(
            "give the full reference (HOST/NAMESPACE/{text}), or set a default: `cargo ebpf \
             config set default-registry HOST/NAMESPACE` (short names never go to a registry \
             you did not configure)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_expand_only_through_the_default() {
        let d = "hub.example.com:8080/alice";
        assert_eq!(
            expand_with("opensnoop", d).unwrap(),
            "hub.example.com:8080/alice/opensnoop"
        );
        assert_eq!(
            expand_with("opensnoop:0.2.0", d).unwrap(),
            "hub.example.com:8080/alice/opensnoop:0.2.0"
        );
        assert_eq!(
            expand_with("bob/opensnoop", d).unwrap(),
            "hub.example.com:8080/bob/opensnoop"
        );
        assert_eq!(
            expand_with("opensnoop", "127.0.0.1:5000").unwrap(),
            "127.0.0.1:5000/opensnoop"
        );
        for full in ["localhost/x", "ghcr.io/a/b:1", "127.0.0.1:5000/x", "a/b/c"] {
            assert!(!is_short_name(full), "{full}");
        }
        for short in ["x", "x:1.0.0", "alice/x", "alice/x:1"] {
            assert!(is_short_name(short), "{short}");
        }
    }

    #[test]
    fn set_get_and_save_round_trip_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        let mut c = Config::load_from(&path).unwrap();
        assert_eq!(c, Config::default());
        c.set("default-registry", "127.0.0.1:5000/team/").unwrap();
        c.registries.push(RegistryConfig {
            prefix: "127.0.0.1:5000".into(),
            mirrors: vec!["127.0.0.1:5001".into()],
        });
        c.save_to(&path).unwrap();
        let back = Config::load_from(&path).unwrap();
        assert_eq!(
            back.get("default-registry").unwrap().as_deref(),
            Some("127.0.0.1:5000/team")
        );
        assert_eq!(back.mirrors_of("127.0.0.1:5000"), ["127.0.0.1:5001"]);
        let mut c = back.clone();
        c.set(
            "mirrors.127.0.0.1:5000",
            "m.example:1/cache, 127.0.0.1:5002",
        )
        .unwrap();
        assert_eq!(
            c.get("mirrors.127.0.0.1:5000").unwrap().as_deref(),
            Some("m.example:1/cache,127.0.0.1:5002")
        );
        c.set("mirrors.127.0.0.1:5000", "").unwrap();
        assert!(c.registries.is_empty());
        assert!(c.set("mirrors.alice", "127.0.0.1:1").is_err());
        for bad in ["alice", "alice/team", "UPPER.io/X", ""] {
            let mut c = Config::default();
            if bad.is_empty() {
                c.set("default-registry", bad).unwrap();
                assert_eq!(c.default_registry, None);
            } else {
                assert!(c.set("default-registry", bad).is_err(), "{bad}");
            }
        }
        assert!(Config::default().get("colour").is_err());
        std::fs::write(&path, "default-registry = 3").unwrap();
        assert!(Config::load_from(&path).is_err());
    }
}
