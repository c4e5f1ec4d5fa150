//! `version`: client only, against the fake cluster, and the errors users hit on the way.

use crate::support::{FakeCluster, Sandbox};

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
    // The output names the helper beside the plugin: the current one.
    crate::in_pod::helper_beside_the_plugin();
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["version"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----
    Plugin Version: v0.1.0
    Helper: [TARGET]/mlbackup-helper (mlbackup-helper 0.1.0)

    ----- stderr -----
    error: cannot connect to the cluster
      caused by: no kubeconfig found (looked at [HOME]/.kube/config)
    hint: point KUBECONFIG or --kubeconfig at a kubeconfig file, as for kubectl
    "#);
}

#[test]
fn an_unreachable_cluster_is_named_with_a_hint() {
    // The output names the helper beside the plugin: the current one.
    crate::in_pod::helper_beside_the_plugin();
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
    // The port of this kubeconfig, which the snapshot shows as `[PORT]`.
    assert!(
        run.stderr.contains(&format!(
            "cannot reach the cluster at http://127.0.0.1:{port}"
        )),
        "{}",
        run.stderr
    );
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----
    Plugin Version: v0.1.0
    Helper: [TARGET]/mlbackup-helper (mlbackup-helper 0.1.0)

    ----- stderr -----
    error: cannot read the API server's version
      caused by: cannot reach the cluster at http://127.0.0.1:[PORT]
      caused by: client error (Connect)
      caused by: tcp connect error
      caused by: Connection refused (os error 111)
    hint: check that `kubectl cluster-info` works with the same context (VPN, proxy, cluster up?); use --context to pick another cluster
    "#);
}

#[test]
fn against_a_cluster_it_shows_the_server_context_and_namespace() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_lrs(&sandbox, 1, 1);
    let sandbox = sandbox.env("KUBECONFIG", cluster.kubeconfig.to_str().unwrap());
    let run = sandbox.run(&["version", "-o", "json"]);
    run.expect_code(0);
    let json = run.json();
    assert!(
        json["serverVersion"]["gitVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.")
    );
    assert_eq!(json["serverVersion"]["server"], cluster.kube.url());
    assert_eq!(json["serverVersion"]["context"], "fake");
    assert_eq!(
        json["serverVersion"]["namespace"], "dr-app",
        "the context's namespace"
    );
    let run = sandbox.run(&["version", "-n", "other", "-o", "json"]);
    assert_eq!(run.json()["serverVersion"]["namespace"], "other", "-n wins");
    // Every request says who sent it.
    let agents = cluster.kube.requests().entries();
    assert!(!agents.is_empty());
    for request in agents {
        assert_eq!(
            request.user_agent.as_deref(),
            Some(concat!("kubectl-mlbackup/", env!("CARGO_PKG_VERSION")))
        );
    }
}

#[test]
fn kubeconfig_files_merge_like_kubectl_and_context_flags_pick_from_them() {
    // The output names the helper beside the plugin: the current one.
    crate::in_pod::helper_beside_the_plugin();
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_lrs(&sandbox, 1, 1);
    // A first file whose current context points nowhere, and the real one second: the first
    // file wins for current-context, so --context must pick the fake.
    let broken = sandbox.path("first.yaml");
    std::fs::write(
        &broken,
        "apiVersion: v1\nkind: Config\nclusters: [{name: gone, cluster: {server: 'http://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: gone, context: {cluster: gone, user: u}}]\ncurrent-context: gone\n",
    )
    .unwrap();
    let list = format!(
        "{}:{}:{}",
        broken.display(),
        sandbox.path("missing.yaml").display(),
        cluster.kubeconfig.display()
    );
    let sandbox = sandbox.env("KUBECONFIG", &list);
    let run = sandbox.run(&["version"]);
    mlbackup_testkit::assert_run_snapshot!("first_file_wins", run.shown(&sandbox));
    let run = sandbox.run(&["version", "--context", "fake", "-o", "json"]);
    run.expect_code(0);
    assert_eq!(run.json()["serverVersion"]["context"], "fake");
    // --cluster and --user override the context's parts.
    let run = sandbox.run(&["version", "--context", "fake", "--cluster", "gone"]);
    run.expect_code(1);
    let run = sandbox.run(&["version", "--context", "fake", "--user", "u"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----
    Plugin Version: v0.1.0
    Helper: [TARGET]/mlbackup-helper (mlbackup-helper 0.1.0)

    ----- stderr -----
    error: cannot read the API server's version
      caused by: the cluster at https://127.0.0.1:[PORT] rejected the credentials (401 Unauthorized)
    hint: your credentials expired or are wrong: log in again (for example refresh the kubeconfig from your cloud provider) and check `kubectl get --raw /version`
    "#);
}

#[test]
fn version_reports_the_helper_it_would_upload() {
    let sandbox = Sandbox::new();
    let helper = sandbox.path("my-helper");
    std::fs::write(
        &helper,
        "#!/bin/sh\n[ \"$1\" = --version ] && echo 'mlbackup-helper 9.9.9 (protocol 1)'\n",
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&helper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&helper, permissions).unwrap();
    let sandbox = sandbox.env("MLBACKUP_HELPER", helper.to_str().unwrap());
    let run = sandbox.run(&["version", "--client"]);
    run.expect_code(0);
    assert_eq!(
        run.stdout.lines().nth(1),
        Some(
            format!(
                "Helper: {} (mlbackup-helper 9.9.9 (protocol 1))",
                helper.display()
            )
            .as_str()
        )
    );
    let json = sandbox.run(&["version", "--client", "-o", "json"]).json();
    assert_eq!(json["helper"]["path"], helper.to_str().unwrap());
    assert_eq!(json["helper"]["platform"], "linux/amd64");

    // A named helper that is not there is reported with where the plugin looked; still exit 0.
    let missing = Sandbox::new().env("MLBACKUP_HELPER", "/no/such/helper");
    let run = missing.run(&["version", "--client", "-o", "json"]);
    run.expect_code(0);
    let json = run.json();
    assert!(json["helper"]["path"].is_null());
    assert_eq!(
        json["helper"]["problem"],
        "no mlbackup-helper for linux/amd64 (looked at /no/such/helper)"
    );
}
