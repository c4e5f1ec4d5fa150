//! Where the in-pod helper binary is: `--helper`, `MLBACKUP_HELPER`, or the helpers shipped
//! beside the plugin executable (the Krew archive's `helpers/linux-<arch>/mlbackup-helper`).

use std::path::{Path, PathBuf};

use crate::env::{Env, MLBACKUP_HELPER};

/// The helper's file name.
pub const HELPER_FILE: &str = "mlbackup-helper";
/// The folder beside the plugin executable that holds one helper per pod architecture.
pub const HELPERS_DIR: &str = "helpers";

/// No helper for the wanted architecture: says every place it looked, in order.
#[derive(Debug, thiserror::Error)]
#[error("no mlbackup-helper for linux/{arch} (looked at {})", list(.looked_at))]
pub struct HelperNotFound {
    pub arch: String,
    pub looked_at: Vec<PathBuf>,
}

impl HelperNotFound {
    pub fn hint(&self) -> String {
        format!(
            "pass --helper PATH or set {MLBACKUP_HELPER} to a mlbackup-helper built for \
             linux/{}, or put it at {HELPERS_DIR}/linux-{}/{HELPER_FILE} beside the plugin",
            self.arch, self.arch
        )
    }
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where to look for the helper, resolved once from `--helper`, the environment and this
/// program's own path.
#[derive(Debug, Clone, Default)]
pub struct HelperSearch {
    /// `--helper PATH`, else `MLBACKUP_HELPER`.
    pub named: Option<PathBuf>,
    /// This program's own path as the OS reports it (the helpers are looked up beside it).
    pub plugin: Option<PathBuf>,
}

impl HelperSearch {
    /// The search that `--helper` (`flag`) and the environment ask for.
    pub fn new(flag: Option<&Path>, env: &Env) -> Self {
        HelperSearch {
            named: flag
                .map(Path::to_path_buf)
                .or_else(|| env.mlbackup_helper.clone()),
            plugin: env.current_exe.clone(),
        }
    }

    /// The helper for pods of Kubernetes architecture `arch` (`amd64`, `arm64`), first found of:
    /// 1. `--helper PATH`,
    /// 2. `MLBACKUP_HELPER`,
    /// 3. `helpers/linux-<arch>/mlbackup-helper` beside the plugin executable,
    /// 4. `mlbackup-helper` beside the plugin executable, only when `arch` is this machine's own
    ///    and this is Linux (what `cargo build` and `cargo install` put there is built for here).
    ///
    /// A path the operator named (1 or 2) is the only candidate: a typo must not silently fall
    /// back to another binary. The executable's path is resolved through symbolic links first,
    /// because Krew runs the plugin through a link in `~/.krew/bin` while the helpers stay in its
    /// store.
    pub fn locate(&self, arch: &str) -> Result<PathBuf, HelperNotFound> {
        let candidates = match &self.named {
            Some(path) => vec![path.clone()],
            None => self.beside_the_plugin(arch),
        };
        match candidates.iter().find(|path| path.is_file()) {
            Some(found) => Ok(found.clone()),
            None => Err(HelperNotFound {
                arch: arch.to_string(),
                looked_at: candidates,
            }),
        }
    }

    fn beside_the_plugin(&self, arch: &str) -> Vec<PathBuf> {
        let Some(dir) = self
            .plugin
            .as_deref()
            .map(|exe| std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf()))
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
        else {
            return Vec::new();
        };
        let mut candidates = vec![
            dir.join(HELPERS_DIR)
                .join(format!("linux-{arch}"))
                .join(HELPER_FILE),
        ];
        if cfg!(target_os = "linux") && arch == host_arch() {
            candidates.push(dir.join(HELPER_FILE));
        }
        candidates
    }
}

/// This machine's architecture in Kubernetes' terms (`amd64`, `arm64`), as node labels say it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locate(flag: Option<&Path>, env: &Env, arch: &str) -> Result<PathBuf, HelperNotFound> {
        HelperSearch::new(flag, env).locate(arch)
    }

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"helper").unwrap();
    }

    /// An installed layout like Krew's: the plugin in a store folder, linked from a bin folder.
    struct Layout {
        root: tempfile::TempDir,
    }

    impl Layout {
        fn new() -> Layout {
            let root = tempfile::tempdir().unwrap();
            touch(&root.path().join("store/v1/kubectl-mlbackup"));
            std::fs::create_dir_all(root.path().join("bin")).unwrap();
            std::os::unix::fs::symlink(
                root.path().join("store/v1/kubectl-mlbackup"),
                root.path().join("bin/kubectl-mlbackup"),
            )
            .unwrap();
            Layout { root }
        }

        fn store(&self, relative: &str) -> PathBuf {
            // Canonical, so that comparisons hold where the temp dir is itself behind a link.
            std::fs::canonicalize(self.root.path().join("store/v1"))
                .unwrap()
                .join(relative)
        }

        /// The environment of the plugin as run through the bin folder's link.
        fn env(&self) -> Env {
            Env {
                current_exe: Some(self.root.path().join("bin/kubectl-mlbackup")),
                ..Env::default()
            }
        }
    }

    #[test]
    fn the_helper_for_the_arch_is_found_through_the_link_of_the_plugin() {
        let layout = Layout::new();
        let amd64 = layout.store("helpers/linux-amd64/mlbackup-helper");
        touch(&amd64);
        assert_eq!(locate(None, &layout.env(), "amd64").unwrap(), amd64);
        let missing = locate(None, &layout.env(), "arm64").unwrap_err();
        assert_eq!(
            missing.looked_at,
            vec![layout.store("helpers/linux-arm64/mlbackup-helper")],
            "a helper of another architecture is never taken"
        );
        assert!(
            missing
                .to_string()
                .starts_with("no mlbackup-helper for linux/arm64 (looked at /"),
            "{missing}"
        );
    }

    #[test]
    fn a_helper_beside_the_plugin_serves_only_this_machines_arch() {
        let layout = Layout::new();
        let sibling = layout.store("mlbackup-helper");
        touch(&sibling);
        assert_eq!(locate(None, &layout.env(), host_arch()).unwrap(), sibling);
        assert!(locate(None, &layout.env(), "s390x").is_err());
        // The per-architecture folder wins over the sibling.
        let per_arch = layout.store(&format!("helpers/linux-{}/mlbackup-helper", host_arch()));
        touch(&per_arch);
        assert_eq!(locate(None, &layout.env(), host_arch()).unwrap(), per_arch);
    }

    #[test]
    fn a_named_helper_wins_and_is_never_replaced_by_another() {
        let layout = Layout::new();
        touch(&layout.store("helpers/linux-amd64/mlbackup-helper"));
        let flag = layout.root.path().join("flag-helper");
        let variable = layout.root.path().join("env-helper");
        touch(&flag);
        touch(&variable);
        let env = Env {
            mlbackup_helper: Some(variable.clone()),
            ..layout.env()
        };
        assert_eq!(locate(Some(&flag), &env, "amd64").unwrap(), flag);
        assert_eq!(locate(None, &env, "amd64").unwrap(), variable);
        let typo = layout.root.path().join("no-such-helper");
        let err = locate(Some(&typo), &env, "amd64").unwrap_err();
        assert_eq!(err.looked_at, vec![typo]);
        assert!(err.hint().contains("--helper PATH"), "{}", err.hint());
        // A directory is not a helper.
        let err = locate(Some(layout.root.path()), &env, "amd64").unwrap_err();
        assert_eq!(err.looked_at.len(), 1);
    }

    #[test]
    fn without_a_known_executable_only_named_helpers_work() {
        let err = locate(None, &Env::default(), "amd64").unwrap_err();
        assert!(err.looked_at.is_empty());
    }
}
