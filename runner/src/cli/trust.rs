//! `verify REF --key PUB` and `trust add/list/rm`: checking signatures by hand, and the
//! policy that makes `pull`, `run` and `install` check them.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use ebpf_package::signature::PublicKey;
use ebpf_package::spec::SLSA_PROVENANCE_V1;
use ebpf_package::{Error, Result};

use crate::attestation::{self, Found};
use crate::signing;
use crate::trust::{self as policy, Policy};

use super::{outln, registry, Host, RegistryArgs};

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Require packages in SCOPE (a registry, `REGISTRY/NAMESPACE/*` or a repository) to be
    /// signed by KEY; several keys per scope are accepted alternatives. With --from-hub,
    /// SCOPE is `HUB/USER` and the keys USER registered on that hub are trusted for
    /// `HUB/USER/*` (their fingerprints are printed: compare them with the publisher's).
    Add {
        scope: String,
        /// Public key (PEM `.pub` file).
        #[arg(
            long,
            value_name = "PUB",
            required_unless_present = "from_hub",
            conflicts_with = "from_hub"
        )]
        key: Option<PathBuf>,
        /// Fetch the keys from the hub's profile of USER (`GET /api/v1/users/USER/keys`).
        #[arg(long)]
        from_hub: bool,
        #[command(flatten)]
        registry: RegistryArgs,
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
    let registry = registry(reg)?;
    let reference = super::full_reference(reference, &registry)?;
    let keys = keys
        .iter()
        .map(|p| read_public_key(p))
        .collect::<Result<Vec<_>>>()?;
    let (digest, verified) = signing::verify(&registry, &reference, &keys)?;
    eprintln!("    Verified {reference}");
    outln!("{digest} signed by {}", verified.fingerprint);
    let provenance = attestation::find(&registry, &reference, &digest, SLSA_PROVENANCE_V1, &keys)
        .map_err(|e| {
            let help = format!(
                "its signature checks, but its provenance attestation does not: do not trust where it says it was built. {}",
                e.help.clone().unwrap_or_default()
            );
            e.with_help(help)
        })?;
    match provenance {
        Found::Verified(statement, key) => {
            let f = statement.facts();
            outln!(
                "{digest} provenance signed by {key}: {} @ {}{}, built by {}",
                f.repository.as_deref().unwrap_or("(no repository)"),
                f.commit.as_deref().unwrap_or("(no commit)"),
                if f.dirty { " (dirty)" } else { "" },
                f.builder
            );
        }
        _ => eprintln!("note: {reference} has no provenance attestation"),
    }
    Ok(0)
}

pub fn trust(command: TrustCommand, host: &Host) -> Result<i32> {
    let path = policy::path()?;
    let mut p = Policy::load_from(&path)?;
    match command {
        TrustCommand::Add {
            scope,
            key: Some(key),
            ..
        } => {
            let key = read_public_key(&key)?;
            add_key(&mut p, &scope, &key)?;
            p.save_to(&path)?;
        }
        TrustCommand::Add {
            scope,
            registry: reg,
            ..
        } => {
            let (scope, keys) = keys_from_hub(&scope, &reg)?;
            for key in &keys {
                add_key(&mut p, &scope, key)?;
                outln!("{}", key.fingerprint());
            }
            p.save_to(&path)?;
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

fn add_key(p: &mut Policy, scope: &str, key: &PublicKey) -> Result<()> {
    if p.add(scope, key)? {
        eprintln!("     Trusted {} for {scope}", key.fingerprint());
    } else {
        eprintln!("     {} is already trusted for {scope}", key.fingerprint());
    }
    Ok(())
}

/// The scope `HUB/USER/*` and USER's keys as registered on HUB. Each PEM is parsed and
/// fingerprinted here: the hub's own fingerprints are not taken on faith.
fn keys_from_hub(scope: &str, reg: &RegistryArgs) -> Result<(String, Vec<PublicKey>)> {
    let usage = || {
        Error::usage(format!("--from-hub takes HUB/USER, not {scope:?}"))
            .with_help("e.g. `trust add 127.0.0.1:8080/alice --from-hub`")
    };
    let (hub, user) = scope
        .trim_end_matches("/*")
        .split_once('/')
        .ok_or_else(usage)?;
    if hub.is_empty() || user.is_empty() || user.contains('/') {
        return Err(usage());
    }
    let listed = crate::hub_api::user_keys(&registry(reg)?, hub, user)?;
    if listed.is_empty() {
        return Err(
            Error::input(format!("{user} has registered no keys on {hub}")).with_help(format!(
                "ask {user} to add their public key on http://{hub}/u/{user}, or pass --key PUB"
            )),
        );
    }
    let keys = listed
        .iter()
        .map(|pem| PublicKey::from_pem(pem))
        .collect::<Result<Vec<_>>>()?;
    Ok((format!("{hub}/{user}/*"), keys))
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
