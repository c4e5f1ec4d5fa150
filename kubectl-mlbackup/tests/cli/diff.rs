//! `diff` against the fake cluster: missing, differs (with a unified diff), same and extra,
//! exit 0 only when the cluster matches the backup.

use mlbackup_testkit::kube::FakeKubeOptions;
use mlbackup_testkit::sample::SampleSpec;
use serde_json::json;

use crate::support::{FakeCluster, Run, Sandbox};

fn diff(sandbox: &Sandbox, cluster: &FakeCluster, extra: &[&str]) -> Run {
    let kubeconfig = cluster.kubeconfig_arg();
    let mut args = vec!["diff", "b", kubeconfig.as_str(), "--dir", "backups"];
    args.extend_from_slice(extra);
    sandbox.run(&args)
}

#[test]
fn diff_sorts_objects_into_missing_differs_same_and_extra() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(
        &sandbox,
        SampleSpec {
            lrs: 4,
            spark: 1,
            other: 0,
            namespaces: 1,
            ..SampleSpec::default()
        },
        FakeKubeOptions::default(),
    );
    let kubeconfig = cluster.kubeconfig_arg();
    sandbox
        .run(&["backup", &kubeconfig, "--dir", "backups", "--name", "b"])
        .expect_code(0);

    let run = diff(&sandbox, &cluster, &[]);
    run.expect_code(0);
    assert_eq!(
        run.stdout,
        "No differences between b and fake: 0 missing in the cluster, 0 differ, 4 the same, 0 \
         extra in the cluster.\n"
    );

    let mut deployments: Vec<serde_json::Value> = cluster
        .kube
        .list("lrs", None)
        .into_iter()
        .filter(|o| o["metadata"]["labels"]["datarobot-lrs-type"] == "deployment")
        .collect();
    deployments.sort_by_key(|o| o["metadata"]["name"].as_str().unwrap().to_string());
    let name = |i: usize| {
        deployments[i]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(cluster.kube.remove("lrs", Some("dr-app"), &name(0)));
    cluster.merge_patch(
        "dr-app",
        &name(1),
        json!({"spec": {"replicas": 5}, "metadata": {"annotations": {"note": "scaled by hand"}}}),
    );
    let mut extra = deployments[2].clone();
    extra["metadata"] = json!({
        "name": "cm-made-after-the-backup",
        "namespace": "dr-app",
        "labels": {"datarobot-lrs-type": "deployment"},
    });
    cluster.kube.insert(extra).unwrap();
    // Outside the backup's selector: not extra.
    let mut other = deployments[3].clone();
    other["metadata"] = json!({
        "name": "a-custom-app",
        "namespace": "dr-app",
        "labels": {"datarobot-lrs-type": "custom_application"},
    });
    cluster.kube.insert(other).unwrap();
    cluster.kube.requests().clear();

    let run = diff(&sandbox, &cluster, &[]);
    run.expect_code(1);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----
    STATUS    NAMESPACE   NAME                          TYPE
    missing   dr-app      cm-695b7d90f9681a64d3301861   deployment
    differs   dr-app      cm-695b8ba03248c9dab0f4d125   deployment
    extra     dr-app      cm-made-after-the-backup      deployment

    --- backup/dr-app/cm-695b8ba03248c9dab0f4d125.yaml
    +++ cluster/dr-app/cm-695b8ba03248c9dab0f4d125
    @@ -3,6 +3,7 @@
         datarobot.com/created-by: mlops-admin@example.com
         datarobot.com/custom-model-version: "2"
         datarobot.com/model-name: fraud-detector
    +    note: scaled by hand
       labels:
         app.kubernetes.io/managed-by: lrs-operator
         datarobot-lrs-type: deployment
    @@ -36,7 +37,7 @@
           path: /ping/
           port: 8080
         periodSeconds: 10
    -  replicas: 1
    +  replicas: 5
       resources:
         limits:
           cpu: 500m

    Differences between b and fake: 1 missing in the cluster, 1 differ, 2 the same, 1 extra in the cluster.

    ----- stderr -----
    "#);

    let run = diff(&sandbox, &cluster, &["-o", "json"]);
    run.expect_code(1);
    let outcome = run.json();
    assert_eq!(outcome["identical"], false);
    assert_eq!(
        outcome["summary"],
        json!({"total": 5, "missing": 1, "differs": 1, "same": 2, "extra": 1})
    );
    assert_eq!(outcome["selector"], "datarobot-lrs-type=deployment");
    let items = outcome["items"].as_array().unwrap();
    let statuses: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i["status"].as_str().unwrap(), i["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("missing", name(0).as_str()),
            ("differs", name(1).as_str()),
            ("extra", "cm-made-after-the-backup"),
            ("same", name(2).as_str()),
            ("same", name(3).as_str()),
        ]
    );
    let patch = items[1]["diff"].as_str().unwrap();
    assert!(patch.contains("+    note: scaled by hand\n"), "{patch}");
    assert!(patch.contains("+  replicas: 5\n"), "{patch}");
    assert_eq!(items[2]["path"], serde_json::Value::Null);
    assert_eq!(cluster.writes(), 0, "diff only reads");
}
