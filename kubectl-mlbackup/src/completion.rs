//! Shell completion: the Cobra-style `__complete` protocol that kubectl speaks with
//! `kubectl_complete-mlbackup` for `kubectl mlbackup <TAB>`, and the `completion bash|zsh|fish`
//! scripts for calling `kubectl-mlbackup` directly. Both are computed from the clap types in
//! `cli.rs`, so they never disagree with the parser.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

use crate::cli::{BACKUP, Cli, CompletionShell};
use crate::env::Env;
use crate::location::Location;
use crate::store::Store;

/// The hidden first argument that asks for completions, named as in Cobra (kubectl's own
/// plugins answer `kubectl-foo __complete ARGS...` too).
pub const COMPLETE_COMMAND: &str = "__complete";

/// Cobra's `ShellCompDirective` bits that this plugin uses (see cobra's `completions.go`).
const NO_SPACE: u32 = 2;
const NO_FILE_COMPLETION: u32 = 4;

/// The answer to `__complete WORDS...`, where the words are the command line after
/// `kubectl mlbackup` and the last one is the word being completed (empty after a space): one
/// candidate per line, `value<TAB>description`, then `:<directive>`, as kubectl expects from a
/// `kubectl_complete-<plugin>` program.
pub fn cobra_completions(words: &[OsString], env: &Env, cwd: &Path) -> String {
    let mut words = words.to_vec();
    if words.is_empty() {
        words.push(OsString::new());
    }
    let current = words.last().cloned().unwrap_or_default();
    let backup_root = backup_root_of(&words[..words.len() - 1], env, cwd);
    let mut command = with_backup_candidates(Cli::command(), &backup_root, env);

    let mut args = vec![OsString::from("kubectl-mlbackup")];
    args.extend(words.iter().cloned());
    let index = args.len() - 1;
    // An error here only means "nothing to offer": completion must never print errors.
    let candidates =
        clap_complete::engine::complete(&mut command, args, index, Some(cwd)).unwrap_or_default();
    let candidates = without_flags_unless_asked(candidates, &current);

    let mut out = String::new();
    let mut directive = NO_FILE_COMPLETION;
    for candidate in &candidates {
        let value = candidate.get_value().to_string_lossy();
        if value.ends_with('/') {
            // A directory: the user goes on typing inside it.
            directive |= NO_SPACE;
        }
        out.push_str(&value);
        if let Some(help) = candidate.get_help() {
            let help = help.to_string();
            if let Some(first_line) = help.lines().map(str::trim).find(|l| !l.is_empty()) {
                out.push('\t');
                out.push_str(&first_line.replace('\t', " "));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    out
}

/// Flags are offered once the user typed `-` (as Cobra does), or when nothing else fits.
fn without_flags_unless_asked(
    candidates: Vec<CompletionCandidate>,
    current: &OsStr,
) -> Vec<CompletionCandidate> {
    let is_flag = |c: &CompletionCandidate| c.get_value().to_string_lossy().starts_with('-');
    if current.to_string_lossy().starts_with('-') || candidates.iter().all(is_flag) {
        return candidates;
    }
    candidates.into_iter().filter(|c| !is_flag(c)).collect()
}

/// The backup location the completed command will use: the last `--dir` on the line, else
/// `MLBACKUP_DIR`, else the current directory (relative paths taken from `cwd`; an `s3://`
/// location as it is).
fn backup_root_of(words: &[OsString], env: &Env, cwd: &Path) -> PathBuf {
    let mut dir = None;
    let mut words = words.iter().map(|w| w.to_string_lossy());
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        } else if word == "--dir" {
            dir = words.next().map(|value| PathBuf::from(value.as_ref()));
        } else if let Some(value) = word.strip_prefix("--dir=") {
            dir = Some(PathBuf::from(value));
        }
    }
    let root = crate::folder::root(dir.as_deref(), env);
    match Location::parse(root.as_os_str()) {
        Ok(Location::S3(_)) => root,
        _ => cwd.join(root),
    }
}

/// Attaches the backups of `root` as the candidates of every argument whose value name is
/// [`BACKUP`], in every subcommand.
fn with_backup_candidates(command: clap::Command, root: &Path, env: &Env) -> clap::Command {
    let backups = backup_candidates(root, env);
    attach(command, &backups)
}

/// A backup's name and its description.
type Backups = std::sync::Arc<Vec<(String, String)>>;

fn attach(mut command: clap::Command, backups: &Backups) -> clap::Command {
    let backup_args: Vec<clap::Id> = command
        .get_arguments()
        .filter(|arg| {
            arg.get_value_names()
                .is_some_and(|names| names.iter().any(|n| n.as_str() == BACKUP))
        })
        .map(|arg| arg.get_id().clone())
        .collect();
    for id in backup_args {
        let backups = backups.clone();
        command = command.mut_arg(id, |arg| {
            arg.add(ArgValueCandidates::new(move || {
                backups
                    .iter()
                    .map(|(name, help)| CompletionCandidate::new(name).help(Some(help.into())))
                    .collect()
            }))
        });
    }
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    for name in subcommands {
        command = command.mut_subcommand(name, |sub| attach(sub, backups));
    }
    command
}

/// The catalog's backups, newest first, each described by its status, creation time and size;
/// an unreadable location offers nothing (completion never reports errors). A bucket's are
/// its manifests, read with the AWS configuration of the environment.
fn backup_candidates(root: &Path, env: &Env) -> Backups {
    let catalog = Store::open_location(root.as_os_str(), true, env)
        .ok()
        .and_then(|store| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(store.catalog()).ok()
        });
    let Some(catalog) = catalog else {
        return Backups::default();
    };
    let backups = catalog
        .backups
        .iter()
        .map(|backup| {
            let help = format!(
                "{}, {}, {} LRS",
                backup.status.as_str(),
                crate::printer::time(backup.created_at),
                backup.lrs_count
            );
            (backup.name.clone(), help)
        })
        .collect();
    std::sync::Arc::new(backups)
}

/// The name the scripts complete: the plugin called directly.
const BIN: &str = "kubectl-mlbackup";

/// The `completion` script for `shell`, completing `kubectl-mlbackup` called directly.
pub fn script(shell: CompletionShell) -> String {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = Cli::command().bin_name(BIN);
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, BIN, &mut out);
    let script = String::from_utf8_lossy(&out).into_owned();
    // clap_complete 4.6's bash script names the states of subcommands once with the `-` of the
    // bin name as `__` (where it sets them) and once as `__subcmd__` (where it reads them), so
    // no subcommand's flags would complete: make the readers agree with the setters.
    match shell {
        clap_complete::Shell::Bash => {
            script.replace("kubectl__subcmd__mlbackup", "kubectl__mlbackup")
        }
        _ => script,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(words: &[&str], env: &Env, cwd: &Path) -> (Vec<String>, u32) {
        let words: Vec<OsString> = words.iter().map(OsString::from).collect();
        let out = cobra_completions(&words, env, cwd);
        let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
        let directive = lines.pop().expect("a directive line");
        let directive = directive
            .strip_prefix(':')
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("last line is the directive: {out}"));
        (lines, directive)
    }

    fn values(lines: &[String]) -> Vec<&str> {
        lines
            .iter()
            .map(|l| l.split('\t').next().unwrap())
            .collect()
    }

    #[test]
    fn the_backup_root_is_the_last_dir_flag_then_the_environment() {
        let cwd = Path::new("/work");
        let env = Env {
            mlbackup_dir: Some(PathBuf::from("/env")),
            ..Env::default()
        };
        let words = |w: &[&str]| w.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            backup_root_of(&words(&["show"]), &env, cwd),
            Path::new("/env")
        );
        assert_eq!(
            backup_root_of(&words(&["show", "--dir", "a", "--dir=b"]), &env, cwd),
            Path::new("/work/b")
        );
        assert_eq!(
            backup_root_of(&words(&["show", "--", "--dir", "x"]), &Env::default(), cwd),
            Path::new("/work/.")
        );
        assert_eq!(
            backup_root_of(
                &words(&["show", "--dir", "s3://team-backups/p?readonly"]),
                &env,
                cwd
            ),
            Path::new("s3://team-backups/p?readonly")
        );
    }

    #[test]
    fn an_empty_line_offers_the_subcommands_with_descriptions_and_no_files() {
        let (lines, directive) = complete(&[""], &Env::default(), Path::new("/"));
        let values = values(&lines);
        for sub in [
            "version", "backup", "list", "show", "verify", "delete", "prune",
        ] {
            assert!(values.contains(&sub), "{sub} missing in {values:?}");
        }
        assert!(!values.iter().any(|v| v.starts_with('-')), "{values:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("backup\tBack up LRS objects")),
            "{lines:?}"
        );
        assert_eq!(directive, NO_FILE_COMPLETION);
    }

    #[test]
    fn flags_and_their_values_complete() {
        let env = Env::default();
        let (lines, _) = complete(&["backup", "--a"], &env, Path::new("/"));
        assert_eq!(values(&lines), ["--all-types", "--all-namespaces"]);
        let (lines, _) = complete(&["version", "-o", ""], &env, Path::new("/"));
        assert_eq!(values(&lines), ["table", "json", "yaml"]);
        let (lines, _) = complete(&["list", "--output=j"], &env, Path::new("/"));
        assert_eq!(values(&lines), ["--output=json"]);
        // Global flags are offered in subcommands too.
        let (lines, _) = complete(&["list", "--con"], &env, Path::new("/"));
        assert_eq!(values(&lines), ["--context"]);
    }
}
