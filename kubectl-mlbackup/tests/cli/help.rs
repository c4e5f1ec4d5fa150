//! `--help` of the plugin and of every subcommand, pinned by snapshots so a change of the user
//! interface is a reviewed change.

use crate::support::Sandbox;

fn help_of(args: &[&str]) -> String {
    let sandbox = Sandbox::new();
    let mut full = args.to_vec();
    full.push("--help");
    let run = sandbox.run(&full);
    run.expect_code(0);
    assert!(run.stderr.is_empty(), "help goes to stdout: {}", run.stderr);
    run.stdout
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!(help_of(&[]));
}

#[test]
fn backup_help() {
    insta::assert_snapshot!(help_of(&["backup"]));
}

#[test]
fn version_help() {
    insta::assert_snapshot!(help_of(&["version"]));
}

#[test]
fn list_help() {
    insta::assert_snapshot!(help_of(&["list"]));
}

#[test]
fn show_help() {
    insta::assert_snapshot!(help_of(&["show"]));
}

#[test]
fn verify_help() {
    insta::assert_snapshot!(help_of(&["verify"]));
}

#[test]
fn api_surface_help() {
    insta::assert_snapshot!(help_of(&["api-surface"]));
}

#[test]
fn rekey_help() {
    insta::assert_snapshot!(help_of(&["rekey"]));
}

#[test]
fn delete_help() {
    insta::assert_snapshot!(help_of(&["delete"]));
}

#[test]
fn copy_help() {
    insta::assert_snapshot!(help_of(&["copy"]));
}

#[test]
fn prune_help() {
    insta::assert_snapshot!(help_of(&["prune"]));
}

#[test]
fn restore_help() {
    insta::assert_snapshot!(help_of(&["restore"]));
}

#[test]
fn diff_help() {
    insta::assert_snapshot!(help_of(&["diff"]));
}

#[test]
fn spark_cleanup_help() {
    insta::assert_snapshot!(help_of(&["spark-cleanup"]));
}

#[test]
fn a_usage_error_exits_2_and_says_what_is_wrong() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["version", "--no-such-flag"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: unexpected argument '--no-such-flag' found

    Usage: kubectl mlbackup version [OPTIONS]

    For more information, try '--help'.
    "#);
    let run = sandbox.run(&["nonsense"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: unrecognized subcommand 'nonsense'

    Usage: kubectl mlbackup [OPTIONS] <COMMAND>

    For more information, try '--help'.
    "#);
    let run = sandbox.run(&["version", "-o", "xml"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: invalid value 'xml' for '--output <OUTPUT>'
      [possible values: table, json, yaml]

      tip: a similar value exists: 'yaml'

    For more information, try '--help'.
    "#);
}

#[test]
fn completion_help() {
    insta::assert_snapshot!(help_of(&["completion"]));
}

#[test]
fn deployments_help() {
    insta::assert_snapshot!(help_of(&["deployments"]));
}

#[test]
fn deployments_list_help() {
    insta::assert_snapshot!(help_of(&["deployments", "list"]));
}

#[test]
fn deployments_deactivate_help() {
    insta::assert_snapshot!(help_of(&["deployments", "deactivate"]));
}

#[test]
fn deployments_reactivate_help() {
    insta::assert_snapshot!(help_of(&["deployments", "reactivate"]));
}

#[test]
fn app_help() {
    insta::assert_snapshot!(help_of(&["app"]));
}

#[test]
fn app_stop_help() {
    insta::assert_snapshot!(help_of(&["app", "stop"]));
}

#[test]
fn app_start_help() {
    insta::assert_snapshot!(help_of(&["app", "start"]));
}

#[test]
fn prepare_help() {
    insta::assert_snapshot!(help_of(&["prepare"]));
}

#[test]
fn recover_help() {
    insta::assert_snapshot!(help_of(&["recover"]));
}

#[test]
fn schedule_help() {
    insta::assert_snapshot!(help_of(&["schedule", "--help"]));
}

#[test]
fn schedule_install_help() {
    insta::assert_snapshot!(help_of(&["schedule", "install", "--help"]));
}

#[test]
fn schedule_run_now_help() {
    insta::assert_snapshot!(help_of(&["schedule", "run-now", "--help"]));
}

#[test]
fn schedule_status_help() {
    insta::assert_snapshot!(help_of(&["schedule", "status", "--help"]));
}

#[test]
fn schedule_uninstall_help() {
    insta::assert_snapshot!(help_of(&["schedule", "uninstall", "--help"]));
}
