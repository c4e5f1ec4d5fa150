//! Every environment variable the plugin reads, in one place, read once at start.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

/// `KUBECONFIG`: one or more kubeconfig files, separated like `PATH`.
pub const KUBECONFIG: &str = "KUBECONFIG";
/// `HOME`: where `~/.kube/config` is looked up.
pub const HOME: &str = "HOME";
/// `NO_COLOR`: any value turns colours off (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// `MLBACKUP_DIR`: the directory holding backups when `--dir` is not given.
pub const MLBACKUP_DIR: &str = "MLBACKUP_DIR";
/// `MLBACKUP_HELPER`: the helper binary to upload into the app pod, when `--helper` is not given.
pub const MLBACKUP_HELPER: &str = "MLBACKUP_HELPER";

/// `DR_CORE_NAMESPACE`: the namespace DataRobot is installed in (the app namespace), as the
/// vendor's runbook names it.
pub const DR_CORE_NAMESPACE: &str = "DR_CORE_NAMESPACE";

/// What the process environment says, captured once so the rest of the code is testable.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub kubeconfig: Option<OsString>,
    pub home: Option<PathBuf>,
    pub no_color: bool,
    pub stderr_is_terminal: bool,
    pub mlbackup_dir: Option<PathBuf>,
    /// Whether a confirmation question can be asked (and answered).
    pub stdin_is_terminal: bool,
    pub mlbackup_helper: Option<PathBuf>,
    /// This program's own path as the OS reports it (the helpers are looked up beside it).
    pub current_exe: Option<PathBuf>,
    pub dr_core_namespace: Option<String>,
}

impl Env {
    pub fn from_process() -> Self {
        Env {
            kubeconfig: std::env::var_os(KUBECONFIG).filter(|v| !v.is_empty()),
            home: std::env::var_os(HOME)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            no_color: std::env::var_os(NO_COLOR).is_some_and(|v| !v.is_empty()),
            stderr_is_terminal: std::io::stderr().is_terminal(),
            mlbackup_dir: std::env::var_os(MLBACKUP_DIR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            stdin_is_terminal: std::io::stdin().is_terminal(),
            mlbackup_helper: std::env::var_os(MLBACKUP_HELPER)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            current_exe: std::env::current_exe().ok(),
            dr_core_namespace: std::env::var(DR_CORE_NAMESPACE)
                .ok()
                .filter(|v| !v.trim().is_empty()),
        }
    }
}
