//! PROGRAM-ARGS → `const volatile` values written into `.rodata` before load.

use std::io::Write;

use libbpf_rs::OpenObject;

use ebpf_package::decode::{encode_param, kind_name};
use ebpf_package::spec::{ParamInfo, TypeLayout};
use ebpf_package::{Error, Result};

/// What the program's arguments asked for.
#[derive(Debug)]
pub enum Parsed {
    Help,
    /// (param, its bytes) for every flag given.
    Values(Vec<(ParamInfo, Vec<u8>)>),
}

/// Parses `--flag VALUE` / `--flag=VALUE` pairs (a bool flag alone means true).
pub fn parse(params: &[ParamInfo], args: &[String]) -> Result<Parsed> {
    let mut values = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--help" || arg == "-h" {
            return Ok(Parsed::Help);
        }
        let (param, inline) = find_param(params, arg)?;
        let flag = param.flag.as_str();
        let value = match inline {
            Some(v) => v,
            None => match args.get(i + 1) {
                Some(next) if !(is_bool(param) && next.starts_with("--")) => {
                    i += 1;
                    next.clone()
                }
                _ if is_bool(param) => "true".to_string(),
                _ => {
                    return Err(Error::usage(format!("`--{flag}` needs a value"))
                        .with_help(format!("write `--{flag} VALUE` or `--{flag}=VALUE`")))
                }
            },
        };
        values.push((param.clone(), encode_param(param, &value)?));
        i += 1;
    }
    add_declared_defaults(params, &mut values)?;
    Ok(Parsed::Values(values))
}

/// The param `arg` names (`--long`, `--long=VALUE`, `-s`), and the inline value if any.
fn find_param<'p>(params: &'p [ParamInfo], arg: &str) -> Result<(&'p ParamInfo, Option<String>)> {
    if let Some(body) = arg.strip_prefix("--") {
        let (flag, inline) = match body.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (body, None),
        };
        let param = params
            .iter()
            .find(|p| p.flag == flag)
            .or_else(|| params.iter().find(|p| same_flag(&p.flag, flag)))
            .or_else(|| params.iter().find(|p| p.name == flag))
            .ok_or_else(|| unknown_flag(&format!("--{flag}"), params))?;
        return Ok((param, inline));
    }
    if let Some(short) = arg.strip_prefix('-').filter(|s| s.chars().count() == 1) {
        let param = params
            .iter()
            .find(|p| p.short.as_deref() == Some(short))
            .ok_or_else(|| unknown_flag(arg, params))?;
        return Ok((param, None));
    }
    Err(Error::usage(format!("unexpected program argument `{arg}`")).with_help(flags_help(params)))
}

/// ecli accepts a global's own spelling (`--pid_target`) where we derive `--pid-target`:
/// `-` and `_` are the same in a long flag.
fn same_flag(declared: &str, given: &str) -> bool {
    let norm = |s: &str| s.replace('_', "-");
    norm(declared) == norm(given)
}

/// Declared defaults that differ from the compiled-in value (`set_default`) are written
/// unless the user gave the flag.
fn add_declared_defaults(
    params: &[ParamInfo],
    values: &mut Vec<(ParamInfo, Vec<u8>)>,
) -> Result<()> {
    for param in params.iter().filter(|p| p.set_default) {
        if values.iter().any(|(given, _)| given.name == param.name) {
            continue;
        }
        let text = match &param.default {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        values.push((param.clone(), encode_param(param, &text)?));
    }
    Ok(())
}

fn is_bool(param: &ParamInfo) -> bool {
    matches!(param.ty, TypeLayout::Bool { .. })
}

fn unknown_flag(flag: &str, params: &[ParamInfo]) -> Error {
    Error::usage(format!("unknown program flag `{flag}`")).with_help(flags_help(params))
}

fn flags_help(params: &[ParamInfo]) -> String {
    if params.is_empty() {
        return "this program takes no flags".into();
    }
    let flags: Vec<String> = params.iter().map(|p| format!("--{}", p.flag)).collect();
    format!("valid flags: {} (see `-- --help`)", flags.join(", "))
}

/// Writes the flag list: flag, type, default and description, aligned.
pub fn print_help(object_name: &str, params: &[ParamInfo], out: &mut dyn Write) -> Result<()> {
    let mut text = String::new();
    if params.is_empty() {
        text.push_str(&format!("{object_name} takes no flags.\n"));
    } else {
        text.push_str(&format!(
            "Flags of {object_name} (set its `const volatile` globals before it loads):\n"
        ));
        let any_short = params.iter().any(|p| p.short.is_some());
        let rows: Vec<[String; 4]> = params
            .iter()
            .map(|p| {
                [
                    flag_names(p, any_short),
                    kind_name(&p.ty),
                    default_text(&p.default),
                    p.description.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let header = ["FLAG", "TYPE", "DEFAULT", "DESCRIPTION"].map(String::from);
        text.push_str(&aligned(std::iter::once(&header).chain(&rows)));
    }
    let path = std::path::Path::new("<output>");
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("write", path, e))
}

/// `-f, --failed`, or `    --target-pid` beside short flags so long ones line up.
fn flag_names(p: &ParamInfo, any_short: bool) -> String {
    match &p.short {
        Some(short) => format!("-{short}, --{}", p.flag),
        None if any_short => format!("    --{}", p.flag),
        None => format!("--{}", p.flag),
    }
}

fn default_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn aligned<'r>(rows: impl Iterator<Item = &'r [String; 4]> + Clone) -> String {
    let mut widths = [0usize; 4];
    for row in rows.clone() {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str("  ");
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// Writes the values into the `.rodata` map's initial value, before load.
pub fn apply(open: &mut OpenObject, values: &[(ParamInfo, Vec<u8>)]) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    let mut map = open
        .maps_mut()
        .find(|m| m.name().to_string_lossy().ends_with(".rodata"))
        .ok_or_else(|| {
            Error::input("the eBPF object has no .rodata section to hold its params")
                .with_help("the package metadata does not match its object: repackage it")
        })?;
    let data = map.initial_value_mut().ok_or_else(|| {
        Error::input("the eBPF object's .rodata has no initial value to set params in")
    })?;
    for (param, bytes) in values {
        let start = param.offset as usize;
        let rodata_len = data.len();
        let slot = data.get_mut(start..start + bytes.len()).ok_or_else(|| {
            Error::input(format!(
                "param `{}` ({} bytes at offset {start}) lies outside the object's .rodata \
                 ({rodata_len} bytes)",
                param.name,
                bytes.len()
            ))
            .with_help("the package metadata does not match its object: repackage it")
        })?;
        slot.copy_from_slice(bytes);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params() -> Vec<ParamInfo> {
        vec![
            ParamInfo {
                name: "target_pid".into(),
                flag: "target-pid".into(),
                offset: 0,
                ty: TypeLayout::Int {
                    size: 4,
                    signed: true,
                },
                default: json!(0),
                description: Some("only this process".into()),
                short: None,
                set_default: false,
            },
            ParamInfo {
                name: "verbose".into(),
                flag: "verbose".into(),
                offset: 4,
                ty: TypeLayout::Bool { size: 1 },
                default: json!(false),
                description: None,
                short: None,
                set_default: false,
            },
        ]
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn values(list: &[&str]) -> Vec<(String, Vec<u8>)> {
        match parse(&params(), &args(list)).unwrap() {
            Parsed::Values(v) => v.into_iter().map(|(p, b)| (p.name, b)).collect(),
            Parsed::Help => panic!("unexpected help"),
        }
    }

    #[test]
    fn parses_both_flag_forms_and_bare_bools() {
        assert_eq!(
            values(&["--target-pid", "7", "--verbose"]),
            [
                ("target_pid".to_string(), 7i32.to_ne_bytes().to_vec()),
                ("verbose".to_string(), vec![1])
            ]
        );
        assert_eq!(
            values(&["--verbose", "--target-pid=-2"]),
            [
                ("verbose".to_string(), vec![1]),
                ("target_pid".to_string(), (-2i32).to_ne_bytes().to_vec())
            ]
        );
        assert_eq!(values(&["--verbose", "false"])[0].1, vec![0]);
        assert!(matches!(
            parse(&params(), &args(&["-h"])).unwrap(),
            Parsed::Help
        ));
    }

    #[test]
    fn unknown_or_incomplete_flags_are_usage_errors() {
        let err = parse(&params(), &args(&["--pid", "1"])).unwrap_err();
        assert_eq!(err.kind, ebpf_package::ErrorKind::Usage);
        assert!(err.message.contains("--pid"));
        let help = err.help.unwrap();
        assert!(help.contains("--target-pid, --verbose"), "{help}");
        let err = parse(&params(), &args(&["--target-pid"])).unwrap_err();
        assert!(err.message.contains("needs a value"), "{}", err.message);
        let err = parse(&params(), &args(&["stray"])).unwrap_err();
        assert_eq!(err.kind, ebpf_package::ErrorKind::Usage);
        let err = parse(&[], &args(&["--x=1"])).unwrap_err();
        assert_eq!(err.help.as_deref(), Some("this program takes no flags"));
    }

    #[test]
    fn short_flags_and_declared_defaults() {
        let mut params = params();
        params[1].short = Some("v".into());
        params[0].default = json!(42);
        params[0].set_default = true;
        let parsed = |list: &[&str]| match parse(&params, &args(list)).unwrap() {
            Parsed::Values(v) => v.into_iter().map(|(p, b)| (p.name, b)).collect::<Vec<_>>(),
            Parsed::Help => panic!("unexpected help"),
        };
        // The declared default is written when the flag is absent, not when it is given.
        assert_eq!(
            parsed(&["-v"]),
            [
                ("verbose".to_string(), vec![1]),
                ("target_pid".to_string(), 42i32.to_ne_bytes().to_vec())
            ]
        );
        assert_eq!(
            parsed(&["--target-pid", "3"]),
            [("target_pid".to_string(), 3i32.to_ne_bytes().to_vec())]
        );
        let err = parse(&params, &args(&["-x"])).unwrap_err();
        assert_eq!(err.message, "unknown program flag `-x`");
        let mut out = Vec::new();
        print_help("demo", &params, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("-v, --verbose"), "{text}");
        assert!(text.contains("    --target-pid  i32   42"), "{text}");
    }

    #[test]
    fn help_lists_flags_with_types_and_defaults() {
        let mut out = Vec::new();
        print_help("opensnoop", &params(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        insta::assert_snapshot!(text, @r"
        Flags of opensnoop (set its `const volatile` globals before it loads):
          FLAG          TYPE  DEFAULT  DESCRIPTION
          --target-pid  i32   0        only this process
          --verbose     bool  false
        ");
    }

    #[test]
    fn a_globals_own_spelling_is_accepted_as_its_flag() {
        assert_eq!(
            values(&["--target_pid", "7", "--target_pid=8"]),
            [
                ("target_pid".to_string(), 7i32.to_ne_bytes().to_vec()),
                ("target_pid".to_string(), 8i32.to_ne_bytes().to_vec())
            ]
        );
    }
}
