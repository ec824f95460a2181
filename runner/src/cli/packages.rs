//! The local store and registries: `login`, `pull`, `list`, `rm`, `inspect`.

use std::io::Read;
use std::path::Path;

use ebpf_package::{Error, Reference, Result};

use crate::resolve;
use crate::store::Store;

use super::{background, outln, registry, Host, LoginArgs, RegistryArgs};

pub fn login(args: &LoginArgs) -> Result<i32> {
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => {
            warn_password_argument();
            p.clone()
        }
        (None, true) => read_password_stdin()?,
        (None, false) => {
            return Err(Error::usage("no password given")
                .with_help("pass --password-stdin and pipe the password in, or use --password"))
        }
    };
    let path = registry(&args.registry_args)?.login(&args.registry, &args.username, &password)?;
    eprintln!("Login succeeded; credentials saved in {}", path.display());
    Ok(0)
}

/// A password given as an argument shows in `ps` and /proc/PID/cmdline to every local user
/// while login runs, and often in shell history.
fn warn_password_argument() {
    eprintln!(
        "warning: a password given with -p/--password is visible to other users of this \
         machine (process list) and may stay in your shell history; \
         use --password-stdin instead (e.g. `echo \"$TOKEN\" | {} login REGISTRY -u USER --password-stdin`)",
        crate::program::name()
    );
}

fn read_password_stdin() -> Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Error::io("read", Path::new("<stdin>"), e))?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

pub fn pull(reference: &str, reg: &RegistryArgs) -> Result<i32> {
    let registry = registry(reg)?;
    let reference = super::full_reference(reference, &registry)?;
    let pkg = resolve::pull_into(&reference, &Store::open_default()?, &registry)?;
    eprintln!("      Pulled {reference}");
    outln!("{}", pkg.digest());
    Ok(0)
}

pub fn list(json: bool) -> Result<i32> {
    let entries = Store::open_default()?.list()?;
    if json {
        let text = serde_json::to_string_pretty(&entries).expect("store entries serialize");
        outln!("{text}");
        return Ok(0);
    }
    outln!(
        "{:<50} {:<12} {:<10} {:<19} {:>8}  VERIFIED BY",
        "REFERENCE",
        "VERSION",
        "FORMAT",
        "DIGEST",
        "SIZE"
    );
    for e in entries {
        let short = e
            .digest
            .trim_start_matches("sha256:")
            .get(..12)
            .unwrap_or("")
            .to_string();
        let version = e.version.unwrap_or_default();
        let format = e.format.unwrap_or_else(|| "?".into());
        // Unverified packages say so, rather than leaving the column blank.
        let verified = e.verified_by.unwrap_or_else(|| "-".into());
        outln!(
            "{:<50} {:<12} {:<10} sha256:{:<12} {:>8}  {verified}",
            e.reference,
            version,
            format,
            short,
            e.size
        );
    }
    Ok(0)
}

pub fn rm(reference: &str, host: &Host) -> Result<i32> {
    let full = crate::config::expand(reference)?;
    background::refuse_if_running(&full, host)?;
    if Store::open_default()?.remove(&Reference::parse(&full)?)? {
        eprintln!("     Removed {full}");
        Ok(0)
    } else {
        Err(Error::input(format!("{full} is not in the local store"))
            .with_help(format!("`{} list` shows what is", host.name)))
    }
}

/// A project directory the host can build (`cargo ebpf inspect .`) is built first; the
/// rest is the runner's own resolution.
pub fn inspect(target: &str, json: bool, reg: &RegistryArgs, host: &Host) -> Result<i32> {
    let built = host
        .build_project
        .and_then(|build| build(Path::new(target)));
    let report = match built {
        Some(pkg) => crate::inspect::package_report(target, &pkg?)?,
        None => {
            let registry = registry(reg)?;
            let target = super::full_target(target, &registry)?;
            crate::inspect::target_report(&target, &registry, Store::open_default)?
        }
    };
    if json {
        let text = serde_json::to_string_pretty(&report).expect("reports serialize");
        outln!("{text}");
    } else {
        outln!("{}", crate::inspect::render(&report).trim_end());
    }
    Ok(0)
}
