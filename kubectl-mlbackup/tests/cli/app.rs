//! `app stop` / `app start` against the fake cluster, whose simulated controllers create and
//! remove pods a delay after a scale: exact round trips of replica counts, re-runs, dry runs,
//! waiting and timeouts, selection, permissions.

use std::collections::BTreeMap;
use std::time::Duration;

use mlbackup_testkit::kube::access::DenyRule;
use serde_json::{Value, json};

use crate::support::{FakeCluster, Run, Sandbox};

const ANNOTATION: &str = "mlbackup.datarobot.com/replicas";
/// The workloads `app stop` selects by default in the sandbox's population.
const APP: [&str; 5] = [
    "deployment/datarobot-prediction-server",
    "deployment/mmapp-app",
    "deployment/mmapp-worker",
    "deployment/pcs-pgpool",
    "statefulset/mmapp-scheduler",
];
const FAST: Duration = Duration::from_millis(100);

fn app(sandbox: &Sandbox, cluster: &FakeCluster, args: &[&str]) -> Run {
    let kubeconfig = cluster.kubeconfig_arg();
    let mut full = vec!["app"];
    full.extend_from_slice(args);
    full.push(kubeconfig.as_str());
    sandbox.run(&full)
}

/// `kind/name` -> (spec.replicas, the recorded annotation).
fn replicas(cluster: &FakeCluster) -> BTreeMap<String, (i64, Option<String>)> {
    cluster
        .workloads()
        .into_iter()
        .map(|(name, object)| {
            let recorded = object["metadata"]["annotations"][ANNOTATION]
                .as_str()
                .map(str::to_string);
            (
                name,
                (object["spec"]["replicas"].as_i64().unwrap(), recorded),
            )
        })
        .collect()
}

fn resource_versions(cluster: &FakeCluster) -> BTreeMap<String, String> {
    cluster
        .workloads()
        .into_iter()
        .map(|(name, object)| {
            (
                name,
                object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

/// `kind/name` -> result, from `-o json`.
fn results(run: &Run) -> BTreeMap<String, String> {
    run.json()["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let kind = match item["kind"].as_str() {
                Some("Deployment") => "deployment",
                Some("StatefulSet") => "statefulset",
                _ => "-",
            };
            (
                format!("{kind}/{}", item["name"].as_str().unwrap()),
                item["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn all(result: &str) -> BTreeMap<String, String> {
    APP.iter()
        .map(|name| (name.to_string(), result.to_string()))
        .collect()
}

/// The pods of the default app workloads still in the cluster (terminating included).
fn app_pods(cluster: &FakeCluster) -> Vec<String> {
    cluster
        .pod_names()
        .into_iter()
        .filter(|pod| !pod.starts_with("pcs-mongo-"))
        .collect()
}

#[test]
fn stop_then_start_brings_back_every_replica_count_exactly() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, FAST);
    let before = replicas(&cluster);
    assert_eq!(before["deployment/mmapp-worker"], (3, None));
    assert_eq!(before["deployment/mmapp-app"], (1, None));
    let mongo = cluster.workloads()["statefulset/pcs-mongo"].clone();

    let stop = app(&sandbox, &cluster, &["stop", "--yes", "-o", "json"]);
    stop.expect_code(0);
    assert_eq!(results(&stop), all("stopped"));
    let stopped = replicas(&cluster);
    for name in APP {
        let (count, recorded) = &stopped[name];
        assert_eq!(*count, 0, "{name}");
        assert_eq!(
            recorded.as_deref(),
            Some(before[name].0.to_string().as_str()),
            "{name}"
        );
    }
    // --wait (the default) returned once the pods were gone, terminating ones included.
    assert!(app_pods(&cluster).is_empty(), "{:?}", app_pods(&cluster));
    // The PCS database of another release is not the app's.
    assert_eq!(cluster.workloads()["statefulset/pcs-mongo"], mongo);

    let start = app(&sandbox, &cluster, &["start", "-o", "json"]);
    start.expect_code(0);
    assert_eq!(results(&start), all("started"));
    assert_eq!(replicas(&cluster), before, "counts back, annotations gone");
    // --wait returned once every replica was ready.
    for name in APP {
        let object = &cluster.workloads()[name];
        assert_eq!(
            object["status"]["readyReplicas"], object["spec"]["replicas"],
            "{name}: {}",
            object["status"]
        );
    }
    assert_eq!(app_pods(&cluster).len(), 2 + 1 + 3 + 2 + 1);
}

#[test]
fn a_second_stop_keeps_the_recorded_counts_and_writes_nothing() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, FAST);
    let before = replicas(&cluster);
    app(&sandbox, &cluster, &["stop", "--yes"]).expect_code(0);
    let recorded = replicas(&cluster);
    let versions = resource_versions(&cluster);
    let writes = cluster.writes();

    let again = app(&sandbox, &cluster, &["stop", "--yes", "-o", "json"]);
    again.expect_code(0);
    assert_eq!(results(&again), all("already-stopped"));
    assert_eq!(replicas(&cluster), recorded);
    assert_eq!(resource_versions(&cluster), versions);
    assert_eq!(cluster.writes(), writes, "a re-run sends no write");
    let worker = again.json()["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "mmapp-worker")
        .unwrap()
        .clone();
    assert_eq!(worker["replicasBefore"], 0);
    assert_eq!(worker["recorded"], 3);

    app(&sandbox, &cluster, &["start"]).expect_code(0);
    assert_eq!(replicas(&cluster), before);
}

#[test]
fn a_workload_scaled_up_after_a_stop_is_stopped_again_keeping_the_first_count() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, FAST);
    app(&sandbox, &cluster, &["stop", "--yes"]).expect_code(0);
    // Someone runs `kubectl scale` (the scale subresource) while the app should be down.
    let request = kube::core::Request::new("/apis/apps/v1/namespaces/dr-app/deployments")
        .patch_subresource(
            "scale",
            "mmapp-worker",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .unwrap();
    cluster.request(request).expect("scale through /scale");
    assert_eq!(
        replicas(&cluster)["deployment/mmapp-worker"],
        (1, Some("3".into()))
    );

    let again = app(&sandbox, &cluster, &["stop", "--yes", "-o", "json"]);
    again.expect_code(0);
    let mut expected = all("already-stopped");
    expected.insert("deployment/mmapp-worker".into(), "stopped".into());
    assert_eq!(results(&again), expected);
    assert_eq!(
        replicas(&cluster)["deployment/mmapp-worker"],
        (0, Some("3".into())),
        "the count recorded before the first stop is kept, never the 1 nor a 0"
    );
    app(&sandbox, &cluster, &["start"]).expect_code(0);
    assert_eq!(replicas(&cluster)["deployment/mmapp-worker"], (3, None));
}

#[test]
fn start_without_a_stop_changes_nothing() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, FAST);
    let versions = resource_versions(&cluster);
    let run = app(&sandbox, &cluster, &["start", "-o", "json"]);
    run.expect_code(0);
    assert_eq!(results(&run), all("not-stopped"));
    assert_eq!(resource_versions(&cluster), versions);
    assert_eq!(cluster.writes(), 0);
}

#[test]
fn a_workload_already_at_zero_is_reported_and_stays_at_zero() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, FAST);
    cluster
        .kube
        .add_app_workload(
            &mlbackup_testkit::kube::AppWorkload::deployment("dr-app", "mmapp-idle", 0)
                .label("release", "dr"),
        )
        .unwrap();
    let stop = app(&sandbox, &cluster, &["stop", "--yes", "-o", "json"]);
    stop.expect_code(0);
    assert_eq!(results(&stop)["deployment/mmapp-idle"], "already-at-zero");
    assert_eq!(replicas(&cluster)["deployment/mmapp-idle"], (0, None));
    let start = app(&sandbox, &cluster, &["start", "-o", "json"]);
    start.expect_code(0);
    assert_eq!(results(&start)["deployment/mmapp-idle"], "not-stopped");
    assert_eq!(replicas(&cluster)["deployment/mmapp-idle"], (0, None));
}

#[test]
fn dry_runs_change_nothing() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, FAST);
    let versions = resource_versions(&cluster);
    // No --yes needed: nothing is changed.
    let run = app(&sandbox, &cluster, &["stop", "--dry-run", "-o", "json"]);
    run.expect_code(0);
    assert_eq!(results(&run), all("would-stop"));
    assert_eq!(run.json()["dryRun"], true);
    assert_eq!(resource_versions(&cluster), versions);
    assert_eq!(cluster.writes(), 0);

    app(&sandbox, &cluster, &["stop", "--yes"]).expect_code(0);
    let versions = resource_versions(&cluster);
    let writes = cluster.writes();
    let run = app(&sandbox, &cluster, &["start", "--dry-run", "-o", "json"]);
    run.expect_code(0);
    assert_eq!(results(&run), all("would-start"));
    let worker = &run.json()["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "mmapp-worker")
        .unwrap()
        .clone();
    assert_eq!(
        (
            worker["replicasBefore"].clone(),
            worker["replicasAfter"].clone()
        ),
        (json!(0), json!(3))
    );
    assert_eq!(resource_versions(&cluster), versions);
    assert_eq!(cluster.writes(), writes);
}

#[test]
fn a_too_short_timeout_names_what_did_not_finish_and_a_rerun_completes() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, Duration::from_millis(1500));
    let run = app(&sandbox, &cluster, &["stop", "--yes", "--timeout", "200ms"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----
    KIND          NAME                          BEFORE   AFTER   RECORDED   RESULT      DETAIL
    deployment    datarobot-prediction-server   2        0       2          timed-out   not finished after 200ms: its controller has not acted on the change yet
    deployment    mmapp-app                     1        0       1          timed-out   not finished after 200ms: its controller has not acted on the change yet
    statefulset   mmapp-scheduler               1        0       1          timed-out   not finished after 200ms: its controller has not acted on the change yet
    deployment    mmapp-worker                  3        0       3          timed-out   not finished after 200ms: its controller has not acted on the change yet
    deployment    pcs-pgpool                    2        0       2          timed-out   not finished after 200ms: its controller has not acted on the change yet

    5 workloads in dr-app: 0 scaled to 0, 0 already at 0, 0 failed, 5 not finished.
    Not finished after 200ms: deployment/datarobot-prediction-server, deployment/mmapp-app, statefulset/mmapp-scheduler, deployment/mmapp-worker, deployment/pcs-pgpool.

    ----- stderr -----
    "#);
    // The scale-down itself happened; the pods were still there.
    assert!(replicas(&cluster).values().filter(|(n, _)| *n == 0).count() >= APP.len());
    assert!(!app_pods(&cluster).is_empty());

    // Waiting (the default 10m) finishes it; nothing is scaled twice.
    let rerun = app(&sandbox, &cluster, &["stop", "--yes", "-o", "json"]);
    rerun.expect_code(0);
    assert_eq!(results(&rerun), all("already-stopped"));
    assert!(app_pods(&cluster).is_empty(), "{:?}", app_pods(&cluster));
}

#[test]
fn no_wait_returns_before_the_pods_are_gone() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, Duration::from_secs(3));
    let run = app(
        &sandbox,
        &cluster,
        &["stop", "--yes", "--no-wait", "-o", "json"],
    );
    run.expect_code(0);
    assert_eq!(run.json()["waited"], false);
    assert_eq!(results(&run), all("stopped"));
    assert!(
        !app_pods(&cluster).is_empty(),
        "the controllers have not acted yet"
    );
}

#[test]
fn a_selector_replaces_the_release_labels_and_missing_extras_are_reported() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, FAST);
    let before = replicas(&cluster);
    let run = app(
        &sandbox,
        &cluster,
        &[
            "stop",
            "--yes",
            "-l",
            "release=pcs",
            "--no-extras",
            "--extra",
            "mmapp-app",
            "--extra",
            "no-such-thing",
            "-o",
            "json",
        ],
    );
    run.expect_code(0);
    let expected: BTreeMap<String, String> = [
        ("deployment/pcs-pgpool", "stopped"),
        ("statefulset/pcs-mongo", "stopped"),
        ("deployment/mmapp-app", "stopped"),
        ("-/no-such-thing", "not-found"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(results(&run), expected);
    assert_eq!(run.json()["summary"]["notFound"], 1);
    let after = replicas(&cluster);
    assert_eq!(
        after["deployment/mmapp-worker"],
        before["deployment/mmapp-worker"]
    );
    assert_eq!(after["statefulset/pcs-mongo"], (0, Some("3".into())));
}

#[test]
fn a_missing_patch_permission_fails_those_workloads_with_the_can_i_hint() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, FAST);
    cluster
        .kube
        .access()
        .deny(DenyRule::new("patch", "apps", "deployments"));
    let run = app(&sandbox, &cluster, &["stop", "--yes"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----
    KIND          NAME                          BEFORE   AFTER   RECORDED   RESULT    DETAIL
    deployment    datarobot-prediction-server   2        2       2          failed    deployments.apps "datarobot-prediction-server" is forbidden: User "sandbox-admin" cannot patch resource "deployments" in API group "apps" in the namespace "dr-app" (ask a cluster admin for this permission; check it with `kubectl auth can-i patch deployments.apps -n dr-app`)
    deployment    mmapp-app                     1        1       1          failed    deployments.apps "mmapp-app" is forbidden: User "sandbox-admin" cannot patch resource "deployments" in API group "apps" in the namespace "dr-app" (ask a cluster admin for this permission; check it with `kubectl auth can-i patch deployments.apps -n dr-app`)
    statefulset   mmapp-scheduler               1        0       1          stopped
    deployment    mmapp-worker                  3        3       3          failed    deployments.apps "mmapp-worker" is forbidden: User "sandbox-admin" cannot patch resource "deployments" in API group "apps" in the namespace "dr-app" (ask a cluster admin for this permission; check it with `kubectl auth can-i patch deployments.apps -n dr-app`)
    deployment    pcs-pgpool                    2        2       2          failed    deployments.apps "pcs-pgpool" is forbidden: User "sandbox-admin" cannot patch resource "deployments" in API group "apps" in the namespace "dr-app" (ask a cluster admin for this permission; check it with `kubectl auth can-i patch deployments.apps -n dr-app`)

    5 workloads in dr-app: 1 scaled to 0, 0 already at 0, 4 failed.
    Their pods are gone.
    Replica counts are recorded in the annotation mlbackup.datarobot.com/replicas; bring the app back with `kubectl mlbackup app start`.

    ----- stderr -----
    "#);
    assert_eq!(replicas(&cluster)["deployment/mmapp-worker"], (3, None));

    cluster
        .kube
        .access()
        .deny(DenyRule::new("list", "apps", "statefulsets"));
    let run = app(&sandbox, &cluster, &["start"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot find the app's workloads
      caused by: statefulsets.apps is forbidden: User "sandbox-admin" cannot list resource "statefulsets" in API group "apps" in the namespace "dr-app"
    hint: ask a cluster admin for this permission; check it with `kubectl auth can-i list statefulsets.apps -n dr-app`
    "#);
}

#[test]
fn stop_asks_first_and_refuses_without_a_terminal() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, FAST);
    let run = app(&sandbox, &cluster, &["stop"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: refusing to scale 5 app workloads in dr-app to 0 without confirmation: stdin is not a terminal
    hint: pass --yes to stop the app without being asked; --dry-run shows the plan
    "#);
    assert_eq!(cluster.writes(), 0);

    let kubeconfig = cluster.kubeconfig_arg();
    if let Some(run) = sandbox.run_on_terminal(&["app", "stop", &kubeconfig], "n\n") {
        mlbackup_testkit::assert_run_snapshot!("stop_not_confirmed", run.shown(&sandbox));
        assert_eq!(cluster.writes(), 0);
    }
}

#[test]
fn the_namespace_comes_from_the_flag_then_n_then_dr_core_namespace() {
    let sandbox = Sandbox::new().env("DR_CORE_NAMESPACE", "default");
    let cluster = FakeCluster::with_app(&sandbox, FAST);
    let run = app(&sandbox, &cluster, &["stop", "--dry-run"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: no app workloads in the namespace `default` (selected by release=dr or app.kubernetes.io/instance=dr, and by name pcs-pgpool)
    hint: name the namespace DataRobot is installed in with --app-namespace or DR_CORE_NAMESPACE; check the labels with `kubectl get deploy,sts --show-labels -n NAMESPACE` and pass -l
    "#);
    app(&sandbox, &cluster, &["stop", "--dry-run", "-n", "dr-app"]).expect_code(0);
    app(
        &sandbox,
        &cluster,
        &[
            "stop",
            "--dry-run",
            "-n",
            "default",
            "--app-namespace",
            "dr-app",
        ],
    )
    .expect_code(0);
}

#[test]
fn tables() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, FAST);
    let dry = app(&sandbox, &cluster, &["stop", "--dry-run"]);
    dry.expect_code(0);
    mlbackup_testkit::assert_run_snapshot!("stop_dry_run", dry.shown(&sandbox));
    let stop = app(
        &sandbox,
        &cluster,
        &["stop", "--yes", "--extra", "pcs-rabbitmq"],
    );
    stop.expect_code(0);
    mlbackup_testkit::assert_run_snapshot!("stop", stop.shown(&sandbox));
    let start = app(&sandbox, &cluster, &["start"]);
    start.expect_code(0);
    mlbackup_testkit::assert_run_snapshot!("start", start.shown(&sandbox));
}

#[test]
fn json_reports_every_workload() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, FAST);
    let run = app(&sandbox, &cluster, &["stop", "--yes", "-o", "json"]);
    run.expect_code(0);
    let outcome: Value = run.json();
    assert_eq!(outcome["action"], "stop");
    assert_eq!(outcome["namespace"], "dr-app");
    assert_eq!(outcome["annotation"], ANNOTATION);
    assert_eq!(
        outcome["selection"],
        json!({"selectors": ["release=dr", "app.kubernetes.io/instance=dr"], "extras": ["pcs-pgpool"]})
    );
    assert_eq!(outcome["waited"], true);
    assert_eq!(outcome["timeoutSeconds"], 600.0);
    assert_eq!(
        outcome["summary"],
        json!({"total": 5, "changed": 5, "unchanged": 0, "notFound": 0, "timedOut": 0, "failed": 0})
    );
    let pgpool = outcome["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "pcs-pgpool")
        .unwrap();
    assert_eq!(
        *pgpool,
        json!({"kind": "Deployment", "name": "pcs-pgpool", "selectedBy": "name",
               "replicasBefore": 2, "replicasAfter": 0, "recorded": 2, "result": "stopped"})
    );
}

#[test]
fn a_change_between_read_and_write_is_read_again_and_the_newest_count_recorded() {
    use mlbackup_testkit::faults::{FaultRule, Gate};
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, FAST);
    // The stop's PATCH of mmapp-worker is held; meanwhile an autoscaler scales it to 5.
    let gate = Gate::new();
    cluster.kube.faults().add(
        FaultRule::new("/deployments/mmapp-worker", gate.fault(), Some(1))
            .with_method(http::Method::PATCH),
    );
    let kubeconfig = cluster.kubeconfig_arg();
    let child = sandbox.spawn(&["app", "stop", "--yes", "-o", "json", &kubeconfig]);
    gate.wait_held(1);
    let request = kube::core::Request::new("/apis/apps/v1/namespaces/dr-app/deployments")
        .patch(
            "mmapp-worker",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .unwrap();
    cluster.request(request).expect("the autoscaler's patch");
    gate.open();
    let run = Run::from(child.wait_with_output().unwrap());
    run.expect_code(0);
    assert_eq!(results(&run), all("stopped"));
    assert_eq!(
        replicas(&cluster)["deployment/mmapp-worker"],
        (0, Some("5".into())),
        "the 409 made it read the workload again: 5 is what start must bring back"
    );
    let conflicts = cluster
        .kube
        .requests()
        .count(|r| r.method == "PATCH" && r.status == 409);
    assert_eq!(conflicts, 1);
}
