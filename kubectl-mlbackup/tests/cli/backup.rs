//! `backup` against the fake cluster: one file per LRS equal to the served object, one
//! paginated list, the folder format, and the failures users meet on the way.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mlbackup_testkit::faults::{Fault, FaultRule};
use mlbackup_testkit::kube::FakeKubeOptions;
use mlbackup_testkit::kube::access::DenyRule;
use mlbackup_testkit::sample::SampleSpec;
use sha2::Digest;

use crate::support::{FakeCluster, Run, Sandbox};

/// The LRS collection's path (not discovery's `/apis/lrs.datarobot.com/v1`), for fault rules.
const LRS_COLLECTION: &str = "/v1/lrs";

fn spread(lrs: usize, namespaces: usize) -> SampleSpec {
    SampleSpec {
        lrs,
        spark: 3,
        other: 2,
        namespaces,
        ..SampleSpec::default()
    }
}

fn paged(page: usize) -> FakeKubeOptions {
    FakeKubeOptions {
        max_page_size: Some(page),
        ..FakeKubeOptions::default()
    }
}

fn backup(sandbox: &Sandbox, cluster: &FakeCluster, extra: &[&str]) -> Run {
    let kubeconfig = cluster.kubeconfig_arg();
    let mut args = vec![
        "backup",
        kubeconfig.as_str(),
        "--dir",
        "backups",
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    sandbox.run(&args)
}

fn manifest(folder: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap()
}

fn lrs_list_requests(cluster: &FakeCluster) -> Vec<mlbackup_testkit::faults::RecordedRequest> {
    cluster
        .kube
        .requests()
        .entries()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/lrs"))
        .collect()
}

#[test]
fn one_file_per_lrs_equal_to_the_served_object_from_every_namespace_in_pages() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(12, 3), paged(5));
    let run = backup(&sandbox, &cluster, &[]);
    run.expect_code(0);
    let outcome = run.json();
    assert_eq!(outcome["status"], "complete");
    assert_eq!(
        outcome["objects"], 12,
        "only the deployment LRSes, as the runbook"
    );
    assert_eq!(
        outcome["countsByNamespace"]["dr-tenant-2"], 4,
        "other namespaces too"
    );
    let folder = PathBuf::from(outcome["path"].as_str().unwrap());
    let folder = sandbox.home().join(folder);
    assert!(
        folder
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("lrs_backup_")
    );

    let deployments: Vec<_> = cluster
        .sample
        .lrs
        .iter()
        .filter(|o| o["metadata"]["labels"]["datarobot-lrs-type"] == "deployment")
        .collect();
    for object in deployments {
        let namespace = object["metadata"]["namespace"].as_str().unwrap();
        let name = object["metadata"]["name"].as_str().unwrap();
        let file = folder.join(namespace).join(format!("{name}.yaml"));
        let saved: serde_json::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(saved, cluster.served(namespace, name), "{}", file.display());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "specs can carry credentials");
    }
    assert_eq!(
        std::fs::metadata(&folder).unwrap().permissions().mode() & 0o777,
        0o700
    );

    let manifest = manifest(&folder);
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["resource"]["version"], "v1");
    // The LRS definition as the cluster serves it, recorded with its hash.
    let crd_bytes = std::fs::read(folder.join("crd.yaml")).unwrap();
    let crd: serde_json::Value = serde_yaml::from_slice(&crd_bytes).unwrap();
    let mut served_crd = cluster
        .kube
        .get("customresourcedefinitions", None, "lrs.lrs.datarobot.com")
        .unwrap();
    served_crd["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    assert_eq!(crd, served_crd);
    assert_eq!(crd["spec"]["versions"][0]["name"], "v1");
    assert_eq!(manifest["crd"]["path"], "crd.yaml");
    assert_eq!(
        manifest["crd"]["sha256"],
        hex(&sha2::Sha256::digest(&crd_bytes))
    );
    assert_eq!(manifest["crd"]["bytes"], crd_bytes.len());
    assert_eq!(manifest["selector"], "datarobot-lrs-type=deployment");
    let items = manifest["items"].as_array().unwrap();
    assert_eq!(items.len(), 12);
    for item in items {
        let bytes = std::fs::read(folder.join(item["path"].as_str().unwrap())).unwrap();
        assert_eq!(item["sha256"], hex(&sha2::Sha256::digest(&bytes)));
        assert!(item["uid"].as_str().unwrap().len() > 10);
    }

    // One paginated list: 12 objects in pages of 5 is 3 requests, never one per object.
    let lists = lrs_list_requests(&cluster);
    assert_eq!(lists.len(), 3, "{lists:#?}");
    assert!(lists[1].query.as_deref().unwrap().contains("continue="));
    assert_eq!(
        cluster.kube.requests().count(|r| r.path.contains("/lrs/")),
        0,
        "no request per object"
    );
    assert!(
        !sandbox.home().join("backups").read_dir().unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        })
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn types_namespaces_and_selectors_narrow_the_backup() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(6, 2), FakeKubeOptions::default());
    let all = backup(&sandbox, &cluster, &["--all-types", "--name", "all"]);
    all.expect_code(0);
    assert_eq!(all.json()["objects"], 11);
    assert_eq!(all.json()["countsByType"]["spark_app"], 3);
    let spark = backup(
        &sandbox,
        &cluster,
        &["--type", "spark_app", "-n", "dr-app", "--name", "spark"],
    );
    spark.expect_code(0);
    assert_eq!(
        spark.json()["objects"],
        2,
        "spark sessions 0 and 2 live in dr-app"
    );
    assert_eq!(spark.json()["namespaces"], serde_json::json!(["dr-app"]));
    let selected = backup(
        &sandbox,
        &cluster,
        &[
            "--all-types",
            "-l",
            "datarobot-lrs-type notin (deployment,spark_app)",
            "--name",
            "rest",
        ],
    );
    selected.expect_code(0);
    assert_eq!(selected.json()["objects"], 2);
}

#[test]
fn the_resource_version_comes_from_discovery() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(
        &sandbox,
        spread(3, 1),
        FakeKubeOptions {
            lrs_version: "v1beta2".into(),
            ..FakeKubeOptions::default()
        },
    );
    let run = backup(&sandbox, &cluster, &[]);
    run.expect_code(0);
    let folder = sandbox.home().join(run.json()["path"].as_str().unwrap());
    assert_eq!(manifest(&folder)["resource"]["version"], "v1beta2");
    let wrong = backup(
        &sandbox,
        &cluster,
        &["--resource", "lrs.v1.lrs.datarobot.com"],
    );
    mlbackup_testkit::assert_run_snapshot!(wrong.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot find the LRS resource type
      caused by: the LRS resource type `lrs.lrs.datarobot.com` is not served by this cluster (the group `lrs.datarobot.com` serves versions v1beta2, not `v1`)
    hint: is the LRS operator installed in this cluster? Check with `kubectl get crd lrs.lrs.datarobot.com`; if the resource has another name or version here, pass --resource PLURAL.VERSION.GROUP
    "#);
    let right = backup(
        &sandbox,
        &cluster,
        &["--resource", "lrs.v1beta2.lrs.datarobot.com"],
    );
    right.expect_code(0);
}

#[test]
fn a_second_backup_in_the_same_minute_gets_a_suffix() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(2, 1), FakeKubeOptions::default());
    // Take the names of this minute and the next, so the run cannot slip past the collision.
    let root = sandbox.home().join("backups");
    std::fs::create_dir_all(&root).unwrap();
    let now = chrono::Local::now();
    for at in [now, now + chrono::Duration::minutes(1)] {
        std::fs::create_dir(root.join(at.format("lrs_backup_%Y_%m_%d_%H_%M").to_string())).unwrap();
    }
    let run = backup(&sandbox, &cluster, &[]);
    run.expect_code(0);
    let name = run.json()["name"].as_str().unwrap().to_string();
    assert!(name.ends_with("_2"), "{name}");
    let taken = backup(&sandbox, &cluster, &["--name", &name]);
    mlbackup_testkit::assert_run_snapshot!(taken.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot create the backup folder
      caused by: a backup named `lrs_backup_[TIME]_2` already exists in backups
    hint: choose another --name, or remove the old one with `kubectl mlbackup delete lrs_backup_[TIME]_2 --dir backups`
    "#);
}

#[test]
fn a_cluster_without_the_crd_gets_the_documented_error() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(
        &sandbox,
        SampleSpec {
            lrs: 0,
            spark: 0,
            other: 0,
            ..SampleSpec::default()
        },
        FakeKubeOptions {
            serve_lrs: false,
            ..FakeKubeOptions::default()
        },
    );
    let run = backup(&sandbox, &cluster, &[]);
    run.expect_code(1);
    assert!(run.stdout.is_empty());
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot find the LRS resource type
      caused by: the LRS resource type `lrs.lrs.datarobot.com` is not served by this cluster (the API group `lrs.datarobot.com` is not served)
    hint: is the LRS operator installed in this cluster? Check with `kubectl get crd lrs.lrs.datarobot.com`; if the resource has another name or version here, pass --resource PLURAL.VERSION.GROUP
    "#);
    assert!(!sandbox.home().join("backups").exists(), "nothing written");
}

#[test]
fn a_missing_permission_is_named_with_the_can_i_line_and_leaves_nothing() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(3, 1), FakeKubeOptions::default());
    cluster
        .kube
        .access()
        .deny(DenyRule::new("list", "lrs.datarobot.com", "lrs"));
    let run = backup(&sandbox, &cluster, &[]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: the backup failed
      caused by: lrs.lrs.datarobot.com is forbidden: User "sandbox-admin" cannot list resource "lrs" in API group "lrs.datarobot.com" at the cluster scope
    hint: ask a cluster admin for this permission; check it with `kubectl auth can-i list lrs.lrs.datarobot.com --all-namespaces`
    "#);
    let leftovers: Vec<_> = std::fs::read_dir(sandbox.home().join("backups"))
        .unwrap()
        .collect();
    assert!(
        leftovers.is_empty(),
        "no empty backup left behind: {leftovers:?}"
    );
    let narrowed = backup(&sandbox, &cluster, &["-n", "dr-app"]);
    mlbackup_testkit::assert_run_snapshot!(narrowed.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: the backup failed
      caused by: lrs.lrs.datarobot.com is forbidden: User "sandbox-admin" cannot list resource "lrs" in API group "lrs.datarobot.com" in the namespace "dr-app"
    hint: ask a cluster admin for this permission; check it with `kubectl auth can-i list lrs.lrs.datarobot.com -n dr-app`
    "#);
}

#[test]
fn a_definition_that_cannot_be_read_is_a_warning_and_the_backup_completes_without_it() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(3, 1), FakeKubeOptions::default());
    cluster.kube.access().deny(DenyRule::new(
        "get",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
    ));
    let run = backup(&sandbox, &cluster, &[]);
    run.expect_code(0);
    assert!(
        run.stderr.contains(
            "warning: the backup holds no crd.yaml: cannot read the CustomResourceDefinition \
             lrs.lrs.datarobot.com: customresourcedefinitions.apiextensions.k8s.io \
             \"lrs.lrs.datarobot.com\" is forbidden"
        ),
        "{}",
        run.stderr
    );
    let folder = sandbox.home().join(run.json()["path"].as_str().unwrap());
    assert!(!folder.join("crd.yaml").exists());
    assert!(manifest(&folder).get("crd").is_none());
    sandbox
        .run(&[
            "verify",
            "--dir",
            "backups",
            folder.file_name().unwrap().to_str().unwrap(),
        ])
        .expect_code(0);
}

#[test]
fn throttling_is_retried_honouring_retry_after() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(6, 1), paged(4));
    cluster.kube.faults().add(
        FaultRule::new(
            LRS_COLLECTION,
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
            Some(2),
        )
        .after(1),
    );
    let started = std::time::Instant::now();
    let run = backup(&sandbox, &cluster, &[]);
    run.expect_code(0);
    assert_eq!(run.json()["objects"], 6);
    let lists = lrs_list_requests(&cluster);
    let statuses: Vec<u16> = lists.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [200, 429, 429, 200],
        "page 2 retried until it came"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "waited as told"
    );
}

#[test]
fn a_stale_continue_token_restarts_the_list_in_a_clean_folder() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(7, 2), paged(3));
    cluster
        .kube
        .faults()
        .add(FaultRule::new(LRS_COLLECTION, Fault::Status(410), Some(1)).after(1));
    let run = backup(&sandbox, &cluster, &[]);
    run.expect_code(0);
    assert_eq!(run.json()["objects"], 7);
    let lists = lrs_list_requests(&cluster);
    let first_pages = lists
        .iter()
        .filter(|r| !r.query.as_deref().unwrap_or("").contains("continue="))
        .count();
    assert_eq!(first_pages, 2, "the list started again: {lists:#?}");
}

#[test]
fn a_failure_mid_listing_leaves_a_partial_backup_and_a_rerun_is_clean() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(12, 1), paged(5));
    cluster
        .kube
        .faults()
        .add(FaultRule::new(LRS_COLLECTION, Fault::Status(500), None).after(1));
    let run = backup(&sandbox, &cluster, &[]);
    run.expect_code(1);
    let outcome = run.json();
    assert_eq!(outcome["status"], "partial");
    assert_eq!(outcome["objects"], 5, "the first page was written");
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox));
    let partial = sandbox.home().join(outcome["path"].as_str().unwrap());
    assert!(partial.to_str().unwrap().ends_with(".partial"));
    let manifest = manifest(&partial);
    assert_eq!(manifest["status"], "partial");
    assert_eq!(
        manifest["errors"], outcome["errors"],
        "as the snapshot shows"
    );
    // Retried before giving up: six attempts at page 2.
    assert_eq!(lrs_list_requests(&cluster).len(), 7);
    // No half-written file: every file is complete YAML matching the manifest.
    for item in manifest["items"].as_array().unwrap() {
        let bytes = std::fs::read(partial.join(item["path"].as_str().unwrap())).unwrap();
        assert_eq!(item["sha256"], hex(&sha2::Sha256::digest(&bytes)));
    }

    cluster.kube.faults().clear();
    let rerun = backup(&sandbox, &cluster, &[]);
    rerun.expect_code(0);
    assert_eq!(rerun.json()["objects"], 12);
    let list = sandbox.run(&["list", "--dir", "backups", "-o", "json"]);
    list.expect_code(0);
    let statuses: Vec<String> = list.json()["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses.len(), 2);
    assert!(
        statuses.contains(&"partial".to_string()) && statuses.contains(&"complete".to_string())
    );
}

#[test]
fn sigint_stops_with_exit_130_and_a_partial_manifest() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(9, 1), paged(3));
    cluster.kube.faults().add(
        FaultRule::new(
            LRS_COLLECTION,
            Fault::Latency(std::time::Duration::from_secs(30)),
            None,
        )
        .after(1),
    );
    let run = interrupted_after_the_first_page(&sandbox, &cluster);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox));
    let outcome = run.json();
    assert_eq!(outcome["status"], "partial");
    let manifest = manifest(&sandbox.home().join(outcome["path"].as_str().unwrap()));
    assert_eq!(manifest["status"], "partial");
    assert_eq!(
        manifest["errors"], outcome["errors"],
        "as the snapshot shows"
    );
}

/// A list whose next page is always ready by the time the last one is written never waits:
/// Ctrl-C must still stop it (between pages), not after the whole cluster was read.
#[test]
fn sigint_stops_a_list_that_never_waits_for_a_page() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(6000, 1), FakeKubeOptions::default());
    let run = interrupted_after_the_first_page(&sandbox, &cluster);
    run.expect_code(130);
    let outcome = run.json();
    assert_eq!(outcome["status"], "partial");
    assert!(
        outcome["objects"].as_u64().unwrap() < 6005,
        "stopped before the end of the list: {outcome}"
    );
}

/// Starts a backup (`-o json`) into `backups/`, waits until its first page is on disk, then
/// sends it SIGINT (Ctrl-C) and waits for it to end.
fn interrupted_after_the_first_page(sandbox: &Sandbox, cluster: &FakeCluster) -> Run {
    let kubeconfig = cluster.kubeconfig_arg();
    let child = sandbox.spawn(&["backup", &kubeconfig, "--dir", "backups", "-o", "json"]);
    let root = sandbox.home().join("backups");
    mlbackup_testkit::wait::wait_until(
        "the first page is on disk",
        std::time::Duration::from_secs(20),
        || glob_yaml(&root),
    );
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    Run::from(child.wait_with_output().unwrap())
}

fn glob_yaml(root: &Path) -> bool {
    let Ok(backups) = std::fs::read_dir(root) else {
        return false;
    };
    backups.flatten().any(|backup| {
        std::fs::read_dir(backup.path().join("dr-app"))
            .map(|files| files.count() >= 3)
            .unwrap_or(false)
    })
}

#[test]
fn verify_catches_a_file_modified_after_the_backup() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(3, 1), FakeKubeOptions::default());
    let run = backup(&sandbox, &cluster, &[]);
    run.expect_code(0);
    let name = run.json()["name"].as_str().unwrap().to_string();
    sandbox
        .run(&["verify", &name, "--dir", "backups"])
        .expect_code(0);
    let folder = sandbox.home().join(run.json()["path"].as_str().unwrap());
    let file = folder.join(manifest(&folder)["items"][0]["path"].as_str().unwrap());
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("replicas: 1", "replicas: 3")
            .replace("replicas: 2", "replicas: 3"),
    )
    .unwrap();
    let verify = sandbox.run(&["verify", &name, "--dir", "backups"]);
    mlbackup_testkit::assert_run_snapshot!(verify.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----
    Backup lrs_backup_[TIME] has 1 problem(s) (3 LRS files checked):
    FILE                                      PROBLEM    DETAIL
    dr-app/cm-695b7d90f9681a64d3301861.yaml   modified   1678 bytes with SHA-256 [HASH], the manifest says 1678 bytes with SHA-256 [HASH]

    ----- stderr -----
    error: the backup `lrs_backup_[TIME]` failed verification: 1 problem(s)
    "#);
}

#[test]
fn the_summary_says_what_was_saved_where() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(4, 2), FakeKubeOptions::default());
    let kubeconfig = cluster.kubeconfig_arg();
    let run = sandbox.run(&[
        "backup",
        &kubeconfig,
        "--dir",
        "backups",
        "--name",
        "before-upgrade",
    ]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 0
    ----- stdout -----
    Backed up 4 LRS objects to backups/before-upgrade ([SIZE]) in [DURATION]
      by type:      deployment 4
      by namespace: dr-app 2, dr-tenant-1 2

    ----- stderr -----
    "#);
}

#[test]
fn kubectl_reads_a_backup_file_back_as_the_same_object() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, spread(1, 1), FakeKubeOptions::default());
    // Strings that a YAML 1.1 reader (kubectl) turns into booleans, numbers or dates unless the
    // writer quotes them.
    let tricky = serde_json::json!({
        "on": "yes", "off": "n", "octal": "0755", "float": "1e3", "sexagesimal": "3:25:45",
        "date": "2026-01-05", "null": "~", "empty": "", "colon": "a: b", "hash": "#x",
        "multi": "line1\nline2\n", "long": "x".repeat(300)
    });
    cluster
        .kube
        .insert(serde_json::json!({
            "apiVersion": "lrs.datarobot.com/v1", "kind": "LongRunningService",
            "metadata": {"name": "tricky", "namespace": "dr-app",
                         "labels": {"datarobot-lrs-type": "deployment"}, "annotations": tricky},
            "spec": {"replicas": 1, "image": "registry.example.com/m:1"}
        }))
        .unwrap();
    let run = backup(&sandbox, &cluster, &[]);
    run.expect_code(0);
    let file = sandbox
        .home()
        .join(run.json()["path"].as_str().unwrap())
        .join("dr-app/tricky.yaml");
    let home = sandbox.home().display().to_string();
    let read = std::process::Command::new(mlbackup_testkit::tools::kubectl())
        .args(["create", "--dry-run=client", "-o", "json", "-f"])
        .arg(&file)
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("HOME", &home)
        .output()
        .expect("run kubectl");
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(parsed["metadata"]["annotations"], tricky);
    assert_eq!(parsed["spec"], cluster.served("dr-app", "tricky")["spec"]);
}
