//! Signing keys for `cargo ebpf key generate`, `sign` and `push --sign`: where the password
//! comes from, and key files written so they never overwrite anything or leak.
//!
//! `PREFIX.key` is PKCS#8 PEM, encrypted (scrypt + AES-256-CBC) unless `--no-password`;
//! `PREFIX.pub` is the SubjectPublicKeyInfo PEM that cosign and `verify --key` read.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ebpf_package::signature::PrivateKey;
use ebpf_package::{Error, Result};

/// Environment variables holding the key password, ours first (cosign's is accepted so the
/// same CI secret works for both tools).
pub const PASSWORD_VARS: [&str; 2] = ["CARGO_EBPF_KEY_PASSWORD", "COSIGN_PASSWORD"];

/// The password: from stdin when asked, else the first non-empty variable of
/// [`PASSWORD_VARS`], else none.
pub fn password(from_stdin: bool) -> Result<Option<String>> {
    if from_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::io("read", Path::new("<stdin>"), e))?;
        let s = s.trim_end_matches(['\n', '\r']).to_string();
        if s.is_empty() {
            return Err(Error::usage("the password read from stdin is empty")
                .with_help("pipe the password in, e.g. `printf %s \"$PW\" | cargo ebpf ... --password-stdin`"));
        }
        return Ok(Some(s));
    }
    Ok(PASSWORD_VARS
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty()))
}

/// Writes `PREFIX.key` (0600) and `PREFIX.pub`; refuses to overwrite either. Returns the
/// key and both paths.
pub fn generate(prefix: &Path, password: Option<&str>) -> Result<(PrivateKey, PathBuf, PathBuf)> {
    let key_path = with_suffix(prefix, "key");
    let pub_path = with_suffix(prefix, "pub");
    for p in [&key_path, &pub_path] {
        if p.exists() {
            return Err(
                Error::usage(format!("{} already exists", p.display())).with_help(
                    "choose another PREFIX, or move the old key away first (it may be in use)",
                ),
            );
        }
    }
    let key = PrivateKey::generate();
    write_new(&key_path, key.to_pem(password)?.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&pub_path, key.public_key().to_pem().as_bytes(), 0o644) {
        // Nothing half-written: a private key without its public half is useless.
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    Ok((key, key_path, pub_path))
}

/// Reads a private key file, decrypting it with `password` when it is encrypted.
pub fn load(path: &Path, password: Option<&str>) -> Result<PrivateKey> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    PrivateKey::from_pem(&text, password).map_err(|e| e.with_context_path(path))
}

fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Creates `path` (never replacing an existing file) with `mode` from the start, so the
/// private key is never readable by others, not even briefly.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("write", path, e))
}
