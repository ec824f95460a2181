//! How each program is attached. libbpf attaches most programs from their section name
//! alone (tracepoints, raw tracepoints, kprobes, fentry/fexit, lsm, uprobes with a target in
//! the section); the rest need a target from the command line: a network interface for
//! XDP and tc, a cgroup for cgroup programs, a binary for bare uprobes, a sampling
//! frequency for perf_event programs.
//!
//! [`plan`] decides, before anything touches the kernel, so a missing `--iface` is a usage
//! error and a missing kernel feature one clear sentence; [`attach`] then does it.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use libbpf_rs::{
    Link, OpenProgram, ProgramMut, ProgramType, TcHook, TcHookBuilder, UprobeOpts, TC_EGRESS,
    TC_INGRESS,
};

use super::preflight;
use serde_json::Value;

use ebpf_package::{Error, Result};

/// Default perf_event sampling frequency (Hz): odd, so it does not beat with timer ticks.
pub const DEFAULT_FREQUENCY: u64 = 49;
/// perf_event_open(2) flag: the fd is close-on-exec.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// The attach targets `run` takes from its flags.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// `--iface NAME`: the network interface for XDP and tc programs.
    pub iface: Option<String>,
    /// `--cgroup PATH`: the cgroup v2 directory for cgroup programs (default: the root).
    pub cgroup: Option<PathBuf>,
    /// `--uprobe BINARY[:FUNCTION]`: the target of uprobes whose section names none.
    pub uprobe: Option<String>,
    /// `--frequency HZ`: how often perf_event programs sample each CPU.
    pub frequency: Option<u64>,
    /// The package's eunomia source annotations by program name (`@tchook`, `@tcopts`,
    /// `@ifindex`, `@xdpopts`): where tc and XDP programs attach when `--iface` is not given.
    pub annotations: BTreeMap<String, BTreeMap<String, Value>>,
}

/// What [`attach`] will do for one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// libbpf attaches it from its section name.
    Auto,
    /// A uprobe on `function` in `binary`, for every process.
    Uprobe {
        binary: PathBuf,
        function: String,
        retprobe: bool,
    },
    Xdp {
        ifindex: i32,
    },
    Tc {
        ifindex: i32,
        egress: bool,
        /// The filter's handle and priority (`@tcopts`; 1 and 1 otherwise).
        handle: u32,
        priority: u32,
    },
    /// `None`: the root of the cgroup v2 hierarchy, found (or mounted) when attaching.
    Cgroup {
        path: Option<PathBuf>,
    },
    /// A software CPU-clock event on every CPU at `frequency` Hz.
    PerfEvent {
        frequency: u64,
    },
}

/// One program's attachment; dropping it detaches (the fields are held for that alone).
#[allow(dead_code)]
pub enum Attached {
    Link(Link),
    /// One link per CPU.
    Links(Vec<Link>),
    Tc(TcGuard),
}

/// A tc filter that is removed when dropped (libbpf-rs's `TcHook` stays until told).
pub struct TcGuard {
    hook: TcHook,
    /// The clsact qdisc was created by us and goes with the filter.
    created_qdisc: bool,
}

impl Drop for TcGuard {
    fn drop(&mut self) {
        let _ = self.hook.detach();
        if self.created_qdisc {
            // Both directions: libbpf removes the qdisc itself only for this combination.
            self.hook.attach_point(TC_INGRESS | TC_EGRESS);
            let _ = self.hook.destroy();
        }
    }
}

/// Decides how every program attaches, checking that each has the flag it needs (a usage
/// error when missing; no privileges or kernel needed).
pub fn plan(programs: &[(String, String, ProgramType)], opts: &AttachOptions) -> Result<Vec<Plan>> {
    programs
        .iter()
        .map(|(name, section, ty)| plan_one(name, section, *ty, opts))
        .collect()
}

/// The (name, section, type) of each program, which is all [`plan`] needs.
pub fn program_sections<'a>(
    progs: impl Iterator<Item = OpenProgram<'a>>,
) -> Vec<(String, String, ProgramType)> {
    progs
        .map(|p| {
            (
                p.name().to_string_lossy().into_owned(),
                p.section().to_string_lossy().into_owned(),
                p.prog_type(),
            )
        })
        .collect()
}

fn plan_one(name: &str, section: &str, ty: ProgramType, opts: &AttachOptions) -> Result<Plan> {
    let base = section.split('/').next().unwrap_or(section);
    match ty {
        ProgramType::Kprobe if base.starts_with("uprobe") || base.starts_with("uretprobe") => {
            uprobe_plan(name, section, opts)
        }
        ProgramType::Xdp => Ok(Plan::Xdp {
            ifindex: ifindex(name, section, opts)?,
        }),
        ProgramType::SchedCls | ProgramType::SchedAct => {
            let notes = opts.annotations.get(name);
            let hook = notes.and_then(|a| a.get("tchook"));
            let tcopts = notes.and_then(|a| a.get("tcopts"));
            let number = |v: Option<&Value>, key: &str| {
                v.and_then(|v| v[key].as_u64())
                    .and_then(|n| u32::try_from(n).ok())
            };
            let egress = match hook.and_then(|h| h["attach_point"].as_str()) {
                Some(point) => point.eq_ignore_ascii_case("BPF_TC_EGRESS"),
                None => section.contains("egress"),
            };
            Ok(Plan::Tc {
                ifindex: ifindex(name, section, opts)?,
                egress,
                handle: number(tcopts, "handle").unwrap_or(1),
                priority: number(tcopts, "priority").unwrap_or(1),
            })
        }
        ProgramType::PerfEvent => {
            let frequency = opts.frequency.unwrap_or(DEFAULT_FREQUENCY);
            if frequency == 0 {
                return Err(
                    Error::usage("--frequency must be at least 1 (Hz)").with_help(
                        "pass how many samples per second each CPU takes, e.g. --frequency 99",
                    ),
                );
            }
            Ok(Plan::PerfEvent { frequency })
        }
        ty if is_cgroup(ty) => Ok(Plan::Cgroup {
            path: cgroup_path(opts)?,
        }),
        _ => Ok(Plan::Auto),
    }
}

fn is_cgroup(ty: ProgramType) -> bool {
    matches!(
        ty,
        ProgramType::CgroupSkb
            | ProgramType::CgroupSock
            | ProgramType::CgroupSockAddr
            | ProgramType::SockOps
            | ProgramType::CgroupDevice
            | ProgramType::CgroupSysctl
            | ProgramType::CgroupSockopt
    )
}

// ---- uprobes ----------------------------------------------------------------------------

/// `uprobe/BINARY:FUNCTION` sections are libbpf's to attach; `uprobe` and `uprobe/FUNCTION`
/// take the binary (and function) from `--uprobe BINARY[:FUNCTION]`.
fn uprobe_plan(name: &str, section: &str, opts: &AttachOptions) -> Result<Plan> {
    let target = section.split_once('/').map(|(_, t)| t).unwrap_or("");
    if target.contains(':') {
        return Ok(Plan::Auto);
    }
    let retprobe = section.starts_with("uretprobe");
    let Some(flag) = opts.uprobe.as_deref() else {
        return Err(Error::usage(format!(
            "program `{name}` (section `{section}`) needs the binary to probe: pass --uprobe BINARY:FUNCTION"
        ))
        .with_help(
            "e.g. `--uprobe /usr/bin/bash:readline`; or name it in the section: \
             SEC(\"uprobe//usr/bin/bash:readline\")",
        ));
    };
    let (binary, function) = match flag.rsplit_once(':') {
        Some((binary, function)) if !function.is_empty() => (binary, function),
        _ if !target.is_empty() => (flag, target),
        _ => {
            return Err(Error::usage(format!(
                "program `{name}` (section `{section}`) names no function: pass --uprobe {flag}:FUNCTION"
            ))
            .with_help("the function is a symbol of the binary, e.g. `--uprobe /usr/bin/bash:readline`"))
        }
    };
    let binary = PathBuf::from(binary);
    if !binary.is_file() {
        return Err(Error::usage(format!(
            "the uprobe binary {} does not exist",
            binary.display()
        ))
        .with_help("pass the path of an executable or shared library: --uprobe BINARY:FUNCTION"));
    }
    Ok(Plan::Uprobe {
        binary,
        function: function.to_string(),
        retprobe,
    })
}

// ---- network interfaces -----------------------------------------------------------------

/// `--iface`, else the interface the program's annotations name (`@tchook {"ifindex": N}`,
/// `@ifindex N`, `@xdpopts {"ifindex": N}`), else a usage error.
fn ifindex(name: &str, section: &str, opts: &AttachOptions) -> Result<i32> {
    if opts.iface.is_none() {
        if let Some(index) = annotated_ifindex(opts.annotations.get(name)) {
            eprintln!("note: attaching `{name}` to interface {index}, as its source annotation says (--iface overrides)");
            return Ok(index);
        }
    }
    let Some(iface) = opts.iface.as_deref() else {
        return Err(Error::usage(format!(
            "program `{name}` (section `{section}`) attaches to a network interface: pass --iface NAME"
        ))
        .with_help("`ip link` lists the interfaces, e.g. `--iface eth0` or `--iface lo`"));
    };
    let c_name = CString::new(iface).map_err(|_| bad_iface(iface))?;
    // SAFETY: a valid C string; if_nametoindex only reads it.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        return Err(bad_iface(iface));
    }
    Ok(index as i32)
}

fn annotated_ifindex(notes: Option<&BTreeMap<String, Value>>) -> Option<i32> {
    let notes = notes?;
    let index = notes
        .get("ifindex")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .or_else(|| notes.get("tchook")?["ifindex"].as_u64())
        .or_else(|| notes.get("xdpopts")?["ifindex"].as_u64())?;
    i32::try_from(index).ok().filter(|i| *i > 0)
}

fn bad_iface(iface: &str) -> Error {
    Error::usage(format!("there is no network interface `{iface}`"))
        .with_help("`ip link` lists the interfaces of this network namespace")
}

// ---- cgroups ----------------------------------------------------------------------------

fn cgroup_path(opts: &AttachOptions) -> Result<Option<PathBuf>> {
    let Some(path) = opts.cgroup.clone() else {
        return Ok(None);
    };
    if !path.is_dir() {
        return Err(Error::usage(format!(
            "the cgroup {} does not exist",
            path.display()
        ))
        .with_help("pass a cgroup v2 directory with --cgroup PATH, or leave it out for the root cgroup"));
    }
    Ok(Some(path))
}

/// Checks the kernel features the programs need beyond their program type: kprobes, the
/// BPF LSM, and the cgroup v2 hierarchy (mounted when missing, like tracefs).
pub fn check_kernel(programs: &[(String, String, ProgramType)], plans: &mut [Plan]) -> Result<()> {
    for ((_, section, ty), plan) in programs.iter().zip(plans.iter_mut()) {
        let base = section.split('/').next().unwrap_or(section);
        let uprobe = base.starts_with("uprobe") || base.starts_with("uretprobe") || base == "usdt";
        match ty {
            ProgramType::Kprobe if !uprobe => preflight::check_kprobes()?,
            ProgramType::Lsm => {
                preflight::check_bpf_lsm()?;
                preflight::check_trampoline(section)?;
            }
            ProgramType::Tracing => preflight::check_trampoline(section)?,
            _ => {}
        }
        if let Plan::Cgroup { path: path @ None } = plan {
            *path = Some(preflight::cgroup2_root()?);
        }
    }
    Ok(())
}

// ---- attaching ----------------------------------------------------------------------------

/// Attaches `prog` as `plan` says.
pub fn attach(prog: &ProgramMut, plan: &Plan) -> std::result::Result<Attached, AttachError> {
    match plan {
        Plan::Auto => prog
            .attach()
            .map(Attached::Link)
            .map_err(AttachError::Libbpf),
        Plan::Uprobe {
            binary,
            function,
            retprobe,
        } => {
            let opts = UprobeOpts {
                retprobe: *retprobe,
                func_name: Some(function.clone()),
                ..Default::default()
            };
            // pid -1: every process that runs the binary.
            prog.attach_uprobe_with_opts(-1, binary, 0, opts)
                .map(Attached::Link)
                .map_err(AttachError::Libbpf)
        }
        Plan::Xdp { ifindex } => prog
            .attach_xdp(*ifindex)
            .map(Attached::Link)
            .map_err(AttachError::Libbpf),
        Plan::Tc {
            ifindex,
            egress,
            handle,
            priority,
        } => attach_tc(prog, *ifindex, *egress, (*handle, *priority)),
        Plan::Cgroup { path } => {
            let root = PathBuf::from("/sys/fs/cgroup");
            attach_cgroup(prog, path.as_ref().unwrap_or(&root))
        }
        Plan::PerfEvent { frequency } => attach_perf_event(prog, *frequency),
    }
}

/// Why an attach failed: libbpf's error, or our own step before it.
pub enum AttachError {
    Libbpf(libbpf_rs::Error),
    Os(String, std::io::Error),
}

fn attach_tc(
    prog: &ProgramMut,
    ifindex: i32,
    egress: bool,
    (handle, priority): (u32, u32),
) -> std::result::Result<Attached, AttachError> {
    let mut builder = TcHookBuilder::new(prog.as_fd());
    builder
        .ifindex(ifindex)
        .replace(true)
        .handle(handle)
        .priority(priority);
    let mut hook = builder.hook(if egress { TC_EGRESS } else { TC_INGRESS });
    let created_qdisc = create_clsact(ifindex).map_err(AttachError::Libbpf)?;
    match hook.attach() {
        Ok(_) => Ok(Attached::Tc(TcGuard {
            hook,
            created_qdisc,
        })),
        Err(e) => {
            if created_qdisc {
                let _ = hook.destroy();
            }
            Err(AttachError::Libbpf(e))
        }
    }
}

/// Adds a clsact qdisc to the interface; false when it already had one (someone else's,
/// to keep). libbpf-rs's `TcHook::create` hides that difference, so this asks libbpf.
fn create_clsact(ifindex: i32) -> libbpf_rs::Result<bool> {
    use libbpf_rs::libbpf_sys as sys;
    let mut hook = sys::bpf_tc_hook {
        sz: std::mem::size_of::<sys::bpf_tc_hook>() as _,
        ifindex,
        attach_point: TC_INGRESS,
        ..Default::default()
    };
    // SAFETY: a fully initialised hook that outlives the call.
    match unsafe { sys::bpf_tc_hook_create(&mut hook) } {
        0 => Ok(true),
        rc if rc == -libc::EEXIST => Ok(false),
        rc => Err(libbpf_rs::Error::from_raw_os_error(-rc)),
    }
}

fn attach_cgroup(prog: &ProgramMut, path: &Path) -> std::result::Result<Attached, AttachError> {
    let dir = std::fs::File::open(path)
        .map_err(|e| AttachError::Os(format!("open the cgroup {}", path.display()), e))?;
    // The link holds its own reference to the cgroup: the fd can close after attaching.
    prog.attach_cgroup(dir.as_raw_fd())
        .map(Attached::Link)
        .map_err(AttachError::Libbpf)
}

/// One software CPU-clock perf event per online CPU, each running the program.
fn attach_perf_event(
    prog: &ProgramMut,
    frequency: u64,
) -> std::result::Result<Attached, AttachError> {
    let mut links = Vec::new();
    for cpu in online_cpus() {
        let fd = open_cpu_clock(cpu, frequency)
            .map_err(|e| AttachError::Os(format!("open a perf event on CPU {cpu}"), e))?;
        // libbpf owns the fd from here on and closes it with the link.
        let raw = fd.as_raw_fd();
        let link = prog.attach_perf_event(raw).map_err(AttachError::Libbpf)?;
        std::mem::forget(fd);
        links.push(link);
    }
    Ok(Attached::Links(links))
}

/// The CPUs in /sys/devices/system/cpu/online ("0-3,5").
fn online_cpus() -> Vec<i32> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    parse_cpu_list(text.trim())
}

fn parse_cpu_list(text: &str) -> Vec<i32> {
    let mut cpus = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.parse::<i32>(), hi.parse::<i32>()) {
            cpus.extend(lo..=hi);
        }
    }
    cpus
}

fn open_cpu_clock(cpu: i32, frequency: u64) -> std::io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: a zeroed perf_event_attr is valid; the fields set are plain integers.
    let mut attr: libbpf_rs::libbpf_sys::perf_event_attr = unsafe { std::mem::zeroed() };
    attr.size = std::mem::size_of_val(&attr) as u32;
    attr.type_ = libbpf_rs::libbpf_sys::PERF_TYPE_SOFTWARE;
    attr.config = u64::from(libbpf_rs::libbpf_sys::PERF_COUNT_SW_CPU_CLOCK);
    attr.__bindgen_anon_1.sample_freq = frequency;
    attr.set_freq(1);
    // SAFETY: perf_event_open gets a valid attr; pid -1 with a cpu means "all tasks there".
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const _,
            -1 as libc::pid_t,
            cpu,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(section: &str, ty: ProgramType, opts: &AttachOptions) -> Result<Plan> {
        plan_one("p", section, ty, opts)
    }

    #[test]
    fn section_targets_need_no_flags() {
        let none = AttachOptions::default();
        for (section, ty) in [
            (
                "tracepoint/syscalls/sys_enter_openat",
                ProgramType::Tracepoint,
            ),
            ("raw_tp/sys_enter", ProgramType::RawTracepoint),
            ("fentry/do_unlinkat", ProgramType::Tracing),
            ("uprobe//bin/true:main", ProgramType::Kprobe),
        ] {
            assert_eq!(
                plan_of(section, ty, &none).unwrap(),
                Plan::Auto,
                "{section}"
            );
        }
    }

    #[test]
    fn missing_targets_are_usage_errors() {
        let none = AttachOptions::default();
        for (section, ty, flag) in [
            ("xdp", ProgramType::Xdp, "--iface"),
            ("tc", ProgramType::SchedCls, "--iface"),
            ("uprobe", ProgramType::Kprobe, "--uprobe"),
        ] {
            let err = plan_of(section, ty, &none).unwrap_err();
            assert_eq!(err.kind, ebpf_package::ErrorKind::Usage);
            assert!(err.message.contains(flag), "{}", err.message);
        }
        let bad = AttachOptions {
            iface: Some("no-such-if0".into()),
            ..Default::default()
        };
        let err = plan_of("xdp", ProgramType::Xdp, &bad).unwrap_err();
        assert!(err.message.contains("no network interface `no-such-if0`"));
    }

    #[test]
    fn uprobe_function_from_flag_or_section() {
        let opts = AttachOptions {
            uprobe: Some("/bin/sh:main".into()),
            ..Default::default()
        };
        let plan = plan_of("uretprobe", ProgramType::Kprobe, &opts).unwrap();
        assert_eq!(
            plan,
            Plan::Uprobe {
                binary: "/bin/sh".into(),
                function: "main".into(),
                retprobe: true
            }
        );
        let opts = AttachOptions {
            uprobe: Some("/bin/sh".into()),
            ..Default::default()
        };
        let plan = plan_of("uprobe/readline", ProgramType::Kprobe, &opts).unwrap();
        assert!(
            matches!(plan, Plan::Uprobe { function, retprobe: false, .. } if function == "readline")
        );
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,5"), vec![0, 1, 2, 3, 5]);
        assert_eq!(parse_cpu_list("0"), vec![0]);
        assert!(parse_cpu_list("").is_empty());
    }
}
