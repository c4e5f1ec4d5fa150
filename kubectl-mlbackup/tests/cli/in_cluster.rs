//! The plugin in a pod: without a kubeconfig it reads the in-cluster configuration (the API
//! server from `KUBERNETES_SERVICE_HOST`/`PORT`, the service account's token, CA and
//! namespace), as kubectl does. The service account's directory is a temporary one here
//! (`MLBACKUP_TEST_SERVICE_ACCOUNT_DIR`, for tests only), holding what the kubelet mounts.

use std::path::Path;

use crate::support::{FakeCluster, Sandbox};

/// Writes the files the kubelet mounts for a service account whose token the fake accepts.
fn service_account(cluster: &FakeCluster, dir: &Path, namespace: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("token"), cluster.kube.token()).unwrap();
    std::fs::write(dir.join("ca.crt"), cluster.kube.ca_pem().unwrap()).unwrap();
    std::fs::write(dir.join("namespace"), namespace).unwrap();
}

/// The environment of a pod: the API server's address and the service account's directory.
pub(crate) fn in_pod(sandbox: Sandbox, cluster: &FakeCluster, dir: &Path) -> Sandbox {
    let url = cluster.kube.url();
    let (host, port) = url.trim_start_matches("https://").rsplit_once(':').unwrap();
    sandbox
        .env("KUBERNETES_SERVICE_HOST", host)
        .env("KUBERNETES_SERVICE_PORT", port)
        .env("MLBACKUP_TEST_SERVICE_ACCOUNT_DIR", dir.to_str().unwrap())
}

#[test]
fn without_a_kubeconfig_the_service_account_of_the_pod_is_used() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_lrs(&sandbox, 12, 3);
    let dir = sandbox.path("serviceaccount");
    service_account(&cluster, &dir, "mlbackup");
    assert!(!sandbox.path(".kube/config").exists(), "no kubeconfig");
    let sandbox = in_pod(sandbox, &cluster, &dir);

    let run = sandbox.run(&["backup", "--dir", "backups", "-o", "json"]);
    run.expect_code(0);
    let outcome = run.json();
    let folder = sandbox.home().join(outcome["path"].as_str().unwrap());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["cluster"]["server"], cluster.kube.url());
    assert_eq!(manifest["cluster"]["context"], serde_json::Value::Null);
    assert!(!manifest["items"].as_array().unwrap().is_empty());
    // Every request carried the service account's token (the fake answers 401 otherwise).
    let requests = cluster.kube.requests().entries();
    assert!(
        requests
            .iter()
            .all(|r| r.status != 401 && r.auth_scheme.as_deref() == Some("Bearer")),
        "{requests:#?}"
    );
}

#[test]
fn a_wrong_token_is_refused_by_the_api_server() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_lrs(&sandbox, 2, 1);
    let dir = sandbox.path("serviceaccount");
    service_account(&cluster, &dir, "mlbackup");
    std::fs::write(dir.join("token"), "not-the-token").unwrap();
    let sandbox = in_pod(sandbox, &cluster, &dir);
    let run = sandbox.run(&["backup", "--dir", "backups"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("401") || run.stderr.contains("Unauthorized"),
        "{}",
        run.stderr
    );
}

#[test]
fn in_a_pod_without_a_token_the_error_says_where_it_looked() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_lrs(&sandbox, 2, 1);
    let dir = sandbox.path("serviceaccount");
    std::fs::create_dir_all(&dir).unwrap();
    let sandbox = in_pod(sandbox, &cluster, &dir);
    let run = sandbox.run(&["backup", "--dir", "backups"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot connect to the cluster
      caused by: no kubeconfig found (looked at [HOME]/.kube/config, and, as KUBERNETES_SERVICE_HOST is set, the in-cluster service account token [HOME]/serviceaccount/token)
    hint: point KUBECONFIG or --kubeconfig at a kubeconfig file, as for kubectl
    "#);
}
