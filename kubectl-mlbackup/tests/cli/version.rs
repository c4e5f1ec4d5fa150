//! `version`: client only, against the fake cluster, and the errors users hit on the way.

use crate::support::Sandbox;

#[test]
fn client_version_needs_no_cluster() {
    let run = Sandbox::new().run(&["version", "--client", "-o", "json"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["clientVersion"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["clientVersion"]["platform"], "linux/amd64");
    assert!(json.get("serverVersion").is_none());
}

#[test]
fn without_a_kubeconfig_it_says_where_it_looked_and_what_to_do() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["version"]);
    run.expect_code(1);
    assert!(
        run.stdout.starts_with("Plugin Version: v"),
        "{}",
        run.stdout
    );
    let stderr = run
        .stderr
        .replace(&sandbox.home().display().to_string(), "[HOME]");
    insta::assert_snapshot!(stderr, @r"
    error: cannot connect to the cluster
      caused by: no kubeconfig found (looked at [HOME]/.kube/config)
    hint: point KUBECONFIG or --kubeconfig at a kubeconfig file, as for kubectl
    ");
}

#[test]
fn an_unreachable_cluster_is_named_with_a_hint() {
    let sandbox = Sandbox::new();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = sandbox.path("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: gone, context: {{cluster: c, user: u}}}}]\ncurrent-context: gone\n"
        ),
    )
    .unwrap();
    let run = sandbox.run(&["version", "--kubeconfig", kubeconfig.to_str().unwrap()]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "cannot reach the cluster at http://127.0.0.1:{port}"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Connection refused"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("hint: check that `kubectl cluster-info` works"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("Error {"),
        "no debug dumps: {}",
        run.stderr
    );
}
