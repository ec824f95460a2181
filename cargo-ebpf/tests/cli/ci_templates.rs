//! The CI files every new project gets: they parse as YAML, the GitHub workflow passes
//! GitHub's published schema, the Gitee pipeline has the keys Gitee Go requires, and GitHub's
//! `${{ … }}` expressions come through handlebars untouched.
//!
//! YAML is read with serde_yaml_ng: the maintained fork of serde_yaml, so the Gitee pipeline's
//! required keys can be stated as plain structs (a missing key fails with its name), and a
//! YAML 1.2 parser, which reads GitHub's `on:` as the string it is, not as `true`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::common::identity;
use crate::common::{needs, Need};
use cargo_ebpf::scaffold::{packs, render, TemplateVars};

const GITHUB_WORKFLOW: &str = ".github/workflows/ebpf.yml";
const GITEE_PIPELINE: &str = ".workflow/ebpf.yml";

/// A rendered project: (relative path, content) per file.
type Files = Vec<(PathBuf, Vec<u8>)>;

/// Every built-in pack's project, rendered in memory: (pack name, files).
fn rendered_packs() -> Vec<(String, Files)> {
    let list = packs();
    assert!(!list.is_empty());
    list.into_iter()
        .map(|p| {
            let files = render(&p.name, "my-probe", &identity()).unwrap();
            (p.name, files)
        })
        .collect()
}

fn file<'a>(files: &'a [(PathBuf, Vec<u8>)], path: &str) -> &'a str {
    let (_, bytes) = files
        .iter()
        .find(|(p, _)| p == Path::new(path))
        .unwrap_or_else(|| panic!("no {path} in the project"));
    std::str::from_utf8(bytes).unwrap()
}

/// What the pack's `[ci]` section turned into, from the same code path the templates use.
fn ci_vars(pack: &str) -> cargo_ebpf::scaffold::CiVars {
    TemplateVars::for_pack(pack, "my-probe", &identity())
        .unwrap()
        .ci
}

#[test]
fn github_workflow_parses_and_uses_the_pack_ci_section() {
    for (pack, files) in rendered_packs() {
        let text = file(&files, GITHUB_WORKFLOW);
        let yaml: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{pack}: {e}\n{text}"));
        let on = &yaml["on"];
        assert!(
            on["push"]["tags"][0].as_str() == Some("v*"),
            "{pack}: {on:?}"
        );
        assert!(on.get("pull_request").is_some(), "{pack}");
        let steps = yaml["jobs"]["ebpf"]["steps"].as_sequence().unwrap();
        let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
        let all = runs.join("\n");
        let ci = ci_vars(&pack);
        assert!(
            all.contains(&format!(
                "apt-get install -y --no-install-recommends {}",
                ci.apt_packages
            )),
            "{pack}"
        );
        for line in ci.setup.iter().chain(&ci.test) {
            assert!(
                runs.iter().any(|r| r.lines().any(|l| l.trim() == line)),
                "{pack}: `{line}` not run"
            );
        }
        for command in [
            "cargo ebpf build",
            "cargo ebpf package",
            "apt-get install -y --no-install-recommends qemu-system-x86 busybox-static",
            "cargo ebpf test-kernels --fetch --output target/ebpf/kernel-matrix.json",
            "cargo ebpf login ghcr.io",
            "cargo ebpf push \"ghcr.io/",
        ] {
            assert!(all.contains(command), "{pack}: no `{command}`");
        }
        let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
        assert!(
            uses.iter().any(|u| u.starts_with("actions/checkout@")),
            "{pack}"
        );
        assert!(
            uses.iter()
                .any(|u| u.starts_with("actions/upload-artifact@")),
            "{pack}"
        );
    }
}

#[test]
fn github_workflow_passes_the_github_workflow_schema() {
    if !needs(&[Need::Tool(
        "check-jsonschema",
        "pip install check-jsonschema",
    )]) {
        return;
    }
    for (pack, files) in rendered_packs() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ebpf.yml");
        std::fs::write(&path, file(&files, GITHUB_WORKFLOW)).unwrap();
        let out = Command::new("check-jsonschema")
            .args(["--builtin-schema", "vendor.github-workflows"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run check-jsonschema ({e}): install it with `pip install check-jsonschema`")
            });
        assert!(
            out.status.success(),
            "{pack}: the workflow fails GitHub's schema:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A schema check that cannot fail proves nothing: a workflow with a misspelled key fails.
#[test]
fn the_schema_check_rejects_a_broken_workflow() {
    if !needs(&[Need::Tool(
        "check-jsonschema",
        "pip install check-jsonschema",
    )]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.yml");
    std::fs::write(
        &path,
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    stepz: []\n",
    )
    .unwrap();
    let out = Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(&path)
        .output()
        .expect("check-jsonschema missing: install it with `pip install check-jsonschema`");
    assert!(!out.status.success());
}

/// The documented shape of a Gitee Go pipeline: these keys are required.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GiteePipeline {
    version: String,
    name: String,
    display_name: String,
    triggers: serde_yaml_ng::Mapping,
    stages: Vec<GiteeStage>,
}

#[derive(Debug, Deserialize)]
struct GiteeStage {
    name: String,
    steps: Vec<GiteeStep>,
}

#[derive(Debug, Deserialize)]
struct GiteeStep {
    step: String,
    name: String,
    commands: Vec<String>,
    #[serde(default)]
    artifacts: Vec<GiteeArtifact>,
}

#[derive(Debug, Deserialize)]
struct GiteeArtifact {
    name: String,
    path: Vec<String>,
}

#[test]
fn gitee_pipeline_has_the_required_keys() {
    for (pack, files) in rendered_packs() {
        let text = file(&files, GITEE_PIPELINE);
        let p: GiteePipeline =
            serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{pack}: {e}\n{text}"));
        assert_eq!(p.version, "1.0", "{pack}");
        assert!(!p.name.is_empty() && !p.display_name.is_empty(), "{pack}");
        for trigger in ["push", "tag"] {
            assert!(
                p.triggers.contains_key(trigger),
                "{pack}: no {trigger} trigger"
            );
        }
        let steps: Vec<&GiteeStep> = p.stages.iter().flat_map(|s| &s.steps).collect();
        assert!(
            p.stages
                .iter()
                .all(|s| !s.name.is_empty() && !s.steps.is_empty()),
            "{pack}"
        );
        let mut names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            steps.len(),
            "{pack}: step names must be unique"
        );
        for s in &steps {
            assert!(
                ["build@gcc", "shell@agent"].contains(&s.step.as_str()),
                "{pack}: {}",
                s.step
            );
            assert!(!s.commands.is_empty(), "{pack}: {} has no commands", s.name);
        }
        let build = steps
            .iter()
            .find(|s| s.step == "build@gcc")
            .expect("a build@gcc step");
        let ci = ci_vars(&pack);
        let install = format!(
            "apt-get install -y --no-install-recommends {}",
            ci.apt_packages
        );
        assert!(
            build.commands.contains(&install),
            "{pack}: {:?}",
            build.commands
        );
        for line in &ci.setup {
            assert!(build.commands.contains(line), "{pack}: `{line}` not run");
        }
        for command in ["cargo ebpf build", "cargo ebpf package"] {
            assert!(
                build.commands.iter().any(|c| c == command),
                "{pack}: no `{command}`"
            );
        }
        let artifact = &build.artifacts[0];
        assert!(!artifact.name.is_empty() && artifact.path[0].ends_with("my-probe-oci.tar.gz"));
        // The kernel matrix: emulated (no KVM in the build container), kept as an artifact.
        assert!(
            build.commands.iter().any(
                |c| c == "cargo ebpf test-kernels --fetch --no-kvm --output kernel-matrix.json"
            ),
            "{pack}: {:?}",
            build.commands
        );
        assert!(build
            .artifacts
            .iter()
            .any(|a| a.name == "KERNEL_MATRIX" && a.path == ["./kernel-matrix.json"]));
        if !ci.test.is_empty() {
            let agent = steps
                .iter()
                .find(|s| s.step == "shell@agent")
                .expect("a test step");
            for line in &ci.test {
                assert!(agent.commands.contains(line), "{pack}: `{line}` not run");
            }
        }
    }
}

/// `$\{{ x }}` in the template is GitHub's `${{ x }}` in the project, byte for byte, and no
/// other `{{` is left behind.
#[test]
fn github_expressions_survive_rendering() {
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/github-actions/ebpf.yml.hbs"),
    )
    .unwrap();
    let escaped = template.matches("$\\{{").count();
    assert!(escaped >= 4, "the template should use GitHub expressions");
    for (pack, files) in rendered_packs() {
        let text = file(&files, GITHUB_WORKFLOW);
        for expr in [
            "${{ github.actor }}",
            "${{ secrets.GITHUB_TOKEN }}",
            "${{ github.repository }}",
            "${{ github.ref_name }}",
        ] {
            assert!(text.contains(expr), "{pack}: `{expr}` lost:\n{text}");
        }
        assert_eq!(text.matches("${{ ").count(), escaped, "{pack}");
        assert_eq!(
            text.matches("{{").count(),
            escaped,
            "{pack}: a stray `{{{{`"
        );
        assert!(!text.contains("\\{{"), "{pack}: an escape leaked through");
    }
}
