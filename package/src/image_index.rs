//! Multi-platform packages: an OCI image index pointing at one package manifest per
//! platform (`cargo ebpf package --arch x86_64,arm64`), and choosing the host's platform
//! when one is read back (pull, run of a layout).
//!
//! A build for one architecture stays a plain manifest ([`Release::Single`]); only two or
//! more make an index ([`Release::Multi`]). The index always carries its `mediaType`, so
//! registries and tools never have to guess what it is.

use std::collections::BTreeMap;

use oci_client::manifest::{ImageIndexEntry, OciImageIndex};

use crate::spec::MEDIA_TYPE_INDEX;
use crate::{digest, Error, Package, Result};

/// Several packages of one name and version, one per platform, behind an OCI image index.
#[derive(Debug, Clone)]
pub struct PackageIndex {
    /// The platform packages, in the order they were built.
    pub packages: Vec<Package>,
    pub index: OciImageIndex,
    /// The index exactly as serialized; its digest is what the tag points at.
    pub index_bytes: Vec<u8>,
}

impl PackageIndex {
    /// Builds the index for `packages`; two packages for the same platform are refused.
    pub fn new(packages: Vec<Package>) -> Result<PackageIndex> {
        let mut seen = BTreeMap::new();
        for pkg in &packages {
            let platform = pkg.platform();
            if seen.insert(platform.to_string(), ()).is_some() {
                return Err(Error::input(format!(
                    "two packages for {platform} cannot share one index"
                ))
                .with_help("list each architecture once in --arch"));
            }
        }
        let manifests = packages.iter().map(Package::index_entry).collect();
        let index = OciImageIndex {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_INDEX.to_string()),
            manifests,
            artifact_type: None,
            annotations: packages
                .first()
                .and_then(|p| p.manifest.annotations.clone()),
        };
        let index_bytes = serde_json::to_vec(&index)
            .map_err(|e| Error::input("cannot serialize the image index").with_source(e))?;
        Ok(PackageIndex {
            packages,
            index,
            index_bytes,
        })
    }

    /// The index digest: what a tag of a multi-platform package points at.
    pub fn digest(&self) -> String {
        digest::sha256(&self.index_bytes)
    }

    /// The `index.json` entry for this index in an OCI layout (no platform: it has several).
    pub fn index_entry(&self) -> ImageIndexEntry {
        ImageIndexEntry {
            media_type: MEDIA_TYPE_INDEX.to_string(),
            digest: self.digest(),
            size: self.index_bytes.len() as i64,
            platform: None,
            annotations: None,
            artifact_type: None,
        }
    }
}

/// What `cargo ebpf package` writes and `push` uploads: one package (a plain manifest), or
/// an index of per-platform packages.
#[derive(Debug, Clone)]
pub enum Release {
    Single(Box<Package>),
    Multi(PackageIndex),
}

impl Release {
    /// One package stays a plain manifest; several become an index.
    pub fn new(mut packages: Vec<Package>) -> Result<Release> {
        match packages.len() {
            0 => Err(Error::input(
                "nothing to package: no architecture was built",
            )),
            1 => Ok(Release::Single(Box::new(packages.remove(0)))),
            _ => PackageIndex::new(packages).map(Release::Multi),
        }
    }

    /// The digest the tag points at (manifest or index).
    pub fn digest(&self) -> String {
        match self {
            Release::Single(pkg) => pkg.digest(),
            Release::Multi(index) => index.digest(),
        }
    }

    pub fn packages(&self) -> &[Package] {
        match self {
            Release::Single(pkg) => std::slice::from_ref(pkg),
            Release::Multi(index) => &index.packages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{check_host_platform, pick_platform, Platform};
    use crate::spec;
    use crate::spec::MEDIA_TYPE_MANIFEST;
    use crate::test_support::{other_arch, platform_sample as sample};
    use crate::ErrorKind;

    #[test]
    fn index_has_media_type_and_one_entry_per_platform() {
        let (here, there) = (sample(spec::host_arch()), sample(other_arch()));
        let index = PackageIndex::new(vec![here.clone(), there.clone()]).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&index.index_bytes).unwrap();
        assert_eq!(json["mediaType"], MEDIA_TYPE_INDEX);
        assert_eq!(json["schemaVersion"], 2);
        let entries = json["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1]["digest"], there.digest().as_str());
        assert_eq!(entries[1]["mediaType"], MEDIA_TYPE_MANIFEST);
        assert_eq!(
            entries[1]["platform"],
            serde_json::json!({"os": "linux", "architecture": spec::oci_arch(other_arch())})
        );
        let picked = pick_platform(&index.index.manifests, "multi").unwrap();
        assert_eq!(picked.digest, here.digest());
    }

    #[test]
    fn duplicate_platforms_are_refused() {
        let err = PackageIndex::new(vec![sample("x86_64"), sample("x86_64")]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Input);
        assert!(err.message.contains("linux/amd64"), "{}", err.message);
    }

    #[test]
    fn a_missing_platform_names_what_there_is() {
        let there = sample(other_arch());
        let index = PackageIndex::new(vec![there.clone(), sample("riscv64")]).unwrap();
        let err = pick_platform(&index.index.manifests, "r/multi:0.1.0").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Input);
        assert_eq!(
            err.message,
            format!(
                "r/multi:0.1.0 has no package for this machine ({}), only for linux/{}, linux/riscv64",
                Platform::host(),
                spec::oci_arch(other_arch())
            )
        );
        assert!(err.help.unwrap().contains("--arch"));
        let err = check_host_platform(&there.platform(), "p").unwrap_err();
        assert!(err
            .message
            .ends_with(&format!("only for linux/{}", spec::oci_arch(other_arch()))));
        check_host_platform(&Platform::host(), "p").unwrap();
    }

    #[test]
    fn one_package_stays_a_plain_manifest() {
        let pkg = sample(spec::host_arch());
        let release = Release::new(vec![pkg.clone()]).unwrap();
        assert!(matches!(release, Release::Single(_)));
        assert_eq!(release.digest(), pkg.digest());
        assert!(Release::new(vec![]).is_err());
    }
}
