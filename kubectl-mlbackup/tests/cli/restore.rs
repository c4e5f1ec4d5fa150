//! `restore` against the fake cluster: a whole backup into an empty cluster, the shell loop's
//! raw YAML, the existing-object policies, namespace mapping, both dry runs, bad files, and a
//! second run that changes nothing.

use std::path::{Path, PathBuf};

use mlbackup_testkit::kube::FakeKubeOptions;
use mlbackup_testkit::kube::access::DenyRule;
use mlbackup_testkit::sample::SampleSpec;
use serde_json::{Value, json};

use crate::support::{FakeCluster, Run, Sandbox};

fn spread(lrs: usize, namespaces: usize) -> SampleSpec {
    SampleSpec {
        lrs,
        spark: 2,
        other: 1,
        namespaces,
        ..SampleSpec::default()
    }
}

/// Backs up every LRS type of `cluster` into `backups/<name>`; returns the folder.
fn take_backup(sandbox: &Sandbox, cluster: &FakeCluster, name: &str) -> PathBuf {
    let kubeconfig = cluster.kubeconfig_arg();
    sandbox
        .run(&[
            "backup",
            &kubeconfig,
            "--all-types",
            "--dir",
            "backups",
            "--name",
            name,
        ])
        .expect_code(0);
    sandbox.path("backups").join(name)
}

fn restore(sandbox: &Sandbox, cluster: &FakeCluster, backup: &str, extra: &[&str]) -> Run {
    let kubeconfig = cluster.kubeconfig_arg();
    let mut args = vec!["restore", backup, kubeconfig.as_str(), "--dir", "backups"];
    args.extend_from_slice(extra);
    sandbox.run(&args)
}

/// Labels, annotations and spec: what a restore must bring back.
fn desired(object: &Value) -> Value {
    json!({
        "labels": object["metadata"]["labels"],
        "annotations": object["metadata"]["annotations"],
        "finalizers": object["metadata"]["finalizers"],
        "spec": object["spec"],
    })
}

fn results(run: &Run) -> Vec<(String, String)> {
    run.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                format!(
                    "{}/{}",
                    item["namespace"].as_str().unwrap(),
                    item["name"].as_str().unwrap()
                ),
                item["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn journal(folder: &Path) -> Vec<Value> {
    match std::fs::read_to_string(folder.join("journal.jsonl")) {
        Ok(text) => text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_full_backup_restores_into_an_empty_cluster_and_a_second_run_changes_nothing() {
    let sandbox = Sandbox::new();
    let source = FakeCluster::start(&sandbox, spread(9, 3), FakeKubeOptions::default());
    let folder = take_backup(&sandbox, &source, "full");
    let target = FakeCluster::empty(&sandbox, "kubeconfig-new");

    // The namespaces do not exist in the new cluster: every object says so, nothing is made.
    let run = restore(&sandbox, &target, "full", &["-o", "json"]);
    mlbackup_testkit::assert_run_snapshot!("no_namespaces", run.shown(&sandbox));
    assert_eq!(run.json()["summary"]["failed"], 12);
    assert!(target.kube.list("lrs", None).is_empty());

    let run = restore(
        &sandbox,
        &target,
        "full",
        &["--create-namespaces", "-o", "json"],
    );
    run.expect_code(0);
    let outcome = run.json();
    assert_eq!(outcome["summary"]["created"], 12, "{outcome:#}");
    assert_eq!(
        outcome["namespacesCreated"],
        json!(["dr-app", "dr-tenant-1", "dr-tenant-2"])
    );
    for original in source.kube.list("lrs", None) {
        let namespace = original["metadata"]["namespace"].as_str().unwrap();
        let name = original["metadata"]["name"].as_str().unwrap();
        let restored = target.served(namespace, name);
        assert_eq!(desired(&restored), desired(&original), "{namespace}/{name}");
        assert_ne!(
            restored["metadata"]["uid"], original["metadata"]["uid"],
            "a new object, not a copy of the old identity"
        );
        assert!(restored.get("status").is_none(), "the operator sets status");
    }
    let any = &target.kube.list("lrs", None)[0];
    assert_eq!(
        any["metadata"]["managedFields"][0]["manager"],
        "kubectl-mlbackup"
    );
    assert_eq!(any["metadata"]["managedFields"][0]["operation"], "Apply");

    // Again: nothing to do, no request that writes, no resourceVersion moves.
    let versions = target.resource_versions();
    target.kube.requests().clear();
    let run = restore(
        &sandbox,
        &target,
        "full",
        &["--create-namespaces", "-o", "json"],
    );
    run.expect_code(0);
    assert_eq!(run.json()["summary"]["unchanged"], 12);
    assert_eq!(target.resource_versions(), versions);
    assert_eq!(
        target.writes(),
        0,
        "{:#?}",
        target.kube.requests().entries()
    );
    let lists = target.kube.requests().count(|r| r.path.ends_with("/lrs"));
    assert_eq!(
        lists, 3,
        "one list per namespace, never a request per object"
    );

    let records = journal(&folder);
    assert_eq!(records.len(), 3, "every real run is journaled");
    assert_eq!(records[0]["step"], "restore");
    assert_eq!(records[0]["summary"]["failed"], 12);
    assert_eq!(records[1]["summary"]["created"], 12);
    assert_eq!(records[2]["summary"]["unchanged"], 12);
    assert_eq!(
        records[0]["failures"][0],
        "dr-app/cm-695b7d90f9681a64d3301861: namespace dr-app does not exist; create it, pass \
         --create-namespaces, or restore elsewhere with --namespace-map"
    );
}

/// Writes the objects as the documented loop does: `kubectl get lrs NAME -o yaml >
/// NAME.yaml`, flat, with uid, resourceVersion, creationTimestamp, managedFields and status.
fn shell_loop_folder(sandbox: &Sandbox, cluster: &FakeCluster, name: &str) -> PathBuf {
    let folder = sandbox.path("backups").join(name);
    std::fs::create_dir_all(&folder).unwrap();
    for object in cluster.kube.list("lrs", None) {
        if object["metadata"]["labels"]["datarobot-lrs-type"] != "deployment" {
            continue;
        }
        let file = folder.join(format!(
            "{}.yaml",
            object["metadata"]["name"].as_str().unwrap()
        ));
        std::fs::write(file, serde_yaml::to_string(&object).unwrap()).unwrap();
    }
    folder
}

#[test]
fn the_shell_loops_raw_yaml_restores_although_the_server_rejects_it_as_is() {
    let sandbox = Sandbox::new();
    let source = FakeCluster::start(&sandbox, spread(4, 2), FakeKubeOptions::default());
    let folder = shell_loop_folder(&sandbox, &source, "lrs_backup_2025_01_02_03_04");
    let target = FakeCluster::empty(&sandbox, "kubeconfig-new");
    for namespace in ["dr-app", "dr-tenant-1"] {
        target.kube.create_namespace(namespace);
    }

    // What `kubectl create -f` of such a file gets.
    let file = std::fs::read_dir(&folder)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let raw: Value = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(raw["metadata"]["resourceVersion"].is_string());
    assert!(raw["metadata"]["uid"].is_string());
    let namespace = raw["metadata"]["namespace"].as_str().unwrap();
    let request = kube::core::Request::new(format!(
        "/apis/lrs.datarobot.com/v1/namespaces/{namespace}/lrs"
    ))
    .create(&Default::default(), serde_json::to_vec(&raw).unwrap())
    .unwrap();
    let refused = target.request(request).unwrap_err();
    assert!(
        refused.contains("resourceVersion should not be set on objects to be created"),
        "{refused}"
    );

    // A file the loop left empty because `kubectl get` failed: nothing happens, it is named.
    std::fs::write(folder.join("cm-broken.yaml"), "").unwrap();
    let run = restore(&sandbox, &target, "lrs_backup_2025_01_02_03_04", &[]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: 1 file of the backup cannot be restored:
      cm-broken.yaml: the file is empty
    hint: nothing was changed; fix or remove these files, or pass --skip-invalid to go on without them
    "#);
    assert!(target.kube.list("lrs", None).is_empty());

    let run = restore(
        &sandbox,
        &target,
        "lrs_backup_2025_01_02_03_04",
        &["--skip-invalid", "-o", "json"],
    );
    run.expect_code(0);
    let outcome = run.json();
    assert_eq!(outcome["summary"]["created"], 4);
    assert_eq!(outcome["invalidFiles"][0]["path"], "cm-broken.yaml");
    assert_eq!(outcome["journal"], Value::Null);
    assert_eq!(
        outcome["journalNote"],
        "the backup has no manifest.json, so it keeps no journal"
    );
    assert!(
        !folder.join("journal.jsonl").exists(),
        "the folder stays a plain folder"
    );
    for object in target.kube.list("lrs", None) {
        let namespace = object["metadata"]["namespace"].as_str().unwrap();
        let name = object["metadata"]["name"].as_str().unwrap();
        assert_eq!(desired(&object), desired(&source.served(namespace, name)));
    }
}

/// The sample's deployment LRSes, as `namespace/name`, sorted.
fn deployments(cluster: &FakeCluster) -> Vec<(String, String)> {
    cluster
        .kube
        .list("lrs", None)
        .into_iter()
        .filter(|o| o["metadata"]["labels"]["datarobot-lrs-type"] == "deployment")
        .map(|o| {
            (
                o["metadata"]["namespace"].as_str().unwrap().to_string(),
                o["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn existing_objects_are_skipped_or_updated_as_asked() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(3, 1), FakeKubeOptions::default());
    take_backup(&sandbox, &cluster, "before");
    let objects = deployments(&cluster);
    let (changed_ns, changed) = &objects[0];
    let (lost_ns, lost) = &objects[1];
    cluster.merge_patch(
        changed_ns,
        changed,
        json!({"spec": {"replicas": 7}, "metadata": {"labels": {"team": "ml"}}}),
    );
    assert!(cluster.kube.remove("lrs", Some(lost_ns), lost));
    let original = cluster.kube.list("lrs", None).len();

    let run = restore(&sandbox, &cluster, "before", &["--type", "deployment"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 0
    ----- stdout -----
    NAMESPACE   NAME                          TYPE         RESULT            MESSAGE
    dr-app      cm-695b7d90f9681a64d3301861   deployment   skipped-differs   exists and differs from the backup (--existing=update overwrites)
    dr-app      cm-695b8ba03248c9dab0f4d125   deployment   created
    dr-app      cm-695b99b02cf33517376425d3   deployment   unchanged

    Restored 3 LRS objects of before into fake: 1 created, 0 updated, 1 unchanged, 1 skipped (differ from the backup), 0 failed.
    Recorded in backups/before/journal.jsonl

    ----- stderr -----
    "#);
    assert_eq!(cluster.kube.list("lrs", None).len(), original + 1);
    assert_eq!(cluster.served(changed_ns, changed)["spec"]["replicas"], 7);

    // Someone else changes it further: a spec field added, a block removed, an annotation.
    let before = cluster.served(changed_ns, changed);
    assert!(before["spec"]["readinessProbe"].is_object());
    cluster.merge_patch(
        changed_ns,
        changed,
        json!({
            "spec": {"priorityClassName": "high", "readinessProbe": null},
            "metadata": {"annotations": {"note": "hotfix"}},
        }),
    );
    let backed_up: Value = serde_yaml::from_str(
        &std::fs::read_to_string(
            sandbox
                .path("backups/before")
                .join(changed_ns)
                .join(format!("{changed}.yaml")),
        )
        .unwrap(),
    )
    .unwrap();
    let kubeconfig = cluster.kubeconfig_arg();
    let diff = ["diff", "before", kubeconfig.as_str(), "--dir", "backups"];
    sandbox.run(&diff).expect_code(1);

    cluster.kube.requests().clear();
    let run = restore(
        &sandbox,
        &cluster,
        "before",
        &["--existing=update", "--type", "deployment", "-o", "json"],
    );
    run.expect_code(0);
    let outcome = run.json();
    assert_eq!(outcome["existing"], "update");
    let by_object = results(&run);
    assert!(by_object.contains(&(format!("{changed_ns}/{changed}"), "updated".into())));
    assert_eq!(outcome["summary"]["unchanged"], 2, "{outcome:#}");
    assert_eq!(outcome["summary"]["updated"], 1, "{outcome:#}");
    let restored = cluster.served(changed_ns, changed);
    // Labels, annotations and spec are the backup's: what others added is gone too.
    for field in ["labels", "annotations"] {
        assert_eq!(
            restored["metadata"][field], backed_up["metadata"][field],
            "{field}"
        );
    }
    assert_eq!(restored["spec"], backed_up["spec"]);
    // One guarded write: a PUT carrying the resourceVersion it was read at.
    let writes: Vec<String> = cluster
        .kube
        .requests()
        .entries()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        writes,
        [format!(
            "PUT /apis/lrs.datarobot.com/v1/namespaces/{changed_ns}/lrs/{changed}"
        )]
    );
    // The operator's finalizer and the object's identity stay.
    assert_eq!(restored["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(
        restored["metadata"]["finalizers"],
        before["metadata"]["finalizers"]
    );
    sandbox.run(&diff).expect_code(0);

    // Again: everything is unchanged and nothing is sent.
    let versions = cluster.resource_versions();
    cluster.kube.requests().clear();
    let run = restore(
        &sandbox,
        &cluster,
        "before",
        &["--existing=update", "--type", "deployment", "-o", "json"],
    );
    run.expect_code(0);
    assert_eq!(cluster.resource_versions(), versions, "nothing moves");
    assert_eq!(
        cluster.writes(),
        0,
        "{:#?}",
        cluster.kube.requests().entries()
    );
    let again = run.json();
    assert_eq!(again["summary"]["updated"], 0, "{again:#}");
    assert_eq!(again["summary"]["unchanged"], 3);
    assert!(
        again["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.get("message").is_none()),
        "{again:#}"
    );
}

#[test]
fn namespaces_map_to_others_and_filters_narrow_the_restore() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(4, 2), FakeKubeOptions::default());
    take_backup(&sandbox, &cluster, "b");
    let before = cluster.kube.list("lrs", None).len();

    let run = restore(
        &sandbox,
        &cluster,
        "b",
        &[
            "--namespace-map",
            "dr-tenant-1=dr-copy",
            "-n",
            "dr-tenant-1",
            "-o",
            "json",
        ],
    );
    run.expect_code(1);
    assert!(
        run.json()["items"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("namespace dr-copy does not exist"),
    );
    let run = restore(
        &sandbox,
        &cluster,
        "b",
        &[
            "--namespace-map",
            "dr-tenant-1=dr-copy",
            "-n",
            "dr-tenant-1",
            "--create-namespaces",
            "-o",
            "json",
        ],
    );
    run.expect_code(0);
    let outcome = run.json();
    // dr-tenant-1 holds deployment 1 and 3, spark session 1.
    assert_eq!(outcome["summary"]["created"], 3, "{outcome:#}");
    for item in outcome["items"].as_array().unwrap() {
        assert_eq!(item["namespace"], "dr-copy");
        assert_eq!(item["sourceNamespace"], "dr-tenant-1");
        let name = item["name"].as_str().unwrap();
        assert_eq!(
            desired(&cluster.served("dr-copy", name)),
            desired(&cluster.served("dr-tenant-1", name))
        );
        assert_eq!(
            cluster.served("dr-copy", name)["metadata"]["namespace"],
            "dr-copy"
        );
    }
    assert_eq!(cluster.kube.list("lrs", None).len(), before + 3);

    // --only and --type pick objects by their place in the backup.
    let (namespace, name) = deployments(&cluster)
        .into_iter()
        .find(|(ns, _)| ns == "dr-app")
        .unwrap();
    let only = format!("{namespace}/{name}");
    let run = restore(
        &sandbox,
        &cluster,
        "b",
        &[
            "--only",
            &only,
            "--namespace-map",
            "dr-app=dr-other",
            "--create-namespaces",
            "-o",
            "json",
        ],
    );
    run.expect_code(0);
    assert_eq!(
        results(&run),
        [(format!("dr-other/{name}"), "created".into())]
    );
    let run = restore(
        &sandbox,
        &cluster,
        "b",
        &["--type", "spark_app", "-o", "json"],
    );
    run.expect_code(0);
    assert_eq!(run.json()["summary"]["total"], 2);

    // Mistakes are usage errors, before anything happens.
    let run = restore(&sandbox, &cluster, "b", &["--only", "dr-app/nope"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: --only: not in the backup: dr-app/nope
    hint: name objects by their namespace and name in the backup; list them with `kubectl mlbackup show BACKUP --files`
    "#);
    let run = restore(&sandbox, &cluster, "b", &["--namespace-map", "typo=x"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: --namespace-map: the backup has no object in namespace typo
    hint: the backup's namespaces are dr-app, dr-tenant-1; see `kubectl mlbackup show b`
    "#);
    let run = restore(&sandbox, &cluster, "b", &["--namespace-map", "Bad=x"]);
    run.expect_code(2);
}

#[test]
fn dry_runs_change_nothing() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(3, 1), FakeKubeOptions::default());
    let folder = take_backup(&sandbox, &cluster, "b");
    let objects = deployments(&cluster);
    cluster.merge_patch(
        &objects[0].0,
        &objects[0].1,
        json!({"spec": {"replicas": 9}}),
    );
    cluster
        .kube
        .remove("lrs", Some(&objects[1].0), &objects[1].1);
    let versions = cluster.resource_versions();

    cluster.kube.requests().clear();
    let run = restore(
        &sandbox,
        &cluster,
        "b",
        &[
            "--dry-run=client",
            "--existing=update",
            "--namespace-map",
            "dr-app=dr-new",
        ],
    );
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----
    DRY RUN (client): nothing was changed; the results say what a restore would do.

    NAMESPACE   NAME                                          TYPE                 RESULT   MESSAGE
    dr-new      cm-695b7d90f9681a64d3301861                   deployment           failed   namespace dr-new does not exist; create it, pass --create-namespaces, or restore elsewhere with --namespace-map
    dr-new      cm-695b8ba03248c9dab0f4d125                   deployment           failed   namespace dr-new does not exist; create it, pass --create-namespaces, or restore elsewhere with --namespace-map
    dr-new      cm-695b99b02cf33517376425d3                   deployment           failed   namespace dr-new does not exist; create it, pass --create-namespaces, or restore elsewhere with --namespace-map
    dr-new      custom-application-695b7d9030e8b9424cd39632   custom_application   failed   namespace dr-new does not exist; create it, pass --create-namespaces, or restore elsewhere with --namespace-map
    dr-new      spark-session-695b7d9079520305ebd55ac8        spark_app            failed   namespace dr-new does not exist; create it, pass --create-namespaces, or restore elsewhere with --namespace-map
    dr-new      spark-session-695b7dcc43bd0a27cb68f270        spark_app            failed   namespace dr-new does not exist; create it, pass --create-namespaces, or restore elsewhere with --namespace-map

    Would restore 6 LRS objects of b into fake: 0 created, 0 updated, 0 unchanged, 0 skipped (differ from the backup), 6 failed.
    Not recorded: dry runs change nothing and are not journaled

    ----- stderr -----
    "#);
    assert_eq!(
        cluster.writes(),
        0,
        "{:#?}",
        cluster.kube.requests().entries()
    );

    let run = restore(
        &sandbox,
        &cluster,
        "b",
        &["--dry-run", "--existing=update", "-o", "json"],
    );
    run.expect_code(0);
    let outcome = run.json();
    assert_eq!(
        outcome["dryRun"], "client",
        "a bare --dry-run is client, as in kubectl"
    );
    assert_eq!(outcome["summary"]["created"], 1);
    assert_eq!(outcome["summary"]["updated"], 1);
    assert_eq!(cluster.writes(), 0);

    let run = restore(
        &sandbox,
        &cluster,
        "b",
        &[
            "--dry-run=server",
            "--existing=update",
            "--create-namespaces",
            "--namespace-map",
            "dr-app=dr-new",
            "-o",
            "json",
        ],
    );
    run.expect_code(0);
    let outcome = run.json();
    assert_eq!(outcome["summary"]["created"], 6, "{outcome:#}");
    assert_eq!(outcome["namespacesCreated"], json!(["dr-new"]));
    let run = restore(
        &sandbox,
        &cluster,
        "b",
        &["--dry-run=server", "--existing=update", "-o", "json"],
    );
    run.expect_code(0);
    let outcome = run.json();
    assert_eq!(outcome["summary"]["created"], 1, "{outcome:#}");
    assert_eq!(outcome["summary"]["updated"], 1);
    let writes: Vec<_> = cluster
        .kube
        .requests()
        .entries()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(!writes.is_empty());
    for write in &writes {
        assert!(
            write
                .query
                .as_deref()
                .unwrap_or_default()
                .contains("dryRun=All"),
            "{write:#?}"
        );
    }
    assert_eq!(cluster.resource_versions(), versions);
    assert!(cluster.kube.get("namespaces", None, "dr-new").is_none());
    assert!(journal(&folder).is_empty(), "dry runs are not journaled");
}

#[test]
fn a_corrupted_file_stops_the_restore_before_any_change() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(3, 1), FakeKubeOptions::default());
    let folder = take_backup(&sandbox, &cluster, "b");
    for (namespace, name) in deployments(&cluster) {
        cluster.kube.remove("lrs", Some(&namespace), &name);
    }
    let files: Vec<String> = deployments_files(&folder);
    std::fs::write(folder.join(&files[0]), "spec: [unclosed").unwrap();
    let pod = std::fs::read_to_string(folder.join(&files[1]))
        .unwrap()
        .replace("kind: LongRunningService", "kind: Pod");
    std::fs::write(folder.join(&files[1]), pod).unwrap();

    cluster.kube.requests().clear();
    let run = restore(&sandbox, &cluster, "b", &[]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: 2 files of the backup cannot be restored:
      dr-app/cm-695b7d90f9681a64d3301861.yaml: 15 bytes with SHA-256 [HASH], the manifest says 1678 bytes with SHA-256 [HASH]
      dr-app/cm-695b8ba03248c9dab0f4d125.yaml: 1669 bytes with SHA-256 [HASH], the manifest says 1684 bytes with SHA-256 [HASH]
    hint: nothing was changed; fix or remove these files, or pass --skip-invalid to go on without them
    "#);
    // The snapshot names the two files this test broke.
    assert_eq!(
        files[..2],
        [
            "dr-app/cm-695b7d90f9681a64d3301861.yaml",
            "dr-app/cm-695b8ba03248c9dab0f4d125.yaml"
        ]
    );
    assert_eq!(cluster.writes(), 0);
    assert!(deployments(&cluster).is_empty());

    let run = restore(&sandbox, &cluster, "b", &["--skip-invalid", "-o", "json"]);
    run.expect_code(0);
    let outcome = run.json();
    assert_eq!(outcome["invalidFiles"].as_array().unwrap().len(), 2);
    assert_eq!(outcome["summary"]["created"], 1);
    assert_eq!(
        outcome["summary"]["unchanged"], 3,
        "spark and other types are still there"
    );
}

fn deployments_files(folder: &Path) -> Vec<String> {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    manifest["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "deployment")
        .map(|i| i["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn forbidden_writes_fail_per_object_and_name_the_permission() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(2, 1), FakeKubeOptions::default());
    take_backup(&sandbox, &cluster, "b");
    for (namespace, name) in deployments(&cluster) {
        cluster.kube.remove("lrs", Some(&namespace), &name);
    }
    cluster
        .kube
        .access()
        .deny(DenyRule::new("patch", "lrs.datarobot.com", "lrs"));
    let run = restore(&sandbox, &cluster, "b", &["-o", "json"]);
    run.expect_code(1);
    let outcome = run.json();
    assert_eq!(outcome["summary"]["failed"], 2);
    assert_eq!(outcome["summary"]["unchanged"], 3);
    let message = outcome["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["result"] == "failed")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("kubectl auth can-i patch lrs.lrs.datarobot.com -n dr-app"),
        "{message}"
    );
}

#[test]
fn a_namespace_being_deleted_is_named_with_what_to_do_not_as_a_permission_problem() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(1, 1), FakeKubeOptions::default());
    take_backup(&sandbox, &cluster, "b");
    // The namespace is deleted; an object another controller still holds keeps it Terminating.
    let held = cluster
        .kube
        .list("lrs", Some("dr-app"))
        .into_iter()
        .find(|o| o["metadata"]["labels"]["datarobot-lrs-type"] == "custom_application")
        .unwrap();
    cluster.merge_patch(
        "dr-app",
        held["metadata"]["name"].as_str().unwrap(),
        json!({"metadata": {"finalizers": ["example.com/hold"]}}),
    );
    let delete = http::Request::delete("/api/v1/namespaces/dr-app")
        .body(Vec::new())
        .unwrap();
    cluster.request(delete).expect("delete the namespace");
    assert_eq!(
        cluster.kube.get("namespaces", None, "dr-app").unwrap()["status"]["phase"],
        "Terminating"
    );

    let run = restore(
        &sandbox,
        &cluster,
        "b",
        &["--type", "spark_app", "-o", "json"],
    );
    run.expect_code(1);
    let outcome = run.json();
    assert_eq!(outcome["summary"]["failed"], 2, "{outcome:#}");
    for item in outcome["items"].as_array().unwrap() {
        assert_eq!(
            item["message"],
            "namespace dr-app is being deleted, so nothing can be created in it; wait until it \
             is gone and restore again with --create-namespaces, or restore elsewhere with \
             --namespace-map dr-app=OTHER"
        );
    }

    // What it says works: another namespace.
    let run = restore(
        &sandbox,
        &cluster,
        "b",
        &[
            "--type",
            "spark_app",
            "--namespace-map",
            "dr-app=dr-new",
            "--create-namespaces",
            "-o",
            "json",
        ],
    );
    run.expect_code(0);
    assert_eq!(run.json()["summary"]["created"], 2);
}

#[test]
fn the_table_shows_every_object_and_a_summary() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(
        &sandbox,
        SampleSpec {
            lrs: 2,
            spark: 1,
            other: 0,
            namespaces: 1,
            ..SampleSpec::default()
        },
        FakeKubeOptions::default(),
    );
    take_backup(&sandbox, &cluster, "b");
    let objects = deployments(&cluster);
    cluster.merge_patch(
        &objects[0].0,
        &objects[0].1,
        json!({"spec": {"replicas": 5}}),
    );
    cluster
        .kube
        .remove("lrs", Some(&objects[1].0), &objects[1].1);
    let run = restore(&sandbox, &cluster, "b", &[]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 0
    ----- stdout -----
    NAMESPACE   NAME                                     TYPE         RESULT            MESSAGE
    dr-app      cm-695b7d90f9681a64d3301861              deployment   skipped-differs   exists and differs from the backup (--existing=update overwrites)
    dr-app      cm-695b8ba03248c9dab0f4d125              deployment   created
    dr-app      spark-session-695b7d904335531e5ff6006a   spark_app    unchanged

    Restored 3 LRS objects of b into fake: 1 created, 0 updated, 1 unchanged, 1 skipped (differ from the backup), 0 failed.
    Recorded in backups/b/journal.jsonl

    ----- stderr -----
    "#);
}

#[test]
fn applies_are_retried_after_server_errors_and_broken_connections() {
    use mlbackup_testkit::faults::{Fault, FaultRule};
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(3, 1), FakeKubeOptions::default());
    take_backup(&sandbox, &cluster, "b");
    for (namespace, name) in deployments(&cluster) {
        cluster.kube.remove("lrs", Some(&namespace), &name);
    }
    let patch = || http::Method::PATCH;
    cluster
        .kube
        .faults()
        .add(FaultRule::new("/v1/namespaces/", Fault::Status(503), Some(2)).with_method(patch()));
    cluster.kube.faults().add(
        FaultRule::new("/v1/namespaces/", Fault::DropConnection, Some(1)).with_method(patch()),
    );
    let run = restore(&sandbox, &cluster, "b", &["-o", "json"]);
    run.expect_code(0);
    assert_eq!(run.json()["summary"]["created"], 3);
    assert_eq!(deployments(&cluster).len(), 3);
    assert!(
        cluster
            .kube
            .requests()
            .count(|r| r.method == "PATCH" && r.status == 503)
            >= 2
    );
}

#[test]
fn a_bad_file_is_named_before_the_namespace_map_is_checked() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(2, 1), FakeKubeOptions::default());
    // A folder of a file the plugin cannot read: the namespace it holds is unknown.
    let folder = sandbox.path("exported");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("broken.yaml"), "metadata: [unclosed\n").unwrap();
    let kubeconfig = cluster.kubeconfig_arg();
    let run = sandbox.run(&[
        "restore",
        "./exported",
        &kubeconfig,
        "--namespace-map",
        "dr-app=dr-bad",
    ]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox));
    assert_eq!(cluster.writes(), 0);
}
