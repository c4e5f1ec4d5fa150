//! `spark-cleanup` against the fake cluster: only Spark sessions go, whatever else lives next to
//! them; confirmation; finalizers that hold objects past the timeout or let go during the wait.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mlbackup_testkit::kube::FakeKubeOptions;
use mlbackup_testkit::sample::SampleSpec;
use serde_json::{Value, json};

use crate::support::{FakeCluster, Run, Sandbox};

fn mixed() -> SampleSpec {
    SampleSpec {
        lrs: 4,
        spark: 5,
        other: 3,
        namespaces: 2,
        ..SampleSpec::default()
    }
}

fn cleanup(sandbox: &Sandbox, cluster: &FakeCluster, extra: &[&str]) -> Run {
    let kubeconfig = cluster.kubeconfig_arg();
    let mut args = vec!["spark-cleanup", kubeconfig.as_str()];
    args.extend_from_slice(extra);
    sandbox.run(&args)
}

/// `namespace/name` -> resourceVersion of the LRSes of each type.
fn by_type(cluster: &FakeCluster) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut types: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for object in cluster.kube.list("lrs", None) {
        let meta = &object["metadata"];
        types
            .entry(
                meta["labels"]["datarobot-lrs-type"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
            .or_default()
            .insert(
                format!(
                    "{}/{}",
                    meta["namespace"].as_str().unwrap(),
                    meta["name"].as_str().unwrap()
                ),
                meta["resourceVersion"].as_str().unwrap().to_string(),
            );
    }
    types
}

fn spark_sessions(cluster: &FakeCluster) -> Vec<(String, String)> {
    by_type(cluster)
        .remove("spark_app")
        .unwrap_or_default()
        .into_keys()
        .map(|key| {
            let (ns, name) = key.split_once('/').unwrap();
            (ns.to_string(), name.to_string())
        })
        .collect()
}

#[test]
fn only_spark_sessions_are_deleted_and_every_other_type_stays_untouched() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, mixed(), FakeKubeOptions::default());
    let mut before = by_type(&cluster);
    assert_eq!(before["spark_app"].len(), 5);
    assert!(
        before.len() >= 3,
        "deployment, spark_app and other types: {before:?}"
    );

    let run = cleanup(&sandbox, &cluster, &["--yes", "-o", "json"]);
    run.expect_code(0);
    let outcome = run.json();
    assert_eq!(outcome["summary"]["total"], 5);
    assert_eq!(outcome["summary"]["deleted"], 5);
    assert_eq!(
        outcome["namespace"],
        Value::Null,
        "all namespaces by default"
    );
    assert!(
        outcome["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["result"] == "deleted")
    );

    let mut after = by_type(&cluster);
    assert!(!after.contains_key("spark_app"));
    before.remove("spark_app");
    after.remove("spark_app");
    assert_eq!(
        after, before,
        "no other LRS changed, not even its resourceVersion"
    );
    let deletes = cluster
        .kube
        .requests()
        .entries()
        .into_iter()
        .filter(|r| r.method == "DELETE");
    let deleted: Vec<String> = deletes.map(|r| r.path).collect();
    assert_eq!(
        deleted.len(),
        5,
        "one DELETE per session, never a collection delete"
    );
    assert!(
        deleted.iter().all(|p| p.contains("/lrs/spark-session-")),
        "{deleted:#?}"
    );

    // Nothing left: a second run is a no-op.
    let run = cleanup(&sandbox, &cluster, &["--yes"]);
    run.expect_code(0);
    assert_eq!(
        run.stdout,
        "No Spark sessions (LRS datarobot-lrs-type=spark_app) in all namespaces.\n"
    );
}

#[test]
fn dry_run_lists_and_a_namespace_narrows() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, mixed(), FakeKubeOptions::default());
    let sessions = spark_sessions(&cluster);
    let run = cleanup(&sandbox, &cluster, &["--dry-run"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 0
    ----- stdout -----
    NAMESPACE     NAME                                     RESULT         DETAIL
    dr-app        spark-session-695b7d900d1865b14bc80dbc   would-delete
    dr-app        spark-session-695b7e0844e75049dd3fe14f   would-delete
    dr-app        spark-session-695b7e80e35f132edcc1e3c7   would-delete
    dr-tenant-1   spark-session-695b7dcc72c5497114cb6ba9   would-delete
    dr-tenant-1   spark-session-695b7e44d6051a209be16f1f   would-delete

    DRY RUN: 5 Spark sessions in all namespaces would be deleted; nothing was changed.

    ----- stderr -----
    "#);
    assert_eq!(cluster.writes(), 0);

    let run = cleanup(
        &sandbox,
        &cluster,
        &["-n", "dr-tenant-1", "--yes", "-o", "json"],
    );
    run.expect_code(0);
    assert_eq!(run.json()["namespace"], "dr-tenant-1");
    let left = spark_sessions(&cluster);
    let expected: Vec<_> = sessions
        .into_iter()
        .filter(|(ns, _)| ns != "dr-tenant-1")
        .collect();
    assert_eq!(left, expected);
    assert_eq!(left.len(), 3, "sessions 0, 2, 4 live in dr-app");
}

#[test]
fn deleting_needs_a_confirmation() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, mixed(), FakeKubeOptions::default());
    let run = cleanup(&sandbox, &cluster, &[]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: refusing to delete 5 Spark sessions without confirmation: stdin is not a terminal
    hint: pass --yes to delete without being asked; --dry-run lists them
    "#);
    assert_eq!(spark_sessions(&cluster).len(), 5);

    let kubeconfig = cluster.kubeconfig_arg();
    let Some(run) = sandbox.run_on_terminal(&["spark-cleanup", &kubeconfig], "n\n") else {
        return;
    };
    mlbackup_testkit::assert_run_snapshot!("not_confirmed", run.shown(&sandbox));
    assert_eq!(spark_sessions(&cluster).len(), 5);
    let run = sandbox
        .run_on_terminal(&["spark-cleanup", &kubeconfig], "y\n")
        .unwrap();
    run.expect_code(0);
    assert!(spark_sessions(&cluster).is_empty());
}

/// Gives the first `count` Spark sessions a finalizer that nothing removes.
fn hold(cluster: &FakeCluster, count: usize) -> Vec<(String, String)> {
    let held: Vec<_> = spark_sessions(cluster).into_iter().take(count).collect();
    for (namespace, name) in &held {
        cluster.merge_patch(
            namespace,
            name,
            json!({"metadata": {"finalizers": ["spark.datarobot.com/driver-cleanup"]}}),
        );
    }
    held
}

#[test]
fn objects_held_by_finalizers_past_the_timeout_are_named_and_fail_the_run() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(
        &sandbox,
        SampleSpec {
            lrs: 1,
            spark: 3,
            other: 1,
            namespaces: 1,
            ..SampleSpec::default()
        },
        FakeKubeOptions::default(),
    );
    let held = hold(&cluster, 1);
    let started = Instant::now();
    let run = cleanup(&sandbox, &cluster, &["--yes", "--timeout", "1s"]);
    run.expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(20));
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----
    NAMESPACE   NAME                                     RESULT      DETAIL
    dr-app      spark-session-695b7d90f28d9bf93eccae03   timed-out   held by finalizers spark.datarobot.com/driver-cleanup
    dr-app      spark-session-695b7dcc1fd4eedc0b8b41bf   deleted
    dr-app      spark-session-695b7e089db2506628f4779d   deleted

    3 Spark sessions in all namespaces: 2 deleted, 0 still deleting, 1 not gone after 1s, 0 failed.

    ----- stderr -----
    "#);
    let (namespace, name) = &held[0];
    let marked = cluster.served(namespace, name);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());

    // Again, without waiting: the deletion is accepted and reported as still going on.
    let run = cleanup(&sandbox, &cluster, &["--yes", "--no-wait", "-o", "json"]);
    run.expect_code(0);
    let outcome = run.json();
    assert_eq!(outcome["waited"], false);
    assert_eq!(outcome["items"][0]["result"], "deleting");
    assert_eq!(
        outcome["items"][0]["finalizers"],
        json!(["spark.datarobot.com/driver-cleanup"])
    );
}

#[test]
fn the_wait_ends_when_the_finalizers_let_go() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, mixed(), FakeKubeOptions::default());
    let held = hold(&cluster, 2);
    let kubeconfig = cluster.kubeconfig_arg();
    let child = sandbox.spawn(&[
        "spark-cleanup",
        &kubeconfig,
        "--yes",
        "--timeout",
        "60s",
        "-o",
        "json",
    ]);
    // The operator finishes its cleanup once the deletion is requested.
    for (namespace, name) in &held {
        mlbackup_testkit::wait::wait_until(
            &format!("the deletion of {namespace}/{name} is requested"),
            Duration::from_secs(30),
            || {
                cluster
                    .kube
                    .get("lrs", Some(namespace), name)
                    .is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string())
            },
        );
        std::thread::sleep(Duration::from_millis(300));
        assert!(cluster.kube.remove("lrs", Some(namespace), name));
    }
    let run = Run::from(child.wait_with_output().unwrap());
    run.expect_code(0);
    let outcome = run.json();
    assert_eq!(outcome["summary"]["deleted"], 5, "{outcome:#}");
    assert_eq!(outcome["summary"]["timedOut"], 0);
    assert!(spark_sessions(&cluster).is_empty());
}
