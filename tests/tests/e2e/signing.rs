//! Signing and the chain of trust against a real docker-registry: keys made here, packages
//! published signed and unsigned, every tamper case refused with exit 8 before the store is
//! touched, and interop with Python's `cryptography` (tests/python/cosign_interop.py) both
//! ways: it verifies our signatures, and we verify its.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ebpf_e2e_tests::cli::{fails, ok, show, workspace_root, Env};
use ebpf_e2e_tests::{needs, Need, Registry};

pub(crate) const PASSWORD: &str = "correct horse";

/// The published package: `reference@digest` as push prints it.
pub(crate) struct Pushed {
    pub(crate) reference: String,
    pub(crate) digest: String,
}

pub(crate) fn push(env: &Env, project: &Path, reference: &str, sign: Option<&Path>) -> Pushed {
    let mut cmd = env.cmd(["push", reference, "--manifest-path"]);
    cmd.arg(project).env("CARGO_EBPF_KEY_PASSWORD", PASSWORD);
    if let Some(key) = sign {
        cmd.arg("--sign").arg(key);
    }
    let out = String::from_utf8(ok(&mut cmd).stdout).unwrap();
    let (reference, digest) = out.trim().rsplit_once('@').expect("REF@DIGEST");
    Pushed {
        reference: reference.to_string(),
        digest: digest.to_string(),
    }
}

fn interop(args: &[&str]) -> Output {
    let script = workspace_root().join("tests/python/cosign_interop.py");
    Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .unwrap()
}

pub(crate) fn interop_ok(args: &[&str]) -> String {
    let out = interop(args);
    assert!(
        out.status.success(),
        "cosign_interop.py {args:?}: {}",
        show(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Python with the `cryptography` package, or an honest skip.
pub(crate) fn python_cryptography() -> bool {
    if !needs(&[Need::Tool("python3", "python3")]) {
        return false;
    }
    let has = Command::new("python3")
        .args(["-c", "import cryptography, nacl"])
        .status()
        .is_ok_and(|s| s.success());
    if !has && ebpf_e2e_tests::harness::strict() {
        panic!("python3 lacks the `cryptography` or `nacl` (PyNaCl) package (scripts/install-deps.sh installs them)");
    }
    if !has {
        eprintln!("skipped: needs python3's `cryptography` and `nacl` packages (pip install cryptography pynacl)");
    }
    has
}

pub(crate) fn keygen(env: &Env, prefix: &str, encrypted: bool) -> (PathBuf, PathBuf) {
    let path = env.path().join(prefix);
    let mut cmd = env.cmd(["key", "generate"]);
    cmd.arg(&path);
    if encrypted {
        cmd.env("CARGO_EBPF_KEY_PASSWORD", PASSWORD);
    } else {
        cmd.arg("--no-password");
    }
    ok(&mut cmd);
    (path.with_extension("key"), path.with_extension("pub"))
}

fn stored(env: &Env) -> String {
    String::from_utf8(ok(&mut env.cmd(["list", "--json"])).stdout).unwrap()
}

/// An error report as one line: miette wraps long messages and frames them with `│`.
pub(crate) fn flat(report: &str) -> String {
    let words: Vec<&str> = report.split_whitespace().filter(|w| *w != "│").collect();
    words.join(" ")
}

/// `pull REF` must fail with exit 8 saying `why`, and leave the store as it was.
fn refused(env: &Env, reference: &str, why: &str) {
    let before = stored(env);
    let err = flat(&fails(&mut env.cmd(["pull", reference]), 8));
    assert!(
        err.contains(why),
        "pull {reference}: expected {why:?} in:\n{err}"
    );
    assert_eq!(
        stored(env),
        before,
        "a refused pull left something in the store"
    );
}

pub(crate) fn repo_of(reference: &str) -> String {
    let (_, rest) = reference.split_once('/').unwrap();
    rest.rsplit_once(':').unwrap().0.to_string()
}

#[test]
fn keys_signatures_and_trust_policy() {
    if !needs(&[Need::Build, Need::Registry]) || !python_cryptography() {
        return;
    }
    let registry = Registry::start();
    let reg = registry.addr();
    let env = Env::new();
    let (alice_key, alice_pub) = keygen(&env, "alice", true);
    let (mallory_key, mallory_pub) = keygen(&env, "mallory", false);

    // Keys: encrypted PKCS#8, private only for its owner, never overwritten.
    let text = std::fs::read_to_string(&alice_key).unwrap();
    assert!(text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&alice_key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let err = fails(
        env.cmd(["key", "generate", "--no-password"])
            .arg(env.path().join("alice")),
        2,
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&alice_key).unwrap(), text);
    let err = fails(env.cmd(["key", "generate"]).arg(env.path().join("nopw")), 2);
    assert!(err.contains("no password"), "{err}");

    let project = env.path().join("hello");
    ok(env
        .cmd(["new", "hello", "--lang", "eunomia", "--path"])
        .arg(&project));
    let signed = push(
        &env,
        &project,
        &format!("{reg}/alice/hello:0.1.0"),
        Some(&alice_key),
    );
    let repo = repo_of(&signed.reference);

    // verify: the right key passes (both binaries), another key is named.
    let out = ok(env
        .cmd(["verify", &signed.reference, "--key"])
        .arg(&alice_pub));
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.contains(&signed.digest) && said.contains("SHA256:"),
        "{said}"
    );
    ok(env
        .runner_cmd(["verify", &signed.reference, "--key"])
        .arg(&alice_pub));
    let err = fails(
        env.cmd(["verify", &signed.reference, "--key"])
            .arg(&mallory_pub),
        8,
    );
    assert!(err.contains("signed by another key"), "{err}");

    // Python's cryptography verifies what we wrote, straight from the registry.
    let alice_pub_s = alice_pub.to_str().unwrap();
    interop_ok(&["verify", reg, &repo, &signed.digest, alice_pub_s]);

    // Trust alice for her namespace; a signed pull passes and records who verified it.
    ok(env
        .cmd(["trust", "add", &format!("{reg}/alice/*"), "--key"])
        .arg(&alice_pub));
    let listed = String::from_utf8(ok(&mut env.cmd(["trust", "list"])).stdout).unwrap();
    assert!(listed.contains(&format!("{reg}/alice")), "{listed}");
    ok(&mut env.cmd(["pull", &signed.reference]));
    // The first line: `DIGEST signed by FINGERPRINT` (the provenance line follows).
    let alice_fp = said
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    let list = stored(&env);
    assert!(
        list.contains(&alice_fp),
        "list shows the verifying key: {list}"
    );
    let table = String::from_utf8(ok(&mut env.cmd(["list"])).stdout).unwrap();
    let row = table.lines().find(|l| l.contains("alice/hello")).unwrap();
    assert!(row.ends_with(&alice_fp), "{table}");

    // Unsigned, in the trusted scope.
    let unsigned = push(&env, &project, &format!("{reg}/alice/unsigned:0.1.0"), None);
    refused(&env, &unsigned.reference, "has no signature");
    // run and install (and the standalone runner) go through the same gate.
    for cmd in [
        env.cmd(["install", &unsigned.reference]),
        env.cmd(["run", &unsigned.reference, "--duration", "1"]),
        env.runner_cmd(["pull", &unsigned.reference]),
    ] {
        let mut cmd = cmd;
        let err = flat(&fails(&mut cmd, 8));
        assert!(err.contains("has no signature"), "{cmd:?}: {err}");
    }
    assert!(!stored(&env).contains("alice/unsigned"));

    // Signed by another key.
    let evil = push(&env, &project, &format!("{reg}/alice/evil:0.1.0"), None);
    ok(env
        .cmd(["sign", &evil.reference, "--key"])
        .arg(&mallory_key));
    refused(&env, &evil.reference, "signed by another key");

    // A re-pointed tag: other content under the signed tag, with the old signature copied
    // over (a signature for another digest).
    let manifest = project.join("ebpf.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, toml.replacen("0.1.0", "0.1.1", 1)).unwrap();
    let moved = push(&env, &project, &format!("{reg}/alice/hello:0.1.0"), None);
    assert_ne!(moved.digest, signed.digest);
    refused(&env, &moved.reference, "has no signature");
    interop_ok(&["copy-sig", reg, &repo, &signed.digest, &moved.digest]);
    refused(&env, &moved.reference, "for another image");

    // An edited payload keeping the old signature.
    let edited = push(
        &env,
        &project,
        &format!("{reg}/alice/edited:0.1.1"),
        Some(&alice_key),
    );
    interop_ok(&["edit", reg, &repo_of(&edited.reference), &edited.digest]);
    refused(&env, &edited.reference, "modified after signing");

    // Outside every scope: a warning, or a refusal when signatures are required.
    let outside = push(&env, &project, &format!("{reg}/bob/tool:0.1.1"), None);
    let err = fails(
        &mut env.cmd(["pull", "--require-signed", &outside.reference]),
        8,
    );
    assert!(err.contains("not signed by a trusted key"), "{err}");
    let out = ok(&mut env.cmd(["pull", &outside.reference]));
    let warned = String::from_utf8(out.stderr).unwrap();
    assert!(
        warned.contains(&format!(
            "warning: {} is not signed by a trusted key (unverified)",
            outside.reference
        )),
        "{warned}"
    );

    // trust rm lifts the requirement.
    ok(&mut env.cmd(["trust", "rm", &format!("{reg}/alice/*")]));
    ok(&mut env.cmd(["pull", &unsigned.reference]));

    // A changed layer (last: every tag here shares that layer blob): the signature holds, the content no longer hashes to what it signs.
    let layered = push(
        &env,
        &project,
        &format!("{reg}/alice/layer:0.1.1"),
        Some(&alice_key),
    );
    let manifest = std::fs::read(registry.blob_data_path(&layered.digest)).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let path = registry.blob_data_path(layer);
    let mut data = std::fs::read(&path).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&path, data).unwrap();
    ok(env
        .cmd(["trust", "add", &format!("{reg}/alice/*"), "--key"])
        .arg(&alice_pub));
    refused(&env, &layered.reference, "digest");
}

#[test]
fn a_signature_made_by_python_cryptography_verifies() {
    if !needs(&[Need::Build, Need::Registry]) || !python_cryptography() {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let project = env.path().join("pysigned");
    ok(env
        .cmd(["new", "pysigned", "--lang", "eunomia", "--path"])
        .arg(&project));
    let pushed = push(
        &env,
        &project,
        &format!("{}/py/pysigned:0.1.0", registry.addr()),
        None,
    );
    let py_pub = env.path().join("python.pub");
    interop_ok(&[
        "sign",
        registry.addr(),
        &repo_of(&pushed.reference),
        &pushed.digest,
        py_pub.to_str().unwrap(),
    ]);
    let out = ok(env.cmd(["verify", &pushed.reference, "--key"]).arg(&py_pub));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains(&pushed.digest));
    // A multi-arch package: the index and each platform manifest are signed, and Python
    // verifies every one of them.
    let (_, alice_pub) = keygen(&env, "alice", false);
    let alice_key = env.path().join("alice.key");
    let multi = {
        let mut cmd = env.cmd(["push", &format!("{}/py/multi:0.1.0", registry.addr())]);
        cmd.args(["--arch", "x86_64,arm64", "--sign"])
            .arg(&alice_key)
            .arg("--manifest-path")
            .arg(&project);
        let out = String::from_utf8(ok(&mut cmd).stdout).unwrap();
        out.trim().rsplit_once('@').unwrap().1.to_string()
    };
    let index = std::fs::read(registry.blob_data_path(&multi)).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let platforms: Vec<&str> = index["manifests"]
        .as_array()
        .expect("an image index")
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(platforms.len(), 2, "{index}");
    for digest in std::iter::once(multi.as_str()).chain(platforms) {
        interop_ok(&[
            "verify",
            registry.addr(),
            "py/multi",
            digest,
            alice_pub.to_str().unwrap(),
        ]);
    }

    // And as the trust policy's key, for run/pull.
    ok(env
        .cmd([
            "trust",
            "add",
            &format!("{}/py/pysigned", registry.addr()),
            "--key",
        ])
        .arg(&py_pub));
    ok(&mut env.cmd(["pull", &pushed.reference]));
}

#[test]
fn a_key_in_cosigns_own_format_signs() {
    if !needs(&[Need::Build, Need::Registry]) || !python_cryptography() {
        return;
    }
    let registry = Registry::start();
    let env = Env::new();
    let project = env.path().join("cosignkey");
    ok(env
        .cmd(["new", "cosignkey", "--lang", "eunomia", "--path"])
        .arg(&project));
    let pushed = push(
        &env,
        &project,
        &format!("{}/py/cosignkey:0.1.0", registry.addr()),
        None,
    );
    // Written by Python (scrypt + NaCl secretbox) as `cosign generate-key-pair` does.
    let prefix = env.path().join("cosign");
    interop_ok(&["cosign-key", prefix.to_str().unwrap(), "cosign pw"]);
    let (key, public) = (prefix.with_extension("key"), prefix.with_extension("pub"));
    let err = fails(
        env.cmd(["sign", &pushed.reference, "--key"])
            .arg(&key)
            .env("COSIGN_PASSWORD", "wrong"),
        7,
    );
    assert!(err.contains("wrong password"), "{err}");
    ok(env
        .cmd(["sign", &pushed.reference, "--key"])
        .arg(&key)
        .env("COSIGN_PASSWORD", "cosign pw"));
    ok(env.cmd(["verify", &pushed.reference, "--key"]).arg(&public));
    interop_ok(&[
        "verify",
        registry.addr(),
        &repo_of(&pushed.reference),
        &pushed.digest,
        public.to_str().unwrap(),
    ]);
}
