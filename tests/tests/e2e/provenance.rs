//! Provenance against a real docker-registry: `publish --sign` attaches a signed SLSA
//! statement (`sha256-<hex>.att`) with facts checked here against the project itself (git
//! commit, dirt, `ebpf.toml` digest, builder, tools); Python's `cryptography` verifies the
//! DSSE envelope independently; `inspect` shows it (unverified, then trusted); a tampered or
//! transplanted attestation makes `verify` and a trusted `inspect` exit 8.

use std::path::Path;
use std::process::Command;

use ebpf_e2e_tests::cli::{fails, ok, Env};
use ebpf_e2e_tests::sha256;
use ebpf_e2e_tests::{needs, Need, Registry};

use crate::signing::{flat, interop_ok, keygen, push, python_cryptography, repo_of, PASSWORD};

const ORIGIN: &str = "https://example.com/alice/hello.git";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {:?}", out);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn inspect_json(env: &Env, reference: &str) -> serde_json::Value {
    let out = ok(&mut env.cmd(["inspect", "--json", reference]));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn publish_sign_attests_provenance_that_verify_and_inspect_check() {
    if !needs(&[Need::Build, Need::Registry, Need::Tool("git", "git")]) || !python_cryptography() {
        return;
    }
    let registry = Registry::start();
    let reg = registry.addr();
    let env = Env::new();
    let (alice_key, alice_pub) = keygen(&env, "alice", true);
    let (_, mallory_pub) = keygen(&env, "mallory", false);
    let project = env.path().join("hello");
    ok(env
        .cmd(["new", "hello", "--lang", "eunomia", "--path"])
        .arg(&project));
    let manifest = project.join("ebpf.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap();
    let toml = toml.replacen(
        "[package]\n",
        &format!("[package]\nregistry = \"{reg}/alice\"\n"),
        1,
    );
    std::fs::write(&manifest, &toml).unwrap();
    git(&project, &["init", "-q"]);
    git(&project, &["remote", "add", "origin", ORIGIN]);
    std::fs::write(project.join(".gitignore"), "target/\n").unwrap();
    git(&project, &["add", "-A"]);
    git(&project, &["commit", "-q", "-m", "first"]);
    let commit = git(&project, &["rev-parse", "HEAD"]);

    // publish --sign: a clean tree.
    let out = ok(env
        .cmd(["publish", "--manifest-path"])
        .arg(&project)
        .arg("--sign")
        .arg(&alice_key)
        .env("CARGO_EBPF_KEY_PASSWORD", PASSWORD));
    let printed = String::from_utf8(out.stdout).unwrap();
    let (reference, digest) = printed.trim().rsplit_once('@').unwrap();
    let repo = repo_of(reference);

    // verify checks the attestation too and names what it says.
    let said =
        String::from_utf8(ok(env.cmd(["verify", reference, "--key"]).arg(&alice_pub)).stdout)
            .unwrap();
    assert!(
        said.contains("provenance signed by SHA256:") && said.contains(&commit),
        "{said}"
    );
    assert!(said.contains(ORIGIN) && !said.contains("(dirty)"), "{said}");

    // An independent verifier reads the envelope straight from the registry.
    let builder = interop_ok(&[
        "verify-att",
        reg,
        &repo,
        digest,
        alice_pub.to_str().unwrap(),
    ]);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(builder.trim(), format!("host:{}", hostname.trim()));

    // inspect shows it, unverified while no key is trusted for the scope.
    let text = String::from_utf8(ok(&mut env.cmd(["inspect", reference])).stdout).unwrap();
    assert!(text.contains("Provenance:  UNVERIFIED"), "{text}");
    assert!(text.contains(&format!("{ORIGIN} @ {commit}")), "{text}");
    let json = inspect_json(&env, reference);
    let p = &json["provenance"];
    assert!(p["verified_by"].is_null(), "{p}");
    assert_eq!(p["commit"], commit.as_str());
    assert_eq!(p["dirty"], false);
    assert_eq!(p["manifest_digest"], sha256(toml.as_bytes()).as_str());
    for tool in ["clang", "bpftool", "libbpf", "cargo-ebpf"] {
        assert!(p["tools"][tool].is_string(), "no {tool} in {p}");
    }
    let command: Vec<&str> = p["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(command.contains(&"publish"), "{command:?}");

    // Trusted: inspect names the key.
    ok(env
        .cmd(["trust", "add", &format!("{reg}/alice/*"), "--key"])
        .arg(&alice_pub));
    let json = inspect_json(&env, reference);
    assert!(
        json["provenance"]["verified_by"]
            .as_str()
            .is_some_and(|k| k.starts_with("SHA256:")),
        "{json}"
    );

    // A dirty tree (an uncommitted version bump: other content, so another digest) is
    // attested as dirty.
    std::fs::write(&manifest, toml.replacen("0.1.0", "0.1.1", 1)).unwrap();
    let dirty = push(
        &env,
        &project,
        &format!("{reg}/alice/hello:dirty"),
        Some(&alice_key),
    );
    let json = inspect_json(&env, &dirty.reference);
    assert_eq!(json["provenance"]["dirty"], true, "{json}");
    assert_ne!(dirty.digest, digest);

    // Another digest's attestation copied over this one's: about another package.
    interop_ok(&["copy-att", reg, &repo, digest, &dirty.digest]);
    let err = flat(&fails(
        env.cmd(["verify", &dirty.reference, "--key"])
            .arg(&alice_pub),
        8,
    ));
    assert!(err.contains("about another package"), "{err}");

    // An edited statement keeping the signature: verify and a trusted inspect refuse it.
    interop_ok(&["edit-att", reg, &repo, digest]);
    let err = flat(&fails(
        env.cmd(["verify", reference, "--key"]).arg(&alice_pub),
        8,
    ));
    assert!(
        err.contains("no signature on the provenance attestation is by this key"),
        "{err}"
    );
    assert!(err.contains("provenance attestation does not"), "{err}");
    let err = flat(&fails(&mut env.cmd(["inspect", reference]), 8));
    assert!(err.contains("provenance attestation"), "{err}");

    // Another key: the package signature already fails, named as such.
    let err = flat(&fails(
        env.cmd(["verify", reference, "--key"]).arg(&mallory_pub),
        8,
    ));
    assert!(err.contains("signed by another key"), "{err}");
}
