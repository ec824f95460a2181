//! Recognising formats from manifests and configs, and applying declared param docs.

use oci_client::manifest::OciImageManifest;
use serde_json::json;

use super::*;
use crate::spec::{TypeLayout, BUMBLEBEE_PROGRAM_LAYER, MEDIA_TYPE_EMPTY};
use crate::ErrorKind;

fn manifest(config: &str, layers: &[&str], artifact: Option<&str>) -> OciImageManifest {
    let descriptor = |media_type: &str| json!({"mediaType": media_type, "digest": format!("sha256:{}", "0".repeat(64)), "size": 1});
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": spec::MEDIA_TYPE_MANIFEST,
        "config": descriptor(config),
        "layers": layers.iter().map(|l| descriptor(l)).collect::<Vec<_>>(),
    });
    if let Some(a) = artifact {
        m["artifactType"] = json!(a);
    }
    serde_json::from_value(m).unwrap()
}

fn refused(m: &OciImageManifest, config: Option<&[u8]>, why: &str) {
    let err = detect(m, config).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Input);
    assert!(err.message.contains(why), "{}", err.message);
}

#[test]
fn each_format_is_recognised_from_its_manifest() {
    let gadget = manifest(
        GADGET_CONFIG,
        &[GADGET_EBPF_LAYER, spec::GADGET_WASM_LAYER],
        Some(GADGET_ARTIFACT_TYPE),
    );
    assert_eq!(detect(&gadget, None).unwrap(), Format::Gadget);
    let empty_config = manifest(
        MEDIA_TYPE_EMPTY,
        &[GADGET_EBPF_LAYER],
        Some(GADGET_ARTIFACT_TYPE),
    );
    assert_eq!(detect(&empty_config, None).unwrap(), Format::Gadget);
    let bee = manifest(BUMBLEBEE_CONFIG, &[BUMBLEBEE_PROGRAM_LAYER], None);
    assert_eq!(detect(&bee, None).unwrap(), Format::Bumblebee);
    let ours = manifest(
        MEDIA_TYPE_CONFIG,
        &[MEDIA_TYPE_LAYER_TAR_GZIP],
        Some(ARTIFACT_TYPE),
    );
    assert_eq!(detect(&ours, None).unwrap(), Format::CargoEbpf);
    let image = manifest(MEDIA_TYPE_CONFIG, &[MEDIA_TYPE_LAYER_TAR_GZIP], None);
    // Provisional until the config is read.
    assert_eq!(detect(&image, None).unwrap(), Format::Bpfman);
    let labels = json!({"config": {"Labels": {"io.ebpf.programs": "{}"}}}).to_string();
    assert_eq!(
        detect(&image, Some(labels.as_bytes())).unwrap(),
        Format::Bpfman
    );
    let meta = json!({"dev.cargo-ebpf.package": {}}).to_string();
    assert_eq!(
        detect(&image, Some(meta.as_bytes())).unwrap(),
        Format::CargoEbpf
    );
}

#[test]
fn unknown_and_malformed_manifests_are_refused_before_blobs() {
    let two = manifest(GADGET_CONFIG, &[GADGET_EBPF_LAYER, GADGET_EBPF_LAYER], None);
    refused(&two, None, "2 eBPF program layers");
    let odd = manifest(GADGET_CONFIG, &[GADGET_EBPF_LAYER, "text/plain"], None);
    refused(&odd, None, "unknown media type \"text/plain\"");
    let bad_config = manifest(
        "text/plain",
        &[GADGET_EBPF_LAYER],
        Some(GADGET_ARTIFACT_TYPE),
    );
    refused(
        &bad_config,
        None,
        "its config has media type \"text/plain\"",
    );
    let bee_tar = manifest(BUMBLEBEE_CONFIG, &[MEDIA_TYPE_LAYER_TAR_GZIP], None);
    refused(
        &bee_tar,
        None,
        "expected application/ebpf.oci.image.program.v1+binary",
    );
    let wasm = manifest(
        "application/vnd.wasm.config.v0+json",
        &["application/wasm"],
        None,
    );
    refused(
        &wasm,
        None,
        "not a cargo-ebpf package: its config has media type",
    );
    let image = manifest(MEDIA_TYPE_CONFIG, &[MEDIA_TYPE_LAYER_TAR_GZIP], None);
    refused(
        &image,
        Some(br#"{"architecture":"amd64"}"#),
        "container image",
    );
}

fn bool_param() -> ParamInfo {
    ParamInfo {
        name: "targ_failed".into(),
        flag: "targ-failed".into(),
        offset: 0,
        ty: TypeLayout::Bool { size: 1 },
        default: json!(false),
        description: None,
        short: None,
        set_default: false,
    }
}

#[test]
fn declared_docs_rename_describe_and_set_defaults() {
    let mut p = bool_param();
    let doc = ParamDoc {
        description: Some("only failed opens".into()),
        long: Some("failed".into()),
        short: Some("f".into()),
        default: Some("true".into()),
    };
    document_param(&mut p, &doc).unwrap();
    assert_eq!(p.flag, "failed");
    assert_eq!(p.short.as_deref(), Some("f"));
    assert_eq!(p.description.as_deref(), Some("only failed opens"));
    assert_eq!((p.default.clone(), p.set_default), (json!(true), true));

    // A default equal to the compiled value changes nothing.
    let mut same = bool_param();
    let doc = ParamDoc {
        default: Some("false".into()),
        ..Default::default()
    };
    document_param(&mut same, &doc).unwrap();
    assert!(!same.set_default);
}

#[test]
fn ecli_long_flags_may_use_underscores() {
    let mut p = bool_param();
    let doc = ParamDoc {
        long: Some("targ_failed".into()),
        ..Default::default()
    };
    document_param(&mut p, &doc).unwrap();
    assert_eq!(p.flag, "targ_failed");
}

#[test]
fn declared_docs_that_do_not_fit_are_input_errors() {
    for doc in [
        ParamDoc {
            default: Some("maybe".into()),
            ..Default::default()
        },
        ParamDoc {
            short: Some("ff".into()),
            ..Default::default()
        },
        ParamDoc {
            long: Some("--bad flag".into()),
            ..Default::default()
        },
    ] {
        let err = document_param(&mut bool_param(), &doc).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Input, "{doc:?}");
        assert!(err.message.contains("targ_failed"), "{}", err.message);
    }
}

#[test]
fn section_names_of_a_small_elf() {
    // A minimal little-endian ELF64 header with three sections: null, .shstrtab, .maps.print.
    let strtab = b"\0.shstrtab\0.maps.print\0";
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    let strtab_at = elf.len();
    elf.extend_from_slice(strtab);
    while !elf.len().is_multiple_of(8) {
        elf.push(0);
    }
    let shoff = elf.len();
    for name in [0u32, 1, 11] {
        let mut header = [0u8; 64];
        header[..4].copy_from_slice(&name.to_ne_bytes());
        header[0x18..0x20].copy_from_slice(&(strtab_at as u64).to_ne_bytes());
        elf.extend_from_slice(&header);
    }
    elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_ne_bytes());
    elf[0x3a..0x3c].copy_from_slice(&64u16.to_ne_bytes());
    elf[0x3c..0x3e].copy_from_slice(&3u16.to_ne_bytes());
    elf[0x3e..0x40].copy_from_slice(&1u16.to_ne_bytes());
    assert_eq!(
        crate::object::section_names(&elf),
        ["", ".shstrtab", ".maps.print"]
    );
    // Truncated: no names, no panic.
    assert!(crate::object::section_names(&elf[..shoff + 10]).is_empty());
    // A section table at the very end of the address space (found by fuzzing: the string
    // table's offset overflowed): no names, no panic.
    elf[0x28..0x30].copy_from_slice(&(u64::MAX - 0x10).to_ne_bytes());
    elf[0x3e..0x40].copy_from_slice(&0u16.to_ne_bytes());
    assert!(crate::object::section_names(&elf).is_empty());
}
