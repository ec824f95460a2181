//! `install REF`: pull into the store and check the package can start here, without
//! starting it (architecture, object, kernel BTF, runtime needs).

use crate::engine::Engine;
use crate::registry::Registry;
use crate::resolve;
use crate::run;
use crate::store::Store;
use ebpf_package::spec::{self, PackageMeta, Runtime};
use ebpf_package::{object, Error, Package, Reference, Result};

/// What `install` made ready.
pub struct Installed {
    pub reference: String,
    pub package: Package,
}

/// Pulls `reference` into `store` (or finds it there) and checks it is ready to start.
pub fn install(reference: &Reference, store: &Store, registry: &Registry) -> Result<Installed> {
    let package = resolve::fetch(reference, store, registry)?;
    let meta = package.meta()?;
    check_ready(meta, None)?;
    if let Runtime::Kernel = meta.runtime {
        object::check_elf(&package.object()?.1)?;
    }
    Ok(Installed {
        reference: reference.to_string(),
        package,
    })
}

/// The checks that need nothing started: the package is for this architecture, and what
/// its runtime needs is here (kernel BTF, a container engine, sane file destinations).
pub fn check_ready(meta: &PackageMeta, engine: Option<&str>) -> Result<()> {
    let host = spec::host_arch();
    if spec::normalize_arch(&meta.arch) != Some(host) {
        return Err(Error::input(format!(
            "{} {} is built for {}, but this machine is {host}",
            meta.name, meta.version, meta.arch
        ))
        .with_help(format!(
            "publish a {host} build (`cargo ebpf build --arch {host}`) and install that"
        )));
    }
    match &meta.runtime {
        Runtime::Kernel => run::kernel_btf_path(None).map(drop),
        Runtime::Executable { .. } => Ok(()),
        Runtime::Container { image, .. } => {
            run::check_container_image(image)?;
            Engine::detect(engine).map(drop)
        }
        Runtime::Files {
            files,
            script,
            stop_script,
        } => run::validate_files(files, &[script, stop_script])
            .and_then(|()| run::check_file_destinations(files).map(drop)),
    }
}
