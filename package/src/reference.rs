//! A registry reference, `HOST[:PORT]/REPOSITORY[:TAG][@DIGEST]`, parsed once where it
//! enters (the command line, a run's state file) and passed around typed, so the store key,
//! the registry client and every message agree on one normalized form.
//!
//! The grammar is distribution's (`reference.go`), checked by hand in [`grammar`]: a
//! compiled regex cost most of a small command's start-up.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// A parsed registry reference. Displays as its normalized full form
/// (`docker.io/library/x:latest`, `localhost:5000/demo:0.1.0`), which is also the store key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    inner: oci_client::Reference,
}

impl Reference {
    /// Parses `text`, with a clear error that shows the expected shape.
    pub fn parse(text: &str) -> Result<Reference> {
        grammar::parse(text)
            .map(|p| Reference {
                inner: p.into_oci(),
            })
            .map_err(|why| {
                Error::input(format!("invalid reference {text:?}: {why}")).with_help(
                    "write it as HOST[:PORT]/REPOSITORY[:TAG], e.g. localhost:5000/hello:0.1.0",
                )
            })
    }

    /// The registry host as written (`localhost:5000`, `ghcr.io`; `docker.io` by default).
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// The registry to connect to (`index.docker.io` for `docker.io`).
    pub fn resolve_registry(&self) -> &str {
        self.inner.resolve_registry()
    }

    /// The repository inside the registry (`me/opensnoop`).
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// The same repository at `digest` (no tag): how a pinned or platform manifest is named.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            inner: oci_client::Reference::with_digest(
                self.registry().to_string(),
                self.repository().to_string(),
                digest.to_string(),
            ),
        }
    }

    /// The same repository at `tag`.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            inner: oci_client::Reference::with_tag(
                self.registry().to_string(),
                self.repository().to_string(),
                tag.to_string(),
            ),
        }
    }

    /// oci-client's form, for the registry client.
    pub fn as_oci(&self) -> &oci_client::Reference {
        &self.inner
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.whole())
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

/// The distribution reference grammar as plain scans, and docker's normalization.
mod grammar {
    const DOCKER_HUB: &str = "docker.io";
    const DOCKER_HUB_LEGACY: &str = "index.docker.io";
    /// Longest repository distribution accepts.
    const MAX_REPOSITORY: usize = 255;
    /// Longest tag: one word character and up to 127 more.
    const MAX_TAG: usize = 128;

    /// A reference split into its normalized parts.
    pub(super) struct Parts {
        registry: String,
        repository: String,
        tag: Option<String>,
        digest: Option<String>,
    }

    impl Parts {
        pub(super) fn into_oci(self) -> oci_client::Reference {
            let Parts {
                registry: r,
                repository: p,
                tag,
                digest,
            } = self;
            match (tag, digest) {
                (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(r, p, t, d),
                (None, Some(d)) => oci_client::Reference::with_digest(r, p, d),
                (t, None) => oci_client::Reference::with_tag(r, p, t.unwrap_or("latest".into())),
            }
        }
    }

    /// `NAME[:TAG][@DIGEST]`; the error says which part is wrong.
    pub(super) fn parse(text: &str) -> Result<Parts, &'static str> {
        if text.is_empty() {
            return Err("it is empty");
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, d)) => (rest, Some(check_digest(d)?)),
            None => (text, None),
        };
        // A tag is a colon after the last slash; a colon before it is the host's port.
        let last = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last..].rfind(':') {
            Some(i) => (&rest[..last + i], Some(check_tag(&rest[last + i + 1..])?)),
            None => (rest, None),
        };
        let (registry, repository) = split_name(name)?;
        if repository.len() > MAX_REPOSITORY {
            return Err("the repository is longer than 255 characters");
        }
        Ok(Parts {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The registry and repository of `name`, normalized like docker does: no host means
    /// docker.io, and a one-part docker.io repository is under `library/`.
    fn split_name(name: &str) -> Result<(String, String), &'static str> {
        let mut parts = name.split('/');
        let first = parts.next().unwrap_or_default();
        let has_host = name.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost");
        if name.contains('/') && !is_domain(first) && !is_path_component(first) {
            return Err("the host is not a valid host name");
        }
        if !has_host && !is_path_component(first) {
            return Err("repository names are lowercase letters, digits and . _ -");
        }
        if !parts.all(is_path_component) {
            return Err("repository names are lowercase letters, digits and . _ -");
        }
        let (mut registry, repository) = match name.split_once('/') {
            Some((host, repo)) if has_host => (host.to_string(), repo.to_string()),
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if registry == DOCKER_HUB_LEGACY {
            registry = DOCKER_HUB.to_string();
        }
        if registry == DOCKER_HUB && !repository.contains('/') {
            return Ok((registry, format!("library/{repository}")));
        }
        Ok((registry, repository))
    }

    /// `label(.label)*[:port]`, each label alphanumeric with inner dashes.
    fn is_domain(text: &str) -> bool {
        let (host, port) = match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        };
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        port_ok && host.split('.').all(is_domain_label)
    }

    fn is_domain_label(label: &str) -> bool {
        let b = label.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    }

    /// Lowercase alphanumeric runs joined by `.`, `_`, `__` or any number of dashes.
    fn is_path_component(text: &str) -> bool {
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        let b = text.as_bytes();
        if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            let run = b[i..].iter().take_while(|c| !alnum(**c)).count();
            let sep = &text[i..i + run];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return false;
            }
            i += run;
        }
        true
    }

    fn check_tag(tag: &str) -> Result<&str, &'static str> {
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let b = tag.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= MAX_TAG
            && word(b[0])
            && b.iter().all(|c| word(*c) || *c == b'.' || *c == b'-');
        if ok {
            Ok(tag)
        } else {
            Err("a tag is up to 128 letters, digits and _ . - (not starting with . or -)")
        }
    }

    /// `ALGORITHM:HEX`, with the hex as long as the algorithm's output.
    fn check_digest(digest: &str) -> Result<&str, &'static str> {
        let Some((algorithm, hex)) = digest.split_once(':') else {
            return Err("a digest is ALGORITHM:HEX, e.g. sha256:…");
        };
        let len = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return Err("the digest's algorithm is not sha256, sha384 or sha512"),
        };
        if hex.len() != len || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err("the digest's hex is not the algorithm's length");
        }
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_keeps_parts() {
        let r = Reference::parse("localhost:5000/me/demo:0.1.0").unwrap();
        assert_eq!(r.to_string(), "localhost:5000/me/demo:0.1.0");
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "me/demo");
        assert_eq!(r.tag(), Some("0.1.0"));
        assert_eq!(
            Reference::parse("demo").unwrap().to_string(),
            "docker.io/library/demo:latest"
        );
        let pinned = r.with_digest(&format!("sha256:{}", "a".repeat(64)));
        assert_eq!(pinned.tag(), None);
        assert!(pinned.to_string().ends_with(&"a".repeat(64)));
    }

    /// The hand-written grammar against oci-spec's regex (kept as a test oracle only), on
    /// strings built from the pieces references are made of.
    #[test]
    fn agrees_with_the_distribution_regex() {
        let pieces = [
            "a",
            "b9",
            "Z",
            "0",
            ".",
            "_",
            "__",
            "-",
            "--",
            ":",
            "/",
            "@",
            "localhost",
            ":5000",
            "ex.com",
            "index.docker.io",
            "docker.io",
            "sha256:",
            "sha512:",
            "md5:",
            "v1.2",
            &"a".repeat(64),
            &"F".repeat(64),
            &"0".repeat(128),
            "[::1]",
            "x/y/z",
            "_a",
            "A-",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut agreed_ok = 0;
        for _ in 0..200_000 {
            let text: String = (0..1 + next(6))
                .map(|_| pieces[next(pieces.len())])
                .collect();
            let ours = grammar::parse(&text).ok().map(|p| p.into_oci());
            // The regex lets a host-like first part with capitals through even when it is
            // not taken as a host (`ABC/x` → docker.io/ABC/x); repositories are lowercase.
            let oracle = oci_client::Reference::try_from(text.as_str())
                .ok()
                .filter(|r| !r.repository().bytes().any(|b| b.is_ascii_uppercase()));
            assert_eq!(ours, oracle, "{text:?}");
            agreed_ok += usize::from(ours.is_some());
        }
        // The corpus must exercise valid references too, not only garbage.
        assert!(
            agreed_ok > 10_000,
            "only {agreed_ok} valid references generated"
        );
    }

    #[test]
    fn refuses_garbage_with_help() {
        let e = Reference::parse("UPPER/Case").unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Input);
        assert!(e.help.unwrap().contains("HOST[:PORT]"));
    }
}
