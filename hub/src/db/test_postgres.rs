//! A throw-away PostgreSQL cluster for the database layer's unit tests, so the queries
//! written once for both backends also run on a real Postgres (the e2e tests start theirs
//! the same way: `initdb` as the `postgres` user, the server on 127.0.0.1 only).
//!
//! Needs root (to run the server as `postgres`) and Debian's server binaries; without them
//! [`Cluster::start`] returns None and says why, unless `CARGO_EBPF_TEST_STRICT=1`, which
//! makes that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster, stopped and deleted on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

/// Where Debian puts the newest server's programs.
fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

/// Runs `program` of the server as the `postgres` user; Err holds its error output.
fn as_postgres(bin: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(program))
        .args(args)
        .output()
        .map_err(|e| format!("runuser {program}: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

impl Cluster {
    /// A cluster with an empty database `hub`, or None (printed) when it cannot run here.
    pub fn start() -> Option<Cluster> {
        match Cluster::try_start() {
            Ok(c) => Some(c),
            Err(why) if std::env::var("CARGO_EBPF_TEST_STRICT").as_deref() == Ok("1") => {
                panic!("Postgres is needed (CARGO_EBPF_TEST_STRICT=1): {why}")
            }
            Err(why) => {
                eprintln!("skipping the Postgres run: {why}");
                None
            }
        }
    }

    fn try_start() -> Result<Cluster, String> {
        let bin = server_bin().ok_or("no /usr/lib/postgresql/*/bin/initdb")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let chown = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path())
            .status();
        if !chown.is_ok_and(|s| s.success()) {
            return Err("cannot hand a directory to the postgres user (not root?)".into());
        }
        let data = dir.path().join("data");
        let data_arg = data.to_str().ok_or("a temp dir that is not UTF-8")?;
        as_postgres(
            &bin,
            "initdb",
            &["-A", "trust", "-U", "postgres", "-D", data_arg],
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            dir.path().display()
        );
        let log = dir.path().join("pg.log");
        let log_arg = log.to_str().ok_or("a temp dir that is not UTF-8")?;
        let start = ["start", "-w", "-D", data_arg, "-l", log_arg, "-o", &options];
        as_postgres(&bin, "pg_ctl", &start)?;
        let cluster = Cluster { dir, port };
        let port = port.to_string();
        let createdb = ["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "hub"];
        as_postgres(&bin, "createdb", &createdb)?;
        Ok(cluster)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/hub", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let (Some(bin), Some(data)) = (server_bin(), self.dir.path().join("data").to_str()) {
            let _ = as_postgres(&bin, "pg_ctl", &["stop", "-m", "immediate", "-D", data]);
        }
    }
}
