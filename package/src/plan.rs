//! What running a package will do, said before it does it: the programs and where they
//! attach, the capabilities that needs, the host files written (and which replace existing
//! ones), the scripts run and the executable or container started.
//!
//! Computed once from the metadata ([`PackageMeta`], its [`Runtime`]) so that `inspect`
//! and the first lines of `run` say the same thing.

use std::fmt::Write as _;

use serde::Serialize;

use crate::object;
use crate::spec::{self, PackageMeta, Runtime};

/// Everything a run of one package does to the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Who loads and attaches the programs: `runner` (the built-in loader) or `loader`
    /// (the package's own executable, container or script).
    pub loaded_by: String,
    pub attach: Vec<AttachStep>,
    pub capabilities: Vec<Capability>,
    /// Host files written, in order.
    pub files: Vec<FileStep>,
    /// Shell scripts from the package run with `sh` (files runtime).
    pub scripts: Vec<String>,
    /// The executable or container started, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts: Option<Process>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachStep {
    pub program: String,
    #[serde(rename = "type")]
    pub prog_type: String,
    /// e.g. `tracepoint syscalls:sys_enter_openat`, `xdp (needs a network interface)`.
    pub point: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capability {
    /// `CAP_BPF`, `CAP_PERFMON`, `CAP_NET_ADMIN`, `CAP_SYS_ADMIN`.
    pub name: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStep {
    /// Absolute destination on the host.
    pub dest: String,
    /// Path inside the package.
    pub src: String,
    pub mode: u32,
    /// Replaces a file already there (saved, and put back by `stop`).
    pub overwrite: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Process {
    /// The package's own loader, from its layer.
    Executable { path: String, args: Vec<String> },
    /// A container image started with docker or podman.
    Container {
        image: String,
        args: Vec<String>,
        privileged: bool,
        /// `host:container[:ro]` bind mounts.
        mounts: Vec<String>,
    },
}

/// Program types whose load the kernel allows only with CAP_NET_ADMIN (networking hooks).
const NET_ADMIN_TYPES: [&str; 6] = ["xdp", "tc", "tcx", "cgroup_skb", "socket_filter", "sk_skb"];

impl Plan {
    /// The plan for running a package described by `meta`.
    pub fn of(meta: &PackageMeta) -> Plan {
        let attach = meta
            .programs
            .iter()
            .map(|p| AttachStep {
                program: p.name.clone(),
                prog_type: p.prog_type.clone(),
                point: object::attach_point(&p.section),
            })
            .collect();
        let (files, scripts) = files_and_scripts(&meta.runtime);
        Plan {
            loaded_by: match meta.runtime {
                Runtime::Kernel => "runner",
                _ => "loader",
            }
            .into(),
            attach,
            capabilities: capabilities(meta),
            files,
            scripts,
            starts: process(meta),
        }
    }

    /// The plan as indented lines under "Plan:", for `inspect` and the start of `run`.
    pub fn render(&self) -> String {
        let mut out = String::from("Plan:\n");
        let by = match self.loaded_by.as_str() {
            "runner" => "the built-in loader attaches",
            _ => "the package's loader says it attaches",
        };
        if self.attach.is_empty() {
            let _ = writeln!(out, "  attach: nothing ({by} no programs)");
        }
        for step in &self.attach {
            let _ = writeln!(out, "  attach: {} → {} ({by})", step.program, step.point);
        }
        for cap in &self.capabilities {
            let _ = writeln!(out, "  needs:  {} ({})", cap.name, cap.why);
        }
        for file in &self.files {
            let overwrite = match file.overwrite {
                true => " [overwrite: the file there is saved and put back by stop]",
                false => " (must not exist yet)",
            };
            let _ = writeln!(
                out,
                "  writes: {} (mode {:04o}, from {}){overwrite}",
                file.dest, file.mode, file.src
            );
        }
        for script in &self.scripts {
            let _ = writeln!(out, "  runs:   sh {script}");
        }
        if let Some(process) = &self.starts {
            let _ = writeln!(out, "  starts: {}", process_text(process));
        }
        out
    }
}

fn process_text(process: &Process) -> String {
    match process {
        Process::Executable { path, args } => {
            format!("executable {}", join_command(path, args))
        }
        Process::Container {
            image,
            args,
            privileged,
            mounts,
        } => format!(
            "container {}{}, host pid and network, mounts {}",
            join_command(image, args),
            if *privileged { " (privileged)" } else { "" },
            mounts.join(", ")
        ),
    }
}

fn join_command(first: &str, args: &[String]) -> String {
    std::iter::once(first)
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// CAP_BPF always; CAP_PERFMON for tracing programs, CAP_NET_ADMIN for network hooks;
/// CAP_SYS_ADMIN for a privileged container, for files placed as root, and to mount bpffs
/// or tracefs when the machine has not.
fn capabilities(meta: &PackageMeta) -> Vec<Capability> {
    let types_where = |net: bool| -> Vec<&str> {
        let mut types: Vec<&str> = meta
            .programs
            .iter()
            .map(|p| p.prog_type.as_str())
            .filter(|t| NET_ADMIN_TYPES.contains(t) == net)
            .collect();
        types.sort();
        types.dedup();
        types
    };
    let cap = |name: &str, why: String| Capability {
        name: name.into(),
        why,
    };
    let mut caps = vec![cap("CAP_BPF", "to load programs and create maps".into())];
    let tracing = types_where(false);
    if !tracing.is_empty() {
        caps.push(cap(
            "CAP_PERFMON",
            format!("to load and attach {} programs", tracing.join(", ")),
        ));
    }
    let net = types_where(true);
    if !net.is_empty() {
        caps.push(cap(
            "CAP_NET_ADMIN",
            format!("to load and attach {} programs", net.join(", ")),
        ));
    }
    let sys_admin = match &meta.runtime {
        Runtime::Container { .. } => "the container runs privileged (every capability)",
        Runtime::Files { .. } => "to write host files and run the package's scripts as root",
        _ => "only to mount bpffs or tracefs if they are not mounted yet",
    };
    caps.push(cap("CAP_SYS_ADMIN", sys_admin.into()));
    caps
}

fn files_and_scripts(runtime: &Runtime) -> (Vec<FileStep>, Vec<String>) {
    let Runtime::Files {
        files,
        script,
        stop_script,
    } = runtime
    else {
        return (vec![], vec![]);
    };
    let steps = files
        .iter()
        .map(|f| FileStep {
            dest: f.dest.clone(),
            src: f.src.clone(),
            mode: f.mode.unwrap_or(0o644),
            overwrite: f.overwrite,
        })
        .collect();
    let mut scripts: Vec<String> = script.iter().cloned().collect();
    scripts.extend(stop_script.iter().map(|s| format!("{s} (at stop)")));
    (steps, scripts)
}

fn process(meta: &PackageMeta) -> Option<Process> {
    match &meta.runtime {
        Runtime::Executable { path, args, .. } => Some(Process::Executable {
            path: path.clone(),
            args: args.clone(),
        }),
        Runtime::Container { image, args, .. } => {
            let mut mounts: Vec<String> = spec::CONTAINER_HOST_MOUNTS
                .iter()
                .map(|(path, ro)| format!("{path}{}", if *ro { " (ro)" } else { "" }))
                .collect();
            mounts.push(format!(
                "the package at {} (ro)",
                spec::CONTAINER_PACKAGE_DIR
            ));
            Some(Process::Container {
                image: image.clone(),
                args: args.clone(),
                privileged: true,
                mounts,
            })
        }
        Runtime::Kernel | Runtime::Files { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{PlacedFile, ProgramInfo};

    fn meta_with(runtime: Runtime) -> PackageMeta {
        let mut meta = PackageMeta::new("demo", "0.1.0", "demo.bpf.o");
        meta.runtime = runtime;
        meta.programs = vec![
            ProgramInfo {
                name: "handle_openat".into(),
                section: "tracepoint/syscalls/sys_enter_openat".into(),
                prog_type: "tracepoint".into(),
            },
            ProgramInfo {
                name: "drop_all".into(),
                section: "xdp".into(),
                prog_type: "xdp".into(),
            },
        ];
        meta
    }

    #[test]
    fn a_kernel_package_says_where_it_attaches_and_what_it_needs() {
        let plan = Plan::of(&meta_with(Runtime::Kernel));
        let text = plan.render();
        assert!(
            text.contains("attach: handle_openat → tracepoint syscalls:sys_enter_openat"),
            "{text}"
        );
        assert!(text.contains("CAP_PERFMON (to load and attach tracepoint programs)"));
        assert!(text.contains("CAP_NET_ADMIN (to load and attach xdp programs)"));
        assert!(plan.files.is_empty() && plan.starts.is_none());
    }

    #[test]
    fn a_files_package_lists_destinations_and_overwrites() {
        let runtime = Runtime::Files {
            files: vec![
                PlacedFile {
                    src: "a.conf".into(),
                    dest: "/etc/a.conf".into(),
                    mode: Some(0o600),
                    overwrite: true,
                },
                PlacedFile {
                    src: "b".into(),
                    dest: "/opt/b".into(),
                    mode: None,
                    overwrite: false,
                },
            ],
            script: Some("start.sh".into()),
            stop_script: None,
        };
        let text = Plan::of(&meta_with(runtime)).render();
        assert!(text.contains("writes: /etc/a.conf (mode 0600, from a.conf) [overwrite"));
        assert!(text.contains("writes: /opt/b (mode 0644, from b) (must not exist yet)"));
        assert!(text.contains("runs:   sh start.sh"), "{text}");
    }

    #[test]
    fn a_container_package_names_its_image_and_mounts() {
        let runtime = Runtime::Container {
            image: "localhost/loader:1".into(),
            args: vec!["/loader.sh".into()],
            env: Default::default(),
        };
        let text = Plan::of(&meta_with(runtime)).render();
        assert!(
            text.contains("starts: container localhost/loader:1 /loader.sh (privileged)"),
            "{text}"
        );
        assert!(text.contains("/sys/kernel/btf (ro)"), "{text}");
    }
}
