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
