//! A registry reference, `HOST[:PORT]/REPOSITORY[:TAG][@DIGEST]`, parsed once where it
//! enters (the command line, a run's state file) and passed around typed, so the store key,
//! the registry client and every message agree on one normalized form.

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
        oci_client::Reference::try_from(text)
            .map(|inner| Reference { inner })
            .map_err(|e| {
                Error::input(format!("invalid reference {text:?}"))
                    .with_help(
                        "write it as HOST[:PORT]/REPOSITORY[:TAG], e.g. localhost:5000/hello:0.1.0",
                    )
                    .with_source(e)
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

    #[test]
    fn refuses_garbage_with_help() {
        let e = Reference::parse("UPPER/Case").unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Input);
        assert!(e.help.unwrap().contains("HOST[:PORT]"));
    }
}
