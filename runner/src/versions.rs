//! Which versions a repository offers, in semver order: its tags that are versions
//! (`1.2.3`, also `v1.2.3`), less those its hub marks yanked. What `outdated`, `upgrade`
//! and short names without a tag (`opensnoop` → its newest version) pick from.

use semver::Version;

use crate::hub_api;
use crate::registry::Registry;
use ebpf_package::{Reference, Result};

/// One offered version and the tag that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    pub version: Version,
    pub tag: String,
}

/// A tag read as a version: `1.2.3` or `v1.2.3`.
pub fn parse(tag: &str) -> Option<Version> {
    Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// The versions `reference`'s repository offers, oldest first. Pre-releases are left out
/// (nobody upgrades onto one by accident), and so are the versions its hub marks yanked; a
/// plain registry marks none.
pub fn offered(registry: &Registry, reference: &Reference) -> Result<Vec<Offered>> {
    let tags = registry.list_tags(reference)?;
    let yanked: Vec<String> = hub_api::versions(registry, reference)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(v, yanked)| yanked.then_some(v))
        .collect();
    Ok(pick(&tags, &yanked))
}

/// [`offered`] without the network: `tags` less `yanked`, as versions, sorted.
pub fn pick(tags: &[String], yanked: &[String]) -> Vec<Offered> {
    let mut out: Vec<Offered> = tags
        .iter()
        .filter(|t| !yanked.contains(t))
        .filter_map(|t| {
            parse(t).map(|version| Offered {
                version,
                tag: t.clone(),
            })
        })
        .filter(|o| o.version.pre.is_empty())
        .collect();
    out.sort_by(|a, b| a.version.cmp(&b.version));
    out.dedup_by(|a, b| a.version == b.version);
    out
}

/// The newest of `offered` newer than `current`; within `current`'s major version unless
/// `any_major`.
pub fn newer<'a>(
    offered: &'a [Offered],
    current: &Version,
    any_major: bool,
) -> Option<&'a Offered> {
    offered
        .iter()
        .rfind(|o| o.version > *current && (any_major || o.version.major == current.major))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn semver_order_skips_yanked_pre_releases_and_other_tags() {
        let offered = pick(
            &tags(&[
                "0.10.0",
                "latest",
                "0.9.0",
                "v1.0.0",
                "1.1.0-rc.1",
                "0.11.0",
                "sha256-ab.sig",
            ]),
            &tags(&["0.11.0"]),
        );
        let names: Vec<&str> = offered.iter().map(|o| o.tag.as_str()).collect();
        assert_eq!(names, ["0.9.0", "0.10.0", "v1.0.0"]);
        let current = parse("0.9.0").unwrap();
        assert_eq!(newer(&offered, &current, false).unwrap().tag, "0.10.0");
        assert_eq!(newer(&offered, &current, true).unwrap().tag, "v1.0.0");
        assert!(newer(&offered, &parse("1.0.0").unwrap(), true).is_none());
    }
}
