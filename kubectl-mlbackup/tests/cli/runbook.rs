//! `prepare` and `recover` end to end: the real helper in the fake app pod against the fake
//! DataRobot API, the fake cluster with LRSes of several types. The cluster (labels, annotations
//! and spec of every LRS but the Spark sessions) and the deployment statuses must come back
//! exactly, whatever interrupted the prepare in between.

use std::collections::BTreeMap;
use std::time::Duration;

use mlbackup_testkit::datarobot::FakeDataRobotOptions;
use mlbackup_testkit::faults::{Fault, FaultRule};
use mlbackup_testkit::sample::SampleSpec;
use serde_json::{Value, json};

use mlbackup_testkit::world::{App, Deployments};

use crate::support::{FakeApi, FakeCluster, Run, Sandbox, in_sandbox, start_world};

struct World {
    sandbox: Sandbox,
    cluster: FakeCluster,
    api: FakeApi,
}

fn world_with(status_change: Duration) -> World {
    crate::in_pod::helper_beside_the_plugin();
    let sandbox = Sandbox::new();
    let (cluster, api) = start_world(
        in_sandbox(&sandbox)
            .cluster(SampleSpec {
                lrs: 6,
                spark: 2,
                namespaces: 2,
                ..SampleSpec::default()
            })
            .app(App::Pod)
            .datarobot(
                Deployments::Numbered {
                    active: 4,
                    inactive: 2,
                },
                FakeDataRobotOptions {
                    status_change_duration: status_change,
                    ..FakeDataRobotOptions::default()
                },
            ),
    );
    let sandbox = api
        .configure(sandbox, api.datarobot.admin_token())
        .env("KUBECONFIG", cluster.kubeconfig.to_str().unwrap())
        .env("DR_CORE_NAMESPACE", "dr-app")
        .env("MLBACKUP_DIR", "backups");
    World {
        sandbox,
        cluster,
        api,
    }
}

fn world() -> World {
    world_with(Duration::from_millis(50))
}

/// What recover must bring back: labels, annotations and spec of every LRS but the Spark
/// sessions (prepare deletes those on purpose).
fn lrs_state(cluster: &FakeCluster) -> BTreeMap<String, Value> {
    cluster
        .kube
        .list("lrs", None)
        .into_iter()
        .filter(|o| o["metadata"]["labels"]["datarobot-lrs-type"] != "spark_app")
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["metadata"]["namespace"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                ),
                json!({
                    "labels": o["metadata"]["labels"],
                    "annotations": o["metadata"]["annotations"],
                    "spec": o["spec"],
                }),
            )
        })
        .collect()
}

/// Requests that could have changed an LRS (the pod path also POSTs access reviews and execs).
fn lrs_writes(cluster: &FakeCluster) -> usize {
    cluster
        .kube
        .requests()
        .count(|r| r.method != "GET" && r.path.contains("/lrs"))
}

fn spark_sessions(cluster: &FakeCluster) -> usize {
    cluster
        .kube
        .list("lrs", None)
        .iter()
        .filter(|o| o["metadata"]["labels"]["datarobot-lrs-type"] == "spark_app")
        .count()
}

/// The upgrade: some LRSes of the app are deleted (the operator releases its finalizer).
fn upgrade(cluster: &FakeCluster) {
    let gone: Vec<(String, String)> = cluster
        .kube
        .list("lrs", Some("dr-app"))
        .iter()
        .take(3)
        .map(|o| {
            (
                o["metadata"]["namespace"].as_str().unwrap().to_string(),
                o["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (namespace, name) in gone {
        cluster.delete_lrs(&namespace, &name);
    }
}

fn step_results(run: &Run) -> Vec<(String, String)> {
    run.json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Prepare has run (somehow) to its end: after an upgrade, recover brings back the state of
/// `before` and the deployment statuses of `statuses`, and a second recover changes nothing.
fn upgrade_and_recover(
    w: &World,
    before: &BTreeMap<String, Value>,
    statuses: &[(String, mlbackup_testkit::datarobot::DeploymentStatus)],
) {
    assert_eq!(
        spark_sessions(&w.cluster),
        0,
        "prepare deleted the sessions"
    );
    assert!(
        w.api
            .statuses()
            .iter()
            .all(|(_, s)| s.as_str() == "inactive"),
        "prepare deactivated every deployment"
    );
    upgrade(&w.cluster);
    let recover = w.sandbox.run(&["recover", "before-upgrade", "-o", "json"]);
    recover.expect_code(0);
    assert_eq!(&lrs_state(&w.cluster), before);
    assert_eq!(w.api.statuses(), statuses);
    assert_eq!(spark_sessions(&w.cluster), 0, "Spark sessions stay deleted");

    let writes = lrs_writes(&w.cluster);
    let changes = w.api.datarobot.status_history().len();
    let again = w.sandbox.run(&["recover", "before-upgrade", "-o", "json"]);
    again.expect_code(0);
    assert_eq!(
        lrs_writes(&w.cluster),
        writes,
        "a second recover writes nothing"
    );
    assert_eq!(w.api.datarobot.status_history().len(), changes);
    let json = again.json();
    assert_eq!(json["result"], "succeeded");
    assert_eq!(
        json["steps"][0]["result"], "skipped",
        "start-app without --start-app"
    );
    assert_eq!(json["steps"][1]["counts"]["created"], 0);
    assert_eq!(json["steps"][2]["counts"]["changed"], 0);
    assert_eq!(json["steps"][3]["counts"]["deploymentsActive"], 4);
}

#[test]
fn prepare_then_recover_brings_back_the_exact_state() {
    let w = world();
    let before = lrs_state(&w.cluster);
    let statuses = w.api.statuses();
    let prepare = w
        .sandbox
        .run(&["prepare", "--yes", "--name", "before-upgrade", "-o", "json"]);
    prepare.expect_code(0);
    let json = prepare.json();
    assert_eq!(
        step_results(&prepare),
        pairs(&[
            ("backup", "done"),
            ("deactivate-deployments", "done"),
            ("spark-cleanup", "done"),
            ("stop-app", "skipped")
        ])
    );
    assert_eq!(
        json["steps"][0]["counts"]["objects"],
        w.cluster.kube.list("lrs", None).len() + 2
    );
    assert_eq!(json["steps"][1]["counts"]["changed"], 4);
    assert_eq!(json["steps"][2]["counts"]["deleted"], 2);
    assert_eq!(
        json["next"],
        "kubectl mlbackup recover before-upgrade --dir backups"
    );
    // The journal: a started and a finished record per step, in order.
    let journal =
        std::fs::read_to_string(w.sandbox.path("backups/before-upgrade/journal.jsonl")).unwrap();
    let records: Vec<(String, String)> = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| {
            (
                r["step"].as_str().unwrap().to_string(),
                r["event"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        records,
        pairs(&[
            ("backup", "started"),
            ("backup", "finished"),
            ("deactivate-deployments", "started"),
            ("deactivate-deployments", "finished"),
            ("spark-cleanup", "started"),
            ("spark-cleanup", "finished"),
            ("stop-app", "finished")
        ])
    );
    upgrade_and_recover(&w, &before, &statuses);
}

#[test]
fn recover_with_existing_update_makes_changed_lrses_the_backups_and_then_writes_nothing() {
    let w = world();
    let before = lrs_state(&w.cluster);
    w.sandbox
        .run(&["prepare", "--yes", "--name", "before-upgrade"])
        .expect_code(0);
    upgrade(&w.cluster);
    // During the upgrade someone edits an LRS that stays: replicas, a new spec field, a block
    // removed, a label and an annotation added.
    let edited = w
        .cluster
        .kube
        .list("lrs", None)
        .into_iter()
        .find(|o| o["metadata"]["labels"]["datarobot-lrs-type"] == "deployment")
        .unwrap();
    w.cluster.merge_patch(
        edited["metadata"]["namespace"].as_str().unwrap(),
        edited["metadata"]["name"].as_str().unwrap(),
        json!({
            "spec": {"replicas": 5, "priorityClassName": "high", "readinessProbe": null},
            "metadata": {"labels": {"team": "ml"}, "annotations": {"note": "hotfix"}},
        }),
    );

    let left_alone = w.sandbox.run(&["recover", "before-upgrade", "-o", "json"]);
    left_alone.expect_code(1);
    assert_eq!(left_alone.json()["steps"][1]["counts"]["skippedDiffers"], 1);

    let recover = w.sandbox.run(&[
        "recover",
        "before-upgrade",
        "--existing=update",
        "-o",
        "json",
    ]);
    recover.expect_code(0);
    let json = recover.json();
    assert_eq!(json["steps"][1]["counts"]["updated"], 1, "{json:#}");
    assert_eq!(
        json["steps"][3]["result"], "done",
        "verify finds no difference"
    );
    assert_eq!(lrs_state(&w.cluster), before);

    let writes = lrs_writes(&w.cluster);
    let again = w.sandbox.run(&[
        "recover",
        "before-upgrade",
        "--existing=update",
        "-o",
        "json",
    ]);
    again.expect_code(0);
    assert_eq!(
        lrs_writes(&w.cluster),
        writes,
        "a second run writes nothing"
    );
    let json = again.json();
    assert_eq!(json["steps"][1]["counts"]["updated"], 0);
    assert_eq!(
        json["steps"][1]["counts"]["unchanged"],
        before.len(),
        "{json:#}"
    );
}

/// Starts a prepare, interrupts it with SIGINT once `ready` says so, and expects 130.
fn interrupted_prepare(w: &World, ready: impl Fn() -> bool) -> Run {
    let child = w
        .sandbox
        .spawn(&["prepare", "--yes", "--name", "before-upgrade", "-o", "json"]);
    mlbackup_testkit::wait::wait_until("the moment to interrupt", Duration::from_secs(30), ready);
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let run = Run::from(child.wait_with_output().unwrap());
    run.expect_code(130);
    run
}

#[test]
fn a_prepare_interrupted_while_the_helper_lists_exits_130_and_leaves_nothing_in_the_pod() {
    let w = world();
    // The deactivation's first API request hangs: the prepare is interrupted while the helper
    // waits for it in the pod.
    w.api.datarobot.faults().add(FaultRule::new(
        "/version/",
        Fault::Latency(Duration::from_secs(600)),
        Some(1),
    ));
    let run = interrupted_prepare(&w, || w.api.datarobot.requests().max_in_flight() >= 1);
    assert_eq!(
        step_results(&run),
        pairs(&[
            ("backup", "done"),
            ("deactivate-deployments", "interrupted"),
            ("spark-cleanup", "not-run"),
            ("stop-app", "not-run")
        ])
    );
    assert!(w.api.datarobot.status_history().is_empty());
    assert!(crate::in_pod::helper_processes(&w.sandbox.path("pods")).is_empty());
    let left = crate::in_pod::leftovers(&w.sandbox);
    assert!(left.is_empty(), "{left:?}");
}

fn resume(w: &World) -> Run {
    let run = w.sandbox.run(&[
        "prepare",
        "--yes",
        "--resume",
        "before-upgrade",
        "-o",
        "json",
    ]);
    run.expect_code(0);
    run
}

#[test]
fn a_prepare_interrupted_during_the_backup_takes_it_again_on_resume() {
    let w = world();
    let before = lrs_state(&w.cluster);
    let statuses = w.api.statuses();
    w.cluster.kube.faults().add(FaultRule::new(
        "/v1/lrs",
        Fault::Latency(Duration::from_secs(3)),
        Some(1),
    ));
    let partial = w.sandbox.path("backups/before-upgrade.partial");
    let run = interrupted_prepare(&w, || partial.exists());
    let json = run.json();
    assert_eq!(
        step_results(&run),
        pairs(&[
            ("backup", "interrupted"),
            ("deactivate-deployments", "not-run"),
            ("spark-cleanup", "not-run"),
            ("stop-app", "not-run")
        ])
    );
    assert!(
        json["next"]
            .as_str()
            .unwrap()
            .starts_with("kubectl mlbackup prepare --resume before-upgrade")
    );
    assert!(w.api.datarobot.status_history().is_empty());
    assert_eq!(spark_sessions(&w.cluster), 2);

    let resumed = resume(&w);
    assert_eq!(
        step_results(&resumed),
        pairs(&[
            ("backup", "done"),
            ("deactivate-deployments", "done"),
            ("spark-cleanup", "done"),
            ("stop-app", "skipped")
        ])
    );
    assert!(!partial.exists());
    upgrade_and_recover(&w, &before, &statuses);
}

#[test]
fn a_prepare_interrupted_during_the_deactivation_resumes_with_what_was_active_before() {
    let w = world_with(Duration::from_millis(800));
    let before = lrs_state(&w.cluster);
    let statuses = w.api.statuses();
    let run = interrupted_prepare(&w, || !w.api.datarobot.status_history().is_empty());
    let results = step_results(&run);
    assert_eq!(results[0], ("backup".into(), "done".into()));
    assert_eq!(results[1].1, "interrupted", "{results:?}");
    assert_eq!(results[2].1, "not-run");
    assert_eq!(spark_sessions(&w.cluster), 2, "the cleanup did not start");

    let resumed = resume(&w);
    assert_eq!(
        step_results(&resumed),
        pairs(&[
            ("backup", "already-done"),
            ("deactivate-deployments", "done"),
            ("spark-cleanup", "done"),
            ("stop-app", "skipped")
        ])
    );
    // The second snapshot merged into the first: what was active before is still recorded so.
    upgrade_and_recover(&w, &before, &statuses);
}

#[test]
fn a_failed_deactivation_stops_the_prepare_and_a_resume_finishes_it() {
    let w = world();
    let before = lrs_state(&w.cluster);
    let statuses = w.api.statuses();
    w.api.datarobot.faults().add(
        FaultRule::new("/deployments/", Fault::Status(403), None).with_method(http::Method::GET),
    );
    let run = w
        .sandbox
        .run(&["prepare", "--yes", "--name", "before-upgrade", "-o", "json"]);
    run.expect_code(1);
    assert_eq!(
        step_results(&run),
        pairs(&[
            ("backup", "done"),
            ("deactivate-deployments", "failed"),
            ("spark-cleanup", "not-run"),
            ("stop-app", "not-run")
        ])
    );
    assert!(
        run.json()["steps"][1]["errors"][0]
            .as_str()
            .unwrap()
            .contains("403")
    );
    w.api.datarobot.faults().clear();
    let resumed = resume(&w);
    assert_eq!(resumed.json()["steps"][0]["result"], "already-done");
    upgrade_and_recover(&w, &before, &statuses);
}

#[test]
fn a_failed_cleanup_is_resumed_without_repeating_the_deactivation() {
    let w = world();
    let before = lrs_state(&w.cluster);
    let statuses = w.api.statuses();
    w.cluster.kube.faults().add(
        FaultRule::new("/lrs/spark-session", Fault::Status(403), None)
            .with_method(http::Method::DELETE),
    );
    let run = w
        .sandbox
        .run(&["prepare", "--yes", "--name", "before-upgrade", "-o", "json"]);
    run.expect_code(1);
    assert_eq!(
        step_results(&run),
        pairs(&[
            ("backup", "done"),
            ("deactivate-deployments", "done"),
            ("spark-cleanup", "failed"),
            ("stop-app", "not-run")
        ])
    );
    w.cluster.kube.faults().clear();
    let changes = w.api.datarobot.status_history().len();
    let resumed = resume(&w);
    assert_eq!(
        step_results(&resumed),
        pairs(&[
            ("backup", "already-done"),
            ("deactivate-deployments", "already-done"),
            ("spark-cleanup", "done"),
            ("stop-app", "skipped")
        ])
    );
    assert_eq!(w.api.datarobot.status_history().len(), changes);
    // Resuming a finished prepare repeats nothing at all.
    let writes = lrs_writes(&w.cluster);
    let again = resume(&w);
    assert!(
        step_results(&again)
            .iter()
            .all(|(step, result)| result == "already-done" || step == "stop-app")
    );
    assert_eq!(lrs_writes(&w.cluster), writes);
    upgrade_and_recover(&w, &before, &statuses);
}

#[test]
fn dry_runs_change_nothing_and_show_the_plan_with_counts() {
    let w = world();
    let versions = w.cluster.resource_versions();
    let dry = w.sandbox.run(&["prepare", "--dry-run"]);
    mlbackup_testkit::assert_run_snapshot!("prepare_dry_run", dry.shown(&w.sandbox));
    assert_eq!(w.cluster.resource_versions(), versions);
    assert!(w.api.datarobot.status_history().is_empty());
    assert!(!w.sandbox.path("backups").exists(), "no folder created");

    w.sandbox
        .run(&["prepare", "--yes", "--name", "before-upgrade"])
        .expect_code(0);
    upgrade(&w.cluster);
    let versions = w.cluster.resource_versions();
    let changes = w.api.datarobot.status_history().len();
    let journal =
        std::fs::read_to_string(w.sandbox.path("backups/before-upgrade/journal.jsonl")).unwrap();
    let dry = w
        .sandbox
        .run(&["recover", "before-upgrade", "--dry-run", "-o", "json"]);
    dry.expect_code(0);
    let json = dry.json();
    assert_eq!(json["steps"][1]["counts"]["created"], 3);
    assert_eq!(json["steps"][2]["counts"]["wouldChange"], 4);
    assert_eq!(w.cluster.resource_versions(), versions);
    assert_eq!(w.api.datarobot.status_history().len(), changes);
    assert_eq!(
        std::fs::read_to_string(w.sandbox.path("backups/before-upgrade/journal.jsonl")).unwrap(),
        journal,
        "dry runs are not journaled"
    );
}

#[test]
fn the_tables_show_each_step_and_the_command_to_run_next() {
    let w = world();
    let prepare = w
        .sandbox
        .run(&["prepare", "--yes", "--name", "before-upgrade"]);
    mlbackup_testkit::assert_run_snapshot!("prepare_table", prepare.shown(&w.sandbox));
    upgrade(&w.cluster);
    let recover = w.sandbox.run(&["recover", "before-upgrade"]);
    mlbackup_testkit::assert_run_snapshot!("recover_table", recover.shown(&w.sandbox));
}

#[test]
fn a_timeout_names_what_did_not_finish() {
    let w = world();
    // An operator that never lets go of one Spark session. The timeout also covers listing and
    // deactivating the deployments (step 2), which must still finish within it on a loaded
    // machine; the held Spark session never goes, so step 3 times out whatever the bound.
    let held = w
        .cluster
        .kube
        .list("lrs", None)
        .into_iter()
        .find(|o| o["metadata"]["labels"]["datarobot-lrs-type"] == "spark_app")
        .unwrap();
    let (namespace, name) = (
        held["metadata"]["namespace"].as_str().unwrap().to_string(),
        held["metadata"]["name"].as_str().unwrap().to_string(),
    );
    w.cluster.merge_patch(
        &namespace,
        &name,
        json!({"metadata": {"finalizers": ["example.com/hold"]}}),
    );
    let run = w.sandbox.run(&[
        "prepare",
        "--yes",
        "--name",
        "before-upgrade",
        "--timeout",
        "15s",
        "-o",
        "json",
    ]);
    run.expect_code(1);
    let json = run.json();
    assert_eq!(json["steps"][2]["result"], "failed");
    let errors = json["steps"][2]["errors"].to_string();
    assert!(
        errors.contains(&format!("{namespace}/{name}")) && errors.contains("example.com/hold"),
        "{errors}"
    );
}

#[test]
fn prepare_asks_once_and_needs_yes_without_a_terminal() {
    let w = world();
    let run = w.sandbox.run(&["prepare"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&w.sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: refusing to prepare without confirmation: stdin is not a terminal
    hint: pass --yes to go ahead without being asked; --dry-run shows the plan with counts
    "#);
    assert!(!w.sandbox.path("backups").exists());
    if let Some(run) = w.sandbox.run_on_terminal(&["prepare"], "n\n") {
        mlbackup_testkit::assert_run_snapshot!("prepare_not_confirmed", run.shown(&w.sandbox));
        assert!(w.api.datarobot.status_history().is_empty());
        assert_eq!(spark_sessions(&w.cluster), 2);
    }
}

#[test]
fn a_fresh_prepare_is_refused_while_an_earlier_one_is_not_recovered() {
    let w = world();
    w.sandbox
        .run(&["prepare", "--yes", "--name", "before-upgrade"])
        .expect_code(0);
    let again = w.sandbox.run(&["prepare", "--yes", "--name", "second"]);
    mlbackup_testkit::assert_run_snapshot!(again.shown(&w.sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: the prepare of `before-upgrade` deactivated deployments and was not recovered: a new prepare would record them as inactive, and its recover would not bring them back
    hint: finish that one with `kubectl mlbackup prepare --resume before-upgrade`, or bring everything back with `kubectl mlbackup recover before-upgrade` first (--dir backups); or pass --skip-deployments
    "#);
    w.sandbox.run(&["recover", "before-upgrade"]).expect_code(0);
    w.sandbox
        .run(&["prepare", "--yes", "--name", "second"])
        .expect_code(0);
}

#[test]
fn prepare_stops_the_app_last_and_recover_starts_it_first() {
    let w = world();
    // The rest of a real install beside mmapp-app: workloads at 3 and 2 replicas, a StatefulSet,
    // and the database, which is not part of the app.
    for workload in mlbackup_testkit::sandbox::app_workloads("dr-app") {
        if workload.name != "mmapp-app" {
            w.cluster.kube.add_app_workload(&workload).unwrap();
        }
    }
    // mmapp-app, where the helper runs, is part of the app as in a real install.
    let label = http::Request::builder()
        .method("PATCH")
        .uri("/apis/apps/v1/namespaces/dr-app/deployments/mmapp-app")
        .header("content-type", "application/merge-patch+json")
        .body(br#"{"metadata":{"labels":{"release":"dr"}}}"#.to_vec())
        .unwrap();
    w.cluster.request(label).unwrap();
    let replicas = |plural: &str, name: &str| {
        w.cluster.kube.get(plural, Some("dr-app"), name).unwrap()["spec"]["replicas"].clone()
    };
    let statuses = w.api.statuses();
    let prepare = w.sandbox.run(&[
        "prepare",
        "--yes",
        "--stop-app",
        "--name",
        "before-upgrade",
        "-o",
        "json",
    ]);
    prepare.expect_code(0);
    assert_eq!(
        step_results(&prepare),
        pairs(&[
            ("backup", "done"),
            ("deactivate-deployments", "done"),
            ("spark-cleanup", "done"),
            ("stop-app", "done"),
        ])
    );
    assert_eq!(
        prepare.json()["next"],
        "kubectl mlbackup recover before-upgrade --start-app --dir backups"
    );
    assert_eq!(replicas("deployments", "mmapp-worker"), 0);
    assert_eq!(replicas("deployments", "mmapp-app"), 0);
    assert_eq!(
        replicas("statefulsets", "pcs-mongo"),
        3,
        "the database keeps running"
    );
    assert!(
        w.api
            .statuses()
            .iter()
            .all(|(_, s)| s.as_str() == "inactive")
    );

    // Without the app there is no pod to reach DataRobot from: --start-app comes first.
    let recover = w
        .sandbox
        .run(&["recover", "before-upgrade", "--start-app", "-o", "json"]);
    recover.expect_code(0);
    assert_eq!(
        step_results(&recover)[0],
        ("start-app".to_string(), "done".to_string())
    );
    assert_eq!(replicas("deployments", "mmapp-worker"), 3);
    assert_eq!(replicas("deployments", "mmapp-app"), 1);
    assert_eq!(w.api.statuses(), statuses, "the deployments as they were");
}

/// The operator's folder is lost after the prepare, but the backup was copied to the team's
/// bucket: recover from there brings everything back and journals there.
#[test]
fn recover_from_a_bucket_brings_back_the_exact_state_and_journals_there() {
    let Some(server) = mlbackup_testkit::s3::S3Server::start_or_skip("recover_from_bucket") else {
        return;
    };
    let World {
        sandbox,
        cluster,
        api,
    } = world();
    let sandbox = sandbox
        .env("AWS_ENDPOINT_URL", &server.endpoint)
        .env("AWS_ACCESS_KEY_ID", &server.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &server.secret_access_key)
        .env("AWS_REGION", "us-east-1");
    let w = World {
        sandbox,
        cluster,
        api,
    };
    let before = lrs_state(&w.cluster);
    let statuses = w.api.statuses();
    w.sandbox
        .run(&["prepare", "--yes", "--name", "before-upgrade"])
        .expect_code(0);
    let bucket = format!("s3://{}/prod", server.bucket);
    w.sandbox
        .run(&["copy", "before-upgrade", "--to", &bucket, "--no-encrypt"])
        .expect_code(0);
    std::fs::remove_dir_all(w.sandbox.path("backups")).unwrap();
    upgrade(&w.cluster);

    let recover = w
        .sandbox
        .run(&["recover", "before-upgrade", "--dir", &bucket, "-o", "json"]);
    recover.expect_code(0);
    assert_eq!(&lrs_state(&w.cluster), &before);
    assert_eq!(w.api.statuses(), statuses);
    let json = recover.json();
    assert_eq!(json["path"], format!("{bucket}/before-upgrade"));
    assert_eq!(
        json["journal"],
        format!("{bucket}/before-upgrade/journal.jsonl")
    );
    let journal = std::fs::read_to_string(
        server.object_file(&server.bucket, "prod/before-upgrade/journal.jsonl"),
    )
    .unwrap();
    let runbooks: Vec<String> = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["runbook"].to_string())
        .collect();
    assert!(runbooks.contains(&"\"prepare\"".to_string()), "{journal}");
    assert!(runbooks.contains(&"\"recover\"".to_string()), "{journal}");
    // Read-only: recovers (nothing to do now) and records nothing.
    let lines = journal.lines().count();
    w.sandbox
        .run(&[
            "recover",
            "before-upgrade",
            "--dir",
            &format!("{bucket}?readonly"),
        ])
        .expect_code(0);
    let after = std::fs::read_to_string(
        server.object_file(&server.bucket, "prod/before-upgrade/journal.jsonl"),
    )
    .unwrap();
    assert_eq!(after.lines().count(), lines);
}

#[test]
fn prepare_to_a_bucket_stores_the_snapshot_before_the_first_change_and_recover_brings_back_the_exact_state()
 {
    let Some(server) = mlbackup_testkit::s3::S3Server::start_or_skip("prepare_to_bucket") else {
        return;
    };
    let World {
        sandbox,
        cluster,
        api,
    } = world();
    let sandbox = sandbox
        .env("AWS_ENDPOINT_URL", &server.endpoint)
        .env("AWS_ACCESS_KEY_ID", &server.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &server.secret_access_key)
        .env("AWS_REGION", "us-east-1");
    let w = World {
        sandbox,
        cluster,
        api,
    };
    let before = lrs_state(&w.cluster);
    let statuses = w.api.statuses();
    let active = statuses
        .iter()
        .filter(|(_, s)| matches!(s, mlbackup_testkit::datarobot::DeploymentStatus::Active))
        .count();
    assert!(active > 0, "the world has active deployments: {statuses:?}");
    let bucket = format!("s3://{}/prod", server.bucket);
    // Every status change is held: the prepare is stopped at its first change.
    let gate = mlbackup_testkit::faults::Gate::new();
    w.api
        .datarobot
        .faults()
        .add(FaultRule::new("/status/", gate.fault(), None).with_method(http::Method::PATCH));
    let child = w.sandbox.spawn(&[
        "prepare",
        "--yes",
        "--no-encrypt",
        "--dir",
        &bucket,
        "--name",
        "before-upgrade",
        "-o",
        "json",
    ]);
    gate.wait_held(1);
    let snapshot =
        std::fs::read(server.object_file(&server.bucket, "prod/before-upgrade/deployments.json"))
            .expect("the snapshot is in the bucket before the first change");
    let snapshot: Value = serde_json::from_slice(&snapshot).unwrap();
    let recorded_active = snapshot["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "active")
        .count();
    assert_eq!(recorded_active, active, "{snapshot}");
    assert!(
        w.api.datarobot.status_history().is_empty(),
        "nothing was changed yet"
    );
    gate.open();
    let prepared = Run::from(child.wait_with_output().unwrap());
    prepared.expect_code(0);
    assert_eq!(
        step_results(&prepared),
        pairs(&[
            ("backup", "done"),
            ("deactivate-deployments", "done"),
            ("spark-cleanup", "done"),
            ("stop-app", "skipped")
        ])
    );
    let json = prepared.json();
    assert_eq!(json["path"], format!("{bucket}/before-upgrade"));
    assert_eq!(
        json["journal"],
        format!("{bucket}/before-upgrade/journal.jsonl")
    );
    // The journal in the bucket tells every step, the last one included.
    let journal = std::fs::read_to_string(
        server.object_file(&server.bucket, "prod/before-upgrade/journal.jsonl"),
    )
    .unwrap();
    let finished: Vec<(String, String)> = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"] == "finished")
        .map(|r| {
            (
                r["step"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        finished,
        pairs(&[
            ("backup", "done"),
            ("deactivate-deployments", "done"),
            ("spark-cleanup", "done"),
            ("stop-app", "skipped")
        ]),
        "{journal}"
    );
    // Nothing is kept on this machine: recover reads it all from the bucket.
    assert!(!w.sandbox.path("backups").join("before-upgrade").exists());
    upgrade(&w.cluster);
    let recover = w
        .sandbox
        .run(&["recover", "before-upgrade", "--dir", &bucket, "-o", "json"]);
    recover.expect_code(0);
    assert_eq!(&lrs_state(&w.cluster), &before);
    assert_eq!(w.api.statuses(), statuses);
}
