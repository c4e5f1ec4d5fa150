//! Outside programs the tests drive (`kubectl`, util-linux `script` and `setpriv`, `python3`):
//! found on PATH, and a missing one fails the test under CI instead of letting it pass unseen.

use std::path::{Path, PathBuf};

/// Whether this run is CI's (`.ci/run` runs with `CI=true`): there every tool a test needs
/// must be installed, so a missing one is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The first executable `name` on PATH.
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `name` on PATH for a test that cannot run without it: panics when it is missing (`why` says
/// which package provides it).
pub fn require(name: &str, why: &str) -> PathBuf {
    find(name).unwrap_or_else(|| panic!("`{name}` is not on PATH ({why})"))
}

/// `name` on PATH for a test part that is skipped without it on a developer's machine: `None`
/// (with a note on stderr) there, a panic under CI, where a skip would hide that the part
/// never ran.
pub fn optional(name: &str, why: &str) -> Option<PathBuf> {
    match find(name) {
        Some(found) => Some(found),
        None if in_ci() => panic!("`{name}` is not on PATH ({why}); CI must install it"),
        None => {
            eprintln!("skipped: `{name}` is not on PATH ({why})");
            None
        }
    }
}

/// The real kubectl, from PATH (`.ci/run` puts one from PyPI on PATH on machines without it).
pub fn kubectl() -> PathBuf {
    require("kubectl", "the conformance tests drive the real kubectl")
}

/// A world-writable sticky directory (like /tmp) holding `name` as a symlink to `target`,
/// planted by another user (uid 65534, through util-linux `setpriv`): what a tool writing into
/// a shared directory must never follow.
pub fn plant_symlink_as_another_user(target: &Path, name: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let shared = tempfile::tempdir().expect("create a temporary directory");
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777))
        .expect("make the directory world-writable and sticky");
    let planted = std::process::Command::new(require("setpriv", "util-linux; plays another user"))
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "ln",
            "-s",
        ])
        .arg(target)
        .arg(shared.path().join(name))
        .status()
        .expect("run setpriv (util-linux)");
    assert!(planted.success(), "the other user could not plant the link");
    shared
}
