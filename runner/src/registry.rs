//! Push, pull and login against OCI registries (oci-client underneath).
//! STUB: contract only.

use crate::{Package, Result};

/// How to talk to a registry.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Allow plain HTTP for non-loopback registries (loopback always may use HTTP).
    pub insecure: bool,
    /// Show progress bars (the CLI sets this when stdout is a terminal).
    pub progress: bool,
}

/// Pushes `pkg` to `reference` (`host[:port]/repo[:tag]`); returns the manifest digest.
/// Credentials come from the docker config (see [`crate::credentials`]).
pub fn push(pkg: &Package, reference: &str, opts: &ClientOptions) -> Result<String> {
    let _ = (pkg, reference, opts);
    todo!()
}

/// Pulls `reference`, verifying every digest; nothing is written anywhere.
pub fn pull(reference: &str, opts: &ClientOptions) -> Result<Package> {
    let _ = (reference, opts);
    todo!()
}

/// Checks the credentials against `registry` and stores them in the docker config.
/// Returns the path of the config file written.
pub fn login(
    registry: &str,
    username: &str,
    password: &str,
    opts: &ClientOptions,
) -> Result<std::path::PathBuf> {
    let _ = (registry, username, password, opts);
    todo!()
}
