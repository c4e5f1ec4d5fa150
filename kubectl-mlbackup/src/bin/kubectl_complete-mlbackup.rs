//! `kubectl_complete-mlbackup`: kubectl (1.26 and newer) runs it for `kubectl mlbackup <TAB>`
//! with the words after `mlbackup`, the last being the word under the cursor. It hands them to
//! `kubectl-mlbackup __complete`, which prints Cobra-style completions for kubectl to show.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let plugin = plugin();
    match Command::new(&plugin)
        .arg("__complete")
        .args(std::env::args_os().skip(1))
        .status()
    {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!(
                "kubectl_complete-mlbackup: cannot run {}: {err}",
                plugin.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// The plugin beside this program, found through symbolic links (Krew and users link both into
/// a bin folder), else `kubectl-mlbackup` on the PATH.
fn plugin() -> PathBuf {
    std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("kubectl-mlbackup")))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("kubectl-mlbackup"))
}
