//! Snapshots of what an operator reads when work did not finish: every PARTIAL, INTERRUPTED,
//! TIMED OUT and failed branch of the outcomes' `Render`, built here without a cluster.

use std::path::PathBuf;

use mlbackup_helper::plan::Action as DeploymentAction;
use mlbackup_helper::protocol::{ItemReport, Outcome, StopReason};

use super::Finished;
use super::app::{AppItem, AppOutcome, AppResult, AppSummary, SelectedBy, Selection};
use super::backup::BackupOutcome;
use super::deployments::{ChangeOutcome, ChangeSummary};
use super::restore::{RestoreItem, RestoreOutcome, RestoreResult, RestoreSummary};
use super::runbook::{self, RunResult, RunbookOutcome, Step, StepReport, StepResult};
use super::spark_cleanup::{CleanupItem, CleanupOutcome, CleanupResult, CleanupSummary};
use crate::cli::ExistingPolicy;
use crate::cluster::workloads::WorkloadKind;
use crate::exit::Exit;
use crate::folder::BackupStatus;
use crate::printer::Render;

fn partial_backup() -> BackupOutcome {
    BackupOutcome {
        name: "lrs_backup_2026_11_21_05_19".into(),
        path: PathBuf::from("/srv/backups/lrs_backup_2026_11_21_05_19.partial"),
        status: BackupStatus::Partial,
        resource: "lrs.datarobot.com".into(),
        selector: "datarobot-lrs-type".into(),
        namespaces: Vec::new(),
        objects: 500,
        bytes: 1_234_567,
        counts_by_type: [("deployment".to_string(), 480), ("spark_app".into(), 20)].into(),
        counts_by_namespace: [("dr-app".to_string(), 500)].into(),
        duration_seconds: 3.25,
        errors: vec!["cannot list LRS (page 2): the server stopped answering".into()],
        encrypted_to: Vec::new(),
    }
}

#[test]
fn a_partial_backup_says_it_is_not_a_backup() {
    insta::assert_snapshot!(partial_backup().render(), @r#"
    PARTIAL backup: 500 LRS objects written to /srv/backups/lrs_backup_2026_11_21_05_19.partial before it stopped; it is not a complete backup
      by type:      deployment 480, spark_app 20
      by namespace: dr-app 500
      error: cannot list LRS (page 2): the server stopped answering
    "#);
}

fn restore_item(name: &str, result: RestoreResult, message: Option<&str>) -> RestoreItem {
    RestoreItem {
        namespace: "dr-app".into(),
        name: name.into(),
        source_namespace: "dr-app".into(),
        r#type: "deployment".into(),
        path: format!("dr-app/{name}.yaml"),
        result,
        message: message.map(str::to_string),
    }
}

#[test]
fn an_interrupted_restore_says_so_before_its_counts() {
    let outcome = interrupted_restore();
    insta::assert_snapshot!(outcome.render(), @r#"
    NAMESPACE   NAME      TYPE         RESULT    MESSAGE
    dr-app      model-a   deployment   created
    dr-app      model-b   deployment   failed    interrupted before it was sent

    INTERRUPTED restoring 2 LRS objects of before-upgrade into prod: 1 created, 0 updated, 0 unchanged, 0 skipped (differ from the backup), 1 failed.
    Recorded in /srv/backups/before-upgrade/journal.jsonl
    "#);
}

fn spark(name: &str, result: CleanupResult, finalizers: &[&str]) -> CleanupItem {
    CleanupItem {
        namespace: "dr-app".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        result,
        finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
        message: None,
    }
}

fn cleanup(items: Vec<CleanupItem>, summary: CleanupSummary) -> CleanupOutcome {
    CleanupOutcome {
        selector: "datarobot-lrs-type=spark_app".into(),
        namespace: Some("dr-app".into()),
        dry_run: false,
        waited: true,
        timeout_seconds: 300.0,
        summary,
        items,
    }
}

#[test]
fn a_spark_cleanup_that_timed_out_names_what_holds_each_session() {
    let outcome = cleanup(
        vec![
            spark("spark-1", CleanupResult::Deleted, &[]),
            spark(
                "spark-2",
                CleanupResult::TimedOut,
                &["spark.datarobot.com/driver-cleanup"],
            ),
        ],
        CleanupSummary {
            found: 2,
            deleted: 1,
            timed_out: 1,
            ..CleanupSummary::default()
        },
    );
    insta::assert_snapshot!(outcome.render(), @r#"
    NAMESPACE   NAME      RESULT      DETAIL
    dr-app      spark-1   deleted
    dr-app      spark-2   timed-out   held by finalizers spark.datarobot.com/driver-cleanup

    2 Spark sessions in namespace dr-app: 1 deleted, 0 still deleting, 1 not gone after 5m, 0 failed.
    "#);
}

#[test]
fn an_interrupted_spark_cleanup_shows_what_was_left() {
    let mut left = spark("spark-2", CleanupResult::Interrupted, &[]);
    left.message = Some("interrupted before its deletion was requested".into());
    let outcome = cleanup(
        vec![spark("spark-1", CleanupResult::Deleted, &[]), left],
        CleanupSummary {
            found: 2,
            deleted: 1,
            interrupted: 1,
            ..CleanupSummary::default()
        },
    );
    insta::assert_snapshot!(outcome.render(), @r#"
    NAMESPACE   NAME      RESULT        DETAIL
    dr-app      spark-1   deleted
    dr-app      spark-2   interrupted   interrupted before its deletion was requested

    INTERRUPTED: 2 Spark sessions in namespace dr-app: 1 deleted, 0 still deleting, 0 not gone after 5m, 0 failed, 1 not deleted (interrupted).
    "#);
}

fn workload(name: &str, result: AppResult, after: i64, message: Option<&str>) -> AppItem {
    AppItem {
        kind: Some(WorkloadKind::Deployment),
        name: name.into(),
        selected_by: SelectedBy::Label,
        replicas_before: Some(2),
        replicas_after: Some(after),
        recorded: Some(2),
        result,
        message: message.map(str::to_string),
    }
}

fn app_timed_out() -> AppOutcome {
    AppOutcome {
        action: super::app::Action::Stop,
        namespace: "dr-app".into(),
        selection: Selection {
            selectors: vec!["release=dr".into()],
            extras: Vec::new(),
        },
        annotation: "mlbackup.datarobot.com/replicas",
        dry_run: false,
        waited: true,
        timeout_seconds: Some(600.0),
        summary: AppSummary {
            workloads: 2,
            changed: 1,
            timed_out: 1,
            ..AppSummary::default()
        },
        workloads: vec![
            workload("mmapp-app", AppResult::Stopped, 0, None),
            workload(
                "mmapp-worker",
                AppResult::TimedOut,
                0,
                Some("1 pod still running"),
            ),
        ],
    }
}

#[test]
fn an_app_stop_that_timed_out_names_the_workloads_not_finished() {
    insta::assert_snapshot!(app_timed_out().render(), @r#"
    KIND         NAME           BEFORE   AFTER   RECORDED   RESULT      DETAIL
    deployment   mmapp-app      2        0       2          stopped
    deployment   mmapp-worker   2        0       2          timed-out   1 pod still running

    2 workloads in dr-app: 1 scaled to 0, 0 already at 0, 0 failed, 1 not finished.
    Not finished after 10m: deployment/mmapp-worker.
    Replica counts are recorded in the annotation mlbackup.datarobot.com/replicas; bring the app back with `kubectl mlbackup app start`.
    "#);
}

fn deployment(n: u64, outcome: Outcome, message: Option<&str>) -> ItemReport {
    ItemReport {
        id: format!("65f0000000000000000000{n:02}"),
        label: format!("model-{n:04}"),
        before: Some("active".into()),
        after: (outcome == Outcome::Changed).then(|| "inactive".into()),
        outcome,
        message: message.map(str::to_string),
        error_kind: None,
    }
}

fn change(stopped: Option<StopReason>, deployments: Vec<ItemReport>) -> ChangeOutcome {
    ChangeOutcome {
        action: DeploymentAction::Deactivate,
        api_url: "https://dr.example.com/api/v2/".into(),
        snapshot: Some(PathBuf::from(
            "/srv/backups/before-upgrade/deployments.json",
        )),
        dry_run: false,
        wait: true,
        summary: ChangeSummary::of(&deployments),
        deployments,
        left_alone: 2,
        stopped,
        seconds: 12.5,
        max_in_flight: 4,
    }
}

fn stopped_deployments(message: &str) -> Vec<ItemReport> {
    vec![
        deployment(1, Outcome::Changed, None),
        deployment(
            2,
            Outcome::Requested,
            Some("accepted by the API; stopped before it was confirmed"),
        ),
        deployment(3, Outcome::NotAttempted, Some(message)),
    ]
}

#[test]
fn interrupted_deployments_say_a_rerun_is_safe() {
    let outcome = change(
        Some(StopReason::Interrupted),
        stopped_deployments("interrupted before it was tried"),
    );
    insta::assert_snapshot!(outcome.render(), @r#"
    ID                         LABEL        BEFORE   AFTER      OUTCOME         MESSAGE
    65f000000000000000000001   model-0001   active   inactive   changed
    65f000000000000000000002   model-0002   active   -          requested       accepted by the API; stopped before it was confirmed
    65f000000000000000000003   model-0003   active   -          not attempted   interrupted before it was tried
    Deactivated: 1 changed, 1 requested, 1 not attempted; 2 others left alone; 12.5s.
    Deployment states recorded in /srv/backups/before-upgrade/deployments.json
    INTERRUPTED: the requests in flight were finished, the rest not attempted. A re-run is safe.
    "#);
}

#[test]
fn timed_out_deployments_say_to_raise_the_timeout() {
    let outcome = change(
        Some(StopReason::TimedOut),
        stopped_deployments("timed out before it was tried"),
    );
    insta::assert_snapshot!(outcome.render(), @r#"
    ID                         LABEL        BEFORE   AFTER      OUTCOME         MESSAGE
    65f000000000000000000001   model-0001   active   inactive   changed
    65f000000000000000000002   model-0002   active   -          requested       accepted by the API; stopped before it was confirmed
    65f000000000000000000003   model-0003   active   -          not attempted   timed out before it was tried
    Deactivated: 1 changed, 1 requested, 1 not attempted; 2 others left alone; 12.5s.
    Deployment states recorded in /srv/backups/before-upgrade/deployments.json
    TIMED OUT: the rest was not attempted (raise --timeout). A re-run is safe.
    "#);
}

#[test]
fn failed_deployments_are_counted_and_named() {
    let outcome = change(
        None,
        vec![
            deployment(1, Outcome::Changed, None),
            deployment(
                2,
                Outcome::Failed,
                Some("the API refused the change (422): locked"),
            ),
            deployment(
                3,
                Outcome::Unknown,
                Some("under way when the connection to the helper broke"),
            ),
        ],
    );
    insta::assert_snapshot!(outcome.render(), @r#"
    ID                         LABEL        BEFORE   AFTER      OUTCOME   MESSAGE
    65f000000000000000000001   model-0001   active   inactive   changed
    65f000000000000000000002   model-0002   active   -          failed    the API refused the change (422): locked
    65f000000000000000000003   model-0003   active   -          unknown   under way when the connection to the helper broke
    Deactivated: 1 changed, 1 failed, 1 unknown; 2 others left alone; 12.5s.
    Deployment states recorded in /srv/backups/before-upgrade/deployments.json
    2 deployments were not deactivated (see MESSAGE). A re-run is safe: it changes only what is left to change.
    "#);
}

fn prepare(steps: Vec<StepReport>, next: &str) -> RunbookOutcome {
    let mut outcome = RunbookOutcome {
        runbook: "prepare",
        backup: Some("before-upgrade".into()),
        path: Some(PathBuf::from("/srv/backups/before-upgrade")),
        dry_run: false,
        result: RunResult::Succeeded,
        steps,
        journal: Some(PathBuf::from("/srv/backups/before-upgrade/journal.jsonl")),
        next: Some(next.into()),
    };
    outcome.conclude();
    outcome
}

/// A step as it ran, at a fixed time.
fn timed(mut step: StepReport, seconds: f64) -> StepReport {
    step.started_at = Some(chrono::DateTime::UNIX_EPOCH);
    step.seconds = seconds;
    step
}

fn backup_done() -> StepReport {
    let mut outcome = partial_backup();
    outcome.status = BackupStatus::Complete;
    outcome.errors.clear();
    timed(
        runbook::backup_report(Finished::with(outcome, Exit::Success)),
        3.2,
    )
}

#[test]
fn a_prepare_interrupted_while_deactivating_names_what_is_left() {
    let deactivate = runbook::change_report(
        Step::DeactivateDeployments,
        Finished::with(
            change(
                Some(StopReason::Interrupted),
                stopped_deployments("interrupted before it was tried"),
            ),
            Exit::Interrupted,
        ),
        std::time::Duration::from_secs(600),
    );
    let outcome = prepare(
        vec![
            backup_done(),
            timed(deactivate, 12.5),
            StepReport::new(
                Step::SparkCleanup,
                StepResult::NotRun,
                "not started: interrupted",
            ),
        ],
        "kubectl mlbackup prepare --resume before-upgrade",
    );
    assert_eq!(outcome.result, RunResult::Interrupted);
    insta::assert_snapshot!(outcome.render(), @r#"
    #   STEP                     RESULT        TIME    SUMMARY
    1   backup                   done          3.2s    500 LRS objects (deployment 480, spark_app 20) in /srv/backups/lrs_backup_2026_11_21_05_19.partial
    2   deactivate-deployments   interrupted   12.5s   2 deactivated, 0 already so, 2 left alone; states in /srv/backups/before-upgrade/deployments.json
    3   spark-cleanup            not-run       -       not started: interrupted

    deactivate-deployments:
      - deployment 65f000000000000000000003 (model-0003): not attempted: interrupted before it was tried

    Prepare was INTERRUPTED: what was done is recorded; a re-run is safe.
    Journal: /srv/backups/before-upgrade/journal.jsonl
    Next, run:
      kubectl mlbackup prepare --resume before-upgrade
    "#);
}

#[test]
fn a_prepare_whose_deactivation_timed_out_failed_and_says_why() {
    let deactivate = runbook::change_report(
        Step::DeactivateDeployments,
        Finished::with(
            change(
                Some(StopReason::TimedOut),
                stopped_deployments("timed out before it was tried"),
            ),
            Exit::Failure,
        ),
        std::time::Duration::from_secs(600),
    );
    let outcome = prepare(
        vec![
            backup_done(),
            timed(deactivate, 600.0),
            StepReport::new(
                Step::SparkCleanup,
                StepResult::NotRun,
                "not started: an earlier step failed",
            ),
        ],
        "kubectl mlbackup prepare --resume before-upgrade",
    );
    assert_eq!(outcome.result, RunResult::Failed);
    insta::assert_snapshot!(outcome.render(), @r#"
    #   STEP                     RESULT    TIME     SUMMARY
    1   backup                   done      3.2s     500 LRS objects (deployment 480, spark_app 20) in /srv/backups/lrs_backup_2026_11_21_05_19.partial
    2   deactivate-deployments   failed    600.0s   2 deactivated, 0 already so, 2 left alone; states in /srv/backups/before-upgrade/deployments.json
    3   spark-cleanup            not-run   -        not started: an earlier step failed

    deactivate-deployments:
      - timed out after 10m (--timeout): the deployments below were not deactivated
      - deployment 65f000000000000000000003 (model-0003): not attempted: timed out before it was tried

    Prepare did NOT finish: see the failed steps above; a re-run is safe.
    Journal: /srv/backups/before-upgrade/journal.jsonl
    Next, run:
      kubectl mlbackup prepare --resume before-upgrade
    "#);
}

#[test]
fn a_prepare_whose_spark_cleanup_timed_out_names_the_sessions() {
    let sessions = cleanup(
        vec![spark(
            "spark-2",
            CleanupResult::TimedOut,
            &["spark.datarobot.com/driver-cleanup"],
        )],
        CleanupSummary {
            found: 1,
            timed_out: 1,
            ..CleanupSummary::default()
        },
    );
    let deactivate = runbook::change_report(
        Step::DeactivateDeployments,
        Finished::with(
            change(None, vec![deployment(1, Outcome::Changed, None)]),
            Exit::Success,
        ),
        std::time::Duration::from_secs(600),
    );
    let outcome = prepare(
        vec![
            backup_done(),
            timed(deactivate, 1.5),
            timed(
                runbook::cleanup_report(Finished::with(sessions, Exit::Failure)),
                300.0,
            ),
        ],
        "kubectl mlbackup prepare --resume before-upgrade",
    );
    assert_eq!(outcome.result, RunResult::Failed);
    insta::assert_snapshot!(outcome.render(), @r#"
    #   STEP                     RESULT   TIME     SUMMARY
    1   backup                   done     3.2s     500 LRS objects (deployment 480, spark_app 20) in /srv/backups/lrs_backup_2026_11_21_05_19.partial
    2   deactivate-deployments   done     1.5s     1 deactivated, 0 already so, 2 left alone; states in /srv/backups/before-upgrade/deployments.json
    3   spark-cleanup            failed   300.0s   1 Spark sessions: 0 deleted, 0 still deleting, 1 not gone in time, 0 failed

    spark-cleanup:
      - Spark session dr-app/spark-2: not gone after 5m (held by finalizers spark.datarobot.com/driver-cleanup)

    Prepare did NOT finish: see the failed steps above; a re-run is safe.
    Journal: /srv/backups/before-upgrade/journal.jsonl
    Next, run:
      kubectl mlbackup prepare --resume before-upgrade
    "#);
}

fn recover(steps: Vec<StepReport>) -> RunbookOutcome {
    let mut outcome = prepare(steps, "kubectl mlbackup recover before-upgrade");
    outcome.runbook = "recover";
    outcome.conclude();
    outcome
}

fn interrupted_restore() -> RestoreOutcome {
    let items = vec![
        restore_item("model-a", RestoreResult::Created, None),
        restore_item(
            "model-b",
            RestoreResult::Failed,
            Some("interrupted before it was sent"),
        ),
    ];
    RestoreOutcome {
        backup: "before-upgrade".into(),
        path: PathBuf::from("/srv/backups/before-upgrade"),
        server: "https://10.0.0.1:6443".into(),
        context: Some("prod".into()),
        resource: "lrs.datarobot.com".into(),
        dry_run: None,
        existing: ExistingPolicy::Skip,
        interrupted: true,
        summary: RestoreSummary {
            total: 2,
            created: 1,
            failed: 1,
            ..RestoreSummary::default()
        },
        namespaces_created: Vec::new(),
        invalid_files: Vec::new(),
        items,
        journal: Some(PathBuf::from("/srv/backups/before-upgrade/journal.jsonl")),
        journal_note: None,
        duration_seconds: 0.5,
    }
}

#[test]
fn a_recover_interrupted_while_restoring_says_to_run_it_again() {
    let restore = runbook::restore_report(Finished::with(interrupted_restore(), Exit::Interrupted));
    let outcome = recover(vec![
        timed(restore, 0.4),
        StepReport::new(
            Step::ReactivateDeployments,
            StepResult::NotRun,
            "not started: interrupted",
        ),
        StepReport::new(Step::Verify, StepResult::NotRun, "not started: interrupted"),
    ]);
    assert_eq!(outcome.result, RunResult::Interrupted);
    insta::assert_snapshot!(outcome.render(), @r#"
    #   STEP                     RESULT        TIME   SUMMARY
    1   restore-lrs              interrupted   0.4s   1 created, 0 updated, 0 unchanged, 0 left alone (differ from the backup), 1 failed
    2   reactivate-deployments   not-run       -      not started: interrupted
    3   verify                   not-run       -      not started: interrupted

    restore-lrs:
      - dr-app/model-b: interrupted before it was sent

    Recover was INTERRUPTED: what was done is recorded; a re-run is safe.
    Journal: /srv/backups/before-upgrade/journal.jsonl
    Next, run:
      kubectl mlbackup recover before-upgrade
    "#);
}

#[test]
fn a_recover_whose_app_start_timed_out_failed_and_names_the_step() {
    let mut started = app_timed_out();
    started.action = super::app::Action::Start;
    let outcome = recover(vec![
        timed(runbook::app_report(Step::StartApp, Ok(started)), 600.0),
        StepReport::new(
            Step::Verify,
            StepResult::NotRun,
            "not started: an earlier step failed",
        ),
    ]);
    assert_eq!(outcome.result, RunResult::Failed);
    insta::assert_snapshot!(outcome.render(), @r#"
    #   STEP        RESULT    TIME     SUMMARY
    1   start-app   failed    600.0s   2 workloads: 1 changed, 0 unchanged, 1 failed or not in time
    2   verify      not-run   -        not started: an earlier step failed

    start-app:
      - deployment/mmapp-worker: not finished after 10m (1 pod still running)

    Recover did NOT finish: see the failed steps above; a re-run is safe.
    Journal: /srv/backups/before-upgrade/journal.jsonl
    Next, run:
      kubectl mlbackup recover before-upgrade
    "#);
}
