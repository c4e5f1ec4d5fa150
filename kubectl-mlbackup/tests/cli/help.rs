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
fn delete_help() {
    insta::assert_snapshot!(help_of(&["delete"]));
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
    let run = Sandbox::new().run(&["version", "--no-such-flag"]);
    run.expect_code(2);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("unexpected argument '--no-such-flag'"));
    let run = Sandbox::new().run(&["nonsense"]);
    run.expect_code(2);
    let run = Sandbox::new().run(&["version", "-o", "xml"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("possible values: table, json, yaml"),
        "{}",
        run.stderr
    );
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
