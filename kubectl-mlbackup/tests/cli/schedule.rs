//! `schedule install`, `run-now`, `status` and `uninstall`: the manifests (snapshot, and
//! accepted by the real kubectl), bad input refused before any request, and a whole run in the
//! fake cluster, whose kubelet runs the Job's container as this very binary with the schedule's
//! service account (whose RBAC the fake enforces).
//!
//! The location is a folder until `s3://` locations reach `backup` (issue 14): the sandbox's
//! kubelet runs the container on this machine, so the folder is really written. It lies outside
//! /tmp: the pod's /tmp is its scratch emptyDir.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{FakeCluster, Run, Sandbox};

const IMAGE: &str = "registry.example.com/kubectl-mlbackup:test";
const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

/// A folder for the backups, outside /tmp (see the module's comment).
fn backups_dir() -> tempfile::TempDir {
    crate::support::dir_outside_the_pods_tmp()
}

/// A fake cluster with a few LRSes whose kubelet runs [`IMAGE`] as this plugin.
fn cluster(sandbox: &Sandbox) -> FakeCluster {
    let cluster = FakeCluster::with_lrs(sandbox, 4, 2);
    cluster
        .kube
        .map_image(IMAGE, Path::new(env!("CARGO_BIN_EXE_kubectl-mlbackup")));
    cluster
}

fn run(sandbox: &Sandbox, cluster: &FakeCluster, args: &[&str]) -> Run {
    let kubeconfig = cluster.kubeconfig_arg();
    let mut all = vec!["schedule"];
    all.extend_from_slice(args);
    all.push(&kubeconfig);
    sandbox.run(&all)
}

fn install_args(dir: &Path) -> Vec<String> {
    [
        "install",
        "--schedule",
        "0 3 * * *",
        "--time-zone",
        "Europe/Berlin",
        "--image",
        IMAGE,
        "--dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([dir.display().to_string()])
    .collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Objects of the schedule kinds the fake holds, as `plural/namespace/name`.
fn schedule_objects(cluster: &FakeCluster) -> Vec<String> {
    let mut found = Vec::new();
    for plural in [
        "serviceaccounts",
        "configmaps",
        "clusterroles",
        "clusterrolebindings",
        "cronjobs",
        "jobs",
        "pods",
    ] {
        for object in cluster.kube.list(plural, None) {
            let metadata = &object["metadata"];
            if plural == "pods" && metadata["namespace"] != "mlbackup" {
                continue;
            }
            found.push(format!(
                "{plural}/{}/{}",
                metadata["namespace"].as_str().unwrap_or(""),
                metadata["name"].as_str().unwrap()
            ));
        }
    }
    found
}

#[test]
fn install_dry_run_prints_the_manifests_and_sends_nothing() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.path("ca.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        sandbox.path("team.pub"),
        format!("# the backup team\n{RECIPIENT}\n"),
    )
    .unwrap();
    let ca = sandbox_path_text(&sandbox, "ca.pem");
    let sandbox = sandbox
        .env("AWS_ENDPOINT_URL", "https://minio.example.com:9000")
        .env("AWS_REGION", "eu-central-1")
        .env("AWS_CA_BUNDLE", ca)
        // Never carried into the cluster: keys come from the Secret.
        .env("AWS_ACCESS_KEY_ID", "AKIAOPERATOR")
        .env("AWS_SECRET_ACCESS_KEY", "operator-secret");
    let run = sandbox.run(&[
        "schedule",
        "install",
        "--schedule",
        "0 3 * * *",
        "--time-zone",
        "Europe/Berlin",
        "--dir",
        "s3://backups/prod",
        "--image",
        IMAGE,
        "--recipients-file",
        "team.pub",
        "--keep-last",
        "3",
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
        "--keep-monthly",
        "6",
        "--keep-within",
        "2d",
        "--timeout",
        "2h",
        "--credentials-secret",
        "s3-backup",
        "--service-account-annotation",
        "eks.amazonaws.com/role-arn=arn:aws:iam::123456789012:role/backup",
        "--dry-run",
        "-o",
        "yaml",
        // No cluster: a dry run must not need one.
        "--kubeconfig",
        "/nonexistent/kubeconfig",
    ]);
    run.expect_code(0);
    assert!(!run.stdout.contains("AKIAOPERATOR") && !run.stdout.contains("operator-secret"));
    mlbackup_testkit::assert_run_snapshot!("schedule_install_dry_run", run.shown(&sandbox));
    let json = sandbox.run(&[
        "schedule",
        "install",
        "--schedule",
        "@daily",
        "--dir",
        "s3://backups/prod",
        "--image",
        IMAGE,
        "--recipient",
        RECIPIENT,
        "--dry-run",
        "-o",
        "json",
        "--name",
        "nightly",
        "--schedule-namespace",
        "ops",
    ]);
    json.expect_code(0);
    let list = json.json();
    assert_eq!(list["kind"], "List");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    // The recipients, then AWS_CA_BUNDLE's certificate.
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "ConfigMap",
            "CronJob"
        ]
    );
    let cron_job = &list["items"][6];
    assert_eq!(cron_job["metadata"]["namespace"], "ops");
    assert_eq!(cron_job["metadata"]["name"], "nightly");
    assert!(cron_job["spec"].get("timeZone").is_none());
}

fn sandbox_path_text(sandbox: &Sandbox, relative: &str) -> String {
    sandbox.path(relative).display().to_string()
}

#[test]
fn bad_input_is_refused_before_any_request() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let dir = backups_dir();
    let dir_text = dir.path().display().to_string();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec![
            "install".into(),
            "--image".into(),
            IMAGE.into(),
            "--dir".into(),
            dir_text.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let before = cluster.kube.requests().entries().len();
    let cases: [(&[&str], &str); 10] = [
        (
            &["--schedule", "0 3 * * 1-7"],
            "error: --schedule `0 3 * * 1-7`: day-of-week 7 is not accepted by Kubernetes CronJobs (their days of the week are 0-6, Sunday is 0)\nhint: write Sunday as 0 or SUN, like '0 3 * * 0' or '0 3 * * 1-5,0'\n",
        ),
        (
            &["--schedule", "@every 1h"],
            "error: --schedule `@every 1h` is not one of the descriptors Kubernetes documents for CronJobs: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly\nhint: five fields",
        ),
        (
            &["--schedule", "0 3 * *"],
            "error: --schedule `0 3 * *` has 4 fields, not 5\nhint: five fields: minute hour day-of-month month day-of-week, like '0 3 * * *' (daily at 03:00) or '30 */6 * * 1-5'; or @hourly, @daily, @weekly, @monthly\n",
        ),
        (
            &["--schedule", "0 25 * * *"],
            "error: --schedule `0 25 * * *` is not a valid cron expression",
        ),
        (
            &["--schedule", "0 3 * * *", "--time-zone", "Europe/Berln"],
            "error: --time-zone `Europe/Berln` is not a known time zone\nhint: an IANA time zone name, like Europe/Berlin, America/New_York or UTC\n",
        ),
        (
            &["--schedule", "0 3 * * *", "--recipient", "age1notakey"],
            "error: --recipient",
        ),
        (
            &["--schedule", "0 3 * * *", "--dir", "s3://bucket/prefix"],
            "error: a scheduled backup into object storage must be encrypted: no recipient is given\n",
        ),
        (
            &["--schedule", "0 3 * * *", "--dir", "ftp://host/x"],
            "error: --dir: `ftp://host/x` is not a supported backup location: only folders and s3:// are\n",
        ),
        (
            &[
                "--schedule",
                "0 3 * * *",
                "--recipient",
                RECIPIENT,
                "--dir",
                "s3://bucket/prefix?readonly",
            ],
            "error: --dir s3://bucket/prefix?readonly is read-only: a schedule writes a backup into it on every run\n\
             hint: give the location without ?readonly (the schedule's credentials decide what it may write)\n",
        ),
        (
            &[
                "--schedule",
                "0 3 * * *",
                "--keep-daily",
                "7",
                "--keep-within",
                "0s",
            ],
            "error: invalid value '0s' for '--keep-within <DURATION>': `0s` keeps no backup by \
             its age: give a duration longer than 0, like 7d, or leave --keep-within out\n",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = base(&[]);
        // A later --dir wins over the base one.
        if extra.contains(&"--dir") {
            let at = args.iter().position(|a| a == "--dir").unwrap();
            args.drain(at..at + 2);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refused = run(&sandbox, &cluster, &strs(&args));
        refused.expect_code(2);
        assert!(
            refused.stderr.starts_with(expected),
            "{:?}\n{}",
            extra,
            refused.stderr
        );
        assert!(refused.stdout.is_empty());
    }
    assert_eq!(
        cluster.kube.requests().entries().len(),
        before,
        "no request was sent"
    );
    assert!(schedule_objects(&cluster).is_empty());
}

/// Waits for Job `name` to finish, looking once every 50 ms (the fake's kubelet runs it).
fn finished_job(cluster: &FakeCluster, namespace: &str, name: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(job) = cluster.kube.get("jobs", Some(namespace), name)
            && job["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter().any(|c| {
                    (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
                })
            })
        {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the Job {name} never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn install_run_now_status_and_uninstall_in_the_fake_cluster() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let dir = backups_dir();
    let installed = run(&sandbox, &cluster, &strs(&install_args(dir.path())));
    installed.expect_code(0);
    assert!(
        installed.stderr.contains("is a folder"),
        "{}",
        installed.stderr
    );
    assert!(
        installed.stdout.starts_with(
            "KIND                 NAME                                 ACTION\n\
             Namespace            mlbackup                             created\n\
             ServiceAccount       mlbackup                             created\n\
             ClusterRole          kubectl-mlbackup-mlbackup-mlbackup   created\n\
             ClusterRoleBinding   kubectl-mlbackup-mlbackup-mlbackup   created\n\
             CronJob              mlbackup                             created\n\
             Schedule mlbackup in namespace mlbackup: 0 3 * * * (Europe/Berlin), next run "
        ),
        "{}",
        installed.stdout
    );
    let cron_job = cluster
        .kube
        .get("cronjobs", Some("mlbackup"), "mlbackup")
        .unwrap();
    let pod_spec = &cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod_spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod_spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
        true
    );
    assert_eq!(cron_job["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(
        cron_job["metadata"]["managedFields"][0]["manager"],
        "kubectl-mlbackup"
    );
    // Installing again changes nothing that matters and creates nothing.
    let again = run(&sandbox, &cluster, &strs(&install_args(dir.path())));
    again.expect_code(0);
    assert!(!again.stdout.contains("created"), "{}", again.stdout);

    let ran = run(&sandbox, &cluster, &["run-now", "--wait", "-o", "json"]);
    ran.expect_code(0);
    let outcome = ran.json();
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    let lrs = cluster.kube.list("lrs", None).len();
    assert!(
        outcome["logTail"]
            .as_str()
            .unwrap()
            .contains(&format!("Backed up {lrs} LRS objects")),
        "{outcome}"
    );
    let listed = crate::support::Sandbox::new().run(&[
        "list",
        "--dir",
        &dir.path().display().to_string(),
        "-o",
        "json",
    ]);
    listed.expect_code(0);
    let backups = listed.json();
    let backups = backups["backups"]
        .as_array()
        .or_else(|| backups.as_array())
        .cloned()
        .unwrap_or_default();
    assert_eq!(backups.len(), 1, "{}", listed.stdout);
    assert_eq!(backups[0]["status"], "complete");
    // The run recorded itself in the location and released its lock.
    let records = dir.path().join(".mlbackup-runs/mlbackup");
    let read = |file: &str| -> Value {
        serde_json::from_slice(&std::fs::read(records.join(file)).unwrap()).unwrap()
    };
    let attempt = read("last-attempt.json");
    assert_eq!(attempt["status"], "succeeded", "{attempt}");
    assert_eq!(attempt["backup"], backups[0]["name"], "{attempt}");
    assert!(attempt["finished"].is_string(), "{attempt}");
    assert_eq!(read("last-success.json"), attempt);
    assert!(!dir.path().join(".mlbackup-lock").exists());
    // The Job's service account may read kube-system: the backup knows its cluster.
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join(backups[0]["name"].as_str().unwrap())
                .join("manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let kube_system = cluster.kube.get("namespaces", None, "kube-system").unwrap();
    assert!(kube_system["metadata"]["uid"].is_string());
    assert_eq!(
        manifest["cluster"]["id"], kube_system["metadata"]["uid"],
        "{}",
        manifest["cluster"]
    );
    let status = run(&sandbox, &cluster, &["status", "-o", "json"]);
    status.expect_code(0);
    let status = status.json();
    assert_eq!(status["lastRunResult"], "succeeded");
    assert!(status["lastSuccess"].is_string());
    assert_eq!(status["overdue"], false);
    // Read from the run records in the location.
    assert_eq!(status["lastAttempt"], attempt);
    assert_eq!(status["lastSuccessBackup"], backups[0]["name"]);

    let removed = run(&sandbox, &cluster, &["uninstall"]);
    removed.expect_code(0);
    assert!(
        schedule_objects(&cluster).is_empty(),
        "{:?}",
        schedule_objects(&cluster)
    );
    assert!(
        cluster.kube.get("namespaces", None, "mlbackup").is_none(),
        "install made it"
    );
    let again = run(&sandbox, &cluster, &["uninstall"]);
    again.expect_code(1);
    assert!(
        again
            .stderr
            .contains("there is no schedule `mlbackup` in the namespace `mlbackup`"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_failed_run_exits_1_with_the_end_of_its_log() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let dir = backups_dir();
    // A file where the backups folder should be: the backup cannot create its folder.
    let blocked: PathBuf = dir.path().join("not-a-folder");
    std::fs::write(&blocked, "").unwrap();
    run(&sandbox, &cluster, &strs(&install_args(&blocked))).expect_code(0);
    let ran = run(&sandbox, &cluster, &["run-now", "--wait"]);
    ran.expect_code(1);
    assert!(ran.stdout.contains("  | error: "), "{}", ran.stdout);
    assert!(ran.stdout.contains(": failed."), "{}", ran.stdout);
    assert!(
        ran.stderr.contains("error: the run mlbackup-run-")
            && ran.stderr.contains("BackoffLimitExceeded"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains(
            "hint: the log above ends the pod's; see it whole with `kubectl logs job/mlbackup-run-"
        ),
        "{}",
        ran.stderr
    );
    let status = run(&sandbox, &cluster, &["status"]);
    status.expect_code(1);
    assert!(status.stdout.contains("(failed)"), "{}", status.stdout);
}

#[test]
fn two_schedules_coexist_and_uninstall_removes_only_its_own() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let dir = backups_dir();
    let hourly_dir = backups_dir();
    let mut hourly = install_args(hourly_dir.path());
    hourly[2] = "@hourly".into();
    hourly.extend(["--name".into(), "hourly".into()]);
    run(&sandbox, &cluster, &strs(&install_args(dir.path()))).expect_code(0);
    run(&sandbox, &cluster, &strs(&hourly)).expect_code(0);
    run(&sandbox, &cluster, &["uninstall", "--name", "hourly"]).expect_code(0);
    let left = schedule_objects(&cluster);
    assert_eq!(
        left,
        [
            "serviceaccounts/mlbackup/mlbackup",
            "clusterroles//kubectl-mlbackup-mlbackup-mlbackup",
            "clusterrolebindings//kubectl-mlbackup-mlbackup-mlbackup",
            "cronjobs/mlbackup/mlbackup",
        ]
    );
    assert!(
        cluster.kube.get("namespaces", None, "mlbackup").is_some(),
        "a schedule is left in it"
    );
    // An object of the same name that the schedule did not make is never taken over.
    cluster
        .kube
        .insert(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "theirs", "namespace": "mlbackup"}}))
        .unwrap();
    let theirs_dir = backups_dir();
    let mut theirs = install_args(theirs_dir.path());
    theirs.extend(["--name".into(), "theirs".into()]);
    let refused = run(&sandbox, &cluster, &strs(&theirs));
    refused.expect_code(1);
    assert!(
        refused.stderr.contains(
            "the object ServiceAccount `theirs` exists and was not made by this schedule"
        ),
        "{}",
        refused.stderr
    );
    assert!(
        cluster
            .kube
            .get("cronjobs", Some("mlbackup"), "theirs")
            .is_none()
    );
}

/// The service account install makes may read LRS objects and nothing else: a Job of the real
/// kubectl under it is refused a Secret (403, as RBAC answers) and allowed the LRS list.
#[test]
fn the_schedules_service_account_may_only_read_lrs() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    cluster
        .kube
        .map_image("kubectl", &mlbackup_testkit::tools::kubectl());
    let dir = backups_dir();
    run(&sandbox, &cluster, &strs(&install_args(dir.path()))).expect_code(0);
    let job = |name: &str, args: &[&str]| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "mlbackup"},
            "spec": {"backoffLimit": 0, "template": {"spec": {"serviceAccountName": "mlbackup", "restartPolicy": "Never",
                "containers": [{"name": "kubectl", "image": "kubectl", "args": args}]}}}})
    };
    let namespace = &cluster.sample.namespaces[0];
    cluster
        .kube
        .insert(job(
            "read-secret",
            &["get", "secret", "anything", "-n", namespace],
        ))
        .unwrap();
    cluster
        .kube
        .insert(job(
            "list-lrs",
            &["get", "lrs.lrs.datarobot.com", "-A", "-o", "name"],
        ))
        .unwrap();
    let secret = finished_job(&cluster, "mlbackup", "read-secret");
    assert_eq!(secret["status"]["failed"], 1, "{secret}");
    let lrs = finished_job(&cluster, "mlbackup", "list-lrs");
    assert_eq!(lrs["status"]["succeeded"], 1, "{lrs}");
    let log_of = |job: &str| {
        let pod = cluster
            .kube
            .list("pods", Some("mlbackup"))
            .into_iter()
            .find(|p| p["metadata"]["labels"]["job-name"] == job)
            .unwrap();
        cluster.kubeconfig_arg();
        let kubectl = std::process::Command::new(mlbackup_testkit::tools::kubectl())
            .args([
                "logs",
                "-n",
                "mlbackup",
                pod["metadata"]["name"].as_str().unwrap(),
            ])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .output()
            .unwrap();
        String::from_utf8_lossy(&kubectl.stdout).into_owned()
    };
    assert_eq!(
        log_of("read-secret").trim(),
        format!(
            "Error from server (Forbidden): secrets \"anything\" is forbidden: User \"system:serviceaccount:mlbackup:mlbackup\" cannot get resource \"secrets\" in API group \"\" in the namespace \"{namespace}\""
        )
    );
    assert_eq!(
        log_of("list-lrs").lines().count(),
        cluster.kube.list("lrs", None).len()
    );
}

/// Conformance: the real kubectl accepts the rendered manifests (`apply --dry-run=server`,
/// which validates them against the server and persists nothing).
#[test]
fn kubectl_applies_the_rendered_manifests() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    // As on a real server, a dry run cannot create objects in a namespace it only pretends to
    // create: the namespace exists (made by hand, or a first apply).
    cluster.kube.create_namespace("mlbackup");
    let rendered = sandbox.run(&[
        "schedule",
        "install",
        "--schedule",
        "0 3 * * *",
        "--dir",
        "s3://backups/prod",
        "--image",
        IMAGE,
        "--recipient",
        RECIPIENT,
        "--keep-daily",
        "7",
        "--credentials-secret",
        "s3",
        "--dry-run",
    ]);
    rendered.expect_code(0);
    let mut kubectl = std::process::Command::new(mlbackup_testkit::tools::kubectl())
        .args(["apply", "--dry-run=server", "-f", "-"])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("HOME", sandbox.home())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    kubectl
        .stdin
        .take()
        .unwrap()
        .write_all(rendered.stdout.as_bytes())
        .unwrap();
    let output = kubectl.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout,
        "namespace/mlbackup configured (server dry run)\n\
         serviceaccount/mlbackup created (server dry run)\n\
         clusterrole.rbac.authorization.k8s.io/kubectl-mlbackup-mlbackup-mlbackup created (server dry run)\n\
         clusterrolebinding.rbac.authorization.k8s.io/kubectl-mlbackup-mlbackup-mlbackup created (server dry run)\n\
         configmap/mlbackup-recipients created (server dry run)\n\
         cronjob.batch/mlbackup created (server dry run)\n"
    );
    assert!(schedule_objects(&cluster).is_empty());
}

/// A Secret as `kubectl create secret generic` makes it, with these keys.
fn credentials_secret(keys: &[&str]) -> Value {
    // "s3cr3t-value", base64-encoded as the API holds it.
    let data: serde_json::Map<String, Value> = keys
        .iter()
        .map(|key| (key.to_string(), json!("czNjcjN0LXZhbHVl")))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "s3-backup", "namespace": "mlbackup"}, "data": data})
}

/// install refuses a --credentials-secret the pod could not start with, before creating
/// anything; and a run whose pod cannot start (its Secret lost a key since) says why at once,
/// as `status` does, and starts by itself once the key is back.
#[test]
fn install_checks_the_credentials_secret_and_run_now_says_why_a_pod_cannot_start() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let dir = backups_dir();
    let mut args = install_args(dir.path());
    args.extend(["--credentials-secret".into(), "s3-backup".into()]);
    let hint = "kubectl create secret generic s3-backup -n mlbackup \
                --from-literal=AWS_ACCESS_KEY_ID=... --from-file=AWS_SECRET_ACCESS_KEY=...";
    let refused = run(&sandbox, &cluster, &strs(&args));
    refused.expect_code(1);
    assert!(
        refused.stderr.contains(
            "--credentials-secret: there is no Secret `s3-backup` in the namespace `mlbackup` \
             (the namespace does not exist yet, so neither can the Secret)\n\
             hint: create it before installing, in a new namespace (`kubectl create namespace mlbackup`): `"
        ) && refused.stderr.contains(hint),
        "{}",
        refused.stderr
    );
    assert!(cluster.kube.get("namespaces", None, "mlbackup").is_none());
    cluster.kube.create_namespace("mlbackup");
    let refused = run(&sandbox, &cluster, &strs(&args));
    refused.expect_code(1);
    assert!(
        refused.stderr.contains(
            "--credentials-secret: there is no Secret `s3-backup` in the namespace `mlbackup`\n\
             hint: create it before installing: `"
        ),
        "{}",
        refused.stderr
    );
    cluster
        .kube
        .insert(credentials_secret(&["AWS_ACCESS_KEY_ID"]))
        .unwrap();
    let refused = run(&sandbox, &cluster, &strs(&args));
    refused.expect_code(1);
    assert!(
        refused.stderr.contains(
            "--credentials-secret: the Secret `s3-backup` in the namespace `mlbackup` has no key \
             AWS_SECRET_ACCESS_KEY\n\
             hint: the pod reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from it"
        ) && refused.stderr.contains(hint),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("czNjcjN0") && !refused.stderr.contains("s3cr3t"),
        "{}",
        refused.stderr
    );
    assert!(schedule_objects(&cluster).is_empty(), "nothing was created");

    assert!(
        cluster
            .kube
            .remove("secrets", Some("mlbackup"), "s3-backup")
    );
    cluster
        .kube
        .insert(credentials_secret(&[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ]))
        .unwrap();
    run(&sandbox, &cluster, &strs(&args)).expect_code(0);
    // The Secret loses a key after install: the kubelet cannot start the container, and keeps
    // the pod Pending, trying again. run-now --wait says so at once instead of waiting for the
    // Job's deadline, and leaves the Job to start once the key is back.
    let lose_a_key = || {
        assert!(
            cluster
                .kube
                .remove("secrets", Some("mlbackup"), "s3-backup")
        );
        cluster
            .kube
            .insert(credentials_secret(&["AWS_ACCESS_KEY_ID"]))
            .unwrap();
    };
    lose_a_key();
    let ran = run(&sandbox, &cluster, &["run-now", "--wait"]);
    ran.expect_code(1);
    let job = cluster.kube.list("jobs", Some("mlbackup"))[0].clone();
    let job = job["metadata"]["name"].as_str().unwrap();
    let problem = "CreateContainerConfigError: couldn't find key AWS_SECRET_ACCESS_KEY in Secret \
                   mlbackup/s3-backup";
    assert!(
        ran.stdout
            .contains(&format!("The Job's pod cannot start: {job}-"))
            && ran.stdout.contains(&format!(
                ": {problem}\nJob {job} in namespace mlbackup: cannot start.\n"
            )),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stderr.contains(&format!(
            "error: the run {job} cannot start: its pod {job}-"
        )) && ran
            .stderr
            .contains(&format!(": {problem}\nhint: fix what it names"))
            && ran
                .stderr
                .contains(&format!("`kubectl delete job {job} -n mlbackup`")),
        "{}",
        ran.stderr
    );
    let pending = cluster.kube.get("jobs", Some("mlbackup"), job).unwrap();
    assert_eq!(pending["status"]["active"], 1, "the Job waits: {pending}");
    let status = run(&sandbox, &cluster, &["status"]);
    status.expect_code(1);
    assert!(
        status
            .stdout
            .contains(&format!("Last run:       {job} (cannot start: pod {job}-"))
            && status.stdout.contains(&format!(": {problem})\n")),
        "{}",
        status.stdout
    );
    // The key is back: the kubelet starts the pod, and the run completes by itself.
    assert!(
        cluster
            .kube
            .remove("secrets", Some("mlbackup"), "s3-backup")
    );
    cluster
        .kube
        .insert(credentials_secret(&[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ]))
        .unwrap();
    let done = finished_job(&cluster, "mlbackup", job);
    assert!(
        done["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Complete"),
        "{done}"
    );
    lose_a_key();
    let json = run(&sandbox, &cluster, &["run-now", "--wait", "-o", "json"]);
    json.expect_code(1);
    assert_eq!(json.json()["status"], "cannot start", "{}", json.stdout);
    assert!(
        json.json()["podState"].as_str().unwrap().ends_with(problem),
        "{}",
        json.stdout
    );
}

/// install warns, once each, about what the pod gets of the operator's environment: a loopback
/// or plain-http endpoint, no bucket credentials; AWS_CA_BUNDLE goes with an https:// endpoint
/// only, and install says it carried it.
#[test]
fn install_warns_about_the_environment_it_carries_into_the_pod() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    std::fs::write(sandbox.path("ca.pem"), pem).unwrap();
    let ca = sandbox_path_text(&sandbox, "ca.pem");
    fn install<'a>(name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "install",
            "--name",
            name,
            "--schedule",
            "0 3 * * *",
            "--image",
            IMAGE,
            "--dir",
            // One location per schedule.
            if name == "tls" {
                "s3://backups/tls"
            } else {
                "s3://backups/prod"
            },
            "--recipient",
            RECIPIENT,
        ];
        args.extend_from_slice(extra);
        args
    }
    let local = Sandbox::new()
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
        .env("AWS_CA_BUNDLE", &ca);
    let installed = run(&local, &cluster, &install("local", &[]));
    installed.expect_code(0);
    assert_eq!(
        installed.stderr,
        format!(
            "warning: the endpoint http://127.0.0.1:9000 (from AWS_ENDPOINT_URL) goes into the \
             schedule's pod as AWS_ENDPOINT_URL, and it is a loopback address: in the pod it is \
             the pod itself, not this machine; set \
             AWS_ENDPOINT_URL to an address the cluster reaches; and not https://: the bucket's keys \
             and the backups cross the network unprotected\n\
             warning: neither --credentials-secret nor --service-account-annotation is given: the \
             pod has no credentials for the bucket unless its node's or pod's identity provides them\n\
             warning: the CA bundle {ca} is not carried into the schedule's pod: the endpoint is \
             not https://\n"
        )
    );
    assert!(
        !installed.stdout.contains("Carried"),
        "{}",
        installed.stdout
    );
    assert!(
        cluster
            .kube
            .get("configmaps", Some("mlbackup"), "local-ca-bundle")
            .is_none()
    );
    let cron_job = cluster
        .kube
        .get("cronjobs", Some("mlbackup"), "local")
        .unwrap();
    let env = &cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(!env.to_string().contains("AWS_CA_BUNDLE"), "{env}");

    let tls = Sandbox::new()
        .env("AWS_ENDPOINT_URL", "https://minio.example.com:9000")
        .env("AWS_CA_BUNDLE", &ca);
    let installed = run(
        &tls,
        &cluster,
        &install(
            "tls",
            &[
                "--service-account-annotation",
                "eks.amazonaws.com/role-arn=arn:aws:iam::123456789012:role/backup",
            ],
        ),
    );
    installed.expect_code(0);
    assert_eq!(installed.stderr, "");
    assert!(
        installed.stdout.ends_with(&format!(
            "Carried AWS_CA_BUNDLE {ca} ({} B) into the ConfigMap tls-ca-bundle.\n",
            pem.len()
        )),
        "{}",
        installed.stdout
    );
    let config_map = cluster
        .kube
        .get("configmaps", Some("mlbackup"), "tls-ca-bundle")
        .unwrap();
    assert_eq!(config_map["data"]["ca-bundle.pem"], pem);
    // Without an endpoint (AWS itself), a [::1] one warns as loopback too.
    let ipv6 = Sandbox::new().env("AWS_ENDPOINT_URL", "https://[::1]:9000");
    let dry = ipv6.run(&[
        "schedule",
        "install",
        "--schedule",
        "@daily",
        "--image",
        IMAGE,
        "--dir",
        "s3://backups/prod",
        "--recipient",
        RECIPIENT,
        "--credentials-secret",
        "s3",
        "--dry-run",
    ]);
    dry.expect_code(0);
    assert_eq!(
        dry.stderr,
        "warning: the endpoint https://[::1]:9000 (from AWS_ENDPOINT_URL) goes into the \
         schedule's pod as AWS_ENDPOINT_URL, and it is a loopback address: in the pod it is the \
         pod itself, not this machine; set AWS_ENDPOINT_URL to an address the cluster reaches\n"
    );
}

/// The pod gets the endpoint and region the operator's own location uses, by the same chain:
/// AWS_ENDPOINT_URL_S3 before AWS_ENDPOINT_URL, the profile's region when no variable sets one.
#[test]
fn install_carries_the_endpoint_and_region_the_location_resolves() {
    let sandbox = Sandbox::new()
        .env("AWS_ENDPOINT_URL", "https://sts-and-all.example.com")
        .env("AWS_ENDPOINT_URL_S3", "https://s3.example.com:9000")
        .env("AWS_PROFILE", "backups");
    std::fs::create_dir_all(sandbox.path(".aws")).unwrap();
    std::fs::write(
        sandbox.path(".aws/config"),
        "[profile backups]\nregion = eu-west-3\n",
    )
    .unwrap();
    let dry = sandbox.run(&[
        "schedule",
        "install",
        "--schedule",
        "@daily",
        "--image",
        IMAGE,
        "--dir",
        "s3://backups/prod",
        "--recipient",
        RECIPIENT,
        "--credentials-secret",
        "s3",
        "--dry-run",
        "-o",
        "json",
    ]);
    dry.expect_code(0);
    assert_eq!(dry.stderr, "");
    let manifests = dry.json();
    let cron_job = manifests["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "CronJob")
        .unwrap();
    let env = &cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"];
    let value = |name: &str| {
        env.as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .map(|v| v["value"].clone())
    };
    assert_eq!(
        value("AWS_ENDPOINT_URL"),
        Some("https://s3.example.com:9000".into())
    );
    assert_eq!(value("AWS_REGION"), Some("eu-west-3".into()));
    assert_eq!(
        value("AWS_ENDPOINT_URL_S3"),
        None,
        "the pod gets one endpoint"
    );
}

/// uninstall keeps the namespace install made when it holds what install did not create (the
/// user's credentials Secret, a ConfigMap of theirs), and says so; the objects stay.
#[test]
fn uninstall_keeps_a_namespace_holding_what_install_did_not_create() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let dir = backups_dir();
    run(&sandbox, &cluster, &strs(&install_args(dir.path()))).expect_code(0);
    let namespace = cluster.kube.get("namespaces", None, "mlbackup").unwrap();
    assert_eq!(
        namespace["metadata"]["annotations"]["kubectl-mlbackup/created-by-install"],
        "true"
    );
    // Made after install, in the namespace install made (what its error hint tells to do).
    cluster
        .kube
        .insert(credentials_secret(&[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ]))
        .unwrap();
    cluster
        .kube
        .insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "notes", "namespace": "mlbackup"}, "data": {"a": "b"}}))
        .unwrap();
    let removed = run(&sandbox, &cluster, &["uninstall"]);
    removed.expect_code(0);
    assert_eq!(
        removed.stdout,
        "KIND                 NAME                                 ACTION\n\
         CronJob              mlbackup                             deleted\n\
         ClusterRoleBinding   kubectl-mlbackup-mlbackup-mlbackup   deleted\n\
         ClusterRole          kubectl-mlbackup-mlbackup-mlbackup   deleted\n\
         ServiceAccount       mlbackup                             deleted\n\
         Schedule mlbackup in namespace mlbackup uninstalled.\n\
         Kept namespace mlbackup: it holds Secret s3-backup, ConfigMap notes, which install did \
         not create.\n"
    );
    assert!(cluster.kube.get("namespaces", None, "mlbackup").is_some());
    assert!(
        cluster
            .kube
            .get("secrets", Some("mlbackup"), "s3-backup")
            .is_some()
    );
    assert!(schedule_objects(&cluster) == ["configmaps/mlbackup/notes"]);
    // Installed again and uninstalled once the user's objects are gone: the namespace goes.
    run(&sandbox, &cluster, &strs(&install_args(dir.path()))).expect_code(0);
    assert!(
        cluster
            .kube
            .remove("secrets", Some("mlbackup"), "s3-backup")
    );
    assert!(cluster.kube.remove("configmaps", Some("mlbackup"), "notes"));
    let removed = run(&sandbox, &cluster, &["uninstall", "-o", "json"]);
    removed.expect_code(0);
    assert!(
        removed.json().get("keptNamespace").is_none(),
        "{}",
        removed.stdout
    );
    assert!(cluster.kube.get("namespaces", None, "mlbackup").is_none());
}

/// A run that fails after taking the lock records its failure (the error escaped) and releases
/// the lock; `status` reads it from the location: the last attempt failed (exit 1), with the
/// last success still shown from its record.
#[test]
fn status_reads_a_failed_attempt_from_the_run_records() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let dir = backups_dir();
    run(&sandbox, &cluster, &strs(&install_args(dir.path()))).expect_code(0);
    run(&sandbox, &cluster, &["run-now", "--wait"]).expect_code(0);
    let location = dir.path().display().to_string();
    // As the CronJob's container runs it, but with a cluster it cannot reach.
    let failed = sandbox.run(&[
        "scheduled-run",
        "--dir",
        &location,
        "--kubeconfig",
        "/nonexistent/kubeconfig\u{1b}[31m",
    ]);
    failed.expect_code(1);
    assert!(!dir.path().join(".mlbackup-lock").exists(), "released");
    let attempt: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(".mlbackup-runs/mlbackup/last-attempt.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(attempt["status"], "failed", "{attempt}");
    let error = attempt["error"].as_str().unwrap();
    assert!(
        error.starts_with("cannot connect to the cluster: cannot read the kubeconfig"),
        "{error}"
    );
    assert!(!error.contains('\u{1b}'), "escaped: {error}");
    let status = run(&sandbox, &cluster, &["status"]);
    status.expect_code(1);
    assert!(
        status.stdout.contains("Last attempt:   started "),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains(": failed: "), "{}", status.stdout);
    assert!(
        status.stdout.contains("Last success:   "),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains(", backup lrs_backup_"),
        "{}",
        status.stdout
    );
}

/// Waits until the wall clock is past the second of `timestamp` (a Job's, in whole seconds as
/// Kubernetes writes them), so that a Job created next starts in a later second.
fn past_the_second_of(timestamp: &str) {
    let at = chrono::DateTime::parse_from_rfc3339(timestamp).unwrap();
    while chrono::Utc::now().timestamp() <= at.timestamp() {
        std::thread::yield_now();
    }
}

/// Holds the location's lock for another run, live for an hour.
fn hold_the_lock(dir: &Path) {
    let now = chrono::Utc::now();
    std::fs::write(
        dir.join(".mlbackup-lock"),
        json!({"holder": "mlbackup-29413620-x7k2p (pid 1)", "started": now,
            "leaseUntil": now + chrono::TimeDelta::hours(1)})
        .to_string(),
    )
    .unwrap();
}

/// Two Jobs of the schedule: the first succeeded and wrote the run record, the second found the
/// location locked and failed (writing no record). `status` says the last run failed, from that
/// Job's own status (exit 1), and shows the record as the first Job's.
#[test]
fn status_takes_each_jobs_result_from_that_job() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let dir = backups_dir();
    run(&sandbox, &cluster, &strs(&install_args(dir.path()))).expect_code(0);
    let first = run(&sandbox, &cluster, &["run-now", "--wait", "-o", "json"]);
    first.expect_code(0);
    let first = first.json()["job"].as_str().unwrap().to_string();
    let done = cluster.kube.get("jobs", Some("mlbackup"), &first).unwrap();
    past_the_second_of(done["status"]["completionTime"].as_str().unwrap());
    hold_the_lock(dir.path());
    let second = run(&sandbox, &cluster, &["run-now", "--wait", "-o", "json"]);
    second.expect_code(1);
    let second = second.json()["job"].as_str().unwrap().to_string();
    let status = run(&sandbox, &cluster, &["status"]);
    status.expect_code(1);
    assert!(
        status
            .stdout
            .contains(&format!("Last run:       {second} (failed)\n")),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains(&format!(" of Job {first}: succeeded, backup lrs_backup_")),
        "{}",
        status.stdout
    );
    let json = run(&sandbox, &cluster, &["status", "-o", "json"]);
    json.expect_code(1);
    let json = json.json();
    assert_eq!(json["lastRunResult"], "failed", "{json}");
    assert_eq!(json["lastAttemptJob"], first.as_str(), "{json}");
}

/// run-now refuses while a run of the schedule has not ended (the CronJob forbids overlapping
/// runs, and two runs fight over the location's lock): here a run whose pod cannot start (its
/// Secret lost a key), which stays active until someone acts.
#[test]
fn run_now_refuses_while_a_run_has_not_ended() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let dir = backups_dir();
    cluster.kube.create_namespace("mlbackup");
    let mut args = install_args(dir.path());
    args.extend(["--credentials-secret".into(), "s3-backup".into()]);
    // Checked with both keys, then one is lost.
    cluster
        .kube
        .insert(credentials_secret(&[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ]))
        .unwrap();
    run(&sandbox, &cluster, &strs(&args)).expect_code(0);
    assert!(
        cluster
            .kube
            .remove("secrets", Some("mlbackup"), "s3-backup")
    );
    cluster
        .kube
        .insert(credentials_secret(&["AWS_ACCESS_KEY_ID"]))
        .unwrap();
    let started = run(&sandbox, &cluster, &["run-now", "-o", "json"]);
    started.expect_code(0);
    let job = started.json()["job"].as_str().unwrap().to_string();
    let refused = run(&sandbox, &cluster, &["run-now", "--wait"]);
    refused.expect_code(1);
    assert_eq!(
        refused.stderr,
        format!(
            "error: cannot start a run of the schedule `mlbackup`\n  caused by: the schedule \
             `mlbackup` has a run that has not ended: the Job {job}; a second run would find \
             the location locked and fail\n\
             hint: wait for it to end (`kubectl mlbackup schedule status` shows it), or, if it \
             is stuck, give up on it with `kubectl delete job {job} -n mlbackup` and run again\n"
        )
    );
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    assert_eq!(cluster.kube.list("jobs", Some("mlbackup")).len(), 1);
    // Once it is gone, run-now starts one again.
    assert!(cluster.kube.remove("jobs", Some("mlbackup"), &job));
    run(&sandbox, &cluster, &["run-now"]).expect_code(0);
    assert_eq!(cluster.kube.list("jobs", Some("mlbackup")).len(), 1);
}

/// Ctrl-C on `run-now --wait` once the Job exists: the Job was started and keeps running, and
/// the command says so (exit 130) instead of claiming nothing was changed.
#[test]
fn ctrl_c_while_waiting_says_the_job_keeps_running() {
    use mlbackup_testkit::faults::{FaultRule, Gate};
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let dir = backups_dir();
    run(&sandbox, &cluster, &strs(&install_args(dir.path()))).expect_code(0);
    // The run's first request for LRS objects is held: the Job's pod runs until the gate opens.
    let gate = Gate::new();
    cluster
        .kube
        .faults()
        .add(FaultRule::new("lrs.datarobot.com", gate.fault(), Some(1)));
    let kubeconfig = cluster.kubeconfig_arg();
    let child = sandbox.spawn(&["schedule", "run-now", "--wait", &kubeconfig]);
    gate.wait_held(1);
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let interrupted = crate::support::Run::from(child.wait_with_output().unwrap());
    gate.open();
    interrupted.expect_code(130);
    let jobs = cluster.kube.list("jobs", Some("mlbackup"));
    assert_eq!(jobs.len(), 1);
    let job = jobs[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        interrupted.stdout,
        format!("Job {job} in namespace mlbackup: started.\n")
    );
    assert!(
        interrupted.stderr.ends_with(&format!(
            "error: interrupted: the Job {job} was started and keeps running in the cluster; \
             watch it with `kubectl mlbackup schedule status`\n"
        )),
        "{}",
        interrupted.stderr
    );
    // It does keep running, and ends by itself.
    let done = finished_job(&cluster, "mlbackup", job);
    assert_eq!(done["status"]["succeeded"], 1, "{done}");
}

/// install refuses a location another schedule of this plugin writes to, in any namespace (the
/// two would prune each other's backups and fight over the lock), before creating anything;
/// installing the same schedule again is no conflict. When CronJobs cannot be listed in all
/// namespaces it says what it could not check.
#[test]
fn install_refuses_a_location_another_schedule_uses() {
    use mlbackup_testkit::faults::{Fault, FaultRule};
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let dir = backups_dir();
    run(&sandbox, &cluster, &strs(&install_args(dir.path()))).expect_code(0);
    let before = schedule_objects(&cluster);
    let location = dir.path().display().to_string();
    for (name, namespace, given) in [
        ("hourly", "mlbackup", location.clone()),
        ("nightly", "ops", format!("{location}/")),
    ] {
        let mut args = install_args(Path::new(&given));
        args.extend([
            "--name".into(),
            name.into(),
            "--schedule-namespace".into(),
            namespace.into(),
        ]);
        let refused = run(&sandbox, &cluster, &strs(&args));
        refused.expect_code(2);
        assert!(
            refused.stderr.contains(&format!(
                "  caused by: --dir {given} is the location of the schedule `mlbackup` in the \
                 namespace `mlbackup` already: two schedules in one location would prune each \
                 other's backups and fight over its lock\n\
                 hint: give this schedule a location of its own"
            )),
            "{}",
            refused.stderr
        );
        assert_eq!(schedule_objects(&cluster), before, "nothing was created");
        assert!(cluster.kube.get("namespaces", None, "ops").is_none());
    }
    // The same schedule again: no conflict with itself.
    run(&sandbox, &cluster, &strs(&install_args(dir.path()))).expect_code(0);
    // A user who may not list CronJobs in all namespaces: checked in the schedule's own, and
    // said what was not.
    cluster.kube.faults().add(
        FaultRule::new(
            "/apis/batch/v1/cronjobs",
            Fault::json(
                403,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "Forbidden", "code": 403,
                    "message": "cronjobs.batch is forbidden: User \"ops\" cannot list resource \"cronjobs\" in API group \"batch\" at the cluster scope"}),
            ),
            None,
        )
        .with_method(http::Method::GET),
    );
    let mut hourly = install_args(dir.path());
    hourly.extend(["--name".into(), "hourly".into()]);
    run(&sandbox, &cluster, &strs(&hourly)).expect_code(2);
    let other = backups_dir();
    let mut hourly = install_args(other.path());
    hourly.extend(["--name".into(), "hourly".into()]);
    let installed = run(&sandbox, &cluster, &strs(&hourly));
    installed.expect_code(0);
    assert!(
        installed.stderr.contains(&format!(
            "warning: cannot list CronJobs in all namespaces (forbidden): not checked that no \
             schedule outside the namespace `mlbackup` writes to --dir {} already\n",
            other.path().display()
        )),
        "{}",
        installed.stderr
    );
}

/// install refuses a --credentials-secret whose keys are there but empty (the pod would look
/// for credentials elsewhere and fail with the node's metadata service), naming the key, never
/// a value, and creating nothing.
#[test]
fn install_refuses_empty_credentials() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let dir = backups_dir();
    cluster.kube.create_namespace("mlbackup");
    let mut secret = credentials_secret(&["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
    // As `kubectl create secret generic --from-literal=AWS_SECRET_ACCESS_KEY=` stores it.
    secret["data"]["AWS_SECRET_ACCESS_KEY"] = json!("");
    cluster.kube.insert(secret).unwrap();
    let mut args = install_args(dir.path());
    args.extend(["--credentials-secret".into(), "s3-backup".into()]);
    let refused = run(&sandbox, &cluster, &strs(&args));
    refused.expect_code(1);
    assert!(
        refused.stderr.contains(
            "  caused by: --credentials-secret: in the Secret `s3-backup` in the namespace \
             `mlbackup`, the key AWS_SECRET_ACCESS_KEY is empty\n\
             hint: the pod reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from it"
        ),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("czNjcjN0") && !refused.stderr.contains("s3cr3t"),
        "{}",
        refused.stderr
    );
    assert!(schedule_objects(&cluster).is_empty(), "nothing was created");
    // Both empty: both named.
    assert!(
        cluster
            .kube
            .remove("secrets", Some("mlbackup"), "s3-backup")
    );
    let mut secret = credentials_secret(&["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
    secret["data"]["AWS_ACCESS_KEY_ID"] = json!("");
    secret["data"]["AWS_SECRET_ACCESS_KEY"] = json!("");
    cluster.kube.insert(secret).unwrap();
    let refused = run(&sandbox, &cluster, &strs(&args));
    refused.expect_code(1);
    assert!(
        refused
            .stderr
            .contains("the keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are empty\n"),
        "{}",
        refused.stderr
    );
    assert!(schedule_objects(&cluster).is_empty(), "nothing was created");
}

/// A CronJob this plugin did not install is no schedule: `status` and `run-now` say so, as
/// uninstall does, with a hint that the CronJob exists; run-now starts nothing from it.
#[test]
fn a_cron_job_the_plugin_did_not_install_is_no_schedule() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    cluster.kube.create_namespace("mlbackup");
    cluster
        .kube
        .insert(json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "backups", "namespace": "mlbackup", "labels": {"app": "theirs"}},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "x", "image": IMAGE}]}}}}}}))
        .unwrap();
    for command in ["status", "run-now", "uninstall"] {
        let refused = run(&sandbox, &cluster, &[command, "--name", "backups"]);
        refused.expect_code(1);
        assert!(refused.stdout.is_empty(), "{command}: {}", refused.stdout);
        assert!(
            refused
                .stderr
                .contains("there is no schedule `backups` in the namespace `mlbackup`\n"),
            "{command}: {}",
            refused.stderr
        );
        if command != "uninstall" {
            assert!(
                refused.stderr.contains(
                    "hint: the CronJob `backups` in the namespace `mlbackup` exists, but \
                     kubectl-mlbackup did not install it (it lacks the label \
                     app.kubernetes.io/managed-by=kubectl-mlbackup)"
                ),
                "{command}: {}",
                refused.stderr
            );
        }
    }
    assert!(cluster.kube.list("jobs", Some("mlbackup")).is_empty());
    assert!(
        cluster
            .kube
            .get("cronjobs", Some("mlbackup"), "backups")
            .is_some()
    );
}

/// install leaves a namespace it did not create as it is (no label of ours, no apply), says so,
/// and uninstall leaves it too.
#[test]
fn install_does_not_modify_a_namespace_it_did_not_create() {
    let sandbox = Sandbox::new();
    let cluster = cluster(&sandbox);
    let dir = backups_dir();
    cluster.kube.create_namespace("mlbackup");
    let before = cluster.kube.get("namespaces", None, "mlbackup").unwrap();
    let installed = run(&sandbox, &cluster, &strs(&install_args(dir.path())));
    installed.expect_code(0);
    assert!(
        installed.stdout.starts_with(
            "KIND                 NAME                                 ACTION\n\
             Namespace            mlbackup                             exists\n\
             ServiceAccount       mlbackup                             created\n"
        ),
        "{}",
        installed.stdout
    );
    let after = cluster.kube.get("namespaces", None, "mlbackup").unwrap();
    assert_eq!(after, before, "the namespace is as its owner made it");
    // Installed again: still left alone.
    run(&sandbox, &cluster, &strs(&install_args(dir.path()))).expect_code(0);
    run(&sandbox, &cluster, &["uninstall"]).expect_code(0);
    assert_eq!(
        cluster.kube.get("namespaces", None, "mlbackup").unwrap(),
        before
    );
}
