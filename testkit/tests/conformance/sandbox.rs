//! The `mlbackup-sandbox` binary as other tools use it: the ready line's contract, the real
//! kubectl against it, and a clean stop on SIGTERM.

use std::path::Path;
use std::process::Command;

use mlbackup_testkit::sandbox::SandboxProcess;

#[test]
fn serve_prints_the_ready_line_then_serves_kubectl_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_mlbackup-sandbox")),
        dir.path(),
        &[
            "--lrs",
            "5",
            "--spark",
            "2",
            "--other",
            "1",
            "--namespaces",
            "2",
            "--deployments",
            "4",
            "--inactive-deployments",
            "1",
            "--seed",
            "7",
        ],
    )
    .unwrap();
    let line: serde_json::Value = serde_json::from_str(&sandbox.ready_line).unwrap();
    let keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "kubeconfig",
        "context",
        "datarobotUrl",
        "datarobotToken",
        "appNamespace",
    ] {
        assert!(keys.contains(&key), "{key} missing from {line}");
    }
    assert_eq!(line["context"], "sandbox");
    assert_eq!(line["appNamespace"], "dr-app");
    assert!(
        line["datarobotUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );

    let kubectl = |args: &[&str]| {
        Command::new(mlbackup_testkit::tools::kubectl())
            .args(args)
            .env("KUBECONFIG", &sandbox.ready.kubeconfig)
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };
    let listed = kubectl(&["get", "lrs", "-A", "-o", "json"]);
    assert!(listed.status.success(), "{listed:?}");
    let list: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 8);
    let namespaces: std::collections::BTreeSet<_> = items
        .iter()
        .map(|i| i["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(
        namespaces.into_iter().collect::<Vec<_>>(),
        ["dr-app", "dr-tenant-1"]
    );
    let pods = kubectl(&["get", "pods", "-n", "dr-app", "-o", "name"]);
    assert!(
        String::from_utf8_lossy(&pods.stdout).contains("pod/mmapp-app-"),
        "{pods:?}"
    );

    let status = sandbox.terminate().unwrap();
    assert!(
        status.success(),
        "the sandbox exits 0 on SIGTERM: {status:?}"
    );
}

/// `serve --s3`: an S3 server beside the fakes, its endpoint, bucket and keys in the ready line,
/// stopped with the sandbox.
#[test]
fn serve_s3_puts_the_s3_server_in_the_ready_line() {
    use std::io::{Read, Write};
    if mlbackup_testkit::s3::find_binary().is_none() {
        // The same rule as every S3 test: required under CI, skipped with a reason elsewhere.
        assert!(
            !mlbackup_testkit::tools::in_ci(),
            "{} is not installed: {}",
            mlbackup_testkit::s3::BINARY,
            mlbackup_testkit::s3::INSTALL
        );
        eprintln!(
            "skipping: {} is not installed ({})",
            mlbackup_testkit::s3::BINARY,
            mlbackup_testkit::s3::INSTALL
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_mlbackup-sandbox")),
        dir.path(),
        &["--lrs", "2", "--s3"],
    )
    .unwrap();
    let line: serde_json::Value = serde_json::from_str(&sandbox.ready_line).unwrap();
    let endpoint = line["s3Endpoint"].as_str().unwrap().to_string();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{line}");
    assert_eq!(line["s3Bucket"], mlbackup_testkit::s3::BUCKET);
    assert!(!line["awsAccessKeyId"].as_str().unwrap().is_empty());
    assert!(!line["awsSecretAccessKey"].as_str().unwrap().is_empty());
    let s3 = sandbox.ready.s3.clone().unwrap();
    assert_eq!(s3.s3_endpoint, endpoint);

    // It is an S3 server: an unsigned request is refused the S3 way.
    let address = endpoint.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET /{} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n",
        s3.s3_bucket
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("<Code>AccessDenied</Code>"), "{answer}");

    let status = sandbox.terminate().unwrap();
    assert!(status.success(), "{status:?}");
    // Stopped with the sandbox, not left behind.
    let err = std::net::TcpStream::connect(&address).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}
