//! Per-field display hints: a field's name and type say what its number means, so tables
//! show it readably and JSON gets a readable `<field>_text` companion (the raw value stays).
//!
//! The conventions (docs/runner.md):
//! - timestamps: `ts`, `timestamp`, `ts_*`, `*_ts`, `*timestamp*`, u64 — nanoseconds of
//!   `bpf_ktime_get_ns()` (CLOCK_MONOTONIC), shown as the wall-clock time of day;
//! - durations: `*_ns`, `*_us`, `*_ms` integers, shown with a unit (`1.25ms`);
//! - addresses: `saddr`, `daddr`, `addr`, `*_addr`, `*addr_v4`, `*_ip`…: a u32 is IPv4, a u8[16],
//!   u32[4] or `unsigned __int128` is IPv6, all in network byte order as the kernel keeps
//!   them; a sibling `family` field (AF_INET 2, AF_INET6 10) overrides the type, as TCP tools
//!   keep either family in one 128-bit field;
//! - ports: `sport`, `dport`, `port`, `*_port` u16, in network byte order;
//! - errors: `ret`, `err`, `errno`, `error`, `retval`, `rc`, signed: a negative value is an
//!   errno shown by name (`-ENOENT`).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::spec::TypeLayout;

/// How a field's value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    Timestamp,
    /// Nanoseconds per unit of the value (1, 1 000 or 1 000 000).
    Duration(u64),
    Ipv4,
    Ipv6,
    Port,
    Errno,
}

impl Hint {
    /// How wide the readable form usually is, for table columns.
    pub fn width(self) -> usize {
        match self {
            Hint::Timestamp => 15,
            Hint::Duration(_) => 10,
            Hint::Ipv4 => 15,
            Hint::Ipv6 => 25,
            Hint::Port => 5,
            Hint::Errno => 12,
        }
    }
}

/// The hint for a field called `name` of type `ty`, if its name and type agree on one.
pub fn hint_for(name: &str, ty: &TypeLayout) -> Option<Hint> {
    let name = name.to_ascii_lowercase();
    let n = name.as_str();
    match ty {
        TypeLayout::Int { size: 8, .. } if is_timestamp(n) => Some(Hint::Timestamp),
        TypeLayout::Int { .. } if duration_unit(n).is_some() => {
            duration_unit(n).map(Hint::Duration)
        }
        TypeLayout::Int {
            size: 4,
            signed: false,
        } if is_address(n) => Some(Hint::Ipv4),
        TypeLayout::Int {
            size: 16,
            signed: false,
        } if is_address(n) => Some(Hint::Ipv6),
        TypeLayout::Int {
            size: 2,
            signed: false,
        } if is_port(n) => Some(Hint::Port),
        TypeLayout::Int { signed: true, .. } if is_errno_name(n) => Some(Hint::Errno),
        TypeLayout::Array { len, elem } if is_address(n) => match (**elem).clone() {
            TypeLayout::Int { size: 1, .. } if *len == 16 => Some(Hint::Ipv6),
            TypeLayout::Int { size: 4, .. } if *len == 4 => Some(Hint::Ipv6),
            _ => None,
        },
        _ => None,
    }
}

fn is_timestamp(n: &str) -> bool {
    matches!(n, "ts" | "timestamp" | "time" | "ktime")
        || n.starts_with("ts_")
        || n.ends_with("_ts")
        || n.contains("timestamp")
}

fn duration_unit(n: &str) -> Option<u64> {
    if is_timestamp(n) {
        return None;
    }
    if n.ends_with("_ns") {
        Some(1)
    } else if n.ends_with("_us") {
        Some(1_000)
    } else if n.ends_with("_ms") {
        Some(1_000_000)
    } else {
        None
    }
}

/// Whether a field called `name` holds an address family (AF_INET/AF_INET6) that decides
/// how its sibling address fields read.
pub fn is_family(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(n.as_str(), "family" | "af" | "sa_family" | "ss_family") || n.ends_with("_family")
}

/// Whether `name` is an address field's name (so its bytes are never shown as text).
pub fn is_address_name(name: &str) -> bool {
    is_address(&name.to_ascii_lowercase())
}

fn is_address(n: &str) -> bool {
    let stem = n
        .trim_end_matches("_v4")
        .trim_end_matches("_v6")
        .trim_end_matches("_ipv4")
        .trim_end_matches("_ipv6");
    matches!(stem, "saddr" | "daddr" | "addr" | "laddr" | "raddr")
        || stem.ends_with("_addr")
        || stem.ends_with("_ip")
        || stem.starts_with("saddr")
        || stem.starts_with("daddr")
}

fn is_port(n: &str) -> bool {
    matches!(n, "sport" | "dport" | "port" | "lport" | "rport") || n.ends_with("_port")
}

fn is_errno_name(n: &str) -> bool {
    matches!(n, "ret" | "err" | "errno" | "error" | "retval" | "rc")
}

/// The readable form of `value` (as decoded), or `None` when the raw value reads best
/// (a non-negative return value, a zero timestamp, a value of an unexpected shape).
pub fn show(hint: Hint, value: &Value) -> Option<String> {
    match hint {
        Hint::Timestamp => value.as_u64().filter(|ns| *ns > 0).map(wall_clock),
        Hint::Duration(unit) => value.as_u64().map(|v| duration(v.saturating_mul(unit))),
        Hint::Ipv4 => {
            let raw = u32::try_from(value.as_u64()?).ok()?;
            // Decoded in host order; the bytes in memory are the address in network order.
            Some(Ipv4Addr::from(raw.to_ne_bytes()).to_string())
        }
        Hint::Ipv6 => ipv6(value).map(|a| a.to_string()),
        Hint::Port => {
            let raw = u16::try_from(value.as_u64()?).ok()?;
            Some(u16::from_be_bytes(raw.to_ne_bytes()).to_string())
        }
        Hint::Errno => {
            let v = value.as_i64().filter(|v| *v < 0)?;
            Some(match errno_name(-v) {
                Some(name) => format!("-{name}"),
                None => v.to_string(),
            })
        }
    }
}

const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;

/// Like [`show`], for an address hint whose struct also has a family field: the family,
/// not the field's width, says whether it holds IPv4 (its first four bytes) or IPv6.
pub fn show_with_family(hint: Hint, value: &Value, family: Option<&Value>) -> Option<String> {
    let is_address = matches!(hint, Hint::Ipv4 | Hint::Ipv6);
    match family.and_then(Value::as_u64) {
        Some(AF_INET) if is_address => {
            let bytes = address_bytes(value)?;
            let v4: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
            Some(Ipv4Addr::from(v4).to_string())
        }
        Some(AF_INET6) if is_address => {
            let v6: [u8; 16] = address_bytes(value)?.try_into().ok()?;
            Some(Ipv6Addr::from(v6).to_string())
        }
        _ => show(hint, value),
    }
}

/// The bytes of a decoded address as they were in memory (network order).
fn address_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Number(n) => Some(u32::try_from(n.as_u64()?).ok()?.to_ne_bytes().to_vec()),
        // 128-bit integers decode to decimal strings.
        Value::String(s) => Some(s.parse::<u128>().ok()?.to_ne_bytes().to_vec()),
        Value::Array(parts) => {
            let mut bytes = Vec::with_capacity(16);
            for part in parts {
                let v = part.as_u64()?;
                match parts.len() {
                    4 => bytes.extend_from_slice(&u32::try_from(v).ok()?.to_ne_bytes()),
                    _ => bytes.push(u8::try_from(v).ok()?),
                }
            }
            Some(bytes)
        }
        _ => None,
    }
}

fn ipv6(value: &Value) -> Option<Ipv6Addr> {
    if let Value::String(_) = value {
        let v6: [u8; 16] = address_bytes(value)?.try_into().ok()?;
        return Some(Ipv6Addr::from(v6));
    }
    let parts = value.as_array()?;
    let mut bytes = Vec::with_capacity(16);
    for part in parts {
        let v = part.as_u64()?;
        if parts.len() == 16 {
            bytes.push(u8::try_from(v).ok()?);
        } else {
            bytes.extend_from_slice(&u32::try_from(v).ok()?.to_ne_bytes());
        }
    }
    let bytes: [u8; 16] = bytes.try_into().ok()?;
    Some(Ipv6Addr::from(bytes))
}

/// `1.25ms`, `3.000s`, `850ns`.
pub fn duration(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.2}us", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.3}s", ns as f64 / 1e9),
    }
}

/// A CLOCK_MONOTONIC timestamp (what `bpf_ktime_get_ns` returns) as local `HH:MM:SS.micros`.
fn wall_clock(monotonic_ns: u64) -> String {
    let now = |clock| {
        // SAFETY: clock_gettime fills the zeroed plain-data struct.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
    };
    let real = now(libc::CLOCK_REALTIME) - now(libc::CLOCK_MONOTONIC) + monotonic_ns as i128;
    let secs = (real / 1_000_000_000) as libc::time_t;
    let micros = (real % 1_000_000_000) / 1_000;
    // SAFETY: localtime_r fills the zeroed plain-data `tm` through valid pointers.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return format!("{monotonic_ns}");
    }
    format!(
        "{:02}:{:02}:{:02}.{micros:06}",
        tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

/// Linux errno names, indexed by number (the same on every architecture the runner targets).
const ERRNO_NAMES: [&str; 134] = [
    "",
    "EPERM",
    "ENOENT",
    "ESRCH",
    "EINTR",
    "EIO",
    "ENXIO",
    "E2BIG",
    "ENOEXEC",
    "EBADF",
    "ECHILD",
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EFAULT",
    "ENOTBLK",
    "EBUSY",
    "EEXIST",
    "EXDEV",
    "ENODEV",
    "ENOTDIR",
    "EISDIR",
    "EINVAL",
    "ENFILE",
    "EMFILE",
    "ENOTTY",
    "ETXTBSY",
    "EFBIG",
    "ENOSPC",
    "ESPIPE",
    "EROFS",
    "EMLINK",
    "EPIPE",
    "EDOM",
    "ERANGE",
    "EDEADLK",
    "ENAMETOOLONG",
    "ENOLCK",
    "ENOSYS",
    "ENOTEMPTY",
    "ELOOP",
    "",
    "ENOMSG",
    "EIDRM",
    "ECHRNG",
    "EL2NSYNC",
    "EL3HLT",
    "EL3RST",
    "ELNRNG",
    "EUNATCH",
    "ENOCSI",
    "EL2HLT",
    "EBADE",
    "EBADR",
    "EXFULL",
    "ENOANO",
    "EBADRQC",
    "EBADSLT",
    "",
    "EBFONT",
    "ENOSTR",
    "ENODATA",
    "ETIME",
    "ENOSR",
    "ENONET",
    "ENOPKG",
    "EREMOTE",
    "ENOLINK",
    "EADV",
    "ESRMNT",
    "ECOMM",
    "EPROTO",
    "EMULTIHOP",
    "EDOTDOT",
    "EBADMSG",
    "EOVERFLOW",
    "ENOTUNIQ",
    "EBADFD",
    "EREMCHG",
    "ELIBACC",
    "ELIBBAD",
    "ELIBSCN",
    "ELIBMAX",
    "ELIBEXEC",
    "EILSEQ",
    "ERESTART",
    "ESTRPIPE",
    "EUSERS",
    "ENOTSOCK",
    "EDESTADDRREQ",
    "EMSGSIZE",
    "EPROTOTYPE",
    "ENOPROTOOPT",
    "EPROTONOSUPPORT",
    "ESOCKTNOSUPPORT",
    "EOPNOTSUPP",
    "EPFNOSUPPORT",
    "EAFNOSUPPORT",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "ENETDOWN",
    "ENETUNREACH",
    "ENETRESET",
    "ECONNABORTED",
    "ECONNRESET",
    "ENOBUFS",
    "EISCONN",
    "ENOTCONN",
    "ESHUTDOWN",
    "ETOOMANYREFS",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "EHOSTDOWN",
    "EHOSTUNREACH",
    "EALREADY",
    "EINPROGRESS",
    "ESTALE",
    "EUCLEAN",
    "ENOTNAM",
    "ENAVAIL",
    "EISNAM",
    "EREMOTEIO",
    "EDQUOT",
    "ENOMEDIUM",
    "EMEDIUMTYPE",
    "ECANCELED",
    "ENOKEY",
    "EKEYEXPIRED",
    "EKEYREVOKED",
    "EKEYREJECTED",
    "EOWNERDEAD",
    "ENOTRECOVERABLE",
    "ERFKILL",
    "EHWPOISON",
];

/// The name of errno `n` (`ENOENT` for 2), including the kernel-internal ones BPF programs see.
pub fn errno_name(n: i64) -> Option<&'static str> {
    match n {
        512 => Some("ERESTARTSYS"),
        513 => Some("ERESTARTNOINTR"),
        514 => Some("ERESTARTNOHAND"),
        516 => Some("ERESTART_RESTARTBLOCK"),
        524 => Some("ENOTSUPP"),
        _ => ERRNO_NAMES
            .get(usize::try_from(n).ok()?)
            .copied()
            .filter(|s| !s.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn int(size: u32, signed: bool) -> TypeLayout {
        TypeLayout::Int { size, signed }
    }

    #[test]
    fn errno_table_matches_libc() {
        for (n, name) in [
            (libc::EPERM, "EPERM"),
            (libc::ENOENT, "ENOENT"),
            (libc::EACCES, "EACCES"),
            (libc::EINVAL, "EINVAL"),
            (libc::ENOSYS, "ENOSYS"),
            (libc::ENOMSG, "ENOMSG"),
            (libc::EBFONT, "EBFONT"),
            (libc::EOPNOTSUPP, "EOPNOTSUPP"),
            (libc::ECONNREFUSED, "ECONNREFUSED"),
            (libc::ETIMEDOUT, "ETIMEDOUT"),
            (libc::EHWPOISON, "EHWPOISON"),
        ] {
            assert_eq!(errno_name(i64::from(n)), Some(name));
        }
        assert_eq!(errno_name(41), None);
    }

    #[test]
    fn hints_from_names_and_types() {
        assert_eq!(hint_for("ts", &int(8, false)), Some(Hint::Timestamp));
        assert_eq!(hint_for("ts", &int(4, false)), None);
        assert_eq!(
            hint_for("delta_us", &int(8, false)),
            Some(Hint::Duration(1_000))
        );
        assert_eq!(hint_for("saddr", &int(4, false)), Some(Hint::Ipv4));
        assert_eq!(hint_for("dst_addr", &int(4, false)), Some(Hint::Ipv4));
        let v6 = TypeLayout::Array {
            len: 16,
            elem: Box::new(int(1, false)),
        };
        assert_eq!(hint_for("daddr_v6", &v6), Some(Hint::Ipv6));
        assert_eq!(hint_for("dport", &int(2, false)), Some(Hint::Port));
        assert_eq!(hint_for("ret", &int(4, true)), Some(Hint::Errno));
        assert_eq!(hint_for("ret", &int(4, false)), None);
        assert_eq!(hint_for("pid", &int(4, false)), None);
    }

    #[test]
    fn readable_forms() {
        let lo = u32::from_ne_bytes([127, 0, 0, 1]);
        assert_eq!(show(Hint::Ipv4, &json!(lo)).unwrap(), "127.0.0.1");
        let port = u16::from_ne_bytes(8080u16.to_be_bytes());
        assert_eq!(show(Hint::Port, &json!(port)).unwrap(), "8080");
        let mut v6 = vec![0u8; 16];
        v6[15] = 1;
        assert_eq!(show(Hint::Ipv6, &json!(v6)).unwrap(), "::1");
        assert_eq!(show(Hint::Errno, &json!(-2)).unwrap(), "-ENOENT");
        assert_eq!(show(Hint::Errno, &json!(3)), None);
        assert_eq!(
            show(Hint::Duration(1), &json!(1_250_000)).unwrap(),
            "1.25ms"
        );
        assert_eq!(
            show(Hint::Duration(1_000), &json!(3_000_000)).unwrap(),
            "3.000s"
        );
        let ts = show(Hint::Timestamp, &json!(1_000_000_000u64)).unwrap();
        assert_eq!(ts.len(), 15, "{ts}");
    }
}
