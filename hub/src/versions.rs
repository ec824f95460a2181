//! Which tags are published versions, and which version is "latest". A version tag
//! (`1.2.3`, `v1.2.3-rc1`) is a promise: it always names the same content, and only version
//! tags describe the package (its page, its metadata, `latest`). Other tags (`latest`, `dev`,
//! `sha256-….sig`) are stored and served but never change what the store shows.

use std::cmp::Ordering;

/// Whether `tag` is a semver version (optionally `v`-prefixed, with a pre-release part).
pub fn is_version_tag(tag: &str) -> bool {
    numbers(tag).is_some()
}

/// `(major, minor, patch)` and the pre-release part of a version tag.
fn numbers(tag: &str) -> Option<([u64; 3], &str)> {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    let (core, pre) = t.split_once('-').unwrap_or((t, ""));
    let mut out = [0u64; 3];
    let mut parts = core.split('.');
    for slot in &mut out {
        let p = parts.next()?;
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = p.parse().ok()?;
    }
    parts.next().is_none().then_some((out, pre))
}

/// Semver precedence (simplified: pre-releases compare as text), releases after their
/// pre-releases; tags that are not versions sort first.
pub fn compare(a: &str, b: &str) -> Ordering {
    let key = |t: &str| numbers(t).map(|(n, pre)| (n, pre.is_empty(), pre.to_string()));
    key(a).cmp(&key(b))
}

/// The highest of `versions` that are version tags; None when there is none.
pub fn latest<'a>(versions: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    versions
        .into_iter()
        .filter(|v| is_version_tag(v))
        .max_by(|a, b| compare(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_tags() {
        for t in ["1.2.3", "v0.1.0", "1.0.0-rc1", "10.20.30"] {
            assert!(is_version_tag(t), "{t}");
        }
        for t in [
            "latest",
            "zzz-hack",
            "1.2",
            "1.2.3.4",
            "sha256-ab.sig",
            "v",
            "1..3",
        ] {
            assert!(!is_version_tag(t), "{t}");
        }
    }

    #[test]
    fn latest_is_the_highest_release() {
        assert_eq!(latest(["0.9.0", "0.10.0", "0.2.0"]), Some("0.10.0"));
        assert_eq!(latest(["1.0.0-rc1", "1.0.0"]), Some("1.0.0"));
        assert_eq!(latest(["1.0.0", "1.1.0-rc1"]), Some("1.1.0-rc1"));
        assert_eq!(latest(["zzz-hack", "0.1.0"]), Some("0.1.0"));
        assert_eq!(latest(["latest"]), None);
    }
}
