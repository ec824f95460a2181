//! The user's settings and machine: `config get|set|list`, `search` (a hub's JSON API),
//! `logout`, `doctor`.

use clap::Subcommand;

use crate::config::{self, Config};
use crate::doctor;
use crate::hub_api;
use ebpf_package::{Error, Result};

use super::{outln, registry, RegistryArgs};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print one setting (nothing, and exit 1, when it is unset).
    Get { key: String },
    /// Change one setting; an empty VALUE unsets it.
    Set { key: String, value: String },
    /// Print every setting, and where the file is.
    List,
}

pub fn config(command: ConfigCommand) -> Result<i32> {
    let path = config::path()?;
    let mut config = Config::load_from(&path)?;
    match command {
        ConfigCommand::Get { key } => match config.get(&key)? {
            Some(value) => outln!("{value}"),
            None => return Ok(1),
        },
        ConfigCommand::Set { key, value } => {
            config.set(&key, &value)?;
            config.save_to(&path)?;
            eprintln!("         Set {key} = {value:?} in {}", path.display());
        }
        ConfigCommand::List => {
            eprintln!("# {}", path.display());
            for key in config::KEYS {
                if let Some(value) = config.get(key)? {
                    outln!("{key} = {value:?}");
                }
            }
            for r in &config.registries {
                outln!("mirrors.{} = {:?}", r.prefix, r.mirrors.join(","));
            }
        }
    }
    Ok(0)
}

/// `search WORDS`: the hub is `--registry`, else the host of `default-registry`.
pub fn search(
    words: &str,
    hub: Option<&str>,
    json: bool,
    (page, per_page): (u64, u64),
    args: &RegistryArgs,
) -> Result<i32> {
    let hub = match hub {
        Some(h) => h.trim_end_matches('/').to_string(),
        None => default_hub()?,
    };
    let registry = registry(args)?;
    let found = match hub_api::search(&registry, &hub, words, page, per_page)? {
        Some(found) => found,
        None => catalog_search(&registry, &hub, words)?,
    };
    if json {
        let text = serde_json::to_string_pretty(&found).expect("search results serialize");
        outln!("{text}");
        return Ok(0);
    }
    if found.packages.is_empty() {
        eprintln!("No package on {hub} matches {words:?}");
        return Ok(0);
    }
    outln!(
        "{:<40} {:<10} {:>6} {:>9}  {:<8} DESCRIPTION",
        "PACKAGE",
        "LATEST",
        "STARS",
        "DOWNLOADS",
        "SIGNED"
    );
    for p in &found.packages {
        let signed = if p.signed { "signed" } else { "-" };
        outln!(
            "{:<40} {:<10} {:>6} {:>9}  {signed:<8} {}",
            format!("{hub}/{}", p.repository),
            p.latest,
            p.stars,
            p.downloads,
            p.description
        );
    }
    let shown = (page - 1) * per_page + found.packages.len() as u64;
    if shown < found.total {
        eprintln!(
            "{shown} of {} shown; `--page {}` for more",
            found.total,
            page + 1
        );
    }
    Ok(0)
}

/// A plain registry that lists its catalog: the repositories whose names match, each with
/// its newest version (no descriptions, stars or hub-checked signatures there).
fn catalog_search(
    registry: &crate::registry::Registry,
    host: &str,
    words: &str,
) -> Result<hub_api::SearchPage> {
    let repos = hub_api::catalog_matches(registry, host, words)?;
    eprintln!(
        "note: {host} is a plain OCI registry, not a hub: these are repository names from its catalog matching {words:?}"
    );
    let mut packages = vec![];
    for repo in repos.iter().take(MAX_CATALOG_ROWS) {
        let reference = ebpf_package::Reference::parse(&format!("{host}/{repo}"))?;
        let latest = crate::versions::offered(registry, &reference)?
            .last()
            .map(|o| o.tag.clone())
            .unwrap_or_default();
        let (owner, name) = repo.rsplit_once('/').unwrap_or(("", repo));
        packages.push(hub_api::Found {
            repository: repo.clone(),
            owner: owner.to_string(),
            name: name.to_string(),
            latest,
            description: String::new(),
            stars: 0,
            downloads: 0,
            signed: false,
        });
    }
    Ok(hub_api::SearchPage {
        total: packages.len() as u64,
        page: 1,
        per_page: packages.len() as u64,
        packages,
    })
}

/// Most catalog matches listed (each costs a tags request).
const MAX_CATALOG_ROWS: usize = 50;

fn default_hub() -> Result<String> {
    let config = Config::load()?;
    let default = config.default_registry.ok_or_else(|| {
        Error::usage("no hub to search: give --registry HUB or set a default registry")
            .with_help("`cargo ebpf config set default-registry HOST/NAMESPACE`, or `search WORDS --registry HOST`")
    })?;
    Ok(default.split('/').next().unwrap_or_default().to_string())
}

pub fn logout(host: &str) -> Result<i32> {
    let paths = crate::credentials::AuthPaths::from_env();
    match crate::credentials::remove_in(&paths, host.trim_end_matches('/'))? {
        Some(file) => {
            eprintln!("Removed the credentials for {host} from {}", file.display());
            Ok(0)
        }
        None => Err(Error::input(format!("no saved credentials for {host}"))
            .with_help("nothing to do; `login` saves credentials, in the docker config.json")),
    }
}

pub fn doctor(json: bool) -> Result<i32> {
    let checks = doctor::checks();
    let distro = doctor::distro();
    if json {
        let body = serde_json::json!({ "distribution": distro, "checks": checks });
        let text = serde_json::to_string_pretty(&body).expect("checks serialize");
        outln!("{text}");
        return Ok(0);
    }
    outln!("{:<7} {:<18} {:<8} DETAIL", "AREA", "WHAT", "STATUS");
    for c in &checks {
        let install = match (c.status, distro) {
            ("missing", Some("fedora")) => c.fedora.map(|p| format!(" (install: dnf install {p})")),
            ("missing", _) => c.debian.map(|p| format!(" (install: apt-get install {p})")),
            _ => None,
        };
        outln!(
            "{:<7} {:<18} {:<8} {}{}",
            c.area,
            c.name,
            c.status,
            c.detail,
            install.unwrap_or_default()
        );
    }
    Ok(0)
}
