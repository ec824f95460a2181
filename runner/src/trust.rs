//! The trust policy: which keys must have signed packages from which registries,
//! namespaces or repositories, and whether unsigned packages are refused everywhere.
//!
//! Stored as TOML in `$CARGO_EBPF_TRUST_POLICY`, else `$XDG_CONFIG_HOME/cargo-ebpf/trust.toml`,
//! else `~/.config/cargo-ebpf/trust.toml`. The public keys are copied in (PEM), so the
//! policy keeps working when the `.pub` file it was made from moves.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ebpf_package::signature::PublicKey;
use ebpf_package::{Error, Reference, Result};

/// The policy file's content.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Policy {
    /// Refuse packages outside every scope too (they cannot be verified).
    #[serde(default)]
    pub require_signed: bool,
    /// One entry per (scope, key).
    #[serde(default, rename = "trust")]
    pub entries: Vec<Entry>,
}

/// A key trusted for a scope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// `REGISTRY`, `REGISTRY/NAMESPACE/*` or `REGISTRY/REPO` (a prefix on `/` boundaries).
    pub scope: String,
    /// `SHA256:…`, for display.
    pub fingerprint: String,
    /// The public key, PEM.
    pub key: String,
}

impl Policy {
    /// The policy at [`path`]; empty when the file does not exist.
    pub fn load() -> Result<Policy> {
        Policy::load_from(&path()?)
    }

    pub fn load_from(path: &Path) -> Result<Policy> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Policy::default()),
            Err(e) => return Err(Error::io("read", path, e)),
        };
        toml::from_str(&text).map_err(|e| {
            Error::input(format!("the trust policy {} is not valid", path.display()))
                .with_source(e)
                .with_help("fix the file, or remove it and add scopes again with `trust add`")
        })
    }

    /// Writes the policy atomically (a temp file renamed over the old one).
    pub fn save_to(&self, path: &Path) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        let text = toml::to_string_pretty(self).expect("the policy serializes");
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io("write", path, e))
    }

    /// Adds `key` for `scope`; false when it was already there.
    pub fn add(&mut self, scope: &str, key: &PublicKey) -> Result<bool> {
        let scope = normalize_scope(scope)?;
        let fingerprint = key.fingerprint();
        if self
            .entries
            .iter()
            .any(|e| e.scope == scope && e.fingerprint == fingerprint)
        {
            return Ok(false);
        }
        self.entries.push(Entry {
            scope,
            fingerprint,
            key: key.to_pem(),
        });
        Ok(true)
    }

    /// Removes every key of `scope`; returns how many.
    pub fn remove(&mut self, scope: &str) -> Result<usize> {
        let scope = normalize_scope(scope)?;
        let before = self.entries.len();
        self.entries.retain(|e| e.scope != scope);
        Ok(before - self.entries.len())
    }

    /// The most specific scope holding `reference`, with its keys; `None` outside every scope.
    pub fn keys_for(&self, reference: &Reference) -> Result<Option<(String, Vec<PublicKey>)>> {
        let name = format!("{}/{}", reference.registry(), reference.repository());
        let Some(best) = self
            .entries
            .iter()
            .filter(|e| in_scope(&name, &e.scope))
            .map(|e| e.scope.as_str())
            .max_by_key(|s| s.len())
        else {
            return Ok(None);
        };
        let keys = self
            .entries
            .iter()
            .filter(|e| e.scope == best)
            .map(|e| PublicKey::from_pem(&e.key))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((best.to_string(), keys)))
    }
}

/// `name` (`REGISTRY/REPO`) lies in `scope`: equal, or below it on a `/` boundary.
fn in_scope(name: &str, scope: &str) -> bool {
    name == scope
        || name
            .strip_prefix(scope)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Scopes are stored without a trailing `/*` or `/`, so `a/*` and `a` are one scope.
fn normalize_scope(scope: &str) -> Result<String> {
    let trimmed = scope.trim().trim_end_matches('*').trim_end_matches('/');
    let mut parts = trimmed.split('/');
    let host = parts.next().unwrap_or("");
    // A colon is only allowed as the registry's port; no tags, digests or globs inside.
    let valid = !host.is_empty()
        && !host.contains('*')
        && parts.all(|p| !p.is_empty() && !p.contains([':', '*', '@']));
    if !valid || trimmed.contains("://") || trimmed.chars().any(char::is_whitespace) {
        return Err(
            Error::usage(format!("invalid trust scope {scope:?}")).with_help(
                "a scope is a registry, namespace or repository: `127.0.0.1:5000`, \
             `127.0.0.1:5000/alice/*`, `ghcr.io/me/opensnoop` (no tag, no scheme)",
            ),
        );
    }
    Ok(trimmed.to_string())
}

/// `$CARGO_EBPF_TRUST_POLICY`, else `$XDG_CONFIG_HOME/cargo-ebpf/trust.toml`, else
/// `$HOME/.config/cargo-ebpf/trust.toml`.
pub fn path() -> Result<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("CARGO_EBPF_TRUST_POLICY") {
        return Ok(p);
    }
    if let Some(dir) = var("XDG_CONFIG_HOME") {
        return Ok(dir.join("cargo-ebpf/trust.toml"));
    }
    if let Some(home) = var("HOME") {
        return Ok(home.join(".config/cargo-ebpf/trust.toml"));
    }
    Err(Error::environment(
        "cannot find the trust policy: none of CARGO_EBPF_TRUST_POLICY, XDG_CONFIG_HOME, HOME is set",
    )
    .with_help("set CARGO_EBPF_TRUST_POLICY to the policy file's path"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebpf_package::signature::PrivateKey;

    #[test]
    fn the_most_specific_scope_wins_on_slash_boundaries() {
        let (a, b) = (
            PrivateKey::generate().public_key(),
            PrivateKey::generate().public_key(),
        );
        let mut p = Policy::default();
        assert!(p.add("127.0.0.1:5000/alice/*", &a).unwrap());
        assert!(!p.add("127.0.0.1:5000/alice", &a).unwrap(), "same scope");
        p.add("127.0.0.1:5000/alice/tool", &b).unwrap();
        let r = |s: &str| Reference::parse(s).unwrap();
        let (scope, keys) = p.keys_for(&r("127.0.0.1:5000/alice/x:1")).unwrap().unwrap();
        assert_eq!(
            (scope.as_str(), keys),
            ("127.0.0.1:5000/alice", vec![a.clone()])
        );
        let (_, keys) = p
            .keys_for(&r("127.0.0.1:5000/alice/tool:1"))
            .unwrap()
            .unwrap();
        assert_eq!(keys, vec![b]);
        assert!(p
            .keys_for(&r("127.0.0.1:5000/alicex/y:1"))
            .unwrap()
            .is_none());
        assert_eq!(p.remove("127.0.0.1:5000/alice/*").unwrap(), 1);
        assert!(normalize_scope("http://x").is_err());
        assert!(normalize_scope("reg/a:tag").is_err());
        assert_eq!(normalize_scope("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
    }
}
