//! `verify --against-cluster` against the fake cluster: whether a backup can be restored in
//! the current context (resource served, every object accepted by a server-side dry-run
//! apply), object by object, and that the check changes nothing; and the offline check,
//! `verify --against FILE`, against the API surface `api-surface` wrote on a target.

use std::path::PathBuf;

use mlbackup_testkit::kube::FakeKubeOptions;
use mlbackup_testkit::kube::access::DenyRule;
use serde_json::{Value, json};

use crate::support::{FakeCluster, Run, Sandbox};

/// Takes a backup of `cluster` named `NAME` into `backups/` and returns its folder.
fn backed_up(sandbox: &Sandbox, cluster: &FakeCluster, name: &str) -> PathBuf {
    let kubeconfig = cluster.kubeconfig_arg();
    sandbox
        .run(&["backup", &kubeconfig, "--dir", "backups", "--name", name])
        .expect_code(0);
    sandbox.home().join("backups").join(name)
}

/// `verify nightly --dir backups --against FILE` with `extra` flags: offline, no kubeconfig.
fn verify_against(sandbox: &Sandbox, file: &str, extra: &[&str]) -> Run {
    let mut args = vec!["verify", "--dir", "backups", "nightly", "--against", file];
    args.extend_from_slice(extra);
    sandbox.run(&args)
}

/// Every request that could change something was a dry run.
fn only_dry_runs(cluster: &FakeCluster) -> usize {
    let writes: Vec<_> = cluster
        .kube
        .requests()
        .entries()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    for write in &writes {
        assert_eq!(write.method, "PATCH", "{write:?}");
        assert!(
            write
                .query
                .as_deref()
                .unwrap_or_default()
                .contains("dryRun=All"),
            "{write:?}"
        );
        assert!(
            write
                .query
                .as_deref()
                .unwrap_or_default()
                .contains("fieldManager=kubectl-mlbackup"),
            "{write:?}"
        );
    }
    writes.len()
}

#[test]
fn verify_against_cluster_accepts_a_backup_that_restores_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_lrs(&sandbox, 3, 2);
    backed_up(&sandbox, &cluster, "nightly");
    let before = cluster.resource_versions();
    cluster.kube.requests().clear();
    let kubeconfig = cluster.kubeconfig_arg();
    let run = sandbox.run(&[
        "verify",
        &kubeconfig,
        "--dir",
        "backups",
        "nightly",
        "--against-cluster",
    ]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox));
    run.expect_code(0);
    assert_eq!(only_dry_runs(&cluster), 3, "one dry-run apply per object");
    assert_eq!(cluster.resource_versions(), before, "nothing changed");

    let json = sandbox
        .run(&[
            "verify",
            &kubeconfig,
            "--dir",
            "backups",
            "nightly",
            "--against-cluster",
            "-o",
            "json",
        ])
        .json();
    let check = &json["againstCluster"];
    assert_eq!(check["resource"], "lrs.lrs.datarobot.com/v1");
    assert_eq!(check["failed"], 0);
    assert_eq!(check["items"].as_array().unwrap().len(), 3);
    assert!(
        check["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["ok"] == true)
    );
}

#[test]
fn verify_against_cluster_names_each_object_the_cluster_refuses_and_exits_1() {
    let sandbox = Sandbox::new();
    let source = FakeCluster::with_lrs(&sandbox, 2, 1);
    let folder = backed_up(&sandbox, &source, "nightly");
    // A plain folder of the shell loop: one object as it was, one of a version this cluster
    // does not serve, one in a namespace that does not exist here.
    let loose = sandbox
        .home()
        .join("backups")
        .join("lrs_backup_2025_01_01_00_00");
    std::fs::create_dir(&loose).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder.join(first_namespace(&folder)))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let good = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(loose.join("a-good.yaml"), &good).unwrap();
    let mut wrong_version: serde_json::Value = serde_yaml::from_str(&good).unwrap();
    wrong_version["apiVersion"] = "lrs.datarobot.com/v9".into();
    wrong_version["metadata"]["name"] = "other-version".into();
    std::fs::write(
        loose.join("b-version.yaml"),
        serde_yaml::to_string(&wrong_version).unwrap(),
    )
    .unwrap();
    let mut elsewhere: serde_json::Value = serde_yaml::from_str(&good).unwrap();
    elsewhere["metadata"]["namespace"] = "gone".into();
    std::fs::write(
        loose.join("c-namespace.yaml"),
        serde_yaml::to_string(&elsewhere).unwrap(),
    )
    .unwrap();
    source.kube.requests().clear();
    let kubeconfig = source.kubeconfig_arg();
    let run = sandbox.run(&[
        "verify",
        &kubeconfig,
        "--dir",
        "backups",
        "lrs_backup_2025_01_01_00_00",
        "--against-cluster",
    ]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox));
    run.expect_code(1);
    assert_eq!(
        only_dry_runs(&source),
        2,
        "the version is refused before any request"
    );
    assert!(source.kube.get("namespaces", None, "gone").is_none());
}

#[test]
fn verify_against_a_cluster_that_does_not_serve_the_resource_says_so() {
    let sandbox = Sandbox::new();
    let source = FakeCluster::with_lrs(&sandbox, 2, 1);
    backed_up(&sandbox, &source, "nightly");
    let target = FakeCluster::of(
        crate::support::in_sandbox(&sandbox)
            .empty_cluster()
            .kubeconfig("target.kubeconfig")
            .kube_options(FakeKubeOptions {
                serve_lrs: false,
                ..FakeKubeOptions::default()
            }),
    );
    let kubeconfig = target.kubeconfig_arg();
    let run = sandbox.run(&[
        "verify",
        &kubeconfig,
        "--dir",
        "backups",
        "nightly",
        "--against-cluster",
    ]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox));
    run.expect_code(1);
    assert_eq!(target.writes(), 0);
}

fn first_namespace(folder: &std::path::Path) -> String {
    std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.file_type().unwrap().is_dir())
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned()
}

/// The LRS definition of a target whose operator declares the spec's fields: the ones the
/// sample LRSes use, `replicas` an integer, `imagePullPolicy` one of three values.
fn typed_definition() -> Value {
    let free = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    mlbackup_testkit::kube::lrs_definition_with_spec(
        "v1",
        json!({
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"type": "string"},
                "imagePullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
                "replicas": {"type": "integer", "minimum": 0},
                "serviceAccountName": {"type": "string"},
                "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
                "env": {"type": "array", "items": {"type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "value": {"type": "string"},
                        "valueFrom": free}}},
                "ports": {"type": "array", "items": free},
                "resources": free,
                "readinessProbe": free,
            },
        }),
    )
}

/// A target cluster serving the LRS with [`typed_definition`], with the namespace `dr-app`.
fn typed_target(sandbox: &Sandbox) -> FakeCluster {
    let target = FakeCluster::empty(sandbox, "target.kubeconfig");
    target.kube.replace(typed_definition()).unwrap();
    target.kube.create_namespace("dr-app");
    target
}

/// The names of the LRSes of `cluster` in `dr-app`, sorted.
fn lrs_names(cluster: &FakeCluster) -> Vec<String> {
    let mut names: Vec<String> = cluster
        .kube
        .list("lrs", Some("dr-app"))
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn verify_against_an_api_surface_checks_offline_what_the_target_would_refuse() {
    let sandbox = Sandbox::new();
    let source = FakeCluster::with_lrs(&sandbox, 4, 1);
    let names = lrs_names(&source);
    // What the source's permissive schema keeps and the target's refuses.
    source.merge_patch("dr-app", &names[1], json!({"spec": {"replicas": "two"}}));
    source.merge_patch(
        "dr-app",
        &names[2],
        json!({"spec": {"imagePullPolicy": "Sometimes", "sidecar": {"image": "x"}}}),
    );
    backed_up(&sandbox, &source, "nightly");

    let target = typed_target(&sandbox);
    let surface = sandbox.run(&["api-surface", &target.kubeconfig_arg()]);
    surface.expect_code(0);
    assert_eq!(surface.stderr, "", "everything was readable");
    let written: Value = serde_yaml::from_str(&surface.stdout).unwrap();
    assert_eq!(written["kind"], "MlbackupApiSurface");
    assert_eq!(written["group"]["preferredVersion"], "v1");
    assert_eq!(
        written["customResourceDefinition"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
            ["spec"]["required"],
        json!(["image"])
    );
    assert!(
        written["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!("dr-app"))
    );
    std::fs::write(sandbox.path("target-api.yaml"), &surface.stdout).unwrap();
    // Offline: the target is gone, and no kubeconfig is given.
    drop(target);

    let run = verify_against(&sandbox, "target-api.yaml", &[]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox));
    run.expect_code(1);
    let json = verify_against(&sandbox, "target-api.yaml", &["-o", "json"]).json();
    let check = &json["againstCluster"];
    assert_eq!(check["checkedBy"], "schema");
    assert_eq!(check["failed"], 2);
    assert_eq!(check["surface"]["path"], "target-api.yaml");
}

#[test]
fn verify_against_a_file_that_is_no_api_surface_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let source = FakeCluster::with_lrs(&sandbox, 1, 1);
    backed_up(&sandbox, &source, "nightly");
    std::fs::write(
        sandbox.path("configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\n",
    )
    .unwrap();
    std::fs::write(
        sandbox.path("newer.yaml"),
        "kind: MlbackupApiSurface\nformat: 2\n",
    )
    .unwrap();
    let mut shown = String::new();
    for file in ["missing.yaml", "configmap.yaml", "newer.yaml"] {
        let run = verify_against(&sandbox, file, &[]);
        run.expect_code(2);
        shown.push_str(&run.shown(&sandbox));
    }
    let both = verify_against(&sandbox, "newer.yaml", &["--against-cluster"]);
    both.expect_code(2);
    shown.push_str(&both.shown(&sandbox));
    mlbackup_testkit::assert_run_snapshot!(shown);
}

#[test]
fn api_surface_leaves_out_what_the_user_may_not_read_and_says_so() {
    let sandbox = Sandbox::new();
    let source = FakeCluster::with_lrs(&sandbox, 2, 1);
    backed_up(&sandbox, &source, "nightly");
    let target = typed_target(&sandbox);
    for (verb, group, resource) in [
        ("get", "apiextensions.k8s.io", "customresourcedefinitions"),
        ("list", "", "namespaces"),
    ] {
        target
            .kube
            .access()
            .deny(DenyRule::new(verb, group, resource));
    }
    let surface = sandbox.run(&["api-surface", &target.kubeconfig_arg()]);
    let written: Value = serde_yaml::from_str(&surface.stdout).unwrap();
    assert_eq!(written["customResourceDefinition"], Value::Null);
    assert_eq!(written["namespaces"], Value::Null);
    assert_eq!(written["problems"].as_array().unwrap().len(), 2);
    std::fs::write(sandbox.path("target-api.yaml"), &surface.stdout).unwrap();
    let verify = verify_against(&sandbox, "target-api.yaml", &[]);
    let shown = Run {
        stdout: String::new(),
        ..surface
    }
    .shown(&sandbox)
        + &verify.shown(&sandbox);
    mlbackup_testkit::assert_run_snapshot!(shown);
    verify.expect_code(1);
}

/// A file cut short on its way (or edited) is refused, though what is left still parses.
#[test]
fn verify_against_a_truncated_api_surface_is_refused() {
    let sandbox = Sandbox::new();
    let source = FakeCluster::with_lrs(&sandbox, 1, 1);
    backed_up(&sandbox, &source, "nightly");
    let surface = sandbox.run(&["api-surface", &source.kubeconfig_arg()]);
    surface.expect_code(0);
    let cut = &surface.stdout[..surface.stdout.find("namespaces:").unwrap()];
    std::fs::write(sandbox.path("cut.yaml"), cut).unwrap();
    let run = verify_against(&sandbox, "cut.yaml", &[]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox));
    run.expect_code(2);
}

/// The same backup as the offline test, checked live: the target's API server refuses the value
/// of the wrong type (422 after the apply) and the undeclared field (the apply's 500, reported
/// at once: one request per object, no retry).
#[test]
fn verify_against_cluster_reports_what_the_targets_schema_refuses() {
    let sandbox = Sandbox::new();
    let source = FakeCluster::with_lrs(&sandbox, 3, 1);
    let names = lrs_names(&source);
    source.merge_patch("dr-app", &names[1], json!({"spec": {"replicas": -2}}));
    source.merge_patch(
        "dr-app",
        &names[2],
        json!({"spec": {"sidecar": {"image": "x"}}}),
    );
    backed_up(&sandbox, &source, "nightly");
    let target = typed_target(&sandbox);
    target.kube.requests().clear();
    let run = sandbox.run(&[
        "verify",
        &target.kubeconfig_arg(),
        "--dir",
        "backups",
        "nightly",
        "--against-cluster",
    ]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox));
    run.expect_code(1);
    assert_eq!(
        only_dry_runs(&target),
        3,
        "one request per object, none retried"
    );
    assert!(target.kube.list("lrs", Some("dr-app")).is_empty());
}
