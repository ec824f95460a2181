//! Finding the programs we run (clang, make, podman, …) the way a shell would, plus the
//! sbin directories: Debian installs bpftool in /usr/sbin, which a normal user's PATH often
//! lacks.

use std::path::{Path, PathBuf};

/// `name` on PATH, then in /usr/local/sbin, /usr/sbin and /sbin; a name with a `/` is taken
/// as a path. Only executable files count.
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return is_executable(Path::new(name)).then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sbin = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(sbin)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_by_name_or_path() {
        let sh = find_program("sh").expect("sh is installed");
        assert!(sh.is_absolute(), "{}", sh.display());
        assert_eq!(find_program(sh.to_str().unwrap()), Some(sh));
        assert_eq!(find_program("no-such-program-xyz"), None);
        assert_eq!(find_program("/etc/passwd"), None, "not executable");
    }
}
