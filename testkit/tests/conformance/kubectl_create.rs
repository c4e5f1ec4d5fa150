//! The real `kubectl create namespace|secret|configmap|serviceaccount` against the fake API
//! server: kubectl sends these typed objects as protobuf (`application/vnd.kubernetes.protobuf`),
//! which the fake decodes into the object the JSON path stores, validated and defaulted the same
//! way. These are the commands the README and the schedule's hints tell users to run.

use std::path::PathBuf;

use base64::Engine;
use mlbackup_testkit::kube::FakeKubeOptions;
use serde_json::Value;

use super::kubectl::Cluster;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The content type of the one create request kubectl sent to `path`.
fn create_content_type(cluster: &Cluster, path: &str) -> Option<String> {
    let creates: Vec<_> = cluster
        .kube
        .requests()
        .entries()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .collect();
    assert_eq!(creates.len(), 1, "one create request to {path}");
    creates[0].content_type.clone()
}

async fn get_json(cluster: &Cluster, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    serde_json::from_str(&cluster.kubectl_ok(&args).await).expect("kubectl -o json")
}

fn decoded(data: &Value, key: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(
            data[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} is in the data")),
        )
        .unwrap_or_else(|_| panic!("{key} is base64"))
}

fn write(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("file written");
    path
}

#[tokio::test]
async fn kubectl_creates_the_namespace_and_the_credentials_secret_the_readme_names() {
    let cluster = Cluster::start(FakeKubeOptions::default()).await;
    let out = cluster
        .kubectl_ok(&["create", "namespace", "mlbackup"])
        .await;
    assert_eq!(out, "namespace/mlbackup created\n");
    assert_eq!(
        create_content_type(&cluster, "/api/v1/namespaces").as_deref(),
        Some(PROTOBUF)
    );
    let namespace = get_json(&cluster, &["get", "namespace", "mlbackup"]).await;
    assert_eq!(namespace["status"]["phase"], "Active");
    assert_eq!(
        namespace["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "mlbackup"
    );

    // Test values, not credentials; still compared without being printed.
    let key_id = "AKIAFAKEKEYID0000001";
    let secret_key = "fake/secret+key=with/odd_characters";
    let out = cluster
        .kubectl_ok(&[
            "create",
            "secret",
            "generic",
            "s3-backup",
            &format!("--from-literal=AWS_ACCESS_KEY_ID={key_id}"),
            &format!("--from-literal=AWS_SECRET_ACCESS_KEY={secret_key}"),
            "-n",
            "mlbackup",
        ])
        .await;
    assert_eq!(out, "secret/s3-backup created\n");
    assert_eq!(
        create_content_type(&cluster, "/api/v1/namespaces/mlbackup/secrets").as_deref(),
        Some(PROTOBUF)
    );
    let secret = get_json(&cluster, &["get", "secret", "s3-backup", "-n", "mlbackup"]).await;
    assert_eq!(secret["type"], "Opaque");
    let mut keys: Vec<&String> = secret["data"].as_object().expect("data").keys().collect();
    keys.sort();
    assert_eq!(keys, ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
    assert!(
        decoded(&secret["data"], "AWS_ACCESS_KEY_ID") == key_id.as_bytes(),
        "AWS_ACCESS_KEY_ID holds the literal given"
    );
    assert!(
        decoded(&secret["data"], "AWS_SECRET_ACCESS_KEY") == secret_key.as_bytes(),
        "AWS_SECRET_ACCESS_KEY holds the literal given"
    );

    // The JSON path's checks apply: the namespace exists now, and a name is validated.
    let again = cluster.kubectl(&["create", "namespace", "mlbackup"]).await;
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "Error from server (AlreadyExists): namespaces \"mlbackup\" already exists\n"
    );
    let invalid = cluster.kubectl(&["create", "namespace", "ML_backup"]).await;
    assert_eq!(invalid.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&invalid.stderr).starts_with(
            "The Namespace \"ML_backup\" is invalid: metadata.name: Invalid value: \"ML_backup\": a lowercase RFC 1123 label"
        ),
        "{}",
        String::from_utf8_lossy(&invalid.stderr)
    );
}

/// The schedule's hint: the access key from a literal, the secret key from a file (kept out of
/// the shell history), in an existing namespace; a missing namespace is refused as it is for JSON.
#[tokio::test]
async fn kubectl_creates_a_secret_from_a_file_and_a_literal() {
    let cluster = Cluster::start(FakeKubeOptions::default()).await;
    cluster.kube.create_namespace("mlbackup");
    let dir = tempfile::tempdir().unwrap();
    // Bytes that are not UTF-8 must come back as they were.
    let secret_key: &[u8] = b"fake-secret\xff\x00\n";
    let file = write(&dir, "secret-key", secret_key);
    let args = |namespace: &'static str| {
        vec![
            "create".to_string(),
            "secret".into(),
            "generic".into(),
            "s3-backup".into(),
            "-n".into(),
            namespace.into(),
            "--from-literal=AWS_ACCESS_KEY_ID=AKIAFAKEKEYID0000002".into(),
            format!("--from-file=AWS_SECRET_ACCESS_KEY={}", file.display()),
        ]
    };
    let missing = args("elsewhere");
    let missing: Vec<&str> = missing.iter().map(String::as_str).collect();
    let refused = cluster.kubectl(&missing).await;
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "error: failed to create secret namespaces \"elsewhere\" not found\n"
    );
    let created = args("mlbackup");
    let created: Vec<&str> = created.iter().map(String::as_str).collect();
    assert_eq!(
        cluster.kubectl_ok(&created).await,
        "secret/s3-backup created\n"
    );
    let secret = get_json(&cluster, &["get", "secret", "s3-backup", "-n", "mlbackup"]).await;
    assert!(
        decoded(&secret["data"], "AWS_SECRET_ACCESS_KEY") == secret_key,
        "AWS_SECRET_ACCESS_KEY holds the file's bytes"
    );
    assert!(
        decoded(&secret["data"], "AWS_ACCESS_KEY_ID") == b"AKIAFAKEKEYID0000002",
        "AWS_ACCESS_KEY_ID holds the literal given"
    );
}

#[tokio::test]
async fn kubectl_creates_a_config_map_from_files_and_a_service_account() {
    let cluster = Cluster::start(FakeKubeOptions::default()).await;
    cluster.kube.create_namespace("mlbackup");
    let dir = tempfile::tempdir().unwrap();
    let text = write(&dir, "recipients.txt", b"age1example\nage1other\n");
    let binary = write(&dir, "blob.bin", &[0x00, 0xff, 0xfe, 0x80]);
    let out = cluster
        .kubectl_ok(&[
            "create",
            "configmap",
            "settings",
            "-n",
            "mlbackup",
            &format!("--from-file={}", text.display()),
            &format!("--from-file={}", binary.display()),
        ])
        .await;
    assert_eq!(out, "configmap/settings created\n");
    assert_eq!(
        create_content_type(&cluster, "/api/v1/namespaces/mlbackup/configmaps").as_deref(),
        Some(PROTOBUF)
    );
    let config_map = get_json(
        &cluster,
        &["get", "configmap", "settings", "-n", "mlbackup"],
    )
    .await;
    assert_eq!(
        config_map["data"],
        serde_json::json!({"recipients.txt": "age1example\nage1other\n"})
    );
    assert_eq!(
        decoded(&config_map["binaryData"], "blob.bin"),
        [0x00, 0xff, 0xfe, 0x80]
    );

    let out = cluster
        .kubectl_ok(&["create", "serviceaccount", "runner", "-n", "mlbackup"])
        .await;
    assert_eq!(out, "serviceaccount/runner created\n");
    assert_eq!(
        create_content_type(&cluster, "/api/v1/namespaces/mlbackup/serviceaccounts").as_deref(),
        Some(PROTOBUF)
    );
    let account = get_json(
        &cluster,
        &["get", "serviceaccount", "runner", "-n", "mlbackup"],
    )
    .await;
    assert_eq!(account["metadata"]["name"], "runner");
    assert_eq!(account["metadata"]["namespace"], "mlbackup");
    assert!(account["metadata"]["uid"].is_string());
}

/// A kind whose protobuf the fake does not decode is refused with its name, not stored wrong.
#[tokio::test]
async fn a_protobuf_body_of_a_kind_not_decoded_is_refused_by_name() {
    let cluster = Cluster::start(FakeKubeOptions::default()).await;
    cluster.kube.create_namespace("batch");
    let out = cluster
        .kubectl(&["create", "job", "once", "--image=busybox", "-n", "batch"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not decode protobuf bodies of batch/v1 Job"),
        "{stderr}"
    );
    assert!(cluster.kube.get("jobs", Some("batch"), "once").is_none());
}
