//! `verify --against-cluster` against the fake cluster: whether a backup can be restored in
//! the current context (resource served, every object accepted by a server-side dry-run
//! apply), object by object, and that the check changes nothing.

use std::path::PathBuf;

use mlbackup_testkit::kube::FakeKubeOptions;

use crate::support::{FakeCluster, Sandbox};

/// Takes a backup of `cluster` named `NAME` into `backups/` and returns its folder.
fn backed_up(sandbox: &Sandbox, cluster: &FakeCluster, name: &str) -> PathBuf {
    let kubeconfig = cluster.kubeconfig_arg();
    sandbox
        .run(&["backup", &kubeconfig, "--dir", "backups", "--name", name])
        .expect_code(0);
    sandbox.home().join("backups").join(name)
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
