//! `verify REF --key PUB` and `trust add/list/rm`: checking signatures by hand, and the
//! policy that makes `pull`, `run` and `install` check them.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use ebpf_package::signature::PublicKey;
use ebpf_package::{Error, Reference, Result};

use crate::signing;
use crate::trust::{self as policy, Policy};

use super::{outln, registry, Host, RegistryArgs};

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Require packages in SCOPE (a registry, `REGISTRY/NAMESPACE/*` or a repository) to be
    /// signed by KEY; several keys per scope are accepted alternatives.
    Add {
        scope: String,
        /// Public key (PEM `.pub` file).
        #[arg(long, value_name = "PUB")]
        key: PathBuf,
    },
    /// List the trusted scopes and their keys.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop requiring signatures for SCOPE (removes all its keys).
    Rm { scope: String },
}

pub fn verify(reference: &str, keys: &[PathBuf], reg: &RegistryArgs) -> Result<i32> {
    let reference = Reference::parse(reference)?;
    let keys = keys
        .iter()
        .map(|p| read_public_key(p))
        .collect::<Result<Vec<_>>>()?;
    let (digest, verified) = signing::verify(&registry(reg), &reference, &keys)?;
    eprintln!("    Verified {reference}");
    outln!("{digest} signed by {}", verified.fingerprint);
    Ok(0)
}

pub fn trust(command: TrustCommand, host: &Host) -> Result<i32> {
    let path = policy::path()?;
    let mut p = Policy::load_from(&path)?;
    match command {
        TrustCommand::Add { scope, key } => {
            let key = read_public_key(&key)?;
            if p.add(&scope, &key)? {
                p.save_to(&path)?;
                eprintln!("     Trusted {} for {scope}", key.fingerprint());
            } else {
                eprintln!("     {} is already trusted for {scope}", key.fingerprint());
            }
        }
        TrustCommand::List { json } => list(&p, json),
        TrustCommand::Rm { scope } => {
            if p.remove(&scope)? == 0 {
                return Err(Error::input(format!("{scope} is not a trusted scope"))
                    .with_help(format!("`{} trust list` shows the scopes", host.name)));
            }
            p.save_to(&path)?;
            eprintln!("     Removed {scope}");
        }
    }
    Ok(0)
}

fn list(p: &Policy, json: bool) {
    if json {
        let text = serde_json::to_string_pretty(p).expect("the policy serializes");
        outln!("{text}");
        return;
    }
    outln!("{:<50} KEY", "SCOPE");
    for e in &p.entries {
        outln!("{:<50} {}", e.scope, e.fingerprint);
    }
    if p.require_signed {
        outln!("(require-signed: packages outside these scopes are refused)");
    }
}

/// Reads a `.pub` file.
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    PublicKey::from_pem(&text).map_err(|e| e.with_context_path(path))
}
