//! Fixtures shared by this crate's unit tests: packages for one platform or another (the
//! multi-platform tests of `image_index` and `layout`), and type layouts (`decode`, `codec`).

use crate::spec::{self, Field, PackageMeta, TypeLayout};
use crate::Package;

/// A package named `multi` built for `arch`, whose object names the arch (distinct digests).
pub(crate) fn platform_sample(arch: &str) -> Package {
    let mut meta = PackageMeta::new("multi", "0.1.0", "multi.bpf.o");
    meta.arch = arch.into();
    Package::build(meta, format!("obj-{arch}").as_bytes(), None).unwrap()
}

/// An architecture that is not this host's.
pub(crate) fn other_arch() -> &'static str {
    if spec::host_arch() == "x86_64" {
        "aarch64"
    } else {
        "x86_64"
    }
}

pub(crate) fn int(size: u32, signed: bool) -> TypeLayout {
    TypeLayout::Int { size, signed }
}

/// A field at a whole-byte offset.
pub(crate) fn field(name: &str, offset_bytes: u32, ty: TypeLayout) -> Field {
    Field {
        name: name.into(),
        offset_bits: offset_bytes * 8,
        bitfield_bits: None,
        ty,
    }
}

pub(crate) fn bitfield(name: &str, offset_bits: u32, bits: u32, ty: TypeLayout) -> Field {
    Field {
        name: name.into(),
        offset_bits,
        bitfield_bits: Some(bits),
        ty,
    }
}
