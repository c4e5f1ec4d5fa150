//! Shell completion: the Cobra-style protocol of `kubectl-mlbackup __complete` and of the
//! `kubectl_complete-mlbackup` program that kubectl runs for `kubectl mlbackup <TAB>`, and the
//! `completion bash|zsh|fish` scripts (the bash one run in a real bash).

use std::process::Command;

use crate::catalog::{NAMED, NEWEST, SHELL_LOOP, STALE_PARTIAL, catalog_fixture};
use crate::support::{Run, Sandbox};

/// The candidates' values and the directive of a `__complete` answer.
fn parse(run: &Run) -> (Vec<String>, u32) {
    run.expect_code(0);
    assert!(
        run.stderr.is_empty(),
        "completion is silent: {}",
        run.stderr
    );
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    let directive = lines
        .pop()
        .and_then(|l| l.strip_prefix(':'))
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no directive line: {}", run.stdout));
    let values = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    (values, directive)
}

fn complete(sandbox: &Sandbox, words: &[&str]) -> (Vec<String>, u32) {
    let mut args = vec!["__complete"];
    args.extend_from_slice(words);
    parse(&sandbox.run(&args))
}

#[test]
fn subcommands_complete_with_descriptions() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["__complete", ""]);
    let (values, directive) = parse(&run);
    for sub in [
        "version",
        "backup",
        "list",
        "show",
        "verify",
        "delete",
        "prune",
        "completion",
    ] {
        assert!(values.iter().any(|v| v == sub), "{sub} in {values:?}");
    }
    assert!(!values.contains(&"__complete".to_string()));
    assert_eq!(directive, 4, "no file completion");
    assert!(
        run.stdout
            .contains("verify\tCheck that a backup's files are intact and restorable\n"),
        "{}",
        run.stdout
    );
    assert_eq!(complete(&sandbox, &["pr"]).0, ["prune", "prepare"]);
    // Nothing in `__complete` is parsed as the plugin's own flags.
    assert_eq!(
        complete(&sandbox, &["-o", "json", "ver"]).0,
        ["version", "verify"]
    );
}

#[test]
fn flags_and_values_complete() {
    let sandbox = Sandbox::new();
    let (values, _) = complete(&sandbox, &["prune", "--"]);
    for flag in [
        "--keep-last",
        "--keep-daily",
        "--keep-weekly",
        "--keep-monthly",
        "--keep-within",
        "--time-zone",
        "--yes",
        "--dir",
        "--context",
        "--output",
    ] {
        assert!(values.iter().any(|v| v == flag), "{flag} in {values:?}");
    }
    assert_eq!(complete(&sandbox, &["backup", "-o", "y"]).0, ["yaml"]);
    assert_eq!(
        complete(&sandbox, &["completion", ""]).0,
        ["bash", "zsh", "fish"]
    );
    // --dir completes directories; the directive keeps the cursor inside the directory.
    std::fs::create_dir_all(sandbox.path("backups-prod")).unwrap();
    std::fs::write(sandbox.path("backups.txt"), "").unwrap();
    let (values, directive) = complete(&sandbox, &["list", "--dir", "back"]);
    assert_eq!(values, ["backups-prod/"]);
    assert_eq!(directive, 4 | 2);
}

#[test]
fn backup_names_come_from_the_catalog_of_dir_or_mlbackup_dir() {
    let sandbox = Sandbox::new();
    let root = sandbox.path("backups");
    catalog_fixture(&root);
    let root = root.to_str().unwrap();
    let newest_first = [NEWEST, STALE_PARTIAL, SHELL_LOOP, NAMED];
    for command in ["show", "verify", "delete"] {
        let (values, directive) = complete(&sandbox, &[command, "--dir", root, ""]);
        assert_eq!(values, newest_first, "{command}");
        assert_eq!(directive, 4);
    }
    // --dir after the name being completed is not known yet; MLBACKUP_DIR is.
    let (values, _) = complete(&sandbox, &["show", "lrs_backup_2025_0"]);
    assert!(!values.iter().any(|v| v.starts_with("lrs_")), "{values:?}");
    let with_env = Sandbox::new().env("MLBACKUP_DIR", root);
    let run = with_env.run(&["__complete", "show", "lrs_backup_2025_0"]);
    assert_eq!(parse(&run).0, [NEWEST, STALE_PARTIAL, SHELL_LOOP]);
    assert!(
        run.stdout.contains(&format!(
            "{NEWEST}\tcomplete, 2025-06-01 10:00:00 UTC, 3 LRS\n"
        )),
        "{}",
        run.stdout
    );
    // A missing directory offers nothing and says nothing.
    let (values, _) = complete(&sandbox, &["show", "--dir", "/no/such/dir", "x"]);
    assert!(values.is_empty(), "{values:?}");
}

#[test]
fn kubectl_complete_mlbackup_answers_for_the_plugin() {
    // Run through a symbolic link, as from a bin folder on the PATH: it still finds the plugin
    // beside its real self.
    let sandbox = Sandbox::new();
    let link = sandbox.path("kubectl_complete-mlbackup");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kubectl_complete-mlbackup"), &link).unwrap();
    let output = Command::new(&link)
        .args(["show", "--dir", sandbox.home().to_str().unwrap(), "--fi"])
        .env_clear()
        .output()
        .unwrap();
    let run = Run::from(output);
    assert_eq!(parse(&run), (vec!["--files".to_string()], 4));
}

#[test]
fn the_bash_script_completes_subcommands_and_flags_in_bash() {
    let run = Sandbox::new().run(&["completion", "bash"]);
    run.expect_code(0);
    let complete_in_bash = |words: &str| {
        let program = format!(
            "source /dev/stdin; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); \
             _kubectl__mlbackup kubectl-mlbackup \"${{COMP_WORDS[COMP_CWORD]}}\" \
             \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"; \
             complete -p kubectl-mlbackup"
        );
        let mut child = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &program])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("bash runs");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(run.stdout.as_bytes())
            .unwrap();
        let output = Run::from(child.wait_with_output().unwrap());
        output.expect_code(0);
        output.stdout
    };
    let out = complete_in_bash("kubectl-mlbackup ver");
    assert!(out.starts_with("version\nverify\n"), "{out}");
    assert!(
        out.contains("-F _kubectl__mlbackup kubectl-mlbackup"),
        "registered for kubectl-mlbackup only: {out}"
    );
    let out = complete_in_bash("kubectl-mlbackup prune --ke");
    assert!(out.starts_with("--keep-last\n"), "{out}");
}

#[test]
fn zsh_and_fish_scripts_are_for_kubectl_mlbackup() {
    let zsh = Sandbox::new().run(&["completion", "zsh"]);
    zsh.expect_code(0);
    assert!(
        zsh.stdout.starts_with("#compdef kubectl-mlbackup\n"),
        "{}",
        zsh.stdout
    );
    assert!(zsh.stdout.contains("'--keep-within=["), "{}", zsh.stdout);
    let fish = Sandbox::new().run(&["completion", "fish"]);
    fish.expect_code(0);
    assert!(
        fish.stdout
            .contains("complete -c kubectl-mlbackup -n \"__fish_kubectl_mlbackup_using_subcommand prune\" -l keep-last"),
        "{}",
        fish.stdout
    );
    let unknown = Sandbox::new().run(&["completion", "tcsh"]);
    unknown.expect_code(2);
}
