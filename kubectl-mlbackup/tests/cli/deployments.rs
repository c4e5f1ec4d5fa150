//! `deployments list|deactivate|reactivate --via local` against the fake DataRobot API: the
//! snapshot before the first change, exact reactivation, re-runs, failures and their messages,
//! the output formats, and the token kept out of every output.

use std::time::Duration;

use mlbackup_testkit::datarobot::{DeploymentStatus, FakeDataRobotOptions, object_id};
use mlbackup_testkit::faults::{Fault, FaultRule};

use crate::support::{FakeApi, Run, Sandbox};

fn fast() -> FakeDataRobotOptions {
    FakeDataRobotOptions {
        status_change_duration: Duration::from_millis(40),
        ..FakeDataRobotOptions::default()
    }
}

/// A sealed sandbox pointed at a fake API with `active` + `inactive` deployments, admin token.
fn with_api(active: usize, inactive: usize) -> (Sandbox, FakeApi) {
    let sandbox = Sandbox::new();
    let api = FakeApi::start(&sandbox, active, inactive, fast());
    let token = api.datarobot.admin_token().to_string();
    (api.configure(sandbox, &token), api)
}

fn status_of(api: &FakeApi, n: u64) -> DeploymentStatus {
    api.datarobot.deployment(&object_id(n)).unwrap().status
}

#[test]
fn list_shows_every_deployment_as_a_table_or_json() {
    let (sandbox, _api) = with_api(3, 2);
    let run = sandbox.run(&["deployments", "list", "--via", "local"]);
    run.expect_code(0);
    insta::assert_snapshot!(run.stdout, @r"
    ID                         LABEL        STATUS
    65f0c0de0000000000000000   model-0000   active
    65f0c0de0000000000000001   model-0001   active
    65f0c0de0000000000000002   model-0002   active
    65f0c0de0000000000000003   model-0003   inactive
    65f0c0de0000000000000004   model-0004   inactive
    ");
    let json = sandbox
        .run(&["deployments", "list", "--via", "local", "-o", "json"])
        .expect_code(0)
        .json();
    assert_eq!(json["deployments"].as_array().unwrap().len(), 5);
    assert_eq!(json["deployments"][3]["status"], "inactive");
    assert!(json["apiUrl"].as_str().unwrap().ends_with("/api/v2/"));
}

#[test]
fn the_list_follows_pagination() {
    let (sandbox, api) = with_api(230, 20);
    let json = sandbox
        .run(&["deployments", "list", "--via", "local", "-o", "json"])
        .expect_code(0)
        .json();
    assert_eq!(json["deployments"].as_array().unwrap().len(), 250);
    assert_eq!(
        api.datarobot
            .requests()
            .count(|r| r.path == "/api/v2/deployments/"),
        3
    );
}

#[test]
fn deactivate_records_first_touches_only_active_and_reactivate_is_exact() {
    let (sandbox, api) = with_api(4, 2);
    std::fs::create_dir_all(sandbox.path("backups/lrs_backup_2026_11_21_14_05")).unwrap();
    std::fs::write(
        sandbox.path("backups/lrs_backup_2026_11_21_14_05/cm-a.yaml"),
        "apiVersion: lrs.datarobot.com/v1\nkind: LongRunningService\nmetadata:\n  name: cm-a\n",
    )
    .unwrap();
    let backup = [
        "--backup",
        "lrs_backup_2026_11_21_14_05",
        "--dir",
        "backups",
    ];
    let mut args = vec!["deployments", "deactivate", "--yes", "--via", "local"];
    args.extend(backup);
    let run = sandbox.run(&args);
    run.expect_code(0);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 0
    ----- stdout -----
    ID                         LABEL        BEFORE   AFTER      OUTCOME   MESSAGE
    65f0c0de0000000000000000   model-0000   active   inactive   changed
    65f0c0de0000000000000001   model-0001   active   inactive   changed
    65f0c0de0000000000000002   model-0002   active   inactive   changed
    65f0c0de0000000000000003   model-0003   active   inactive   changed
    Deactivated: 4 changed; 2 others left alone; [DURATION].
    Deployment states recorded in backups/lrs_backup_2026_11_21_14_05/deployments.json

    ----- stderr -----
    "#);
    let history = api.datarobot.status_history();
    assert_eq!(history.len(), 4);
    assert!(history.iter().all(|c| c.from == DeploymentStatus::Active));
    let snapshot: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sandbox.path("backups/lrs_backup_2026_11_21_14_05/deployments.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(snapshot["deployments"].as_array().unwrap().len(), 6);
    let taken: chrono::DateTime<chrono::Utc> =
        snapshot["takenAt"].as_str().unwrap().parse().unwrap();
    assert!(
        taken <= history[0].requested_at,
        "snapshot before the first change"
    );
    // `show` sees the snapshot in the backup.
    let show = sandbox
        .run(&[
            "show",
            "lrs_backup_2026_11_21_14_05",
            "--dir",
            "backups",
            "-o",
            "json",
        ])
        .expect_code(0)
        .json();
    assert_eq!(show["deploymentsSnapshot"], true);

    // Someone activates an inactive-before deployment in between: it is now active, so a
    // second deactivation deactivates it and records it as active-before.
    sandbox.run(&args).expect_code(0);
    assert_eq!(
        api.datarobot.status_history().len(),
        4,
        "a re-run changes nothing"
    );

    let mut args = vec!["deployments", "reactivate", "--via", "local", "-o", "json"];
    args.extend(backup);
    let json = sandbox.run(&args).expect_code(0).json();
    assert_eq!(json["summary"]["changed"], 4);
    for n in 0..4 {
        assert_eq!(status_of(&api, n), DeploymentStatus::Active);
    }
    for n in 4..6 {
        assert_eq!(
            status_of(&api, n),
            DeploymentStatus::Inactive,
            "inactive before"
        );
    }
    let again = sandbox.run(&args).expect_code(0).json();
    assert!(again["deployments"].as_array().unwrap().is_empty());
    assert_eq!(
        api.datarobot.status_history().len(),
        8,
        "a re-run changes nothing"
    );
}

#[test]
fn only_and_dry_run() {
    let (sandbox, api) = with_api(3, 1);
    let only = object_id(1);
    let inactive = object_id(3);
    let run = sandbox.run(&[
        "deployments",
        "deactivate",
        "--via",
        "local",
        "--state",
        "s.json",
        "--dry-run",
        "--only",
        &only,
    ]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 0
    ----- stdout -----
    ID                         LABEL        BEFORE   AFTER      OUTCOME        MESSAGE
    65f0c0de0000000000000001   model-0001   active   inactive   would change
    Dry run: 1 deployments would be deactivated (1 would change); 3 others left alone. Nothing was changed or written.
    Deployment states would be recorded in s.json

    ----- stderr -----
    "#);
    assert!(!sandbox.path("s.json").exists(), "a dry run writes nothing");
    assert!(api.datarobot.status_history().is_empty());

    let json = sandbox
        .run(&[
            "deployments",
            "deactivate",
            "--via",
            "local",
            "--state",
            "s.json",
            "--only",
            &only,
            "--only",
            &inactive,
            "-o",
            "json",
        ])
        .expect_code(0)
        .json();
    assert_eq!(json["summary"]["changed"], 1);
    assert_eq!(json["summary"]["unchanged"], 1);
    assert_eq!(status_of(&api, 0), DeploymentStatus::Active);
    assert_eq!(status_of(&api, 1), DeploymentStatus::Inactive);

    let run = sandbox.run(&[
        "deployments",
        "deactivate",
        "--via",
        "local",
        "--state",
        "s.json",
        "--only",
        "65f0c0deffffffffffffffff",
    ]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot plan the deactivate
      caused by: not among the deployments visible to the token's user: 65f0c0deffffffffffffffff
    hint: list the deployments with `kubectl mlbackup deployments list`; a deployment the token's user cannot see cannot be changed with it
    "#);
}

#[test]
fn a_failed_job_is_reported_exit_1_and_a_rerun_finishes() {
    let (sandbox, api) = with_api(3, 0);
    api.datarobot.fail_status_changes_of(&object_id(1));
    let run = sandbox.run(&[
        "deployments",
        "deactivate",
        "--yes",
        "--via",
        "local",
        "--state",
        "s.json",
    ]);
    run.expect_code(1);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----
    ID                         LABEL        BEFORE   AFTER      OUTCOME   MESSAGE
    65f0c0de0000000000000000   model-0000   active   inactive   changed
    65f0c0de0000000000000001   model-0001   active   -          failed    the status job failed: Failed to change the status of deployment 65f0c0de0000000000000001 to inactive.
    65f0c0de0000000000000002   model-0002   active   inactive   changed
    Deactivated: 2 changed, 1 failed; 0 others left alone; [DURATION].
    Deployment states recorded in s.json
    1 deployments were not deactivated (see MESSAGE). A re-run is safe: it changes only what is left to change.

    ----- stderr -----
    error: 1 of 3 deployments were not deactivated; a re-run is safe
    "#);
    let json = sandbox
        .run(&[
            "deployments",
            "deactivate",
            "--yes",
            "--via",
            "local",
            "--state",
            "s.json",
            "-o",
            "json",
        ])
        .expect_code(0)
        .json();
    assert_eq!(json["deployments"].as_array().unwrap().len(), 1);
    assert_eq!(json["deployments"][0]["id"], object_id(1));
    // The snapshot still says all three were active before.
    let json = sandbox
        .run(&[
            "deployments",
            "reactivate",
            "--via",
            "local",
            "--state",
            "s.json",
            "-o",
            "json",
        ])
        .expect_code(0)
        .json();
    assert_eq!(json["summary"]["changed"], 3);
}

#[test]
fn a_token_without_the_admin_role_is_told_so_and_the_snapshot_is_kept() {
    let sandbox = Sandbox::new();
    let api = FakeApi::start(&sandbox, 2, 1, fast());
    let user = api.datarobot.user_token().to_string();
    let sandbox = api.configure(sandbox, &user);
    let run = sandbox.run(&[
        "deployments",
        "deactivate",
        "--yes",
        "--via",
        "local",
        "--state",
        "s.json",
    ]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----
    ID                         LABEL        BEFORE   AFTER   OUTCOME   MESSAGE
    65f0c0de0000000000000000   model-0000   active   -       failed    the token's user lacks the MLOps admin role or access to deployment 65f0c0de0000000000000000 (403 Forbidden): You do not have permission to change the status of this deployment: the MLOps admin role or the deployment's OWNER role is required.
    65f0c0de0000000000000001   model-0001   active   -       failed    the token's user lacks the MLOps admin role or access to deployment 65f0c0de0000000000000001 (403 Forbidden): You do not have permission to change the status of this deployment: the MLOps admin role or the deployment's OWNER role is required.
    Deactivated: 2 failed; 1 others left alone; [DURATION].
    Deployment states recorded in s.json
    2 deployments were not deactivated (see MESSAGE). A re-run is safe: it changes only what is left to change.

    ----- stderr -----
    error: 2 of 2 deployments were not deactivated; a re-run is safe
    hint: use the API key of a user with the MLOps admin role (or the owner of the deployment); a re-run with that key is safe
    "#);
    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sandbox.path("s.json")).unwrap()).unwrap();
    assert_eq!(snapshot["deployments"].as_array().unwrap().len(), 3);
    assert!(api.datarobot.status_history().is_empty());
}

#[test]
fn a_refused_token_gets_its_own_message_and_no_token_ever_shows() {
    let sandbox = Sandbox::new();
    let api = FakeApi::start(&sandbox, 5, 1, fast());
    let wrong = "Wr0ngTokenValue-abcdefghijklmnop";
    let refused = api.configure(Sandbox::new(), wrong);
    // The CA file lives in the first sandbox's HOME; the second points at it.
    let run = refused.run(&["deployments", "list", "--via", "local", "-v", "9"]);
    mlbackup_testkit::assert_run_snapshot!("refused", run.shown(&refused));
    assert_no_token(&run, wrong);

    // The right token at the highest verbosity, through retries and failures.
    let token = api.datarobot.admin_token().to_string();
    let sandbox = api.configure(sandbox, &token);
    api.datarobot.faults().add(
        FaultRule::new(
            "/status/",
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
            Some(3),
        )
        .with_method(http::Method::PATCH),
    );
    api.datarobot
        .faults()
        .add(FaultRule::new("/status/", Fault::DropConnection, Some(2)).after(3));
    api.datarobot.fail_status_changes_of(&object_id(2));
    let run = sandbox.run(&[
        "deployments",
        "deactivate",
        "--yes",
        "--via",
        "local",
        "--state",
        "s.json",
        "-v",
        "9",
    ]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("debug: PATCH"),
        "requests are logged: {}",
        run.stderr
    );
    assert_no_token(&run, &token);
    let json = sandbox.run(&[
        "deployments",
        "reactivate",
        "--via",
        "local",
        "--state",
        "s.json",
        "-o",
        "json",
        "-v",
        "9",
    ]);
    assert_no_token(&json, &token);
    let snapshot = std::fs::read_to_string(sandbox.path("s.json")).unwrap();
    assert!(!snapshot.contains(&token));
}

fn assert_no_token(run: &Run, token: &str) {
    assert!(
        !run.stdout.contains(token),
        "token on stdout:\n{}",
        run.stdout
    );
    assert!(
        !run.stderr.contains(token),
        "token on stderr:\n{}",
        run.stderr
    );
}

#[test]
fn usage_errors_exit_2_with_a_hint() {
    let (sandbox, _api) = with_api(1, 1);
    let run = sandbox.run(&["deployments", "list", "--via", "local", "--token", "s3cr3t"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: the token is never taken from the command line: every user of this machine can read a process's arguments (ps, /proc, shell history)
    hint: export LRS_DATAROBOT_API_TOKEN=<API key> (or DATAROBOT_API_TOKEN), or write it to a file only you can read and pass --token-file PATH
    "#);
    assert!(!run.stderr.contains("s3cr3t"));
    sandbox
        .run(&[
            "deployments",
            "list",
            "--via",
            "local",
            "--api-token=s3cr3t",
        ])
        .expect_code(2);

    let run = sandbox.run(&["deployments", "deactivate"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: deactivate needs to know where the deployment snapshot is
    hint: pass --backup NAME (the backup taken before the upgrade) or --state FILE: reactivate reads it to bring back exactly the deployments that were active
    "#);

    let run = sandbox.run(&["deployments", "reactivate", "--via", "local", "--all"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: refusing to reactivate all 1 inactive deployments without confirmation: stdin is not a terminal
    hint: pass --yes, or reactivate exactly the recorded ones with --backup or --state
    "#);

    let sandbox = Sandbox::new();
    let run = sandbox.run(&["deployments", "list"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: no DataRobot API URL
    hint: pass --api-url https://datarobot.example.com or set LRS_DATAROBOT_URL (or DATAROBOT_ENDPOINT)
    "#);
}

#[test]
fn reactivate_all_with_yes_reactivates_every_inactive_one() {
    let (sandbox, api) = with_api(1, 3);
    let json = sandbox
        .run(&[
            "deployments",
            "reactivate",
            "--via",
            "local",
            "--all",
            "--yes",
            "-o",
            "json",
        ])
        .expect_code(0)
        .json();
    assert_eq!(json["summary"]["changed"], 3);
    assert!(
        api.statuses()
            .iter()
            .all(|(_, s)| *s == DeploymentStatus::Active)
    );
}

#[test]
fn deactivating_more_than_the_only_ids_asks_first() {
    let (sandbox, api) = with_api(3, 1);
    let deactivate = [
        "deployments",
        "deactivate",
        "--via",
        "local",
        "--state",
        "s.json",
    ];
    // No terminal, no --yes: refused before anything is recorded or changed.
    let run = sandbox.run(&deactivate);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: refusing to deactivate 3 active deployments without confirmation: stdin is not a terminal
    hint: pass --yes, or name the deployments to deactivate with --only ID
    "#);
    assert!(!sandbox.path("s.json").exists());
    assert!(api.datarobot.status_history().is_empty());
    // Dry runs and exactly the --only ids need no answer.
    let mut dry_run = deactivate.to_vec();
    dry_run.push("--dry-run");
    sandbox.run(&dry_run).expect_code(0);
    let first = object_id(0);
    let mut only = deactivate.to_vec();
    only.extend(["--only", first.as_str()]);
    sandbox.run(&only).expect_code(0);
    assert_eq!(api.datarobot.status_history().len(), 1);
    let recorded = std::fs::read(sandbox.path("s.json")).unwrap();

    let Some(run) = sandbox.run_on_terminal(&deactivate, "n\n") else {
        return;
    };
    mlbackup_testkit::assert_run_snapshot!("not_confirmed", run.shown(&sandbox));
    assert_eq!(api.datarobot.status_history().len(), 1);
    assert_eq!(std::fs::read(sandbox.path("s.json")).unwrap(), recorded);
    sandbox
        .run_on_terminal(&deactivate, "y\n")
        .unwrap()
        .expect_code(0);
    assert!(
        api.statuses()
            .iter()
            .all(|(_, s)| *s == DeploymentStatus::Inactive)
    );
}

#[test]
fn sigint_finishes_in_flight_reports_the_rest_and_exits_130() {
    let sandbox = Sandbox::new();
    let api = FakeApi::start(
        &sandbox,
        40,
        0,
        FakeDataRobotOptions {
            status_change_duration: Duration::from_millis(300),
            ..FakeDataRobotOptions::default()
        },
    );
    let token = api.datarobot.admin_token().to_string();
    let sandbox = api.configure(sandbox, &token);
    let child = sandbox.spawn(&[
        "deployments",
        "deactivate",
        "--yes",
        "--via",
        "local",
        "--state",
        "s.json",
        "--concurrency",
        "2",
        "-o",
        "json",
    ]);
    // Interrupt once changes are under way (not by the clock: a loaded machine starts slowly).
    mlbackup_testkit::wait::wait_until(
        "the changes are under way",
        Duration::from_secs(30),
        || api.datarobot.status_history().len() >= 3,
    );
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let run = Run::from(child.wait_with_output().unwrap());
    run.expect_code(130);
    let json = run.json();
    assert_eq!(json["stopped"], "interrupted");
    let items = json["deployments"].as_array().unwrap();
    assert_eq!(items.len(), 40);
    let not_attempted = items
        .iter()
        .filter(|i| i["outcome"] == "notAttempted")
        .count();
    assert!(not_attempted > 0, "{json}");
    assert_eq!(
        api.datarobot.status_history().len(),
        40 - not_attempted,
        "what was not attempted was not requested"
    );
}
